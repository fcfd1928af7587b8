#!/usr/bin/python3
"""A reverse proxy in front of moto that checks every AWS Query request against botocore's
IAM and STS service models before forwarding it.

moto accepts requests real IAM refuses (unknown or missing parameters, values out of range),
so a test that only looks at moto's answers can pass with a client that would fail against
AWS. This proxy refuses such requests loudly: it answers 400 with an ErrorResponse whose Code
is ModelValidation, and records the violation.

    /usr/bin/python3 aws_model_proxy.py --upstream http://127.0.0.1:MOTO_PORT
        [--port 0] [--host 127.0.0.1] [--ready-file PATH] [--log requests.jsonl]
        [--no-validate] [--no-paginate] [--no-encode-documents] [--lenient-encoding]
        [--delay-ms N]
        [--fail-nth N[,M...]] [--fail-status 503] [--fail-code ServiceUnavailable]
        [--fail-action ACTION] [--iam-region us-east-1] [--sts-region REGION]
        [--verify-key AKID --verify-secret SECRET] [--verbose]

Checks per request (each failure is a "violation"):
- POST with Content-Type application/x-www-form-urlencoded (GET query strings are read too);
  the body strictly RFC 3986 encoded (only A-Za-z0-9-_.~ raw, %XX upper-case, no '+'; with
  --lenient-encoding a '+' is read as a space, as botocore writes it); no parameter twice.
- Version names the service (2010-05-08 = iam, 2011-06-15 = sts; a first path segment
  "iam"/"sts" also selects it) and Action is an operation of that model.
- The form parsed into the operation's input shape the way botocore's QuerySerializer writes
  it (Name.member.N lists, Tags.member.N.Key structures, Name.entry.N.key maps, "Name=" for
  an empty list); any parameter the shape does not consume is unknown.
- botocore.validate.ParamValidator (required members, types, min), plus max lengths/values,
  enums and patterns (Java regex semantics: \\w is ASCII) checked here.
- SigV4: an Authorization header whose scope is <date>/<region>/<service>/aws4_request with
  service iam or sts, region us-east-1 for IAM (--iam-region), --sts-region when given, the
  scope date equal to X-Amz-Date's, host and x-amz-date signed, user-agent not signed (moto
  refuses it), x-amz-security-token signed when sent. With --verify-key/--verify-secret the
  signature of requests signed with that key is recomputed with botocore's SigV4Auth (other
  keys, e.g. ones created in moto by the code under test, are not). AssumeRoleWithWebIdentity and
  AssumeRoleWithSAML may be unsigned.

Log: one JSON object per request (--log): seq, ts, method, path, service, action, params
(flat, as sent, with WebIdentityToken, SAMLAssertion and values of shapes the model marks
sensitive redacted), status, code (the AWS error code answered, if any), violations, fault,
paginated, scope.

Extras for tests:
- --delay-ms N sleeps before forwarding each request (latency injection).
- --fail-nth 2,5 answers the 2nd and 5th request (counting only --fail-action's, if given)
  with --fail-status and an ErrorResponse of --fail-code, without forwarding.
- Control endpoints (not AWS): POST /__proxy__/faults with JSON {"action": null|"Name",
  "count": 1, "status": 503, "code": "ServiceUnavailable", "message": "..."} queues
  faults; POST /__proxy__/config {"delay_ms": N}; POST /__proxy__/reset clears both;
  GET /__proxy__/faults lists the queue.
  A fault may also carry (all optional, additive): "kind": "status" (the default, above),
  "reset" (connection reset, no answer), "truncated" (half the answer, then a reset),
  "invalid-xml" (a malformed XML body, status default 200), "slow" (delay_ms, then forwarded
  normally) or "hang" (the answer is held until the client closes the connection,
  POST /__proxy__/release, or delay_ms (default 600000) pass; a client still there then gets
  the normal answer); "execute": true forwards the request to moto before answering with the
  fault (default only for truncated); "retry_after": S adds a Retry-After header; "ordinal": N
  gives the fault to the N-th matching request only (the N-1 before it pass); "mutating":
  true/false matches only mutating (IAM actions other than Get*/List*) / read requests;
  "freeze": true (with hang): once held, every later AWS request waits unforwarded too, until
  /__proxy__/release (then it is forwarded) or its client goes away (then it never reaches
  moto; logged with fault "frozen", status null). The hang's entry is logged before the hold
  (a hang without execute that is released is logged again once forwarded).
  POST /__proxy__/reset also releases every hold.
  Log entries also say "mutating".
- Pagination shim (default on): moto ignores MaxItems for some list operations (ListUsers
  returns everything). When a request has MaxItems, moto answered IsTruncated=false and the
  list is longer, the proxy cuts the page and adds IsTruncated=true and a Marker of its own
  ("cgpx-<offset>"), which it strips before forwarding the next request. Operations moto
  pages itself pass through untouched.
- Policy documents (default on): IAM percent-encodes Document, PolicyDocument and
  AssumeRolePolicyDocument in its answers, moto does not; the proxy encodes moto's raw ones
  (--no-encode-documents to see moto's bytes). The log entry says encoded_documents.
"""
import argparse
import http.client
import json
import os
import re
import sys
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emu_common import EmulatorHandler, QuietThreadingHTTPServer, serve  # noqa: E402

