/*
 * The application side of `weir bench capture`: writes a known number of
 * fixed-length lines to stdout as fast as it can, so that every peer (bare
 * cat, weir run, conmon) is fed exactly the same bytes in exactly the same
 * write() pattern. weir embeds this file and compiles it with
 * `cc -O2 -static` at bench time; static linking lets the same binary run
 * inside an OCI rootfs that holds nothing but busybox.
 *
 * usage: writer MODE LINES LINE_LEN PROCS
 *   MODE      "buffered": whole lines packed into a 64 KiB buffer, one
 *             write() when the next line would not fit (and one at the end);
 *             "perline": one write() per line.
 *   LINES     total lines, shared among PROCS processes (the first
 *             LINES % PROCS processes write one more).
 *   LINE_LEN  bytes per line including the '\n' (1 gives empty lines).
 *   PROCS     processes writing to the same stdout (1: no fork).
 *
 * exit: 0 done, 1 bad usage, 2 write failed, 3 out of memory, 4 fork
 * failed, 5 a child process failed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

enum { BATCH = 64 * 1024 };

/* Writes all of buf, retrying short writes and interruptions. */
static void emit(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, buf, len);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            perror("writer: write");
            _exit(2);
        }
        buf += n;
        len -= (size_t)n;
    }
}

static void *alloc(size_t len)
{
    void *p = malloc(len);
    if (p == NULL) {
        perror("writer: malloc");
        _exit(3);
    }
    return p;
}

/* Writes `count` lines; `who` shifts the letters so that the output of
 * concurrent writers can be told apart. */
static void write_lines(int buffered, long count, long line_len, long who)
{
    char *line = alloc((size_t)line_len);
    for (long i = 0; i + 1 < line_len; i++)
        line[i] = (char)('a' + (i + who) % 26);
    line[line_len - 1] = '\n';

    if (!buffered || line_len > BATCH) {
        for (long i = 0; i < count; i++)
            emit(line, (size_t)line_len);
        free(line);
        return;
    }

    char *batch = alloc(BATCH);
    size_t used = 0;
    for (long i = 0; i < count; i++) {
        if (used + (size_t)line_len > BATCH) {
            emit(batch, used);
            used = 0;
        }
        memcpy(batch + used, line, (size_t)line_len);
        used += (size_t)line_len;
    }
    emit(batch, used);
    free(batch);
    free(line);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s buffered|perline LINES LINE_LEN PROCS\n", argv[0]);
        return 1;
    }
    int buffered = strcmp(argv[1], "buffered") == 0;
    if (!buffered && strcmp(argv[1], "perline") != 0) {
        fprintf(stderr, "writer: unknown MODE %s\n", argv[1]);
        return 1;
    }
    long lines = atol(argv[2]), line_len = atol(argv[3]), procs = atol(argv[4]);
    if (lines < 0 || line_len < 1 || procs < 1) {
        fprintf(stderr, "writer: need LINES >= 0, LINE_LEN >= 1, PROCS >= 1\n");
        return 1;
    }

    if (procs == 1) {
        write_lines(buffered, lines, line_len, 0);
        return 0;
    }

    for (long p = 0; p < procs; p++) {
        long share = lines / procs + (p < lines % procs ? 1 : 0);
        pid_t pid = fork();
        if (pid < 0) {
            perror("writer: fork");
            return 4;
        }
        if (pid == 0) {
            write_lines(buffered, share, line_len, p);
            _exit(0);
        }
    }
    int failed = 0, status;
    for (;;) {
        pid_t pid = wait(&status);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            break; /* ECHILD: every child has been reaped */
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed = 1;
    }
    return failed ? 5 : 0;
}
