#!/usr/bin/env python3
"""The AWS credential chain end to end: tests/unit/aws_creds_dump.c (the real chain on a real
loop and libcurl) against tests/emulators/aws_cred_endpoints.py (STS, container provider and
IMDSv2 on one port), with shared files in a temporary HOME.

    test_aws_creds.py PATH/TO/aws_creds_dump

Every run starts from an environment without any AWS_* variable or proxy. Prints one line per
test and "N passed, M failed"."""
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("CG_SOURCE_DIR") or os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "emulators"))
import harness  # noqa: E402

EMULATOR = os.path.join(harness.EMU_DIR, "aws_cred_endpoints.py")
DUMP = None
ROLE = "arn:aws:iam::123456789012:role/cloudgrant-irsa"


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


class Emu:
    def __init__(self, proc, port, sd):
        self.proc, self.port, self.sd = proc, port, sd
        self.url = "http://127.0.0.1:%d" % port

    def stats(self):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(self.url + "/_stats", timeout=10) as r:
            return json.loads(r.read())

    def log(self):
        with open(os.path.join(self.sd, "emulator.log"), errors="replace") as f:
            return f.read()


@contextlib.contextmanager
def emulator(*args):
    sd = tempfile.mkdtemp(prefix="cg-awscreds-emu-")
    ready = os.path.join(sd, "ready")
    cmd = [harness.PYTHON, EMULATOR, "--port", "0", "--ready-file", ready] + list(args)
    proc = None
    try:
        proc, port = harness._start(cmd, ready, os.path.join(sd, "emulator.log"))
        yield Emu(proc, port, sd)
    finally:
        if proc is not None:
            harness._stop(proc)
        shutil.rmtree(sd, ignore_errors=True)


@contextlib.contextmanager
def home():
    d = tempfile.mkdtemp(prefix="cg-awscreds-home-")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def base_env(home_dir):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k.lower() not in
           ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    env["HOME"] = home_dir
    return env


def run(env, *args, timeout=60):
    """Runs the driver; returns (answers, elapsed_ms, returncode, stdout+stderr)."""
    p = subprocess.run([DUMP] + list(args), env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=timeout)
    answers = []
    elapsed = None
    for line in p.stdout.splitlines():
        m = re.match(r"get (\d+)\.(\d+) (.*)$", line)
        if m:
            rest = m.group(3)
            if rest.startswith("error "):
                em = re.match(r"error code=(-?\d+) status=(\d+) message=(.*)$", rest)
                answers.append({"error": em.group(3), "code": int(em.group(1)),
                                "status": int(em.group(2))})
            else:
                answers.append(dict(kv.split("=", 1) for kv in rest.split(" ")))
        elif line.startswith("elapsed_ms="):
            elapsed = int(line.split("=", 1)[1])
    return answers, elapsed, p.returncode, p.stdout + p.stderr


def one(env, *args):
    answers, _, rc, out = run(env, *args)
    assert len(answers) == 1, out
    return answers[0], rc, out


def irsa_env(env, h, emu):
    tok = os.path.join(h, "token")
    if not os.path.exists(tok):
        write(tok, "eyJhbGciOiJSUzI1NiIsImtpZCI6IkVYQU1QTEUifQ.initial.sig")
    env.update({"AWS_ROLE_ARN": ROLE, "AWS_WEB_IDENTITY_TOKEN_FILE": tok,
                "AWS_ENDPOINT_URL_STS": emu.url, "AWS_REGION": "eu-west-3"})
    return tok


def files_env(h):
    write(os.path.join(h, ".aws", "credentials"),
          "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = file-secret\n")
    write(os.path.join(h, ".aws", "config"), "[default]\nregion = eu-west-3\n")


