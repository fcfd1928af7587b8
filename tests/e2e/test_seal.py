#!/usr/bin/env python3
"""agent/seal.c end to end: tokens made by tests/unit/seal_dump.c are opened by an independent
JOSE implementation, Debian's python3-jwcrypto, with keys and a certificate made by the openssl
CLI; tampered tokens must be refused and unusable keys rejected with a message naming the file.

    test_seal.py PATH/TO/seal_dump

jwcrypto must be importable, under this interpreter or /usr/bin/python3 (the script re-runs
itself there). Without it the test fails when CI=true and is skipped otherwise. Prints one line
per test and "N passed, M failed"."""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("CG_SOURCE_DIR") or os.path.normpath(os.path.join(HERE, "..", ".."))
SYSTEM_PYTHON = "/usr/bin/python3"

try:
    from jwcrypto import jwe, jwk
except ImportError:
    # ctest may run a pyenv or venv interpreter; the Debian package lives with the system one.
    if (os.path.exists(SYSTEM_PYTHON) and os.path.realpath(sys.executable)
            != os.path.realpath(SYSTEM_PYTHON) and not os.environ.get("CG_SEAL_REEXEC")):
        os.environ["CG_SEAL_REEXEC"] = "1"
        os.execv(SYSTEM_PYTHON, [SYSTEM_PYTHON] + sys.argv)
    if os.environ.get("CI") == "true":
        print("FAIL jwcrypto is not importable (apt-get install python3-jwcrypto)")
        print("0 passed, 1 failed")
        sys.exit(1)
    print("SKIP jwcrypto is not importable (apt-get install python3-jwcrypto)")
    sys.exit(0)

sys.path.insert(0, os.path.join(SRC, "tests", "emulators"))
import harness  # noqa: E402

DUMP = None
WORK = None
KEYS = {}  # name -> path


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64url_encode(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def make_keys():
    """RSA 2048 and 3072 pairs, a self-signed certificate and a 1024-bit public key."""
    def path(name):
        return os.path.join(WORK, name)
    for bits in (1024, 2048, 3072):
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:%d" % bits,
                "-out", path("priv%d.pem" % bits))
        openssl("pkey", "-in", path("priv%d.pem" % bits), "-pubout", "-out",
                path("pub%d.pem" % bits))
        KEYS["priv%d" % bits] = path("priv%d.pem" % bits)
        KEYS["pub%d" % bits] = path("pub%d.pem" % bits)
    openssl("req", "-x509", "-new", "-key", KEYS["priv2048"], "-subj", "/CN=platform", "-days", "1",
            "-out", path("cert2048.pem"))
    KEYS["cert2048"] = path("cert2048.pem")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
            path("ec.pem"))
    openssl("pkey", "-in", path("ec.pem"), "-pubout", "-out", path("ecpub.pem"))
    KEYS["ecpub"] = path("ecpub.pem")


