"""moto (a stateful IAM/STS emulator) for Python tests, optionally behind aws_model_proxy.py.

    sys.path.insert(0, os.path.join(os.environ["CG_SOURCE_DIR"], "tests", "emulators"))
    import moto_harness

    with moto_harness.moto(validate=True) as m:
        env = dict(os.environ, **m.env())          # AWS_ENDPOINT_URL -> the proxy, fake keys
        subprocess.run([binary, ...], env=env)
        user = m.aws("iam", "get-user", "--user-name", "u")["User"]   # awscli 2, direct to moto
        assert not m.violations(), m.violations()  # requests botocore's model refuses
        actions = [r["action"] for r in m.requests()]

moto(port=0, validate=False, proxy=None, paginate=True, encode_documents=True, delay_ms=0,
     proxy_args=(), verbose=False) starts moto_server (MOTO_IAM_LOAD_MANAGED_POLICIES=true) on
a free port (or `port`) and waits until it answers. validate=True (or proxy=True) also starts
the proxy under Debian's /usr/bin/python3 (botocore) and points .url at it; the proxy then
checks every request against the IAM/STS models and the SigV4 scope (only with
validate=True; the signature itself too when made with the harness's fake key), records it,
and makes moto look more like IAM: it pages lists moto does not page (paginate) and
percent-encodes the policy documents in answers (encode_documents). It also adds latency
(delay_ms, .set_delay()) and injects faults (.inject()). proxy_args go to
aws_model_proxy.py as they are (see its --help).

The yielded object has:
  .url .port        what the code under test talks to (the proxy when there is one)
  .moto_url         moto itself (awscli goes there, so its calls never show in .requests())
  .env()            AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
                    AWS_DEFAULT_REGION, AWS_EC2_METADATA_DISABLED
  .aws(*args)       runs /usr/bin/aws (awscli 2) against moto with JSON output; returns the
                    parsed JSON ({} for no output); raises AwsCliError on a non-zero exit
  .aws_run(*args)   the same, returning the CompletedProcess (for expected failures)
  .requests()       the proxy's log: dicts with seq, action, service, params (secrets
                    redacted), status, code, violations, fault, paginated, scope
  .violations()     the logged requests that had violations
  .inject(action=None, count=1, status=503, code="ServiceUnavailable", message=...,
          kind=None, execute=None, retry_after=None, delay_ms=None, ordinal=None,
          mutating=None, freeze=None)
                    the next `count` requests (of `action`, if given; an exact name or a
                    regex) get that error answer; kind reset|truncated|invalid-xml|slow|hang,
                    execute, retry_after, ordinal (only the N-th match), mutating and freeze
                    as in aws_model_proxy.py's docstring
  .release()        ends every hold and freeze (kind hang) now
  .set_delay(ms)    latency added by the proxy from now on
  .reset()          moto forgets everything (POST /moto-api/reset); the log is kept
  .log()            moto's and the proxy's stderr, for failure messages
Both processes are always stopped when the block ends. CG_KEEP_EMULATOR_STATE=1 keeps the
temporary directory (logs) for debugging.
"""
import contextlib
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

EMU_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, EMU_DIR)
import harness  # noqa: E402

