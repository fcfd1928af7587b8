# OUTSCALE end to end: every command against tests/emulators/osc_api.py (OSC4 signatures
# verified, request bodies checked against Outscale's models) and an Outscale cluster.
cg_py_test(e2e_outscale e2e/test_outscale.py)
set_tests_properties(e2e_outscale PROPERTIES TIMEOUT 600)
