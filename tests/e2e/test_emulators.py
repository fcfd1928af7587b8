#!/usr/bin/env python3
"""Check the emulators against real clients: kubectl for the Kubernetes API emulator, curl for
the metadata emulators, plus self-consistency of the cluster fixtures.

    CG_SOURCE_DIR=/work/main /usr/bin/python3 tests/e2e/test_emulators.py [-k SUBSTRING] [-v]

Prints one line a check and ends with "N passed, M failed"; exits 1 on any failure.
Without kubectl (or curl) the checks that need it are skipped, unless CI=true, where a
missing tool is a failure.
"""
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SRC = os.environ.get("CG_SOURCE_DIR") or os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "emulators"))
import harness  # noqa: E402
from checks import ok, section, skip, summary  # noqa: E402

CLUSTERS = ["eks", "gke", "aks", "outscale", "unknown"]
CI = os.environ.get("CI", "").lower() == "true"

# ----------------------------------------------------------------------------------------------
# curl helper: returns (status, headers dict lower-cased, body text, curl exit code)

CURL = shutil.which("curl")


def curl(url, *args, timeout=15):
    hdr = tempfile.NamedTemporaryFile(delete=False)
    hdr.close()
    try:
        r = subprocess.run([CURL, "-sS", "-o", "-", "-D", hdr.name, "-w", "\n%{http_code}",
                            "--max-time", str(timeout)] + list(args) + [url],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout + 10)
        out, _, code = r.stdout.rpartition("\n")
        headers = {}
        with open(hdr.name, errors="replace") as f:
            for line in f:
                if ":" in line and not line.startswith("HTTP/"):
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
        return int(code or 0), headers, out, r.returncode
    finally:
        os.unlink(hdr.name)


