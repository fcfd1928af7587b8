#!/usr/bin/python3
"""A local, stateful emulator of the OUTSCALE API calls cloudgrant makes (protocols.md 4).

    /usr/bin/python3 osc_api.py --state-dir DIR [--port 0] [--host 127.0.0.1]
        [--ready-file PATH] [--region eu-west-2] [--account-id 987654321098]
        [--user-lag 0] [--link-lag 0] [--delay-ms 0] [--lockout-seconds 60]
        [--max-key-expiration-seconds 0] [--verbose]

One plain-HTTP server on 127.0.0.1:
  POST /api/v1/<Action>, POST /api/latest/<Action>   the OUTSCALE API (JSON, OSC4-HMAC-SHA256)
  /_emu/<action>                                     control endpoints for tests (unsigned; see
                                                     osc_harness.py)

The state dir gets root.json ({"account_id", "region", "access_key", "secret_key"}: the root
access key, mode 0600), ports.json ({"api": P}) and, with --ready-file, the port once it
listens. Python 3 standard library only.

Requests. Content-Type must be application/json and the body a JSON object ("{}" for none).
Every request is signed OSC4-HMAC-SHA256 (SigV4 with Outscale's constants, protocols.md 4.1);
the emulator checks it with its own implementation: Authorization present and well formed,
credential scope <yyyymmdd>/<region>/api/osc4_request with the emulator's region, X-Osc-Date
present, within 5 minutes of now and equal to the scope date, SignedHeaders naming host and
x-osc-date (and content-type when one is sent), a known access key, the signature over the
canonical request (method, path, empty/canonical query, the SignedHeaders' canonical values,
the signed header list, hex SHA-256 of the body). Four bad signatures in a row for an access
key lock it for --lockout-seconds (60 s, Outscale's documented temporary lock): every request
with it gets 401 code 13 until then (logged, and printed to stderr). A bad signature is a
well-formed request with a known key whose signature does not match. An ACTIVE, unexpired user
key authenticates as that EIM user; INACTIVE or expired keys get 401.

Bodies are then checked against osc_model.py (Outscale's request models: parameter names, JSON
types, required parameters). An unknown parameter, a wrong type or a missing required
parameter gets Outscale's 400 and the request log records a violation.

Authorization: the root key may do everything. An EIM user may call an action only when the
default version of one of its linked policies allows "api:<Action>" (Effect Allow; Action a
string or a list, '*' and '?' wildcards, case-insensitive; Resource "*") and none denies it;
otherwise 403. (Authorization uses the links as they are, without the link lag below.)

Answers: success bodies carry ResponseContext.RequestId (a UUID); errors are always
{"Errors":[{"Code":"<digits>","Type":"<Type>","Details":"..."}],"ResponseContext":{...}}.

Error codes (HTTP status, Type, Code). "doc" = Outscale's published errors page
(docs.outscale.com/api-errors.html, v1.28.5 and v1.39.1) or osc-sdk-python's
resources/gateway_errors.yaml (Outscale's code table: code, name, Type); "illus." = our choice,
no published code found for the case:
  signature / authentication failure: missing or malformed Authorization, unknown key, bad
  signature, wrong scope or region, X-Osc-Date skew, host/x-osc-date/content-type unsigned,
  INACTIVE or expired key
      401 AccessDenied           1      doc: ErrorAuthenticationFailed, 401
  key locked after 4 bad signatures in a row
      401 AccessDenied           13     doc: ErrorTemporaryBruteForceAccessLockedException
                                        ("locked for 60 seconds"), 401
  EIM user not allowed by its policies
      403 AccessDenied           4      code doc (ErrorUnauthorizedOperation); the page
                                        gives 401, the emulator answers 403
  GET or another method           405 AccessDenied           2      doc: ErrorHttpMethodNotAllowed
  throttling (injected)           503 RequestLimitExceeded   6      code doc (ErrorOperation-
                                        Throttled, 503; the page's Type is AccessDenied)
  internal error                  500 InternalError          2000   illus.
  unknown action                  400 InvalidAction          3000   illus.
  unknown parameter               400 InvalidParameter       3001   illus.
  wrong JSON type                 400 InvalidParameterValue  4108   doc: invalid-parameter-type
  bad value (pattern, range, enum, date, policy document, expiration cap)
                                  400 InvalidParameterValue  4047   doc: invalid-parameter-value
  value too long                  400 InvalidParameterValue  4106   doc: ...-value-length
  body not a JSON object, Content-Type not application/json
                                  400 InvalidParameterValue  4095   doc: validation-error
  missing required parameter      400 MissingParameter       7000   illus.
  no such user                    400 InvalidResource        5075   doc: no-such-user
  no such policy, version, link   400 InvalidResource        5044   doc: no-such-resource
  no such access key              400 InvalidResource        5027   doc name: no-such-key (the
                                        table also has 4000 access-keys-not-found typed
                                        InvalidParameterValue; we keep the not-found category)
  user already exists             409 ResourceConflict       9022   doc: duplicate-username
  policy already exists           409 ResourceConflict       9015   doc: duplicate-name
  policy already linked to user   409 ResourceConflict       9000   doc: already-exist
  in use: user with keys or links, policy linked or with non-default versions, the default
  version, an ACTIVE EIM user key
                                  409 ResourceConflict       9085   an "in use" conflict that
                                        terraform-provider-outscale retries; meaning unconfirmed
  5 versions already              409 ResourceConflict       9086   illus.
  10 access keys already          409 TooManyResources       10005  doc: too-many-accesskeys
The HTTP statuses of the 4xxx/5xxx/9xxx/10xxx codes are not published with the table; 400 for
parameters and missing resources and 409 for conflicts are what the C client expects
(protocols.md 4.3).

Modelled behaviour and choices not confirmed against the real service:
- FirstItem is a 0-based offset; ResultsPerPage 1..1000 (default 100); MaxResultsLimit 1000;
  a larger ResultsPerPage is cut to 1000 with MaxResultsTruncated true.
- CreateAccessKey/UpdateAccessKey ExpirationDate: ISO 8601 date or date-time (no zone = UTC),
  in the future. When the account's ApiAccessPolicy.MaxAccessKeyExpirationSeconds > 0 an
  ExpirationDate is required (also on UpdateAccessKey, whose documented behaviour without one
  is to remove the expiration) and must be at most that many seconds (+5 s) from now.
  UpdateAccessKey without ExpirationDate (cap 0) removes the key's expiration, as documented.
- DeleteAccessKey of an EIM user's ACTIVE key: 409 (protocols.md 4.2); root keys may be
  deleted in any state. 10 keys per user (and for the root).
- Policy versions v1, v2, ... (never reused), 5 at most; the default cannot be deleted.
  DeletePolicy needs no links and no non-default versions.
- User names are case-sensitive; user Path: "/" or "/a/b/" with alphanumerics and '_' (the
  documented charset), 1..512 characters; policy Path: "/.../" without whitespace.
- DryRun true: checked (auth, authorization, parameters) and answered 200 with only
  ResponseContext, nothing changed.
- Eventual consistency: --user-lag N: a user created through the API is InvalidResource for
  the next N calls that name it (UserName). --link-lag N: a link made by LinkPolicy is
  missing from the next N ReadLinkedPolicies of that user; a link removed by UnlinkPolicy
  still makes DeletePolicy (of that policy) and DeleteUser (of that user) answer 409 for the
  next N such calls. Control-endpoint drift has no lag.
- ReadVms answers {"Vms": []} (so a handed-over user key can be shown to work).
Not modelled: BasicAuth (login/password), CheckAuthentication's login, API access rules and
client certificates, groups, inline user policies (PutUserPolicy), OWS-scope managed policies,
tags on keys beyond storing Tag, throttling of identical requests (inject it), the EIM API.

Faults (control "inject"): the next `count` requests whose action equals `action` or matches
it as a regex get kind "status" (status, code, type, details, retry_after), "throttle" (503
RequestLimitExceeded, code 6), "reset" (connection closed, RST), "truncated" (half the body,
then the connection closes; executes the request first by default), "invalid-json" (a
malformed JSON body with the given status, default 200), "slow" (delay_ms, then served
normally). execute=True runs the request before answering with the fault. A global delay
knob (delay_ms) applies to every API request.
Fault selection and holds (additive): ordinal=N applies the fault to the N-th matching request
only (the N-1 before it pass untouched); mutating=true/false matches only mutating / read
requests. Kind "hang" holds the answer (after running the request with execute=True) until the
client closes the connection, control "release" is called, or delay_ms (default 600000) pass;
a client still there then gets the normal answer (the request runs then if it had not).
freeze=True (with hang): once that request is held, every later API request waits unexecuted
too, until "release" (then it runs) or its client goes away (then it never runs; logged with
fault "frozen", status null). The hang's log entry is written before the hold, with "held"
set to "closed", "released" or "timeout" when it ends.

Secrets (secret keys, SecretKey values) never reach the request log, the state dump, stdout or
stderr; the root secret is only in DIR/root.json (0600).
"""
import argparse
import copy
import datetime
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import threading
import time
import urllib.parse
import uuid

