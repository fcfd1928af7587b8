#!/usr/bin/env python3
"""End-to-end OUTSCALE: every command against the stateful OUTSCALE API emulator
(tests/emulators/osc_api.py, which verifies the OSC4 signature of every request and checks
each body against Outscale's request models), the Kubernetes API emulator (an Outscale cluster)
and the central endpoint. Both built-in profiles, reruns with zero writes, drift on the policy
document, the links and the keys (age, expiry, foreign keys) detected and repaired, the
account's cap on key lifetimes, consistency lag and throttling, rotate and offboard, credentials
from ~/.osc/config.json, a refused signature sent once, a user cloudgrant did not make left
alone, and a scan of everything printed for every secret the emulator issued."""
import base64
import datetime
import json
import os
import subprocess
import sys
import tempfile

SRC = os.environ.get("CG_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "emulators"))
import central_harness  # noqa: E402
import harness  # noqa: E402
import osc_harness  # noqa: E402
import secret_scan  # noqa: E402

BIN = harness.find_binary()
CLUSTER = "osc-prod"  # the Outscale fixture's nodes do not name the cluster
USER = "platform-access-" + CLUSTER
TOKEN = "report-token-osc-91c3"
SCAN = secret_scan.SecretScan()  # everything each run left behind, for the secret scan
ISSUED = SCAN.issued  # every secret the emulator issued or the test configured


class Env:
    def __init__(self, osc, api, central):
        self.osc, self.api, self.central = osc, api, central
        self.dir = tempfile.mkdtemp(prefix="cg-osc-")
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("AWS_", "CLOUDGRANT_", "KUBE", "AZURE_", "GOOGLE_",
                                         "GCE_", "CLOUDSDK_", "OSC_"))}
        self.env.update(osc.env())
        self.env.update({"HOME": self.dir, "CLOUDGRANT_KUBECONFIG": api.kubeconfig,
                         "CLOUDGRANT_PROFILE": "platform-access",
                         "CLOUDGRANT_CLUSTER_NAME": CLUSTER,
                         "CLOUDGRANT_REPORT_URL": central.report_url,
                         "CLOUDGRANT_REPORT_TOKEN": TOKEN})
        ISSUED.update([TOKEN, osc.root_secret_key, api.token])
        self.own_files = []  # files the test wrote on purpose, left out of the scan

    def run(self, *args, env=None, timeout=180):
        e = dict(self.env, **(env or {}))
        e = {k: v for k, v in e.items() if v is not None}
        p = subprocess.run([BIN] + list(args), env=e, capture_output=True, text=True,
                           timeout=timeout)
        SCAN.take_output("output", p.stdout + p.stderr)
        return p

    def writes(self):
        return [r for r in self.osc.requests() if r.get("mutating")]

    def actions(self, mutating_only=True):
        return [r["action"] for r in self.osc.requests()
                if r.get("action") and (r.get("mutating") or not mutating_only)]

    def keys(self, user=USER):
        return self.osc.access_keys(user)

    def reports(self, kind=None):
        return [r["body"] for r in self.central.reports()
                if kind is None or r["body"]["kind"] == kind]

    def secret(self, name="cloudgrant-platform-access"):
        p = self.api.kubectl("get", "secret", name, "-n", "default", "-o", "json")
        if p.returncode != 0:
            return None
        doc = json.loads(p.stdout)
        data = {k: base64.b64decode(v).decode() for k, v in doc.get("data", {}).items()}
        if "secretKey" in data:
            ISSUED.add(data["secretKey"])
        return data


def expect(p, code, *needles):
    out = p.stdout + p.stderr
    assert p.returncode == code, "exit %d, expected %d:\n%s" % (p.returncode, code, out)
    for n in needles:
        assert n in out, "%r not in:\n%s" % (n, out)


def with_env(fn):
    def wrapper():
        with osc_harness.osc() as osc, harness.k8s_api("outscale") as api, \
                central_harness.central(token=TOKEN) as central:
            e = Env(osc, api, central)
            fn(e)
            assert not osc.violations(), osc.violations()
            ISSUED.update(osc.issued_secrets())
            SCAN.take_reports(e.reports())
            SCAN.take_tree(e.dir, skip=e.own_files)
            SCAN.take_k8s(api, credential_secrets=("cloudgrant-platform-access",
                                                   "cloudgrant-node-autoscaler"))
            SCAN.take_logs(osc=osc, k8s=api, central=central)
    wrapper.__name__ = fn.__name__
    return wrapper


