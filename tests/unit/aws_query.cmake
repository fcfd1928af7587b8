# cloud/aws/query.c: the form encoder and the response parser on canned bodies (hostile XML
# included), and whole calls (signing, retries, ExpiredToken, paging) against http_mock.
cg_unit_test(test_aws_query ${CMAKE_CURRENT_LIST_DIR}/test_aws_query.c
             ${CG_TESTS_DIR}/support/http_mock.c)
target_include_directories(test_aws_query PRIVATE ${CG_TESTS_DIR}/support)

# aws_query_call: a test-only driver for one Query call (or a paged walk), used by
# tests/e2e/test_aws_query.py against moto behind the model-validating proxy.
add_executable(aws_query_call ${CMAKE_CURRENT_LIST_DIR}/aws_query_call.c)
target_link_libraries(aws_query_call PRIVATE cg_agent PkgConfig::JANSSON)
