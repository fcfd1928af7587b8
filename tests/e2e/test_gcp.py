#!/usr/bin/env python3
"""End-to-end GCP: every command against the stateful GCP emulator (tests/emulators/gcp_api.py,
whose every request body is checked against gcloud's own message classes), the Kubernetes API
emulator (a GKE cluster) and the central endpoint. The result is read back with the real
gcloud. Both built-in profiles, key and keyless modes, reruns with zero writes, a concurrent
IAM policy writer, a fresh project whose APIs lag, each drift scenario, rotate and offboard,
and a scan of everything printed for every secret the emulator issued."""
import base64
import json
import os
import subprocess
import sys
import tempfile
import time

SRC = os.environ.get("CG_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "emulators"))
import central_harness  # noqa: E402
import gcp_harness  # noqa: E402
import harness  # noqa: E402
import secret_scan  # noqa: E402

BIN = harness.find_binary()
PROJECT = "acme-prod-321"  # the GKE fixture's project
CLUSTER = "gke-demo"       # what the metadata server names the cluster
TOKEN = "report-token-gcp-7c1d"
SECRET_NAME = "cloudgrant-node-autoscaler"
SEED_PERMISSIONS = sorted("""
compute.addresses.use compute.disks.create compute.disks.setLabels compute.disks.use
compute.images.useReadOnly compute.instanceGroupManagers.get compute.instanceGroupManagers.update
compute.instanceGroups.get compute.instanceTemplates.create compute.instanceTemplates.delete
compute.instanceTemplates.get compute.instanceTemplates.list compute.instances.create
compute.instances.delete compute.instances.get compute.instances.list compute.instances.setLabels
compute.instances.setMetadata compute.instances.setServiceAccount compute.instances.setTags
compute.instances.start compute.instances.stop compute.networks.use compute.networks.useExternalIp
compute.subnetworks.get compute.subnetworks.use compute.subnetworks.useExternalIp compute.zones.get
compute.zones.list container.certificateSigningRequests.approve container.clusters.get
container.clusters.update container.operations.get serviceusage.services.list""".split())
SCAN = secret_scan.SecretScan()  # everything each run left behind, for the secret scan
ISSUED = SCAN.issued  # every secret the emulator issued or the test configured


def sa_email(prefix="castai-gke-"):
    import hashlib
    return "%s%s@%s.iam.gserviceaccount.com" % (
        prefix, hashlib.sha1(CLUSTER.encode()).hexdigest()[:8], PROJECT)


class Env:
    def __init__(self, g, api, central):
        self.g, self.api, self.central = g, api, central
        self.dir = tempfile.mkdtemp(prefix="cg-gcp-")
        self.own_files = []  # files the test wrote on purpose, left out of the scan
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("AWS_", "CLOUDGRANT_", "KUBE", "GOOGLE_", "GCE_",
                                         "CLOUDSDK_"))}
        self.env.update(g.env())
        self.env.update(g.metadata_env())
        self.env.update({"HOME": self.dir, "CLOUDGRANT_KUBECONFIG": api.kubeconfig,
                         "CLOUDGRANT_PROFILE": "node-autoscaler",
                         "CLOUDGRANT_REPORT_URL": central.report_url,
                         "CLOUDGRANT_REPORT_TOKEN": TOKEN})
        ISSUED.update([TOKEN, g.token, g.admin_key["private_key"], api.token])

    def run(self, *args, env=None, timeout=180):
        e = dict(self.env, **(env or {}))
        e = {k: v for k, v in e.items() if v is not None}
        p = subprocess.run([BIN] + list(args), env=e, capture_output=True, text=True,
                           timeout=timeout)
        SCAN.take_output("output", p.stdout + p.stderr)
        return p

    def writes(self):
        """Mutating calls to the cloud APIs (token requests excluded)."""
        return [r for r in self.g.requests()
                if r["mutating"] and r["api"] in ("iam", "serviceusage", "crm")]

    def keys(self, email=None):
        out = self.g.gcloud("iam", "service-accounts", "keys", "list", "--iam-account",
                            email or sa_email(), "--project", PROJECT, "--managed-by", "user")
        return sorted(k["name"].rsplit("/", 1)[1] for k in out)

    def policy(self):
        return self.g.gcloud("projects", "get-iam-policy", PROJECT)

    def members(self, role):
        return [m for b in self.policy().get("bindings", []) if b["role"] == role
                and "condition" not in b for m in b["members"]]

    def reports(self, kind=None):
        return [r["body"] for r in self.central.reports()
                if kind is None or r["body"]["kind"] == kind]

    def secret(self):
        p = self.api.kubectl("get", "secret", SECRET_NAME, "-n", "default", "-o", "json")
        if p.returncode != 0:
            return None
        doc = json.loads(p.stdout)
        key = doc.get("data", {}).get("key.json")
        if key:
            ISSUED.add(json.loads(base64.b64decode(key))["private_key"])
        return doc


