#!/usr/bin/python3
"""A local, stateful emulator of the Microsoft Azure APIs cloudgrant uses.

    /usr/bin/python3 azure_api.py --state-dir DIR [--port 0] [--host 127.0.0.1]
        [--ready-file PATH] [--tenant GUID] [--subscription GUID]
        [--replication-lag 0] [--arm-principal-lag 0] [--max-secret-lifetime-days N]
        [--token-ttl 3600] [--delay-ms 0] [--validator auto|off|PYTHON]
        [--require-validator] [--verbose]

One plain-HTTP server on 127.0.0.1; the path picks the API:
  /<tenant>/oauth2/v2.0/token        Microsoft Entra token endpoint (client credentials with a
                                     client secret or a federated client assertion)
  /<tenant>/v2.0/.well-known/openid-configuration   OIDC discovery (what MSAL reads first)
  /metadata/identity/oauth2/token    Azure IMDS managed identity token (Metadata: true)
  /metadata/instance[/...]           Azure IMDS instance metadata (the AKS node of aks.json)
  /v1.0/...                          Microsoft Graph v1.0: applications, their password and
                                     federated identity credentials, servicePrincipals
  /subscriptions/...                 Azure Resource Manager: subscription, resource groups,
                                     Microsoft.Authorization roleDefinitions/roleAssignments
  /_emu/...                          control endpoints for tests (see azure_harness.py)

The state dir gets admin.json ({"tenant", "subscription", "client_id", "client_secret",
"object_id", "sp_id", "issuer", "subject"}: the bootstrap admin app registration, mode 0600),
ports.json ({"api": P}) and, with --ready-file, the port once it listens.

Request shapes: Graph bodies are checked against the Graph v1.0 property sets transcribed in
azure_model.py (unknown property, wrong EDM type -> 400 and a logged violation); ARM PUT bodies
against azure-mgmt-authorization's models (python3-azure), run by azure_model.py under
/usr/bin/python3 as a long-lived JSON-lines subprocess (ARM's 400 InvalidRequestContent).
Secrets (client secrets, assertions, secretText, access tokens) never reach the log, stdout or
stderr. Python 3 standard library only.

Faults (control "inject", see azure_harness.py): method / path_regex select the requests,
count how many get the fault; ordinal=N gives it to the N-th matching request only (the N-1
before it pass untouched); mutating=true/false matches only mutating / read requests. Kinds:
status, reset, truncated, invalid-json, slow, and hang: the answer is held (execute=true: after
the request ran) until the client closes the connection, control "release", or delay_ms
(default 600000) pass; a client still there then gets the normal answer. freeze=true (with
hang): once held, every later API request waits unexecuted too, until "release" (then it runs)
or its client goes away (then it never runs; logged with fault "frozen", status null). The
hang's log entry is written before the hold and gets "held": closed|released|timeout after.
"""
import argparse
import base64
import copy
import datetime
import hashlib
import hmac
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

EMU_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, EMU_DIR)
from emu_common import (EmulatorHandler, QuietThreadingHTTPServer, load_fixture,  # noqa: E402
                        serve, write_atomic)
import azure_model  # noqa: E402  (Graph half: standard library only)

DEFAULT_TENANT = "72f988bf-0000-4000-8000-00000000c0de"   # aks.json metadata.identity.tenantId
DEFAULT_SUBSCRIPTION = "0b1f6471-1bf0-4dda-aec3-111122223333"
TENANT_DOMAIN = "cloudgrantemu.onmicrosoft.com"
CLUSTER = {"name": "aks-main", "group": "rg-prod", "location": "westeurope",
           "node_group": "MC_rg-prod_aks-main_westeurope"}
ADMIN_DISPLAY_NAME = "cloudgrant-bootstrap-admin"
ADMIN_SUBJECT = "system:serviceaccount:cloudgrant-system:cloudgrant"
K8S_TOKEN_AUDIENCE = "api://AzureADTokenExchange"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

GRAPH = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
ARM = "https://management.azure.com"
ARM_AUDIENCES = ("https://management.azure.com", "https://management.core.windows.net")
# scope (lower case) -> resource
SCOPES = {
    "https://graph.microsoft.com/.default": GRAPH,
    GRAPH_APP_ID + "/.default": GRAPH,
    "https://management.azure.com/.default": ARM,
    "https://management.azure.com//.default": ARM,
    "https://management.core.windows.net/.default": "https://management.core.windows.net",
    "https://management.core.windows.net//.default": "https://management.core.windows.net",
}

GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                     r"[0-9a-fA-F]{12}$")
FIC_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$")
MAX_FICS = 20
DAY = 86400.0

# ARM api-versions (real published versions; the emulator's model is 2022-04-01)
AUTHZ_VERSIONS = ("2018-09-01-preview", "2020-03-01-preview", "2020-04-01-preview",
                  "2020-08-01-preview", "2020-10-01-preview", "2021-04-01-preview",
                  "2022-01-01-preview", "2022-04-01")
ROLEDEF_VERSIONS = ("2015-07-01", "2018-01-01-preview", "2022-04-01", "2022-05-01-preview")
RESOURCES_VERSIONS = ("2019-05-01", "2019-05-10", "2019-07-01", "2019-08-01", "2019-10-01",
                      "2020-06-01", "2020-08-01", "2020-10-01", "2021-01-01", "2021-04-01",
                      "2022-09-01")
SUBSCRIPTION_VERSIONS = ("2016-06-01", "2019-06-01", "2019-11-01", "2020-01-01",
                         "2021-01-01", "2022-09-01", "2022-12-01")
IMDS_TOKEN_VERSIONS = ("2018-02-01", "2019-08-01")
IMDS_INSTANCE_VERSIONS = (
    "2017-03-01", "2017-04-02", "2017-08-01", "2017-10-01", "2017-12-01", "2018-02-01",
    "2018-04-02", "2018-10-01", "2019-02-01", "2019-03-11", "2019-04-30", "2019-06-01",
    "2019-06-04", "2019-08-01", "2019-08-15", "2019-11-01", "2020-06-01", "2020-07-15",
    "2020-09-01", "2020-10-01", "2020-12-01", "2021-01-01", "2021-02-01", "2021-03-01",
    "2021-05-01", "2021-10-01", "2021-11-01", "2021-11-15", "2021-12-13", "2023-07-01")
IMDS_NEWEST = ["2023-07-01", "2021-12-13", "2021-11-15"]

# Built-in roles (ids are the same in every tenant). Permissions of the first four are the
# published ones; the last three are abridged to their characteristic action sets.
BUILTIN_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": (
        "Owner", "Grants full access to manage all resources, including the ability to assign "
        "roles in Azure RBAC.", ["*"], []),
    "b24988ac-6180-42a0-ab88-20f7382dd24c": (
        "Contributor", "Grants full access to manage all resources, but does not allow you to "
        "assign roles in Azure RBAC, manage assignments in Azure Blueprints, or share image "
        "galleries.", ["*"],
        ["Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write",
         "Microsoft.Authorization/elevateAccess/Action",
         "Microsoft.Blueprint/blueprintAssignments/write",
         "Microsoft.Blueprint/blueprintAssignments/delete",
         "Microsoft.Compute/galleries/share/action", "Microsoft.Purview/consents/write",
         "Microsoft.Purview/consents/delete"]),
    "acdd72a7-3385-48ef-bd42-f606fba81ae7": (
        "Reader", "View all resources, but does not allow you to make any changes.",
        ["*/read"], []),
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": (
        "User Access Administrator", "Lets you manage user access to Azure resources.",
        ["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"], []),
    "9980e02c-c2be-4d73-94e8-173b1dc7cf3c": (
        "Virtual Machine Contributor", "Create and manage virtual machines, manage disks, "
        "install and run software, reset password of the root user of the virtual machine "
        "using VM extensions, and manage local user accounts using VM extensions. This role "
        "does not grant you management access to the virtual network or storage account the "
        "virtual machines are connected to. This role does not allow you to assign roles in "
        "Azure RBAC.",
        ["Microsoft.Authorization/*/read", "Microsoft.Compute/availabilitySets/*",
         "Microsoft.Compute/locations/*", "Microsoft.Compute/virtualMachines/*",
         "Microsoft.Compute/virtualMachineScaleSets/*", "Microsoft.Compute/disks/write",
         "Microsoft.Compute/disks/read", "Microsoft.Compute/disks/delete",
         "Microsoft.Network/networkInterfaces/*", "Microsoft.Network/virtualNetworks/read",
         "Microsoft.Network/virtualNetworks/subnets/join/action",
         "Microsoft.Resources/deployments/*",
         "Microsoft.Resources/subscriptions/resourceGroups/read",
         "Microsoft.Support/*"], []),
    "4d97b98b-1d4f-4787-a291-c67834d212e7": (
        "Network Contributor", "Lets you manage networks, but not access to them.",
        ["Microsoft.Authorization/*/read", "Microsoft.Insights/alertRules/*",
         "Microsoft.Network/*", "Microsoft.ResourceHealth/availabilityStatuses/read",
         "Microsoft.Resources/deployments/*",
         "Microsoft.Resources/subscriptions/resourceGroups/read", "Microsoft.Support/*"], []),
    "ed7f3fbd-7b88-4dd4-9017-9adb7ce333f8": (
        "Azure Kubernetes Service Contributor Role", "Grants access to read and write Azure "
        "Kubernetes Service clusters",
        ["Microsoft.ContainerService/managedClusters/read",
         "Microsoft.ContainerService/managedClusters/write",
         "Microsoft.Resources/deployments/*",
         "Microsoft.Resources/subscriptions/resourceGroups/read"], []),
}
OWNER_ROLE = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"

# Fidelity notes. Confirmed from Microsoft documentation or from real responses quoted in
# public issues and code: the AADSTS codes, Request_ResourceNotFound and its message, the
# NoBackingApplicationObject message, Request_MultipleObjectsWithSameKeyValue for a second
# service principal, "No password credential found with keyId" (400) on removePassword,
# CredentialInvalidLifetimeAsPerAppPolicy, PrincipalNotFound, RoleAssignmentExists,
# RoleAssignmentUpdateNotPermitted, UnmatchedPrincipalType, RoleDefinitionWithSameNameExists,
# RoleDefinitionHasAssignments, RoleDefinitionDoesNotExist, AuthorizationFailed,
# LinkedAuthorizationFailed, InvalidRequestContent, MissingApiVersionParameter,
# ResourceGroupNotFound, InvalidAuthenticationToken*, ExpiredAuthenticationToken.
# Emulator choices NOT confirmed against the real services (codes or messages may differ):
# RoleDefinitionNameNullOrEmpty, InvalidRoleDefinitionType, RoleDefinitionWithoutPermission,
# InvalidAssignableScopes, InvalidFilterInQueryString, InvalidPrincipalId, the status (409) and
# messages of duplicate federated credentials, the 20-credential limit message, Graph's
# unknown-property code (Request_BadRequest; the OData reader may say BadRequest), the 403
# for assigning a custom role outside its assignable scopes. Deliberate deviations: a role
# assignment naming a principal that never existed fails PrincipalNotFound even with
# principalType set (real ARM then skips the directory lookup and creates an orphan), so a
# client that sends an appId or an app object id where the service principal id belongs is
# caught; Graph reads are open to any valid Graph token (real Graph needs Application.Read.All).

PRINCIPAL_NOT_FOUND = (
    "Principal {pid} does not exist in the directory {tenant}. Check that you have the correct "
    "principal ID. If you are creating this principal and then immediately assigning a role, "
    "this error might be related to a replication delay. In this case, set the role "
    "assignment principalType property to a value, such as ServicePrincipal, User, or Group.  "
    "See https://aka.ms/docs-principaltype")


# ==============================================================================================
# small helpers

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(seg):
    if not isinstance(seg, str) or not re.fullmatch(r"[A-Za-z0-9_-]*", seg):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))


def iso(ts, frac=True):
    d = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    if frac:
        return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%07dZ" % (d.microsecond * 10)
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_graph(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value):
    """An ISO-8601 date-time -> epoch seconds (None when unparseable)."""
    if not isinstance(value, str):
        return None
    v = value.strip()
    v = re.sub(r"(\.\d{6})\d+", r"\1", v)
    if v.endswith(("Z", "z")):
        v = v[:-1] + "+00:00"
    try:
        d = datetime.datetime.fromisoformat(v)
    except ValueError:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    return d.timestamp()


def new_guid():
    return str(uuid.uuid4())


def jwt_encode(header, payload, key):
    h = b64url(json.dumps(header, separators=(",", ":")).encode())
    p = b64url(json.dumps(payload, separators=(",", ":")).encode())
    sig = hmac.new(key, ("%s.%s" % (h, p)).encode(), hashlib.sha256).digest()
    return "%s.%s.%s" % (h, p, b64url(sig))


