#!/usr/bin/env python3
"""End-to-end TLS verification, for every kind of endpoint the agent talks to: the Kubernetes
API, the cloud APIs (OUTSCALE API; Microsoft Entra token, Graph and ARM; Google OAuth token,
IAM, Service Usage and Resource Manager; AWS IAM and STS) and the platform's report endpoint.

Each endpoint is served through a small TLS-terminating proxy (this file, Python's ssl module)
in front of the usual plain-HTTP emulator (the Kubernetes API emulator, which speaks TLS
itself, is reached over TLS). The proxy presents, one case at a time, a certificate made here
with the openssl CLI:

  good      issued by the test CA, SAN 127.0.0.1 and localhost
  unknown   the same names, issued by a CA nobody trusts
  expired   issued by the test CA, valid 2020-01-01 to 2020-01-02 (openssl ca -startdate/-enddate)
  mismatch  issued by the test CA for other-host.cloudgrant.test only

For each endpoint and each bad certificate the agent must exit non-zero with one error line
that names the endpoint (its host:port) and the TLS problem, and the proxy must never have
opened a connection to the emulator (so no request, no credential, went past the handshake);
the emulator's own request log is checked too. With the good certificate trusted, the same
command must succeed (the control).

How each kind of endpoint is told to trust the test CA:
  Kubernetes API   the kubeconfig's certificate-authority-data; in-cluster, the service
                   account's ca.crt (CLOUDGRANT_SERVICE_ACCOUNT_DIR)
  report endpoint  --report-ca FILE
  cloud endpoints  --cloud-ca FILE (CLOUDGRANT_CLOUD_CA), which replaces the system store for
                   every cloud API; libcurl itself ignores SSL_CERT_FILE, CURL_CA_BUNDLE,
                   AWS_CA_BUNDLE and REQUESTS_CA_BUNDLE, which are cleared for every run.

insecure-skip-tls-verify in the kubeconfig: the Kubernetes API is accepted with each bad
certificate, while in the very same run (onboard on GCP: the credential Secret is read, the
token request fails, the failure is reported) the cloud endpoint and the report endpoint, each
with a bad certificate, are still refused; the flag on another cluster entry does not apply.

The AKS cluster-name lookup of the identity step and plan's read of GCP Service Usage fail on
a refused certificate like any other call, with the same one error line. The GCP token
endpoint's control checks that the request got through TLS to the emulator, which then refuses
the JWT audience (the agent signs aud = token_uri, here the proxy's URL; the emulator takes
only its own or Google's).

Exit 77 (skipped) when openssl is missing and CI is not "true".
"""
import base64
import contextlib
import json
import os
import re
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback

