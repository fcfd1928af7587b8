#!/usr/bin/env python3
"""The README's demo: cloudgrant identity against emulated EKS, GKE, AKS and Outscale
clusters, each with its cloud's instance metadata service."""

import argparse
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "emulators"))
import harness  # noqa: E402

CLOUDS = [("eks", "aws"), ("gke", "gcp"), ("aks", "azure"), ("outscale", "aws")]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "agent", "cloudgrant"))
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    failures = 0
    for cluster, cloud in CLOUDS:
        fixture = os.path.join(ROOT, "tests", "fixtures", "clusters", cluster + ".json")
        with harness.k8s_api(cluster) as api, harness.metadata(cloud, fixture) as md:
            env = dict(os.environ)
            for k in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST"):
                env.pop(k, None)
            env.update({"aws": {"AWS_EC2_METADATA_SERVICE_ENDPOINT": md.url},
                        "gcp": {"GCE_METADATA_HOST": "127.0.0.1:%d" % md.port},
                        "azure": {"CLOUDGRANT_AZURE_IMDS_URL": md.url}}[cloud])
            print("\n### %s cluster (Kubernetes API %s, %s metadata %s)" %
                  (cluster.upper(), api.url, cloud, md.url))
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