def jwt_decode(token, key):
    """-> (header, payload, signature_ok); raises ValueError when not a JWS compact JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("JWT is not well formed: it does not have three segments")
    header = json.loads(b64url_decode(parts[0]))
    payload = json.loads(b64url_decode(parts[1]))
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise ValueError("JWT segments are not JSON objects")
    sig = b64url_decode(parts[2])
    want = hmac.new(key, ("%s.%s" % (parts[0], parts[1])).encode(), hashlib.sha256).digest()
    return header, payload, hmac.compare_digest(sig, want)


def odata_string(s):
    return "'%s'" % s.replace("'", "''")


# Every secret this process handed out (client secrets, access tokens, Kubernetes tokens), even
# deleted or expired ones: the tests' secret scan looks for each of them in everything a run
# left behind (/_emu/issued_secrets).
ISSUED_SECRETS = []


def new_secret_text():
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    tail = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.~-"
    text = ("".join(secrets.choice(alphabet) for _ in range(3)) + "8Q~" +
            "".join(secrets.choice(tail) for _ in range(34)))
    ISSUED_SECRETS.append(text)
    return text


def redact(doc):
    """A copy of a parsed body without secret values."""
    if isinstance(doc, dict):
        out = {}
        for k, v in doc.items():
            if k in ("secretText", "client_secret", "client_assertion", "access_token",
                     "key", "refresh_token"):
                out[k] = "<redacted>"
            else:
                out[k] = redact(v)
        return out
    if isinstance(doc, list):
        return [redact(v) for v in doc]
    return doc


class ApiError(Exception):
    """An error in the shape of the API that raised it (graph, arm, login, imds)."""

    def __init__(self, status, code, message, headers=None, extra=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.extra = extra or {}


class ControlError(Exception):
    def __init__(self, message, code=400):
        super().__init__(message)
        self.code = code


# ==============================================================================================
# OData $filter (the subset Graph accepts on applications and servicePrincipals)

class FilterError(Exception):
    pass


def _tokenize_filter(text):
    toks = []
    i = 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "(),:/":
            toks.append(("p", c))
            i += 1
        elif c == "'":
            j = i + 1
            buf = []
            while True:
                if j >= len(text):
                    raise FilterError("unterminated string literal")
                if text[j] == "'":
                    if j + 1 < len(text) and text[j + 1] == "'":
                        buf.append("'")
                        j += 2
                        continue
                    break
                buf.append(text[j])
                j += 1
            toks.append(("s", "".join(buf)))
            i = j + 1
        else:
            m = re.match(r"[A-Za-z0-9_.@$-]+", text[i:])
            if not m:
                raise FilterError("syntax error at position %d" % i)
            toks.append(("w", m.group(0)))
            i += len(m.group(0))
    return toks


class FilterParser:
    """or > and > not > primary: prop eq lit, prop ne lit, prop/any(x:x eq lit),
    startswith(prop,'lit'), (expr). Returns a predicate over a Graph object dict."""

    def __init__(self, text, props, label):
        self.toks = _tokenize_filter(text)
        self.i = 0
        self.props = props
        self.label = label

    def peek(self, kind=None, value=None):
        if self.i >= len(self.toks):
            return None
        t = self.toks[self.i]
        if kind and t[0] != kind:
            return None
        if value is not None and (t[1].lower() if t[0] == "w" else t[1]) != value:
            return None
        return t

    def take(self, kind=None, value=None):
        t = self.peek(kind, value)
        if t is None:
            got = self.toks[self.i][1] if self.i < len(self.toks) else "end of input"
            raise FilterError("syntax error: expected %s, found '%s'" % (value or kind, got))
        self.i += 1
        return t

    def parse(self):
        pred = self.expr_or()
        if self.i != len(self.toks):
            raise FilterError("syntax error at '%s'" % self.toks[self.i][1])
        return pred

    def expr_or(self):
        left = self.expr_and()
        while self.peek("w", "or"):
            self.i += 1
            right = self.expr_and()
            left = (lambda a, b: lambda o: a(o) or b(o))(left, right)
        return left

    def expr_and(self):
        left = self.expr_not()
        while self.peek("w", "and"):
            self.i += 1
            right = self.expr_not()
            left = (lambda a, b: lambda o: a(o) and b(o))(left, right)
        return left

    def expr_not(self):
        if self.peek("w", "not"):
            self.i += 1
            inner = self.expr_not()
            return lambda o: not inner(o)
        return self.primary()

    def literal(self):
        t = self.take()
        if t[0] == "s":
            return t[1]
        if t[0] == "w":
            low = t[1].lower()
            if low in ("true", "false"):
                return low == "true"
            if low == "null":
                return None
            if GUID_RE.match(t[1]):
                return t[1]
            if re.fullmatch(r"-?\d+", t[1]):
                return int(t[1])
        raise FilterError("invalid literal '%s'" % t[1])

    def prop(self, name):
        for p in self.props:
            if p.lower() == name.lower():
                return p
        raise FilterError("Unsupported or invalid query filter clause specified for property "
                          "'%s' of resource '%s'." % (name, self.label))

    def primary(self):
        if self.peek("p", "("):
            self.i += 1
            e = self.expr_or()
            self.take("p", ")")
            return e
        t = self.take("w")
        name = t[1]
        if name.lower() == "startswith" and self.peek("p", "("):
            self.i += 1
            p = self.prop(self.take("w")[1])
            self.take("p", ",")
            lit = self.literal()
            self.take("p", ")")
            if not isinstance(lit, str):
                raise FilterError("startswith needs a string literal")
            return lambda o: isinstance(o.get(p), str) and o[p].lower().startswith(lit.lower())
        p = self.prop(name)
        if self.peek("p", "/"):
            self.i += 1
            self.take("w", "any")
            self.take("p", "(")
            var = self.take("w")[1]
            self.take("p", ":")
            v2 = self.take("w")[1]
            if v2 != var:
                raise FilterError("lambda variable '%s' is not defined" % v2)
            op = self.take("w")[1].lower()
            lit = self.literal()
            self.take("p", ")")
            if op == "eq":
                return lambda o: any(isinstance(x, str) and isinstance(lit, str) and
                                     x.lower() == lit.lower() or x == lit
                                     for x in (o.get(p) or []))
            if op == "ne":
                return lambda o: any(x != lit for x in (o.get(p) or []))
            raise FilterError("operator '%s' is not supported in lambda expressions" % op)
        op = self.take("w")[1].lower()
        lit = self.literal()
        if op not in ("eq", "ne"):
            raise FilterError("Unsupported or invalid query filter clause specified for "
                              "property '%s' of resource '%s'." % (p, self.label))

        def eq(o):
            v = o.get(p)
            if isinstance(v, str) and isinstance(lit, str):
                return v.lower() == lit.lower()
            return v == lit
        return eq if op == "eq" else (lambda o: not eq(o))


# ==============================================================================================
# the validator subprocess (ARM models from python3-azure)

class Validator:
    def __init__(self, python, verbose=False):
        self.lock = threading.Lock()
        self.proc = None
        self.error = None
        self.sdk = None
        self.seq = 0
        env = dict(os.environ)
        env.pop("PYTHONHOME", None)
        env.pop("PYTHONPATH", None)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        try:
            self.proc = subprocess.Popen([python, os.path.join(EMU_DIR, "azure_model.py")],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=None if verbose else subprocess.DEVNULL,
                                         env=env, text=True, bufsize=1)
            line = self.proc.stdout.readline()
            hello = json.loads(line) if line else {"ready": False, "error": "no output"}
            if not hello.get("ready"):
                self.error = hello.get("error") or "validator not ready"
                self.stop()
            else:
                self.sdk = hello.get("sdk")
        except (OSError, ValueError) as exc:
            self.error = "%s: %s" % (type(exc).__name__, exc)
            self.proc = None

    @property
    def ok(self):
        return self.proc is not None and self.proc.poll() is None

    def check(self, kind, body_text):
        with self.lock:
            if not self.ok:
                return None
            self.seq += 1
            try:
                self.proc.stdin.write(json.dumps({"id": self.seq, "kind": kind,
                                                  "body": body_text}) + "\n")
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


# ==============================================================================================
# state

class App:
    """An app registration: its Graph document plus what Graph never shows (secret values)."""

    def __init__(self, doc):
        self.doc = doc
        self.secrets = {}   # keyId -> secretText
        self.fics = []      # federatedIdentityCredential documents

    @property
    def id(self):
        return self.doc["id"]

    @property
    def app_id(self):
        return self.doc["appId"]


def app_document(tenant_domain, display_name, now):
    return {
        "id": new_guid(), "deletedDateTime": None, "appId": new_guid(),
        "applicationTemplateId": None, "disabledByMicrosoftStatus": None,
        "createdDateTime": iso_graph(now), "displayName": display_name, "description": None,
        "groupMembershipClaims": None, "identifierUris": [], "isDeviceOnlyAuthSupported": None,
        "isFallbackPublicClient": None, "nativeAuthenticationApisEnabled": None, "notes": None,
        "publisherDomain": tenant_domain, "serviceManagementReference": None,
        # what Graph gives an app created without signInAudience
        "signInAudience": "AzureADandPersonalMicrosoftAccount",
        "tags": [], "tokenEncryptionKeyId": None, "uniqueName": None, "samlMetadataUrl": None,
        "defaultRedirectUri": None, "certification": None, "optionalClaims": None,
        "servicePrincipalLockConfiguration": None, "requestSignatureVerification": None,
        "addIns": [],
        "api": {"acceptMappedClaims": None, "knownClientApplications": [],
                "requestedAccessTokenVersion": 2, "oauth2PermissionScopes": [],
                "preAuthorizedApplications": []},
        "appRoles": [],
        "info": {"logoUrl": None, "marketingUrl": None, "privacyStatementUrl": None,
                 "supportUrl": None, "termsOfServiceUrl": None},
        "keyCredentials": [],
        "parentalControlSettings": {"countriesBlockedForMinors": [],
                                    "legalAgeGroupRule": "Allow"},
        "passwordCredentials": [], "publicClient": {"redirectUris": []},
        "requiredResourceAccess": [],
        "verifiedPublisher": {"displayName": None, "verifiedPublisherId": None,
                              "addedDateTime": None},
        "web": {"homePageUrl": None, "logoutUrl": None, "redirectUris": [],
                "implicitGrantSettings": {"enableAccessTokenIssuance": False,
                                          "enableIdTokenIssuance": False},
                "redirectUriSettings": []},
        "spa": {"redirectUris": []},
    }


def sp_document(tenant, app_doc):
    return {
        "id": new_guid(), "deletedDateTime": None, "accountEnabled": True,
        "alternativeNames": [], "appDisplayName": app_doc["displayName"],
        "appDescription": None, "appId": app_doc["appId"], "applicationTemplateId": None,
        "appOwnerOrganizationId": tenant, "appRoleAssignmentRequired": False,
        "createdDateTime": None, "description": None, "disabledByMicrosoftStatus": None,
        "displayName": app_doc["displayName"], "homepage": None, "loginUrl": None,
        "logoutUrl": None, "notes": None, "notificationEmailAddresses": [],
        "preferredSingleSignOnMode": None, "preferredTokenSigningKeyThumbprint": None,
        "replyUrls": [], "servicePrincipalNames": [app_doc["appId"]],
        "servicePrincipalType": "Application", "signInAudience": app_doc["signInAudience"],
        "tags": [], "tokenEncryptionKeyId": None, "samlSingleSignOnSettings": None,
        "addIns": [], "appRoles": [],
        "info": {"logoUrl": None, "marketingUrl": None, "privacyStatementUrl": None,
                 "supportUrl": None, "termsOfServiceUrl": None},
        "keyCredentials": [], "oauth2PermissionScopes": [], "passwordCredentials": [],
        "resourceSpecificApplicationPermissions": [],
        "verifiedPublisher": {"displayName": None, "verifiedPublisherId": None,
                              "addedDateTime": None},
    }


class State:
    def __init__(self, cfg, admin):
        self.lock = threading.RLock()
        self.tenant = cfg.tenant
        self.sub = cfg.subscription
        now = time.time()
        self.apps = {}        # object id (lower) -> App
        self.sps = {}         # sp id (lower) -> doc
        self.role_defs = {}   # guid (lower) -> custom role definition (ARM doc)
        self.assignments = {}  # full id (lower) -> ARM doc
        self.groups = {}      # name (lower) -> ARM doc
        self.app_read_lag = {}   # app object id -> requests left that 404
        self.sp_lag = {}         # appId -> POST /servicePrincipals left that fail
        self.principal_lag = {}  # sp id -> ARM PUTs left that fail PrincipalNotFound
        self.rate = {"reads": 11999, "writes": 1199, "deletes": 14999}
        # the bootstrap admin: app registration, secret, federated credential, SP, Owner
        a = App(copy.deepcopy(admin["app"]))
        a.secrets[admin["key_id"]] = admin["secret"]
        a.fics.append(copy.deepcopy(admin["fic"]))
        self.apps[a.id.lower()] = a
        self.sps[admin["sp"]["id"].lower()] = copy.deepcopy(admin["sp"])
        self.admin_sp_id = admin["sp"]["id"]
        for name, loc, managed, tags in (
                (CLUSTER["group"], CLUSTER["location"], None, {"env": "prod"}),
                (CLUSTER["node_group"], CLUSTER["location"],
                 "/subscriptions/%s/resourcegroups/%s/providers/Microsoft.ContainerService/"
                 "managedClusters/%s" % (self.sub, CLUSTER["group"], CLUSTER["name"]),
                 {"aks-managed-cluster-name": CLUSTER["name"],
                  "aks-managed-cluster-rg": CLUSTER["group"]})):
            self.add_group(name, loc, managed, tags)
        owner_id = "/subscriptions/%s/providers/Microsoft.Authorization/roleAssignments/%s" % (
            self.sub, admin["owner_assignment"])
        self.assignments[owner_id.lower()] = {
            "properties": {
                "roleDefinitionId": "/subscriptions/%s/providers/Microsoft.Authorization/"
                                    "roleDefinitions/%s" % (self.sub, OWNER_ROLE),
                "principalId": self.admin_sp_id, "principalType": "ServicePrincipal",
                "scope": "/subscriptions/%s" % self.sub, "condition": None,
                "conditionVersion": None, "createdOn": iso(now), "updatedOn": iso(now),
                "createdBy": None, "updatedBy": None,
                "delegatedManagedIdentityResourceId": None, "description": None},
            "id": owner_id, "type": "Microsoft.Authorization/roleAssignments",
            "name": admin["owner_assignment"]}

    def add_group(self, name, location, managed_by=None, tags=None):
        doc = {"id": "/subscriptions/%s/resourceGroups/%s" % (self.sub, name),
               "name": name, "type": "Microsoft.Resources/resourceGroups",
               "location": location, "tags": dict(tags or {}),
               "properties": {"provisioningState": "Succeeded"}}
        if managed_by:
            doc["managedBy"] = managed_by
        self.groups[name.lower()] = doc
        return doc

    # -- lookups -----------------------------------------------------------------------------
    def app_by_id(self, oid):
        return self.apps.get((oid or "").lower())

    def app_by_app_id(self, app_id):
        for a in self.apps.values():
            if a.app_id.lower() == (app_id or "").lower():
                return a
        return None

    def app_by_unique(self, key):
        for a in self.apps.values():
            if a.doc.get("uniqueName") is not None and a.doc["uniqueName"].lower() == \
                    key.lower():
                return a
        return None

    def sp_by_app_id(self, app_id):
        for s in self.sps.values():
            if s["appId"].lower() == (app_id or "").lower():
                return s
        return None

    def role_def(self, guid):
        g = (guid or "").lower()
        if g in BUILTIN_ROLES:
            return self.builtin_doc(g)
        return self.role_defs.get(g)

    def builtin_doc(self, guid):
        name, desc, actions, not_actions = BUILTIN_ROLES[guid]
        return {"id": "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s"
                      % (self.sub, guid),
                "name": guid, "type": "Microsoft.Authorization/roleDefinitions",
                "properties": {"roleName": name, "type": "BuiltInRole", "description": desc,
                               "assignableScopes": ["/"],
                               "permissions": [{"actions": list(actions),
                                                "notActions": list(not_actions),
                                                "dataActions": [], "notDataActions": []}],
                               "createdOn": "2015-02-02T21:55:09.8806423Z",
                               "updatedOn": "2021-11-11T20:13:47.8628684Z",
                               "createdBy": None, "updatedBy": None}}

    def all_role_defs(self):
        return [self.builtin_doc(g) for g in BUILTIN_ROLES] + list(self.role_defs.values())


# ==============================================================================================
# the emulator

def norm_scope(scope):
    s = "/" + "/".join(p for p in scope.split("/") if p)
    return s


def scope_contains(outer, inner):
    """True when inner is outer or below it (case-insensitive ARM scopes)."""
    o = norm_scope(outer).lower().rstrip("/")
    i = norm_scope(inner).lower().rstrip("/")
    return o == "" or i == o or i.startswith(o + "/")


def action_matches(pattern, action):
    rx = "^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$"
    return re.match(rx, action, re.IGNORECASE) is not None


class Emulator:
    def __init__(self, args):
        self.args = args
        self.state_dir = args.state_dir
        self.port = None
        self.tenant = args.tenant
        self.sub = args.subscription
        self.replication_lag = args.replication_lag
        self.arm_principal_lag = args.arm_principal_lag
        self.max_secret_lifetime_days = args.max_secret_lifetime_days
        self.token_ttl = args.token_ttl
        self.delay_ms = args.delay_ms
        self.verbose = args.verbose
        self.token_key = os.urandom(32)     # signs the access tokens this "Entra" issues
        self.k8s_key = os.urandom(32)       # the "cluster OIDC issuer" key (HS256)
        self.log_lock = threading.Lock()
        self.log = []
        self.seq = 0
        self.faults = []
        self.frozen = False      # a freeze-hang holds every later API request
        self.release_gen = 0     # bumped by control "release": every hold ends
        self.oidc_issuer = "https://%s.oic.prod-aks.azure.com/%s/%s/" % (
            CLUSTER["location"], self.tenant, "c2e8b4a6-7d1f-4f3e-8b9a-0d1c2e3f4a5b")
        now = time.time()
        app = app_document(TENANT_DOMAIN, ADMIN_DISPLAY_NAME, now)
        app["signInAudience"] = "AzureADMyOrg"
        app["tags"] = ["bootstrap"]
        key_id = new_guid()
        secret = new_secret_text()
        app["passwordCredentials"] = [{
            "customKeyIdentifier": None, "displayName": "bootstrap", "endDateTime":
                iso_graph(now + 365 * DAY), "hint": secret[:3], "keyId": key_id,
            "secretText": None, "startDateTime": iso_graph(now)}]
        sp = sp_document(self.tenant, app)
        self.admin = {"app": app, "sp": sp, "key_id": key_id, "secret": secret,
                      "owner_assignment": new_guid(),
                      "fic": {"id": new_guid(), "name": "cloudgrant-bootstrap",
                              "issuer": self.oidc_issuer, "subject": ADMIN_SUBJECT,
                              "description": None, "audiences": [K8S_TOKEN_AUDIENCE]}}
        self.state = State(args, self.admin)
        try:
            fx = load_fixture("aks")
            self.instance = copy.deepcopy(fx["metadata"]["instance"])
        except (OSError, KeyError, ValueError):
            self.instance = {"compute": {}, "network": {"interface": []}}
        comp = self.instance.setdefault("compute", {})
        comp["subscriptionId"] = self.sub
        comp["resourceGroupName"] = CLUSTER["node_group"]
        comp.setdefault("location", CLUSTER["location"])
        comp.setdefault("zone", "1")
        self.validator = None
        if args.validator != "off":
            py = args.validator
            if py == "auto":
                py = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) \
                    else sys.executable
            self.validator = Validator(py, verbose=args.verbose)
            if not self.validator.ok:
                sys.stderr.write("azure_api: validator unavailable: %s\n"
                                 % self.validator.error)
                self.validator = None
        if self.validator is None and args.require_validator:
            raise SystemExit("azure_api: --require-validator and no validator (python3-azure "
                             "under /usr/bin/python3)")

    @property
    def base_url(self):
        return "http://127.0.0.1:%d" % self.port

    def write_files(self):
        write_atomic(os.path.join(self.state_dir, "admin.json"), json.dumps({
            "tenant": self.tenant, "subscription": self.sub,
            "client_id": self.admin["app"]["appId"], "client_secret": self.admin["secret"],
            "object_id": self.admin["app"]["id"], "sp_id": self.admin["sp"]["id"],
            "issuer": self.oidc_issuer, "subject": ADMIN_SUBJECT}, indent=2) + "\n",
            mode=0o600)
        write_atomic(os.path.join(self.state_dir, "ports.json"),
                     json.dumps({"api": self.port}) + "\n")

    def reset(self):
        with self.state.lock:
            self.state = State(self.args, self.admin)
            with self.log_lock:
                self.faults = []
        self.release()

    def release(self):
        with self.log_lock:
            self.frozen = False
            self.release_gen += 1

    # -- tokens ------------------------------------------------------------------------------
    def issue_access_token(self, resource, sp, app_id, acr="1", ttl=None, extra=None):
        now = int(time.time())
        ttl = int(self.token_ttl if ttl is None else ttl)
        payload = {"aud": resource.rstrip("/"), "iss": "https://sts.windows.net/%s/"
                   % self.tenant, "iat": now, "nbf": now, "exp": now + ttl,
                   "aio": b64url(os.urandom(24)), "appid": app_id, "appidacr": acr,
                   "idp": "https://sts.windows.net/%s/" % self.tenant,
                   "idtyp": "app", "oid": sp["id"], "rh": b64url(os.urandom(12)),
                   "sub": sp["id"], "tid": self.tenant, "uti": b64url(os.urandom(16)),
                   "ver": "1.0"}
        payload.update(extra or {})
        tok = jwt_encode({"typ": "JWT", "alg": "HS256", "kid": "emulator-entra"}, payload,
                         self.token_key)
        ISSUED_SECRETS.append(tok)
        return tok, ttl, payload

    def issue_k8s_token(self, issuer, subject, audience, ttl):
        now = int(time.time())
        payload = {"aud": [audience] if isinstance(audience, str) else list(audience),
                   "exp": now + int(ttl), "iat": now, "nbf": now, "iss": issuer,
                   "sub": subject, "jti": new_guid(),
                   "kubernetes.io": {"namespace": subject.split(":")[2]
                                     if subject.count(":") >= 3 else "default",
                                     "serviceaccount": {"name": subject.split(":")[-1],
                                                        "uid": new_guid()}}}
        tok = jwt_encode({"alg": "HS256", "kid": "emulator-k8s-oidc"}, payload, self.k8s_key)
        ISSUED_SECRETS.append(tok)
        return tok

    def authenticate(self, header, api):
        """-> token payload; raises ApiError in the API's shape."""
        if api == "graph":
            def fail(msg):
                return ApiError(401, "InvalidAuthenticationToken", msg, {
                    "WWW-Authenticate": 'Bearer realm="", authorization_uri='
                                        '"https://login.microsoftonline.com/common/oauth2/'
                                        'authorize", client_id="%s"' % GRAPH_APP_ID})
        else:
            def fail(msg, code="InvalidAuthenticationToken"):
                return ApiError(401, code, msg, {
                    "WWW-Authenticate": 'Bearer authorization_uri="https://login.windows.net/'
                                        '%s", error="invalid_token", error_description="%s"'
                                        % (self.tenant, msg.replace('"', "'"))})
        if not header:
            if api == "graph":
                raise fail("Access token is empty.")
            raise ApiError(401, "AuthenticationFailed", "Authentication failed. The "
                           "'Authorization' header is missing.", {
                               "WWW-Authenticate": 'Bearer authorization_uri="https://login.'
                                                   'windows.net/%s", error="invalid_token", '
                                                   'error_description="The authentication '
                                                   'failed because of missing \'Authorization\''
                                                   ' header."' % self.tenant})
        scheme, _, tok = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not tok.strip():
            if api == "graph":
                raise fail("Access token is empty.")
            raise ApiError(401, "AuthenticationFailedInvalidHeader", "Authentication failed. "
                           "The 'Authorization' header is provided in an invalid format.")
        try:
            _h, payload, ok = jwt_decode(tok.strip(), self.token_key)
        except (ValueError, UnicodeDecodeError):
            raise fail("IDX14100: JWT is not well formed, there are no dots (.)."
                       if "." not in tok else "Invalid JWT token. The token is malformed."
                       if api == "graph" else "The access token is invalid.") from None
        if not ok:
            raise fail("Access token validation failure." if api == "graph"
                       else "The access token is invalid.")
        now = time.time()
        exp = payload.get("exp")
        if not isinstance(exp, (int, float)) or exp <= now:
            if api == "graph":
                raise fail("Lifetime validation failed, the token is expired.")
            raise fail("The access token expiry UTC time '%s' is earlier than current UTC "
                       "time '%s'." % (iso(exp or 0, False), iso(now, False)),
                       "ExpiredAuthenticationToken")
        aud = str(payload.get("aud", "")).rstrip("/")
        if api == "graph":
            if aud not in (GRAPH, GRAPH_APP_ID):
                raise fail("Access token validation failure. Invalid audience.")
        elif aud not in ARM_AUDIENCES:
            raise fail("The access token has been obtained for wrong audience or resource "
                       "'%s'. It should exactly match with one of the allowed audiences "
                       "'https://management.core.windows.net/','https://management.core."
                       "windows.net','https://management.azure.com/','https://management."
                       "azure.com'." % payload.get("aud"), "InvalidAuthenticationTokenAudience")
        if str(payload.get("tid", "")).lower() != self.tenant.lower():
            raise fail("The access token is from the wrong issuer.",
                       "InvalidAuthenticationTokenTenant")
        return payload

    # -- log and faults ----------------------------------------------------------------------
    def record(self, entry):
        with self.log_lock:
            self.seq += 1
            entry["seq"] = self.seq
            entry["ts"] = round(time.time(), 3)
            self.log.append(entry)
        if self.verbose:
            sys.stderr.write("azure_api: %s\n" % json.dumps(
                {k: v for k, v in entry.items() if k != "body"}))

    def take_fault(self, api, verb, path, query, mutating=None):
        with self.log_lock:
            for f in self.faults:
                m = f.get("method")
                if m and m.upper() != verb and m.lower() != api:
                    continue
                rx = f.get("path_regex")
                if rx and not (re.search(rx, path) or
                               re.search(rx, path + ("?" + query if query else ""))):
                    continue
                if f.get("mutating") is not None and mutating is not None and \
                        bool(f["mutating"]) != bool(mutating):
                    continue
                if f.get("skip", 0) > 0:  # ordinal: not this one yet
                    f["skip"] -= 1
                    continue
                f["count"] -= 1
                if f["count"] <= 0:
                    self.faults.remove(f)
                return dict(f)
        return None

    # -- state dump (no secrets) --------------------------------------------------------------
    def dump(self):
        st = self.state
        with st.lock:
            apps = []
            for a in st.apps.values():
                d = copy.deepcopy(a.doc)
                d["federatedIdentityCredentials"] = copy.deepcopy(a.fics)
                apps.append(d)
            return {
                "tenant": self.tenant, "subscription": self.sub,
                "admin": {"client_id": self.admin["app"]["appId"],
                          "object_id": self.admin["app"]["id"],
                          "sp_id": self.admin["sp"]["id"]},
                "applications": apps,
                "servicePrincipals": copy.deepcopy(list(st.sps.values())),
                "roleDefinitions": copy.deepcopy(list(st.role_defs.values())),
                "roleAssignments": copy.deepcopy(list(st.assignments.values())),
                "resourceGroups": copy.deepcopy(list(st.groups.values())),
                "lag": {"app_reads": dict(st.app_read_lag), "sp_creates": dict(st.sp_lag),
                        "arm_principals": dict(st.principal_lag)},
                "config": {"replication_lag": self.replication_lag,
                           "arm_principal_lag": self.arm_principal_lag,
                           "max_secret_lifetime_days": self.max_secret_lifetime_days,
                           "token_ttl": self.token_ttl, "delay_ms": self.delay_ms,
                           "validating": self.validator is not None,
                           "sdk": self.validator.sdk if self.validator else None},
                "faults": list(self.faults),
            }


