# cloud/gcp/rest.c: the response parser on canned bodies (Google's error shapes, ErrorInfo,
# hostile JSON) and whole calls against http_mock (bearer token and 401 refresh, engine
# retries, consistency retries, pagination, long-running operations, endpoints, stats, logs).
# gcp_auth_fake.c defines every function of gcp_auth.h and is linked before the cg_cloud
# archive, so the real auth.o is never pulled in (it would be a duplicate definition).
cg_unit_test(test_gcp_rest ${CMAKE_CURRENT_LIST_DIR}/test_gcp_rest.c
             ${CMAKE_CURRENT_LIST_DIR}/gcp_auth_fake.c ${CG_TESTS_DIR}/support/http_mock.c)
target_include_directories(test_gcp_rest PRIVATE ${CG_TESTS_DIR}/support
                           ${CMAKE_CURRENT_LIST_DIR})
