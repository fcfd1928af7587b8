#!/usr/bin/env python3
"""The README's demo: cloudgrant identity against emulated EKS, GKE, AKS and Outscale
clusters, each with its cloud's instance metadata service; then plan, onboard, drift, repair,
rotate and offboard on each cloud against its emulator (moto for AWS)."""

import argparse
import contextlib
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "emulators"))
import harness  # noqa: E402

CLOUDS = [("eks", "aws"), ("gke", "gcp"), ("aks", "azure"), ("outscale", None)]


def show_report(central, priv):
    """What the platform received: the report, and the credential only its key opens."""
    import json
    rep = central.reports()[-1]["body"]
    cred = rep["credentials"]
    print("\n# the central endpoint received a %s (%s) with %d resources;"
          % (rep["kind"], rep["status"], len(rep["resources"])))
    print("# credentials: a JWE of %d characters (RSA-OAEP-256 + A256GCM): %s..."
          % (len(cred), cred[:40]))
    try:
        from jwcrypto import jwe, jwk
    except ImportError:
        print("# (install python3-jwcrypto to watch the platform open it)")
        return
    with open(priv, "rb") as f:
        key = jwk.JWK.from_pem(f.read())
    token = jwe.JWE()
    token.deserialize(cred, key=key)
    doc = json.loads(token.payload)
    print("# opened with the platform's private key: %s %s for %s (secret not shown)"
          % (doc["type"], doc["accessKeyId"], doc["userName"]))


class Steps:
    """Runs one titled cloudgrant command of a demo story and counts unexpected exit codes."""

    def __init__(self, binary, kubeconfig, env):
        self.binary, self.kubeconfig, self.env = binary, kubeconfig, env
        self.failures = 0

    def __call__(self, title, args, want=0):
        print("\n# %s\n$ cloudgrant %s" % (title, " ".join(args)))
        sys.stdout.flush()
        rc = subprocess.call([self.binary] + args + ["--kubeconfig", self.kubeconfig],
                             env=self.env)
        if rc != want:
            print("exit code %d, expected %d" % (rc, want))
            self.failures += 1


def aws_demo(binary):
    """plan / onboard / onboard again / check / drift / check --fix / offboard on AWS, with
    the node-autoscaler profile, against the EKS emulator and moto."""
    import json
    import moto_harness
    import tempfile
    failures = 0
    import central_harness
    work = tempfile.mkdtemp(prefix="cg-demo-")
    # the platform's key pair: cloudgrant gets only the public half
    priv, pub = os.path.join(work, "platform.key"), os.path.join(work, "platform.pub")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", priv], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", priv, "-pubout", "-out", pub], check=True,
                   capture_output=True)
    token = "demo-report-token"
    with harness.k8s_api("eks") as api, moto_harness.moto(validate=True) as moto, \
            central_harness.central(token=token) as central:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AWS_", "KUBE", "CLOUDGRANT_"))}
        env.update(moto.env())
        env["CLOUDGRANT_PROFILES_DIR"] = os.path.join(ROOT, "profiles")
        env["CLOUDGRANT_REPORT_TOKEN"] = token
        creds = os.path.join(work, "credentials.json")
        user = "cast-eks-" + api.fixture["expected"]["name"]
        print("\n### AWS: node-autoscaler profile on the EKS cluster, IAM and STS from moto %s"
              % moto.url)

        step = Steps(binary, api.kubeconfig, env)

        prof = ["--profile", "node-autoscaler"]
        out = ["--report-url", central.report_url, "--seal-key", pub]
        step("what onboarding would do (no change is made)", ["plan"] + prof)
        step("onboard: the key is kept in a Secret, then reported, sealed, to the platform",
             ["onboard"] + prof + out)
        show_report(central, priv)
        step("onboard again: nothing to change", ["onboard"] + prof + out)
        step("drift check", ["check"] + prof)
        print("\n# someone detaches IAMReadOnlyAccess by hand")
        moto.aws("iam", "detach-user-policy", "--user-name", user, "--policy-arn",
                 "arn:aws:iam::aws:policy/IAMReadOnlyAccess")
        step("drift check finds it (exit code 3)", ["check"] + prof, want=3)
        step("and repairs it", ["check", "--fix"] + prof + out)
        step("rotate: new key stored and handed over before the old one goes",
             ["rotate"] + prof + out)
        step("offboard: delete what cloudgrant created", ["offboard"] + prof + out)
        print("\n# the central endpoint received %d reports, each validated against "
              "docs/report.schema.json" % len(central.reports()))
        bad = moto.violations()
        if bad:
            print("requests botocore's model rejects: %s" % bad)
            failures += 1
    return failures + step.failures


