# GCP end to end: every command against tests/emulators/gcp_api.py (requests checked against
# gcloud's message classes), read back with the real gcloud. Skipped (77) without gcloud,
# except under CI=true.
cg_py_test(e2e_gcp e2e/test_gcp.py)
set_tests_properties(e2e_gcp PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900)
