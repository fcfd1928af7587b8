# The end-to-end suite of each cloud once more with the agent under valgrind (zero errors,
# zero definite or indirect leaks: tests/support/valgrind-cloudgrant.sh), in the plain build
# only: valgrind and AddressSanitizer do not mix. Each runs every command (3.5 to 5.5 min on
# 2 vCPUs) alone, since memcheck's slowdown on a loaded machine trips the agent's own
# timeouts.
find_program(CG_VALGRIND valgrind)
if(NOT CG_ASAN AND (CG_VALGRIND OR "$ENV{CI}" STREQUAL "true"))
    foreach(suite outscale azure gcp aws)
        add_test(NAME e2e_${suite}_valgrind
                 COMMAND ${CG_PYTHON} ${CG_TESTS_DIR}/e2e/test_${suite}.py)
        set_tests_properties(e2e_${suite}_valgrind PROPERTIES LABELS valgrind TIMEOUT 1500 RUN_SERIAL ON
            SKIP_RETURN_CODE 77 ENVIRONMENT
            "CLOUDGRANT_BIN=${CG_TESTS_DIR}/support/valgrind-cloudgrant.sh;CG_REAL_BIN=$<TARGET_FILE:cloudgrant>;CG_SOURCE_DIR=${PROJECT_SOURCE_DIR};CG_BUILD_DIR=${PROJECT_BINARY_DIR};PYTHONDONTWRITEBYTECODE=1")
    endforeach()
endif()
