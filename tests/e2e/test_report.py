#!/usr/bin/env python3
"""End-to-end test of the report client (agent/report.c) through the driver report_send,
against the central-endpoint emulator (tests/emulators/central.py): headers, schema validity,
retries with one Idempotency-Key, Retry-After, dropped connections, final 4xx errors, the trust
principal fetch, and that the token never leaks into the driver's output."""

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SRC = os.environ.get("CG_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "emulators"))
import harness  # noqa: E402
from central_harness import central  # noqa: E402

# ctest passes the driver's path; by hand: test_report.py build/tests/report_send
SEND = sys.argv[1] if len(sys.argv) > 1 else os.path.join(SRC, "build", "tests", "report_send")
TOKEN = "cg-test-token-5e2f9a7c41d8"
KEY = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
TRUST = ("arn:aws:iam::111122223333:role/platform", "ext-42")

# Input for the driver's "build" command: the bodies sent below are report_build's real output.
INPUT = {
    "kind": "OnboardingReport",
    "cluster": {"id": "arn:aws:eks:eu-west-1:111122223333:cluster/prod", "name": "prod",
                "provider": "aws", "region": "eu-west-1", "account": "111122223333",
                "kubernetesVersion": "v1.30.2", "server": "https://ABC.gr7.eu-west-1.eks.aws"},
    "profile": "node-autoscaler",
    "status": "succeeded",
    "resources": [{"provider": "aws", "kind": "IAMRole",
                   "id": "arn:aws:iam::111122223333:role/cg-node-autoscaler",
                   "change": "create"}],
    "credentials": "eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMjU2R0NNIn0.a2V5.aXY.Y3Q.dGFn",
    "startedAt": 1767225600,
    "finishedAt": 1767225661,
    "agentVersion": "0.3.0",
}
# More shapes: a failed offboarding with an unknown cluster, a drift report with plain
# credentials.
INPUT_FAILED = {
    "kind": "OffboardingReport", "cluster": {"name": "kind-local", "provider": "kind"},
    "status": "failed", "error": "deleting role 'cg-x': AccessDenied", "startedAt": 1,
    "finishedAt": 2,
}
INPUT_DRIFT = {
    "kind": "DriftReport", "cluster": INPUT["cluster"], "profile": "p", "status": "succeeded",
    "drift": [{"provider": "aws", "kind": "IAMPolicy", "name": "cg-p", "change": "changed",
               "detail": "Action s3:GetObject added"},
              {"provider": "gcp", "kind": "ServiceAccount", "name": "cg-sa",
               "change": "missing", "id": "cg-sa@p.iam.gserviceaccount.com"}],
    "credentials": {"accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "plain-secret"},
    "startedAt": 1767225600, "finishedAt": 1767225600, "agentVersion": "0.3.0",
}


def build(inp):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(inp, f)
        path = f.name
    try:
        p = subprocess.run([SEND, "build", path], capture_output=True, text=True, timeout=30)
    finally:
        os.unlink(path)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


_REPORT = []


def report():
    if not _REPORT:
        _REPORT.append(build(INPUT))
    return _REPORT[0]


def run(args, token=TOKEN, timeout=120):
    env = dict(os.environ)
    env.pop("CLOUDGRANT_REPORT_TOKEN", None)
    if token is not None:
        env["CLOUDGRANT_REPORT_TOKEN"] = token
    t0 = time.monotonic()
    p = subprocess.run([SEND] + args, capture_output=True, text=True, timeout=timeout, env=env)
    p.elapsed = time.monotonic() - t0
    # Whatever happened, the driver's output never carries the token.
    assert TOKEN not in p.stdout and TOKEN not in p.stderr, (p.stdout, p.stderr)
    return p


def send(c, body=None, key=KEY, token=TOKEN, extra=(), url=None):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(report() if body is None else body, f)
        path = f.name
    try:
        return run(list(extra) + ["send", url or c.report_url, path, key], token=token)
    finally:
        os.unlink(path)


def one_line(p):
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0]


def test_delivered_with_headers_and_valid_body():
    with central(token=TOKEN) as c:
        p = send(c)
        assert p.returncode == 0 and p.stdout.strip() == "delivered", (p.stdout, p.stderr)
        reps = c.reports()
        assert len(reps) == 1, reps
        r = reps[0]
        assert r["idempotencyKey"] == KEY
        assert r["body"] == report(), r["body"]  # passed the emulator's schema check to get here
        h = r["headers"]
        assert h["content-type"] == "application/json", h
        assert h["idempotency-key"] == KEY
        assert "authorization" not in h
        reqs = c.requests()
        assert [q["status"] for q in reqs] == [201], reqs


def test_builder_output_is_schema_valid():
    # report_build's real output, validated in-process and then by the emulator on delivery.
    try:
        import jsonschema
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        jsonschema = None
        print("note: jsonschema not importable here; only the emulator validates")
    with open(os.path.join(SRC, "docs", "report.schema.json")) as f:
        schema = json.load(f)
    bodies = [build(INPUT), build(INPUT_FAILED), build(INPUT_DRIFT)]
    assert bodies[1]["cluster"]["provider"] == "unknown" and bodies[1]["profile"] is None
    assert bodies[1]["credentials"] is None and bodies[1]["resources"] == []
    assert bodies[2]["credentials"] == INPUT_DRIFT["credentials"]
    if jsonschema is not None:
        jsonschema.validators.validator_for(schema).check_schema(schema)
        for b in bodies:
            jsonschema.validate(b, schema)
        for bad in (dict(bodies[0], credentials="not-a-jwe"), dict(bodies[0], extra=1),
                    dict(bodies[0], startedAt="yesterday")):
            try:
                jsonschema.validate(bad, schema)
                raise AssertionError("schema accepted %r" % bad)
            except jsonschema.ValidationError:
                pass
    with central(token=TOKEN) as c:
        for i, b in enumerate(bodies):
            p = send(c, body=b, key="key-%d" % i)
            assert p.returncode == 0, p.stderr
        assert [r["body"] for r in c.reports()] == bodies


def test_503_twice_then_success_same_key():
    with central(token=TOKEN) as c:
        c.control(mode="fail-status", status=503, count=2)
        p = send(c)
        assert p.returncode == 0, p.stderr
        assert len(c.reports()) == 1
        reqs = c.requests()
        assert [q["status"] for q in reqs] == [503, 503, 201], reqs
        assert {q["idempotencyKey"] for q in reqs} == {KEY}, reqs


def test_duplicate_delivery_is_deduplicated():
    with central(token=TOKEN) as c:
        assert send(c).returncode == 0
        p = send(c)  # a rerun after a crash: same report, same key
        assert p.returncode == 0, p.stderr
        assert len(c.reports()) == 1
        reqs = c.requests()
        assert [(q["status"], q["duplicate"]) for q in reqs] == [(201, False), (200, True)], reqs


def test_429_retry_after_honoured():
    with central(token=TOKEN) as c:
        c.control(mode="retry-after", count=1, retryAfter=1)
        p = send(c)
        assert p.returncode == 0, p.stderr
        assert p.elapsed >= 1.0, p.elapsed
        reqs = c.requests()
        assert [q["status"] for q in reqs] == [429, 201], reqs
        assert len(c.reports()) == 1


def test_dropped_connection_retried():
    with central(token=TOKEN) as c:
        c.control(mode="drop", count=1)
        p = send(c)
        assert p.returncode == 0, p.stderr
        reqs = c.requests()
        assert [q["status"] for q in reqs] == ["dropped", 201], reqs
        assert len(c.reports()) == 1


def test_400_is_final_with_server_message():
    with central(token=TOKEN) as c:
        c.control(mode="fail-status", status=400, count=5)
        p = send(c)
        assert p.returncode == 1, (p.returncode, p.stderr)
        line = one_line(p)
        assert line == ("central endpoint %s: 400 Bad Request: injected failure "
                        "(fail-status 400)" % c.report_url), line
        assert len(c.requests()) == 1  # not retried
        assert "eyJhbGci" not in p.stderr  # never the request body


def test_server_message_sanitised():
    with central(token=TOKEN) as c:
        # A server that echoes the bearer token: masked (run() checks the output for it).
        c.control(mode="fail-status", status=422, count=1,
                  message="bad header Authorization: Bearer %s\nsecond line" % TOKEN)
        line = one_line(send(c))
        assert line == ("central endpoint %s: 422 Unprocessable Content: bad header "
                        "Authorization: Bearer <redacted> second line" % c.report_url), line
        # A long message is cut to one short line.
        c.control(mode="fail-status", status=409, count=1, message="x" * 5000)
        line = one_line(send(c))
        assert "409 Conflict: xxx" in line and line.endswith("...") and len(line) < 400, line


def test_schema_violation_refused_by_emulator():
    with central(token=TOKEN) as c:
        bad = dict(report(), status="bogus")
        p = send(c, body=bad)
        assert p.returncode == 1, p.stderr
        line = one_line(p)
        assert "400 Bad Request" in line and "/status" in line and "bogus" in line, line
        assert c.reports() == []
        # A sealed credential that is not JWE is refused without being echoed back.
        p = send(c, body=dict(report(), credentials="secret-in-the-clear"))
        assert p.returncode == 1 and "/credentials" in p.stderr, p.stderr
        assert "secret-in-the-clear" not in p.stderr, p.stderr
        assert c.reports() == []


def test_wrong_token_refused():
    with central(token=TOKEN) as c:
        p = send(c, token="wrong-token-value")
        assert p.returncode == 1, p.stderr
        line = one_line(p)
        assert "401 Unauthorized" in line and "invalid bearer token" in line, line
        assert "wrong-token-value" not in p.stderr
        assert c.reports() == []
        assert len(c.requests()) == 1


def test_token_from_file():
    with central(token=TOKEN) as c:
        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write(TOKEN + "\n")
        try:
            p = send(c, token=None, extra=["--token-file", f.name])
        finally:
            os.unlink(f.name)
        assert p.returncode == 0, p.stderr
        assert len(c.reports()) == 1


def test_missing_token_and_insecure_url():
    p = run(["send", "http://127.0.0.1:9/reports", "/dev/null", KEY], token=None)
    assert p.returncode == 2 and "CLOUDGRANT_REPORT_TOKEN" in p.stderr, p.stderr
    p = run(["send", "http://central.example.com/reports", "/dev/null", KEY])
    assert p.returncode == 2 and "--allow-insecure-report" in p.stderr, p.stderr


def test_unreachable_endpoint_times_out():
    with central(token=TOKEN) as c:
        url = c.report_url
    # The emulator is gone: connection refused on every attempt until the budget is spent.
    p = send(None, url=url, extra=["--timeout-ms", "1500"])
    assert p.returncode == 1, p.stderr
    line = one_line(p)
    assert line.startswith("central endpoint"), line
    assert p.elapsed < 30, p.elapsed


def test_trust_fetch():
    with central(token=TOKEN, principal_arn=TRUST[0], external_id=TRUST[1]) as c:
        p = run(["trust", c.trust_url])
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout) == {"principalArn": TRUST[0], "externalId": TRUST[1]}
        reqs = c.requests()
        assert reqs[0]["method"] == "GET" and reqs[0]["path"] == "/trust", reqs


