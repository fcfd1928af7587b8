#!/usr/bin/env python3
"""The README's demo: cloudgrant identity against emulated EKS, GKE, AKS and Outscale
clusters, each with its cloud's instance metadata service."""

import argparse
import contextlib
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "emulators"))
import harness  # noqa: E402

CLOUDS = [("eks", "aws"), ("gke", "gcp"), ("aks", "azure"), ("outscale", None)]


def aws_demo(binary):
    """plan / onboard / onboard again / check / drift / check --fix / offboard on AWS, with
    the node-autoscaler profile, against the EKS emulator and moto."""
    import json
    import moto_harness
    import tempfile
    failures = 0
    with harness.k8s_api("eks") as api, moto_harness.moto(validate=True) as moto:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KUBE"))}
        env.update(moto.env())
        env["CLOUDGRANT_PROFILES_DIR"] = os.path.join(ROOT, "profiles")
        creds = os.path.join(tempfile.mkdtemp(prefix="cg-demo-"), "credentials.json")
        user = "cast-eks-" + api.fixture["expected"]["name"]
        print("\n### AWS: node-autoscaler profile on the EKS cluster, IAM and STS from moto %s"
              % moto.url)

        def step(title, args, want=0):
            nonlocal failures
            print("\n# %s\n$ cloudgrant %s" % (title, " ".join(args)))
            sys.stdout.flush()
            rc = subprocess.call([binary] + args + ["--kubeconfig", api.kubeconfig], env=env)
            if rc != want:
                print("exit code %d, expected %d" % (rc, want))
                failures += 1

        prof = ["--profile", "node-autoscaler"]
        out = ["--credentials-out", creds]
        step("what onboarding would do (no change is made)", ["plan"] + prof)
        step("onboard", ["onboard"] + prof + out)
        step("onboard again: nothing to change", ["onboard"] + prof + out)
        step("drift check", ["check"] + prof)
        print("\n# someone detaches IAMReadOnlyAccess by hand")
        moto.aws("iam", "detach-user-policy", "--user-name", user, "--policy-arn",
                 "arn:aws:iam::aws:policy/IAMReadOnlyAccess")
        step("drift check finds it (exit code 3)", ["check"] + prof, want=3)
        step("and repairs it", ["check", "--fix"] + prof + out)
        with open(creds) as f:
            key = json.load(f)["accessKeyId"]
        print("\n# the platform's credential (secret not shown): access key %s in %s"
              % (key, creds))
        step("offboard: delete what cloudgrant created", ["offboard"] + prof)
        bad = moto.violations()
        if bad:
            print("requests botocore's model rejects: %s" % bad)
            failures += 1
    return failures


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
    print("\ndemo %s" % ("finished" if failures == 0 else "FAILED (%d runs)" % failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
