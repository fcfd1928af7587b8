#!/usr/bin/env python3
"""The Azure emulator (tests/emulators/azure_api.py) checked against real clients and against
Azure's documented behaviour, so that it cannot drift into agreeing with our C client's bugs.

- ARM: Microsoft's own SDK (python3-azure: azure-mgmt-authorization's
  AuthorizationManagementClient, azure-mgmt-resource's ResourceManagementClient, with
  azure-core's real bearer-token policy) creates, reads, lists and deletes a custom role
  definition and a role assignment and reads the AKS node resource group; every answer is
  deserialised into the SDK's models, and every request the SDK sends must pass the emulator's
  request validation with no violation.
- Tokens: MSAL for Python (python3-msal) gets tokens with a client secret and with a federated
  client assertion through the emulator's OIDC discovery and token endpoint, and reads its
  errors.
- Graph (no Graph SDK in Debian): plain HTTP per learn.microsoft.com and protocols.md 3.2.

Exit 77 (skipped) when python3-azure or python3-msal is missing, unless CI=true.
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

SRC = os.environ.get("CG_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "emulators"))
import azure_harness  # noqa: E402
import harness  # noqa: E402

SUB = azure_harness.SUBSCRIPTION
NODE_RG = azure_harness.NODE_RESOURCE_GROUP
AUTHZ = "2022-04-01"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
SDK_PYTHON = azure_harness.SDK_PYTHON


def ok(resp, status=200):
    code, doc, _h = resp
    assert code == status, "expected %d, got %d: %s" % (status, code, json.dumps(doc)[:1500])
    return doc


def graph_err(resp, status, code):
    st, doc, _h = resp
    assert st == status, "expected %d, got %d: %s" % (status, st, json.dumps(doc)[:1500])
    e = doc["error"]
    assert e["code"] == code, doc
    assert set(e["innerError"]) == {"date", "request-id", "client-request-id"}, doc
    return e


def arm_err(resp, status, code):
    st, doc, _h = resp
    assert st == status, "expected %d, got %d: %s" % (status, st, json.dumps(doc)[:1500])
    assert doc["error"]["code"] == code, doc
    assert isinstance(doc["error"]["message"], str) and doc["error"]["message"], doc
    return doc["error"]


def g(az, method, path, body=None, **kw):
    return az.call(method, "/v1.0/" + path, body=body, api="graph", **kw)


def arm(az, method, path, body=None, version=AUTHZ, **kw):
    q = {"api-version": version} if version else None
    return az.call(method, path, body=body, query=q, **kw)


def new_identity(az, name):
    """app + service principal through Graph, as the agent makes them."""
    app = ok(g(az, "POST", "applications", {"displayName": name,
                                            "signInAudience": "AzureADMyOrg"}), 201)
    sp = ok(g(az, "POST", "servicePrincipals", {"appId": app["appId"]}), 201)
    return app, sp


def assignment_body(role, principal, ptype="ServicePrincipal"):
    p = {"roleDefinitionId": "/subscriptions/%s/providers/Microsoft.Authorization/"
                             "roleDefinitions/%s" % (SUB, role),
         "principalId": principal}
    if ptype:
        p["principalType"] = ptype
    return {"properties": p}


def assert_no_violations(az):
    v = az.violations()
    assert not v, json.dumps(v, indent=1)[:3000]


def run_sdk(script, args, timeout=120):
    """Runs a Python snippet under /usr/bin/python3 (python3-azure / python3-msal live there);
    it prints one JSON document."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AZURE_"))}
    p = subprocess.run([SDK_PYTHON, "-c", script, json.dumps(args)], capture_output=True,
                       text=True, timeout=timeout, env=env)
    assert p.returncode == 0, "SDK script failed (%d):\n%s\n%s" % (p.returncode,
                                                                    p.stdout[-3000:],
                                                                    p.stderr[-5000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


# ==============================================================================================
# (a) ARM through Microsoft's SDK

SDK_SCRIPT = r'''
import json, sys, time
from azure.core.credentials import AccessToken
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.v2022_04_01 import models as m
from azure.mgmt.resource import ResourceManagementClient
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

a = json.loads(sys.argv[1])

class Cred:
    def get_token(self, *scopes, **kw):
        assert scopes == ("https://management.azure.com/.default",), scopes
        return AccessToken(a["token"], int(time.time()) + 3000)

NO_TLS = {"enforce_https": False}   # azure-core refuses bearer tokens over http otherwise
out = {}
rm = ResourceManagementClient(Cred(), a["sub"], base_url=a["url"])
rg = rm.resource_groups.get(a["node_rg"], **NO_TLS)
out["rg"] = {"name": rg.name, "managed_by": rg.managed_by, "tags": rg.tags,
             "location": rg.location, "state": rg.properties.provisioning_state,
             "type": type(rg).__name__}
out["rg_exists"] = [rm.resource_groups.check_existence(a["node_rg"], **NO_TLS),
                    rm.resource_groups.check_existence("no-such-group", **NO_TLS)]
try:
    rm.resource_groups.get("no-such-group", **NO_TLS)
    out["rg_missing"] = None
except ResourceNotFoundError as e:
    out["rg_missing"] = e.error.code

c = AuthorizationManagementClient(Cred(), a["sub"], base_url=a["url"])
scope = "/subscriptions/" + a["sub"]
rd = c.role_definitions.create_or_update(scope, a["role_guid"], m.RoleDefinition(
    role_name=a["role_name"], description="emulator check", role_type="CustomRole",
    permissions=[m.Permission(actions=["Microsoft.Resources/subscriptions/resourceGroups/read"],
                              not_actions=[], data_actions=[], not_data_actions=[])],
    assignable_scopes=[scope]), **NO_TLS)
out["rd_created"] = {"type": type(rd).__name__, "name": rd.name, "role_name": rd.role_name,
                     "role_type": rd.role_type, "actions": rd.permissions[0].actions,
                     "scopes": rd.assignable_scopes}
rd2 = c.role_definitions.get(scope, a["role_guid"], **NO_TLS)
out["rd_get"] = rd2.role_name
out["rd_list"] = [d.name for d in c.role_definitions.list(
    scope, filter="roleName eq '%s'" % a["role_name"], **NO_TLS)]
out["custom_list"] = sorted(d.role_name for d in c.role_definitions.list(
    scope, filter="type eq 'CustomRole'", **NO_TLS))
out["builtin"] = c.role_definitions.get(scope, a["contributor"], **NO_TLS).role_name

ra = c.role_assignments.create(scope, a["ra_name"], m.RoleAssignmentCreateParameters(
    role_definition_id=rd.id, principal_id=a["principal"], principal_type="ServicePrincipal"),
    **NO_TLS)
out["ra_created"] = {"type": type(ra).__name__, "name": ra.name, "scope": ra.scope,
                     "principal_type": ra.principal_type, "role": ra.role_definition_id,
                     "created_on": ra.created_on.isoformat() if ra.created_on else None}
rg_scope = scope + "/resourceGroups/" + a["node_rg"]
ra2 = c.role_assignments.create(rg_scope, a["ra_rg_name"], m.RoleAssignmentCreateParameters(
    role_definition_id="/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s"
    % (a["sub"], a["reader"]), principal_id=a["principal"], principal_type="ServicePrincipal"),
    **NO_TLS)
out["ra_get"] = c.role_assignments.get(scope, a["ra_name"], **NO_TLS).principal_id
flt = "principalId eq '%s'" % a["principal"]
out["list_sub"] = sorted(x.name for x in c.role_assignments.list_for_subscription(
    filter=flt, **NO_TLS))
out["list_rg"] = sorted(x.name for x in c.role_assignments.list_for_resource_group(
    a["node_rg"], filter=flt, **NO_TLS))
out["list_scope_at"] = sorted(x.name for x in c.role_assignments.list_for_scope(
    scope, filter="atScope() and " + flt, **NO_TLS))
try:
    c.role_assignments.create(scope, a["ra_dup_name"], m.RoleAssignmentCreateParameters(
        role_definition_id=rd.id, principal_id=a["principal"],
        principal_type="ServicePrincipal"), **NO_TLS)
    out["dup"] = None
except HttpResponseError as e:
    out["dup"] = [e.status_code, e.error.code]
try:
    c.role_definitions.delete(scope, a["role_guid"], **NO_TLS)
    out["rd_delete_in_use"] = None
except HttpResponseError as e:
    out["rd_delete_in_use"] = [e.status_code, e.error.code]
d = c.role_assignments.delete(scope, a["ra_name"], **NO_TLS)
out["ra_deleted"] = d.name if d is not None else None
out["ra_deleted_again"] = c.role_assignments.delete(scope, a["ra_name"], **NO_TLS)
c.role_assignments.delete(rg_scope, a["ra_rg_name"], **NO_TLS)
dd = c.role_definitions.delete(scope, a["role_guid"], **NO_TLS)
out["rd_deleted"] = dd.role_name if dd is not None else None
try:
    c.role_definitions.get(scope, a["role_guid"], **NO_TLS)
    out["rd_after"] = "still there"
except HttpResponseError as e:
    out["rd_after"] = [e.status_code, e.error.code]
print(json.dumps(out))
'''


def test_arm_through_the_azure_sdk():
    with azure_harness.azure() as az:
        _app, sp = new_identity(az, "sdk-check")
        az.clear_requests()
        args = {"url": az.url, "sub": SUB, "node_rg": NODE_RG,
                "token": az.admin_token("arm"), "principal": sp["id"],
                "role_guid": "5e1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b",
                "role_name": "cloudgrant sdk check", "contributor": CONTRIBUTOR,
                "reader": READER, "ra_name": "0a1b2c3d-0000-4000-8000-000000000001",
                "ra_rg_name": "0a1b2c3d-0000-4000-8000-000000000002",
                "ra_dup_name": "0a1b2c3d-0000-4000-8000-000000000003"}
        out = run_sdk(SDK_SCRIPT, args)
        assert out["rg"] == {
            "name": NODE_RG, "type": "ResourceGroup", "location": "westeurope",
            "state": "Succeeded",
            "managed_by": "/subscriptions/%s/resourcegroups/rg-prod/providers/Microsoft."
                          "ContainerService/managedClusters/aks-main" % SUB,
            "tags": {"aks-managed-cluster-name": "aks-main",
                     "aks-managed-cluster-rg": "rg-prod"}}, out["rg"]
        assert out["rg_missing"] == "ResourceGroupNotFound", out
        assert out["rg_exists"] == [True, False], out
        rc = out["rd_created"]
        assert rc["type"] == "RoleDefinition" and rc["role_type"] == "CustomRole", rc
        assert rc["name"] == args["role_guid"] and rc["scopes"] == ["/subscriptions/" + SUB]
        assert out["rd_get"] == args["role_name"]
        assert out["rd_list"] == [args["role_guid"]], out
        assert out["custom_list"] == [args["role_name"]], out
        assert out["builtin"] == "Contributor"
        ra = out["ra_created"]
        assert ra["type"] == "RoleAssignment" and ra["principal_type"] == "ServicePrincipal"
        assert ra["scope"] == "/subscriptions/" + SUB and ra["created_on"], ra
        assert out["ra_get"] == sp["id"]
        # the subscription list includes the resource-group assignment; atScope() does not
        assert out["list_sub"] == sorted([args["ra_name"], args["ra_rg_name"]]), out
        assert out["list_rg"] == sorted([args["ra_name"], args["ra_rg_name"]]), out
        assert out["list_scope_at"] == [args["ra_name"]], out
        assert out["dup"] == [409, "RoleAssignmentExists"], out
        assert out["rd_delete_in_use"] == [409, "RoleDefinitionHasAssignments"], out
        assert out["ra_deleted"] == args["ra_name"] and out["ra_deleted_again"] is None, out
        assert out["rd_deleted"] == args["role_name"], out
        assert out["rd_after"] == [404, "RoleDefinitionDoesNotExist"], out
        reqs = [r for r in az.requests() if r["api"] not in ("login", "control")]
        assert {r["api"] for r in reqs} == {"arm"}, reqs
        puts = [r for r in reqs if r["method"] == "PUT"]
        assert len(puts) == 4 and all(r["mutating"] for r in puts), puts
        assert_no_violations(az)


# ==============================================================================================
# (b) tokens through MSAL

MSAL_SCRIPT = r'''
import json, sys
import msal, requests

a = json.loads(sys.argv[1])

class Plain(requests.Session):
    """MSAL insists on https authorities; the emulator is plain http on 127.0.0.1. The proxy
    header makes its discovery document name https endpoints, which this maps back."""
    def request(self, method, url, *args, **kw):
        headers = dict(kw.pop("headers", None) or {})
        headers["X-Forwarded-Proto"] = "https"
        return super().request(method, url.replace("https://", "http://", 1), *args,
                               headers=headers, **kw)

def app(cred):
    return msal.ConfidentialClientApplication(
        a["client_id"], client_credential=cred, authority=a["authority"],
        validate_authority=False, instance_discovery=False, http_client=Plain())

out = {}
r = app(a["secret"]).acquire_token_for_client(scopes=["https://management.azure.com/.default"])
out["secret"] = {k: r.get(k) for k in ("token_type", "expires_in", "error", "error_codes")}
out["secret_token"] = r.get("access_token")
r = app(a["secret"]).acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])
out["graph_token"] = r.get("access_token")
r = app("not-the-secret").acquire_token_for_client(
    scopes=["https://management.azure.com/.default"])
out["bad_secret"] = {k: r.get(k) for k in ("error", "error_codes")}
r = app({"client_assertion": a["assertion"]}).acquire_token_for_client(
    scopes=["https://management.azure.com/.default"])
out["assertion"] = {k: r.get(k) for k in ("token_type", "error", "error_codes",
                                          "error_description")}
out["assertion_token"] = r.get("access_token")
r = app({"client_assertion": a["bad_assertion"]}).acquire_token_for_client(
    scopes=["https://management.azure.com/.default"])
out["bad_assertion"] = {k: r.get(k) for k in ("error", "error_codes")}
print(json.dumps(out))
'''


def _claims(tok):
    import base64
    seg = tok.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))


