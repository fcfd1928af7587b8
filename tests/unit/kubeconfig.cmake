# kubeconfig and in-cluster loading (k8s/kubeconfig.c, k8s/incluster.c) and the YAML helper
# they share (agent/core/cg_yaml.c). Fixtures: tests/fixtures/kubeconfig/.
cg_unit_test(test_kubeconfig ${CMAKE_CURRENT_LIST_DIR}/test_kubeconfig.c)
cg_unit_test(test_kubeconfig_yaml ${CMAKE_CURRENT_LIST_DIR}/test_yaml.c)

# Test-only: prints what k8s_config_load resolved, for the comparison with kubectl.
add_executable(kubeconfig_dump ${CMAKE_CURRENT_LIST_DIR}/kubeconfig_dump.c)
target_link_libraries(kubeconfig_dump PRIVATE cg_agent PkgConfig::JANSSON)
cg_py_test(kubeconfig_diff kubeconfig_diff.py $<TARGET_FILE:kubeconfig_dump>)
