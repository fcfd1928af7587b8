"""Start the central-endpoint emulator (central.py) from Python tests.

    import central_harness
    with central_harness.central(token="t", principal_arn="arn:aws:iam::1:role/p",
                                 external_id="x") as c:
        c.control(mode="fail-status", status=503, count=2)
        ... POST to c.report_url with "Authorization: Bearer " + c.token ...
        assert len(c.reports()) == 1

central(token, principal_arn=None, external_id=None, schema=None, extra_args=()) yields a
Central with .url (base) .report_url (.../reports) .trust_url .token .port .state_dir
.log_path .proc, .reports() (distinct deliveries), .requests() (every attempt, duplicates and
refusals included) and .control(**mode) (see central.py). The schema defaults to
docs/report.schema.json. Waits up to 20 s for the ready file; always stops the process.
"""
import contextlib
import json
import os
import shutil
import tempfile
import urllib.request

import harness
from harness import EMU_DIR, PYTHON

SCHEMA = os.path.normpath(os.path.join(EMU_DIR, "..", "..", "docs", "report.schema.json"))


class Central:
    def __init__(self, proc, port, state_dir, log_path, token):
        self.proc, self.port, self.state_dir, self.log_path = proc, port, state_dir, log_path
        self.token = token

    url = property(lambda self: "http://127.0.0.1:%d" % self.port)
    report_url = property(lambda self: self.url + "/reports")
    trust_url = property(lambda self: self.url + "/trust")

    def _get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.loads(r.read())

    def reports(self):
        return self._get("/__control__/reports")

    def requests(self):
        return self._get("/__control__/requests")

    def control(self, **mode):
        """mode="ok"|"fail-status"|"drop"|"delay"|"retry-after", status=, count=,
        retryAfter=, delayMs= (Python names retry_after/delay_ms work too)."""
        if "retry_after" in mode:
            mode["retryAfter"] = mode.pop("retry_after")
        if "delay_ms" in mode:
            mode["delayMs"] = mode.pop("delay_ms")
        req = urllib.request.Request(self.url + "/__control__", data=json.dumps(mode).encode(),
                                     headers={"Content-Type": "application/json"},
                                     method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


@contextlib.contextmanager
def central(token="t", principal_arn=None, external_id=None, schema=None, extra_args=(),
            verbose=False):
    sd = tempfile.mkdtemp(prefix="cg-central-")
    ready = os.path.join(sd, "ready")
    log_path = os.path.join(sd, "emulator.log")
    cmd = [PYTHON, os.path.join(EMU_DIR, "central.py"), "--port", "0", "--ready-file", ready,
           "--token", token, "--schema", schema or SCHEMA, "--state-dir", sd]
    if principal_arn:
        cmd += ["--principal-arn", principal_arn]
    if external_id:
        cmd += ["--external-id", external_id]
    if verbose:
        cmd.append("--verbose")
    cmd += list(extra_args)
    proc = None
    try:
        proc, port = harness._start(cmd, ready, log_path)
        yield Central(proc, port, sd, log_path, token)
    finally:
        if proc is not None:
            harness._stop(proc)
        if not harness._keep():
            shutil.rmtree(sd, ignore_errors=True)
