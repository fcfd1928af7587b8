"""azure_api.py (Microsoft Entra token endpoint, Azure IMDS, Microsoft Graph v1.0, Azure
Resource Manager) for Python tests.

    sys.path.insert(0, os.path.join(os.environ["CG_SOURCE_DIR"], "tests", "emulators"))
    import azure_harness

    with azure_harness.azure() as az:
        env = dict(os.environ, **az.env())           # admin client secret + endpoint overrides
        subprocess.run([binary, "onboard", ...], env=env)
        app = az.find_app("cloudgrant-demo")          # Graph state, no secret values
        assert az.assignments(az.find_sp(app["appId"])["id"])
        assert not az.violations(), az.violations()   # requests the models refuse
        writes = [r for r in az.requests() if r["mutating"]]

azure(tenant=None, subscription="0b1f6471-1bf0-4dda-aec3-111122223333", validate=True,
      replication_lag=0, arm_principal_lag=0, token_ttl=3600, delay_ms=0, verbose=False,
      max_secret_lifetime_days=None, extra_args=())
starts azure_api.py on a free port, waits until it is ready and always stops it. tenant None
is the fixed TENANT (the tenantId of tests/fixtures/clusters/aks.json). validate=True needs
python3-azure under /usr/bin/python3 (ARM request bodies are checked against
azure-mgmt-authorization's models): AzureSdkMissing otherwise (see sdk_available());
validate=False keeps the Graph checks (standard library) and drops the ARM ones.

Fixture: subscription SUBSCRIPTION; resource groups "rg-prod" and the AKS node resource group
"MC_rg-prod_aks-main_westeurope" (managedBy the managedCluster aks-main of rg-prod, tags
aks-managed-cluster-name=aks-main, aks-managed-cluster-rg=rg-prod), location westeurope; IMDS
instance metadata of aks.json. The bootstrap admin is an app registration
("cloudgrant-bootstrap-admin", signInAudience AzureADMyOrg) with a client secret, a federated
credential (issuer .oidc_issuer, subject .admin_subject, audience api://AzureADTokenExchange),
a service principal that holds Owner on the subscription (a real role assignment, listed like
any other), and is the IMDS managed identity. Only the admin may write through Graph (others:
403 Authorization_RequestDenied; reads are open); ARM authorizes every call against the role
assignments (403 AuthorizationFailed).

The yielded object has:
  .url .port .state_dir .tenant .subscription .admin_client_id .admin_secret
  .admin_object_id .admin_sp_id .oidc_issuer .admin_subject .proc
  .env()            AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET (admin),
                    AZURE_AUTHORITY_HOST (= .url), CLOUDGRANT_AZURE_GRAPH_URL,
                    CLOUDGRANT_AZURE_ARM_URL, CLOUDGRANT_AZURE_IMDS_URL (all = .url)
  .workload_identity_env(token_path)
                    writes a federated (projected service account) token of the admin app to
                    token_path; returns AZURE_TENANT_ID, AZURE_CLIENT_ID,
                    AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST (.url + "/") and the
                    three CLOUDGRANT_AZURE_* URLs
  .imds_env()       only the three CLOUDGRANT_AZURE_* URLs (IMDS gives the admin identity)
  .issue_federated_token(issuer, subject, audience="api://AzureADTokenExchange", ttl=3600)
                    -> a JWT the token endpoint accepts as client_assertion when (iss, sub,
                    aud) match a federated identity credential of the client's app
  .admin_token(api="arm") -> a cached admin access token for "arm" or "graph"
  .login(client_id, secret=None, assertion=None, resource="arm")
                    -> access token string; raises AzureError (.status, .doc = the error
                    JSON) otherwise. resource "arm", "graph" or a scope ("<res>/.default")
  .call(method, path, body=None, token=None, query=None, headers=None, api="arm",
        raw_body=None, timeout=30)
                    -> (status, parsed JSON or text or None, headers with lower-case names);
                    path like "/v1.0/applications" or "/subscriptions/<sub>/resourceGroups/x"
                    (add ?api-version= yourself or pass query); token defaults to an admin
                    token for `api` ("arm" or "graph"; "" sends no Authorization header)
  .requests()       the request log: dicts with seq, ts, api (login|imds|graph|arm|control),
                    method, path, query, mutating, status, code, violations, principal
                    (token oid, or client_id on the token endpoint), fault, body (secrets
                    redacted). Graph POST/PATCH/DELETE and ARM PUT/PATCH/DELETE/POST are
                    mutating; token requests are not. "control" entries are the drift
                    setters, knobs and injections of this harness (never mutating)
  .violations()     the logged requests that had violations
  .clear_requests()
  .inject(method=None, path_regex=None, count=1, status=None, code=None, message=None,
          retry_after=None, kind="status", delay_ms=None, execute=None)
                    the next `count` matching requests get the fault. method: an HTTP verb
                    or an api name (login, imds, graph, arm); path_regex: re.search on the
                    path (or path?query). kind status (the API's error shape; status default
                    503; code default by status: 429 TooManyRequests, 503 ServiceUnavailable
                    (ARM) / serviceNotAvailable (Graph); optional Retry-After), reset,
                    truncated, invalid-json, slow (delay_ms, then served normally);
                    execute=True runs the request before the fault (default only for
                    truncated). ordinal=N: only the N-th matching request gets it (the
                    ones before pass); mutating=True/False: match only mutating / read
                    requests. kind "hang": hold the answer (execute=True: after running the
                    request) until the client closes the connection, .release() or
                    delay_ms (default 600 s); freeze=True also holds every later Graph/ARM
                    request unexecuted from then on (logged with fault "frozen" when its
                    client goes away)
  .release()        ends every hold and freeze now
  .state()          full state dump (no secrets): applications (with their
                    federatedIdentityCredentials), servicePrincipals, roleDefinitions
                    (custom), roleAssignments, resourceGroups, lag counters, config, faults
  .find_app(display_name) -> app dict (passwordCredentials without secretText) or None
  .find_sp(app_id)  -> service principal dict or None
  .assignments(principal_id) -> ARM role assignment dicts at any scope
  .role_definition(name) -> custom or built-in role definition dict by exact roleName, or
                    None (no API request is logged)
  .fics(app_object_id) -> the app's federated identity credentials
  drift and knobs:  .delete_app(object_id) (its service principal goes too)
                    .delete_sp(sp_id)
                    .add_password(app_object_id, end=None, display_name="")
                        -> {"keyId", "secretText"}
                    .set_password_end(app_object_id, key_id, end_iso)
                    .remove_role_assignment(name_or_id)
                    .add_role_assignment(scope, role_definition_guid, principal_id,
                                         name=None) -> the assignment
                    .set_role_definition_actions(role_name, actions)
                    .set_app(object_id, **fields)   e.g. signInAudience="AzureADMultipleOrgs"
                    .set_sp(sp_id, **fields)        e.g. accountEnabled=False
                    .set_replication_lag(n)   after an app is created, the next n
                        POST /servicePrincipals for its appId fail 400 (NoBackingApplication-
                        Object) and the next n requests addressing it by object id 404
                    .set_arm_principal_lag(n)  the first n role assignment PUTs naming a
                        service principal created from now on fail 400 PrincipalNotFound
                    .set_max_secret_lifetime_days(d or None)   app management policy:
                        addPassword beyond d days -> 400 CredentialInvalidLifetimeAsPerAppPolicy
                    .set_token_ttl(s) .set_delay(ms) .reset()
  .log()            the emulator's stderr
CG_KEEP_EMULATOR_STATE=1 keeps the temporary directory for debugging.
"""
import contextlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