def test_tokens_through_msal():
    with azure_harness.azure() as az:
        out = run_sdk(MSAL_SCRIPT, {
            "client_id": az.admin_client_id, "secret": az.admin_secret,
            "authority": "https://127.0.0.1:%d/%s" % (az.port, az.tenant),
            "assertion": az.issue_federated_token(az.oidc_issuer, az.admin_subject),
            "bad_assertion": az.issue_federated_token(az.oidc_issuer,
                                                      "system:serviceaccount:x:y")})
        assert out["secret"]["token_type"] == "Bearer" and out["secret"]["error"] is None, out
        assert isinstance(out["secret"]["expires_in"], int), out
        c = _claims(out["secret_token"])
        assert c["aud"] == "https://management.azure.com" and c["tid"] == az.tenant, c
        assert c["oid"] == az.admin_sp_id and c["appid"] == az.admin_client_id, c
        assert c["nbf"] <= c["iat"] < c["exp"], c
        assert _claims(out["graph_token"])["aud"] == "https://graph.microsoft.com"
        assert out["bad_secret"] == {"error": "invalid_client", "error_codes": [7000215]}, out
        assert out["assertion"]["error"] is None, out
        assert out["bad_assertion"] == {"error": "invalid_client",
                                        "error_codes": [700213]}, out
        # the tokens MSAL got are accepted by the APIs
        ok(arm(az, "GET", "/subscriptions/%s/resourceGroups/rg-prod" % SUB, version="2021-04-01",
               token=out["assertion_token"]))
        ok(g(az, "GET", "applications", token=out["graph_token"]))
        # ... and each one only by its own audience
        arm_err(arm(az, "GET", "/subscriptions/%s/resourceGroups/rg-prod" % SUB,
                    version="2021-04-01", token=out["graph_token"]), 401,
                "InvalidAuthenticationTokenAudience")
        graph_err(g(az, "GET", "applications", token=out["secret_token"]), 401,
                  "InvalidAuthenticationToken")
        logins = [r for r in az.requests() if r["api"] == "login"]
        assert logins and not any(r["mutating"] for r in logins)
        text = json.dumps(az.requests())
        assert az.admin_secret not in text and "client_assertion\": \"ey" not in text
        assert_no_violations(az)