def jload(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


def is_status(body, code, reason):
    s = jload(body)
    return (isinstance(s, dict) and s.get("kind") == "Status" and s.get("apiVersion") == "v1"
            and s.get("status") == "Failure" and s.get("code") == code
            and s.get("reason") == reason and isinstance(s.get("message"), str)), s


# ----------------------------------------------------------------------------------------------
# Fixtures

def check_fixture(cluster):
    fx = harness.load_fixture(cluster)
    n = "fixture[%s]" % cluster
    keys = {"id", "name", "provider", "region", "account", "kubernetesVersion"}
    for blk in ("expected", "expected_with_metadata"):
        ok("%s %s has the identity fields" % (n, blk), set(fx[blk]) == keys, str(fx[blk]))
    exp = fx["expected"]
    ok(n + " id = kube-system uid", exp["id"] == fx["namespaces"]["kube-system"]["uid"])
    ok(n + " kubernetesVersion = /version gitVersion",
       exp["kubernetesVersion"] == fx["version"]["gitVersion"])
    names = [x["metadata"]["name"] for x in fx["nodes"]]
    ok(n + " node names unique", len(set(names)) == len(names))
    uids = [x["metadata"]["uid"] for x in fx["nodes"]]
    ok(n + " node uids unique", len(set(uids)) == len(uids))
    regions = {x["metadata"]["labels"].get("topology.kubernetes.io/region") for x in fx["nodes"]}
    regions.discard(None)
    if exp["region"]:
        ok(n + " region label agrees", regions == {exp["region"]}, str(regions))
    else:
        ok(n + " no region label", not regions, str(regions))
    pids = [x["spec"].get("providerID", "") for x in fx["nodes"]]
    if cluster == "gke":
        ok(n + " providerID project = account",
           all(p.split("/")[2] == exp["account"] for p in pids), str(pids))
    if cluster == "aks":
        ok(n + " providerID subscription = account",
           all(p.split("/")[4] == exp["account"] for p in pids), str(pids))
        rg = fx["metadata"]["instance"]["compute"]["resourceGroupName"]
        ok(n + " cluster label = node RG",
           all(x["metadata"]["labels"]["kubernetes.azure.com/cluster"] == rg for x in fx["nodes"]))
        ok(n + " IMDS subscription = account",
           fx["metadata"]["instance"]["compute"]["subscriptionId"] == exp["account"])
    if cluster in ("eks", "outscale"):
        ok(n + " providerID aws:///<zone>/...", all(p.startswith("aws:///" + exp["region"])
                                                   for p in pids), str(pids))
    if cluster == "eks":
        ok(n + " IMDS account = expected_with_metadata.account",
           fx["metadata"]["instance"]["accountId"] == fx["expected_with_metadata"]["account"])
    if cluster == "gke":
        ok(n + " metadata cluster-name = expected_with_metadata.name",
           fx["metadata"]["attributes"]["cluster-name"] == fx["expected_with_metadata"]["name"])


# ----------------------------------------------------------------------------------------------
# Kubernetes API emulator with kubectl

def node_summary(items):
    """Nodes as kubectl prints them, sorted by name: must equal the fixture's node objects
    exactly (kubectl adds kind/apiVersion to list items; the fixture has them)."""
    return sorted(items, key=lambda i: i["metadata"]["name"])


def check_kubectl_cluster(cluster):
    n = "k8s[%s]" % cluster
    with harness.k8s_api(cluster, auth="both") as k:
        fx = k.fixture
        want_nodes = node_summary(fx["nodes"])
        for ctx in ("token", "cert"):
            r = k.kubectl("get", "nodes", "-o", "json", context=ctx)
            doc = jload(r.stdout) if r.returncode == 0 else None
            ok("%s %s: kubectl get nodes -o json" % (n, ctx),
               doc is not None and node_summary(doc.get("items", [])) == want_nodes,
               r.stderr.strip() or r.stdout[:300])
            ok("%s %s: kubectl List wrapper" % (n, ctx),
               doc is not None and doc.get("kind") == "List" and doc.get("apiVersion") == "v1")
            r = k.kubectl("get", "--raw", "/version", context=ctx)
            ok("%s %s: kubectl get --raw /version" % (n, ctx),
               r.returncode == 0 and jload(r.stdout) == fx["version"], r.stderr.strip())
            r = k.kubectl("get", "namespace", "kube-system", "-o", "jsonpath={.metadata.uid}",
                          context=ctx)
            ok("%s %s: kube-system uid" % (n, ctx),
               r.returncode == 0 and r.stdout == fx["expected"]["id"],
               r.stdout + r.stderr.strip())
        # kubectl pages through the list with limit/continue (one node a page)
        r = k.kubectl("get", "nodes", "--chunk-size=1", "-o", "json")
        doc = jload(r.stdout) if r.returncode == 0 else None
        ok(n + " kubectl paginated get nodes (--chunk-size=1)",
           doc is not None and node_summary(doc.get("items", [])) == want_nodes, r.stderr.strip())
        # one node by name
        first = fx["nodes"][0]["metadata"]["name"]
        r = k.kubectl("get", "node", first, "-o", "jsonpath={.spec.providerID}")
        ok(n + " kubectl get node NAME", r.returncode == 0 and
           r.stdout == fx["nodes"][0]["spec"].get("providerID", ""), r.stdout + r.stderr)
        # server-side table printing
        r = k.kubectl("get", "nodes")
        ok(n + " kubectl get nodes (table)", r.returncode == 0 and "STATUS" in r.stdout
           and all(x["metadata"]["name"] in r.stdout for x in fx["nodes"]), r.stdout + r.stderr)
        # wrong token -> 401
        r = k.kubectl("--token", "not-the-token", "get", "nodes", context="token")
        ok(n + " wrong token is refused (401)", r.returncode != 0 and "Unauthorized" in r.stderr,
           r.stderr.strip())
        # secret round trip
        r = k.kubectl("create", "secret", "generic", "cg-test", "--from-literal=k=v",
                      "--from-literal=other=x")
        ok(n + " kubectl create secret", r.returncode == 0 and "created" in r.stdout,
           r.stderr.strip())
        r = k.kubectl("get", "secret", "cg-test", "-o", "json")
        doc = jload(r.stdout) if r.returncode == 0 else {}
        ok(n + " kubectl get secret", (doc or {}).get("data", {}).get("k") ==
           base64.b64encode(b"v").decode() and doc.get("type") == "Opaque"
           and doc["metadata"].get("namespace") == "default" and doc["metadata"].get("uid"),
           r.stdout[:300] + r.stderr)
        r = k.kubectl("create", "secret", "generic", "cg-test", "--from-literal=k=v")
        ok(n + " kubectl create secret again -> AlreadyExists",
           r.returncode != 0 and "already exists" in r.stderr, r.stderr.strip())
        r = k.kubectl("delete", "secret", "cg-test")
        ok(n + " kubectl delete secret", r.returncode == 0 and "deleted" in r.stdout,
           r.stderr.strip())
        r = k.kubectl("get", "secret", "cg-test")
        ok(n + " kubectl get deleted secret -> NotFound",
           r.returncode != 0 and "NotFound" in r.stderr, r.stderr.strip())


def check_kubectl_extras():
    """Leases through kubectl create/replace -f (uses the OpenAPI v3 documents), patch, labels."""
    n = "k8s[extras]"
    with harness.k8s_api("eks") as k:
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": "cloudgrant-leader", "namespace": "default"},
                 "spec": {"holderIdentity": "pod-a", "leaseDurationSeconds": 15}}
        path = os.path.join(k.state_dir, "lease.json")
        with open(path, "w") as f:
            json.dump(lease, f)
        r = k.kubectl("create", "-f", path)
        ok(n + " kubectl create -f lease", r.returncode == 0 and "created" in r.stdout,
           r.stderr.strip())
        lease["spec"]["holderIdentity"] = "pod-b"
        with open(path, "w") as f:
            json.dump(lease, f)
        r = k.kubectl("replace", "-f", path)
        ok(n + " kubectl replace -f lease", r.returncode == 0, r.stderr.strip())
        r = k.kubectl("get", "lease", "cloudgrant-leader", "-o", "jsonpath={.spec.holderIdentity}")
        ok(n + " lease holder updated", r.stdout == "pod-b", r.stdout + r.stderr)
        r = k.kubectl("create", "secret", "generic", "p", "--from-literal=a=b")
        r = k.kubectl("patch", "secret", "p", "--type=merge", "-p", '{"stringData":{"c":"d"}}')
        ok(n + " kubectl patch --type=merge", r.returncode == 0, r.stderr.strip())
        r = k.kubectl("patch", "secret", "p", "--type=json",
                      "-p", '[{"op":"remove","path":"/data/a"}]')
        ok(n + " kubectl patch --type=json", r.returncode == 0, r.stderr.strip())
        r = k.kubectl("label", "secret", "p", "app=cloudgrant")
        r = k.kubectl("get", "secrets", "-l", "app=cloudgrant", "-o", "json")
        doc = jload(r.stdout) or {}
        items = doc.get("items", [])
        ok(n + " secret data after patches + label selector",
           len(items) == 1 and items[0].get("data") == {"c": base64.b64encode(b"d").decode()},
           r.stdout[:400] + r.stderr)


