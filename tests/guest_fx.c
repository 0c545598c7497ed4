/* guest_fx.c - test guests through the fleet, and session helpers. */
#include "guest_fx.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg/vm.h"
#include "testutil.h"

#define BOOT_MS 240000

/* ---- guests ---- */

static void tg_tick(uv_timer_t *t) { (void)t; }

/* Run loop until done(arg) or ms pass, waking at least every 20 ms. */
static int tg_run(uv_loop_t *loop, int (*done)(void *), void *arg, int ms)
{
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, tg_tick, 20, 20);
    double end = tu_now_ms() + ms;
    int ok;
    while (!(ok = done(arg)) && tu_now_ms() < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}

/* While the guests boot, each also gets an SSH session of the test's own
 * as soon as the fleet has leased its forwarded port: that exercises the
 * connect retry while QEMU or sshd is not up yet (the fleet's own login
 * comes only once the agent reported an address). */
#define TG_MAX 8
struct boot {
    tg_fleet *t;
    guest_session_t *s[TG_MAX];
    res r[TG_MAX];
    int opened[TG_MAX];
    char kh[TG_MAX][300];
};

static int booted(void *arg)
{
    struct boot *b = arg;
    int all = fleet_settled(b->t->f);
    for (int i = 0; i < b->t->n; i++) {
        const char *host, *user, *password;
        int port;
        if (!b->opened[i] && fguest_ssh_target(tg_guest(b->t, i), &host, &port, &user, &password) == 0) {
            char name[16];
            snprintf(name, sizeof(name), "vm%d", i);
            snprintf(b->kh[i], sizeof(b->kh[i]), "%s/vm%d-early_known_hosts", b->t->dir, i);
            guest_opts o = tg_ssh_opts(name, port, b->kh[i]);
            o.ssh.connect_timeout_ms = BOOT_MS;
            b->opened[i] = 1;
            if (guest_open(b->t->loop, &o, on_res, &b->r[i], &b->s[i]) < 0)
                b->r[i].done = 1; /* status 0 and no session: reported below */
        }
        /* a guest that failed will not log in: its failure is the news */
        all &= b->r[i].done || fguest_state(tg_guest(b->t, i)) == GS_FAILED;
    }
    return all;
}

/* Every early session logged in; closes them. 0 or -1 with err. */
static int boot_sessions_done(struct boot *b, char *err, size_t errlen)
{
    int rc = 0;
    for (int i = 0; i < b->t->n; i++) {
        if (rc == 0 && (!b->s[i] || !b->r[i].done || b->r[i].status != 0)) {
            snprintf(err, errlen, "vm%d: SSH during boot: %s", i,
                     !b->s[i] ? "guest_open failed" : !b->r[i].done ? "no login" : b->r[i].error);
            rc = -1;
        }
        if (b->s[i])
            close_session(b->t->loop, b->s[i]);
        res_free(&b->r[i]);
    }
    return rc;
}

static int flag(void *arg) { return *(int *)arg; }
static void set_flag(fleet_t *f, void *data)
{
    (void)f;
    *(int *)data = 1;
}

/* The cfg of the test guest, as test_fleet writes it for `qfleet up`. */
static int write_cfg(const char *path, char *err, size_t errlen)
{
    const char *g = tu_guest_dir();
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(f,
            "[vm0]\n"
            "cpu =\n    model=qemu64,number=1;\n"
            "mem =\n    size=256;\n"
            "kernel =\n    file=%s/vmlinux,initrd=%s/initrd.img,append=console=ttyS0 quiet panic=-1;\n"
            "login =\n    user=" TG_USER ",password=" TG_PASSWORD ";\n"
            "net =\n    type=nic,opt_model=e1000,opt_addr=1f;\n    type=user;\n"
            "enable_kvm =\n    enable=no;\n",
            g, g);
    return fclose(f) == 0 ? 0 : -1;
}

int tg_up(tg_fleet *t, uv_loop_t *loop, const char *dir, int n, char *err, size_t errlen)
{
    memset(t, 0, sizeof(*t));
    t->loop = loop;
    t->n = n;
    snprintf(t->dir, sizeof(t->dir), "%s", dir);
    char kernel[600], cfg[400], state[400], run[400];
    snprintf(kernel, sizeof(kernel), "%s/vmlinux", tu_guest_dir());
    if (access(kernel, R_OK) != 0) {
        snprintf(err, errlen, "no test guest at %s: run tools/mkguest", tu_guest_dir());
        return -1;
    }
    snprintf(cfg, sizeof(cfg), "%s/guest.cfg", dir);
    snprintf(state, sizeof(state), "%s/state", dir);
    snprintf(run, sizeof(run), "%s/run", dir);
    if (write_cfg(cfg, err, errlen) < 0)
        return -1;
    fleet_opts o = { .state_dir = state, .run_dir = run, .cfg_path = cfg };
    if (fleet_new(loop, &o, NULL, NULL, &t->f, err, errlen) < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        struct cfg_vm *vm;
        char name[16];
        snprintf(name, sizeof(name), "vm%d", i);
        if (cfg_vm_load(cfg, "vm0", NULL, &vm, err, errlen) < 0 ||
            fleet_add(t->f, vm, name, err, errlen) < 0)
            return -1;
    }
    double t0 = tu_now_ms();
    struct boot b = { .t = t };
    if (n > TG_MAX) {
        snprintf(err, errlen, "at most %d test guests", TG_MAX);
        return -1;
    }
    fleet_start(t->f);
    int rc = tg_run(loop, booted, &b, BOOT_MS) ? 0 : -1;
    if (rc < 0)
        snprintf(err, errlen, "the guests did not settle within %d s; logs in %s", BOOT_MS / 1000,
                 fleet_run_dir(t->f));
    for (int i = 0; i < n && rc == 0; i++) {
        fguest_t *g = tg_guest(t, i);
        if (fguest_state(g) != GS_READY) {
            snprintf(err, errlen, "%s: %s; logs in %s", fguest_name(g),
                     fguest_reason(g) ? fguest_reason(g) : fleet_state_name(fguest_state(g)),
                     fleet_run_dir(t->f));
            rc = -1;
        }
    }
    char serr[400];
    if (boot_sessions_done(&b, serr, sizeof(serr)) < 0 && rc == 0) {
        snprintf(err, errlen, "%s", serr);
        rc = -1;
    }
    if (rc < 0)
        return -1;
    fprintf(stderr, "guest_fx: %d guest%s ready in %.1f s\n", n, n > 1 ? "s" : "",
            (tu_now_ms() - t0) / 1e3);
    return 0;
}

