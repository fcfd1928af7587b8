#!/usr/bin/python3
"""Differential test: our SigV4 signer (cloud/aws/sigv4.c through tests/unit/sigv4_dump.c)
against botocore's SigV4Auth, on a few hundred generated requests with a frozen clock.

    sigv4_diff.py PATH/TO/sigv4_dump [--count N] [--seed S] [--verbose]

Two kinds of cases:
- direct: aws_sigv4_sign with an explicit host, raw path, raw query, headers and body; the
  canonical request, string to sign, signature and Authorization value must be identical;
- url: aws_sigv4_sign_http on a cg_http request built from a URL (our URL splitter derives
  Host, path and query), compared on the Authorization, date and token headers.

botocore runs under Debian's /usr/bin/python3 (python3-botocore): the script re-executes itself
there when another interpreter started it (SIGV4_DIFF_ANY_PYTHON=1 keeps the current one, e.g.
to cross-check pyenv's newer botocore). Without botocore it prints SKIP and exits 0, unless
CI=true, where that is a failure.

Requests are generated within what both sides canonicalise the same way. Known differences,
kept out of the generator on purpose:
- Query strings: botocore re-encodes parameters given as request.params but copies a query
  string found in the URL verbatim; we always decode and re-encode (so "a b", "a%20b" and
  "a%2b" sign as AWS expects). botocore therefore gets the decoded pairs as params.
- We read '+' in a raw query as a literal plus (RFC 3986), never as a space.
- Empty query pieces ("a=1&&b=2"): dropped by us, signed as "=" by botocore's URL path.
- Header values: botocore collapses Python whitespace (including U+00A0 and \\x1c-\\x1f); we
  collapse ASCII space, tab, CR, LF, VT and FF. Generated values use spaces and tabs only.
- botocore signs every header but a blacklist; aws_sigv4_sign_http signs only host, the date
  header, content-type and the token (so url cases carry at most a Content-Type), and never
  user-agent. Date and X-Amz-Content-SHA256 change botocore's behaviour and are not generated.
- Host: botocore lower-cases the URL's host; curl sends it as written and we sign what curl
  sends, so url cases use lower-case hosts.
"""
import binascii
import json
import os
import random
import subprocess
import sys

DEBIAN_PYTHON = "/usr/bin/python3"


def ensure_botocore():
    """The reference is Debian's python3-botocore under /usr/bin/python3: re-executes there when
    another interpreter runs the script (ctest's python3 may be pyenv's). SIGV4_DIFF_ANY_PYTHON=1
    keeps the current interpreter, to cross-check another botocore release."""
    if (os.path.exists(DEBIAN_PYTHON) and not os.environ.get("SIGV4_DIFF_ANY_PYTHON")
            and os.path.realpath(sys.executable) != os.path.realpath(DEBIAN_PYTHON)
            and not os.environ.get("SIGV4_DIFF_REEXEC")):
        env = dict(os.environ, SIGV4_DIFF_REEXEC="1")
        env.pop("PYTHONPATH", None)  # another interpreter's packages must not shadow Debian's
        env.pop("PYTHONHOME", None)
        os.execve(DEBIAN_PYTHON, [DEBIAN_PYTHON, os.path.abspath(__file__)] + sys.argv[1:], env)
    try:
        import botocore  # noqa: F401
        return True
    except ImportError:
        return False


if not ensure_botocore():
    if os.environ.get("CI", "").lower() == "true":
        print("FAIL: botocore is not importable under %s (apt-get install python3-botocore)"
              % DEBIAN_PYTHON)
        print("0 passed, 1 failed")
        sys.exit(1)
    print("SKIP: botocore is not importable under %s (apt-get install python3-botocore)"
          % sys.executable)
    sys.exit(0)

import datetime  # noqa: E402
import datetime as _dt_module  # noqa: E402

import botocore.auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

# ---- botocore with a frozen clock ----------------------------------------------------------

_FROZEN = [datetime.datetime(2015, 8, 30, 12, 36, 0)]


