#!/usr/bin/env python3
"""Central-endpoint emulator for cloudgrant tests (standard library + Debian's
python3-jsonschema when importable).

    python3 central.py --port 0 --ready-file F --token T --schema docs/report.schema.json
                       --state-dir D [--path /reports] [--trust-path /trust]
                       [--principal-arn A --external-id X] [--host 127.0.0.1] [--verbose]

It plays the SaaS platform's side of design.md "Reporting", over plain HTTP on loopback
(the agent accepts http:// to loopback only):

  POST <path>[/...]  a report. Authorization: Bearer T (else 401), Idempotency-Key (else 400),
                     Content-Type application/json (else 415), a body valid against the schema
                     (else 400 {"message": "<validation error>"}). Stored in D/reports.jsonl as
                     {idempotencyKey, body, headers (minus Authorization), deliveredAt, id} and
                     answered 201 {"id": ...}. A repeated key answers 200 with the same body and
                     is recorded as a duplicate attempt, not a new report.
  GET  <trust-path>  {"principalArn", "externalId"} with the same bearer check (404 when the
                     emulator was started without --principal-arn).

Every attempt (accepted, refused, injected failure, dropped) is appended to
D/requests.jsonl: {method, path, idempotencyKey, headers (minus Authorization), status,
duplicate, at}. Authorization values are never written anywhere.

Control API on the same port (no auth; tests only):
  POST /__control__ {"mode": "ok"}                                   clear injected faults
                    {"mode": "fail-status", "status": 503, "count": N[, "retryAfter": S]
                     [, "message": M]}   the answer is {"message": M or "injected failure"}
                    {"mode": "retry-after", "count": N, "retryAfter": S}   429 + Retry-After
                    {"mode": "drop", "count": N}          close the connection, no answer
                    {"mode": "delay", "count": N, "delayMs": MS}   answer normally, late
  GET  /__control__/reports     distinct deliveries (the reports.jsonl records)
  GET  /__control__/requests    every attempt
Faults apply to the next N report or trust requests, in arrival order.

Without jsonschema the emulator refuses to start when CI=true, else warns and accepts any
JSON object. The ready file receives the port, written atomically, once it listens.
"""
import argparse
import datetime
import hmac
import json
import os
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emu_common import EmulatorHandler, QuietThreadingHTTPServer, serve  # noqa: E402

try:
    import jsonschema
except ImportError:  # pragma: no cover - depends on the host
    jsonschema = None

CONTROL = "/__control__"
MODES = ("ok", "fail-status", "drop", "delay", "retry-after")


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.reports = []      # distinct deliveries, in order
        self.by_key = {}       # Idempotency-Key -> (status, response body)
        self.requests = []
        self.fault = {"mode": "ok", "count": 0}
        self.validator = None
        if args.schema and jsonschema is not None:
            with open(args.schema) as f:
                schema = json.load(f)
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            self.validator = cls(schema, format_checker=cls.FORMAT_CHECKER
                                 if hasattr(cls, "FORMAT_CHECKER") else None)
        os.makedirs(args.state_dir, exist_ok=True)
        self.reports_path = os.path.join(args.state_dir, "reports.jsonl")
        self.requests_path = os.path.join(args.state_dir, "requests.jsonl")
        # A restarted platform still knows the keys it has seen: a rerun after a crash of the
        # agent against the same state dir is deduplicated.
        try:
            with open(self.reports_path) as f:
                for line in f:
                    if line.strip():
                        rec = json.loads(line)
                        self.reports.append(rec)
                        self.by_key[rec["idempotencyKey"]] = (201, {"id": rec["id"]})
        except FileNotFoundError:
            pass

    def take_fault(self):
        """The fault for this request, or None; consumes one of its count."""
        with self.lock:
            f = self.fault
            if f["mode"] == "ok" or f["count"] <= 0:
                return None
            f["count"] -= 1
            return dict(f)

    def record_request(self, rec):
        with self.lock:
            self.requests.append(rec)
            with open(self.requests_path, "a") as f:
                f.write(json.dumps(rec, sort_keys=True) + "\n")

    def validate(self, body):
        """Returns None or a one-line message. Values of the credentials field are never
        quoted: a real platform must not echo secrets into error bodies either."""
        if self.validator is None:
            return None if isinstance(body, dict) else "report must be a JSON object"
        errors = list(self.validator.iter_errors(body))
        if not errors:
            return None
        e = jsonschema.exceptions.best_match(errors)
        where = "/" + "/".join(str(p) for p in e.absolute_path)
        if e.absolute_path and e.absolute_path[0] == "credentials":
            what = "fails the schema's %r rule" % e.validator
        else:
            what = e.message
            if len(what) > 300:
                what = what[:300] + "..."
        return "report does not match the schema at %s: %s" % (where, what)


def safe_headers(headers):
    return {k.lower(): v for k, v in headers.items() if k.lower() != "authorization"}