EMU_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, EMU_DIR)
from emu_common import EmulatorHandler, QuietThreadingHTTPServer, serve, write_atomic  # noqa: E402
import osc_model  # noqa: E402

DEFAULT_REGION = "eu-west-2"
DEFAULT_ACCOUNT = "987654321098"
ALGORITHM = "OSC4-HMAC-SHA256"
SERVICE = "api"
TERMINATOR = "osc4_request"
MAX_SKEW = 300                  # seconds, the replay window
LOCK_AFTER = 4                  # bad signatures in a row
MAX_VERSIONS = 5
MAX_KEYS = 10
MAX_RESULTS_LIMIT = 1000
DEFAULT_PAGE = 100
DOC_MAX = 5120
EXPIRATION_SLACK = 5

USER_NAME_RE = re.compile(r"^[A-Za-z0-9+=,.@_-]{1,64}$")
POLICY_NAME_RE = re.compile(r"^[A-Za-z0-9+=,.@_-]{1,128}$")
USER_PATH_RE = re.compile(r"^/(?:[A-Za-z0-9_]+/)*$")
POLICY_PATH_RE = re.compile(r"^/(?:[^/\s]+/)*$")
ORN_RE = re.compile(r"^orn:ows:(iam|idauth):\S*:\d{12}:policy/\S+$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")
AK_RE = re.compile(r"^[A-Z0-9]{20}$")
DATE_RE = re.compile(r"^\d{8}T\d{6}Z$")
ISO_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?)?$")

# (status, type, code)
E_AUTH = (401, "AccessDenied", "1")
E_LOCKED = (401, "AccessDenied", "13")
E_FORBIDDEN = (403, "AccessDenied", "4")
E_METHOD = (405, "AccessDenied", "2")
E_THROTTLE = (503, "RequestLimitExceeded", "6")
E_INTERNAL = (500, "InternalError", "2000")
E_ACTION = (400, "InvalidAction", "3000")
E_UNKNOWN_PARAM = (400, "InvalidParameter", "3001")
E_TYPE = (400, "InvalidParameterValue", "4108")
E_VALUE = (400, "InvalidParameterValue", "4047")
E_LENGTH = (400, "InvalidParameterValue", "4106")
E_BODY = (400, "InvalidParameterValue", "4095")
E_MISSING = (400, "MissingParameter", "7000")
E_NO_USER = (400, "InvalidResource", "5075")
E_NO_RESOURCE = (400, "InvalidResource", "5044")
E_NO_KEY = (400, "InvalidResource", "5027")
E_USER_EXISTS = (409, "ResourceConflict", "9022")
E_POLICY_EXISTS = (409, "ResourceConflict", "9015")
E_LINK_EXISTS = (409, "ResourceConflict", "9000")
E_IN_USE = (409, "ResourceConflict", "9085")
E_VERSIONS = (409, "ResourceConflict", "9086")
E_KEYS = (409, "TooManyResources", "10005")

SECRET_FIELD_RE = re.compile(r"secret|password", re.I)
# Every secret key this process ever issued, even deleted ones and across resets: the tests'
# secret scan looks for each of them in everything a run left behind (/_emu/issued_secrets).
ISSUED_SECRETS = []
CONTROL_QUIET = ("state", "requests", "clear_requests", "issued_secrets")


# ==============================================================================================
# helpers

def iso(ts):
    """Outscale's date-time format: 2024-05-01T12:34:56.789Z."""
    dt = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)


def parse_iso(value):
    """ISO 8601 date or date-time -> epoch seconds (no zone = UTC); None if malformed."""
    if not isinstance(value, str):
        return None
    m = ISO_RE.match(value.strip())
    if not m:
        return None
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    try:
        dt = datetime.datetime(int(y), int(mo), int(d), int(hh or 0), int(mi or 0),
                               int(ss or 0), int((frac or "0").ljust(6, "0")[:6]),
                               tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    ts = dt.timestamp()
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        off = int(digits[:2]) * 3600 + (int(digits[2:4]) * 60 if len(digits) >= 4 else 0)
        ts -= sign * off
    return ts


def new_id(n=32):
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(n))


def new_access_key():
    return new_id(20)


def new_secret_key():
    return new_id(40)


def redact(doc):
    """A copy with every secret-looking field's value replaced."""
    if isinstance(doc, dict):
        out = {}
        for k, v in doc.items():
            if isinstance(k, str) and SECRET_FIELD_RE.search(k) and v is not None:
                out[k] = "<redacted>"
            else:
                out[k] = redact(v)
        return out
    if isinstance(doc, list):
        return [redact(v) for v in doc]
    return doc


def wildcard_match(pattern, value):
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, re.IGNORECASE | re.DOTALL) is not None


def doc_decision(doc, action):
    """-> "deny", "allow" or None for "api:<action>" under one policy document."""
    stmts = doc.get("Statement") if isinstance(doc, dict) else None
    if isinstance(stmts, dict):
        stmts = [stmts]
    if not isinstance(stmts, list):
        return None
    want = "api:" + action
    result = None
    for st in stmts:
        if not isinstance(st, dict):
            continue
        acts = st.get("Action")
        acts = [acts] if isinstance(acts, str) else acts
        res = st.get("Resource")
        res = [res] if isinstance(res, str) else res
        if not isinstance(acts, list) or not isinstance(res, list):
            continue
        if not any(isinstance(a, str) and wildcard_match(a, want) for a in acts):
            continue
        if "*" not in res:
            continue
        eff = st.get("Effect")
        if eff == "Deny":
            return "deny"
        if eff == "Allow":
            result = "allow"
    return result


class OscError(Exception):
    def __init__(self, err, details, headers=None):
        super().__init__(details)
        self.status, self.type, self.code = err
        self.details = details
        self.headers = headers or {}


class Violation(OscError):
    """A request shape a correct client never sends (logged as a violation)."""


class ControlError(Exception):
    def __init__(self, message, code=400):
        super().__init__(message)
        self.code = code


# ==============================================================================================
# signature (protocols.md 4.1)

def _hmac(key, msg):
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret, date, region):
    k = _hmac(("OSC4" + secret).encode("utf-8"), date)
    k = _hmac(k, region)
    k = _hmac(k, SERVICE)
    return _hmac(k, TERMINATOR)


def canonical_query(raw_query):
    if not raw_query:
        return ""
    pairs = []
    for piece in raw_query.split("&"):
        if not piece:
            continue
        k, _, v = piece.partition("=")
        k = urllib.parse.quote(urllib.parse.unquote(k), safe="-_.~")
        v = urllib.parse.quote(urllib.parse.unquote(v), safe="-_.~")
        pairs.append((k, v))
    return "&".join("%s=%s" % kv for kv in sorted(pairs))


def canonical_request(method, path, raw_query, headers, signed, body):
    """headers: a callable name -> list of values (as received)."""
    uri = urllib.parse.quote(urllib.parse.unquote(path), safe="/~") or "/"
    lines = []
    for name in signed:
        values = headers(name)
        lines.append("%s:%s\n" % (name, ",".join(" ".join(v.split()) for v in values)))
    return "\n".join([method, uri, canonical_query(raw_query), "".join(lines),
                      ";".join(signed), hashlib.sha256(body).hexdigest()])


def string_to_sign(amz_date, scope, creq):
    return "\n".join([ALGORITHM, amz_date, scope,
                      hashlib.sha256(creq.encode("utf-8")).hexdigest()])


AUTH_RE = re.compile(r"^OSC4-HMAC-SHA256\s+(.*)$", re.S)


