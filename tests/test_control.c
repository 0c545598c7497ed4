/* test_control.c - the control socket: a real fleet's server on a real Unix
 * socket, driven by the blocking client and by raw bytes from a thread. */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/json.h"
#include "src/ctl/control.h"
#include "src/fleet/fleet.h"
#include "testutil.h"

static char dir[256], sock[320];

struct server {
    uv_loop_t loop;
    fleet_t *f;
    control_t *ctl;
    uv_async_t wake;
    int downs;
};

static void on_down(control_t *c, void *data) { ((struct server *)data)->downs++; }

static void on_wake(uv_async_t *a)
{
    struct server *s = a->data;
    control_close(s->ctl);
    fleet_free(s->f, NULL, NULL);
    uv_close((uv_handle_t *)&s->wake, NULL);
}

static void *serve(void *arg)
{
    struct server *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void start(struct server *s, pthread_t *th)
{
    char err[512], state[300], run[300];
    cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "ctl"), 0);
    snprintf(state, sizeof(state), "%s/state", dir);
    snprintf(run, sizeof(run), "%s/run", dir);
    snprintf(sock, sizeof(sock), "%s/control.sock", run);
    uv_loop_init(&s->loop);
    fleet_opts o = { .state_dir = state, .run_dir = run };
    cr_assert_eq(fleet_new(&s->loop, &o, NULL, NULL, &s->f, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(control_start(&s->loop, s->f, sock, on_down, s, &s->ctl, err, sizeof(err)), 0, "%s", err);
    uv_async_init(&s->loop, &s->wake, on_wake);
    s->wake.data = s;
    cr_assert_eq(pthread_create(th, NULL, serve, s), 0);
}

static void stop(struct server *s, pthread_t th)
{
    uv_async_send(&s->wake);
    pthread_join(th, NULL);
    uv_loop_close(&s->loop);
    tu_rmtree(dir);
}

static json_t *ask(const char *text)
{
    char err[256];
    json_t *req = json_parse(text, strlen(text), err, sizeof(err));
    cr_assert(req, "%s", err);
    json_t *rep = NULL;
    cr_assert_eq(control_request(sock, req, &rep, 5000, err, sizeof(err)), 0, "%s", err);
    json_free(req);
    return rep;
}

Test(control, socket_is_private)
{
    struct server s = { 0 };
    pthread_t th;
    start(&s, &th);
    struct stat st;
    cr_assert_eq(stat(sock, &st), 0);
    cr_assert(S_ISSOCK(st.st_mode));
    cr_assert_eq(st.st_mode & 0077, 0, "control socket mode %o", st.st_mode & 0777);
    stop(&s, th);
}

Test(control, requests_and_errors)
{
    struct server s = { 0 };
    pthread_t th;
    start(&s, &th);

    json_t *r = ask("{\"id\":7,\"cmd\":\"status\"}");
    cr_assert_eq(json_get_int(r, "id", -1), 7, "the reply echoes the id");
    cr_assert_eq(json_get_int(json_get(r, "return"), "version", 0), 1);
    cr_assert_eq(json_len(json_path(r, "return.guests")), 0);
    json_free(r);

    r = ask("{\"cmd\":\"qga\",\"guest\":\"vm9\",\"execute\":\"guest-ping\"}");
    cr_assert_str_eq(json_str(json_path(r, "error.class")), "NoSuchGuest");
    cr_assert(strstr(json_str(json_path(r, "error.desc")), "vm9"));
    json_free(r);

    r = ask("{\"cmd\":\"reboot-the-host\"}");
    cr_assert_str_eq(json_str(json_path(r, "error.class")), "BadRequest");
    json_free(r);

    r = ask("{\"no\":\"cmd\"}");
    cr_assert_str_eq(json_str(json_path(r, "error.class")), "BadRequest");
    json_free(r);

    r = ask("[1,2,3]");
    cr_assert_str_eq(json_str(json_path(r, "error.class")), "BadRequest");
    json_free(r);

    r = ask("{\"cmd\":\"down\"}");
    cr_assert(json_get(r, "return"));
    json_free(r);
    stop(&s, th);
    cr_assert_eq(s.downs, 1);
}

Test(control, garbage_then_a_good_request_on_one_connection)
{
    struct server s = { 0 };
    pthread_t th;
    start(&s, &th);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, sock);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    /* Not JSON, binary junk, then a real request: each line gets an answer
     * and the connection survives the garbage. */
    const char junk[] = "this is not json\n\x01\x02\xff\xfe{]\n{\"cmd\":\"status\",\"id\":3}\n";
    cr_assert_eq(write(fd, junk, sizeof(junk) - 1), (ssize_t)(sizeof(junk) - 1));
    char buf[65536];
    size_t len = 0;
    int lines = 0;
    double end = tu_now_ms() + 5000;
    while (lines < 3 && tu_now_ms() < end) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        cr_assert_gt(n, 0, "the controller dropped the connection");
        len += (size_t)n;
        buf[len] = '\0';
        lines = 0;
        for (char *p = buf; (p = strchr(p, '\n')); p++)
            lines++;
    }
    cr_assert_eq(lines, 3, "got: %s", buf);
    char *second = strchr(buf, '\n') + 1, *third = strchr(second, '\n') + 1;
    json_t *a = json_parse(buf, (size_t)(second - 1 - buf), NULL, 0);
    json_t *c = json_parse(third, strcspn(third, "\n"), NULL, 0);
    cr_assert_str_eq(json_str(json_path(a, "error.class")), "BadRequest");
    cr_assert_eq(json_get_int(c, "id", -1), 3);
    cr_assert(json_get(c, "return"));
    json_free(a);
    json_free(c);
    close(fd);
    stop(&s, th);
}

