#!/usr/bin/env python3
"""Cloud instance-metadata service emulators for cloudgrant tests (standard library only).

    python3 metadata.py --cloud {aws,gcp,azure} --fixture tests/fixtures/clusters/<x>.json
                        [--port 0] [--host 127.0.0.1] [--ready-file PATH]
                        [--imds-v1-only | --imds-optional] [--hop-limit-drop]
                        [--no-instance-tags] [--fail-first N [--fail-status CODE]] [--verbose]

The fixture's "metadata" block describes the instance (the first node of the cluster).
Plain HTTP, like the link-local services it stands for; point the agent at it with
AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:PORT, GCE_METADATA_HOST=127.0.0.1:PORT or
CLOUDGRANT_AZURE_IMDS_URL=http://127.0.0.1:PORT.

aws   (EC2 IMDS, HttpTokens=required by default)
      PUT  /latest/api/token   X-aws-ec2-metadata-token-ttl-seconds: 1..21600 -> token
      GET  /latest/meta-data/..., /latest/dynamic/instance-identity/document  with
           X-aws-ec2-metadata-token (missing or invalid -> 401)
      --imds-optional: v1 GETs without a token also work (HttpTokens=optional)
      --imds-v1-only:  PUT /latest/api/token -> 404, GETs need no token (EC2-compatible
                       clouds without IMDSv2)
      --hop-limit-drop: the PUT is never answered (the reply is dropped as with hop limit 1
                       seen from a pod), so the client must time out
      --no-instance-tags: instance metadata tags not enabled (/tags/ -> 404)
gcp   (GCE metadata server / GKE metadata server)
      GET /computeMetadata/v1/...  with Metadata-Flavor: Google (else 403)
azure (Azure IMDS)
      GET /metadata/instance[/...]?api-version=...  with Metadata: true (else 400)
      GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=...
--fail-first N: the first N requests get --fail-status (default 500), to test retries.
"""
import argparse
import base64
import datetime
import hashlib
import json
import os
import secrets
import string
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emu_common import EmulatorHandler, QuietThreadingHTTPServer, load_fixture, serve  # noqa: E402


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def fake_jwt(claims, kid="emulator"):
    """JWT-shaped token. The signature is random bytes: nobody can (or should) verify it."""
    header = {"alg": "RS256", "kid": kid, "typ": "JWT"}
    return "%s.%s.%s" % (b64url(json.dumps(header, separators=(",", ":"))),
                         b64url(json.dumps(claims, separators=(",", ":"))),
                         b64url(os.urandom(256)))


def rand_str(n, alphabet=string.ascii_uppercase + string.digits):
    return "".join(secrets.choice(alphabet) for _ in range(n))


class Dynamic:
    """A leaf whose value is computed per request (credentials, tokens)."""

    def __init__(self, fn):
        self.fn = fn


class MetadataServer(QuietThreadingHTTPServer):
    def __init__(self, addr, handler, args, meta):
        super().__init__(addr, handler)
        self.args = args
        self.meta = meta
        self.verbose = args.verbose
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.requests_seen = 0
        self.imds_tokens = {}  # token -> expiry (monotonic seconds)
        self.aws_tree = build_aws_tree(meta, args) if args.cloud == "aws" else None
        self.gcp_tree = build_gcp_tree(meta) if args.cloud == "gcp" else None

    def shutdown(self):
        self.stopping.set()
        super().shutdown()


# ==============================================================================================
# AWS EC2 IMDS

IMDS_MAX_TTL = 21600


def imds_html(code, reason):
    # Error bodies of the real IMDS are this XHTML page.
    return ('<?xml version="1.0" encoding="iso-8859-1"?>\n'
            '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"\n'
            '\t"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
            '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n'
            ' <head>\n  <title>%d - %s</title>\n </head>\n'
            ' <body>\n  <h1>%d - %s</h1>\n </body>\n</html>\n' % (code, reason, code, reason))


def aws_json(obj):
    # IMDS JSON documents are pretty-printed with " : " separators.
    return json.dumps(obj, indent=2, separators=(",", " : "))