def test_trust_403_reported():
    with central(token=TOKEN, principal_arn=TRUST[0], external_id=TRUST[1]) as c:
        c.control(mode="fail-status", status=403, count=1)
        p = run(["trust", c.trust_url + "?tenant=abc"])
        assert p.returncode == 1, p.stderr
        line = one_line(p)
        assert line == ("trust principal endpoint %s: 403 Forbidden: injected failure "
                        "(fail-status 403)" % c.trust_url), line


def test_trust_wrong_token():
    with central(token=TOKEN, principal_arn=TRUST[0], external_id=TRUST[1]) as c:
        p = run(["trust", c.trust_url], token="nope-nope")
        assert p.returncode == 1 and "401 Unauthorized" in p.stderr, p.stderr


def test_emulator_control_api_direct():
    # The emulator's own contract: missing Idempotency-Key is a 400, repeat keys dedup.
    with central(token=TOKEN) as c:
        req = urllib.request.Request(c.report_url, data=json.dumps(report()).encode(),
                                     headers={"Authorization": "Bearer " + TOKEN,
                                              "Content-Type": "application/json"},
                                     method="POST")
        try:
            urllib.request.urlopen(req, timeout=10)
            raise AssertionError("missing Idempotency-Key accepted")
        except urllib.error.HTTPError as e:
            assert e.code == 400
            assert "Idempotency-Key" in json.loads(e.read())["message"]


if __name__ == "__main__":
    sys.exit(harness.run_tests(globals()))
