#!/usr/bin/python3
"""A local, stateful emulator of the Google Cloud APIs cloudgrant uses.

    /usr/bin/python3 gcp_api.py --state-dir DIR [--port 0] [--metadata-port 0]
        [--host 127.0.0.1] [--ready-file PATH] [--project demo-project]
        [--project-number 123456789012] [--enabled serviceusage.googleapis.com,...]
        [--admin-account bootstrap-admin] [--op-polls 2] [--enable-lag 0]
        [--sa-visibility-lag 0] [--token-ttl 3600] [--delay-ms 0]
        [--cluster-name gke-demo] [--cluster-location europe-west1]
        [--cluster-uid UID] [--zone europe-west1-b] [--metadata-sa EMAIL]
        [--validator auto|off|PYTHON] [--verbose]

One plain-HTTP server on 127.0.0.1; the first path segment picks the API:
  /iam/v1/...           IAM v1 (service accounts, keys, SA IAM policy, custom roles)
  /serviceusage/v1/...  Service Usage v1 (enable/disable/get/list/batchGet, operations)
  /crm/v1/...           Resource Manager v1 (project get, getIamPolicy, setIamPolicy)
  /token                OAuth 2.0 token endpoint (JWT bearer grant, RS256 verified)
  /_emu/...             control endpoints for tests (not Google's; see gcp_harness.py)
A second port (--metadata-port) is the GCE/GKE metadata server (GCE_METADATA_HOST).

The state dir gets admin-key.json (a service-account key file of the bootstrap admin, in
the exact format Google hands out, token_uri = this emulator's /token), gcloud-token (a
static access token of that admin, for `gcloud --access-token-file`), ports.json
({"api": P, "metadata": M}) and, with --ready-file, the API port once both listen.

Every API request is checked against gcloud's generated client (gcp_model.py under gcloud's
bundled Python, a long-lived subprocess): an unknown path gets Google's 404 page, an unknown
field or a value of the wrong type Google's 400 INVALID_ARGUMENT, and the request log
records the violation. Secrets (private keys, tokens, JWT assertions) never reach the log,
stdout or stderr. Python 3 standard library plus `cryptography` (Debian's python3).

Faults (control "inject", see gcp_harness.py): method / path_regex select the requests, count
how many get the fault; ordinal=N gives it to the N-th matching request only (the N-1 before it
pass untouched); mutating=true/false matches only mutating / read requests. Kind "hang" (API
requests only, never /token or the metadata server): the answer is held (execute=true: after
the request ran) until the client closes the connection, control "release", or delay_ms
(default 600000) pass; a client still there then gets the normal answer. freeze=true (with
hang): once held, every later API request waits unexecuted too, until "release" (then it runs)
or its client goes away (then it never runs; logged with fault "frozen", status null). The
hang's log entry is written before the hold and gets "held": closed|released|timeout after.
"""
import argparse
import base64
import copy
import hashlib
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emu_common import EmulatorHandler, QuietThreadingHTTPServer, serve, write_atomic  # noqa

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

EMU_DIR = os.path.dirname(os.path.abspath(__file__))
GCLOUD_SDK = os.environ.get("CG_GCLOUD_SDK") or "/usr/lib/google-cloud-sdk"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
GOOGLE_TOKEN_AUDIENCES = ("https://oauth2.googleapis.com/token",
                          "https://www.googleapis.com/oauth2/v4/token",
                          "https://accounts.google.com/o/oauth2/token")

# Services the emulator knows (Service Usage answers 403 for any other name, as Google does
# for a name it cannot find). Title is what `gcloud services list` prints.
SERVICE_CATALOG = {
    "artifactregistry.googleapis.com": "Artifact Registry API",
    "cloudkms.googleapis.com": "Cloud Key Management Service (KMS) API",
    "cloudresourcemanager.googleapis.com": "Cloud Resource Manager API",
    "compute.googleapis.com": "Compute Engine API",
    "container.googleapis.com": "Kubernetes Engine API",
    "containerregistry.googleapis.com": "Container Registry API",
    "iam.googleapis.com": "Identity and Access Management (IAM) API",
    "iamcredentials.googleapis.com": "IAM Service Account Credentials API",
    "logging.googleapis.com": "Cloud Logging API",
    "monitoring.googleapis.com": "Cloud Monitoring API",
    "oslogin.googleapis.com": "Cloud OS Login API",
    "serviceusage.googleapis.com": "Service Usage API",
    "storage.googleapis.com": "Cloud Storage API",
    "sts.googleapis.com": "Security Token Service API",
}

# Predefined roles accepted in bindings (title, a few permissions for GET v1/roles/...).
PREDEFINED_ROLES = {
    "roles/owner": ("Owner", ["resourcemanager.projects.get", "resourcemanager.projects.setIamPolicy"]),
    "roles/editor": ("Editor", ["resourcemanager.projects.get", "compute.instances.create"]),
    "roles/viewer": ("Viewer", ["resourcemanager.projects.get", "compute.instances.list"]),
    "roles/browser": ("Browser", ["resourcemanager.projects.get"]),
    "roles/compute.admin": ("Compute Admin", ["compute.instances.create", "compute.instances.delete"]),
    "roles/compute.viewer": ("Compute Viewer", ["compute.instances.get", "compute.instances.list"]),
    "roles/container.admin": ("Kubernetes Engine Admin", ["container.clusters.get", "container.clusters.update"]),
    "roles/container.developer": ("Kubernetes Engine Developer", ["container.clusters.get", "container.pods.list"]),
    "roles/container.viewer": ("Kubernetes Engine Viewer", ["container.clusters.get", "container.clusters.list"]),
    "roles/iam.roleAdmin": ("Role Administrator", ["iam.roles.create", "iam.roles.update"]),
    "roles/iam.serviceAccountAdmin": ("Service Account Admin", ["iam.serviceAccounts.create", "iam.serviceAccounts.delete"]),
    "roles/iam.serviceAccountKeyAdmin": ("Service Account Key Admin", ["iam.serviceAccountKeys.create", "iam.serviceAccountKeys.delete"]),
    "roles/iam.serviceAccountTokenCreator": ("Service Account Token Creator", ["iam.serviceAccounts.getAccessToken", "iam.serviceAccounts.signJwt"]),
    "roles/iam.serviceAccountUser": ("Service Account User", ["iam.serviceAccounts.actAs", "iam.serviceAccounts.get"]),
    "roles/iam.workloadIdentityUser": ("Workload Identity User", ["iam.serviceAccounts.getAccessToken", "iam.serviceAccounts.getOpenIdToken"]),
    "roles/logging.logWriter": ("Logs Writer", ["logging.logEntries.create"]),
    "roles/monitoring.metricWriter": ("Monitoring Metric Writer", ["monitoring.timeSeries.create"]),
    "roles/resourcemanager.projectIamAdmin": ("Project IAM Admin", ["resourcemanager.projects.getIamPolicy", "resourcemanager.projects.setIamPolicy"]),
    "roles/serviceusage.serviceUsageAdmin": ("Service Usage Admin", ["serviceusage.services.enable", "serviceusage.services.list"]),
    "roles/storage.admin": ("Storage Admin", ["storage.buckets.create", "storage.objects.get"]),
}
# Roles a service account (as a resource) accepts in its own IAM policy.
SA_RESOURCE_ROLES = {"roles/owner", "roles/editor", "roles/viewer",
                     "roles/iam.serviceAccountAdmin", "roles/iam.serviceAccountKeyAdmin",
                     "roles/iam.serviceAccountTokenCreator", "roles/iam.serviceAccountUser",
                     "roles/iam.workloadIdentityUser"}
# Permissions that exist but cannot be used in a project-level custom role.
ORG_ONLY_PERMISSIONS = {"resourcemanager.projects.list", "resourcemanager.projects.create",
                        "resourcemanager.organizations.get", "resourcemanager.folders.list",
                        "billing.accounts.list"}
# What permissions.queryTestablePermissions answers for a project (gcloud iam roles create
# checks the requested permissions against it); custom roles accept any well-formed
# permission that is not org-only.
PERMISSION_CATALOG = sorted({
    "compute.instances.get", "compute.instances.list", "compute.instances.create",
    "compute.instances.delete", "compute.instances.start", "compute.instances.stop",
    "compute.instances.setMetadata", "compute.instances.setLabels", "compute.disks.create",
    "compute.disks.get", "compute.disks.list", "compute.networks.get", "compute.networks.list",
    "compute.subnetworks.get", "compute.subnetworks.list", "compute.subnetworks.use",
    "compute.zones.get", "compute.zones.list", "compute.regions.get", "compute.regions.list",
    "compute.machineTypes.get", "compute.machineTypes.list", "compute.instanceGroupManagers.get",
    "compute.instanceGroupManagers.list", "compute.instanceGroupManagers.update",
    "compute.instanceTemplates.get", "compute.instanceTemplates.list",
    "container.clusters.get", "container.clusters.list", "container.clusters.update",
    "container.nodes.get", "container.nodes.list", "container.pods.get", "container.pods.list",
    "container.operations.get", "container.operations.list",
    "iam.roles.create", "iam.roles.delete", "iam.roles.get", "iam.roles.list",
    "iam.roles.undelete", "iam.roles.update", "iam.serviceAccountKeys.create",
    "iam.serviceAccountKeys.delete", "iam.serviceAccountKeys.get",
    "iam.serviceAccountKeys.list", "iam.serviceAccounts.actAs", "iam.serviceAccounts.create",
    "iam.serviceAccounts.delete", "iam.serviceAccounts.get", "iam.serviceAccounts.getAccessToken",
    "iam.serviceAccounts.getIamPolicy", "iam.serviceAccounts.list",
    "iam.serviceAccounts.setIamPolicy", "iam.serviceAccounts.update",
    "logging.logEntries.create", "monitoring.timeSeries.create", "monitoring.timeSeries.list",
    "resourcemanager.projects.get", "resourcemanager.projects.getIamPolicy",
    "resourcemanager.projects.setIamPolicy", "serviceusage.services.enable",
    "serviceusage.services.get", "serviceusage.services.list", "serviceusage.services.use",
    "storage.buckets.create", "storage.buckets.get", "storage.buckets.list",
    "storage.objects.create", "storage.objects.get", "storage.objects.list",
} | {p for _t, perms in PREDEFINED_ROLES.values() for p in perms})
PERMISSION_RE = re.compile(r"^[a-z][a-zA-Z0-9]*\.[a-zA-Z0-9]+\.[a-zA-Z][a-zA-Z0-9]*$")
ACCOUNT_ID_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])$")
ROLE_ID_RE = re.compile(r"^[a-zA-Z0-9_.]{3,64}$")
EMAIL_RE = re.compile(r"^[^@\s:]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
STAGES = ("ALPHA", "BETA", "GA", "DEPRECATED", "DISABLED", "EAP")
MAX_USER_KEYS = 10
UNDELETE_DAYS = 7
PURGE_DAYS = 37
DAY = 86400.0

AUTH_HELP = ("Expected OAuth 2 access token, login cookie or other valid authentication "
             "credential. See https://developers.google.com/identity/sign-in/web/"
             "devconsole-project.")
CONCURRENT_MSG = ("There were concurrent policy changes. Please retry the whole "
                  "read-modify-write with exponential backoff.")
VERSIONS_URL = "https://cloud.google.com/iam/docs/policies#versions"

HTTP_OF_STATUS = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400,
                  "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403, "NOT_FOUND": 404,
                  "ALREADY_EXISTS": 409, "ABORTED": 409, "RESOURCE_EXHAUSTED": 429,
                  "CANCELLED": 499, "INTERNAL": 500, "UNKNOWN": 500, "DATA_LOSS": 500,
                  "UNIMPLEMENTED": 501, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504}

GOOGLE_404 = """<!DOCTYPE html>
<html lang=en>
  <meta charset=utf-8>
  <meta name=viewport content="initial-scale=1, minimum-scale=1, width=device-width">
  <title>Error 404 (Not Found)!!1</title>
  <p><b>404.</b> <ins>That\u2019s an error.</ins>
  <p>The requested URL <code>{path}</code> was not found on this server.  <ins>That\u2019s all we know.</ins>
"""


# ==============================================================================================
# small helpers

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode_strict(seg):
    """base64url without padding, as JWS requires; None if anything else."""
    if not seg or "=" in seg or not re.fullmatch(r"[A-Za-z0-9_-]+", seg) or len(seg) % 4 == 1:
        return None
    try:
        return base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))
    except ValueError:
        return None