# ==============================================================================================
# Graph v1.0

APP_TYPE = "microsoft.graph.application"
SP_TYPE = "microsoft.graph.servicePrincipal"
FIC_TYPE = "microsoft.graph.federatedIdentityCredential"
APP_FILTER_PROPS = ("displayName", "appId", "id", "uniqueName", "tags", "signInAudience",
                    "publisherDomain", "identifierUris", "description", "notes")
SP_FILTER_PROPS = ("displayName", "appId", "id", "tags", "servicePrincipalType",
                   "accountEnabled", "servicePrincipalNames", "appOwnerOrganizationId")
WRITABLE_FIC = ("name", "issuer", "subject", "audiences", "description")


def graph_error(status, code, message, extra=None):
    return ApiError(status, code, message, extra=extra)


def not_found(ident):
    return graph_error(404, "Request_ResourceNotFound", "Resource '%s' does not exist or one "
                       "of its queried reference-property objects are not present." % ident)


def parse_key_segment(seg):
    """'applications(uniqueName='k')' -> ('applications', 'uniqueName', 'k'); plain segment
    -> (seg, None, None). Raises ApiError for a malformed key."""
    m = re.fullmatch(r"([A-Za-z]+)\((.*)\)", seg, re.S)
    if not m:
        return seg, None, None
    inner = m.group(2)
    km = re.fullmatch(r"\s*([A-Za-z]+)\s*=\s*'((?:[^']|'')*)'\s*", inner, re.S)
    if km:
        return m.group(1), km.group(1), km.group(2).replace("''", "'")
    km = re.fullmatch(r"\s*'((?:[^']|'')*)'\s*", inner, re.S)
    if km:
        return m.group(1), "id", km.group(1).replace("''", "'")
    km = re.fullmatch(r"\s*([A-Za-z]+)\s*=\s*([0-9a-fA-F-]{36})\s*", inner)
    if km:
        return m.group(1), km.group(1), km.group(2)
    raise graph_error(400, "BadRequest", "Bad Request - Error in query syntax.")


