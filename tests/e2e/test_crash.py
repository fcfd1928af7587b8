#!/usr/bin/env python3
"""Crash consistency: the agent killed with SIGKILL at every point of a full onboarding, then
run again; the account converges and no credential is lost or duplicated. Argument: the
provider (outscale, azure, gcp or aws).

Crash points, discovered from a clean onboard (the emulators log every request with a
mutating flag), in the order the agent reaches them:

  after each mutating cloud call   the emulator runs the k-th mutating request, then holds its
                                   answer and every later request (inject kind "hang",
                                   execute, ordinal, freeze); the test polls the request log
                                   until the held request shows and kills the agent. The point
                                   after the key (or client secret) creation is the
                                   key-created-but-not-stored window: the cloud has a key the
                                   agent never saw, and nothing stored it.
  stored, not yet handed over      the central endpoint refuses every report (503) until the
                                   agent has tried once; the Secret must already hold the new
                                   key, marked delivered=false (the write-ahead), when the kill
                                   comes.
  handed over, not yet marked      a pass-through proxy in front of the central endpoint
                                   forwards the report with the credential (the platform has
                                   it) and holds the answer; the Secret still says
                                   delivered=false when the kill comes.

After the kill the emulators release what they hold (requests of the dead process are dropped,
never run) and onboard runs again (the Lease the dead run held is taken over: every run here
uses --lease-duration 3s, so the rerun waits at most 3 s for it; one more rerun is allowed if
the first one fails). Then: exactly one identity with its exact grants, exactly one key, the
one in the credential Secret (marked delivered), the one the last report with credentials
carried (key id and secret), and the only key ever reported (a key handed over is never
replaced by the rerun: a handed-over key that was deleted without a newer one handed over
would be a lost credential, a second key reported a duplicate). The orphan of the
key-created-but-not-stored window must be gone.

CG_CRASH_WORKERS sets the number of parallel cases (default 8); CG_CRASH_ONLY=REGEX selects
crash points by id."""
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_fault_matrix as fm  # noqa: E402  (the provider rigs and the final-state checks)
import harness  # noqa: E402  (on the path test_fault_matrix sets)

harness_keep = fm.harness_keep
LEASE = "3s"
KILL_WAIT = 120       # seconds to reach a crash point
check = fm.check
CaseFailure = fm.CaseFailure


# -- a pass-through proxy in front of the central endpoint that can hold an answer --------------