try:
    import botocore.session
    import botocore.validate
except ImportError:  # pragma: no cover - reported at start-up
    botocore = None

try:
    import regex as _regex
except ImportError:
    _regex = None

VERSIONS = {"2010-05-08": "iam", "2011-06-15": "sts"}
UNSIGNED_OK = {"AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"}
ALWAYS_REDACT = {"WebIdentityToken", "SAMLAssertion"}
UNRESERVED = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
HEX_UPPER = set(b"0123456789ABCDEF")
AUTH_RE = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/"
                     r"aws4_request,\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$")
PROXY_MARKER = "cgpx-"


class Violation(Exception):
    pass


# ---- model --------------------------------------------------------------------------------

class Models:
    def __init__(self):
        if botocore is None:
            raise SystemExit("aws_model_proxy: botocore is missing: run it with Debian's "
                             "/usr/bin/python3 (apt-get install -y python3-botocore)")
        self.session = botocore.session.get_session()
        self.models = {s: self.session.get_service_model(s) for s in ("iam", "sts")}
        self.paginators = {}
        for s in ("iam", "sts"):
            try:
                self.paginators[s] = self.session.get_paginator_model(s)
            except Exception:
                self.paginators[s] = None
        self.validator = botocore.validate.ParamValidator()
        self._patterns = {}

    def operation(self, service, action):
        model = self.models[service]
        if action not in model.operation_names:
            return None
        return model.operation_model(action)

    def paginator(self, service, action):
        pm = self.paginators.get(service)
        if pm is None:
            return None
        try:
            return pm.get_paginator(action)
        except ValueError:
            return None

    def pattern(self, text):
        """Compiles a model pattern with Java's meaning of \\w (ASCII only)."""
        if _regex is None:
            return None
        rx = self._patterns.get(text)
        if rx is None:
            out, depth, i = [], 0, 0
            while i < len(text):
                c = text[i]
                if c == "\\" and i + 1 < len(text):
                    pair = text[i:i + 2]
                    if pair == "\\w":
                        out.append("a-zA-Z0-9_" if depth else "[a-zA-Z0-9_]")
                    else:
                        out.append(pair)
                    i += 2
                    continue
                if c == "[":
                    depth += 1
                elif c == "]" and depth:
                    depth -= 1
                out.append(c)
                i += 1
            rx = _regex.compile("".join(out))
            self._patterns[text] = rx
        return rx


def _location(shape, default):
    return shape.serialization.get("name", default)


