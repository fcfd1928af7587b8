cg_py_test(e2e_identity e2e/test_identity.py)
cg_py_test(e2e_k8s_client e2e/test_k8s_client.py $<TARGET_FILE:k8s_call>)
