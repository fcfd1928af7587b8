# cloud/azure/auth.c: the token chain (client secret, workload identity, IMDS) against
# http_mock with an injected environment and a frozen clock: request shapes, the per-resource
# cache and its waiters, retries, error messages, the tid claim, and what reaches the log.
cg_unit_test(test_azure_auth ${CMAKE_CURRENT_LIST_DIR}/test_azure_auth.c
             ${CG_TESTS_DIR}/support/http_mock.c)
target_include_directories(test_azure_auth PRIVATE ${PROJECT_SOURCE_DIR}/cloud/azure
                           ${CG_TESTS_DIR}/support)