def rfc3339(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def rfc3339_nanos(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + ".%06dZ" % int((ts % 1) * 1e6)


def new_etag():
    # Google's policy and role etags are 8 bytes, base64 ("BwYk3Y2q1xE=")
    return base64.b64encode(b"\x07\x06" + os.urandom(6)).decode()


def etag_eq(a, b):
    """Etags are bytes fields: "BwX/ab==" and "BwX_ab==" are the same etag (apitools sends
    bytes back in the URL-safe alphabet)."""
    def raw(e):
        try:
            e = e.replace("-", "+").replace("_", "/")
            return base64.b64decode(e + "=" * (-len(e) % 4), validate=True)
        except (ValueError, TypeError, AttributeError):
            return e
    return raw(a) == raw(b)


def camel_keys(doc):
    """Google's JSON parser takes proto field names (account_id) as well as JSON names
    (accountId); the handlers read JSON names."""
    if isinstance(doc, dict):
        return {re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), k): camel_keys(v)
                for k, v in doc.items()}
    if isinstance(doc, list):
        return [camel_keys(v) for v in doc]
    return doc


def digits(n):
    return "".join(str(b % 10) for b in os.urandom(n))


class ApiError(Exception):
    """A Google API error: {"error":{"code","message","status","details"}}."""

    def __init__(self, status, message, details=None, headers=None, code=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details or []
        self.headers = headers or {}
        self.code = code or HTTP_OF_STATUS.get(status, 500)

    def body(self):
        err = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            err["details"] = self.details
        return {"error": err}


def error_info(reason, domain="googleapis.com", metadata=None):
    d = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
         "domain": domain}
    if metadata:
        d["metadata"] = metadata
    return d


def permission_denied(permission, resource=None):
    md = {"permission": permission}
    if resource:
        md["resource"] = resource
    return ApiError("PERMISSION_DENIED", "Permission '%s' denied on resource (or it may not "
                    "exist)." % permission, [error_info("IAM_PERMISSION_DENIED",
                                                       "iam.googleapis.com", md)])


def invalid(message, field=None):
    details = []
    if field is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.BadRequest",
                        "fieldViolations": [{"field": field, "description": message}]})
    return ApiError("INVALID_ARGUMENT", message, details)


def split_mask(mask):
    out = set()
    for part in (mask or "").split(","):
        part = part.strip()
        if part:
            out.add(re.sub(r"_([a-z])", lambda m: m.group(1).upper(), part))
    return out


# ==============================================================================================
# keys

class KeyMaterial:
    """An RSA 2048 key pair (cryptography), its PKCS#8 PEM and a self-signed certificate."""

    def __init__(self, private_key=None):
        self.key = private_key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public = self.key.public_key()
        self._cert = None

    def pem(self):
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()

    def cert_pem(self, cn, not_before, not_after):
        if self._cert is None:
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
            import datetime
            nb = datetime.datetime.fromtimestamp(not_before, datetime.timezone.utc)
            na = datetime.datetime.fromtimestamp(min(not_after, 253402300799),
                                                 datetime.timezone.utc)
            cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                    .public_key(self.public).serial_number(x509.random_serial_number())
                    .not_valid_before(nb).not_valid_after(na)
                    .sign(self.key, hashes.SHA256()))
            self._cert = cert.public_bytes(serialization.Encoding.PEM).decode()
        return self._cert

    def verify(self, signature, data):
        try:
            self.public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            return True
        except InvalidSignature:
            return False


class KeyPool:
    """RSA 2048 generation takes most of a second here; key creation should answer about as
    fast as Google does. Keys are taken first from an on-disk cache shared by every run
    ($CG_GCP_KEY_CACHE, default ~/.cache/cloudgrant-gcp-emulator; "off" disables it), each
    used at most once per run, then from a queue a background thread keeps filled (and
    whose keys it adds to the cache, up to CACHE_MAX). They are test keys, nothing else."""
    CACHE_MAX = 48

    def __init__(self, size=4):
        self.lock = threading.Lock()
        self.q = queue.Queue(maxsize=size)
        self.cached = []
        self.cache_dir = os.environ.get("CG_GCP_KEY_CACHE") or os.path.join(
            os.path.expanduser("~"), ".cache", "cloudgrant-gcp-emulator")
        if self.cache_dir == "off":
            self.cache_dir = None
        if self.cache_dir:
            try:
                for name in sorted(os.listdir(self.cache_dir))[:self.CACHE_MAX]:
                    if name.endswith(".pem"):
                        with open(os.path.join(self.cache_dir, name), "rb") as f:
                            self.cached.append(f.read())
            except OSError:
                pass
        self.cache_count = len(self.cached)
        threading.Thread(target=self._fill, daemon=True).start()

    def _fill(self):
        while True:
            with self.lock:
                plenty = len(self.cached) > 4
            if plenty:
                time.sleep(0.2)
                continue
            km = KeyMaterial()
            self._save(km)
            self.q.put(km)

    def _save(self, km):
        if not self.cache_dir or self.cache_count >= self.CACHE_MAX:
            return
        try:
            os.makedirs(self.cache_dir, exist_ok=True)
            write_atomic(os.path.join(self.cache_dir, "rsa-%s.pem" % os.urandom(8).hex()),
                         km.pem(), mode=0o600)
            self.cache_count += 1
        except OSError:
            pass

    def get(self):
        with self.lock:
            pem = self.cached.pop() if self.cached else None
        if pem is not None:
            try:
                return KeyMaterial(serialization.load_pem_private_key(pem, password=None))
            except ValueError:
                pass
        try:
            return self.q.get(timeout=0.05)
        except queue.Empty:
            km = KeyMaterial()
            self._save(km)
            return km


KEY_POOL = None


def new_key_material():
    global KEY_POOL
    if KEY_POOL is None:
        KEY_POOL = KeyPool()
    return KEY_POOL.get()


# ==============================================================================================
# the model

class Policy:
    """An IAM policy: bindings {(role, condition-json or None): set(members)}, etag."""

    def __init__(self, bindings=None, etag=None):
        self.bindings = {}
        for b in bindings or []:
            self.add(b["role"], b["members"], b.get("condition"))
        self.etag = etag or new_etag()
        self.audit_configs = []

    @staticmethod
    def cond_key(cond):
        if not cond:
            return None
        return json.dumps({k: cond[k] for k in ("title", "description", "expression")
                           if cond.get(k)}, sort_keys=True)

    def add(self, role, members, condition=None):
        key = (role, self.cond_key(condition))
        self.bindings.setdefault(key, set()).update(members)

    def remove(self, role, member, condition=None):
        key = (role, self.cond_key(condition))
        members = self.bindings.get(key)
        if not members or member not in members:
            return False
        members.discard(member)
        if not members:
            del self.bindings[key]
        return True

    def has_conditions(self):
        return any(c is not None for (_r, c) in self.bindings)

    def version(self):
        return 3 if self.has_conditions() else 1

    def members(self):
        out = set()
        for ms in self.bindings.values():
            out |= ms
        return out

    def render(self, requested=3):
        out = {"version": self.version(), "etag": self.etag}
        bindings = []
        for (role, cond) in sorted(self.bindings, key=lambda k: (k[0], k[1] or "")):
            members = sorted(self.bindings[(role, cond)])
            b = {"role": role, "members": members}
            if cond is not None:
                if requested >= 3:
                    b["condition"] = json.loads(cond)
                else:
                    # A v1 reader gets the conditional binding with a mangled role name and no
                    # condition, so it cannot mistake it for an unconditional grant.
                    h = hashlib.sha1((role + cond).encode()).hexdigest()[:20]
                    b["role"] = "%s_withcond_%s" % (role, h)
            bindings.append(b)
        if requested < 3 and self.has_conditions():
            out["version"] = 1
        if bindings:
            out["bindings"] = bindings
        if self.audit_configs:
            out["auditConfigs"] = copy.deepcopy(self.audit_configs)
        if not bindings and not self.audit_configs and self.etag == "ACAB":
            return {"etag": "ACAB"}  # a policy never set, as Google shows it
        return out


class ServiceAccount:
    def __init__(self, project, account_id, display_name="", description="", unique_id=None):
        self.project = project
        self.account_id = account_id
        self.email = "%s@%s.iam.gserviceaccount.com" % (account_id, project.project_id)
        self.unique_id = unique_id or ("1" + digits(20))
        self.display_name = display_name
        self.description = description
        self.disabled = False
        self.keys = {}  # key id -> Key
        self.policy = Policy(etag="ACAB")
        self.invisible_for = 0  # setIamPolicy calls that will not see it yet
        self.get_pattern = ""  # what the next GETs see ('-' miss, '+' hit), then always hits
        sys_key = Key(self, "SYSTEM_MANAGED", None)
        self.keys[sys_key.key_id] = sys_key

    def name(self):
        return "projects/%s/serviceAccounts/%s" % (self.project.project_id, self.email)

    def render(self):
        d = {"name": self.name(), "projectId": self.project.project_id,
             "uniqueId": self.unique_id, "email": self.email}
        if self.display_name:
            d["displayName"] = self.display_name
        if self.description:
            d["description"] = self.description
        d["etag"] = "MDEwMjE5MjA="  # IAM answers this constant etag for every account
        d["oauth2ClientId"] = self.unique_id
        if self.disabled:
            d["disabled"] = True
        return d


class Key:
    def __init__(self, sa, key_type, material, origin="GOOGLE_PROVIDED"):
        self.sa = sa
        self.key_id = os.urandom(20).hex()
        self.key_type = key_type
        self.material = material  # KeyMaterial for user-managed keys made here
        self.origin = origin
        self.created = time.time()
        self.valid_before = (253402300799 if key_type == "USER_MANAGED"
                             else self.created + 14 * DAY)
        self.disabled = False

    def name(self):
        return "%s/keys/%s" % (self.sa.name(), self.key_id)

    def render(self, public_key_type=None):
        d = {"name": self.name(), "validAfterTime": rfc3339(self.created),
             "validBeforeTime": rfc3339(self.valid_before),
             "keyAlgorithm": "KEY_ALG_RSA_2048", "keyOrigin": self.origin,
             "keyType": self.key_type}
        if self.disabled:
            d["disabled"] = True
        if public_key_type:
            if self.material is None:
                self.material = KeyMaterial()
            if public_key_type == "TYPE_X509_PEM_FILE":
                pem = self.material.cert_pem(self.key_id, self.created, self.valid_before)
            else:
                pem = self.material.public.public_bytes(
                    serialization.Encoding.DER,
                    serialization.PublicFormat.PKCS1).hex()
            d["publicKeyData"] = base64.b64encode(pem.encode()).decode()
        return d


class Role:
    def __init__(self, project, role_id, title, description, permissions, stage):
        self.project = project
        self.role_id = role_id
        self.title = title
        self.description = description
        self.permissions = sorted(set(permissions))
        self.stage = stage
        self.etag = new_etag()
        self.deleted_at = None

    def name(self):
        return "projects/%s/roles/%s" % (self.project.project_id, self.role_id)

    def render(self, view="FULL"):
        d = {"name": self.name()}
        if self.title:
            d["title"] = self.title
        if self.description:
            d["description"] = self.description
        if view == "FULL" and self.permissions:
            d["includedPermissions"] = list(self.permissions)
        d["stage"] = self.stage
        d["etag"] = self.etag
        if self.deleted_at is not None:
            d["deleted"] = True
        return d


class Project:
    def __init__(self, project_id, number, name):
        self.project_id = project_id
        self.number = str(number)
        self.name = name
        self.create_time = time.time() - 400 * DAY

    def render(self):
        return {"projectNumber": self.number, "projectId": self.project_id,
                "lifecycleState": "ACTIVE", "name": self.name,
                "createTime": rfc3339_nanos(self.create_time)}


class Operation:
    def __init__(self, name, project, action, services, polls_needed):
        self.name = name
        self.project = project
        self.action = action  # "batchEnable" | "enable" | "disable"
        self.services = services
        self.polls_needed = polls_needed
        self.polls = 0
        self.done = False
        self.response = None