def last_credentials(e, kind="OnboardingReport"):
    cred = e.reports(kind)[-1].get("credentials")
    if cred and cred.get("secretKey"):
        ISSUED.add(cred["secretKey"])
    return cred


def profile_document(name):
    with open(os.path.join(SRC, "profiles", name)) as f:
        return json.load(f)


def days_until(iso):
    s = iso.replace("Z", "+00:00")
    if len(s) == 10:
        s += "T00:00:00+00:00"
    if s[-5] in "+-" and s[-3] != ":":
        s = s[:-2] + ":" + s[-2:]
    when = datetime.datetime.fromisoformat(s)
    return (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds() / 86400


@with_env
def test_platform_access_onboard_rerun_and_use_the_key(e):
    p = e.run("plan")
    expect(p, 0, "user", "policy", "policy-link", "access-key")
    assert not e.writes(), e.writes()
    p = e.run("onboard")
    expect(p, 0, "access key")
    user = e.osc.user(USER)
    assert user is not None and user["Path"] == "/cloudgrant/", user
    pol = e.osc.policy("PlatformAccess-" + CLUSTER)
    assert pol is not None and pol["Path"] == "/cloudgrant/", pol
    assert pol["Document"] == profile_document("platform-access-outscale-policy.json"), pol
    assert e.osc.linked(USER) == [pol["Orn"]], e.osc.linked(USER)
    keys = e.keys()
    assert len(keys) == 1 and keys[0]["State"] == "ACTIVE", keys
    assert 360 < days_until(keys[0]["ExpirationDate"]) <= 365, keys  # lifetimeDays 365
    cred = last_credentials(e)
    assert cred["type"] == "outscale-access-key", cred
    assert cred["accessKeyId"] == keys[0]["AccessKeyId"] and cred["userName"] == USER, cred
    assert cred["accountId"] == e.osc.account_id and cred["region"] == e.osc.region, cred
    stored = e.secret()
    assert stored["accessKeyId"] == cred["accessKeyId"], stored
    assert stored["secretKey"] == cred["secretKey"] and stored["userName"] == USER
    # the key handed over works, for what the policy allows and nothing else
    status, _ = e.osc.call("ReadVms", {}, access_key=cred["accessKeyId"],
                           secret_key=cred["secretKey"])
    assert status == 200, status
    status, _ = e.osc.call("CreateUser", {"UserName": "intruder"},
                           access_key=cred["accessKeyId"], secret_key=cred["secretKey"])
    assert status == 403, status
    # a second onboard on the converged account changes nothing and writes nothing
    e.osc.clear_requests()
    expect(e.run("onboard"), 0, "0 changes")
    assert not e.writes(), e.writes()
    reads = e.actions(mutating_only=False)
    print("  rerun reads: %d (%s)" % (len(reads), ", ".join(reads)))
    expect(e.run("check"), 0, "no drift")
    assert not e.writes()
    assert len(e.keys()) == 1


@with_env
def test_node_autoscaler_profile(e):
    env = {"CLOUDGRANT_PROFILE": "node-autoscaler"}
    expect(e.run("onboard", env=env), 0)
    pols = [p for p in e.osc.policies() if p["Path"] == "/cloudgrant/"]
    assert len(pols) == 1, pols
    doc = e.osc.policy(pols[0]["PolicyName"])["Document"]
    assert doc == profile_document("node-autoscaler-outscale-policy.json"), doc
    users = [u for u in e.osc.users() if u["Path"] == "/cloudgrant/"]
    assert len(users) == 1 and e.osc.linked(users[0]["UserName"]) == [pols[0]["Orn"]], users
    last_credentials(e)
    e.secret("cloudgrant-node-autoscaler")
    e.osc.clear_requests()
    expect(e.run("onboard", env=env), 0, "0 changes")
    assert not e.writes(), e.writes()


@with_env
def test_drift_detected_and_repaired(e):
    expect(e.run("onboard"), 0)
    last_credentials(e)
    pol = e.osc.policy("PlatformAccess-" + CLUSTER)
    # a human edits the policy, links another policy, and adds a key of their own
    e.osc.set_policy_document(pol["Orn"], {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["api:*"], "Resource": ["*"]}]})
    other = e.osc.create_policy("hand-made", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["api:ReadVolumes"], "Resource": ["*"]}]})
    e.osc.link(USER, other["Orn"])
    foreign_id, foreign_secret = e.osc.add_access_key(USER)
    ISSUED.add(foreign_secret)
    e.osc.clear_requests()
    p = e.run("check")
    expect(p, 3, "policy", "default version differs", "hand-made", foreign_id)
    drift = json.loads(e.run("check", "-o", "json").stdout)["drift"]
    assert sorted({d["kind"] for d in drift}) == ["access-key", "policy", "policy-link"], drift
    assert not e.writes(), e.writes()  # check only reads
    e.osc.clear_requests()
    expect(e.run("check", "--fix"), 0, "repaired")
    pol = e.osc.policy("PlatformAccess-" + CLUSTER)
    assert pol["Document"] == profile_document("platform-access-outscale-policy.json"), pol
    assert len(pol["Versions"]) <= 2, pol["Versions"]
    assert e.osc.linked(USER) == [pol["Orn"]], e.osc.linked(USER)
    assert e.osc.policy("hand-made") is not None  # unlinked, never deleted: not cloudgrant's
    assert [k["AccessKeyId"] for k in e.keys()] == [e.secret()["accessKeyId"]], e.keys()
    # the foreign key went in the order the API requires: INACTIVE, then deleted
    acts = e.actions()
    assert acts.index("UpdateAccessKey") < acts.index("DeleteAccessKey"), acts
    expect(e.run("check"), 0, "no drift")
    # EIM policies are case-sensitive: an action whose case changed is drift, not the same
    doc = profile_document("platform-access-outscale-policy.json")
    lowered = json.loads(json.dumps(doc))
    for st in lowered["Statement"]:
        st["Action"] = [a.lower() for a in st["Action"]]
    e.osc.set_policy_document(pol["Orn"], lowered)
    expect(e.run("check"), 3, "default version differs")
    expect(e.run("check", "--fix"), 0, "repaired")
    assert e.osc.policy("PlatformAccess-" + CLUSTER)["Document"] == doc
    # the link itself removed by hand comes back
    e.osc.unlink(USER, pol["Orn"])
    expect(e.run("check"), 3, "policy-link")
    expect(e.run("check", "--fix"), 0, "repaired")
    assert e.osc.linked(USER) == [pol["Orn"]]


