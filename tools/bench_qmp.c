/* bench_qmp - QMP round trips per second against a real QEMU.
 *
 * Starts qemu-system-x86_64 -machine none with a QMP socket in a private
 * temporary directory, connects, and runs query-status N times two ways:
 * pipelined (up to W commands in flight) and serially (one at a time).
 * Prints both side by side, or one JSON object with --json. Each phase
 * stops after PHASE_LIMIT_S seconds even if N is not reached, so a run stays
 * well under 20 s on a slow machine.
 *
 * usage: bench_qmp [--json] [-n COUNT] [-w WINDOW]
 * QFLEET_QEMU overrides the QEMU binary. Run it as `tools/bench qmp`. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <uv.h>

#include "tools/benchutil.h"
#include "base/json.h"
#include "qmp/qmp.h"

#define PHASE_LIMIT_S 8.0

struct phase {
    const char *name;
    int window;
    int target;
    int sent, done, errors;
    uint64_t t0, t1;   /* hrtime ns */
    double cpu_s;      /* this process's CPU time (user + system) */
    uint64_t *sent_at; /* per command, ns */
    double *lat_us;
};

static struct {
    uv_loop_t *loop;
    qmp_t *q;
    uv_process_t proc;
    int proc_exited;
    int ready, ready_code;
    char ready_desc[300];
    struct phase *ph;
    int phase_over;
    int quit_done;
    char dir[256], sock[300];
} B;

static void on_ready(qmp_t *q, const conn_err *err, void *data)
{
    (void)q;
    (void)data;
    B.ready = 1;
    B.ready_code = err ? err->code : 0;
    snprintf(B.ready_desc, sizeof(B.ready_desc), "%s", err ? err->desc : "");
    uv_stop(B.loop);
}

static void issue(void);

static void on_reply(qmp_t *q, const qmp_reply *r, void *data)
{
    (void)q;
    struct phase *p = B.ph;
    size_t i = (size_t)(uintptr_t)data;
    uint64_t now = uv_hrtime();
    p->lat_us[p->done] = (double)(now - p->sent_at[i]) / 1e3;
    p->done++;
    if (r->err)
        p->errors++;
    p->t1 = now;
    if (p->done == p->sent && (p->sent == p->target || (double)(now - p->t0) / 1e9 > PHASE_LIMIT_S)) {
        B.phase_over = 1;
        uv_stop(B.loop);
        return;
    }
    issue();
}

