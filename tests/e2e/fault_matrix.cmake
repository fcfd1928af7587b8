# Fault-injection matrix (tests/e2e/test_fault_matrix.py): every mutating step of onboard,
# rotate and offboard, discovered from a clean run's request log, crossed with every fault kind
# (500, 503, 429 + Retry-After, the provider's throttling error, connection reset, a timeout
# past the agent's fixed 30 s per-request limit, truncated body, invalid JSON/XML body, slow
# answer); after the run (and one rerun for the faults that are not retried) the account must
# be exactly the desired state and every credential handed over exactly once. One test per
# provider so ctest -j runs them side by side; each runs its cases on 8 threads
# (CG_FAULT_WORKERS). Skipped (77) when the provider's emulator cannot run, except under
# CI=true. Under the sanitizers each agent run is several times slower: that build runs a
# sample covering every step and every fault kind (CG_FAULT_SAMPLE) instead of the full cross.
foreach(provider outscale azure gcp aws)
    cg_py_test(e2e_fault_matrix_${provider} e2e/test_fault_matrix.py ${provider})
    set_tests_properties(e2e_fault_matrix_${provider} PROPERTIES SKIP_RETURN_CODE 77
        TIMEOUT 900 LABELS "e2e;faults")
    if(CG_ASAN OR CG_UBSAN)
        set_property(TEST e2e_fault_matrix_${provider} APPEND PROPERTY ENVIRONMENT
                     "CG_FAULT_SAMPLE=1")
    endif()
endforeach()
