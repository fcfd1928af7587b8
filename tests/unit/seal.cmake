# agent/seal.c: JWE (RSA-OAEP-256 + A256GCM) for the platform's public key. The unit tests open
# the tokens with OpenSSL directly; tests/e2e/test_seal.py opens them with python3-jwcrypto.
cg_unit_test(test_seal ${CMAKE_CURRENT_LIST_DIR}/test_seal.c)

# Test-only: seals a file for a PEM key and prints the token (for tests/e2e/test_seal.py).
add_executable(seal_dump ${CMAKE_CURRENT_LIST_DIR}/seal_dump.c)
target_link_libraries(seal_dump PRIVATE cg_agent)