Test(control, client_reports_a_missing_controller)
{
    char err[256];
    json_t *req = json_object(), *rep = NULL;
    json_set_str(req, "cmd", "status");
    int rc = control_request("/nonexistent/control.sock", req, &rep, 1000, err, sizeof(err));
    cr_assert_lt(rc, 0);
    cr_assert(strstr(err, "controller"), "%s", err);
    json_free(req);
}

/* ---- a real controller: `qfleet up` in its own process ----
 *
 * Its one guest fails at once (no such kernel), which is all these tests
 * need: the controller stays up with a registry and its control socket. */

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define QFLEET QF_BINARY_DIR "/src/qfleet"
#define QMPCTL QF_BINARY_DIR "/tools/qmpctl"

struct ctlr {
    char base[256];    /* tu_mkdtemp */
    char state[512];
    char run[600];
    char sock[700];
    pid_t pid;
};

/* Fork and exec argv with stdout/stderr into files under base; nofile > 0
 * caps the child's descriptors; as_nobody drops root (to meet EACCES). */
static pid_t spawn_to(const char *base, const char *tag, char *const argv[], const char *state,
                      rlim_t nofile, int as_nobody)
{
    char out[400], errp[400];
    snprintf(out, sizeof(out), "%s/%s.out", base, tag);
    snprintf(errp, sizeof(errp), "%s/%s.err", base, tag);
    tu_child c = { .out = out, .err = errp, .state_dir = state, .nofile = nofile,
                   .as_nobody = as_nobody };
    return tu_start((const char *const *)argv, &c);
}

static char *slurp_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *s = calloc(1, 1 << 16);
    cr_assert(s);
    if (f) {
        size_t n = fread(s, 1, (1 << 16) - 1, f);
        s[n] = '\0';
        fclose(f);
    }
    return s;
}

static char *output_of(const char *base, const char *tag, const char *ext)
{
    char p[400];
    snprintf(p, sizeof(p), "%s/%s.%s", base, tag, ext);
    return slurp_file(p);
}

