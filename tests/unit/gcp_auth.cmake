# cloud/gcp/auth.c: the service-account key file, the RS256 JWT assertion (verified with the
# public key), and the token chain (key file, metadata server, cache) against http_mock.
cg_unit_test(test_gcp_auth ${CMAKE_CURRENT_LIST_DIR}/test_gcp_auth.c
             ${CG_TESTS_DIR}/support/http_mock.c)
target_include_directories(test_gcp_auth PRIVATE ${PROJECT_SOURCE_DIR}/cloud/gcp
                           ${CG_TESTS_DIR}/support)