def test_token_endpoint_errors_and_imds():
    with azure_harness.azure(validate=False) as az:
        def token_err(form, status, error, code, tenant=None):
            st, doc, _h = az.call("POST", "/%s/oauth2/v2.0/token" % (tenant or az.tenant),
                                  token="", raw_body=urllib.parse.urlencode(form),
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert st == status and doc["error"] == error, (st, doc)
            assert doc["error_codes"] == [code], doc
            assert doc["error_description"].startswith("AADSTS%d: " % code), doc
            for k in ("timestamp", "trace_id", "correlation_id"):
                assert doc[k], doc
        base = {"grant_type": "client_credentials", "client_id": az.admin_client_id,
                "client_secret": az.admin_secret,
                "scope": "https://management.azure.com/.default"}
        token_err(dict(base, client_secret="nope"), 401, "invalid_client", 7000215)
        token_err(dict(base, client_id="11111111-2222-4333-8444-555555555555"), 400,
                  "unauthorized_client", 700016)
        token_err(base, 400, "invalid_request", 90002,
                  tenant="99999999-0000-4000-8000-000000000000")
        token_err(dict(base, scope="https://example.com/x"), 400, "invalid_scope", 1002012)
        token_err({k: v for k, v in base.items() if k != "scope"}, 400, "invalid_scope", 70011)
        # a created identity logs in with its own secret, until the secret expires
        app, sp = new_identity(az, "login-check")
        pw = az.add_password(app["id"], end="2099-01-01T00:00:00Z")
        tok = az.login(app["appId"], secret=pw["secretText"])
        assert _claims(tok)["oid"] == sp["id"]
        az.set_password_end(app["id"], pw["keyId"], "2020-01-01T00:00:00Z")
        token_err(dict(base, client_id=app["appId"], client_secret=pw["secretText"]), 401,
                  "invalid_client", 7000222)
        az.set_password_end(app["id"], pw["keyId"], "2099-01-01T00:00:00Z")
        az.set_sp(sp["id"], accountEnabled=False)
        token_err(dict(base, client_id=app["appId"], client_secret=pw["secretText"]), 400,
                  "unauthorized_client", 7000112)
        az.set_sp(sp["id"], accountEnabled=True)
        # federated: issuer, subject and audience are each checked
        assertion = {"grant_type": "client_credentials", "client_id": az.admin_client_id,
                     "scope": "https://graph.microsoft.com/.default",
                     "client_assertion_type":
                         "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
        for tok_args, code in (((az.oidc_issuer, "system:serviceaccount:a:b"), 700213),
                               (("https://other.example/", az.admin_subject), 700211),
                               ((az.oidc_issuer, az.admin_subject, "api://other"), 700212)):
            token_err(dict(assertion, client_assertion=az.issue_federated_token(*tok_args)),
                      400, "invalid_client", code)
        expired = az.issue_federated_token(az.oidc_issuer, az.admin_subject, ttl=-10)
        token_err(dict(assertion, client_assertion=expired), 400, "invalid_client", 700024)
        forged = az.issue_federated_token(az.oidc_issuer, az.admin_subject)[:-4] + "AAAA"
        token_err(dict(assertion, client_assertion=forged), 401, "invalid_client", 700027)
        good = az.issue_federated_token(az.oidc_issuer, az.admin_subject)
        assert _claims(az.login(az.admin_client_id, assertion=good,
                                resource="graph"))["appidacr"] == "2"
        # the workload-identity environment points at a token file the endpoint accepts
        with tempfile.TemporaryDirectory() as d:
            env = az.workload_identity_env(os.path.join(d, "azure-identity-token"))
            assert env["AZURE_AUTHORITY_HOST"] == az.url + "/"
            with open(env["AZURE_FEDERATED_TOKEN_FILE"]) as f:
                az.login(env["AZURE_CLIENT_ID"], assertion=f.read())
        # IMDS
        url = az.url + "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=" + \
            urllib.parse.quote("https://management.azure.com/", safe="")
        st, doc, _h = az.call("GET", url[len(az.url):], token="")
        assert st == 400 and doc == {"error": "invalid_request", "error_description":
                                     "Required metadata header not specified"}, doc
        doc = ok(az.call("GET", url[len(az.url):], token="", headers={"Metadata": "true"}))
        for k in ("expires_in", "expires_on", "ext_expires_in", "not_before"):
            assert isinstance(doc[k], str) and doc[k].isdigit(), doc
        assert doc["token_type"] == "Bearer" and doc["resource"] == \
            "https://management.azure.com/", doc
        ok(arm(az, "GET", "/subscriptions/%s/resourceGroups/%s" % (SUB, NODE_RG),
               version="2021-04-01", token=doc["access_token"]))
        st, doc, _h = az.call("GET", url[len(az.url):] + "&client_id=" + "0" * 8 +
                              "-0000-4000-8000-000000000000", token="",
                              headers={"Metadata": "true"})
        assert st == 400 and doc["error_description"] == "Identity not found", doc
        inst = ok(az.call("GET", "/metadata/instance?api-version=2021-02-01", token="",
                          headers={"Metadata": "true"}))
        comp = inst["compute"]
        assert comp["subscriptionId"] == SUB and comp["resourceGroupName"] == NODE_RG
        assert comp["location"] == "westeurope" and isinstance(comp["tagsList"], list)
        st, doc, _h = az.call("GET", "/metadata/instance", token="",
                              headers={"Metadata": "true"})
        assert st == 400 and "api-version" in doc["error"], doc


# ==============================================================================================
# (c) Graph flows

def test_graph_applications_upsert_and_lag():
    with azure_harness.azure(validate=False) as az:
        key = "cloudgrant-o''brien"   # the OData-escaped form of cloudgrant-o'brien
        path = "applications(uniqueName='%s')" % urllib.parse.quote(key)
        body = {"displayName": "upserted", "signInAudience": "AzureADMyOrg",
                "tags": ["cloudgrant"]}
        graph_err(g(az, "PATCH", path, body), 404, "Request_ResourceNotFound")
        created = ok(g(az, "PATCH", path, body, headers={"Prefer": "create-if-missing"}), 201)
        assert created["uniqueName"] == "cloudgrant-o'brien", created
        assert created["passwordCredentials"] == [] and created["id"] and created["appId"]
        assert created["@odata.context"].endswith("$metadata#applications/$entity")
        st, doc, _h = g(az, "PATCH", path, dict(body, displayName="renamed"),
                        headers={"Prefer": "create-if-missing"})
        assert st == 204 and doc is None, (st, doc)
        got = ok(g(az, "GET", "applications(appId='%s')" % created["appId"]))
        assert got["displayName"] == "renamed" and got["id"] == created["id"]
        assert ok(g(az, "GET", path))["id"] == created["id"]
        # default signInAudience of an app created without one
        plain = ok(g(az, "POST", "applications", {"displayName": "plain"}), 201)
        assert plain["signInAudience"] == "AzureADandPersonalMicrosoftAccount"
        graph_err(g(az, "GET", "applications/not-a-guid"), 400, "Request_BadRequest")
        # replication lag
        az.set_replication_lag(2)
        app = ok(g(az, "POST", "applications", {"displayName": "lagging"}), 201)
        for _ in range(2):
            e = graph_err(g(az, "POST", "servicePrincipals", {"appId": app["appId"]}), 400,
                          "Request_BadRequest")
            assert e["message"] == ("The appId '%s' of the service principal does not "
                                    "reference a valid application object." % app["appId"])
            assert e["details"][0]["code"] == "NoBackingApplicationObject", e
        for _ in range(2):
            e = graph_err(g(az, "GET", "applications/" + app["id"]), 404,
                          "Request_ResourceNotFound")
            assert e["message"] == ("Resource '%s' does not exist or one of its queried "
                                    "reference-property objects are not present." % app["id"])
        ok(g(az, "GET", "applications/" + app["id"]))
        sp = ok(g(az, "POST", "servicePrincipals", {"appId": app["appId"]}), 201)
        assert sp["displayName"] == "lagging" and sp["accountEnabled"] is True
        assert sp["servicePrincipalType"] == "Application"
        graph_err(g(az, "POST", "servicePrincipals", {"appId": app["appId"]}), 409,
                  "Request_MultipleObjectsWithSameKeyValue")
        assert ok(g(az, "GET", "servicePrincipals(appId='%s')" % app["appId"]))["id"] == \
            sp["id"]
        lst = ok(g(az, "GET", "servicePrincipals", query={
            "$filter": "appId eq '%s'" % app["appId"]}))
        assert [s["id"] for s in lst["value"]] == [sp["id"]]
        # deleting the application takes its service principal along
        assert g(az, "DELETE", "applications/" + app["id"])[0] == 204
        graph_err(g(az, "GET", "servicePrincipals(appId='%s')" % app["appId"]), 404,
                  "Request_ResourceNotFound")
        assert az.find_sp(app["appId"]) is None and az.find_app("lagging") is None


def test_graph_passwords_and_policy():
    with azure_harness.azure(validate=False) as az:
        app, sp = new_identity(az, "secrets")
        az.set_max_secret_lifetime_days(30)
        e = graph_err(g(az, "POST", "applications/%s/addPassword" % app["id"],
                        {"passwordCredential": {"displayName": "x"}}), 400,
                      "CredentialInvalidLifetimeAsPerAppPolicy")
        assert e["message"] == ("Credential lifetime exceeds the max value allowed as per "
                                "assigned policy.")
        end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 10 * 86400))
        pw = ok(g(az, "POST", "applications(appId='%s')/addPassword" % app["appId"],
                  {"passwordCredential": {"displayName": "cloudgrant", "endDateTime": end}}))
        assert set(pw) >= {"customKeyIdentifier", "displayName", "endDateTime", "hint", "keyId",
                           "secretText", "startDateTime"}, pw
        assert pw["hint"] == pw["secretText"][:3] and pw["customKeyIdentifier"] is None
        az.set_max_secret_lifetime_days(None)
        pw2 = ok(g(az, "POST", "applications/%s/addPassword" % app["id"], {}))
        years = (time.mktime(time.strptime(pw2["endDateTime"], "%Y-%m-%dT%H:%M:%SZ")) -
                 time.mktime(time.strptime(pw2["startDateTime"], "%Y-%m-%dT%H:%M:%SZ"))) / 86400
        assert 729 <= years <= 732, pw2   # default lifetime: 2 years
        got = ok(g(az, "GET", "applications/" + app["id"]))
        assert sorted(p["keyId"] for p in got["passwordCredentials"]) == \
            sorted([pw["keyId"], pw2["keyId"]])
        assert all(p["secretText"] is None for p in got["passwordCredentials"])
        tok = az.login(app["appId"], secret=pw["secretText"])
        assert _claims(tok)["oid"] == sp["id"]
        # only the admin writes through Graph
        other = az.login(app["appId"], secret=pw["secretText"], resource="graph")
        graph_err(g(az, "POST", "applications", {"displayName": "x"}, token=other), 403,
                  "Authorization_RequestDenied")
        ok(g(az, "GET", "applications/" + app["id"], token=other))
        st, _d, _h = g(az, "POST", "applications/%s/removePassword" % app["id"],
                       {"keyId": pw["keyId"]})
        assert st == 204
        graph_err(g(az, "POST", "applications/%s/removePassword" % app["id"],
                    {"keyId": pw["keyId"]}), 400, "Request_BadRequest")
        try:
            az.login(app["appId"], secret=pw["secretText"])
            raise AssertionError("a removed secret still logs in")
        except azure_harness.AzureError as exc:
            assert exc.doc["error_codes"] == [7000215], exc.doc
        text = json.dumps(az.requests())
        assert pw2["secretText"] not in text and pw["secretText"] not in text