/* base is made; state = base/sub (sub may be long), run = state/runs/fleet. */
static void ctlr_start(struct ctlr *c, const char *sub, rlim_t nofile)
{
    cr_assert_eq(tu_mkdtemp(c->base, sizeof(c->base), "ctlr"), 0);
    snprintf(c->state, sizeof(c->state), "%s/%s", c->base, sub);
    snprintf(c->run, sizeof(c->run), "%s/runs/fleet", c->state);
    snprintf(c->sock, sizeof(c->sock), "%s/control.sock", c->run);
    char cfg[400], cmd[sizeof(c->state) + 16];
    snprintf(cmd, sizeof(cmd), "%s", c->state);
    for (char *p = cmd + strlen(c->base) + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        mkdir(cmd, 0700);
        *p = '/';
    }
    mkdir(c->state, 0700);
    snprintf(cfg, sizeof(cfg), "%s/vm.cfg", c->base);
    /* A kernel QEMU cannot load: the guest fails at once, after launch. */
    char kernel[400];
    snprintf(kernel, sizeof(kernel), "%s/not-a-kernel", c->base);
    FILE *f = fopen(kernel, "w");
    cr_assert(f);
    fputs("not a kernel\n", f);
    fclose(f);
    f = fopen(cfg, "w");
    cr_assert(f);
    fprintf(f, "[vm0]\nmem =\n    size=64;\nkernel =\n    file=%s;\n"
               "enable_kvm =\n    enable=no;\n", kernel);
    fclose(f);
    char *argv[] = { QFLEET, "up", cfg, "--state-dir", c->state, "--run-dir", c->run, "--no-ssh", "-q", NULL };
    c->pid = spawn_to(c->base, "fleet", argv, NULL, nofile, 0);
    int up = tu_wait_path(c->sock, 30000) == 0;
    char *e = output_of(c->base, "fleet", "err");
    cr_assert(up, "no control socket %s: %s", c->sock, e);
    free(e);
    /* Settled: its one guest has failed (and the registry says so). */
    char reg[700];
    snprintf(reg, sizeof(reg), "%s/guests.json", c->run);
    double end = tu_now_ms() + 30000;
    char *txt = slurp_file(reg);
    while (!strstr(txt, "\"failed\"") && tu_now_ms() < end) {
        free(txt);
        usleep(20000);
        txt = slurp_file(reg);
    }
    cr_assert(strstr(txt, "\"failed\""), "vm0 never failed: %s", txt);
    free(txt);
}

static int ctlr_stop(struct ctlr *c)
{
    int rc = 0;
    if (c->pid > 0) {
        kill(c->pid, SIGTERM);
        rc = tu_wait_exit(c->pid, 30000);
        c->pid = 0;
    }
    tu_rmtree(c->base);
    return rc;
}

/* Run a binary to its end: exit code; its output in base/tag.{out,err}. */
static int run_tool(const char *base, const char *tag, char *const argv[], const char *state,
                    int as_nobody)
{
    return tu_wait_exit(spawn_to(base, tag, argv, state, 0, as_nobody), 60000);
}

static json_t *ask_at(const char *path, const char *text)
{
    char err[1024];
    json_t *req = json_parse(text, strlen(text), NULL, 0), *rep = NULL;
    cr_assert(req);
    int rc = control_request(path, req, &rep, 10000, err, sizeof(err));
    json_free(req);
    cr_assert_eq(rc, 0, "%s", err);
    return rep;
}

static int dial_raw(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    cr_assert_lt(strlen(path), sizeof(sa.sun_path));
    strcpy(sa.sun_path, path);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "%s: %s", path, strerror(errno));
    return fd;
}

/* A field of /proc/PID/status in kB ("VmRSS", "VmHWM"). */
static long proc_kb(pid_t pid, const char *field)
{
    char p[64], line[256];
    snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
    FILE *f = fopen(p, "r");
    long v = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, field, n) && line[n] == ':')
            v = atol(line + n + 1);
    if (f)
        fclose(f);
    return v;
}