__all__ = ["moto", "find_moto_server", "MotoNotFound", "AwsCliError", "ACCESS_KEY",
           "SECRET_KEY", "REGION", "ACCOUNT", "AWS_CLI"]

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
AWS_CLI = os.environ.get("CG_AWS_CLI") or "/usr/bin/aws"
# Debian's interpreter has botocore (the proxy needs it); the test runner may be another one.
PROXY_PYTHON = os.environ.get("CG_EMULATOR_PYTHON") or (
    "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable)
READY_TIMEOUT = 30.0
INSTALL_HINT = ("moto_server not found: install it with pip install 'moto[server]' (or set "
                "MOTO_SERVER=/path/to/moto_server)")


class MotoNotFound(RuntimeError):
    pass


class AwsCliError(RuntimeError):
    def __init__(self, args, proc):
        super().__init__("aws %s: exit %d: %s" % (" ".join(args), proc.returncode,
                                                  proc.stderr.strip()))
        self.proc = proc


def find_moto_server():
    """MOTO_SERVER, then PATH, then setup.sh's .venv-moto, then a pyenv's bin directory."""
    cand = os.environ.get("MOTO_SERVER")
    if cand and os.access(cand, os.X_OK):
        return cand
    cand = shutil.which("moto_server")
    if cand:
        return cand
    # scripts/setup.sh installs moto into <checkout>/.venv-moto when nothing else has it
    venv = os.path.join(os.path.dirname(os.path.dirname(EMU_DIR)), ".venv-moto", "bin",
                        "moto_server")
    for path in [venv] + sorted(
            glob.glob(os.path.expanduser("~/.pyenv/versions/*/bin/moto_server")) +
            glob.glob("/root/.pyenv/versions/*/bin/moto_server"), reverse=True):
        if os.access(path, os.X_OK):
            return path
    raise MotoNotFound(INSTALL_HINT)


def _answers(url):
    try:
        with urllib.request.urlopen(url + "/moto-api/", timeout=1) as r:
            r.read(1)
        return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means it is serving
    except (OSError, ValueError):
        return False


def _tail(path, n=3000):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:]
    except OSError:
        return ""


RUNNING_RE = re.compile(r"Running on http://127\.0\.0\.1:(\d+)")