/* Keep the window full. */
static void issue(void)
{
    struct phase *p = B.ph;
    int over_time = (double)(uv_hrtime() - p->t0) / 1e9 > PHASE_LIMIT_S;
    while (p->sent < p->target && !over_time && p->sent - p->done < p->window) {
        size_t i = (size_t)p->sent;
        p->sent_at[i] = uv_hrtime();
        int rc = qmp_execute(B.q, "query-status", NULL, 30000, on_reply, (void *)(uintptr_t)i);
        if (rc < 0) {
            fprintf(stderr, "bench_qmp: query-status: %s\n", uv_strerror(rc));
            exit(3);
        }
        p->sent++;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void run_phase(struct phase *p)
{
    p->sent_at = calloc((size_t)p->target, sizeof(*p->sent_at));
    p->lat_us = calloc((size_t)p->target, sizeof(*p->lat_us));
    if (!p->sent_at || !p->lat_us) {
        fprintf(stderr, "bench_qmp: out of memory\n");
        exit(3);
    }
    B.ph = p;
    B.phase_over = 0;
    double cpu0 = bench_cpu_s();
    p->t0 = uv_hrtime();
    issue();
    while (!B.phase_over)
        if (uv_run(B.loop, UV_RUN_DEFAULT) == 0 && !B.phase_over) {
            fprintf(stderr, "bench_qmp: loop ran dry mid-phase\n");
            exit(3);
        }
    if (qmp_error(B.q)) {
        fprintf(stderr, "bench_qmp: %s\n", qmp_error(B.q)->desc);
        exit(3);
    }
    p->cpu_s = bench_cpu_s() - cpu0;
    qsort(p->lat_us, (size_t)p->done, sizeof(double), cmp_double);
}

static double secs(const struct phase *p) { return (double)(p->t1 - p->t0) / 1e9; }
static double rate(const struct phase *p) { return p->done / secs(p); }
static double pct(const struct phase *p, double q)
{
    if (!p->done)
        return 0;
    size_t i = (size_t)(q * (p->done - 1) + 0.5);
    return p->lat_us[i];
}

static void on_exit_cb(uv_process_t *proc, int64_t status, int sig)
{
    (void)proc;
    (void)status;
    (void)sig;
    B.proc_exited = 1;
}

static void on_kill_timer(uv_timer_t *t)
{
    (void)t;
    if (!B.proc_exited)
        uv_process_kill(&B.proc, SIGKILL);
}

static void on_quit(qmp_t *q, const qmp_reply *r, void *data)
{
    (void)q;
    (void)r;
    (void)data;
    B.quit_done = 1;
}

static void on_dead(qmp_t *q, const conn_err *err, void *data)
{
    (void)q;
    (void)err;
    (void)data;
    B.quit_done = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_qmp [--json] [-n COUNT] [-w WINDOW]\n"
               "  query-status round trips against qemu-system-x86_64 -machine none,\n"
               "  pipelined (WINDOW in flight, default 256) and one at a time;\n"
               "  COUNT commands per phase (default 20000), each phase capped at %.0f s.\n",
            PHASE_LIMIT_S);
}

static void emit_json(const struct phase *ph, int n, const qmp_greeting *g)
{
    json_t *root = json_object();
    json_t *ver = json_object();
    json_set_int(ver, "major", g ? g->major : -1);
    json_set_int(ver, "minor", g ? g->minor : -1);
    json_set_int(ver, "micro", g ? g->micro : -1);
    json_set(root, "qemu", ver);
    json_set_str(root, "command", "query-status");
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        const struct phase *p = &ph[i];
        json_t *o = json_object();
        json_set_str(o, "mode", p->name);
        json_set_int(o, "window", p->window);
        json_set_int(o, "commands", p->done);
        json_set_int(o, "errors", p->errors);
        json_set(o, "seconds", json_double(secs(p)));
        json_set(o, "per_second", json_double(rate(p)));
        json_set(o, "p50_us", json_double(pct(p, 0.50)));
        json_set(o, "p99_us", json_double(pct(p, 0.99)));
        json_set(o, "client_cpu_us_per_cmd", json_double(p->done ? p->cpu_s * 1e6 / p->done : 0));
        json_append(arr, o);
    }
    json_set(root, "phases", arr);
    char *s = json_dump_pretty(root, NULL);
    if (s)
        printf("%s\n", s);
    free(s);
    json_free(root);
}

