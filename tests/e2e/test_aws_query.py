#!/usr/bin/env python3
"""End-to-end tests of the AWS Query client (cloud/aws/query.c) through the test driver
aws_query_call: against moto behind aws_model_proxy.py, which refuses any request botocore's
IAM/STS models refuse and checks the SigV4 scope and signature, then the response parser on
canned and hostile bodies (--parse mode, no network).

    test_aws_query.py build/tests/aws_query_call      (ctest passes the driver's path)
"""
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

SRC = os.environ.get("CG_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "emulators"))
import harness  # noqa: E402
import moto_harness  # noqa: E402

CALL = sys.argv[1] if len(sys.argv) > 1 else os.path.join(SRC, "build", "tests",
                                                            "aws_query_call")
ACCOUNT = moto_harness.ACCOUNT


class Result:
    def __init__(self, p):
        self.rc = p.returncode
        self.stdout = p.stdout
        self.stderr = p.stderr
        self.json = json.loads(p.stdout) if p.returncode == 0 and p.stdout.strip() else None
        lines = [ln for ln in p.stderr.splitlines() if not ln.startswith("stats ")]
        self.error = lines[0] if lines else ""
        self.error_lines = lines
        self.stats = {}
        for ln in p.stderr.splitlines():
            if ln.startswith("stats "):
                self.stats = {k: int(v) for k, v in (kv.split("=") for kv in ln.split()[1:])}

    def __repr__(self):
        return "rc=%d stdout=%r stderr=%r" % (self.rc, self.stdout[:500], self.stderr[:500])


def call(m, action, *params, service="iam", all_key=None, timeout_ms=None, region=None,
         env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(m.env())
    env.update(env_extra or {})
    cmd = [CALL, "--endpoint", m.url, "--service", service, "--stats"]
    if all_key:
        cmd += ["--all", all_key]
    if timeout_ms:
        cmd += ["--timeout", str(timeout_ms)]
    if region:
        cmd += ["--region", region]
    cmd.append(action)
    cmd += ["%s=%s" % kv for kv in params]
    return Result(subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120))


def requests_for(m, action):
    return [r for r in m.requests() if r["action"] == action]


def with_moto(fn):
    """A fresh moto behind the validating proxy; no request may violate the model."""
    def wrapper():
        with moto_harness.moto(validate=True) as m:
            try:
                fn(m)
            except Exception:
                sys.stderr.write(m.log()[-2000:] + "\n")
                raise
            bad = m.violations()
            assert not bad, "requests botocore's model refuses: %s" % json.dumps(bad, indent=1)
            for r in m.requests():
                if r["service"] == "iam":
                    assert r["scope"] == {"region": "us-east-1", "service": "iam",
                                          "date": r["scope"]["date"]}, r
    wrapper.__name__ = fn.__name__
    return wrapper


# ---- against moto ---------------------------------------------------------------------------

@with_moto
def test_sts_get_caller_identity(m):
    r = call(m, "GetCallerIdentity", service="sts")
    assert r.rc == 0, r
    assert r.json["Account"] == ACCOUNT, r.json
    assert r.json["Arn"].startswith("arn:aws:sts::%s:" % ACCOUNT), r.json
    assert r.stats["reads"] == 1 and r.stats["writes"] == 0, r.stats
    (req,) = m.requests()
    assert req["service"] == "sts" and req["scope"]["service"] == "sts", req


@with_moto
def test_create_user_with_tags_then_get(m):
    r = call(m, "CreateUser", ("UserName", "cast-eks-prod"), ("Path", "/cloudgrant/"),
             ("Tags.member.1.Key", "managed-by"), ("Tags.member.1.Value", "cloud grant"),
             ("Tags.member.2.Key", "cloudgrant/cluster-id"), ("Tags.member.2.Value", "a=b+c @x"))
    assert r.rc == 0, r
    user = r.json["User"]
    assert user["UserName"] == "cast-eks-prod" and user["Path"] == "/cloudgrant/", user
    assert user["Arn"] == "arn:aws:iam::%s:user/cloudgrant/cast-eks-prod" % ACCOUNT, user
    assert r.stats["writes"] == 1 and r.stats["reads"] == 0, r.stats
    # awscli, a second client, sees what we created
    tags = {t["Key"]: t["Value"] for t in
            m.aws("iam", "list-user-tags", "--user-name", "cast-eks-prod")["Tags"]}
    assert tags == {"managed-by": "cloud grant", "cloudgrant/cluster-id": "a=b+c @x"}, tags
    r = call(m, "GetUser", ("UserName", "cast-eks-prod"))
    assert r.rc == 0, r
    assert r.json["User"]["UserId"] == user["UserId"], (r.json, user)
    (req,) = requests_for(m, "CreateUser")
    assert req["params"]["Tags.member.2.Value"] == "a=b+c @x", req


@with_moto
def test_list_users_paged_and_merged(m):
    names = ["pu-%d" % i for i in range(5)]
    for n in names:
        assert call(m, "CreateUser", ("UserName", n)).rc == 0
    r = call(m, "ListUsers", ("MaxItems", "2"), all_key="Users")
    assert r.rc == 0, r
    got = sorted(u["UserName"] for u in r.json["Users"])
    assert got == names, got
    assert r.json["IsTruncated"] == "false", r.json
    pages = requests_for(m, "ListUsers")
    assert len(pages) == 3, pages
    assert [p["params"].get("Marker") for p in pages] == [None, "cgpx-2", "cgpx-4"], pages
    assert all(p["paginated"] for p in pages), pages
    assert r.stats["reads"] == 3, r.stats


@with_moto
def test_list_roles_paged_by_moto(m):
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "sts:AssumeRole"}]})
    names = ["role-%d" % i for i in range(5)]
    for n in names:
        r = call(m, "CreateRole", ("RoleName", n), ("AssumeRolePolicyDocument", trust))
        assert r.rc == 0, r
    r = call(m, "ListRoles", ("MaxItems", "2"), all_key="Roles")
    assert r.rc == 0, r
    assert sorted(x["RoleName"] for x in r.json["Roles"]) == names, r.json
    # documents inside list members are decoded too
    for role in r.json["Roles"]:
        assert json.loads(role["AssumeRolePolicyDocument"]) == json.loads(trust), role
    pages = requests_for(m, "ListRoles")
    assert len(pages) == 3 and not any(p["paginated"] for p in pages), pages


