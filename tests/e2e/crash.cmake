# Crash consistency (tests/e2e/test_crash.py): the agent is SIGKILLed after each mutating cloud
# call of a full onboard (the emulator runs the call, then holds its answer and everything
# after it), while a report is being refused (the key stored, not handed over) and after the
# platform stored the report (handed over, not yet marked delivered); the next onboard must
# converge with exactly one key, the one stored and the one handed over. One test per
# provider. Skipped (77) when the provider's emulator cannot run, except under CI=true.
foreach(provider outscale azure gcp aws)
    cg_py_test(e2e_crash_${provider} e2e/test_crash.py ${provider})
    set_tests_properties(e2e_crash_${provider} PROPERTIES SKIP_RETURN_CODE 77
        TIMEOUT 600 LABELS "e2e;faults")
endforeach()
