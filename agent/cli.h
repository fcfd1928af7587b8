/* cli: argument and environment parsing, command dispatch, exit codes. */
#ifndef CG_CLI_H
#define CG_CLI_H

/* Exit codes (contract, see README): */
enum {
    CG_EXIT_OK = 0,
    CG_EXIT_FAIL = 1,
    CG_EXIT_USAGE = 2,
    CG_EXIT_DRIFT = 3,
};

int cg_cli_main(int argc, char **argv);

#endif