def build_aws_tree(meta, args):
    inst = meta["instance"]
    account = inst["accountId"]
    role = meta.get("iamRole")

    def creds():
        now = utcnow()
        return aws_json({
            "Code": "Success",
            "LastUpdated": iso(now),
            "Type": "AWS-HMAC",
            "AccessKeyId": "ASIAEMUL" + rand_str(12),
            "SecretAccessKey": "emulator/FAKE/" + rand_str(26, string.ascii_letters + string.digits),
            "Token": "IQoJb3JpZ2luX2VjEMULATED/FAKE/" + b64url(os.urandom(96)),
            "Expiration": iso(now + datetime.timedelta(hours=6)),
        })

    identity_doc = aws_json({
        "accountId": account,
        "architecture": inst.get("architecture", "x86_64"),
        "availabilityZone": inst["availabilityZone"],
        "billingProducts": None,
        "devpayProductCodes": None,
        "marketplaceProductCodes": None,
        "imageId": inst["imageId"],
        "instanceId": inst["instanceId"],
        "instanceType": inst["instanceType"],
        "kernelId": None,
        "pendingTime": inst.get("pendingTime", "2024-01-01T00:00:00Z"),
        "privateIp": inst["privateIp"],
        "ramdiskId": None,
        "region": inst["region"],
        "version": "2017-09-30",
    })
    md = {
        "ami-id": inst["imageId"],
        "ami-launch-index": inst.get("amiLaunchIndex", "0"),
        "ami-manifest-path": "(unknown)",
        "hostname": inst["localHostname"],
        "instance-action": "none",
        "instance-id": inst["instanceId"],
        "instance-life-cycle": "on-demand",
        "instance-type": inst["instanceType"],
        "local-hostname": inst["localHostname"],
        "local-ipv4": inst["privateIp"],
        "mac": inst.get("mac", "0a:00:00:00:00:01"),
        "placement": {
            "availability-zone": inst["availabilityZone"],
            "availability-zone-id": inst.get("availabilityZoneId", ""),
            "region": inst["region"],
        },
        "reservation-id": inst.get("reservationId", "r-0000000000000000"),
        "security-groups": "\n".join(inst.get("securityGroups", [])),
        "services": {"domain": "amazonaws.com", "partition": "aws"},
    }
    if role:
        md["iam"] = {
            "info": aws_json({
                "Code": "Success",
                "LastUpdated": iso(utcnow()),
                "InstanceProfileArn": "arn:aws:iam::%s:instance-profile/%s" % (account, role),
                "InstanceProfileId": meta.get("instanceProfileId", "AIPAEMULATOR000000000"),
            }),
            "security-credentials": {role: Dynamic(creds)},
        }
    if not args.no_instance_tags:
        # Keys containing "/" cannot exist when metadata tags are enabled (AWS refuses them).
        md["tags"] = {"instance": {k: v for k, v in sorted(meta.get("tags", {}).items())
                                   if "/" not in k}}
    return {
        "meta-data": md,
        "dynamic": {"instance-identity": {
            "document": identity_doc,
            "signature": b64url(os.urandom(128)),
            "pkcs7": base64.b64encode(os.urandom(512)).decode(),
            "rsa2048": base64.b64encode(os.urandom(512)).decode(),
        }},
    }


def tree_lookup(tree, segs):
    node = tree
    for s in segs:
        if not isinstance(node, dict) or s not in node:
            return None
        node = node[s]
    return node


# ==============================================================================================
# GCE metadata server

GCE_FORBIDDEN = """<!DOCTYPE html>
<html lang=en>
  <meta charset=utf-8>
  <title>Error 403 (Forbidden)!!1</title>
  <p><b>403.</b> <ins>That's an error.</ins>
  <p>Your client does not have permission to get URL <code>{path}</code> from this server. {why} <ins>That's all we know.</ins>
"""

# Children of these directories are user data: recursive JSON keeps their keys as they are.
GCE_VERBATIM_KEYS = {"attributes", "service-accounts"}