class Graph:
    def __init__(self, emu, handler):
        self.emu = emu
        self.h = handler

    @property
    def st(self):
        return self.emu.state

    def ctx(self, entity):
        return "%s/v1.0/$metadata#%s" % (self.emu.base_url, entity)

    # -- entry -------------------------------------------------------------------------------
    def handle(self, verb, segs, query, parsed, raw_body, entry):
        """-> (status, doc or None, headers)."""
        payload = self.emu.authenticate(self.h.headers.get("Authorization"), "graph")
        entry["principal"] = payload.get("oid")
        self.is_admin = str(payload.get("oid", "")).lower() == \
            self.st.admin_sp_id.lower()
        self.entry = entry
        self.query = query
        self.parsed = parsed
        self.raw_body = raw_body
        if not segs:
            raise graph_error(400, "BadRequest", "Invalid request.")
        coll, key_name, key_val = parse_key_segment(segs[0])
        low = coll.lower()
        if low == "applications":
            return self.applications(verb, key_name, key_val, segs[1:])
        if low == "serviceprincipals":
            return self.service_principals(verb, key_name, key_val, segs[1:])
        raise graph_error(400, "BadRequest", "Resource not found for the segment '%s'."
                          % coll)

    def need_write(self):
        if not self.is_admin:
            raise graph_error(403, "Authorization_RequestDenied",
                              "Insufficient privileges to complete the operation.")

    def method_not_allowed(self):
        raise graph_error(405, "Request_BadRequest",
                          "Specified HTTP method is not allowed for the request target.")

    def body(self, type_name):
        """The parsed JSON object body, checked against the Graph model."""
        if self.parsed is None:
            raise graph_error(400, "BadRequest", "Unable to read JSON request payload. Please "
                              "ensure Content-Type header is set and payload is of valid "
                              "JSON format.")
        doc = self.parsed
        if not isinstance(doc, dict):
            vs = azure_model.check_graph(type_name, doc)
            self.entry["violations"].extend(v.message for v in vs)
            raise graph_error(400, "BadRequest", vs[0].message if vs else
                              "Invalid request body.")
        vs = azure_model.check_graph(type_name, doc)
        if vs:
            self.entry["violations"].extend(v.message for v in vs)
            raise graph_error(400, "Request_BadRequest", vs[0].message)
        return doc

    def select(self, doc, type_name):
        sel = self.query.get("$select")
        if not sel:
            return doc
        fields = [f.strip() for f in sel[0].split(",") if f.strip()]
        known = azure_model.graph_properties(type_name) | {"id"}
        out = {}
        for f in fields:
            match = next((k for k in known if k.lower() == f.lower()), None)
            if match is None:
                raise graph_error(400, "Request_BadRequest", "Could not find a property "
                                  "named '%s' on type '%s'." % (f, type_name))
            if match in doc:
                out[match] = doc[match]
        return out

    def list_page(self, items, type_name, entity, filter_props, label, path):
        flt = self.query.get("$filter")
        if flt:
            try:
                pred = FilterParser(flt[0], filter_props, label).parse()
            except FilterError as exc:
                msg = str(exc)
                code = "Request_UnsupportedQuery" if "Unsupported" in msg else "BadRequest"
                if code == "BadRequest":
                    msg = "Invalid filter clause: " + msg
                raise graph_error(400, code, msg) from None
            items = [i for i in items if pred(i)]
        top = 100
        if self.query.get("$top"):
            t = self.query["$top"][0]
            if not re.fullmatch(r"\d+", t) or not 1 <= int(t) <= 999:
                raise graph_error(400, "Request_BadRequest", "Invalid page size specified: "
                                  "'%s'. Must be between 1 and 999 inclusive." % t)
            top = int(t)
        start = 0
        if self.query.get("$skiptoken"):
            try:
                tok = json.loads(b64url_decode(self.query["$skiptoken"][0]))
                start = int(tok["o"])
                if tok.get("f") != (flt[0] if flt else None):
                    raise ValueError("filter changed")
            except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                raise graph_error(400, "Directory_ExpiredPageToken", "The specified page "
                                  "token value has expired and can no longer be included in "
                                  "your request.") from None
        items = sorted(items, key=lambda d: d.get("createdDateTime") or "", reverse=False)
        page = items[start:start + top]
        doc = {"@odata.context": self.ctx(entity),
               "value": [self.select(i, type_name) for i in page]}
        if start + top < len(items):
            q = {k: v[0] for k, v in self.query.items() if k != "$skiptoken"}
            q["$skiptoken"] = b64url(json.dumps({"o": start + top,
                                                 "f": flt[0] if flt else None}).encode())
            doc["@odata.nextLink"] = "%s/v1.0/%s?%s" % (
                self.emu.base_url, path, urllib.parse.urlencode(q, quote_via=urllib.parse.quote,
                                                                safe="$'(),:"))
        return 200, doc, {}

    # -- applications ------------------------------------------------------------------------
    def render_app(self, a):
        d = copy.deepcopy(a.doc)
        for pc in d["passwordCredentials"]:
            pc["secretText"] = None
        return d

    def find_app(self, key_name, key_val, lagging=True):
        """-> App or raises 404. key_name None = by object id."""
        st = self.st
        if key_name is None or key_name.lower() == "id":
            if not GUID_RE.match(key_val or ""):
                raise graph_error(400, "Request_BadRequest", "Invalid object identifier "
                                  "'%s'." % key_val)
            left = st.app_read_lag.get(key_val.lower(), 0)
            if lagging and left > 0:
                st.app_read_lag[key_val.lower()] = left - 1
                raise not_found(key_val)
            a = st.app_by_id(key_val)
        elif key_name.lower() == "appid":
            if not GUID_RE.match(key_val):
                raise graph_error(400, "Request_BadRequest", "Invalid object identifier "
                                  "'%s'." % key_val)
            a = st.app_by_app_id(key_val)
        elif key_name.lower() == "uniquename":
            a = st.app_by_unique(key_val)
        else:
            raise graph_error(400, "BadRequest", "The key property '%s' is not a valid "
                              "alternate key of type 'microsoft.graph.application'." % key_name)
        if a is None:
            raise not_found(key_val)
        return a

    def applications(self, verb, key_name, key_val, rest):
        st = self.st
        if key_val is None and not rest:
            if verb == "GET":
                return self.list_page([self.render_app(a) for a in st.apps.values()],
                                      APP_TYPE, "applications", APP_FILTER_PROPS,
                                      "Application", "applications")
            if verb == "POST":
                self.need_write()
                doc = self.body(APP_TYPE)
                return self.create_app(doc, None)
            self.method_not_allowed()
        if key_val is None:
            # /applications/{id}/...
            key_val, rest = rest[0], rest[1:]
            key_name = None
            if not rest and verb == "GET" and not GUID_RE.match(key_val):
                raise graph_error(400, "Request_BadRequest", "Invalid object identifier '%s'."
                                  % key_val)
        if not rest:
            if verb == "GET":
                a = self.find_app(key_name, key_val)
                doc = self.select(self.render_app(a), APP_TYPE)
                doc = dict({"@odata.context": self.ctx("applications/$entity")}, **doc)
                return 200, doc, {}
            if verb == "PATCH":
                self.need_write()
                doc = self.body(APP_TYPE)
                prefer = (self.h.headers.get("Prefer") or "").lower()
                upsert = "create-if-missing" in [p.strip() for p in prefer.split(",")]
                if key_name is not None and key_name.lower() == "uniquename":
                    a = st.app_by_unique(key_val)
                    if a is None:
                        if not upsert:
                            raise not_found(key_val)
                        if doc.get("uniqueName") not in (None, key_val):
                            raise graph_error(400, "Request_BadRequest", "The value of "
                                              "uniqueName in the request body must match the "
                                              "key in the request URL.")
                        return self.create_app(doc, key_val, upsert=True)
                    self.update_app(a, doc)
                    return 204, None, {}
                a = self.find_app(key_name, key_val)
                self.update_app(a, doc)
                return 204, None, {}
            if verb == "DELETE":
                self.need_write()
                a = self.find_app(key_name, key_val)
                self.delete_app(a)
                return 204, None, {}
            self.method_not_allowed()
        action = rest[0]
        if action.lower() in ("addpassword", "microsoft.graph.addpassword"):
            if verb != "POST":
                self.method_not_allowed()
            self.need_write()
            a = self.find_app(key_name, key_val)
            doc = self.body("action:addPassword") if self.raw_body else {}
            if len(rest) > 1:
                raise graph_error(400, "BadRequest", "Resource not found for the segment "
                                  "'%s'." % rest[1])
            return self.add_password(a, doc.get("passwordCredential") or {})
        if action.lower() in ("removepassword", "microsoft.graph.removepassword"):
            if verb != "POST":
                self.method_not_allowed()
            self.need_write()
            a = self.find_app(key_name, key_val)
            doc = self.body("action:removePassword")
            kid = doc.get("keyId")
            if not kid:
                raise graph_error(400, "Request_BadRequest", "The request body is missing "
                                  "the required parameter 'keyId'.")
            return self.remove_password(a, kid)
        fcoll, fkey_name, fkey_val = parse_key_segment(action)
        if fcoll.lower() == "federatedidentitycredentials":
            a = self.find_app(key_name, key_val)
            if fkey_val is None and len(rest) > 1:
                fkey_name, fkey_val = "id_or_name", rest[1]
                rest = rest[1:]
            if len(rest) > 1:
                raise graph_error(400, "BadRequest", "Resource not found for the segment "
                                  "'%s'." % rest[1])
            return self.fics(verb, a, fkey_name, fkey_val)
        raise graph_error(400, "BadRequest", "Resource not found for the segment '%s'."
                          % action)

    def check_app_fields(self, doc, creating):
        for k in ("passwordCredentials", "keyCredentials"):
            if doc.get(k):
                self.entry["violations"].append(
                    "emulator: %s in an application body is not modelled (use addPassword)"
                    % k)
                raise graph_error(400, "Request_BadRequest", "Updates to %s are not "
                                  "supported by the emulator; use addPassword/removePassword."
                                  % k)
        if creating and not doc.get("displayName"):
            raise graph_error(400, "Request_BadRequest", "Invalid value specified for "
                              "property 'displayName' of resource 'Application'.")
        if "displayName" in doc and (doc["displayName"] is None or
                                     not doc["displayName"].strip() or
                                     len(doc["displayName"]) > 256):
            raise graph_error(400, "Request_BadRequest", "Invalid value specified for "
                              "property 'displayName' of resource 'Application'.")
        for t in doc.get("tags") or []:
            if len(t) > 256:
                raise graph_error(400, "Request_BadRequest", "Invalid value specified for "
                                  "property 'tags' of resource 'Application'.")

    def writable(self, doc, type_name):
        props = azure_model.GRAPH_TYPES[type_name]
        return {k: v for k, v in doc.items()
                if "@" not in k and k in props and not props[k].startswith("ro:")}

    def create_app(self, doc, unique, upsert=False):
        st = self.st
        self.check_app_fields(doc, True)
        un = unique if unique is not None else doc.get("uniqueName")
        if un is not None:
            if not un.strip():
                raise graph_error(400, "Request_BadRequest", "Invalid value specified for "
                                  "property 'uniqueName' of resource 'Application'.")
            if st.app_by_unique(un) is not None:
                raise graph_error(409, "Request_MultipleObjectsWithSameKeyValue",
                                  "Another object with the same value for property "
                                  "uniqueName already exists.")
        now = time.time()
        a = App(app_document(TENANT_DOMAIN, doc["displayName"], now))
        for k, v in self.writable(doc, APP_TYPE).items():
            if k in ("passwordCredentials", "keyCredentials"):
                continue
            if isinstance(a.doc.get(k), dict) and isinstance(v, dict):
                a.doc[k].update(v)
            else:
                a.doc[k] = copy.deepcopy(v)
        a.doc["uniqueName"] = un
        st.apps[a.id.lower()] = a
        lag = self.emu.replication_lag
        if lag > 0:
            st.app_read_lag[a.id.lower()] = lag
            st.sp_lag[a.app_id.lower()] = lag
        out = dict({"@odata.context": self.ctx("applications/$entity")}, **self.render_app(a))
        return 201, out, {"Location": "%s/v2/%s/directoryObjects/%s/Microsoft.DirectoryServices"
                                      ".Application" % (self.emu.base_url, self.emu.tenant,
                                                        a.id)}

    def update_app(self, a, doc):
        self.check_app_fields(doc, False)
        if "uniqueName" in doc and doc["uniqueName"] != a.doc.get("uniqueName"):
            if a.doc.get("uniqueName") is not None:
                raise graph_error(400, "Request_BadRequest", "Property 'uniqueName' is "
                                  "immutable and cannot be updated.")
            if doc["uniqueName"] and self.st.app_by_unique(doc["uniqueName"]) is not None:
                raise graph_error(409, "Request_MultipleObjectsWithSameKeyValue",
                                  "Another object with the same value for property "
                                  "uniqueName already exists.")
        for k, v in self.writable(doc, APP_TYPE).items():
            if k in ("passwordCredentials", "keyCredentials"):
                continue
            if isinstance(a.doc.get(k), dict) and isinstance(v, dict):
                a.doc[k].update(copy.deepcopy(v))
            else:
                a.doc[k] = copy.deepcopy(v)
        sp = self.st.sp_by_app_id(a.app_id)
        if sp is not None:
            sp["appDisplayName"] = a.doc["displayName"]
            sp["signInAudience"] = a.doc["signInAudience"]

    def delete_app(self, a):
        st = self.st
        st.apps.pop(a.id.lower(), None)
        sp = st.sp_by_app_id(a.app_id)
        if sp is not None:
            st.sps.pop(sp["id"].lower(), None)

    def add_password(self, a, pc):
        now = time.time()
        start = parse_iso(pc.get("startDateTime")) if pc.get("startDateTime") else now
        end = parse_iso(pc.get("endDateTime")) if pc.get("endDateTime") else \
            start + 2 * 365.25 * DAY
        if end <= start:
            raise graph_error(400, "Request_BadRequest", "Invalid value specified for "
                              "property 'endDateTime' of resource 'PasswordCredential'.")
        cap = self.emu.max_secret_lifetime_days
        if cap is not None and (end - now > cap * DAY + 60):
            raise graph_error(400, "CredentialInvalidLifetimeAsPerAppPolicy",
                              "Credential lifetime exceeds the max value allowed as per "
                              "assigned policy.")
        secret = new_secret_text()
        cred = {"customKeyIdentifier": None, "displayName": pc.get("displayName"),
                "endDateTime": iso_graph(end), "hint": secret[:3], "keyId": new_guid(),
                "secretText": None, "startDateTime": iso_graph(start)}
        a.doc["passwordCredentials"].append(cred)
        a.secrets[cred["keyId"]] = secret
        out = dict(cred, secretText=secret)
        out = dict({"@odata.context": self.ctx("microsoft.graph.passwordCredential")}, **out)
        return 200, out, {}

    def remove_password(self, a, kid):
        for pc in list(a.doc["passwordCredentials"]):
            if pc["keyId"].lower() == kid.lower():
                a.doc["passwordCredentials"].remove(pc)
                a.secrets.pop(pc["keyId"], None)
                return 204, None, {}
        raise graph_error(400, "Request_BadRequest", "No password credential found with "
                          "keyId %s." % kid)

    # -- federated identity credentials ------------------------------------------------------
    def fics(self, verb, a, key_name, key_val):
        entity = "applications('%s')/federatedIdentityCredentials" % a.id
        if key_val is None:
            if verb == "GET":
                return self.list_page(copy.deepcopy(a.fics), FIC_TYPE, entity,
                                      ("name", "issuer", "subject", "id"),
                                      "FederatedIdentityCredential",
                                      "applications/%s/federatedIdentityCredentials" % a.id)
            if verb == "POST":
                self.need_write()
                doc = self.body(FIC_TYPE)
                return self.create_fic(a, doc, entity)
            self.method_not_allowed()
        fic = None
        for f in a.fics:
            if key_name in ("id_or_name", "id") and f["id"].lower() == key_val.lower():
                fic = f
            elif key_name in ("id_or_name", "name") and f["name"].lower() == key_val.lower():
                fic = f
        if fic is None:
            raise not_found(key_val)
        if verb == "GET":
            return 200, dict({"@odata.context": self.ctx(entity + "/$entity")},
                             **copy.deepcopy(fic)), {}
        if verb == "PATCH":
            self.need_write()
            doc = self.body(FIC_TYPE)
            if "name" in doc and doc["name"] != fic["name"]:
                raise graph_error(400, "Request_BadRequest", "Property 'name' is read-only "
                                  "and cannot be updated.")
            merged = dict(fic)
            merged.update({k: v for k, v in doc.items() if k in WRITABLE_FIC})
            self.check_fic(a, merged, fic)
            fic.update(merged)
            return 204, None, {}
        if verb == "DELETE":
            self.need_write()
            a.fics.remove(fic)
            return 204, None, {}
        self.method_not_allowed()

    def check_fic(self, a, doc, existing=None):
        for k in ("name", "issuer", "subject", "audiences"):
            if doc.get(k) in (None, "", []):
                raise graph_error(400, "Request_BadRequest", "Invalid value specified for "
                                  "property '%s' of resource 'FederatedIdentityCredential'." % k)
        if not FIC_NAME_RE.match(doc["name"]):
            raise graph_error(400, "Request_BadRequest", "Invalid value specified for property "
                              "'name' of resource 'FederatedIdentityCredential'.")
        if len(doc["audiences"]) != 1:
            raise graph_error(400, "Request_BadRequest", "Only one audience is supported for "
                              "a federated identity credential.")
        if not re.match(r"^https://", doc["issuer"]) or len(doc["issuer"]) > 600:
            raise graph_error(400, "Request_BadRequest", "Invalid value specified for property "
                              "'issuer' of resource 'FederatedIdentityCredential'.")
        if len(doc["subject"]) > 600:
            raise graph_error(400, "Request_BadRequest", "Invalid value specified for property "
                              "'subject' of resource 'FederatedIdentityCredential'.")
        for f in a.fics:
            if f is existing:
                continue
            if f["name"].lower() == doc["name"].lower():
                raise graph_error(409, "Request_MultipleObjectsWithSameKeyValue",
                                  "FederatedIdentityCredential with name %s already exists."
                                  % doc["name"])
            if f["issuer"] == doc["issuer"] and f["subject"] == doc["subject"]:
                raise graph_error(409, "Request_MultipleObjectsWithSameKeyValue",
                                  "FederatedIdentityCredential with the same issuer and "
                                  "subject already exists.")

    def create_fic(self, a, doc, entity):
        self.check_fic(a, doc)
        if len(a.fics) >= MAX_FICS:
            raise graph_error(400, "Request_BadRequest", "The number of federated identity "
                              "credentials on the application has reached the limit of %d."
                              % MAX_FICS)
        fic = {"id": new_guid(), "name": doc["name"], "issuer": doc["issuer"],
               "subject": doc["subject"], "description": doc.get("description"),
               "audiences": list(doc["audiences"])}
        a.fics.append(fic)
        return 201, dict({"@odata.context": self.ctx(entity + "/$entity")},
                         **copy.deepcopy(fic)), {}

    # -- service principals ------------------------------------------------------------------
    def find_sp(self, key_name, key_val):
        st = self.st
        if key_name is None or key_name.lower() == "id":
            if not GUID_RE.match(key_val or ""):
                raise graph_error(400, "Request_BadRequest", "Invalid object identifier '%s'."
                                  % key_val)
            sp = st.sps.get(key_val.lower())
        elif key_name.lower() == "appid":
            sp = st.sp_by_app_id(key_val)
        else:
            raise graph_error(400, "BadRequest", "The key property '%s' is not a valid "
                              "alternate key of type 'microsoft.graph.servicePrincipal'."
                              % key_name)
        if sp is None:
            raise not_found(key_val)
        return sp

    def service_principals(self, verb, key_name, key_val, rest):
        st = self.st
        if key_val is None and not rest:
            if verb == "GET":
                return self.list_page(copy.deepcopy(list(st.sps.values())), SP_TYPE,
                                      "servicePrincipals", SP_FILTER_PROPS,
                                      "ServicePrincipal", "servicePrincipals")
            if verb == "POST":
                self.need_write()
                doc = self.body(SP_TYPE)
                return self.create_sp(doc)
            self.method_not_allowed()
        if key_val is None:
            key_val, rest, key_name = rest[0], rest[1:], None
        if rest:
            raise graph_error(400, "BadRequest", "Resource not found for the segment '%s'."
                              % rest[0])
        sp = self.find_sp(key_name, key_val)
        if verb == "GET":
            return 200, dict({"@odata.context": self.ctx("servicePrincipals/$entity")},
                             **self.select(copy.deepcopy(sp), SP_TYPE)), {}
        if verb == "PATCH":
            self.need_write()
            doc = self.body(SP_TYPE)
            if "appId" in doc and doc["appId"] != sp["appId"]:
                raise graph_error(400, "Request_BadRequest", "Property 'appId' is read-only "
                                  "and cannot be updated.")
            for k, v in self.writable(doc, SP_TYPE).items():
                if k not in ("appId", "passwordCredentials", "keyCredentials"):
                    sp[k] = copy.deepcopy(v)
            return 204, None, {}
        if verb == "DELETE":
            self.need_write()
            st.sps.pop(sp["id"].lower(), None)
            return 204, None, {}
        self.method_not_allowed()

    def create_sp(self, doc):
        st = self.st
        app_id = doc.get("appId")
        if not app_id:
            raise graph_error(400, "Request_BadRequest", "Invalid value specified for "
                              "property 'appId' of resource 'ServicePrincipal'.")
        no_backing = graph_error(
            400, "Request_BadRequest", "The appId '%s' of the service principal does not "
            "reference a valid application object." % app_id,
            extra={"details": [{"code": "NoBackingApplicationObject", "message": "The appId "
                                "'%s' of the service principal does not reference a valid "
                                "application object." % app_id, "target": "appId"}]})
        left = st.sp_lag.get(app_id.lower(), 0)
        if left > 0:
            st.sp_lag[app_id.lower()] = left - 1
            raise no_backing
        a = st.app_by_app_id(app_id)
        if a is None:
            raise no_backing
        if st.sp_by_app_id(app_id) is not None:
            raise graph_error(409, "Request_MultipleObjectsWithSameKeyValue", "The service "
                              "principal cannot be created, updated, or restored because the "
                              "service principal name %s is already in use." % app_id)
        sp = sp_document(self.emu.tenant, a.doc)
        for k, v in self.writable(doc, SP_TYPE).items():
            if k not in ("appId", "passwordCredentials", "keyCredentials"):
                sp[k] = copy.deepcopy(v)
        st.sps[sp["id"].lower()] = sp
        if self.emu.arm_principal_lag > 0:
            st.principal_lag[sp["id"].lower()] = self.emu.arm_principal_lag
        return 201, dict({"@odata.context": self.ctx("servicePrincipals/$entity")},
                         **copy.deepcopy(sp)), {}