class _FrozenDateTime(datetime.datetime):
    @classmethod
    def utcnow(cls):
        return _FROZEN[0]

    @classmethod
    def now(cls, tz=None):
        return _FROZEN[0] if tz is None else _FROZEN[0].replace(tzinfo=tz)


class _DateTimeModule:
    """Stands in for the datetime module inside botocore.auth."""
    datetime = _FrozenDateTime
    timezone = _dt_module.timezone
    timedelta = _dt_module.timedelta
    date = _dt_module.date


botocore.auth.datetime = _DateTimeModule
if hasattr(botocore.auth, "get_current_datetime"):  # newer botocore reads the time here
    botocore.auth.get_current_datetime = lambda *a, **k: _FROZEN[0]


class CapturingSigV4(botocore.auth.SigV4Auth):
    def canonical_request(self, request):
        self.last_creq = super().canonical_request(request)
        return self.last_creq

    def string_to_sign(self, request, canonical_request):
        self.last_sts = super().string_to_sign(request, canonical_request)
        return self.last_sts


def botocore_sign(case):
    _FROZEN[0] = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=case["now"])
    creds = Credentials(case["akid"], case["secret"], case["token"])
    auth = CapturingSigV4(creds, case["service"], case["region"])
    headers = [(n, v) for n, v in case["headers"]]
    body = binascii.unhexlify(case["body_hex"]) if case["body_hex"] else None
    if "url" in case:
        url = case["bot_url"]
    else:
        headers.insert(0, ("Host", case["host"]))
        url = "https://" + "h.invalid" + case["path"]
    req = AWSRequest(method=case["method"], url=url, data=body, params=case["params"] or None)
    for n, v in headers:  # HTTPHeaders appends: repeated names stay repeated
        req.headers[n] = v
    auth.add_auth(req)
    return {
        "canonical_request": auth.last_creq,
        "string_to_sign": auth.last_sts,
        "signature": req.headers["Authorization"].rsplit("Signature=", 1)[1],
        "authorization": req.headers["Authorization"],
        "date": req.headers["X-Amz-Date"],
        "token": req.headers.get("X-Amz-Security-Token"),
    }


# ---- generator -----------------------------------------------------------------------------

UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"
SUB_DELIMS = "!$'()*,;:@"
UNICODE = ["é", "€", "日本", "ß", "✓", "😀", "Ω"]
HOSTS = ["iam.amazonaws.com", "sts.eu-west-3.amazonaws.com", "Example.AmazonAWS.com",
         "127.0.0.1:8080", "[::1]:9000", "api.eu-west-2.outscale.com", "s3.cn-north-1.amazonaws.com.cn"]
URL_HOSTS = ["iam.amazonaws.com", "sts.eu-west-3.amazonaws.com", "127.0.0.1", "localhost",
             "[::1]", "api.eu-west-2.outscale.com", "moto.local"]
REGIONS = ["us-east-1", "eu-west-3", "ap-southeast-2", "cn-north-1", "us-gov-west-1", "eu-west-2"]
SERVICES = ["iam", "sts", "service", "execute-api", "ec2", "api"]
METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "get"]
HEADER_NAMES = ["Content-Type", "X-Amz-Target", "x-amz-meta-Foo", "X-Custom", "Accept",
                "X-Amz-Meta-Bar", "Content-MD5", "x-api-key"]