SRC = os.environ.get("CG_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "emulators"))
import azure_harness  # noqa: E402
import central_harness  # noqa: E402
import gcp_harness  # noqa: E402
import harness  # noqa: E402
import osc_harness  # noqa: E402

OPENSSL = shutil.which("openssl")
IN_CI = os.environ.get("CI") == "true"
TOKEN = "report-token-tls-7d41c0"
BAD = ("unknown", "expired", "mismatch")
# what the agent's message must say for each bad certificate (curl + OpenSSL wording)
REASON = {
    "unknown": r"unable to get local issuer certificate|self[- ]signed certificate|unknown ca",
    "expired": r"certificate has expired",
    "mismatch": r"no alternative certificate subject name matches|does not match|"
                r"subject name",
}
TLS_WORDS = r"SSL|TLS|certificate"
CA_VARS = ("SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE", "AWS_CA_BUNDLE",
           "REQUESTS_CA_BUNDLE")


# ---- PKI -------------------------------------------------------------------------------------

CA_CNF = """\
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ ca ]
default_ca = ca_default
[ ca_default ]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}
serial = {dir}/serial
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[ any ]
commonName = supplied
"""

LEAF_CNF = """\
[ local ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
[ other ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:other-host.cloudgrant.test
"""


class Pki:
    """Throwaway CAs and server certificates, made with the openssl CLI."""

    def __init__(self, d):
        self.dir = d

        def p(name):
            return os.path.join(d, name)

        def ossl(*args):
            r = subprocess.run([OPENSSL] + list(args), capture_output=True, text=True,
                               timeout=60, cwd=d)
            if r.returncode != 0:
                raise RuntimeError("openssl %s: %s" % (" ".join(args), r.stderr))

        with open(p("ca.cnf"), "w") as f:
            f.write(CA_CNF.format(dir=d))
        with open(p("leaf.cnf"), "w") as f:
            f.write(LEAF_CNF)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        for ca, cn in (("good-ca", "cloudgrant TLS test CA"),
                       ("unknown-ca", "cloudgrant TLS test CA nobody trusts")):
            ossl("req", "-config", p("ca.cnf"), "-x509", "-new", *ec, "-keyout", p(ca + ".key"),
                 "-out", p(ca + ".crt"), "-days", "2", "-subj", "/CN=" + cn,
                 "-extensions", "ca_ext")
        ossl("req", "-config", p("ca.cnf"), "-new", *ec, "-keyout", p("server.key"),
             "-out", p("local.csr"), "-subj", "/CN=127.0.0.1")
        ossl("req", "-config", p("ca.cnf"), "-new", "-key", p("server.key"),
             "-out", p("other.csr"), "-subj", "/CN=other-host.cloudgrant.test")

        def x509(out, csr, ca, serial, ext):
            ossl("x509", "-req", "-in", p(csr), "-CA", p(ca + ".crt"), "-CAkey", p(ca + ".key"),
                 "-set_serial", str(serial), "-days", "2", "-extfile", p("leaf.cnf"),
                 "-extensions", ext, "-out", p(out + ".crt"))

        x509("good", "local.csr", "good-ca", 1, "local")
        x509("unknown", "local.csr", "unknown-ca", 2, "local")
        x509("mismatch", "other.csr", "good-ca", 3, "other")
        # OpenSSL 3.0's x509 cannot back-date; its ca command can (-startdate/-enddate)
        open(p("index.txt"), "w").close()
        with open(p("serial"), "w") as f:
            f.write("04\n")
        ossl("ca", "-batch", "-config", p("ca.cnf"), "-cert", p("good-ca.crt"),
             "-keyfile", p("good-ca.key"), "-in", p("local.csr"), "-out", p("expired.crt"),
             "-startdate", "20200101000000Z", "-enddate", "20200102000000Z",
             "-extfile", p("leaf.cnf"), "-extensions", "local", "-notext")
        self.ca = p("good-ca.crt")
        self.unknown_ca = p("unknown-ca.crt")
        with open(self.ca) as f:
            self.ca_pem = f.read()
        self.contexts = {}
        for name in ("good",) + BAD:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(p(name + ".crt"), p("server.key"))
            self.contexts[name] = ctx
        # a certificate directory holding the test CA, for SSL_CERT_DIR
        self.store = p("system-store")
        os.makedirs(self.store)
        shutil.copy(self.ca, os.path.join(self.store, "ca-certificates.crt"))


# ---- the TLS-terminating proxy ---------------------------------------------------------------

class TlsProxy:
    """Listens on 127.0.0.1, completes the TLS handshake with the certificate of the moment
    (.use(name)), and only when the client then sends bytes opens a connection to the backend
    and relays both ways. .backend_connections counts what reached the emulator; .refused
    keeps the handshake errors (the client's alert: unknown ca, certificate expired...)."""

    def __init__(self, name, backend_port, contexts, backend_tls=None):
        self.name = name
        self.backend_port = backend_port
        self.contexts = contexts
        self.backend_tls = backend_tls  # an ssl client context when the backend speaks TLS
        self.lock = threading.Lock()
        self.cert = "good"
        self.active = 0
        self.reset()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closing = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    url = property(lambda self: "https://127.0.0.1:%d" % self.port)
    hostport = property(lambda self: "127.0.0.1:%d" % self.port)

    def reset(self):
        with self.lock:
            self.connections = 0
            self.handshakes = 0
            self.refused = []
            self.backend_connections = 0
            self.bytes_forwarded = 0

    def use(self, cert):
        """Serve cert from the next connection on, with fresh counters (after the last run's
        connections have wound down)."""
        deadline = time.monotonic() + 5
        while self.active and time.monotonic() < deadline:
            time.sleep(0.01)
        self.cert = cert
        self.reset()

    def stats(self):
        # the client may exit before the serving thread has recorded the handshake's outcome
        deadline = time.monotonic() + 10
        while self.active and time.monotonic() < deadline:
            time.sleep(0.01)
        with self.lock:
            return {"cert": self.cert, "connections": self.connections,
                    "handshakes": self.handshakes, "refused": list(self.refused),
                    "backend_connections": self.backend_connections,
                    "bytes_forwarded": self.bytes_forwarded}

    def close(self):
        self.closing = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _accept(self):
        while not self.closing:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn, self.contexts[self.cert]),
                             daemon=True).start()

    def _serve(self, conn, ctx):
        with self.lock:
            self.connections += 1
            self.active += 1
        try:
            self._serve_tls(conn, ctx)
        finally:
            with self.lock:
                self.active -= 1

    def _serve_tls(self, conn, ctx):
        conn.settimeout(15)
        try:
            tls = ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as e:
            with self.lock:
                self.refused.append(str(e))
            conn.close()
            return
        with self.lock:
            self.handshakes += 1
        back = None
        try:
            first = tls.recv(65536)
            if not first:  # the client checked the certificate and went away
                with self.lock:
                    self.refused.append("closed after the handshake without a request")
                return
            back = socket.create_connection(("127.0.0.1", self.backend_port), timeout=15)
            if self.backend_tls is not None:
                back = self.backend_tls.wrap_socket(back, server_hostname="127.0.0.1")
            with self.lock:
                self.backend_connections += 1
                self.bytes_forwarded += len(first)
            back.sendall(first)
            self._relay(tls, back)
        except (ssl.SSLError, OSError):
            pass
        finally:
            for s in (back, tls):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass

    def _relay(self, a, b):
        # One thread per connection and blocking sockets: an SSL object is never used by two
        # threads at once. Bytes already decrypted (pending) are read before select.
        while True:
            ready = [s for s in (a, b) if isinstance(s, ssl.SSLSocket) and s.pending()]
            if not ready:
                ready, _, _ = select.select([a, b], [], [], 30)
                if not ready:
                    return
            for s in ready:
                data = s.recv(65536)
                if not data:
                    return
                (b if s is a else a).sendall(data)
                if s is a:
                    with self.lock:
                        self.bytes_forwarded += len(data)


