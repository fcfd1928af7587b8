#!/usr/bin/python3
"""Differential test: our kubeconfig loader against kubectl, the reference implementation.

For every case in tests/fixtures/kubeconfig/diff/cases.json it runs kubeconfig_dump (a test
program around k8s_config_load) and compares what it resolved with
`KUBECONFIG=A:B kubectl config view --raw --flatten -o json`: kubectl merges the files and
inlines CA, certificate and key; tokenFile and exec commands stay as written, so those are
resolved here against the directory of the file that defined the user.

Every case is also run through `kubectl get --raw /version` against an unreachable server to
learn whether kubectl accepts the configuration: accepted cases must load, and error cases
must be refused by both (or be listed as a deliberate difference).

Usage: kubeconfig_diff.py [path/to/kubeconfig_dump]   (or $KUBECONFIG_DUMP)
Without kubectl the test is skipped, unless CI=true, where it fails.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile

SRC = os.environ.get("CG_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIFF_DIR = os.path.join(SRC, "tests", "fixtures", "kubeconfig", "diff")

# What kubectl prints once it got past configuration: it tried to connect, to get credentials,
# or (for a context without a user) to prompt for a username.
ACCEPTED_MARKERS = ("connection refused", "was refused", "getting credentials",
                    "Unable to connect to the server", "Please enter Username")


def find_kubectl():
    for candidate in (shutil.which("kubectl"), "/usr/bin/kubectl"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def named(entries, name):
    for e in entries or []:
        if e.get("name") == name:
            return e
    return None


def b64text(s):
    if not s:
        return None
    return base64.b64decode(s).decode("utf-8")


def resolve(path, base):
    """client-go's ResolvePath: relative paths join the defining file's directory."""
    if not path:
        return None
    if os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(base, path))


class Runner:
    def __init__(self, kubectl, dump, home):
        self.kubectl = kubectl
        self.dump = dump
        self.home = home
        self.file_views = {}

    def env(self, kubeconfig):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.home,
            # kubectl's fallback server when a config has none: keep it unreachable.
            "KUBERNETES_MASTER": "http://127.0.0.1:1",
        }
        if kubeconfig is not None:
            env["KUBECONFIG"] = kubeconfig
        return env

    def kubectl_run(self, args, kubeconfig):
        return subprocess.run([self.kubectl] + args, env=self.env(kubeconfig), capture_output=True,
                              stdin=subprocess.DEVNULL, text=True, timeout=60)

    def file_view(self, path):
        """One file on its own, to learn which file defined an entry."""
        if path not in self.file_views:
            p = self.kubectl_run(["config", "view", "--raw", "-o", "json", "--kubeconfig", path], None)
            self.file_views[path] = json.loads(p.stdout) if p.returncode == 0 else {}
        return self.file_views[path]

    def defining_dir(self, files, kind, name):
        seen = set()
        for f in files:
            if not f or f in seen or not os.path.exists(f):
                continue
            seen.add(f)
            if named(self.file_view(f).get(kind), name):
                return os.path.dirname(os.path.abspath(f))
        return None


def case_args(case, files):
    """(KUBECONFIG value or None, extra kubectl/dump arguments)."""
    args = []
    if case.get("context"):
        args += ["--context", case["context"]]
    if case.get("flag"):
        return None, args + ["--kubeconfig", files[0]]
    return ":".join(files), args


def expected_from_view(view, case, runner, files):
    ctx_name = case.get("context") or view.get("current-context")
    ctx = (named(view.get("contexts"), ctx_name) or {}).get("context", {})
    cluster = (named(view.get("clusters"), ctx.get("cluster")) or {}).get("cluster", {})
    user = (named(view.get("users"), ctx.get("user")) or {}).get("user", {})
    user_dir = runner.defining_dir(files, "users", ctx.get("user")) if user else None

    cert = b64text(user.get("client-certificate-data"))
    static = bool(cert or user.get("token") or user.get("tokenFile") or user.get("username")
                  or user.get("password"))
    exec_cfg = None
    e = user.get("exec")
    if e and not static:  # client-go lets a static credential shadow the plugin
        command = e.get("command")
        if command and "/" in command:
            command = resolve(command, user_dir)
        exec_cfg = {
            "apiVersion": e.get("apiVersion"),
            "command": command,
            "args": e.get("args") or [],
            "env": [{"name": v.get("name"), "value": v.get("value")} for v in e.get("env") or []],
            "interactiveMode": e.get("interactiveMode"),
            "provideClusterInfo": bool(e.get("provideClusterInfo")),
            "installHint": e.get("installHint"),
        }
    return {
        "context": ctx_name,
        "cluster": ctx.get("cluster"),
        "user": ctx.get("user"),
        "namespace": ctx.get("namespace") or "default",
        "server": cluster.get("server"),
        "ca": b64text(cluster.get("certificate-authority-data")),
        "insecure": bool(cluster.get("insecure-skip-tls-verify")),
        "tlsServerName": cluster.get("tls-server-name"),
        "proxyUrl": cluster.get("proxy-url"),
        "cert": cert,
        "key": b64text(user.get("client-key-data")) if cert else None,
        "token": user.get("token"),
        "tokenFile": resolve(user.get("tokenFile"), user_dir),
        "username": user.get("username"),
        "password": user.get("password"),
        "exec": exec_cfg,
    }


def kubectl_accepts(runner, kubeconfig, args):
    p = runner.kubectl_run(["get", "--raw", "/version", "--request-timeout=5s"] + args, kubeconfig)
    out = p.stdout + p.stderr
    return any(m in out for m in ACCEPTED_MARKERS), out.strip().splitlines()[:2]


def run_case(runner, case):
    files = [os.path.join(DIFF_DIR, f) if f else "" for f in case["files"]]
    kubeconfig, args = case_args(case, files)
    dump_env = runner.env(kubeconfig)
    dump_env.pop("KUBERNETES_MASTER")
    dump = subprocess.run([runner.dump, "--home", runner.home] + args, env=dump_env,
                          capture_output=True, text=True, timeout=60)
    problems = []
    accepted, kubectl_out = kubectl_accepts(runner, kubeconfig, args)

    if "error" in case:
        want_code = case.get("code", 2)
        msg = dump.stderr.strip()
        if dump.returncode != want_code:
            problems.append("exit %d, want %d (stdout %r, stderr %r)" % (
                dump.returncode, want_code, dump.stdout[:200], msg))
        if case["error"] not in msg:
            problems.append("message %r lacks %r" % (msg, case["error"]))
        if msg.count("\n") != 0:
            problems.append("message is not one line: %r" % msg)
        if case.get("secret") and case["secret"] in msg:
            problems.append("message reveals a secret: %r" % msg)
        want_accept = case.get("kubectl") == "accepts"
        if accepted != want_accept:
            problems.append("kubectl %s it, the case says %s: %s" % (
                "accepts" if accepted else "rejects", case.get("kubectl"), kubectl_out))
        return problems

    if dump.returncode != 0:
        return ["dump failed (%d): %s" % (dump.returncode, dump.stderr.strip())]
    if not accepted:
        problems.append("kubectl rejects a case we accept: %s" % kubectl_out)
    got = json.loads(dump.stdout)
    view_args = ["config", "view", "--raw", "--flatten", "-o", "json"]
    if case.get("flag"):
        view_args += ["--kubeconfig", files[0]]
    view = runner.kubectl_run(view_args, kubeconfig)
    if view.returncode != 0:
        return problems + ["kubectl config view failed: %s" % view.stderr.strip()]
    want = expected_from_view(json.loads(view.stdout), case, runner, files)
    for key, value in want.items():
        if got.get(key) != value:
            problems.append("%s: got %r, kubectl says %r" % (key, got.get(key), value))
    if got.get("inCluster"):
        problems.append("inCluster set for a kubeconfig")
    return problems


def main():
    kubectl = find_kubectl()
    if kubectl is None:
        if os.environ.get("CI") == "true":
            print("FAIL: kubectl not found and CI=true: the differential test cannot run")
            return 1
        print("SKIP: kubectl not found; the kubeconfig differential test needs it")
        return 0
    dump = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("KUBECONFIG_DUMP")
    if not dump or not os.access(dump, os.X_OK):
        print("FAIL: kubeconfig_dump not given (argument or $KUBECONFIG_DUMP)")
        return 1
    with open(os.path.join(DIFF_DIR, "cases.json")) as f:
        cases = json.load(f)["cases"]
    failed = 0
    with tempfile.TemporaryDirectory(prefix="cg-kubeconfig-diff-") as home:
        runner = Runner(kubectl, dump, home)
        for case in cases:
            problems = run_case(runner, case)
            status = "ok" if not problems else "FAIL"
            note = " (deliberate difference: %s)" % case["why"] if case.get("why") else ""
            print("%-4s %s%s" % (status, case["name"], note))
            for p in problems:
                print("     " + p)
            failed += bool(problems)
    print("%d of %d cases failed" % (failed, len(cases)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