int tg_down(tg_fleet *t, char *err, size_t errlen)
{
    if (!t->f)
        return 0;
    int stopped = 0, freed = 0, rc = 0;
    fleet_stop_all(t->f, set_flag, &stopped);
    if (!tg_run(t->loop, flag, &stopped, 60000)) {
        snprintf(err, errlen, "the guests did not stop within 60 s");
        rc = -1;
    }
    fleet_free(t->f, set_flag, &freed);
    t->f = NULL;
    if (!tg_run(t->loop, flag, &freed, 10000) && rc == 0) {
        snprintf(err, errlen, "the fleet was not freed within 10 s");
        rc = -1;
    }
    return rc;
}

fguest_t *tg_guest(const tg_fleet *t, int i)
{
    char name[16];
    snprintf(name, sizeof(name), "vm%d", i);
    return fleet_find(t->f, name);
}

void tg_known_hosts(const tg_fleet *t, int i, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/vm%d-known_hosts", fleet_run_dir(t->f), i); /* docs/rundir.md */
}

/* ---- sessions ---- */

static char *dupn(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    cr_assert(d);
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

void on_res(guest_session_t *s, const guest_result *r, void *data)
{
    res *o = data;
    (void)s;
    o->done = 1;
    o->status = r->status;
    o->exit_code = r->exit_code;
    o->timed_out = r->timed_out;
    o->error = r->error ? strdup(r->error) : NULL;
    o->out = dupn(r->out, r->out_len);
    o->out_len = r->out_len;
    o->errout = dupn(r->errout, r->errout_len);
    o->before = dupn(r->before, r->before_len);
    snprintf(o->signal, sizeof(o->signal), "%s", r->signal);
    o->elapsed = r->elapsed_ms;
}

void res_free(res *r)
{
    free(r->error);
    free(r->out);
    free(r->errout);
    free(r->before);
    memset(r, 0, sizeof(*r));
}

void wait_flag(uv_loop_t *loop, const int *f)
{
    while (!*f)
        uv_run(loop, UV_RUN_ONCE);
}

void on_closed(guest_session_t *s, void *data)
{
    (void)s;
    *(int *)data = 1;
}

void close_session(uv_loop_t *loop, guest_session_t *s)
{
    int done = 0;
    guest_close(s, on_closed, &done);
    wait_flag(loop, &done);
}

guest_opts tg_ssh_opts(const char *name, int port, const char *known_hosts)
{
    guest_opts o = { .name = name, .transport = GUEST_SSH };
    o.ssh.port = port;
    o.ssh.user = TG_USER;
    o.ssh.password = TG_PASSWORD;
    o.ssh.known_hosts = known_hosts;
    o.ssh.connect_timeout_ms = 60000;
    return o;
}

guest_session_t *open_wait(uv_loop_t *loop, const guest_opts *o, res *r)
{
    guest_session_t *s = NULL;
    cr_assert_eq(guest_open(loop, o, on_res, r, &s), 0);
    wait_flag(loop, &r->done);
    return s;
}

void exec_wait(uv_loop_t *loop, guest_session_t *s, const char *cmd, int ms, res *r)
{
    memset(r, 0, sizeof(*r));
    cr_assert_eq(guest_exec(s, cmd, ms, on_res, r), 0);
    wait_flag(loop, &r->done);
}

/* ---- files ---- */

void rand_file(const char *path, size_t n)
{
    int in = open("/dev/urandom", O_RDONLY), out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert(in >= 0 && out >= 0);
    char buf[65536];
    while (n) {
        size_t k = n < sizeof(buf) ? n : sizeof(buf);
        cr_assert_eq(read(in, buf, k), (ssize_t)k);
        cr_assert_eq(write(out, buf, k), (ssize_t)k);
        n -= k;
    }
    close(in);
    close(out);
}

int same_file(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        same = ca == cb;
        if (ca == EOF || cb == EOF)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

void tmp_dir(char *out, size_t outlen)
{
    cr_assert_eq(tu_mkdtemp(out, outlen, "guest-t"), 0);
}