def test_graph_federated_credentials():
    with azure_harness.azure(validate=False) as az:
        app, _sp = new_identity(az, "wi")
        coll = "applications/%s/federatedIdentityCredentials" % app["id"]
        issuer = "https://westeurope.oic.prod-aks.azure.com/%s/abc/" % az.tenant
        body = {"name": "cloudgrant-wi", "issuer": issuer,
                "subject": "system:serviceaccount:apps:web",
                "audiences": ["api://AzureADTokenExchange"], "description": "test"}
        fic = ok(g(az, "POST", coll, body), 201)
        assert fic["id"] and fic["name"] == "cloudgrant-wi" and fic["audiences"] == \
            body["audiences"]
        graph_err(g(az, "POST", coll, body), 409, "Request_MultipleObjectsWithSameKeyValue")
        graph_err(g(az, "POST", coll, dict(body, name="x2", audiences=["a", "b"])), 400,
                  "Request_BadRequest")
        assert [f["id"] for f in ok(g(az, "GET", coll))["value"]] == [fic["id"]]
        assert ok(g(az, "GET", coll + "/" + fic["id"]))["name"] == "cloudgrant-wi"
        assert ok(g(az, "GET", coll + "/cloudgrant-wi"))["id"] == fic["id"]
        tok = az.issue_federated_token(issuer, "system:serviceaccount:apps:web")
        assert _claims(az.login(app["appId"], assertion=tok))["appid"] == app["appId"]
        assert g(az, "PATCH", coll + "/" + fic["id"],
                 {"subject": "system:serviceaccount:apps:api"})[0] == 204
        try:
            az.login(app["appId"], assertion=tok)
            raise AssertionError("old subject still accepted")
        except azure_harness.AzureError as exc:
            assert exc.doc["error_codes"] == [700213], exc.doc
        assert az.fics(app["id"])[0]["subject"] == "system:serviceaccount:apps:api"
        assert g(az, "DELETE", coll + "/" + fic["id"])[0] == 204
        assert ok(g(az, "GET", coll))["value"] == []
        for i in range(20):
            ok(g(az, "POST", coll, dict(body, name="f%02d" % i, subject="s%d" % i)), 201)
        graph_err(g(az, "POST", coll, dict(body, name="f20", subject="s20")), 400,
                  "Request_BadRequest")


