# The OUTSCALE API emulator (tests/emulators/osc_api.py) against independent clients: curl's
# --aws-sigv4 "osc:osc:<region>:api" and botocore's SigV4Auth with Outscale's constants sign
# requests the emulator must accept (and the three signers must agree), plus every action
# cloudgrant uses checked against Outscale's request/response models (osc_model.py), faults,
# lockout and secret redaction. Skipped (77) when curl or python3-botocore is missing, except
# under CI=true where that fails.
cg_py_test(e2e_osc_emulator e2e/test_osc_emulator.py)
set_tests_properties(e2e_osc_emulator PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
