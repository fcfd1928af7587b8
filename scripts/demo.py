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
    print("\ndemo %s" % ("finished" if failures == 0 else "FAILED (%d runs)" % failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
