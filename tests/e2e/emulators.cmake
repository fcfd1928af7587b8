# Emulator self-check: the Kubernetes API emulator against the real kubectl, the metadata
# emulators (AWS IMDSv2, GCE, Azure IMDS) against curl, and the cluster fixtures' consistency.
cg_py_test(e2e_emulators e2e/test_emulators.py)