def expect(p, code, *needles):
    out = p.stdout + p.stderr
    assert p.returncode == code, "exit %d, expected %d:\n%s" % (p.returncode, code, out)
    for n in needles:
        assert n in out, "%r not in:\n%s" % (n, out)


def with_env(fn):
    def wrapper():
        with gcp_harness.gcp(project=PROJECT, cluster_name=CLUSTER) as g, \
                harness.k8s_api("gke") as api, central_harness.central(token=TOKEN) as central:
            g.add_foreign_binding("roles/viewer", "user:alice@example.com")
            g.add_foreign_binding("roles/container.developer", "group:ops@example.com",
                                  condition={"title": "weekdays",
                                             "expression": "request.time.getDayOfWeek() < 5"})
            e = Env(g, api, central)
            fn(e)
            assert not g.violations(), g.violations()
            ISSUED.update(g.issued_secrets())
            SCAN.take_reports(e.reports())
            SCAN.take_tree(e.dir, skip=e.own_files)
            SCAN.take_k8s(api, credential_secrets=(SECRET_NAME, "cloudgrant-platform-access"))
            SCAN.take_logs(gcp=g, k8s=api, central=central)
    wrapper.__name__ = fn.__name__
    return wrapper


def jwt_token_works(g, key_file):
    """The key handed over signs a JWT the emulator's token endpoint accepts (RS256)."""
    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    now = int(time.time())
    header = b64(json.dumps({"alg": "RS256", "typ": "JWT",
                             "kid": key_file["private_key_id"]}).encode())
    claims = b64(json.dumps({"iss": key_file["client_email"], "aud": key_file["token_uri"],
                             "scope": "https://www.googleapis.com/auth/cloud-platform",
                             "iat": now, "exp": now + 600}).encode())
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as f:
        f.write(key_file["private_key"])
        f.flush()
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", f.name],
                             input=("%s.%s" % (header, claims)).encode(), capture_output=True,
                             check=True).stdout
    import urllib.parse
    import urllib.request
    body = urllib.parse.urlencode({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                   "assertion": "%s.%s.%s" % (header, claims, b64(sig))})
    with urllib.request.urlopen(key_file["token_uri"], data=body.encode(), timeout=10) as r:
        tok = json.loads(r.read())["access_token"]
    ISSUED.add(tok)
    return tok


