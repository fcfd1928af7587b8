#!/usr/bin/env python3
"""The OUTSCALE API emulator (tests/emulators/osc_api.py) checked against independent clients
and against Outscale's published behaviour, so that it cannot drift into agreeing with our C
client's bugs.

1. Every action cloudgrant uses, through the harness, with every answer checked against
   Outscale's response models (osc_model.py) and no request-model violation; pagination with
   HasMoreItems; the error shapes and statuses of conflicts, missing resources and bad
   parameters; DeleteAccessKey of an ACTIVE user key refused until UpdateAccessKey INACTIVE;
   the API access policy's key-lifetime cap; the eventual-consistency knobs.
2. The signature against two other implementations: curl's --aws-sigv4 "osc:osc:<region>:api"
   (libcurl's own SigV4 code) and botocore's SigV4Auth with Outscale's constants substituted;
   the harness's, curl's and botocore's signatures agree for one request and timestamp;
   tampering (body, secret, region, a 6-minute-old date, x-osc-date unsigned) gets 401; four
   bad signatures lock the key.
3. A user access key made with CreateAccessKey works for what its linked policy allows and
   gets 403 for the rest; INACTIVE or expired keys get 401.
4. Every fault kind, seen by a plain HTTP client.
5. No SecretKey value in the request log, the state dump or the emulator's output.

Exit 77 (skipped) when curl (with --aws-sigv4) or python3-botocore is missing, unless CI=true.
"""
import datetime
import http.client
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

DEBIAN_PYTHON = "/usr/bin/python3"
SRC = os.environ.get("CG_SOURCE_DIR") or os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "emulators"))


def _reexec_under_debian_python():
    """botocore is Debian's python3-botocore: run under /usr/bin/python3 (ctest's python3 may
    be another interpreter)."""
    if (os.path.exists(DEBIAN_PYTHON) and not os.environ.get("OSC_EMU_TEST_REEXEC")
            and os.path.realpath(sys.executable) != os.path.realpath(DEBIAN_PYTHON)):
        env = dict(os.environ, OSC_EMU_TEST_REEXEC="1", CG_SOURCE_DIR=SRC)
        env.pop("PYTHONPATH", None)
        env.pop("PYTHONHOME", None)
        os.execve(DEBIAN_PYTHON, [DEBIAN_PYTHON, os.path.abspath(__file__)] + sys.argv[1:], env)


if __name__ == "__main__":
    _reexec_under_debian_python()

import harness  # noqa: E402
import osc_harness  # noqa: E402
import osc_model  # noqa: E402

CURL = shutil.which("curl")
POLICY_READ_VMS = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["api:ReadVms"], "Resource": ["*"]}]}
SECRETS = set()   # every secret key the tests saw, checked against logs and dumps


def note(msg):
    print("     " + msg)
    sys.stdout.flush()


def call(o, action, body=None, expect=200, etype=None, code=None, **kw):
    """A signed call; the answer must have Outscale's published shape and the expected status
    (and error Type/Code). Returns the parsed answer."""
    status, doc = o.call(action, body, **kw)
    assert isinstance(doc, dict), (action, status, doc)
    problems = osc_model.check_response(action, doc, status)
    assert not problems, (action, status, problems, doc)
    assert status == expect, "%s %s: expected %d, got %d: %s" % (
        action, json.dumps(body)[:300], expect, status, json.dumps(doc)[:800])
    if status >= 400:
        e = doc["Errors"][0]
        assert set(e) == {"Code", "Type", "Details"} and e["Details"], doc
        assert re.fullmatch(r"[0-9a-f-]{36}", doc["ResponseContext"]["RequestId"]), doc
        if etype:
            assert e["Type"] == etype, (action, doc)
        if code:
            assert e["Code"] == code, (action, doc)
    else:
        for k in _walk_keys(doc):
            if k == "SecretKey":
                assert action == "CreateAccessKey", (action, doc)
    return doc