/* utime + stime of pid in clock ticks (/proc/PID/stat fields 14 and 15). */
static long proc_cpu_ticks(pid_t pid)
{
    char p[64], buf[1024];
    snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(p, "r");
    cr_assert(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *s = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    cr_assert(s && sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2);
    return (long)(ut + st);
}

/* Read replies (one a line) until EOF; how many lines came. */
static long count_lines_to_eof(int fd, char *first, size_t firstlen)
{
    char buf[65536];
    long lines = 0;
    size_t kept = 0;
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        cr_assert_eq(poll(&p, 1, 30000), 1, "no EOF after %ld replies", lines);
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        if (first && kept + 1 < firstlen) {
            size_t k = (size_t)n < firstlen - 1 - kept ? (size_t)n : firstlen - 1 - kept;
            memcpy(first + kept, buf, k);
            kept += k;
            first[kept] = '\0';
        }
        for (ssize_t i = 0; i < n; i++)
            lines += buf[i] == '\n';
    }
    return lines;
}

/* Issue 17 item 4: a state dir far longer than sun_path (108 bytes). */
Test(control, long_state_dir_end_to_end, .timeout = 120)
{
    struct ctlr c = { 0 };
    char sub[200];
    snprintf(sub, sizeof(sub), "%.60s/%.60s/%.40s", "state-dir-with-a-long-name-0123456789-0123456789-0123456789-",
             "and-a-second-long-component-0123456789-0123456789-0123456789", "and-a-third-0123456789-0123456789-012");
    ctlr_start(&c, sub, 0);
    cr_assert_geq(strlen(c.state), 150, "%s", c.state);
    cr_assert_gt(strlen(c.sock), 108);

    json_t *r = ask_at(c.sock, "{\"cmd\":\"status\",\"id\":1}");
    cr_assert_eq(json_get_int(r, "id", -1), 1);
    cr_assert(json_get(r, "return"));
    json_free(r);

    char *list[] = { QMPCTL, "list", "--json", NULL };
    int rc = run_tool(c.base, "list", list, c.state, 0);
    char *out = output_of(c.base, "list", "out"), *err = output_of(c.base, "list", "err");
    cr_assert_eq(rc, 0, "qmpctl list: %d: %s", rc, err);
    cr_assert(strstr(out, "\"vm0\""), "%s", out);
    free(out);
    free(err);

    char *down[] = { QFLEET, "down", "--state-dir", c.state, NULL };
    rc = run_tool(c.base, "down", down, NULL, 0);
    err = output_of(c.base, "down", "err");
    cr_assert_eq(rc, 0, "qfleet down: %d: %s", rc, err);
    free(err);
    cr_assert_geq(tu_wait_exit(c.pid, 30000), 0, "the controller did not exit after down");
    c.pid = 0;
    cr_assert_neq(access(c.sock, F_OK), 0, "the control socket outlived its controller");
    ctlr_stop(&c);
}

/* Issue 17 item 6: a client that pipelines requests and never reads costs
 * the controller a bounded amount of memory, and still gets every reply
 * once it reads. */
