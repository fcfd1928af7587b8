# The AWS credential chain end to end: tests/unit/aws_creds_dump.c against the STS, container
# and IMDSv2 emulator (tests/emulators/aws_cred_endpoints.py).
cg_py_test(e2e_aws_creds e2e/test_aws_creds.py $<TARGET_FILE:aws_creds_dump>)
