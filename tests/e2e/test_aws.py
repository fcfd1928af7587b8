#!/usr/bin/env python3
"""End-to-end tests of plan / onboard / check / check --fix / offboard on AWS, against moto
behind a proxy that validates every request against botocore's IAM and STS models. The
account is checked afterwards with a second, real client: awscli 2."""

import json
import os
import stat
import subprocess
import sys
import tempfile

SRC = os.environ.get("CG_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "emulators"))
import harness  # noqa: E402
import moto_harness  # noqa: E402

BIN = harness.find_binary()
PROFILES = os.path.join(SRC, "profiles")
CLUSTER = "prod-eks-1"  # the EKS fixture's cluster name
USER = "cast-eks-" + CLUSTER
ACCOUNT = "123456789012"  # moto's account
PLATFORM = "arn:aws:iam::999999999999:user/platform"
READS = ("Get", "List")


def load(path):
    with open(path) as f:
        return json.load(f)


def normalize(doc):
    """The semantics awscli shows us, compared loosely the way IAM evaluates: string or list,
    order and action case do not matter."""
    if isinstance(doc, str):
        doc = json.loads(doc)
    st = doc["Statement"]
    if isinstance(st, dict):
        st = [st]
    out = []
    for s in st:
        n = {}
        for k, v in s.items():
            if k in ("Action", "NotAction", "Resource", "NotResource"):
                v = [v] if isinstance(v, str) else v
                v = sorted(set(x.lower() if "Action" in k else x for x in v))
            n[k] = v
        out.append(json.dumps(n, sort_keys=True))
    return doc.get("Version"), sorted(out)


class Env:
    """One moto + one Kubernetes emulator, and a way to run cloudgrant against both."""

    def __init__(self, moto, api):
        self.moto = moto
        self.api = api
        self.dir = tempfile.mkdtemp(prefix="cg-aws-")
        self.creds = os.path.join(self.dir, "credentials.json")

    def run(self, *args, creds=True, extra_env=None):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AWS_", "CLOUDGRANT_", "KUBE"))}
        env.update(self.moto.env())
        env.update({"AWS_EC2_METADATA_DISABLED": "true", "HOME": self.dir,
                    "CLOUDGRANT_PROFILES_DIR": PROFILES})
        env.update(extra_env or {})
        cmd = [BIN] + list(args) + ["--kubeconfig", self.api.kubeconfig]
        if creds:
            cmd += ["--credentials-out", self.creds]
        before = len(self.moto.requests())
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        calls = self.moto.requests()[before:]
        p.writes = [c["action"] for c in calls if not c["action"].startswith(READS)]
        p.calls = calls
        return p

    def aws(self, *args):
        return self.moto.aws(*args)


def expect(p, code, *needles):
    assert p.returncode == code, "exit %d, want %d\nstdout: %s\nstderr: %s" % (
        p.returncode, code, p.stdout, p.stderr)
    for n in needles:
        assert n in p.stdout + p.stderr, "%r not in output:\n%s%s" % (n, p.stdout, p.stderr)


def drift_of(p):
    return {(d["kind"], d["name"], d["change"]) for d in json.loads(p.stdout)["drift"]}


def assert_user_converged(e, key_id=None):
    """The user exists with exactly the seed's policies and one key, seen by awscli."""
    user = e.aws("iam", "get-user", "--user-name", USER)["User"]
    tags = {t["Key"]: t["Value"] for t in user.get("Tags", [])}
    assert tags.get("managed-by") == "cloudgrant", tags
    assert tags.get("cloudgrant/cluster-id") == e.api.fixture["expected"]["id"], tags
    attached = {p["PolicyName"] for p in
                e.aws("iam", "list-attached-user-policies", "--user-name", USER)
                ["AttachedPolicies"]}
    assert attached == {"AmazonEC2ReadOnlyAccess", "IAMReadOnlyAccess", "CastEKSPolicy"}, attached
    inline = e.aws("iam", "list-user-policies", "--user-name", USER)["PolicyNames"]
    assert inline == ["CastEKSRestrictedAccess"], inline
    keys = e.aws("iam", "list-access-keys", "--user-name", USER)["AccessKeyMetadata"]
    assert len(keys) == 1, keys
    if key_id is not None:
        assert keys[0]["AccessKeyId"] == key_id, (keys, key_id)
    arn = "arn:aws:iam::%s:policy/CastEKSPolicy" % ACCOUNT
    pol = e.aws("iam", "get-policy", "--policy-arn", arn)["Policy"]
    doc = e.aws("iam", "get-policy-version", "--policy-arn", arn, "--version-id",
                pol["DefaultVersionId"])["PolicyVersion"]["Document"]
    text = json.dumps(doc)
    assert "028075177508" not in text, "the seed's account must be templated"
    assert ("arn:aws:ec2:*:%s:network-interface/*" % ACCOUNT) in text, text
    sids = {s.get("Sid") for s in doc["Statement"]}
    assert sids == {"PassRoleEC2", "NonResourcePermissions", "RunInstancesPermissions"}, sids
    return keys[0]["AccessKeyId"]


def with_env(fn):
    def wrapper():
        with moto_harness.moto(validate=True) as moto, harness.k8s_api("eks") as api:
            e = Env(moto, api)
            fn(e)
            bad = moto.violations()
            assert not bad, "requests that botocore's model rejects: %s" % bad
    wrapper.__name__ = fn.__name__
    return wrapper


@with_env
def test_user_mode_plan_onboard_rerun_check(e):
    p = e.run("plan", "--profile", "node-autoscaler", "-o", "json")
    expect(p, 0)
    assert p.writes == [], "plan made mutating calls: %s" % p.writes
    actions = {(a["kind"], a["name"], a["change"]) for a in json.loads(p.stdout)["actions"]}
    assert ("user", USER, "create") in actions, actions
    assert ("policy", "CastEKSPolicy", "create") in actions, actions
    assert ("inline-policy", "CastEKSRestrictedAccess", "create") in actions, actions
    assert ("access-key", USER, "create") in actions, actions
    assert len([a for a in actions if a[0] == "policy-attachment"]) == 3, actions

    p = e.run("onboard", "--profile", "node-autoscaler")
    expect(p, 0, "written to")
    mode = stat.S_IMODE(os.stat(e.creds).st_mode)
    assert mode == 0o600, oct(mode)
    cred = load(e.creds)
    assert cred["accessKeyId"] and cred["secretAccessKey"], cred.keys()
    assert cred["secretAccessKey"] not in p.stdout + p.stderr, "the secret was printed"
    assert_user_converged(e, cred["accessKeyId"])

    p = e.run("onboard", "--profile", "node-autoscaler")
    expect(p, 0)
    assert p.writes == [], "a rerun on a converged account made writes: %s" % p.writes
    reads = len(p.calls)
    print("     rerun: %d reads, 0 writes" % reads)
    assert reads <= 12, "a rerun should only read what it compares (%d calls)" % reads

    p = e.run("check", "--profile", "node-autoscaler")
    expect(p, 0, "no drift")
    assert p.writes == []


@with_env
def test_new_user_not_yet_visible(e):
    """IAM is eventually consistent: calls on a user or policy created moments ago may answer
    NoSuchEntity for a while. The agent writes at once and waits those answers out on
    timers, instead of reading the user back first or failing."""
    gone = "The user with name %s cannot be found." % USER
    e.moto.inject(action="AttachUserPolicy", count=4, status=404, code="NoSuchEntity",
                  message=gone)
    e.moto.inject(action="PutUserPolicy", count=1, status=404, code="NoSuchEntity",
                  message=gone)
    e.moto.inject(action="CreateAccessKey", count=2, status=404, code="NoSuchEntity",
                  message=gone)
    p = e.run("onboard", "--profile", "node-autoscaler")
    expect(p, 0, "written to")
    w = p.writes
    assert (w.count("CreateUser"), w.count("CreatePolicy")) == (1, 1), w
    assert w.count("AttachUserPolicy") == 3 + 4, w
    assert w.count("PutUserPolicy") == 2 and w.count("CreateAccessKey") == 3, w
    created = [i for i, c in enumerate(p.calls) if c["action"] == "CreateUser"][0]
    reread = [c["action"] for c in p.calls[created + 1:] if c["action"].startswith("Get")]
    assert reread == [], "the new user was read back before writing to it: %s" % reread
    cred = load(e.creds)
    assert_user_converged(e, cred["accessKeyId"])  # one key: no retry made a second one

    p = e.run("onboard", "--profile", "node-autoscaler")
    expect(p, 0)
    assert p.writes == [], p.writes


@with_env
def test_drift_detected_and_repaired(e):
    expect(e.run("onboard", "--profile", "node-autoscaler"), 0)
    key = load(e.creds)["accessKeyId"]
    arn = "arn:aws:iam::%s:policy/CastEKSPolicy" % ACCOUNT
    other = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
    scenarios = [
        ("detached managed policy",
         lambda: e.aws("iam", "detach-user-policy", "--user-name", USER, "--policy-arn",
                       "arn:aws:iam::aws:policy/IAMReadOnlyAccess"),
         ("policy-attachment", "IAMReadOnlyAccess", "missing")),
        ("customer policy edited (new default version by hand)",
         lambda: e.aws("iam", "create-policy-version", "--policy-arn", arn, "--policy-document",
                       other, "--set-as-default"),
         ("policy", "CastEKSPolicy", "changed")),
        ("extra inline policy",
         lambda: e.aws("iam", "put-user-policy", "--user-name", USER, "--policy-name", "Extra",
                       "--policy-document", other),
         ("inline-policy", "Extra", "unexpected")),
        ("inline policy edited",
         lambda: e.aws("iam", "put-user-policy", "--user-name", USER, "--policy-name",
                       "CastEKSRestrictedAccess", "--policy-document", other),
         ("inline-policy", "CastEKSRestrictedAccess", "changed")),
        ("extra access key",
         lambda: e.aws("iam", "create-access-key", "--user-name", USER),
         ("access-key", USER, "unexpected")),
        ("extra managed policy attached",
         lambda: e.aws("iam", "attach-user-policy", "--user-name", USER, "--policy-arn",
                       "arn:aws:iam::aws:policy/AdministratorAccess"),
         ("policy-attachment", "AdministratorAccess", "unexpected")),
    ]
    for label, mutate, want in scenarios:
        mutate()
        p = e.run("check", "--profile", "node-autoscaler", "-o", "json")
        expect(p, 3)
        assert p.writes == [], "%s: check made writes %s" % (label, p.writes)
        got = drift_of(p)
        assert want in got, "%s: want %s in %s" % (label, want, got)
        assert len(got) == 1, "%s: only one drift expected, got %s" % (label, got)
        p = e.run("check", "--profile", "node-autoscaler", "--fix", "-o", "json")
        expect(p, 0)
        assert json.loads(p.stdout)["remaining"] == [], p.stdout
        expect(e.run("check", "--profile", "node-autoscaler"), 0, "no drift")
        assert_user_converged(e, key)


@with_env
def test_policy_version_limit(e):
    expect(e.run("onboard", "--profile", "node-autoscaler"), 0)
    arn = "arn:aws:iam::%s:policy/CastEKSPolicy" % ACCOUNT
    for i in range(4):  # v2..v5: IAM's limit of five versions
        doc = json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b%d/*" % i}]})
        e.aws("iam", "create-policy-version", "--policy-arn", arn, "--policy-document", doc,
              "--set-as-default")
    versions = e.aws("iam", "list-policy-versions", "--policy-arn", arn)["Versions"]
    assert len(versions) == 5, versions
    p = e.run("onboard", "--profile", "node-autoscaler")
    expect(p, 0)
    assert "DeletePolicyVersion" in p.writes and "CreatePolicyVersion" in p.writes, p.writes
    versions = e.aws("iam", "list-policy-versions", "--policy-arn", arn)["Versions"]
    assert len(versions) == 5, versions
    assert "v1" not in {v["VersionId"] for v in versions}, "the oldest version goes first"
    expect(e.run("check", "--profile", "node-autoscaler"), 0, "no drift")


def secret(e, name="cloudgrant-node-autoscaler"):
    p = e.api.kubectl("get", "secret", name, "-n", "default", "-o", "json")
    return json.loads(p.stdout) if p.returncode == 0 else None


@with_env
def test_credential_kept_in_secret_and_never_duplicated(e):
    expect(e.run("onboard", "--profile", "node-autoscaler"), 0)
    first = load(e.creds)["accessKeyId"]
    sec = secret(e)
    assert sec is not None, "the key must be kept in a Secret"
    ann = sec["metadata"]["annotations"]
    assert ann["cloudgrant.io/delivered"] == "true", ann
    assert ann["cloudgrant.io/access-key-id"] == first, ann

    # a crash after the key was stored but before it was handed over: the next run hands the
    # same key over again instead of making another
    e.api.kubectl("annotate", "secret", "cloudgrant-node-autoscaler", "-n", "default",
                  "--overwrite", "cloudgrant.io/delivered=false")
    os.unlink(e.creds)
    # a check has nowhere to hand the key to: it stays owed
    expect(e.run("check", "--profile", "node-autoscaler", creds=False), 0)
    assert secret(e)["metadata"]["annotations"]["cloudgrant.io/delivered"] == "false"
    p = e.run("onboard", "--profile", "node-autoscaler")
    expect(p, 0, "handed over")
    assert p.writes == [], "re-delivery needs no cloud change: %s" % p.writes
    assert load(e.creds)["accessKeyId"] == first
    assert secret(e)["metadata"]["annotations"]["cloudgrant.io/delivered"] == "true"
    assert_user_converged(e, first)

    # a key in the cloud that is neither in the Secret nor delivered is replaced, not joined
    e.api.kubectl("delete", "secret", "cloudgrant-node-autoscaler", "-n", "default")
    p = e.run("onboard", "--profile", "node-autoscaler")
    expect(p, 0)
    new = load(e.creds)["accessKeyId"]
    assert new != first
    assert p.writes.count("CreateAccessKey") == 1 and p.writes.count("DeleteAccessKey") == 1
    assert_user_converged(e, new)
    # and with a stray second key made by hand: still exactly one, the stored one
    e.aws("iam", "create-access-key", "--user-name", USER)
    expect(e.run("onboard", "--profile", "node-autoscaler"), 0)
    assert_user_converged(e, new)


@with_env
def test_rotate(e):
    expect(e.run("onboard", "--profile", "node-autoscaler"), 0)
    old = load(e.creds)["accessKeyId"]
    p = e.run("rotate", "--profile", "node-autoscaler")
    expect(p, 0)
    assert p.writes == ["CreateAccessKey", "DeleteAccessKey"], p.writes
    new = load(e.creds)["accessKeyId"]
    assert new != old
    assert_user_converged(e, new)
    assert secret(e)["metadata"]["annotations"]["cloudgrant.io/access-key-id"] == new
    expect(e.run("rotate", "--profile", "node-autoscaler", "--aws-mode", "role",
                 "--aws-trust-principal", PLATFORM), 2, "nothing to rotate")


@with_env
def test_role_mode(e):
    args = ["--profile", "node-autoscaler", "--aws-mode", "role",
            "--aws-trust-principal", PLATFORM]
    # IAM refuses a trust policy whose principal it cannot see yet: retried, not fatal
    e.moto.inject(action="CreateRole", count=1, status=400, code="MalformedPolicyDocument",
                  message="Invalid principal in policy: \"AWS\":\"%s\"" % PLATFORM)
    p = e.run("onboard", *args, creds=False)
    expect(p, 0)
    assert p.writes.count("CreateRole") == 2, p.writes
    role = e.aws("iam", "get-role", "--role-name", USER)["Role"]
    trust = role["AssumeRolePolicyDocument"]
    st = trust["Statement"][0]
    assert st["Principal"]["AWS"] in (PLATFORM, [PLATFORM]), st
    assert st["Action"] in ("sts:AssumeRole", ["sts:AssumeRole"]), st
    assert st["Condition"]["StringEquals"]["sts:ExternalId"] == e.api.fixture["expected"]["id"]
    attached = {x["PolicyName"] for x in
                e.aws("iam", "list-attached-role-policies", "--role-name", USER)
                ["AttachedPolicies"]}
    assert attached == {"AmazonEC2ReadOnlyAccess", "IAMReadOnlyAccess", "CastEKSPolicy"}
    assert e.aws("iam", "list-role-policies", "--role-name", USER)["PolicyNames"] == \
        ["CastEKSRestrictedAccess"]
    assert not os.path.exists(e.creds), "role mode hands over no key"

    p = e.run("onboard", *args, creds=False)
    expect(p, 0)
    assert p.writes == [], p.writes

    # a trust policy changed by hand is drift, and --fix restores it
    bad = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:root"},
        "Action": "sts:AssumeRole"}]})
    e.aws("iam", "update-assume-role-policy", "--role-name", USER, "--policy-document", bad)
    p = e.run("check", *args, "-o", "json", creds=False)
    expect(p, 3)
    assert ("trust-policy", USER, "changed") in drift_of(p), p.stdout
    expect(e.run("check", *args, "--fix", creds=False), 0)
    expect(e.run("check", *args, creds=False), 0, "no drift")

    p = e.run("offboard", *args, creds=False)
    expect(p, 0)
    roles = [r["RoleName"] for r in e.aws("iam", "list-roles")["Roles"]]
    assert USER not in roles, roles


@with_env
def test_platform_access_profile(e):
    p = e.run("onboard", "--profile", "platform-access")
    expect(p, 0)
    user = "platform-access-" + CLUSTER
    attached = e.aws("iam", "list-attached-user-policies", "--user-name", user)["AttachedPolicies"]
    assert [a["PolicyName"] for a in attached] == ["PlatformAccess-" + CLUSTER], attached
    arn = attached[0]["PolicyArn"]
    pol = e.aws("iam", "get-policy", "--policy-arn", arn)["Policy"]
    doc = e.aws("iam", "get-policy-version", "--policy-arn", arn, "--version-id",
                pol["DefaultVersionId"])["PolicyVersion"]["Document"]
    seed_condition = {"StringEqualsIfExists": {"ec2:ResourceTag/CreatedBy": "user"}}
    assert any(s.get("Condition") == seed_condition for s in doc["Statement"]), doc
    assert len(doc["Statement"]) == 4, doc
    assert len(e.aws("iam", "list-access-keys", "--user-name", user)["AccessKeyMetadata"]) == 1
    expect(e.run("check", "--profile", "platform-access"), 0, "no drift")


@with_env
def test_offboard_removes_only_what_cloudgrant_made(e):
    expect(e.run("onboard", "--profile", "node-autoscaler"), 0)
    # a policy the customer made and attached elsewhere must survive
    other = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]})
    e.aws("iam", "create-user", "--user-name", "someone-else")
    e.aws("iam", "create-policy", "--policy-name", "CustomerOwned", "--policy-document", other)
    p = e.run("offboard", "--profile", "node-autoscaler")
    expect(p, 0)
    users = [u["UserName"] for u in e.aws("iam", "list-users")["Users"]]
    assert USER not in users and "someone-else" in users, users
    names = {x["PolicyName"] for x in e.aws("iam", "list-policies", "--scope", "Local")["Policies"]}
    assert "CastEKSPolicy" not in names and "CustomerOwned" in names, names
    p = e.run("offboard", "--profile", "node-autoscaler")
    expect(p, 0)
    assert p.writes == [], "a second offboard has nothing to do: %s" % p.writes
    p = e.run("check", "--profile", "node-autoscaler", "-o", "json")
    expect(p, 3)
    assert ("user", USER, "missing") in drift_of(p)
    assert secret(e) is None, "offboard deletes the credential Secret too"


@with_env
def test_customer_policy_shared_with_another_user_is_kept(e):
    expect(e.run("onboard", "--profile", "node-autoscaler"), 0)
    e.aws("iam", "create-user", "--user-name", "second")
    e.aws("iam", "attach-user-policy", "--user-name", "second", "--policy-arn",
          "arn:aws:iam::%s:policy/CastEKSPolicy" % ACCOUNT)
    p = e.run("offboard", "--profile", "node-autoscaler")
    expect(p, 0, "kept")
    names = {x["PolicyName"] for x in e.aws("iam", "list-policies", "--scope", "Local")["Policies"]}
    assert "CastEKSPolicy" in names, names


@with_env
def test_refuses_what_it_does_not_own_and_bad_input(e):
    e.aws("iam", "create-user", "--user-name", USER)  # made by hand, no tags
    p = e.run("onboard", "--profile", "node-autoscaler")
    expect(p, 1, "not managed by cloudgrant")
    assert p.writes == [], p.writes
    p = e.run("offboard", "--profile", "node-autoscaler")
    expect(p, 1, "not managed by cloudgrant")
    assert p.writes == []
    p = e.run("onboard", "--profile", "node-autoscaler", creds=False)
    expect(p, 2, "--report-url")
    p = e.run("plan", "--profile", "no-such-profile")
    expect(p, 2, "no-such-profile")
    p = e.run("plan", "--profile", "node-autoscaler", "--aws-mode", "role", creds=False)
    expect(p, 2, "--aws-trust-principal")
    broken = os.path.join(e.dir, "broken.yaml")
    with open(broken, "w") as f:
        f.write("apiVersion: cloudgrant.io/v1alpha1\nkind: GrantProfile\nname: x\naws:\n"
                "  mode: user\n  usr: {}\n")
    p = e.run("plan", "--profile", broken)
    expect(p, 2, broken)
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, p.stderr


def main():
    if not os.path.exists(BIN):
        print("cloudgrant binary not found at %s" % BIN)
        return 1
    return harness.run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
