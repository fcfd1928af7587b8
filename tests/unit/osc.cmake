# cloud/outscale: where the credentials come from (auth.c, with an injected environment and
# config files in a scratch directory), and the OUTSCALE API client (api.c): the response
# parser on canned bodies, then whole calls against http_mock (the OSC4 signature checked
# against one computed independently with OpenSSL, throttling, 401 never retried, consistency
# retries, paging, stats, what the debug log may show).
cg_unit_test(test_osc_auth ${CMAKE_CURRENT_LIST_DIR}/test_osc_auth.c)
cg_unit_test(test_osc_api ${CMAKE_CURRENT_LIST_DIR}/test_osc_api.c
             ${CG_TESTS_DIR}/support/http_mock.c)
target_include_directories(test_osc_api PRIVATE ${CG_TESTS_DIR}/support)
