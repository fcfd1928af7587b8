# cloud/aws/sigv4.c and cloud/aws/creds.c: SigV4/OSC4 signing against the published vectors and,
# differentially, botocore's signer; the credential chain's files, environment and sources.
cg_unit_test(test_aws_sigv4 ${CMAKE_CURRENT_LIST_DIR}/test_aws_sigv4.c)
target_include_directories(test_aws_sigv4 PRIVATE ${PROJECT_SOURCE_DIR}/cloud/aws)
cg_unit_test(test_aws_creds ${CMAKE_CURRENT_LIST_DIR}/test_aws_creds.c
             ${CG_TESTS_DIR}/support/http_mock.c)
target_include_directories(test_aws_creds PRIVATE ${PROJECT_SOURCE_DIR}/cloud/aws
                           ${CG_TESTS_DIR}/support)

# Test-only drivers: sigv4_dump signs requests read from stdin (for tests/sigv4_diff.py);
# aws_creds_dump runs the credential chain (for tests/e2e/test_aws_creds.py).
add_executable(sigv4_dump ${CMAKE_CURRENT_LIST_DIR}/sigv4_dump.c)
target_link_libraries(sigv4_dump PRIVATE cg_agent PkgConfig::JANSSON)
target_include_directories(sigv4_dump PRIVATE ${PROJECT_SOURCE_DIR}/cloud/aws)
cg_py_test(aws_sigv4_diff sigv4_diff.py $<TARGET_FILE:sigv4_dump>)

add_executable(aws_creds_dump ${CMAKE_CURRENT_LIST_DIR}/aws_creds_dump.c)
target_link_libraries(aws_creds_dump PRIVATE cg_agent)
