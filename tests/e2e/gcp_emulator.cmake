# The GCP emulator (tests/emulators/gcp_api.py: IAM, Service Usage, Resource Manager, OAuth
# token endpoint, metadata server) against the real gcloud CLI, with every request checked
# against gcloud's generated clients (tests/emulators/gcp_model.py). Skipped (77) when gcloud
# is missing, except under CI=true where that fails.
cg_py_test(e2e_gcp_emulator e2e/test_gcp_emulator.py)
set_tests_properties(e2e_gcp_emulator PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)
