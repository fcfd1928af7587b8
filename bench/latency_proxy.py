#!/usr/bin/env python3
"""A forward HTTP proxy that adds a fixed delay to every request it relays, for the benchmark.

    latency_proxy.py --delay-ms 50 --log requests.jsonl [--port 0] [--ready-file PATH]
                     [--exempt HOST:PORT]... [--verbose]

Clients reach it through the usual proxy variables (http_proxy / HTTPS_PROXY for curl and
libcurl, HTTP_PROXY for botocore and awscli). Standard library only.

- Plain HTTP (absolute-form request line, `GET http://host:port/path HTTP/1.1`): each request
  is read whole, held for --delay-ms, forwarded on a keep-alive connection to the origin
  (one per client connection and origin), and the answer is relayed with a Content-Length.
  One delay per request models one network round trip to a remote API. Every request is
  logged (one JSON line each): when it arrived, when it was forwarded, when the answer
  went back, method, origin, path, AWS query `Action` (form body or query string), status,
  and the client connection it came on (so connection reuse is visible).
- CONNECT (HTTPS through the proxy): the tunnel is opened after one delay and then relayed
  byte for byte; the proxy cannot see the requests inside, so a tunnel is logged as one
  entry. In the benchmark only the Kubernetes API (TLS) goes through CONNECT, and it is
  exempt.
- --exempt HOST:PORT: origins relayed without delay (the Kubernetes API emulator and the
  central report endpoint: they stand for the in-cluster API and the platform, not for the
  cloud). Exempt requests are logged too, with "delayed": false.

Control (origin-form requests to the proxy itself):
  GET  /__proxy__/stats   {"requests": N, "connections": N, "delay_ms": D}
  POST /__proxy__/config  {"delay_ms": D, "exempt": ["127.0.0.1:1234", ...]}  (either key)
"""
import argparse
import http.client
import json
import os
import re
import select
import socket
import socketserver
import sys
import threading
import time
import urllib.parse

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization",
              "proxy-authenticate", "te", "trailers", "transfer-encoding", "upgrade"}
MAX_HEADER_BYTES = 256 * 1024
MAX_BODY = 64 * 1024 * 1024
IDLE_TIMEOUT = 120


class State:
    def __init__(self, delay_ms, exempt, log_path, verbose):
        self.delay_ms = delay_ms
        self.exempt = set(exempt)
        self.log_path = log_path
        self.verbose = verbose
        self.lock = threading.Lock()
        self.seq = 0
        self.conns = 0
        self.log = open(log_path, "a", buffering=1) if log_path else None

    def next_seq(self):
        with self.lock:
            self.seq += 1
            return self.seq

    def next_conn(self):
        with self.lock:
            self.conns += 1
            return self.conns

    def record(self, entry):
        if self.log is None:
            return
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self.lock:
            self.log.write(line)

    def delay_for(self, host, port):
        if ("%s:%d" % (host, port)) in self.exempt:
            return 0
        return self.delay_ms


def now():
    return time.time()