Test(control, non_reading_client_has_bounded_memory, .timeout = 180)
{
    struct ctlr c = { 0 };
    ctlr_start(&c, "state", 0);
    json_t *r = ask_at(c.sock, "{\"cmd\":\"status\"}");
    json_free(r);
    long before = proc_kb(c.pid, "VmRSS");
    cr_assert_gt(before, 0);

    int fd = dial_raw(c.sock);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    static const char req[] = "{\"cmd\":\"status\"}\n";
    char chunk[(sizeof(req) - 1) * 512];
    for (size_t i = 0; i < 512; i++)
        memcpy(chunk + i * (sizeof(req) - 1), req, sizeof(req) - 1);
    /* 2 MB of requests (some 120k status replies, far over 100 MB if all
     * were queued), or until the controller stops taking them. */
    size_t sent = 0, off = 0;
    while (sent < (2u << 20)) {
        ssize_t n = write(fd, chunk + off, sizeof(chunk) - off);
        if (n > 0) {
            sent += (size_t)n;
            off = (off + (size_t)n) % sizeof(chunk);
            continue;
        }
        cr_assert(n < 0 && errno == EAGAIN, "write: %s", strerror(errno));
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        if (poll(&p, 1, 3000) == 0)
            break; /* it stopped reading us: what this test wants to see */
    }
    /* Another client is still served, and then the first one's replies
     * have all been made or are being held back. */
    r = ask_at(c.sock, "{\"cmd\":\"status\",\"id\":2}");
    cr_assert_eq(json_get_int(r, "id", -1), 2);
    json_free(r);
    long peak = proc_kb(c.pid, "VmHWM"), now = proc_kb(c.pid, "VmRSS");
    cr_assert_lt(peak - before, 48 * 1024, "RSS %ld kB -> peak %ld kB (now %ld kB) after %zu bytes of "
                 "unread requests", before, peak, now, sent);
    /* Reading now: one reply per complete request, then EOF after our own. */
    fcntl(fd, F_SETFL, 0);
    size_t whole = sent / (sizeof(req) - 1), part = sent % (sizeof(req) - 1);
    if (part)
        cr_assert_eq(write(fd, req + part, sizeof(req) - 1 - part), (ssize_t)(sizeof(req) - 1 - part));
    shutdown(fd, SHUT_WR);
    long got = count_lines_to_eof(fd, NULL, 0);
    cr_assert_eq(got, (long)whole + (part ? 1 : 0), "sent %zu requests, got %ld replies", whole, got);
    close(fd);
    ctlr_stop(&c);
}

/* Issue 17 item 8: EOF means "no more requests", not "gone". */
Test(control, half_closed_client_gets_every_reply, .timeout = 120)
{
    struct ctlr c = { 0 };
    ctlr_start(&c, "state", 0);
    int fd = dial_raw(c.sock);
    static const char req[] = "{\"cmd\":\"status\"}\n";
    enum { N = 1000 };
    char *all = malloc(N * (sizeof(req) - 1) + 64);
    for (int i = 0; i < N; i++)
        memcpy(all + (size_t)i * (sizeof(req) - 1), req, sizeof(req) - 1);
    /* and a last request without its newline: it still counts */
    size_t len = N * (sizeof(req) - 1);
    len += (size_t)sprintf(all + len, "{\"cmd\":\"stop\",\"guest\":\"vm0\",\"id\":\"last\"}");
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, all + off, len - off);
        cr_assert_gt(n, 0);
        off += (size_t)n;
    }
    free(all);
    shutdown(fd, SHUT_WR);
    long got = count_lines_to_eof(fd, NULL, 0);
    cr_assert_eq(got, N + 1, "%d requests, then EOF: got %ld replies", N + 1, got);
    close(fd);

    /* One request and EOF at once, as `printf ... | socat` sends it. */
    fd = dial_raw(c.sock);
    const char one[] = "{\"cmd\":\"stop\",\"guest\":\"vm0\",\"id\":9}\n";
    cr_assert_eq(write(fd, one, sizeof(one) - 1), (ssize_t)(sizeof(one) - 1));
    shutdown(fd, SHUT_WR);
    char first[4096] = "";
    cr_assert_eq(count_lines_to_eof(fd, first, sizeof(first)), 1);
    json_t *r = json_parse(first, strcspn(first, "\n"), NULL, 0);
    cr_assert_eq(json_get_int(r, "id", -1), 9, "%s", first);
    json_free(r);
    close(fd);
    ctlr_stop(&c);
}

/* Issue 17 item 7: with its fd table full the controller does not spin,
 * and once descriptors are free again it answers. */