SECRETS = ["wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "s3cr3t+/=", "x" * 40]


def pct(ch, lower=False):
    return "".join(("%%%02x" if lower else "%%%02X") % b for b in ch.encode("utf-8"))


def rand_text(rng, n, alphabet_extra="", unicode_ok=True):
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.55:
            out.append(rng.choice(UNRESERVED))
        elif r < 0.75:
            out.append(rng.choice(SUB_DELIMS + " +=&%/?#" + alphabet_extra))
        elif r < 0.9 and unicode_ok:
            out.append(rng.choice(UNICODE))
        else:
            out.append(rng.choice(UNRESERVED))
    return "".join(out)


def raw_query_part(rng, s, ascii_only):
    """Writes s as it could appear in a URL's query: characters with a meaning in a query
    are always escaped, the rest randomly raw or escaped (upper or lower hex)."""
    out = []
    for ch in s:
        must = ch in "&=%#+ " or ord(ch) > 127 and ascii_only
        if ch == "+" and rng.random() < 0.5:
            must = False  # a raw '+' is a literal plus for us (botocore gets "+" as well)
        if ord(ch) > 127 and not ascii_only and rng.random() < 0.5:
            out.append(ch)  # raw UTF-8: direct cases only
        elif must or rng.random() < 0.2:
            out.append(pct(ch, lower=rng.random() < 0.3))
        else:
            out.append(ch)
    return "".join(out)


def rand_path(rng):
    if rng.random() < 0.15:
        return "/"
    segs = []
    for _ in range(rng.randint(0, 5)):
        r = rng.random()
        if r < 0.1:
            segs.append(".")
        elif r < 0.2:
            segs.append("..")
        elif r < 0.27:
            segs.append("")
        else:
            seg = []
            for _ in range(rng.randint(1, 8)):
                x = rng.random()
                if x < 0.6:
                    seg.append(rng.choice(UNRESERVED))
                elif x < 0.8:
                    seg.append(rng.choice(SUB_DELIMS + "+="))
                elif x < 0.9:
                    seg.append(rng.choice(["%20", "%2F", "%2f", "%25", "%e2%82%ac", "%41", "%"]))
                else:
                    seg.append(pct(rng.choice(UNICODE)))
            segs.append("".join(seg))
    path = "/" + "/".join(segs)
    if rng.random() < 0.3 and not path.endswith("/"):
        path += "/"
    return path


def rand_ws(rng):
    return "".join(rng.choice(" \t") for _ in range(rng.randint(0, 3)))


def rand_header_value(rng):
    words = []
    for _ in range(rng.randint(1, 4)):
        w = []
        for _ in range(rng.randint(1, 8)):
            x = rng.random()
            if x < 0.8:
                w.append(rng.choice(UNRESERVED + "!#$%&'()*+,/:;<=>?@[]^`{|}\""))
            else:
                w.append(rng.choice(["é", "€", "ß", "✓"]))
        words.append("".join(w))
    out = rand_ws(rng)
    for i, w in enumerate(words):
        if i:
            out += rng.choice([" ", "  ", "\t", " \t ", "   "])
        out += w
    return out + rand_ws(rng)


def rand_body(rng, method):
    r = rng.random()
    if r < 0.35:
        return b""
    if r < 0.7:
        pairs = [(rand_text(rng, rng.randint(1, 6)), rand_text(rng, rng.randint(0, 12)))
                 for _ in range(rng.randint(1, 5))]
        return "&".join("%s=%s" % (raw_query_part(rng, k, True), raw_query_part(rng, v, True))
                        for k, v in pairs).encode()
    return bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))


def rand_params(rng):
    params = []
    for _ in range(rng.randint(0, 6)):
        k = rand_text(rng, rng.randint(1, 6))
        v = rand_text(rng, rng.randint(0, 10)) if rng.random() < 0.85 else ""
        params.append((k, v))
        if rng.random() < 0.15:
            params.append((k, rand_text(rng, rng.randint(0, 5))))  # repeated key
    return params