@with_env
def test_key_expiry_and_age(e):
    expect(e.run("onboard"), 0)
    last_credentials(e)
    old = e.keys()[0]["AccessKeyId"]
    soon = (datetime.datetime.now(datetime.timezone.utc)
            + datetime.timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    e.osc.set_key_expiration(old, soon)
    expect(e.run("check"), 3, "renewal window")
    expect(e.run("check", "--fix"), 0, "repaired")
    keys = e.keys()
    assert len(keys) == 1 and keys[0]["AccessKeyId"] != old, keys
    assert e.secret()["accessKeyId"] == keys[0]["AccessKeyId"]
    drift = last_credentials(e, "DriftReport")
    assert drift["accessKeyId"] == keys[0]["AccessKeyId"], drift
    # a key without an expiry date is replaced once it is as old as the lifetime
    new = keys[0]["AccessKeyId"]
    e.osc.set_key_expiration(new, None)
    expect(e.run("check"), 0, "no drift")
    e.osc.set_key_creation(new, "2024-01-01T00:00:00.000+0000")
    expect(e.run("check"), 3, "days old")
    expect(e.run("check", "--fix"), 0, "repaired")
    assert [k["AccessKeyId"] for k in e.keys()] != [new]
    last_credentials(e, "DriftReport")


@with_env
def test_account_caps_key_lifetime(e):
    e.osc.set_api_access_policy(30 * 86400)
    expect(e.run("onboard"), 0)
    last_credentials(e)
    keys = e.keys()
    assert len(keys) == 1 and 29 < days_until(keys[0]["ExpirationDate"]) < 30, keys
    # a cap of a day must not make every run a rotation
    e.osc.set_api_access_policy(86400)
    expect(e.run("onboard"), 0)  # the 30-day key is over the new cap only when renewed
    last_credentials(e)
    e.osc.clear_requests()
    expect(e.run("check"), 0)


@with_env
def test_lag_and_throttling(e):
    e.osc.set_user_lag(2)
    e.osc.inject(action="CreatePolicy", count=1, kind="throttle")
    e.osc.inject(action="LinkPolicy", count=1, kind="status", status=503, code="2000",
                 type="InternalError", retry_after=1)
    expect(e.run("onboard"), 0)
    last_credentials(e)
    created = [r for r in e.osc.requests() if r.get("action") == "CreateUser"
               and r["status"] == 200]
    assert len(created) == 1, created
    assert len(e.keys()) == 1 and len(e.osc.linked(USER)) == 1
    e.osc.clear_requests()
    expect(e.run("onboard"), 0, "0 changes")
    assert not e.writes(), e.writes()
    # an unlink takes a while to apply: DeleteUser and DeletePolicy answer a conflict until then
    e.osc.set_link_lag(2)
    expect(e.run("offboard"), 0)
    assert e.osc.user(USER) is None and e.osc.policy("PlatformAccess-" + CLUSTER) is None
    conflicts = [r for r in e.osc.requests() if r.get("status") == 409]
    print("  conflicts waited out: %d" % len(conflicts))


@with_env
def test_rotate_then_offboard(e):
    expect(e.run("onboard"), 0)
    old = last_credentials(e)["accessKeyId"]
    e.osc.clear_requests()
    expect(e.run("rotate"), 0, "handed over")
    new = last_credentials(e)["accessKeyId"]
    assert new != old
    assert [k["AccessKeyId"] for k in e.keys()] == [new], e.keys()
    acts = e.actions()
    assert acts == ["CreateAccessKey", "UpdateAccessKey", "DeleteAccessKey"], acts
    assert e.secret()["accessKeyId"] == new
    p = e.run("offboard")
    expect(p, 0, "offboard")
    assert e.osc.user(USER) is None
    assert e.osc.policy("PlatformAccess-" + CLUSTER) is None
    assert e.secret() is None
    e.osc.clear_requests()
    expect(e.run("offboard"), 0, "0 changes")
    assert not e.writes(), e.writes()


@with_env
def test_credentials_from_osc_config_file(e):
    cfg = os.path.join(e.dir, ".osc", "config.json")
    os.makedirs(os.path.dirname(cfg))
    e.osc.write_config(cfg, profile="prod")
    e.own_files.append(cfg)
    env = {"OSC_ACCESS_KEY": None, "OSC_SECRET_KEY": None, "OSC_REGION": None,
           "OSC_ENDPOINT_API": None, "OSC_PROFILE": "prod"}
    p = e.run("plan", "--log-level", "info", env=env)
    expect(p, 0, "access-key")
    assert "config.json" in p.stderr, p.stderr
    expect(e.run("plan", env=dict(env, OSC_PROFILE="missing")), 2, "missing")
    # no region anywhere but the nodes: the cluster's region is used
    p = e.run("plan", "--log-level", "info", env={"OSC_REGION": None})
    expect(p, 0, "region eu-west-2")


@with_env
def test_refused_signature_is_sent_once(e):
    bad = "Z" * 40
    ISSUED.add(bad)
    p = e.run("plan", env={"OSC_SECRET_KEY": bad})
    assert p.returncode == 1, p.stdout + p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "OUTSCALE" in lines[0], p.stderr
    refused = [r for r in e.osc.requests() if r.get("status") == 401]
    assert len(refused) == 1, refused  # four in a row would lock the key
    expect(e.run("plan", env={"OSC_ACCESS_KEY": "short"}), 2, "OSC_ACCESS_KEY")


@with_env
def test_a_user_cloudgrant_did_not_make_is_left_alone(e):
    e.osc.create_user(USER, path="/")
    p = e.run("onboard")
    expect(p, 1, "not cloudgrant's", "/cloudgrant/")
    assert not e.writes(), e.writes()
    assert e.osc.user(USER)["Path"] == "/"


def test_zz_no_secret_left_anywhere():
    hits = SCAN.check()
    assert not hits, "secrets found: %s" % hits


if __name__ == "__main__":
    sys.exit(harness.run_tests(globals()))
