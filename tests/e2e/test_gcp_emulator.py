#!/usr/bin/env python3
"""The GCP emulator (tests/emulators/gcp_api.py) checked against the real gcloud CLI and
against GCP's documented behaviour.

State is made through the emulator's API with plain HTTP and read back with gcloud 528
(describe, get-iam-policy, roles describe, keys list, services list); gcloud's own writes
(roles create/update, service-accounts create, keys create, add-iam-policy-binding,
services enable) must pass the request validation (gcp_model.py: gcloud's generated
clients) with no violation. JWTs for the token endpoint are signed with the openssl CLI, an
implementation independent of the emulator's.

Exit 77 (skipped) when gcloud or its bundled Python is missing, unless CI=true.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

SRC = os.environ.get("CG_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "emulators"))
import gcp_harness  # noqa: E402
import harness  # noqa: E402

P = "demo-project"
NUM = "123456789012"
ALL = ("serviceusage.googleapis.com", "iam.googleapis.com",
       "cloudresourcemanager.googleapis.com")
SA_SUFFIX = "@%s.iam.gserviceaccount.com" % P


def ok(resp, status=200):
    code, doc, _h = resp
    assert code == status, "expected %d, got %d: %s" % (status, code, json.dumps(doc)[:1500])
    return doc


def err(resp, status, rpc):
    code, doc, _h = resp
    assert code == status, "expected %d, got %d: %s" % (status, code, json.dumps(doc)[:1500])
    assert isinstance(doc, dict) and doc.get("error", {}).get("status") == rpc, doc
    assert doc["error"]["code"] == status, doc
    return doc["error"]


def create_sa(g, aid, display=""):
    return ok(g.call("POST", "/iam/v1/projects/%s/serviceAccounts" % P,
                     {"accountId": aid, "serviceAccount": {"displayName": display}}))


def get_policy(g, version=3):
    return ok(g.call("POST", "/crm/v1/projects/%s:getIamPolicy" % P,
                     {"options": {"requestedPolicyVersion": version}}))


def set_policy(g, policy):
    return g.call("POST", "/crm/v1/projects/%s:setIamPolicy" % P,
                  {"policy": policy, "updateMask": "bindings,etag"})


def with_binding(policy, role, member):
    pol = json.loads(json.dumps(policy))
    for b in pol.setdefault("bindings", []):
        if b["role"] == role and "condition" not in b:
            if member not in b["members"]:
                b["members"].append(member)
            return pol
    pol["bindings"].append({"role": role, "members": [member]})
    return pol


def raises(fn):
    try:
        fn()
    except Exception:  # connection reset, incomplete read: whatever the client sees
        return True
    return False


def assert_no_violations(g):
    bad = g.violations()
    assert not bad, "requests the generated clients refuse: %s" % json.dumps(bad, indent=1)


# -- JWT, signed with the openssl CLI ---------------------------------------------------------

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_jwt(key_file, claims=None, header=None, pad=False, corrupt=False):
    now = int(time.time())
    h = {"alg": "RS256", "typ": "JWT", "kid": key_file["private_key_id"]}
    h.update(header or {})
    c = {"iss": key_file["client_email"], "aud": key_file["token_uri"],
         "scope": "https://www.googleapis.com/auth/cloud-platform", "iat": now,
         "exp": now + 3600}
    c.update(claims or {})
    c = {k: v for k, v in c.items() if v is not None}
    enc = (lambda b: base64.urlsafe_b64encode(b).decode()) if pad else b64url
    signing_input = enc(json.dumps(h).encode()) + "." + enc(json.dumps(c).encode())
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
        f.write(key_file["private_key"])
        pem = f.name
    try:
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", pem],
                             input=signing_input.encode(), capture_output=True,
                             check=True).stdout
    finally:
        os.unlink(pem)
    if corrupt:
        sig = bytes([sig[0] ^ 1]) + sig[1:]
    return signing_input + "." + enc(sig)


GOOGLE_AUTH_CHECK = """
import sys
import google.auth.transport.requests as tr
from google.auth import compute_engine
from google.oauth2 import service_account
req = tr.Request()
c = service_account.Credentials.from_service_account_file(
    sys.argv[1], scopes=["https://www.googleapis.com/auth/cloud-platform"])
