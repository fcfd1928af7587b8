"""Shared plumbing for the cloudgrant test emulators (standard library only).

Used by k8s_api.py and metadata.py, which run as scripts (their directory is on sys.path).
Nothing here models a remote API; it is process plumbing: atomic files, a threaded HTTP
server that shuts down cleanly on SIGTERM/SIGINT, request logging, body reading.
"""
import json
import os
import select
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FIXTURES_DIR = os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "clusters"))

CLUSTERS = ("eks", "gke", "aks", "outscale", "unknown")


def write_atomic(path, data, mode=0o644):
    """Write data (str or bytes) to path via a temp file in the same directory + rename,
    so a reader polling for the file never sees it half written."""
    if isinstance(data, str):
        data = data.encode()
    d = os.path.dirname(os.path.abspath(path)) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load_fixture(name_or_path):
    """A cluster fixture by name (eks, gke, ...) or by path."""
    path = name_or_path
    if os.path.sep not in name_or_path and not name_or_path.endswith(".json"):
        path = os.path.join(FIXTURES_DIR, name_or_path + ".json")
    with open(path) as f:
        return json.load(f)


class QuietThreadingHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with daemon worker threads (a stuck client never blocks exit)
    and no traceback spam for clients that hang up or fail the TLS handshake."""
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    verbose = False

    def handle_error(self, request, client_address):
        if self.verbose:
            exc = sys.exc_info()[1]
            sys.stderr.write("emulator: connection %s: %s: %s\n"
                             % (client_address, type(exc).__name__, exc))


class EmulatorHandler(BaseHTTPRequestHandler):
    """Base request handler: HTTP/1.1 keep-alive, idle timeout, optional access log."""
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections end after this many seconds
    server_version = "emulator"
    sys_version = ""

    def log_message(self, fmt, *args):
        if getattr(self.server, "verbose", False):
            sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))

    def log_request(self, code="-", size="-"):
        if getattr(self.server, "verbose", False):
            super().log_request(code, size)

    def reset_connection(self):
        """Ends the connection with a TCP reset (SO_LINGER 0): a fault some tests inject."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.close_connection = True

    def peer_closed(self):
        try:
            r, _w, _x = select.select([self.connection], [], [], 0.05)
            if not r:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def release_generation(self):
        """How many times the emulator's held answers were released (a control call bumps
        it); an emulator that holds answers says where it keeps the count."""
        raise NotImplementedError

    def hold(self, max_ms, gen):
        """Holds a faulted answer. -> "closed" (the client went away), "released" (the
        emulator's release control since generation gen) or "timeout"."""
        deadline = time.monotonic() + max_ms / 1000.0
        while True:
            if self.release_generation() != gen:
                return "released"
            if self.peer_closed():
                return "closed"
            if time.monotonic() >= deadline:
                return "timeout"

    def read_body(self, limit=8 << 20):
        """Request body per Content-Length or chunked transfer encoding (None if too large)."""
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            out = bytearray()
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    break
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                out += self.rfile.read(size)
                self.rfile.readline(3)
                if len(out) > limit:
                    self.close_connection = True
                    return None
            return bytes(out)
        n = int(self.headers.get("Content-Length") or 0)
        if n > limit:
            self.close_connection = True
            return None
        return self.rfile.read(n) if n > 0 else b""

    def send_body(self, code, body, content_type, headers=None, head_only=False):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        if content_type:
            self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head_only and self.command != "HEAD":
            self.wfile.write(body)


def serve(server, ready_file=None, port_for_ready=None, on_listening=None, name="emulator"):
    """Run server until SIGTERM/SIGINT. The ready file (port number and a newline) is
    written atomically only once the socket is listening; on_listening(port) runs first
    (k8s_api uses it to write the kubeconfig that embeds the port)."""
    port = port_for_ready if port_for_ready is not None else server.server_address[1]
    stop = threading.Event()

    def _on_signal(signum, frame):
        if not stop.is_set():
            stop.set()
            # shutdown() blocks until serve_forever returns, so it must run in another thread
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, _on_signal)
    if on_listening:
        on_listening(port)
    if ready_file:
        write_atomic(ready_file, "%d\n" % port)
    sys.stderr.write("%s: listening on %s:%d\n" % (name, server.server_address[0], port))
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        stop.set()
        server.server_close()
    return 0