def _start_moto(binary, port, log_path):
    """Starts moto_server; with port 0 the kernel picks the port and moto's log says which,
    so no other process can take it between choosing and binding (tests run in parallel)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    env["PYTHONUNBUFFERED"] = "1"  # the "Running on" line must reach the log at once
    log = open(log_path, "ab")
    try:
        proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    finally:
        log.close()
    deadline = time.monotonic() + READY_TIMEOUT
    url = None
    while True:
        if proc.poll() is not None:
            raise harness.EmulatorError("moto_server exited with %s before it was ready:\n%s"
                                        % (proc.returncode, _tail(log_path)))
        if url is None:
            m = RUNNING_RE.search(_tail(log_path, 20000))
            if m and (port == 0 or int(m.group(1)) == port):
                url = "http://127.0.0.1:%s" % m.group(1)
        if url is not None and _answers(url):
            return proc, url
        if time.monotonic() > deadline:
            harness._stop(proc)
            raise harness.EmulatorError("moto_server not answering after %.0f s\n%s"
                                        % (READY_TIMEOUT, _tail(log_path)))
        time.sleep(0.05)


class Moto:
    def __init__(self, moto_url, url, state_dir, proxy_log):
        self.moto_url = moto_url
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])
        self.state_dir = state_dir
        self.proxy_log = proxy_log
        self.home = os.path.join(state_dir, "aws-home")
        os.makedirs(self.home, exist_ok=True)

    def env(self):
        return {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION,
                "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}

    def aws_run(self, *args, timeout=120):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                    "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "AWS_PAGER": "",
                    "AWS_EC2_METADATA_DISABLED": "true", "HOME": self.home,
                    "AWS_CONFIG_FILE": os.path.join(self.home, "config"),
                    "AWS_SHARED_CREDENTIALS_FILE": os.path.join(self.home, "credentials")})
        cmd = [AWS_CLI] + list(args) + ["--endpoint-url", self.moto_url, "--output", "json"]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)

    def aws(self, *args, timeout=120):
        p = self.aws_run(*args, timeout=timeout)
        if p.returncode != 0:
            raise AwsCliError(args, p)
        return json.loads(p.stdout) if p.stdout.strip() else {}

    def requests(self):
        if self.proxy_log is None:
            raise RuntimeError("requests() needs the proxy: moto(validate=True) or proxy=True")
        out = []
        try:
            with open(self.proxy_log) as f:
                for line in f:
                    if line.strip():
                        out.append(json.loads(line))
        except FileNotFoundError:
            pass
        return out

    def issued_secrets(self):
        """Every secret moto's answers carried through the proxy, for the secret scan."""
        if self.proxy_log is None:
            return []
        with urllib.request.urlopen(self.url + "/__proxy__/issued", timeout=10) as r:
            return json.loads(r.read())["secrets"]

    def violations(self):
        return [r for r in self.requests() if r.get("violations")]

    def _control(self, path, doc):
        if self.proxy_log is None:
            raise RuntimeError("fault injection needs the proxy: moto(proxy=True)")
        req = urllib.request.Request(self.url + path, data=json.dumps(doc).encode(),
                                     headers={"Content-Type": "application/json"},
                                     method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def inject(self, action=None, count=1, status=503, code="ServiceUnavailable",
               message="injected by the proxy", kind=None, execute=None, retry_after=None,
               delay_ms=None, ordinal=None, mutating=None, freeze=None):
        doc = {"action": action, "count": count, "status": status, "code": code,
               "message": message}
        for k, v in (("kind", kind), ("execute", execute), ("retry_after", retry_after),
                     ("delay_ms", delay_ms), ("ordinal", ordinal), ("mutating", mutating),
                     ("freeze", freeze)):
            if v is not None:
                doc[k] = v
        return self._control("/__proxy__/faults", doc)

    def release(self):
        return self._control("/__proxy__/release", {})

    def set_delay(self, ms):
        return self._control("/__proxy__/config", {"delay_ms": int(ms)})

    def reset(self):
        req = urllib.request.Request(self.moto_url + "/moto-api/reset", data=b"",
                                     method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()

    def log(self):
        return ("--- moto ---\n" + _tail(os.path.join(self.state_dir, "moto.log")) +
                "\n--- proxy ---\n" + _tail(os.path.join(self.state_dir, "proxy.log")))


@contextlib.contextmanager
def moto(port=0, validate=False, proxy=None, paginate=True, encode_documents=True, delay_ms=0,
         proxy_args=(), verbose=False):
    binary = find_moto_server()
    sd = tempfile.mkdtemp(prefix="cg-moto-")
    procs = []
    try:
        moto_proc, moto_url = _start_moto(binary, int(port), os.path.join(sd, "moto.log"))
        procs.append(moto_proc)
        url, proxy_log = moto_url, None
        if proxy or (proxy is None and validate):
            proxy_log = os.path.join(sd, "requests.jsonl")
            ready = os.path.join(sd, "proxy.ready")
            cmd = [PROXY_PYTHON, os.path.join(EMU_DIR, "aws_model_proxy.py"),
                   "--upstream", moto_url, "--port", "0", "--ready-file", ready,
                   "--log", proxy_log, "--delay-ms", str(int(delay_ms)),
                   "--verify-key", ACCESS_KEY, "--verify-secret", SECRET_KEY]
            if not validate:
                cmd.append("--no-validate")
            if not paginate:
                cmd.append("--no-paginate")
            if not encode_documents:
                cmd.append("--no-encode-documents")
            if verbose:
                cmd.append("--verbose")
            cmd += list(proxy_args)
            pproc, pport = harness._start(cmd, ready, os.path.join(sd, "proxy.log"))
            procs.append(pproc)
            url = "http://127.0.0.1:%d" % pport
        yield Moto(moto_url, url, sd, proxy_log)
    finally:
        for p in reversed(procs):
            harness._stop(p)
        if not harness._keep():
            shutil.rmtree(sd, ignore_errors=True)


if __name__ == "__main__":  # smoke run: python3 moto_harness.py
    with moto(validate=True) as m:
        print(json.dumps({"url": m.url, "moto_url": m.moto_url}))
        print(m.aws("sts", "get-caller-identity"))