c.refresh(req)
print("sa-ok" if c.token and c.expiry else "sa-bad")
m = compute_engine.Credentials()
m.refresh(req)
print("md-ok" if m.token else "md-bad", m.service_account_email)
"""


def token_request(g, assertion, grant="urn:ietf:params:oauth:grant-type:jwt-bearer"):
    form = urllib.parse.urlencode({"grant_type": grant, "assertion": assertion})
    return g.call("POST", "/token", raw_body=form, token="",
                  headers={"Content-Type": "application/x-www-form-urlencoded"})


def exchange(g, key_file, **kw):
    doc = ok(token_request(g, sign_jwt(key_file, **kw)))
    assert doc["token_type"] == "Bearer" and doc["expires_in"] > 3000, doc
    return doc["access_token"]


# ==============================================================================================

def test_gcloud_against_emulator():
    """State made through the API, read by gcloud; gcloud's writes pass the validation."""
    with gcp_harness.gcp(enabled=ALL) as g:
        sa = create_sa(g, "reader-sa1", "Reader one")
        email = "reader-sa1" + SA_SUFFIX
        ok(g.call("POST", "/iam/v1/projects/%s/roles" % P, {
            "roleId": "cgReader", "role": {
                "title": "cloudgrant reader", "description": "made by the test",
                "includedPermissions": ["container.clusters.get", "compute.instances.list",
                                        "compute.instances.get"], "stage": "GA"}}))
        key = ok(g.call("POST", "/iam/v1/projects/%s/serviceAccounts/%s/keys" % (P, email),
                        {"privateKeyType": "TYPE_GOOGLE_CREDENTIALS_FILE",
                         "keyAlgorithm": "KEY_ALG_RSA_2048"}))
        key_id = key["name"].rsplit("/", 1)[1]

        got = g.gcloud("iam", "service-accounts", "describe", email, "--project", P)
        assert got["email"] == email and got["uniqueId"] == sa["uniqueId"], got
        assert got["displayName"] == "Reader one" and got["projectId"] == P, got
        assert got["name"] == "projects/%s/serviceAccounts/%s" % (P, email), got

        pol = g.gcloud("projects", "get-iam-policy", P)
        assert pol["version"] == 3, pol
        cond = [b for b in pol["bindings"] if b.get("condition")]
        assert cond and cond[0]["condition"]["title"] == "until-2030", pol
        owners = [b for b in pol["bindings"] if b["role"] == "roles/owner"][0]["members"]
        assert "serviceAccount:" + g.admin_email in owners, pol

        role = g.gcloud("iam", "roles", "describe", "--project", P, "cgReader")
        assert role["name"] == "projects/%s/roles/cgReader" % P, role
        assert role["includedPermissions"] == ["compute.instances.get",
                                               "compute.instances.list",
                                               "container.clusters.get"], role
        assert role["stage"] == "GA" and role["title"] == "cloudgrant reader", role

        keys = g.gcloud("iam", "service-accounts", "keys", "list", "--iam-account", email)
        by_type = {}
        for k in keys:
            by_type.setdefault(k["keyType"], []).append(k["name"].rsplit("/", 1)[1])
        assert by_type.get("USER_MANAGED") == [key_id], keys
        assert len(by_type.get("SYSTEM_MANAGED", [])) == 1, keys
        assert all(k["validBeforeTime"].endswith("Z") for k in keys), keys
        user = [k for k in keys if k["keyType"] == "USER_MANAGED"][0]
        assert user["validBeforeTime"] == "9999-12-31T23:59:59Z", user

        enabled = g.gcloud("services", "list", "--enabled", "--project", P)
        assert sorted(s["config"]["name"] for s in enabled) == sorted(ALL), enabled
        assert all(s["name"].startswith("projects/%s/services/" % NUM) for s in enabled)

        # gcloud's own writes
        g.clear_requests()
        made = g.gcloud("iam", "roles", "create", "cgWriter", "--project", P, "--title",
                        "cloudgrant writer", "--permissions",
                        "container.clusters.update,container.clusters.get", "--stage", "GA")
        assert made["includedPermissions"] == ["container.clusters.get",
                                               "container.clusters.update"], made
        upd = g.gcloud("iam", "roles", "update", "cgWriter", "--project", P,
                       "--add-permissions", "compute.instances.get")
        assert "compute.instances.get" in upd["includedPermissions"], upd
        assert upd["etag"] != made["etag"], upd
        new = g.gcloud("iam", "service-accounts", "create", "writer-sa1", "--project", P,
                       "--display-name", "Writer one", "--description", "by gcloud")
        assert new["email"] == "writer-sa1" + SA_SUFFIX and new["description"] == "by gcloud"
        with tempfile.TemporaryDirectory() as td:
            out = os.path.join(td, "key.json")
            g.gcloud("iam", "service-accounts", "keys", "create", out, "--iam-account",
                     new["email"])
            with open(out) as f:
                kf = json.load(f)
        assert kf["type"] == "service_account" and kf["client_email"] == new["email"], kf
        assert kf["token_uri"] == g.url + "/token", kf
        # the key gcloud received can be exchanged for a token
        tok = exchange(g, kf)
        ok(g.call("GET", "/crm/v1/projects/" + P, token=tok))
        after = g.gcloud("projects", "add-iam-policy-binding", P, "--member",
                         "serviceAccount:" + new["email"], "--role",
                         "projects/%s/roles/cgWriter" % P, "--condition=None")
        roles = {b["role"]: b for b in after["bindings"]}
        assert "serviceAccount:" + new["email"] in \
            roles["projects/%s/roles/cgWriter" % P]["members"], after
        assert roles["roles/viewer"].get("condition", {}).get("title") == "until-2030", after
        assert "user:dev@example.com" in roles["roles/editor"]["members"], after
        g.gcloud("services", "enable", "container.googleapis.com", "--project", P)
        assert g.state()["services"]["container.googleapis.com"] == "ENABLED"
        reqs = g.requests()
        ids = {r["method_id"] for r in reqs}
        for mid in ("iam.projects.roles.create", "iam.projects.roles.patch",
                    "iam.projects.serviceAccounts.create",
                    "iam.projects.serviceAccounts.keys.create",
                    "cloudresourcemanager.projects.setIamPolicy",
                    "serviceusage.services.enable", "serviceusage.operations.get"):
            assert mid in ids, (mid, sorted(i for i in ids if i))
        assert all(r["status"] == 200 for r in reqs if r["api"] != "oauth2"), \
            [(r["method_id"], r["status"]) for r in reqs]
        assert_no_violations(g)


