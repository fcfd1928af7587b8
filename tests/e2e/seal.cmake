# agent/seal.c end to end: tokens from tests/unit/seal_dump.c opened by python3-jwcrypto, an
# independent JOSE implementation, with keys made by the openssl CLI.
cg_py_test(e2e_seal e2e/test_seal.py $<TARGET_FILE:seal_dump>)