def _walk_keys(doc):
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield k
            yield from _walk_keys(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from _walk_keys(v)


def iso_in(seconds):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def assert_no_secrets(o):
    SECRETS.add(o.root_secret_key)
    texts = {"requests": json.dumps(o.requests()), "state": json.dumps(o.state()),
             "output": o.log()}
    for where, text in texts.items():
        for s in SECRETS:
            assert s not in text, "a secret key appears in the emulator's %s" % where


def all_pages(o, action, body, key, per_page, **kw):
    items, first, pages = [], 0, 0
    while True:
        b = dict(body, FirstItem=first, ResultsPerPage=per_page)
        doc = call(o, action, b, **kw)
        items += doc[key]
        pages += 1
        assert len(doc[key]) <= per_page
        if not doc["HasMoreItems"]:
            return items, pages
        assert doc[key], "HasMoreItems with an empty page"
        first += per_page


# ==============================================================================================
# 1. every action

def test_1_actions():
    with osc_harness.osc() as o:
        acct = call(o, "ReadAccounts")["Accounts"]
        assert len(acct) == 1 and acct[0]["AccountId"] == o.account_id
        assert re.fullmatch(r"\d{12}", o.account_id)
        assert re.fullmatch(r"[A-Z0-9]{20}", o.root_access_key)
        assert re.fullmatch(r"[A-Z0-9]{40}", o.root_secret_key)
        assert call(o, "ReadApiAccessPolicy")["ApiAccessPolicy"] == {
            "MaxAccessKeyExpirationSeconds": 0, "RequireTrustedEnv": False}
        assert call(o, "ReadAccounts", prefix="/api/latest")["Accounts"][0]["AccountId"] == \
            o.account_id
        env = o.env()
        assert env == {"OSC_ACCESS_KEY": o.root_access_key, "OSC_SECRET_KEY": o.root_secret_key,
                       "OSC_REGION": "eu-west-2", "OSC_ENDPOINT_API": o.url + "/api/v1"}, env
        with tempfile.TemporaryDirectory() as d:
            path = o.write_config(os.path.join(d, ".osc", "config.json"), profile="emu",
                                  x509_client_cert="/nonexistent.pem")
            with open(path) as f:
                cfg = json.load(f)
            assert cfg["emu"]["endpoints"]["api"] == o.url + "/api/v1"
            assert cfg["emu"]["access_key"] == o.root_access_key and \
                cfg["emu"]["region"] == o.region and cfg["emu"]["x509_client_cert"]
            assert os.stat(path).st_mode & 0o077 == 0

        # users, pagination
        for n in ("alice", "bob", "carol"):
            u = call(o, "CreateUser", {"UserName": n, "Path": "/team/",
                                       "UserEmail": "%s@example.com" % n})["User"]
            assert u["UserName"] == n and u["Path"] == "/team/" and re.fullmatch(
                r"[A-Z0-9]{32}", u["UserId"]), u
            assert {"CreationDate", "LastModificationDate"} <= set(u)
        assert call(o, "CreateUser", {"UserName": "plain"})["User"]["Path"] == "/"
        users, pages = all_pages(o, "ReadUsers", {}, "Users", 3)
        assert [u["UserName"] for u in users] == ["alice", "bob", "carol", "plain"], users
        assert pages == 2
        page = call(o, "ReadUsers", {"ResultsPerPage": 2})
        assert page["HasMoreItems"] is True and len(page["Users"]) == 2
        assert call(o, "ReadUsers", {"FirstItem": 2, "ResultsPerPage": 2})["HasMoreItems"] is False
        big_page = call(o, "ReadUsers", {"ResultsPerPage": 5000})
        assert big_page["MaxResultsTruncated"] is True and big_page["MaxResultsLimit"] == 1000
        call(o, "ReadUsers", {"ResultsPerPage": 0}, 400, "InvalidParameterValue")
        bob_id = o.user("bob")["UserId"]
        assert [u["UserName"] for u in call(o, "ReadUsers", {"Filters": {"UserIds": [bob_id]}})[
            "Users"]] == ["bob"]
        u = call(o, "UpdateUser", {"UserName": "alice", "NewUserName": "alice2",
                                   "NewPath": "/ops/", "NewUserEmail": "a2@example.com"})["User"]
        assert (u["UserName"], u["Path"], u["UserEmail"]) == ("alice2", "/ops/", "a2@example.com")
        assert o.user("alice") is None and o.user("alice2")["Path"] == "/ops/"
        call(o, "CreateUser", {"UserName": "bob"}, 409, "ResourceConflict", "9022")
        call(o, "CreateUser", {"UserName": "bad name"}, 400, "InvalidParameterValue")
        call(o, "CreateUser", {"UserName": "x", "Path": "no-slash"}, 400, "InvalidParameterValue")
        call(o, "UpdateUser", {"UserName": "nobody"}, 400, "InvalidResource", "5075")
        call(o, "DeleteUser", {"UserName": "plain"})
        assert o.user("plain") is None
        note("users: create/read (2 pages of 3)/update/rename/delete, 409 and 400 answers")

        # policies and versions
        doc = json.dumps(POLICY_READ_VMS)
        p = call(o, "CreatePolicy", {"PolicyName": "vm-reader", "Document": doc, "Path": "/cg/",
                                     "Description": "reads VMs"})["Policy"]
        orn = "orn:ows:idauth::%s:policy/cg/vm-reader" % o.account_id
        assert p["Orn"] == orn and p["PolicyDefaultVersionId"] == "v1", p
        assert p["IsLinkable"] is True and p["ResourcesCount"] == 0 and p["Path"] == "/cg/"
        assert p["Description"] == "reads VMs" and p["PolicyName"] == "vm-reader"
        for n in ("p2", "p3"):
            call(o, "CreatePolicy", {"PolicyName": n, "Document": doc})
        call(o, "CreatePolicy", {"PolicyName": "p2", "Document": doc}, 409, "ResourceConflict")
        call(o, "CreatePolicy", {"PolicyName": "bad-doc", "Document": "{not json"}, 400,
             "InvalidParameterValue")
        call(o, "CreatePolicy", {"PolicyName": "no-stmt", "Document": '{"Version": "1"}'}, 400,
             "InvalidParameterValue")
        big = json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["api:Read%04d" % i for i in range(400)],
             "Resource": "*"}]})
        call(o, "CreatePolicy", {"PolicyName": "too-big", "Document": big}, 400,
             "InvalidParameterValue")
        pols, pages = all_pages(o, "ReadPolicies", {}, "Policies", 2)
        assert [x["PolicyName"] for x in pols] == ["vm-reader", "p2", "p3"] and pages == 2
        assert [x["PolicyName"] for x in call(o, "ReadPolicies", {"Filters": {
            "PathPrefix": "/cg/"}})["Policies"]] == ["vm-reader"]
        assert call(o, "ReadPolicies", {"Filters": {"Scope": "OWS"}})["Policies"] == []
        call(o, "ReadPolicies", {"Filters": {"Scope": "GLOBAL"}}, 400, "InvalidParameterValue")
        assert call(o, "ReadPolicy", {"PolicyOrn": orn})["Policy"]["Orn"] == orn
        call(o, "ReadPolicy", {"PolicyOrn": orn + "-gone"}, 400, "InvalidResource")
        call(o, "ReadPolicy", {"PolicyOrn": "arn:aws:iam::123:policy/x"}, 400,
             "InvalidParameterValue")
        for i in range(2, 6):
            v = call(o, "CreatePolicyVersion", {"PolicyOrn": orn, "Document": doc,
                                                "SetAsDefault": i == 3})["PolicyVersion"]
            assert v["VersionId"] == "v%d" % i and v["DefaultVersion"] is (i == 3), v
        call(o, "CreatePolicyVersion", {"PolicyOrn": orn, "Document": doc}, 409,
             "ResourceConflict")
        v3 = call(o, "ReadPolicyVersion", {"PolicyOrn": orn, "VersionId": "v3"})["PolicyVersion"]
        assert v3["DefaultVersion"] is True and json.loads(v3["Body"]) == POLICY_READ_VMS
        assert call(o, "ReadPolicy", {"PolicyOrn": orn})["Policy"]["PolicyDefaultVersionId"] == "v3"
        call(o, "ReadPolicyVersion", {"PolicyOrn": orn, "VersionId": "v9"}, 400, "InvalidResource")
        versions, pages = all_pages(o, "ReadPolicyVersions", {"PolicyOrn": orn},
                                    "PolicyVersions", 2)
        assert [v["VersionId"] for v in versions] == ["v1", "v2", "v3", "v4", "v5"] and pages == 3
        call(o, "DeletePolicyVersion", {"PolicyOrn": orn, "VersionId": "v3"}, 409,
             "ResourceConflict")
        call(o, "DeletePolicyVersion", {"PolicyOrn": orn, "VersionId": "v2"})
        assert [v["VersionId"] for v in o.policy(orn)["Versions"]] == ["v1", "v3", "v4", "v5"]
        assert o.policy("vm-reader")["Document"] == POLICY_READ_VMS
        note("policies: create/read (pages)/versions v1..v5, 6th refused, default kept")

        # links
        call(o, "LinkPolicy", {"PolicyOrn": orn, "UserName": "bob"})
        call(o, "LinkPolicy", {"PolicyOrn": orn, "UserName": "bob"}, 409, "ResourceConflict")
        call(o, "LinkPolicy", {"PolicyOrn": orn, "UserName": "nobody"}, 400, "InvalidResource")
        lp = call(o, "ReadLinkedPolicies", {"UserName": "bob"})
        assert [x["Orn"] for x in lp["Policies"]] == [orn] and lp["HasMoreItems"] is False
        assert set(lp["Policies"][0]) == {"PolicyName", "PolicyId", "Orn", "CreationDate",
                                          "LastModificationDate"}
        assert call(o, "ReadLinkedPolicies", {"UserName": "bob", "Filters": {
            "PathPrefix": "/other/"}})["Policies"] == []
        assert call(o, "ReadPolicies", {"Filters": {"OnlyLinked": True}})["Policies"][0][
            "ResourcesCount"] == 1
        assert o.linked("bob") == [orn]
        e = call(o, "DeletePolicy", {"PolicyOrn": orn}, 409, "ResourceConflict")
        assert "linked" in e["Errors"][0]["Details"]
        call(o, "DeleteUser", {"UserName": "bob"}, 409, "ResourceConflict")
        call(o, "UnlinkPolicy", {"PolicyOrn": orn, "UserName": "bob"})
        call(o, "UnlinkPolicy", {"PolicyOrn": orn, "UserName": "bob"}, 400, "InvalidResource")
        e = call(o, "DeletePolicy", {"PolicyOrn": orn}, 409, "ResourceConflict")
        assert "version" in e["Errors"][0]["Details"]
        for vid in ("v1", "v4", "v5"):
            call(o, "DeletePolicyVersion", {"PolicyOrn": orn, "VersionId": vid})
        call(o, "DeletePolicy", {"PolicyOrn": orn})
        assert o.policy(orn) is None
        note("links: link/read/unlink, DeletePolicy and DeleteUser refused while linked")

        # access keys
        k = call(o, "CreateAccessKey", {"UserName": "carol"})["AccessKey"]
        SECRETS.add(k["SecretKey"])
        assert re.fullmatch(r"[A-Z0-9]{20}", k["AccessKeyId"]) and len(k["SecretKey"]) == 40
        assert k["State"] == "ACTIVE" and "ExpirationDate" not in k
        keys = call(o, "ReadAccessKeys", {"UserName": "carol"})["AccessKeys"]
        assert [x["AccessKeyId"] for x in keys] == [k["AccessKeyId"]]
        assert all("SecretKey" not in x for x in keys)
        assert call(o, "ReadAccessKeys", {"UserName": "carol", "Filters": {
            "States": ["INACTIVE"]}})["AccessKeys"] == []
        for _ in range(9):
            SECRETS.add(call(o, "CreateAccessKey", {"UserName": "carol"})["AccessKey"]["SecretKey"])
        call(o, "CreateAccessKey", {"UserName": "carol"}, 409, "TooManyResources", "10005")
        e = call(o, "DeleteAccessKey", {"UserName": "carol", "AccessKeyId": k["AccessKeyId"]},
                 409, "ResourceConflict")
        assert "INACTIVE" in e["Errors"][0]["Details"], e
        call(o, "DeleteAccessKey", {"AccessKeyId": k["AccessKeyId"]}, 400, "InvalidResource")
        call(o, "DeleteUser", {"UserName": "carol"}, 409, "ResourceConflict")
        for x in o.access_keys("carol"):
            up = call(o, "UpdateAccessKey", {"UserName": "carol", "AccessKeyId": x["AccessKeyId"],
                                             "State": "INACTIVE"})["AccessKey"]
            assert up["State"] == "INACTIVE"
            call(o, "DeleteAccessKey", {"UserName": "carol", "AccessKeyId": x["AccessKeyId"]})
        call(o, "DeleteUser", {"UserName": "carol"})
        root_keys = call(o, "ReadAccessKeys")["AccessKeys"]
        assert [x["AccessKeyId"] for x in root_keys] == [o.root_access_key]
        note("keys: 10 per user, ACTIVE user key delete refused (409) until INACTIVE")

        # the account's API access policy caps key lifetimes
        o.set_api_access_policy(3600)
        assert call(o, "ReadApiAccessPolicy")["ApiAccessPolicy"][
            "MaxAccessKeyExpirationSeconds"] == 3600
        e = call(o, "CreateAccessKey", {"UserName": "bob"}, 400, "InvalidParameterValue")
        assert "ExpirationDate" in e["Errors"][0]["Details"] and "3600" in e["Errors"][0]["Details"]
        call(o, "CreateAccessKey", {"UserName": "bob", "ExpirationDate": iso_in(7200)}, 400,
             "InvalidParameterValue")
        call(o, "CreateAccessKey", {"UserName": "bob", "ExpirationDate": "2000-01-01"}, 400,
             "InvalidParameterValue")
        call(o, "CreateAccessKey", {"UserName": "bob", "ExpirationDate": "tomorrow"}, 400,
             "InvalidParameterValue")
        k = call(o, "CreateAccessKey", {"UserName": "bob", "ExpirationDate": iso_in(1800)})[
            "AccessKey"]
        SECRETS.add(k["SecretKey"])
        assert k["ExpirationDate"].endswith("Z")
        call(o, "UpdateAccessKey", {"UserName": "bob", "AccessKeyId": k["AccessKeyId"],
                                    "State": "INACTIVE"}, 400, "InvalidParameterValue")
        call(o, "UpdateAccessKey", {"UserName": "bob", "AccessKeyId": k["AccessKeyId"],
                                    "State": "INACTIVE", "ExpirationDate": k["ExpirationDate"]})
        o.set_api_access_policy(0)
        up = call(o, "UpdateAccessKey", {"UserName": "bob", "AccessKeyId": k["AccessKeyId"],
                                         "State": "INACTIVE"})["AccessKey"]
        assert "ExpirationDate" not in up  # documented: no ExpirationDate = does not expire
        note("API access policy: cap 3600 s enforced on CreateAccessKey and UpdateAccessKey")

        # DryRun changes nothing
        call(o, "CreateUser", {"UserName": "dry", "DryRun": True})
        assert o.user("dry") is None
        assert not o.violations(), o.violations()

        # request-model violations: Outscale's 400, and the log says so
        o.clear_requests()
        call(o, "CreateUser", {"UserName": "x", "Bogus": 1}, 400, "InvalidParameter", "3001")
        call(o, "CreateUser", {"UserName": 5}, 400, "InvalidParameterValue", "4108")
        call(o, "CreateUser", {}, 400, "MissingParameter", "7000")
        call(o, "ReadUsers", {"Filters": {"UserNames": ["x"]}}, 400, "InvalidParameter")
        call(o, "ReadUsers", {"FirstItem": True}, 400, "InvalidParameterValue")
        call(o, "ReadPolicyVersions", {"PolicyOrn": "orn:ows:idauth::%s:policy/p2" % o.account_id,
                                       "DryRun": True}, 400, "InvalidParameter")
        st, text, _h = o.send("ReadUsers", b"{}", content_type="text/plain")
        assert st == 400 and json.loads(text)["Errors"][0]["Type"] == "InvalidParameterValue"
        st, text, _h = o.send("ReadUsers", b"[]")
        assert st == 400
        st, text, _h = o.send("NoSuchAction", b"{}")
        assert st == 400 and json.loads(text)["Errors"][0]["Type"] == "InvalidAction"
        viol = o.violations()
        assert len(viol) == 9, [(r["action"], r["violations"]) for r in viol]
        assert all(r["mutating"] == (r["action"] == "CreateUser") for r in viol
                   if r["action"] != "NoSuchAction")
        note("model: unknown parameter, wrong type, missing parameter, bad Content-Type and "
             "body -> 400, %d violations logged" % len(viol))

        # eventual consistency
        o.clear_requests()
        o.set_user_lag(2)
        call(o, "CreateUser", {"UserName": "dave"})
        for _ in range(2):
            call(o, "ReadAccessKeys", {"UserName": "dave"}, 400, "InvalidResource", "5075")
        call(o, "ReadAccessKeys", {"UserName": "dave"})
        o.set_user_lag(0)
        o.set_link_lag(1)
        porn = "orn:ows:idauth::%s:policy/p2" % o.account_id
        call(o, "LinkPolicy", {"PolicyOrn": porn, "UserName": "dave"})
        assert call(o, "ReadLinkedPolicies", {"UserName": "dave"})["Policies"] == []
        assert [x["Orn"] for x in call(o, "ReadLinkedPolicies", {"UserName": "dave"})[
            "Policies"]] == [porn]
        call(o, "UnlinkPolicy", {"PolicyOrn": porn, "UserName": "dave"})
        call(o, "DeleteUser", {"UserName": "dave"}, 409, "ResourceConflict")
        call(o, "DeleteUser", {"UserName": "dave"})
        o.set_link_lag(0)
        assert not o.violations(), o.violations()
        note("lag: new user InvalidResource x2, new link hidden x1, unlink conflict x1")
        assert_no_secrets(o)