def container_env(env, h, emu):
    tok = os.path.join(h, "pod-identity-token")
    if not os.path.exists(tok):
        write(tok, "pod-identity-token-1")
    env.update({"AWS_CONTAINER_CREDENTIALS_FULL_URI": emu.url + "/v1/credentials",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": tok})
    return tok


def all_sources(env, h, emu):
    env.update({"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret",
                "AWS_EC2_METADATA_SERVICE_ENDPOINT": emu.url})
    irsa_env(env, h, emu)
    files_env(h)
    container_env(env, h, emu)


def emu_args(h):
    return ["--token-file", os.path.join(h, "token"), "--role-arn", ROLE,
            "--container-token-file", os.path.join(h, "pod-identity-token")]


def no_rejections(emu):
    st = emu.stats()
    assert st["rejected"] == [], st["rejected"]
    return st


# ---- each source, and the order ------------------------------------------------------------

def test_order_env_first():
    with home() as h:
        write(os.path.join(h, "token"), "t")
        write(os.path.join(h, "pod-identity-token"), "p")
        with emulator(*emu_args(h)) as emu:
            env = base_env(h)
            all_sources(env, h, emu)
            a, rc, out = one(env)
            assert rc == 0, out
            assert a["source"] == "environment" and a["akid"] == "AKIDENV", a
            assert a["secret_sha256"] == sha("env-secret") and a["token"] == "no", a
            st = no_rejections(emu)
            assert st["sts"] == st["container"] == st["imds_put"] == 0, st


def test_order_web_identity_second():
    with home() as h:
        write(os.path.join(h, "token"), "t")
        write(os.path.join(h, "pod-identity-token"), "p")
        with emulator(*emu_args(h)) as emu:
            env = base_env(h)
            all_sources(env, h, emu)
            del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
            a, rc, out = one(env)
            assert rc == 0, out
            assert a["source"] == "web-identity" and a["akid"] == "ASIASTS00000001", a
            assert a["secret_sha256"] == sha("sts-secret-1"), a
            assert a["token"] == "yes" and a["token_sha256"] == sha("sts-token-1"), a
            assert int(a["expiration"]) > time.time() + 3000, a
            st = no_rejections(emu)
            assert (st["sts"], st["container"], st["imds_put"]) == (1, 0, 0), st


def test_order_files_third():
    with home() as h:
        write(os.path.join(h, "pod-identity-token"), "p")
        with emulator(*emu_args(h)) as emu:
            env = base_env(h)
            all_sources(env, h, emu)
            for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ROLE_ARN",
                      "AWS_WEB_IDENTITY_TOKEN_FILE"):
                del env[k]
            a, rc, out = one(env)
            assert rc == 0, out
            assert a["source"] == "shared-credentials-file" and a["akid"] == "AKIDFILE", a
            assert a["secret_sha256"] == sha("file-secret"), a
            st = no_rejections(emu)
            assert st["sts"] == st["container"] == st["imds_put"] == 0, st


def test_order_container_fourth():
    with home() as h:
        write(os.path.join(h, "pod-identity-token"), "p")
        with emulator(*emu_args(h)) as emu:
            env = base_env(h)
            env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = emu.url
            container_env(env, h, emu)
            a, rc, out = one(env)
            assert rc == 0, out
            assert a["source"] == "container" and a["akid"] == "ASIACONT00000001", a
            assert a["secret_sha256"] == sha("cont-secret-1"), a
            assert a["token_sha256"] == sha("cont-token-1"), a
            st = no_rejections(emu)
            assert (st["container_ok"], st["imds_put"]) == (1, 0), st


def test_imds_last():
    with home() as h:
        with emulator() as emu:
            env = base_env(h)
            env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = emu.url
            a, rc, out = one(env)
            assert rc == 0, out
            assert a["source"] == "instance-metadata" and a["akid"] == "ASIAIMDS00000001", a
            assert a["secret_sha256"] == sha("imds-secret-1"), a
            st = no_rejections(emu)
            assert (st["imds_put"], st["imds_get"], st["imds_ok"]) == (1, 2, 1), st


def test_profile_selects_file_keys():
    with home() as h:
        write(os.path.join(h, ".aws", "credentials"),
              "[default]\naws_access_key_id=AKIDDEF\naws_secret_access_key=d\n"
              "[prod]\naws_access_key_id = AKIDPROD\naws_secret_access_key = prod-secret\n"
              "aws_session_token = prod-token\n")
        env = base_env(h)
        env["AWS_EC2_METADATA_DISABLED"] = "true"
        env["AWS_PROFILE"] = "prod"
        a, rc, out = one(env)
        assert rc == 0 and a["akid"] == "AKIDPROD" and a["token_sha256"] == sha("prod-token"), out
        env["AWS_PROFILE"] = "missing"
        a, rc, out = one(env)
        assert rc == 1 and "AWS profile 'missing' (from AWS_PROFILE) not found" in a["error"], out


# ---- web identity details ------------------------------------------------------------------

def test_token_reread_after_invalid_identity_token():
    with home() as h:
        with emulator("--token-file", os.path.join(h, "token"), "--role-arn", ROLE,
                      "--invalid-token-once") as emu:
            env = base_env(h)
            irsa_env(env, h, emu)
            before = open(os.path.join(h, "token")).read()
            a, rc, out = one(env)
            assert rc == 0, out
            assert a["source"] == "web-identity", a
            assert open(os.path.join(h, "token")).read() != before  # the emulator rotated it
            st = no_rejections(emu)
            assert (st["sts"], st["sts_ok"]) == (2, 1), st


def test_token_reread_on_every_refresh():
    with home() as h:
        with emulator("--token-file", os.path.join(h, "token"), "--role-arn", ROLE,
                      "--rotate-token", "--expire-in", "120") as emu:
            env = base_env(h)
            irsa_env(env, h, emu)
            answers, _, rc, out = run(env, "--gets", "3", "--interval-ms", "50")
            assert rc == 0, out
            assert [a["akid"] for a in answers] == ["ASIASTS00000001", "ASIASTS00000002",
                                                     "ASIASTS00000003"], out
            st = no_rejections(emu)  # every call carried the rotated token
            assert st["sts_ok"] == 3, st


def test_refresh_before_expiry():
    with home() as h:
        # expiring in 2 minutes: inside the 5-minute window, so the next get refreshes
        with emulator("--token-file", os.path.join(h, "token"), "--expire-in", "120") as emu:
            env = base_env(h)
            irsa_env(env, h, emu)
            answers, _, rc, out = run(env, "--gets", "2")
            assert rc == 0, out
            assert answers[0]["akid"] != answers[1]["akid"], out
            assert emu.stats()["sts_ok"] == 2
        # an hour: the cache answers
        with emulator("--token-file", os.path.join(h, "token"), "--expire-in", "3600") as emu:
            env = base_env(h)
            irsa_env(env, h, emu)
            answers, _, rc, out = run(env, "--gets", "3")
            assert rc == 0, out
            assert len({a["akid"] for a in answers}) == 1, out
            assert emu.stats()["sts"] == 1


def test_concurrent_gets_coalesced():
    with home() as h:
        with emulator("--token-file", os.path.join(h, "token"), "--sts-delay-ms", "300") as emu:
            env = base_env(h)
            irsa_env(env, h, emu)
            answers, _, rc, out = run(env, "--concurrent", "8")
            assert rc == 0, out
            assert len(answers) == 8 and {a["akid"] for a in answers} == {"ASIASTS00000001"}, out
            st = no_rejections(emu)
            assert st["sts"] == 1, st
            # and again with an expiring cache: each round refreshes once for all of its gets
        with emulator("--token-file", os.path.join(h, "token"), "--sts-delay-ms", "200",
                      "--expire-in", "60") as emu:
            env = base_env(h)
            irsa_env(env, h, emu)
            answers, _, rc, out = run(env, "--concurrent", "5", "--gets", "2")
            assert rc == 0 and len(answers) == 10, out
            assert emu.stats()["sts"] == 2


def test_sts_refusal_is_final():
    with home() as h:
        with emulator("--token-file", os.path.join(h, "token"), "--sts-error",
                      "AccessDenied") as emu:
            env = base_env(h)
            irsa_env(env, h, emu)
            files_env(h)  # a configured source that fails does not fall through
            a, rc, out = one(env)
            assert rc == 1, out
            assert a["error"] == ("sts AssumeRoleWithWebIdentity for role '%s': AccessDenied: "
                                  "Not authorized to perform sts:AssumeRoleWithWebIdentity"
                                  % ROLE), a
            assert a["code"] == -6 and a["status"] == 403, a
            assert emu.stats()["sts"] == 1


def test_web_identity_from_profile():
    with home() as h:
        write(os.path.join(h, "tok"), "profile-token")
        write(os.path.join(h, ".aws", "config"),
              "[profile irsa]\nrole_arn = %s\nweb_identity_token_file = ~/tok\n"
              "role_session_name = from-profile\n" % ROLE)
        with emulator("--token-file", os.path.join(h, "tok"), "--role-arn", ROLE) as emu:
            env = base_env(h)
            env.update({"AWS_PROFILE": "irsa", "AWS_ENDPOINT_URL": emu.url})
            a, rc, out = one(env)
            assert rc == 0 and a["source"] == "web-identity", out
            no_rejections(emu)


# ---- container and IMDS details ------------------------------------------------------------

def test_container_token_reread():
    with home() as h:
        with emulator("--container-token-file", os.path.join(h, "pod-identity-token"),
                      "--rotate-container-token", "--expire-in", "100") as emu:
            env = base_env(h)
            container_env(env, h, emu)
            answers, _, rc, out = run(env, "--gets", "2")
            assert rc == 0, out
            assert [a["akid"] for a in answers] == ["ASIACONT00000001", "ASIACONT00000002"], out
            st = no_rejections(emu)
            assert st["container_ok"] == 2, st


def test_container_wrong_token_is_error():
    with home() as h:
        write(os.path.join(h, "expected"), "right")
        with emulator("--container-token-file", os.path.join(h, "expected")) as emu:
            env = base_env(h)
            container_env(env, h, emu)  # sends "pod-identity-token-1"
            env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = emu.url
            a, rc, out = one(env)
            assert rc == 1, out
            assert a["error"] == ("container credentials from '%s/v1/credentials': HTTP 401 "
                                  "(InvalidToken: Authorization token is invalid)" % emu.url), a
            assert "pod-identity-token-1" not in out
            assert emu.stats()["imds_put"] == 0


def test_imds_absent_is_fast():
    with home() as h:
        with emulator("--drop-put") as emu:
            env = base_env(h)
            env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = emu.url
            t0 = time.monotonic()
            a, rc, out = one(env)
            wall = time.monotonic() - t0
            assert rc == 1, out
            assert a["error"].startswith("no AWS credentials found: tried environment, web "
                                         "identity, shared files ("), a
            assert "instance metadata (PUT %s/latest/api/token: timed out" % emu.url in a["error"], a
            assert a["code"] == -6, a
            assert wall < 3.5, wall
            assert emu.stats()["imds_put"] == 2  # two attempts of 1 s
        # nothing listening at all: immediate
        env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = emu.url
        t0 = time.monotonic()
        a, rc, out = one(env)
        assert rc == 1 and "no AWS credentials found" in a["error"], out
        assert time.monotonic() - t0 < 3.0


def test_imds_without_role():
    with home() as h:
        with emulator("--no-imds-role") as emu:
            env = base_env(h)
            env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = emu.url
            a, rc, out = one(env)
            assert rc == 1, out
            assert a["error"].endswith("instance metadata (the instance has no IAM role)"), a
        with emulator("--imds-put-status", "403") as emu:
            env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = emu.url
            a, rc, out = one(env)
            assert rc == 1 and "no IMDSv2, token request answered HTTP 403" in a["error"], out


def test_all_missing_lists_what_was_tried():
    with home() as h:
        env = base_env(h)
        env["AWS_EC2_METADATA_DISABLED"] = "true"
        a, rc, out = one(env)
        assert rc == 1, out
        assert a["error"] == ("no AWS credentials found: tried environment, web identity, shared "
                              "files (%s/.aws/credentials, %s/.aws/config), container provider, "
                              "instance metadata (disabled by AWS_EC2_METADATA_DISABLED)"
                              % (h, h)), a
        assert a["code"] == -6


def test_secrets_never_printed():
    with home() as h:
        with emulator("--token-file", os.path.join(h, "token"), "--expire-in", "120") as emu:
            env = base_env(h)
            irsa_env(env, h, emu)
            env["AWS_SESSION_TOKEN"] = "never-shown-session"
            answers, _, rc, out = run(env, "--gets", "2")
            for secret in ("sts-secret-1", "sts-token-1", "sts-secret-2",
                           open(os.path.join(h, "token")).read()):
                assert secret not in out, secret


def main():
    global DUMP
    if len(sys.argv) < 2:
        print("usage: test_aws_creds.py PATH/TO/aws_creds_dump")
        return 2
    DUMP = sys.argv[1]
    return harness.run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