def check_k8s_raw():
    """Protocol details with curl (libcurl, as the agent uses)."""
    n = "k8s[raw]"
    with harness.k8s_api("gke") as k:
        tok = ["-H", "Authorization: Bearer " + k.token, "--cacert", k.ca]
        cert = ["--cert", k.client_cert, "--key", k.client_key, "--cacert", k.ca]
        u = k.url
        code, h, body, _ = curl(u + "/api/v1/nodes", "--cacert", k.ca)
        good, _ = is_status(body, 401, "Unauthorized")
        ok(n + " no credentials -> 401 Status", code == 401 and good, body)
        code, h, body, _ = curl(u + "/api/v1/nodes", "--cacert", k.ca,
                                "-H", "Authorization: Bearer nope")
        ok(n + " bad token -> 401", code == 401 and is_status(body, 401, "Unauthorized")[0], body)
        code, h, body, _ = curl(u + "/api/v1/namespaces/kube-system", *cert)
        d = jload(body) or {}
        ok(n + " client cert: namespace kube-system", code == 200 and d.get("kind") == "Namespace"
           and d["metadata"]["uid"] == k.fixture["expected"]["id"], body[:200])
        code, h, body, _ = curl(u + "/no/such/path", *tok)
        ok(n + " unknown path -> 404 Status", code == 404 and is_status(body, 404, "NotFound")[0],
           body)
        code, h, body, _ = curl(u + "/api/v1/nodes/nope", *tok)
        good, s = is_status(body, 404, "NotFound")
        ok(n + " unknown node -> 404 NotFound", code == 404 and good and
           s["message"] == 'nodes "nope" not found' and s["details"] == {"name": "nope",
                                                                          "kind": "nodes"}, body)
        # pagination by hand
        names, cont, pages, remaining = [], None, 0, []
        while True:
            q = "/api/v1/nodes?limit=1" + ("&continue=" + cont if cont else "")
            code, h, body, _ = curl(u + q, *tok)
            d = jload(body) or {}
            if code != 200:
                break
            pages += 1
            names += [i["metadata"]["name"] for i in d["items"]]
            ok(n + " list items carry no kind", all("kind" not in i for i in d["items"]))
            remaining.append(d["metadata"].get("remainingItemCount"))
            cont = d["metadata"].get("continue")
            if not cont or pages > 10:
                break
        want = sorted(x["metadata"]["name"] for x in k.fixture["nodes"])
        ok(n + " limit/continue pages", names == want and pages == len(want), str(names))
        ok(n + " remainingItemCount", remaining == list(range(len(want) - 1, 0, -1)) + [None],
           str(remaining))
        code, h, body, _ = curl(u + "/api/v1/nodes?limit=1&continue=bad!", *tok)
        ok(n + " invalid continue -> 400", code == 400 and is_status(body, 400, "BadRequest")[0],
           body)
        code, h, body, _ = curl(u + "/api/v1/nodes?labelSelector=cloud.google.com/gke-nodepool%3Dhighmem-pool", *tok)
        d = jload(body) or {}
        ok(n + " labelSelector", code == 200 and len(d.get("items", [])) == 1, body[:200])
        # discovery documents
        for p, kind in (("/api", "APIVersions"), ("/apis", "APIGroupList"),
                        ("/api/v1", "APIResourceList"),
                        ("/apis/coordination.k8s.io/v1", "APIResourceList")):
            code, h, body, _ = curl(u + p, *tok)
            ok(n + " discovery " + p, code == 200 and (jload(body) or {}).get("kind") == kind,
               body[:200])
        # secrets: create, conflict, invalid, patch, delete
        sec = json.dumps({"apiVersion": "v1", "kind": "Secret",
                          "metadata": {"name": "s1", "labels": {"a": "b"}},
                          "stringData": {"token": "abc"}})
        post = tok + ["-X", "POST", "-H", "Content-Type: application/json", "--data-binary", sec]
        code, h, body, _ = curl(u + "/api/v1/namespaces/cloudgrant-x/secrets", *post)
        ok(n + " create in missing namespace -> 404 namespaces",
           code == 404 and (jload(body) or {}).get("details", {}).get("kind") == "namespaces", body)
        code, h, body, _ = curl(u + "/api/v1/namespaces/default/secrets", *post)
        d = jload(body) or {}
        ok(n + " POST secret -> 201", code == 201 and d.get("kind") == "Secret" and
           d.get("data") == {"token": base64.b64encode(b"abc").decode()} and
           "stringData" not in d and d["metadata"].get("resourceVersion"), body)
        rv1 = d.get("metadata", {}).get("resourceVersion")
        code, h, body, _ = curl(u + "/api/v1/namespaces/default/secrets", *post)
        good, s = is_status(body, 409, "AlreadyExists")
        ok(n + " POST again -> 409 AlreadyExists", code == 409 and good and
           s["message"] == 'secrets "s1" already exists', body)
        bad = json.dumps({"metadata": {"name": "Bad_Name"}, "data": {"k": "dg=="}})
        code, h, body, _ = curl(u + "/api/v1/namespaces/default/secrets", *tok, "-X", "POST",
                                "-H", "Content-Type: application/json", "--data-binary", bad)
        good, s = is_status(body, 422, "Invalid")
        ok(n + " invalid name -> 422 Invalid", code == 422 and good and
           s["details"]["causes"][0]["field"] == "metadata.name", body)
        code, h, body, _ = curl(u + "/api/v1/namespaces/default/secrets/s1", *tok, "-X", "PATCH",
                                "-H", "Content-Type: application/merge-patch+json",
                                "--data-binary", '{"metadata":{"labels":{"a":null,"c":"d"}}}')
        d = jload(body) or {}
        ok(n + " merge patch", code == 200 and d["metadata"].get("labels") == {"c": "d"} and
           d["metadata"]["resourceVersion"] != rv1, body)
        put = json.dumps({"metadata": {"name": "s1", "resourceVersion": rv1}, "data": {}})
        code, h, body, _ = curl(u + "/api/v1/namespaces/default/secrets/s1", *tok, "-X", "PUT",
                                "-H", "Content-Type: application/json", "--data-binary", put)
        ok(n + " PUT with stale resourceVersion -> 409 Conflict",
           code == 409 and is_status(body, 409, "Conflict")[0], body)
        code, h, body, _ = curl(u + "/api/v1/namespaces/default/secrets/s1", *tok, "-X", "DELETE")
        d = jload(body) or {}
        ok(n + " DELETE -> Success Status", code == 200 and d.get("status") == "Success" and
           d.get("details", {}).get("kind") == "secrets", body)
        code, h, body, _ = curl(u + "/api/v1/namespaces/default/secrets/s1", *tok, "-X", "DELETE")
        ok(n + " DELETE again -> 404", code == 404 and is_status(body, 404, "NotFound")[0], body)
        # leases: create, update with the current / a stale resourceVersion
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": "l1"},
                 "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}
        lu = u + "/apis/coordination.k8s.io/v1/namespaces/default/leases"
        code, h, body, _ = curl(lu, *tok, "-X", "POST", "-H", "Content-Type: application/json",
                                "--data-binary", json.dumps(lease))
        d = jload(body) or {}
        ok(n + " POST lease", code == 201 and d.get("spec", {}).get("holderIdentity") == "a", body)
        d["spec"]["holderIdentity"] = "b"
        code, h, body, _ = curl(lu + "/l1", *tok, "-X", "PUT", "-H",
                                "Content-Type: application/json", "--data-binary", json.dumps(d))
        d2 = jload(body) or {}
        ok(n + " PUT lease with current rv", code == 200 and d2["spec"]["holderIdentity"] == "b",
           body)
        code, h, body, _ = curl(lu + "/l1", *tok, "-X", "PUT", "-H",
                                "Content-Type: application/json", "--data-binary", json.dumps(d))
        good, s = is_status(body, 409, "Conflict")
        ok(n + " PUT lease with stale rv -> 409", code == 409 and good and
           s["details"].get("group") == "coordination.k8s.io", body)
        code, h, body, _ = curl(lu + "/l1", *tok)
        ok(n + " GET lease", code == 200 and (jload(body) or {}).get("spec", {})
           .get("holderIdentity") == "b", body)


