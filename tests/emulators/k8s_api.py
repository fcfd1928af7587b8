#!/usr/bin/env python3
"""Kubernetes API server emulator for cloudgrant tests (standard library + the openssl CLI).

    python3 k8s_api.py --cluster {eks,gke,aks,outscale,unknown} --state-dir DIR
                       [--port 0] [--host 127.0.0.1] [--auth token|cert|both]
                       [--ready-file PATH] [--fixture PATH] [--fail-first-401 N]
                       [--rotate-token-after N] [--forbid [VERB:]RESOURCE ...]
                       [--anonymous] [--verbose]

It serves HTTPS on 127.0.0.1 with a private CA and answers the part of the kube-apiserver
API that cloudgrant uses, shaped like a real server (kube-apiserver 1.29/1.30) so that real
kubectl works against it:

  GET  /version, /healthz, /livez, /readyz
  GET  /api, /api/v1, /apis, /apis/coordination.k8s.io[/v1]       (legacy discovery)
  GET  /api/v1/nodes[?limit=&continue=&labelSelector=&fieldSelector=], /api/v1/nodes/NAME
  GET  /api/v1/namespaces[/NAME], POST /api/v1/namespaces
  GET/POST/PUT/PATCH/DELETE  /api/v1/namespaces/NS/secrets[/NAME]   (stateful, in memory)
  GET/POST/PUT/PATCH/DELETE  /apis/coordination.k8s.io/v1/namespaces/NS/leases[/NAME]
  GET  /api/v1/secrets, /apis/coordination.k8s.io/v1/leases        (all namespaces)

Errors are metav1.Status objects with the reasons and messages the real server uses
(NotFound, AlreadyExists, Conflict, Invalid, BadRequest, Unauthorized, Forbidden, ...).

State directory (created once, reused by later runs with the same DIR):
  ca.crt ca.key server.crt server.key client.crt client.key   (PKI made with openssl)
  token                 bearer token accepted by the server (rewritten on rotation)
  serviceaccount/{token,ca.crt,namespace}   an in-cluster style service-account dir
  kubeconfig            contexts "token" (current) and "cert"; server https://127.0.0.1:PORT
The ready file receives the port once the server listens (written atomically).

Test hooks: --fail-first-401 N (the first N requests get 401 whatever their credentials),
--rotate-token-after N (after N requests authenticated by token, a new token is written to
DIR/token and DIR/serviceaccount/token and the old one is refused, like an expired projected
token), --forbid (RBAC denial: 403 for a resource, or VERB:RESOURCE), --anonymous (requests
without credentials are system:anonymous instead of 401, like a server with
--anonymous-auth=true: /version and /healthz are allowed, the rest is 403).
"""
import argparse
import base64
import binascii
import copy
import datetime
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets as pysecrets
import ssl
import subprocess
import sys
import threading
import uuid
from urllib.parse import parse_qs, unquote, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emu_common import (CLUSTERS, EmulatorHandler, QuietThreadingHTTPServer,  # noqa: E402
                        load_fixture, serve, write_atomic)

# ----------------------------------------------------------------------------------------------
# Resource table (what discovery advertises and what the router serves).
# Keyed by (group, resource). "verbs" are the ones this emulator implements; real servers
# advertise more for nodes/namespaces (create, delete, patch, watch...), which we refuse
# with 405 MethodNotAllowed like a server would for a verb a resource does not support.
RESOURCES = {
    ("", "namespaces"): {
        "version": "v1", "kind": "Namespace", "singular": "namespace", "namespaced": False,
        "verbs": ["create", "get", "list", "patch", "update"], "short": ["ns"],
        "hash": "Q3oi5N2YM8M="},
    ("", "nodes"): {
        "version": "v1", "kind": "Node", "singular": "node", "namespaced": False,
        "verbs": ["get", "list"], "short": ["no"], "hash": "XwShjMxG9Fs="},
    ("", "secrets"): {
        "version": "v1", "kind": "Secret", "singular": "secret", "namespaced": True,
        "verbs": ["create", "delete", "get", "list", "patch", "update"], "short": [],
        "hash": "S6u1pOWzb84="},
    ("coordination.k8s.io", "leases"): {
        "version": "v1", "kind": "Lease", "singular": "lease", "namespaced": True,
        "verbs": ["create", "delete", "get", "list", "patch", "update"], "short": [],
        "hash": "gqkMMb/YqFM="},
}
GROUPS = {"coordination.k8s.io": ["v1"]}

# Fields the real types know (unknown fields are dropped, or refused with
# ?fieldValidation=Strict, as the real decoder does).
META_FIELDS = {"name", "generateName", "namespace", "selfLink", "uid", "resourceVersion",
               "generation", "creationTimestamp", "deletionTimestamp",
               "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences",
               "finalizers", "managedFields"}
TOP_FIELDS = {
    "secrets": {"apiVersion", "kind", "metadata", "data", "stringData", "type", "immutable"},
    "leases": {"apiVersion", "kind", "metadata", "spec"},
    "namespaces": {"apiVersion", "kind", "metadata", "spec", "status"},
}
LEASE_SPEC_FIELDS = {"acquireTime", "holderIdentity", "leaseDurationSeconds",
                     "leaseTransitions", "renewTime", "preferredHolder", "strategy"}

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                 "characters, '-' or '.', and must start and end with an alphanumeric character "
                 "(e.g. 'example.com', regex used for validation is "
                 "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
             "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
             "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
SECRET_KEY_MSG = ("a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
                  "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation "
                  "is '[-._a-zA-Z0-9]+')")
MAX_SECRET_SIZE = 1 << 20


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def dumps(obj):
    return json.dumps(obj, separators=(",", ":")) + "\n"


class ApiError(Exception):
    """An error answered as a metav1.Status (apimachinery/pkg/api/errors)."""

    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details, self.headers = details, headers or {}

    def status(self):
        s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
             "message": self.message, "reason": self.reason}
        if self.details is not None:
            s["details"] = self.details
        s["code"] = self.code
        return s


def _qualified(group, resource):
    return resource + "." + group if group else resource


def _details(group, resource, name=None):
    d = {}
    if name is not None:
        d["name"] = name
    if group:
        d["group"] = group
    d["kind"] = resource  # the real server puts the resource (plural) in details.kind
    return d


def err_not_found(group, resource, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (_qualified(group, resource), name),
                    _details(group, resource, name))


def err_already_exists(group, resource, name):
    return ApiError(409, "AlreadyExists",
                    '%s "%s" already exists' % (_qualified(group, resource), name),
                    _details(group, resource, name))


def err_conflict(group, resource, name, why):
    return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": %s'
                    % (_qualified(group, resource), name, why), _details(group, resource, name))


def err_bad_request(msg):
    return ApiError(400, "BadRequest", msg)


def err_invalid(group, kind, name, causes):
    """422 Invalid; causes = [(field, type, detail)] with type Invalid value/Required value..."""
    parts, cs = [], []
    for field, ctype, detail in causes:
        parts.append("%s: %s" % (field, detail))
        cs.append({"reason": ctype, "message": detail, "field": field})
    if len(parts) == 1:
        agg = parts[0]
    else:
        agg = "[" + ", ".join(parts) + "]"
    d = {"name": name}
    if group:
        d["group"] = group
    d["kind"] = kind
    d["causes"] = cs
    return ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (kind, name, agg), d)


