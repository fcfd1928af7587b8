cg_py_test(e2e_aws e2e/test_aws.py)
