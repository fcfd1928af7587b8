# cloud/rest_common.c: the JSON REST pieces shared by the GCP, Azure and OUTSCALE clients,
# tested once here on their own (the clients' tests reach them only through one provider's
# error shapes): answers, bearer headers and requests sent to http_mock.
cg_unit_test(test_rest_common ${CMAKE_CURRENT_LIST_DIR}/test_rest_common.c
             ${CG_TESTS_DIR}/support/http_mock.c)
target_include_directories(test_rest_common PRIVATE ${CG_TESTS_DIR}/support)