def gcp_demo(binary):
    """plan / onboard / onboard again / drift / check --fix / rotate / offboard on GCP, with
    the node-autoscaler profile, against the GKE emulator and the GCP emulator."""
    import central_harness
    import gcp_harness
    failures = 0
    token = "demo-report-token"
    # every request body is checked against gcloud's message classes when gcloud is here
    validate = gcp_harness.bundled_python() is not None
    with harness.k8s_api("gke") as api, central_harness.central(token=token) as central, \
            gcp_harness.gcp(project="acme-prod-321", validate=validate) as g:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AWS_", "KUBE", "CLOUDGRANT_", "GOOGLE_", "GCE_",
                                    "CLOUDSDK_"))}
        env.update(g.env())
        env.update(g.metadata_env())
        env["CLOUDGRANT_PROFILES_DIR"] = os.path.join(ROOT, "profiles")
        env["CLOUDGRANT_REPORT_TOKEN"] = token
        print("\n### GCP: node-autoscaler profile on the GKE cluster, IAM, Service Usage and "
              "Resource Manager from the emulator %s" % g.url)

        step = Steps(binary, api.kubeconfig, env)

        prof = ["--profile", "node-autoscaler"]
        out = ["--report-url", central.report_url]
        step("what onboarding would do on a fresh project", ["plan"] + prof)
        step("onboard: APIs, service account, custom role, bindings, one key handed over",
             ["onboard"] + prof + out)
        step("onboard again: nothing to change", ["onboard"] + prof + out)
        print("\n# someone adds a permission to castai.gkeAccess by hand")
        role = g.call("GET", "/iam/v1/projects/%s/roles/castai.gkeAccess" % g.project)[1]
        g.set_role_permissions("castai.gkeAccess",
                               role["includedPermissions"] + ["compute.instances.setIamPolicy"])
        step("drift check finds it (exit code 3)", ["check"] + prof, want=3)
        step("and repairs it", ["check", "--fix"] + prof + out)
        step("rotate: new key stored and handed over before the old one goes",
             ["rotate"] + prof + out)
        step("offboard: delete what cloudgrant created", ["offboard"] + prof + out)
        if g.violations():
            print("requests gcloud's model rejects: %s" % g.violations())
            failures += 1
    return failures + step.failures


def azure_demo(binary):
    """plan / onboard / onboard again / drift / check --fix / rotate / offboard on Azure, with
    the platform-access profile (the seed's app registration, client secret and Contributor),
    against the AKS emulator and the Graph and ARM emulator."""
    import azure_harness
    import central_harness
    failures = 0
    token = "demo-report-token"
    # ARM request bodies are checked against azure-mgmt-authorization's models when the SDK
    # is installed (scripts/setup.sh installs python3-azure)
    validate = azure_harness.sdk_available()
    with harness.k8s_api("aks") as api, central_harness.central(token=token) as central, \
            azure_harness.azure(validate=validate) as az:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AWS_", "KUBE", "CLOUDGRANT_", "AZURE_", "GOOGLE_",
                                    "GCE_", "CLOUDSDK_"))}
        env.update(az.env())
        env["CLOUDGRANT_PROFILES_DIR"] = os.path.join(ROOT, "profiles")
        env["CLOUDGRANT_REPORT_TOKEN"] = token
        print("\n### Azure: platform-access profile on the AKS cluster, Microsoft Graph and ARM "
              "from the emulator %s" % az.url)

        step = Steps(binary, api.kubeconfig, env)

        prof = ["--profile", "platform-access"]
        out = ["--report-url", central.report_url]
        step("what onboarding would do on a fresh subscription", ["plan"] + prof)
        step("onboard: app registration, service principal, Contributor, one client secret "
             "handed over", ["onboard"] + prof + out)
        step("onboard again: nothing to change", ["onboard"] + prof + out)
        print("\n# someone removes the role assignment by hand")
        app = az.find_app("platform-access-aks-main")
        sp = az.find_sp(app["appId"]) if app else None
        for a in az.assignments(sp["id"]) if sp else []:
            az.remove_role_assignment(a["name"])
        step("drift check finds it (exit code 3)", ["check"] + prof, want=3)
        step("and repairs it", ["check", "--fix"] + prof + out)
        step("least privilege instead: a custom role with only the actions the platform uses",
             ["onboard", "--azure-grant", "custom"] + prof + out)
        step("rotate: new secret stored and handed over before the old one goes",
             ["rotate", "--azure-grant", "custom"] + prof + out)
        step("offboard: delete what cloudgrant created",
             ["offboard", "--azure-grant", "custom"] + prof + out)
        if az.violations():
            print("requests the Azure models reject: %s" % az.violations())
            failures += 1
    return failures + step.failures