# ---- running the agent -----------------------------------------------------------------------

class Namespace:
    """How the cloud endpoints are told to trust the test CA: --cloud-ca (CLOUDGRANT_CLOUD_CA),
    which replaces the system store for every cloud API, as the kubeconfig's CA does for the
    Kubernetes API and --report-ca for the report endpoint."""

    def __init__(self, pki):
        self.ca = os.path.join(pki.dir, "good-ca.crt")
        self.prefix = []
        self.why = None

    available = property(lambda self: True)


class Result:
    def __init__(self, p, seconds):
        self.code = p.returncode
        self.out = p.stdout
        self.err = p.stderr
        self.seconds = seconds

    def __repr__(self):
        return "exit %d after %.1f s\nstdout: %s\nstderr: %s" % (self.code, self.seconds,
                                                                self.out, self.err)


class Agent:
    def __init__(self, ns, home):
        self.ns = ns
        self.home = home
        self.base = {k: v for k, v in os.environ.items()
                     if not k.startswith(("AWS_", "CLOUDGRANT_", "KUBE", "AZURE_", "GOOGLE_",
                                          "GCE_", "CLOUDSDK_", "OSC_"))
                     and k not in CA_VARS
                     and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
        self.base.update({"HOME": home, "CLOUDGRANT_NO_METADATA": "true",
                          "AWS_EC2_METADATA_DISABLED": "true"})

    def run(self, args, env, trusted=True, timeout=60):
        """trusted: inside the namespace whose system store trusts the test CA (when there is
        one); False runs with the host's store."""
        e = dict(self.base, **env)
        e = {k: v for k, v in e.items() if v is not None}
        cmd = [harness.find_binary()] + list(args)
        if trusted:
            e.setdefault("CLOUDGRANT_CLOUD_CA", self.ns.ca)
        t = time.monotonic()
        p = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=timeout)
        return Result(p, time.monotonic() - t)


def write_kubeconfig(path, server, token, ca_pem=None, insecure=False):
    cluster = "    server: %s\n" % server
    if insecure:
        cluster += "    insecure-skip-tls-verify: true\n"
    if ca_pem:
        cluster += "    certificate-authority-data: %s\n" % base64.b64encode(
            ca_pem.encode()).decode()
    with open(path, "w") as f:
        f.write("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n%s"
                "users:\n- name: u\n  user:\n    token: %s\n"
                "contexts:\n- name: x\n  context: {cluster: c, user: u, namespace: default}\n"
                "current-context: x\n" % (cluster, token))
    os.chmod(path, 0o600)
    return path


# ---- cases -----------------------------------------------------------------------------------

class Tally:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0
        self.failures = []

    def case(self, name, fn):
        try:
            fn()
        except Skip as s:
            self.skipped += 1
            print("skip %s: %s" % (name, s))
        except Exception:
            self.failed += 1
            self.failures.append(name)
            print("FAIL %s" % name)
            traceback.print_exc()
        else:
            self.passed += 1
            print("ok   %s" % name)
        sys.stdout.flush()