# ==============================================================================================
# 2. the signature against curl and botocore

def _botocore_signer():
    from botocore.auth import SigV4Auth
    from botocore.credentials import Credentials

    class OscSigV4Auth(SigV4Auth):
        """botocore's SigV4 algorithm with Outscale's constants (protocols.md 4.1)."""
        fixed_timestamp = None

        def scope(self, request):
            return "/".join([self.credentials.access_key, self.credential_scope(request)])

        def credential_scope(self, request):
            return "/".join([request.context["timestamp"][0:8], self._region_name,
                             self._service_name, "osc4_request"])

        def string_to_sign(self, request, canonical_request):
            import hashlib
            return "\n".join(["OSC4-HMAC-SHA256", request.context["timestamp"],
                              self.credential_scope(request),
                              hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()])

        def signature(self, string_to_sign, request):
            k = self._sign(("OSC4" + self.credentials.secret_key).encode(),
                           request.context["timestamp"][0:8])
            k = self._sign(k, self._region_name)
            k = self._sign(k, self._service_name)
            k = self._sign(k, "osc4_request")
            return self._sign(k, string_to_sign, hex=True)

        def _set_necessary_date_headers(self, request):
            if "X-Osc-Date" in request.headers:
                del request.headers["X-Osc-Date"]
            request.headers["X-Osc-Date"] = request.context["timestamp"]

        def _inject_signature_to_request(self, request, signature):
            hs = self.headers_to_sign(request)
            request.headers["Authorization"] = (
                "OSC4-HMAC-SHA256 Credential=%s, SignedHeaders=%s, Signature=%s"
                % (self.scope(request), self.signed_headers(hs), signature))
            return request

        def add_auth(self, request):
            # SigV4Auth.add_auth with a clock the test can fix
            request.context["timestamp"] = self.fixed_timestamp or \
                datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            self._modify_request_before_signing(request)
            creq = self.canonical_request(request)
            sts = self.string_to_sign(request, creq)
            self._inject_signature_to_request(request, self.signature(sts, request))

    def sign(url, body, ak, sk, region, timestamp=None):
        from botocore.awsrequest import AWSRequest
        req = AWSRequest(method="POST", url=url, data=body,
                         headers={"Content-Type": "application/json"})
        auth = OscSigV4Auth(Credentials(ak, sk), "api", region)
        auth.fixed_timestamp = timestamp
        auth.add_auth(req)
        return req.prepare()

    return sign


