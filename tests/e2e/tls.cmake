# TLS verification on every kind of endpoint (Kubernetes API, cloud APIs, report endpoint):
# unknown CA, expired certificate and host name mismatch refused before any request is sent,
# the good certificate accepted, insecure-skip-tls-verify only where the kubeconfig sets it.
cg_py_test(e2e_tls e2e/test_tls.py)
set_tests_properties(e2e_tls PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 180)