def check_k8s_hooks():
    n = "k8s[hooks]"
    # --auth token: a client cert alone is refused; --auth cert: a token alone is refused
    with harness.k8s_api("aks", auth="token") as k:
        code, _, body, _ = curl(k.url + "/version", "--cacert", k.ca, "--cert", k.client_cert,
                                "--key", k.client_key)
        ok(n + " --auth token refuses a client cert", code == 401, body)
        code, _, body, _ = curl(k.url + "/version", "--cacert", k.ca,
                                "-H", "Authorization: Bearer " + k.token)
        ok(n + " --auth token accepts the token", code == 200, body)
    with harness.k8s_api("aks", auth="cert") as k:
        code, _, body, _ = curl(k.url + "/version", "--cacert", k.ca,
                                "-H", "Authorization: Bearer " + k.token)
        ok(n + " --auth cert refuses a token", code == 401, body)
        r = k.kubectl("get", "--raw", "/version", context="cert")
        ok(n + " --auth cert: kubectl cert context", r.returncode == 0, r.stderr)
    with harness.k8s_api("eks", extra_args=["--fail-first-401", "2"]) as k:
        codes = [curl(k.url + "/version", "--cacert", k.ca,
                      "-H", "Authorization: Bearer " + k.token)[0] for _ in range(3)]
        ok(n + " --fail-first-401 2", codes == [401, 401, 200], str(codes))
    with harness.k8s_api("eks", extra_args=["--rotate-token-after", "1"]) as k:
        old = k.token
        c1 = curl(k.url + "/version", "--cacert", k.ca, "-H", "Authorization: Bearer " + old)[0]
        c2 = curl(k.url + "/version", "--cacert", k.ca, "-H", "Authorization: Bearer " + old)[0]
        new = k.token
        with open(os.path.join(k.sa_dir, "token")) as f:
            sa_tok = f.read()
        c3 = curl(k.url + "/version", "--cacert", k.ca, "-H", "Authorization: Bearer " + new)[0]
        ok(n + " --rotate-token-after 1", [c1, c2, c3] == [200, 401, 200] and new != old and
           sa_tok == new, str([c1, c2, c3]))
    with harness.k8s_api("eks", extra_args=["--forbid", "list:nodes", "--forbid", "secrets"]) as k:
        tok = ["--cacert", k.ca, "-H", "Authorization: Bearer " + k.token]
        code, _, body, _ = curl(k.url + "/api/v1/nodes", *tok)
        good, s = is_status(body, 403, "Forbidden")
        ok(n + " --forbid list:nodes -> 403", code == 403 and good and s["message"] ==
           'nodes is forbidden: User "system:serviceaccount:cloudgrant:cloudgrant" cannot list '
           'resource "nodes" in API group "" at the cluster scope', body)
        first = k.fixture["nodes"][0]["metadata"]["name"]
        code, _, body, _ = curl(k.url + "/api/v1/nodes/" + first, *tok)
        ok(n + " --forbid list:nodes still allows get", code == 200, body[:200])
        code, _, body, _ = curl(k.url + "/api/v1/namespaces/default/secrets/x", *tok)
        good, s = is_status(body, 403, "Forbidden")
        ok(n + " --forbid secrets -> 403 namespaced message", code == 403 and good and
           s["message"].endswith('in the namespace "default"'), body)
        r = k.kubectl("get", "nodes")
        ok(n + " kubectl sees Forbidden", r.returncode != 0 and "forbidden" in r.stderr,
           r.stderr)
    with harness.k8s_api("unknown", extra_args=["--anonymous"]) as k:
        code, _, body, _ = curl(k.url + "/version", "--cacert", k.ca)
        ok(n + " --anonymous: /version allowed", code == 200, body)
        code, _, body, _ = curl(k.url + "/api/v1/nodes", "--cacert", k.ca)
        good, s = is_status(body, 403, "Forbidden")
        ok(n + " --anonymous: nodes forbidden", code == 403 and good and
           'system:anonymous' in s["message"], body)