@with_env
def test_node_autoscaler_key_onboard_rerun_and_gcloud_view(e):
    p = e.run("plan", "-o", "json")
    expect(p, 0)
    kinds = sorted({a["kind"] for a in json.loads(p.stdout)["actions"]})
    assert kinds == ["binding", "custom-role", "key", "service", "service-account"], kinds
    assert not e.writes(), e.writes()

    p = e.run("onboard")
    expect(p, 0, "handed over to the platform")
    email = sa_email()
    sa = e.g.gcloud("iam", "service-accounts", "describe", email, "--project", PROJECT)
    assert "cloudgrant" in sa["description"], sa
    role = e.g.gcloud("iam", "roles", "describe", "castai.gkeAccess", "--project", PROJECT)
    assert sorted(role["includedPermissions"]) == SEED_PERMISSIONS, role
    assert role["stage"] == "ALPHA" and role["title"] == "Role to manage GKE cluster via CAST AI"
    member = "serviceAccount:" + email
    for r in ("roles/container.developer", "roles/iam.serviceAccountUser",
              "projects/%s/roles/castai.gkeAccess" % PROJECT):
        assert member in e.members(r), (r, e.policy())
    # other parties' bindings, conditional ones included, are untouched
    pol = e.policy()
    assert "user:alice@example.com" in e.members("roles/viewer")
    assert any(b.get("condition", {}).get("title") == "weekdays" for b in pol["bindings"]), pol
    enabled = {s["config"]["name"] for s in e.g.gcloud("services", "list", "--enabled",
                                                       "--project", PROJECT)}
    assert {"iam.googleapis.com", "container.googleapis.com", "compute.googleapis.com",
            "cloudresourcemanager.googleapis.com"} <= enabled, enabled

    keys = e.keys()
    assert len(keys) == 1, keys
    body = e.reports("OnboardingReport")[0]
    cred = body["credentials"]
    assert cred["type"] == "gcp-service-account-key" and cred["keyId"] == keys[0], cred
    ISSUED.add(cred["keyFile"]["private_key"])
    assert cred["keyFile"]["client_email"] == email
    jwt_token_works(e.g, cred["keyFile"])
    assert {r["kind"] for r in body["resources"]} >= {"service", "service-account",
                                                      "custom-role", "binding", "key"}
    sec = e.secret()
    assert sec["metadata"]["annotations"]["cloudgrant.io/delivered"] == "true", sec
    assert base64.b64decode(sec["data"]["keyId"]).decode() == keys[0]

    e.g.clear_requests()
    p = e.run("onboard")
    expect(p, 0, "0 changes")
    assert not e.writes(), e.writes()
    assert e.keys() == keys
    p = e.run("check")
    expect(p, 0, "no drift")
    assert not e.writes(), e.writes()


@with_env
def test_platform_access_profile_with_credentials_file(e):
    out = os.path.join(e.dir, "key.json")
    e.own_files.append(out)  # the credentials-out target: the key belongs there
    p = e.run("onboard", "--profile", "platform-access", "--credentials-out", out,
              env={"CLOUDGRANT_REPORT_URL": None})
    expect(p, 0, "written to " + out)
    email = sa_email("platform-access-")
    assert "serviceAccount:" + email in e.members("roles/compute.admin")
    assert oct(os.stat(out).st_mode & 0o777) == "0o600"
    with open(out) as f:
        key = json.load(f)
    ISSUED.add(key["private_key"])
    assert key["type"] == "service_account" and key["client_email"] == email
    jwt_token_works(e.g, key)
    e.g.clear_requests()
    expect(e.run("onboard", "--profile", "platform-access", "--credentials-out", out,
                 env={"CLOUDGRANT_REPORT_URL": None}), 0, "0 changes")
    assert not e.writes()


@with_env
def test_platform_access_every_command(e):
    prof = ["--profile", "platform-access"]
    email = sa_email("platform-access-")
    member = "serviceAccount:" + email
    expect(e.run("plan", *prof), 0, "roles/compute.admin")
    expect(e.run("onboard", *prof), 0, "handed over")
    expect(e.run("check", *prof), 0, "no drift")
    e.g.remove_binding("roles/compute.admin", member)
    expect(e.run("check", *prof), 3, "roles/compute.admin")
    expect(e.run("check", "--fix", *prof), 0, "repaired")
    old = e.keys(email)
    expect(e.run("rotate", *prof), 0, "handed over")
    new = e.keys(email)
    assert len(new) == 1 and new != old, (old, new)
    for r in e.reports("OnboardingReport"):
        if isinstance(r["credentials"], dict) and "keyFile" in r["credentials"]:
            ISSUED.add(r["credentials"]["keyFile"]["private_key"])
    expect(e.run("offboard", *prof), 0)
    assert member not in json.dumps(e.policy())
    assert e.g.gcloud_run("iam", "service-accounts", "describe", email,
                          "--project", PROJECT).returncode != 0