def parse_authorization(value):
    """-> dict(credential, signed_headers, signature) or raises ValueError(reason)."""
    m = AUTH_RE.match(value.strip())
    if not m:
        scheme = value.strip().split(" ", 1)[0]
        raise ValueError("the Authorization scheme %r is not %s" % (scheme[:32], ALGORITHM))
    fields = {}
    for part in re.split(r",\s*", m.group(1).strip()):
        k, sep, v = part.partition("=")
        if not sep:
            raise ValueError("malformed Authorization component %r" % part[:40])
        fields[k.strip()] = v.strip()
    for k in ("Credential", "SignedHeaders", "Signature"):
        if not fields.get(k):
            raise ValueError("the Authorization header has no %s" % k)
    cred = fields["Credential"].split("/")
    if len(cred) != 5:
        raise ValueError("Credential must be <access key>/<date>/<region>/api/osc4_request")
    if not re.fullmatch(r"[0-9a-f]{64}", fields["Signature"]):
        raise ValueError("Signature must be 64 lowercase hex digits")
    signed = fields["SignedHeaders"].split(";")
    if any(not s or s != s.lower() for s in signed) or signed != sorted(signed):
        raise ValueError("SignedHeaders must be lowercase names, sorted, ';'-separated")
    return {"access_key": cred[0], "date": cred[1], "region": cred[2], "service": cred[3],
            "terminator": cred[4], "signed": signed, "signature": fields["Signature"]}


# ==============================================================================================
# state

class State:
    def __init__(self, account_id, root_key, max_seconds):
        self.lock = threading.RLock()
        self.account_id = account_id
        self.users = {}          # name -> user dict (API fields + "_created")
        self.policies = {}       # orn -> policy dict (API fields) + "_versions", "_next"
        self.links = {}          # user name -> {orn: {"CreationDate", "LastModificationDate"}}
        self.keys = {}           # access key id -> key dict (API fields) + "_owner" (None=root)
        self.secrets = {}        # access key id -> secret key (never dumped)
        self.api_access_policy = {"MaxAccessKeyExpirationSeconds": int(max_seconds),
                                  "RequireTrustedEnv": False}
        self.user_lag = {}       # user name -> remaining calls answered InvalidResource
        self.link_pending = {}   # (user, orn) -> remaining ReadLinkedPolicies that omit it
        self.unlink_ghost = {}   # (user, orn) -> remaining DeletePolicy/DeleteUser conflicts
        self.failures = {}       # access key id -> bad signatures in a row
        self.locked = {}         # access key id -> locked until (epoch)
        now = time.time()
        ak, sk = root_key
        self.add_key(None, ak, sk, now, None)
        self.root_access_key = ak

    def add_key(self, owner, ak, sk, now, expiration_ts, tag=None):
        k = {"AccessKeyId": ak, "State": "ACTIVE", "CreationDate": iso(now),
             "LastModificationDate": iso(now), "_owner": owner, "_created": now,
             "_expires": expiration_ts}
        if expiration_ts is not None:
            k["ExpirationDate"] = iso(expiration_ts)
        if tag is not None:
            k["Tag"] = tag
        self.keys[ak] = k
        self.secrets[ak] = sk
        ISSUED_SECRETS.append(sk)
        return k

    def keys_of(self, owner):
        return [k for k in self.keys.values() if k["_owner"] == owner]

    def policy_by_name(self, name):
        for p in self.policies.values():
            if p["PolicyName"] == name:
                return p
        return None

    def default_document(self, p):
        for v in p["_versions"]:
            if v["VersionId"] == p["PolicyDefaultVersionId"]:
                try:
                    return json.loads(v["Body"])
                except ValueError:
                    return None
        return None


def public_user(u):
    return {k: v for k, v in u.items() if not k.startswith("_")}


def public_policy(st, p):
    d = {k: v for k, v in p.items() if not k.startswith("_")}
    d["ResourcesCount"] = sum(1 for links in st.links.values() if p["Orn"] in links)
    return d


def public_key(k):
    return {kk: v for kk, v in k.items() if not kk.startswith("_")}


def public_version(v):
    return dict(v)


# ==============================================================================================

class Emulator:
    def __init__(self, args):
        self.args = args
        self.region = args.region
        self.account_id = args.account_id
        self.state_dir = args.state_dir
        self.verbose = args.verbose
        self.port = None
        self.user_lag = args.user_lag
        self.link_lag = args.link_lag
        self.delay_ms = args.delay_ms
        self.lockout_seconds = float(args.lockout_seconds)
        self.root_key = (new_access_key(), new_secret_key())
        self.state = State(self.account_id, self.root_key, args.max_key_expiration_seconds)
        self.log_lock = threading.Lock()
        self.log = []
        self.seq = 0
        self.faults = []
        self.frozen = False      # a freeze-hang holds every later API request
        self.release_gen = 0     # bumped by control "release": every hold ends

    def write_files(self):
        write_atomic(os.path.join(self.state_dir, "root.json"), json.dumps({
            "account_id": self.account_id, "region": self.region,
            "access_key": self.root_key[0], "secret_key": self.root_key[1]}, indent=2) + "\n",
            mode=0o600)
        write_atomic(os.path.join(self.state_dir, "ports.json"),
                     json.dumps({"api": self.port}) + "\n")

    def reset(self):
        with self.state.lock:
            self.state = State(self.account_id, self.root_key,
                               self.args.max_key_expiration_seconds)
        with self.log_lock:
            self.faults = []
        self.release()

    def release(self):
        with self.log_lock:
            self.frozen = False
            self.release_gen += 1

    def record(self, entry):
        with self.log_lock:
            self.seq += 1
            entry["seq"] = self.seq
            entry["ts"] = round(time.time(), 3)
            self.log.append(entry)
        if self.verbose:
            sys.stderr.write("osc_api: %s\n" % json.dumps(
                {k: v for k, v in entry.items() if k != "body"}))
            sys.stderr.flush()

    def take_fault(self, action, mutating=None):
        with self.log_lock:
            for f in self.faults:
                want = f.get("action")
                if want:
                    if want != action:
                        try:
                            if not re.fullmatch(want, action or ""):
                                continue
                        except re.error:
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

    def dump(self):
        st = self.state
        with st.lock:
            pols = []
            for p in st.policies.values():
                d = public_policy(st, p)
                d["Versions"] = [public_version(v) for v in p["_versions"]]
                d["Document"] = st.default_document(p)
                pols.append(d)
            keys = []
            for k in st.keys.values():
                d = public_key(k)
                d["UserName"] = k["_owner"]
                keys.append(d)
            now = time.time()
            return {
                "account_id": self.account_id, "region": self.region,
                "root_access_key": st.root_access_key,
                "users": [public_user(u) for u in st.users.values()],
                "policies": pols,
                "links": {u: sorted(links) for u, links in st.links.items() if links},
                "access_keys": keys,
                "api_access_policy": dict(st.api_access_policy),
                "lag": {"users": dict(st.user_lag),
                        "link_reads": {"%s %s" % k: v for k, v in st.link_pending.items()},
                        "unlinks": {"%s %s" % k: v for k, v in st.unlink_ghost.items()}},
                "locked": {k: round(v - now, 3) for k, v in st.locked.items() if v > now},
                "config": {"user_lag": self.user_lag, "link_lag": self.link_lag,
                           "delay_ms": self.delay_ms, "lockout_seconds": self.lockout_seconds},
                "faults": list(self.faults),
            }


# ==============================================================================================
# the API actions

