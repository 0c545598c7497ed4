/* test_alloc_stress.c - many real processes against one lease store.
 *
 * Each worker is a forked process with its own store handle that takes a
 * MAC, a VNC display and a port in one batch, holds them for a moment and
 * releases them, over and over. Two independent checks catch a resource
 * held twice:
 *  - while holding, a worker claims each resource in a shared-memory array
 *    (MAP_SHARED, compare-and-swap); finding it claimed by another live
 *    worker is a duplicate;
 *  - each worker logs when it held what; afterwards the intervals of every
 *    resource must not overlap between workers.
 * The parent also lists the store while the workers run and checks the
 * live leases for duplicates.
 *
 * The 8-process test keeps its store on tmpfs (/dev/shm) when there is
 * one: it tests concurrency, and on a disk shared with parallel builds the
 * rename latency alone would stretch 80000 table rewrites past a minute.
 * The kill -9 test and tools/bench_alloc use the disk. */
#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "src/alloc/alloc.h"
#include "tests/testutil.h"

#define NMAC 256
#define NVNC 16
#define NPORT 32
#define MAC_PREFIX "02:5a:5a:5a:5a:"

typedef struct shared {
    _Atomic uint64_t mac[NMAC], vnc[NVNC], port[NPORT];
    atomic_int dups, errors, cycles;
    atomic_flag why_set;
    char why[256];
} shared;

typedef struct held {
    char kind; /* 'm', 'v', 'p' */
    int value;
    int worker;
    double from, to; /* ms, CLOCK_MONOTONIC */
} held;

static char dir[512];
static shared *sh;
static int vnc0, port0;

static void setup(void)
{
    dir[0] = '\0';
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert(sh != MAP_FAILED);
    memset(sh, 0, sizeof(*sh));
}

static void teardown(void)
{
    munmap(sh, sizeof(*sh));
    tu_rmtree(dir);
}

/* A fresh state dir, on tmpfs if asked and there is one. */
static void make_dir(int tmpfs)
{
    const char *env = getenv("QF_STRESS_DIR");
    if (tmpfs && ((env && *env) || access("/dev/shm", W_OK) == 0)) {
        snprintf(dir, sizeof(dir), "%s/qf-allocstress-XXXXXX", env && *env ? env : "/dev/shm");
        cr_assert(mkdtemp(dir), "%s: %s", dir, strerror(errno));
    } else {
        cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "allocstress"), 0);
    }
}

TestSuite(alloc_stress, .init = setup, .fini = teardown, .timeout = 300);

static void note_error(atomic_int *counter, const char *fmt, ...)
{
    atomic_fetch_add(counter, 1);
    if (!atomic_flag_test_and_set(&sh->why_set)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(sh->why, sizeof(sh->why), fmt, ap);
        va_end(ap);
    }
}

/* First base in [from, to] where n consecutive ports bind right now. */
static int free_run(int from, int to, int n)
{
    for (int b = from; b + n - 1 <= to; b++) {
        int ok = 1;
        for (int i = 0; i < n && ok; i++)
            ok = alloc_port_bindable("127.0.0.1", b + i);
        if (ok)
            return b;
    }
    cr_assert_fail("no run of %d free ports", n);
    return -1;
}

/* A claim is pid and the low half of its start time: a dead claimer's
 * claim (a killed worker) may be taken over, a live one's may not. */
static uint64_t me_claim(void)
{
    unsigned long long st = 0;
    alloc_proc_start(getpid(), &st);
    return (uint64_t)(st & 0xffffffffu) << 32 | (uint32_t)getpid();
}

static int claimer_alive(uint64_t c)
{
    unsigned long long st;
    return alloc_proc_start((pid_t)(c & 0xffffffffu), &st) == 0 && (st & 0xffffffffu) == c >> 32;
}

static void claim(_Atomic uint64_t *slot, uint64_t me, const char *what, int value)
{
    uint64_t cur = 0;
    while (!atomic_compare_exchange_strong(slot, &cur, me)) {
        if (claimer_alive(cur)) {
            note_error(&sh->dups, "%s %d held by pid %d and pid %d at once", what, value,
                       (int)(cur & 0xffffffffu), (int)getpid());
            return;
        }
        /* cur is a killed worker's stale claim: try again from it */
    }
}

static void unclaim(_Atomic uint64_t *slot, uint64_t me, const char *what, int value)
{
    uint64_t cur = me;
    if (!atomic_compare_exchange_strong(slot, &cur, 0))
        note_error(&sh->dups, "%s %d: my claim was overwritten by pid %d", what, value,
                   (int)(cur & 0xffffffffu));
}

/* One worker: cycles rounds (or forever for cycles < 0); the log, if any,
 * gets one entry per resource held. Runs in a forked child; never returns. */