@with_env
def test_keyless_impersonation(e):
    who = "serviceAccount:platform@castai-prod.iam.gserviceaccount.com"
    p = e.run("onboard", "--gcp-credential", "keyless", "--gcp-impersonator", who)
    expect(p, 0)
    email = sa_email()
    assert e.keys() == []
    pol = e.g.gcloud("iam", "service-accounts", "get-iam-policy", email, "--project", PROJECT)
    grants = {(b["role"], m) for b in pol.get("bindings", []) for m in b["members"]}
    assert grants == {("roles/iam.serviceAccountTokenCreator", who)}, grants
    cred = e.reports("OnboardingReport")[-1]["credentials"]
    assert cred == {"type": "gcp-impersonation", "projectId": PROJECT, "serviceAccount": email,
                    "impersonator": who}, cred
    e.g.clear_requests()
    expect(e.run("onboard", "--gcp-credential", "keyless", "--gcp-impersonator", who), 0,
           "0 changes")
    assert not e.writes()
    p = e.run("rotate", "--gcp-credential", "keyless", "--gcp-impersonator", who)
    expect(p, 2, "no key to rotate")
    # an extra impersonator added by hand is drift, removed by --fix
    e.g.call("POST", "/iam/v1/projects/%s/serviceAccounts/%s:setIamPolicy" % (PROJECT, email),
             {"policy": {"bindings": [{"role": "roles/iam.serviceAccountTokenCreator",
                                       "members": [who, "user:mallory@example.com"]}]}})
    p = e.run("check", "--gcp-credential", "keyless", "--gcp-impersonator", who)
    expect(p, 3, "user:mallory@example.com")
    expect(e.run("check", "--fix", "--gcp-credential", "keyless", "--gcp-impersonator", who), 0,
           "repaired")
    pol = e.g.gcloud("iam", "service-accounts", "get-iam-policy", email, "--project", PROJECT)
    assert "user:mallory@example.com" not in json.dumps(pol), pol
    expect(e.run("offboard", "--gcp-credential", "keyless", "--gcp-impersonator", who), 0)
    assert e.g.gcloud_run("iam", "service-accounts", "describe", email,
                          "--project", PROJECT).returncode != 0


@with_env
def test_drift_detected_and_repaired(e):
    expect(e.run("onboard"), 0)
    email = sa_email()
    member = "serviceAccount:" + email
    delivered = e.keys()
    perms = [x for x in SEED_PERMISSIONS if x != "compute.instances.stop"]
    e.g.set_role_permissions("castai.gkeAccess", perms + ["compute.instances.setIamPolicy"])
    e.g.remove_binding("roles/container.developer", member)
    e.g.disable_service("container.googleapis.com")
    extra = e.g.create_key(email)
    ISSUED.add(json.loads(extra["key_file"])["private_key"]
               if isinstance(extra["key_file"], str) else extra["key_file"]["private_key"])
    e.g.add_foreign_binding("roles/owner", member)

    p = e.run("check", "-o", "json")
    expect(p, 3)
    drift = {(d["kind"], d["change"]) for d in json.loads(p.stdout)["drift"]}
    assert drift >= {("custom-role", "changed"), ("binding", "missing"), ("service", "missing"),
                     ("key", "unexpected"), ("binding", "unexpected")}, drift
    text = json.dumps(json.loads(p.stdout))
    assert "+compute.instances.stop" in text and "-compute.instances.setIamPolicy" in text
    assert e.reports("DriftReport"), "no drift report"

    expect(e.run("check", "--fix"), 0, "repaired")
    role = e.g.gcloud("iam", "roles", "describe", "castai.gkeAccess", "--project", PROJECT)
    assert sorted(role["includedPermissions"]) == SEED_PERMISSIONS
    assert member in e.members("roles/container.developer")
    assert member not in e.members("roles/owner")
    assert e.keys() == delivered, (e.keys(), delivered)
    expect(e.run("check"), 0, "no drift")


@with_env
def test_deleted_service_account_is_recreated_with_a_new_key(e):
    expect(e.run("onboard"), 0)
    old = e.keys()
    e.g.delete_sa(sa_email())
    p = e.run("check")
    expect(p, 3, "service-account")
    expect(e.run("check", "--fix"), 0, "repaired")
    new = e.keys()
    assert len(new) == 1 and new != old, (old, new)
    cred = e.reports("DriftReport")[-1]["credentials"]
    assert cred and cred["keyId"] == new[0], cred
    ISSUED.add(cred["keyFile"]["private_key"])
    # the binding of the deleted account ("deleted:serviceAccount:...") is cleaned up
    assert "deleted:serviceAccount:" not in json.dumps(e.policy())