# ==============================================================================================
# ARM

def arm_error(status, code, message, headers=None):
    return ApiError(status, code, message, headers)


class Arm:
    def __init__(self, emu, handler):
        self.emu = emu
        self.h = handler

    @property
    def st(self):
        return self.emu.state

    def handle(self, verb, segs, query, raw_body, parsed, entry):
        payload = self.emu.authenticate(self.h.headers.get("Authorization"), "arm")
        self.principal = payload.get("oid")
        entry["principal"] = self.principal
        self.entry = entry
        self.query = query
        self.raw_body = raw_body
        self.parsed = parsed
        low = [s.lower() for s in segs]
        if low == ["subscriptions"]:
            self.need_version(SUBSCRIPTION_VERSIONS, "Microsoft.Resources", "subscriptions")
            if verb != "GET":
                raise self.no_route(verb)
            return 200, {"value": [self.subscription_doc()],
                         "count": {"type": "Total", "value": 1}}, {}
        if len(segs) < 2 or low[0] != "subscriptions":
            raise arm_error(404, "InvalidResourceType", "The resource type could not be found "
                            "in the namespace 'Microsoft.Resources' for api version '%s'."
                            % self.api_version())
        sub = segs[1]
        if sub.lower() != self.emu.sub.lower():
            if not GUID_RE.match(sub):
                raise arm_error(400, "InvalidSubscriptionId", "The provided subscription "
                                "identifier '%s' is malformed or invalid." % sub)
            raise arm_error(404, "SubscriptionNotFound", "The subscription '%s' could not be "
                            "found." % sub)
        scope = "/subscriptions/%s" % sub
        rest = segs[2:]
        lrest = low[2:]
        if lrest[:1] == ["resourcegroups"]:
            if len(rest) == 1:
                self.need_version(RESOURCES_VERSIONS, "Microsoft.Resources", "resourceGroups")
                if verb != "GET":
                    raise self.no_route(verb)
                self.authorize("Microsoft.Resources/subscriptions/resourceGroups/read", scope)
                groups = sorted(self.st.groups.values(), key=lambda g: g["name"].lower())
                return 200, {"value": copy.deepcopy(groups)}, {}
            rg = rest[1]
            g = self.st.groups.get(rg.lower())
            if len(rest) == 2:
                self.need_version(RESOURCES_VERSIONS, "Microsoft.Resources", "resourceGroups")
                if verb not in ("GET", "HEAD"):
                    raise self.no_route(verb)
                self.authorize("Microsoft.Resources/subscriptions/resourceGroups/read",
                               "%s/resourceGroups/%s" % (scope, rg))
                if g is None:
                    raise arm_error(404, "ResourceGroupNotFound", "Resource group '%s' could "
                                    "not be found." % rg)
                if verb == "HEAD":  # resource_groups.check_existence
                    return 204, None, {}
                return 200, copy.deepcopy(g), {}
            if g is None:
                raise arm_error(404, "ResourceGroupNotFound", "Resource group '%s' could not "
                                "be found." % rg)
            scope = "%s/resourceGroups/%s" % (scope, g["name"])
            rest, lrest = rest[2:], lrest[2:]
        elif not rest:
            self.need_version(SUBSCRIPTION_VERSIONS, "Microsoft.Resources", "subscriptions")
            if verb != "GET":
                raise self.no_route(verb)
            return 200, self.subscription_doc(), {}
        if lrest[:2] == ["providers", "microsoft.authorization"] and len(rest) >= 3:
            kind = lrest[2]
            name = rest[3] if len(rest) >= 4 else None
            if len(rest) > 4:
                raise self.not_found_route()
            if kind == "roleassignments":
                self.need_version(AUTHZ_VERSIONS, "Microsoft.Authorization", "roleAssignments")
                return self.role_assignments(verb, scope, name)
            if kind == "roledefinitions":
                self.need_version(ROLEDEF_VERSIONS + AUTHZ_VERSIONS, "Microsoft.Authorization",
                                  "roleDefinitions")
                return self.role_definitions(verb, scope, name)
        raise self.not_found_route()

    def subscription_doc(self):
        return {"id": "/subscriptions/%s" % self.emu.sub, "authorizationSource": "RoleBased",
                "managedByTenants": [], "subscriptionId": self.emu.sub,
                "tenantId": self.emu.tenant, "displayName": "cloudgrant emulator",
                "state": "Enabled",
                "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01",
                                         "quotaId": "PayAsYouGo_2014-09-01",
                                         "spendingLimit": "Off"}}

    def not_found_route(self):
        return arm_error(404, "InvalidResourceType", "The resource type could not be found in "
                         "the namespace or api version '%s'." % self.api_version())

    def no_route(self, verb):
        return arm_error(405, "MethodNotAllowed", "The requested resource does not support "
                         "http method '%s'." % verb)

    def api_version(self):
        v = self.query.get("api-version")
        return v[0] if v else ""

    def need_version(self, allowed, namespace, rtype):
        v = self.api_version()
        if not v:
            raise arm_error(400, "MissingApiVersionParameter", "The api-version query "
                            "parameter (?api-version=) is required for all requests.")
        if v not in allowed:
            raise arm_error(400, "InvalidApiVersionParameter", "The api-version '%s' is "
                            "invalid. The supported versions are '%s'." % (
                                v, ",".join(sorted(set(allowed), reverse=True))))

    def authorize(self, action, scope):
        st = self.st
        pid = (self.principal or "").lower()
        for a in st.assignments.values():
            p = a["properties"]
            if p["principalId"].lower() != pid or not scope_contains(p["scope"], scope):
                continue
            rd = st.role_def(p["roleDefinitionId"].rsplit("/", 1)[-1])
            if rd is None:
                continue
            for perm in rd["properties"]["permissions"]:
                if any(action_matches(x, action) for x in perm.get("actions") or []) and \
                        not any(action_matches(x, action) for x in perm.get("notActions")
                                or []):
                    return
        raise arm_error(403, "AuthorizationFailed", "The client '%s' with object id '%s' does "
                        "not have authorization to perform action '%s' over scope '%s' or "
                        "the scope is invalid. If access was recently granted, please refresh "
                        "your credentials." % (self.principal, self.principal, action, scope))

    def check_body(self, kind):
        if self.parsed is None:
            self.entry["violations"].append("request body is not JSON")
            raise arm_error(400, "InvalidRequestContent", "The request content was invalid "
                            "and could not be deserialized: 'Unexpected character encountered "
                            "while parsing value. Path '', line 1, position 1.'.")
        if not isinstance(self.parsed, dict):
            self.entry["violations"].append("request body is not a JSON object")
            raise arm_error(400, "InvalidRequestContent", "The request content was invalid "
                            "and could not be deserialized.")
        v = self.emu.validator
        if v is not None:
            verdict = v.check(kind, self.raw_body.decode("utf-8", "replace"))
            if verdict is None:
                self.entry["violations"].append("validator: no answer")
            elif verdict.get("violations"):
                self.entry["violations"].extend(verdict["violations"])
                raise arm_error(400, "InvalidRequestContent", "The request content was invalid "
                                "and could not be deserialized: '%s'." % verdict["violations"][0])
        return self.parsed

    # -- role definitions --------------------------------------------------------------------
    def role_definitions(self, verb, scope, name):
        st = self.st
        if name is None:
            if verb != "GET":
                raise self.no_route(verb)
            self.authorize("Microsoft.Authorization/roleDefinitions/read", scope)
            defs = [d for d in st.all_role_defs()
                    if any(s == "/" or scope_contains(s, scope) or scope_contains(scope, s)
                           for s in d["properties"]["assignableScopes"])]
            flt = (self.query.get("$filter") or [""])[0].strip()
            if flt:
                m = re.fullmatch(r"(roleName|type)\s+eq\s+'((?:[^']|'')*)'", flt, re.I)
                if not m:
                    raise arm_error(400, "InvalidFilterInQueryString", "The filter '%s' is "
                                    "not supported." % flt)
                key = "roleName" if m.group(1).lower() == "rolename" else "type"
                val = m.group(2).replace("''", "'")
                defs = [d for d in defs if d["properties"][key].lower() == val.lower()]
            return 200, {"value": [self.render_def(d, scope) for d in defs]}, {}
        if not GUID_RE.match(name):
            raise arm_error(400, "InvalidRoleDefinitionId", "The role definition ID '%s' is "
                            "not valid." % name)
        if verb == "GET":
            self.authorize("Microsoft.Authorization/roleDefinitions/read", scope)
            d = st.role_def(name)
            if d is None:
                raise arm_error(404, "RoleDefinitionDoesNotExist", "The specified role "
                                "definition with ID '%s' does not exist." % name.lower())
            return 200, self.render_def(d, scope), {}
        if verb == "PUT":
            self.authorize("Microsoft.Authorization/roleDefinitions/write", scope)
            doc = self.check_body("roleDefinition")
            return self.put_def(scope, name.lower(), doc)
        if verb == "DELETE":
            self.authorize("Microsoft.Authorization/roleDefinitions/delete", scope)
            g = name.lower()
            if g in BUILTIN_ROLES:
                raise arm_error(403, "AuthorizationFailed", "The client '%s' with object id "
                                "'%s' does not have authorization to perform action "
                                "'Microsoft.Authorization/roleDefinitions/delete' over scope "
                                "'%s/providers/Microsoft.Authorization/roleDefinitions/%s' or "
                                "the scope is invalid." % (self.principal, self.principal,
                                                           scope, g))
            d = st.role_defs.get(g)
            if d is None:
                return 204, None, {}
            for a in st.assignments.values():
                if a["properties"]["roleDefinitionId"].rsplit("/", 1)[-1].lower() == g:
                    raise arm_error(409, "RoleDefinitionHasAssignments", "There are existing "
                                    "role assignments referencing role.")
            del st.role_defs[g]
            return 200, self.render_def(d, scope), {}
        raise self.no_route(verb)

    def render_def(self, d, scope):
        out = copy.deepcopy(d)
        if out["properties"]["type"] == "BuiltInRole":
            out["id"] = "%s/providers/Microsoft.Authorization/roleDefinitions/%s" % (
                "/subscriptions/%s" % self.emu.sub, out["name"])
        return out

    def put_def(self, scope, guid, doc):
        st = self.st
        if guid in BUILTIN_ROLES:
            raise arm_error(403, "AuthorizationFailed", "The client '%s' with object id '%s' "
                            "does not have authorization to perform action "
                            "'Microsoft.Authorization/roleDefinitions/write' over scope '%s/"
                            "providers/Microsoft.Authorization/roleDefinitions/%s' or the "
                            "scope is invalid." % (self.principal, self.principal, scope, guid))
        props = doc.get("properties") or {}
        name = props.get("roleName")
        if not isinstance(name, str) or not name.strip():
            raise arm_error(400, "RoleDefinitionNameNullOrEmpty", "The role definition name "
                            "cannot be null or empty.")
        if props.get("type") not in (None, "CustomRole"):
            raise arm_error(400, "InvalidRoleDefinitionType", "The role definition type '%s' "
                            "is not valid; only CustomRole can be created." % props.get("type"))
        perms = props.get("permissions") or []
        if not perms or not any(p.get("actions") or p.get("dataActions") for p in perms):
            raise arm_error(400, "RoleDefinitionWithoutPermission", "The role definition must "
                            "contain at least one action or data action.")
        scopes = props.get("assignableScopes") or []
        if not scopes:
            raise arm_error(400, "InvalidAssignableScopes", "The role definition must have at "
                            "least one assignable scope.")
        for s in scopes:
            if not scope_contains("/subscriptions/%s" % self.emu.sub, s):
                raise arm_error(403, "LinkedAuthorizationFailed", "The client '%s' with object "
                                "id '%s' has permission to perform action 'Microsoft."
                                "Authorization/roleDefinitions/write' on scope '%s'; however, "
                                "it does not have permission to perform action 'Microsoft."
                                "Authorization/roleDefinitions/write' on the assignable scope "
                                "'%s'." % (self.principal, self.principal, scope, s))
            parts = [p for p in s.split("/") if p]
            if len(parts) >= 4 and parts[2].lower() == "resourcegroups" and \
                    parts[3].lower() not in st.groups:
                raise arm_error(404, "ResourceGroupNotFound", "Resource group '%s' could not "
                                "be found." % parts[3])
            if len(parts) not in (2, 4) or (len(parts) == 4 and
                                            parts[2].lower() != "resourcegroups"):
                raise arm_error(400, "InvalidAssignableScopes", "The assignable scope '%s' is "
                                "not supported by the emulator." % s)
        for d in st.all_role_defs():
            if d["name"].lower() != guid and \
                    d["properties"]["roleName"].lower() == name.lower():
                raise arm_error(409, "RoleDefinitionWithSameNameExists", "A custom role with "
                                "the same name already exists in this directory.")
        now = iso(time.time())
        old = st.role_defs.get(guid)
        d = {"id": "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s"
                   % (self.emu.sub, guid),
             "name": guid, "type": "Microsoft.Authorization/roleDefinitions",
             "properties": {"roleName": name, "type": "CustomRole",
                            "description": props.get("description") or "",
                            "assignableScopes": list(scopes),
                            "permissions": [{"actions": list(p.get("actions") or []),
                                             "notActions": list(p.get("notActions") or []),
                                             "dataActions": list(p.get("dataActions") or []),
                                             "notDataActions":
                                                 list(p.get("notDataActions") or [])}
                                            for p in perms],
                            "createdOn": old["properties"]["createdOn"] if old else now,
                            "updatedOn": now,
                            "createdBy": old["properties"]["createdBy"] if old
                            else self.principal,
                            "updatedBy": self.principal}}
        st.role_defs[guid] = d
        return 201, copy.deepcopy(d), {}

    # -- role assignments --------------------------------------------------------------------
    def render_assignment(self, a):
        return copy.deepcopy(a)

    def role_assignments(self, verb, scope, name):
        st = self.st
        if name is None:
            if verb != "GET":
                raise self.no_route(verb)
            self.authorize("Microsoft.Authorization/roleAssignments/read", scope)
            flt = (self.query.get("$filter") or [""])[0].strip()
            at_scope = False
            principal = None
            for clause in [c.strip() for c in re.split(r"\s+and\s+", flt, flags=re.I)
                           if c.strip()]:
                if re.fullmatch(r"atScope\(\)", clause, re.I):
                    at_scope = True
                    continue
                m = re.fullmatch(r"(?:principalId\s+eq\s+|assignedTo\()'([^']*)'\)?", clause,
                                 re.I)
                if m:
                    principal = m.group(1).lower()
                    continue
                raise arm_error(400, "InvalidFilterInQueryString", "The filter '%s' is not "
                                "supported. Supported filters are 'atScope()', "
                                "'principalId eq {id}' and 'assignedTo('{id}')'." % flt)
            out = []
            for a in st.assignments.values():
                p = a["properties"]
                above = scope_contains(p["scope"], scope)
                below = scope_contains(scope, p["scope"])
                if not (above or (below and not at_scope)):
                    continue
                if principal is not None and p["principalId"].lower() != principal:
                    continue
                out.append(self.render_assignment(a))
            out.sort(key=lambda a: a["properties"]["createdOn"])
            return 200, {"value": out}, {}
        if not GUID_RE.match(name):
            raise arm_error(400, "InvalidRoleAssignmentId", "The role assignment ID '%s' is "
                            "not valid. The role assignment ID must be a GUID." % name)
        rid = "%s/providers/Microsoft.Authorization/roleAssignments/%s" % (scope, name.lower())
        if verb == "GET":
            self.authorize("Microsoft.Authorization/roleAssignments/read", scope)
            a = st.assignments.get(rid.lower())
            if a is None:
                raise arm_error(404, "RoleAssignmentNotFound", "The role assignment '%s' is "
                                "not found." % name)
            return 200, self.render_assignment(a), {}
        if verb == "DELETE":
            self.authorize("Microsoft.Authorization/roleAssignments/delete", scope)
            a = st.assignments.pop(rid.lower(), None)
            if a is None:
                return 204, None, {}
            return 200, self.render_assignment(a), {}
        if verb == "PUT":
            self.authorize("Microsoft.Authorization/roleAssignments/write", scope)
            doc = self.check_body("roleAssignment")
            return self.put_assignment(scope, name.lower(), rid, doc)
        raise self.no_route(verb)

    def put_assignment(self, scope, name, rid, doc):
        st = self.st
        props = doc.get("properties") or {}
        rd_id = props.get("roleDefinitionId") or ""
        m = re.fullmatch(r"(?:/subscriptions/([^/]+))?/providers/Microsoft\.Authorization/"
                         r"roleDefinitions/([^/]+)", rd_id, re.I)
        if not m:
            raise arm_error(400, "InvalidRoleDefinitionId", "The role definition ID '%s' is not "
                            "valid." % rd_id)
        if m.group(1) and m.group(1).lower() != self.emu.sub.lower():
            raise arm_error(400, "InvalidRoleDefinitionId", "The role definition ID '%s' is not "
                            "valid: it belongs to another subscription." % rd_id)
        rd = st.role_def(m.group(2)) if GUID_RE.match(m.group(2)) else None
        if rd is None:
            raise arm_error(400, "RoleDefinitionDoesNotExist", "The specified role definition "
                            "with ID '%s' does not exist." % m.group(2))
        if not any(s == "/" or scope_contains(s, scope)
                   for s in rd["properties"]["assignableScopes"]):
            raise arm_error(403, "AuthorizationFailed", "The role definition '%s' (%s) is not "
                            "assignable at scope '%s'." % (rd["properties"]["roleName"],
                                                           rd["name"], scope))
        pid = props.get("principalId") or ""
        if not GUID_RE.match(pid):
            raise arm_error(400, "InvalidPrincipalId", "A valid principal ID must be "
                            "provided for role assignment.")
        ptype = props.get("principalType")
        left = st.principal_lag.get(pid.lower(), 0)
        if left > 0:
            st.principal_lag[pid.lower()] = left - 1
            raise arm_error(400, "PrincipalNotFound", PRINCIPAL_NOT_FOUND.format(
                pid=pid, tenant=self.emu.tenant))
        sp = st.sps.get(pid.lower())
        if sp is None:
            raise arm_error(400, "PrincipalNotFound", PRINCIPAL_NOT_FOUND.format(
                pid=pid, tenant=self.emu.tenant))
        if ptype is not None and ptype.lower() != "serviceprincipal":
            raise arm_error(400, "UnmatchedPrincipalType", "The PrincipalId '%s' has type "
                            "'ServicePrincipal' , which is different from specified "
                            "PrincipalType '%s'." % (pid.replace("-", ""), ptype))
        canonical_rd = "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s" \
            % (self.emu.sub, rd["name"])
        existing = st.assignments.get(rid.lower())
        for a in st.assignments.values():
            p = a["properties"]
            if a is existing:
                continue
            if p["principalId"].lower() == pid.lower() and \
                    norm_scope(p["scope"]).lower() == norm_scope(scope).lower() and \
                    p["roleDefinitionId"].rsplit("/", 1)[-1].lower() == rd["name"].lower():
                raise arm_error(409, "RoleAssignmentExists", "The role assignment already "
                                "exists.")
        if existing is not None:
            p = existing["properties"]
            if p["principalId"].lower() != pid.lower() or \
                    p["roleDefinitionId"].rsplit("/", 1)[-1].lower() != rd["name"].lower():
                raise arm_error(409, "RoleAssignmentUpdateNotPermitted", "Tenant ID, "
                                "application ID, principal ID, and scope are not allowed to be "
                                "updated.")
            if props.get("description") is not None:
                p["description"] = props["description"]
            return 201, self.render_assignment(existing), {}
        now = iso(time.time())
        a = {"properties": {"roleDefinitionId": canonical_rd, "principalId": pid,
                            "principalType": "ServicePrincipal", "scope": scope,
                            "condition": props.get("condition"),
                            "conditionVersion": props.get("conditionVersion"),
                            "createdOn": now, "updatedOn": now, "createdBy": self.principal,
                            "updatedBy": self.principal,
                            "delegatedManagedIdentityResourceId": None,
                            "description": props.get("description")},
             "id": rid, "type": "Microsoft.Authorization/roleAssignments", "name": name}
        st.assignments[rid.lower()] = a
        return 201, self.render_assignment(a), {}