def quickack(sock):
    """Acknowledge at once what arrives next (Linux TCP_QUICKACK, which the kernel resets by
    itself, so it is set again after every read). The Python emulators write a response's
    headers and body separately without TCP_NODELAY: with a delayed ACK on our side, Nagle
    holds the body back for 40 ms, a stall a real server (Go's sets TCP_NODELAY) would not
    have and that is not the agent's."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
    except (OSError, AttributeError):
        pass


QUICKACK = getattr(socket, "TCP_QUICKACK", 12)


class ClientGone(Exception):
    pass


class Reader:
    """Buffered reads of lines and exact byte counts from a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ClientGone()
        self.buf += data

    def line(self, limit=MAX_HEADER_BYTES):
        while b"\n" not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("line too long")
            self._fill()
        i = self.buf.index(b"\n") + 1
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def headers(self):
        hdrs = []
        total = 0
        while True:
            ln = self.line()
            total += len(ln)
            if total > MAX_HEADER_BYTES:
                raise ValueError("headers too large")
            if ln in (b"\r\n", b"\n"):
                return hdrs
            name, _, value = ln.decode("latin-1").partition(":")
            hdrs.append((name.strip(), value.strip()))

    def body(self, hdrs):
        te = [v.lower() for k, v in hdrs if k.lower() == "transfer-encoding"]
        if te and "chunked" in te[-1]:
            out = b""
            while True:
                size = int(self.line().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.headers()  # trailers
                    return out
                out += self.exact(size)
                self.exact(2)
                if len(out) > MAX_BODY:
                    raise ValueError("body too large")
        cl = [v for k, v in hdrs if k.lower() == "content-length"]
        n = int(cl[-1]) if cl else 0
        if n > MAX_BODY:
            raise ValueError("body too large")
        return self.exact(n) if n else b""


# Form parameters worth logging (names only of resources and scopes; never a secret, a
# policy document or a client assertion).
LOGGED_PARAMS = ("Action", "UserName", "RoleName", "PolicyArn", "PolicyName", "VersionId",
                 "AccessKeyId", "Path", "scope", "grant_type", "PolicyOrn")
# The OUTSCALE API: JSON POST to /api/v1/<Action> (or /api/latest/<Action>)
OSC_PATH = re.compile(r"^/api/(?:v1|latest)/([A-Z][A-Za-z]+)$")


def form_params(method, query, hdrs, body):
    """The query string's and (form-encoded POST) body's parameters that identify a call: the
    AWS query API's Action and resource names, an OAuth request's scope."""
    params = urllib.parse.parse_qs(query or "")
    ctype = next((v for k, v in hdrs if k.lower() == "content-type"), "")
    if method == "POST" and "x-www-form-urlencoded" in ctype and body:
        try:
            for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items():
                params.setdefault(k, []).extend(v)
        except ValueError:
            pass
    out = {k: v[0][:300] for k, v in params.items() if k in LOGGED_PARAMS and v}
    ctype_json = "json" in ctype
    if method == "POST" and ctype_json and body:
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            out.update({k: v[:300] for k, v in doc.items()
                        if k in LOGGED_PARAMS and isinstance(v, str)})
    return out


class Handler(socketserver.BaseRequestHandler):
    def setup(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request.settimeout(IDLE_TIMEOUT)
        self.state = self.server.state
        self.conn_id = self.state.next_conn()
        self.upstreams = {}

    def finish(self):
        for c in self.upstreams.values():
            try:
                c.close()
            except OSError:
                pass

    def handle(self):
        rd = Reader(self.request)
        try:
            while True:
                try:
                    line = rd.line(8192)
                except (ClientGone, socket.timeout, ConnectionError):
                    return
                t_first = now()
                parts = line.decode("latin-1").strip().split()
                if not parts:
                    continue
                if len(parts) != 3:
                    self._simple(400, b"bad request line\n", close=True)
                    return
                method, target, version = parts
                hdrs = rd.headers()
                if method == "CONNECT":
                    self._connect(target, t_first, rd)
                    return
                if any(k.lower() == "expect" and "100-continue" in v.lower() for k, v in hdrs):
                    # answer it here: the origin never sees the header (dropped below)
                    self.request.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    hdrs = [(k, v) for k, v in hdrs if k.lower() != "expect"]
                body = rd.body(hdrs)
                if target.startswith("/"):
                    if not self._control(method, target, body):
                        return
                    continue
                keep = self._forward(method, target, version, hdrs, body, t_first)
                if not keep:
                    return
        except (ClientGone, ConnectionError, socket.timeout):
            return
        except ValueError as e:
            try:
                self._simple(400, ("%s\n" % e).encode(), close=True)
            except OSError:
                pass

    # -- control ---------------------------------------------------------------------------
    def _control(self, method, target, body):
        st = self.state
        if target == "/__proxy__/stats" and method == "GET":
            with st.lock:
                doc = {"requests": st.seq, "connections": st.conns, "delay_ms": st.delay_ms,
                       "exempt": sorted(st.exempt)}
            self._simple(200, json.dumps(doc).encode(), ctype="application/json")
            return True
        if target == "/__proxy__/config" and method == "POST":
            doc = json.loads(body or b"{}")
            with st.lock:
                if "delay_ms" in doc:
                    st.delay_ms = int(doc["delay_ms"])
                if "exempt" in doc:
                    st.exempt = set(doc["exempt"])
            self._simple(200, b"{}", ctype="application/json")
            return True
        self._simple(404, b"not a proxy request\n", close=True)
        return False

    def _simple(self, status, body, ctype="text/plain", close=False):
        head = "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n" % (
            status, http.client.responses.get(status, "X"), ctype, len(body),
            "Connection: close\r\n" if close else "")
        self.request.sendall(head.encode("latin-1") + body)

    # -- CONNECT ---------------------------------------------------------------------------
    def _connect(self, target, t_first, rd):
        st = self.state
        host, _, port = target.rpartition(":")
        host = host.strip("[]")
        port = int(port)
        seq = st.next_seq()
        delay = st.delay_for(host, port)
        if delay:
            time.sleep(delay / 1000.0)
        try:
            up = socket.create_connection((host, port), timeout=10)
        except OSError as e:
            self._simple(502, ("cannot reach %s: %s\n" % (target, e)).encode(), close=True)
            st.record({"seq": seq, "conn": self.conn_id, "method": "CONNECT",
                       "origin": "%s:%d" % (host, port), "t_first": t_first, "t_done": now(),
                       "delayed": bool(delay), "status": 502})
            return
        up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        st.record({"seq": seq, "conn": self.conn_id, "method": "CONNECT",
                   "origin": "%s:%d" % (host, port), "t_first": t_first, "t_fwd": now(),
                   "t_done": now(), "delayed": bool(delay), "status": 200})
        socks = [self.request, up]
        if rd.buf:
            up.sendall(rd.buf)
        try:
            while True:
                r, _, _ = select.select(socks, [], [], IDLE_TIMEOUT)
                if not r:
                    return
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    quickack(s)
                    (up if s is self.request else self.request).sendall(data)
        except OSError:
            return
        finally:
            up.close()

    # -- plain HTTP ------------------------------------------------------------------------
    def _upstream(self, host, port):
        key = (host, port)
        c = self.upstreams.get(key)
        if c is None:
            c = http.client.HTTPConnection(host, port, timeout=120)
            self.upstreams[key] = c
        return c

    def _forward(self, method, target, version, hdrs, body, t_first):
        st = self.state
        t_recv = now()
        u = urllib.parse.urlsplit(target)
        if u.scheme != "http" or not u.hostname:
            self._simple(400, b"only http:// targets (use CONNECT for https)\n", close=True)
            return False
        host = u.hostname
        port = u.port or 80
        path = (u.path or "/") + ("?" + u.query if u.query else "")
        client_close = version == "HTTP/1.0" or any(
            k.lower() in ("connection", "proxy-connection") and "close" in v.lower()
            for k, v in hdrs)
        seq = st.next_seq()
        delay = st.delay_for(host, port)
        if delay:
            time.sleep(delay / 1000.0)
        t_fwd = now()
        out_hdrs = [(k, v) for k, v in hdrs if k.lower() not in HOP_BY_HOP
                    and k.lower() != "content-length"]
        entry = {"seq": seq, "conn": self.conn_id, "method": method,
                 "origin": "%s:%d" % (host, port), "path": u.path, "delayed": bool(delay),
                 "t_first": t_first, "t_recv": t_recv, "t_fwd": t_fwd}
        params = form_params(method, u.query, hdrs, body)
        m = OSC_PATH.match(u.path)
        if m is not None:
            params["Action"] = m.group(1)
        if "Action" in params:
            entry["action"] = params.pop("Action")
        if params:
            entry["params"] = params
        if u.query:
            entry["query"] = urllib.parse.unquote(u.query)[:300]
        status, rhdrs, rbody = None, [], b""
        for attempt in (1, 2):
            conn = self._upstream(host, port)
            try:
                conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
                for k, v in out_hdrs:
                    conn.putheader(k, v)
                if body or method in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body if body else None)
                if conn.sock is not None:
                    quickack(conn.sock)
                resp = conn.getresponse()
                status = resp.status
                rhdrs = resp.getheaders()
                rbody = resp.read()
                if resp.will_close:
                    conn.close()
                    self.upstreams.pop((host, port), None)
                break
            except (http.client.HTTPException, OSError) as e:
                conn.close()
                self.upstreams.pop((host, port), None)
                if attempt == 2:
                    status = 502
                    rhdrs = [("Content-Type", "text/plain")]
                    rbody = ("proxy: %s: %s\n" % (entry["origin"], e)).encode()
        entry["t_resp"] = now()
        head = ["HTTP/1.1 %d %s" % (status, http.client.responses.get(status, "Status"))]
        for k, v in rhdrs:
            if k.lower() in HOP_BY_HOP or k.lower() == "content-length":
                continue
            head.append("%s: %s" % (k, v))
        if method != "HEAD" and status not in (204, 304) and not (100 <= status < 200):
            head.append("Content-Length: %d" % len(rbody))
        elif method == "HEAD":
            cl = [v for k, v in rhdrs if k.lower() == "content-length"]
            if cl:
                head.append("Content-Length: %s" % cl[-1])
        head.append("Connection: close" if client_close else "Connection: keep-alive")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if method != "HEAD":
            data += rbody
        self.request.sendall(data)
        entry["t_done"] = now()
        entry["status"] = status
        entry["bytes_in"] = len(body)
        entry["bytes_out"] = len(rbody)
        st.record(entry)
        if st.verbose:
            sys.stderr.write("proxy: %s %s %s -> %s\n" % (method, entry["origin"], u.path,
                                                          status))
        return not client_close


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        if self.state.verbose:
            exc = sys.exc_info()[1]
            sys.stderr.write("proxy: %s: %s: %s\n" % (client_address, type(exc).__name__, exc))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--delay-ms", type=int, default=50)
    ap.add_argument("--exempt", action="append", default=[], metavar="HOST:PORT")
    ap.add_argument("--log", help="JSON lines, one per request")
    ap.add_argument("--ready-file", help="the port is written here once serving")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args(argv)
    srv = Server((a.host, a.port), Handler)
    srv.state = State(a.delay_ms, a.exempt, a.log, a.verbose)
    port = srv.server_address[1]
    if a.ready_file:
        tmp = a.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, a.ready_file)
    import signal
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
