# The report client against the central-endpoint emulator (schema validation, retries,
# idempotency, errors, trust fetch).
cg_py_test(e2e_report e2e/test_report.py $<TARGET_FILE:report_send>)
