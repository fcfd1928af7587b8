#!/usr/bin/env python3
"""End-to-end Azure: every command against the stateful Graph and ARM emulator
(tests/emulators/azure_api.py, whose ARM request bodies are checked against the models of
Debian's azure-mgmt-authorization and Graph bodies against Graph's property sets), the
Kubernetes API emulator (an AKS cluster) and the central endpoint. Both built-in profiles,
secret and federated credentials, Contributor and a custom role, reruns with zero writes,
replication lag and throttling, each drift scenario, rotate and offboard, the agent's own
credentials from client secret, workload identity and IMDS, and a scan of everything printed
for every secret the emulator issued."""
import base64
import json
import os
import subprocess
import sys
import tempfile

SRC = os.environ.get("CG_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "emulators"))
import azure_harness  # noqa: E402
import central_harness  # noqa: E402
import harness  # noqa: E402
import secret_scan  # noqa: E402

BIN = harness.find_binary()
SUB = "0b1f6471-1bf0-4dda-aec3-111122223333"  # the AKS fixture's subscription
CLUSTER = "aks-main"                            # what the node resource group's tags say
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
TOKEN = "report-token-azure-4e2a"
ISSUER = "https://oidc.platform.example/tenant-42"
SUBJECT = "system:serviceaccount:platform:provisioner"
SCAN = secret_scan.SecretScan()  # everything each run left behind, for the secret scan
ISSUED = SCAN.issued  # every secret the emulator issued or the test configured


class Env:
    def __init__(self, az, api, central):
        self.az, self.api, self.central = az, api, central
        self.dir = tempfile.mkdtemp(prefix="cg-azure-")
        self.own_files = []  # files the test wrote on purpose, left out of the scan
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("AWS_", "CLOUDGRANT_", "KUBE", "AZURE_", "GOOGLE_",
                                         "GCE_", "CLOUDSDK_"))}
        self.env.update(az.env())
        self.env.update({"HOME": self.dir, "CLOUDGRANT_KUBECONFIG": api.kubeconfig,
                         "CLOUDGRANT_PROFILE": "platform-access",
                         "CLOUDGRANT_REPORT_URL": central.report_url,
                         "CLOUDGRANT_REPORT_TOKEN": TOKEN})
        ISSUED.update([TOKEN, az.admin_secret, api.token])

    def run(self, *args, env=None, timeout=180):
        e = dict(self.env, **(env or {}))
        e = {k: v for k, v in e.items() if v is not None}
        p = subprocess.run([BIN] + list(args), env=e, capture_output=True, text=True,
                           timeout=timeout)
        SCAN.take_output("output", p.stdout + p.stderr)
        return p

    def writes(self):
        return [r for r in self.az.requests()
                if r["mutating"] and r["api"] in ("graph", "arm")]

    def app(self, name="platform-access-" + CLUSTER):
        return self.az.find_app(name)

    def reports(self, kind=None):
        return [r["body"] for r in self.central.reports()
                if kind is None or r["body"]["kind"] == kind]

    def secret(self, name="cloudgrant-platform-access"):
        p = self.api.kubectl("get", "secret", name, "-n", "default", "-o", "json")
        if p.returncode != 0:
            return None
        doc = json.loads(p.stdout)
        data = {k: base64.b64decode(v).decode() for k, v in doc.get("data", {}).items()}
        if "clientSecret" in data:
            ISSUED.add(data["clientSecret"])
        return data

    def role_assignments(self, principal):
        return sorted((a["properties"]["scope"].lower(),
                       a["properties"]["roleDefinitionId"].rsplit("/", 1)[1].lower())
                      for a in self.az.assignments(principal))


def expect(p, code, *needles):
    out = p.stdout + p.stderr
    assert p.returncode == code, "exit %d, expected %d:\n%s" % (p.returncode, code, out)
    for n in needles:
        assert n in out, "%r not in:\n%s" % (n, out)


def with_env(fn):
    def wrapper():
        with azure_harness.azure(subscription=SUB) as az, harness.k8s_api("aks") as api, \
                central_harness.central(token=TOKEN) as central:
            e = Env(az, api, central)
            fn(e)
            assert not az.violations(), az.violations()
            ISSUED.update(az.issued_secrets())
            SCAN.take_reports(e.reports())
            SCAN.take_tree(e.dir, skip=e.own_files)
            SCAN.take_k8s(api, credential_secrets=("cloudgrant-platform-access", "cloudgrant-node-autoscaler"))
            SCAN.take_logs(azure=az, k8s=api, central=central)
    wrapper.__name__ = fn.__name__
    return wrapper