def test_graph_filter_paging_and_errors():
    with azure_harness.azure(validate=False) as az:
        ids = set()
        for i in range(5):
            ids.add(ok(g(az, "POST", "applications", {"displayName": "page-%d" % i,
                                                      "tags": ["page-test"]}), 201)["id"])
        ok(g(az, "POST", "applications", {"displayName": "O'Brien"}), 201)
        seen = []
        url = "applications?" + urllib.parse.urlencode(
            {"$filter": "tags/any(t:t eq 'page-test')", "$top": "2"})
        pages = 0
        while url:
            doc = ok(g(az, "GET", url))
            assert doc["@odata.context"].endswith("$metadata#applications"), doc
            assert len(doc["value"]) <= 2
            seen += [a["id"] for a in doc["value"]]
            pages += 1
            nxt = doc.get("@odata.nextLink")
            if nxt:
                assert nxt.startswith(az.url + "/v1.0/applications?"), nxt
                url = nxt[len(az.url + "/v1.0/"):]
            else:
                url = None
        assert pages == 3 and len(seen) == 5 and set(seen) == ids, (pages, seen)
        doc = ok(g(az, "GET", "applications", query={"$filter": "displayName eq 'O''Brien'"}))
        assert [a["displayName"] for a in doc["value"]] == ["O'Brien"]
        doc = ok(g(az, "GET", "applications", query={
            "$filter": "startswith(displayName,'page-')", "$select": "id,displayName"}))
        assert len(doc["value"]) == 5 and set(doc["value"][0]) == {"id", "displayName"}
        graph_err(g(az, "GET", "applications", query={"$filter": "bogus eq 'x'"}), 400,
                  "Request_UnsupportedQuery")
        graph_err(g(az, "GET", "applications", query={"$top": "0"}), 400, "Request_BadRequest")
        graph_err(g(az, "GET", "applications", token=""), 401, "InvalidAuthenticationToken")
        graph_err(g(az, "GET", "applications", token="a.b.c"), 401,
                  "InvalidAuthenticationToken")
        graph_err(g(az, "GET", "nonsense"), 400, "BadRequest")
        graph_err(g(az, "PUT", "applications"), 405, "Request_BadRequest")
        st, doc, _h = g(az, "POST", "applications", raw_body="{not json",
                        headers={"Content-Type": "application/json"})
        assert st == 400 and doc["error"]["code"] == "BadRequest", doc