def err_method_not_allowed():
    return ApiError(405, "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                    {})


NOT_FOUND_PATH = ApiError(404, "NotFound", "the server could not find the requested resource", {})


# ----------------------------------------------------------------------------------------------
# PKI and state-directory files

OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
authorityKeyIdentifier = keyid
subjectAltName = IP:127.0.0.1, IP:0:0:0:0:0:0:0:1, DNS:localhost, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local
[v3_client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
"""

PKI_FILES = ("ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key")


def _openssl(args, cwd):
    r = subprocess.run(["openssl"] + args, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (args[0], r.stderr.decode(errors="replace")))


def ensure_pki(state_dir):
    """Create the CA, the server cert (SAN 127.0.0.1, localhost, kubernetes.default.svc...)
    and a client cert (CN=cloudgrant, O=system:masters) once per state dir."""
    os.makedirs(state_dir, exist_ok=True)
    with open(os.path.join(state_dir, ".pki.lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        if all(os.path.exists(os.path.join(state_dir, f)) for f in PKI_FILES):
            return
        work = os.path.join(state_dir, ".pki-work")
        os.makedirs(work, exist_ok=True)
        with open(os.path.join(work, "openssl.cnf"), "w") as f:
            f.write(OPENSSL_CNF)
        days = ["-days", "3650", "-sha256"]
        _openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
                  "-out", "ca.crt", "-config", "openssl.cnf", "-extensions", "v3_ca",
                  "-subj", "/CN=cloudgrant-emulator-ca"] + days, work)
        for name, subj, ext in (("server", "/CN=kube-apiserver", "v3_server"),
                                ("client", "/O=system:masters/CN=cloudgrant", "v3_client")):
            _openssl(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key",
                      "-out", name + ".csr", "-config", "openssl.cnf", "-subj", subj], work)
            _openssl(["x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                      "-set_serial", "0x" + pysecrets.token_hex(16), "-extfile", "openssl.cnf",
                      "-extensions", ext, "-out", name + ".crt"] + days, work)
        for f in PKI_FILES:  # rename the certificates last: their presence means "done"
            os.chmod(os.path.join(work, f), 0o600 if f.endswith(".key") else 0o644)
        for f in ("ca.key", "server.key", "client.key", "server.crt", "client.crt", "ca.crt"):
            os.replace(os.path.join(work, f), os.path.join(state_dir, f))
        for f in os.listdir(work):
            os.unlink(os.path.join(work, f))
        os.rmdir(work)


def new_token():
    # Real service-account tokens are JWTs; the agent must treat the token as opaque, so an
    # opaque random string (still JWT-shaped: three base64url segments) is enough.
    def seg(n):
        return base64.urlsafe_b64encode(os.urandom(n)).rstrip(b"=").decode()
    return "eyJhbGciOiJSUzI1NiIsImtpZCI6ImVtdWxhdG9yIn0." + seg(96) + "." + seg(64)


def b64file(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def write_kubeconfig(state_dir, port, cluster_label):
    ca = b64file(os.path.join(state_dir, "ca.crt"))
    crt = b64file(os.path.join(state_dir, "client.crt"))
    key = b64file(os.path.join(state_dir, "client.key"))
    with open(os.path.join(state_dir, "token")) as f:
        token = f.read().strip()
    name = "emulated-" + cluster_label
    text = """apiVersion: v1
kind: Config
clusters:
- name: {name}
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority-data: {ca}
users:
- name: token-user
  user:
    token: {token}
- name: cert-user
  user:
    client-certificate-data: {crt}
    client-key-data: {key}
contexts:
- name: token
  context:
    cluster: {name}
    user: token-user
    namespace: default
- name: cert
  context:
    cluster: {name}
    user: cert-user
    namespace: default
current-context: token
preferences: {{}}
""".format(name=name, port=port, ca=ca, token=token, crt=crt, key=key)
    write_atomic(os.path.join(state_dir, "kubeconfig"), text, 0o600)


# ----------------------------------------------------------------------------------------------
# Label and field selectors (apimachinery/pkg/labels, pkg/fields): the common subset.

def _split_selector(s):
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return [t.strip() for t in out if t.strip()]


def parse_label_selector(s):
    reqs = []
    for term in _split_selector(s or ""):
        m = re.match(r"^([^\s!=()]+)\s+(in|notin)\s+\((.*)\)$", term)
        if m:
            vals = {v.strip() for v in m.group(3).split(",") if v.strip()}
            reqs.append((m.group(1), m.group(2), vals))
            continue
        m = re.match(r"^([^\s!=()]+)\s*(==|=|!=)\s*([^\s!=()]*)$", term)
        if m:
            reqs.append((m.group(1), "!=" if m.group(2) == "!=" else "=", m.group(3)))
            continue
        m = re.match(r"^(!?)\s*([^\s!=()]+)$", term)
        if m:
            reqs.append((m.group(2), "!exists" if m.group(1) else "exists", None))
            continue
        raise err_bad_request("unable to parse requirement: found '%s', expected: identifier"
                              % term)
    return reqs


def labels_match(reqs, labels):
    labels = labels or {}
    for key, op, val in reqs:
        has = key in labels
        v = labels.get(key)
        if op == "=" and (not has or v != val):
            return False
        if op == "!=" and has and v == val:
            return False
        if op == "in" and (not has or v not in val):
            return False
        if op == "notin" and has and v in val:
            return False
        if op == "exists" and not has:
            return False
        if op == "!exists" and has:
            return False
    return True


FIELD_SELECTABLE = {
    "nodes": {"metadata.name": lambda o: o["metadata"]["name"],
              "spec.unschedulable": lambda o: str(bool(o.get("spec", {}).get("unschedulable"))).lower()},
    "namespaces": {"metadata.name": lambda o: o["metadata"]["name"],
                   "status.phase": lambda o: o.get("status", {}).get("phase", "")},
    "secrets": {"metadata.name": lambda o: o["metadata"]["name"],
                "metadata.namespace": lambda o: o["metadata"].get("namespace", ""),
                "type": lambda o: o.get("type", "")},
    "leases": {"metadata.name": lambda o: o["metadata"]["name"],
               "metadata.namespace": lambda o: o["metadata"].get("namespace", "")},
}


def parse_field_selector(s, resource, version, label_sel):
    reqs = []
    for term in _split_selector(s or ""):
        m = re.match(r"^([^\s!=]+)\s*(==|=|!=)\s*(.*)$", term)
        if not m:
            raise err_bad_request("invalid selector: '%s'; can't understand '%s'" % (s, term))
        if m.group(1) not in FIELD_SELECTABLE.get(resource, {}):
            raise err_bad_request(
                'Unable to find "/%s, Resource=%s" that match label selector "%s", field '
                'selector "%s": field label not supported: %s'
                % (version, resource, label_sel or "", s, m.group(1)))
        reqs.append((m.group(1), m.group(2) != "!=", m.group(3)))
    return reqs


def fields_match(reqs, resource, obj):
    for f, eq, val in reqs:
        if (FIELD_SELECTABLE[resource][f](obj) == val) != eq:
            return False
    return True


# ----------------------------------------------------------------------------------------------
# JSON merge patch (RFC 7386) and JSON patch (RFC 6902)

def merge_patch(target, patch, strategic=False):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if strategic and k.startswith("$"):
            continue  # strategic-merge directives ($patch, $retainKeys...): not modelled
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v, strategic)
    return out


def _ptr_tokens(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise err_bad_request("the server rejected our request due to an error in our request")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _ptr_parent(doc, tokens, op_path):
    cur = doc
    for t in tokens[:-1]:
        if isinstance(cur, dict) and t in cur:
            cur = cur[t]
        elif isinstance(cur, list) and t.isdigit() and int(t) < len(cur):
            cur = cur[int(t)]
        else:
            msg = 'jsonpatch operation does not apply: doc is missing path: "%s"' % op_path
            raise ApiError(500, "InternalError", "Internal error occurred: " + msg,
                           {"causes": [{"message": msg}]})
    return cur


def json_patch(doc, ops):
    doc = copy.deepcopy(doc)
    if not isinstance(ops, list):
        raise err_bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    for op in ops:
        kind, path = op.get("op"), op.get("path", "")
        tokens = _ptr_tokens(path)
        if kind in ("move", "copy"):
            src = _ptr_tokens(op.get("from", ""))
            sp = _ptr_parent(doc, src, op.get("from"))
            val = sp[src[-1]] if isinstance(sp, dict) else sp[int(src[-1])]
            val = copy.deepcopy(val)
            if kind == "move":
                if isinstance(sp, dict):
                    del sp[src[-1]]
                else:
                    del sp[int(src[-1])]
            kind, op = "add", {"value": val}
        if not tokens:
            if kind in ("add", "replace"):
                doc = copy.deepcopy(op["value"])
                continue
        parent = _ptr_parent(doc, tokens, path)
        last = tokens[-1] if tokens else ""
        if kind == "test":
            cur = parent.get(last) if isinstance(parent, dict) else (
                parent[int(last)] if last.isdigit() and int(last) < len(parent) else None)
            if cur != op.get("value"):
                raise ApiError(422, "Invalid",
                               "the server rejected our request due to an error in our request",
                               {})
            continue
        if isinstance(parent, dict):
            if kind == "add":
                parent[last] = copy.deepcopy(op.get("value"))
            elif kind in ("replace", "remove"):
                if last not in parent:
                    raise ApiError(500, "InternalError",
                                   "Internal error occurred: jsonpatch %s operation does not apply:"
                                   " doc is missing key: %s" % (kind, path),
                                   {"causes": [{"message": "jsonpatch %s operation does not apply:"
                                                " doc is missing key: %s" % (kind, path)}]})
                if kind == "replace":
                    parent[last] = copy.deepcopy(op.get("value"))
                else:
                    del parent[last]
            else:
                raise err_bad_request("Unexpected kind: %s" % kind)
        elif isinstance(parent, list):
            idx = len(parent) if last == "-" else int(last) if last.isdigit() else -1
            if kind == "add" and 0 <= idx <= len(parent):
                parent.insert(idx, copy.deepcopy(op.get("value")))
            elif kind == "replace" and 0 <= idx < len(parent):
                parent[idx] = copy.deepcopy(op.get("value"))
            elif kind == "remove" and 0 <= idx < len(parent):
                del parent[idx]
            else:
                raise ApiError(500, "InternalError",
                               "Internal error occurred: jsonpatch %s operation does not apply: "
                               "index out of range" % kind, {})
        else:
            raise ApiError(500, "InternalError",
                           "Internal error occurred: jsonpatch operation does not apply", {})
    return doc


# ----------------------------------------------------------------------------------------------
# In-memory object store

class Store:
    """Objects keyed by (group, resource, namespace, name); one global resourceVersion counter
    like etcd's revision; lists are sorted by key (namespace/name) like etcd range reads."""

    def __init__(self, fixture):
        self.lock = threading.RLock()
        self.rv = 1000
        self.objs = {}
        for ns, meta in sorted(fixture["namespaces"].items()):
            self.objs[("", "namespaces", "", ns)] = {
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"creationTimestamp": meta["creationTimestamp"],
                             "labels": {"kubernetes.io/metadata.name": ns},
                             "name": ns, "resourceVersion": meta.get("resourceVersion", "1"),
                             "uid": meta["uid"]},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
        for n in fixture["nodes"]:
            n = copy.deepcopy(n)
            n.setdefault("apiVersion", "v1")
            n.setdefault("kind", "Node")
            self.objs[("", "nodes", "", n["metadata"]["name"])] = n
            self.rv = max(self.rv, int(n["metadata"].get("resourceVersion") or 0))
        self.rv += 1

    def next_rv(self):
        self.rv += 1
        return str(self.rv)

    def get(self, group, resource, ns, name):
        return self.objs.get((group, resource, ns or "", name))

    def namespace_exists(self, ns):
        return ("", "namespaces", "", ns) in self.objs

    def list(self, group, resource, ns):
        keys = sorted(k for k in self.objs
                      if k[0] == group and k[1] == resource and (ns is None or k[2] == ns))
        return [(k, self.objs[k]) for k in keys]


def managed_fields_for(obj, manager, operation, api_version):
    """A plausible metadata.managedFields entry (FieldsV1 set of the fields the request set)."""
    def fields(v, top=False):
        if not isinstance(v, dict):
            return {}
        out = {}
        for k, sub in v.items():
            if top and k in ("apiVersion", "kind"):
                continue
            if top and k == "metadata":
                m = {kk: vv for kk, vv in sub.items() if kk in ("labels", "annotations")}
                if m:
                    out["f:metadata"] = fields(m)
                continue
            out["f:" + k] = fields(sub) if isinstance(sub, dict) else {}
            if isinstance(sub, dict) and sub:
                out["f:" + k]["."] = {}
        return out
    return {"manager": manager, "operation": operation, "apiVersion": api_version,
            "time": now_rfc3339(), "fieldsType": "FieldsV1", "fieldsV1": fields(obj, top=True)}


# ----------------------------------------------------------------------------------------------
# Server-side printing: kubectl get (without -o json/yaml) asks for
#   Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...,application/json
# and prints the columns the server computes (pkg/printers/internalversion).

def human_duration(seconds):
    """apimachinery/pkg/util/duration.HumanDuration."""
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    s = int(seconds)
    if s < 60 * 2:
        return "%ds" % s
    m = s // 60
    if m < 10:
        return "%dm%ds" % (m, s % 60) if s % 60 else "%dm" % m
    if m < 60 * 3:
        return "%dm" % m
    h = m // 60
    if h < 8:
        return "%dh%dm" % (h, m % 60) if m % 60 else "%dh" % h
    if h < 48:
        return "%dh" % h
    if h < 24 * 8:
        return "%dd%dh" % (h // 24, h % 24) if h % 24 else "%dd" % (h // 24)
    if h < 24 * 365 * 2:
        return "%dd" % (h // 24)
    if h < 24 * 365 * 8:
        y, d = h // (24 * 365), (h // 24) % 365
        return "%dy%dd" % (y, d) if d else "%dy" % y
    return "%dy" % (h // (24 * 365))


def age(obj):
    ts = obj["metadata"].get("creationTimestamp")
    if not ts:
        return "<unknown>"
    t = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    return human_duration((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds())


def _col(name, typ, desc, priority=0, fmt=""):
    return {"name": name, "type": typ, "format": fmt, "description": desc, "priority": priority}


NAME_COL = _col("Name", "string", "Name must be unique within a namespace. Is required when "
                "creating resources, although some resources may allow a client to request the "
                "generation of an appropriate name automatically. Name is primarily intended for "
                "creation idempotence and configuration definition. Cannot be updated. More info: "
                "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
                fmt="name")
AGE_COL = _col("Age", "string", "CreationTimestamp is a timestamp representing the server time "
               "when this object was created.")


def _node_cells(o):
    st = o.get("status", {})
    ready = [c for c in st.get("conditions", []) if c.get("type") == "Ready"]
    status = "Ready" if ready and ready[0].get("status") == "True" else (
        "NotReady" if ready else "Unknown")
    if o.get("spec", {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    roles = set()
    for k, v in (o["metadata"].get("labels") or {}).items():
        if k.startswith("node-role.kubernetes.io/") and k != "node-role.kubernetes.io/":
            roles.add(k[len("node-role.kubernetes.io/"):])
        elif k == "kubernetes.io/role" and v:
            roles.add(v)
    addr = {}
    for a in st.get("addresses", []):
        addr.setdefault(a.get("type"), a.get("address"))
    ni = st.get("nodeInfo", {})
    return [o["metadata"]["name"], status, ",".join(sorted(roles)) or "<none>", age(o),
            ni.get("kubeletVersion", ""), addr.get("InternalIP", "<none>"),
            addr.get("ExternalIP", "<none>"), ni.get("osImage", "<unknown>"),
            ni.get("kernelVersion", "<unknown>"), ni.get("containerRuntimeVersion", "<unknown>")]


TABLES = {
    "nodes": ([NAME_COL,
               _col("Status", "string", "The status of the node"),
               _col("Roles", "string", "The roles of the node"),
               AGE_COL,
               _col("Version", "string", "Kubelet Version reported by the node."),
               _col("Internal-IP", "string", "List of addresses reachable to the node.", 1),
               _col("External-IP", "string", "List of addresses reachable to the node.", 1),
               _col("OS-Image", "string", "OS Image reported by the node from /etc/os-release "
                    "(e.g. Debian GNU/Linux 7 (wheezy)).", 1),
               _col("Kernel-Version", "string", "Kernel Version reported by the node from "
                    "'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).", 1),
               _col("Container-Runtime", "string", "ContainerRuntime Version reported by the "
                    "node through runtime remote API (e.g. containerd://1.4.2).", 1)],
              _node_cells),
    "namespaces": ([NAME_COL, _col("Status", "string", "The status of the namespace"), AGE_COL],
                   lambda o: [o["metadata"]["name"], o.get("status", {}).get("phase", ""),
                              age(o)]),
    "secrets": ([NAME_COL, _col("Type", "string", "The type of the secret"),
                 _col("Data", "string", "The number of entries in the secret"), AGE_COL],
                lambda o: [o["metadata"]["name"], o.get("type", ""), len(o.get("data") or {}),
                           age(o)]),
    "leases": ([NAME_COL, _col("Holder", "string", "The holder of the lease"), AGE_COL],
               lambda o: [o["metadata"]["name"], (o.get("spec") or {}).get("holderIdentity", ""),
                          age(o)]),
}


def wants_table(accept):
    """True when the Accept header's first acceptable type is a meta.k8s.io Table."""
    for part in (accept or "").split(","):
        params = [x.strip() for x in part.split(";")]
        if params[0] not in ("application/json", "*/*"):
            continue
        p = dict(x.split("=", 1) for x in params[1:] if "=" in x)
        if p.get("as") == "Table" and p.get("g") == "meta.k8s.io" and p.get("v") in ("v1", "v1beta1"):
            return p["v"]
        if "as" not in p:
            return None
    return None


def to_table(resource, objs, list_meta, version, include):
    cols, cells = TABLES[resource]
    rows = []
    for o in objs:
        row = {"cells": cells(o)}
        if include == "Object":
            row["object"] = o
        elif include != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": o["metadata"]}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/" + version, "metadata": list_meta,
            "columnDefinitions": cols, "rows": rows}


# ----------------------------------------------------------------------------------------------
# OpenAPI v3 (/openapi/v3 root and one document per group-version). Minimal: paths and
# operations with their query parameters and x-kubernetes-* extensions, no schemas. That is
# what kubectl (>= 1.27) reads before create/replace -f to learn that the server validates
# fields itself (a PATCH operation of the kind with a "fieldValidation" query parameter);
# without it kubectl falls back to /openapi/v2 client-side validation and fails.

def _op(action, gvk, op_id, params, desc):
    return {"description": desc, "operationId": op_id, "tags": [gvk["group"] or "core_v1"],
            "parameters": [{"name": p, "in": "query", "description": p, "schema": {"type": t},
                            "uniqueItems": True} for p, t in params],
            "responses": {"200": {"description": "OK"}, "401": {"description": "Unauthorized"}},
            "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk}


def _gv_openapi(group, version):
    paths = {}
    base = "/apis/%s/%s" % (group, version) if group else "/api/" + version
    write_params = [("dryRun", "string"), ("fieldManager", "string"),
                    ("fieldValidation", "string")]
    list_params = [("allowWatchBookmarks", "boolean"), ("continue", "string"),
                   ("fieldSelector", "string"), ("labelSelector", "string"),
                   ("limit", "integer"), ("resourceVersion", "string"),
                   ("resourceVersionMatch", "string"), ("sendInitialEvents", "boolean"),
                   ("timeoutSeconds", "integer"), ("watch", "boolean")]
    for (g, r), info in sorted(RESOURCES.items()):
        if g != group or info["version"] != version:
            continue
        kind = info["kind"]
        gvk = {"group": group, "version": version, "kind": kind}
        camel = ("Core" if not group else group.split(".")[0].capitalize()) + version.upper()[0] \
            + version[1:]
        scope = "Namespaced" if info["namespaced"] else ""
        coll = base + ("/namespaces/{namespace}/" if info["namespaced"] else "/") + r
        item = coll + "/{name}"
        common = [{"name": "pretty", "in": "query", "schema": {"type": "string"}}]
        if info["namespaced"]:
            common.append({"name": "namespace", "in": "path", "required": True,
                           "schema": {"type": "string"}})
        c, i = {"parameters": list(common)}, {
            "parameters": [{"name": "name", "in": "path", "required": True,
                            "schema": {"type": "string"}}] + list(common)}
        verbs = info["verbs"]
        if "list" in verbs:
            c["get"] = _op("list", gvk, "list%s%s%s" % (camel, scope, kind), list_params,
                           "list or watch objects of kind " + kind)
        if "create" in verbs:
            c["post"] = _op("post", gvk, "create%s%s%s" % (camel, scope, kind), write_params,
                            "create a " + kind)
        if "get" in verbs:
            i["get"] = _op("get", gvk, "read%s%s%s" % (camel, scope, kind), [],
                           "read the specified " + kind)
        if "update" in verbs:
            i["put"] = _op("put", gvk, "replace%s%s%s" % (camel, scope, kind), write_params,
                           "replace the specified " + kind)
        if "patch" in verbs:
            i["patch"] = _op("patch", gvk, "patch%s%s%s" % (camel, scope, kind),
                             write_params + [("force", "boolean")],
                             "partially update the specified " + kind)
        if "delete" in verbs:
            i["delete"] = _op("delete", gvk, "delete%s%s%s" % (camel, scope, kind),
                              [("dryRun", "string"), ("gracePeriodSeconds", "integer"),
                               ("propagationPolicy", "string")], "delete a " + kind)
        paths[coll] = c
        paths[item] = i
        if info["namespaced"] and "list" in verbs:
            paths[base + "/" + r] = {"parameters": [common[0]], "get": _op(
                "list", gvk, "list%s%sForAllNamespaces" % (camel, kind), list_params,
                "list or watch objects of kind " + kind)}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "unversioned"},
            "paths": paths, "components": {"schemas": {}}}


def openapi_docs():
    """{"api/v1": bytes, "apis/coordination.k8s.io/v1": bytes}, and the root document."""
    docs = {"api/v1": json.dumps(_gv_openapi("", "v1")).encode()}
    for g, versions in GROUPS.items():
        for v in versions:
            docs["apis/%s/%s" % (g, v)] = json.dumps(_gv_openapi(g, v)).encode()
    root = {"paths": {k: {"serverRelativeURL": "/openapi/v3/%s?hash=%s" % (
        k, hashlib.sha512(d).hexdigest().upper())} for k, d in sorted(docs.items())}}
    return root, docs


# ----------------------------------------------------------------------------------------------
# The server

class ApiServer(QuietThreadingHTTPServer):
    def __init__(self, addr, handler, args, fixture, ssl_ctx):
        super().__init__(addr, handler)
        self.args = args
        self.fixture = fixture
        self.verbose = args.verbose
        self.store = Store(fixture)
        self.openapi_root, self.openapi_docs = openapi_docs()
        self.ssl_ctx = ssl_ctx
        self.auth_lock = threading.Lock()
        self.requests_seen = 0
        self.token_auths = 0
        self.state_dir = args.state_dir
        with open(os.path.join(args.state_dir, "token")) as f:
            self.token = f.read().strip()
        self.forbid = []
        for item in args.forbid or []:
            for part in item.split(","):
                part = part.strip()
                if part:
                    verb, _, res = part.rpartition(":")
                    self.forbid.append((verb or "*", res))

    def get_request(self):
        # TLS wraps each accepted socket without handshaking here (the listening thread must
        # never block on a slow client); the handshake runs in the handler's own thread.
        sock, addr = self.socket.accept()
        return self.ssl_ctx.wrap_socket(sock, server_side=True,
                                        do_handshake_on_connect=False), addr

    def rotate_token(self):
        self.token = new_token()
        write_atomic(os.path.join(self.state_dir, "token"), self.token + "\n", 0o600)
        write_atomic(os.path.join(self.state_dir, "serviceaccount", "token"), self.token, 0o600)
        if self.verbose:
            sys.stderr.write("k8s_api: token rotated\n")


class Handler(EmulatorHandler):
    server_version = ""  # kube-apiserver sends no Server header

    def setup(self):
        super().setup()
        self.connection.settimeout(10)
        self.connection.do_handshake()
        self.connection.settimeout(self.timeout)

    # -- plumbing ------------------------------------------------------------------------------
    def version_string(self):
        return ""

    def send_response(self, code, message=None):
        # Skip BaseHTTPRequestHandler's Server header (kube-apiserver sends none).
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def reply_json(self, code, obj, extra=None, indent=False):
        headers = {"Audit-Id": str(uuid.uuid4()), "Cache-Control": "no-cache, private",
                   "X-Kubernetes-Pf-Flowschema-Uid": "d6e8c0a2-0000-4000-8000-000000000001",
                   "X-Kubernetes-Pf-Prioritylevel-Uid": "d6e8c0a2-0000-4000-8000-000000000002"}
        headers.update(extra or {})
        body = (json.dumps(obj, indent=2) + "\n") if indent else dumps(obj)
        self.send_body(code, body, "application/json", headers)

    def reply_text(self, code, text):
        self.send_body(code, text, "text/plain; charset=utf-8",
                       {"Audit-Id": str(uuid.uuid4()), "Cache-Control": "no-cache, private",
                        "X-Content-Type-Options": "nosniff"})

    def reply_error(self, e):
        self.reply_json(e.code, e.status(), e.headers)

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_HEAD(self):
        self.dispatch("GET")

    def dispatch(self, method):
        try:
            self.body = self.read_body()
            if self.body is None:
                raise ApiError(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728", {})
            parts = urlsplit(self.path)
            self.query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            path = parts.path
            self.user = self.authenticate(path)
            self.route(method, path)
        except ApiError as e:
            self.reply_error(e)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError):
            self.close_connection = True
        except Exception as e:  # an emulator bug: say so loudly, as a 500 Status
            import traceback
            traceback.print_exc()
            try:
                self.reply_error(ApiError(500, "InternalError",
                                          "Internal error occurred: emulator: %s" % e, {}))
            except Exception:
                self.close_connection = True

    # -- authentication (union of x509 and bearer token, like kube-apiserver) ------------------
    def authenticate(self, path):
        srv = self.server
        with srv.auth_lock:
            srv.requests_seen += 1
            if srv.requests_seen <= srv.args.fail_first_401:
                raise self.unauthorized()
        mode = srv.args.auth
        # x509: the TLS layer already verified the chain against our CA (CERT_OPTIONAL).
        if mode in ("cert", "both"):
            cert = self.connection.getpeercert()
            if cert:
                cn, groups = None, []
                for rdn in cert.get("subject", ()):
                    for k, v in rdn:
                        if k == "commonName":
                            cn = v
                        elif k == "organizationName":
                            groups.append(v)
                if cn:
                    return {"name": cn, "groups": groups + ["system:authenticated"], "via": "cert"}
        authz = self.headers.get("Authorization")
        if authz is not None:
            scheme, _, cred = authz.strip().partition(" ")
            cred = cred.strip()
            if mode in ("token", "both") and scheme.lower() == "bearer" and cred:
                with srv.auth_lock:
                    ok = hmac.compare_digest(cred.encode(), srv.token.encode())
                    if ok:
                        srv.token_auths += 1
                        if (srv.args.rotate_token_after
                                and srv.token_auths == srv.args.rotate_token_after):
                            srv.rotate_token()
                if ok:
                    return {"name": "system:serviceaccount:cloudgrant:cloudgrant",
                            "groups": ["system:serviceaccounts",
                                       "system:serviceaccounts:cloudgrant",
                                       "system:authenticated"], "via": "token"}
            raise self.unauthorized()
        if srv.args.anonymous:
            return {"name": "system:anonymous", "groups": ["system:unauthenticated"],
                    "via": "anonymous"}
        raise self.unauthorized()

    @staticmethod
    def unauthorized():
        return ApiError(401, "Unauthorized", "Unauthorized")

    # -- authorization (RBAC denials on request) ----------------------------------------------
    def authorize(self, verb, group, resource, ns, name):
        denied = False
        if self.user["via"] == "anonymous":
            denied = True
        for fverb, fres in self.server.forbid:
            if fres in (resource, _qualified(group, resource)) and fverb in ("*", verb):
                denied = True
        if not denied:
            return
        who = 'User "%s"' % self.user["name"]
        scope = ('in the namespace "%s"' % ns) if ns else "at the cluster scope"
        subject = _qualified(group, resource)
        if name:
            subject += ' "%s"' % name
        raise ApiError(403, "Forbidden",
                       '%s is forbidden: %s cannot %s resource "%s" in API group "%s" %s'
                       % (subject, who, verb, resource, group, scope),
                       _details(group, resource, name))

    def authorize_path(self, path):
        if self.user["via"] != "anonymous":
            return
        if path in ("/version", "/healthz", "/livez", "/readyz"):
            return  # system:public-info-viewer
        raise ApiError(403, "Forbidden", 'forbidden: User "system:anonymous" cannot get path "%s"'
                       % path, {})

    # -- routing -------------------------------------------------------------------------------
    def route(self, method, path):
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/")
        segs = [unquote(s) for s in path.split("/")[1:]] if path != "/" else []
        if not segs or segs[0] not in ("api", "apis"):
            self.authorize_path(path)
            return self.non_resource(method, path)
        discovery = len(segs) == 1 or (segs[0] == "api" and len(segs) == 2) or (
            segs[0] == "apis" and len(segs) <= 3)
        if discovery and method != "GET":
            raise err_method_not_allowed()
        if segs[0] == "api":
            if len(segs) == 1:
                self.authorize_path(path)
                return self.reply_json(200, self.api_versions())
            if segs[1] != "v1":
                raise NOT_FOUND_PATH
            group, version, rest = "", "v1", segs[2:]
        else:
            if len(segs) == 1:
                self.authorize_path(path)
                return self.reply_json(200, self.api_group_list())
            group = segs[1]
            if group not in GROUPS:
                raise NOT_FOUND_PATH
            if len(segs) == 2:
                self.authorize_path(path)
                return self.reply_json(200, self.api_group(group))
            version = segs[2]
            if version not in GROUPS[group]:
                raise NOT_FOUND_PATH
            rest = segs[3:]
        if not rest:
            if method != "GET":
                raise err_method_not_allowed()
            self.authorize_path(path)
            return self.reply_json(200, self.resource_list(group, version))
        # /namespaces/NS/RES[/NAME[/SUB]] or /RES[/NAME[/SUB]]
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            ns, rest = rest[1], rest[2:]
        resource = rest[0]
        info = RESOURCES.get((group, resource))
        if info is None or info["version"] != version:
            raise NOT_FOUND_PATH
        if ns is not None and not info["namespaced"]:
            raise NOT_FOUND_PATH
        name = rest[1] if len(rest) > 1 else None
        if len(rest) > 2:
            raise NOT_FOUND_PATH  # subresources (status, proxy, ...) are not modelled
        if name == "":
            raise NOT_FOUND_PATH
        self.resource_request(method, group, version, resource, info, ns, name)

    # -- non-resource endpoints ----------------------------------------------------------------
    def non_resource(self, method, path):
        if method != "GET":
            raise NOT_FOUND_PATH
        if path == "/version":
            # Real /version is pretty-printed (two-space indent).
            return self.reply_json(200, self.server.fixture["version"], indent=True)
        if path in ("/healthz", "/livez", "/readyz"):
            return self.reply_text(200, "ok")
        if path == "/openapi/v3":
            return self.reply_json(200, self.server.openapi_root)
        if path.startswith("/openapi/v3/"):
            doc = self.server.openapi_docs.get(path[len("/openapi/v3/"):])
            if doc is not None:
                immutable = self.query.get("hash") is not None
                return self.send_body(200, doc, "application/json", {
                    "Audit-Id": str(uuid.uuid4()),
                    "Cache-Control": "public, immutable" if immutable else "no-cache, private",
                    "Etag": '"%s"' % hashlib.sha512(doc).hexdigest().upper()})
        # /openapi/v2 (protobuf, full schemas) is not served: kubectl needs it only for explain
        # and client-side validation against servers without field validation.
        raise NOT_FOUND_PATH

    def api_versions(self):
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                "serverAddress": "172.20.0.1:443"}]}

    def api_group(self, group):
        versions = [{"groupVersion": "%s/%s" % (group, v), "version": v} for v in GROUPS[group]]
        return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": versions,
                "preferredVersion": versions[0]}

    def api_group_list(self):
        g = self.api_group
        return {"kind": "APIGroupList", "apiVersion": "v1",
                "groups": [{k: v for k, v in g(name).items() if k not in ("kind", "apiVersion")}
                           for name in GROUPS]}

    def resource_list(self, group, version):
        res = []
        for (g, r), info in sorted(RESOURCES.items()):
            if g != group or info["version"] != version:
                continue
            e = {"name": r, "singularName": info["singular"], "namespaced": info["namespaced"],
                 "kind": info["kind"], "verbs": info["verbs"]}
            if info["short"]:
                e["shortNames"] = info["short"]
            e["storageVersionHash"] = info["hash"]
            res.append(e)
        gv = "%s/%s" % (group, version) if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                "resources": res}

    # -- resources -----------------------------------------------------------------------------
    def resource_request(self, method, group, version, resource, info, ns, name):
        store = self.server.store
        api_version = "%s/%s" % (group, version) if group else version
        if method == "GET" and self.query.get("watch") in ("true", "1"):
            raise ApiError(405, "MethodNotAllowed",
                           "the server does not allow this method on the requested resource "
                           "(watch is not modelled by the emulator)", {})
        verb = {"GET": "get" if name else "list", "POST": "create", "PUT": "update",
                "PATCH": "patch", "DELETE": "delete" if name else "deletecollection"}[method]
        if method == "POST" and name:
            raise err_method_not_allowed()
        if method in ("PUT", "PATCH") and not name:
            raise err_method_not_allowed()
        self.authorize(verb, group, resource, ns, name)
        if verb not in info["verbs"]:
            raise err_method_not_allowed()
        with store.lock:
            if verb == "list":
                return self.do_list(group, version, resource, info, ns, api_version)
            if info["namespaced"] and ns is not None and not store.namespace_exists(ns) \
                    and verb in ("create",):
                raise err_not_found("", "namespaces", ns)
            if verb == "get":
                obj = store.get(group, resource, ns, name)
                if obj is None:
                    raise err_not_found(group, resource, name)
                tv = wants_table(self.headers.get("Accept"))
                if tv:
                    return self.reply_json(200, to_table(
                        resource, [obj], {"resourceVersion": obj["metadata"].get(
                            "resourceVersion", "")}, tv,
                        self.query.get("includeObject", "Metadata")))
                return self.reply_json(200, obj)
            if verb == "create":
                return self.do_create(group, resource, info, ns, api_version)
            if verb == "update":
                return self.do_update(group, resource, info, ns, name, api_version)
            if verb == "patch":
                return self.do_patch(group, resource, info, ns, name, api_version)
            if verb == "delete":
                return self.do_delete(group, resource, info, ns, name)
        raise err_method_not_allowed()

    def do_list(self, group, version, resource, info, ns, api_version):
        store = self.server.store
        lsel = self.query.get("labelSelector", "")
        fsel = self.query.get("fieldSelector", "")
        lreqs = parse_label_selector(lsel)
        freqs = parse_field_selector(fsel, resource, version, lsel)
        try:
            limit = int(self.query.get("limit") or 0)
        except ValueError:
            raise err_bad_request("limit: Invalid value: %s" % self.query.get("limit"))
        # resourceVersion=0 lists are served from the watch cache, which ignores limit
        # (kube-apiserver up to 1.31), so the whole list comes back in one page.
        if self.query.get("resourceVersion") == "0":
            limit = 0
        start = ""
        list_rv = store.rv
        cont = self.query.get("continue")
        if cont:
            if self.query.get("resourceVersion") not in (None, ""):
                raise err_bad_request("specifying resource version is not allowed when using "
                                      "continue")
            bad = err_bad_request("continue key is not valid: incorrect encoded start "
                                  "resourceVersion (version meta.k8s.io/v1)")
            try:
                raw = cont + "=" * (-len(cont) % 4)
                tok = json.loads(base64.urlsafe_b64decode(raw.encode()).decode())
            except (ValueError, binascii.Error, UnicodeDecodeError):
                raise err_bad_request("continue key is not valid: illegal base64 data at input "
                                      "byte 0")
            if (not isinstance(tok, dict) or tok.get("v") != "meta.k8s.io/v1"
                    or not isinstance(tok.get("start"), str)
                    or not isinstance(tok.get("rv"), int) or tok["rv"] <= 0):
                raise bad
            start, list_rv = tok["start"], tok["rv"]
        items = []
        for (g, r, ons, oname), obj in store.list(group, resource, ns):
            key = (ons + "/" + oname) if info["namespaced"] else oname
            if start and key < start:
                continue
            if not labels_match(lreqs, obj["metadata"].get("labels")):
                continue
            if freqs and not fields_match(freqs, resource, obj):
                continue
            items.append((key, obj))
        meta = {"resourceVersion": str(list_rv)}
        if limit > 0 and len(items) > limit:
            last_key = items[limit - 1][0]
            remaining = len(items) - limit
            items = items[:limit]
            token = {"v": "meta.k8s.io/v1", "rv": list_rv, "start": last_key + "\u0000"}
            meta["continue"] = base64.urlsafe_b64encode(
                json.dumps(token, separators=(",", ":")).encode()).decode().rstrip("=")
            if not lsel and not fsel:
                meta["remainingItemCount"] = remaining
        tv = wants_table(self.headers.get("Accept"))
        if tv:
            return self.reply_json(200, to_table(resource, [o for _, o in items], meta, tv,
                                                 self.query.get("includeObject", "Metadata")))
        out_items = []
        for _, obj in items:
            o = dict(obj)
            o.pop("kind", None)  # list items carry no kind/apiVersion on the wire
            o.pop("apiVersion", None)
            out_items.append(o)
        self.reply_json(200, {"kind": info["kind"] + "List", "apiVersion": api_version,
                              "metadata": meta, "items": out_items})

    # -- object validation and normalisation ---------------------------------------------------
    def parse_body_object(self, info, api_version):
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        if ctype not in ("application/json", "*/*", ""):
            raise ApiError(415, "UnsupportedMediaType",
                           'the body of the request was in an unknown format - accepted media '
                           'types include: application/json, application/yaml, '
                           'application/vnd.kubernetes.protobuf, application/cbor', {})
        try:
            obj = json.loads(self.body or b"null")
        except ValueError as e:
            raise err_bad_request("Object '%s' is invalid: %s" % (info["kind"], e))
        if not isinstance(obj, dict):
            raise err_bad_request("Object 'Kind' is missing in '%s'"
                                  % (self.body or b"").decode(errors="replace")[:200])
        kind = obj.get("kind")
        if kind not in (None, info["kind"]):
            raise err_bad_request("%s in version \"%s\" cannot be handled as a %s: no kind \"%s\" "
                                  "is registered for version \"%s\""
                                  % (info["kind"], api_version.split("/")[-1], info["kind"],
                                     kind, obj.get("apiVersion", "")))
        if obj.get("apiVersion") not in (None, api_version):
            raise err_bad_request("the API version in the data (%s) does not match the expected "
                                  "API version (%s)" % (obj.get("apiVersion"), api_version))
        return obj

    def prune_unknown(self, resource, obj):
        """Drop unknown fields; ?fieldValidation=Strict refuses them, Warn warns about them."""
        unknown = []
        allowed = TOP_FIELDS.get(resource, set())
        for k in list(obj):
            if k not in allowed:
                unknown.append(k)
                del obj[k]
        md = obj.get("metadata")
        if isinstance(md, dict):
            for k in list(md):
                if k not in META_FIELDS:
                    unknown.append("metadata." + k)
                    del md[k]
        if resource == "leases" and isinstance(obj.get("spec"), dict):
            for k in list(obj["spec"]):
                if k not in LEASE_SPEC_FIELDS:
                    unknown.append("spec." + k)
                    del obj["spec"][k]
        mode = (self.query.get("fieldValidation") or "").lower()
        if unknown and mode == "strict":
            raise err_bad_request("strict decoding error: " + ", ".join(
                'unknown field "%s"' % u for u in unknown))
        if unknown and mode == "warn":
            self.warnings = ['299 - "unknown field \\"%s\\""' % u for u in unknown]

    def normalize(self, group, resource, info, obj, old=None):
        """Type-specific defaulting and validation (pkg/apis/core/validation subset)."""
        md = obj.setdefault("metadata", {})
        name = md.get("name", "")
        kind = info["kind"]
        causes = []
        if name and not (DNS1123_LABEL if resource == "namespaces" else DNS1123_SUBDOMAIN).match(name):
            causes.append(("metadata.name", "FieldValueInvalid", 'Invalid value: "%s": %s' % (
                name, LABEL_MSG if resource == "namespaces" else SUBDOMAIN_MSG)))
        for f in ("labels", "annotations"):
            v = md.get(f)
            if v is not None and (not isinstance(v, dict) or
                                  not all(isinstance(x, str) for x in v.values())):
                raise err_bad_request("%s in version \"v1\" cannot be handled as a %s: json: "
                                      "cannot unmarshal into Go struct field ObjectMeta.metadata.%s"
                                      " of type string" % (kind, kind, f))
        if resource == "secrets":
            data = obj.get("data") or {}
            if not isinstance(data, dict):
                raise err_bad_request('Secret in version "v1" cannot be handled as a Secret: json: '
                                      'cannot unmarshal %s into Go struct field Secret.data of type'
                                      ' map[string][]uint8' % type(data).__name__)
            for k, v in data.items():
                if not isinstance(v, str):
                    raise err_bad_request('Secret in version "v1" cannot be handled as a Secret: '
                                          'json: cannot unmarshal into Go struct field '
                                          'Secret.data of type []uint8')
                try:
                    base64.b64decode(v.encode(), validate=True)
                    if len(v) % 4:
                        raise binascii.Error
                except (binascii.Error, ValueError):
                    raise err_bad_request('Secret in version "v1" cannot be handled as a Secret: '
                                          'illegal base64 data at input byte %d'
                                          % max(0, len(v) - len(v) % 4 if len(v) % 4 else 0))
            sd = obj.pop("stringData", None) or {}
            if not isinstance(sd, dict) or not all(isinstance(v, str) for v in sd.values()):
                raise err_bad_request('Secret in version "v1" cannot be handled as a Secret: json: '
                                      'cannot unmarshal into Go struct field Secret.stringData of '
                                      'type string')
            for k, v in sd.items():  # stringData is write-only and wins over data
                data[k] = base64.b64encode(v.encode()).decode()
            size = 0
            for k, v in data.items():
                if not SECRET_KEY.match(k):
                    causes.append(("data[%s]" % k, "FieldValueInvalid",
                                   'Invalid value: "%s": %s' % (k, SECRET_KEY_MSG)))
                size += len(base64.b64decode(v))
            if size > MAX_SECRET_SIZE:
                causes.append(("data", "FieldValueTooLong",
                               "Too long: must have at most %d bytes" % MAX_SECRET_SIZE))
            if data or "data" in obj:
                obj["data"] = data
            obj.setdefault("type", "Opaque")
            if obj["type"] == "kubernetes.io/tls":
                for k in ("tls.crt", "tls.key"):
                    if k not in data:
                        causes.append(("data[%s]" % k, "FieldValueRequired", "Required value"))
            if old is not None:
                if obj["type"] != old.get("type", "Opaque"):
                    causes.append(("type", "FieldValueInvalid", 'Invalid value: "%s": field is '
                                   'immutable' % obj["type"]))
                if old.get("immutable"):
                    if obj.get("data") != old.get("data"):
                        causes.append(("data", "FieldValueForbidden", "Forbidden: field is "
                                       "immutable when `immutable` is set"))
                    if not obj.get("immutable"):
                        causes.append(("immutable", "FieldValueForbidden", "Forbidden: field is "
                                       "immutable when `immutable` is set"))
        if resource == "leases":
            spec = obj.setdefault("spec", {})
            lds = spec.get("leaseDurationSeconds")
            if lds is not None and (not isinstance(lds, int) or lds <= 0):
                causes.append(("spec.leaseDurationSeconds", "FieldValueInvalid",
                               "Invalid value: %s: must be greater than 0" % json.dumps(lds)))
        if resource == "namespaces":
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
            md.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        if causes:
            raise err_invalid(group, kind, name, causes)
        obj["apiVersion"] = "%s/%s" % (group, info["version"]) if group else info["version"]
        obj["kind"] = kind
        return obj

    def field_manager(self):
        fm = self.query.get("fieldManager")
        if fm:
            return fm
        ua = self.headers.get("User-Agent") or "unknown"
        return ua.split("/")[0] or "unknown"

    def dry_run(self):
        dr = self.query.get("dryRun")
        if dr not in (None, "", "All"):
            raise err_bad_request('dryRun: Unsupported value: "%s": supported values: "All"' % dr)
        return dr == "All"

    def reply_obj(self, code, obj):
        extra = {}
        if getattr(self, "warnings", None):
            extra["Warning"] = ", ".join(self.warnings)
        self.reply_json(code, obj, extra)

    def do_create(self, group, resource, info, ns, api_version):
        store = self.server.store
        obj = self.parse_body_object(info, api_version)
        self.prune_unknown(resource, obj)
        md = obj.setdefault("metadata", {})
        if not isinstance(md, dict):
            raise err_bad_request("metadata must be an object")
        if info["namespaced"]:
            if md.get("namespace") not in (None, "", ns):
                raise err_bad_request("the namespace of the provided object does not match the "
                                      "namespace sent on the request")
            if ns is None:
                raise err_method_not_allowed()
            md["namespace"] = ns
        if not md.get("name"):
            gen = md.get("generateName")
            if gen:
                md["name"] = gen + "".join(pysecrets.choice("bcdfghjklmnpqrstvwxz2456789")
                                           for _ in range(5))
            else:
                raise err_invalid(group, info["kind"], "", [(
                    "metadata.name", "FieldValueRequired",
                    "Required value: name or generateName is required")])
        name = md["name"]
        self.normalize(group, resource, info, obj)
        if store.get(group, resource, ns, name) is not None:
            raise err_already_exists(group, resource, name)
        for k in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds",
                  "selfLink"):
            md.pop(k, None)
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = now_rfc3339()
        md["managedFields"] = [managed_fields_for(obj, self.field_manager(), "Update",
                                                  api_version)]
        if self.dry_run():
            md["resourceVersion"] = ""
            return self.reply_obj(201, obj)
        md["resourceVersion"] = store.next_rv()
        md = dict((k, md[k]) for k in sorted(md))  # stable field order, as the encoder emits
        obj["metadata"] = md
        store.objs[(group, resource, ns or "", name)] = obj
        self.reply_obj(201, obj)

    def _check_update(self, group, resource, ns, name, new, old):
        md = new.setdefault("metadata", {})
        if md.get("name") not in (None, name):
            raise err_bad_request("the name of the object (%s) does not match the name on the URL "
                                  "(%s)" % (md.get("name"), name))
        md["name"] = name
        if ns is not None:
            if md.get("namespace") not in (None, "", ns):
                raise err_bad_request("the namespace of the provided object does not match the "
                                      "namespace sent on the request")
            md["namespace"] = ns
        rv = md.get("resourceVersion")
        if rv not in (None, "") and rv != old["metadata"]["resourceVersion"]:
            raise err_conflict(group, resource, name, "the object has been modified; please apply "
                               "your changes to the latest version and try again")
        uid = md.get("uid")
        if uid not in (None, "") and uid != old["metadata"]["uid"]:
            raise err_conflict(group, resource, name, "Precondition failed: UID in precondition: "
                               "%s, UID in object meta: %s" % (old["metadata"]["uid"], uid))

    def _commit_update(self, group, resource, info, ns, name, new, old, api_version, operation):
        store = self.server.store
        self.normalize(group, resource, info, new, old=old)
        md = new["metadata"]
        md["uid"] = old["metadata"]["uid"]
        md["creationTimestamp"] = old["metadata"]["creationTimestamp"]
        md.pop("deletionTimestamp", None)
        changed = {k: v for k, v in new.items() if k != "metadata"} != \
            {k: v for k, v in old.items() if k != "metadata"} or \
            {k: v for k, v in md.items() if k not in ("resourceVersion", "managedFields")} != \
            {k: v for k, v in old["metadata"].items() if k not in ("resourceVersion",
                                                                   "managedFields")}
        if not changed:  # a no-op update keeps the resourceVersion (real server behaviour)
            return self.reply_obj(200, old)
        mf = [m for m in old["metadata"].get("managedFields", [])
              if m.get("manager") != self.field_manager()]
        mf.append(managed_fields_for(new, self.field_manager(), operation, api_version))
        md["managedFields"] = mf
        if self.dry_run():
            md["resourceVersion"] = old["metadata"]["resourceVersion"]
            return self.reply_obj(200, new)
        md["resourceVersion"] = store.next_rv()
        new["metadata"] = dict((k, md[k]) for k in sorted(md))
        store.objs[(group, resource, ns or "", name)] = new
        self.reply_obj(200, new)

    def do_update(self, group, resource, info, ns, name, api_version):
        store = self.server.store
        new = self.parse_body_object(info, api_version)
        self.prune_unknown(resource, new)
        old = store.get(group, resource, ns, name)
        if old is None:
            # Secrets and leases do not allow create-on-update.
            if (new.get("metadata") or {}).get("name") not in (None, name):
                raise err_bad_request("the name of the object (%s) does not match the name on "
                                      "the URL (%s)" % (new["metadata"]["name"], name))
            raise err_not_found(group, resource, name)
        self._check_update(group, resource, ns, name, new, old)
        self._commit_update(group, resource, info, ns, name, new, old, api_version, "Update")

    def do_patch(self, group, resource, info, ns, name, api_version):
        store = self.server.store
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype == "application/apply-patch+yaml":
            raise ApiError(415, "UnsupportedMediaType",
                           "server-side apply (application/apply-patch+yaml) is not modelled by "
                           "the emulator", {})
        if ctype not in ("application/merge-patch+json", "application/strategic-merge-patch+json",
                         "application/json-patch+json"):
            raise ApiError(415, "UnsupportedMediaType",
                           "the body of the request was in an unknown format - accepted media "
                           "types include: application/json-patch+json, "
                           "application/merge-patch+json, application/apply-patch+yaml, "
                           "application/strategic-merge-patch+json", {})
        old = store.get(group, resource, ns, name)
        if old is None:
            raise err_not_found(group, resource, name)
        try:
            patch = json.loads(self.body or b"null")
        except ValueError as e:
            raise err_bad_request("error decoding patch: %s" % e)
        base = copy.deepcopy(old)
        if ctype == "application/json-patch+json":
            new = json_patch(base, patch)
        else:
            if not isinstance(patch, dict):
                raise err_bad_request("error decoding patch: json: cannot unmarshal %s into Go "
                                      "value of type map[string]interface {}"
                                      % type(patch).__name__)
            new = merge_patch(base, patch, strategic=ctype.startswith("application/strategic"))
            # A resourceVersion in the patch is a precondition; otherwise patches are unconditional.
            prv = (patch.get("metadata") or {}).get("resourceVersion") \
                if isinstance(patch.get("metadata"), dict) else None
            if not prv:
                new.setdefault("metadata", {})["resourceVersion"] = old["metadata"]["resourceVersion"]
        if not isinstance(new, dict):
            raise err_bad_request("patched object is not an object")
        self.prune_unknown(resource, new)
        self._check_update(group, resource, ns, name, new, old)
        self._commit_update(group, resource, info, ns, name, new, old, api_version, "Update")

    def do_delete(self, group, resource, info, ns, name):
        store = self.server.store
        old = store.get(group, resource, ns, name)
        if old is None:
            raise err_not_found(group, resource, name)
        opts = {}
        if self.body:
            try:
                opts = json.loads(self.body)
            except ValueError as e:
                raise err_bad_request("error decoding DeleteOptions: %s" % e)
        pre = (opts or {}).get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
            raise err_conflict(group, resource, name, "Precondition failed: UID in precondition: "
                               "%s, UID in object meta: %s" % (pre["uid"], old["metadata"]["uid"]))
        if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise err_conflict(group, resource, name, "Precondition failed: ResourceVersion in "
                               "precondition: %s, ResourceVersion in object meta: %s"
                               % (pre["resourceVersion"], old["metadata"]["resourceVersion"]))
        dry = self.dry_run() or (opts or {}).get("dryRun") == ["All"]
        if not dry:
            del store.objs[(group, resource, ns or "", name)]
            store.next_rv()
        # Immediate deletion answers a Success Status whose details.kind is the resource.
        d = _details(group, resource, name)
        d["uid"] = old["metadata"]["uid"]
        self.reply_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Success", "details": d})