def _send_prepared(port, prepared):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        path = prepared.url.split(str(port), 1)[1]
        conn.putrequest("POST", path, skip_host=True, skip_accept_encoding=True)
        if "Host" not in prepared.headers:   # botocore signs the URL's host; HTTP sends it
            conn.putheader("Host", "127.0.0.1:%d" % port)
        for k, v in prepared.headers.items():
            conn.putheader(k, v)
        body = prepared.body or b""
        if "Content-Length" not in prepared.headers:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        conn.close()


def _curl(o, tmp, action, body, date=None, url=None):
    """curl --aws-sigv4 (the credentials in a -K file, not on the command line) -> (status,
    parsed answer or text, {request header name (lower): value})."""
    cfg = os.path.join(tmp, "curl.cfg")
    fd = os.open(cfg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write('user = "%s:%s"\n' % (o.root_access_key, o.root_secret_key))
    cmd = [CURL, "-sS", "-v", "-K", cfg, "--aws-sigv4", "osc:osc:%s:api" % o.region,
           "-H", "Content-Type: application/json", "--data-binary", body,
           "-w", "\n%{http_code}", (url or o.url) + "/api/v1/" + action]
    if date:
        cmd[-1:-1] = ["-H", "X-Osc-Date: " + date]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    out, _, code = p.stdout.rpartition("\n")
    sent = {}
    for line in p.stderr.splitlines():
        if line.startswith("> ") and ":" in line:
            k, _, v = line[2:].partition(":")
            sent.setdefault(k.strip().lower(), v.strip())
    try:
        doc = json.loads(out)
    except ValueError:
        doc = out
    return int(code), doc, sent


def _auth_parts(value):
    m = re.fullmatch(r"OSC4-HMAC-SHA256 Credential=([^,]+), SignedHeaders=([^,]+), "
                     r"Signature=([0-9a-f]{64})", value)
    assert m, value
    return m.groups()


class _Capture(http.server.BaseHTTPRequestHandler):
    """Answers {} to anything and keeps the request headers (for curl with a fixed date)."""
    seen = []

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        _Capture.seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *a):
        pass


