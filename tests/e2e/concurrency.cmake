# Two runs on one credential at once (a retried Job, an overlapping CronJob), and a holder
# killed mid-run: the Lease keeps them apart (tests/e2e/test_concurrency.py).
cg_py_test(e2e_concurrency e2e/test_concurrency.py)
