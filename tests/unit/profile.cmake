# Grant profiles (agent/profile.c), their built-ins (profiles/) and policy comparison
# (cloud/policy.c). Fixtures: tests/fixtures/profiles/.
cg_unit_test(test_policy ${CMAKE_CURRENT_LIST_DIR}/test_policy.c)
cg_unit_test(test_profile ${CMAKE_CURRENT_LIST_DIR}/test_profile.c)
cg_unit_test(test_profile_outscale ${CMAKE_CURRENT_LIST_DIR}/test_profile_outscale.c)
foreach(t test_policy test_profile test_profile_outscale)
    target_compile_definitions(${t} PRIVATE CG_PROFILES_DIR="${PROJECT_SOURCE_DIR}/profiles")
endforeach()