def last_credentials(e):
    cred = e.reports("OnboardingReport")[-1].get("credentials")
    if cred and cred.get("clientSecret"):
        ISSUED.add(cred["clientSecret"])
    return cred


@with_env
def test_platform_access_secret_onboard_rerun_and_login(e):
    p = e.run("plan")
    expect(p, 0, "app-registration", "client-secret", "Contributor")
    assert not e.writes()
    p = e.run("onboard")
    expect(p, 0, "client secret")
    app = e.app()
    assert app is not None and "cloudgrant" in app["tags"], app
    assert app["signInAudience"] == "AzureADMyOrg", app
    sp = e.az.find_sp(app["appId"])
    assert sp is not None
    assert e.role_assignments(sp["id"]) == [("/subscriptions/" + SUB, CONTRIBUTOR)]
    for a in e.az.assignments(sp["id"]):
        assert a["properties"]["principalType"] == "ServicePrincipal", a
    assert len(app["passwordCredentials"]) == 1
    cred = last_credentials(e)
    assert cred["type"] == "azure-client-secret" and cred["clientId"] == app["appId"], cred
    assert cred["tenantId"] == e.az.tenant and cred["subscriptionId"] == SUB, cred
    assert cred["keyId"] == app["passwordCredentials"][0]["keyId"], cred
    stored = e.secret()
    assert stored["clientId"] == app["appId"] and stored["tenantId"] == e.az.tenant, stored
    assert stored["clientSecret"] == cred["clientSecret"]
    # the secret handed over is a working credential for the new identity
    tok = e.az.login(app["appId"], secret=cred["clientSecret"], resource="arm")
    ISSUED.add(tok)
    # a second onboard on the converged account changes nothing and writes nothing
    e.az.clear_requests()
    expect(e.run("onboard"), 0, "0 changes")
    assert not e.writes(), e.writes()
    expect(e.run("check"), 0, "no drift")
    assert len(e.app()["passwordCredentials"]) == 1


@with_env
def test_replication_lag_and_throttling(e):
    e.az.set_replication_lag(2)
    e.az.set_arm_principal_lag(2)
    e.az.inject(method="PUT", path_regex="roleAssignments", count=1, status=429,
                code="TooManyRequests", retry_after=1)
    expect(e.run("onboard"), 0)
    app = e.app()
    sp = e.az.find_sp(app["appId"])
    assert e.role_assignments(sp["id"]) == [("/subscriptions/" + SUB, CONTRIBUTOR)]
    codes = [r["code"] for r in e.az.requests()]
    assert "PrincipalNotFound" in codes, codes
    apps = [r for r in e.az.requests() if r["api"] == "graph" and r["method"] in ("POST", "PATCH")
            and "/applications" in r["path"] and "Password" not in r["path"]]
    assert len(apps) == 1, apps  # one idempotent upsert, whatever the lag


@with_env
def test_drift_detected_and_repaired(e):
    expect(e.run("onboard"), 0)
    app = e.app()
    sp = e.az.find_sp(app["appId"])
    # a removed role assignment, a foreign secret, an extra assignment, a multi-tenant app
    name = e.az.assignments(sp["id"])[0]["name"]
    e.az.remove_role_assignment(name)
    foreign = e.az.add_password(app["id"], display_name="added by hand")
    ISSUED.add(foreign["secretText"])
    e.az.add_role_assignment("/subscriptions/%s/resourceGroups/rg-prod" % SUB,
                             "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", sp["id"])
    e.az.set_app(app["id"], signInAudience="AzureADMultipleOrgs")
    p = e.run("check")
    expect(p, 3, "role-assignment", "client-secret", foreign["keyId"], "sign-in audience")
    p = e.run("check", "-o", "json")
    drift = json.loads(p.stdout)["drift"]
    kinds = sorted({d["kind"] for d in drift})
    assert kinds == ["app-registration", "client-secret", "role-assignment"], drift
    expect(e.run("check", "--fix"), 0, "repaired")
    app = e.app()
    assert app["signInAudience"] == "AzureADMyOrg"
    assert [p["keyId"] for p in app["passwordCredentials"]] != [foreign["keyId"]]
    assert foreign["keyId"] not in [p["keyId"] for p in app["passwordCredentials"]]
    assert e.role_assignments(sp["id"]) == [("/subscriptions/" + SUB, CONTRIBUTOR)]
    expect(e.run("check"), 0, "no drift")


