#!/usr/bin/python3
"""Emulator of the three network sources of the AWS credential chain, on one plain-HTTP port
(standard library only; runs under Debian's /usr/bin/python3):

- STS AssumeRoleWithWebIdentity: POST / with a form body (any path ending in "/" works, so
  AWS_ENDPOINT_URL_STS=http://127.0.0.1:PORT). The request must be unsigned (no Authorization,
  X-Amz-Date or X-Amz-Security-Token), carry Action, Version=2011-06-15, RoleArn,
  RoleSessionName and WebIdentityToken, and the token must equal the token file's current
  content. Answers in the real XML shape (AssumeRoleWithWebIdentityResponse / ErrorResponse).
- The container credentials endpoint (EKS Pod Identity / ECS): GET --container-path; the
  Authorization header must equal the container token file's current content.
- IMDSv2: PUT /latest/api/token (X-aws-ec2-metadata-token-ttl-seconds 1..21600), then GETs with
  X-aws-ec2-metadata-token: /latest/meta-data/iam/security-credentials/ and .../<role>.

    aws_cred_endpoints.py [--port 0] [--host 127.0.0.1] [--ready-file PATH] [--verbose]
        [--token-file PATH] [--role-arn ARN] [--invalid-token-once] [--rotate-token]
        [--sts-error CODE] [--sts-delay-ms MS] [--expire-in SECONDS]
        [--container-path PATH] [--container-token-file PATH] [--rotate-container-token]
        [--imds-role NAME | --no-imds-role] [--drop-put] [--imds-put-status CODE]

--invalid-token-once: the first STS call gets InvalidIdentityToken and the token file is
  rewritten with a new token (as kubelet rotates it): a client that retries without reading the
  file again sends a stale token and is refused.
--rotate-token / --rotate-container-token: write a new token after each successful call, so
  every refresh must read the file again.
--drop-put: never answer the IMDS token PUT (the hop-limit-1 symptom seen from pods).

Credentials issued are numbered per source: AccessKeyId ASIASTS00000001, ASIACONT00000001,
ASIAIMDS00000001; SecretAccessKey "<kind>-secret-<n>"; token "<kind>-token-<n>".
GET /_stats returns the counters as JSON: sts, sts_ok, container, container_ok, imds_put,
imds_get, imds_ok, and `rejected` (reasons for refused requests: a test should expect none).
"""
import argparse
import datetime
import json
import os
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emu_common import EmulatorHandler, QuietThreadingHTTPServer, serve, write_atomic  # noqa: E402

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
IMDS_TOKEN = "AQAEAFakeImdsSessionToken=="


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.stats = {"sts": 0, "sts_ok": 0, "container": 0, "container_ok": 0,
                      "imds_put": 0, "imds_get": 0, "imds_ok": 0, "rejected": []}
        self.serial = {"sts": 0, "cont": 0, "imds": 0}
        self.invalid_sent = False
        self.rotations = 0

    def issue(self, kind):
        with self.lock:
            self.serial[kind] += 1
            n = self.serial[kind]
        exp = datetime.datetime.utcnow().replace(microsecond=0) + datetime.timedelta(
            seconds=self.args.expire_in)
        return {"AccessKeyId": "ASIA%s%08d" % (kind.upper(), n),
                "SecretAccessKey": "%s-secret-%d" % (kind, n),
                "Token": "%s-token-%d" % (kind, n),
                "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ")}

    def reject(self, why):
        with self.lock:
            self.stats["rejected"].append(why)

    def bump(self, key):
        with self.lock:
            self.stats[key] += 1

    def rotate(self, path, prefix):
        with self.lock:
            self.rotations += 1
            n = self.rotations
        write_atomic(path, "%s-rotated-%d-%d" % (prefix, n, int(time.time())))


def read_token(path):
    with open(path) as f:
        return f.read().strip()


def sts_error(code, message, status=400):
    body = ("<ErrorResponse xmlns=\"%s\">\n  <Error>\n    <Type>Sender</Type>\n"
            "    <Code>%s</Code>\n    <Message>%s</Message>\n  </Error>\n"
            "  <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>\n</ErrorResponse>\n"
            % (STS_NS, code, message))
    return status, body


