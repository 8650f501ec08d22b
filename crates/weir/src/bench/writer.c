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
 * For `weir bench gate`, two modes bounded by time instead of a line count
 * (one process, plain lines):
 *
 * usage: writer timed SECONDS LINE_LEN
 *   Whole lines packed into 64 KiB writes, as fast as the pipe takes them,
 *   until SECONDS (a decimal number) have passed; the clock is read after
 *   every write, so a write held back by a blocking monitor ends the run
 *   late rather than being cut short.
 *
 * usage: writer paced SECONDS LINE_LEN BYTES_PER_SEC
 *   Every PACE_TICK_NS, the whole lines due by then at BYTES_PER_SEC since
 *   the start, packed into writes of at most 64 KiB, for SECONDS; in all
 *   floor(SECONDS * BYTES_PER_SEC / LINE_LEN) lines, the last ones written
 *   at the end so that the total is exact whatever the scheduler did.
 *
 * Optional, in every mode: when the environment variable
 * WEIR_WRITER_REPORT names a file, the writer measures its own throughput
 * and writes it there at exit, as one JSON object:
 *   {"elapsed_seconds": S, "bytes": B}
 * S runs on CLOCK_MONOTONIC from just before the first write() to just
 * after the last one returns; B counts the bytes written. With PROCS > 1
 * only the parent reports: from just before its first fork() to the moment
 * every child has exited, and B is what all of them wrote. Nothing else
 * changes: the same arguments, the same output.
 *
 * exit: 0 done, 1 bad usage, 2 write failed, 3 out of memory, 4 fork
 * failed, 5 a child process failed, 6 the report could not be written.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { BATCH = 64 * 1024 };

/* The head of a CRI record as weir writes it: an RFC 3339 UTC time with
 * nanoseconds (always 30 bytes), the stream and the "full line" tag. */
#define CRI_HEAD "2026-01-01T00:00:00.000000000Z stdout F "
enum { CRI_HEAD_LEN = sizeof(CRI_HEAD) - 1 };

/* The self-report of WEIR_WRITER_REPORT: where it goes (NULL: none), when
 * the first write() started and how many bytes were written. */
static const char *report_path;
static struct timespec report_start;
static int report_started;
static unsigned long long report_bytes;

/* Writes all of buf, retrying short writes and interruptions. */
static void emit(const char *buf, size_t len)
{
    if (report_path != NULL) {
        if (!report_started) {
            clock_gettime(CLOCK_MONOTONIC, &report_start);
            report_started = 1;
        }
        report_bytes += len;
    }
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

/* Seconds on the monotonic clock. */
static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A 64 KiB buffer holding as many whole lines of `line_len` as fit (at least
 * one); returns its filled length through `used`. */
static char *line_batch(long line_len, size_t *used)
{
    size_t size = (size_t)line_len > BATCH ? (size_t)line_len : BATCH;
    char *batch = alloc(size);
    size_t lines = size / (size_t)line_len;
    for (size_t l = 0; l < lines; l++) {
        char *line = batch + l * (size_t)line_len;
        for (long i = 0; i + 1 < line_len; i++)
            line[i] = (char)('a' + i % 26);
        line[line_len - 1] = '\n';
    }
    *used = lines * (size_t)line_len;
    return batch;
}

/* `writer timed SECONDS LINE_LEN`: full speed until the time is up. */
static void write_timed(double seconds, long line_len)
{
    size_t used;
    char *batch = line_batch(line_len, &used);
    double deadline = now_seconds() + seconds;
    do
        emit(batch, used);
    while (now_seconds() < deadline);
    free(batch);
}

/* How often the paced writer wakes up: 10 ms, so that a pace far below a
 * monitor's burst (a tenth of a second of budget) is never bursty to it. */
enum { PACE_TICK_NS = 10 * 1000 * 1000 };

/* Writes `lines` whole lines from `batch` (holding `per_batch` lines). */
static void emit_lines(const char *batch, long per_batch, long line_len, long lines)
{
    while (lines > 0) {
        long n = lines < per_batch ? lines : per_batch;
        emit(batch, (size_t)(n * line_len));
        lines -= n;
    }
}

/* `writer paced SECONDS LINE_LEN BYTES_PER_SEC`: a steady writer below its
 * budget. */
static void write_paced(double seconds, long line_len, double rate)
{
    size_t used;
    char *batch = line_batch(line_len, &used);
    long per_batch = (long)(used / (size_t)line_len);
    long total = (long)(seconds * rate / (double)line_len);
    long sent = 0;
    struct timespec start, tick;
    clock_gettime(CLOCK_MONOTONIC, &start);
    tick = start;
    for (;;) {
        tick.tv_nsec += PACE_TICK_NS;
        while (tick.tv_nsec >= 1000000000L) {
            tick.tv_nsec -= 1000000000L;
            tick.tv_sec++;
        }
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &tick, NULL) == EINTR)
            ;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double elapsed = (double)(now.tv_sec - start.tv_sec) +
                         (double)(now.tv_nsec - start.tv_nsec) / 1e9;
        long due = elapsed >= seconds ? total : (long)(elapsed * rate / (double)line_len);
        if (due > total)
            due = total;
        emit_lines(batch, per_batch, line_len, due - sent);
        sent = due;
        if (sent >= total && elapsed >= seconds)
            break;
    }
    free(batch);
}

