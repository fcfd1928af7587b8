# agent/report: body builder, idempotency key and configuration rules.
cg_unit_test(test_report ${CMAKE_CURRENT_LIST_DIR}/test_report.c)

# report_send: a test-only driver that delivers one report or fetches the trust principal
# (end-to-end tests against tests/emulators/central.py).
add_executable(report_send ${CMAKE_CURRENT_LIST_DIR}/report_send.c)
target_link_libraries(report_send PRIVATE cg_agent)
