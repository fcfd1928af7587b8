"""The PASS/FAIL/SKIP bookkeeping of the checklist-style end-to-end tests (test_emulators.py,
test_bench.py): one line a failed or skipped check (every check with -v), a summary line,
and the exit status. Groups of checks run through section(), so that an exception in one
group counts as one failure and the others still run. -k SUBSTRING runs only the sections
whose name contains it.
"""
import sys
import traceback

VERBOSE = "-v" in sys.argv
FILTER = sys.argv[sys.argv.index("-k") + 1] if "-k" in sys.argv[:-1] else None

_count = {"passed": 0, "failed": 0, "skipped": 0}


def ok(name, cond, detail=""):
    """Records one check; returns cond, so that a caller can stop a group on a failure."""
    if cond:
        _count["passed"] += 1
        if VERBOSE:
            print("PASS  " + name)
    else:
        _count["failed"] += 1
        print("FAIL  %s%s" % (name, (": " + detail) if detail else ""))
    sys.stdout.flush()
    return cond


def skip(name, why):
    _count["skipped"] += 1
    print("SKIP  %s: %s" % (name, why))
    sys.stdout.flush()


def section(name, fn, *args):
    """Runs one group of checks; an exception is one failure (and the group stops)."""
    if FILTER and FILTER not in name:
        return
    try:
        fn(*args)
    except Exception as e:
        ok(name, False, "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc()))


def summary():
    """Prints "N passed, M failed" and returns the exit status: 1 on any failure."""
    print("%d passed, %d failed" % (_count["passed"], _count["failed"]))
    return 1 if _count["failed"] else 0