EMU_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, EMU_DIR)
import harness  # noqa: E402

__all__ = ["azure", "sdk_available", "AzureSdkMissing", "AzureError", "TENANT",
           "SUBSCRIPTION", "NODE_RESOURCE_GROUP", "CLUSTER_RESOURCE_GROUP", "EMU_PYTHON"]

TENANT = "72f988bf-0000-4000-8000-00000000c0de"
SUBSCRIPTION = "0b1f6471-1bf0-4dda-aec3-111122223333"
CLUSTER_RESOURCE_GROUP = "rg-prod"
NODE_RESOURCE_GROUP = "MC_rg-prod_aks-main_westeurope"
EMU_PYTHON = os.environ.get("CG_EMULATOR_PYTHON") or (
    "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable)
SDK_PYTHON = os.environ.get("CG_AZURE_SDK_PYTHON") or "/usr/bin/python3"
RESOURCES = {"arm": "https://management.azure.com/.default",
             "graph": "https://graph.microsoft.com/.default"}


class AzureSdkMissing(RuntimeError):
    pass


class AzureError(RuntimeError):
    def __init__(self, status, doc):
        super().__init__("Azure error %s: %s" % (status, json.dumps(doc)[:2000]))
        self.status = status
        self.doc = doc


_SDK_OK = None


def sdk_available():
    """True when /usr/bin/python3 can import azure-mgmt-authorization (python3-azure)."""
    global _SDK_OK
    if _SDK_OK is None:
        try:
            p = subprocess.run([SDK_PYTHON, "-c", "import azure.mgmt.authorization.v2022_04_01"
                                ".models"], capture_output=True, timeout=60)
            _SDK_OK = p.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            _SDK_OK = False
    return _SDK_OK


class Azure:
    def __init__(self, proc, state_dir, port):
        self.proc = proc
        self.state_dir = state_dir
        self.port = port
        self.url = "http://127.0.0.1:%d" % port
        with open(os.path.join(state_dir, "admin.json")) as f:
            adm = json.load(f)
        self.tenant = adm["tenant"]
        self.subscription = adm["subscription"]
        self.admin_client_id = adm["client_id"]
        self.admin_secret = adm["client_secret"]
        self.admin_object_id = adm["object_id"]
        self.admin_sp_id = adm["sp_id"]
        self.oidc_issuer = adm["issuer"]
        self.admin_subject = adm["subject"]
        self._tokens = {}

    # -- environment for the code under test --------------------------------------------------
    def _urls(self):
        return {"CLOUDGRANT_AZURE_GRAPH_URL": self.url, "CLOUDGRANT_AZURE_ARM_URL": self.url,
                "CLOUDGRANT_AZURE_IMDS_URL": self.url}

    def env(self):
        e = {"AZURE_TENANT_ID": self.tenant, "AZURE_CLIENT_ID": self.admin_client_id,
             "AZURE_CLIENT_SECRET": self.admin_secret, "AZURE_AUTHORITY_HOST": self.url}
        e.update(self._urls())
        return e

    def workload_identity_env(self, token_path):
        tok = self.issue_federated_token(self.oidc_issuer, self.admin_subject)
        d = os.path.dirname(os.path.abspath(token_path))
        os.makedirs(d, exist_ok=True)
        with open(token_path, "w") as f:
            f.write(tok)
        e = {"AZURE_TENANT_ID": self.tenant, "AZURE_CLIENT_ID": self.admin_client_id,
             "AZURE_FEDERATED_TOKEN_FILE": token_path, "AZURE_AUTHORITY_HOST": self.url + "/"}
        e.update(self._urls())
        return e

    def imds_env(self):
        return self._urls()

    # -- tokens --------------------------------------------------------------------------------
    def issue_federated_token(self, issuer, subject, audience="api://AzureADTokenExchange",
                              ttl=3600):
        return self._control("issue_federated_token", {"issuer": issuer, "subject": subject,
                                                       "audience": audience,
                                                       "ttl": ttl})["token"]

    def login(self, client_id, secret=None, assertion=None, resource="arm"):
        scope = RESOURCES.get(resource, resource)
        form = {"grant_type": "client_credentials", "client_id": client_id, "scope": scope}
        if secret is not None:
            form["client_secret"] = secret
        if assertion is not None:
            form["client_assertion_type"] = \
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            form["client_assertion"] = assertion
        status, doc, _h = self.call(
            "POST", "/%s/oauth2/v2.0/token" % self.tenant, token="",
            raw_body=urllib.parse.urlencode(form),
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        if status != 200 or not isinstance(doc, dict) or "access_token" not in doc:
            raise AzureError(status, doc)
        return doc["access_token"]

    def admin_token(self, api="arm"):
        """A (cached) access token of the admin for "arm" or "graph"."""
        return self._admin_token(api)

    def _admin_token(self, api):
        cached = self._tokens.get(api)
        if cached and cached[1] > time.time() + 30:
            return cached[0]
        tok = self.login(self.admin_client_id, secret=self.admin_secret, resource=api)
        # the token's own exp, so set_token_ttl() is honoured
        try:
            import base64
            seg = tok.split(".")[1]
            exp = json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))["exp"]
        except (ValueError, KeyError, IndexError):
            exp = time.time() + 60
        self._tokens[api] = (tok, exp)
        return tok

    # -- plain HTTP ----------------------------------------------------------------------------
    def call(self, method, path, body=None, token=None, query=None, headers=None, api="arm",
             raw_body=None, timeout=30):
        h = {}
        tok = self._admin_token(api) if token is None else token
        if tok:
            h["Authorization"] = "Bearer " + tok
        data = None
        if raw_body is not None:
            data = raw_body if isinstance(raw_body, bytes) else raw_body.encode()
        elif body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        if query:
            path += ("&" if "?" in path else "?") + urllib.parse.urlencode(query, doseq=True)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            text = r.read().decode("utf-8", "replace")
            hdrs = {k.lower(): v for k, v in r.getheaders()}
        finally:
            conn.close()
        if not text.strip():
            doc = None
        else:
            try:
                doc = json.loads(text)
            except ValueError:
                doc = text
        return r.status, doc, hdrs

    def _control(self, action, doc=None, method="POST"):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, "/_emu/" + action,
                         body=json.dumps(doc or {}).encode() if method == "POST" else None,
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            out = json.loads(r.read() or b"{}")
        finally:
            conn.close()
        if r.status != 200:
            raise RuntimeError("azure_api control %s: %s %s" % (action, r.status, out))
        return out

    # -- log and faults ------------------------------------------------------------------------
    def requests(self):
        return self._control("requests", method="GET")["requests"]

    def issued_secrets(self):
        """Every secret the emulator handed out, for the secret scan."""
        return self._control("issued_secrets", method="GET")["secrets"]

    def violations(self):
        return [r for r in self.requests() if r.get("violations")]

    def clear_requests(self):
        self._control("clear_requests")

    def inject(self, method=None, path_regex=None, count=1, status=None, code=None,
               message=None, retry_after=None, kind="status", delay_ms=None, execute=None,
               ordinal=None, mutating=None, freeze=None):
        doc = {"method": method, "path_regex": path_regex, "count": count, "status": status,
               "code": code, "message": message, "retry_after": retry_after, "kind": kind,
               "delay_ms": delay_ms}
        if execute is not None:
            doc["execute"] = bool(execute)
        if ordinal is not None:
            doc["ordinal"] = int(ordinal)
        if mutating is not None:
            doc["mutating"] = bool(mutating)
        if freeze:
            doc["freeze"] = True
        return self._control("inject", doc)

    def release(self):
        """Ends every hold and freeze (kind "hang") now."""
        return self._control("release")

    def state(self):
        return self._control("state", method="GET")

    # -- state queries -------------------------------------------------------------------------
    def find_app(self, display_name):
        for a in self.state()["applications"]:
            if a["displayName"] == display_name:
                a.pop("federatedIdentityCredentials", None)
                return a
        return None

    def find_sp(self, app_id):
        for s in self.state()["servicePrincipals"]:
            if s["appId"].lower() == str(app_id).lower():
                return s
        return None

    def assignments(self, principal_id):
        return [a for a in self.state()["roleAssignments"]
                if a["properties"]["principalId"].lower() == str(principal_id).lower()]

    def role_definition(self, name):
        return self._control("role_definition", {"role_name": name})["roleDefinition"]

    def fics(self, app_object_id):
        for a in self.state()["applications"]:
            if a["id"].lower() == str(app_object_id).lower():
                return a["federatedIdentityCredentials"]
        return []

    # -- drift and knobs -----------------------------------------------------------------------
    def delete_app(self, object_id):
        return self._control("delete_app", {"object_id": object_id})

    def delete_sp(self, sp_id):
        return self._control("delete_sp", {"sp_id": sp_id})

    def add_password(self, app_object_id, end=None, display_name=""):
        return self._control("add_password", {"object_id": app_object_id, "end": end,
                                              "display_name": display_name})

    def set_password_end(self, app_object_id, key_id, end_iso):
        return self._control("set_password_end", {"object_id": app_object_id,
                                                  "key_id": key_id, "end": end_iso})

    def remove_role_assignment(self, name_or_id):
        return self._control("remove_role_assignment", {"name_or_id": name_or_id})

    def add_role_assignment(self, scope, role_definition_guid, principal_id, name=None):
        return self._control("add_role_assignment", {
            "scope": scope, "role_definition_guid": role_definition_guid,
            "principal_id": principal_id, "name": name})

    def set_role_definition_actions(self, role_name, actions):
        return self._control("set_role_definition_actions", {"role_name": role_name,
                                                             "actions": list(actions)})

    def set_app(self, object_id, **fields):
        return self._control("set_app", {"object_id": object_id, "fields": fields})

    def set_sp(self, sp_id, **fields):
        return self._control("set_sp", {"sp_id": sp_id, "fields": fields})

    def set_replication_lag(self, n):
        return self._control("config", {"replication_lag": int(n)})

    def set_arm_principal_lag(self, n):
        return self._control("config", {"arm_principal_lag": int(n)})

    def set_max_secret_lifetime_days(self, days):
        return self._control("config", {"max_secret_lifetime_days": days})

    def set_token_ttl(self, seconds):
        self._tokens.clear()
        return self._control("config", {"token_ttl": int(seconds)})

    def set_delay(self, ms):
        return self._control("config", {"delay_ms": int(ms)})

    def reset(self):
        return self._control("reset")

    def log(self):
        try:
            with open(os.path.join(self.state_dir, "emulator.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""


@contextlib.contextmanager
def azure(tenant=None, subscription=SUBSCRIPTION, validate=True, replication_lag=0,
          arm_principal_lag=0, token_ttl=3600, delay_ms=0, verbose=False,
          max_secret_lifetime_days=None, extra_args=()):
    if validate and not sdk_available():
        raise AzureSdkMissing("validate=True needs python3-azure (azure-mgmt-authorization) "
                              "importable by %s: apt-get install python3-azure" % SDK_PYTHON)
    sd = tempfile.mkdtemp(prefix="cg-azure-")
    ready = os.path.join(sd, "ready")
    cmd = [EMU_PYTHON, os.path.join(EMU_DIR, "azure_api.py"), "--state-dir", sd,
           "--port", "0", "--ready-file", ready, "--tenant", tenant or TENANT,
           "--subscription", subscription, "--replication-lag", str(replication_lag),
           "--arm-principal-lag", str(arm_principal_lag), "--token-ttl", str(token_ttl),
           "--delay-ms", str(delay_ms)]
    if max_secret_lifetime_days is not None:
        cmd += ["--max-secret-lifetime-days", str(max_secret_lifetime_days)]
    if validate:
        cmd += ["--validator", SDK_PYTHON, "--require-validator"]
    else:
        cmd += ["--validator", "off"]
    if verbose:
        cmd.append("--verbose")
    cmd += list(extra_args)
    proc = None
    try:
        proc, port = harness._start(cmd, ready, os.path.join(sd, "emulator.log"), timeout=30)
        yield Azure(proc, sd, port)
    finally:
        if proc is not None:
            harness._stop(proc)
        if not harness._keep():
            shutil.rmtree(sd, ignore_errors=True)


if __name__ == "__main__":  # smoke run: python3 azure_harness.py
    with azure() as az:
        print(json.dumps({"url": az.url, "tenant": az.tenant, "admin": az.admin_client_id}))
        print(az.call("GET", "/subscriptions/%s/resourceGroups/%s" % (
            az.subscription, NODE_RESOURCE_GROUP), query={"api-version": "2021-04-01"}))