/* Writes the self-report, if one was asked for: the time from `report_start`
 * (never set when nothing was written: 0 s) to now, and `report_bytes`.
 * Returns `rc`, or 6 when the report cannot be written. */
static int report(int rc)
{
    if (report_path == NULL)
        return rc;
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    double elapsed = 0.0;
    if (report_started)
        elapsed = (double)(end.tv_sec - report_start.tv_sec) +
                  (double)(end.tv_nsec - report_start.tv_nsec) / 1e9;
    FILE *f = fopen(report_path, "w");
    if (f == NULL) {
        perror("writer: WEIR_WRITER_REPORT");
        return 6;
    }
    int bad = fprintf(f, "{\"elapsed_seconds\": %.9f, \"bytes\": %llu}\n", elapsed,
                      report_bytes) < 0;
    if (fclose(f) != 0 || bad) {
        perror("writer: WEIR_WRITER_REPORT");
        return 6;
    }
    return rc;
}

/* Parses the time-bounded modes; returns -1 when argv is not one of them. */
static int timed_main(int argc, char **argv)
{
    int timed = strcmp(argv[1], "timed") == 0;
    int paced = strcmp(argv[1], "paced") == 0;
    if (!timed && !paced)
        return -1;
    if ((timed && argc != 4) || (paced && argc != 5)) {
        fprintf(stderr, "usage: %s timed SECONDS LINE_LEN | paced SECONDS LINE_LEN BYTES_PER_SEC\n",
                argv[0]);
        return 1;
    }
    double seconds = atof(argv[2]);
    long line_len = atol(argv[3]);
    double rate = paced ? atof(argv[4]) : 0.0;
    if (!(seconds > 0.0) || line_len < 1 || (paced && !(rate > 0.0))) {
        fprintf(stderr, "writer: need SECONDS > 0, LINE_LEN >= 1, BYTES_PER_SEC > 0\n");
        return 1;
    }
    if (timed)
        write_timed(seconds, line_len);
    else
        write_paced(seconds, line_len, rate);
    return report(0);
}

int main(int argc, char **argv)
{
    report_path = getenv("WEIR_WRITER_REPORT");
    if (report_path != NULL && report_path[0] == '\0')
        report_path = NULL;
    if (argc >= 2) {
        int rc = timed_main(argc, argv);
        if (rc >= 0)
            return rc;
    }
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
        return report(0);
    }

    /* The parent writes nothing itself: its report covers the children,
     * from the first fork to the last exit, and the bytes they were given. */
    if (report_path != NULL) {
        clock_gettime(CLOCK_MONOTONIC, &report_start);
        report_started = 1;
        report_bytes = (unsigned long long)lines *
                       (unsigned long long)(line_len + (cri ? CRI_HEAD_LEN : 0));
    }
    for (long p = 0; p < procs; p++) {
        long share = lines / procs + (p < lines % procs ? 1 : 0);
        pid_t pid = fork();
        if (pid < 0) {
            perror("writer: fork");
            return 4;
        }
        if (pid == 0) {
            report_path = NULL;
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
    return report(failed ? 5 : 0);
}