def build_input(shape, prefix, flat, used, errors):
    """Rebuilds botocore-style params for `shape` from flat Query parameters under `prefix`.
    Returns (present, value); records consumed keys in `used`."""
    t = shape.type_name
    if t == "structure":
        out = {}
        for name, member in shape.members.items():
            loc = _location(member, name)
            key = "%s.%s" % (prefix, loc) if prefix else loc
            present, value = build_input(member, key, flat, used, errors)
            if present:
                out[name] = value
        return bool(out), out
    if t == "list":
        if prefix in flat and flat[prefix] == "":
            used.add(prefix)
            return True, []
        member = shape.member
        if shape.serialization.get("flattened"):
            name = member.serialization.get("name")
            item_prefix = ".".join(prefix.split(".")[:-1] + [name]) if name else prefix
        else:
            item_prefix = "%s.%s" % (prefix, member.serialization.get("name", "member"))
        items = []
        while True:
            present, value = build_input(member, "%s.%d" % (item_prefix, len(items) + 1), flat,
                                         used, errors)
            if not present:
                break
            items.append(value)
        return bool(items), items
    if t == "map":
        entry = prefix if shape.serialization.get("flattened") else prefix + ".entry"
        kname = _location(shape.key, "key")
        vname = _location(shape.value, "value")
        out = {}
        n = 1
        while True:
            kp, k = build_input(shape.key, "%s.%d.%s" % (entry, n, kname), flat, used, errors)
            vp, v = build_input(shape.value, "%s.%d.%s" % (entry, n, vname), flat, used, errors)
            if not kp and not vp:
                break
            out[k] = v
            n += 1
        return bool(out), out
    if prefix not in flat:
        return False, None
    used.add(prefix)
    raw = flat[prefix]
    if t in ("integer", "long"):
        try:
            return True, int(raw)
        except ValueError:
            errors.append("%s: %r is not an integer" % (prefix, raw))
            return True, 0
    if t in ("float", "double"):
        try:
            return True, float(raw)
        except ValueError:
            errors.append("%s: %r is not a number" % (prefix, raw))
            return True, 0.0
    if t == "boolean":
        if raw not in ("true", "false"):
            errors.append("%s: %r is not true or false" % (prefix, raw))
        return True, raw == "true"
    return True, raw  # string, timestamp, blob


def extra_checks(models, shape, value, path, errors):
    """What ParamValidator leaves out: max lengths and values, enums, patterns."""
    t = shape.type_name
    md = shape.metadata
    if t == "structure" and isinstance(value, dict):
        for name, v in value.items():
            member = shape.members.get(name)
            if member is not None:
                extra_checks(models, member, v, "%s.%s" % (path, name) if path else name,
                             errors)
    elif t == "list" and isinstance(value, list):
        if "max" in md and len(value) > md["max"]:
            errors.append("%s: %d items, at most %d allowed" % (path, len(value), md["max"]))
        for i, v in enumerate(value):
            extra_checks(models, shape.member, v, "%s[%d]" % (path, i), errors)
    elif t == "map" and isinstance(value, dict):
        for k, v in value.items():
            extra_checks(models, shape.key, k, "%s.key" % path, errors)
            extra_checks(models, shape.value, v, "%s[%s]" % (path, k), errors)
    elif t == "string" and isinstance(value, str):
        if "max" in md and len(value) > md["max"]:
            errors.append("%s: length %d, at most %d allowed" % (path, len(value), md["max"]))
        if shape.enum and value not in shape.enum:
            errors.append("%s: %r is not one of %s" % (path, value, shape.enum))
        pat = md.get("pattern")
        if pat:
            rx = models.pattern(pat)
            if rx is not None and value and rx.fullmatch(value) is None:
                errors.append("%s: does not match the model's pattern %s" % (path, pat))
    elif t in ("integer", "long") and isinstance(value, int):
        if "max" in md and value > md["max"]:
            errors.append("%s: %d is over the maximum %d" % (path, value, md["max"]))


def sensitive_keys(shape, prefix, out):
    """Flat names of members whose shapes botocore marks sensitive."""
    t = shape.type_name
    if shape.metadata.get("sensitive"):
        out.append(prefix)
        return
    if t == "structure":
        for name, member in shape.members.items():
            loc = _location(member, name)
            sensitive_keys(member, "%s.%s" % (prefix, loc) if prefix else loc, out)


# ---- request checks ------------------------------------------------------------------------

def parse_form(raw, errors, strict=True):
    """Parses a form body into an ordered list of (name, value). strict: RFC 3986 only, as
    our encoder writes it (a raw '+' is a violation: a server reads it as a space, which would
    corrupt a policy). Not strict: '+' is a space, as botocore and awscli send it."""
    for i, b in enumerate(raw):
        if b in UNRESERVED or b in (ord("="), ord("&")) or (b == ord("+") and not strict):
            continue
        if b == ord("%") and i + 2 < len(raw) and raw[i + 1] in HEX_UPPER and \
                raw[i + 2] in HEX_UPPER:
            continue
        errors.append("body is not RFC 3986 encoded (byte %r at offset %d)" % (chr(b), i))
        break
    pairs = []
    text = raw.decode("ascii", errors="replace")
    for part in text.split("&") if text else []:
        name, eq, value = part.partition("=")
        if not eq:
            errors.append("parameter %r has no '='" % urllib.parse.unquote(name))
        unq = urllib.parse.unquote if strict else urllib.parse.unquote_plus
        try:
            pairs.append((unq(name, errors="strict"), unq(value, errors="strict")))
        except UnicodeDecodeError:
            errors.append("parameter %r is not UTF-8 once decoded" % name)
    return pairs