# ==============================================================================================
# (d) request validation

def test_request_validation_refuses_unknown_properties():
    with azure_harness.azure() as az:
        az.clear_requests()
        e = graph_err(g(az, "POST", "applications", {"displayName": "x", "signinAudience":
                                                     "AzureADMyOrg"}), 400, "Request_BadRequest")
        assert e["message"].startswith("Property 'signinAudience' does not exist on type "
                                       "'microsoft.graph.application'"), e
        graph_err(g(az, "POST", "applications", {"displayName": "x", "tags": "one"}), 400,
                  "Request_BadRequest")
        app, sp = new_identity(az, "validated")
        graph_err(g(az, "POST", "applications/%s/addPassword" % app["id"],
                    {"passwordCredential": {"endDateTime": "next year"}}), 400,
                  "Request_BadRequest")
        body = assignment_body(READER, sp["id"])
        body["properties"]["principalID"] = body["properties"].pop("principalId")
        e = arm_err(arm(az, "PUT", "/subscriptions/%s/providers/Microsoft.Authorization/"
                        "roleAssignments/%s" % (SUB, "1b2c3d4e-0000-4000-8000-000000000001"),
                        body), 400, "InvalidRequestContent")
        assert "principalID" in e["message"], e
        bad = [r for r in az.violations()]
        assert len(bad) == 4, json.dumps(bad, indent=1)
        assert [r["api"] for r in bad] == ["graph", "graph", "graph", "arm"]
        assert all(r["status"] == 400 for r in bad)
        assert "signinAudience" in bad[0]["violations"][0]
        assert any("principalID" in v for v in bad[3]["violations"]), bad[3]


# ==============================================================================================
# (e) ARM behaviour