int main(int argc, char **argv)
{
    int as_json = 0, count = 20000, window = 256;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else if ((!strcmp(argv[i], "-n") || !strcmp(argv[i], "-w")) && i + 1 < argc) {
            int v = atoi(argv[i + 1]);
            if (v <= 0) {
                usage(stderr);
                return 2;
            }
            *(argv[i][1] == 'n' ? &count : &window) = v;
            i++;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    B.loop = uv_default_loop();
    const char *tmp = getenv("TMPDIR");
    snprintf(B.dir, sizeof(B.dir), "%s/qf-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(B.dir)) {
        perror("bench_qmp: mkdtemp");
        return 3;
    }
    snprintf(B.sock, sizeof(B.sock), "%s/qmp.sock", B.dir);

    if (qmp_new(B.loop, &B.q) < 0)
        return 3;
    qmp_set_dead_cb(B.q, on_dead, NULL);
    int rc = qmp_connect(B.q, B.sock, 15000, on_ready, NULL);
    if (rc < 0) {
        fprintf(stderr, "bench_qmp: connect: %s\n", uv_strerror(rc));
        return 3;
    }
    const char *qemu = getenv("QFLEET_QEMU");
    char qmparg[400];
    snprintf(qmparg, sizeof(qmparg), "unix:%s,server=on,wait=off", B.sock);
    char *qargv[] = { (char *)(qemu && *qemu ? qemu : "qemu-system-x86_64"), "-machine", "none",
                      "-nodefaults", "-display", "none", "-qmp", qmparg, NULL };
    uv_stdio_container_t stdio[3] = {
        { .flags = UV_IGNORE }, { .flags = UV_IGNORE }, { .flags = UV_INHERIT_FD, .data.fd = 2 } };
    uv_process_options_t o = { .exit_cb = on_exit_cb, .file = qargv[0], .args = qargv,
                               .stdio_count = 3, .stdio = stdio };
    rc = uv_spawn(B.loop, &B.proc, &o);
    if (rc < 0) {
        fprintf(stderr, "bench_qmp: cannot start %s: %s\n", qargv[0], uv_strerror(rc));
        qmp_peer_exited(B.q);
    }
    while (!B.ready)
        uv_run(B.loop, UV_RUN_DEFAULT);
    int status = 0;
    if (B.ready_code) {
        fprintf(stderr, "bench_qmp: %s\n", B.ready_desc);
        status = 3;
    } else {
        /* warm up: page in the paths on both sides */
        struct phase warm = { .name = "warm-up", .window = 16, .target = 200 };
        run_phase(&warm);
        free(warm.sent_at);
        free(warm.lat_us);
        struct phase ph[2] = {
            { .name = "pipelined", .window = window, .target = count },
            { .name = "serial", .window = 1, .target = count },
        };
        for (int i = 0; i < 2; i++)
            run_phase(&ph[i]);
        const qmp_greeting *g = qmp_get_greeting(B.q);
        if (as_json) {
            emit_json(ph, 2, g);
        } else {
            printf("QMP query-status round trips, QEMU %d.%d.%d -machine none\n\n", g->major,
                   g->minor, g->micro);
            char h0[32], h1[32];
            snprintf(h0, sizeof(h0), "pipelined (%d)", ph[0].window);
            snprintf(h1, sizeof(h1), "serial (1)");
            printf("%-18s %16s %16s\n", "", h0, h1);
            printf("%-18s %16d %16d\n", "commands", ph[0].done, ph[1].done);
            printf("%-18s %16d %16d\n", "errors", ph[0].errors, ph[1].errors);
            printf("%-18s %16.3f %16.3f\n", "seconds", secs(&ph[0]), secs(&ph[1]));
            printf("%-18s %16.0f %16.0f\n", "per second", rate(&ph[0]), rate(&ph[1]));
            printf("%-18s %16.1f %16.1f\n", "p50 latency us", pct(&ph[0], 0.5), pct(&ph[1], 0.5));
            printf("%-18s %16.1f %16.1f\n", "p99 latency us", pct(&ph[0], 0.99), pct(&ph[1], 0.99));
            printf("%-18s %16.1f %16.1f\n", "client cpu us/cmd", ph[0].cpu_s * 1e6 / ph[0].done,
                   ph[1].cpu_s * 1e6 / ph[1].done);
        }
        for (int i = 0; i < 2; i++) {
            if (ph[i].errors)
                status = 1;
            free(ph[i].sent_at);
            free(ph[i].lat_us);
        }
        qmp_execute(B.q, "quit", NULL, 5000, on_quit, NULL);
        while (!B.quit_done && uv_run(B.loop, UV_RUN_ONCE))
            ;
    }
    qmp_close(B.q, NULL, NULL);
    if (rc == 0) {
        /* QEMU exits on quit; make sure of it either way */
        uv_timer_t t;
        uv_timer_init(B.loop, &t);
        uv_timer_start(&t, on_kill_timer, 3000, 0);
        while (!B.proc_exited)
            uv_run(B.loop, UV_RUN_ONCE);
        uv_close((uv_handle_t *)&t, NULL);
        uv_close((uv_handle_t *)&B.proc, NULL);
    }
    uv_run(B.loop, UV_RUN_DEFAULT);
    unlink(B.sock);
    rmdir(B.dir);
    return status;
}