def sts_success(creds, role_arn, session):
    body = """<AssumeRoleWithWebIdentityResponse xmlns="%s">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:cloudgrant:cloudgrant</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>%s/%s</Arn>
      <AssumedRoleId>AROACLPDCEXAMPLE:%s</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>%s</SessionToken>
      <SecretAccessKey>%s</SecretAccessKey>
      <Expiration>%s</Expiration>
      <AccessKeyId>%s</AccessKeyId>
    </Credentials>
    <SourceIdentity></SourceIdentity>
    <Provider>arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-3.amazonaws.com/id/EXAMPLE</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>
""" % (STS_NS, role_arn.replace(":role/", ":assumed-role/").replace(":iam:", ":sts:"), session,
       session, creds["Token"], creds["SecretAccessKey"], creds["Expiration"],
       creds["AccessKeyId"])
    return 200, body


class Handler(EmulatorHandler):
    server_version = "aws-cred-endpoints"

    @property
    def st(self):
        return self.server.state

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/_stats":
            with self.st.lock:
                body = json.dumps(self.st.stats)
            return self.send_body(200, body, "application/json")
        if path == self.st.args.container_path:
            return self.container()
        if path.startswith("/latest/"):
            return self.imds_get(path)
        self.send_body(404, "not found\n", "text/plain")

    def do_PUT(self):
        if urllib.parse.urlsplit(self.path).path == "/latest/api/token":
            return self.imds_put()
        self.send_body(404, "not found\n", "text/plain")

    def do_POST(self):
        if urllib.parse.urlsplit(self.path).path.endswith("/"):
            return self.sts()
        self.send_body(404, "not found\n", "text/plain")

    # ---- STS ----------------------------------------------------------------------------

    def sts(self):
        st = self.st
        a = st.args
        st.bump("sts")
        body = self.read_body() or b""
        if a.sts_delay_ms:
            time.sleep(a.sts_delay_ms / 1000.0)
        problems = []
        for h in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if self.headers.get(h) is not None:
                problems.append("request is signed (%s present); the call must be unsigned" % h)
        ctype = self.headers.get("Content-Type") or ""
        if not ctype.startswith("application/x-www-form-urlencoded"):
            problems.append("Content-Type %r is not a form" % ctype)
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        f = {k: v[0] for k, v in form.items()}
        if f.get("Action") != "AssumeRoleWithWebIdentity":
            problems.append("Action is %r" % f.get("Action"))
        if f.get("Version") != "2011-06-15":
            problems.append("Version is %r" % f.get("Version"))
        for k in ("RoleArn", "RoleSessionName", "WebIdentityToken"):
            if not f.get(k):
                problems.append("%s missing" % k)
        sess = f.get("RoleSessionName", "")
        if sess and not (2 <= len(sess) <= 64 and all(c.isalnum() or c in "+=,.@-_" for c in sess)):
            problems.append("RoleSessionName %r invalid" % sess)
        if a.role_arn and f.get("RoleArn") != a.role_arn:
            problems.append("RoleArn %r, expected %r" % (f.get("RoleArn"), a.role_arn))
        if problems:
            for p in problems:
                st.reject("sts: " + p)
            code, out = sts_error("EmulatorCheckFailed", "; ".join(problems))
            return self.send_body(code, out, "text/xml")
        if a.token_file:
            current = read_token(a.token_file)
            if f["WebIdentityToken"] != current:
                st.reject("sts: stale WebIdentityToken (not the token file's current content)")
                code, out = sts_error("InvalidIdentityToken",
                                      "Token is expired or does not match the current token")
                return self.send_body(code, out, "text/xml")
            with st.lock:
                send_invalid = a.invalid_token_once and not st.invalid_sent
                st.invalid_sent = st.invalid_sent or send_invalid
            if send_invalid:
                st.rotate(a.token_file, "wi")
                code, out = sts_error("InvalidIdentityToken",
                                      "Couldn't retrieve verification key from your identity "
                                      "provider, please reference AssumeRoleWithWebIdentity "
                                      "documentation for requirements")
                return self.send_body(code, out, "text/xml")
        if a.sts_error:
            status = 403 if a.sts_error in ("AccessDenied", "IDPRejectedClaim") else 400
            code, out = sts_error(a.sts_error, "Not authorized to perform "
                                  "sts:AssumeRoleWithWebIdentity", status)
            return self.send_body(code, out, "text/xml")
        creds = st.issue("sts")
        st.bump("sts_ok")
        if a.rotate_token and a.token_file:
            st.rotate(a.token_file, "wi")
        code, out = sts_success(creds, f["RoleArn"], sess)
        self.send_body(code, out, "text/xml")

    # ---- container ----------------------------------------------------------------------

    def container(self):
        st = self.st
        a = st.args
        st.bump("container")
        if a.container_token_file:
            want = read_token(a.container_token_file)
            got = self.headers.get("Authorization")
            if got != want:
                st.reject("container: Authorization %s the token file's content"
                          % ("missing, not" if got is None else "differs from"))
                return self.send_body(401, json.dumps({
                    "code": "InvalidToken", "message": "Authorization token is invalid"}),
                    "application/json")
        creds = st.issue("cont")
        creds["AccountId"] = "123456789012"
        st.bump("container_ok")
        if a.rotate_container_token and a.container_token_file:
            st.rotate(a.container_token_file, "pod")
        self.send_body(200, json.dumps(creds), "application/json")

    # ---- IMDSv2 -------------------------------------------------------------------------

    def imds_put(self):
        st = self.st
        a = st.args
        st.bump("imds_put")
        self.read_body()
        if a.drop_put:
            time.sleep(3600)  # the reply never arrives; a daemon thread, killed at exit
            return
        if a.imds_put_status:
            return self.send_body(a.imds_put_status, "", "text/plain")
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        if ttl is None or not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            st.reject("imds: bad token TTL %r" % ttl)
            return self.send_body(400, "", "text/plain")
        self.send_body(200, IMDS_TOKEN, "text/plain",
                       {"X-aws-ec2-metadata-token-ttl-seconds": ttl})

    def imds_get(self, path):
        st = self.st
        a = st.args
        st.bump("imds_get")
        if self.headers.get("X-aws-ec2-metadata-token") != IMDS_TOKEN:
            st.reject("imds: GET without the session token")
            return self.send_body(401, "", "text/plain")
        prefix = "/latest/meta-data/iam/security-credentials/"
        if path == prefix:
            if a.no_imds_role:
                return self.send_body(404, "", "text/plain")
            return self.send_body(200, a.imds_role, "text/plain")
        if path == prefix + a.imds_role and not a.no_imds_role:
            creds = st.issue("imds")
            creds.update({"Code": "Success", "Type": "AWS-HMAC",
                          "LastUpdated": datetime.datetime.utcnow().strftime(
                              "%Y-%m-%dT%H:%M:%SZ")})
            st.bump("imds_ok")
            return self.send_body(200, json.dumps(creds, indent=2), "text/plain")
        self.send_body(404, "", "text/plain")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--ready-file")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--token-file")
    ap.add_argument("--role-arn")
    ap.add_argument("--invalid-token-once", action="store_true")
    ap.add_argument("--rotate-token", action="store_true")
    ap.add_argument("--sts-error")
    ap.add_argument("--sts-delay-ms", type=int, default=0)
    ap.add_argument("--expire-in", type=int, default=3600)
    ap.add_argument("--container-path", default="/v1/credentials")
    ap.add_argument("--container-token-file")
    ap.add_argument("--rotate-container-token", action="store_true")
    ap.add_argument("--imds-role", default="cloudgrant-node-role")
    ap.add_argument("--no-imds-role", action="store_true")
    ap.add_argument("--drop-put", action="store_true")
    ap.add_argument("--imds-put-status", type=int)
    args = ap.parse_args(argv)
    server = QuietThreadingHTTPServer((args.host, args.port), Handler)
    server.verbose = args.verbose
    server.state = State(args)
    return serve(server, ready_file=args.ready_file, name="aws_cred_endpoints")


if __name__ == "__main__":
    sys.exit(main())