class Handler(EmulatorHandler):
    server_version = "central-emulator"

    @property
    def st(self):
        return self.server.state

    def send_json(self, code, obj, headers=None):
        self.send_body(code, json.dumps(obj, separators=(",", ":")) + "\n", "application/json",
                       headers)

    # -- control -------------------------------------------------------------------------------
    def control(self):
        path = self.path.split("?", 1)[0]
        if self.command == "GET" and path == CONTROL + "/reports":
            with self.st.lock:
                return self.send_json(200, list(self.st.reports))
        if self.command == "GET" and path == CONTROL + "/requests":
            with self.st.lock:
                return self.send_json(200, list(self.st.requests))
        if self.command == "POST" and path == CONTROL:
            raw = self.read_body() or b"{}"
            try:
                m = json.loads(raw)
            except ValueError as e:
                return self.send_json(400, {"message": "control body is not JSON: %s" % e})
            mode = m.get("mode", "ok")
            if mode not in MODES:
                return self.send_json(400, {"message": "unknown mode %r" % mode})
            f = {"mode": mode, "count": int(m.get("count", 1)),
                 "status": int(m.get("status", 429 if mode == "retry-after" else 503)),
                 "retryAfter": m.get("retryAfter"), "delayMs": int(m.get("delayMs", 0)),
                 "message": m.get("message")}
            if mode == "retry-after" and f["retryAfter"] is None:
                f["retryAfter"] = 1
            with self.st.lock:
                self.st.fault = f if mode != "ok" else {"mode": "ok", "count": 0}
            return self.send_json(200, self.st.fault)
        return self.send_json(404, {"message": "unknown control path"})

    # -- platform ------------------------------------------------------------------------------
    def authorized(self):
        got = self.headers.get("Authorization") or ""
        want = "Bearer " + self.server.token
        return hmac.compare_digest(got.encode(), want.encode())

    def is_report_path(self, path):
        base = self.server.report_path.rstrip("/")
        return path == base or path.startswith(base + "/")

    def handle_any(self):
        path = self.path.split("?", 1)[0]
        if path == CONTROL or path.startswith(CONTROL + "/"):
            return self.control()
        is_report = self.is_report_path(path)
        is_trust = path == self.server.trust_path
        body = self.read_body()
        rec = {"method": self.command, "path": path,
               "idempotencyKey": self.headers.get("Idempotency-Key"),
               "headers": safe_headers(self.headers), "at": now_rfc3339(),
               "duplicate": False}
        if body is None:
            self.close_connection = True
            rec["status"] = 413
            self.st.record_request(rec)
            return self.send_json(413, {"message": "body too large"})
        if not is_report and not is_trust:
            rec["status"] = 404
            self.st.record_request(rec)
            return self.send_json(404, {"message": "no such path: %s" % path})

        fault = self.st.take_fault()
        if fault is not None:
            mode = fault["mode"]
            if mode == "drop":
                rec["status"] = "dropped"
                self.st.record_request(rec)
                self.close_connection = True
                return
            if mode == "delay":
                time.sleep(fault["delayMs"] / 1000.0)
            elif mode in ("fail-status", "retry-after"):
                hdrs = {}
                if fault.get("retryAfter") is not None:
                    hdrs["Retry-After"] = str(fault["retryAfter"])
                rec["status"] = fault["status"]
                self.st.record_request(rec)
                msg = fault.get("message") or "injected failure (%s %d)" % (mode, fault["status"])
                return self.send_json(fault["status"], {"message": msg}, hdrs)

        code, resp, extra = self.serve_platform(is_report, is_trust, body, rec)
        rec["status"] = code
        self.st.record_request(rec)
        self.send_json(code, resp, extra)

    def serve_platform(self, is_report, is_trust, body, rec):
        if not self.authorized():
            return 401, {"error": "invalid bearer token"}, {"WWW-Authenticate": "Bearer"}
        if is_trust:
            if self.command != "GET":
                return 405, {"message": "use GET"}, {"Allow": "GET"}
            if not self.server.principal_arn:
                return 404, {"message": "no trust principal configured"}, None
            return 200, {"principalArn": self.server.principal_arn,
                         "externalId": self.server.external_id or ""}, None
        if self.command != "POST":
            return 405, {"message": "use POST"}, {"Allow": "POST"}
        key = self.headers.get("Idempotency-Key")
        if not key:
            return 400, {"message": "missing Idempotency-Key header"}, None
        ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            return 415, {"message": "Content-Type must be application/json"}, None
        try:
            doc = json.loads(body)
        except ValueError as e:
            return 400, {"message": "body is not JSON: %s" % e}, None
        msg = self.st.validate(doc)
        if msg is not None:
            return 400, {"message": msg}, None
        with self.st.lock:
            seen = self.st.by_key.get(key)
            if seen is not None:
                rec["duplicate"] = True
                return 200, seen[1], None
            rid = "rep-" + uuid.uuid4().hex[:16]
            stored = {"id": rid, "idempotencyKey": key, "body": doc,
                      "headers": safe_headers(self.headers), "deliveredAt": now_rfc3339()}
            self.st.reports.append(stored)
            self.st.by_key[key] = (201, {"id": rid})
            with open(self.st.reports_path, "a") as f:
                f.write(json.dumps(stored, sort_keys=True) + "\n")
        return 201, {"id": rid}, None

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ready-file")
    ap.add_argument("--token", required=True)
    ap.add_argument("--schema")
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--path", default="/reports")
    ap.add_argument("--trust-path", default="/trust")
    ap.add_argument("--principal-arn")
    ap.add_argument("--external-id")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    if jsonschema is None and args.schema:
        if os.environ.get("CI", "").lower() == "true":
            sys.stderr.write("central: python3-jsonschema is not installed and CI=true: "
                             "refusing to run without schema validation\n")
            return 2
        sys.stderr.write("central: warning: python3-jsonschema is not installed; reports are "
                         "not validated against %s\n" % args.schema)
    state = State(args)
    server = QuietThreadingHTTPServer((args.host, args.port), Handler)
    server.verbose = args.verbose
    server.state = state
    server.token = args.token
    server.report_path = args.path
    server.trust_path = args.trust_path
    server.principal_arn = args.principal_arn
    server.external_id = args.external_id
    return serve(server, args.ready_file, name="central")


if __name__ == "__main__":
    sys.exit(main())