def test_2_signature():
    bsign = _botocore_signer()
    tmp = tempfile.mkdtemp(prefix="cg-osc-sig-")
    try:
        with osc_harness.osc() as o:
            SECRETS.add(o.root_secret_key)
            host = "127.0.0.1:%d" % o.port
            # (a) curl, an independent signer
            st, doc, sent = _curl(o, tmp, "ReadAccounts", "{}")
            assert st == 200 and doc["Accounts"][0]["AccountId"] == o.account_id, (st, doc)
            cred, signed, sig = _auth_parts(sent["authorization"])
            assert signed == "content-type;host;x-osc-date", signed
            # (c) the harness's signer agrees with curl's for curl's request and timestamp
            mine, _n, _s = osc_harness.signature("POST", "/api/v1/ReadAccounts", host, b"{}",
                                                 o.root_secret_key, o.region,
                                                 sent["x-osc-date"])
            assert mine == sig, (mine, sig)
            st, doc, sent = _curl(o, tmp, "CreateUser", '{"UserName": "made-by-curl"}')
            assert st == 200 and doc["User"]["UserName"] == "made-by-curl", (st, doc)
            assert o.user("made-by-curl")
            last = [r for r in o.requests() if r["api"] == "osc"][-1]
            assert (last["principal"], last["auth"], last["mutating"]) == ("root", "ok", True)
            note("curl --aws-sigv4 osc:osc:%s:api: ReadAccounts and CreateUser accepted; "
                 "harness signature == curl's" % o.region)

            # (b) botocore's SigV4Auth with Outscale's constants
            body = b'{"UserName": "made-by-botocore"}'
            req = bsign(o.url + "/api/v1/CreateUser", body, o.root_access_key,
                        o.root_secret_key, o.region)
            assert req.headers["Authorization"].startswith("OSC4-HMAC-SHA256 Credential=")
            st, doc = _send_prepared(o.port, req)
            assert st == 200 and doc["User"]["UserName"] == "made-by-botocore", (st, doc)
            # (c) one request, one fixed timestamp: harness == botocore == curl
            ts = osc_harness.osc_date()
            req = bsign(o.url + "/api/v1/ReadAccounts", b"{}", o.root_access_key,
                        o.root_secret_key, o.region, timestamp=ts)
            _c, bsigned, bsig = _auth_parts(req.headers["Authorization"])
            mine, names, _s = osc_harness.signature("POST", "/api/v1/ReadAccounts", host,
                                                    b"{}", o.root_secret_key, o.region, ts)
            assert (bsigned, bsig) == (names, mine), (bsigned, bsig, names, mine)
            st, doc = _send_prepared(o.port, req)
            assert st == 200, (st, doc)
            srv = http.server.HTTPServer(("127.0.0.1", 0), _Capture)
            th = threading.Thread(target=srv.handle_request, daemon=True)
            th.start()
            cap_url = "http://127.0.0.1:%d" % srv.server_address[1]
            cst, _d, _sent = _curl(o, tmp, "ReadAccounts", "{}", date=ts, url=cap_url)
            th.join(10)
            srv.server_close()
            assert cst == 200 and _Capture.seen
            _c, csigned, csig = _auth_parts(_Capture.seen[-1]["authorization"])
            cap_host = "127.0.0.1:%d" % srv.server_address[1]
            mine2, _n, _s = osc_harness.signature("POST", "/api/v1/ReadAccounts", cap_host,
                                                  b"{}", o.root_secret_key, o.region, ts)
            req2 = bsign(cap_url + "/api/v1/ReadAccounts", b"{}", o.root_access_key,
                         o.root_secret_key, o.region, timestamp=ts)
            _c, _bs, bsig2 = _auth_parts(req2.headers["Authorization"])
            assert csig == mine2 == bsig2, (csig, mine2, bsig2)
            note("botocore SigV4Auth (OSC4 constants) accepted; harness == botocore == curl "
                 "at %s" % ts)

            # (d) tampering: 401 AccessDenied, a good call between each (no lockout)
            cases = [
                ("changed body", dict(body=b'{"DryRun": true}', sign_body=b"{}"),
                 "bad-signature"),
                ("wrong secret", dict(access_key=o.root_access_key, secret_key="Z" * 40),
                 "bad-signature"),
                ("wrong region", dict(region="us-east-2"), "bad-region"),
                ("date 6 minutes old", dict(timestamp=time.time() - 360), "expired"),
                ("x-osc-date unsigned", dict(signed_headers=("content-type", "host")),
                 "unsigned-header"),
                ("no Authorization", dict(headers={"Authorization": None}), "missing"),
                ("unknown key", dict(access_key="A" * 20, secret_key="B" * 40), "unknown-key"),
            ]
            for label, kw, auth in cases:
                kw.setdefault("body", b"{}")
                st, text, _h = o.send("ReadAccounts", **kw)
                d = json.loads(text)
                assert st == 401, (label, st, text)
                assert not osc_model.check_response("ReadAccounts", d, st), d
                assert d["Errors"][0]["Type"] == "AccessDenied" and \
                    d["Errors"][0]["Code"] == "1", (label, d)
                last = [r for r in o.requests() if r["api"] == "osc"][-1]
                assert last["auth"] == auth and last["principal"] is None, (label, last)
                call(o, "ReadAccounts")
            note("tampering refused with 401: " + ", ".join(c[0] for c in cases))

            # (e) four bad signatures in a row lock the key
            ak, sk = o.add_access_key(None)
            SECRETS.add(sk)
            o.set_lockout_seconds(1.5)
            for i in range(4):
                st, text, _h = o.send("ReadAccounts", access_key=ak, secret_key="Q" * 40)
                assert st == 401 and json.loads(text)["Errors"][0]["Code"] == "1", text
            t_lock = time.time()
            st, text, _h = o.send("ReadAccounts", access_key=ak, secret_key=sk)
            assert st == 401 and json.loads(text)["Errors"][0]["Code"] == "13", text
            log = [r for r in o.requests() if r.get("access_key") == ak]
            assert [r["auth"] for r in log] == ["bad-signature"] * 4 + ["locked"], log
            assert log[3].get("lockout"), log[3]
            assert "locked" in o.log()
            call(o, "ReadAccounts")  # other keys are not locked
            time.sleep(max(0.0, 1.6 - (time.time() - t_lock)))
            st, text, _h = o.send("ReadAccounts", access_key=ak, secret_key=sk)
            assert st == 200, text
            note("4 bad signatures lock the key: a good signature gets 401 (code 13) until "
                 "the lockout (1.5 s here) passes, then 200")
            assert_no_secrets(o)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ==============================================================================================