def test_arm_role_assignments_behaviour():
    with azure_harness.azure() as az:
        az.set_arm_principal_lag(1)
        _app, sp = new_identity(az, "arm-check")
        sub_scope = "/subscriptions/" + SUB
        ra = sub_scope + "/providers/Microsoft.Authorization/roleAssignments/"
        n1, n2 = "2a000000-0000-4000-8000-000000000001", "2a000000-0000-4000-8000-000000000002"
        e = arm_err(arm(az, "PUT", ra + n1, assignment_body(CONTRIBUTOR, sp["id"])), 400,
                    "PrincipalNotFound")
        assert e["message"].startswith("Principal %s does not exist in the directory %s."
                                       % (sp["id"], az.tenant)), e
        st, doc, hdrs = arm(az, "PUT", ra + n1, assignment_body(CONTRIBUTOR, sp["id"]))
        assert st == 201, doc
        assert hdrs.get("x-ms-ratelimit-remaining-subscription-writes", "").isdigit(), hdrs
        p = doc["properties"]
        assert doc["type"] == "Microsoft.Authorization/roleAssignments" and doc["name"] == n1
        assert p["scope"] == sub_scope and p["principalType"] == "ServicePrincipal"
        assert p["condition"] is None and p["createdOn"] and p["updatedBy"] == az.admin_sp_id
        # PUT again, same name, same content: 201 again
        assert arm(az, "PUT", ra + n1, assignment_body(CONTRIBUTOR, sp["id"]))[0] == 201
        e = arm_err(arm(az, "PUT", ra + n2, assignment_body(CONTRIBUTOR, sp["id"])), 409,
                    "RoleAssignmentExists")
        assert e["message"] == "The role assignment already exists."
        arm_err(arm(az, "PUT", ra + n1, assignment_body(READER, sp["id"])), 409,
                "RoleAssignmentUpdateNotPermitted")
        arm_err(arm(az, "PUT", ra + n2, assignment_body(READER, "0" * 8 +
                                                        "-1111-4222-8333-444444444444")),
                400, "PrincipalNotFound")
        arm_err(arm(az, "PUT", ra + n2, assignment_body("0" * 8 +
                                                        "-1111-4222-8333-444444444444",
                                                        sp["id"])),
                400, "RoleDefinitionDoesNotExist")
        arm_err(arm(az, "PUT", ra + "not-a-guid", assignment_body(READER, sp["id"])), 400,
                "InvalidRoleAssignmentId")
        arm_err(arm(az, "PUT", ra + n2, assignment_body(READER, sp["id"], "User")), 400,
                "UnmatchedPrincipalType")
        rg_ra = "%s/resourceGroups/%s/providers/Microsoft.Authorization/roleAssignments/%s" % (
            sub_scope, NODE_RG.lower(), n2)
        assert arm(az, "PUT", rg_ra, assignment_body(READER, sp["id"]))[0] == 201
        arm_err(arm(az, "PUT", "%s/resourceGroups/nope/providers/Microsoft.Authorization/"
                    "roleAssignments/%s" % (sub_scope, n2), assignment_body(READER, sp["id"])),
                404, "ResourceGroupNotFound")
        flt = "principalId eq '%s'" % sp["id"]
        lst = ok(az.call("GET", ra.rstrip("/"), query={"api-version": AUTHZ, "$filter": flt}))
        assert sorted(a["name"] for a in lst["value"]) == [n1, n2], lst
        lst = ok(az.call("GET", ra.rstrip("/"), query={"api-version": AUTHZ,
                                                       "$filter": "atScope()"}))
        assert n2 not in [a["name"] for a in lst["value"]]
        assert {a["name"] for a in az.assignments(sp["id"])} == {n1, n2}
        # api-version
        arm_err(arm(az, "GET", ra + n1, version=None), 400, "MissingApiVersionParameter")
        arm_err(arm(az, "GET", ra + n1, version="2099-01-01"), 400,
                "InvalidApiVersionParameter")
        arm_err(arm(az, "GET", ra + "2a000000-0000-4000-8000-00000000dead"), 404,
                "RoleAssignmentNotFound")
        # throttling
        az.inject(method="PUT", path_regex="roleAssignments", count=1, status=429,
                  retry_after=7)
        st, doc, hdrs = arm(az, "PUT", ra + n1, assignment_body(CONTRIBUTOR, sp["id"]))
        assert st == 429 and doc["error"]["code"] == "TooManyRequests" and \
            hdrs["retry-after"] == "7", (st, doc, hdrs)
        az.inject(method="graph", count=1, status=503, retry_after=3)
        st, doc, hdrs = g(az, "GET", "applications")
        assert st == 503 and doc["error"]["code"] == "serviceNotAvailable" and \
            hdrs["retry-after"] == "3", (st, doc)
        api_reqs = [r for r in az.requests() if r["api"] != "control"]
        assert [r["fault"] for r in api_reqs[-2:]] == ["status", "status"]
        assert [r["path"] for r in az.requests() if r["api"] == "control"][-2:] == \
            ["/_emu/inject", "/_emu/inject"]
        # RBAC: the new identity is Reader on the node resource group only
        pw = az.add_password(_app["id"])
        tok = az.login(_app["appId"], secret=pw["secretText"])
        ok(arm(az, "GET", "/subscriptions/%s/resourceGroups/%s" % (SUB, NODE_RG),
               version="2021-04-01", token=tok))
        az.remove_role_assignment(n1)
        arm_err(arm(az, "GET", "/subscriptions/%s/resourceGroups/rg-prod" % SUB,
                    version="2021-04-01", token=tok), 403, "AuthorizationFailed")
        arm_err(arm(az, "PUT", ra + n1, assignment_body(READER, sp["id"]), token=tok), 403,
                "AuthorizationFailed")
        # DELETE: 200 with the object, then 204
        st, doc, _h = arm(az, "DELETE", rg_ra)
        assert st == 200 and doc["name"] == n2, doc
        assert arm(az, "DELETE", rg_ra)[0] == 204
        assert_no_violations(az)


