# The Query client against moto through tests/emulators/aws_model_proxy.py (every request
# checked against botocore's IAM and STS models), plus the hostile-XML parser cases.
cg_py_test(e2e_aws_query e2e/test_aws_query.py $<TARGET_FILE:aws_query_call>)