static void worker(int id, int cycles, held *log)
{
    char err[512], name[64];
    alloc_store *s;
    alloc_owner o;
    alloc_opts opts = { .vnc_first = vnc0, .vnc_last = vnc0 + NVNC - 1 };
    snprintf(name, sizeof(name), "stress/w%d", id);
    if (alloc_store_open(&s, dir, &opts, err, sizeof(err)) ||
        alloc_owner_init(&o, name, getpid(), err, sizeof(err))) {
        note_error(&sh->errors, "worker %d: %s", id, err);
        _exit(1);
    }
    uint64_t me = me_claim();
    size_t nlog = 0;
    for (int c = 0; cycles < 0 || c < cycles; c++) {
        char mac[MAC_STRLEN];
        unsigned char m[6];
        int d, p, rc = alloc_begin(s, err, sizeof(err));
        if (rc == 0)
            rc = alloc_mac(s, &o, 0, MAC_PREFIX, 0, mac, err, sizeof(err));
        if (rc == 0)
            rc = alloc_vnc(s, &o, 0, &d, err, sizeof(err));
        if (rc == 0)
            rc = alloc_port(s, &o, port0, port0 + NPORT - 1, &p, err, sizeof(err));
        if (rc == 0)
            rc = alloc_commit(s, err, sizeof(err));
        else
            alloc_abort(s);
        if (rc < 0) {
            note_error(&sh->errors, "worker %d cycle %d: %s", id, c, err);
            _exit(1);
        }
        double from = tu_now_ms();
        mac_parse(mac, m);
        int vals[3] = { m[5], d - vnc0, p - port0 };
        claim(&sh->mac[vals[0]], me, "MAC", m[5]);
        claim(&sh->vnc[vals[1]], me, "display", d);
        claim(&sh->port[vals[2]], me, "port", p);
        unclaim(&sh->mac[vals[0]], me, "MAC", m[5]);
        unclaim(&sh->vnc[vals[1]], me, "display", d);
        unclaim(&sh->port[vals[2]], me, "port", p);
        double to = tu_now_ms();
        if (log)
            for (int k = 0; k < 3; k++)
                log[nlog++] = (held){ "mvp"[k], vals[k], id, from, to };
        /* MAC, display, the display's port, the port */
        int released = alloc_release_owner(s, name, err, sizeof(err));
        if (released != 4) {
            note_error(&sh->errors, "worker %d released %d: %s", id, released,
                       released < 0 ? err : "not 4 leases");
            _exit(1);
        }
        atomic_fetch_add(&sh->cycles, 1);
    }
    alloc_store_close(s);
    _exit(0);
}

/* Live leases must never repeat a (kind, value). */
static void check_live(alloc_store *s, size_t *max_seen)
{
    char err[512];
    alloc_lease *v;
    size_t n;
    cr_assert_eq(alloc_list(s, &v, &n, err, sizeof(err)), 0, "store unreadable: %s", err);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            cr_assert(strcmp(v[i].kind, v[j].kind) || strcmp(v[i].value, v[j].value),
                      "%s %s leased to %s and %s", v[i].kind, v[i].value, v[i].owner, v[j].owner);
    if (n > *max_seen)
        *max_seen = n;
    free(v);
}

static int cmp_held(const void *a, const void *b)
{
    const held *x = a, *y = b;
    if (x->kind != y->kind)
        return x->kind - y->kind;
    if (x->value != y->value)
        return x->value - y->value;
    return x->from < y->from ? -1 : x->from > y->from;
}

static int env_int(const char *name, int def)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : def;
}