class Skip(Exception):
    pass


def error_line(r):
    lines = [line for line in r.err.splitlines() if line.strip()]
    errs = [line for line in lines if line.startswith("cloudgrant: error: ")]
    assert len(errs) == 1, "want one error line, got:\n%s" % r.err
    return errs[0]


def expect_refused(r, proxy, cert, specific, backend_seen=None):
    """The run failed on proxy's certificate: one error line naming proxy's host:port and the
    TLS problem, a handshake the client refused, and nothing relayed to the emulator."""
    assert r.code != 0, "the agent accepted a %s certificate on %s: %r" % (cert, proxy.name, r)
    line = error_line(r)
    assert proxy.hostport in line, "the error does not name %s (%s): %s" % (
        proxy.name, proxy.hostport, line)
    assert re.search(TLS_WORDS, line), "the error does not say it is TLS: %s" % line
    if specific:
        assert re.search(REASON[cert], line, re.I), "the error does not say %s: %s" % (
            cert, line)
    st = proxy.stats()
    assert st["connections"] >= 1, "the agent never connected to %s: %r" % (proxy.name, st)
    assert st["backend_connections"] == 0 and st["bytes_forwarded"] == 0, \
        "bytes went past the handshake to the emulator behind %s: %r" % (proxy.name, st)
    assert st["refused"], "the proxy saw no refusal: %r" % st
    if backend_seen is not None:
        seen = backend_seen()
        assert not seen, "the emulator behind %s got requests: %r" % (proxy.name, seen)
    return line


def expect_served(r, proxy, ok_codes=(0,)):
    assert r.code in ok_codes, "control failed on %s: %r" % (proxy.name, r)
    st = proxy.stats()
    assert st["backend_connections"] >= 1 and st["bytes_forwarded"] > 0, \
        "the control never used %s: %r" % (proxy.name, st)
    assert not [x for x in st["refused"] if "closed after" not in x], \
        "the control refused a handshake on %s: %r" % (proxy.name, st)


def endpoint_matrix(t, kind, proxy, run, specific, control, backend_seen=None,
                    control_check=None):
    """Control with the good certificate (control: True, or why it is skipped), then each bad
    one, on one endpoint. control_check(result) defaults to expect_served(result, proxy)."""
    def good():
        if control is not True:
            raise Skip(control)
        proxy.use("good")
        r = run()
        (control_check or (lambda r: expect_served(r, proxy)))(r)

    t.case("%s: good certificate, trusted -> works" % kind, good)
    for cert in BAD:
        def bad(cert=cert):
            proxy.use(cert)
            before = backend_seen() if backend_seen else None
            r = run()
            line = expect_refused(
                r, proxy, cert, specific,
                (lambda: backend_seen()[len(before):]) if backend_seen else None)
            print("     %s" % line)
        t.case("%s: %s certificate -> refused, nothing sent" % (kind, cert), bad)
    proxy.use("good")


# ---- main ------------------------------------------------------------------------------------