@with_moto
def test_policy_document_round_trip(m):
    doc = {"Version": "2012-10-17", "Statement": [{
        "Sid": "Tricky", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*",
        "Condition": {"StringLike": {"s3:prefix": [
            "a+b & c=d \"quoted\" {braces} [x] 100% %41 caf\u00e9 \u00fcber\ttab"]}}}]}
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    r = call(m, "CreatePolicy", ("PolicyName", "CastEKSPolicy"), ("PolicyDocument", text),
             ("Description", "a + b"))
    assert r.rc == 0, r
    arn = r.json["Policy"]["Arn"]
    assert arn == "arn:aws:iam::%s:policy/CastEKSPolicy" % ACCOUNT, r.json
    # the proxy decoded exactly what we sent
    (req,) = requests_for(m, "CreatePolicy")
    assert req["params"]["PolicyDocument"] == text, req["params"]
    r = call(m, "GetPolicyVersion", ("PolicyArn", arn), ("VersionId", "v1"))
    assert r.rc == 0, r
    got = r.json["PolicyVersion"]["Document"]
    assert isinstance(got, str), got
    assert json.loads(got) == doc, got
    (resp,) = requests_for(m, "GetPolicyVersion")
    assert resp.get("encoded_documents"), resp  # it went through IAM-style encoding
    # awscli asks moto directly, which sends documents raw (IAM encodes them); botocore
    # decodes anyway, so there the literal "%41" reads back as "A": what the proxy's
    # encoding spares our client
    seen = m.aws("iam", "get-policy-version", "--policy-arn", arn, "--version-id", "v1")
    want = json.loads(json.dumps(doc).replace("%41", "A"))
    assert seen["PolicyVersion"]["Document"] == want, seen