@with_env
def test_concurrent_policy_writer_keeps_its_binding(e):
    e.g.inject_concurrent_write_on_next_set()
    expect(e.run("onboard"), 0)
    pol = e.policy()
    mine = "serviceAccount:" + sa_email()
    assert mine in e.members("roles/iam.serviceAccountUser"), pol
    sets = [r for r in e.g.requests() if r["path"].endswith(":setIamPolicy") and r["api"] == "crm"]
    assert any(r["status"] == 409 for r in sets), [(r["status"], r["rpc"]) for r in sets]
    before = json.dumps(pol, sort_keys=True)
    # what the other writer added is still there: every binding not ours survived
    others = [(b["role"], m) for b in pol["bindings"] for m in b["members"] if m != mine]
    assert ("roles/viewer", "user:alice@example.com") in others, before
    assert len(others) >= 3, others  # alice, the conditional group, the concurrent writer's


@with_env
def test_fresh_project_with_lagging_apis_and_new_account(e):
    e.g.set_enable_lag(3)
    e.g.set_sa_visibility_lag(2)
    e.g.set_op_polls(3)
    expect(e.run("onboard"), 0)
    assert "serviceAccount:" + sa_email() in e.members("roles/container.developer")
    disabled = [r for r in e.g.requests() if r["rpc"] == "PERMISSION_DENIED"]
    assert disabled, "the emulator's API lag was never seen"


@with_env
def test_flapping_replicas_are_confirmed_by_consecutive_reads(e):
    # A just-enabled API and a new service account, seen by one replica and missed by the
    # next: the agent reads until two reads in a row succeed before it depends on them.
    e.g.disable_service("iam.googleapis.com")
    e.g.set_enable_pattern("-+-")
    e.g.set_sa_get_pattern("-+-")
    expect(e.run("onboard"), 0)
    reqs = e.g.requests()
    sa_gets = [r["status"] for r in reqs if r["method"] == "GET" and r["api"] == "iam"
               and r["path"].endswith("/serviceAccounts/" + sa_email())]
    # miss, hit, miss (count reset), hit, hit: confirmed only after the last two
    assert sa_gets[-5:] == [404, 200, 404, 200, 200], sa_gets
    first_key = next(i for i, r in enumerate(reqs) if r["path"].endswith("/keys")
                     and r["method"] == "POST")
    last_get = max(i for i, r in enumerate(reqs) if r["method"] == "GET"
                   and r["path"].endswith("/serviceAccounts/" + sa_email()))
    assert last_get < first_key, "the key was asked for before the account was confirmed"
    lists = [r["status"] for r in reqs if r["api"] == "iam" and r["method"] == "GET"
             and r["path"].endswith("/serviceAccounts")]
    assert 403 in lists and lists[-2:] == [200, 200], lists
    assert len(e.keys()) == 1


@with_env
def test_keyless_workload_identity_federation(e):
    # A profile whose keyless grant is Workload Identity Federation: the platform's external
    # identity (a pool subject) may act as the service account; no key, no impersonator.
    wif = ("principal://iam.googleapis.com/projects/123456789012/locations/global/"
           "workloadIdentityPools/platform/subject/castai-%s" % CLUSTER)
    path = os.path.join(e.dir, "wif.yaml")
    with open(path, "w") as f:
        f.write("""apiVersion: cloudgrant.io/v1alpha1
kind: GrantProfile
name: wif-access
gcp:
  serviceAccount:
    id: "wif-{{cluster.name | sha1 | trunc 8}}"
    description: "Federated access for {{cluster.name}} (managed by cloudgrant)"
  services: [serviceusage.googleapis.com, iam.googleapis.com,
             cloudresourcemanager.googleapis.com, compute.googleapis.com]
  roles: [roles/compute.viewer]
  credential: keyless
  keyless:
    workloadIdentityUser: "%s"
""" % wif)
    env = {"CLOUDGRANT_PROFILE": path}
    email = sa_email("wif-")
    p = e.run("plan", env=env)
    expect(p, 0, "roles/iam.workloadIdentityUser")
    expect(e.run("onboard", env=env), 0)
    assert e.keys(email) == []
    pol = e.g.gcloud("iam", "service-accounts", "get-iam-policy", email, "--project", PROJECT)
    grants = {(b["role"], m) for b in pol.get("bindings", []) for m in b["members"]}
    assert grants == {("roles/iam.workloadIdentityUser", wif)}, grants
    cred = e.reports("OnboardingReport")[-1]["credentials"]
    assert cred == {"type": "gcp-workload-identity", "projectId": PROJECT,
                    "serviceAccount": email, "workloadIdentityUser": wif}, cred
    assert e.secret() is None or "key.json" not in e.secret().get("data", {})
    e.g.clear_requests()
    expect(e.run("onboard", env=env), 0, "0 changes")
    assert not e.writes()
    # the federation binding removed by hand is drift, and --fix puts it back
    e.g.call("POST", "/iam/v1/projects/%s/serviceAccounts/%s:setIamPolicy" % (PROJECT, email),
             {"policy": {"bindings": []}})
    expect(e.run("check", env=env), 3, "roles/iam.workloadIdentityUser")
    expect(e.run("check", "--fix", env=env), 0, "repaired")
    pol = e.g.gcloud("iam", "service-accounts", "get-iam-policy", email, "--project", PROJECT)
    assert wif in json.dumps(pol), pol
    expect(e.run("offboard", env=env), 0)
    assert e.g.gcloud_run("iam", "service-accounts", "describe", email,
                          "--project", PROJECT).returncode != 0


