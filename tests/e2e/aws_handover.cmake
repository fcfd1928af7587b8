cg_py_test(e2e_aws_handover e2e/test_aws_handover.py)