class State:
    """Everything the emulator knows; every access holds self.lock."""

    def __init__(self, cfg, admin_material, admin_unique_id, admin_key_id):
        self.lock = threading.RLock()
        self.cfg = cfg
        self.project = Project(cfg.project, cfg.project_number, cfg.project_name)
        self.services = {s: "DISABLED" for s in SERVICE_CATALOG}
        for s in cfg.enabled:
            self.services[s] = "ENABLED"
        self.enable_lag_left = {}
        self.enable_pattern_left = {}
        self.operations = {}
        self.accounts = {}  # email -> ServiceAccount
        self.roles = {}  # role id -> Role
        self.org_disable_key_creation = False
        self.concurrent_write_next = False
        self.predefined = dict(PREDEFINED_ROLES)
        admin = ServiceAccount(self.project, cfg.admin_account, "Bootstrap admin",
                               "The identity the agent starts with", unique_id=admin_unique_id)
        key = Key(admin, "USER_MANAGED", admin_material)
        key.key_id = admin_key_id
        admin.keys[key.key_id] = key
        self.accounts[admin.email] = admin
        self.admin = admin
        self.policy = Policy([
            {"role": "roles/owner", "members": ["serviceAccount:" + admin.email,
                                                "user:owner@example.com"]},
            {"role": "roles/editor", "members": ["user:dev@example.com"]},
            {"role": "roles/viewer", "members": ["user:temp-auditor@example.com"],
             "condition": {"title": "until-2030", "description": "temporary audit access",
                           "expression": "request.time < timestamp(\"2030-01-01T00:00:00Z\")"}},
        ])

    # -- lookups -------------------------------------------------------------------------------
    def project_matches(self, p):
        return p in (self.project.project_id, self.project.number)

    def find_sa(self, ident):
        sa = self.accounts.get(ident)
        if sa is not None:
            return sa
        for sa in self.accounts.values():
            if sa.unique_id == ident:
                return sa
        return None

    def find_key(self, kid):
        for sa in self.accounts.values():
            k = sa.keys.get(kid)
            if k is not None:
                return k
        return None

    def role(self, role_id):
        r = self.roles.get(role_id)
        if r is not None and r.deleted_at is not None and \
                time.time() - r.deleted_at >= PURGE_DAYS * DAY:
            del self.roles[role_id]  # purged: the id is free again
            return None
        return r

    # -- drift, used by the control endpoints and by IAM -----------------------------------------
    def delete_sa(self, sa):
        del self.accounts[sa.email]
        old = "serviceAccount:" + sa.email
        new = "deleted:serviceAccount:%s?uid=%s" % (sa.email, sa.unique_id)
        for pol in [self.policy] + [a.policy for a in self.accounts.values()]:
            changed = False
            for key, members in pol.bindings.items():
                if old in members:
                    members.discard(old)
                    members.add(new)
                    changed = True
            if changed:
                pol.etag = new_etag()


# ==============================================================================================
# the validator subprocess

class Validator:
    def __init__(self, python, verbose=False):
        self.lock = threading.Lock()
        self.proc = None
        self.error = None
        self.seq = 0
        env = dict(os.environ)
        env["PYTHONPATH"] = "%s/lib:%s/lib/third_party" % (GCLOUD_SDK, GCLOUD_SDK)
        env.pop("PYTHONHOME", None)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        try:
            self.proc = subprocess.Popen([python, os.path.join(EMU_DIR, "gcp_model.py")],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=None if verbose else subprocess.DEVNULL,
                                         env=env, text=True, bufsize=1)
            line = self.proc.stdout.readline()
            hello = json.loads(line) if line else {"ready": False, "error": "no output"}
            if not hello.get("ready"):
                self.error = hello.get("error") or "validator not ready"
                self.stop()
            else:
                self.methods = hello.get("methods")
        except (OSError, ValueError) as exc:
            self.error = "%s: %s" % (type(exc).__name__, exc)
            self.proc = None

    @property
    def ok(self):
        return self.proc is not None and self.proc.poll() is None

    def check(self, api, method, path, query, body):
        with self.lock:
            if not self.ok:
                return None
            self.seq += 1
            req = {"id": self.seq, "api": api, "method": method, "path": path,
                   "query": query, "body": body}
            try:
                self.proc.stdin.write(json.dumps(req) + "\n")
                self.proc.stdin.flush()
                line = self.proc.stdout.readline()
                return json.loads(line) if line else None
            except (OSError, ValueError):
                return None

    def stop(self):
        if self.proc is not None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=3)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
            self.proc = None


def find_bundled_python():
    cand = os.path.join(GCLOUD_SDK, "platform", "bundledpythonunix", "bin", "python3")
    return cand if os.access(cand, os.X_OK) else None


# ==============================================================================================
# policy checks shared by CRM and the SA policy

def parse_policy_request(body, current, state, resource_roles, resource_label):
    """Validates setIamPolicy's body against the current Policy; returns the new Policy
    (not yet stored). Raises ApiError like Google."""
    pol = body.get("policy")
    if not isinstance(pol, dict):
        raise invalid("Request contains an invalid argument.", "policy")
    mask = split_mask(body.get("updateMask")) or {"bindings", "etag"}
    etag = pol.get("etag")
    version = pol.get("version") or 0
    try:
        version = int(version)
    except (TypeError, ValueError):
        raise invalid("Invalid policy version: %r" % version, "policy.version")
    if version not in (0, 1, 3):
        raise invalid("Invalid policy version: %d. Valid versions are 0, 1 and 3. For more "
                      "information, please refer to %s" % (version, VERSIONS_URL),
                      "policy.version")
    if etag and not etag_eq(etag, current.etag):
        raise ApiError("ABORTED", CONCURRENT_MSG)
    if etag and version < 3 and current.version() == 3:
        raise invalid("Specified policy version (%d) cannot be less than the existing policy "
                      "version (3). For more information, please refer to %s"
                      % (version, VERSIONS_URL), "policy.version")
    new = Policy(etag=new_etag())
    new.audit_configs = copy.deepcopy(current.audit_configs)
    if "bindings" not in mask:
        new.bindings = {k: set(v) for k, v in current.bindings.items()}
    else:
        existing = current.members()
        for i, b in enumerate(pol.get("bindings") or []):
            role = b.get("role") or ""
            members = b.get("members") or []
            cond = b.get("condition")
            where = "policy.bindings[%d]" % i
            if not role:
                raise invalid("Role must be specified.", where + ".role")
            if not members:
                raise invalid("Binding for role %s has no members. Bindings with no members "
                              "are not allowed." % role, where + ".members")
            if cond is not None:
                if version < 3:
                    raise invalid("Conditions are only supported in policies of version 3; "
                                  "the request's policy version is %d. For more information, "
                                  "please refer to %s" % (version, VERSIONS_URL),
                                  where + ".condition")
                if not cond.get("expression") or not cond.get("title"):
                    raise invalid("Condition of the binding for role %s needs a title and an "
                                  "expression." % role, where + ".condition")
            check_role(state, role, resource_roles, resource_label)
            for m in members:
                check_member(state, m, m not in existing)
            new.add(role, members, cond)
    if "auditConfigs" in mask:
        new.audit_configs = copy.deepcopy(pol.get("auditConfigs") or [])
    return new


def check_role(state, role, resource_roles, resource_label):
    m = re.fullmatch(r"projects/([^/]+)/roles/([^/]+)", role)
    if m:
        r = state.role(m.group(2)) if state.project_matches(m.group(1)) else None
        if r is None:
            raise invalid("Role (%s) does not exist in the resource's hierarchy." % role)
        return
    if role.startswith("roles/") and role in state.predefined and \
            (resource_roles is None or role in resource_roles):
        return
    if role.startswith("organizations/"):
        raise invalid("Role (%s) does not exist in the resource's hierarchy." % role)
    raise invalid("Role %s is not supported for this resource." % role)


def check_member(state, member, is_new):
    if member in ("allUsers", "allAuthenticatedUsers"):
        raise invalid("Request contains an invalid argument.")
    kind, _, rest = member.partition(":")
    if kind == "deleted":
        if not re.fullmatch(r"(user|group|serviceAccount):[^?]+\?uid=\d+", rest):
            raise invalid("Invalid member: %s" % member)
        return
    if kind in ("user", "group"):
        if not EMAIL_RE.match(rest):
            raise invalid("Invalid member: %s" % member)
        return
    if kind == "domain":
        if not re.fullmatch(r"[A-Za-z0-9.-]+\.[A-Za-z]{2,}", rest):
            raise invalid("Invalid member: %s" % member)
        return
    if kind in ("principal", "principalSet"):
        if not rest.startswith("//iam.googleapis.com/"):
            raise invalid("Invalid member: %s" % member)
        return
    if kind == "serviceAccount":
        wi = re.fullmatch(r"([a-z][-a-z0-9.:]*)\.svc\.id\.goog\[([^/\]]+)/([^/\]]+)\]", rest)
        if wi:
            return  # GKE Workload Identity member
        if not EMAIL_RE.match(rest):
            raise invalid("Invalid member: %s" % member)
        suffix = "@%s.iam.gserviceaccount.com" % state.project.project_id
        if rest.endswith(suffix) and is_new:
            sa = state.accounts.get(rest)
            if sa is None:
                raise invalid("Service account %s does not exist." % rest)
            if sa.invisible_for > 0:
                sa.invisible_for -= 1  # eventual consistency: not visible to IAM policies yet
                raise invalid("Service account %s does not exist." % rest)
        return
    raise invalid("Invalid member: %s" % member)


def requested_version(value, where):
    if value in (None, ""):
        return 0
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise invalid("Invalid requested policy version: %s" % value, where)
    if v not in (0, 1, 3):
        raise invalid("Invalid requested policy version: %d. Valid versions are 0, 1 and 3. "
                      "For more information, please refer to %s" % (v, VERSIONS_URL), where)
    return v


# ==============================================================================================
# APIs. Each route: (HTTP verb, path regex after the API prefix, method id, handler).
# Handlers run with the state lock held and return (http status, body).

class Ctx:
    def __init__(self, emu, verb, path, query, body, principal):
        self.emu = emu
        self.state = emu.state
        self.verb = verb
        self.path = path
        self.query = query
        self.body = body
        self.principal = principal

    def q(self, name, default=None):
        v = self.query.get(name)
        return v[-1] if v else default


