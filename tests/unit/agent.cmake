cg_unit_test(test_identity_nodes ${CMAKE_CURRENT_LIST_DIR}/test_identity_nodes.c)
cg_unit_test(test_options ${CMAKE_CURRENT_LIST_DIR}/test_options.c)