def main():
    if OPENSSL is None:
        print("openssl is missing: it makes the test certificates")
        return 1 if IN_CI else 77
    started = time.monotonic()
    t = Tally()
    with contextlib.ExitStack() as stack:
        work = tempfile.mkdtemp(prefix="cg-tls-")
        if not harness._keep():
            stack.callback(shutil.rmtree, work, True)
        pki = Pki(work)
        ns = Namespace(pki)
        print("cloud endpoints: the test CA is trusted through --cloud-ca")
        home = os.path.join(work, "home")
        os.makedirs(home)
        agent = Agent(ns, home)

        def proxy(name, port, backend_tls=None):
            p = TlsProxy(name, port, pki.contexts, backend_tls)
            stack.callback(p.close)
            return p

        cloud_control = True if ns.available else "no mount namespace: %s" % ns.why

        # -- Kubernetes API ---------------------------------------------------------------
        k8s_osc = stack.enter_context(harness.k8s_api("outscale", auth="token"))
        k8s_tls = ssl.create_default_context(cafile=k8s_osc.ca)
        kp = proxy("Kubernetes API", k8s_osc.port, k8s_tls)
        kc_good = write_kubeconfig(os.path.join(work, "kc-good"), kp.url, k8s_osc.token,
                                   ca_pem=pki.ca_pem)

        def k8s_identity(kc=kc_good):
            return agent.run(["identity", "-o", "json", "--kubeconfig", kc], {},
                             trusted=False)

        endpoint_matrix(t, "Kubernetes API (kubeconfig certificate-authority-data)", kp,
                        k8s_identity, True, True)

        # certificate-authority-data replaces the system store (as in client-go): a server the
        # system store trusts, but the kubeconfig's CA does not, is refused.
        def k8s_ca_replaces_store():
            if not ns.available:
                raise Skip("no mount namespace: %s" % ns.why)
            with open(pki.unknown_ca) as f:
                other = f.read()
            kc = write_kubeconfig(os.path.join(work, "kc-other-ca"), kp.url, k8s_osc.token,
                                  ca_pem=other)
            kp.use("good")
            r = agent.run(["identity", "--kubeconfig", kc], {}, trusted=True)
            expect_refused(r, kp, "unknown", True)
        t.case("Kubernetes API: kubeconfig CA other than the issuer, system store trusts it "
               "-> refused", k8s_ca_replaces_store)
        kp.use("good")

        # in-cluster configuration: the service account's ca.crt and token
        sa_dir = os.path.join(work, "serviceaccount")
        os.makedirs(sa_dir)
        for name, text in (("ca.crt", pki.ca_pem), ("token", k8s_osc.token),
                           ("namespace", "default")):
            with open(os.path.join(sa_dir, name), "w") as f:
                f.write(text)

        def k8s_in_cluster():
            return agent.run(["identity", "-o", "json"],
                             {"KUBERNETES_SERVICE_HOST": "127.0.0.1",
                              "KUBERNETES_SERVICE_PORT": str(kp.port),
                              "CLOUDGRANT_SERVICE_ACCOUNT_DIR": sa_dir}, trusted=False)

        endpoint_matrix(t, "Kubernetes API (in-cluster service account ca.crt)", kp,
                        k8s_in_cluster, True, True)

        # -- OUTSCALE API (and the report endpoint, with a working cloud) -------------------
        osc = stack.enter_context(osc_harness.osc())
        cen = stack.enter_context(central_harness.central(token=TOKEN))
        op = proxy("OUTSCALE API", osc.port)
        rp = proxy("report endpoint", cen.port)
        osc_env = dict(osc.env(), CLOUDGRANT_KUBECONFIG=k8s_osc.kubeconfig,
                       CLOUDGRANT_CLUSTER_NAME="osc-prod", CLOUDGRANT_PROFILE="platform-access")

        def osc_requests():
            return [r for r in osc.requests() if r.get("action")]

        def osc_plan():
            return agent.run(["plan"], dict(osc_env, OSC_ENDPOINT_API=op.url + "/api/v1"))

        endpoint_matrix(t, "OUTSCALE API (OSC_ENDPOINT_API)", op, osc_plan, ns.available,
                        cloud_control, osc_requests)

        def osc_report_check():
            # check on a fresh account: drift (exit 3) and a DriftReport to the platform
            return agent.run(["check", "--report-url", rp.url + "/reports",
                              "--report-ca", pki.ca],
                             dict(osc_env, CLOUDGRANT_REPORT_TOKEN=TOKEN), trusted=False)

        def report_delivered(r):
            expect_served(r, rp, (3,))
            assert [x["body"]["kind"] for x in cen.reports()][-1:] == ["DriftReport"], \
                cen.reports()

        endpoint_matrix(t, "report endpoint (--report-ca)", rp, osc_report_check, True, True,
                        cen.requests, report_delivered)

        def note_report_ca_scope():
            # README: "--report-ca adds a CA". Printed, not asserted: whether a certificate
            # from a CA of the system store is still accepted next to --report-ca.
            if not ns.available:
                raise Skip("no mount namespace: %s" % ns.why)
            rp.use("good")
            r = agent.run(["check", "--report-url", rp.url + "/reports",
                           "--report-ca", pki.unknown_ca],
                          dict(osc_env, CLOUDGRANT_REPORT_TOKEN=TOKEN), trusted=True)
            print("     note: report endpoint certificate from a system-store CA, --report-ca "
                  "naming another CA: exit %d: %s" % (
                      r.code, (r.err.strip().splitlines() or ["(no error)"])[-1]))
        t.case("report endpoint: --report-ca next to the system store (informational)",
               note_report_ca_scope)
        rp.use("good")

        def note_ca_variables():
            # Only --cloud-ca changes what the cloud endpoints trust: the usual CA variables
            # (which libcurl ignores) cannot widen it behind the user's back.
            op.use("good")
            env = dict(osc_env, OSC_ENDPOINT_API=op.url + "/api/v1",
                       **{v: pki.ca for v in CA_VARS if v != "SSL_CERT_DIR"})
            env["SSL_CERT_DIR"] = pki.store
            r = agent.run(["plan"], env, trusted=False)
            print("     OUTSCALE API with the good certificate, %s pointing at the test CA and no "
                  "--cloud-ca: exit %d" % ("/".join(CA_VARS), r.code))
            expect_refused(r, op, "unknown", False)
        t.case("cloud endpoints: CA environment variables change nothing without --cloud-ca",
               note_ca_variables)

        # -- Azure: Entra token, Graph, ARM ----------------------------------------------------
        az = stack.enter_context(azure_harness.azure(validate=False))
        k8s_aks = stack.enter_context(harness.k8s_api("aks", auth="token"))
        # the cluster name given: else the identity step asks ARM for it (see the case below)
        az_env = dict(az.env(), CLOUDGRANT_KUBECONFIG=k8s_aks.kubeconfig,
                      CLOUDGRANT_PROFILE="platform-access", CLOUDGRANT_CLUSTER_NAME="aks-main")
        az_proxies = {}
        for kind, var, api in (("Microsoft Entra token (AZURE_AUTHORITY_HOST)",
                                "AZURE_AUTHORITY_HOST", "login"),
                               ("Microsoft Graph (CLOUDGRANT_AZURE_GRAPH_URL)",
                                "CLOUDGRANT_AZURE_GRAPH_URL", "graph"),
                               ("Azure Resource Manager (CLOUDGRANT_AZURE_ARM_URL)",
                                "CLOUDGRANT_AZURE_ARM_URL", "arm")):
            ap = az_proxies[api] = proxy(kind, az.port)

            def az_plan(ap=ap, var=var):
                return agent.run(["plan"], dict(az_env, **{var: ap.url}))

            def az_seen(api=api):
                return [r for r in az.requests() if r.get("api") == api]
            endpoint_matrix(t, kind, ap, az_plan, ns.available, cloud_control, az_seen)

        for api, var in (("arm", "CLOUDGRANT_AZURE_ARM_URL"), ("login", "AZURE_AUTHORITY_HOST")):
            def az_identity_lookup(api=api, var=var):
                # Without --cluster-name the identity step reads the cluster's name from ARM
                # (token first). A refused certificate there must still send nothing, and the
                # run's one error line says why (not a later "needs {{cluster.name}}").
                ap = az_proxies[api]
                ap.use("expired")
                env = dict(az_env, CLOUDGRANT_CLUSTER_NAME=None, **{var: ap.url})
                before = len(az.requests())
                r = agent.run(["plan"], env)
                assert r.code != 0, r
                st = ap.stats()
                assert st["connections"] >= 1 and st["backend_connections"] == 0, st
                assert not [x for x in az.requests()[before:] if x.get("api") == api]
                line = error_line(r)
                print("     exit %d; %s" % (r.code, line))
                assert ap.hostport in line and re.search(TLS_WORDS, line), line
                ap.use("good")
            t.case("%s with an expired certificate while the identity step looks up the AKS "
                   "cluster name -> refused, nothing sent" % az_proxies[api].name,
                   az_identity_lookup)

        # -- GCP: OAuth token, IAM, Service Usage, Resource Manager -----------------------------
        g = stack.enter_context(gcp_harness.gcp(project="acme-prod-321", validate=False))
        k8s_gke = stack.enter_context(harness.k8s_api("gke", auth="token"))
        gcp_env = dict(g.env(), CLOUDGRANT_KUBECONFIG=k8s_gke.kubeconfig,
                       CLOUDGRANT_PROFILE="node-autoscaler", CLOUDGRANT_CLUSTER_NAME="gke-main")
        keys = {}

        def gcp_key(token_uri):
            if token_uri not in keys:
                key = dict(g.admin_key, token_uri=token_uri)
                keys[token_uri] = os.path.join(work, "gcp-key-%d.json" % len(keys))
                with open(keys[token_uri], "w") as f:
                    json.dump(key, f)
                os.chmod(keys[token_uri], 0o600)
            return keys[token_uri]

        def gcp_seen(api):
            return lambda: [r for r in g.requests() if r.get("api") == api]

        gp_token = proxy("Google OAuth token (key file token_uri)", g.port)

        def token_reached(r):
            # The emulator takes only its own URL (or Google's) as the JWT audience, and the
            # agent signs aud = token_uri, here the proxy: the token request gets through TLS,
            # reaches the emulator and is answered invalid_grant. That answer, not a TLS error,
            # is what the control checks.
            st = gp_token.stats()
            assert st["backend_connections"] >= 1 and st["bytes_forwarded"] > 0, st
            assert not [x for x in st["refused"] if "closed after" not in x], st
            assert gcp_seen("oauth2")(), "the token request did not reach the emulator"
            assert not re.search(r"SSL|certificate problem", r.err), r
            assert "invalid_grant" in r.err and "audience" in r.err, r

        endpoint_matrix(t, "Google OAuth token (key file token_uri)", gp_token,
                        lambda: agent.run(["plan"], dict(gcp_env, GOOGLE_APPLICATION_CREDENTIALS=
                                                         gcp_key(gp_token.url + "/token"))),
                        ns.available, cloud_control, gcp_seen("oauth2"), token_reached)

        creds_out = os.path.join(work, "gcp-credentials.json")
        for kind, var, prefix, api, cmd in (
                ("GCP IAM (CLOUDSDK_API_ENDPOINT_OVERRIDES_IAM)",
                 "CLOUDSDK_API_ENDPOINT_OVERRIDES_IAM", "/iam/", "iam", ["plan"]),
                # plan reads Service Usage best-effort (see the case below): onboard enables
                # the APIs first, through Service Usage, and must stop there
                ("GCP Service Usage (CLOUDSDK_API_ENDPOINT_OVERRIDES_SERVICEUSAGE)",
                 "CLOUDSDK_API_ENDPOINT_OVERRIDES_SERVICEUSAGE", "/serviceusage/",
                 "serviceusage", ["onboard", "--credentials-out", creds_out]),
                ("GCP Resource Manager (CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER)",
                 "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER", "/crm/", "crm",
                 ["plan"])):
            gp = proxy(kind, g.port)

            def gcp_run(gp=gp, var=var, prefix=prefix, cmd=cmd):
                return agent.run(cmd, dict(gcp_env, **{var: gp.url + prefix}))
            endpoint_matrix(t, kind + " [%s]" % cmd[0], gp, gcp_run, ns.available,
                            cloud_control, gcp_seen(api))
            if api == "serviceusage":
                su = gp

        def su_plan():
            # A refused certificate says nothing about the project's APIs: plan fails rather
            # than read them as disabled (which check would report as drift).
            su.use("expired")
            before = len(gcp_seen("serviceusage")())
            r = agent.run(["plan"], dict(gcp_env, CLOUDSDK_API_ENDPOINT_OVERRIDES_SERVICEUSAGE=
                                         su.url + "/serviceusage/"))
            st = su.stats()
            assert st["connections"] >= 1 and st["backend_connections"] == 0, st
            assert not gcp_seen("serviceusage")()[before:]
            line = expect_refused(r, su, "expired", True)
            print("     exit %d; %s" % (r.code, line))
            su.use("good")
        t.case("GCP Service Usage with an expired certificate, plan -> refused, nothing sent",
               su_plan)

        # -- AWS: IAM, STS (moto) ----------------------------------------------------------
        moto = None
        try:
            import moto_harness
            moto_harness.find_moto_server()
            moto = stack.enter_context(moto_harness.moto())
        except Exception as e:  # noqa: BLE001 - moto is optional outside CI, as in e2e_aws
            why = "moto is not available: %s" % (str(e).splitlines() or [type(e).__name__])[0]

            def no_moto(why=why):
                raise (RuntimeError(why) if IN_CI else Skip(why))
            for kind in ("AWS IAM (AWS_ENDPOINT_URL_IAM)", "AWS STS (AWS_ENDPOINT_URL_STS)"):
                for cert in ("good",) + BAD:
                    t.case("%s: %s certificate" % (kind, cert), no_moto)
        if moto is not None:
            k8s_eks = stack.enter_context(harness.k8s_api("eks", auth="token"))
            aws_env = dict(moto.env(), CLOUDGRANT_KUBECONFIG=k8s_eks.kubeconfig,
                           CLOUDGRANT_PROFILE="node-autoscaler")
            for kind, var in (("AWS IAM (AWS_ENDPOINT_URL_IAM)", "AWS_ENDPOINT_URL_IAM"),
                              ("AWS STS (AWS_ENDPOINT_URL_STS)", "AWS_ENDPOINT_URL_STS")):
                wp = proxy(kind, moto.port)

                def aws_plan(wp=wp, var=var):
                    return agent.run(["plan"], dict(aws_env, **{var: wp.url}))
                endpoint_matrix(t, kind, wp, aws_plan, ns.available, cloud_control)

        # -- insecure-skip-tls-verify: only where configured ---------------------------------
        kc_insecure = write_kubeconfig(os.path.join(work, "kc-insecure"), kp.url,
                                       k8s_osc.token, insecure=True)
        for cert in BAD:
            def insecure_k8s(cert=cert):
                kp.use(cert)
                r = k8s_identity(kc_insecure)
                expect_served(r, kp)
            t.case("insecure-skip-tls-verify: Kubernetes API with the %s certificate -> "
                   "accepted" % cert, insecure_k8s)

        def insecure_other_cluster():
            # the flag belongs to one cluster entry: the context's own cluster still verifies
            kp.use("expired")
            kc = os.path.join(work, "kc-two-clusters")
            with open(kc, "w") as f:
                f.write("apiVersion: v1\nkind: Config\nclusters:\n"
                        "- name: lax\n  cluster:\n    server: %s\n"
                        "    insecure-skip-tls-verify: true\n"
                        "- name: strict\n  cluster:\n    server: %s\n"
                        "    certificate-authority-data: %s\n"
                        "users:\n- name: u\n  user:\n    token: %s\n"
                        "contexts:\n- name: lax\n  context: {cluster: lax, user: u}\n"
                        "- name: strict\n  context: {cluster: strict, user: u}\n"
                        "current-context: strict\n" % (
                            kp.url, kp.url, base64.b64encode(pki.ca_pem.encode()).decode(),
                            k8s_osc.token))
            os.chmod(kc, 0o600)
            expect_refused(k8s_identity(kc), kp, "expired", True)
            kp.use("expired")
            expect_served(agent.run(["identity", "--kubeconfig", kc, "--context", "lax"], {},
                                    trusted=False), kp)
        t.case("insecure-skip-tls-verify on another cluster entry of the kubeconfig -> the "
               "current context's cluster still refuses the expired certificate",
               insecure_other_cluster)
        kp.use("good")

        kgp = proxy("Kubernetes API (GKE)", k8s_gke.port,
                    ssl.create_default_context(cafile=k8s_gke.ca))
        kc_gke_insecure = write_kubeconfig(os.path.join(work, "kc-gke-insecure"), kgp.url,
                                           k8s_gke.token, insecure=True)
        for k8s_cert, cloud_cert, report_cert in (("expired", "unknown", "mismatch"),
                                                  ("unknown", "mismatch", "expired"),
                                                  ("mismatch", "expired", "unknown")):
            def same_run(k8s_cert=k8s_cert, cloud_cert=cloud_cert, report_cert=report_cert):
                # onboard: the Kubernetes API is read (the credential Secret), the first cloud
                # call (a token) fails, and the failure is reported to the platform: all three
                # kinds of endpoint in one run.
                kgp.use(k8s_cert)
                gp_token.use(cloud_cert)
                rp.use(report_cert)
                reports = len(cen.requests())
                tokens = len([r for r in g.requests() if r.get("api") == "oauth2"])
                r = agent.run(["onboard", "--report-url", rp.url + "/reports",
                               "--report-ca", pki.ca],
                              dict(gcp_env, CLOUDGRANT_KUBECONFIG=kc_gke_insecure,
                                   CLOUDGRANT_REPORT_TOKEN=TOKEN,
                                   GOOGLE_APPLICATION_CREDENTIALS=gcp_key(
                                       gp_token.url + "/token")))
                st = kgp.stats()
                assert st["backend_connections"] >= 1 and st["bytes_forwarded"] > 0, \
                    "insecure-skip-tls-verify: the Kubernetes API was not used: %r %r" % (st, r)
                line = expect_refused(r, gp_token, cloud_cert, ns.available)
                assert not [x for x in g.requests() if x.get("api") == "oauth2"][tokens:]
                rst = rp.stats()
                assert rst["connections"] >= 1 and rst["refused"], \
                    "the failure was not reported (no attempt on the report endpoint): %r" % rst
                assert rst["backend_connections"] == 0 and rst["bytes_forwarded"] == 0, rst
                assert len(cen.requests()) == reports, cen.requests()[reports:]
                print("     %s" % line)
            t.case("insecure-skip-tls-verify in the kubeconfig: Kubernetes API (%s) accepted; "
                   "cloud token endpoint (%s) and report endpoint (%s) refused in the same run"
                   % (k8s_cert, cloud_cert, report_cert), same_run)
        kgp.use("good")
        gp_token.use("good")
        rp.use("good")

    total = t.passed + t.failed + t.skipped
    print("%d cases: %d passed, %d failed, %d skipped (%.0f s)" % (
        total, t.passed, t.failed, t.skipped, time.monotonic() - started))
    if t.failures:
        print("failed: " + "; ".join(t.failures))
    return 1 if t.failed or not t.passed else 0


if __name__ == "__main__":
    sys.exit(main())