def gen_case(rng, i):
    token = None
    if rng.random() < 0.4:
        token = "".join(rng.choice(UNRESERVED + "/+=") for _ in range(rng.randint(16, 300)))
    base = {
        "scheme": "aws",
        "method": rng.choice(METHODS),
        "region": rng.choice(REGIONS),
        "service": rng.choice(SERVICES),
        "now": rng.randint(946684800, 2051222400),
        "akid": "AKIA" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16)),
        "secret": rng.choice(SECRETS) + str(i),
        "token": token,
    }
    params = rand_params(rng)
    body = rand_body(rng, base["method"])
    base["body_hex"] = binascii.hexlify(body).decode() if body else ""
    base["params"] = params
    url_case = i % 3 == 2
    if url_case:
        host = rng.choice(URL_HOSTS)
        https = rng.random() < 0.7
        port = rng.choice([None, None, 443 if https else 80, 8443, 5000])
        userinfo = "user:pw@" if rng.random() < 0.1 else ""
        path = rand_path(rng)
        query = "&".join("%s=%s" % (raw_query_part(rng, k, True), raw_query_part(rng, v, True))
                         if v or rng.random() < 0.5 else raw_query_part(rng, k, True)
                         for k, v in params)
        hostport = host + (":%d" % port if port else "")
        url = "%s://%s%s%s" % ("https" if https else "http", userinfo, hostport, path)
        base["bot_url"] = url
        base["url"] = url + ("?" + query if query else "")
        base["headers"] = []
        if rng.random() < 0.6:
            base["headers"].append(("Content-Type", rand_ws(rng) + rng.choice(
                ["application/x-www-form-urlencoded; charset=utf-8", "application/json",
                 "text/plain;  charset=utf-8"]) + rand_ws(rng)))
        return base
    ascii_only = rng.random() < 0.5
    base["host"] = rng.choice(HOSTS)
    base["path"] = rand_path(rng)
    q = []
    for k, v in params:
        if v == "" and rng.random() < 0.5:
            q.append(raw_query_part(rng, k, ascii_only))
        else:
            q.append("%s=%s" % (raw_query_part(rng, k, ascii_only),
                                raw_query_part(rng, v, ascii_only)))
    base["query"] = "&".join(q) if q else (None if rng.random() < 0.5 else "")
    headers = []
    for _ in range(rng.randint(0, 5)):
        name = rng.choice(HEADER_NAMES)
        if rng.random() < 0.3:
            name = "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in name)
        headers.append((name, rand_header_value(rng)))
    base["headers"] = headers
    return base


def main():
    args = sys.argv[1:]
    if not args:
        print("usage: sigv4_diff.py PATH/TO/sigv4_dump [--count N] [--seed S] [--verbose]")
        return 2
    dump = args[0]
    count = 300
    seed = int(os.environ.get("SIGV4_DIFF_SEED", "20150830"))
    verbose = "--verbose" in args
    if "--count" in args:
        count = int(args[args.index("--count") + 1])
    if "--seed" in args:
        seed = int(args[args.index("--seed") + 1])
    rng = random.Random(seed)
    cases = [gen_case(rng, i) for i in range(count)]
    ours_in = "".join(json.dumps({k: v for k, v in c.items() if k not in ("params", "bot_url")})
                      + "\n" for c in cases)
    run = subprocess.run([dump], input=ours_in.encode(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=300)
    if run.returncode != 0:
        print("FAIL: %s exited with %d: %s" % (dump, run.returncode, run.stderr.decode()[-2000:]))
        print("0 passed, 1 failed")
        return 1
    ours = [json.loads(line) for line in run.stdout.decode().splitlines()]
    if len(ours) != len(cases):
        print("FAIL: %d answers for %d cases" % (len(ours), len(cases)))
        print("0 passed, 1 failed")
        return 1
    passed = failed = 0
    for i, (case, got) in enumerate(zip(cases, ours)):
        want = botocore_sign(case)
        if "url" in case:
            fields = ("authorization", "date", "token")
        else:
            fields = ("canonical_request", "string_to_sign", "signature", "authorization")
        bad = [f for f in fields if got.get(f) != want[f]]
        if not bad:
            passed += 1
            continue
        failed += 1
        if failed <= 5 or verbose:
            print("FAIL case %d (%s): %s differ" % (i, "url" if "url" in case else "direct",
                                                   ", ".join(bad)))
            print("  input: %s" % json.dumps(case, ensure_ascii=False))
            if "error" in got:
                print("  ours: error %s" % got["error"])
            for f in bad:
                print("  %s ours:\n    %r\n  botocore:\n    %r" % (f, got.get(f), want[f]))
            if "url" not in case and "canonical_request" in bad:
                print("  (canonical requests shown above)")
    print("botocore %s, seed %d" % (botocore.__version__, seed))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