def build_gcp_tree(meta):
    num = meta["numericProjectId"]
    sas = {}
    for alias, sa in meta.get("serviceAccounts", {}).items():
        email = sa["email"]

        def token(_q, email=email):
            return {"access_token": "ya29.c.emulated-" + b64url(os.urandom(48)),
                    "expires_in": 3599, "token_type": "Bearer"}

        def identity(q, email=email):
            aud = q.get("audience")
            if not aud:
                return None  # 400: non-empty audience parameter required
            now = int(time.time())
            claims = {"aud": aud, "azp": "1" + str(num).zfill(20), "exp": now + 3600,
                      "iat": now, "iss": "https://accounts.google.com",
                      "sub": "1" + str(num).zfill(20)}
            if q.get("format") == "full":
                claims.update({"email": email, "email_verified": True})
            return fake_jwt(claims)

        # List leaves are one value a line in text and arrays in JSON, as on GCE.
        entry = {"aliases": list(sa.get("aliases", [alias])), "email": email,
                 "identity": Dynamic(identity), "scopes": list(sa.get("scopes", [])),
                 "token": Dynamic(token)}
        sas[alias] = entry
        sas[email] = entry
    return {
        "project": {
            "attributes": {},
            "numeric-project-id": num,
            "project-id": meta["projectId"],
        },
        "instance": {
            "attributes": dict(meta.get("attributes", {})),
            "hostname": meta["hostname"],
            "id": meta["instanceId"],
            "machine-type": "projects/%d/machineTypes/%s" % (num, meta["machineType"]),
            "name": meta["instanceName"],
            "network-interfaces": {"0": {"ip": meta.get("internalIp", "10.0.0.2"),
                                         "network": "projects/%d/networks/default" % num}},
            "service-accounts": sas,
            "zone": "projects/%d/zones/%s" % (num, meta["zone"]),
        },
    }


def gce_camel(key):
    head, *rest = key.split("-")
    return head + "".join(r[:1].upper() + r[1:] for r in rest)


def gce_json(node, verbatim=False):
    """Directory -> JSON as ?recursive=true renders it (camelCase keys, numeric-keyed dirs as
    arrays, dynamic leaves such as token/identity left out)."""
    if isinstance(node, dict):
        if node and all(k.isdigit() for k in node):
            return [gce_json(node[k]) for k in sorted(node, key=int)]
        out = {}
        for k, v in node.items():
            if isinstance(v, Dynamic):
                continue
            key = k if verbatim else gce_camel(k)
            out[key] = gce_json(v, verbatim=(k in GCE_VERBATIM_KEYS))
        return out
    return node


# ==============================================================================================
# Azure IMDS

AZ_INSTANCE_VERSIONS = [
    "2017-03-01", "2017-04-02", "2017-08-01", "2017-10-01", "2017-12-01", "2018-02-01",
    "2018-04-02", "2018-10-01", "2019-02-01", "2019-03-11", "2019-04-30", "2019-06-01",
    "2019-06-04", "2019-08-01", "2019-08-15", "2019-11-01", "2020-06-01", "2020-07-15",
    "2020-09-01", "2020-10-01", "2020-12-01", "2021-01-01", "2021-02-01", "2021-03-01",
    "2021-05-01", "2021-10-01", "2021-11-01", "2021-11-15", "2021-12-13", "2023-07-01"]
AZ_NEWEST = ["2023-07-01", "2021-12-13", "2021-11-15"]
AZ_IDENTITY_VERSIONS = ["2018-02-01", "2019-08-01"]


# ==============================================================================================
# Request handling

