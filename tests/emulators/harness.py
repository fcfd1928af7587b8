"""Start the emulators from Python tests.

    import sys, os
    sys.path.insert(0, os.path.join(os.environ["CG_SOURCE_DIR"], "tests", "emulators"))
    import harness

    with harness.k8s_api("eks", auth="both") as k8s, harness.metadata("aws", "eks") as imds:
        env = dict(os.environ, KUBECONFIG=k8s.kubeconfig, **imds.env)
        subprocess.run([harness.find_binary(), "identity", "-o", "json"], env=env, ...)
        expected = k8s.fixture["expected_with_metadata"]

k8s_api(cluster, auth="both", extra_args=(), state_dir=None, verbose=False) yields an
Emulator with .port .url .state_dir .kubeconfig .token (read fresh from the state dir, so it
follows --rotate-token-after) .ca .client_cert .client_key .sa_dir .in_cluster_env
.fixture .log_path .proc and .kubectl(*args) (runs the real kubectl with an isolated HOME).
metadata(cloud, fixture, extra_args=()) yields .port .url .env (the endpoint variable the agent
reads: AWS_EC2_METADATA_SERVICE_ENDPOINT, GCE_METADATA_HOST or CLOUDGRANT_AZURE_IMDS_URL)
.fixture .log_path .proc. Both wait up to 20 s for the ready file and always stop the process
(SIGTERM, then SIGKILL) when the block ends. Set CG_KEEP_EMULATOR_STATE=1 to keep temp dirs.
"""
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import queue
import tempfile
import threading
import time

EMU_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, EMU_DIR)
from emu_common import FIXTURES_DIR, load_fixture  # noqa: E402

__all__ = ["k8s_api", "metadata", "find_binary", "run_tests", "load_fixture", "expected_identity",
           "FIXTURES_DIR", "EMU_DIR", "PYTHON", "KUBECTL", "EmulatorError"]

