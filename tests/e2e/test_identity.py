#!/usr/bin/env python3
"""End-to-end tests of `cloudgrant identity` against the local Kubernetes API and cloud
metadata emulators: every emulated cloud, every way of authenticating, in-cluster mode, and
the bad-input and failure paths (exit codes, one-line messages, no secret in any output)."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

SRC = os.environ.get("CG_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "emulators"))
import harness  # noqa: E402

BIN = harness.find_binary()
FIXTURES = os.path.join(SRC, "tests", "fixtures", "clusters")
CLUSTERS = ["eks", "gke", "aks", "outscale", "unknown"]
METADATA_CLOUD = {"eks": "aws", "gke": "gcp", "aks": "azure"}

# Variables that would let the agent's behaviour depend on the machine running the tests.
SCRUB = ["KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT",
         "AWS_EC2_METADATA_SERVICE_ENDPOINT", "GCE_METADATA_HOST", "CLOUDGRANT_AZURE_IMDS_URL",
         "https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]


def fixture(cluster):
    with open(os.path.join(FIXTURES, cluster + ".json")) as f:
        return json.load(f)


def run(args, env_extra=None, home=None):
    env = {k: v for k, v in os.environ.items()
           if k not in SCRUB and not k.startswith("CLOUDGRANT_")}
    env["HOME"] = home or tempfile.mkdtemp(prefix="cg-home-")
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env.update(env_extra or {})
    p = subprocess.run([BIN] + args, env=env, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def expect_identity(out, want, server):
    got = json.loads(out)["cluster"]
    want = dict(want, server=server)
    assert got == want, "identity mismatch:\n got  %s\n want %s" % (got, want)


def expect_one_line_error(code, err, want_code, *needles):
    assert code == want_code, "exit %d, want %d; stderr: %s" % (code, want_code, err)
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, "want one error line, got %r" % err
    assert lines[0].startswith("cloudgrant: error: "), lines[0]
    for n in needles:
        assert n in lines[0], "%r not in %r" % (n, lines[0])


def assert_no_secret(secret, *outputs):
    for o in outputs:
        assert secret not in o, "a secret appeared in the output"


# ---- tests -------------------------------------------------------------------------------

def test_every_cloud_token_and_cert_auth():
    for cluster in CLUSTERS:
        fx = fixture(cluster)
        with harness.k8s_api(cluster, auth="both") as api:
            for ctx in ("token", "cert"):
                code, out, err = run(["identity", "-o", "json", "--kubeconfig", api.kubeconfig,
                                      "--context", ctx])
                assert code == 0, "%s/%s: exit %d: %s" % (cluster, ctx, code, err)
                expect_identity(out, fx["expected"], api.url)
                assert_no_secret(api.token, out, err)


def test_metadata_completes_identity():
    for cluster, cloud in METADATA_CLOUD.items():
        fx = fixture(cluster)
        fx_path = os.path.join(FIXTURES, cluster + ".json")
        with harness.k8s_api(cluster) as api, harness.metadata(cloud, fx_path) as md:
            env = {"aws": {"AWS_EC2_METADATA_SERVICE_ENDPOINT": md.url,
                           "AWS_EC2_METADATA_DISABLED": "false"},
                   "gcp": {"GCE_METADATA_HOST": "127.0.0.1:%d" % md.port},
                   "azure": {"CLOUDGRANT_AZURE_IMDS_URL": md.url}}[cloud]
            code, out, err = run(["identity", "-o", "json", "--kubeconfig", api.kubeconfig], env)
            assert code == 0, "%s: exit %d: %s" % (cluster, code, err)
            expect_identity(out, fx["expected_with_metadata"], api.url)
            # --no-metadata leaves the metadata-only fields unknown again
            code, out, err = run(["identity", "-o", "json", "--no-metadata",
                                  "--kubeconfig", api.kubeconfig], env)
            assert code == 0, err
            expect_identity(out, fx["expected"], api.url)


def test_silent_metadata_service_costs_seconds_not_minutes():
    """A pod behind an IMDS hop limit of 1 never gets the token reply: identity must still
    answer promptly, from the nodes alone."""
    import time
    fx = fixture("eks")
    fx_path = os.path.join(FIXTURES, "eks.json")
    with harness.k8s_api("eks") as api, \
            harness.metadata("aws", fx_path, extra_args=["--hop-limit-drop"]) as md:
        t0 = time.monotonic()
        code, out, err = run(["identity", "-o", "json", "--kubeconfig", api.kubeconfig],
                             dict(md.env, AWS_EC2_METADATA_DISABLED="false"))
        elapsed = time.monotonic() - t0
        assert code == 0, err
        expect_identity(out, fx["expected"], api.url)
        assert elapsed < 8, "identity took %.1f s with a silent metadata service" % elapsed


def test_overrides_and_text_output():
    with harness.k8s_api("unknown") as api:
        code, out, err = run(["identity", "--kubeconfig", api.kubeconfig, "--provider", "aws",
                              "--cluster-name", "named", "--region", "eu-north-1"])
        assert code == 0, err
        assert "provider             aws" in out, out
        assert "name                 named" in out, out
        assert "region               eu-north-1" in out, out
        # the same through the environment, as the Helm chart sets it
        code, out, err = run(["identity", "--kubeconfig", api.kubeconfig],
                             {"CLOUDGRANT_OUTPUT": "json", "CLOUDGRANT_CLUSTER_NAME": "env-name"})
        assert code == 0, err
        assert json.loads(out)["cluster"]["name"] == "env-name"


def test_kubeconfig_env_list_and_in_cluster():
    fx = fixture("gke")
    with harness.k8s_api("gke") as api:
        missing = os.path.join(api.state_dir, "does-not-exist")
        code, out, err = run(["identity", "-o", "json"],
                             {"KUBECONFIG": missing + ":" + api.kubeconfig})
        assert code == 0, err
        expect_identity(out, fx["expected"], api.url)

        sa = tempfile.mkdtemp(prefix="cg-sa-")
        shutil.copy(os.path.join(api.state_dir, "ca.crt"), os.path.join(sa, "ca.crt"))
        with open(os.path.join(sa, "token"), "w") as f:
            f.write(api.token + "\n")
        with open(os.path.join(sa, "namespace"), "w") as f:
            f.write("cloudgrant")
        code, out, err = run(["identity", "-o", "json", "--no-metadata"],
                             {"KUBERNETES_SERVICE_HOST": "127.0.0.1",
                              "KUBERNETES_SERVICE_PORT": str(api.port),
                              "CLOUDGRANT_SERVICE_ACCOUNT_DIR": sa})
        assert code == 0, err
        expect_identity(out, fx["expected"], "https://127.0.0.1:%d" % api.port)


def write_kubeconfig(api, path, user):
    with open(api.kubeconfig) as f:
        kc = f.read()
    # reuse the cluster entry of the emulator's kubeconfig, replace the users with ours
    import re
    ca = re.search(r"certificate-authority-data:\s*(\S+)", kc).group(1)
    with open(path, "w") as f:
        f.write("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                "clusters:\n- name: k\n  cluster:\n    server: %s\n"
                "    certificate-authority-data: %s\n"
                "contexts:\n- name: c\n  context: {cluster: k, user: u}\n"
                "users:\n- name: u\n  user:\n%s" % (api.url, ca, user))


def test_exec_plugin_and_token_file():
    fx = fixture("aks")
    with harness.k8s_api("aks") as api:
        d = tempfile.mkdtemp(prefix="cg-exec-")
        info = os.path.join(d, "exec-info.json")
        plugin = os.path.join(d, "plugin.py")
        with open(plugin, "w") as f:
            f.write("import json, os, sys\n"
                    "open(%r, 'w').write(os.environ.get('KUBERNETES_EXEC_INFO', ''))\n"
                    "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1',"
                    " 'kind': 'ExecCredential', 'status': {'token': %r,"
                    " 'expirationTimestamp': '2999-01-01T00:00:00Z'}}))\n" % (info, api.token))
        kc = os.path.join(d, "kubeconfig")
        write_kubeconfig(api, kc,
                         "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
                         "      command: %s\n      args: [%s]\n      interactiveMode: Never\n"
                         "      provideClusterInfo: true\n"
                         "      env: [{name: PLUGIN_MODE, value: test}]\n"
                         % (sys.executable, plugin))
        code, out, err = run(["identity", "-o", "json", "--kubeconfig", kc])
        assert code == 0, err
        expect_identity(out, fx["expected"], api.url)
        with open(info) as f:
            ei = json.load(f)
        assert ei["kind"] == "ExecCredential" and ei["spec"]["interactive"] is False, ei
        assert ei["spec"]["cluster"]["server"] == api.url, ei

        # a plugin that fails: exit 1, its stderr's first line in the message
        with open(plugin, "w") as f:
            f.write("import sys\nsys.stderr.write('no credentials configured\\n')\nsys.exit(3)\n")
        code, out, err = run(["identity", "--kubeconfig", kc])
        expect_one_line_error(code, err, 1, "exec credential plugin", "exit status 3",
                              "no credentials configured")

        # a token file, re-read after a 401 (the emulator refuses the first request)
        tok = os.path.join(d, "token")
        with open(tok, "w") as f:
            f.write(api.token)
        write_kubeconfig(api, kc, "    tokenFile: token\n")
        code, out, err = run(["identity", "-o", "json", "--kubeconfig", kc])
        assert code == 0, err
        expect_identity(out, fx["expected"], api.url)

    with harness.k8s_api("aks", extra_args=["--fail-first-401", "1"]) as api:
        d = tempfile.mkdtemp(prefix="cg-tf-")
        with open(os.path.join(d, "token"), "w") as f:
            f.write(api.token)
        kc = os.path.join(d, "kubeconfig")
        write_kubeconfig(api, kc, "    tokenFile: token\n")
        code, out, err = run(["identity", "-o", "json", "--kubeconfig", kc])
        assert code == 0, "a 401 must trigger one token re-read and retry: %s" % err


def test_bad_kubeconfigs_exit_2_naming_the_file():
    d = tempfile.mkdtemp(prefix="cg-bad-")
    cases = {
        "bad-yaml": ("apiVersion: v1\nclusters: [\n  - name: x\n", []),
        "missing-context": ("apiVersion: v1\nkind: Config\ncurrent-context: nope\n"
                            "clusters: []\ncontexts: []\nusers: []\n", ["nope"]),
        "bad-base64": ("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                       "clusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:1\n"
                       "    certificate-authority-data: '%%%%not base64'\n"
                       "contexts:\n- name: c\n  context: {cluster: k, user: u}\n"
                       "users:\n- name: u\n  user: {}\n", ["base64"]),
        "exec-version": ("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                         "clusters:\n- name: k\n  cluster: {server: 'https://127.0.0.1:1'}\n"
                         "contexts:\n- name: c\n  context: {cluster: k, user: u}\n"
                         "users:\n- name: u\n  user:\n    exec:\n"
                         "      apiVersion: client.authentication.k8s.io/v1alpha9\n"
                         "      command: x\n", ["apiVersion"]),
    }
    for name, (text, needles) in cases.items():
        path = os.path.join(d, name + ".yaml")
        with open(path, "w") as f:
            f.write(text)
        code, out, err = run(["identity", "--kubeconfig", path])
        expect_one_line_error(code, err, 2, path, *needles)
    missing = os.path.join(d, "missing.yaml")
    code, out, err = run(["identity", "--kubeconfig", missing])
    expect_one_line_error(code, err, 2, missing)
    code, out, err = run(["identity", "--bogus-flag"])
    expect_one_line_error(code, err, 2, "--bogus-flag")
    # nothing configured at all
    code, out, err = run(["identity"])
    expect_one_line_error(code, err, 2, "no Kubernetes configuration")


def test_unreachable_tls_mismatch_and_refused_credentials_exit_1():
    with harness.k8s_api("eks") as api, harness.k8s_api("eks") as other:
        d = tempfile.mkdtemp(prefix="cg-fail-")
        # the other emulator's CA does not vouch for this server's certificate
        kc = os.path.join(d, "wrong-ca")
        with open(api.kubeconfig) as f:
            text = f.read()
        with open(other.kubeconfig) as f:
            import re
            other_ca = re.search(r"certificate-authority-data:\s*(\S+)", f.read()).group(1)
        with open(kc, "w") as f:
            f.write(re.sub(r"certificate-authority-data:\s*\S+",
                           "certificate-authority-data: " + other_ca, text))
        code, out, err = run(["identity", "--kubeconfig", kc])
        expect_one_line_error(code, err, 1, "certificate")

        wrong = os.path.join(d, "wrong-token")
        with open(wrong, "w") as f:
            f.write(text.replace(api.token, "not-the-token"))
        code, out, err = run(["identity", "--kubeconfig", wrong])
        expect_one_line_error(code, err, 1, "401")

        closed = os.path.join(d, "closed-port")
        with open(closed, "w") as f:
            f.write(text.replace(api.url, "https://127.0.0.1:1"))
        code, out, err = run(["identity", "--kubeconfig", closed])
        expect_one_line_error(code, err, 1, "127.0.0.1:1")

        plain = os.path.join(d, "plain-http")
        with open(plain, "w") as f:
            f.write(text.replace(api.url, "http://203.0.113.7:6443"))
        code, out, err = run(["identity", "--kubeconfig", plain])
        expect_one_line_error(code, err, 2, "plain http")


def test_trace_logs_redact_credentials():
    with harness.k8s_api("eks") as api:
        code, out, err = run(["identity", "--kubeconfig", api.kubeconfig, "--log-level", "trace",
                              "--log-format", "json"])
        assert code == 0, err
        assert_no_secret(api.token, out, err)
        assert "Authorization" in err or "authorization" in err, "trace shows no headers"
        for line in err.splitlines():
            json.loads(line)  # every log line is one JSON object


def main():
    if not os.path.exists(BIN):
        print("cloudgrant binary not found at %s" % BIN)
        return 1
    return harness.run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
