#!/usr/bin/env python3
"""Fault-injection matrix: for one provider (argument: outscale, azure, gcp or aws), every
mutating step of onboard, rotate and offboard, crossed with every fault kind.

The steps are discovered, not listed: a clean onboard, rotate and offboard run first, and the
mutating requests each one makes (the emulators log every request with its action or method
and path and a mutating flag) become the steps, each named by what it calls and which
occurrence of that call it is (the emulators' inject() takes an ordinal, so "the second
LinkPolicy" is exactly that even when the agent runs calls in parallel). Then, for each step
and each fault kind, on emulators reset to their initial state: set up (rotate and offboard
start from a clean onboard), inject the fault at that step, run the command, rerun it once if
it failed, and require the exact final state:

  onboard, rotate  one identity, its exact grants, exactly one key or secret, nothing
                   duplicated; that key is the one in the credential Secret (marked
                   delivered) and the one the last report with credentials carried (key id
                   and secret); every key reported was reported in exactly one report; after
                   onboard only that key was ever reported; after rotate it is not the old
                   one, and no more keys were reported than rotate runs happened.
  offboard         nothing cloudgrant made is left (identity, grants, keys, the Secret), and
                   no credential was reported.

Fault kinds: 500, 503, 429 with Retry-After, the provider's own throttling error, a connection
reset, a timeout, a truncated body, an invalid JSON/XML body, a slow answer. Faults the agent
is documented to retry (500, 503, 429, throttling, slow) must not fail the first run at all;
for the others (reset, timeout, truncated, invalid body) one failed run is allowed and the
rerun must converge. The agent's per-request timeout is a fixed 30 s (no option or variable
lowers it), so "timeout" is an answer held past it: the request runs, its answer never comes,
the agent gives up after 30 s. "slow" is an answer 1.5 s late, well within the timeout.

Cases run in parallel threads, each with its own emulators (reset between cases, so no case
sees another's state). CG_FAULT_WORKERS sets the number of threads (default 8),
CG_FAULT_ONLY=REGEX runs only the cases whose id matches (e.g. "onboard.*CreateUser").
CG_FAULT_SAMPLE=1 (set for the sanitizer build, where every agent run is several times slower)
runs a covering sample instead of the full cross: every step with one fault kind, turning
through the kinds, so that each step and each kind is exercised at least once. A case listed
in KNOWN_FAILURES is reported as a known failure instead of failing the test."""
import base64
import contextlib
import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import traceback