def seal(key, plain):
    p = subprocess.run([DUMP, KEYS[key]], input=plain, capture_output=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("seal_dump failed (%d): %s" % (p.returncode, p.stderr.decode()))
    tok = p.stdout.decode("ascii")
    assert tok.endswith("\n") and tok.count("\n") == 1, repr(tok[-20:])
    return tok.strip()


def private_jwk(name):
    with open(KEYS[name], "rb") as f:
        return jwk.JWK.from_pem(f.read())


def public_jwk(name):
    with open(KEYS[name], "rb") as f:
        return jwk.JWK.from_pem(f.read())


def open_token(tok, priv):
    j = jwe.JWE()
    j.deserialize(tok)
    try:
        j.decrypt(private_jwk(priv))
    except jwe.InvalidJWEData:
        # jwcrypto 1.1 (Debian 12) decrypts an empty payload, logs 'Success' only once the GCM
        # tag verified, then raises because `not self.plaintext` is true for b"".
        if j.decryptlog == ["Success"] and j.plaintext == b"":
            return b""
        raise
    return j.payload


def check_roundtrip(plain, key="pub2048", priv="priv2048"):
    tok = seal(key, plain)
    segs = tok.split(".")
    assert len(segs) == 5, len(segs)
    assert "=" not in tok and "+" not in tok and "/" not in tok
    got = open_token(tok, priv)
    assert got == plain, "payload differs: %d bytes back for %d" % (len(got), len(plain))
    return tok


def test_empty():
    check_roundtrip(b"")


def test_unicode():
    doc = {"cluster": "prod-é", "note": "Grüße, 日本語, emoji \U0001F512", "n": 1}
    check_roundtrip(json.dumps(doc, ensure_ascii=False).encode("utf-8"))


def test_100kb():
    doc = json.dumps({"nodes": ["node-%06d" % i for i in range(8000)]}).encode()
    doc = doc[:100 * 1024] if len(doc) >= 100 * 1024 else doc + b" " * (100 * 1024 - len(doc))
    assert len(doc) == 100 * 1024
    check_roundtrip(doc)


def test_binary_lengths():
    # Around the base64 groups and the driver's chunking; GCM does not care that it is binary.
    for n in (1, 2, 3, 4, 5, 6143, 6144, 6145, 65537):
        check_roundtrip(os.urandom(n))


def test_rsa3072():
    tok = check_roundtrip(b'{"size":3072}', key="pub3072", priv="priv3072")
    assert len(b64url_decode(tok.split(".")[1])) == 384


def test_certificate():
    check_roundtrip(b'{"via":"certificate"}', key="cert2048")


def test_header_and_kid():
    tok = seal("pub2048", b"{}")
    hdr = json.loads(b64url_decode(tok.split(".")[0]))
    want_kid = public_jwk("pub2048").thumbprint()  # RFC 7638, SHA-256, by jwcrypto
    assert hdr == {"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "application/json",
                   "kid": want_kid}, hdr
    # The certificate carries the same key, so the same kid.
    tok = seal("cert2048", b"{}")
    assert json.loads(b64url_decode(tok.split(".")[0]))["kid"] == want_kid
    j = jwe.JWE()
    j.deserialize(tok, key=private_jwk("priv2048"))
    assert j.jose_header["kid"] == want_kid


def test_fresh_iv_and_cek():
    plain = b'{"same":"plaintext"}'
    toks = [seal("pub2048", plain) for _ in range(4)]
    for i in (1, 2, 3):  # encrypted key, IV, ciphertext
        seen = {t.split(".")[i] for t in toks}
        assert len(seen) == len(toks), "segment %d repeats" % i
    assert len(b64url_decode(toks[0].split(".")[2])) == 12
    assert len(b64url_decode(toks[0].split(".")[4])) == 16


def refused(tok):
    try:
        open_token(tok, "priv2048")
    except Exception:
        return True
    return False


def test_tampered_refused():
    plain = b'{"grant":"read-only","until":"2030-01-01T00:00:00Z"}'
    tok = seal("pub2048", plain)
    assert open_token(tok, "priv2048") == plain
    segs = tok.split(".")
    for i in range(5):
        raw = bytearray(b64url_decode(segs[i]))
        # Flip a bit in a decoded byte (not a character, whose low bits may be padding), at the
        # start, the middle and the end of the segment.
        for pos in sorted({0, len(raw) // 2, len(raw) - 1}):
            bad = bytearray(raw)
            bad[pos] ^= 0x01
            t = ".".join(b64url_encode(bytes(bad)) if j == i else s for j, s in enumerate(segs))
            assert refused(t), "segment %d byte %d flipped was accepted" % (i, pos)
    # A header that still parses but says something else must fail the AAD check.
    hdr = json.loads(b64url_decode(segs[0]))
    hdr["cty"] = "text/plain"
    t = ".".join([b64url_encode(json.dumps(hdr).encode())] + segs[1:])
    assert refused(t), "rewritten header was accepted"
    # A truncated tag and a ciphertext with a byte appended.
    assert refused(".".join(segs[:4] + [b64url_encode(b64url_decode(segs[4])[:12])]))
    ct = b64url_decode(segs[3]) + b"\0"
    assert refused(".".join(segs[:3] + [b64url_encode(ct)] + segs[4:]))


def test_wrong_key_refused():
    tok = seal("pub3072", b"{}")
    assert refused(tok)


def expect_key_refused(key, *words):
    p = subprocess.run([DUMP, KEYS[key]], input=b"{}", capture_output=True, timeout=60)
    err = p.stderr.decode()
    assert p.returncode == 1 and p.stdout == b"", (p.returncode, p.stdout, err)
    for w in (KEYS[key],) + words:
        assert w in err, "%r not in %r" % (w, err)


def test_bad_keys_refused():
    expect_key_refused("pub1024", "1024 bits", "at least 2048")
    expect_key_refused("priv2048", "private key")
    expect_key_refused("ecpub", "'EC'")
    garbage = os.path.join(WORK, "garbage.pem")
    with open(garbage, "wb") as f:
        f.write(os.urandom(700))
    KEYS["garbage"] = garbage
    expect_key_refused("garbage", "not PEM")


def main():
    global DUMP, WORK
    if len(sys.argv) != 2:
        print("usage: test_seal.py PATH/TO/seal_dump", file=sys.stderr)
        return 2
    DUMP = sys.argv[1]
    WORK = tempfile.mkdtemp(prefix="cg-seal-")
    try:
        make_keys()
        return harness.run_tests(globals())
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
