# watch mode: the metrics registry and the /healthz + /metrics server.
cg_unit_test(test_metrics ${CMAKE_CURRENT_LIST_DIR}/test_metrics.c)
cg_unit_test(test_httpd ${CMAKE_CURRENT_LIST_DIR}/test_httpd.c)
