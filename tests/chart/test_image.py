#!/usr/bin/env python3
"""The container image, checked without Docker (which does not run on the build machines).

deploy/Dockerfile's build stage runs deploy/build-image.sh; this test runs the same script
into a scratch DESTDIR, then checks what the runtime stage would hold:
- every package either stage installs is a real Debian 12 package (apt-cache);
- each library the binary needs directly (readelf NEEDED) comes from a package the runtime
  stage names, and every library it loads (ldd) from that list or the packages apt pulls in
  with it (their Depends, recursively): nothing only the build machine has;
- no build-only library (a -dev package's file) is loaded;
- what the runtime stage copies from the build stage exists there, and the built-in profiles
  are installed complete;
- the image runs as the numeric non-root user the chart's pods use, and its entrypoint is the
  path the chart runs.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

SRC = os.environ.get("CG_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "emulators"))
import harness  # noqa: E402

DOCKERFILE = os.path.join(SRC, "deploy", "Dockerfile")
SKIP = 77


def dockerfile_stages():
    """[(name, [(instruction, argument)])] with continuation lines joined."""
    with open(DOCKERFILE) as f:
        text = re.sub(r"\\\n", " ", f.read())
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, arg = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            m = re.match(r"\S+(?:\s+AS\s+(\S+))?", arg, re.I)
            stages.append((m.group(1) or "runtime", []))
        elif stages:
            stages[-1][1].append((instr, arg.strip()))
    return stages


def apt_packages(instructions):
    pkgs = []
    for instr, arg in instructions:
        if instr != "RUN" or "apt-get install" not in arg:
            continue
        words = arg.split("apt-get install", 1)[1].split("&&")[0].split()
        pkgs += [w for w in words if not w.startswith("-")]
    return pkgs


def package_of(path):
    p = subprocess.run(["dpkg", "-S", os.path.realpath(path)], capture_output=True, text=True)
    if p.returncode != 0:  # merged /usr: dpkg may know the file by its /lib path
        alt = re.sub(r"^/usr/lib/", "/lib/", os.path.realpath(path))
        p = subprocess.run(["dpkg", "-S", alt], capture_output=True, text=True)
    assert p.returncode == 0, "no Debian package owns %s: %s" % (path, p.stderr)
    return p.stdout.split(":", 1)[0].split(",")[0].strip()


def depends_closure(pkgs):
    p = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                        "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"]
                       + list(pkgs), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    closure = set()
    for line in p.stdout.splitlines():
        name = line.strip()
        if name.startswith(("Depends:", "PreDepends:")):
            name = name.split(":", 1)[1].strip()
        if name and not name.startswith("<") and ":" not in name:
            closure.add(name)
    return closure


def state():
    stages = dict(dockerfile_stages())
    assert set(stages) == {"build", "runtime"}, list(stages)
    return stages


def test_packages_are_debian_12_packages():
    for stage, instructions in state().items():
        pkgs = apt_packages(instructions)
        assert pkgs, stage
        for pkg in pkgs:
            p = subprocess.run(["apt-cache", "show", "--no-all-versions", pkg],
                               capture_output=True, text=True)
            assert p.returncode == 0 and "Package: %s" % pkg in p.stdout, \
                "%s stage installs '%s', which Debian 12 does not have" % (stage, pkg)


def test_build_stage_runs_its_script():
    runs = [a for i, a in state()["build"] if i == "RUN"]
    assert "deploy/build-image.sh /src /build" in runs, runs


BUILT = {}


def built():
    if not BUILT:
        scratch = tempfile.mkdtemp(prefix="cg-image-")
        root = os.path.join(scratch, "root")
        p = subprocess.run([os.path.join(SRC, "deploy", "build-image.sh"), SRC,
                            os.path.join(scratch, "build")], capture_output=True, text=True,
                           env=dict(os.environ, DESTDIR=root), timeout=900)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
        assert p.stdout.strip().splitlines()[-1].startswith("cloudgrant "), p.stdout[-500:]
        BUILT.update(scratch=scratch, root=root)
    return BUILT


def test_libraries_come_from_the_runtime_packages():
    binary = os.path.join(built()["root"], "usr/local/bin/cloudgrant")
    runtime = set(apt_packages(state()["runtime"]))
    closure = depends_closure(runtime) | runtime
    needed = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True,
                            check=True).stdout
    direct = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", needed)
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    assert "not found" not in ldd, ldd
    resolved = dict(re.findall(r"^\s*(\S+) => (/\S+)", ldd, re.M))
    checked = 0
    for soname, path in resolved.items():
        pkg = package_of(path)
        assert not pkg.endswith("-dev"), "%s comes from the build-only %s" % (soname, pkg)
        if soname in direct:
            assert pkg in runtime or pkg == "libc6", \
                "the binary needs %s from %s, which the runtime stage does not install" % (
                    soname, pkg)
        assert pkg in closure, "%s (%s) would be missing from the image" % (soname, pkg)
        checked += 1
    assert set(direct) <= set(resolved) | {"linux-vdso.so.1"}, (direct, resolved)
    print("  %d libraries checked (%d needed directly) against %d runtime packages" % (
        checked, len(direct), len(runtime)))


def test_copied_files_and_profiles():
    root = built()["root"]
    for instr, arg in state()["runtime"]:
        if instr == "COPY" and arg.startswith("--from=build"):
            src = arg.split()[1]
            assert os.path.exists(root + src), "the runtime stage copies %s, not built" % src
    installed = os.path.join(root, "usr/local/share/cloudgrant/profiles")
    assert sorted(os.listdir(installed)) == sorted(os.listdir(os.path.join(SRC, "profiles")))
    p = subprocess.run([os.path.join(root, "usr/local/bin/cloudgrant"), "plan", "--profile",
                        "nonexistent-profile", "--kubeconfig", "/nonexistent"],
                       capture_output=True, text=True)
    assert p.returncode == 2, p.stderr


def test_user_and_entrypoint_match_the_chart():
    runtime = state()["runtime"]
    user = [a for i, a in runtime if i == "USER"]
    assert len(user) == 1 and re.fullmatch(r"\d+:\d+", user[0]), user
    uid, gid = (int(x) for x in user[0].split(":"))
    assert uid != 0 and gid != 0, user
    with open(os.path.join(SRC, "charts", "cloudgrant", "values.yaml")) as f:
        values = f.read()
    assert re.search(r"^\s+runAsUser: %d$" % uid, values, re.M), "chart runAsUser != %d" % uid
    assert re.search(r"^\s+runAsGroup: %d$" % gid, values, re.M), "chart runAsGroup != %d" % gid
    entry = [a for i, a in runtime if i == "ENTRYPOINT"]
    assert entry == ['["/usr/local/bin/cloudgrant"]'], entry
    with open(os.path.join(SRC, "charts", "cloudgrant", "templates", "_helpers.tpl")) as f:
        assert 'command: ["/usr/local/bin/cloudgrant"]' in f.read()


if __name__ == "__main__":
    if os.environ.get("CG_SANITIZED") == "1":
        print("SKIP: the image is a release build; checked once, in the plain build's run")
        sys.exit(SKIP)
    if not (shutil.which("dpkg") and shutil.which("apt-cache") and shutil.which("readelf")):
        print("SKIP: dpkg, apt-cache and readelf are needed (Debian)")
        sys.exit(SKIP)
    try:
        sys.exit(harness.run_tests(globals()))
    finally:
        if BUILT:
            shutil.rmtree(BUILT["scratch"], ignore_errors=True)