def page(items, ctx, default_size, max_size, key, from_body=False):
    src = ctx.body if from_body else {"pageSize": ctx.q("pageSize"),
                                      "pageToken": ctx.q("pageToken")}
    try:
        size = int(src.get("pageSize") or 0)
    except (TypeError, ValueError):
        size = 0
    size = default_size if size <= 0 else min(size, max_size)
    token = src.get("pageToken")
    start = 0
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode() + b"==").decode())
        except (ValueError, UnicodeDecodeError):
            raise invalid("The page token is invalid.", "pageToken")
    chunk = items[start:start + size]
    out = {key: chunk} if chunk else {}
    if start + size < len(items):
        out["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()) \
            .decode().rstrip("=")
    return out


class IamApi:
    service = "iam.googleapis.com"

    def __init__(self):
        P = r"projects/([^/:]+)"
        SA = P + r"/serviceAccounts/([^/:]+)"
        R = P + r"/roles/([^/:]+)"
        m = "iam.projects.serviceAccounts."
        self.routes = [
            ("POST", P + r"/serviceAccounts", m + "create", self.sa_create),
            ("GET", P + r"/serviceAccounts", m + "list", self.sa_list),
            ("GET", SA, m + "get", self.sa_get),
            ("DELETE", SA, m + "delete", self.sa_delete),
            ("PATCH", SA, m + "patch", self.sa_patch),
            ("PUT", SA, m + "update", self.sa_update),
            ("POST", SA + ":disable", m + "disable", self.sa_disable),
            ("POST", SA + ":enable", m + "enable", self.sa_enable),
            ("POST", SA + ":getIamPolicy", m + "getIamPolicy", self.sa_get_policy),
            ("POST", SA + ":setIamPolicy", m + "setIamPolicy", self.sa_set_policy),
            ("POST", SA + r"/keys", m + "keys.create", self.key_create),
            ("GET", SA + r"/keys", m + "keys.list", self.key_list),
            ("GET", SA + r"/keys/([^/:]+)", m + "keys.get", self.key_get),
            ("DELETE", SA + r"/keys/([^/:]+)", m + "keys.delete", self.key_delete),
            ("POST", P + r"/roles", "iam.projects.roles.create", self.role_create),
            ("GET", P + r"/roles", "iam.projects.roles.list", self.role_list),
            ("GET", R, "iam.projects.roles.get", self.role_get),
            ("PATCH", R, "iam.projects.roles.patch", self.role_patch),
            ("DELETE", R, "iam.projects.roles.delete", self.role_delete),
            ("POST", R + ":undelete", "iam.projects.roles.undelete", self.role_undelete),
            ("GET", r"roles/([^/:]+)", "iam.roles.get", self.predefined_get),
            ("POST", r"permissions:queryTestablePermissions",
             "iam.permissions.queryTestablePermissions", self.testable_permissions),
        ]

    # -- service accounts ----------------------------------------------------------------------
    def _project(self, ctx, p, permission):
        if not ctx.state.project_matches(p):
            raise permission_denied(permission, "projects/%s" % p)

    def _sa(self, ctx, p, ident, permission):
        st = ctx.state
        if p == "-":
            sa = st.find_sa(ident)
            if sa is None:
                raise permission_denied(permission, "projects/-/serviceAccounts/%s" % ident)
            return sa
        self._project(ctx, p, permission)
        sa = st.find_sa(ident)
        if sa is None or not st.project_matches(p):
            raise ApiError("NOT_FOUND", "Unknown service account")
        if permission == "iam.serviceAccounts.get" and sa.get_pattern:
            # eventual consistency, replica by replica: '-' misses, '+' sees it
            seen, sa.get_pattern = sa.get_pattern[0] == "+", sa.get_pattern[1:]
            if not seen:
                raise ApiError("NOT_FOUND", "Unknown service account")
        return sa

    def sa_create(self, ctx, p):
        self._project(ctx, p, "iam.serviceAccounts.create")
        body = ctx.body
        aid = body.get("accountId")
        if not aid:
            raise invalid("Account ID is required.", "account_id")
        if not (6 <= len(aid) <= 30) or not ACCOUNT_ID_RE.match(aid):
            raise invalid("Invalid ID %s. Service account IDs must be between 6 and 30 "
                          "characters and match the regular expression "
                          "[a-z]([-a-z0-9]*[a-z0-9])." % aid, "account_id")
        sa_in = body.get("serviceAccount") or {}
        dn = sa_in.get("displayName") or ""
        desc = sa_in.get("description") or ""
        if len(dn.encode()) > 100:
            raise invalid("Display name must be at most 100 characters.",
                          "service_account.display_name")
        if len(desc.encode()) > 256:
            raise invalid("Description must be at most 256 characters.",
                          "service_account.description")
        st = ctx.state
        email = "%s@%s.iam.gserviceaccount.com" % (aid, st.project.project_id)
        if email in st.accounts:
            raise ApiError("ALREADY_EXISTS", "Service account %s already exists within project "
                           "projects/%s." % (aid, st.project.project_id),
                           [{"@type": "type.googleapis.com/google.rpc.ResourceInfo",
                             "resourceName": "projects/%s/serviceAccounts/%s"
                             % (st.project.project_id, email)}])
        sa = ServiceAccount(st.project, aid, dn, desc)
        sa.invisible_for = ctx.emu.sa_visibility_lag
        sa.get_pattern = ctx.emu.sa_get_pattern
        st.accounts[email] = sa
        return 200, sa.render()

    def sa_list(self, ctx, p):
        self._project(ctx, p, "iam.serviceAccounts.list")
        items = [sa.render() for sa in sorted(ctx.state.accounts.values(),
                                              key=lambda a: a.email)]
        return 200, page(items, ctx, 20, 100, "accounts")

    def sa_get(self, ctx, p, ident):
        return 200, self._sa(ctx, p, ident, "iam.serviceAccounts.get").render()

    def sa_delete(self, ctx, p, ident):
        sa = self._sa(ctx, p, ident, "iam.serviceAccounts.delete")
        ctx.state.delete_sa(sa)
        return 200, {}

    def _apply_sa_fields(self, sa, src, fields):
        for f in fields:
            if f == "displayName":
                v = src.get("displayName") or ""
                if len(v.encode()) > 100:
                    raise invalid("Display name must be at most 100 characters.",
                                  "service_account.display_name")
                sa.display_name = v
            elif f == "description":
                v = src.get("description") or ""
                if len(v.encode()) > 256:
                    raise invalid("Description must be at most 256 characters.",
                                  "service_account.description")
                sa.description = v
            else:
                raise invalid("Invalid update mask: field %s cannot be updated." % f,
                              "update_mask")

    def sa_patch(self, ctx, p, ident):
        sa = self._sa(ctx, p, ident, "iam.serviceAccounts.update")
        mask = split_mask(ctx.body.get("updateMask"))
        if not mask:
            raise invalid("Update mask must be specified.", "update_mask")
        self._apply_sa_fields(sa, ctx.body.get("serviceAccount") or {}, sorted(mask))
        return 200, sa.render()

    def sa_update(self, ctx, p, ident):
        sa = self._sa(ctx, p, ident, "iam.serviceAccounts.update")
        self._apply_sa_fields(sa, ctx.body, ["displayName", "description"])
        return 200, sa.render()

    def sa_disable(self, ctx, p, ident):
        self._sa(ctx, p, ident, "iam.serviceAccounts.disable").disabled = True
        return 200, {}

    def sa_enable(self, ctx, p, ident):
        self._sa(ctx, p, ident, "iam.serviceAccounts.enable").disabled = False
        return 200, {}

    def sa_get_policy(self, ctx, p, ident):
        sa = self._sa(ctx, p, ident, "iam.serviceAccounts.getIamPolicy")
        v = requested_version(ctx.q("options.requestedPolicyVersion"),
                              "options.requested_policy_version")
        return 200, sa.policy.render(v)

    def sa_set_policy(self, ctx, p, ident):
        sa = self._sa(ctx, p, ident, "iam.serviceAccounts.setIamPolicy")
        sa.policy = parse_policy_request(ctx.body, sa.policy, ctx.state, SA_RESOURCE_ROLES,
                                         sa.name())
        return 200, sa.policy.render(3)

    # -- keys ----------------------------------------------------------------------------------
    def key_create(self, ctx, p, ident):
        sa = self._sa(ctx, p, ident, "iam.serviceAccountKeys.create")
        st = ctx.state
        ktype = ctx.body.get("privateKeyType") or "TYPE_GOOGLE_CREDENTIALS_FILE"
        alg = ctx.body.get("keyAlgorithm") or "KEY_ALG_RSA_2048"
        if ktype != "TYPE_GOOGLE_CREDENTIALS_FILE":
            raise invalid("The emulator makes TYPE_GOOGLE_CREDENTIALS_FILE keys only (asked "
                          "for %s)." % ktype, "private_key_type")
        if alg != "KEY_ALG_RSA_2048":
            raise invalid("Key algorithm %s is not supported." % alg, "key_algorithm")
        if st.org_disable_key_creation:
            subject = "%s?configvalue=%s" % (sa.name(), urllib.parse.quote(sa.email, safe=""))
            raise ApiError("FAILED_PRECONDITION",
                           "Key creation is not allowed on this service account.",
                           [{"@type": "type.googleapis.com/google.rpc.PreconditionFailure",
                             "violations": [{
                                 "type": "constraints/iam.disableServiceAccountKeyCreation",
                                 "subject": subject,
                                 "description": "Key creation is not allowed on this "
                                                "service account."}]}])
        user_keys = [k for k in sa.keys.values() if k.key_type == "USER_MANAGED"]
        if len(user_keys) >= MAX_USER_KEYS:
            raise ApiError("FAILED_PRECONDITION", "Precondition check failed.")
        key, keyfile = ctx.emu.make_user_key(sa)
        d = key.render()
        d["privateKeyType"] = ktype
        d["privateKeyData"] = base64.b64encode(keyfile.encode()).decode()
        order = ["name", "privateKeyType", "privateKeyData", "validAfterTime", "validBeforeTime",
                 "keyAlgorithm", "keyOrigin", "keyType"]
        return 200, {k: d[k] for k in order if k in d}

    def key_list(self, ctx, p, ident):
        sa = self._sa(ctx, p, ident, "iam.serviceAccountKeys.list")
        types = ctx.query.get("keyTypes") or []
        for t in types:
            if t not in ("USER_MANAGED", "SYSTEM_MANAGED", "KEY_TYPE_UNSPECIFIED"):
                raise invalid("Invalid value at 'key_types', \"%s\"" % t, "key_types")
        want = {t for t in types if t != "KEY_TYPE_UNSPECIFIED"}
        keys = [k.render() for k in sorted(sa.keys.values(), key=lambda k: k.created)
                if not want or k.key_type in want]
        return 200, {"keys": keys} if keys else {}

    def _key(self, ctx, p, ident, kid, permission):
        sa = self._sa(ctx, p, ident, permission)
        k = sa.keys.get(kid)
        if k is None:
            raise ApiError("NOT_FOUND", "Service account key %s does not exist."
                           % ("%s/keys/%s" % (sa.name(), kid)))
        return sa, k

    def key_get(self, ctx, p, ident, kid):
        _sa, k = self._key(ctx, p, ident, kid, "iam.serviceAccountKeys.get")
        pkt = ctx.q("publicKeyType")
        if pkt not in (None, "TYPE_NONE", "TYPE_X509_PEM_FILE", "TYPE_RAW_PUBLIC_KEY"):
            raise invalid("Invalid value at 'public_key_type', \"%s\"" % pkt, "public_key_type")
        return 200, k.render(None if pkt in (None, "TYPE_NONE") else pkt)

    def key_delete(self, ctx, p, ident, kid):
        sa, k = self._key(ctx, p, ident, kid, "iam.serviceAccountKeys.delete")
        if k.key_type != "USER_MANAGED":
            raise invalid("System-managed keys cannot be deleted.")
        del sa.keys[kid]
        return 200, {}

    # -- custom roles --------------------------------------------------------------------------
    def _check_role_fields(self, title, description, perms, stage):
        if title is not None and len(title.encode()) > 100:
            raise invalid("The title of the role must be at most 100 bytes.", "role.title")
        if description is not None and len(description.encode()) > 300:
            raise invalid("The description of the role must be at most 300 bytes.",
                          "role.description")
        if stage is not None and stage not in STAGES:
            raise invalid("Invalid value at 'role.stage', \"%s\"" % stage, "role.stage")
        if perms is not None:
            if len(perms) > 3000:
                raise invalid("A role can have at most 3000 permissions.",
                              "role.included_permissions")
            for perm in perms:
                if not isinstance(perm, str) or not PERMISSION_RE.match(perm) or \
                        perm in ORG_ONLY_PERMISSIONS:
                    raise invalid("Permission %s is not valid." % perm,
                                  "role.included_permissions")

    def _role(self, ctx, p, rid, permission):
        if not ctx.state.project_matches(p):
            raise permission_denied(permission, "projects/%s" % p)
        r = ctx.state.role(rid)
        if r is None:
            raise ApiError("NOT_FOUND", "The role named projects/%s/roles/%s was not found."
                           % (p, rid))
        return r

    def role_create(self, ctx, p):
        st = ctx.state
        if not st.project_matches(p):
            raise permission_denied("iam.roles.create", "projects/%s" % p)
        rid = ctx.body.get("roleId")
        role_in = ctx.body.get("role") or {}
        if not rid:
            raise invalid("The role_id of the role is required.", "role_id")
        if not ROLE_ID_RE.match(rid):
            raise invalid("The role_id (%s) is invalid. It must be 3 to 64 characters of "
                          "letters, digits, underscores and periods." % rid, "role_id")
        title = role_in.get("title")
        desc = role_in.get("description")
        perms = role_in.get("includedPermissions") or []
        stage = role_in.get("stage") or "ALPHA"
        self._check_role_fields(title, desc, perms, stage)
        existing = st.role(rid)
        if existing is not None:
            if existing.deleted_at is not None:
                raise ApiError("FAILED_PRECONDITION", "You can't create a role_id (%s) which "
                               "has been marked for deletion." % rid)
            raise ApiError("ALREADY_EXISTS", "A role named %s in projects/%s already exists."
                           % (rid, st.project.project_id))
        if len(st.roles) >= 300:
            raise ApiError("FAILED_PRECONDITION", "The maximum number of custom roles (300) "
                           "in projects/%s has been reached." % st.project.project_id)
        r = Role(st.project, rid, title or "", desc or "", perms, stage)
        st.roles[rid] = r
        return 200, r.render()

    def role_list(self, ctx, p):
        st = ctx.state
        if not st.project_matches(p):
            raise permission_denied("iam.roles.list", "projects/%s" % p)
        view = ctx.q("view") or "BASIC"
        show_deleted = (ctx.q("showDeleted") or "false") in ("true", "1")
        items = []
        for rid in sorted(list(st.roles)):
            r = st.role(rid)
            if r is None or (r.deleted_at is not None and not show_deleted):
                continue
            items.append(r.render(view))
        return 200, page(items, ctx, 300, 1000, "roles")

    def role_get(self, ctx, p, rid):
        return 200, self._role(ctx, p, rid, "iam.roles.get").render()

    def role_patch(self, ctx, p, rid):
        r = self._role(ctx, p, rid, "iam.roles.update")
        body = ctx.body
        if r.deleted_at is not None:
            raise ApiError("FAILED_PRECONDITION", "You can't update a role_id (%s) which has "
                           "been marked for deletion." % rid)
        if body.get("etag") and not etag_eq(body["etag"], r.etag):
            raise ApiError("ABORTED", "The etag of the role (%s) does not match the etag in "
                           "the request. Get the role again and retry the update." % rid)
        mask = split_mask(ctx.q("updateMask")) or {"title", "description",
                                                    "includedPermissions", "stage"}
        for f in mask:
            if f not in ("title", "description", "includedPermissions", "stage"):
                raise invalid("Invalid update mask: field %s cannot be updated." % f,
                              "update_mask")
        title = body.get("title") if "title" in mask else None
        desc = body.get("description") if "description" in mask else None
        perms = (body.get("includedPermissions") or []) if "includedPermissions" in mask \
            else None
        stage = (body.get("stage") or "ALPHA") if "stage" in mask else None
        self._check_role_fields(title, desc, perms, stage)
        if "title" in mask:
            r.title = title or ""
        if "description" in mask:
            r.description = desc or ""
        if perms is not None:
            r.permissions = sorted(set(perms))
        if stage is not None:
            r.stage = stage
        r.etag = new_etag()
        return 200, r.render()

    def role_delete(self, ctx, p, rid):
        r = self._role(ctx, p, rid, "iam.roles.delete")
        if r.deleted_at is not None:
            raise ApiError("FAILED_PRECONDITION", "You can't delete a role_id (%s) which has "
                           "already been marked for deletion." % rid)
        etag = ctx.q("etag")
        if etag and not etag_eq(etag, r.etag):
            raise ApiError("ABORTED", "The etag of the role (%s) does not match the etag in "
                           "the request. Get the role again and retry the update." % rid)
        r.deleted_at = time.time()
        r.etag = new_etag()
        return 200, r.render()

    def role_undelete(self, ctx, p, rid):
        r = self._role(ctx, p, rid, "iam.roles.undelete")
        if r.deleted_at is None:
            raise ApiError("FAILED_PRECONDITION", "You can't undelete a role_id (%s) which is "
                           "not deleted." % rid)
        if time.time() - r.deleted_at >= UNDELETE_DAYS * DAY:
            raise ApiError("FAILED_PRECONDITION", "You can't undelete a role_id (%s) which was "
                           "deleted more than %d days ago." % (rid, UNDELETE_DAYS))
        etag = ctx.body.get("etag")
        if etag and not etag_eq(etag, r.etag):
            raise ApiError("ABORTED", "The etag of the role (%s) does not match the etag in "
                           "the request. Get the role again and retry the update." % rid)
        r.deleted_at = None
        r.etag = new_etag()
        return 200, r.render()

    def testable_permissions(self, ctx):
        res = ctx.body.get("fullResourceName") or ""
        m = re.fullmatch(r"//[^/]+(?:/[^/]+)*/projects/([^/]+)", res)
        if not m or not ctx.state.project_matches(m.group(1)):
            raise invalid("Invalid full resource name: %s" % res, "full_resource_name")
        items = []
        for perm in PERMISSION_CATALOG + sorted(ORG_ONLY_PERMISSIONS):
            d = {"name": perm, "title": perm, "stage": "GA"}
            if perm in ORG_ONLY_PERMISSIONS:
                d["customRolesSupportLevel"] = "NOT_SUPPORTED"
            items.append(d)
        return 200, page(items, ctx, 100, 1000, "permissions", from_body=True)

    def predefined_get(self, ctx, rid):
        name = "roles/" + rid
        if name not in ctx.state.predefined:
            raise ApiError("NOT_FOUND", "The role named %s was not found." % name)
        title, perms = ctx.state.predefined[name]
        return 200, {"name": name, "title": title, "description": title,
                     "includedPermissions": sorted(perms), "stage": "GA", "etag": "AA=="}


class ServiceUsageApi:
    service = "serviceusage.googleapis.com"

    def __init__(self):
        P = r"(projects)/([^/:]+)"
        self.routes = [
            ("POST", P + r"/services:batchEnable", "serviceusage.services.batchEnable",
             self.batch_enable),
            ("GET", P + r"/services:batchGet", "serviceusage.services.batchGet",
             self.batch_get),
            ("POST", P + r"/services/([^/:]+):enable", "serviceusage.services.enable",
             self.enable),
            ("POST", P + r"/services/([^/:]+):disable", "serviceusage.services.disable",
             self.disable),
            ("GET", P + r"/services/([^/:]+)", "serviceusage.services.get", self.get),
            ("GET", P + r"/services", "serviceusage.services.list", self.list),
            ("GET", r"operations/([^/:]+)", "serviceusage.operations.get", self.op_get),
        ]

    def _project(self, ctx, p, permission):
        if not ctx.state.project_matches(p):
            raise ApiError("PERMISSION_DENIED", "Permission denied to %s [projects/%s]."
                           % (permission, p),
                           [error_info("AUTH_PERMISSION_DENIED", "serviceusage.googleapis.com",
                                       {"permission": permission})])

    def _unknown(self, names):
        return ApiError("PERMISSION_DENIED", "Not found or permission denied for service(s): "
                        "%s." % ", ".join(names),
                        [error_info("SERVICE_CONFIG_NOT_FOUND_OR_PERMISSION_DENIED",
                                    "serviceusage.googleapis.com",
                                    {"services": ",".join(names)})])

    def render_service(self, st, name):
        num = st.project.number
        return {"name": "projects/%s/services/%s" % (num, name),
                "config": {"name": name, "title": SERVICE_CATALOG[name],
                           "documentation": {}, "quota": {}, "authentication": {},
                           "usage": {"requirements": ["serviceusage.googleapis.com/tos/cloud"]},
                           "monitoring": {}},
                "state": st.services[name], "parent": "projects/%s" % num}

    def _operation(self, ctx, action, services):
        st = ctx.state
        num = st.project.number
        tag = "acat" if action == "batchEnable" else "acf"
        name = "operations/%s.p2-%s-%s" % (tag, num, uuid.uuid4())
        op = Operation(name, st.project, action, services, ctx.emu.op_polls)
        st.operations[name] = op
        if op.polls_needed <= 0:
            self._complete(ctx, op)
        return 200, self.render_op(ctx, op)

    def _complete(self, ctx, op):
        st = ctx.state
        for s in op.services:
            new_state = "DISABLED" if op.action == "disable" else "ENABLED"
            if st.services[s] != new_state and new_state == "ENABLED":
                st.enable_lag_left[s] = ctx.emu.enable_lag
                st.enable_pattern_left[s] = ctx.emu.enable_pattern
            st.services[s] = new_state
        rendered = [self.render_service(st, s) for s in op.services]
        if op.action == "batchEnable":
            op.response = {"@type": "type.googleapis.com/google.api.serviceusage.v1."
                                    "BatchEnableServicesResponse", "services": rendered}
        elif op.action == "enable":
            op.response = {"@type": "type.googleapis.com/google.api.serviceusage.v1."
                                    "EnableServiceResponse", "service": rendered[0]}
        else:
            op.response = {"@type": "type.googleapis.com/google.api.serviceusage.v1."
                                    "DisableServiceResponse", "service": rendered[0]}
        op.done = True

    def render_op(self, ctx, op):
        d = {"name": op.name}
        if op.done:
            d["metadata"] = {"@type": "type.googleapis.com/google.api.serviceusage.v1."
                                      "OperationMetadata"}
            d["done"] = True
            d["response"] = op.response
        else:
            d["metadata"] = {"@type": "type.googleapis.com/google.api.serviceusage.v1."
                                      "OperationMetadata",
                             "resourceNames": ["services/%s/projectSettings/%s"
                                               % (s, ctx.state.project.number)
                                               for s in op.services]}
        return d

    def _noop(self, ctx, action, services):
        st = ctx.state
        rendered = [self.render_service(st, s) for s in services]
        if action == "batchEnable":
            resp = {"@type": "type.googleapis.com/google.api.serviceusage.v1."
                             "BatchEnableServicesResponse", "services": rendered}
        elif action == "enable":
            resp = {"@type": "type.googleapis.com/google.api.serviceusage.v1."
                             "EnableServiceResponse", "service": rendered[0]}
        else:
            resp = {"@type": "type.googleapis.com/google.api.serviceusage.v1."
                             "DisableServiceResponse", "service": rendered[0]}
        return 200, {"name": "operations/noop.DONE_OPERATION", "done": True, "response": resp}

    def batch_enable(self, ctx, _coll, p):
        self._project(ctx, p, "serviceusage.services.enable")
        ids = ctx.body.get("serviceIds") or []
        if not ids:
            raise invalid("No service ids were specified.", "service_ids")
        if len(ids) > 20:
            raise invalid("Too many services in a batch request: %d. The maximum is 20."
                          % len(ids), "service_ids")
        unknown = [s for s in ids if s not in SERVICE_CATALOG]
        if unknown:
            raise self._unknown(unknown)
        ids = list(dict.fromkeys(ids))
        st = ctx.state
        if all(st.services[s] == "ENABLED" for s in ids):
            return self._noop(ctx, "batchEnable", ids)
        return self._operation(ctx, "batchEnable", ids)

    def enable(self, ctx, _coll, p, svc):
        self._project(ctx, p, "serviceusage.services.enable")
        if svc not in SERVICE_CATALOG:
            raise self._unknown([svc])
        if ctx.state.services[svc] == "ENABLED":
            return self._noop(ctx, "enable", [svc])
        return self._operation(ctx, "enable", [svc])

    def disable(self, ctx, _coll, p, svc):
        self._project(ctx, p, "serviceusage.services.disable")
        if svc not in SERVICE_CATALOG:
            raise self._unknown([svc])
        if ctx.state.services[svc] == "DISABLED":
            return self._noop(ctx, "disable", [svc])
        return self._operation(ctx, "disable", [svc])

    def get(self, ctx, _coll, p, svc):
        self._project(ctx, p, "serviceusage.services.get")
        if svc not in SERVICE_CATALOG:
            raise self._unknown([svc])
        return 200, self.render_service(ctx.state, svc)

    def batch_get(self, ctx, _coll, p):
        self._project(ctx, p, "serviceusage.services.get")
        names = ctx.query.get("names") or []
        if not names:
            raise invalid("No service names were specified.", "names")
        if len(names) > 30:
            raise invalid("Too many services in a batch request: %d. The maximum is 30."
                          % len(names), "names")
        out, unknown = [], []
        for n in names:
            m = re.fullmatch(r"projects/([^/]+)/services/([^/]+)", n)
            if not m or not ctx.state.project_matches(m.group(1)):
                raise invalid("Invalid service name: %s" % n, "names")
            if m.group(2) not in SERVICE_CATALOG:
                unknown.append(m.group(2))
            else:
                out.append(self.render_service(ctx.state, m.group(2)))
        if unknown:
            raise self._unknown(unknown)
        return 200, {"services": out}

    def list(self, ctx, _coll, p):
        self._project(ctx, p, "serviceusage.services.list")
        flt = (ctx.q("filter") or "").strip()
        want = None
        if flt:
            m = re.fullmatch(r"state\s*[:=]\s*(ENABLED|DISABLED)", flt)
            if not m:
                raise invalid("Invalid filter: %s" % flt, "filter")
            want = m.group(1)
        st = ctx.state
        items = [self.render_service(st, s) for s in sorted(SERVICE_CATALOG)
                 if want is None or st.services[s] == want]
        return 200, page(items, ctx, 50, 200, "services")

    def op_get(self, ctx, oid):
        name = "operations/" + oid
        if name == "operations/noop.DONE_OPERATION":
            return 200, {"name": name, "done": True}
        op = ctx.state.operations.get(name)
        if op is None:
            raise ApiError("NOT_FOUND", "Operation %s not found." % name)
        if not op.done:
            op.polls += 1
            if op.polls >= op.polls_needed:
                self._complete(ctx, op)
        return 200, self.render_op(ctx, op)


class CrmApi:
    service = "cloudresourcemanager.googleapis.com"

    def __init__(self):
        self.routes = [
            ("GET", r"projects/([^/:]+)", "cloudresourcemanager.projects.get", self.get),
            ("POST", r"projects/([^/:]+):getIamPolicy",
             "cloudresourcemanager.projects.getIamPolicy", self.get_policy),
            ("POST", r"projects/([^/:]+):setIamPolicy",
             "cloudresourcemanager.projects.setIamPolicy", self.set_policy),
        ]

    def _project(self, ctx, p):
        if not ctx.state.project_matches(p):
            raise ApiError("PERMISSION_DENIED", "The caller does not have permission")

    def get(self, ctx, p):
        self._project(ctx, p)
        return 200, ctx.state.project.render()

    def get_policy(self, ctx, p):
        self._project(ctx, p)
        opts = ctx.body.get("options") or {}
        v = requested_version(opts.get("requestedPolicyVersion"),
                              "options.requested_policy_version")
        return 200, ctx.state.policy.render(v)

    def set_policy(self, ctx, p):
        self._project(ctx, p)
        st = ctx.state
        if st.concurrent_write_next:
            # another party's read-modify-write lands just before this one
            st.concurrent_write_next = False
            st.policy.add("roles/viewer", ["user:concurrent-writer@example.com"])
            st.policy.etag = new_etag()
        st.policy = parse_policy_request(ctx.body, st.policy, st, None,
                                         "projects/" + st.project.project_id)
        return 200, st.policy.render(3)


# ==============================================================================================
# the emulator: tokens, keys, faults, log

class Emulator:
    def __init__(self, args):
        self.args = args
        self.state_dir = args.state_dir
        self.api_port = None
        self.md_port = None
        self.op_polls = args.op_polls
        self.enable_lag = args.enable_lag
        self.sa_visibility_lag = args.sa_visibility_lag
        self.sa_get_pattern = ""
        self.enable_pattern = ""
        self.token_ttl = args.token_ttl
        self.delay_ms = args.delay_ms
        self.verbose = args.verbose
        self.log_lock = threading.Lock()
        self.log = []
        self.seq = 0
        self.faults = []
        self.frozen = False      # a freeze-hang holds every later API request
        self.release_gen = 0     # bumped by control "release": every hold ends
        self.tokens = {}  # access token -> {"email", "exp", "scopes", "source"}
        self.apis = {"iam": IamApi(), "serviceusage": ServiceUsageApi(), "crm": CrmApi()}
        self.admin_material = new_key_material()
        self.admin_unique_id = "1" + digits(20)
        self.admin_key_id = os.urandom(20).hex()
        self.state = State(args, self.admin_material, self.admin_unique_id, self.admin_key_id)
        self.gcloud_token = "ya29.c.emu-gcloud-" + b64url(os.urandom(32))
        self.tokens[self.gcloud_token] = {"email": self.state.admin.email,
                                          "exp": time.time() + 7 * DAY,
                                          "scopes": [CLOUD_PLATFORM], "source": "static"}
        self.validator = None
        if args.validator != "off":
            py = find_bundled_python() if args.validator == "auto" else args.validator
            if py:
                self.validator = Validator(py, verbose=args.verbose)
                if not self.validator.ok:
                    sys.stderr.write("gcp_api: validator unavailable: %s\n"
                                     % self.validator.error)
                    self.validator = None
            if self.validator is None and args.require_validator:
                raise SystemExit("gcp_api: --require-validator and no validator (gcloud's "
                                 "bundled python under %s)" % GCLOUD_SDK)

    @property
    def base_url(self):
        return "http://127.0.0.1:%d" % self.api_port

    @property
    def token_url(self):
        return self.base_url + "/token"

    def key_file(self, sa, key, material):
        ISSUED_SECRETS.append(material.pem())
        doc = {
            "type": "service_account",
            "project_id": sa.project.project_id,
            "private_key_id": key.key_id,
            "private_key": material.pem(),
            "client_email": sa.email,
            "client_id": sa.unique_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_url,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
                                    + urllib.parse.quote(sa.email, safe=""),
            "universe_domain": "googleapis.com",
        }
        return json.dumps(doc, indent=2) + "\n"

    def make_user_key(self, sa):
        material = new_key_material()
        key = Key(sa, "USER_MANAGED", material)
        sa.keys[key.key_id] = key
        return key, self.key_file(sa, key, material)

    def write_files(self):
        admin = self.state.admin
        key = admin.keys[self.admin_key_id]
        write_atomic(os.path.join(self.state_dir, "admin-key.json"),
                     self.key_file(admin, key, self.admin_material), mode=0o600)
        write_atomic(os.path.join(self.state_dir, "gcloud-token"), self.gcloud_token + "\n",
                     mode=0o600)
        write_atomic(os.path.join(self.state_dir, "ports.json"),
                     json.dumps({"api": self.api_port, "metadata": self.md_port}) + "\n")

    def reset(self):
        with self.state.lock:
            self.state = State(self.args, self.admin_material, self.admin_unique_id,
                               self.admin_key_id)
            self.faults = []
            admin = self.state.admin.email
            self.tokens = {t: v for t, v in self.tokens.items() if v["email"] == admin}
        self.release()

    def release(self):
        with self.log_lock:
            self.frozen = False
            self.release_gen += 1

    def issue_token(self, email, scopes, source, ttl=None):
        tok = "ya29.c.emu-" + b64url(os.urandom(48))
        ISSUED_SECRETS.append(tok)
        ttl = int(self.token_ttl if ttl is None else ttl)
        self.tokens[tok] = {"email": email, "exp": time.time() + ttl, "scopes": scopes,
                            "source": source}
        return tok, ttl

    def record(self, entry):
        with self.log_lock:
            self.seq += 1
            entry["seq"] = self.seq
            entry["ts"] = round(time.time(), 3)
            self.log.append(entry)
        if self.verbose:
            sys.stderr.write("gcp_api: %s\n" % json.dumps(
                {k: v for k, v in entry.items() if k != "body"}))

    def take_fault(self, verb, method_id, full_path, mutating=None, holdable=True):
        with self.log_lock:
            for f in self.faults:
                m = f.get("method")
                if m:
                    if m.isupper():
                        if m != verb:
                            continue
                    elif not (method_id or "").endswith(m):
                        continue
                if f.get("path_regex") and not re.search(f["path_regex"], full_path):
                    continue
                if f.get("mutating") is not None and mutating is not None and \
                        bool(f["mutating"]) != bool(mutating):
                    continue
                if f.get("kind") == "hang" and not holdable:
                    continue
                if f.get("skip", 0) > 0:  # ordinal: not this one yet
                    f["skip"] -= 1
                    continue
                f["count"] -= 1
                if f["count"] <= 0:
                    self.faults.remove(f)
                return dict(f)
        return None

    def authenticate(self, header, api_service, method_id):
        md = {"service": api_service, "method": method_id or ""}
        if not header:
            raise ApiError("UNAUTHENTICATED", "Request is missing required authentication "
                           "credential. " + AUTH_HELP,
                           [error_info("CREDENTIALS_MISSING", metadata=md)],
                           {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})
        scheme, _, tok = header.partition(" ")
        info = self.tokens.get(tok.strip()) if scheme.lower() == "bearer" else None
        bad = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                                   'error="invalid_token"'}
        if info is None:
            raise ApiError("UNAUTHENTICATED", "Request had invalid authentication credentials. "
                           + AUTH_HELP, [error_info("ACCESS_TOKEN_TYPE_UNSUPPORTED",
                                                    metadata=md)], bad)
        if info["exp"] <= time.time():
            raise ApiError("UNAUTHENTICATED", "Request had invalid authentication credentials. "
                           + AUTH_HELP, [error_info("ACCESS_TOKEN_EXPIRED", metadata=md)], bad)
        if info["email"] not in self.state.accounts and info["source"] != "static":
            raise ApiError("UNAUTHENTICATED", "Request had invalid authentication credentials. "
                           + AUTH_HELP, [error_info("ACCOUNT_STATE_INVALID", metadata=md)], bad)
        if CLOUD_PLATFORM not in info["scopes"]:
            raise ApiError("PERMISSION_DENIED", "Request had insufficient authentication "
                           "scopes.", [error_info("ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                                                  metadata=md)])
        return info["email"]

    def check_enabled(self, service):
        st = self.state
        num = st.project.number
        title = SERVICE_CATALOG[service]
        url = "https://console.developers.google.com/apis/api/%s/overview?project=%s" % (
            service, num)
        off = st.services.get(service) != "ENABLED"
        if not off and st.enable_lag_left.get(service, 0) > 0:
            st.enable_lag_left[service] -= 1  # enabled, not yet propagated
            off = True
        elif not off and st.enable_pattern_left.get(service):
            # propagating replica by replica: '-' still disabled here, '+' enabled
            pat = st.enable_pattern_left[service]
            off, st.enable_pattern_left[service] = pat[0] == "-", pat[1:]
        if not off:
            return
        msg = ("%s has not been used in project %s before or it is disabled. Enable it by "
               "visiting %s then retry. If you enabled this API recently, wait a few minutes "
               "for the action to propagate to our systems and retry." % (title, num, url))
        raise ApiError("PERMISSION_DENIED", msg, [
            error_info("SERVICE_DISABLED", metadata={
                "service": service, "consumer": "projects/%s" % num, "serviceTitle": title,
                "containerInfo": num, "activationUrl": url}),
            {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
             "message": msg},
            {"@type": "type.googleapis.com/google.rpc.Help", "links": [
                {"description": "Google developers console API activation", "url": url}]},
        ])

    # -- state dump for tests (no secrets) -----------------------------------------------------
    def dump(self):
        st = self.state
        with st.lock:
            now = time.time()
            return {
                "project": st.project.render(),
                "services": dict(sorted(st.services.items())),
                "enable_lag_left": {k: v for k, v in st.enable_lag_left.items() if v},
                "service_accounts": [dict(sa.render(), keys=[
                    dict(k.render(), id=k.key_id) for k in sorted(
                        sa.keys.values(), key=lambda k: k.created)],
                    policy=sa.policy.render(3), invisibleFor=sa.invisible_for)
                    for sa in sorted(st.accounts.values(), key=lambda a: a.email)],
                "roles": [dict(r.render(), deletedDaysAgo=(
                    None if r.deleted_at is None else round((now - r.deleted_at) / DAY, 3)))
                    for _rid, r in sorted(st.roles.items())],
                "policy": st.policy.render(3),
                # bindings whose custom role is deleted: kept, but they grant nothing
                "inactive_bindings": [
                    {"role": role, "members": sorted(ms)}
                    for (role, _c), ms in sorted(st.policy.bindings.items(),
                                                 key=lambda kv: (kv[0][0], kv[0][1] or ""))
                    if role.startswith("projects/") and
                    (st.roles.get(role.rsplit("/", 1)[1]) is None or
                     st.roles[role.rsplit("/", 1)[1]].deleted_at is not None)],
                "operations": [{"name": o.name, "action": o.action, "services": o.services,
                                "done": o.done, "polls": o.polls}
                               for o in st.operations.values()],
                "org_policy": {"iam.disableServiceAccountKeyCreation":
                               st.org_disable_key_creation},
                "admin": st.admin.email,
                "config": {"op_polls": self.op_polls, "enable_lag": self.enable_lag,
                           "sa_visibility_lag": self.sa_visibility_lag,
                           "token_ttl": self.token_ttl, "delay_ms": self.delay_ms,
                           "validating": self.validator is not None},
                "faults": list(self.faults),
            }


# ==============================================================================================
# HTTP

SECRET_PARAMS = ("access_token", "oauth_token", "key")

# Every secret this process handed out (private keys, access tokens), even deleted or expired
# ones: the tests' secret scan looks for each of them in everything a run left behind
# (/_emu/issued_secrets).
ISSUED_SECRETS = []
MUTATING_EXCEPTIONS = (":getIamPolicy", ":batchGet", ":testIamPermissions")
VALIDATOR_API = {"iam": "iam", "serviceusage": "serviceusage", "crm": "cloudresourcemanager"}


class ApiHandler(EmulatorHandler):
    server_version = "ESF"

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_PATCH(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def emu(self):
        return self.server.emu

    def send_json(self, code, doc, headers=None):
        body = json.dumps(doc, indent=2) + "\n"
        h = {"Vary": "Origin, X-Origin, Referer", "X-Content-Type-Options": "nosniff"}
        h.update(headers or {})
        self.send_body(code, body, "application/json; charset=UTF-8", h)

    def send_error_obj(self, err):
        self.send_json(err.code, err.body(), err.headers)

    def apply_fault(self, fault, phase):
        """phase 'before' (the request is not executed) or 'after' (it was)."""
        kind = fault.get("kind") or "status"
        if kind == "reset":
            self.reset_connection()
            return True
        if kind == "invalid-json":
            self.send_body(fault.get("status") or 200, '{"name": "operations/',
                           "application/json; charset=UTF-8")
            return True
        if kind == "status":
            rpc = fault.get("rpc") or "UNAVAILABLE"
            code = int(fault.get("status") or HTTP_OF_STATUS.get(rpc, 503))
            err = ApiError(rpc, fault.get("message") or "The service is currently unavailable.",
                           code=code)
            if fault.get("retry_after") is not None:
                err.headers["Retry-After"] = str(fault["retry_after"])
            self.send_error_obj(err)
            return True
        return False

    def release_generation(self):
        return self.emu.release_gen

    def send_truncated(self, code, doc):
        body = (json.dumps(doc, indent=2) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:max(1, len(body) // 2)])
        self.wfile.flush()
        self.reset_connection()

    # -- routing -------------------------------------------------------------------------------
    def dispatch(self):
        parts = urllib.parse.urlsplit(self.path)
        path = parts.path
        if path.startswith("/_emu/"):
            return self.control(path[len("/_emu/"):], parts.query)
        if path == "/token":
            return self.token_endpoint()
        for prefix, api in (("/iam/", "iam"), ("/serviceusage/", "serviceusage"),
                            ("/crm/", "crm")):
            if path.startswith(prefix):
                return self.api_call(api, path[len(prefix):], parts.query)
        self.read_body()
        self.send_body(404, GOOGLE_404.format(path=path), "text/html; charset=UTF-8")

    def api_call(self, api, raw_rel, raw_query):
        emu = self.emu
        verb = self.command
        raw_body = self.read_body()
        if raw_body is None:
            return self.send_error_obj(invalid("Request payload size exceeds the limit."))
        rel = urllib.parse.unquote(raw_rel)
        query = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
        body_text = raw_body.decode("utf-8", "replace") if raw_body else ""
        entry = {"api": api, "method": verb, "path": "/%s/%s" % (
            "crm" if api == "crm" else api, rel),
            "query": {k: (["<redacted>"] if k in SECRET_PARAMS else v)
                      for k, v in query.items()},
            "mutating": verb != "GET" and not rel.endswith(MUTATING_EXCEPTIONS),
            "method_id": None, "status": None, "rpc": None, "violations": [],
            "principal": None, "fault": None}
        try:
            parsed = json.loads(body_text) if body_text.strip() else {}
            entry["body"] = parsed
        except ValueError:
            parsed = None
            entry["body"] = None
        if emu.delay_ms:
            time.sleep(emu.delay_ms / 1000.0)
        handler_api = emu.apis[api]
        route, groups = None, None
        if rel.startswith("v1/"):
            for (rverb, rx, mid, fn) in handler_api.routes:
                if rverb != verb:
                    continue
                m = re.fullmatch(rx, rel[3:])
                if m:
                    route, groups = (mid, fn), m.groups()
                    break
        entry["method_id"] = route[0] if route else None
        # gcloud's generated client decides what exists and what a request may carry
        verdict = None
        if emu.validator is not None:
            verdict = emu.validator.check(VALIDATOR_API[api], verb, rel, query,
                                          body_text if raw_body else None)
            if verdict is None:
                entry["violations"].append("validator: no answer")
        known = route is not None if verdict is None else verdict.get("known")
        if verdict is not None and verdict.get("method_id"):
            entry["method_id"] = verdict["method_id"]
        if not known:
            entry["violations"].append("unknown method: %s %s" % (verb, entry["path"]))
            entry["status"] = 404
            emu.record(entry)
            return self.send_body(404, GOOGLE_404.format(path=entry["path"]),
                                  "text/html; charset=UTF-8")
        if raw_body and "application/json" not in (self.headers.get("Content-Type") or ""):
            entry["violations"].append("request body without Content-Type: application/json")
        if emu.frozen:
            how = self.hold(600000, emu.release_gen)
            if how == "closed":
                entry["fault"] = "frozen"
                emu.record(entry)
                self.close_connection = True
                return
        fault = emu.take_fault(verb, entry["method_id"], entry["path"], entry["mutating"])
        if fault and fault.get("kind") == "hang":
            entry["fault"] = "hang"
            gen = emu.release_gen
            executed = bool(fault.get("execute"))
            if executed:
                status, doc, headers = self.execute(api, handler_api, route, groups, verb, rel,
                                                    query, parsed, verdict, entry)
                entry["status"] = status
                if status >= 400:
                    entry["rpc"] = doc.get("error", {}).get("status")
            emu.record(entry)
            if fault.get("freeze"):
                with emu.log_lock:
                    emu.frozen = True
            how = self.hold(fault.get("delay_ms") or 600000, gen)
            with emu.log_lock:
                entry["held"] = how
            if how == "closed":
                self.close_connection = True
                return
            if not executed:
                status, doc, headers = self.execute(api, handler_api, route, groups, verb, rel,
                                                    query, parsed, verdict, entry)
                with emu.log_lock:
                    entry["status"] = status
            return self.send_json(status, doc, headers)
        if fault:
            entry["fault"] = fault.get("kind") or "status"
            if fault.get("kind") == "slow":
                time.sleep((fault.get("delay_ms") or 5000) / 1000.0)
            elif not fault.get("execute"):
                entry["status"] = fault.get("status")
                entry["rpc"] = fault.get("rpc") if entry["fault"] == "status" else None
                emu.record(entry)
                self.apply_fault(fault, "before")
                return
        status, doc, headers = self.execute(api, handler_api, route, groups, verb, rel, query,
                                            parsed, verdict, entry)
        entry["status"] = status
        if status >= 400:
            entry["rpc"] = doc.get("error", {}).get("status")
        emu.record(entry)
        if fault and fault.get("execute") and fault.get("kind") != "slow":
            if fault.get("kind") == "truncated":
                return self.send_truncated(status, doc)
            self.apply_fault(fault, "after")
            return
        self.send_json(status, doc, headers)

    def execute(self, api, handler_api, route, groups, verb, rel, query, parsed, verdict,
                entry):
        emu = self.emu
        st = emu.state
        try:
            with st.lock:
                principal = emu.authenticate(self.headers.get("Authorization"),
                                             handler_api.service, entry["method_id"])
                entry["principal"] = principal
                if api != "serviceusage":
                    emu.check_enabled(handler_api.service)
                if verdict is not None and verdict.get("violations"):
                    entry["violations"].extend(verdict["violations"])
                    fv = [{"description": v["description"]} if not v.get("field")
                          else v for v in verdict.get("field_violations") or []]
                    raise ApiError("INVALID_ARGUMENT", verdict["violations"][0], [
                        {"@type": "type.googleapis.com/google.rpc.BadRequest",
                         "fieldViolations": fv}])
                if parsed is None:
                    entry["violations"].append("request body is not JSON")
                    raise ApiError("INVALID_ARGUMENT", "Invalid JSON payload received. "
                                   "Unexpected token.", [
                                       {"@type": "type.googleapis.com/google.rpc.BadRequest",
                                        "fieldViolations": [{"description": "Invalid JSON "
                                                             "payload received. Unexpected "
                                                             "token."}]}])
                if not isinstance(parsed, dict):
                    raise invalid("Invalid JSON payload received. Expected an object.")
                if route is None:
                    entry["violations"].append("emulator: %s is not modelled"
                                               % entry["method_id"])
                    raise ApiError("UNIMPLEMENTED", "The emulator does not model %s."
                                   % entry["method_id"])
                ctx = Ctx(emu, verb, rel, query, camel_keys(parsed), principal)
                status, doc = route[1](ctx, *groups)
                return status, doc, {}
        except ApiError as err:
            return err.code, err.body(), err.headers

    # -- OAuth token endpoint ------------------------------------------------------------------
    def token_error(self, entry, code, error, description):
        entry["status"] = code
        entry["rpc"] = error
        self.emu.record(entry)
        self.send_json(code, {"error": error, "error_description": description})

    def token_endpoint(self):
        emu = self.emu
        raw = self.read_body() or b""
        entry = {"api": "oauth2", "method": self.command, "path": "/token", "query": {},
                 "mutating": False, "method_id": "oauth2.token", "status": None, "rpc": None,
                 "violations": [], "principal": None, "fault": None}
        if emu.delay_ms:
            time.sleep(emu.delay_ms / 1000.0)
        fault = emu.take_fault(self.command, "oauth2.token", "/token", False, holdable=False)
        if fault and fault.get("kind") != "slow":
            entry["fault"] = fault.get("kind") or "status"
            entry["status"] = fault.get("status")
            emu.record(entry)
            if entry["fault"] == "status":
                code = int(fault.get("status") or 503)
                h = {}
                if fault.get("retry_after") is not None:
                    h["Retry-After"] = str(fault["retry_after"])
                return self.send_json(code, {"error": "temporarily_unavailable",
                                             "error_description": fault.get("message") or
                                             "The service is currently unavailable."}, h)
            return self.apply_fault(fault, "before")
        if fault:
            time.sleep((fault.get("delay_ms") or 5000) / 1000.0)
        if self.command != "POST":
            return self.token_error(entry, 405, "invalid_request", "Method not allowed.")
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            entry["violations"].append("token request Content-Type is %r" % ctype)
        form = urllib.parse.parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        for k, v in form.items():
            if len(v) > 1:
                return self.token_error(entry, 400, "invalid_request",
                                        "Duplicate parameter: %s" % k)
        grant = (form.get("grant_type") or [""])[0]
        if not grant:
            return self.token_error(entry, 400, "invalid_request",
                                    "Missing required parameter: grant_type")
        if grant != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self.token_error(entry, 400, "unsupported_grant_type",
                                    "Invalid grant_type: %s" % grant)
        assertion = (form.get("assertion") or [""])[0]
        if not assertion:
            return self.token_error(entry, 400, "invalid_request",
                                    "Missing required parameter: assertion")
        with emu.state.lock:
            try:
                email, scopes = self.verify_jwt(assertion, entry)
            except TokenError as te:
                return self.token_error(entry, 400, te.error, te.description)
            entry["principal"] = email
            tok, ttl = emu.issue_token(email, scopes, "jwt")
        entry["status"] = 200
        emu.record(entry)
        self.send_json(200, {"access_token": tok, "expires_in": max(0, ttl - 1),
                             "token_type": "Bearer"}, {"Cache-Control": "no-cache, no-store"})

    def verify_jwt(self, assertion, entry):
        emu = self.emu
        parts = assertion.split(".")
        if len(parts) != 3:
            raise TokenError("invalid_request", "Invalid JWT: the assertion must have three "
                             "dot-separated parts.")
        raw = [b64url_decode_strict(p) for p in parts]
        if any(r is None for r in raw):
            entry["violations"].append("JWT segment not base64url without padding")
            raise TokenError("invalid_grant", "Invalid JWT: the segments must be base64url "
                             "without padding.")
        try:
            header = json.loads(raw[0])
            claims = json.loads(raw[1])
        except ValueError:
            raise TokenError("invalid_grant", "Invalid JWT: the header and claims must be "
                             "JSON objects.")
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise TokenError("invalid_grant", "Invalid JWT: the header and claims must be "
                             "JSON objects.")
        if header.get("alg") != "RS256" or header.get("typ", "JWT") != "JWT":
            entry["violations"].append("JWT header %s" % json.dumps(
                {k: header.get(k) for k in ("alg", "typ")}))
            raise TokenError("invalid_grant", "Invalid JWT Signature.")
        iss = claims.get("iss")
        sa = emu.state.accounts.get(iss) if isinstance(iss, str) else None
        if sa is None:
            raise TokenError("invalid_grant", "Invalid grant: account not found")
        entry["principal"] = iss
        kid = header.get("kid")
        key = sa.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            if not kid:
                entry["violations"].append("JWT header without kid")
            raise TokenError("invalid_grant", "Invalid JWT Signature.")
        if key.material is None or key.disabled or \
                not key.material.verify(raw[2], (parts[0] + "." + parts[1]).encode()):
            raise TokenError("invalid_grant", "Invalid JWT Signature.")
        # google-auth always signs aud = https://oauth2.googleapis.com/token whatever the
        # key file's token_uri; the key file's token_uri (this emulator) is taken too.
        if claims.get("aud") not in GOOGLE_TOKEN_AUDIENCES + (emu.token_url,):
            raise TokenError("invalid_grant", "Invalid JWT: Failed audience check. The "
                             "expected audience is %s." % GOOGLE_TOKEN_AUDIENCES[0])
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, (int, float)) or not isinstance(exp, (int, float)) or \
                isinstance(iat, bool) or isinstance(exp, bool) or \
                abs(iat - now) > 300 or exp <= now or exp - iat > 3600 or exp <= iat:
            raise TokenError("invalid_grant", "Invalid JWT: Token must be a short-lived token "
                             "(60 minutes) and in a reasonable timeframe. Check your iat and "
                             "exp values in the JWT claim.")
        if claims.get("sub") and claims.get("sub") != iss:
            raise TokenError("unauthorized_client", "Client is unauthorized to retrieve access "
                             "tokens using this method, or client not authorized for any of "
                             "the scopes requested.")
        if claims.get("target_audience"):
            raise TokenError("invalid_request", "The emulator does not issue ID tokens.")
        scope = claims.get("scope")
        scopes = scope.split() if isinstance(scope, str) else []
        if not scopes:
            raise TokenError("invalid_scope", "Invalid OAuth scope or ID token audience "
                             "provided.")
        if sa.disabled:
            raise TokenError("invalid_grant", "Invalid grant: account disabled")
        return iss, scopes

    # -- control -------------------------------------------------------------------------------
    def control(self, action, raw_query):
        emu = self.emu
        raw = self.read_body() or b""
        try:
            req = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return self.send_json(400, {"error": "body is not JSON"})
        try:
            out = self.control_action(emu, action, req)
        except ControlError as ce:
            return self.send_json(ce.code, {"error": str(ce)})
        if out is None:
            return self.send_json(404, {"error": "no control action %r" % action})
        self.send_json(200, out)

    def control_action(self, emu, action, req):
        st = emu.state
        if action == "state":
            return emu.dump()
        if action == "issued_secrets":
            return {"secrets": list(ISSUED_SECRETS)}
        if action == "requests":
            with emu.log_lock:
                return {"requests": list(emu.log)}
        if action == "clear_requests":
            with emu.log_lock:
                emu.log = []
            return {"ok": True}
        if action == "reset":
            emu.reset()
            return {"ok": True}
        if action == "release":
            emu.release()
            return {"ok": True}
        if action == "inject":
            f = {"kind": req.get("kind") or "status", "method": req.get("method"),
                 "path_regex": req.get("path_regex"), "count": int(req.get("count") or 1),
                 "status": req.get("status"), "rpc": req.get("rpc"),
                 "message": req.get("message"), "retry_after": req.get("retry_after"),
                 "delay_ms": req.get("delay_ms"),
                 "execute": bool(req.get("execute", req.get("kind") == "truncated"))}
            if f["kind"] not in ("status", "reset", "truncated", "invalid-json", "slow",
                                 "hang"):
                raise ControlError("unknown fault kind %r" % f["kind"])
            ordinal = int(req.get("ordinal") or 1)
            if ordinal < 1:
                raise ControlError("ordinal must be 1 or more")
            if ordinal > 1:
                f["skip"] = ordinal - 1
            if req.get("mutating") is not None:
                f["mutating"] = bool(req["mutating"])
            if req.get("freeze"):
                f["freeze"] = True
            if f["kind"] == "status" and not f["rpc"]:
                f["rpc"] = "UNAVAILABLE"
            if f["kind"] == "status" and f["status"] is None:
                f["status"] = HTTP_OF_STATUS.get(f["rpc"] or "UNAVAILABLE", 503)
            if f["kind"] == "invalid-json" and f["status"] is None:
                f["status"] = 200
            with emu.log_lock:
                emu.faults.append(f)
            return {"ok": True, "faults": len(emu.faults)}
        if action == "config":
            for k in ("op_polls", "enable_lag", "sa_visibility_lag", "token_ttl", "delay_ms"):
                if k in req:
                    setattr(emu, k, int(req[k]))
            for k in ("sa_get_pattern", "enable_pattern"):
                if k in req:
                    if not isinstance(req[k], str) or set(req[k]) - set("+-"):
                        raise ControlError("%s is a string of '+' and '-'" % k)
                    setattr(emu, k, req[k])
            return {"ok": True}
        with st.lock:
            return self.control_state(emu, st, action, req)

    def control_state(self, emu, st, action, req):
        def need_sa(email):
            sa = st.accounts.get(email or "")
            if sa is None:
                raise ControlError("no service account %r" % email, 404)
            return sa

        if action in ("disable_service", "enable_service"):
            name = req.get("name")
            if name not in SERVICE_CATALOG:
                raise ControlError("unknown service %r" % name)
            st.services[name] = "DISABLED" if action == "disable_service" else "ENABLED"
            st.enable_lag_left.pop(name, None)
            return {"ok": True}
        if action == "set_role_permissions":
            r = st.role(req.get("role_id") or "")
            if r is None:
                raise ControlError("no custom role %r" % req.get("role_id"), 404)
            r.permissions = sorted(set(req.get("permissions") or []))
            r.etag = new_etag()
            return r.render()
        if action == "set_role":
            r = st.role(req.get("role_id") or "")
            if r is None:
                raise ControlError("no custom role %r" % req.get("role_id"), 404)
            for k, attr in (("title", "title"), ("description", "description"),
                            ("stage", "stage")):
                if k in req:
                    setattr(r, attr, req[k])
            r.etag = new_etag()
            return r.render()
        if action == "delete_sa":
            st.delete_sa(need_sa(req.get("email")))
            return {"ok": True}
        if action == "create_sa":
            aid = req.get("account_id") or ""
            sa = ServiceAccount(st.project, aid, req.get("display_name") or "",
                                req.get("description") or "")
            if sa.email in st.accounts:
                raise ControlError("service account %s exists" % sa.email, 409)
            st.accounts[sa.email] = sa
            return sa.render()
        if action == "remove_binding":
            ok = st.policy.remove(req.get("role"), req.get("member"), req.get("condition"))
            if not ok:
                raise ControlError("no such binding", 404)
            st.policy.etag = new_etag()
            return st.policy.render(3)
        if action == "add_foreign_binding":
            st.policy.add(req.get("role"), [req.get("member")], req.get("condition"))
            st.policy.etag = new_etag()
            return st.policy.render(3)
        if action == "create_key":
            sa = need_sa(req.get("email"))
            key, keyfile = emu.make_user_key(sa)
            return {"name": key.name(), "key_id": key.key_id, "key_file": json.loads(keyfile)}
        if action == "delete_key":
            sa = need_sa(req.get("email"))
            if sa.keys.pop(req.get("key_id") or "", None) is None:
                raise ControlError("no such key", 404)
            return {"ok": True}
        if action == "org_policy":
            st.org_disable_key_creation = bool(req.get("disable_key_creation"))
            return {"ok": True}
        if action == "age_deleted_role":
            r = st.roles.get(req.get("role_id") or "")
            if r is None or r.deleted_at is None:
                raise ControlError("no deleted custom role %r" % req.get("role_id"), 404)
            r.deleted_at -= float(req.get("days") or 0) * DAY
            return {"ok": True, "deletedDaysAgo": (time.time() - r.deleted_at) / DAY}
        if action == "concurrent_write_on_next_set":
            st.concurrent_write_next = True
            return {"ok": True}
        if action == "expire_tokens":
            email = req.get("email")
            for info in emu.tokens.values():
                if info["source"] != "static" and (not email or info["email"] == email):
                    info["exp"] = time.time() - 1
            return {"ok": True}
        if action == "issue_token":
            email = req.get("email") or st.admin.email
            need_sa(email)
            tok, ttl = emu.issue_token(email, req.get("scopes") or [CLOUD_PLATFORM], "control",
                                       req.get("ttl"))
            return {"access_token": tok, "expires_in": ttl}
        if action == "add_predefined_role":
            st.predefined[req["name"]] = (req.get("title") or req["name"],
                                          req.get("permissions") or [])
            return {"ok": True}
        return None


class TokenError(Exception):
    def __init__(self, error, description):
        super().__init__(description)
        self.error = error
        self.description = description


class ControlError(Exception):
    def __init__(self, message, code=400):
        super().__init__(message)
        self.code = code


# ==============================================================================================
# metadata server personality

class MetadataHandler(EmulatorHandler):
    server_version = "Metadata Server for VM"

    def reply(self, code, body, ctype="application/text"):
        self.send_body(code, body, ctype, {"Metadata-Flavor": "Google",
                                           "X-Xss-Protection": "0",
                                           "X-Frame-Options": "SAMEORIGIN"})

    def do_GET(self):
        emu = self.server.emu
        args = emu.args
        parts = urllib.parse.urlsplit(self.path)
        path, q = parts.path, urllib.parse.parse_qs(parts.query)
        entry = {"api": "metadata", "method": "GET", "path": path, "query": q,
                 "mutating": False, "method_id": "metadata.get", "status": None, "rpc": None,
                 "violations": [], "principal": None, "fault": None}
        is_token = path.endswith("/token")
        if is_token:
            entry["method_id"] = "metadata.token"

        def done(code, body, ctype="application/text"):
            entry["status"] = code
            emu.record(entry)
            self.reply(code, body, ctype)

        if self.headers.get("Metadata-Flavor") != "Google":
            entry["violations"].append("no Metadata-Flavor: Google header")
            return done(403, "Missing Metadata-Flavor:Google header.\n", "text/html")
        fault = emu.take_fault("GET", entry["method_id"], path, False, holdable=False)
        if fault and fault.get("kind") != "slow":
            entry["fault"] = fault.get("kind") or "status"
            if entry["fault"] == "status":
                return done(int(fault.get("status") or 503), "service unavailable\n")
            entry["status"] = None
            emu.record(entry)
            return self.reset_connection()
        if fault:
            time.sleep((fault.get("delay_ms") or 5000) / 1000.0)
        st = emu.state
        email = args.metadata_sa or st.admin.email
        num = st.project.number
        sa_dir = {"aliases": "default\n", "email": email + "\n",
                  "scopes": CLOUD_PLATFORM + "\n"}
        leaves = {
            "project/project-id": st.project.project_id,
            "project/numeric-project-id": num,
            "instance/zone": "projects/%s/zones/%s" % (num, args.zone),
            "instance/attributes/cluster-name": args.cluster_name,
            "instance/attributes/cluster-location": args.cluster_location,
            "instance/attributes/cluster-uid": args.cluster_uid,
        }
        dirs = {
            "": "instance/\nproject/\n",
            "project/": "attributes/\nnumeric-project-id\nproject-id\n",
            "instance/": "attributes/\nservice-accounts/\nzone\n",
            "instance/attributes/": "cluster-location\ncluster-name\ncluster-uid\n",
            "instance/service-accounts/": "default/\n%s/\n" % email,
        }
        if path in ("/", ""):
            return done(200, "computeMetadata/\n")
        prefix = "/computeMetadata/v1/"
        if path == "/computeMetadata/v1":
            return done(301, prefix + "\n")
        if not path.startswith(prefix):
            return done(404, "Not Found\n", "text/html")
        rel = path[len(prefix):]
        m = re.fullmatch(r"instance/service-accounts/([^/]+)/(.*)", rel)
        if m and m.group(1) in ("default", email):
            sub = m.group(2)
            if sub == "":
                if q.get("recursive", [""])[0].lower() == "true":
                    return done(200, json.dumps({"aliases": ["default"], "email": email,
                                                 "scopes": [CLOUD_PLATFORM]}),
                                "application/json")
                return done(200, "aliases\nemail\nidentity\nscopes\ntoken\n")
            if sub == "token":
                with st.lock:
                    tok, ttl = emu.issue_token(email, [CLOUD_PLATFORM], "metadata")
                entry["principal"] = email
                return done(200, json.dumps({"access_token": tok, "expires_in": max(0, ttl - 1),
                                             "token_type": "Bearer"}), "application/json")
            if sub in sa_dir:
                return done(200, sa_dir[sub].rstrip("\n"))
            return done(404, "Not Found\n", "text/html")
        if re.fullmatch(r"instance/service-accounts/[^/]+", rel):
            return done(301, path + "/\n")
        if rel in leaves:
            return done(200, leaves[rel])
        if rel in dirs:
            return done(200, dirs[rel])
        if rel + "/" in dirs:
            return done(301, path + "/\n")
        return done(404, "Not Found\n", "text/html")


# ==============================================================================================

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--metadata-port", type=int, default=0)
    ap.add_argument("--ready-file")
    ap.add_argument("--project", default="demo-project")
    ap.add_argument("--project-number", default="123456789012")
    ap.add_argument("--project-name", default="Demo Project")
    ap.add_argument("--enabled", default="serviceusage.googleapis.com",
                    help="comma-separated services enabled at start")
    ap.add_argument("--admin-account", default="bootstrap-admin")
    ap.add_argument("--op-polls", type=int, default=2)
    ap.add_argument("--enable-lag", type=int, default=0)
    ap.add_argument("--sa-visibility-lag", type=int, default=0)
    ap.add_argument("--token-ttl", type=int, default=3600)
    ap.add_argument("--delay-ms", type=int, default=0)
    ap.add_argument("--cluster-name", default="gke-demo")
    ap.add_argument("--cluster-location", default="europe-west1")
    ap.add_argument("--cluster-uid", default="8a7c2e1f3b4d4e6f9a0b1c2d3e4f5a6b")
    ap.add_argument("--zone", default="europe-west1-b")
    ap.add_argument("--metadata-sa", default=None,
                    help="email of the metadata server's default account (the admin if unset)")
    ap.add_argument("--validator", default="auto",
                    help="auto (gcloud's bundled python), off, or a python path")
    ap.add_argument("--require-validator", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    args.enabled = [s for s in args.enabled.split(",") if s]
    for s in args.enabled:
        if s not in SERVICE_CATALOG:
            ap.error("unknown service %s" % s)
    os.makedirs(args.state_dir, exist_ok=True)

    emu = Emulator(args)
    api = QuietThreadingHTTPServer((args.host, args.port), ApiHandler)
    md = QuietThreadingHTTPServer((args.host, args.metadata_port), MetadataHandler)
    for srv in (api, md):
        srv.emu = emu
        srv.verbose = args.verbose
    emu.api_port = api.server_address[1]
    emu.md_port = md.server_address[1]
    threading.Thread(target=md.serve_forever, kwargs={"poll_interval": 0.2},
                     daemon=True).start()
    try:
        return serve(api, args.ready_file, on_listening=lambda _p: emu.write_files(),
                     name="gcp_api")
    finally:
        md.shutdown()
        md.server_close()
        if emu.validator is not None:
            emu.validator.stop()


if __name__ == "__main__":
    sys.exit(main())