# 3. a handed-over user key

def test_3_user_key():
    with osc_harness.osc() as o:
        call(o, "CreateUser", {"UserName": "app"})
        orn = call(o, "CreatePolicy", {"PolicyName": "vms", "Document": json.dumps(
            POLICY_READ_VMS)})["Policy"]["Orn"]
        call(o, "LinkPolicy", {"PolicyOrn": orn, "UserName": "app"})
        k = call(o, "CreateAccessKey", {"UserName": "app"})["AccessKey"]
        ak, sk = k["AccessKeyId"], k["SecretKey"]
        SECRETS.add(sk)
        assert call(o, "ReadVms", access_key=ak, secret_key=sk)["Vms"] == []
        last = [r for r in o.requests() if r["api"] == "osc"][-1]
        assert last["principal"] == "user:app" and last["access_key"] == ak
        for action in ("ReadUsers", "CreateUser", "ReadAccessKeys"):
            d = call(o, action, {"UserName": "x"} if action == "CreateUser" else {}, 403,
                     "AccessDenied", "4", access_key=ak, secret_key=sk)
            assert "api:%s" % action in d["Errors"][0]["Details"]
        note("user key: ReadVms 200 (linked policy allows api:ReadVms), others 403")
        o.set_policy_document("vms", {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "api:read*", "Resource": "*"}]})
        call(o, "ReadUsers", access_key=ak, secret_key=sk)
        keys = call(o, "ReadAccessKeys", access_key=ak, secret_key=sk)["AccessKeys"]
        assert [x["AccessKeyId"] for x in keys] == [ak]   # its own keys by default
        o.set_policy_document("vms", {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["api:Read*"], "Resource": ["*"]},
            {"Effect": "Deny", "Action": ["api:ReadUsers"], "Resource": ["*"]}]})
        call(o, "ReadUsers", None, 403, "AccessDenied", access_key=ak, secret_key=sk)
        call(o, "ReadVms", access_key=ak, secret_key=sk)
        note("wildcards ('api:read*') and an explicit Deny follow the default version")

        call(o, "UpdateAccessKey", {"UserName": "app", "AccessKeyId": ak, "State": "INACTIVE"})
        call(o, "ReadVms", None, 401, "AccessDenied", access_key=ak, secret_key=sk)
        assert [r for r in o.requests() if r["api"] == "osc"][-1]["auth"] == "inactive"
        o.set_key_state("app", ak, "ACTIVE")
        call(o, "ReadVms", access_key=ak, secret_key=sk)
        o.set_key_expiration(ak, iso_in(-60))
        call(o, "ReadVms", None, 401, "AccessDenied", access_key=ak, secret_key=sk)
        assert [r for r in o.requests() if r["api"] == "osc"][-1]["auth"] == "expired-key"
        o.set_key_expiration(ak, None)
        call(o, "ReadVms", access_key=ak, secret_key=sk)
        k2 = call(o, "CreateAccessKey", {"UserName": "app", "ExpirationDate": iso_in(600)})[
            "AccessKey"]
        SECRETS.add(k2["SecretKey"])
        call(o, "ReadVms", access_key=k2["AccessKeyId"], secret_key=k2["SecretKey"])
        o.set_key_creation(k2["AccessKeyId"], "2020-01-01T00:00:00Z")
        assert [x for x in o.access_keys("app") if x["AccessKeyId"] == k2["AccessKeyId"]][0][
            "CreationDate"].startswith("2020-01-01")
        call(o, "UnlinkPolicy", {"PolicyOrn": orn, "UserName": "app"})
        call(o, "ReadVms", None, 403, "AccessDenied", access_key=ak, secret_key=sk)
        assert not o.violations(), o.violations()
        note("INACTIVE and expired keys: 401; unlinked: 403")
        assert_no_secrets(o)


