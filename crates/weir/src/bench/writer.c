/*
 * The application side of `weir bench capture`: writes a known number of
 * fixed-length lines to stdout as fast as it can, so that every peer (bare
 * cat, weir run, conmon) is fed exactly the same bytes in exactly the same
 * write() pattern. weir embeds this file and compiles it with
 * `cc -O2 -static` at bench time; static linking lets the same binary run
 * inside an OCI rootfs that holds nothing but busybox.
 *
 * usage: writer MODE LINES LINE_LEN PROCS [cri]
 *   MODE      "buffered": whole lines packed into a 64 KiB buffer, one
 *             write() when the next line would not fit (and one at the end);
 *             "perline": one write() per line.
 *   LINES     total lines, shared among PROCS processes (the first
 *             LINES % PROCS processes write one more).
 *   LINE_LEN  bytes per line including the '\n' (1 gives empty lines).
 *   PROCS     processes writing to the same stdout (1: no fork).
 *   cri       optional: write every line already formatted as the CRI
 *             record weir stores for it, "<time> stdout F <content>\n" with
 *             the fixed time CRI_TIME, i.e. CRI_HEAD_LEN more bytes per
 *             line. `cat` of this output writes the same bytes as weir, which
 *             shows the cost of the bytes alone. MODE and PROCS apply to
 *             whole records as they do to plain lines.
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

/* The head of a CRI record as weir writes it: an RFC 3339 UTC time with
 * nanoseconds (always 30 bytes), the stream and the "full line" tag. */
#define CRI_HEAD "2026-01-01T00:00:00.000000000Z stdout F "
enum { CRI_HEAD_LEN = sizeof(CRI_HEAD) - 1 };

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

/* Writes `count` lines, each behind a CRI head when `cri` is set; `who`
 * shifts the letters so that the output of concurrent writers can be told
 * apart. */
static void write_lines(int buffered, long count, long line_len, long who, int cri)
{
    long head = cri ? CRI_HEAD_LEN : 0;
    char *line = alloc((size_t)(head + line_len));
    memcpy(line, CRI_HEAD, (size_t)head);
    for (long i = 0; i + 1 < line_len; i++)
        line[head + i] = (char)('a' + (i + who) % 26);
    line_len += head;
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
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: %s buffered|perline LINES LINE_LEN PROCS [cri]\n", argv[0]);
        return 1;
    }
    int cri = argc == 6;
    if (cri && strcmp(argv[5], "cri") != 0) {
        fprintf(stderr, "writer: unknown option %s (only \"cri\")\n", argv[5]);
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
        write_lines(buffered, lines, line_len, 0, cri);
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
            write_lines(buffered, share, line_len, p, cri);
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