@with_moto
def test_no_such_entity(m):
    r = call(m, "GetUser", ("UserName", "nobody"))
    assert r.rc == 1, r
    assert r.stdout == "", r
    assert r.error_lines == ["IAM GetUser 'nobody': NoSuchEntity: The user with name nobody "
                             "cannot be found."], r
    assert len(requests_for(m, "GetUser")) == 1


@with_moto
def test_entity_already_exists(m):
    assert call(m, "CreateUser", ("UserName", "dup")).rc == 0
    r = call(m, "CreateUser", ("UserName", "dup"), ("Tags.member.1.Key", "k"),
             ("Tags.member.1.Value", "v"))
    assert r.rc == 1, r
    assert r.error.startswith("IAM CreateUser 'dup': EntityAlreadyExists: "), r
    assert len(r.error_lines) == 1, r


@with_moto
def test_limit_exceeded_not_retried(m):
    assert call(m, "CreateUser", ("UserName", "keys")).rc == 0
    secrets = []
    for _ in range(2):
        r = call(m, "CreateAccessKey", ("UserName", "keys"))
        assert r.rc == 0, r
        secrets.append(r.json["AccessKey"]["SecretAccessKey"])
    r = call(m, "CreateAccessKey", ("UserName", "keys"))
    assert r.rc == 1, r
    assert r.error.startswith("IAM CreateAccessKey 'keys': LimitExceeded: "), r
    assert len(requests_for(m, "CreateAccessKey")) == 3, requests_for(m, "CreateAccessKey")
    assert r.stats["requests"] == 1 and r.stats["retries"] == 0, r.stats
    for s in secrets:
        assert s not in r.stderr
    keys = m.aws("iam", "list-access-keys", "--user-name", "keys")["AccessKeyMetadata"]
    assert len(keys) == 2, keys


@with_moto
def test_throttling_and_5xx_retried(m):
    assert call(m, "CreateUser", ("UserName", "t")).rc == 0
    m.inject(action="GetUser", count=2, status=400, code="Throttling", message="Rate exceeded")
    r = call(m, "GetUser", ("UserName", "t"))
    assert r.rc == 0, r
    assert r.stats["requests"] == 3 and r.stats["retries"] == 2, r.stats
    m.inject(action="GetUser", count=1, status=503, code="ServiceUnavailable")
    m.inject(action="GetUser", count=1, status=409, code="ConcurrentModification")
    r = call(m, "GetUser", ("UserName", "t"))
    assert r.rc == 0, r
    assert r.stats["requests"] == 3, r.stats
    faults = [q["fault"] for q in requests_for(m, "GetUser") if q["fault"]]
    assert faults == ["400 Throttling", "400 Throttling", "503 ServiceUnavailable",
                      "409 ConcurrentModification"], faults


@with_moto
def test_throttling_gives_up(m):
    m.inject(action="ListUsers", count=10, status=400, code="Throttling", message="Rate exceeded")
    r = call(m, "ListUsers")
    assert r.rc == 1, r
    assert r.error == "IAM ListUsers: Throttling: Rate exceeded", r
    assert r.stats["requests"] == 4, r.stats  # cg_http's default attempts


@with_moto
def test_expired_token_refetched_once(m):
    assert call(m, "CreateUser", ("UserName", "x")).rc == 0
    m.inject(action="GetUser", count=1, status=403, code="ExpiredToken",
             message="The security token included in the request is expired")
    r = call(m, "GetUser", ("UserName", "x"))
    assert r.rc == 0, r
    assert r.stats["requests"] == 2, r.stats
    m.inject(action="GetUser", count=2, status=403, code="ExpiredToken", message="expired")
    r = call(m, "GetUser", ("UserName", "x"))
    assert r.rc == 1, r
    assert r.error == "IAM GetUser 'x': ExpiredToken: expired", r
    assert r.stats["requests"] == 2, r.stats


