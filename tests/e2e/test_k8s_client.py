#!/usr/bin/env python3
"""End-to-end test of the Kubernetes client's verbs (POST, GET, PUT, PATCH, DELETE) through
the test driver k8s_call, checked with the real kubectl against the same emulator."""

import base64
import json
import os
import subprocess
import sys

SRC = os.environ.get("CG_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "emulators"))
import harness  # noqa: E402

# ctest passes the driver's path; by hand: test_k8s_client.py build/tests/k8s_call
CALL = sys.argv[1] if len(sys.argv) > 1 else os.path.join(SRC, "build", "tests", "k8s_call")
NS = "/api/v1/namespaces/default/secrets"


def call(api, method, path, body=None, context=None):
    args = [CALL, "--kubeconfig", api.kubeconfig, method, path]
    if body is not None:
        args.append(json.dumps(body))
    p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    status, _, rest = p.stdout.partition("\n")
    return p.returncode, int(status or 0), json.loads(rest or "null"), p.stderr


def kubectl_secret(api, name):
    p = api.kubectl("get", "secret", name, "-n", "default", "-o", "json")
    return json.loads(p.stdout) if p.returncode == 0 else None


def b64(s):
    return base64.b64encode(s.encode()).decode()


def test_secret_round_trip_seen_by_kubectl():
    with harness.k8s_api("eks") as api:
        secret = {"apiVersion": "v1", "kind": "Secret",
                  "metadata": {"name": "cg-test", "labels": {"app": "cloudgrant"}},
                  "data": {"k": b64("v1")}}
        rc, status, body, err = call(api, "POST", NS, secret)
        assert rc == 0 and status == 201, (rc, status, err)
        got = kubectl_secret(api, "cg-test")
        assert got is not None and got["data"]["k"] == b64("v1"), got

        rc, status, body, err = call(api, "POST", NS, secret)
        assert rc == 1 and status == 409, (rc, status)
        assert "409" in err and "already exists" in err, err

        rc, status, body, err = call(api, "PATCH", NS + "/cg-test", {"data": {"k": b64("v2")}})
        assert rc == 0 and status == 200, (rc, status, err)
        assert kubectl_secret(api, "cg-test")["data"]["k"] == b64("v2")

        current = kubectl_secret(api, "cg-test")
        current["data"] = {"k": b64("v3")}
        rc, status, body, err = call(api, "PUT", NS + "/cg-test", current)
        assert rc == 0 and status == 200, (rc, status, err)
        assert kubectl_secret(api, "cg-test")["data"]["k"] == b64("v3")

        rc, status, body, err = call(api, "DELETE", NS + "/cg-test")
        assert rc == 0 and status == 200, (rc, status, err)
        assert kubectl_secret(api, "cg-test") is None

        rc, status, body, err = call(api, "GET", NS + "/cg-test")
        assert rc == 1 and status == 404 and "not found" in err, (rc, status, err)
        assert err.startswith("GET %s/cg-test: 404 Not Found" % NS), err


def test_forbidden_is_reported_with_the_rbac_message():
    with harness.k8s_api("eks", extra_args=["--forbid", "list:nodes"]) as api:
        rc, status, body, err = call(api, "GET", "/api/v1/nodes")
        assert rc == 1 and status == 403, (rc, status, err)
        assert "forbidden" in err, err


def main():
    return harness.run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
