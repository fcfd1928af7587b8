#!/bin/sh
# Runs the cloudgrant under test ($CG_REAL_BIN) under valgrind's memcheck: any invalid access,
# use of uninitialised memory or definite/indirect leak makes the run exit 99, which fails
# the end-to-end test that ran it (tests/e2e/valgrind.cmake).
exec valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect --num-callers=30 "$CG_REAL_BIN" "$@"