# ==============================================================================================
# 4. faults, seen by a plain client

def _plain(o, action, body=b"{}"):
    """The harness signer over a raw http.client exchange -> (status, headers, raw body)."""
    h = osc_harness.sign("POST", "/api/v1/" + action, "127.0.0.1:%d" % o.port, body,
                         o.root_access_key, o.root_secret_key, o.region,
                         osc_harness.osc_date())
    conn = http.client.HTTPConnection("127.0.0.1", o.port, timeout=10)
    try:
        conn.putrequest("POST", "/api/v1/" + action, skip_host=True, skip_accept_encoding=True)
        for k, v in h.items():
            conn.putheader(k, v)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def test_4_faults():
    with osc_harness.osc() as o:
        o.inject(action="ReadUsers", kind="status", status=500, code="2000",
                 type="InternalError", details="boom", retry_after=3)
        st, h, raw = _plain(o, "ReadUsers")
        d = json.loads(raw)
        assert st == 500 and h.get("retry-after") == "3" and d["Errors"][0] == {
            "Code": "2000", "Type": "InternalError", "Details": "boom"}, (st, h, d)
        assert _plain(o, "ReadUsers")[0] == 200   # count 1: the next one is served

        o.inject(action="Read.*", kind="throttle", count=2)
        for _ in range(2):
            st, h, raw = _plain(o, "ReadAccounts")
            d = json.loads(raw)
            assert st == 503 and d["Errors"][0]["Type"] == "RequestLimitExceeded", (st, d)
        assert _plain(o, "ReadAccounts")[0] == 200

        o.inject(action="ReadAccounts", kind="reset")
        try:
            _plain(o, "ReadAccounts")
            raise AssertionError("no reset")
        except (ConnectionError, http.client.HTTPException):
            pass

        o.inject(action="CreateUser", kind="truncated")
        try:
            st, h, raw = _plain(o, "CreateUser", b'{"UserName": "half"}')
            json.loads(raw)
            raise AssertionError("truncated body parsed: %r" % raw)
        except (ConnectionError, http.client.HTTPException, ValueError):
            pass
        assert o.user("half"), "truncated runs the request first"

        o.inject(action="ReadUsers", kind="invalid-json")
        st, h, raw = _plain(o, "ReadUsers")
        assert st == 200
        try:
            json.loads(raw)
            raise AssertionError("invalid-json parsed")
        except ValueError:
            pass

        o.inject(action="ReadUsers", kind="slow", delay_ms=300)
        t0 = time.time()
        st, h, raw = _plain(o, "ReadUsers")
        assert st == 200 and time.time() - t0 >= 0.3

        o.inject(action="CreateUser", kind="status", status=503, execute=True)
        st, h, raw = _plain(o, "CreateUser", b'{"UserName": "executed"}')
        assert st == 503 and o.user("executed")

        o.set_delay(200)
        t0 = time.time()
        assert _plain(o, "ReadAccounts")[0] == 200 and time.time() - t0 >= 0.2
        o.set_delay(0)

        faults = [r["fault"] for r in o.requests() if r["api"] == "osc" and r["fault"]]
        assert faults == ["status", "throttle", "throttle", "reset", "truncated",
                          "invalid-json", "slow", "status"], faults
        assert all(not r["mutating"] for r in o.requests() if r["api"] == "control")
        assert not o.violations()
        note("faults: status (Retry-After), throttle x2, reset, truncated (executed), "
             "invalid-json, slow, status after execute, global delay")
        assert_no_secrets(o)


