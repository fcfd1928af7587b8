#!/usr/bin/env python3
"""Two runs on one credential at once: a Job retried while the first run still works, a
CronJob's check --fix overlapping an onboard. The Lease named like the credential Secret
(coordination.k8s.io/v1, in the Kubernetes API emulator) makes the second wait; both end with
one identity, one key, delivered once. A holder killed mid-run is waited out until its Lease
expires. Against the OUTSCALE emulator, with a delay per request so that the runs overlap."""
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

SRC = os.environ.get("CG_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "emulators"))
import central_harness  # noqa: E402
import harness  # noqa: E402
import osc_harness  # noqa: E402

BIN = harness.find_binary()
CLUSTER = "osc-prod"
USER = "platform-access-" + CLUSTER
TOKEN = "report-token-lease-5d1e"


class Env:
    def __init__(self, osc, api, central):
        self.osc, self.api, self.central = osc, api, central
        self.dir = tempfile.mkdtemp(prefix="cg-lease-")
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("AWS_", "CLOUDGRANT_", "KUBE", "AZURE_", "GOOGLE_",
                                         "GCE_", "CLOUDSDK_", "OSC_"))}
        self.env.update(osc.env())
        self.env.update({"HOME": self.dir, "CLOUDGRANT_KUBECONFIG": api.kubeconfig,
                         "CLOUDGRANT_PROFILE": "platform-access",
                         "CLOUDGRANT_CLUSTER_NAME": CLUSTER,
                         "CLOUDGRANT_REPORT_URL": central.report_url,
                         "CLOUDGRANT_REPORT_TOKEN": TOKEN})

    def start(self, *args, env=None, stderr=subprocess.PIPE):
        e = dict(self.env, **(env or {}))
        return subprocess.Popen([BIN] + list(args), env=e, stdout=subprocess.PIPE,
                                stderr=stderr, text=True)

    def delivered(self):
        return [r["body"]["credentials"]["accessKeyId"] for r in self.central.reports()
                if (r["body"].get("credentials") or {}).get("accessKeyId")]

    def secret(self):
        p = self.api.kubectl("get", "secret", "cloudgrant-platform-access", "-n", "default",
                             "-o", "json")
        if p.returncode != 0:
            return None
        data = json.loads(p.stdout).get("data", {})
        return {k: base64.b64decode(v).decode() for k, v in data.items() if k != "secretKey"}

    def lease(self):
        p = self.api.kubectl("get", "lease", "cloudgrant-platform-access", "-n", "default",
                             "-o", "json")
        return json.loads(p.stdout) if p.returncode == 0 else None

    def converged_once(self):
        """One user, one key in the account; that key is the stored one and was delivered
        exactly once."""
        keys = [k["AccessKeyId"] for k in self.osc.access_keys(USER)]
        assert len(keys) == 1, keys
        assert self.secret()["accessKeyId"] == keys[0], (self.secret(), keys)
        delivered = self.delivered()
        assert delivered == keys, (delivered, keys)
        users = [u for u in self.osc.users() if u["Path"] == "/cloudgrant/"]
        assert len(users) == 1, users


def wait_for(cond, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


def with_env(fn):
    def wrapper():
        with osc_harness.osc() as osc, harness.k8s_api("outscale") as api, \
                central_harness.central(token=TOKEN) as central:
            fn(Env(osc, api, central))
            assert not osc.violations(), osc.violations()
    wrapper.__name__ = fn.__name__
    return wrapper


@with_env
def test_two_onboards_at_once_make_one_key(e):
    # The first run is held inside its Lease (CreateUser answered only on release) until the
    # second says it waits: the runs overlap however slow the machine is.
    e.osc.inject(action="^CreateUser$", kind="hang", execute=True, delay_ms=60000)
    first = e.start("onboard")
    assert wait_for(lambda: any(r.get("action") == "CreateUser" for r in e.osc.requests())), \
        "the first run never reached CreateUser"
    assert e.lease() is not None, "the first run took no Lease"
    # the second's log goes to a file, to be read while it runs
    err_path = os.path.join(e.dir, "second.err")
    with open(err_path, "w") as err_file:
        second = e.start("onboard", stderr=err_file)

    def err2_text():
        with open(err_path) as f:
            return f.read()
    waiting = wait_for(lambda: "waiting for" in err2_text())
    e.osc.release()
    out1, err1 = first.communicate(timeout=120)
    out2, _ = second.communicate(timeout=120)
    err2 = err2_text()
    assert waiting, "the second run never waited for the first's Lease: " + err2
    assert first.returncode == 0, out1 + err1
    assert second.returncode == 0, out2 + err2
    assert "waiting for" in err2 and "Lease default/cloudgrant-platform-access" in err2, err2
    assert "0 changes" in out2, out2  # it saw the account the first run made
    e.converged_once()
    made = [r for r in e.osc.requests() if r.get("action") == "CreateAccessKey"]
    assert len(made) == 1, made
    spec = e.lease()["spec"]
    assert not spec.get("holderIdentity"), spec  # released, so the next run need not wait
    print("  two concurrent onboards: 1 user, 1 key, delivered once")


@with_env
def test_check_fix_waits_for_onboard(e):
    e.osc.set_delay(150)
    first = e.start("onboard")
    assert wait_for(lambda: e.lease() is not None)
    second = e.start("check", "--fix")
    first.communicate(timeout=120)
    out2, err2 = second.communicate(timeout=120)
    assert first.returncode == 0 and second.returncode == 0, out2 + err2
    assert "no drift" in out2, out2
    e.converged_once()


@with_env
def test_killed_holder_is_waited_out(e):
    e.osc.set_delay(300)
    env = {"CLOUDGRANT_LEASE_DURATION": "3s"}
    first = e.start("onboard", env=env)
    assert wait_for(lambda: any(r.get("mutating") for r in e.osc.requests())), "no write seen"
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    held = e.lease()["spec"]
    assert held.get("holderIdentity"), held  # a dead holder does not release
    e.osc.set_delay(0)
    t0 = time.time()
    p = e.start("onboard", env=env)
    out, err = p.communicate(timeout=120)
    waited = time.time() - t0
    assert p.returncode == 0, out + err
    assert "waiting for" in err, err
    print("  killed holder: the next run waited %.1f s for its Lease to expire" % waited)
    e.converged_once()


@with_env
def test_lease_can_be_turned_off_and_is_not_taken_by_plan(e):
    p = e.start("plan")
    p.communicate(timeout=60)
    assert p.returncode == 0 and e.lease() is None
    p = e.start("onboard", env={"CLOUDGRANT_LEASE_DURATION": "0"})
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0 and e.lease() is None, out + err
    p = e.start("onboard", env={"CLOUDGRANT_LEASE_DURATION": "soon"})
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "--lease-duration" in err, err


if __name__ == "__main__":
    sys.exit(harness.run_tests(globals()))