SRC = os.environ.get("CG_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "emulators"))
import central_harness  # noqa: E402
import harness  # noqa: E402
import secret_scan  # noqa: E402

BIN = os.environ.get("CLOUDGRANT_BIN")
TOKEN = "report-token-faults-5b1e"
COMMANDS = ("onboard", "rotate", "offboard")
KINDS = ("500", "503", "429", "throttle", "reset", "timeout", "truncated", "invalid-body",
         "slow")
RETRIED = {"500", "503", "429", "throttle", "slow"}  # documented as retried: no failed run
SLOW_MS = 1500
HOLD_MS = 120000      # a "timeout" answer is held this long at most (the agent gives up at 30 s)
RUN_TIMEOUT = 240     # an agent run that lasts longer is a hang
ANN_DELIVERED = "cloudgrant.io/delivered"
ANN_KEY_ID = "cloudgrant.io/access-key-id"
GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

# case id (provider:command:step:kind) -> why it is a known failure (a reported agent defect)
KNOWN_FAILURES = {}


class CaseFailure(AssertionError):
    pass


def check(cond, msg, *args):
    if not cond:
        raise CaseFailure(msg % args if args else msg)


def tail(text, n=600):
    text = (text or "").strip()
    return text if len(text) <= n else "..." + text[-n:]


# -- the Kubernetes API: the credential Secret and the run's Lease ------------------------------

class Kube:
    """Direct REST calls to the Kubernetes API emulator (no kubectl: faster, and thread-safe)."""

    def __init__(self, api, namespace="default"):
        self.api = api
        self.ns = namespace
        self.ctx = ssl.create_default_context(cafile=api.ca)

    def call(self, method, path, body=None):
        conn = http.client.HTTPSConnection("127.0.0.1", self.api.port, context=self.ctx,
                                           timeout=30)
        try:
            headers = {"Authorization": "Bearer " + self.api.token, "Accept": "application/json"}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=headers)
            r = conn.getresponse()
            text = r.read()
            return r.status, (json.loads(text) if text.strip() else None)
        finally:
            conn.close()

    def secret(self, name):
        """-> {"data": {k: decoded str}, "annotations": {...}} or None."""
        status, doc = self.call("GET", "/api/v1/namespaces/%s/secrets/%s" % (self.ns, name))
        if status == 404:
            return None
        check(status == 200, "reading Secret %s: HTTP %s %s", name, status, doc)
        data = {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
        return {"data": data, "annotations": doc["metadata"].get("annotations") or {},
                "labels": doc["metadata"].get("labels") or {}}

    def wipe(self):
        """Every Secret and Lease of the namespace goes (a fresh cluster for the next case)."""
        for path in ("/api/v1/namespaces/%s/secrets" % self.ns,
                     "/apis/coordination.k8s.io/v1/namespaces/%s/leases" % self.ns):
            status, doc = self.call("GET", path)
            if status != 200:
                raise RuntimeError("listing %s: %s %s" % (path, status, doc))
            for item in doc.get("items") or []:
                self.call("DELETE", path + "/" + item["metadata"]["name"])


# -- one set of emulators (one worker thread owns one) ------------------------------------------

class Rig:
    """The emulators of one provider, the Kubernetes API and the central endpoint, with what
    the matrix needs from them. Subclasses: the provider's cloud."""
    provider = None
    cluster = None          # k8s_api fixture
    profile = None
    key_field = None        # the key id's field in the report's credentials
    secret_field = None     # the secret's field in the report's credentials
    store_key_field = None  # the key id's field in the Secret's data
    store_secret_field = None

    def __init__(self, stack, workdir):
        self.dir = tempfile.mkdtemp(prefix="cg-faults-", dir=workdir)
        self.api = stack.enter_context(harness.k8s_api(self.cluster))
        self.central = stack.enter_context(central_harness.central(token=TOKEN))
        self.kube = Kube(self.api)
        self.start_cloud(stack)
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("AWS_", "CLOUDGRANT_", "KUBE", "AZURE_", "GOOGLE_", "GCE_",
                                     "CLOUDSDK_", "OSC_"))}
        base.update({"HOME": self.dir, "CLOUDGRANT_KUBECONFIG": self.api.kubeconfig,
                     "CLOUDGRANT_PROFILE": self.profile,
                     "CLOUDGRANT_REPORT_URL": self.central.report_url,
                     "CLOUDGRANT_REPORT_TOKEN": TOKEN,
                     "CLOUDGRANT_PROFILES_DIR": os.path.join(SRC, "profiles")})
        base.update(self.cloud_env())
        self.env = base
        self.report_mark = 0
        self.outputs = []  # what the agent printed in this case, for the secret scan
        self.secret_name = "cloudgrant-" + self.profile

    # provider hooks --------------------------------------------------------------------------
    def start_cloud(self, stack):
        raise NotImplementedError

    def cloud_env(self):
        raise NotImplementedError

    def cloud_reset(self):
        raise NotImplementedError

    def clear_requests(self):
        raise NotImplementedError

    def writes(self):
        """The mutating requests since the last clear, in order: dicts with "sel" (a hashable
        selector: what inject() matches), "label", "status", "fault"."""
        raise NotImplementedError

    def inject(self, sel, ordinal, kind):
        raise NotImplementedError

    def release(self):
        raise NotImplementedError

    def account_keys(self):
        """The live keys (or secrets) of the identity cloudgrant manages: [key id]."""
        raise NotImplementedError

    def check_onboarded(self):
        """Raises CaseFailure unless the account is exactly the profile's desired state."""
        raise NotImplementedError

    def check_offboarded(self):
        raise NotImplementedError

    def violations(self):
        return []

    def issued_secrets(self):
        """Every secret the cloud's emulator handed out (keys, client secrets, tokens)."""
        raise NotImplementedError

    # shared ----------------------------------------------------------------------------------
    def reset(self):
        self.release()
        self.cloud_reset()
        self.clear_requests()
        self.kube.wipe()
        self.report_mark = len(self.central.reports())
        self.outputs = []

    def run(self, *args, env=None, timeout=RUN_TIMEOUT):
        e = dict(self.env, **(env or {}))
        t0 = time.monotonic()
        try:
            p = subprocess.run([BIN] + list(args), env=e, capture_output=True, text=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired as te:
            raise CaseFailure("agent hang: `cloudgrant %s` still running after %d s\n%s"
                              % (" ".join(args), timeout, tail(te.stderr.decode()
                                                               if isinstance(te.stderr, bytes)
                                                               else te.stderr)))
        p.elapsed = time.monotonic() - t0
        self.outputs.append(p.stdout + p.stderr)
        if p.returncode < 0:
            raise CaseFailure("agent crash: `cloudgrant %s` killed by signal %d\n%s"
                              % (" ".join(args), -p.returncode, tail(p.stderr)))
        return p

    def reports(self):
        return [r["body"] for r in self.central.reports()[self.report_mark:]]

    def credential_reports(self):
        return [b for b in self.reports() if b.get("credentials")]

    def stored(self):
        return self.kube.secret(self.secret_name)


def generalize(path):
    """A path with its generated ids (GUIDs, 40-hex key ids) as a regex."""
    out, pos = [], 0
    for m in re.finditer(GUID + r"|\b[0-9a-f]{40}\b", path):
        out.append(re.escape(path[pos:m.start()]))
        out.append(GUID if "-" in m.group(0) else "[0-9a-f]{40}")
        pos = m.end()
    out.append(re.escape(path[pos:]))
    return "^" + "".join(out) + "$"


# -- OUTSCALE ------------------------------------------------------------------------------------

class OscRig(Rig):
    provider = "outscale"
    cluster = "outscale"
    profile = "platform-access"
    key_field, secret_field = "accessKeyId", "secretKey"
    store_key_field, store_secret_field = "accessKeyId", "secretKey"
    CLUSTER = "osc-prod"
    USER = "platform-access-osc-prod"
    POLICY = "PlatformAccess-osc-prod"

    def start_cloud(self, stack):
        import osc_harness
        self.osc = stack.enter_context(osc_harness.osc())
        with open(os.path.join(SRC, "profiles", "platform-access-outscale-policy.json")) as f:
            self.document = json.load(f)

    def cloud_env(self):
        env = self.osc.env()
        env["CLOUDGRANT_CLUSTER_NAME"] = self.CLUSTER
        return env

    def issued_secrets(self):
        return self.osc.issued_secrets()

    def cloud_reset(self):
        self.osc.reset()

    def clear_requests(self):
        self.osc.clear_requests()

    def release(self):
        self.osc.release()

    def writes(self):
        return [{"sel": r["action"], "label": r["action"], "status": r["status"],
                 "fault": r.get("fault")}
                for r in self.osc.requests() if r.get("mutating")]

    def inject(self, sel, ordinal, kind):
        kw = {"action": "^%s$" % sel, "ordinal": ordinal}
        if kind in ("500", "503"):
            kw.update(kind="status", status=int(kind), type="InternalError", code="2000")
        elif kind == "429":
            kw.update(kind="status", status=429, retry_after=1)
        elif kind == "throttle":
            kw.update(kind="throttle")
        elif kind == "reset":
            kw.update(kind="reset")
        elif kind == "timeout":
            kw.update(kind="hang", execute=True, delay_ms=HOLD_MS)
        elif kind == "truncated":
            kw.update(kind="truncated")
        elif kind == "invalid-body":
            kw.update(kind="invalid-json", execute=True, status=200)
        elif kind == "slow":
            kw.update(kind="slow", delay_ms=SLOW_MS)
        self.osc.inject(**kw)

    def violations(self):
        return self.osc.violations()

    def ours(self, st):
        users = [u for u in st["users"] if u["Path"] == "/cloudgrant/"]
        pols = [p for p in st["policies"] if p["Path"] == "/cloudgrant/"]
        return users, pols

    def account_keys(self):
        return [k["AccessKeyId"] for k in self.osc.state()["access_keys"]
                if k.get("UserName") == self.USER]

    def check_onboarded(self):
        st = self.osc.state()
        users, pols = self.ours(st)
        check([u["UserName"] for u in users] == [self.USER], "users under /cloudgrant/: %s",
              [u["UserName"] for u in users])
        check([p["PolicyName"] for p in pols] == [self.POLICY],
              "policies under /cloudgrant/: %s", [p["PolicyName"] for p in pols])
        pol = pols[0]
        check(pol["Document"] == self.document, "the policy's default version is not the "
              "profile's document")
        check(len(pol["Versions"]) == 1, "the policy has %d versions (one expected)",
              len(pol["Versions"]))
        check(st["links"].get(self.USER, []) == [pol["Orn"]], "links of the user: %s",
              st["links"].get(self.USER))
        keys = [k for k in st["access_keys"] if k.get("UserName") == self.USER]
        check(len(keys) == 1, "the user has %d access keys: %s", len(keys),
              [(k["AccessKeyId"], k["State"]) for k in keys])
        check(keys[0]["State"] == "ACTIVE", "the key is %s", keys[0]["State"])
        others = [k for k in st["access_keys"] if k.get("UserName") not in (None, self.USER)]
        check(not others, "keys of other users: %s", others)

    def check_offboarded(self):
        st = self.osc.state()
        users, pols = self.ours(st)
        check(not users and not pols, "left after offboard: users %s, policies %s",
              [u["UserName"] for u in users], [p["PolicyName"] for p in pols])
        keys = [k for k in st["access_keys"] if k.get("UserName") is not None]
        check(not keys, "user keys left after offboard: %s", keys)
        check(not st["links"], "links left after offboard: %s", st["links"])


# -- Azure ---------------------------------------------------------------------------------------

class AzureRig(Rig):
    provider = "azure"
    cluster = "aks"
    profile = "platform-access"
    key_field, secret_field = "keyId", "clientSecret"
    store_key_field, store_secret_field = "keyId", "clientSecret"
    SUB = "0b1f6471-1bf0-4dda-aec3-111122223333"
    APP = "platform-access-aks-main"
    CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"

    def start_cloud(self, stack):
        import azure_harness
        self.az = stack.enter_context(azure_harness.azure(subscription=self.SUB))
        self.baseline = None

    def cloud_env(self):
        return self.az.env()

    def issued_secrets(self):
        return self.az.issued_secrets()

    def cloud_reset(self):
        self.az.reset()
        if self.baseline is None:
            st = self.az.state()
            self.baseline = {
                "apps": sorted(a["id"] for a in st["applications"]),
                "sps": sorted(s["id"] for s in st["servicePrincipals"]),
                "assignments": sorted(a["name"] for a in st["roleAssignments"]),
                "roles": sorted(r["name"] for r in st["roleDefinitions"])}

    def clear_requests(self):
        self.az.clear_requests()

    def release(self):
        self.az.release()

    def writes(self):
        return [{"sel": (r["method"], generalize(r["path"])),
                 "label": "%s %s" % (r["method"], re.sub(GUID, "{id}", r["path"])),
                 "status": r["status"], "fault": r.get("fault")}
                for r in self.az.requests() if r.get("mutating") and r["api"] in ("graph", "arm")]

    def inject(self, sel, ordinal, kind):
        method, rx = sel
        graph = rx.startswith(r"^/v1\.0")
        kw = {"method": method, "path_regex": rx, "ordinal": ordinal}
        if kind in ("500", "503"):
            kw.update(kind="status", status=int(kind))
        elif kind == "429":
            kw.update(kind="status", status=429, retry_after=1)
        elif kind == "throttle":
            if graph:  # Microsoft Entra's directory throttling
                kw.update(kind="status", status=429, code="Request_ThrottledTemporarily",
                          message="Your request is throttled temporarily. Please try after "
                                  "1 seconds.")
            else:      # ARM's subscription write quota
                kw.update(kind="status", status=429, code="SubscriptionRequestsThrottled",
                          message="Number of 'write' requests for subscription '%s' actor "
                                  "'cloudgrant' exceeded. Please try again after '1' seconds "
                                  "after additional tokens are available." % self.SUB)
        elif kind == "reset":
            kw.update(kind="reset")
        elif kind == "timeout":
            kw.update(kind="hang", execute=True, delay_ms=HOLD_MS)
        elif kind == "truncated":
            kw.update(kind="truncated")
        elif kind == "invalid-body":
            kw.update(kind="invalid-json", execute=True, status=200)
        elif kind == "slow":
            kw.update(kind="slow", delay_ms=SLOW_MS)
        self.az.inject(**kw)

    def violations(self):
        return self.az.violations()

    def new(self, st):
        b = self.baseline
        return {"apps": [a for a in st["applications"] if a["id"] not in b["apps"]],
                "sps": [s for s in st["servicePrincipals"] if s["id"] not in b["sps"]],
                "assignments": [a for a in st["roleAssignments"]
                                if a["name"] not in b["assignments"]],
                "roles": [r for r in st["roleDefinitions"] if r["name"] not in b["roles"]]}

    def account_keys(self):
        apps = self.new(self.az.state())["apps"]
        return [p["keyId"] for a in apps for p in a.get("passwordCredentials") or []]

    def check_onboarded(self):
        n = self.new(self.az.state())
        check([a["displayName"] for a in n["apps"]] == [self.APP], "app registrations: %s",
              [a["displayName"] for a in n["apps"]])
        app = n["apps"][0]
        check("cloudgrant" in (app.get("tags") or []), "the app is not tagged: %s",
              app.get("tags"))
        check([s["appId"] for s in n["sps"]] == [app["appId"]], "service principals: %s",
              [(s["appId"], s["displayName"]) for s in n["sps"]])
        sp = n["sps"][0]
        got = sorted((a["properties"]["principalId"], a["properties"]["scope"].lower(),
                      a["properties"]["roleDefinitionId"].rsplit("/", 1)[1].lower())
                     for a in n["assignments"])
        check(got == [(sp["id"], "/subscriptions/" + self.SUB, self.CONTRIBUTOR)],
              "role assignments: %s", got)
        check(not n["roles"], "custom roles: %s", [r["name"] for r in n["roles"]])
        pw = app.get("passwordCredentials") or []
        check(len(pw) == 1, "the app has %d client secrets: %s", len(pw),
              [p["keyId"] for p in pw])
        check(not app.get("federatedIdentityCredentials"), "federated credentials: %s",
              app.get("federatedIdentityCredentials"))

    def check_offboarded(self):
        n = self.new(self.az.state())
        check(not n["apps"] and not n["sps"], "left after offboard: apps %s, sps %s",
              [a["displayName"] for a in n["apps"]], [s["displayName"] for s in n["sps"]])
        check(not n["assignments"], "role assignments left after offboard: %s",
              [a["name"] for a in n["assignments"]])
        check(not n["roles"], "custom roles left: %s", [r["name"] for r in n["roles"]])


# -- GCP -----------------------------------------------------------------------------------------

class GcpRig(Rig):
    provider = "gcp"
    cluster = "gke"
    profile = "node-autoscaler"
    key_field, secret_field = "keyId", "keyFile"
    store_key_field, store_secret_field = "keyId", "key.json"
    PROJECT = "acme-prod-321"
    CLUSTER = "gke-demo"
    ROLE = "castai.gkeAccess"
    SERVICES = ("serviceusage.googleapis.com", "iam.googleapis.com",
                "cloudresourcemanager.googleapis.com", "container.googleapis.com",
                "compute.googleapis.com")
    ROLES = ("projects/acme-prod-321/roles/castai.gkeAccess", "roles/container.developer",
             "roles/iam.serviceAccountUser")

    def start_cloud(self, stack):
        import gcp_harness
        import hashlib
        self.g = stack.enter_context(gcp_harness.gcp(project=self.PROJECT,
                                                     cluster_name=self.CLUSTER))
        self.email = "castai-gke-%s@%s.iam.gserviceaccount.com" % (
            hashlib.sha1(self.CLUSTER.encode()).hexdigest()[:8], self.PROJECT)
        self.member = "serviceAccount:" + self.email

    def cloud_env(self):
        env = self.g.env()
        env.update(self.g.metadata_env())
        return env

    def issued_secrets(self):
        return self.g.issued_secrets()

    def cloud_reset(self):
        self.g.reset()

    def clear_requests(self):
        self.g.clear_requests()

    def release(self):
        self.g.release()

    def writes(self):
        return [{"sel": (r["method"], generalize(r["path"])),
                 "label": "%s %s" % (r["method_id"] or r["method"],
                                     re.sub(r"\b[0-9a-f]{40}\b", "{key}", r["path"])),
                 "status": r["status"], "fault": r.get("fault")}
                for r in self.g.requests()
                if r.get("mutating") and r["api"] in ("iam", "serviceusage", "crm")]

    def inject(self, sel, ordinal, kind):
        method, rx = sel
        kw = {"method": method, "path_regex": rx, "ordinal": ordinal}
        if kind == "500":
            kw.update(kind="status", status=500, rpc="INTERNAL")
        elif kind == "503":
            kw.update(kind="status", status=503, rpc="UNAVAILABLE")
        elif kind == "429":
            kw.update(kind="status", status=429, rpc="RESOURCE_EXHAUSTED", retry_after=1)
        elif kind == "throttle":
            kw.update(kind="status", status=429, rpc="RESOURCE_EXHAUSTED",
                      message="Quota exceeded for quota metric 'Write requests' and limit "
                              "'Write requests per minute' of service 'iam.googleapis.com' "
                              "for consumer 'project_number:123456789012'.")
        elif kind == "reset":
            kw.update(kind="reset")
        elif kind == "timeout":
            kw.update(kind="hang", execute=True, delay_ms=HOLD_MS)
        elif kind == "truncated":
            kw.update(kind="truncated")
        elif kind == "invalid-body":
            kw.update(kind="invalid-json", execute=True, status=200)
        elif kind == "slow":
            kw.update(kind="slow", delay_ms=SLOW_MS)
        self.g.inject(**kw)

    def violations(self):
        return self.g.violations()

    def sas(self, st):
        return [sa for sa in st["service_accounts"] if sa["email"] != st["admin"]]

    def account_keys(self):
        for sa in self.g.state()["service_accounts"]:
            if sa["email"] == self.email:
                return [k["id"] for k in sa["keys"] if k["keyType"] == "USER_MANAGED"]
        return []

    def check_onboarded(self):
        st = self.g.state()
        sas = self.sas(st)
        check([sa["email"] for sa in sas] == [self.email], "service accounts: %s",
              [sa["email"] for sa in sas])
        keys = [k for k in sas[0]["keys"] if k["keyType"] == "USER_MANAGED"]
        check(len(keys) == 1, "the service account has %d user-managed keys", len(keys))
        roles = [r for r in st["roles"]]
        check([r["name"] for r in roles] == [self.ROLES[0]] and not roles[0].get("deleted"),
              "custom roles: %s", [(r["name"], r.get("deleted")) for r in roles])
        bound = sorted(b["role"] for b in st["policy"].get("bindings", [])
                       if self.member in b["members"])
        check(bound == sorted(self.ROLES), "the service account's bindings: %s", bound)
        dups = [b["role"] for b in st["policy"].get("bindings", [])
                if b["members"].count(self.member) > 1]
        check(not dups, "duplicate members in %s", dups)
        off = [s for s in self.SERVICES if st["services"].get(s) != "ENABLED"]
        check(not off, "services not enabled: %s", off)

    def check_offboarded(self):
        st = self.g.state()
        sas = self.sas(st)
        check(not sas, "service accounts left after offboard: %s", [sa["email"] for sa in sas])
        live = [r["name"] for r in st["roles"] if not r.get("deleted")]
        check(not live, "custom roles left after offboard: %s", live)
        left = [(b["role"], m) for b in st["policy"].get("bindings", []) for m in b["members"]
                if self.email in m]
        check(not left, "bindings left after offboard: %s", left)


# -- AWS (moto behind aws_model_proxy.py) ---------------------------------------------------------

class AwsRig(Rig):
    provider = "aws"
    cluster = "eks"
    profile = "node-autoscaler"
    key_field, secret_field = "accessKeyId", "secretAccessKey"
    store_key_field, store_secret_field = "accessKeyId", "secretAccessKey"
    USER = "cast-eks-prod-eks-1"
    POLICY = "CastEKSPolicy"
    ATTACHED = ["AmazonEC2ReadOnlyAccess", "CastEKSPolicy", "IAMReadOnlyAccess"]
    INLINE = ["CastEKSRestrictedAccess"]

    def start_cloud(self, stack):
        import moto_harness
        self.m = stack.enter_context(moto_harness.moto(validate=True))
        self.log_mark = 0

    def issued_secrets(self):
        return self.m.issued_secrets()

    def cloud_env(self):
        env = self.m.env()
        env["AWS_EC2_METADATA_DISABLED"] = "true"
        return env

    def cloud_reset(self):
        self.m.reset()
        self.m._control("/__proxy__/reset", {})

    def clear_requests(self):
        self.log_mark = len(self.m.requests())

    def release(self):
        self.m.release()

    def requests(self):
        return self.m.requests()[self.log_mark:]

    def writes(self):
        return [{"sel": r["action"], "label": r["action"], "status": r.get("status"),
                 "fault": r.get("fault")}
                for r in self.requests() if r.get("mutating")]

    def inject(self, sel, ordinal, kind):
        kw = {"action": "^%s$" % sel, "ordinal": ordinal}
        if kind == "500":
            kw.update(status=500, code="InternalFailure",
                      message="An internal error occurred.")
        elif kind == "503":
            kw.update(status=503, code="ServiceUnavailable",
                      message="Service is unable to handle request.")
        elif kind == "429":
            kw.update(status=429, code="TooManyRequests", message="Too many requests.",
                      retry_after=1)
        elif kind == "throttle":  # IAM throttles with a 400
            kw.update(status=400, code="Throttling", message="Rate exceeded")
        elif kind == "reset":
            kw.update(kind="reset")
        elif kind == "timeout":
            kw.update(kind="hang", execute=True, delay_ms=HOLD_MS)
        elif kind == "truncated":
            kw.update(kind="truncated")
        elif kind == "invalid-body":
            # a 2xx whose body does not parse (moto_harness.inject defaults to 503)
            kw.update(kind="invalid-xml", execute=True, status=200)
        elif kind == "slow":
            kw.update(kind="slow", delay_ms=SLOW_MS)
        self.m.inject(**kw)

    def violations(self):
        return [r for r in self.requests() if r.get("violations")]

    def users(self):
        return aws_iam_state(self.m)

    def account_keys(self):
        users, _pols = self.users()
        return [k for k, _s in users.get(self.USER, {}).get("keys", [])]

    def check_onboarded(self):
        users, pols = self.users()
        check(sorted(users) == [self.USER], "users: %s", sorted(users))
        u = users[self.USER]
        check(u["tags"].get("managed-by") == "cloudgrant", "user tags: %s", u["tags"])
        check(sorted(u["attached"]) == self.ATTACHED, "attached policies: %s", u["attached"])
        check(sorted(u["inline"]) == self.INLINE, "inline policies: %s", u["inline"])
        check(len(u["keys"]) == 1, "the user has %d access keys: %s", len(u["keys"]), u["keys"])
        check(u["keys"][0][1] == "Active", "the key is %s", u["keys"][0][1])
        check(sorted(pols) == [self.POLICY], "customer policies: %s", sorted(pols))
        check(pols[self.POLICY]["versions"] == 1, "%s has %d versions", self.POLICY,
              pols[self.POLICY]["versions"])

    def check_offboarded(self):
        users, pols = self.users()
        check(not users, "users left after offboard: %s", sorted(users))
        check(not pols, "customer policies left after offboard: %s", sorted(pols))


def aws_iam_state(m):
    """Users (with keys, tags, attached and inline policies) and customer-managed policies of
    moto's account, through botocore against moto directly (never through the proxy, so the
    proxy's log holds only the agent's requests)."""
    import botocore.session
    sess = botocore.session.get_session()
    iam = sess.create_client("iam", region_name="us-east-1", endpoint_url=m.moto_url,
                             aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
                             aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    users = {}
    for u in iam.list_users()["Users"]:
        name = u["UserName"]
        keys = iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
        tags = iam.list_user_tags(UserName=name)["Tags"]
        users[name] = {
            "keys": [(k["AccessKeyId"], k["Status"]) for k in keys],
            "tags": {t["Key"]: t["Value"] for t in tags},
            "attached": [p["PolicyName"] for p in
                         iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]],
            "inline": iam.list_user_policies(UserName=name)["PolicyNames"]}
    pols = {}
    for p in iam.list_policies(Scope="Local")["Policies"]:
        versions = iam.list_policy_versions(PolicyArn=p["Arn"])["Versions"]
        pols[p["PolicyName"]] = {"versions": len(versions), "arn": p["Arn"]}
    return users, pols


def harness_keep():
    return harness._keep()


RIGS = {"outscale": OscRig, "azure": AzureRig, "gcp": GcpRig, "aws": AwsRig}


# -- the cases ------------------------------------------------------------------------------------

def steps_of(writes):
    """[(sel, ordinal, label)] of a run's mutating requests, ordinal = which occurrence."""
    seen = {}
    out = []
    for w in writes:
        seen[w["sel"]] = seen.get(w["sel"], 0) + 1
        n = seen[w["sel"]]
        out.append((w["sel"], n, w["label"] + ("" if n == 1 else " #%d" % n)))
    return out


def discover(rig):
    """The mutating steps of each command, from a clean run of each."""
    rig.reset()
    out = {}
    for cmd in COMMANDS:
        rig.clear_requests()
        p = rig.run(cmd)
        if p.returncode != 0:
            raise RuntimeError("clean %s failed (exit %d):\n%s" % (cmd, p.returncode,
                                                                  tail(p.stdout + p.stderr)))
        writes = rig.writes()
        bad = [w for w in writes if w["fault"] or (w["status"] or 0) >= 300]
        if bad:
            raise RuntimeError("clean %s: refused writes %s" % (cmd, bad))
        out[cmd] = steps_of(writes)
    return out


def same_secret(a, b):
    """Equal secrets (a key file may be a JSON document in one place and text in another)."""
    def norm(v):
        if isinstance(v, str):
            try:
                return json.loads(v)
            except ValueError:
                return v
        return v
    return a is not None and norm(a) == norm(b)


def check_final(rig, cmd, old_key, runs):
    """The exact desired state after cmd (see the module docstring)."""
    creds = rig.credential_reports()
    stored = rig.stored()
    if cmd == "offboard":
        rig.check_offboarded()
        check(stored is None, "the credential Secret is still there after offboard")
        check(not creds, "offboard reported credentials: %s",
              [c["credentials"].get(rig.key_field) for c in creds])
        return
    rig.check_onboarded()
    keys = rig.account_keys()
    check(len(keys) == 1, "live keys: %s", keys)
    key = keys[0]
    check(stored is not None, "no credential Secret")
    check(stored["data"].get(rig.store_key_field) == key,
          "the Secret holds key %s, the account has %s", stored["data"].get(rig.store_key_field),
          key)
    check(stored["annotations"].get(ANN_KEY_ID) == key, "the Secret's key-id annotation is %s",
          stored["annotations"].get(ANN_KEY_ID))
    check(stored["annotations"].get(ANN_DELIVERED) == "true",
          "the Secret is not marked delivered: %s", stored["annotations"])
    check(creds, "no report carried a credential")
    delivered = [c["credentials"].get(rig.key_field) for c in creds]
    last = creds[-1]["credentials"]
    check(last.get(rig.key_field) == key, "the last credential reported is %s, the account's "
          "key is %s (reported: %s)", last.get(rig.key_field), key, delivered)
    check(same_secret(last.get(rig.secret_field), stored["data"].get(rig.store_secret_field)),
          "the secret reported last is not the one in the Secret")
    dup = sorted({k for k in delivered if delivered.count(k) > 1})
    check(not dup, "keys reported in more than one report: %s", dup)
    if cmd == "onboard":
        check(delivered == [key], "onboard reported keys %s (only %s expected)", delivered, key)
    else:
        check(key != old_key, "rotate kept the old key %s", old_key)
        check(old_key not in delivered, "rotate reported the old key again")
        check(len(delivered) <= len(runs), "%d keys reported in %d rotate runs: %s",
              len(delivered), len(runs), delivered)


def run_case(rig, case):
    """-> dict(id, ok, reran, seconds, error)."""
    cmd, (sel, ordinal, label), kind = case["cmd"], case["step"], case["kind"]
    t0 = time.monotonic()
    out = {"id": case["id"], "ok": False, "reran": False, "error": None, "scanned": (0, 0)}
    runs = []
    try:
        rig.reset()
        old_key = None
        if cmd != "onboard":
            p = rig.run("onboard")
            check(p.returncode == 0, "setup onboard failed (exit %d): %s", p.returncode,
                  tail(p.stderr))
            keys = rig.account_keys()
            check(len(keys) == 1, "setup onboard left keys %s", keys)
            old_key = keys[0]
            rig.report_mark = len(rig.central.reports())
            rig.clear_requests()
        rig.inject(sel, ordinal, kind)
        p = rig.run(cmd)
        runs.append(p)
        hit = [w for w in rig.writes() if w["fault"]]
        rig.release()
        check(hit, "the fault was never injected: step %s not reached (writes: %s)", label,
              [w["label"] for w in rig.writes()])
        if p.returncode != 0:
            check(p.returncode == 1, "exit %d: %s", p.returncode, tail(p.stderr))
            check(kind not in RETRIED, "a %s fault at %s failed the run (it is documented as "
                  "retried): exit %d: %s", kind, label, p.returncode, tail(p.stderr))
            out["reran"] = True
            p2 = rig.run(cmd)
            runs.append(p2)
            check(p2.returncode == 0, "the rerun failed too (exit %d): %s\nfirst run: %s",
                  p2.returncode, tail(p2.stderr), tail(p.stderr))
        check_final(rig, cmd, old_key, runs)
        # a fault's error path is where an answer (a key's secret in it) could be echoed
        scan = secret_scan.SecretScan()
        scan.add(TOKEN, rig.api.token, *rig.issued_secrets())
        for i, text in enumerate(rig.outputs):
            scan.take_output("run %d" % (i + 1), text)
        hits = scan.hits()
        check(not hits, "secrets in the agent's output: %s", hits)
        out["scanned"] = (len(scan.issued), len(rig.outputs))
        bad = rig.violations()
        check(not bad, "requests the API model refuses: %s", bad[:3])
        out["ok"] = True
    except CaseFailure as cf:
        out["error"] = str(cf)
        if runs:
            out["error"] += "\n    agent runs: " + "; ".join(
                "exit %d in %.1fs" % (r.returncode, r.elapsed) for r in runs)
            out["error"] += "\n    first run stderr: " + tail(runs[0].stderr, 400)
    except Exception:  # the harness itself
        out["error"] = "harness error: " + traceback.format_exc()
    out["seconds"] = time.monotonic() - t0
    return out


def build_cases(provider, steps):
    cases = []
    for cmd in COMMANDS:
        for step in steps[cmd]:
            for kind in KINDS:
                cid = "%s:%s:%s:%s" % (provider, cmd, step[2], kind)
                cases.append({"id": cid, "cmd": cmd, "step": step, "kind": kind})
    if os.environ.get("CG_FAULT_SAMPLE") == "1":
        cases = sample(cases)
    only = os.environ.get("CG_FAULT_ONLY")
    if only:
        cases = [c for c in cases if re.search(only, c["id"])]
    # the slow cases first, so that they overlap (longest first keeps the makespan short)
    cases.sort(key=lambda c: (c["kind"] != "timeout", c["kind"] not in ("429", "slow",
                                                                         "throttle")))
    return cases


def sample(cases):
    """Step i gets kind i mod len(KINDS); the kinds still missing when there are fewer steps
    than kinds go to the steps in turn. Every step and every kind appear at least once."""
    order = []
    for c in cases:
        key = (c["cmd"], c["step"][2])
        if key not in order:
            order.append(key)
    want = {(key, KINDS[i % len(KINDS)]) for i, key in enumerate(order)}
    for j in range(len(order), len(KINDS)):
        want.add((order[j % len(order)], KINDS[j]))
    return [c for c in cases if ((c["cmd"], c["step"][2]), c["kind"]) in want]


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in RIGS:
        print("usage: test_fault_matrix.py outscale|azure|gcp|aws")
        return 2
    provider = sys.argv[1]
    if not BIN or not os.path.exists(BIN):
        print("CLOUDGRANT_BIN is not set or missing")
        return 1
    skip = prerequisites(provider)
    if skip:
        if os.environ.get("CI") == "true":
            print("missing: %s" % skip)
            return 1
        print("skipped: %s" % skip)
        return 77
    cls = RIGS[provider]
    workers = int(os.environ.get("CG_FAULT_WORKERS") or 8)
    t_start = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="cg-fault-matrix-")
    with contextlib.ExitStack() as stack:
        if not harness_keep():
            stack.callback(shutil.rmtree, workdir, True)
        first = cls(stack, workdir)
        steps = discover(first)
        cases = build_cases(provider, steps)
        nsteps = sum(len(v) for v in steps.values())
        print("fault matrix %s: %d steps (%s) x %d fault kinds = %d cases%s" % (
            provider, nsteps, ", ".join("%s %d" % (c, len(steps[c])) for c in COMMANDS),
            len(KINDS), nsteps * len(KINDS),
            "" if len(cases) == nsteps * len(KINDS) else
            " (%d selected%s)" % (len(cases), ": a sample covering every step and kind"
                                  if os.environ.get("CG_FAULT_SAMPLE") == "1" else "")))
        for cmd in COMMANDS:
            print("  %-8s %s" % (cmd, ", ".join(s[2] for s in steps[cmd])))
        sys.stdout.flush()

        def report(r):
            mark = "ok  " if r["ok"] else ("KNOWN" if r["id"] in KNOWN_FAILURES else "FAIL")
            print("%s %-62s %5.1fs%s" % (mark, r["id"], r["seconds"],
                                         " (rerun)" if r["reran"] else ""))
            sys.stdout.flush()

        try:
            results, nrigs = harness.run_on_rigs(first, lambda: cls(stack, workdir), cases,
                                                 workers, run_case, report)
        except RuntimeError as exc:
            print(exc)
            return 1
    failed = [r for r in results if not r["ok"] and r["id"] not in KNOWN_FAILURES]
    known = [r for r in results if not r["ok"] and r["id"] in KNOWN_FAILURES]
    fixed = [r for r in results if r["ok"] and r["id"] in KNOWN_FAILURES]
    reran = sum(1 for r in results if r["reran"])
    results.sort(key=lambda r: r["id"])
    for r in results:
        if not r["ok"]:
            print("\n%s %s\n    %s" % ("KNOWN FAILURE" if r["id"] in KNOWN_FAILURES
                                      else "FAILED", r["id"],
                                      r["error"].replace("\n", "\n    ")))
            if r["id"] in KNOWN_FAILURES:
                print("    known: %s" % KNOWN_FAILURES[r["id"]])
    for r in fixed:
        print("\nknown failure now passes (remove it from KNOWN_FAILURES): %s" % r["id"])
    print("\nfault matrix %s: %d cases (%s %d steps x %d kinds), %d passed, %d failed, %d known "
          "failures, %d needed the one rerun; %d workers, %.0f s" % (
              provider, len(results),
              "of" if len(results) != nsteps * len(KINDS) else "all", nsteps, len(KINDS),
              len(results) - len(failed) - len(known), len(failed), len(known), reran,
              nrigs, time.monotonic() - t_start))
    print("secret scan: %d agent outputs, each searched for every secret its emulator had "
          "issued so far (up to %d values), 0 hits in the passing cases" % (
              sum(r["scanned"][1] for r in results),
              max([r["scanned"][0] for r in results] or [0])))
    return 1 if failed or fixed or len(results) != len(cases) else 0


def prerequisites(provider):
    """None when the provider's emulator can run here, else what is missing."""
    if provider == "azure":
        import azure_harness
        if not azure_harness.sdk_available():
            return "python3-azure is not installed"
    elif provider == "gcp":
        if not shutil.which("gcloud"):
            return "gcloud is not installed"
    elif provider == "aws":
        import moto_harness
        try:
            moto_harness.find_moto_server()
        except moto_harness.MotoNotFound as exc:
            return str(exc)
    return None


if __name__ == "__main__":
    sys.exit(main())