# ==============================================================================================
# 5. secrets never leak

def test_5_no_secrets():
    with osc_harness.osc(region="cloudgouv-eu-west-1", verbose=True) as o:
        SECRETS.add(o.root_secret_key)
        assert o.region == o.env()["OSC_REGION"] == "cloudgouv-eu-west-1"
        call(o, "ReadAccounts", None, 401, "AccessDenied", region="eu-west-2")
        call(o, "CreateUser", {"UserName": "s"})
        for _ in range(2):
            SECRETS.add(call(o, "CreateAccessKey", {"UserName": "s"})["AccessKey"]["SecretKey"])
        SECRETS.add(call(o, "CreateAccessKey")["AccessKey"]["SecretKey"])
        SECRETS.add(o.add_access_key("s")[1])
        SECRETS.add(o.add_access_key(None, expiration=iso_in(3600))[1])
        # a client that puts a secret where it does not belong: redacted in the log
        call(o, "CreateUser", {"UserName": "t", "SecretKey": o.root_secret_key}, 400,
             "InvalidParameter")
        o.inject(action="CreateAccessKey", kind="truncated")
        try:
            _plain(o, "CreateAccessKey")
        except (ConnectionError, http.client.HTTPException):
            pass
        for k in o.access_keys("s") + o.access_keys(None):
            assert "SecretKey" not in k, k
        assert '"SecretKey": "<redacted>"' in json.dumps(o.requests())
        assert "osc_api: {" in o.log()  # verbose: every request went to stderr
        assert_no_secrets(o)
        note("%d secret keys: none in requests(), state() or the emulator's output "
             "(verbose)" % len(SECRETS))


if __name__ == "__main__":
    missing = []
    if not CURL:
        missing.append("curl")
    else:
        p = subprocess.run([CURL, "--help", "all"], capture_output=True, text=True)
        if "--aws-sigv4" not in p.stdout:
            missing.append("curl with --aws-sigv4 (7.75+)")
    try:
        __import__("botocore.auth")
    except ImportError:
        missing.append("python3-botocore (under %s)" % sys.executable)
    if missing:
        msg = " and ".join(missing) + " missing"
        if os.environ.get("CI") == "true":
            print("FAIL: %s, and CI=true" % msg)
            print("0 passed, 1 failed")
            sys.exit(1)
        print("SKIP: %s" % msg)
        sys.exit(77)
    t0 = time.time()
    rc = harness.run_tests(globals())
    print("osc emulator checks took %.1f s" % (time.time() - t0))
    sys.exit(rc)
