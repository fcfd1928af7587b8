/* bench/rusage.c: runs a command and writes its resource usage, as the benchmark needs it.
 *
 *   rusage OUT.json COMMAND [ARG]...
 *
 * Why not measure from Python: a child forked (or vforked) by the Python benchmark carries
 * the interpreter's memory until it execs, and Linux keeps that high-water mark in the
 * child's ru_maxrss (exec_mmap records the old mm's peak), so every agent would "peak" at the
 * size of the Python process. This helper is a few hundred kilobytes, so the peak it reports
 * is the agent's own. It also writes the child's pid to OUT.json.pid as soon as it exists
 * (the benchmark samples /proc/PID/status with it) and exits with the child's status.
 *
 * OUT.json: {"exit": N, "signal": N, "wall_ms": F, "user_ms": F, "sys_ms": F,
 *            "maxrss_kb": N, "minflt": N, "majflt": N, "nvcsw": N, "nivcsw": N} */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double ms(struct timeval tv)
{
    return (double)tv.tv_sec * 1000.0 + (double)tv.tv_usec / 1000.0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s OUT.json COMMAND [ARG]...\n", argv[0]);
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("rusage: fork");
        return 2;
    }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        fprintf(stderr, "rusage: %s: %s\n", argv[2], strerror(errno));
        _exit(127);
    }
    char pidpath[4096];
    snprintf(pidpath, sizeof(pidpath), "%s.pid", argv[1]);
    FILE *pf = fopen(pidpath, "w");
    if (pf != NULL) {
        fprintf(pf, "%d\n", (int)pid);
        fclose(pf);
    }
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof(ru));
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("rusage: wait4");
            return 2;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double wall =
        (double)(t1.tv_sec - t0.tv_sec) * 1000.0 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    FILE *f = fopen(argv[1], "w");
    if (f == NULL) {
        perror("rusage: output");
        return 2;
    }
    fprintf(f,
            "{\"exit\": %d, \"signal\": %d, \"wall_ms\": %.3f, \"user_ms\": %.3f, "
            "\"sys_ms\": %.3f, \"maxrss_kb\": %ld, \"minflt\": %ld, \"majflt\": %ld, "
            "\"nvcsw\": %ld, \"nivcsw\": %ld}\n",
            WIFEXITED(status) ? WEXITSTATUS(status) : -1,
            WIFSIGNALED(status) ? WTERMSIG(status) : 0, wall, ms(ru.ru_utime), ms(ru.ru_stime),
            ru.ru_maxrss, ru.ru_minflt, ru.ru_majflt, ru.ru_nvcsw, ru.ru_nivcsw);
    fclose(f);
    return code;
}