class Api:
    """Executes one authenticated, shape-checked request. self.principal is None (root) or the
    EIM user's name."""

    def __init__(self, emu, st, principal, entry):
        self.emu = emu
        self.st = st
        self.principal = principal
        self.entry = entry
        self.now = time.time()

    # -- lookups ---------------------------------------------------------------------------
    def user(self, name, lagging=True):
        if not isinstance(name, str) or not USER_NAME_RE.match(name):
            raise OscError(E_VALUE, "The UserName '%s' is not valid: 1 to 64 alphanumeric "
                           "characters or +=,.@_-." % str(name)[:80])
        u = self.st.users.get(name)
        if u is None:
            raise OscError(E_NO_USER, "The user '%s' does not exist." % name)
        if lagging and self.st.user_lag.get(name, 0) > 0:
            self.st.user_lag[name] -= 1
            if self.st.user_lag[name] <= 0:
                del self.st.user_lag[name]
            raise OscError(E_NO_USER, "The user '%s' does not exist." % name)
        return u

    def policy(self, orn):
        if not ORN_RE.match(orn):
            raise OscError(E_VALUE, "The PolicyOrn '%s' is not valid (pattern "
                           "^orn:ows:(iam|idauth):\\S*:\\d{12}:policy/\\S+$)." % orn[:200])
        p = self.st.policies.get(orn)
        if p is None:
            raise OscError(E_NO_RESOURCE, "The policy '%s' does not exist." % orn)
        return p

    def key_owner(self, body):
        """The UserName the key actions work on: the named user, else the caller."""
        if "UserName" in body:
            self.user(body["UserName"])
            return body["UserName"]
        return self.principal

    def page(self, body, items):
        first = body.get("FirstItem", 0)
        per = body.get("ResultsPerPage", DEFAULT_PAGE)
        if first < 0:
            raise OscError(E_VALUE, "FirstItem must be 0 or more.")
        if per < 1:
            raise OscError(E_VALUE, "ResultsPerPage must be 1 or more.")
        truncated = per > MAX_RESULTS_LIMIT
        per = min(per, MAX_RESULTS_LIMIT)
        chunk = items[first:first + per]
        return chunk, {"HasMoreItems": first + per < len(items),
                       "MaxResultsLimit": MAX_RESULTS_LIMIT, "MaxResultsTruncated": truncated}

    def check_document(self, doc):
        if len("".join(doc.split())) > DOC_MAX:
            raise OscError(E_LENGTH, "The policy document has %d non-whitespace characters; "
                           "at most %d are allowed." % (len("".join(doc.split())), DOC_MAX))
        try:
            parsed = json.loads(doc)
        except ValueError as exc:
            raise OscError(E_VALUE, "The policy document is not valid JSON: %s" % exc) from None
        if not isinstance(parsed, dict) or "Version" not in parsed or "Statement" not in parsed:
            raise OscError(E_VALUE, "The policy document must be a JSON object with Version "
                           "and Statement.")
        stm = parsed["Statement"]
        if not isinstance(stm, (list, dict)):
            raise OscError(E_VALUE, "The policy document's Statement must be a list.")
        for s in (stm if isinstance(stm, list) else [stm]):
            if not isinstance(s, dict) or s.get("Effect") not in ("Allow", "Deny") or \
                    "Action" not in s or "Resource" not in s:
                raise OscError(E_VALUE, "Each statement needs Effect (Allow or Deny), Action "
                               "and Resource.")
        return parsed

    def expiration(self, body, required_label):
        """-> epoch or None; enforces the account's API access policy."""
        cap = self.st.api_access_policy["MaxAccessKeyExpirationSeconds"]
        if "ExpirationDate" not in body:
            if cap > 0:
                raise OscError(E_VALUE, "The API access policy of this account requires every "
                               "access key to expire within %d seconds: %s needs an "
                               "ExpirationDate." % (cap, required_label))
            return None
        ts = parse_iso(body["ExpirationDate"])
        if ts is None:
            raise OscError(E_VALUE, "ExpirationDate '%s' is not an ISO 8601 date or date-time."
                           % body["ExpirationDate"][:64])
        if ts <= self.now:
            raise OscError(E_VALUE, "ExpirationDate '%s' is not in the future."
                           % body["ExpirationDate"])
        if cap > 0 and ts > self.now + cap + EXPIRATION_SLACK:
            raise OscError(E_VALUE, "ExpirationDate '%s' is beyond the maximum access key "
                           "lifetime of %d seconds set by the account's API access policy "
                           "(latest allowed: %s)." % (body["ExpirationDate"], cap,
                                                       iso(self.now + cap)))
        return ts

    def ghost_conflict(self, match):
        for k in list(self.st.unlink_ghost):
            if match(k):
                self.st.unlink_ghost[k] -= 1
                if self.st.unlink_ghost[k] <= 0:
                    del self.st.unlink_ghost[k]
                return True
        return False

    # -- dispatch ----------------------------------------------------------------------------
    def run(self, action, body):
        fn = getattr(self, "a_" + action, None)
        if fn is None:
            raise OscError(E_ACTION, "The action '%s' is not modelled by the emulator." % action)
        return fn(body)

    def a_ReadAccounts(self, body):
        return {"Accounts": [{
            "AccountId": self.st.account_id, "City": "Paris", "CompanyName": "cloudgrant demo",
            "Country": "France", "CustomerId": "12345678", "Email": "ops@example.com",
            "FirstName": "Ops", "LastName": "Team", "ZipCode": "75001",
            "AdditionalEmails": []}]}

    def a_ReadApiAccessPolicy(self, body):
        return {"ApiAccessPolicy": dict(self.st.api_access_policy)}

    def a_CheckAuthentication(self, body):
        raise OscError(E_AUTH, "CheckAuthentication with a login and password is not "
                       "modelled by the emulator.")

    def a_ReadVms(self, body):
        return {"Vms": []}

    # -- users -----------------------------------------------------------------------------
    def check_user_fields(self, name, path, email, label=""):
        if name is not None and not USER_NAME_RE.match(name):
            raise OscError(E_VALUE if len(name) <= 64 else E_LENGTH,
                           "The %sUserName '%s' is not valid: 1 to 64 alphanumeric characters "
                           "or +=,.@_-." % (label, name[:80]))
        if path is not None and (not USER_PATH_RE.match(path) or len(path) > 512):
            raise OscError(E_VALUE, "The %sPath '%s' is not valid: it must begin and end with "
                           "'/' and contain only alphanumeric characters, '/' or '_' (1 to "
                           "512)." % ("New" if label else "", path[:80]))
        if email is not None and not EMAIL_RE.match(email):
            raise OscError(E_VALUE, "The %sUserEmail '%s' is not a valid email address."
                           % (label, email[:80]))

    def a_CreateUser(self, body):
        name = body["UserName"]
        path = body.get("Path", "/")
        self.check_user_fields(name, path, body.get("UserEmail"))
        if name in self.st.users:
            raise OscError(E_USER_EXISTS, "The user '%s' already exists." % name)
        if body.get("DryRun"):
            return {}
        u = {"UserId": new_id(), "UserName": name, "Path": path,
             "CreationDate": iso(self.now), "LastModificationDate": iso(self.now),
             "_created": self.now}
        if "UserEmail" in body:
            u["UserEmail"] = body["UserEmail"]
        self.st.users[name] = u
        if self.emu.user_lag > 0:
            self.st.user_lag[name] = self.emu.user_lag
        return {"User": public_user(u)}

    def a_ReadUsers(self, body):
        users = list(self.st.users.values())
        ids = (body.get("Filters") or {}).get("UserIds")
        if ids is not None:
            users = [u for u in users if u["UserId"] in ids]
        chunk, meta = self.page(body, users)
        out = {"Users": [public_user(u) for u in chunk]}
        out.update(meta)
        return out

    def a_UpdateUser(self, body):
        u = self.user(body["UserName"])
        new_name = body.get("NewUserName")
        self.check_user_fields(new_name, body.get("NewPath"), body.get("NewUserEmail"), "New")
        if new_name is not None and new_name != u["UserName"] and new_name in self.st.users:
            raise OscError(E_USER_EXISTS, "The user '%s' already exists." % new_name)
        if body.get("DryRun"):
            return {}
        old = u["UserName"]
        if new_name is not None and new_name != old:
            del self.st.users[old]
            u["UserName"] = new_name
            self.st.users[new_name] = u
            if old in self.st.links:
                self.st.links[new_name] = self.st.links.pop(old)
            for k in self.st.keys.values():
                if k["_owner"] == old:
                    k["_owner"] = new_name
        if "NewPath" in body:
            u["Path"] = body["NewPath"]
        if "NewUserEmail" in body:
            u["UserEmail"] = body["NewUserEmail"]
        u["LastModificationDate"] = iso(self.now)
        return {"User": public_user(u)}

    def a_DeleteUser(self, body):
        name = body["UserName"]
        self.user(name)
        keys = self.st.keys_of(name)
        if keys:
            raise OscError(E_IN_USE, "The user '%s' still has %d access key(s); delete them "
                           "before deleting the user." % (name, len(keys)))
        if self.st.links.get(name):
            raise OscError(E_IN_USE, "The user '%s' still has %d linked policy(ies); unlink "
                           "them before deleting the user." % (name, len(self.st.links[name])))
        if self.ghost_conflict(lambda k: k[0] == name):
            raise OscError(E_IN_USE, "The user '%s' has a policy being unlinked; retry later."
                           % name)
        if body.get("DryRun"):
            return {}
        del self.st.users[name]
        self.st.links.pop(name, None)
        self.st.user_lag.pop(name, None)
        for k in [k for k in self.st.link_pending if k[0] == name]:
            del self.st.link_pending[k]
        return {}

    # -- policies ----------------------------------------------------------------------------
    def a_CreatePolicy(self, body):
        name = body["PolicyName"]
        path = body.get("Path", "/")
        if not POLICY_NAME_RE.match(name):
            raise OscError(E_VALUE if len(name) <= 128 else E_LENGTH,
                           "The PolicyName '%s' is not valid: 1 to 128 alphanumeric "
                           "characters or +=,.@_-." % name[:140])
        if not POLICY_PATH_RE.match(path) or len(path) > 512:
            raise OscError(E_VALUE, "The Path '%s' is not valid: it must begin and end with "
                           "'/'." % path[:80])
        if len(body.get("Description", "")) > 1000:
            raise OscError(E_LENGTH, "The Description must be at most 1000 characters.")
        self.check_document(body["Document"])
        if self.st.policy_by_name(name) is not None:
            raise OscError(E_POLICY_EXISTS, "A policy named '%s' already exists." % name)
        if body.get("DryRun"):
            return {}
        return {"Policy": public_policy(self.st, make_policy(
            self.st, name, path, body["Document"], body.get("Description"), self.now))}

    def a_ReadPolicies(self, body):
        f = body.get("Filters") or {}
        items = list(self.st.policies.values())
        if f.get("Scope") == "OWS":
            items = []
        prefix = f.get("PathPrefix")
        if prefix is not None:
            items = [p for p in items if p["Path"].startswith(prefix)]
        if f.get("OnlyLinked"):
            items = [p for p in items
                     if any(p["Orn"] in links for links in self.st.links.values())]
        chunk, meta = self.page(body, items)
        out = {"Policies": [public_policy(self.st, p) for p in chunk]}
        out.update(meta)
        return out

    def a_ReadPolicy(self, body):
        return {"Policy": public_policy(self.st, self.policy(body["PolicyOrn"]))}

    def a_DeletePolicy(self, body):
        orn = body["PolicyOrn"]
        p = self.policy(orn)
        users = sorted(u for u, links in self.st.links.items() if orn in links)
        if users:
            raise OscError(E_IN_USE, "The policy '%s' is linked to %d user(s) (%s); unlink it "
                           "first." % (orn, len(users), ", ".join(users[:5])))
        if len(p["_versions"]) > 1:
            raise OscError(E_IN_USE, "The policy '%s' has %d non-default version(s); delete "
                           "them first." % (orn, len(p["_versions"]) - 1))
        if self.ghost_conflict(lambda k: k[1] == orn):
            raise OscError(E_IN_USE, "The policy '%s' is still being unlinked; retry later."
                           % orn)
        if body.get("DryRun"):
            return {}
        del self.st.policies[orn]
        return {}

    def a_CreatePolicyVersion(self, body):
        p = self.policy(body["PolicyOrn"])
        self.check_document(body["Document"])
        if len(p["_versions"]) >= MAX_VERSIONS:
            raise OscError(E_VERSIONS, "The policy '%s' already has %d versions, the maximum; "
                           "delete a non-default version first." % (p["Orn"], MAX_VERSIONS))
        v = add_version(p, body["Document"], bool(body.get("SetAsDefault")), self.now)
        return {"PolicyVersion": public_version(v)}

    def version(self, p, vid):
        for v in p["_versions"]:
            if v["VersionId"] == vid:
                return v
        raise OscError(E_NO_RESOURCE, "The version '%s' of the policy '%s' does not exist."
                       % (vid, p["Orn"]))

    def a_ReadPolicyVersion(self, body):
        p = self.policy(body["PolicyOrn"])
        return {"PolicyVersion": public_version(self.version(p, body["VersionId"]))}

    def a_ReadPolicyVersions(self, body):
        p = self.policy(body["PolicyOrn"])
        chunk, meta = self.page(body, p["_versions"])
        return {"PolicyVersions": [public_version(v) for v in chunk],
                "HasMoreItems": meta["HasMoreItems"], "MaxResultsLimit": MAX_RESULTS_LIMIT}

    def a_DeletePolicyVersion(self, body):
        p = self.policy(body["PolicyOrn"])
        v = self.version(p, body["VersionId"])
        if v["DefaultVersion"]:
            raise OscError(E_IN_USE, "The version '%s' is the default version of the policy "
                           "'%s' and cannot be deleted." % (v["VersionId"], p["Orn"]))
        p["_versions"].remove(v)
        p["LastModificationDate"] = iso(self.now)
        return {}

    # -- links -------------------------------------------------------------------------------
    def a_LinkPolicy(self, body):
        p = self.policy(body["PolicyOrn"])
        name = body["UserName"]
        self.user(name)
        links = self.st.links.setdefault(name, {})
        if p["Orn"] in links:
            raise OscError(E_LINK_EXISTS, "The policy '%s' is already linked to the user '%s'."
                           % (p["Orn"], name))
        if body.get("DryRun"):
            return {}
        links[p["Orn"]] = {"CreationDate": iso(self.now), "LastModificationDate": iso(self.now)}
        self.st.unlink_ghost.pop((name, p["Orn"]), None)
        if self.emu.link_lag > 0:
            self.st.link_pending[(name, p["Orn"])] = self.emu.link_lag
        return {}

    def a_UnlinkPolicy(self, body):
        orn = body["PolicyOrn"]
        if not ORN_RE.match(orn):
            self.policy(orn)  # raises the pattern error
        name = body["UserName"]
        self.user(name)
        links = self.st.links.get(name, {})
        if orn not in links:
            raise OscError(E_NO_RESOURCE, "The policy '%s' is not linked to the user '%s'."
                           % (orn, name))
        if body.get("DryRun"):
            return {}
        del links[orn]
        self.st.link_pending.pop((name, orn), None)
        if self.emu.link_lag > 0:
            self.st.unlink_ghost[(name, orn)] = self.emu.link_lag
        return {}

    def a_ReadLinkedPolicies(self, body):
        if "UserName" in body:
            name = body["UserName"]
            self.user(name)
        elif self.principal is not None:
            name = self.principal
        else:
            raise OscError(E_MISSING, "ReadLinkedPolicies by the root account needs a "
                           "UserName.")
        prefix = (body.get("Filters") or {}).get("PathPrefix")
        items = []
        for orn, link in self.st.links.get(name, {}).items():
            pend = self.st.link_pending.get((name, orn), 0)
            if pend > 0:
                if pend <= 1:
                    del self.st.link_pending[(name, orn)]
                else:
                    self.st.link_pending[(name, orn)] = pend - 1
                continue
            p = self.st.policies.get(orn)
            if p is None:
                continue
            if prefix is not None and not p["Path"].startswith(prefix):
                continue
            items.append({"PolicyName": p["PolicyName"], "PolicyId": p["PolicyId"],
                          "Orn": orn, "CreationDate": link["CreationDate"],
                          "LastModificationDate": link["LastModificationDate"]})
        chunk, meta = self.page(body, items)
        out = {"Policies": chunk}
        out.update(meta)
        return out

    # -- access keys -------------------------------------------------------------------------
    def find_key(self, owner, ak):
        k = self.st.keys.get(ak)
        if k is None or k["_owner"] != owner:
            raise OscError(E_NO_KEY, "The access key '%s' does not exist%s." % (
                str(ak)[:40], "" if owner is None else " for the user '%s'" % owner))
        return k

    def a_CreateAccessKey(self, body):
        owner = self.key_owner(body)
        exp = self.expiration(body, "CreateAccessKey")
        if len(self.st.keys_of(owner)) >= MAX_KEYS:
            raise OscError(E_KEYS, "%s already has %d access keys, the maximum." % (
                "The root account" if owner is None else "The user '%s'" % owner, MAX_KEYS))
        if body.get("DryRun"):
            return {}
        ak, sk = new_access_key(), new_secret_key()
        while ak in self.st.keys:
            ak = new_access_key()
        k = self.st.add_key(owner, ak, sk, self.now, exp, body.get("Tag"))
        out = public_key(k)
        out["SecretKey"] = sk
        return {"AccessKey": out}

    def a_ReadAccessKeys(self, body):
        owner = self.key_owner(body)
        f = body.get("Filters") or {}
        keys = self.st.keys_of(owner)
        if f.get("AccessKeyIds") is not None:
            keys = [k for k in keys if k["AccessKeyId"] in f["AccessKeyIds"]]
        if f.get("States") is not None:
            for s in f["States"]:
                if s not in ("ACTIVE", "INACTIVE"):
                    raise OscError(E_VALUE, "Filters.States values must be ACTIVE or "
                                   "INACTIVE, got '%s'." % s[:40])
            keys = [k for k in keys if k["State"] in f["States"]]
        if "Tag" in body:
            keys = [k for k in keys if k.get("Tag") == body["Tag"]]
        return {"AccessKeys": [public_key(k) for k in keys]}

    def a_UpdateAccessKey(self, body):
        owner = self.key_owner(body)
        k = self.find_key(owner, body["AccessKeyId"])
        exp = self.expiration(body, "UpdateAccessKey")
        if body.get("DryRun"):
            return {}
        k["State"] = body["State"]
        k["_expires"] = exp
        if exp is None:
            k.pop("ExpirationDate", None)
        else:
            k["ExpirationDate"] = iso(exp)
        k["LastModificationDate"] = iso(self.now)
        return {"AccessKey": public_key(k)}

    def a_DeleteAccessKey(self, body):
        owner = self.key_owner(body)
        k = self.find_key(owner, body["AccessKeyId"])
        if owner is not None and k["State"] == "ACTIVE":
            raise OscError(E_IN_USE, "The access key '%s' of the EIM user '%s' is ACTIVE: it "
                           "must be set INACTIVE (UpdateAccessKey State=INACTIVE) before it "
                           "can be deleted." % (k["AccessKeyId"], owner))
        if body.get("DryRun"):
            return {}
        del self.st.keys[k["AccessKeyId"]]
        self.st.secrets.pop(k["AccessKeyId"], None)
        self.st.failures.pop(k["AccessKeyId"], None)
        self.st.locked.pop(k["AccessKeyId"], None)
        return {}