@with_env
def test_org_policy_forbids_keys(e):
    e.g.set_org_policy_disable_key_creation(True)
    p = e.run("onboard")
    assert p.returncode in (1, 2), p.stdout + p.stderr
    expect(p, p.returncode, "iam.disableServiceAccountKeyCreation", "keyless")
    assert p.stderr.count("\n") == 1, p.stderr
    assert e.reports("OnboardingReport")[-1]["status"] == "failed"


@with_env
def test_soft_deleted_role_is_undeleted_or_explained(e):
    expect(e.run("onboard"), 0)
    st, doc, _ = e.g.call("DELETE", "/iam/v1/projects/%s/roles/castai.gkeAccess" % PROJECT)
    assert st == 200, doc
    expect(e.run("check"), 3, "undelete")
    expect(e.run("check", "--fix"), 0, "repaired")
    role = e.g.gcloud("iam", "roles", "describe", "castai.gkeAccess", "--project", PROJECT)
    assert not role.get("deleted") and sorted(role["includedPermissions"]) == SEED_PERMISSIONS
    e.g.call("DELETE", "/iam/v1/projects/%s/roles/castai.gkeAccess" % PROJECT)
    e.g.age_deleted_role("castai.gkeAccess", 10)
    p = e.run("check", "--fix")
    expect(p, 1, "another id")


@with_env
def test_rotate_then_offboard(e):
    expect(e.run("onboard"), 0)
    old = e.keys()
    p = e.run("rotate")
    expect(p, 0, "handed over")
    new = e.keys()
    assert len(new) == 1 and new != old, (old, new)
    cred = e.reports("OnboardingReport")[-1]["credentials"]
    assert cred["keyId"] == new[0]
    ISSUED.add(cred["keyFile"]["private_key"])
    jwt_token_works(e.g, cred["keyFile"])

    p = e.run("offboard")
    expect(p, 0)
    email = sa_email()
    assert e.g.gcloud_run("iam", "service-accounts", "describe", email,
                          "--project", PROJECT).returncode != 0
    assert email not in json.dumps(e.policy())
    assert "user:alice@example.com" in e.members("roles/viewer")
    assert any(b.get("condition") for b in e.policy()["bindings"])
    role = e.g.call("GET", "/iam/v1/projects/%s/roles/castai.gkeAccess" % PROJECT)[1]
    assert role.get("deleted") is True, role
    assert e.secret() is None
    assert e.reports("OffboardingReport")
    expect(e.run("offboard"), 0, "0 changes")


@with_env
def test_metadata_server_credentials(e):
    # GKE Workload Identity: no key file, the metadata server gives the token
    env = dict(e.env)
    del env["GOOGLE_APPLICATION_CREDENTIALS"]
    p = subprocess.run([BIN, "plan"], env=env, capture_output=True, text=True, timeout=120)
    SCAN.take_output("output", p.stdout + p.stderr)
    expect(p, 0, "service account " + sa_email())
    assert any(r["path"].endswith("/service-accounts/default/token") for r in e.g.requests())


def test_zz_no_secret_left_anywhere():
    hits = SCAN.check()
    assert not hits, "secrets found: %s" % hits


def main():
    if not gcp_harness.gcloud_available():
        if os.environ.get("CI") == "true":
            print("gcloud is missing\n0 passed, 1 failed")
            return 1
        print("SKIP: gcloud not found")
        return 77
    return harness.run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