def test_arm_custom_roles():
    with azure_harness.azure() as az:
        rd = "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/" % SUB
        g1, g2 = "3b000000-0000-4000-8000-000000000001", "3b000000-0000-4000-8000-000000000002"
        body = {"properties": {"roleName": "cloudgrant-reader", "description": "d",
                               "type": "CustomRole",
                               "permissions": [{"actions": ["*/read"], "notActions": [],
                                                "dataActions": [], "notDataActions": []}],
                               "assignableScopes": ["/subscriptions/" + SUB]}}
        doc = ok(arm(az, "PUT", rd + g1, body), 201)
        assert doc["properties"]["type"] == "CustomRole" and doc["name"] == g1
        arm_err(arm(az, "PUT", rd + g2, body), 409, "RoleDefinitionWithSameNameExists")
        b2 = json.loads(json.dumps(body))
        b2["properties"]["roleName"] = "Reader"
        arm_err(arm(az, "PUT", rd + g2, b2), 409, "RoleDefinitionWithSameNameExists")
        b2["properties"]["roleName"] = "other"
        b2["properties"]["assignableScopes"] = ["/subscriptions/%s/resourceGroups/nope" % SUB]
        arm_err(arm(az, "PUT", rd + g2, b2), 404, "ResourceGroupNotFound")
        body["properties"]["permissions"][0]["actions"] = ["Microsoft.Compute/*/read"]
        assert arm(az, "PUT", rd + g1, body)[0] == 201   # update in place
        assert az.role_definition("cloudgrant-reader")["properties"]["permissions"][0][
            "actions"] == ["Microsoft.Compute/*/read"]
        az.set_role_definition_actions("cloudgrant-reader", ["a/b/read"])
        lst = ok(az.call("GET", rd.rstrip("/"), query={"api-version": AUTHZ,
                                                       "$filter": "type eq 'CustomRole'"}))
        assert [d["properties"]["permissions"][0]["actions"] for d in lst["value"]] == \
            [["a/b/read"]]
        lst = ok(az.call("GET", rd.rstrip("/"), query={"api-version": AUTHZ,
                                                       "$filter": "roleName eq 'Reader'"}))
        assert [d["name"] for d in lst["value"]] == [READER]
        arm_err(arm(az, "GET", rd + g2), 404, "RoleDefinitionDoesNotExist")
        st, doc, _h = arm(az, "DELETE", rd + g1)
        assert st == 200 and doc["properties"]["roleName"] == "cloudgrant-reader"
        assert arm(az, "DELETE", rd + g1)[0] == 204
        assert az.role_definition("cloudgrant-reader") is None
        assert az.role_definition("Reader")["name"] == READER
        assert_no_violations(az)


# ==============================================================================================
# robustness

def test_hostile_input_and_faults():
    with azure_harness.azure(validate=False) as az:
        for path in ("/", "/nope", "/v1.0", "/v1.0/applications(uniqueName=bad)",
                     "/v1.0/applications('%ZZ')", "/subscriptions", "/subscriptions/x",
                     "/subscriptions/%s/resourceGroups/%%00?api-version=2021-04-01" % SUB,
                     "/%s/oauth2/v2.0/token" % az.tenant, "/metadata/instance/compute/x",
                     "/_emu/nothing"):
            for method in ("GET", "POST", "DELETE"):
                st, doc, _h = az.call(method, path, raw_body=b"\xff\x00{", api="graph",
                                      headers={"Content-Type": "application/json"})
                assert 400 <= st < 500, (method, path, st, doc)
                assert isinstance(doc, dict) and "error" in doc, (method, path, doc)
        # raw garbage on the socket, then the server still answers
        s = socket.create_connection(("127.0.0.1", az.port), timeout=5)
        s.sendall(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
        try:
            s.recv(100)
        except OSError:
            pass
        s.close()
        arm_err(arm(az, "PUT", "/subscriptions/%s/providers/Microsoft.Authorization/"
                    "roleAssignments/4c000000-0000-4000-8000-000000000001" % SUB,
                    raw_body=b"[1,2"), 400, "InvalidRequestContent")
        ra = "/subscriptions/%s/providers/Microsoft.Authorization/roleAssignments/" \
            "4c000000-0000-4000-8000-000000000002" % SUB
        rd = "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/" \
            "4c000000-0000-4000-8000-000000000003" % SUB
        for url, body in ((ra, {"properties": [1]}), (ra, {"properties": {"principalId": 5}}),
                          (rd, {"properties": {"roleName": "x", "permissions": ["a"],
                                               "assignableScopes": "/"}}),
                          (rd, {"properties": {"roleName": 7}})):
            st, doc, _h = arm(az, "PUT", url, body)
            assert st == 400 and doc["error"]["code"], (url, body, st, doc)
        for body in ({"displayName": "x", "web": [1]}, {"passwordCredential": 3},
                     [1, 2], "text"):
            st, doc, _h = g(az, "POST", "applications", body)
            assert st == 400, (body, st, doc)
        assert "internal error" not in az.log()
        for kind in ("reset", "truncated", "invalid-json"):
            az.inject(method="GET", path_regex="resourceGroups", kind=kind)
            try:
                st, doc, _h = arm(az, "GET", "/subscriptions/%s/resourceGroups/rg-prod" % SUB,
                                  version="2021-04-01")
                assert kind == "invalid-json" and isinstance(doc, str), (kind, st, doc)
            except (OSError, http.client.HTTPException):
                assert kind in ("reset", "truncated")
        az.inject(method="GET", kind="slow", delay_ms=300)
        t0 = time.time()
        ok(arm(az, "GET", "/subscriptions/%s/resourceGroups/rg-prod" % SUB,
               version="2021-04-01"))
        assert time.time() - t0 >= 0.3
        with urllib.request.urlopen(az.url + "/_emu/state", timeout=10) as r:
            st = json.loads(r.read())
        assert az.admin_secret not in json.dumps(st)
        assert [rg["name"] for rg in st["resourceGroups"]] == ["rg-prod", NODE_RG]
        az.reset()
        assert [a["displayName"] for a in az.state()["applications"]] == \
            ["cloudgrant-bootstrap-admin"]


if __name__ == "__main__":
    missing = []
    if not azure_harness.sdk_available():
        missing.append("python3-azure")
    try:
        p = subprocess.run([SDK_PYTHON, "-c", "import msal, requests"], capture_output=True,
                           timeout=60)
        if p.returncode != 0:
            missing.append("python3-msal")
    except (OSError, subprocess.TimeoutExpired):
        missing.append("python3-msal")
    if missing:
        msg = "%s not importable by %s" % (" and ".join(missing), SDK_PYTHON)
        if os.environ.get("CI") == "true":
            print("FAIL: %s, and CI=true" % msg)
            print("0 passed, 1 failed")
            sys.exit(1)
        print("SKIP: %s" % msg)
        sys.exit(77)
    sys.exit(harness.run_tests(globals()))