def outscale_demo(binary):
    """plan / onboard / onboard again / drift / check --fix / rotate / offboard on OUTSCALE,
    with the platform-access profile (the seed's "access key and secret key", for a dedicated
    EIM user with a least-privilege policy), against the Outscale cluster and the OUTSCALE API
    emulator, which verifies every request's OSC4 signature."""
    import central_harness
    import osc_harness
    failures = 0
    token = "demo-report-token"
    with harness.k8s_api("outscale") as api, central_harness.central(token=token) as central, \
            osc_harness.osc() as osc:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AWS_", "KUBE", "CLOUDGRANT_", "AZURE_", "GOOGLE_",
                                    "GCE_", "CLOUDSDK_", "OSC_"))}
        env.update(osc.env())
        env["CLOUDGRANT_PROFILES_DIR"] = os.path.join(ROOT, "profiles")
        env["CLOUDGRANT_REPORT_TOKEN"] = token
        env["CLOUDGRANT_CLUSTER_NAME"] = "osc-demo"  # the Outscale nodes do not name it
        print("\n### OUTSCALE: platform-access profile on the Outscale cluster, the OUTSCALE API "
              "from the emulator %s" % osc.url)

        step = Steps(binary, api.kubeconfig, env)

        prof = ["--profile", "platform-access"]
        out = ["--report-url", central.report_url]
        step("what onboarding would do on a fresh account", ["plan"] + prof)
        step("onboard: EIM user and policy under /cloudgrant/, linked, one access key handed "
             "over", ["onboard"] + prof + out)
        step("onboard again: nothing to change", ["onboard"] + prof + out)
        print("\n# someone edits the policy by hand and gives the user a key of their own")
        pol = osc.policy("PlatformAccess-osc-demo")
        osc.set_policy_document(pol["Orn"], {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["api:*"], "Resource": ["*"]}]})
        osc.add_access_key("platform-access-osc-demo")
        step("drift check finds both (exit code 3)", ["check"] + prof, want=3)
        step("and repairs them", ["check", "--fix"] + prof + out)
        step("rotate: new key stored and handed over before the old one is deactivated and "
             "deleted", ["rotate"] + prof + out)
        step("offboard: delete what cloudgrant created", ["offboard"] + prof + out)
        if osc.violations():
            print("requests the OUTSCALE models reject: %s" % osc.violations())
            failures += 1
    return failures + step.failures


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "agent", "cloudgrant"))
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    failures = 0
    for cluster, cloud in CLOUDS:
        fixture = os.path.join(ROOT, "tests", "fixtures", "clusters", cluster + ".json")
        with contextlib.ExitStack() as stack:
            api = stack.enter_context(harness.k8s_api(cluster))
            env = dict(os.environ)
            for k in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST"):
                env.pop(k, None)
            where = "no metadata service"
            if cloud is not None:
                md = stack.enter_context(harness.metadata(cloud, fixture))
                env.update(md.env)
                where = "%s metadata %s" % (cloud, md.url)
            else:
                env["AWS_EC2_METADATA_DISABLED"] = "true"
            print("\n### %s cluster (Kubernetes API %s, %s)" % (cluster.upper(), api.url, where))
            for extra in ([], ["-o", "json"]):
                cmd = [binary, "identity", "--kubeconfig", api.kubeconfig] + extra
                print("$ cloudgrant identity --kubeconfig %s %s" %
                      (os.path.basename(api.kubeconfig), " ".join(extra)))
                sys.stdout.flush()
                rc = subprocess.call(cmd, env=env)
                if rc != 0:
                    print("exit code %d" % rc)
                    failures += 1
    failures += aws_demo(binary)
    failures += gcp_demo(binary)
    failures += azure_demo(binary)
    failures += outscale_demo(binary)
    print("\ndemo %s" % ("finished" if failures == 0 else "FAILED (%d runs)" % failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