Test(control, full_fd_table_does_not_spin, .timeout = 120)
{
    struct ctlr c = { 0 };
    ctlr_start(&c, "state", 64);
    enum { HOLD = 120 };
    int fds[HOLD];
    for (int i = 0; i < HOLD; i++)
        fds[i] = dial_raw(c.sock);
    /* It has run out of descriptors once some connection got EOF. */
    int closed = 0;
    for (int i = HOLD - 1; i >= 0 && !closed; i--) {
        struct pollfd p = { .fd = fds[i], .events = POLLIN };
        char b;
        closed = poll(&p, 1, 10000) == 1 && read(fds[i], &b, 1) == 0;
    }
    cr_assert(closed, "the controller never ran out of descriptors (RLIMIT_NOFILE 64)");
    /* A newcomer while the table is full: dropped at once, not left hanging. */
    int extra = dial_raw(c.sock);
    struct pollfd p = { .fd = extra, .events = POLLIN };
    char b;
    cr_assert_eq(poll(&p, 1, 10000), 1);
    cr_assert_eq(read(extra, &b, 1), 0);
    close(extra);
    /* A second with the table full: a spinning loop burns a core. */
    long t0 = proc_cpu_ticks(c.pid);
    double w0 = tu_now_ms();
    usleep(2000000);
    long ticks = proc_cpu_ticks(c.pid) - t0;
    double wall_ticks = (tu_now_ms() - w0) / 1000.0 * (double)sysconf(_SC_CLK_TCK);
    cr_assert_lt(ticks, wall_ticks * 0.15, "the controller used %ld of %.0f clock ticks with its fd "
                 "table full", ticks, wall_ticks);
    for (int i = 0; i < HOLD; i++)
        close(fds[i]);
    /* Descriptors free again: served as before. */
    json_t *r = ask_at(c.sock, "{\"cmd\":\"status\",\"id\":5}");
    cr_assert_eq(json_get_int(r, "id", -1), 5);
    json_free(r);
    ctlr_stop(&c);
}

/* Issue 17 item 9: the suites of a live `qfleet run` are runs qmpctl and
 * qfleet down find. The guest's kernel is a FIFO nobody writes: its QEMU
 * waits in "launching", which keeps the suite (and its fleet) alive for
 * as long as the test needs, at no CPU cost. */