class Handler(EmulatorHandler):
    server_version = "emulator"

    def do_GET(self):
        self.dispatch("GET")

    def do_HEAD(self):
        self.dispatch("GET")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_POST(self):
        self.dispatch("POST")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def dispatch(self, method):
        srv = self.server
        try:
            self.read_body(limit=1 << 20)
            parts = urlsplit(self.path)
            self.q = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            with srv.lock:
                srv.requests_seen += 1
                failing = srv.requests_seen <= srv.args.fail_first
            if failing:
                return self.send_body(srv.args.fail_status, "emulated failure\n", "text/plain")
            cloud = srv.args.cloud
            if cloud == "aws":
                return self.aws(method, parts.path)
            if cloud == "gcp":
                return self.gcp(method, parts.path)
            return self.azure(method, parts.path)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True

    # -- AWS -----------------------------------------------------------------------------------
    def aws_reply(self, code, body, extra=None):
        headers = {"Server": "EC2ws", "Accept-Ranges": "none",
                   "Last-Modified": self.date_time_string(int(time.time()) - 3600)}
        headers.update(extra or {})
        if code >= 400:
            reason = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
                      404: "Not Found", 405: "Method Not Allowed"}.get(code, "Error")
            return self.send_body(code, imds_html(code, reason), "text/html", headers)
        return self.send_body(code, body, "text/plain", headers)

    def send_response(self, code, message=None):
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def aws(self, method, path):
        srv, args = self.server, self.server.args
        if path == "/latest/api/token":
            if method != "PUT":
                return self.aws_reply(405, "", {"Allow": "OPTIONS, PUT"})
            if args.imds_v1_only:
                return self.aws_reply(404, "")
            if args.hop_limit_drop:
                # The response would be dropped on the way back (IP TTL exhausted): never
                # answer; hold the connection until the client gives up or we shut down.
                srv.stopping.wait(300)
                self.close_connection = True
                return
            if self.headers.get("X-Forwarded-For") is not None:
                return self.aws_reply(403, "")
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            try:
                ttl = int(ttl)
            except (TypeError, ValueError):
                return self.aws_reply(400, "")
            if not 1 <= ttl <= IMDS_MAX_TTL:
                return self.aws_reply(400, "")
            token = "AQAEA" + b64url(os.urandom(38))[:51]
            with srv.lock:
                srv.imds_tokens[token] = time.monotonic() + ttl
            return self.aws_reply(200, token, {"X-aws-ec2-metadata-token-ttl-seconds": str(ttl)})
        if method != "GET":
            return self.aws_reply(405, "", {"Allow": "OPTIONS, GET"})
        extra = {}
        if not args.imds_v1_only:
            token = self.headers.get("X-aws-ec2-metadata-token")
            if token is not None:
                with srv.lock:
                    exp = srv.imds_tokens.get(token)
                if exp is None or exp <= time.monotonic():
                    return self.aws_reply(401, "")
                extra["X-Aws-Ec2-Metadata-Token-Ttl-Seconds"] = str(int(exp - time.monotonic()))
            elif not args.imds_optional:
                return self.aws_reply(401, "")
        if path in ("/", ""):
            return self.aws_reply(200, "1.0\n2007-01-19\n2020-10-27\n2021-03-23\nlatest", extra)
        segs = [s for s in path.split("/") if s]
        if segs[0] != "latest":
            return self.aws_reply(404, "")
        node = tree_lookup(srv.aws_tree, segs[1:])
        if node is None:
            return self.aws_reply(404, "")
        if isinstance(node, dict):
            # Listing: one entry a line, sub-directories with a trailing "/", no final newline.
            names = [k + "/" if isinstance(v, dict) else k for k, v in sorted(node.items())]
            return self.aws_reply(200, "\n".join(names), extra)
        if isinstance(node, Dynamic):
            node = node.fn()
        return self.aws_reply(200, str(node), extra)

    # -- GCP -----------------------------------------------------------------------------------
    def gcp_reply(self, code, body, ctype="application/text", extra=None):
        headers = {"Metadata-Flavor": "Google", "Server": "Metadata Server for VM",
                   "X-Xss-Protection": "0", "X-Frame-Options": "SAMEORIGIN"}
        if code == 200:
            headers["ETag"] = hashlib.sha1(body.encode() if isinstance(body, str)
                                           else body).hexdigest()[:16]
        headers.update(extra or {})
        return self.send_body(code, body, ctype, headers)

    def gcp(self, method, path):
        srv = self.server
        if self.headers.get("X-Forwarded-For") is not None:
            return self.gcp_reply(403, GCE_FORBIDDEN.format(
                path=path, why="Request had an X-Forwarded-For header."), "text/html; charset=UTF-8")
        if self.headers.get("Metadata-Flavor") != "Google":
            return self.gcp_reply(403, GCE_FORBIDDEN.format(
                path=path, why="Missing Metadata-Flavor:Google header."), "text/html; charset=UTF-8")
        if method != "GET":
            return self.gcp_reply(405, "Method not allowed\n", "text/plain")
        if path in ("/", ""):
            return self.gcp_reply(200, "computeMetadata/\n")
        if path == "/computeMetadata/":
            return self.gcp_reply(200, "v1/\n")
        prefix = "/computeMetadata/v1"
        if not (path == prefix or path.startswith(prefix + "/")):
            return self.gcp_reply(404, "Not Found\n", "text/html; charset=UTF-8")
        rel = path[len(prefix):]
        segs = [s for s in rel.split("/") if s]
        node = tree_lookup(srv.gcp_tree, segs)
        if node is None:
            return self.gcp_reply(404, "Not Found\n", "text/html; charset=UTF-8")
        alt = self.q.get("alt")
        recursive = self.q.get("recursive", "").lower() == "true"
        if isinstance(node, dict):
            if not rel.endswith("/"):
                # Directories live at a trailing-slash URL; without it the server redirects.
                loc = path + "/" + (("?" + urlsplit(self.path).query) if urlsplit(self.path).query else "")
                return self.gcp_reply(301, loc + "\n", "application/text", {"Location": loc})
            if recursive or alt == "json":
                if recursive:
                    doc = gce_json(node, verbatim=bool(segs) and segs[-1] in GCE_VERBATIM_KEYS)
                else:
                    doc = sorted(k + "/" if isinstance(v, dict) else k for k, v in node.items())
                return self.gcp_reply(200, json.dumps(doc), "application/json")
            names = sorted(k + "/" if isinstance(v, dict) else k for k, v in node.items())
            return self.gcp_reply(200, "".join(n + "\n" for n in names))
        if isinstance(node, Dynamic):
            val = node.fn(self.q)
            if val is None:
                return self.gcp_reply(400, "non-empty audience parameter required\n",
                                      "text/plain")
            if isinstance(val, dict):
                return self.gcp_reply(200, json.dumps(val), "application/json")
            return self.gcp_reply(200, val)
        if alt == "json":
            return self.gcp_reply(200, json.dumps(gce_json(node)), "application/json")
        if isinstance(node, list):
            return self.gcp_reply(200, "".join("%s\n" % v for v in node))
        return self.gcp_reply(200, str(node))

    # -- Azure ---------------------------------------------------------------------------------
    def az_reply(self, code, obj, text=False):
        if text:
            return self.send_body(code, obj, "text/plain; charset=utf-8", {"Server": "IMDS/150.870.65.1325"})
        return self.send_body(code, json.dumps(obj), "application/json; charset=utf-8",
                              {"Server": "IMDS/150.870.65.1325"})

    def azure(self, method, path):
        srv = self.server
        meta = srv.meta
        if self.headers.get("X-Forwarded-For") is not None:
            return self.az_reply(400, {"error": "Bad request. Request was forwarded (contains "
                                                "X-Forwarded-For header)"})
        if (self.headers.get("Metadata") or "").lower() != "true":
            return self.az_reply(400, {"error": "Bad request. Required metadata header not "
                                                "specified"})
        if method != "GET":
            return self.az_reply(405, {"error": "Method not allowed"})
        path = path.rstrip("/")
        if path == "/metadata/versions":
            return self.az_reply(200, {"apiVersions": AZ_INSTANCE_VERSIONS})
        if path == "/metadata/identity/oauth2/token":
            return self.az_token(meta)
        if path == "/metadata/instance" or path.startswith("/metadata/instance/"):
            ver = self.q.get("api-version")
            if not ver:
                return self.az_reply(400, {
                    "error": "Bad request. api-version was not specified in the request. For "
                             "more information refer to aka.ms/azureimds",
                    "newest-versions": AZ_NEWEST})
            if ver not in AZ_INSTANCE_VERSIONS:
                return self.az_reply(400, {
                    "error": "Bad request. api-version is invalid or was not specified in the "
                             "request. For more information refer to aka.ms/azureimds",
                    "newest-versions": AZ_NEWEST})
            node = meta["instance"]
            for seg in [s for s in path[len("/metadata/instance"):].split("/") if s]:
                if isinstance(node, dict) and seg in node:
                    node = node[seg]
                elif isinstance(node, list) and seg.isdigit() and int(seg) < len(node):
                    node = node[int(seg)]
                else:
                    return self.az_reply(404, {"error": "Not found"})
            fmt = self.q.get("format")
            if isinstance(node, (dict, list)):
                if fmt not in (None, "json"):
                    return self.az_reply(400, {"error": "Bad request. Query parameter format "
                                                        "must be json for non-leaf nodes"})
                return self.az_reply(200, node)
            # Leaf values are served as text (format=text).
            if fmt == "json":
                return self.az_reply(400, {"error": "Bad request. Leaf nodes only support "
                                                    "text format (format=text)"})
            return self.az_reply(200, str(node), text=True)
        return self.az_reply(404, {"error": "Not found"})

    def az_token(self, meta):
        q = self.q
        ident = meta.get("identity") or {}
        if not q.get("api-version"):
            return self.az_reply(400, {"error": "invalid_request",
                                       "error_description": "Required query variable "
                                                            "'api-version' is missing"})
        if q["api-version"] not in AZ_IDENTITY_VERSIONS:
            return self.az_reply(400, {"error": "invalid_request",
                                       "error_description": "Invalid api-version"})
        resource = q.get("resource")
        if not resource:
            return self.az_reply(400, {"error": "invalid_request",
                                       "error_description": "Required query variable 'resource'"
                                                            " is missing"})
        for key, want in (("client_id", "clientId"), ("object_id", "objectId"),
                          ("msi_res_id", "resourceId"), ("mi_res_id", "resourceId")):
            if q.get(key) and q[key].lower() != str(ident.get(want, "")).lower():
                return self.az_reply(400, {"error": "invalid_request",
                                           "error_description": "Identity not found"})
        if not ident:
            return self.az_reply(400, {"error": "invalid_request",
                                       "error_description": "Identity not found"})
        now = int(time.time())
        tenant = ident.get("tenantId", "00000000-0000-0000-0000-000000000000")
        token = fake_jwt({"aud": resource, "iss": "https://sts.windows.net/%s/" % tenant,
                          "iat": now, "nbf": now, "exp": now + 86399,
                          "appid": ident.get("clientId"), "oid": ident.get("objectId"),
                          "sub": ident.get("objectId"), "tid": tenant,
                          "xms_mirid": ident.get("resourceId")}, kid="emulator")
        # Numbers are strings in this API.
        return self.az_reply(200, {"access_token": token, "client_id": ident.get("clientId"),
                                   "expires_in": "86399", "expires_on": str(now + 86399),
                                   "ext_expires_in": "86399", "not_before": str(now),
                                   "resource": resource, "token_type": "Bearer"})


def main(argv=None):
    ap = argparse.ArgumentParser(description="cloud instance metadata service emulator")
    ap.add_argument("--cloud", required=True, choices=("aws", "gcp", "azure"))
    ap.add_argument("--fixture", required=True, help="cluster fixture (name or JSON path)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ready-file")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--imds-v1-only", action="store_true")
    mode.add_argument("--imds-optional", action="store_true")
    ap.add_argument("--hop-limit-drop", action="store_true")
    ap.add_argument("--no-instance-tags", action="store_true")
    ap.add_argument("--fail-first", type=int, default=0, metavar="N")
    ap.add_argument("--fail-status", type=int, default=500, metavar="CODE")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    fixture = load_fixture(args.fixture)
    meta = fixture.get("metadata")
    if not meta or meta.get("cloud") != args.cloud:
        sys.stderr.write("metadata: fixture %s has no %s metadata block (it has: %s)\n"
                         % (args.fixture, args.cloud, (meta or {}).get("cloud")))
        return 2
    server = MetadataServer((args.host, args.port), Handler, args, meta)
    return serve(server, args.ready_file, name="metadata[%s]" % args.cloud)


if __name__ == "__main__":
    sys.exit(main())
