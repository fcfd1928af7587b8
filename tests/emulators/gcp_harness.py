"""gcp_api.py (IAM, Service Usage, Resource Manager, OAuth token, metadata server) for
Python tests.

    sys.path.insert(0, os.path.join(os.environ["CG_SOURCE_DIR"], "tests", "emulators"))
    import gcp_harness

    with gcp_harness.gcp(project="demo-project") as g:
        env = dict(os.environ, **g.env())            # endpoint overrides + admin key file
        subprocess.run([binary, "onboard", ...], env=env)
        sa = g.gcloud("iam", "service-accounts", "describe", email, "--project", g.project)
        assert not g.violations(), g.violations()     # requests gcloud's model refuses
        writes = [r for r in g.requests() if r["mutating"]]

gcp(project="demo-project", project_number="123456789012",
    enabled=("serviceusage.googleapis.com",), op_polls=2, enable_lag=0, sa_visibility_lag=0,
    token_ttl=3600, delay_ms=0, cluster_name="gke-demo", cluster_location="europe-west1",
    cluster_uid=None, zone="europe-west1-b", metadata_sa=None, admin_account="bootstrap-admin",
    validate=True, extra_args=(), verbose=False)
starts gcp_api.py on free ports (API and metadata), waits until it is ready and always stops
it. validate=True needs gcloud's bundled Python (the validator): GcloudNotFound otherwise;
validate=False runs without request-shape checks.

The yielded object has:
  .url .port .metadata_port .metadata_url .state_dir .project .project_number
  .admin_email .admin_key_file .admin_key (dict) .token (static admin token, for gcloud)
  .env()            CLOUDSDK_API_ENDPOINT_OVERRIDES_{IAM,SERVICEUSAGE,CLOUDRESOURCEMANAGER}
                    and GOOGLE_APPLICATION_CREDENTIALS (the admin key file)
  .metadata_env()   GCE_METADATA_HOST=127.0.0.1:MDPORT
  .gcloud(*args)    runs the real gcloud against the emulator (own CLOUDSDK_CONFIG,
                    endpoint overrides, --access-token-file with .token, --format=json
                    unless a --format is given); returns parsed JSON ({} for no output);
                    raises GcloudError on a non-zero exit
  .gcloud_run(*args) the same, returning the CompletedProcess
  .call(method, path, body=None, token=None, query=None, headers=None)
                    a plain HTTP call, path like "/iam/v1/projects/p/serviceAccounts";
                    returns (status, parsed JSON or text, headers); token defaults to .token
  .requests()       the request log: dicts with seq, ts, api, method, path, query,
                    method_id, mutating, status, rpc, violations, principal, fault, body
  .violations()     the logged requests that had violations
  .clear_requests()
  .inject(method=None, path_regex=None, count=1, status=None, rpc=None, message=None,
          retry_after=None, kind="status", delay_ms=None, execute=None)
                    the next `count` matching requests get the fault (kind status: a
                    Google error, rpc default UNAVAILABLE, status default the rpc's HTTP
                    code, optional Retry-After header); method is an HTTP verb
                    (upper case) or a method id suffix ("serviceAccounts.create",
                    "oauth2.token", "metadata.token"); kind status|reset|truncated|
                    invalid-json|slow|hang; execute=True runs the request before the fault
                    (default only for truncated). ordinal=N: only the N-th matching request
                    gets it (the ones before pass); mutating=True/False: match only
                    mutating / read requests. kind "hang" (API requests only): hold the
                    answer (execute=True: after running the request) until the client
                    closes the connection, .release() or delay_ms (default 600 s);
                    freeze=True also holds every later API request unexecuted from then on
                    (logged with fault "frozen" when its client goes away)
  .release()        ends every hold and freeze now
  .state()          full state dump (no secrets)
  drift and knobs:  .disable_service(name) .enable_service(name)
                    .set_role_permissions(role_id, perms) .set_role(role_id, **fields)
                    .delete_sa(email) .create_sa(account_id, display_name="")
                    .remove_binding(role, member, condition=None)
                    .add_foreign_binding(role, member, condition=None)
                    .create_key(email) -> {"name", "key_id", "key_file"}
                    .delete_key(email, key_id)
                    .set_org_policy_disable_key_creation(flag)
                    .age_deleted_role(role_id, days)
                    .inject_concurrent_write_on_next_set()
                    .set_enable_lag(n) .set_sa_visibility_lag(n) .set_op_polls(n)
                    .set_sa_get_pattern("-+-") .set_enable_pattern("-+-")
                    .set_token_ttl(seconds) .expire_tokens(email=None)
                    .issue_token(email=None, scopes=None, ttl=None) -> access token
                    .add_predefined_role(name, title=None, permissions=())
                    .set_delay(ms) .reset()
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
import urllib.parse

EMU_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, EMU_DIR)
import harness  # noqa: E402

__all__ = ["gcp", "find_gcloud", "gcloud_available", "GcloudNotFound", "GcloudError",
           "GCLOUD_SDK"]

GCLOUD_SDK = os.environ.get("CG_GCLOUD_SDK") or "/usr/lib/google-cloud-sdk"
EMU_PYTHON = os.environ.get("CG_EMULATOR_PYTHON") or (
    "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable)


class GcloudNotFound(RuntimeError):
    pass


class GcloudError(RuntimeError):
    def __init__(self, args, proc):
        super().__init__("gcloud %s: exit %d: %s" % (" ".join(args), proc.returncode,
                                                      proc.stderr.strip()[-2000:]))
        self.proc = proc


def find_gcloud():
    cand = os.environ.get("CG_GCLOUD")
    if cand and os.access(cand, os.X_OK):
        return cand
    return shutil.which("gcloud") or ("/usr/bin/gcloud" if os.access("/usr/bin/gcloud",
                                                                     os.X_OK) else None)


def bundled_python():
    p = os.path.join(GCLOUD_SDK, "platform", "bundledpythonunix", "bin", "python3")
    return p if os.access(p, os.X_OK) else None


def gcloud_available():
    """True when both the gcloud CLI and its bundled Python (the validator) are here."""
    return find_gcloud() is not None and bundled_python() is not None


class Gcp:
    def __init__(self, proc, state_dir, ports, project, project_number):
        self.proc = proc
        self.state_dir = state_dir
        self.port = ports["api"]
        self.metadata_port = ports["metadata"]
        self.url = "http://127.0.0.1:%d" % self.port
        self.metadata_url = "http://127.0.0.1:%d" % self.metadata_port
        self.project = project
        self.project_number = str(project_number)
        self.admin_key_file = os.path.join(state_dir, "admin-key.json")
        with open(self.admin_key_file) as f:
            self.admin_key = json.load(f)
        self.admin_email = self.admin_key["client_email"]
        self.token_file = os.path.join(state_dir, "gcloud-token")
        with open(self.token_file) as f:
            self.token = f.read().strip()
        self.gcloud_config = os.path.join(state_dir, "gcloud-config")
        os.makedirs(self.gcloud_config, exist_ok=True)

    # -- environment for the code under test --------------------------------------------------
    def endpoint_env(self):
        return {"CLOUDSDK_API_ENDPOINT_OVERRIDES_IAM": self.url + "/iam/",
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_SERVICEUSAGE": self.url + "/serviceusage/",
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER": self.url + "/crm/"}

    def env(self):
        e = self.endpoint_env()
        e["GOOGLE_APPLICATION_CREDENTIALS"] = self.admin_key_file
        return e

    def metadata_env(self):
        return {"GCE_METADATA_HOST": "127.0.0.1:%d" % self.metadata_port}

    # -- gcloud --------------------------------------------------------------------------------
    def gcloud_run(self, *args, timeout=120, input=None):
        gcloud = find_gcloud()
        if gcloud is None:
            raise GcloudNotFound("gcloud not found (set CG_GCLOUD)")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CLOUDSDK_", "GOOGLE_", "GCE_"))}
        env.update(self.endpoint_env())
        env.update({"CLOUDSDK_CONFIG": self.gcloud_config, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
                    "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1",
                    "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
                    "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
                    "CLOUDSDK_SURVEY_DISABLE_PROMPTS": "1",
                    "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE": self.token_file})
        cmd = [gcloud] + list(args) + ["--access-token-file", self.token_file, "--quiet"]
        if not any(a == "--format" or a.startswith("--format=") for a in args):
            cmd.append("--format=json")
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                              input=input)

    def gcloud(self, *args, timeout=120):
        p = self.gcloud_run(*args, timeout=timeout)
        if p.returncode != 0:
            raise GcloudError(args, p)
        return json.loads(p.stdout) if p.stdout.strip() else {}

    # -- plain HTTP ----------------------------------------------------------------------------
    def call(self, method, path, body=None, token=None, query=None, headers=None,
             raw_body=None, port=None, timeout=30):
        h = {}
        tok = self.token if token is None else token
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
            path += "?" + urllib.parse.urlencode(query, doseq=True)
        conn = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            text = r.read().decode("utf-8", "replace")
            hdrs = {k.lower(): v for k, v in r.getheaders()}
        finally:
            conn.close()
        try:
            doc = json.loads(text) if text.strip() else {}
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
            raise RuntimeError("gcp_api control %s: %s %s" % (action, r.status, out))
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

    def inject(self, method=None, path_regex=None, count=1, status=None, rpc=None,
               message=None, retry_after=None, kind="status", delay_ms=None, execute=None,
               ordinal=None, mutating=None, freeze=None):
        doc = {"method": method, "path_regex": path_regex, "count": count, "status": status,
               "rpc": rpc, "message": message, "retry_after": retry_after, "kind": kind,
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

    # -- drift and knobs -----------------------------------------------------------------------
    def disable_service(self, name):
        return self._control("disable_service", {"name": name})

    def enable_service(self, name):
        return self._control("enable_service", {"name": name})

    def set_role_permissions(self, role_id, perms):
        return self._control("set_role_permissions", {"role_id": role_id,
                                                      "permissions": list(perms)})

    def set_role(self, role_id, **fields):
        return self._control("set_role", dict(fields, role_id=role_id))

    def delete_sa(self, email):
        return self._control("delete_sa", {"email": email})

    def create_sa(self, account_id, display_name="", description=""):
        return self._control("create_sa", {"account_id": account_id,
                                           "display_name": display_name,
                                           "description": description})

    def remove_binding(self, role, member, condition=None):
        return self._control("remove_binding", {"role": role, "member": member,
                                                "condition": condition})

    def add_foreign_binding(self, role, member, condition=None):
        return self._control("add_foreign_binding", {"role": role, "member": member,
                                                     "condition": condition})

    def create_key(self, email):
        return self._control("create_key", {"email": email})

    def delete_key(self, email, key_id):
        return self._control("delete_key", {"email": email, "key_id": key_id})

    def set_org_policy_disable_key_creation(self, flag=True):
        return self._control("org_policy", {"disable_key_creation": bool(flag)})

    def age_deleted_role(self, role_id, days):
        return self._control("age_deleted_role", {"role_id": role_id, "days": days})

    def inject_concurrent_write_on_next_set(self):
        return self._control("concurrent_write_on_next_set")

    def set_enable_lag(self, n):
        return self._control("config", {"enable_lag": int(n)})

    def set_sa_visibility_lag(self, n):
        return self._control("config", {"sa_visibility_lag": int(n)})

    def set_sa_get_pattern(self, pattern):
        """What the GETs of each service account created from now on see, one character a
        read ('-' NOT_FOUND, '+' found), before they always find it: "-+-" is a replica
        that misses, one that sees it, and one that misses again."""
        return self._control("config", {"sa_get_pattern": pattern})

    def set_enable_pattern(self, pattern):
        """The same for a service just enabled: '-' answers SERVICE_DISABLED."""
        return self._control("config", {"enable_pattern": pattern})

    def set_op_polls(self, n):
        return self._control("config", {"op_polls": int(n)})

    def set_token_ttl(self, seconds):
        return self._control("config", {"token_ttl": int(seconds)})

    def set_delay(self, ms):
        return self._control("config", {"delay_ms": int(ms)})

    def expire_tokens(self, email=None):
        return self._control("expire_tokens", {"email": email})

    def issue_token(self, email=None, scopes=None, ttl=None):
        return self._control("issue_token", {"email": email, "scopes": scopes,
                                             "ttl": ttl})["access_token"]

    def add_predefined_role(self, name, title=None, permissions=()):
        return self._control("add_predefined_role", {"name": name, "title": title,
                                                     "permissions": list(permissions)})

    def reset(self):
        return self._control("reset")

    def log(self):
        try:
            with open(os.path.join(self.state_dir, "emulator.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""


@contextlib.contextmanager
def gcp(project="demo-project", project_number="123456789012",
        enabled=("serviceusage.googleapis.com",), op_polls=2, enable_lag=0,
        sa_visibility_lag=0, token_ttl=3600, delay_ms=0, cluster_name="gke-demo",
        cluster_location="europe-west1", cluster_uid=None, zone="europe-west1-b",
        metadata_sa=None, admin_account="bootstrap-admin", validate=True, extra_args=(),
        verbose=False):
    if validate and bundled_python() is None:
        raise GcloudNotFound("validate=True needs gcloud's bundled Python under %s"
                             % GCLOUD_SDK)
    sd = tempfile.mkdtemp(prefix="cg-gcp-")
    ready = os.path.join(sd, "ready")
    cmd = [EMU_PYTHON, os.path.join(EMU_DIR, "gcp_api.py"), "--state-dir", sd,
           "--port", "0", "--metadata-port", "0", "--ready-file", ready,
           "--project", project, "--project-number", str(project_number),
           "--enabled", ",".join(enabled), "--op-polls", str(op_polls),
           "--enable-lag", str(enable_lag), "--sa-visibility-lag", str(sa_visibility_lag),
           "--token-ttl", str(token_ttl), "--delay-ms", str(delay_ms),
           "--cluster-name", cluster_name, "--cluster-location", cluster_location,
           "--zone", zone, "--admin-account", admin_account]
    if cluster_uid:
        cmd += ["--cluster-uid", cluster_uid]
    if metadata_sa:
        cmd += ["--metadata-sa", metadata_sa]
    if validate:
        cmd += ["--validator", bundled_python(), "--require-validator"]
    else:
        cmd += ["--validator", "off"]
    if verbose:
        cmd.append("--verbose")
    cmd += list(extra_args)
    proc = None
    try:
        proc, _port = harness._start(cmd, ready, os.path.join(sd, "emulator.log"), timeout=30)
        with open(os.path.join(sd, "ports.json")) as f:
            ports = json.load(f)
        yield Gcp(proc, sd, ports, project, project_number)
    finally:
        if proc is not None:
            harness._stop(proc)
        if not harness._keep():
            shutil.rmtree(sd, ignore_errors=True)


if __name__ == "__main__":  # smoke run: python3 gcp_harness.py
    with gcp(enabled=("serviceusage.googleapis.com", "iam.googleapis.com",
                      "cloudresourcemanager.googleapis.com")) as g:
        print(json.dumps({"url": g.url, "metadata": g.metadata_url, "admin": g.admin_email}))
        print(g.gcloud("projects", "get-iam-policy", g.project))
