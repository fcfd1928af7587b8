#include "cli.h"

#include <stdio.h>

int cg_cli_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("cloudgrant %s\n", CG_VERSION);
    return CG_EXIT_OK;
}