def check_k8s_lifecycle():
    n = "k8s[lifecycle]"
    sd = tempfile.mkdtemp(prefix="cg-k8s-reuse-")
    try:
        with harness.k8s_api("eks", state_dir=sd) as k:
            with open(k.ca) as f:
                ca1 = f.read()
            tok1 = k.token
            kc = open(k.kubeconfig).read()
            ok(n + " kubeconfig has both contexts and the port",
               "name: token" in kc and "name: cert" in kc and "current-context: token" in kc and
               "https://127.0.0.1:%d" % k.port in kc)
            proc = k.proc
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=10)
            ok(n + " SIGTERM: clean exit", rc == 0 and time.monotonic() - t0 < 5,
               "rc=%s after %.1fs" % (rc, time.monotonic() - t0))
        with harness.k8s_api("eks", state_dir=sd) as k:
            with open(k.ca) as f:
                ca2 = f.read()
            ok(n + " state dir reused (same CA and token)", ca1 == ca2 and k.token == tok1)
            r = k.kubectl("get", "--raw", "/version")
            ok(n + " restarted server works", r.returncode == 0, r.stderr)
        # a client that connects and never speaks TLS must not block others
        with harness.k8s_api("eks") as k:
            import socket
            s = socket.create_connection(("127.0.0.1", k.port))
            code, _, _, _ = curl(k.url + "/version", "--cacert", k.ca,
                                 "-H", "Authorization: Bearer " + k.token, timeout=5)
            s.close()
            ok(n + " silent client does not block the server", code == 200)
    finally:
        shutil.rmtree(sd, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# Metadata emulators with curl

def check_aws_imds():
    n = "imds[aws]"
    with harness.metadata("aws", "eks") as m:
        u = m.url
        fx = m.fixture["metadata"]
        code, h, body, _ = curl(u + "/latest/meta-data/placement/region")
        ok(n + " GET without token -> 401 (HttpTokens=required)", code == 401, body)
        code, _, _, _ = curl(u + "/latest/api/token", "-X", "PUT")
        ok(n + " PUT without TTL -> 400", code == 400)
        for ttl in ("0", "21601", "abc"):
            code, _, _, _ = curl(u + "/latest/api/token", "-X", "PUT",
                                 "-H", "X-aws-ec2-metadata-token-ttl-seconds: " + ttl)
            ok(n + " PUT TTL %s -> 400" % ttl, code == 400)
        code, _, _, _ = curl(u + "/latest/api/token", "-X", "PUT", "-H",
                             "X-aws-ec2-metadata-token-ttl-seconds: 60", "-H",
                             "X-Forwarded-For: 10.0.0.1")
        ok(n + " PUT with X-Forwarded-For -> 403", code == 403)
        code, h, token, _ = curl(u + "/latest/api/token", "-X", "PUT",
                                 "-H", "X-aws-ec2-metadata-token-ttl-seconds: 21600")
        ok(n + " PUT token (TTL 21600)", code == 200 and len(token) > 20 and
           h.get("x-aws-ec2-metadata-token-ttl-seconds") == "21600", token)
        t = ["-H", "X-aws-ec2-metadata-token: " + token]
        code, _, body, _ = curl(u + "/latest/meta-data/placement/region", *t)
        ok(n + " placement/region", code == 200 and body == "eu-west-3", body)
        code, _, body, _ = curl(u + "/latest/meta-data/placement/availability-zone", *t)
        ok(n + " placement/availability-zone", code == 200 and body == "eu-west-3a", body)
        code, _, body, _ = curl(u + "/latest/dynamic/instance-identity/document", *t)
        d = jload(body) or {}
        ok(n + " instance identity document", code == 200 and d.get("accountId") == "123456789012"
           and d.get("region") == "eu-west-3" and d.get("instanceId") == fx["instance"]["instanceId"]
           and d.get("availabilityZone") == "eu-west-3a", body)
        code, _, body, _ = curl(u + "/latest/meta-data/tags/instance/", *t)
        keys = body.split("\n")
        ok(n + " tags listing", code == 200 and "eks:cluster-name" in keys and
           "aws:eks:cluster-name" in keys and not any("/" in x for x in keys), body)
        code, _, body, _ = curl(u + "/latest/meta-data/tags/instance/eks:cluster-name", *t)
        ok(n + " tag eks:cluster-name", code == 200 and body == "prod-eks-1", body)
        code, _, role, _ = curl(u + "/latest/meta-data/iam/security-credentials/", *t)
        ok(n + " iam role listing", code == 200 and role == fx["iamRole"], role)
        code, _, body, _ = curl(u + "/latest/meta-data/iam/security-credentials/" + role, *t)
        d = jload(body) or {}
        ok(n + " iam credentials JSON", code == 200 and d.get("Code") == "Success" and
           all(d.get(x) for x in ("AccessKeyId", "SecretAccessKey", "Token", "Expiration")), body)
        code, _, body, _ = curl(u + "/latest/meta-data/nope", *t)
        ok(n + " unknown path -> 404", code == 404 and "404 - Not Found" in body)
        code, _, body, _ = curl(u + "/latest/meta-data/placement/region",
                                "-H", "X-aws-ec2-metadata-token: wrong")
        ok(n + " wrong token -> 401", code == 401)
    with harness.metadata("aws", "eks", extra_args=["--imds-v1-only"]) as m:
        code, _, _, _ = curl(m.url + "/latest/api/token", "-X", "PUT",
                             "-H", "X-aws-ec2-metadata-token-ttl-seconds: 60")
        ok(n + " --imds-v1-only: PUT -> 404", code == 404)
        code, _, body, _ = curl(m.url + "/latest/meta-data/placement/region")
        ok(n + " --imds-v1-only: GET without token", code == 200 and body == "eu-west-3")
    with harness.metadata("aws", "eks", extra_args=["--imds-optional"]) as m:
        code, _, body, _ = curl(m.url + "/latest/meta-data/placement/region")
        ok(n + " --imds-optional: GET without token", code == 200 and body == "eu-west-3")
    with harness.metadata("aws", "eks", extra_args=["--hop-limit-drop"]) as m:
        t0 = time.monotonic()
        code, _, _, rc = curl(m.url + "/latest/api/token", "-X", "PUT", "-H",
                              "X-aws-ec2-metadata-token-ttl-seconds: 60", timeout=1)
        el = time.monotonic() - t0
        ok(n + " --hop-limit-drop: PUT times out", rc == 28 and el < 5, "rc=%d %.1fs" % (rc, el))
    with harness.metadata("aws", "eks", extra_args=["--no-instance-tags", "--imds-optional"]) as m:
        code, _, _, _ = curl(m.url + "/latest/meta-data/tags/instance/")
        ok(n + " --no-instance-tags: tags -> 404", code == 404)
    with harness.metadata("aws", "eks", extra_args=["--fail-first", "1", "--fail-status", "503",
                                                    "--imds-optional"]) as m:
        c1 = curl(m.url + "/latest/meta-data/placement/region")[0]
        c2 = curl(m.url + "/latest/meta-data/placement/region")[0]
        ok(n + " --fail-first 1 --fail-status 503", [c1, c2] == [503, 200], str([c1, c2]))


def check_gcp_metadata():
    n = "metadata[gcp]"
    with harness.metadata("gcp", "gke") as m:
        b = m.url + "/computeMetadata/v1"
        f = ["-H", "Metadata-Flavor: Google"]
        code, h, body, _ = curl(b + "/project/project-id")
        ok(n + " no Metadata-Flavor -> 403", code == 403 and h.get("metadata-flavor") == "Google"
           and "Missing Metadata-Flavor:Google header" in body, body)
        code, h, body, _ = curl(b + "/project/project-id", *f, "-H", "X-Forwarded-For: 1.2.3.4")
        ok(n + " X-Forwarded-For -> 403", code == 403)
        code, h, body, _ = curl(b + "/project/project-id", *f)
        ok(n + " project-id", code == 200 and body == "acme-prod-321" and
           h.get("metadata-flavor") == "Google" and
           h.get("content-type") == "application/text", body)
        code, _, body, _ = curl(b + "/project/numeric-project-id", *f)
        num = str(m.fixture["metadata"]["numericProjectId"])
        ok(n + " numeric-project-id", code == 200 and body == num, body)
        code, _, body, _ = curl(b + "/instance/zone", *f)
        ok(n + " instance/zone", code == 200 and body == "projects/%s/zones/europe-west1-b" % num,
           body)
        code, _, body, _ = curl(b + "/instance/attributes/cluster-name", *f)
        ok(n + " attributes/cluster-name", code == 200 and body == "gke-main", body)
        code, _, body, _ = curl(b + "/instance/attributes/cluster-location", *f)
        ok(n + " attributes/cluster-location", code == 200 and body == "europe-west1", body)
        code, _, body, _ = curl(b + "/instance/attributes/?recursive=true", *f)
        d = jload(body) or {}
        ok(n + " attributes ?recursive=true", code == 200 and d.get("cluster-name") == "gke-main",
           body)
        code, _, body, _ = curl(b + "/project/?recursive=true", *f)
        d = jload(body) or {}
        ok(n + " project ?recursive=true camelCase", d.get("projectId") == "acme-prod-321" and
           str(d.get("numericProjectId")) == num, body)
        code, _, body, _ = curl(b + "/project/project-id?alt=json", *f)
        ok(n + " ?alt=json leaf", jload(body) == "acme-prod-321", body)
        code, h, body, _ = curl(b + "/instance", *f)
        ok(n + " directory without slash -> 301", code == 301 and
           h.get("location", "").endswith("/computeMetadata/v1/instance/"), str(h))
        code, _, body, _ = curl(b + "/instance/service-accounts/default/email", *f)
        ok(n + " default SA email", code == 200 and body.endswith(
            "-compute@developer.gserviceaccount.com"), body)
        code, h, body, _ = curl(b + "/instance/service-accounts/default/token", *f)
        d = jload(body) or {}
        ok(n + " SA token", code == 200 and d.get("token_type") == "Bearer" and
           isinstance(d.get("expires_in"), int) and d.get("access_token"), body)
        code, _, body, _ = curl(b + "/instance/service-accounts/default/identity", *f)
        ok(n + " identity without audience -> 400", code == 400, body)
        code, _, body, _ = curl(b + "/instance/service-accounts/default/identity?audience=x", *f)
        ok(n + " identity token is a JWT", code == 200 and body.count(".") == 2, body)
        code, _, body, _ = curl(b + "/instance/nope", *f)
        ok(n + " unknown path -> 404", code == 404)


def check_azure_imds():
    n = "imds[azure]"
    with harness.metadata("azure", "aks") as m:
        b = m.url
        md = ["-H", "Metadata: true"]
        fx = m.fixture["metadata"]["instance"]["compute"]
        code, h, body, _ = curl(b + "/metadata/instance?api-version=2021-02-01")
        ok(n + " no Metadata header -> 400", code == 400 and jload(body) == {
            "error": "Bad request. Required metadata header not specified"}, body)
        code, h, body, _ = curl(b + "/metadata/instance?api-version=2021-02-01", *md,
                                "-H", "X-Forwarded-For: 1.2.3.4")
        ok(n + " X-Forwarded-For -> 400", code == 400, body)
        code, h, body, _ = curl(b + "/metadata/instance", *md)
        d = jload(body) or {}
        ok(n + " no api-version -> 400 newest-versions", code == 400 and
           "newest-versions" in d, body)
        code, h, body, _ = curl(b + "/metadata/instance?api-version=2099-01-01", *md)
        ok(n + " bad api-version -> 400", code == 400, body)
        code, h, body, _ = curl(b + "/metadata/instance?api-version=2021-02-01", *md)
        d = (jload(body) or {}).get("compute", {})
        ok(n + " instance compute", code == 200 and
           d.get("subscriptionId") == "0b1f6471-1bf0-4dda-aec3-111122223333" and
           d.get("resourceGroupName") == "MC_rg-prod_aks-main_westeurope" and
           d.get("location") == "westeurope" and d.get("vmScaleSetName") == fx["vmScaleSetName"]
           and isinstance(d.get("tagsList"), list) and
           h.get("content-type", "").startswith("application/json"), body[:300])
        code, h, body, _ = curl(b + "/metadata/instance/compute/location?api-version=2021-02-01"
                                "&format=text", *md)
        ok(n + " leaf as text", code == 200 and body == "westeurope", body)
        t = b + "/metadata/identity/oauth2/token?api-version=2018-02-01"
        code, h, body, _ = curl(t, *md)
        ok(n + " token without resource -> 400", code == 400 and
           (jload(body) or {}).get("error") == "invalid_request", body)
        code, h, body, _ = curl(t + "&resource=https://management.azure.com/", *md)
        d = jload(body) or {}
        ok(n + " MSI token", code == 200 and d.get("token_type") == "Bearer" and
           d.get("resource") == "https://management.azure.com/" and
           isinstance(d.get("expires_in"), str) and isinstance(d.get("expires_on"), str) and
           d.get("access_token", "").count(".") == 2, body[:300])
        code, h, body, _ = curl(t + "&resource=https://management.azure.com/&client_id=nope", *md)
        ok(n + " unknown client_id -> 400", code == 400, body)


def check_metadata_misc():
    n = "metadata[misc]"
    r = subprocess.run([harness.PYTHON, os.path.join(harness.EMU_DIR, "metadata.py"), "--cloud",
                        "gcp", "--fixture", "eks"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=30)
    ok(n + " fixture/cloud mismatch -> exit 2", r.returncode == 2, r.stderr)
    with harness.metadata("gcp", "gke") as m:
        t0 = time.monotonic()
        m.proc.send_signal(signal.SIGTERM)
        rc = m.proc.wait(timeout=10)
        ok(n + " SIGTERM: clean exit", rc == 0 and time.monotonic() - t0 < 5, str(rc))


def main():
    kubectl = shutil.which("kubectl") or (
        "/usr/bin/kubectl" if os.path.exists("/usr/bin/kubectl") else None)
    have_tools = {"kubectl": kubectl, "curl": CURL, "openssl": shutil.which("openssl")}
    missing = [t for t, p in have_tools.items() if not p]
    for t in missing:
        if CI:
            ok("tool %s is installed" % t, False, "missing, and CI=true")
        else:
            skip("tool " + t, "not installed; the checks that need it are skipped")

    for c in CLUSTERS:
        section("fixture[%s]" % c, check_fixture, c)
    if "openssl" not in missing:
        if "kubectl" not in missing:
            for c in CLUSTERS:
                section("k8s[%s]" % c, check_kubectl_cluster, c)
            section("k8s[extras]", check_kubectl_extras)
        if "curl" not in missing:
            section("k8s[raw]", check_k8s_raw)
            if "kubectl" not in missing:
                section("k8s[hooks]", check_k8s_hooks)
                section("k8s[lifecycle]", check_k8s_lifecycle)
    if "curl" not in missing:
        section("imds[aws]", check_aws_imds)
        section("metadata[gcp]", check_gcp_metadata)
        section("imds[azure]", check_azure_imds)
    section("metadata[misc]", check_metadata_misc)

    return summary()


if __name__ == "__main__":
    sys.exit(main())
