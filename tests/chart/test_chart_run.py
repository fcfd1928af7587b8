#!/usr/bin/env python3
"""The chart and the binary cannot drift apart: the containers `helm template` renders are run,
as a kubelet would start them, with the built binary against the local emulators (moto, the
Kubernetes API emulator, the central endpoint).

A small pod runner stands in for the kubelet: the container's command and args as rendered;
its env with every valueFrom resolved (secretKeyRef and configMapKeyRef from the rendered
objects or from the Secrets that exist in the emulated cluster, fieldRef metadata.namespace);
envFrom likewise; each volume mount materialised under a scratch root (ConfigMaps and
Secrets written out, paths in env and args mapped to it); the service-account token projected
as the kubelet does; /dev/termination-log provided and read back. Only the image's fixed
paths are mapped: /usr/local/bin/cloudgrant is the built binary. The values are the chart's CI
files plus what a user running against these emulators would set: the report URL, the token,
a real seal key, extraEnv for the AWS endpoint and cloudCredentials for the bootstrap keys.
GKE (the metadata server's Workload Identity token) and AKS (the Azure Workload Identity
webhook's variables) run the same way against the GCP and the Graph/ARM emulators.
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_chart as tc  # noqa: E402  (helm, rendering, skip rules)

sys.path.insert(0, os.path.join(tc.SRC, "tests", "emulators"))
import central_harness  # noqa: E402
import harness  # noqa: E402
import moto_harness  # noqa: E402

BIN = harness.find_binary()
IMAGE_BIN = "/usr/local/bin/cloudgrant"
TOKEN = "chart-run-report-token-5d1a"
USER = "cast-eks-prod-eks-1"


def kinds(objects, kind):
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


class Cluster:
    """The emulated cluster: rendered objects plus Secrets created in the API emulator."""

    def __init__(self, api, objects):
        self.api, self.objects = api, objects

    def secret(self, name):
        rendered = kinds(self.objects, "Secret").get(name)
        if rendered is not None:
            data = {k: base64.b64decode(v).decode() for k, v in rendered.get("data", {}).items()}
            data.update(rendered.get("stringData", {}))
            return data
        p = self.api.kubectl("get", "secret", name, "-n", tc.NS, "-o", "json")
        assert p.returncode == 0, "Secret %s/%s is neither rendered nor in the cluster: %s" % (
            tc.NS, name, p.stderr)
        doc = json.loads(p.stdout)
        return {k: base64.b64decode(v).decode() for k, v in doc.get("data", {}).items()}

    def config_map(self, name):
        cm = kinds(self.objects, "ConfigMap").get(name)
        assert cm is not None, "ConfigMap %s is not rendered" % name
        return dict(cm.get("data", {}))

    def create_secret(self, name, **data):
        args = ["create", "secret", "generic", name, "-n", tc.NS]
        args += ["--from-literal=%s=%s" % kv for kv in data.items()]
        p = self.api.kubectl(*args)
        assert p.returncode == 0, p.stderr


class Pod:
    """One container of a rendered pod spec, laid out on disk and started like a kubelet."""

    def __init__(self, cluster, spec, container, scratch):
        self.cluster, self.spec, self.c = cluster, spec, container
        self.root = tempfile.mkdtemp(prefix="rootfs-", dir=scratch)
        self.mounts = {}
        self.termination_log = os.path.join(self.root, "dev", "termination-log")
        os.makedirs(os.path.dirname(self.termination_log))
        open(self.termination_log, "w").close()
        self.mounts["/dev/termination-log"] = self.termination_log
        self._volumes()
        self.env = self._env()
        self.argv = self._argv()

    def _write_files(self, target, data, items):
        os.makedirs(target, exist_ok=True)
        paths = {i["key"]: i["path"] for i in items} if items else {k: k for k in data}
        for key, path in paths.items():
            assert key in data, "volume item %s is missing from its source" % key
            with open(os.path.join(target, path), "w") as f:
                f.write(data[key])

    def _volumes(self):
        volumes = {v["name"]: v for v in self.spec.get("volumes", [])}
        for m in self.c.get("volumeMounts", []):
            v = volumes[m["name"]]
            target = self.root + m["mountPath"]
            if "configMap" in v:
                self._write_files(target, self.cluster.config_map(v["configMap"]["name"]),
                                  v["configMap"].get("items"))
            elif "secret" in v:
                self._write_files(target, self.cluster.secret(v["secret"]["secretName"]),
                                  v["secret"].get("items"))
            elif "emptyDir" in v:
                os.makedirs(target, exist_ok=True)
            else:
                raise AssertionError("volume kind the runner does not know: %s" % v)
            self.mounts[m["mountPath"]] = target

    def path(self, value):
        """A path inside the container, mapped to where the runner put it."""
        for mount, target in sorted(self.mounts.items(), key=lambda kv: -len(kv[0])):
            if value == mount or value.startswith(mount.rstrip("/") + "/"):
                return target + value[len(mount):]
        return value

    def _env(self):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.root}
        for src in self.c.get("envFrom", []):
            if "secretRef" in src:
                env.update(self.cluster.secret(src["secretRef"]["name"]))
            elif "configMapRef" in src:
                env.update(self.cluster.config_map(src["configMapRef"]["name"]))
        for e in self.c.get("env", []):
            if "value" in e:
                env[e["name"]] = self.path(str(e["value"]))
                continue
            ref = e["valueFrom"]
            if "secretKeyRef" in ref:
                env[e["name"]] = self.cluster.secret(ref["secretKeyRef"]["name"])[
                    ref["secretKeyRef"]["key"]]
            elif "configMapKeyRef" in ref:
                env[e["name"]] = self.cluster.config_map(ref["configMapKeyRef"]["name"])[
                    ref["configMapKeyRef"]["key"]]
            elif "fieldRef" in ref:
                assert ref["fieldRef"]["fieldPath"] == "metadata.namespace", ref
                env[e["name"]] = tc.NS
            else:
                raise AssertionError("valueFrom the runner does not know: %s" % ref)
        if self.spec.get("automountServiceAccountToken", True):
            # The kubelet's projection of the pod's token, CA and namespace.
            env.update(self.cluster.api.in_cluster_env)
            env["CLOUDGRANT_SERVICE_ACCOUNT_DIR"] = self.cluster.api.sa_dir
        return env

    def _argv(self):
        cmd = self.c.get("command") or []
        assert cmd == [IMAGE_BIN], "the image's entrypoint is %s, the chart runs %s" % (
            IMAGE_BIN, cmd)
        return [BIN] + [self.path(a) for a in self.c.get("args", [])]

    def run(self, extra_env=None, timeout=120):
        env = dict(self.env, **(extra_env or {}))
        p = subprocess.run(self.argv, env=env, capture_output=True, text=True, timeout=timeout)
        with open(self.termination_log) as f:
            p.termination_message = f.read()
        return p

    def start(self, extra_env=None):
        env = dict(self.env, **(extra_env or {}))
        return subprocess.Popen(self.argv, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)


def containers(objects, kind):
    for o, spec, _ in tc.pod_specs(objects):
        if o["kind"] == kind:
            for c in spec["containers"]:
                yield spec, c


def one(objects, kind):
    found = list(containers(objects, kind))
    assert len(found) == 1, "%d %s containers rendered" % (len(found), kind)
    return found[0]


def expect(p, code, *needles):
    out = p.stdout + p.stderr
    assert p.returncode == code, "exit %d, expected %d:\n%s" % (p.returncode, code, out)
    for n in needles:
        assert n in out, "%r not in:\n%s" % (n, out)


def keypair(d):
    priv, pub = os.path.join(d, "platform.key"), os.path.join(d, "platform.pub")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", priv], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", priv, "-pubout", "-out", pub], check=True,
                   capture_output=True)
    return pub


def aws_env(moto):
    """extraEnv a user sets to point the AWS SDK chain at another endpoint."""
    return [{"name": "AWS_ENDPOINT_URL", "value": moto.url},
            {"name": "AWS_REGION", "value": "us-east-1"}]


def bootstrap_keys():
    m = moto_harness
    return {"AWS_ACCESS_KEY_ID": m.ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": m.SECRET_KEY}


def render(values_file, scratch, extra):
    """helm template of a CI values file plus the overrides in `extra` (a values dict)."""
    over = os.path.join(scratch, "run-values.json")
    with open(over, "w") as f:
        json.dump(extra, f)
    args = ["template", tc.RELEASE, tc.CHART, "-n", tc.NS, "-f", values_file, "-f", over]
    return tc.parse(tc.helm(*args).stdout)[0]


def with_emulators(fn):
    def wrapper():
        scratch = tempfile.mkdtemp(prefix="cg-chart-run-")
        try:
            with moto_harness.moto(validate=True) as moto, harness.k8s_api("eks") as api, \
                    central_harness.central(token=TOKEN) as central:
                # helm install --create-namespace
                p = api.kubectl("create", "namespace", tc.NS)
                assert p.returncode == 0, p.stderr
                fn(moto, api, central, scratch)
                assert not moto.violations(), moto.violations()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    wrapper.__name__ = fn.__name__
    return wrapper


@with_emulators
def test_user_mode_job_cronjob_and_helm_test_run(moto, api, central, scratch):
    objects = render(tc.ci("aws-user-values.yaml"), scratch, {
        "report": {"url": central.report_url, "token": TOKEN},
        "sealKey": open(keypair(scratch)).read(),
        "extraEnv": aws_env(moto),
        "cloudCredentials": {"values": bootstrap_keys()},
    })
    cluster = Cluster(api, objects)

    spec, c = one(objects, "Job")
    p = Pod(cluster, spec, c, scratch).run()
    expect(p, 0)
    msg = p.termination_message
    assert msg.startswith("onboard: user %s in AWS account 123456789012 converged" % USER), msg
    assert "handed over" in msg and msg.count("\n") == 1, msg
    reports = [r["body"] for r in central.reports() if r["body"]["kind"] == "OnboardingReport"]
    assert len(reports) == 1 and reports[0]["status"] == "succeeded", reports
    assert isinstance(reports[0]["credentials"], str), "the chart's seal key was not used"
    assert moto.aws("iam", "get-user", "--user-name", USER)["User"]["UserName"] == USER

    spec, c = one(objects, "CronJob")
    assert "--fix" in c["args"], c["args"]
    p = Pod(cluster, spec, c, scratch).run()
    expect(p, 0, "no drift")
    assert p.termination_message.startswith("check: no drift"), p.termination_message

    spec, c = one(objects, "Pod")  # the helm test hook
    p = Pod(cluster, spec, c, scratch).run()
    expect(p, 0)
    assert p.termination_message.startswith("identity: provider aws"), p.termination_message

    # A failure says what failed in the termination message, as one line.
    moto.inject(action="GetUser", count=50, status=403, code="AccessDenied",
                message="User is not authorized to perform: iam:GetUser")
    spec, c = one(objects, "Job")
    p = Pod(cluster, spec, c, scratch).run()
    assert p.returncode == 1, p.stdout + p.stderr
    msg = p.termination_message
    assert msg.startswith("onboard failed (exit 1): ") and "AccessDenied" in msg, msg
    assert msg.count("\n") == 1, msg


@with_emulators
def test_role_mode_with_irsa_and_existing_report_secret(moto, api, central, scratch):
    objects = render(tc.ci("aws-role-irsa-values.yaml"), scratch, {
        "report": {"url": central.report_url},
        "extraEnv": aws_env(moto),
    })
    cluster = Cluster(api, objects)
    cluster.create_secret("platform-report-token", token=TOKEN)
    sa = kinds(objects, "ServiceAccount")
    assert len(sa) == 1, sa
    role_arn = list(sa.values())[0]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    # What the EKS pod identity webhook adds to a pod whose ServiceAccount has the annotation.
    token_file = os.path.join(scratch, "eks-token")
    with open(token_file, "w") as f:
        f.write("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2ln")
    irsa = {"AWS_ROLE_ARN": role_arn, "AWS_WEB_IDENTITY_TOKEN_FILE": token_file}

    spec, c = one(objects, "Job")
    p = Pod(cluster, spec, c, scratch).run(extra_env=irsa)
    expect(p, 0)
    assert "AssumeRoleWithWebIdentity" in [r["action"] for r in moto.requests()]
    role = moto.aws("iam", "get-role", "--role-name", USER)["Role"]
    trust = role["AssumeRolePolicyDocument"]
    assert json.dumps(trust).count("arn:aws:iam::111122223333:role/platform") == 1, trust
    assert "ci-external-id" in json.dumps(trust), trust
    # Role mode makes no user and no key.
    assert moto.aws_run("iam", "get-user", "--user-name", USER).returncode != 0
    assert "converged" in p.termination_message, p.termination_message
    reports = [r["body"] for r in central.reports()]
    cred = reports[-1]["credentials"]
    assert cred == {"type": "aws-role", "accountId": "123456789012",
                    "roleArn": "arn:aws:iam::123456789012:role/" + USER,
                    "externalId": "ci-external-id"}, cred


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@with_emulators
def test_inline_profile_and_watch_deployment(moto, api, central, scratch):
    port = free_port()
    objects = render(tc.ci("watch-values.yaml"), scratch, {
        "report": {"url": central.report_url},
        "extraEnv": aws_env(moto),
        "watch": {"port": port},
    })
    cluster = Cluster(api, objects)
    cluster.create_secret("platform-report-token", token=TOKEN)
    cluster.create_secret("cloudgrant-bootstrap-aws", **bootstrap_keys())

    spec, c = one(objects, "Job")  # the profile comes from the chart's ConfigMap
    p = Pod(cluster, spec, c, scratch).run()
    expect(p, 0)
    assert "user ci-inline-prod-eks-1" in p.termination_message, p.termination_message

    spec, c = one(objects, "Deployment")
    probe = c["readinessProbe"]["httpGet"]
    pod = Pod(cluster, spec, c, scratch)
    proc = pod.start()
    try:
        deadline = time.time() + 30
        while True:
            try:
                url = "http://127.0.0.1:%d%s" % (port, probe["path"])
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "the readiness probe never passed"
            time.sleep(0.2)
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
            assert b"cloudgrant_" in r.read()
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, (proc.returncode, out, err)


def test_gcp_workload_identity_job_and_cronjob():
    """GKE with Workload Identity: the agent's token from the metadata server, the GCP
    emulator's APIs."""
    import gcp_harness
    if not gcp_harness.gcloud_available():
        assert os.environ.get("CI") != "true", "gcloud is missing (CI must have it)"
        print("  skipped: gcloud is not installed")
        return
    scratch = tempfile.mkdtemp(prefix="cg-chart-run-")
    try:
        with gcp_harness.gcp(project="acme-prod-321", cluster_name="gke-demo") as g, \
                harness.k8s_api("gke") as api, central_harness.central(token=TOKEN) as central:
            assert api.kubectl("create", "namespace", tc.NS).returncode == 0
            env = dict(g.endpoint_env(), **g.metadata_env())
            objects = render(tc.ci("gcp-wi-values.yaml"), scratch, {
                "report": {"url": central.report_url},
                "extraEnv": [{"name": k, "value": v} for k, v in env.items()],
            })
            cluster = Cluster(api, objects)
            cluster.create_secret("platform-report-token", token=TOKEN)

            spec, c = one(objects, "Job")
            p = Pod(cluster, spec, c, scratch).run()
            expect(p, 0)
            msg = p.termination_message
            assert msg.startswith("onboard: service account castai-gke-") and \
                "in GCP project acme-prod-321 converged" in msg, msg
            assert "key" in msg and "handed over" in msg, msg
            reports = [r["body"] for r in central.reports()]
            assert reports[-1]["credentials"]["type"] == "gcp-service-account-key"
            assert any(r["api"] == "metadata" for r in g.requests()), "no metadata token"

            spec, c = one(objects, "CronJob")
            p = Pod(cluster, spec, c, scratch).run()
            expect(p, 0, "no drift")
            assert p.termination_message.startswith("check: no drift"), p.termination_message
            assert not g.violations(), g.violations()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_azure_workload_identity_job_and_cronjob():
    """AKS with Azure Workload Identity: the webhook's variables, the chart's azure values,
    the Graph and ARM emulator."""
    import azure_harness
    if not azure_harness.sdk_available():
        assert os.environ.get("CI") != "true", "python3-azure is missing (scripts/setup.sh)"
        print("  skipped: python3-azure is not installed")
        return
    scratch = tempfile.mkdtemp(prefix="cg-chart-run-")
    try:
        with azure_harness.azure() as az, harness.k8s_api("aks") as api, \
                central_harness.central(token=TOKEN) as central:
            assert api.kubectl("create", "namespace", tc.NS).returncode == 0
            endpoints = [{"name": k, "value": v} for k, v in az.imds_env().items()]
            objects = render(tc.ci("azure-wi-values.yaml"), scratch, {
                "report": {"url": central.report_url},
                "extraEnv": endpoints,
                "serviceAccount": {"annotations": {
                    "azure.workload.identity/client-id": az.admin_client_id}},
                "azure": {"grant": "custom"},
            })
            cluster = Cluster(api, objects)
            cluster.create_secret("platform-report-token", token=TOKEN)
            # what the Azure Workload Identity webhook adds to a labelled pod
            webhook = az.workload_identity_env(os.path.join(scratch, "azure-identity-token"))

            spec, c = one(objects, "Job")
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            assert env.get("CLOUDGRANT_AZURE_GRANT") == "custom", env
            p = Pod(cluster, spec, c, scratch).run(extra_env=webhook)
            expect(p, 0)
            msg = p.termination_message
            assert msg.startswith("onboard: app registration cast-aks-aks-main in Azure "
                                  "subscription %s converged" % az.subscription), msg
            assert "client secret" in msg and "handed over" in msg, msg
            assert az.role_definition("cast-aks-aks-main") is not None
            reports = [r["body"] for r in central.reports()]
            assert reports[-1]["credentials"]["type"] == "azure-client-secret"
            assert "login" in {r["api"] for r in az.requests()}

            spec, c = one(objects, "CronJob")
            p = Pod(cluster, spec, c, scratch).run(extra_env=webhook)
            expect(p, 0, "no drift")
            assert p.termination_message.startswith("check: no drift"), p.termination_message
            assert not az.violations(), az.violations()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(harness.run_tests(globals()))
    finally:
        shutil.rmtree(tc.HELM_HOME, ignore_errors=True)
