# cloud/azure/rest.c: the response parser on canned bodies (Graph's and ARM's error shapes,
# hostile JSON, caps) and whole calls against http_mock (bearer token per resource and 401
# refresh, engine retries, replication retries, pagination and hostile next links, endpoints,
# paths, headers, stats, logs). azure_auth_fake.c defines every function of azure_auth.h and is
# linked before the cg_cloud archive, so the real auth.o is never pulled in.
cg_unit_test(test_azure_rest ${CMAKE_CURRENT_LIST_DIR}/test_azure_rest.c
             ${CMAKE_CURRENT_LIST_DIR}/azure_auth_fake.c ${CG_TESTS_DIR}/support/http_mock.c)
target_include_directories(test_azure_rest PRIVATE ${CG_TESTS_DIR}/support
                           ${CMAKE_CURRENT_LIST_DIR})