Test(alloc_stress, eight_processes_no_duplicates)
{
    /* 8 x 5000 cycles of batch take (MAC, display, port) + release: 80000
     * table rewrites. QF_STRESS_CYCLES overrides the count. */
    const int nproc = 8, cycles = env_int("QF_STRESS_CYCLES", 5000);
    make_dir(1);
    vnc0 = free_run(ALLOC_VNC_PORT_BASE + 100, ALLOC_VNC_PORT_BASE + 900, NVNC) - ALLOC_VNC_PORT_BASE;
    port0 = free_run(21000, 29000, NPORT);
    size_t per = (size_t)cycles * 3;
    held *logs = mmap(NULL, nproc * per * sizeof(held), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert(logs != MAP_FAILED);
    double t0 = tu_now_ms();
    pid_t pids[8];
    for (int i = 0; i < nproc; i++) {
        pids[i] = fork();
        cr_assert_geq(pids[i], 0);
        if (pids[i] == 0)
            worker(i, cycles, logs + (size_t)i * per);
    }
    alloc_store *s;
    char err[512];
    cr_assert_eq(alloc_store_open(&s, dir, NULL, err, sizeof(err)), 0, "%s", err);
    size_t max_live = 0;
    int running = nproc, checks = 0;
    while (running > 0) {
        check_live(s, &max_live);
        checks++;
        usleep(20000);
        int st;
        while (waitpid(-1, &st, WNOHANG) > 0) {
            running--;
            cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker failed (status 0x%x): %s", st, sh->why);
        }
    }
    double secs = (tu_now_ms() - t0) / 1000;
    cr_assert_eq(atomic_load(&sh->errors), 0, "%s", sh->why);
    cr_assert_eq(atomic_load(&sh->dups), 0, "%s", sh->why);
    cr_assert_eq(atomic_load(&sh->cycles), nproc * cycles);
    check_live(s, &max_live);
    alloc_lease *v;
    size_t n;
    cr_assert_eq(alloc_list(s, &v, &n, err, sizeof(err)), 0);
    cr_assert_eq(n, 0, "every worker released everything");
    free(v);

    /* the logged holding intervals of one resource never overlap */
    size_t total = nproc * per;
    held *all = malloc(total * sizeof(*all));
    memcpy(all, logs, total * sizeof(*all));
    qsort(all, total, sizeof(*all), cmp_held);
    for (size_t i = 1; i < total; i++)
        if (all[i].kind == all[i - 1].kind && all[i].value == all[i - 1].value)
            cr_assert_geq(all[i].from, all[i - 1].to, "%c %d: worker %d from %.3f, worker %d until %.3f",
                          all[i].kind, all[i].value, all[i].worker, all[i].from, all[i - 1].worker,
                          all[i - 1].to);
    free(all);
    munmap(logs, nproc * per * sizeof(held));
    alloc_store_close(s);
    cr_log_info("%d processes x %d cycles in %.1f s (%.0f cycles/s), %d live checks, at most %zu "
                "leases live",
                nproc, cycles, secs, nproc * cycles / secs, checks, max_live);
}

/* Workers are killed with SIGKILL at random instants, in the middle of
 * whatever they do (inside the lock, halfway through writing the table),
 * and replaced. The store must stay readable, never hold a resource twice,
 * and end with every dead worker's leases reclaimed. */
Test(alloc_stress, kill9_at_random_instants)
{
    const int nproc = 4, rounds = env_int("QF_KILL_ROUNDS", 150);
    make_dir(0);
    vnc0 = free_run(ALLOC_VNC_PORT_BASE + 100, ALLOC_VNC_PORT_BASE + 900, NVNC) - ALLOC_VNC_PORT_BASE;
    port0 = free_run(21000, 29000, NPORT);
    pid_t pids[4];
    int next_id = 0;
    for (int i = 0; i < nproc; i++) {
        pids[i] = fork();
        if (pids[i] == 0)
            worker(next_id, -1, NULL);
        next_id++;
    }
    alloc_store *s;
    char err[512];
    cr_assert_eq(alloc_store_open(&s, dir, NULL, err, sizeof(err)), 0, "%s", err);
    srand((unsigned)getpid());
    size_t max_live = 0;
    int tmp_seen = 0; /* kills after which a half-written table was there */
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s/leases.tmp", dir);
    for (int r = 0; r < rounds; r++) {
        usleep((useconds_t)(rand() % 15000));
        int k = rand() % nproc;
        kill(pids[k], SIGKILL);
        int st;
        cr_assert_eq(waitpid(pids[k], &st, 0), pids[k]);
        cr_assert(WIFSIGNALED(st), "worker exited by itself: %s", sh->why);
        tmp_seen += access(tmp, F_OK) == 0;
        /* its leases, if it held any, are gone at the next operation */
        alloc_lease *v;
        size_t n;
        cr_assert_eq(alloc_list(s, &v, &n, err, sizeof(err)), 0, "store unreadable: %s", err);
        char owner[64];
        snprintf(owner, sizeof(owner), "stress/w%d", next_id - nproc + k);
        for (size_t i = 0; i < n; i++)
            cr_assert(strncmp(v[i].owner, "stress/", 7) || v[i].pid != pids[k],
                      "lease %s %s of killed pid %d not reclaimed", v[i].kind, v[i].value, pids[k]);
        free(v);
        check_live(s, &max_live);
        pids[k] = fork();
        if (pids[k] == 0)
            worker(next_id, -1, NULL);
        next_id++;
    }
    for (int i = 0; i < nproc; i++) {
        kill(pids[i], SIGKILL);
        waitpid(pids[i], NULL, 0);
    }
    cr_assert_eq(atomic_load(&sh->errors), 0, "%s", sh->why);
    cr_assert_eq(atomic_load(&sh->dups), 0, "%s", sh->why);
    alloc_lease *v;
    size_t n;
    cr_assert_eq(alloc_list(s, &v, &n, err, sizeof(err)), 0, "store unreadable: %s", err);
    cr_assert_eq(n, 0, "leases of dead workers left: first %s %s", n ? v[0].kind : "", n ? v[0].value : "");
    free(v);
    cr_assert_neq(access(tmp, F_OK), 0, "a stale tmp file survived an operation");
    cr_assert_gt(atomic_load(&sh->cycles), rounds, "workers made progress");
    alloc_store_close(s);
    cr_log_info("%d kills (%d left a leases.tmp behind), %d cycles completed between them, at "
                "most %zu leases live",
                rounds, tmp_seen, atomic_load(&sh->cycles), max_live);
}