def check_sigv4(headers, service, action, opts, errors):
    auth = headers.get("Authorization")
    scope = None
    if auth is None:
        if action not in UNSIGNED_OK:
            errors.append("unsigned request (no Authorization header)")
        return scope
    m = AUTH_RE.match(auth.strip())
    if m is None:
        errors.append("Authorization header is not AWS4-HMAC-SHA256 Credential=.../"
                      "aws4_request, SignedHeaders=..., Signature=<64 hex>")
        return scope
    akid, day, region, svc, signed, _sig = m.groups()
    scope = {"region": region, "service": svc, "date": day}
    if svc != service:
        errors.append("signed for service %r, want %r" % (svc, service))
    if service == "iam" and region != opts.iam_region:
        errors.append("IAM request signed for region %r, want %r" % (region, opts.iam_region))
    if service == "sts" and opts.sts_region and region != opts.sts_region:
        errors.append("STS request signed for region %r, want %r" % (region, opts.sts_region))
    amz_date = headers.get("X-Amz-Date")
    if amz_date is None:
        errors.append("no X-Amz-Date header")
    elif amz_date[:8] != day:
        errors.append("scope date %s differs from X-Amz-Date %s" % (day, amz_date))
    names = signed.split(";")
    if names != sorted(names):
        errors.append("SignedHeaders not sorted: %s" % signed)
    for need in ("host", "x-amz-date"):
        if need not in names:
            errors.append("%s is not signed" % need)
    if "user-agent" in names:
        errors.append("user-agent is signed (botocore never signs it; moto refuses it)")
    if headers.get("X-Amz-Security-Token") is not None and "x-amz-security-token" not in names:
        errors.append("X-Amz-Security-Token sent but not signed")
    for n in names:
        if headers.get(n) is None:
            errors.append("signed header %r is not in the request" % n)
    return scope


def verify_signature(method, path, headers, body, opts, errors):
    """Recomputes the signature with botocore's signer for the headers the client signed."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    m = AUTH_RE.match(headers.get("Authorization", "").strip())
    if m is None:
        return
    akid, _day, region, svc, signed, sig = m.groups()
    if akid != opts.verify_key:
        return  # keys the code under test created in moto: their secret is not known here
    hdrs = {}
    for n in signed.split(";"):
        v = headers.get(n)
        if v is not None:
            hdrs[n] = v
    url = "http://%s%s" % (headers.get("Host", "localhost"), path)
    req = AWSRequest(method=method, url=url, data=body, headers=hdrs)
    req.context["timestamp"] = headers.get("X-Amz-Date", "")
    creds = Credentials(opts.verify_key, opts.verify_secret,
                        headers.get("X-Amz-Security-Token"))
    auth = SigV4Auth(creds, svc, region)
    try:
        cr = auth.canonical_request(req)
        want = auth.signature(auth.string_to_sign(req, cr), req)
    except Exception as e:  # botocore internals moved: do not fail the request on that
        errors.append("signature check could not run: %s" % e)
        return
    if want != sig:
        errors.append("signature does not match botocore's for the same request")


# ---- answers --------------------------------------------------------------------------------

# Secret values in IAM and STS answers (CreateAccessKey, AssumeRole*, GetSessionToken)
ISSUED_RE = re.compile(r"<(?:SecretAccessKey|SessionToken)>([^<]+)</")


def error_xml(code, message, service="iam"):
    ns = "https://%s.amazonaws.com/doc/%s/" % (
        service, "2011-06-15" if service == "sts" else "2010-05-08")
    esc = (message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
    return ('<ErrorResponse xmlns="%s"><Error><Type>Sender</Type><Code>%s</Code>'
            "<Message>%s</Message></Error><RequestId>cg-proxy</RequestId></ErrorResponse>"
            % (ns, code, esc)).encode()


def local(tag):
    return tag.rsplit("}", 1)[-1]


def paginate(body, action, result_key, max_items, offset):
    """Cuts a full (untruncated) list answer into the page at offset. Returns new bytes or
    None when the answer is not one to cut."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    ns = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    q = (lambda n: "{%s}%s" % (ns, n)) if ns else (lambda n: n)
    result = root.find(q(action + "Result"))
    if result is None:
        return None
    lst = result.find(q(result_key))
    trunc = result.find(q("IsTruncated"))
    if lst is None or (trunc is not None and trunc.text == "true"):
        return None
    members = list(lst)
    if offset == 0 and len(members) <= max_items:
        return None
    for m in members:
        lst.remove(m)
    page = members[offset:offset + max_items]
    for m in page:
        lst.append(m)
    more = offset + max_items < len(members)
    if trunc is None:
        trunc = ET.SubElement(result, q("IsTruncated"))
    trunc.text = "true" if more else "false"
    marker = result.find(q("Marker"))
    if more:
        if marker is None:
            marker = ET.SubElement(result, q("Marker"))
        marker.text = "%s%d" % (PROXY_MARKER, offset + max_items)
    elif marker is not None:
        result.remove(marker)
    if ns:
        ET.register_namespace("", ns)
    return ET.tostring(root, encoding="utf-8", xml_declaration=False)