Test(control, qmpctl_finds_the_suites_of_a_live_qfleet_run, .timeout = 120)
{
    char base[256], state[320], run[400], csock[450], p[400];
    cr_assert_eq(tu_mkdtemp(base, sizeof(base), "ctlrun"), 0);
    snprintf(state, sizeof(state), "%s/state", base);
    snprintf(run, sizeof(run), "%s/runs/r", state);
    snprintf(csock, sizeof(csock), "%s/hold/control.sock", run);
    mkdir(state, 0700);
    snprintf(p, sizeof(p), "%s/kernel.fifo", base);
    cr_assert_eq(mkfifo(p, 0600), 0);
    snprintf(p, sizeof(p), "%s/fifo.cfg", base);
    FILE *f = fopen(p, "w");
    cr_assert(f);
    for (int i = 0; i < 2; i++)
        fprintf(f, "[vm%d]\nmem =\n    size=64;\nkernel =\n    file=%s/kernel.fifo;\n"
                   "enable_kvm =\n    enable=no;\n", i, base);
    fclose(f);
    /* Two suites, one guest each: vm0 in hold, vm1 in hold2. */
    char s1[400], s2[400];
    snprintf(s1, sizeof(s1), "%s/hold.suite", base);
    snprintf(s2, sizeof(s2), "%s/hold2.suite", base);
    for (int i = 0; i < 2; i++) {
        f = fopen(i ? s2 : s1, "w");
        cr_assert(f);
        fprintf(f, "[suite]\ncfg = %s/fifo.cfg\nvms = vm%d\n[case a]\nhost: true\n", base, i);
        fclose(f);
    }
    char *argv[] = { QFLEET, "run", s1, s2, "--state-dir", state, "--run-dir", run, "--plain", NULL };
    pid_t pid = spawn_to(base, "run", argv, NULL, 0, 0);
    snprintf(p, sizeof(p), "%s/hold2/control.sock", run);
    int up = tu_wait_path(csock, 30000) == 0 && tu_wait_path(p, 30000) == 0;
    /* and each suite's registry shows its guest */
    for (int i = 0; up && i < 2; i++) {
        char reg[450], want[16];
        snprintf(reg, sizeof(reg), "%s/%s/guests.json", run, i ? "hold2" : "hold");
        snprintf(want, sizeof(want), "\"vm%d\"", i);
        double end = tu_now_ms() + 30000;
        char *txt = slurp_file(reg);
        while (!strstr(txt, want) && tu_now_ms() < end) {
            free(txt);
            usleep(20000);
            txt = slurp_file(reg);
        }
        up = strstr(txt, want) != NULL;
        free(txt);
    }
    char *e = output_of(base, "run", "err");
    cr_assert(up, "the suites did not come up: %s", e);
    free(e);

    char *list[] = { QMPCTL, "list", "--json", NULL };
    int rc = run_tool(base, "list", list, state, 0);
    char *out = output_of(base, "list", "out"), *err = output_of(base, "list", "err");
    cr_assert_eq(rc, 0, "qmpctl list: exit %d: %s", rc, err);
    cr_assert(strstr(out, "\"vm0\"") || strstr(out, "\"vm1\""), "%s", out);
    free(out);
    free(err);
    char *all[] = { QMPCTL, "list", "--all", "--json", NULL };
    rc = run_tool(base, "all", all, state, 0);
    out = output_of(base, "all", "out");
    cr_assert_eq(rc, 0);
    json_t *v = json_parse(out, strlen(out), NULL, 0);
    cr_assert_eq(json_len(v), 2, "%s", out);
    cr_assert(strstr(out, "\"vm0\"") && strstr(out, "\"vm1\""), "%s", out);
    json_free(v);
    free(out);
    /* A guest is found in whichever suite has it, not only the latest. */
    for (int i = 0; i < 2; i++) {
        char *pci[] = { QMPCTL, "pci", i ? "vm1" : "vm0", NULL };
        rc = run_tool(base, "pci", pci, state, 0);
        err = output_of(base, "pci", "err");
        cr_assert_eq(rc, 0, "qmpctl pci %s: exit %d: %s", pci[2], rc, err);
        free(err);
    }
    /* The top of the run names its suites. */
    char *top[] = { QMPCTL, "list", "--run-dir", "r", NULL };
    rc = run_tool(base, "top", top, state, 0);
    err = output_of(base, "top", "err");
    cr_assert_eq(rc, 1);
    cr_assert(strstr(err, "r/SUITE (") && strstr(err, "hold2"), "%s", err);
    free(err);

    kill(pid, SIGTERM);
    cr_assert_geq(tu_wait_exit(pid, 60000), 0);
    tu_rmtree(base);
}

/* Issue 17 item 11: STATE/runs that cannot be read is said so. */
Test(control, unreadable_runs_dir_is_named, .timeout = 60)
{
    char base[256], state[320], runs[340];
    cr_assert_eq(tu_mkdtemp(base, sizeof(base), "ctlacc"), 0);
    snprintf(state, sizeof(state), "%s/state", base);
    snprintf(runs, sizeof(runs), "%s/runs", state);
    cr_assert_eq(mkdir(state, 0700), 0);
    cr_assert_eq(mkdir(runs, 0000), 0);
    /* Root reads anything: the tools run as nobody then, for whom the
     * private base directory is as closed as runs/ is to others. */
    char *down[] = { QFLEET, "down", "--state-dir", state, NULL };
    char *list[] = { QMPCTL, "list", "--state-dir", state, NULL };
    char *const *cmds[] = { down, list };
    for (int i = 0; i < 2; i++) {
        char tag[8];
        snprintf(tag, sizeof(tag), "t%d", i);
        int rc = run_tool(base, tag, cmds[i], NULL, 1);
        char *err = output_of(base, tag, "err");
        cr_assert_eq(rc, 1, "%s: exit %d: %s", cmds[i][0], rc, err);
        cr_assert(strstr(err, runs) && strstr(err, strerror(EACCES)), "%s said: '%s'", cmds[i][0], err);
        free(err);
    }
    chmod(runs, 0700);
    tu_rmtree(base);
}
