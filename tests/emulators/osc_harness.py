"""osc_api.py (the OUTSCALE API emulator: EIM users, policies and versions, links, access keys,
the account's API access policy, OSC4-HMAC-SHA256 signatures) for Python tests.

    sys.path.insert(0, os.path.join(os.environ["CG_SOURCE_DIR"], "tests", "emulators"))
    import osc_harness

    with osc_harness.osc() as o:
        env = dict(os.environ, **o.env())      # OSC_ACCESS_KEY/SECRET_KEY/REGION/ENDPOINT_API
        subprocess.run([binary, "onboard", ...], env=env)
        assert o.user("platform-access")                 # state, no secret values
        assert o.linked("platform-access") == [orn]
        assert not o.violations(), o.violations()        # requests the model refuses
        writes = [r for r in o.requests() if r["mutating"]]

osc(region="eu-west-2", delay_ms=0, verbose=False, extra_args=())
starts osc_api.py on a free port of 127.0.0.1, waits until it is ready and always stops it.
extra_args go to osc_api.py (e.g. ("--user-lag", "2"), ("--account-id", "123456789012"),
("--max-key-expiration-seconds", "86400"), ("--lockout-seconds", "2")).

The yielded object has:
  .url  "http://127.0.0.1:<port>"     .port .region .account_id .state_dir .proc
  .root_access_key .root_secret_key   the account's root key (20 / 40 characters [A-Z0-9])
  .env()            {"OSC_ACCESS_KEY", "OSC_SECRET_KEY", "OSC_REGION",
                     "OSC_ENDPOINT_API": .url + "/api/v1"} (the root key)
  .write_config(path, profile="default", **extra)
                    writes an osc-cli style config file {"<profile>": {"access_key",
                    "secret_key", "region", "endpoints": {"api": .url + "/api/v1"}, **extra}}
                    (mode 0600; merges into an existing file) and returns path
  .call(action, body=None, access_key=None, secret_key=None, raw=False, region=None,
        prefix="/api/v1", timestamp=None)
                    -> (status, parsed JSON) — raw=True: (status, body text). Signed by the
                    harness's own OSC4-HMAC-SHA256 signer with the root key unless a key is
                    given; timestamp: epoch seconds or "YYYYMMDDTHHMMSSZ" for X-Osc-Date
  .send(action, body=b"{}", access_key=None, secret_key=None, region=None, prefix="/api/v1",
        timestamp=None, sign_body=None, signed_headers=None, content_type="application/json",
        headers=None, method="POST")
                    -> (status, body text, response headers with lower-case names); the low
                    level for tampering: sign_body is signed while body is sent,
                    signed_headers ("content-type", "host") leaves x-osc-date unsigned...
  sign(method, path, host, body, access_key, secret_key, region, amz_date,
       content_type="application/json", signed_headers=None, extra_headers=None)
                    module function: -> request headers (Authorization, X-Osc-Date, Host,
                    Content-Type); signature(...) -> the hex signature alone
  .requests()       the request log: dicts with seq, ts, api ("osc" or "control"), method,
                    path, action ("CreateUser"; "control:<name>" for control entries),
                    mutating (not Read*/Check*; control entries never), status, code, type,
                    principal ("root", "user:<name>", "control", or None when authentication
                    failed), access_key (the key id, never a secret), auth ("ok", "missing",
                    "malformed", "unknown-key", "bad-signature", "locked", "expired",
                    "bad-region", "unsigned-header", "inactive", "expired-key", ...),
                    lockout (when this request locked the key), fault, violations, body
                    (secret-looking fields redacted)
  .violations()     the logged requests that had violations (unknown parameter, wrong JSON
                    type, missing required parameter, unknown action, body not a JSON object,
                    Content-Type not application/json)
  .clear_requests()
  .inject(action=None, kind="status", count=1, status=None, code=None, type=None,
          details=None, retry_after=None, delay_ms=None, execute=None)
                    the next `count` API requests whose action equals `action` or matches it
                    as a regex (None: any) get the fault. kind: status (Outscale's error shape;
                    status default 503, type/code by status), throttle (503
                    RequestLimitExceeded, code 6), reset (connection reset), truncated (half
                    the body; runs the request first), invalid-json, slow (delay_ms then
                    served). execute=True runs the request before answering with the fault.
                    ordinal=N: only the N-th matching request gets it (the ones before pass);
                    mutating=True/False: match only mutating / read requests. kind "hang":
                    hold the answer (execute=True: after running the request) until the
                    client closes the connection, .release() or delay_ms (default 600 s);
                    freeze=True also holds every later API request unexecuted from then on
                    (logged with fault "frozen" when its client goes away)
  .release()        ends every hold and freeze now
  .state()          full dump (no secret keys): account_id, region, root_access_key, users,
                    policies (with Versions and Document = the parsed default version),
                    links {user: [orn]}, access_keys (with UserName; None = root),
                    api_access_policy, lag counters, locked keys, config, faults
  .users() -> [user dict]          .user(name) -> dict or None
  .policies() -> [policy dict]     .policy(name_or_orn) -> dict with "Document" (the parsed
                                   default version) and "Versions", or None
  .linked(user_name) -> [orn]      the real links (no lag)
  .access_keys(user_name) -> [key dict without SecretKey] (user_name None: the root's keys)
  drift and knobs (control endpoint, unsigned, logged as "control" entries, no lag):
    .create_user(name, path="/", email=None) -> user dict
    .delete_user(name)               (with its links and keys, as an admin would by force)
    .create_policy(name, document, path="/", description=None) -> policy dict (document: a
                                     dict or a JSON string)
    .set_policy_document(name_or_orn, document) -> the new default version (as a human
                                     edit: a new version set as default; at 5 versions the
                                     oldest non-default one is dropped first)
    .delete_policy(name_or_orn)      (unlinks it everywhere)
    .link(user, orn) / .unlink(user, orn)    (orn may also be a policy name)
    .add_access_key(user, expiration=None, state=None) -> (access_key_id, secret_key)
                                     (user None: a root key)
    .set_key_state(user, key_id, state)      ACTIVE | INACTIVE
    .set_key_expiration(key_id, iso_or_None)
    .set_key_creation(key_id, iso)           to age a key
    .delete_access_key(user, key_id)
    .set_api_access_policy(max_seconds)      MaxAccessKeyExpirationSeconds (0 = no cap)
    .set_user_lag(n)   a user created through the API is InvalidResource for the next n
                       calls naming it
    .set_link_lag(n)   a LinkPolicy link is missing from the next n ReadLinkedPolicies of the
                       user; an UnlinkPolicy keeps DeletePolicy/DeleteUser in conflict for n
    .set_delay(ms)     every API request waits ms first
    .set_lockout_seconds(s)  how long 4 bad signatures in a row lock a key (default 60)
    .unlock(key_id)    ends a lockout now
    .reset()           back to the initial state (root key kept), faults dropped
  .log()            the emulator's stdout/stderr so far
CG_KEEP_EMULATOR_STATE=1 keeps the temporary state directory for debugging.
"""
import contextlib
import datetime
import hashlib
import hmac
import http.client
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.parse