@with_env
def test_expiring_secret_and_deleted_principal(e):
    expect(e.run("onboard"), 0)
    app = e.app()
    old = app["passwordCredentials"][0]["keyId"]
    # the secret handed over expires within the renewal window: drift, and --fix replaces it
    e.az.set_password_end(app["id"], old, "2026-12-01T00:00:00Z")
    expect(e.run("check"), 3, "renewal window")
    expect(e.run("check", "--fix"), 0, "repaired")
    keys = [p["keyId"] for p in e.app()["passwordCredentials"]]
    assert len(keys) == 1 and keys[0] != old, keys
    assert e.secret()["keyId"] == keys[0]
    drift = e.reports("DriftReport")[-1]["credentials"]
    ISSUED.add(drift["clientSecret"])
    assert drift["keyId"] == keys[0], drift
    # a deleted service principal is recreated with its role assignment
    sp = e.az.find_sp(app["appId"])
    e.az.delete_sp(sp["id"])
    expect(e.run("check"), 3, "service-principal")
    expect(e.run("check", "--fix"), 0, "repaired")
    sp = e.az.find_sp(app["appId"])
    assert e.role_assignments(sp["id"]) == [("/subscriptions/" + SUB, CONTRIBUTOR)]


@with_env
def test_custom_role_on_cluster_groups(e):
    p = e.run("onboard", "--azure-grant", "custom")
    expect(p, 0, "custom-role")
    prof = e.az.role_definition("platform-access-" + CLUSTER)
    assert prof is not None, "no custom role"
    props = prof["properties"]
    assert props["type"] == "CustomRole"
    app = e.app()
    sp = e.az.find_sp(app["appId"])
    got = e.role_assignments(sp["id"])
    rid = prof["name"].lower()
    scopes = {s for s, r in got if r == rid}
    assert got and all(r == rid for _, r in got), got
    assert all(s.startswith("/subscriptions/%s" % SUB) for s in scopes), scopes
    e.az.clear_requests()
    expect(e.run("onboard", "--azure-grant", "custom"), 0, "0 changes")
    assert not e.writes()
    # a permission added by hand is drift, and --fix restores exactly the profile's actions
    actions = props["permissions"][0]["actions"]
    e.az.set_role_definition_actions("platform-access-" + CLUSTER,
                                     actions + ["Microsoft.Authorization/*/write"])
    expect(e.run("check", "--azure-grant", "custom"), 3, "custom-role")
    expect(e.run("check", "--fix", "--azure-grant", "custom"), 0, "repaired")
    now = e.az.role_definition("platform-access-" + CLUSTER)["properties"]
    assert sorted(now["permissions"][0]["actions"]) == sorted(actions)
    # back to the built-in grant: Contributor assigned, the custom role removed
    expect(e.run("onboard"), 0)
    assert e.role_assignments(sp["id"]) == [("/subscriptions/" + SUB, CONTRIBUTOR)]
    assert e.az.role_definition("platform-access-" + CLUSTER) is None


@with_env
def test_federated_credential_no_secret(e):
    fed = ["--azure-credential", "federated", "--azure-federated-issuer", ISSUER,
           "--azure-federated-subject", SUBJECT]
    expect(e.run("onboard", *fed), 0)
    app = e.app()
    assert app["passwordCredentials"] == [], app["passwordCredentials"]
    fics = e.az.fics(app["id"])
    assert len(fics) == 1 and fics[0]["issuer"] == ISSUER and fics[0]["subject"] == SUBJECT
    assert fics[0]["audiences"] == ["api://AzureADTokenExchange"]
    cred = last_credentials(e)
    assert cred == {"type": "azure-federated", "tenantId": e.az.tenant, "subscriptionId": SUB,
                    "clientId": app["appId"], "issuer": ISSUER, "subject": SUBJECT,
                    "audience": "api://AzureADTokenExchange"}, cred
    # the platform, with a token from its issuer for that subject, is the app
    assertion = e.az.issue_federated_token(ISSUER, SUBJECT)
    ISSUED.add(assertion)
    ISSUED.add(e.az.login(app["appId"], assertion=assertion, resource="arm"))
    e.az.clear_requests()
    expect(e.run("onboard", *fed), 0, "0 changes")
    assert not e.writes()
    expect(e.run("rotate", *fed), 2, "no secret to rotate")
    # a secret added by hand defeats the point of federation: drift, removed by --fix
    extra = e.az.add_password(app["id"], display_name="added by hand")
    ISSUED.add(extra["secretText"])
    expect(e.run("check", *fed), 3, extra["keyId"])
    expect(e.run("check", "--fix", *fed), 0, "repaired")
    assert e.app()["passwordCredentials"] == []
    expect(e.run("offboard", *fed), 0)
    assert e.app() is None