def make_ssl_context(state_dir, auth):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(os.path.join(state_dir, "server.crt"), os.path.join(state_dir, "server.key"))
    # kube-apiserver asks for a client certificate but does not require one. (One difference:
    # Python fails the handshake for a certificate from another CA, where Go would finish the
    # handshake and the authenticator would then answer 401.)
    ctx.load_verify_locations(os.path.join(state_dir, "ca.crt"))
    ctx.verify_mode = ssl.CERT_OPTIONAL if auth in ("cert", "both") else ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])  # no HTTP/2: Go clients fall back to HTTP/1.1
    return ctx


def main(argv=None):
    ap = argparse.ArgumentParser(description="Kubernetes API server emulator (HTTPS)")
    ap.add_argument("--cluster", required=True, choices=CLUSTERS)
    ap.add_argument("--fixture", help="cluster fixture JSON (default tests/fixtures/clusters/"
                    "<cluster>.json)")
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--auth", choices=("token", "cert", "both"), default="both")
    ap.add_argument("--ready-file")
    ap.add_argument("--fail-first-401", type=int, default=0, metavar="N")
    ap.add_argument("--rotate-token-after", type=int, default=0, metavar="N")
    ap.add_argument("--forbid", action="append", metavar="[VERB:]RESOURCE",
                    help="answer 403 for this resource (all verbs, or one verb), repeatable")
    ap.add_argument("--anonymous", action="store_true",
                    help="no credentials = system:anonymous (403 except /version, /healthz)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    fixture = load_fixture(args.fixture or args.cluster)
    state = os.path.abspath(args.state_dir)
    args.state_dir = state
    ensure_pki(state)
    tok_path = os.path.join(state, "token")
    if not os.path.exists(tok_path):
        write_atomic(tok_path, new_token() + "\n", 0o600)
    with open(tok_path) as f:
        token = f.read().strip()
    sa = os.path.join(state, "serviceaccount")
    os.makedirs(sa, exist_ok=True)
    write_atomic(os.path.join(sa, "token"), token, 0o600)
    with open(os.path.join(state, "ca.crt"), "rb") as f:
        write_atomic(os.path.join(sa, "ca.crt"), f.read())
    write_atomic(os.path.join(sa, "namespace"), "cloudgrant")

    ctx = make_ssl_context(state, args.auth)
    server = ApiServer((args.host, args.port), Handler, args, fixture, ctx)
    port = server.server_address[1]
    return serve(server, args.ready_file, port,
                 on_listening=lambda p: write_kubeconfig(state, p, args.cluster),
                 name="k8s_api[%s]" % args.cluster)


if __name__ == "__main__":
    sys.exit(main())