DOC_RE = re.compile(rb"<(Document|PolicyDocument|AssumeRolePolicyDocument)>(.*?)</\1>", re.S)
XML_UNESCAPE = {"&quot;": '"', "&apos;": "'", "&lt;": "<", "&gt;": ">"}


def encode_documents(body):
    """IAM percent-encodes every policy document it returns; moto sends them raw. Encodes the
    raw ones so clients meet what IAM sends. Returns (bytes, changed)."""
    changed = [False]

    def enc(m):
        text = m.group(2).decode("utf-8")
        for k, v in XML_UNESCAPE.items():
            text = text.replace(k, v)
        text = text.replace("&amp;", "&")
        if not re.search(r'[{}"\s:\[\]]', text):
            return m.group(0)  # already encoded
        changed[0] = True
        q = urllib.parse.quote(text, safe="").encode()
        return b"<%s>%s</%s>" % (m.group(1), q, m.group(1))

    try:
        out = DOC_RE.sub(enc, body)
    except UnicodeDecodeError:
        return body, False
    return out, changed[0]


def error_code_of(body):
    m = re.search(rb"<Code>([^<]{1,100})</Code>", body or b"")
    return m.group(1).decode("utf-8", "replace") if m else None


# ---- server ---------------------------------------------------------------------------------

FAULT_KINDS = ("status", "reset", "truncated", "invalid-xml", "slow", "hang")

class State:
    def __init__(self, opts):
        self.opts = opts
        self.lock = threading.Lock()
        self.seq = 0
        self.counted = 0
        self.faults = []  # queued by the control endpoint
        self.issued = []  # every secret moto's answers carried, for the tests' secret scan
        self.frozen = False      # a freeze-hang holds every later AWS request
        self.release_gen = 0     # bumped by /__proxy__/release and reset: every hold ends
        self.delay_ms = opts.delay_ms
        self.fail_nth = {int(x) for x in opts.fail_nth.split(",") if x.strip()} \
            if opts.fail_nth else set()
        self.models = Models() if (opts.validate or opts.paginate) else None
        self.log = open(opts.log, "a", buffering=1) if opts.log else None

    def record(self, entry):
        if self.log is not None:
            with self.lock:
                self.log.write(json.dumps(entry, sort_keys=True) + "\n")
                self.log.flush()


