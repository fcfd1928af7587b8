# Azure end to end: every command against tests/emulators/azure_api.py (ARM bodies checked
# against Debian's azure-mgmt-authorization models, Graph bodies against Graph's property
# sets) and an AKS cluster. Skipped (77) without python3-azure, except under CI=true.
cg_py_test(e2e_azure e2e/test_azure.py)
set_tests_properties(e2e_azure PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900)