class HoldProxy:
    """Forwards every request to the central endpoint; with hold_credentials set, the first
    report that carries credentials is forwarded (the platform stores it) and its answer is
    held until the client goes away or release() is called."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.hold_credentials = False
        self.held = threading.Event()
        self.released = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 60

            def log_message(self, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in ("host", "connection", "content-length")}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    r = conn.getresponse()
                    data = r.read()
                    status, ctype = r.status, r.getheader("Content-Type") or "application/json"
                finally:
                    conn.close()
                try:
                    creds = json.loads(body).get("credentials") if body else None
                except ValueError:
                    creds = None
                if proxy.hold_credentials and creds and not proxy.held.is_set():
                    proxy.held.set()
                    while not proxy.released.wait(0.05):
                        if peer_closed(self.connection):
                            self.close_connection = True
                            return
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def close(self):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


def peer_closed(sock):
    import select
    import socket
    try:
        r, _w, _x = select.select([sock], [], [], 0)
        return bool(r) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


# -- crash points ---------------------------------------------------------------------------------

def discover(rig):
    """[(id, kind, detail)] in the order a clean onboard reaches them."""
    rig.reset()
    rig.clear_requests()
    p = rig.run("onboard", env={"CLOUDGRANT_LEASE_DURATION": LEASE})
    if p.returncode != 0:
        raise RuntimeError("clean onboard failed (exit %d):\n%s" % (p.returncode,
                                                                    fm.tail(p.stderr)))
    points = []
    for k, (sel, ordinal, label) in enumerate(fm.steps_of(rig.writes()), 1):
        points.append(("%s:after-call-%d:%s" % (rig.provider, k, label), "call",
                       (sel, ordinal, label)))
    points.append(("%s:stored-not-handed-over" % rig.provider, "before-report", None))
    points.append(("%s:handed-over-not-marked" % rig.provider, "after-report", None))
    return points


def wait_for(pred, proc, what, timeout=KILL_WAIT):
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise CaseFailure("the agent exited (%d) before %s: %s" % (proc.returncode, what,
                                                                       fm.tail(err)))
        if time.monotonic() > deadline:
            raise CaseFailure("%s did not happen within %d s" % (what, timeout))
        time.sleep(0.02)


def run_point(rig, point):
    pid, kind, detail = point
    t0 = time.monotonic()
    out = {"id": pid, "ok": False, "error": None, "note": ""}
    env = {"CLOUDGRANT_LEASE_DURATION": LEASE}
    proxy = None
    proc = None
    try:
        rig.reset()
        run_env = dict(rig.env, **env)
        if kind == "call":
            sel, ordinal, label = detail
            rig.inject_hang(sel, ordinal)
        elif kind == "before-report":
            rig.central.control(mode="fail-status", status=503, count=100000)
        else:
            proxy = HoldProxy(rig.central.port)
            proxy.hold_credentials = True
            run_env["CLOUDGRANT_REPORT_URL"] = proxy.url("/reports")
        req_mark = len(rig.central.requests())
        proc = subprocess.Popen([fm.BIN, "onboard"], env=run_env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        if kind == "call":
            wait_for(lambda: any(w["fault"] == "hang" for w in rig.writes()), proc,
                     "the held call (%s)" % label)
        elif kind == "before-report":
            wait_for(lambda: any(r.get("status") == 503
                                 for r in rig.central.requests()[req_mark:]), proc,
                     "a report attempt")
        else:
            wait_for(proxy.held.is_set, proc, "the report with the credential")
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        # what the crash left
        at_kill = {"keys": rig.account_keys(), "stored": rig.stored(),
                   "reported": [c["credentials"].get(rig.key_field)
                                for c in rig.credential_reports()]}
        rig.release()
        if kind == "before-report":
            rig.central.control(mode="ok")
        if proxy is not None:
            proxy.close()
            proxy = None
        stored = at_kill["stored"]
        if kind in ("before-report", "after-report"):
            # the write-ahead: the key is in the Secret, not yet marked delivered
            check(stored is not None, "no credential Secret when the report was being sent")
            check(stored["annotations"].get(fm.ANN_DELIVERED) == "false",
                  "the Secret says delivered=%s before the platform answered",
                  stored["annotations"].get(fm.ANN_DELIVERED))
            check(stored["data"].get(rig.store_key_field) in at_kill["keys"],
                  "the stored key %s is not live (%s)", stored["data"].get(rig.store_key_field),
                  at_kill["keys"])
        out["note"] = "at kill: %d key(s), Secret %s, %d reported" % (
            len(at_kill["keys"]), "none" if stored is None else
            "delivered=" + str(stored["annotations"].get(fm.ANN_DELIVERED)),
            len(at_kill["reported"]))
        runs = []
        p = rig.run("onboard", env=env)
        runs.append(p)
        if p.returncode != 0:
            p2 = rig.run("onboard", env=env)
            runs.append(p2)
            check(p2.returncode == 0, "onboard after the crash failed twice: %s / %s",
                  fm.tail(p.stderr), fm.tail(p2.stderr))
            out["note"] += "; converged on the second rerun"
        fm.check_final(rig, "onboard", None, runs)
        keys = rig.account_keys()
        if stored is not None:
            # a stored key is the platform's (handed over, or owed to it): never replaced
            check(keys == [stored["data"].get(rig.store_key_field)],
                  "the key stored before the crash (%s, delivered=%s) was replaced by %s",
                  stored["data"].get(rig.store_key_field),
                  stored["annotations"].get(fm.ANN_DELIVERED), keys)
        bad = rig.violations()
        check(not bad, "requests the API model refuses: %s", bad[:3])
        out["ok"] = True
    except CaseFailure as cf:
        out["error"] = str(cf)
    except Exception:  # the harness itself
        out["error"] = "harness error: " + traceback.format_exc()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate()
        if proxy is not None:
            proxy.close()
        try:
            rig.release()
            rig.central.control(mode="ok")
        except Exception:  # noqa: BLE001
            pass
    out["seconds"] = time.monotonic() - t0
    return out


# -- the hang knob, per provider --------------------------------------------------------------------

def _osc_hang(self, sel, ordinal):
    self.osc.inject(action="^%s$" % sel, ordinal=ordinal, kind="hang", execute=True,
                    freeze=True, mutating=True)


def _azure_hang(self, sel, ordinal):
    method, rx = sel
    self.az.inject(method=method, path_regex=rx, ordinal=ordinal, kind="hang", execute=True,
                   freeze=True, mutating=True)


def _gcp_hang(self, sel, ordinal):
    method, rx = sel
    self.g.inject(method=method, path_regex=rx, ordinal=ordinal, kind="hang", execute=True,
                  freeze=True, mutating=True)


def _aws_hang(self, sel, ordinal):
    self.m.inject(action="^%s$" % sel, ordinal=ordinal, kind="hang", execute=True,
                  freeze=True, mutating=True)


fm.OscRig.inject_hang = _osc_hang
fm.AzureRig.inject_hang = _azure_hang
fm.GcpRig.inject_hang = _gcp_hang
fm.AwsRig.inject_hang = _aws_hang


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in fm.RIGS:
        print("usage: test_crash.py outscale|azure|gcp|aws")
        return 2
    provider = sys.argv[1]
    if not fm.BIN or not os.path.exists(fm.BIN):
        print("CLOUDGRANT_BIN is not set or missing")
        return 1
    skip = fm.prerequisites(provider)
    if skip:
        if os.environ.get("CI") == "true":
            print("missing: %s" % skip)
            return 1
        print("skipped: %s" % skip)
        return 77
    cls = fm.RIGS[provider]
    workers = int(os.environ.get("CG_CRASH_WORKERS") or 8)
    t_start = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="cg-crash-")
    with contextlib.ExitStack() as stack:
        if not harness_keep():
            stack.callback(shutil.rmtree, workdir, True)
        first = cls(stack, workdir)
        points = discover(first)
        only = os.environ.get("CG_CRASH_ONLY")
        selected = [p for p in points if not only or re.search(only, p[0])]
        print("crash points %s: %d (%d after a mutating cloud call, stored-not-handed-over, "
              "handed-over-not-marked)" % (provider, len(points), len(points) - 2))
        for p in points:
            print("  %s" % p[0])
        sys.stdout.flush()

        def report(r):
            print("%s %-60s %5.1fs  %s" % ("ok  " if r["ok"] else "FAIL", r["id"],
                                           r["seconds"], r["note"]))
            sys.stdout.flush()

        try:
            results, nrigs = harness.run_on_rigs(first, lambda: cls(stack, workdir), selected,
                                                 workers, run_point, report)
        except RuntimeError as exc:
            print(exc)
            return 1
    failed = sorted((r for r in results if not r["ok"]), key=lambda r: r["id"])
    for r in failed:
        print("\nFAILED %s\n    %s" % (r["id"], r["error"].replace("\n", "\n    ")))
    print("\ncrash points %s: %d, %d passed, %d failed; %d workers, %.0f s" % (
        provider, len(results), len(results) - len(failed), len(failed), nrigs,
        time.monotonic() - t_start))
    return 1 if failed or len(results) != len(selected) else 0


if __name__ == "__main__":
    sys.exit(main())
