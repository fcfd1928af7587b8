# agent/http: the libuv + libcurl engine against an in-process mock server, and cg_proc.
cg_unit_test(test_http ${CMAKE_CURRENT_LIST_DIR}/test_http.c ${CG_TESTS_DIR}/support/http_mock.c)
target_include_directories(test_http PRIVATE ${CG_TESTS_DIR}/support)
cg_unit_test(test_proc ${CMAKE_CURRENT_LIST_DIR}/test_proc.c)

# Fails each allocation of a scenario in turn. --wrap reaches our static libraries only.
cg_unit_test(test_http_oom ${CMAKE_CURRENT_LIST_DIR}/test_http_oom.c
             ${CG_TESTS_DIR}/support/http_mock.c)
target_include_directories(test_http_oom PRIVATE ${CG_TESTS_DIR}/support)
target_link_options(test_http_oom PRIVATE
                    -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup)