EMU_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, EMU_DIR)
import harness  # noqa: E402

__all__ = ["osc", "Osc", "OscEmulatorError", "sign", "signature", "osc_date", "EMU_PYTHON"]

EMU_PYTHON = os.environ.get("CG_EMULATOR_PYTHON") or (
    "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable)


class OscEmulatorError(RuntimeError):
    pass


# -- the harness's own OSC4-HMAC-SHA256 signer (written from protocols.md 4.1) ---------------

def osc_date(ts=None):
    """epoch seconds (None: now) -> "YYYYMMDDTHHMMSSZ"."""
    ts = time.time() if ts is None else ts
    return datetime.datetime.fromtimestamp(int(ts), datetime.timezone.utc).strftime(
        "%Y%m%dT%H%M%SZ")


def _mac(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signature(method, path, host, body, secret_key, region, amz_date,
              content_type="application/json", signed_headers=None, extra_headers=None):
    """The hex OSC4-HMAC-SHA256 signature of a request with no query string."""
    headers = {"host": host, "x-osc-date": amz_date}
    if content_type is not None:
        headers["content-type"] = content_type
    for k, v in (extra_headers or {}).items():
        headers[k.lower()] = v
    names = sorted(signed_headers if signed_headers is not None else headers)
    canon = "".join("%s:%s\n" % (n, " ".join(str(headers.get(n, "")).split())) for n in names)
    if isinstance(body, str):
        body = body.encode()
    creq = "\n".join([method, path, "", canon, ";".join(names),
                      hashlib.sha256(body).hexdigest()])
    day = amz_date[:8]
    scope = "/".join([day, region, "api", "osc4_request"])
    sts = "\n".join(["OSC4-HMAC-SHA256", amz_date, scope,
                     hashlib.sha256(creq.encode()).hexdigest()])
    key = _mac(("OSC4" + secret_key).encode(), day)
    for part in (region, "api", "osc4_request"):
        key = _mac(key, part)
    return hmac.new(key, sts.encode(), hashlib.sha256).hexdigest(), ";".join(names), scope


def sign(method, path, host, body, access_key, secret_key, region, amz_date,
         content_type="application/json", signed_headers=None, extra_headers=None):
    """-> the request headers (Host, X-Osc-Date, Content-Type, extra_headers, Authorization)."""
    sig, names, scope = signature(method, path, host, body, secret_key, region, amz_date,
                                  content_type, signed_headers, extra_headers)
    h = {"Host": host, "X-Osc-Date": amz_date}
    if content_type is not None:
        h["Content-Type"] = content_type
    h.update(extra_headers or {})
    h["Authorization"] = "OSC4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        access_key, scope, names, sig)
    return h


class Osc:
    def __init__(self, proc, state_dir, port, log_path):
        self.proc = proc
        self.state_dir = state_dir
        self.port = port
        self.log_path = log_path
        self.url = "http://127.0.0.1:%d" % port
        with open(os.path.join(state_dir, "root.json")) as f:
            root = json.load(f)
        self.account_id = root["account_id"]
        self.region = root["region"]
        self.root_access_key = root["access_key"]
        self.root_secret_key = root["secret_key"]

    # -- environment for the code under test ----------------------------------------------------
    def env(self):
        return {"OSC_ACCESS_KEY": self.root_access_key, "OSC_SECRET_KEY": self.root_secret_key,
                "OSC_REGION": self.region, "OSC_ENDPOINT_API": self.url + "/api/v1"}

    def write_config(self, path, profile="default", **extra):
        doc = {}
        if os.path.exists(path):
            with open(path) as f:
                doc = json.load(f)
        prof = {"access_key": self.root_access_key, "secret_key": self.root_secret_key,
                "region": self.region, "endpoints": {"api": self.url + "/api/v1"}}
        prof.update(extra)
        doc[profile] = prof
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        return path

    # -- signed API calls -----------------------------------------------------------------------
    def send(self, action, body=b"{}", access_key=None, secret_key=None, region=None,
             prefix="/api/v1", timestamp=None, sign_body=None, signed_headers=None,
             content_type="application/json", headers=None, method="POST", timeout=30):
        if isinstance(body, str):
            body = body.encode()
        ak = access_key or self.root_access_key
        sk = secret_key or (self.root_secret_key if access_key in (None, self.root_access_key)
                            else None)
        if sk is None:
            raise ValueError("secret_key is needed with access_key")
        if timestamp is None or isinstance(timestamp, (int, float)):
            amz = osc_date(timestamp)
        else:
            amz = timestamp
        path = prefix + "/" + action
        host = "127.0.0.1:%d" % self.port
        h = sign(method, path, host, body if sign_body is None else sign_body, ak, sk,
                 region or self.region, amz, content_type, signed_headers)
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for k, v in h.items():
                conn.putheader(k, v)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            r = conn.getresponse()
            text = r.read().decode("utf-8", "replace")
            rh = {k.lower(): v for k, v in r.getheaders()}
        finally:
            conn.close()
        return r.status, text, rh

    def call(self, action, body=None, access_key=None, secret_key=None, raw=False, region=None,
             prefix="/api/v1", timestamp=None):
        data = json.dumps({} if body is None else body).encode()
        status, text, _h = self.send(action, data, access_key, secret_key, region, prefix,
                                     timestamp)
        if raw:
            return status, text
        try:
            return status, json.loads(text) if text.strip() else None
        except ValueError:
            return status, text

    # -- control --------------------------------------------------------------------------------
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
            raise OscEmulatorError("osc_api control %s: %s %s" % (action, r.status, out))
        return out

    def requests(self):
        return self._control("requests", method="GET")["requests"]

    def issued_secrets(self):
        """Every secret key the emulator issued, for the secret scan."""
        return self._control("issued_secrets", method="GET")["secrets"]

    def violations(self):
        return [r for r in self.requests() if r.get("violations")]

    def clear_requests(self):
        self._control("clear_requests")

    def inject(self, action=None, kind="status", count=1, status=None, code=None, type=None,
               details=None, retry_after=None, delay_ms=None, execute=None, ordinal=None,
               mutating=None, freeze=None):
        doc = {"action": action, "kind": kind, "count": count, "status": status, "code": code,
               "type": type, "details": details, "retry_after": retry_after,
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
        return self._control("release")

    def state(self):
        return self._control("state", method="GET")

    def reset(self):
        return self._control("reset")

    # -- state queries --------------------------------------------------------------------------
    def users(self):
        return self.state()["users"]

    def user(self, name):
        for u in self.users():
            if u["UserName"] == name:
                return u
        return None

    def policies(self):
        return self.state()["policies"]

    def policy(self, name_or_orn):
        for p in self.policies():
            if name_or_orn in (p["PolicyName"], p["Orn"]):
                return p
        return None

    def linked(self, user_name):
        return list(self.state()["links"].get(user_name, []))

    def access_keys(self, user_name):
        return [k for k in self.state()["access_keys"] if k.get("UserName") == user_name]

    # -- drift and knobs -----------------------------------------------------------------------
    def create_user(self, name, path="/", email=None):
        return self._control("create_user", {"name": name, "path": path, "email": email})

    def delete_user(self, name):
        return self._control("delete_user", {"name": name})

    def create_policy(self, name, document, path="/", description=None):
        return self._control("create_policy", {"name": name, "document": document,
                                               "path": path, "description": description})

    def set_policy_document(self, name_or_orn, document):
        return self._control("set_policy_document", {"policy": name_or_orn,
                                                     "document": document})

    def delete_policy(self, name_or_orn):
        return self._control("delete_policy", {"policy": name_or_orn})

    def link(self, user, orn):
        return self._control("link", {"user": user, "orn": orn})

    def unlink(self, user, orn):
        return self._control("unlink", {"user": user, "orn": orn})

    def add_access_key(self, user, expiration=None, state=None):
        out = self._control("add_access_key", {"user": user, "expiration": expiration,
                                               "state": state})
        return out["AccessKeyId"], out["SecretKey"]

    def set_key_state(self, user, key_id, state):
        return self._control("set_key_state", {"user": user, "key_id": key_id,
                                               "state": state})

    def set_key_expiration(self, key_id, iso_or_none):
        return self._control("set_key_expiration", {"key_id": key_id,
                                                    "expiration": iso_or_none})

    def set_key_creation(self, key_id, iso):
        return self._control("set_key_creation", {"key_id": key_id, "creation": iso})

    def delete_access_key(self, user, key_id):
        return self._control("delete_access_key", {"user": user, "key_id": key_id})

    def set_api_access_policy(self, max_seconds):
        return self._control("set_api_access_policy", {"max_seconds": int(max_seconds)})

    def set_user_lag(self, n):
        return self._control("config", {"user_lag": int(n)})

    def set_link_lag(self, n):
        return self._control("config", {"link_lag": int(n)})

    def set_delay(self, ms):
        return self._control("config", {"delay_ms": int(ms)})

    def set_lockout_seconds(self, s):
        return self._control("config", {"lockout_seconds": float(s)})

    def unlock(self, key_id):
        return self._control("unlock", {"key_id": key_id})

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


@contextlib.contextmanager
def osc(region="eu-west-2", delay_ms=0, verbose=False, extra_args=()):
    sd = tempfile.mkdtemp(prefix="cg-osc-")
    ready = os.path.join(sd, "ready")
    log_path = os.path.join(sd, "emulator.log")
    cmd = [EMU_PYTHON, os.path.join(EMU_DIR, "osc_api.py"), "--state-dir", sd, "--port", "0",
           "--ready-file", ready, "--region", region, "--delay-ms", str(delay_ms)]
    if verbose:
        cmd.append("--verbose")
    cmd += list(extra_args)
    proc = None
    try:
        proc, port = harness._start(cmd, ready, log_path, timeout=30)
        yield Osc(proc, sd, port, log_path)
    finally:
        if proc is not None:
            harness._stop(proc)
        if not harness._keep():
            shutil.rmtree(sd, ignore_errors=True)


if __name__ == "__main__":  # smoke run: python3 osc_harness.py
    with osc() as o:
        print(json.dumps({"url": o.url, "account": o.account_id, "region": o.region}))
        print(o.call("ReadAccounts"))
        print(urllib.parse.urlsplit(o.url).port == o.port)
