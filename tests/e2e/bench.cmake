# The benchmark (bench/run.py, bench/depgraph.py) run small: its results' structure and counts,
# never its timings. Not under the sanitizers, whose slowdown and memory say nothing here.
if(NOT CG_ASAN AND NOT CG_UBSAN)
    cg_py_test(e2e_bench e2e/test_bench.py)
    set_tests_properties(e2e_bench PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900)
endif()
