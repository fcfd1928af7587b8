cg_unit_test(test_identity_nodes ${CMAKE_CURRENT_LIST_DIR}/test_identity_nodes.c)
cg_unit_test(test_options ${CMAKE_CURRENT_LIST_DIR}/test_options.c)

# k8s_call: a test-only driver for one Kubernetes API call (end-to-end tests of the verbs).
add_executable(k8s_call ${CMAKE_CURRENT_LIST_DIR}/k8s_call.c)
target_link_libraries(k8s_call PRIVATE cg_agent)
cg_unit_test(test_rc ${CMAKE_CURRENT_LIST_DIR}/test_rc.c)