@with_env
def test_app_policy_caps_secret_lifetime(e):
    e.az.set_max_secret_lifetime_days(90)
    p = e.run("onboard")
    expect(p, 1, "lifetimeDays", "--azure-credential federated")
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    # the rest converged; only the secret is missing, and nothing is left half-made
    app = e.app()
    assert app is not None and app["passwordCredentials"] == []


@with_env
def test_rotate_then_offboard(e):
    expect(e.run("onboard"), 0)
    old = e.app()["passwordCredentials"][0]["keyId"]
    p = e.run("rotate")
    expect(p, 0, "handed over")
    keys = [c["keyId"] for c in e.app()["passwordCredentials"]]
    assert len(keys) == 1 and keys[0] != old, keys
    assert last_credentials(e)["keyId"] == keys[0]
    assert e.secret()["keyId"] == keys[0]
    app = e.app()
    sp = e.az.find_sp(app["appId"])
    p = e.run("offboard")
    expect(p, 0)
    assert e.app() is None
    assert e.az.find_sp(app["appId"]) is None
    assert e.az.assignments(sp["id"]) == []
    assert e.secret() is None
    assert e.reports("OffboardingReport")


@with_env
def test_node_autoscaler_profile(e):
    env = {"CLOUDGRANT_PROFILE": "node-autoscaler"}
    expect(e.run("plan", env=env), 0)
    expect(e.run("onboard", env=env), 0)
    e.az.clear_requests()
    expect(e.run("onboard", env=env), 0, "0 changes")
    assert not e.writes()
    expect(e.run("check", env=env), 0, "no drift")
    expect(e.run("offboard", env=env), 0)


@with_env
def test_agent_credentials_workload_identity_and_imds(e):
    token_file = os.path.join(e.dir, "azure-identity-token")
    wi = e.az.workload_identity_env(token_file)
    e.own_files.append(token_file)
    with open(token_file) as f:
        ISSUED.add(f.read().strip())
    env = {k: None for k in ("AZURE_CLIENT_SECRET",)}
    env.update(wi)
    expect(e.run("plan", env=env), 0, "app-registration")
    # managed identity: no AZURE_* variables at all
    env = {k: None for k in ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_ID", "AZURE_TENANT_ID",
                             "AZURE_AUTHORITY_HOST")}
    env.update(e.az.imds_env())
    expect(e.run("plan", env=env), 0, "app-registration")
    logins = {r["api"] for r in e.az.requests()}
    assert "imds" in logins and "login" in logins, logins


@with_env
def test_identity_names_the_cluster_from_arm(e):
    # The nodes do not carry the AKS cluster's name; its node resource group's tags do.
    p = e.run("identity", "-o", "json")
    expect(p, 0)
    cluster = json.loads(p.stdout)["cluster"]
    assert cluster["name"] == CLUSTER and cluster["account"] == SUB, cluster
    assert cluster["provider"] == "azure", cluster
    # without Azure credentials it stays unknown, and nothing is asked of Azure
    e.az.clear_requests()
    p = e.run("identity", "-o", "json", env={"AZURE_CLIENT_ID": None})
    expect(p, 0)
    assert json.loads(p.stdout)["cluster"]["name"] is None
    asked = [r for r in e.az.requests() if r["api"] in ("arm", "login")
             or "/identity/oauth2/token" in r["path"]]
    assert not asked, asked  # (the instance metadata is read, as on every cloud)


def test_zz_no_secret_left_anywhere():
    hits = SCAN.check()
    assert not hits, "secrets found: %s" % hits


def main():
    if not azure_harness.sdk_available():
        if os.environ.get("CI") == "true":
            print("python3-azure is missing (scripts/setup.sh installs it)")
            return 1
        print("skipped: python3-azure is not installed")
        return 77
    return harness.run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