@with_moto
def test_timeout(m):
    m.set_delay(10000)
    t0 = time.monotonic()
    r = call(m, "GetUser", ("UserName", "slow"), timeout_ms=700)
    elapsed = time.monotonic() - t0
    m.set_delay(0)
    assert r.rc == 1, r
    assert r.error.startswith("IAM GetUser 'slow': "), r
    assert "timed out" in r.error, r
    assert elapsed < 6, elapsed  # the deadline, not the proxy's 10 s, ended it


def test_proxy_refuses_model_violations():
    """The proxy is the safety net of every other test here: check it bites."""
    with moto_harness.moto(validate=True) as m:
        r = call(m, "CreateUser", ("UserName", "bad name"))
        assert r.rc == 1 and "ModelValidation" in r.error and "pattern" in r.error, r
        r = call(m, "CreateUser", ("UserName", "ok"), ("Bogus", "1"))
        assert r.rc == 1 and "unknown parameter 'Bogus'" in r.error, r
        r = call(m, "CreateUser")
        assert r.rc == 1 and "UserName" in r.error, r
        r = call(m, "ListPolicies", ("Scope", "Everything"))
        assert r.rc == 1 and "Scope" in r.error, r
        # an IAM request signed for another region than IAM's us-east-1
        r = call(m, "ListUsers", region="eu-west-3")
        assert r.rc == 1 and "signed for region 'eu-west-3'" in r.error, r
        assert len(m.violations()) == 5, m.violations()
        # nothing of it reached moto
        assert m.aws("iam", "list-users")["Users"] == [], "refused requests were forwarded"


# ---- the parser on canned bodies (no network) ----------------------------------------------

def parse(body, action, status=200):
    with tempfile.NamedTemporaryFile("wb", suffix=".xml", delete=False) as f:
        f.write(body if isinstance(body, bytes) else body.encode())
        path = f.name
    try:
        p = subprocess.run([CALL, "--parse", path, "--status", str(status), action],
                           capture_output=True, text=True, timeout=30)
    finally:
        os.unlink(path)
    return Result(p)


def test_parse_success_shapes():
    r = parse("<ListGroupsForUserResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">"
              "<ListGroupsForUserResult><Groups/><IsTruncated>false</IsTruncated>"
              "</ListGroupsForUserResult></ListGroupsForUserResponse>", "ListGroupsForUser")
    assert r.rc == 0 and r.json == {"Groups": "", "IsTruncated": "false"}, r
    r = parse("<ListAttachedUserPoliciesResponse><ListAttachedUserPoliciesResult>"
              "<AttachedPolicies><member><PolicyName>a</PolicyName><PolicyArn>arn:a</PolicyArn>"
              "</member><member><PolicyName>b</PolicyName><PolicyArn>arn:b</PolicyArn></member>"
              "</AttachedPolicies><IsTruncated>true</IsTruncated><Marker>m</Marker>"
              "</ListAttachedUserPoliciesResult></ListAttachedUserPoliciesResponse>",
              "ListAttachedUserPolicies")
    assert r.rc == 0, r
    assert r.json == {"AttachedPolicies": [{"PolicyName": "a", "PolicyArn": "arn:a"},
                                           {"PolicyName": "b", "PolicyArn": "arn:b"}],
                      "IsTruncated": "true", "Marker": "m"}, r.json
    r = parse("<DetachUserPolicyResponse><ResponseMetadata><RequestId>1</RequestId>"
              "</ResponseMetadata></DetachUserPolicyResponse>", "DetachUserPolicy")
    assert r.rc == 0 and r.json == {}, r
    r = parse("<GetRoleResponse><GetRoleResult><Role><RoleName>r</RoleName>"
              "<AssumeRolePolicyDocument>%7B%22a%22%3A%22b%2Bc%22%7D</AssumeRolePolicyDocument>"
              "<RoleLastUsed/><Tags><member><Key>k</Key><Value>v</Value></member></Tags>"
              "</Role></GetRoleResult></GetRoleResponse>", "GetRole")
    assert r.rc == 0, r
    assert r.json["Role"]["AssumeRolePolicyDocument"] == '{"a":"b+c"}', r.json
    assert r.json["Role"]["Tags"] == [{"Key": "k", "Value": "v"}], r.json