class Handler(EmulatorHandler):
    server_version = "aws-model-proxy"

    def do_GET(self):
        if self.path.startswith("/__proxy__/"):
            return self.control(b"")
        self.handle_aws(b"")

    def do_POST(self):
        body = self.read_body()
        if body is None:
            return self.send_body(413, "too large", "text/plain")
        if self.path.startswith("/__proxy__/"):
            return self.control(body)
        self.handle_aws(body)

    # -- control --
    def control(self, body):
        st = self.server.state
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            return self.send_body(400, "bad JSON", "text/plain")
        path = self.path.split("?", 1)[0]
        with st.lock:
            if path == "/__proxy__/faults" and self.command == "POST":
                kind = doc.get("kind") or "status"
                if kind not in FAULT_KINDS:
                    return self.send_body(400, "unknown fault kind", "text/plain")
                ordinal = int(doc.get("ordinal") or 1)
                if ordinal < 1:
                    return self.send_body(400, "ordinal must be 1 or more", "text/plain")
                base = {"action": doc.get("action"),
                        "status": int(doc.get("status") or (200 if kind == "invalid-xml"
                                                             else 503)),
                        "code": doc.get("code", "ServiceUnavailable"),
                        "message": doc.get("message", "injected by the proxy")}
                extra = {}
                if kind != "status":
                    extra["kind"] = kind
                for k in ("delay_ms", "retry_after"):
                    if doc.get(k) is not None:
                        extra[k] = doc[k]
                if doc.get("execute", kind == "truncated"):
                    extra["execute"] = True
                if doc.get("mutating") is not None:
                    extra["mutating"] = bool(doc["mutating"])
                if doc.get("freeze"):
                    extra["freeze"] = True
                if ordinal > 1 or extra:
                    # one entry that counts itself down (the plain form: one per count)
                    f = dict(base, count=int(doc.get("count", 1)), skip=ordinal - 1, **extra)
                    st.faults.append(f)
                else:
                    for _ in range(int(doc.get("count", 1))):
                        st.faults.append(dict(base))
            elif path == "/__proxy__/config" and self.command == "POST":
                if "delay_ms" in doc:
                    st.delay_ms = int(doc["delay_ms"])
            elif path == "/__proxy__/release" and self.command == "POST":
                st.frozen = False
                st.release_gen += 1
            elif path == "/__proxy__/reset" and self.command == "POST":
                st.faults = []
                st.delay_ms = st.opts.delay_ms
                st.frozen = False
                st.release_gen += 1
            elif path == "/__proxy__/issued" and self.command == "GET":
                out = json.dumps({"secrets": list(st.issued)})
                return self.send_body(200, out, "application/json")
            elif not (path == "/__proxy__/faults" and self.command == "GET"):
                return self.send_body(404, "unknown control path", "text/plain")
            out = json.dumps({"faults": st.faults, "delay_ms": st.delay_ms})
        self.send_body(200, out, "application/json")

    # -- AWS --
    def handle_aws(self, body):
        st = self.server.state
        opts = st.opts
        with st.lock:
            st.seq += 1
            seq = st.seq
        errors = []
        url = urllib.parse.urlsplit(self.path)
        if self.command == "POST":
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != "application/x-www-form-urlencoded":
                errors.append("Content-Type %r, want application/x-www-form-urlencoded"
                              % self.headers.get("Content-Type"))
            raw = body
        else:
            raw = url.query.encode("latin-1", "replace")
        pairs = parse_form(raw, errors, strict=not opts.lenient_encoding)
        flat = {}
        for name, value in pairs:
            if name in flat:
                errors.append("parameter %r given twice" % name)
            flat[name] = value
        action = flat.get("Action")
        version = flat.get("Version")
        first = url.path.strip("/").split("/", 1)[0]
        service = VERSIONS.get(version) or (first if first in ("iam", "sts") else None)
        op = None
        if not action:
            errors.append("no Action")
        if service is None:
            errors.append("Version %r names neither IAM (2010-05-08) nor STS (2011-06-15)"
                          % version)
        elif st.models is not None:
            want = st.models.models[service].metadata["apiVersion"]
            if version != want:
                errors.append("Version %r, want %r for %s" % (version, want, service))
        if st.models is not None and service and action:
            op = st.models.operation(service, action)
            if op is None:
                errors.append("%s has no action %r" % (service.upper(), action))
        redact = set(ALWAYS_REDACT)
        if op is not None and op.input_shape is not None:
            keys = []
            sensitive_keys(op.input_shape, "", keys)
            redact.update(keys)
        scope = None
        if opts.validate:
            if service and action:
                scope = check_sigv4(self.headers, service, action, opts, errors)
                if opts.verify_key and opts.verify_secret and \
                        self.headers.get("Authorization"):
                    verify_signature(self.command, url.path + ("?" + url.query if url.query else
                                                               ""), self.headers, body, opts,
                                     errors)
            if op is not None:
                self.validate_params(op, flat, errors)
        elif service and action:
            scope = check_sigv4(self.headers, service, action, opts, [])
        mutating = bool(action) and service != "sts" and \
            not action.startswith(("Get", "List"))
        entry = {"seq": seq, "ts": time.time(), "method": self.command, "path": url.path,
                 "service": service, "action": action, "mutating": mutating,
                 "params": {k: ("<redacted>" if k in redact else v) for k, v in flat.items()
                            if k not in ("Action", "Version")},
                 "violations": errors if opts.validate else [], "fault": None,
                 "paginated": False, "scope": scope}
        if opts.validate and errors:
            entry["status"] = 400
            entry["code"] = "ModelValidation"
            st.record(entry)
            sys.stderr.write("aws_model_proxy: %s %s: %s\n" % (service, action,
                                                              "; ".join(errors)))
            return self.send_body(400, error_xml("ModelValidation", "; ".join(errors),
                                                 service or "iam"), "text/xml")
        if st.frozen:
            how = self.hold(600000, st.release_gen)
            if how == "closed":
                entry.update(status=None, code=None, fault="frozen")
                st.record(entry)
                self.close_connection = True
                return
        fault = self.take_fault(action, mutating)
        kind = (fault or {}).get("kind", "status")
        if fault is not None and kind == "slow":
            time.sleep((fault.get("delay_ms") or 2000) / 1000.0)
            entry["fault"] = "slow"
            fault = None
        if fault is not None and not fault.get("execute") and kind != "hang":
            return self.fault_reply(fault, entry, service)
        gen = st.release_gen
        if fault is not None and kind == "hang" and not fault.get("execute"):
            entry.update(status=None, code=None, fault="hang")
            st.record(entry)
            if fault.get("freeze"):
                with st.lock:
                    st.frozen = True
            if self.hold(fault.get("delay_ms") or 600000, gen) == "closed":
                self.close_connection = True
                return
            fault = None
        if st.delay_ms > 0:
            time.sleep(st.delay_ms / 1000.0)
        # the pagination shim's own Marker never reaches moto
        offset = 0
        fwd_body = body
        marker = flat.get("Marker", "")
        if opts.paginate and marker.startswith(PROXY_MARKER) and self.command == "POST":
            try:
                offset = int(marker[len(PROXY_MARKER):])
            except ValueError:
                offset = 0
            fwd_body = "&".join(p for p in body.decode("ascii", "replace").split("&")
                                if not p.startswith("Marker=")).encode()
        try:
            status, headers, resp = self.forward(fwd_body, url)
        except OSError as e:
            entry.update(status=502, code=None, fault="upstream: %s" % e)
            st.record(entry)
            return self.send_body(502, "upstream: %s" % e, "text/plain")
        if opts.paginate and status == 200 and service and action and "MaxItems" in flat:
            pg = st.models.paginator(service, action) if st.models else None
            rk = pg.get("result_key") if pg else None
            if isinstance(rk, str):
                try:
                    max_items = int(flat["MaxItems"])
                except ValueError:
                    max_items = 0
                if max_items > 0:
                    cut = paginate(resp, action, rk, max_items, offset)
                    if cut is not None:
                        resp = cut
                        entry["paginated"] = True
        if status == 200:
            found = ISSUED_RE.findall(resp.decode("utf-8", "replace")
                                      if isinstance(resp, bytes) else resp)
            if found:
                with st.lock:
                    st.issued.extend(found)
        if opts.encode_documents and status == 200:
            resp, entry["encoded_documents"] = encode_documents(resp)
        entry["status"] = status
        entry["code"] = error_code_of(resp) if status >= 300 else None
        if fault is not None and kind == "hang":
            entry["fault"] = "hang"
            st.record(entry)
            if fault.get("freeze"):
                with st.lock:
                    st.frozen = True
            if self.hold(fault.get("delay_ms") or 600000, gen) == "closed":
                self.close_connection = True
                return
        elif fault is not None:  # execute: moto did it, the client gets the fault
            return self.fault_reply(fault, entry, service, resp)
        else:
            st.record(entry)
        self.send_body(status, resp, headers.get("Content-Type", "text/xml"))

    # -- faults --
    def fault_reply(self, fault, entry, service, resp=None):
        st = self.server.state
        kind = fault.get("kind", "status")
        if kind == "reset":
            entry.update(status=None, code=None, fault="reset")
            st.record(entry)
            return self.reset_connection()
        if kind == "truncated":
            body = resp if resp is not None else error_xml(fault["code"], fault["message"],
                                                           service or "iam").encode()
            entry["fault"] = "truncated"
            st.record(entry)
            self.send_response(entry.get("status") or 200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:max(1, len(body) // 2)])
            self.wfile.flush()
            return self.reset_connection()
        if kind == "invalid-xml":
            entry.update(status=fault["status"], fault="invalid-xml")
            st.record(entry)
            return self.send_body(fault["status"], "<%sResponse><%sResult><User>" % (
                entry.get("action"), entry.get("action")), "text/xml")
        entry.update(status=fault["status"], code=fault["code"],
                     fault="%d %s" % (fault["status"], fault["code"]))
        st.record(entry)
        h = {}
        if fault.get("retry_after") is not None:
            h["Retry-After"] = str(fault["retry_after"])
        return self.send_body(fault["status"], error_xml(fault["code"], fault["message"],
                                                         service or "iam"), "text/xml", h)

    def release_generation(self):
        return self.server.state.release_gen

    def validate_params(self, op, flat, errors):
        models = self.server.state.models
        shape = op.input_shape
        given = {k for k in flat if k not in ("Action", "Version")}
        if shape is None:
            for k in sorted(given):
                errors.append("unknown parameter %r (%s takes none)" % (k, op.name))
            return
        used = set()
        found = []
        _, params = build_input(shape, "", flat, used, found)
        errors.extend(found)
        for k in sorted(given - used):
            errors.append("unknown parameter %r for %s" % (k, op.name))
        report = models.validator.validate(params, shape)
        if report.has_errors():
            errors.extend(report.generate_report().splitlines())
        extra_checks(models, shape, params, "", errors)

    def take_fault(self, action, mutating=None):
        st = self.server.state
        with st.lock:
            for i, f in enumerate(st.faults):
                if f["action"] not in (None, action):
                    try:
                        if not re.fullmatch(f["action"], action or ""):
                            continue
                    except re.error:
                        continue
                if f.get("mutating") is not None and bool(f["mutating"]) != bool(mutating):
                    continue
                if f.get("skip", 0) > 0:  # ordinal: not this one yet
                    f["skip"] -= 1
                    continue
                if "count" in f:
                    f["count"] -= 1
                    if f["count"] <= 0:
                        st.faults.pop(i)
                    return dict(f)
                return st.faults.pop(i)
            if st.fail_nth and (not st.opts.fail_action or st.opts.fail_action == action):
                st.counted += 1
                if st.counted in st.fail_nth:
                    return {"status": st.opts.fail_status, "code": st.opts.fail_code,
                            "message": "injected by the proxy (request %d)" % st.counted}
        return None

    def forward(self, body, url):
        up = self.server.upstream
        conn = http.client.HTTPConnection(up.hostname, up.port or 80, timeout=60)
        try:
            headers = {}
            for k, v in self.headers.items():
                if k.lower() in ("connection", "keep-alive", "proxy-connection", "te",
                                 "transfer-encoding", "upgrade", "expect", "content-length"):
                    continue
                headers[k] = v
            headers["Content-Length"] = str(len(body))
            path = (up.path.rstrip("/") + url.path) if up.path else url.path
            if url.query:
                path += "?" + url.query
            conn.request(self.command, path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            return r.status, {k: v for k, v in r.getheaders()}, data
        finally:
            conn.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ready-file")
    ap.add_argument("--log")
    ap.add_argument("--no-validate", dest="validate", action="store_false")
    ap.add_argument("--no-paginate", dest="paginate", action="store_false")
    ap.add_argument("--no-encode-documents", dest="encode_documents", action="store_false")
    ap.add_argument("--delay-ms", type=int, default=0)
    ap.add_argument("--fail-nth", default="")
    ap.add_argument("--fail-status", type=int, default=503)
    ap.add_argument("--fail-code", default="ServiceUnavailable")
    ap.add_argument("--fail-action")
    ap.add_argument("--lenient-encoding", action="store_true",
                    help="accept '+' for a space in the body (botocore does that)")
    ap.add_argument("--iam-region", default="us-east-1")
    ap.add_argument("--sts-region")
    ap.add_argument("--verify-key")
    ap.add_argument("--verify-secret")
    ap.add_argument("--verbose", action="store_true")
    opts = ap.parse_args(argv)
    server = QuietThreadingHTTPServer((opts.host, opts.port), Handler)
    server.verbose = opts.verbose
    server.state = State(opts)
    server.upstream = urllib.parse.urlsplit(opts.upstream)
    serve(server, ready_file=opts.ready_file, name="aws_model_proxy")


if __name__ == "__main__":
    main()
