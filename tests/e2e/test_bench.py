#!/usr/bin/env python3
"""The benchmark (bench/) still measures what the README says it measures.

    CLOUDGRANT_BIN=build/agent/cloudgrant /usr/bin/python3 tests/e2e/test_bench.py [-v]

Runs bench/depgraph.py's self-test, then bench/run.py once, small (every provider, one
profile, one repeat, a short delay, the awscli reference, a 3-cycle watch soak), and checks
the structure and the counts of its results: every run done and counted, reruns without
writes, the awscli script making the same calls as the agent, every target evaluated. It
checks no timing: timings are the benchmark's to report, not a test's to assert.

Prints one line a check and ends with "N passed, M failed"; exits 1 on any failure, 77 when
moto is missing outside CI.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

SRC = os.environ.get("CG_SOURCE_DIR") or os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BIN = os.environ.get("CLOUDGRANT_BIN") or os.path.join(SRC, "build", "agent", "cloudgrant")
sys.path.insert(0, os.path.join(SRC, "tests", "emulators"))
import moto_harness  # noqa: E402
from checks import ok, section, summary  # noqa: E402

CI = os.environ.get("CI", "").lower() == "true"
PROFILE = "platform-access"
WATCH_CYCLES = 3
VERSION_RUNS = 5


def bench(*args, timeout=900):
    return subprocess.run([sys.executable, os.path.join(SRC, "bench", "run.py"), "--bin", BIN]
                          + list(args), capture_output=True, text=True, timeout=timeout,
                          cwd=SRC)


def check_depgraph():
    p = subprocess.run([sys.executable, os.path.join(SRC, "bench", "depgraph.py")],
                       capture_output=True, text=True, timeout=120)
    ok("depgraph self-test", p.returncode == 0 and "self-test passed" in p.stdout,
       (p.stdout + p.stderr)[-1500:])


def check_bad_flags():
    for args in (["--providers", "aws"], ["--profiles", "nope"], ["--watch-providers", "x"]):
        p = bench(*args, timeout=60)
        ok("bad flag %s" % " ".join(args), p.returncode == 2 and "unknown" in p.stderr,
           "exit %d: %s" % (p.returncode, p.stderr.strip()[-300:]))


def check_runs(doc):
    names = ["aws-user", "aws-role", "gcp", "azure", "outscale"]
    runs = {(r["provider"], r["phase"]): r for r in doc["runs"] if r["profile"] == PROFILE}
    for prov in names:
        for phase in ("onboard", "rerun", "check"):
            r = runs.get((prov, phase))
            name = "%s %s" % (prov, phase)
            if not ok(name + " ran", r is not None and r["ok"],
                      "missing" if r is None else "exit %s %s" % (r["exit"], r.get("error", ""))):
                continue
            calls = r["reads"] + r["writes"] + r["auth"]
            ok(name + " counted its calls", r["reads"] > 0, "reads %d" % r["reads"])
            ok(name + " has a critical path within its calls",
               1 <= r["critical_path"] <= calls and r["critical_path"] <= r[
                   "critical_path_observed"] <= calls,
               "path %d (observed %d) for %d calls" % (r["critical_path"],
                                                       r["critical_path_observed"], calls))
            ok(name + " has a ratio", r["ratio"] is not None and r["ratio"] > 0)
            ok(name + " measured the agent", r["maxrss_kb"] > 1024 and r["wall_ms"] > 0,
               "maxrss %d KB, wall %s ms" % (r["maxrss_kb"], r["wall_ms"]))
            if phase == "onboard":
                ok(name + " wrote", r["writes"] > 0, "writes %d" % r["writes"])
            else:
                ok(name + " made no write", r["writes"] == 0, "writes %d" % r["writes"])
            if phase == "rerun":
                ok(name + " read nothing twice", not r["duplicate_reads"],
                   str(r["duplicate_reads"]))


def check_awscli(doc):
    ob = next((r for r in doc["runs"] if r["provider"] == "aws-user" and
               r["profile"] == PROFILE and r["phase"] == "onboard"), None)
    v = {a["variant"]: a for a in doc["awscli"]}
    if not ok("awscli reference ran", set(v) == {"mirror", "minimal"} and ob is not None,
              "variants %s" % sorted(v)):
        return
    # The README compares the agent with a script making the same calls: keep them the same.
    ok("awscli mirror makes the agent's calls",
       v["mirror"]["calls"] == ob["reads"] + ob["writes"],
       "script %d calls, agent %d" % (v["mirror"]["calls"], ob["reads"] + ob["writes"]))
    ok("awscli minimal makes 5 calls", v["minimal"]["calls"] == 5, str(v["minimal"]["calls"]))
    ok("awscli measured", all(a["wall_ms"] > 0 and a["maxrss_kb"] > 1024 for a in v.values()))


def check_rest(doc, out):
    ver = doc.get("version") or {}
    ok("version measured", ver.get("runs") == VERSION_RUNS and ver.get("best_ms", 0) > 0,
       str(ver))
    watch = {w["provider"]: w for w in doc["watch"]}
    ok("watch soaks", set(watch) == {"aws-user", "gcp", "azure", "outscale"}, str(sorted(watch)))
    for prov, w in sorted(watch.items()):
        by = w.get("checks_by_result") or {}
        if not ok("watch %s: %d cycles, all ok" % (prov, WATCH_CYCLES),
                  w["cycles"] == WATCH_CYCLES and by.get("ok") == WATCH_CYCLES and
                  not any(n for k, n in by.items() if k != "ok"),
                  "cycles %s, checks %s, error %s" % (w["cycles"], by, w.get("error"))):
            continue
        ok("watch %s: sampled" % prov, w["rss_last_kb"] > 1024 and w["fds_last"] > 0 and
           w["cloud_calls_per_cycle"] > 0, "rss %s, fds %s, calls %s" % (
               w["rss_last_kb"], w["fds_last"], w["cloud_calls_per_cycle"]))
    targets = doc["targets"]
    ok("every target evaluated", len(targets) >= 5 + len(watch) and
       all(t["pass"] in (True, False) and t["detail"] for t in targets),
       json.dumps(targets)[:1500])
    ok("table printed", all(p in out for p in ("aws-user", "aws-role", "gcp", "azure",
                                               "outscale")) and "targets:" in out, out[-800:])


def main():
    try:
        moto_harness.find_moto_server()
    except Exception as e:
        if CI:
            print("FAIL  moto is required under CI=true: %s" % e)
            return 1
        print("SKIP  the benchmark needs moto: %s" % e)
        return 77
    section("depgraph", check_depgraph)
    section("flags", check_bad_flags)
    awscli = shutil.which("aws") is not None
    if not awscli:
        ok("awscli present (required under CI=true)", not CI)
    work = tempfile.mkdtemp(prefix="cg-test-bench-")
    try:
        out = os.path.join(work, "bench.json")
        p = bench("--profiles", PROFILE, "--repeat", "1", "--delay-ms", "20",
                  "--version-runs", str(VERSION_RUNS), "--watch-cycles", str(WATCH_CYCLES),
                  "--out", out, *([] if awscli else ["--no-awscli"]))
        ok("bench/run.py exits 0", p.returncode == 0,
           "exit %d\n%s\n%s" % (p.returncode, p.stdout[-3000:], p.stderr[-3000:]))
        # the results are checked even after a failed exit: they say which part broke
        if ok("bench/run.py wrote its results", os.path.exists(out)):
            doc = json.load(open(out))
            section("runs", check_runs, doc)
            if awscli:
                section("awscli", check_awscli, doc)
            section("version, watch and targets", check_rest, doc, p.stdout)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return summary()

if __name__ == "__main__":
    sys.exit(main())