READY_TIMEOUT = 20.0
# The emulators must run under Debian's interpreter; the test runner's python3 is used if it is
# the same family, else /usr/bin/python3.
PYTHON = os.environ.get("CG_EMULATOR_PYTHON") or (
    "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable)
KUBECTL = os.environ.get("KUBECTL") or shutil.which("kubectl") or "/usr/bin/kubectl"


def find_binary():
    """Path of the cloudgrant binary under test (ctest sets CLOUDGRANT_BIN)."""
    try:
        return os.environ["CLOUDGRANT_BIN"]
    except KeyError:
        raise KeyError("CLOUDGRANT_BIN is not set: run the test through ctest, or export "
                       "CLOUDGRANT_BIN=/path/to/build/cloudgrant") from None


class EmulatorError(RuntimeError):
    pass


class Emulator:
    def __init__(self, proc, port, log_path, state_dir, fixture):
        self.proc = proc
        self.port = port
        self.log_path = log_path
        self.state_dir = state_dir
        self.fixture = fixture

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class K8sEmulator(Emulator):
    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.port

    @property
    def kubeconfig(self):
        return os.path.join(self.state_dir, "kubeconfig")

    @property
    def token(self):
        with open(os.path.join(self.state_dir, "token")) as f:
            return f.read().strip()

    ca = property(lambda self: os.path.join(self.state_dir, "ca.crt"))
    client_cert = property(lambda self: os.path.join(self.state_dir, "client.crt"))
    client_key = property(lambda self: os.path.join(self.state_dir, "client.key"))
    # token, ca.crt and namespace, laid out like /var/run/secrets/kubernetes.io/serviceaccount
    sa_dir = property(lambda self: os.path.join(self.state_dir, "serviceaccount"))

    @property
    def in_cluster_env(self):
        return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(self.port)}

    def kubectl(self, *args, context=None, timeout=60, kubeconfig=None):
        """Run the real kubectl against this emulator; returns CompletedProcess (text)."""
        home = os.path.join(self.state_dir, "kubectl-home")
        os.makedirs(home, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env["HOME"] = home  # discovery/openapi cache stays inside the state dir
        cmd = [KUBECTL, "--kubeconfig", kubeconfig or self.kubeconfig]
        if context:
            cmd += ["--context", context]
        return subprocess.run(cmd + list(args), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=timeout)


class MetadataEmulator(Emulator):
    cloud = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def env(self):
        if self.cloud == "aws":
            return {"AWS_EC2_METADATA_SERVICE_ENDPOINT": self.url}
        if self.cloud == "gcp":
            return {"GCE_METADATA_HOST": "127.0.0.1:%d" % self.port}
        return {"CLOUDGRANT_AZURE_IMDS_URL": self.url}


def _stop(proc):
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def _start(cmd, ready_file, log_path, timeout=READY_TIMEOUT):
    log = open(log_path, "ab")
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    finally:
        log.close()
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(ready_file) as f:
                text = f.read().strip()
            if text.isdigit():
                return proc, int(text)
        except FileNotFoundError:
            pass
        if proc.poll() is not None:
            with open(log_path, errors="replace") as f:
                tail = f.read()[-3000:]
            raise EmulatorError("emulator exited with %s before it was ready: %s\n%s"
                                % (proc.returncode, " ".join(cmd), tail))
        if time.monotonic() > deadline:
            _stop(proc)
            with open(log_path, errors="replace") as f:
                tail = f.read()[-3000:]
            raise EmulatorError("emulator not ready after %.0f s: %s\n%s"
                                % (timeout, " ".join(cmd), tail))
        time.sleep(0.05)


def _keep():
    return os.environ.get("CG_KEEP_EMULATOR_STATE") not in (None, "", "0")


@contextlib.contextmanager
def k8s_api(cluster, auth="both", extra_args=(), state_dir=None, verbose=False, fixture=None):
    """Start k8s_api.py for a cluster (eks, gke, aks, outscale, unknown)."""
    own = state_dir is None
    sd = tempfile.mkdtemp(prefix="cg-k8s-%s-" % cluster) if own else state_dir
    os.makedirs(sd, exist_ok=True)
    ready = os.path.join(sd, "ready")
    try:
        os.unlink(ready)
    except FileNotFoundError:
        pass
    cmd = [PYTHON, os.path.join(EMU_DIR, "k8s_api.py"), "--cluster", cluster, "--state-dir", sd,
           "--port", "0", "--auth", auth, "--ready-file", ready]
    if fixture:
        cmd += ["--fixture", fixture]
    if verbose:
        cmd.append("--verbose")
    cmd += list(extra_args)
    proc = None
    try:
        proc, port = _start(cmd, ready, os.path.join(sd, "emulator.log"))
        emu = K8sEmulator(proc, port, os.path.join(sd, "emulator.log"), sd,
                          load_fixture(fixture or cluster))
        yield emu
    finally:
        if proc is not None:
            _stop(proc)
        if own and not _keep():
            shutil.rmtree(sd, ignore_errors=True)


@contextlib.contextmanager
def metadata(cloud, fixture, extra_args=(), verbose=False):
    """Start metadata.py for cloud (aws, gcp, azure) with a fixture name or path."""
    sd = tempfile.mkdtemp(prefix="cg-md-%s-" % cloud)
    ready = os.path.join(sd, "ready")
    cmd = [PYTHON, os.path.join(EMU_DIR, "metadata.py"), "--cloud", cloud, "--fixture", fixture,
           "--port", "0", "--ready-file", ready]
    if verbose:
        cmd.append("--verbose")
    cmd += list(extra_args)
    proc = None
    try:
        proc, port = _start(cmd, ready, os.path.join(sd, "emulator.log"))
        emu = MetadataEmulator(proc, port, os.path.join(sd, "emulator.log"), sd,
                               load_fixture(fixture))
        emu.cloud = cloud
        yield emu
    finally:
        if proc is not None:
            _stop(proc)
        if not _keep():
            shutil.rmtree(sd, ignore_errors=True)


def expected_identity(cluster, with_metadata=False):
    """The identity a correct agent prints for a cluster fixture ({id,name,provider,...})."""
    fx = load_fixture(cluster)
    return dict(fx["expected_with_metadata" if with_metadata else "expected"])


if __name__ == "__main__":  # tiny smoke run: python3 harness.py eks
    c = sys.argv[1] if len(sys.argv) > 1 else "eks"
    with k8s_api(c) as k:
        print(json.dumps({"url": k.url, "kubeconfig": k.kubeconfig}))
        print(k.kubectl("get", "nodes").stdout)


def run_tests(namespace):
    """Runs every test_* function of a test module in name order and prints the closing
    line ctest readers look for ("N passed, M failed"). Returns the process exit code."""
    import traceback
    tests = sorted((n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f))
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
            passed += 1
            print("ok   %s" % name)
        except Exception:
            failed += 1
            print("FAIL %s" % name)
            traceback.print_exc()
        sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or not tests else 0


def run_on_rigs(first, make_rig, items, workers, run_one, report):
    """Runs run_one(rig, item) for every item on a pool of rigs (each with its own emulators):
    `first`, plus up to workers - 1 more made by make_rig() in parallel. One thread per rig
    takes items off a shared queue; report(result) runs under a lock as each one finishes,
    so its output lines do not interleave. Returns (results in the order they finished,
    number of rigs); raises RuntimeError when a rig could not start."""
    lock = threading.Lock()
    todo = queue.Queue()
    for it in items:
        todo.put(it)
    rigs = [first]
    errors = []

    def start_rig():
        try:
            r = make_rig()
            with lock:
                rigs.append(r)
        except Exception as exc:  # noqa: BLE001
            with lock:
                errors.append("starting emulators: %s" % exc)

    starters = [threading.Thread(target=start_rig)
                for _ in range(max(1, min(workers, len(items))) - 1)]
    for t in starters:
        t.start()
    for t in starters:
        t.join()
    if errors:
        raise RuntimeError("\n".join(errors))
    results = []

    def work(rig):
        while True:
            try:
                it = todo.get_nowait()
            except queue.Empty:
                return
            r = run_one(rig, it)
            with lock:
                results.append(r)
                report(r)

    threads = [threading.Thread(target=work, args=(r,)) for r in rigs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, len(rigs)