# ==============================================================================================
# HTTP

CONTROL_QUIET = ("state", "requests", "clear_requests", "issue_federated_token",
                 "role_definition")
GRAPH_CTYPE = ("application/json;odata.metadata=minimal;odata.streaming=true;"
               "IEEE754Compatible=false;charset=utf-8")


class ApiHandler(EmulatorHandler):
    server_version = "Microsoft-IIS/10.0"

    def version_string(self):
        return self.server_version

    def do_GET(self):
        self.dispatch()

    def do_HEAD(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_PATCH(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    @property
    def emu(self):
        return self.server.emu

    def send_json(self, code, doc, headers=None, ctype="application/json; charset=utf-8"):
        h = dict(headers or {})
        if doc is None:
            self.send_response(code)
            for k, v in h.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_body(code, json.dumps(doc) + ("\n" if "odata" not in ctype else ""), ctype, h)

    def release_generation(self):
        return self.emu.release_gen

    def send_truncated(self, code, doc, ctype):
        body = json.dumps(doc if doc is not None else {}).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:max(1, len(body) // 2)])
        self.wfile.flush()
        self.reset_connection()

    # -- error documents per API -------------------------------------------------------------
    def error_doc(self, api, err):
        now = datetime.datetime.now(datetime.timezone.utc)
        if api == "graph":
            doc = {"error": {"code": err.code, "message": err.message}}
            doc["error"].update(err.extra)
            doc["error"]["innerError"] = {
                "date": now.strftime("%Y-%m-%dT%H:%M:%S"), "request-id": self.request_id,
                "client-request-id": self.client_request_id}
            return doc
        if api == "login":
            return dict({"error": err.code, "error_description": err.message}, **err.extra)
        if api == "imds":
            if not err.message:  # instance metadata errors carry only "error"
                return dict({"error": err.code}, **err.extra)
            return dict({"error": err.code, "error_description": err.message}, **err.extra)
        doc = {"error": {"code": err.code, "message": err.message}}
        doc["error"].update(err.extra)
        return doc

    def common_headers(self, api):
        h = {"x-ms-request-id": self.request_id, "Cache-Control": "no-cache",
             "Strict-Transport-Security": "max-age=31536000; includeSubDomains"}
        if api == "graph":
            h = {"request-id": self.request_id, "client-request-id": self.client_request_id,
                 "x-ms-ags-diagnostic": json.dumps({"ServerInfo": {
                     "DataCenter": "West Europe", "Slice": "E", "Ring": "5",
                     "ScaleUnit": "000", "RoleInstance": "AM2PEPF0001C6A4"}}),
                 "OData-Version": "4.0", "Cache-Control": "no-cache",
                 "Strict-Transport-Security": "max-age=31536000"}
        elif api == "arm":
            h["x-ms-correlation-request-id"] = self.client_request_id
            h["x-ms-routing-request-id"] = "WESTEUROPE:%s:%s" % (
                time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), self.request_id)
        return h

    def arm_rate_headers(self, verb):
        st = self.emu.state
        kind = "reads" if verb in ("GET", "HEAD") else ("deletes" if verb == "DELETE"
                                                         else "writes")
        with st.lock:
            st.rate[kind] = max(0, st.rate[kind] - 1)
            return {"x-ms-ratelimit-remaining-subscription-%s" % kind: str(st.rate[kind])}

    def fault_reply(self, api, fault, entry):
        kind = fault.get("kind") or "status"
        if kind == "reset":
            self.reset_connection()
            return
        if kind == "invalid-json":
            self.send_body(fault.get("status") or 200, '{"value": [{"id": ',
                           "application/json; charset=utf-8")
            return
        status = int(fault.get("status") or 503)
        code = fault.get("code")
        if not code:
            code = {429: "TooManyRequests", 500: "InternalServerError" if api != "graph"
                    else "generalException", 502: "BadGateway", 503: "ServiceUnavailable"
                    if api != "graph" else "serviceNotAvailable",
                    504: "GatewayTimeout"}.get(status, "InternalServerError")
        msg = fault.get("message") or {
            429: "Too many requests. Please retry after the time given in Retry-After.",
            503: "The service is temporarily unavailable. Please retry."}.get(
                status, "The emulator injected this failure.")
        if api == "login" and not fault.get("code"):
            code = "temporarily_unavailable"
        err = ApiError(status, code, msg)
        h = self.common_headers(api)
        if fault.get("retry_after") is not None:
            h["Retry-After"] = str(fault["retry_after"])
        entry["code"] = code
        self.send_json(status, self.error_doc(api, err), h)

    # -- routing -----------------------------------------------------------------------------
    def dispatch(self):
        self.request_id = new_guid()
        self.client_request_id = self.headers.get("client-request-id") or \
            self.headers.get("x-ms-client-request-id") or self.request_id
        try:
            self._dispatch()
        except (ConnectionError, BrokenPipeError):
            self.close_connection = True
        except Exception as exc:  # never let one request take the server down
            sys.stderr.write("azure_api: internal error on %s %s: %s: %s\n"
                             % (self.command, self.path, type(exc).__name__, exc))
            try:
                self.send_json(500, {"error": {"code": "InternalServerError",
                                               "message": "emulator internal error: %s"
                                                          % type(exc).__name__}})
            except OSError:
                pass
            self.close_connection = True

    def _dispatch(self):
        raw_path = self.path
        if raw_path.startswith(("http://", "https://")):
            raw_path = urllib.parse.urlsplit(raw_path)._replace(scheme="", netloc="").geturl()
        parts = urllib.parse.urlsplit(raw_path)
        path = re.sub(r"/{2,}", "/", parts.path)
        if path.startswith("/_emu/"):
            return self.control(path[len("/_emu/"):])
        if path.startswith("/metadata/"):
            return self.api_call("imds", path, parts.query)
        if path.startswith("/v1.0/") or path == "/v1.0":
            return self.api_call("graph", path, parts.query)
        if path.lower().startswith(("/subscriptions/", "/providers/")) or \
                path.lower() == "/subscriptions":
            return self.api_call("arm", path, parts.query)
        segs = [s for s in path.split("/") if s]
        if len(segs) >= 2 and segs[1:] in (["oauth2", "v2.0", "token"], ["oauth2", "token"],
                                           ["v2.0", ".well-known", "openid-configuration"],
                                           [".well-known", "openid-configuration"]):
            return self.api_call("login", path, parts.query)
        if segs[:2] == ["common", "discovery"]:
            return self.api_call("login", path, parts.query)
        self.read_body()
        self.send_json(404, {"error": {"code": "NotFound", "message": "The emulator serves no "
                                       "API at '%s'." % path}})

    def api_call(self, api, path, raw_query):
        emu = self.emu
        verb = self.command
        raw_body = self.read_body()
        if raw_body is None:
            self.send_json(413, {"error": {"code": "RequestEntityTooLarge",
                                           "message": "The request body is too large."}})
            return
        try:
            query = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
        except ValueError:
            query = {}
        entry = {"api": api, "method": verb, "path": path, "query": query,
                 "mutating": False, "status": None, "code": None, "violations": [],
                 "principal": None, "fault": None, "body": None}
        if api == "graph":
            entry["mutating"] = verb in ("POST", "PATCH", "DELETE", "PUT")
        elif api == "arm":
            entry["mutating"] = verb in ("PUT", "PATCH", "DELETE", "POST")
        parsed = None
        text = raw_body.decode("utf-8", "replace") if raw_body else ""
        if api == "login":
            form = urllib.parse.parse_qs(text, keep_blank_values=True)
            entry["body"] = redact({k: v[0] for k, v in form.items()})
        else:
            if text.strip():
                try:
                    parsed = json.loads(text)
                    entry["body"] = redact(parsed)
                except ValueError:
                    parsed = None
                    entry["body"] = "<not JSON: %d bytes>" % len(raw_body)
            else:
                parsed = {}
        if raw_body and api in ("graph", "arm") and \
                "application/json" not in (self.headers.get("Content-Type") or "").lower():
            entry["violations"].append("request body without Content-Type: application/json")
        if emu.delay_ms:
            time.sleep(emu.delay_ms / 1000.0)
        if emu.frozen and api in ("graph", "arm"):
            how = self.hold(600000, emu.release_gen)
            if how == "closed":
                entry["fault"] = "frozen"
                emu.record(entry)
                self.close_connection = True
                return
        fault = emu.take_fault(api, verb, path, raw_query, entry["mutating"])
        if fault and fault.get("kind") == "hang":
            entry["fault"] = "hang"
            gen = emu.release_gen
            executed = bool(fault.get("execute"))
            if executed:
                status, doc, headers, ctype = self.execute(api, verb, path, query, raw_body,
                                                           parsed, entry)
                entry["status"] = status
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
                status, doc, headers, ctype = self.execute(api, verb, path, query, raw_body,
                                                           parsed, entry)
                with emu.log_lock:
                    entry["status"] = status
            return self.send_answer(verb, status, doc, headers, ctype)
        if fault:
            entry["fault"] = fault.get("kind") or "status"
            if entry["fault"] == "slow":
                time.sleep((fault.get("delay_ms") or 5000) / 1000.0)
            elif not fault.get("execute"):
                entry["status"] = int(fault.get("status") or 503) \
                    if entry["fault"] in ("status", "invalid-json") else None
                self.fault_reply(api, fault, entry)
                emu.record(entry)
                return
        status, doc, headers, ctype = self.execute(api, verb, path, query, raw_body, parsed,
                                                   entry)
        entry["status"] = status
        emu.record(entry)
        if fault and fault.get("execute") and entry["fault"] != "slow":
            if entry["fault"] == "truncated":
                return self.send_truncated(status, doc, ctype)
            return self.fault_reply(api, fault, entry)
        self.send_answer(verb, status, doc, headers, ctype)

    def send_answer(self, verb, status, doc, headers, ctype):
        if verb == "HEAD":
            doc = None
        if isinstance(doc, str):
            return self.send_body(status, doc, ctype, headers)
        self.send_json(status, doc, headers, ctype)

    def execute(self, api, verb, path, query, raw_body, parsed, entry):
        """-> (status, doc, headers, content type); every error is an API error document."""
        emu = self.emu
        st = emu.state
        h = self.common_headers(api)
        ctype = GRAPH_CTYPE if api == "graph" else "application/json; charset=utf-8"
        try:
            with st.lock:
                if api == "graph":
                    segs = [urllib.parse.unquote(s) for s in path.split("/")[2:] if s]
                    status, doc, extra = Graph(emu, self).handle(verb, segs, query, parsed,
                                                                 raw_body, entry)
                elif api == "arm":
                    h.update(self.arm_rate_headers(verb))
                    segs = [urllib.parse.unquote(s) for s in path.split("/") if s]
                    status, doc, extra = Arm(emu, self).handle(verb, segs, query, raw_body,
                                                               parsed, entry)
                elif api == "login":
                    status, doc, extra = self.login(verb, path, query, raw_body, entry)
                else:
                    status, doc, extra = self.imds(verb, path, query, entry)
                    if isinstance(doc, str):
                        ctype = "text/plain; charset=utf-8"
            h.update(extra or {})
            return status, doc, h, ctype
        except ApiError as err:
            entry["code"] = err.code
            h.update(err.headers)
            return err.status, self.error_doc(api, err), h, ctype
        except (AttributeError, TypeError, KeyError, ValueError, IndexError) as exc:
            # a body of the wrong shape the models let through (validate=False): refuse it
            # like the service would, and flag it, since a correct client never sends one
            entry["violations"].append("malformed request the emulator cannot read: %s: %s"
                                       % (type(exc).__name__, exc))
            code = {"graph": "BadRequest", "arm": "InvalidRequestContent"}.get(
                api, "invalid_request")
            err = ApiError(400, code, "The request content was invalid and could not be "
                           "deserialized.")
            entry["code"] = code
            return 400, self.error_doc(api, err), h, ctype

    # -- Microsoft Entra token endpoint ------------------------------------------------------
    def login_error(self, status, error, codes, description):
        now = datetime.datetime.now(datetime.timezone.utc)
        trace = new_guid()
        corr = self.client_request_id
        desc = "AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s" % (
            codes[0], description, trace, corr, now.strftime("%Y-%m-%d %H:%M:%SZ"))
        return ApiError(status, error, desc, extra={
            "error_codes": list(codes), "timestamp": now.strftime("%Y-%m-%d %H:%M:%SZ"),
            "trace_id": trace, "correlation_id": corr,
            "error_uri": "https://login.microsoftonline.com/error?code=%d" % codes[0]})

    def tenant_ok(self, tenant):
        return tenant.lower() in (self.emu.tenant.lower(), TENANT_DOMAIN)

    def login(self, verb, path, query, raw_body, entry):
        emu = self.emu
        segs = [s for s in path.split("/") if s]
        if segs[:2] == ["common", "discovery"]:
            return 200, {"tenant_discovery_endpoint": "%s/%s/v2.0/.well-known/openid-"
                         "configuration" % (self.public_base(), emu.tenant),
                         "api-version": "1.1", "metadata": []}, {}
        tenant = segs[0]
        if "openid-configuration" in segs[-1]:
            if not self.tenant_ok(tenant):
                raise ApiError(400, "invalid_tenant", "AADSTS90002: Tenant '%s' not found. "
                               "Check to make sure you have the correct tenant ID and are "
                               "signing into the correct cloud." % tenant)
            base = self.public_base()
            return 200, {
                "token_endpoint": "%s/%s/oauth2/v2.0/token" % (base, emu.tenant),
                "token_endpoint_auth_methods_supported": ["client_secret_post",
                                                          "private_key_jwt",
                                                          "client_secret_basic"],
                "jwks_uri": "%s/%s/discovery/v2.0/keys" % (base, emu.tenant),
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token",
                                             "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": "%s/%s/v2.0" % (base, emu.tenant),
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
                "authorization_endpoint": "%s/%s/oauth2/v2.0/authorize" % (base, emu.tenant),
                "device_authorization_endpoint": "%s/%s/oauth2/v2.0/devicecode"
                                                 % (base, emu.tenant),
                "http_logout_supported": True, "frontchannel_logout_supported": True,
                "end_session_endpoint": "%s/%s/oauth2/v2.0/logout" % (base, emu.tenant),
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid"],
                "tenant_region_scope": "EU", "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": "graph.microsoft.com", "rbac_url": "https://pas.windows.net"},\
                {}
        if segs[1:] == ["oauth2", "token"]:
            raise self.login_error(400, "invalid_request", [900144], "The v1 token endpoint "
                                   "is not modelled by the emulator; use /oauth2/v2.0/token.")
        if verb != "POST":
            raise self.login_error(405, "invalid_request", [900561], "The endpoint only "
                                   "accepts POST requests. Received a %s request." % verb)
        ctype = (self.headers.get("Content-Type") or "").lower()
        if "application/x-www-form-urlencoded" not in ctype:
            entry["violations"].append("token request without Content-Type: "
                                       "application/x-www-form-urlencoded")
        form = {k: v[0] for k, v in urllib.parse.parse_qs(
            raw_body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        if not self.tenant_ok(tenant):
            raise self.login_error(400, "invalid_request", [90002], "Tenant '%s' not found. "
                                   "Check to make sure you have the correct tenant ID and are "
                                   "signing into the correct cloud. Check with your "
                                   "subscription administrator, this may happen if there are "
                                   "no active subscriptions for the tenant." % tenant)
        grant = form.get("grant_type")
        if not grant:
            raise self.login_error(400, "invalid_request", [900144], "The request body must "
                                   "contain the following parameter: 'grant_type'.")
        if grant != "client_credentials":
            raise self.login_error(400, "unsupported_grant_type", [70003], "The app requested "
                                   "an unsupported grant type '%s'." % grant)
        client_id = form.get("client_id")
        if not client_id:
            raise self.login_error(400, "invalid_request", [900144], "The request body must "
                                   "contain the following parameter: 'client_id'.")
        scope = form.get("scope")
        if not scope:
            raise self.login_error(400, "invalid_scope", [70011], "The provided request must "
                                   "include a 'scope' input parameter.")
        resource = SCOPES.get(scope.strip().lower())
        if resource is None:
            raise self.login_error(400, "invalid_scope", [1002012] if " " not in scope.strip()
                                   else [70011], "The provided value for scope %s is not "
                                   "valid. Client credential flows must have a scope value "
                                   "with /.default suffixed to the resource identifier "
                                   "(application ID URI)." % scope)
        st = emu.state
        app = st.app_by_app_id(client_id) if GUID_RE.match(client_id) else None
        if app is None:
            raise self.login_error(400, "unauthorized_client", [700016], "Application with "
                                   "identifier '%s' was not found in the directory '%s'. This "
                                   "can happen if the application has not been installed by "
                                   "the administrator of the tenant or consented to by any "
                                   "user in the tenant. You may have sent your authentication "
                                   "request to the wrong tenant." % (client_id, emu.tenant))
        sp = st.sp_by_app_id(app.app_id)
        now = time.time()
        secret = form.get("client_secret")
        assertion = form.get("client_assertion")
        if secret is not None and assertion is not None:
            raise self.login_error(400, "invalid_request", [90014], "The request body must "
                                   "contain only one client authentication parameter.")
        acr = "1"
        if secret is not None:
            entry["principal"] = client_id
            matched = None
            for pc in app.doc["passwordCredentials"]:
                value = app.secrets.get(pc["keyId"])
                if value is not None and hmac.compare_digest(value.encode(),
                                                             secret.encode()):
                    matched = pc
            if matched is None:
                raise self.login_error(401, "invalid_client", [7000215], "Invalid client "
                                       "secret provided. Ensure the secret being sent in the "
                                       "request is the client secret value, not the client "
                                       "secret ID, for a secret added to app '%s'." % client_id)
            end = parse_iso(matched["endDateTime"]) or 0
            start = parse_iso(matched["startDateTime"]) or 0
            if end <= now or start > now + 300:
                raise self.login_error(401, "invalid_client", [7000222], "The provided client "
                                       "secret keys for app '%s' are expired. Visit the Azure "
                                       "portal to create new keys for your app: "
                                       "https://aka.ms/NewClientSecret, or consider using "
                                       "certificate credentials for added security: "
                                       "https://aka.ms/certCreds." % client_id)
        elif assertion is not None:
            acr = "2"
            entry["principal"] = client_id
            if form.get("client_assertion_type") != JWT_BEARER:
                raise self.login_error(400, "invalid_request", [50027], "The "
                                       "client_assertion_type must be '%s'." % JWT_BEARER)
            self.check_assertion(app, assertion, now)
        else:
            raise self.login_error(401, "invalid_client", [7000218], "The request body must "
                                   "contain the following parameter: 'client_assertion' or "
                                   "'client_secret'.")
        if sp is None:
            raise self.login_error(400, "invalid_client", [7000229], "The client application "
                                   "%s is missing service principal in the tenant %s. See "
                                   "instructions here: https://go.microsoft.com/fwlink/"
                                   "?linkid=2225119" % (client_id, emu.tenant))
        if not sp.get("accountEnabled", True):
            raise self.login_error(400, "unauthorized_client", [7000112], "Application '%s'"
                                   "(%s) is disabled." % (client_id, app.doc["displayName"]))
        tok, ttl, _p = emu.issue_access_token(resource, sp, app.app_id, acr)
        return 200, {"token_type": "Bearer", "expires_in": ttl, "ext_expires_in": ttl,
                     "access_token": tok}, {}

    def check_assertion(self, app, assertion, now):
        emu = self.emu
        try:
            header, claims, sig_ok = jwt_decode(assertion.strip(), emu.k8s_key)
        except (ValueError, UnicodeDecodeError):
            raise self.login_error(400, "invalid_request", [50027], "JWT token is invalid or "
                                   "malformed.") from None
        if header.get("alg") not in ("HS256", "RS256", "ES256"):
            raise self.login_error(400, "invalid_request", [50027], "JWT token is invalid or "
                                   "malformed.")
        if not sig_ok:
            raise self.login_error(401, "invalid_client", [700027], "The certificate with "
                                   "identifier used to sign the client assertion is not "
                                   "registered on application. Client assertion failed "
                                   "signature validation.")
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or exp <= now or \
                (isinstance(claims.get("nbf"), (int, float)) and claims["nbf"] > now + 300):
            raise self.login_error(400, "invalid_client", [700024], "Client assertion is not "
                                   "within its valid time range. Current time: %s, assertion "
                                   "valid from %s, expiry time of assertion %s." % (
                                       iso(now, False), iso(claims.get("nbf") or 0, False)
                                       if isinstance(claims.get("nbf"), (int, float)) else
                                       "(none)", iso(exp, False) if isinstance(
                                           exp, (int, float)) else "(none)"))
        iss, sub = claims.get("iss"), claims.get("sub")
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else (aud if isinstance(aud, list) else [])
        fics = app.fics
        by_iss = [f for f in fics if f["issuer"] == iss]
        if not by_iss:
            raise self.login_error(400, "invalid_client", [700211], "No matching federated "
                                   "identity record found for presented assertion issuer "
                                   "'%s'. Please check your federated identity credential "
                                   "Subject, Audience and Issuer against the presented "
                                   "assertion. https://learn.microsoft.com/entra/workload-id/"
                                   "workload-identity-federation" % iss)
        by_sub = [f for f in by_iss if f["subject"] == sub]
        if not by_sub:
            raise self.login_error(400, "invalid_client", [700213], "No matching federated "
                                   "identity record found for presented assertion subject "
                                   "'%s'. Please check your federated identity credential "
                                   "Subject, Audience and Issuer against the presented "
                                   "assertion. https://learn.microsoft.com/entra/workload-id/"
                                   "workload-identity-federation" % sub)
        if not any(a in f["audiences"] for f in by_sub for a in auds):
            raise self.login_error(400, "invalid_client", [700212], "No matching federated "
                                   "identity record found for presented assertion audience "
                                   "'%s'. Please check your federated identity credential "
                                   "Subject, Audience and Issuer against the presented "
                                   "assertion. https://learn.microsoft.com/entra/workload-id/"
                                   "workload-identity-federation" % ",".join(map(str, auds)))

    def public_base(self):
        proto = (self.headers.get("X-Forwarded-Proto") or "http").split(",")[0].strip()
        return "%s://127.0.0.1:%d" % (proto if proto in ("http", "https") else "http",
                                      self.emu.port)

    # -- IMDS --------------------------------------------------------------------------------
    def imds(self, verb, path, query, entry):
        emu = self.emu
        q = {k: v[0] for k, v in query.items()}
        if self.headers.get("X-Forwarded-For") is not None:
            raise ApiError(400, "invalid_request", "Request was forwarded (contains "
                           "X-Forwarded-For header)")
        path = path.rstrip("/")
        if path == "/metadata/identity/oauth2/token":
            if (self.headers.get("Metadata") or "").lower() != "true":
                raise ApiError(400, "invalid_request", "Required metadata header not "
                               "specified")
            if verb != "GET":
                raise ApiError(405, "invalid_request", "Method not allowed")
            if not q.get("api-version"):
                raise ApiError(400, "invalid_request", "Required query variable 'api-version' "
                               "is missing")
            if q["api-version"] not in IMDS_TOKEN_VERSIONS:
                raise ApiError(400, "invalid_request", "Invalid api-version")
            resource = q.get("resource")
            if not resource:
                raise ApiError(400, "invalid_request", "Required query variable 'resource' is "
                               "missing")
            sp = emu.state.sps.get(emu.admin["sp"]["id"].lower()) or emu.admin["sp"]
            app_id = emu.admin["app"]["appId"]
            for key, want in (("client_id", app_id), ("object_id", sp["id"])):
                if q.get(key) and q[key].lower() != want.lower():
                    raise ApiError(400, "invalid_request", "Identity not found")
            if q.get("msi_res_id") or q.get("mi_res_id"):
                raise ApiError(400, "invalid_request", "Identity not found")
            res = resource.strip()
            low = res.lower().rstrip("/")
            if low.startswith(GRAPH):
                aud = GRAPH
            elif low in ARM_AUDIENCES:
                aud = low
            else:
                raise ApiError(400, "invalid_resource", "AADSTS500011: The resource principal "
                               "named %s was not found in the tenant named %s." % (
                                   res, emu.tenant))
            entry["principal"] = sp["id"]
            tok, ttl, p = emu.issue_access_token(aud, sp, app_id, "2", extra={
                "xms_mirid": "/subscriptions/%s/resourcegroups/%s/providers/Microsoft."
                             "ManagedIdentity/userAssignedIdentities/%s-agentpool"
                             % (emu.sub, CLUSTER["node_group"], CLUSTER["name"])})
            return 200, {"access_token": tok, "client_id": app_id, "expires_in": str(ttl),
                         "expires_on": str(p["exp"]), "ext_expires_in": str(ttl),
                         "not_before": str(p["nbf"]), "resource": resource,
                         "token_type": "Bearer"}, {}
        if (self.headers.get("Metadata") or "").lower() != "true":
            raise ApiError(400, "invalid_request", "Required metadata header not specified")
        if path == "/metadata/instance" or path.startswith("/metadata/instance/"):
            if verb != "GET":
                raise ApiError(405, "invalid_request", "Method not allowed")
            ver = q.get("api-version")
            if not ver or ver not in IMDS_INSTANCE_VERSIONS:
                raise ApiError(400, "Bad request. api-version %s. For more information refer "
                               "to aka.ms/azureimds" % ("was not specified in the request"
                                                        if not ver else "is invalid"), "",
                               extra={"newest-versions": IMDS_NEWEST})
            node = emu.instance
            for seg in [s for s in path[len("/metadata/instance"):].split("/") if s]:
                if isinstance(node, dict) and seg in node:
                    node = node[seg]
                elif isinstance(node, list) and seg.isdigit() and int(seg) < len(node):
                    node = node[int(seg)]
                else:
                    raise ApiError(404, "Not found", "")
            fmt = q.get("format")
            if isinstance(node, (dict, list)):
                if fmt not in (None, "json"):
                    raise ApiError(400, "Bad request. Query parameter format must be json for "
                                   "non-leaf nodes", "")
                return 200, copy.deepcopy(node), {}
            return 200, str(node), {}
        raise ApiError(404, "Not found", "")

    # -- control -----------------------------------------------------------------------------
    def control(self, action):
        emu = self.emu
        raw = self.read_body() or b""
        try:
            req = json.loads(raw) if raw.strip() else {}
            if not isinstance(req, dict):
                raise ValueError("not an object")
        except ValueError:
            return self.send_json(400, {"error": "body is not a JSON object"})
        status, out = 200, None
        try:
            out = self.control_action(emu, action, req)
            if out is None:
                status, out = 404, {"error": "no control action %r" % action}
        except ControlError as ce:
            status, out = ce.code, {"error": str(ce)}
        except ApiError as ae:
            status, out = ae.status, {"error": ae.message, "code": ae.code}
        if action not in CONTROL_QUIET:
            # drift and knobs are logged (api "control", never mutating) so a test can tell
            # which agent calls came before and after them
            emu.record({"api": "control", "method": self.command, "path": "/_emu/" + action,
                        "query": {}, "mutating": False, "status": status,
                        "code": None if status == 200 else "ControlError", "violations": [],
                        "principal": None, "fault": None, "body": redact(req)})
        self.send_json(status, out)

    def control_action(self, emu, action, req):
        if action == "state":
            return emu.dump()
        if action == "issued_secrets":
            return {"secrets": list(ISSUED_SECRETS)}
        if action == "requests":
            with emu.log_lock:
                return {"requests": copy.deepcopy(emu.log)}
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
                 "status": req.get("status"), "code": req.get("code"),
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
            if f["path_regex"]:
                try:
                    re.compile(f["path_regex"])
                except re.error as exc:
                    raise ControlError("bad path_regex: %s" % exc) from None
            with emu.log_lock:
                emu.faults.append(f)
            return {"ok": True, "faults": len(emu.faults)}
        if action == "config":
            for k in ("replication_lag", "arm_principal_lag", "token_ttl", "delay_ms"):
                if k in req:
                    setattr(emu, k, int(req[k]))
            if "max_secret_lifetime_days" in req:
                v = req["max_secret_lifetime_days"]
                emu.max_secret_lifetime_days = None if v is None else float(v)
            return {"ok": True}
        if action == "issue_federated_token":
            return {"token": emu.issue_k8s_token(
                req.get("issuer") or emu.oidc_issuer, req.get("subject") or ADMIN_SUBJECT,
                req.get("audience") or K8S_TOKEN_AUDIENCE, int(req.get("ttl") or 3600))}
        st = emu.state
        with st.lock:
            return self.control_state(emu, st, action, req)

    def control_state(self, emu, st, action, req):
        def need_app(oid):
            a = st.app_by_id(oid or "") or st.app_by_app_id(oid or "")
            if a is None:
                raise ControlError("no application %r" % oid, 404)
            return a

        def need_sp(sid):
            sp = st.sps.get((sid or "").lower()) or st.sp_by_app_id(sid or "")
            if sp is None:
                raise ControlError("no service principal %r" % sid, 404)
            return sp

        if action == "delete_app":
            a = need_app(req.get("object_id"))
            st.apps.pop(a.id.lower(), None)
            sp = st.sp_by_app_id(a.app_id)
            if sp is not None:
                st.sps.pop(sp["id"].lower(), None)
            return {"ok": True}
        if action == "delete_sp":
            sp = need_sp(req.get("sp_id"))
            st.sps.pop(sp["id"].lower(), None)
            return {"ok": True}
        if action == "add_password":
            a = need_app(req.get("object_id"))
            now = time.time()
            end = parse_iso(req["end"]) if req.get("end") else now + 2 * 365.25 * DAY
            if end is None:
                raise ControlError("bad end date %r" % req.get("end"))
            secret = new_secret_text()
            cred = {"customKeyIdentifier": None, "displayName": req.get("display_name") or "",
                    "endDateTime": iso_graph(end), "hint": secret[:3], "keyId": new_guid(),
                    "secretText": None, "startDateTime": iso_graph(min(now, end - 1))}
            a.doc["passwordCredentials"].append(cred)
            a.secrets[cred["keyId"]] = secret
            return {"keyId": cred["keyId"], "secretText": secret}
        if action == "set_password_end":
            a = need_app(req.get("object_id"))
            end = parse_iso(req.get("end"))
            if end is None:
                raise ControlError("bad end date %r" % req.get("end"))
            for pc in a.doc["passwordCredentials"]:
                if pc["keyId"].lower() == str(req.get("key_id")).lower():
                    pc["endDateTime"] = iso_graph(end)
                    if parse_iso(pc["startDateTime"]) >= end:
                        pc["startDateTime"] = iso_graph(end - 1)
                    return {"ok": True}
            raise ControlError("no password %r on %s" % (req.get("key_id"), a.id), 404)
        if action == "remove_role_assignment":
            key = str(req.get("name_or_id") or "").lower()
            for rid, a in list(st.assignments.items()):
                if rid == key or a["name"].lower() == key:
                    del st.assignments[rid]
                    return {"ok": True, "id": a["id"]}
            raise ControlError("no role assignment %r" % key, 404)
        if action == "add_role_assignment":
            scope = norm_scope(req.get("scope") or "/subscriptions/%s" % emu.sub)
            if not scope_contains("/subscriptions/%s" % emu.sub, scope):
                raise ControlError("scope %r is outside the subscription" % scope)
            guid = str(req.get("role_definition_guid") or "").lower()
            if st.role_def(guid) is None:
                raise ControlError("no role definition %r" % guid, 404)
            name = (req.get("name") or new_guid()).lower()
            rid = "%s/providers/Microsoft.Authorization/roleAssignments/%s" % (scope, name)
            now = iso(time.time())
            a = {"properties": {
                "roleDefinitionId": "/subscriptions/%s/providers/Microsoft.Authorization/"
                                    "roleDefinitions/%s" % (emu.sub, guid),
                "principalId": req.get("principal_id"), "principalType": "ServicePrincipal",
                "scope": scope, "condition": None, "conditionVersion": None,
                "createdOn": now, "updatedOn": now, "createdBy": None, "updatedBy": None,
                "delegatedManagedIdentityResourceId": None, "description": None},
                "id": rid, "type": "Microsoft.Authorization/roleAssignments", "name": name}
            st.assignments[rid.lower()] = a
            return copy.deepcopy(a)
        if action == "role_definition":
            name = str(req.get("role_name") or "")
            for d in st.all_role_defs():
                if d["properties"]["roleName"] == name:
                    return {"roleDefinition": copy.deepcopy(d)}
            return {"roleDefinition": None}
        if action == "set_role_definition_actions":
            name = str(req.get("role_name") or "")
            for d in st.role_defs.values():
                if d["properties"]["roleName"].lower() == name.lower():
                    d["properties"]["permissions"][0]["actions"] = list(req.get("actions")
                                                                        or [])
                    d["properties"]["updatedOn"] = iso(time.time())
                    return copy.deepcopy(d)
            raise ControlError("no custom role named %r" % name, 404)
        if action == "set_app":
            a = need_app(req.get("object_id"))
            for k, v in (req.get("fields") or {}).items():
                a.doc[k] = v
            return {"ok": True}
        if action == "set_sp":
            sp = need_sp(req.get("sp_id"))
            for k, v in (req.get("fields") or {}).items():
                sp[k] = v
            return {"ok": True}
        if action == "add_resource_group":
            st.add_group(req["name"], req.get("location") or CLUSTER["location"],
                         req.get("managed_by"), req.get("tags"))
            return {"ok": True}
        return None


# ==============================================================================================

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ready-file")
    ap.add_argument("--tenant", default=DEFAULT_TENANT)
    ap.add_argument("--subscription", default=DEFAULT_SUBSCRIPTION)
    ap.add_argument("--replication-lag", type=int, default=0)
    ap.add_argument("--arm-principal-lag", type=int, default=0)
    ap.add_argument("--max-secret-lifetime-days", type=float, default=None)
    ap.add_argument("--token-ttl", type=int, default=3600)
    ap.add_argument("--delay-ms", type=int, default=0)
    ap.add_argument("--validator", default="auto",
                    help="auto (/usr/bin/python3 with python3-azure), off, or a python path")
    ap.add_argument("--require-validator", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    for v in (args.tenant, args.subscription):
        if not GUID_RE.match(v):
            ap.error("%r is not a GUID" % v)
    os.makedirs(args.state_dir, exist_ok=True)
    emu = Emulator(args)
    srv = QuietThreadingHTTPServer((args.host, args.port), ApiHandler)
    srv.emu = emu
    srv.verbose = args.verbose
    emu.port = srv.server_address[1]
    try:
        return serve(srv, args.ready_file, on_listening=lambda _p: emu.write_files(),
                     name="azure_api")
    finally:
        if emu.validator is not None:
            emu.validator.stop()


if __name__ == "__main__":
    sys.exit(main())
