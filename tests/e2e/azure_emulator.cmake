# The Azure emulator (tests/emulators/azure_api.py: Entra token endpoint, IMDS, Microsoft Graph
# v1.0, ARM) against Microsoft's own clients: azure-mgmt-authorization/-resource
# (python3-azure) and MSAL (python3-msal), with every ARM request checked against the SDK's
# models (tests/emulators/azure_model.py). Skipped (77) when those are missing, except under
# CI=true where that fails.
cg_py_test(e2e_azure_emulator e2e/test_azure_emulator.py)
set_tests_properties(e2e_azure_emulator PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)