def make_policy(st, name, path, document, description, now):
    orn = "orn:ows:idauth::%s:policy%s%s" % (st.account_id, path, name)
    p = {"PolicyName": name, "PolicyId": new_id(), "Orn": orn, "Path": path,
         "PolicyDefaultVersionId": "v1", "IsLinkable": True,
         "CreationDate": iso(now), "LastModificationDate": iso(now),
         "_versions": [], "_next": 1}
    if description is not None:
        p["Description"] = description
    add_version(p, document, True, now)
    st.policies[orn] = p
    return p


def add_version(p, document, default, now):
    vid = "v%d" % p["_next"]
    p["_next"] += 1
    v = {"VersionId": vid, "Body": document, "CreationDate": iso(now),
         "DefaultVersion": bool(default) or not p["_versions"]}
    if v["DefaultVersion"]:
        for other in p["_versions"]:
            other["DefaultVersion"] = False
        p["PolicyDefaultVersionId"] = vid
    p["_versions"].append(v)
    p["LastModificationDate"] = iso(now)
    return v


# ==============================================================================================
# HTTP

class ApiHandler(EmulatorHandler):
    server_version = "osc-emulator"

    def version_string(self):
        return self.server_version

    def do_POST(self):
        self.dispatch()

    def do_GET(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def do_PATCH(self):
        self.dispatch()

    def do_HEAD(self):
        self.dispatch()

    @property
    def emu(self):
        return self.server.emu

    # -- sending -----------------------------------------------------------------------------
    def send_json(self, status, doc, headers=None):
        self.send_body(status, json.dumps(doc), "application/json", headers)

    def error_doc(self, err_type, code, details):
        return {"Errors": [{"Code": str(code), "Type": err_type, "Details": details}],
                "ResponseContext": {"RequestId": self.request_id}}

    def send_truncated(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:max(1, len(body) // 2)])
        self.wfile.flush()
        self.reset_connection()

    def release_generation(self):
        return self.emu.release_gen

    def set_held(self, entry, how):
        with self.emu.log_lock:
            entry["held"] = how

    def fault_reply(self, fault, entry):
        kind = fault["kind"]
        if kind == "reset":
            self.reset_connection()
            return
        if kind == "invalid-json":
            self.send_body(int(fault.get("status") or 200),
                           '{"ResponseContext": {"RequestId": "', "application/json")
            return
        if kind == "throttle":
            status, etype, code = E_THROTTLE
            details = fault.get("details") or "Request rate exceeded."
        else:
            status = int(fault.get("status") or 503)
            etype = fault.get("type") or {400: "InvalidParameterValue", 401: "AccessDenied",
                                          403: "AccessDenied", 409: "ResourceConflict",
                                          429: "RequestLimitExceeded",
                                          500: "InternalError",
                                          503: "RequestLimitExceeded"}.get(status,
                                                                            "InternalError")
            code = fault.get("code") or {401: "1", 403: "4", 429: "24", 500: "2000",
                                         503: "6"}.get(status, "2000")
            details = fault.get("details") or "The emulator injected this failure."
        h = {}
        if fault.get("retry_after") is not None:
            h["Retry-After"] = str(fault["retry_after"])
        entry["status"], entry["type"], entry["code"] = status, etype, str(code)
        self.send_json(status, self.error_doc(etype, code, details), h)

    # -- routing -----------------------------------------------------------------------------
    def dispatch(self):
        self.request_id = str(uuid.uuid4())
        try:
            self._dispatch()
        except (ConnectionError, BrokenPipeError):
            self.close_connection = True
        except Exception as exc:  # never let one request take the server down
            sys.stderr.write("osc_api: internal error on %s %s: %s: %s\n"
                             % (self.command, self.path, type(exc).__name__, exc))
            try:
                self.send_json(500, self.error_doc("InternalError", "2000",
                                                   "emulator internal error: %s"
                                                   % type(exc).__name__))
            except OSError:
                pass
            self.close_connection = True

    def _dispatch(self):
        parts = urllib.parse.urlsplit(self.path)
        path = parts.path
        if path.startswith("/_emu/"):
            return self.control(path[len("/_emu/"):])
        m = re.fullmatch(r"/api/(v1|latest)/([A-Za-z0-9]{1,64})", path)
        raw = self.read_body()
        if raw is None:
            return self.send_json(413, self.error_doc(*E_BODY[1:], "The request body is too "
                                                      "large."))
        entry = {"api": "osc", "method": self.command, "path": path,
                 "action": m.group(2) if m else None, "mutating": False, "status": None,
                 "code": None, "type": None, "principal": None, "access_key": None,
                 "auth": None, "fault": None, "violations": [], "body": None}
        text = raw.decode("utf-8", "replace")
        parsed = None
        if text.strip():
            try:
                parsed = json.loads(text)
                entry["body"] = redact(parsed)
            except ValueError:
                entry["body"] = "<not JSON: %d bytes>" % len(raw)
        if m:
            entry["mutating"] = not osc_model.is_read_action(m.group(2))
        emu = self.emu
        if emu.delay_ms:
            time.sleep(emu.delay_ms / 1000.0)
        if m and emu.frozen:
            how = self.hold(600000, emu.release_gen)
            if how == "closed":
                entry["fault"] = "frozen"
                emu.record(entry)
                self.close_connection = True
                return
        fault = emu.take_fault(entry["action"], entry["mutating"]) if m else None
        if fault and fault["kind"] == "hang":
            entry["fault"] = "hang"
            gen = emu.release_gen
            executed = bool(fault.get("execute"))
            if executed:
                status, doc = self.execute(m, path, parts.query, raw, parsed, entry)
                entry["status"] = status
            emu.record(entry)
            if fault.get("freeze"):
                with emu.log_lock:
                    emu.frozen = True
            how = self.hold(fault.get("delay_ms") or 600000, gen)
            self.set_held(entry, how)
            if how == "closed":
                self.close_connection = True
                return
            if not executed:
                status, doc = self.execute(m, path, parts.query, raw, parsed, entry)
                with emu.log_lock:
                    entry["status"] = status
            return self.send_json(status, doc)
        if fault:
            entry["fault"] = fault["kind"]
            if fault["kind"] == "slow":
                time.sleep((fault.get("delay_ms") or 2000) / 1000.0)
            elif not fault.get("execute"):
                if fault["kind"] in ("invalid-json",):
                    entry["status"] = int(fault.get("status") or 200)
                self.fault_reply(fault, entry)
                emu.record(entry)
                return
        status, doc = self.execute(m, path, parts.query, raw, parsed, entry)
        entry["status"] = status
        emu.record(entry)
        if fault and fault.get("execute") and fault["kind"] != "slow":
            if fault["kind"] == "truncated":
                return self.send_truncated(status, doc)
            return self.fault_reply(fault, entry)
        if self.command == "HEAD":
            return self.send_body(status, b"", "application/json")
        self.send_json(status, doc)

    def execute(self, m, path, raw_query, raw, parsed, entry):
        try:
            if self.command != "POST":
                raise OscError(E_METHOD, "The OUTSCALE API accepts only POST.")
            if not m:
                raise Violation(E_ACTION, "No OUTSCALE API action at '%s' (POST /api/v1/"
                                "<Action>)." % path[:200])
            action = m.group(2)
            principal = self.authenticate(path, raw_query, raw, entry)
            if action not in osc_model.REQUESTS:
                raise Violation(E_ACTION, "The action '%s' does not exist." % action)
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != "application/json":
                raise Violation(E_BODY, "The Content-Type must be application/json, got '%s'."
                                % (self.headers.get("Content-Type") or "")[:80])
            if not isinstance(parsed, dict):
                raise Violation(E_BODY, "The request body must be a JSON object ('{}' for no "
                                "parameters).")
            st = self.emu.state
            with st.lock:
                self.authorize(st, principal, action)
                self.check_shape(action, parsed)
                api = Api(self.emu, st, principal, entry)
                out = api.run(action, parsed)
            out["ResponseContext"] = {"RequestId": self.request_id}
            return 200, out
        except OscError as err:
            if isinstance(err, Violation):
                entry["violations"].append(err.details)
            entry["code"], entry["type"] = err.code, err.type
            return err.status, self.error_doc(err.type, err.code, err.details)

    def check_shape(self, action, body):
        problems = osc_model.check_request(action, body)
        if not problems:
            return
        kind, param, msg = problems[0]
        if kind == "value":
            raise OscError(E_VALUE, msg)
        err = {"unknown": E_UNKNOWN_PARAM, "type": E_TYPE, "missing": E_MISSING}[kind]
        raise Violation(err, msg)

    # -- authentication and authorization ------------------------------------------------------
    def authenticate(self, path, raw_query, raw, entry):
        emu = self.emu
        st = emu.state

        def fail(msg, err=E_AUTH):
            entry["auth"] = entry["auth"] or "refused"
            raise OscError(err, msg)

        header = self.headers.get("Authorization")
        if not header:
            entry["auth"] = "missing"
            fail("The request is not signed: no Authorization header.")
        try:
            a = parse_authorization(header)
        except ValueError as exc:
            entry["auth"] = "malformed"
            fail("Malformed Authorization header: %s." % exc)
        ak = a["access_key"]
        entry["access_key"] = ak if AK_RE.match(ak) else "<malformed>"
        now = time.time()
        with st.lock:
            until = st.locked.get(ak, 0)
            if until > now:
                entry["auth"] = "locked"
                fail("Too many failed connection attempts. Your access has been locked for "
                     "%d seconds (%.0f s left)." % (emu.lockout_seconds, until - now),
                     E_LOCKED)
            secret = st.secrets.get(ak)
        if secret is None:
            entry["auth"] = "unknown-key"
            fail("The access key '%s' does not exist." % ak[:40])
        date = self.headers.get("X-Osc-Date")
        if not date:
            entry["auth"] = "no-date"
            fail("The request has no X-Osc-Date header.")
        if not DATE_RE.match(date):
            entry["auth"] = "bad-date"
            fail("X-Osc-Date must be YYYYMMDDTHHMMSSZ, got '%s'." % date[:40])
        for name in ("host", "x-osc-date"):
            if name not in a["signed"]:
                entry["auth"] = "unsigned-header"
                fail("SignedHeaders must include %s." % name)
        if self.headers.get("Content-Type") is not None and "content-type" not in a["signed"]:
            entry["auth"] = "unsigned-header"
            fail("SignedHeaders must include content-type when a Content-Type is sent.")
        for name in a["signed"]:
            if not self.headers.get_all(name):
                entry["auth"] = "unsigned-header"
                fail("The signed header '%s' is not in the request." % name)
        if a["service"] != SERVICE or a["terminator"] != TERMINATOR:
            entry["auth"] = "bad-scope"
            fail("The credential scope must end with /%s/%s, got /%s/%s."
                 % (SERVICE, TERMINATOR, a["service"][:20], a["terminator"][:20]))
        if a["region"] != emu.region:
            entry["auth"] = "bad-region"
            fail("The credential scope names the region '%s'; this endpoint is '%s'."
                 % (a["region"][:32], emu.region))
        if a["date"] != date[:8]:
            entry["auth"] = "bad-scope"
            fail("The credential scope date %s does not match X-Osc-Date %s."
                 % (a["date"][:8], date))
        try:
            ts = datetime.datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(
                tzinfo=datetime.timezone.utc).timestamp()
        except ValueError:
            entry["auth"] = "bad-date"
            fail("X-Osc-Date '%s' is not a valid date." % date)
        if abs(now - ts) > MAX_SKEW:
            entry["auth"] = "expired"
            fail("The request date %s is more than 5 minutes away from the server's time."
                 % date)
        creq = canonical_request(self.command, path, raw_query,
                                 lambda n: self.headers.get_all(n) or [], a["signed"], raw)
        scope = "%s/%s/%s/%s" % (a["date"], a["region"], SERVICE, TERMINATOR)
        sts = string_to_sign(date, scope, creq)
        expected = hmac.new(signing_key(secret, a["date"], a["region"]), sts.encode("utf-8"),
                            hashlib.sha256).hexdigest()
        with st.lock:
            if not hmac.compare_digest(expected, a["signature"]):
                n = st.failures.get(ak, 0) + 1
                st.failures[ak] = n
                entry["auth"] = "bad-signature"
                if n >= LOCK_AFTER:
                    st.failures[ak] = 0
                    st.locked[ak] = now + emu.lockout_seconds
                    entry["lockout"] = {"access_key": ak, "seconds": emu.lockout_seconds}
                    sys.stderr.write("osc_api: access key %s locked for %g s after %d bad "
                                     "signatures in a row\n" % (ak, emu.lockout_seconds, n))
                    sys.stderr.flush()
                fail("The signature does not match (bad signature %d in a row; %d lock the "
                     "key for %d seconds)." % (n, LOCK_AFTER, emu.lockout_seconds))
            st.failures.pop(ak, None)
            k = st.keys.get(ak)
            if k is None:
                fail("The access key '%s' does not exist." % ak)
            if k["State"] != "ACTIVE":
                entry["auth"] = "inactive"
                fail("The access key '%s' is INACTIVE." % ak)
            if k["_expires"] is not None and k["_expires"] <= now:
                entry["auth"] = "expired-key"
                fail("The access key '%s' expired at %s." % (ak, k["ExpirationDate"]))
            owner = k["_owner"]
        entry["auth"] = "ok"
        entry["principal"] = "root" if owner is None else "user:%s" % owner
        return owner

    def authorize(self, st, principal, action):
        if principal is None:
            return
        decisions = []
        for orn in st.links.get(principal, {}):
            p = st.policies.get(orn)
            if p is None:
                continue
            doc = st.default_document(p)
            decisions.append(doc_decision(doc, action))
        if "deny" in decisions or "allow" not in decisions:
            raise OscError(E_FORBIDDEN, "The EIM user '%s' is not allowed to perform "
                           "api:%s (no linked policy allows it%s)."
                           % (principal, action, ", one denies it" if "deny" in decisions
                              else ""))

    # -- control -------------------------------------------------------------------------------
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
        except OscError as oe:
            status, out = oe.status, {"error": oe.details, "code": oe.code, "type": oe.type}
        except (KeyError, TypeError, ValueError) as exc:
            status, out = 400, {"error": "bad control request: %s: %s"
                                % (type(exc).__name__, exc)}
        if action not in CONTROL_QUIET:
            emu.record({"api": "control", "method": self.command, "path": "/_emu/" + action,
                        "action": "control:" + action, "mutating": False, "status": status,
                        "code": None, "type": None, "principal": "control",
                        "access_key": None, "auth": None, "fault": None, "violations": [],
                        "body": redact(req)})
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
            kind = req.get("kind") or "status"
            if kind not in ("status", "throttle", "reset", "truncated", "invalid-json", "slow",
                            "hang"):
                raise ControlError("unknown fault kind %r" % kind)
            ordinal = int(req.get("ordinal") or 1)
            if ordinal < 1:
                raise ControlError("ordinal must be 1 or more")
            f = {"kind": kind, "action": req.get("action"), "count": int(req.get("count") or 1),
                 "status": req.get("status"), "code": req.get("code"), "type": req.get("type"),
                 "details": req.get("details"), "retry_after": req.get("retry_after"),
                 "delay_ms": req.get("delay_ms"),
                 "execute": bool(req.get("execute", kind == "truncated"))}
            if ordinal > 1:
                f["skip"] = ordinal - 1
            if req.get("mutating") is not None:
                f["mutating"] = bool(req["mutating"])
            if req.get("freeze"):
                f["freeze"] = True
            if f["action"]:
                try:
                    re.compile(f["action"])
                except re.error as exc:
                    raise ControlError("bad action regex: %s" % exc) from None
            with emu.log_lock:
                emu.faults.append(f)
                return {"ok": True, "faults": len(emu.faults)}
        if action == "config":
            for k in ("user_lag", "link_lag", "delay_ms"):
                if k in req:
                    setattr(emu, k, int(req[k]))
            if "lockout_seconds" in req:
                emu.lockout_seconds = float(req["lockout_seconds"])
            return {"ok": True}
        st = emu.state
        with st.lock:
            return self.control_state(emu, st, action, req)

    def control_state(self, emu, st, action, req):
        now = time.time()

        def need_user(name):
            if name not in st.users:
                raise ControlError("no user %r" % name, 404)
            return st.users[name]

        def need_policy(name_or_orn):
            p = st.policies.get(name_or_orn) or st.policy_by_name(name_or_orn or "")
            if p is None:
                raise ControlError("no policy %r" % name_or_orn, 404)
            return p

        def need_key(ak):
            k = st.keys.get(ak)
            if k is None:
                raise ControlError("no access key %r" % ak, 404)
            return k

        def when(value):
            if value is None:
                return None
            ts = parse_iso(value)
            if ts is None:
                raise ControlError("bad date %r" % value)
            return ts

        if action == "create_user":
            name, path = req["name"], req.get("path") or "/"
            if name in st.users:
                raise ControlError("user %r exists" % name, 409)
            u = {"UserId": new_id(), "UserName": name, "Path": path,
                 "CreationDate": iso(now), "LastModificationDate": iso(now), "_created": now}
            if req.get("email"):
                u["UserEmail"] = req["email"]
            st.users[name] = u
            return public_user(u)
        if action == "delete_user":
            need_user(req["name"])
            del st.users[req["name"]]
            st.links.pop(req["name"], None)
            for k in [k for k in st.keys.values() if k["_owner"] == req["name"]]:
                del st.keys[k["AccessKeyId"]]
                st.secrets.pop(k["AccessKeyId"], None)
            return {"ok": True}
        if action == "create_policy":
            doc = req["document"]
            doc = doc if isinstance(doc, str) else json.dumps(doc)
            path = req.get("path") or "/"
            if st.policy_by_name(req["name"]) is not None:
                raise ControlError("policy %r exists" % req["name"], 409)
            p = make_policy(st, req["name"], path, doc, req.get("description"), now)
            return public_policy(st, p)
        if action == "set_policy_document":
            p = need_policy(req["policy"])
            doc = req["document"]
            doc = doc if isinstance(doc, str) else json.dumps(doc)
            if len(p["_versions"]) >= MAX_VERSIONS:  # a human would delete the oldest one
                for v in p["_versions"]:
                    if not v["DefaultVersion"]:
                        p["_versions"].remove(v)
                        break
            v = add_version(p, doc, True, now)
            return public_version(v)
        if action == "delete_policy":
            p = need_policy(req["policy"])
            for links in st.links.values():
                links.pop(p["Orn"], None)
            del st.policies[p["Orn"]]
            return {"ok": True}
        if action == "link":
            need_user(req["user"])
            p = need_policy(req["orn"])
            st.links.setdefault(req["user"], {})[p["Orn"]] = {
                "CreationDate": iso(now), "LastModificationDate": iso(now)}
            return {"ok": True}
        if action == "unlink":
            need_user(req["user"])
            p = need_policy(req["orn"])
            if st.links.get(req["user"], {}).pop(p["Orn"], None) is None:
                raise ControlError("policy %s is not linked to %s" % (p["Orn"], req["user"]),
                                   404)
            return {"ok": True}
        if action == "add_access_key":
            owner = req.get("user") or None
            if owner is not None:
                need_user(owner)
            exp = when(req.get("expiration"))
            ak, sk = new_access_key(), new_secret_key()
            k = st.add_key(owner, ak, sk, now, exp)
            if req.get("state"):
                k["State"] = req["state"]
            return {"AccessKeyId": ak, "SecretKey": sk}
        if action == "set_key_state":
            k = need_key(req["key_id"])
            if req.get("user") is not None and k["_owner"] != (req.get("user") or None):
                raise ControlError("access key %s is not %s's" % (req["key_id"], req["user"]),
                                   404)
            if req["state"] not in ("ACTIVE", "INACTIVE"):
                raise ControlError("state must be ACTIVE or INACTIVE")
            k["State"] = req["state"]
            k["LastModificationDate"] = iso(now)
            return public_key(k)
        if action == "set_key_expiration":
            k = need_key(req["key_id"])
            exp = when(req.get("expiration"))
            k["_expires"] = exp
            if exp is None:
                k.pop("ExpirationDate", None)
            else:
                k["ExpirationDate"] = iso(exp)
            return public_key(k)
        if action == "set_key_creation":
            k = need_key(req["key_id"])
            ts = when(req["creation"])
            k["_created"] = ts
            k["CreationDate"] = iso(ts)
            return public_key(k)
        if action == "delete_access_key":
            k = need_key(req["key_id"])
            if req.get("user") is not None and k["_owner"] != (req.get("user") or None):
                raise ControlError("access key %s is not %s's" % (req["key_id"], req["user"]),
                                   404)
            del st.keys[k["AccessKeyId"]]
            st.secrets.pop(k["AccessKeyId"], None)
            return {"ok": True}
        if action == "set_api_access_policy":
            if "max_seconds" in req:
                st.api_access_policy["MaxAccessKeyExpirationSeconds"] = int(req["max_seconds"])
            if "require_trusted_env" in req:
                st.api_access_policy["RequireTrustedEnv"] = bool(req["require_trusted_env"])
            return dict(st.api_access_policy)
        if action == "unlock":
            st.locked.pop(req["key_id"], None)
            st.failures.pop(req["key_id"], None)
            return {"ok": True}
        return None


# ==============================================================================================

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ready-file")
    ap.add_argument("--region", default=DEFAULT_REGION)
    ap.add_argument("--account-id", default=DEFAULT_ACCOUNT)
    ap.add_argument("--user-lag", type=int, default=0)
    ap.add_argument("--link-lag", type=int, default=0)
    ap.add_argument("--delay-ms", type=int, default=0)
    ap.add_argument("--lockout-seconds", type=float, default=60.0)
    ap.add_argument("--max-key-expiration-seconds", type=int, default=0)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    if not re.fullmatch(r"\d{12}", args.account_id):
        ap.error("--account-id must be 12 digits")
    if not re.fullmatch(r"[a-z0-9-]{1,32}", args.region):
        ap.error("--region must be [a-z0-9-]{1,32}")
    os.makedirs(args.state_dir, exist_ok=True)
    emu = Emulator(args)
    srv = QuietThreadingHTTPServer((args.host, args.port), ApiHandler)
    srv.emu = emu
    srv.verbose = args.verbose
    emu.port = srv.server_address[1]
    return serve(srv, args.ready_file, on_listening=lambda _p: emu.write_files(),
                 name="osc_api")


if __name__ == "__main__":
    sys.exit(main())