def test_validator_catches_bad_requests():
    with gcp_harness.gcp(enabled=ALL) as g:
        e = err(g.call("POST", "/iam/v1/projects/%s/serviceAccounts" % P,
                       {"acountId": "typo-sa1"}), 400, "INVALID_ARGUMENT")
        assert e["message"] == ('Invalid JSON payload received. Unknown name "acountId": '
                                'Cannot find field.'), e
        assert e["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest", e
        e = err(g.call("POST", "/crm/v1/projects/%s:setIamPolicy" % P, {"policy": {
            "bindings": [{"role": "roles/viewer", "members": "user:a@example.com"}]}}),
            400, "INVALID_ARGUMENT")
        assert "policy.bindings[0].members" in e["message"], e
        err(g.call("GET", "/iam/v1/projects/%s/serviceAccounts" % P,
                   query={"pageSize": "10", "page_size_typo": "1"}), 400, "INVALID_ARGUMENT")
        code, body, _h = g.call("GET", "/iam/v1/projects/%s/nothing" % P)
        assert code == 404 and "was not found on this server" in body, (code, body)
        bad = g.violations()
        assert len(bad) == 4, json.dumps(bad, indent=1)
        assert any('Unknown name "acountId"' in v for v in bad[0]["violations"]), bad[0]
        assert bad[0]["method_id"] == "iam.projects.serviceAccounts.create", bad[0]
        assert "typo-sa1" + SA_SUFFIX not in [a["email"] for a in
                                              g.state()["service_accounts"]]
        # snake_case proto names are accepted, as by Google's JSON parser
        ok(g.call("POST", "/iam/v1/projects/%s/serviceAccounts" % P,
                  {"account_id": "snake-sa1"}))
        assert len(g.violations()) == 4


def test_token_endpoint_and_auth():
    with gcp_harness.gcp(enabled=ALL) as g:
        kf = g.admin_key
        assert kf["type"] == "service_account" and kf["token_uri"] == g.url + "/token"
        assert kf["private_key"].startswith("-----BEGIN PRIVATE KEY-----\n"), "PKCS#8 PEM"
        for k in ("project_id", "private_key_id", "client_email", "client_id", "auth_uri",
                  "auth_provider_x509_cert_url", "client_x509_cert_url", "universe_domain"):
            assert kf.get(k), k
        assert len(kf["private_key_id"]) == 40 and len(kf["client_id"]) == 21, kf["client_id"]
        tok = exchange(g, kf)
        proj = ok(g.call("GET", "/crm/v1/projects/" + P, token=tok))
        assert proj["projectNumber"] == NUM and proj["lifecycleState"] == "ACTIVE", proj

        def grant_error(resp):
            code, doc, _h = resp
            assert code == 400, (code, doc)
            return doc["error"], doc["error_description"]

        assert grant_error(token_request(g, sign_jwt(kf, corrupt=True))) == \
            ("invalid_grant", "Invalid JWT Signature.")
        now = int(time.time())
        e, d = grant_error(token_request(g, sign_jwt(kf, claims={"iat": now - 4000,
                                                                 "exp": now - 400})))
        assert e == "invalid_grant" and d.startswith("Invalid JWT: Token must be a short-lived "
                                                     "token (60 minutes)"), d
        e, d = grant_error(token_request(g, sign_jwt(kf, claims={"exp": now + 7200})))
        assert "short-lived" in d, d
        e, d = grant_error(token_request(g, sign_jwt(
            kf, claims={"aud": "https://example.com/token"})))
        assert e == "invalid_grant" and "audience" in d, d
        # Google's token URL as audience (what google-auth signs) is accepted
        exchange(g, kf, claims={"aud": "https://oauth2.googleapis.com/token"})
        assert grant_error(token_request(g, sign_jwt(kf, header={"kid": "0" * 40})))[1] == \
            "Invalid JWT Signature."
        assert grant_error(token_request(g, sign_jwt(kf, pad=True)))[0] == "invalid_grant"
        assert grant_error(token_request(g, sign_jwt(kf, claims={"scope": None})))[0] == \
            "invalid_scope"
        assert grant_error(token_request(g, sign_jwt(kf), grant="client_credentials"))[0] == \
            "unsupported_grant_type"
        # a key made through the API works; deleted, it no longer does
        sa = create_sa(g, "keyed-sa1")
        key = ok(g.call("POST", "/iam/v1/projects/%s/serviceAccounts/%s/keys"
                        % (P, sa["email"]), {}))
        kf2 = json.loads(base64.b64decode(key["privateKeyData"]))
        assert kf2["private_key_id"] == key["name"].rsplit("/", 1)[1], kf2
        tok2 = exchange(g, kf2)
        assert ok(g.call("GET", "/iam/v1/projects/%s/serviceAccounts/%s" % (P, sa["email"]),
                         token=tok2))["email"] == sa["email"]
        ok(g.call("DELETE", "/iam/v1/" + key["name"]))
        assert grant_error(token_request(g, sign_jwt(kf2)))[1] == "Invalid JWT Signature."
        # 401s
        e = err(g.call("GET", "/crm/v1/projects/" + P, token=""), 401, "UNAUTHENTICATED")
        assert e["details"][0]["reason"] == "CREDENTIALS_MISSING", e
        e = err(g.call("GET", "/crm/v1/projects/" + P, token="ya29.bogus"), 401,
                "UNAUTHENTICATED")
        assert e["message"].startswith("Request had invalid authentication credentials."), e
        g.expire_tokens()
        e = err(g.call("GET", "/crm/v1/projects/" + P, token=tok), 401, "UNAUTHENTICATED")
        assert e["details"][0]["reason"] == "ACCESS_TOKEN_EXPIRED", e
        g.set_token_ttl(120)
        doc = ok(token_request(g, sign_jwt(kf)))
        assert doc["expires_in"] <= 120, doc
        # metadata server personality
        code, text, h = g.call("GET", "/computeMetadata/v1/project/project-id", token="",
                               port=g.metadata_port)
        assert code == 403 and h.get("metadata-flavor") == "Google", (code, h)
        md = {"Metadata-Flavor": "Google"}
        for path, want in (("project/project-id", P), ("project/numeric-project-id", NUM),
                           ("instance/zone", "projects/%s/zones/europe-west1-b" % NUM),
                           ("instance/attributes/cluster-name", "gke-demo"),
                           ("instance/attributes/cluster-location", "europe-west1"),
                           ("instance/service-accounts/default/email", g.admin_email)):
            code, text, h = g.call("GET", "/computeMetadata/v1/" + path, token="",
                                   headers=md, port=g.metadata_port)
            assert code == 200 and str(text) == want and h["metadata-flavor"] == "Google", \
                (path, code, text)
        code, mdtok, _h = g.call("GET", "/computeMetadata/v1/instance/service-accounts/"
                                 "default/token", token="", headers=md, port=g.metadata_port)
        assert code == 200 and mdtok["token_type"] == "Bearer", mdtok
        ok(g.call("GET", "/crm/v1/projects/" + P, token=mdtok["access_token"]))
        # google-auth (gcloud's copy) as a second client of /token and the metadata server
        sdk = gcp_harness.GCLOUD_SDK
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "GCE_"))}
        env.update(g.metadata_env())
        env["PYTHONPATH"] = "%s/lib/third_party:%s/lib" % (sdk, sdk)
        p = subprocess.run([gcp_harness.bundled_python(), "-c", GOOGLE_AUTH_CHECK,
                            g.admin_key_file], env=env, capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0, p.stderr[-2000:]
        assert p.stdout.split() == ["sa-ok", "md-ok", g.admin_email], p.stdout
        # never a secret in the log or on stderr
        dump = json.dumps(g.requests()) + g.log()
        for secret in (tok, tok2, mdtok["access_token"], g.token, "PRIVATE KEY",
                       kf["private_key"][40:80]):
            assert secret not in dump, "secret in the log"
        # the padded JWT and the request without Metadata-Flavor are the two violations
        bad = g.violations()
        assert [(r["api"], r["status"]) for r in bad] == [("oauth2", 400),
                                                          ("metadata", 403)], bad


def test_service_usage_enable_and_lag():
    with gcp_harness.gcp(enable_lag=2, op_polls=2) as g:
        e = err(g.call("GET", "/iam/v1/projects/%s/serviceAccounts" % P), 403,
                "PERMISSION_DENIED")
        assert e["message"].startswith("Identity and Access Management (IAM) API has not been "
                                       "used in project %s before or it is disabled." % NUM), e
        info = [d for d in e["details"] if d["@type"].endswith("ErrorInfo")][0]
        assert info["reason"] == "SERVICE_DISABLED" and info["domain"] == "googleapis.com"
        assert info["metadata"]["service"] == "iam.googleapis.com", info
        assert info["metadata"]["consumer"] == "projects/" + NUM, info
        err(g.call("POST", "/crm/v1/projects/%s:getIamPolicy" % P, {}), 403,
            "PERMISSION_DENIED")
        many = ["svc%d.googleapis.com" % i for i in range(21)]
        err(g.call("POST", "/serviceusage/v1/projects/%s/services:batchEnable" % P,
                   {"serviceIds": many}), 400, "INVALID_ARGUMENT")
        e = err(g.call("POST", "/serviceusage/v1/projects/%s/services:batchEnable" % P,
                       {"serviceIds": ["iam.googleapis.com", "nope.googleapis.com"]}), 403,
                "PERMISSION_DENIED")
        assert "nope.googleapis.com" in e["message"], e
        assert g.state()["services"]["iam.googleapis.com"] == "DISABLED"
        op = ok(g.call("POST", "/serviceusage/v1/projects/%s/services:batchEnable" % NUM,
                       {"serviceIds": ["iam.googleapis.com",
                                       "cloudresourcemanager.googleapis.com"]}))
        assert op["name"].startswith("operations/acat.p2-%s-" % NUM) and not op.get("done"), op
        svc = ok(g.call("GET", "/serviceusage/v1/projects/%s/services/iam.googleapis.com" % P))
        assert svc["state"] == "DISABLED" and svc["parent"] == "projects/" + NUM, svc
        first = ok(g.call("GET", "/serviceusage/v1/" + op["name"]))
        assert not first.get("done"), first
        done = ok(g.call("GET", "/serviceusage/v1/" + op["name"]))
        assert done["done"] is True, done
        assert done["response"]["@type"].endswith("BatchEnableServicesResponse"), done
        assert {s["config"]["name"] for s in done["response"]["services"]} == {
            "iam.googleapis.com", "cloudresourcemanager.googleapis.com"}, done
        got = ok(g.call("GET", "/serviceusage/v1/projects/%s/services:batchGet" % P,
                        query={"names": ["projects/%s/services/iam.googleapis.com" % P,
                                         "projects/%s/services/sts.googleapis.com" % P]}))
        assert [s["state"] for s in got["services"]] == ["ENABLED", "DISABLED"], got
        # enabled, but not yet propagated: two more SERVICE_DISABLED answers
        for _ in range(2):
            e = err(g.call("GET", "/iam/v1/projects/%s/serviceAccounts" % P), 403,
                    "PERMISSION_DENIED")
            assert e["details"][0]["reason"] == "SERVICE_DISABLED", e
        ok(g.call("GET", "/iam/v1/projects/%s/serviceAccounts" % P))
        noop = ok(g.call("POST", "/serviceusage/v1/projects/%s/services:batchEnable" % P,
                         {"serviceIds": ["iam.googleapis.com"]}))
        assert noop["name"] == "operations/noop.DONE_OPERATION" and noop["done"] is True, noop
        g.disable_service("iam.googleapis.com")
        err(g.call("GET", "/iam/v1/projects/%s/serviceAccounts" % P), 403, "PERMISSION_DENIED")
        assert_no_violations(g)


def test_service_accounts_and_visibility_lag():
    with gcp_harness.gcp(enabled=ALL) as g:
        for bad in ("short", "Upper-case1", "ends-with-dash-", "x" * 31):
            err(g.call("POST", "/iam/v1/projects/%s/serviceAccounts" % P,
                       {"accountId": bad}), 400, "INVALID_ARGUMENT")
        sa = create_sa(g, "agent-sa1", "Agent")
        assert len(sa["uniqueId"]) == 21 and sa["oauth2ClientId"] == sa["uniqueId"], sa
        assert "disabled" not in sa, sa
        e = err(g.call("POST", "/iam/v1/projects/%s/serviceAccounts" % P,
                       {"accountId": "agent-sa1"}), 409, "ALREADY_EXISTS")
        assert e["message"] == "Service account agent-sa1 already exists within project " \
                               "projects/%s." % P, e
        by_id = ok(g.call("GET", "/iam/v1/projects/%s/serviceAccounts/%s" % (P, sa["uniqueId"])))
        assert by_id["email"] == sa["email"], by_id
        upd = ok(g.call("PATCH", "/iam/v1/projects/%s/serviceAccounts/%s" % (P, sa["email"]),
                        {"serviceAccount": {"description": "managed by cloudgrant"},
                         "updateMask": "description"}))
        assert upd["description"] == "managed by cloudgrant" and upd["displayName"] == "Agent"
        # a new account is not yet visible to setIamPolicy
        g.set_sa_visibility_lag(2)
        late = create_sa(g, "late-sa1")
        member = "serviceAccount:" + late["email"]
        for _ in range(2):
            pol = get_policy(g)
            e = err(set_policy(g, with_binding(pol, "roles/container.developer", member)), 400,
                    "INVALID_ARGUMENT")
            assert e["message"] == "Service account %s does not exist." % late["email"], e
        pol = get_policy(g)
        ok(set_policy(g, with_binding(pol, "roles/container.developer", member)))
        e = err(set_policy(g, with_binding(get_policy(g), "roles/viewer",
                                           "serviceAccount:ghost-sa1" + SA_SUFFIX)), 400,
                "INVALID_ARGUMENT")
        assert "does not exist" in e["message"], e
        # deletion: 404, and the binding names the deleted principal with its uid
        ok(g.call("DELETE", "/iam/v1/projects/%s/serviceAccounts/%s" % (P, late["email"])))
        e = err(g.call("GET", "/iam/v1/projects/%s/serviceAccounts/%s" % (P, late["email"])),
                404, "NOT_FOUND")
        err(g.call("GET", "/iam/v1/projects/-/serviceAccounts/%s" % late["email"]), 403,
            "PERMISSION_DENIED")
        members = [m for b in get_policy(g)["bindings"] for m in b["members"]]
        assert "deleted:serviceAccount:%s?uid=%s" % (late["email"], late["uniqueId"]) \
            in members, members
        assert member not in members
        listed = ok(g.call("GET", "/iam/v1/projects/%s/serviceAccounts" % P,
                           query={"pageSize": "1"}))
        assert len(listed["accounts"]) == 1 and listed.get("nextPageToken"), listed
        nxt = ok(g.call("GET", "/iam/v1/projects/%s/serviceAccounts" % P,
                        query={"pageSize": "1", "pageToken": listed["nextPageToken"]}))
        assert nxt["accounts"][0]["email"] != listed["accounts"][0]["email"]
        # SA IAM policy: the query parameter options.requestedPolicyVersion
        sa_pol = ok(g.call("POST", "/iam/v1/projects/%s/serviceAccounts/%s:getIamPolicy"
                           % (P, sa["email"]), query={"options.requestedPolicyVersion": "3"}))
        assert sa_pol == {"etag": "ACAB"}, sa_pol
        wi = "serviceAccount:%s.svc.id.goog[cloudgrant/agent]" % P
        new_pol = ok(g.call("POST", "/iam/v1/projects/%s/serviceAccounts/%s:setIamPolicy"
                            % (P, sa["email"]), {"policy": {
                                "etag": "ACAB", "bindings": [{
                                    "role": "roles/iam.workloadIdentityUser",
                                    "members": [wi]}]}}))
        assert new_pol["bindings"][0]["members"] == [wi], new_pol
        err(g.call("POST", "/iam/v1/projects/%s/serviceAccounts/%s:setIamPolicy"
                   % (P, sa["email"]), {"policy": {"etag": "ACAB", "bindings": []}}), 409,
            "ABORTED")
        err(g.call("POST", "/iam/v1/projects/%s/serviceAccounts/%s:setIamPolicy"
                   % (P, sa["email"]), {"policy": {"bindings": [{
                       "role": "roles/compute.admin", "members": [wi]}]}}), 400,
            "INVALID_ARGUMENT")
        assert_no_violations(g)


def test_keys_limit_and_org_policy():
    with gcp_harness.gcp(enabled=ALL) as g:
        sa = create_sa(g, "keys-sa1")
        path = "/iam/v1/projects/%s/serviceAccounts/%s/keys" % (P, sa["email"])
        body = {"privateKeyType": "TYPE_GOOGLE_CREDENTIALS_FILE",
                "keyAlgorithm": "KEY_ALG_RSA_2048"}
        first = ok(g.call("POST", path, body))
        assert first["keyType"] == "USER_MANAGED" and first["keyOrigin"] == "GOOGLE_PROVIDED"
        assert first["validBeforeTime"] == "9999-12-31T23:59:59Z", first
        kf = json.loads(base64.b64decode(first["privateKeyData"]))
        assert kf["client_email"] == sa["email"] and kf["client_id"] == sa["uniqueId"], kf
        for _ in range(9):
            ok(g.call("POST", path, body))
        e = err(g.call("POST", path, body), 400, "FAILED_PRECONDITION")
        assert e["message"] == "Precondition check failed.", e
        user = ok(g.call("GET", path, query={"keyTypes": "USER_MANAGED"}))["keys"]
        system = ok(g.call("GET", path, query={"keyTypes": "SYSTEM_MANAGED"}))["keys"]
        assert len(user) == 10 and len(system) == 1, (len(user), len(system))
        assert all("privateKeyData" not in k for k in user + system)
        one = ok(g.call("GET", "/iam/v1/" + first["name"]))
        assert one["name"] == first["name"] and "privateKeyData" not in one, one
        ok(g.call("DELETE", "/iam/v1/" + first["name"]))
        err(g.call("GET", "/iam/v1/" + first["name"]), 404, "NOT_FOUND")
        g.set_org_policy_disable_key_creation(True)
        e = err(g.call("POST", path, body), 400, "FAILED_PRECONDITION")
        assert e["message"] == "Key creation is not allowed on this service account.", e
        v = e["details"][0]
        assert v["@type"] == "type.googleapis.com/google.rpc.PreconditionFailure", v
        assert v["violations"][0]["type"] == "constraints/iam.disableServiceAccountKeyCreation"
        g.set_org_policy_disable_key_creation(False)
        extra = g.create_key(sa["email"])  # someone else's key
        assert extra["key_file"]["private_key_id"] == extra["key_id"]
        assert len(ok(g.call("GET", path, query={"keyTypes": "USER_MANAGED"}))["keys"]) == 10
        assert_no_violations(g)


def test_custom_roles_soft_delete():
    with gcp_harness.gcp(enabled=ALL) as g:
        base = "/iam/v1/projects/%s/roles" % P
        e = err(g.call("POST", base, {"roleId": "a-b", "role": {"title": "x"}}), 400,
                "INVALID_ARGUMENT")
        err(g.call("POST", base, {"roleId": "okRole", "role": {"title": "t" * 101}}), 400,
            "INVALID_ARGUMENT")
        e = err(g.call("POST", base, {"roleId": "okRole", "role": {
            "includedPermissions": ["not a permission"]}}), 400, "INVALID_ARGUMENT")
        assert e["message"] == "Permission not a permission is not valid.", e
        role = ok(g.call("POST", base, {"roleId": "cgRole", "role": {
            "title": "T", "includedPermissions": ["b.c.d", "a.b.c"], "stage": "GA"}}))
        assert role["includedPermissions"] == ["a.b.c", "b.c.d"] and role["etag"], role
        err(g.call("POST", base, {"roleId": "cgRole", "role": {"title": "T"}}), 409,
            "ALREADY_EXISTS")
        e = err(g.call("PATCH", base + "/cgRole", {"title": "T2", "etag": "BwAAAAAAAAA="},
                       query={"updateMask": "title"}), 409, "ABORTED")
        patched = ok(g.call("PATCH", base + "/cgRole", {"title": "T2", "etag": role["etag"]},
                            query={"updateMask": "title"}))
        assert patched["title"] == "T2" and patched["includedPermissions"] == \
            role["includedPermissions"] and patched["etag"] != role["etag"], patched
        deleted = ok(g.call("DELETE", base + "/cgRole"))
        assert deleted["deleted"] is True, deleted
        assert ok(g.call("GET", base + "/cgRole"))["deleted"] is True
        assert "roles" not in ok(g.call("GET", base))
        shown = ok(g.call("GET", base, query={"showDeleted": "true", "view": "FULL"}))
        assert [r["name"] for r in shown["roles"]] == [role["name"]], shown
        e = err(g.call("POST", base, {"roleId": "cgRole", "role": {"title": "T"}}), 400,
                "FAILED_PRECONDITION")
        assert "marked for deletion" in e["message"], e
        back = ok(g.call("POST", base + "/cgRole:undelete", {"etag": deleted["etag"]}))
        assert "deleted" not in back, back
        ok(g.call("DELETE", base + "/cgRole"))
        g.age_deleted_role("cgRole", 8)
        err(g.call("POST", base + "/cgRole:undelete", {}), 400, "FAILED_PRECONDITION")
        err(g.call("POST", base, {"roleId": "cgRole", "role": {"title": "T"}}), 400,
            "FAILED_PRECONDITION")
        g.age_deleted_role("cgRole", 30)
        again = ok(g.call("POST", base, {"roleId": "cgRole", "role": {"title": "fresh"}}))
        assert again["title"] == "fresh" and "deleted" not in again, again
        e = err(g.call("GET", base + "/nothing"), 404, "NOT_FOUND")
        assert e["message"] == "The role named projects/%s/roles/nothing was not found." % P
        assert_no_violations(g)


def test_project_policy_etag_and_conditions():
    with gcp_harness.gcp(enabled=ALL) as g:
        pol = get_policy(g)
        v1 = get_policy(g, 1)
        assert v1["version"] == 1 and not any("condition" in b for b in v1["bindings"]), v1
        assert any("_withcond_" in b["role"] for b in v1["bindings"]), v1
        e = err(set_policy(g, dict(v1, version=1)), 400, "INVALID_ARGUMENT")
        assert "cannot be less than the existing policy version (3)" in e["message"], e
        cond = {"title": "t", "expression": "true"}
        e = err(set_policy(g, {"version": 1, "etag": pol["etag"], "bindings": [
            {"role": "roles/viewer", "members": ["user:a@example.com"], "condition": cond}]}),
            400, "INVALID_ARGUMENT")
        err(set_policy(g, with_binding(pol, "roles/nonexistent.role", "user:a@example.com")),
            400, "INVALID_ARGUMENT")
        e = err(set_policy(g, with_binding(pol, "projects/%s/roles/missing" % P,
                                           "user:a@example.com")), 400, "INVALID_ARGUMENT")
        assert "does not exist in the resource's hierarchy" in e["message"], e
        sa = create_sa(g, "policy-sa1")
        member = "serviceAccount:" + sa["email"]
        new = ok(set_policy(g, with_binding(pol, "roles/container.developer", member)))
        assert new["etag"] != pol["etag"] and new["version"] == 3, new
        assert any(b.get("condition", {}).get("title") == "until-2030"
                   for b in new["bindings"]), "conditional binding lost"
        e = err(set_policy(g, with_binding(pol, "roles/compute.viewer", member)), 409,
                "ABORTED")
        assert e["message"].startswith("There were concurrent policy changes."), e
        # another writer lands between our read and our write
        cur = get_policy(g)
        g.inject_concurrent_write_on_next_set()
        err(set_policy(g, with_binding(cur, "roles/compute.viewer", member)), 409, "ABORTED")
        cur = get_policy(g)
        assert any("user:concurrent-writer@example.com" in b["members"]
                   for b in cur["bindings"]), cur
        final = ok(set_policy(g, with_binding(cur, "roles/compute.viewer", member)))
        flat = {(b["role"], m) for b in final["bindings"] for m in b["members"]}
        assert ("roles/viewer", "user:concurrent-writer@example.com") in flat, final
        assert ("roles/compute.viewer", member) in flat and \
            ("roles/container.developer", member) in flat, final
        # drift made out of band
        g.add_foreign_binding("roles/editor", "user:intruder@example.com")
        g.remove_binding("roles/compute.viewer", member)
        flat = {(b["role"], m) for b in get_policy(g)["bindings"] for m in b["members"]}
        assert ("roles/editor", "user:intruder@example.com") in flat
        assert ("roles/compute.viewer", member) not in flat
        # no etag: the policy is overwritten
        blind = ok(set_policy(g, {"version": 3, "bindings": [
            {"role": "roles/owner", "members": ["serviceAccount:" + g.admin_email]}]}))
        assert len(blind["bindings"]) == 1 and blind["version"] == 1, blind
        assert_no_violations(g)


def test_faults_and_latency():
    with gcp_harness.gcp(enabled=ALL) as g:
        g.inject(method="serviceAccounts.list", status=503, rpc="UNAVAILABLE", retry_after=7)
        code, doc, h = g.call("GET", "/iam/v1/projects/%s/serviceAccounts" % P)
        assert code == 503 and doc["error"]["status"] == "UNAVAILABLE", doc
        assert h.get("retry-after") == "7", h
        ok(g.call("GET", "/iam/v1/projects/%s/serviceAccounts" % P))
        g.inject(method="POST", path_regex=r"serviceAccounts$", kind="reset")
        assert raises(lambda: g.call("POST", "/iam/v1/projects/%s/serviceAccounts" % P,
                                     {"accountId": "reset-sa1"})), "not reset"
        assert "reset-sa1" + SA_SUFFIX not in [a["email"] for a in
                                               g.state()["service_accounts"]]
        g.inject(method="serviceAccounts.create", kind="truncated")
        assert raises(lambda: g.call("POST", "/iam/v1/projects/%s/serviceAccounts" % P,
                                     {"accountId": "trunc-sa1"})), "not cut"
        # executed before the answer was cut: the account exists
        assert "trunc-sa1" + SA_SUFFIX in [a["email"] for a in g.state()["service_accounts"]]
        g.inject(method="GET", kind="invalid-json")
        code, doc, _h = g.call("GET", "/crm/v1/projects/" + P)
        assert code == 200 and isinstance(doc, str), doc
        g.inject(method="oauth2.token", status=500, rpc="INTERNAL")
        code, doc, _h = token_request(g, sign_jwt(g.admin_key))
        assert code == 500, doc
        g.set_delay(300)
        t = time.monotonic()
        ok(g.call("GET", "/crm/v1/projects/" + P))
        assert time.monotonic() - t >= 0.3
        g.set_delay(0)
        faults = [r["fault"] for r in g.requests() if r.get("fault")]
        assert faults == ["status", "reset", "truncated", "invalid-json", "status"], faults
        # reset() restores the initial state but keeps the admin's key and token valid
        g.reset()
        st = g.state()
        assert [a["email"] for a in st["service_accounts"]] == [g.admin_email], st
        ok(g.call("GET", "/crm/v1/projects/" + P))
        exchange(g, g.admin_key)
        assert_no_violations(g)


if __name__ == "__main__":
    if not gcp_harness.gcloud_available() or not shutil.which("openssl"):
        msg = "gcloud (with its bundled Python) or openssl not found"
        if os.environ.get("CI") == "true":
            print("FAIL: %s, and CI=true" % msg)
            print("0 passed, 1 failed")
            sys.exit(1)
        print("SKIP: %s" % msg)
        sys.exit(77)
    sys.exit(harness.run_tests(globals()))