def test_parse_errors_and_garbage():
    r = parse("<ErrorResponse><Error><Type>Sender</Type><Code>DeleteConflict</Code><Message>"
              "Cannot delete entity, must detach all policies first.</Message></Error>"
              "</ErrorResponse>", "DeleteUser", 409)
    assert r.rc == 1 and r.error == ("IAM DeleteUser: DeleteConflict: Cannot delete entity, "
                                     "must detach all policies first."), r
    for body, status in [("<CreateUserResponse><CreateUserResult><User>", 200),
                         ("<html><head><title>502 Bad Gateway</title></head></html>", 502),
                         ("", 500), ("{\"message\": \"json from a gateway\"}", 403),
                         (b"\x00\x01\x02\xff", 200)]:
        r = parse(body, "CreateUser", status)
        assert r.rc == 1, r
        assert r.error_lines == ["IAM CreateUser: invalid response (HTTP %d)" % status], r


def test_parse_never_prints_secrets():
    body = ("<CreateAccessKeyResponse><CreateAccessKeyResult><AccessKey><UserName>u</UserName>"
            "<AccessKeyId>AKIAEXAMPLEEXAMPLE</AccessKeyId>"
            "<SecretAccessKey>SeCrEtSeCrEtSeCrEt</SecretAccessKey>")  # cut short
    r = parse(body, "CreateAccessKey")
    assert r.rc == 1 and "SeCrEt" not in r.stderr + r.stdout, r
    r = parse("<ErrorResponse><Error><Code>X</Code><Message>m</Message></Error>"
              "<Secret>SeCrEt</Secret></ErrorResponse>", "CreateAccessKey", 400)
    assert r.rc == 1 and "SeCrEt" not in r.stderr, r


def test_parse_entity_attacks():
    lol = "".join("<!ENTITY l%d \"%s\">" % (i, ("&l%d;" % (i - 1)) * 10) for i in range(1, 10))
    laughs = ("<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY l0 \"lol\">%s]>"
              "<GetUserResponse><GetUserResult><User><UserName>&l9;</UserName></User>"
              "</GetUserResult></GetUserResponse>" % lol)
    t0 = time.monotonic()
    r = parse(laughs, "GetUser")
    assert r.rc == 1 and "invalid response" in r.error, r
    assert time.monotonic() - t0 < 5

    # external entities: a local file holding a marker, and a local HTTP server counting hits
    hits = []

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<!ENTITY x \"FETCHED\">")

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("FILE-MARKER-1234")
        marker_path = f.name
    try:
        port = srv.server_address[1]
        attacks = [
            "<!DOCTYPE r [<!ENTITY x SYSTEM \"file://%s\">]>" % marker_path,
            "<!DOCTYPE r [<!ENTITY x SYSTEM \"http://127.0.0.1:%d/x\">]>" % port,
            "<!DOCTYPE r SYSTEM \"http://127.0.0.1:%d/dtd\">" % port,
            "<!DOCTYPE r [<!ENTITY %% p SYSTEM \"http://127.0.0.1:%d/p\"> %%p;]>" % port,
        ]
        for dtd in attacks:
            body = ("<?xml version=\"1.0\"?>%s<GetUserResponse><GetUserResult><User>"
                    "<UserName>&x;</UserName></User></GetUserResult></GetUserResponse>" % dtd)
            r = parse(body, "GetUser")
            assert r.rc == 1, r
            assert "FILE-MARKER" not in r.stdout + r.stderr, r
            assert "FETCHED" not in r.stdout + r.stderr, r
        assert hits == [], hits
    finally:
        srv.shutdown()
        os.unlink(marker_path)


if __name__ == "__main__":
    sys.exit(harness.run_tests(globals()))
