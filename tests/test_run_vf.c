/* test_run_vf.c - `qfleet run` with SR-IOV VFs as a scheduler resource:
 * two suites that each need 2 VFs of a 3-VF pool run one after the other
 * (the second waits, it does not fail), and a suite that needs 4 fails at
 * once saying which pool and how many.
 *
 * There is NO SR-IOV hardware on the machines these tests run on, so, as
 * in test_fleet_vf.c, the fake SR-IOV host of tests/sriov_fx.h stands in
 * for it, and nothing else is fake:
 *  - the VFs: a sysfs tree in a temp dir (a PF netdev with virtfnN links,
 *    the VFs' PCI devices and netdevs), runner_opts.sysfs_root;
 *  - netlink: runner_opts.vf_nl is a recorder that keeps every RTM_SETLINK
 *    and plays the kernel by writing the new MAC into the fake VF;
 *  - QEMU's view of the VF: vfio-pci cannot open a fake VF, so "QEMU" is a
 *    stand-in script that records the argv qfleet built, turns each
 *    `-device vfio-pci,host=VF,id=pt_N,addr=..` into an e1000 with the
 *    same id and address, and execs the real QEMU with the rest.
 * The runner is driven in this process the way `qfleet run` drives it
 * (suite_load, runner_new/add/start on a loop), because the netlink
 * recorder is a function in this process. Everything else is real: the
 * suite files, the cfg, the lease store, the scheduler, the fleet, QEMU
 * (TCG) and its QMP, status.json and events.jsonl. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "base/fs.h"
#include "base/json.h"
#include "cfg/suite.h"
#include "src/alloc/alloc.h"
#include "src/alloc/vf.h"
#include "src/run/runner.h"
#include "sriov_fx.h"
#include "testutil.h"

#define PF_IFINDEX 7
#define NVF 3

static char dir[256], root[300], state[300];

static void setup(void)
{
    cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "runvf"), 0);
    snprintf(root, sizeof(root), "%s/sys", dir);
    snprintf(state, sizeof(state), "%s/state", dir);
}

static void teardown(void) { tu_rmtree(dir); }

TestSuite(run_vf, .init = setup, .fini = teardown, .timeout = 300);

/* The fake SR-IOV host of tests/sriov_fx.h: PF ens1f0 (ifindex 7) with
 * NVF VFs, VF i is 0000:3b:02.i with netdev ens1f0vI and MAC
 * aa:00:00:00:3b:0I, as test_fleet_vf.c lays them out. */
static sfx_rec rec;
static alloc_nl recorder;

/* What this test allows through: MACs only, on VFs of the one PF. */
static void check(const sfx_req *r, void *data)
{
    (void)data;
    cr_assert_eq(r->ifindex, PF_IFINDEX);
    cr_assert_eq(r->vlan, -1, "an IFLA_VF_VLAN request, not IFLA_VF_MAC");
    cr_assert_lt(r->vf, NVF);
}

static void fake_pf(void)
{
    rec = (sfx_rec){ .root = root, .vfname = "ens1f0v", .check = check };
    recorder = sfx_nl(&rec, 0);
    sfx_pf(root, "ens1f0", PF_IFINDEX, 0x3b, NVF, "ens1f0v");
}

/* VM vm2: two VFs of pool net1; vm3: two of pool other (the pools are in
 * the defaults' [KVM], with pools_extra after net1). */
static void write_cfg(const char *pools_extra)
{
    char t[1024];
    snprintf(t, sizeof(t), "[KVM]\nvf_pool = name=net1,pf=ens1f0%s\n", pools_extra);
    sfx_write(t, 0644, "%s/global.cfg", dir);
    const char *vm = "qemu = path=./qemu\n"
                     "enable_kvm = enable=no\n"
                     "qga = enable=no\n"
                     "vnc = disable=yes\n"
                     "mem = size=64\n"
                     "device =\n"
                     "    driver=vfio-pci,opt_pool=%s;\n"
                     "    driver=vfio-pci,opt_pool=%s;\n";
    char a[512], b[512];
    snprintf(a, sizeof(a), vm, "net1", "net1");
    snprintf(b, sizeof(b), vm, "other", "other");
    snprintf(t, sizeof(t), "[vm2]\n%s%s", a, *pools_extra ? "[vm3]\n" : "");
    if (*pools_extra)
        strncat(t, b, sizeof(t) - strlen(t) - 1);
    sfx_write(t, 0644, "%s/vf.cfg", dir);
}

/* A suite of vms guests of vm2; its case holds them for a moment and
 * checks that both VFs are in the guest. */
static void write_suite(const char *name, const char *vms, const char *guest)
{
    char t[1024];
    snprintf(t, sizeof(t),
             "[suite]\ncfg = vf.cfg\ndefaults = global.cfg\nvms = %s\n"
             "[case holds_two_vfs]\n"
             "qmp %s: query-pci\n"
             "    expect *.devices.*.qdev_id = pt_0\n"
             "    expect *.devices.*.qdev_id = pt_1\n"
             "host: sleep 1\n",
             vms, guest);
    sfx_write(t, 0644, "%s/%s.suite", dir, name);
}

static void on_done(runner_t *r, void *data)
{
    (void)r;
    *(int *)data = 1;
}

/* `qfleet run` of the suites, in this process. Returns the exit code. */
static int run_suites(const char *const *names, int n)
{
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    char run_dir[400], err[2048];
    snprintf(run_dir, sizeof(run_dir), "%s/r", dir);
    runner_opts ro = { .state_dir = state, .run_dir = run_dir, .retries = 0, .quiet = 1,
                       .sysfs_root = root, .vf_nl = &recorder };
    runner_t *r;
    cr_assert_eq(runner_new(&loop, &ro, &r, err, sizeof(err)), 0, "%s", err);
    for (int i = 0; i < n; i++) {
        char p[512];
        struct suite *s;
        snprintf(p, sizeof(p), "%s/%s.suite", dir, names[i]);
        cr_assert_eq(suite_load(p, &s, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(runner_add(r, s, err, sizeof(err)), 0, "%s", err);
    }
    int done = 0;
    runner_start(r, on_done, &done);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert(done);
    int code = runner_exit_code(r);
    runner_free(r);
    cr_assert_eq(uv_loop_close(&loop), 0, "handles left open");
    return code;
}

/* events.jsonl of the run as an array. */
static json_t *events(void)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/r/events.jsonl", dir);
    return tu_read_jsonl(p, NULL);
}

static const char *str_or(const json_t *e, const char *k)
{
    const char *s = json_get_str(e, k);
    return s ? s : "";
}

/* Index of the first event of kind with key = val (and, if given, key2 =
 * val2), or -1. */
static int find(const json_t *ev, const char *kind, const char *key, const char *val,
                const char *key2, const char *val2)
{
    for (size_t i = 0; i < json_len(ev); i++) {
        const json_t *e = json_at(ev, i);
        if (!strcmp(str_or(e, "kind"), kind) && !strcmp(str_or(e, key), val) &&
            (!key2 || !strcmp(str_or(e, key2), val2)))
            return (int)i;
    }
    return -1;
}

Test(run_vf, suites_wait_for_vfs_and_one_that_never_fits_fails_at_once)
{
    fake_pf();
    sfx_qemu(dir, "qemu", SFX_QEMU_REAL);
    write_cfg("");
    write_suite("first", "vm2", "vm2");
    write_suite("second", "vm2", "vm2");
    write_suite("toobig", "vm2 * 2", "vm2-1");
    const char *names[] = { "first", "second", "toobig" };
    int code = run_suites(names, 3);
    char p[512];
    snprintf(p, sizeof(p), "%s/r/status.json", dir);
    char *status = fs_read_file(p, 1 << 26, NULL);
    cr_assert(status);
    json_t *st = json_parse(status, strlen(status), NULL, 0);
    cr_assert(st, "%s", status);
    json_t *ev = events();
    char *evs = json_dump_pretty(ev, NULL);

    /* toobig: 4 VFs of a 3-VF pool fails at once (exit 2, as any suite
     * that can never fit), naming the pool and the counts. */
    cr_assert_eq(code, 2, "exit %d\n%s", code, status);
    const json_t *suites = json_get(st, "suites");
    cr_assert_eq(json_len(suites), 3);
    for (size_t i = 0; i < 3; i++) {
        const json_t *s = json_at(suites, i);
        const char *name = json_get_str(s, "name"), *res = json_get_str(s, "result");
        if (!strcmp(name, "toobig")) {
            cr_assert_str_eq(res, "error", "%s", status);
            const char *why = str_or(s, "reason");
            cr_assert(strstr(why, "needs 4 VF(s) of pool net1, the pool has 3 usable"), "%s", status);
        } else {
            cr_assert_str_eq(res, "passed", "%s: %s\n%s", name, res, status);
        }
    }
    cr_assert_eq(find(ev, "guest", "suite", "toobig", NULL, NULL), -1, "toobig booted a guest");

    /* second waited for the VFs (status says so), then ran after first's
     * guest had stopped and given its VFs back. */
    int waited = find(ev, "suite", "suite", "second", "state", "waiting");
    cr_assert_geq(waited, 0, "second never waited:\n%s", evs);
    const char *why = str_or(json_at(ev, (size_t)waited), "reason");
    cr_assert(strstr(why, "waiting for 2 VF(s) of pool net1 (1 of 3 free)"), "%s", why);
    int first_stopped = find(ev, "guest", "suite", "first", "state", "stopped");
    int second_alloc = find(ev, "guest", "suite", "second", "state", "allocating");
    cr_assert_geq(first_stopped, 0, "%s", evs);
    cr_assert_gt(second_alloc, first_stopped, "second booted before first's VFs were back:\n%s", evs);

    /* Both got 2 VFs through the PF (4 MACs set, 4 restored), and every VF
     * has its own MAC back with no lease left. */
    cr_assert_eq(rec.n, 8, "%d RTM_SETLINK", rec.n);
    for (int i = 0; i < NVF; i++) {
        char a[300], want[32];
        snprintf(a, sizeof(a), "%s/class/net/ens1f0v%d/address", root, i);
        char *mac = fs_read_file(a, 64, NULL);
        snprintf(want, sizeof(want), "aa:00:00:00:3b:%02x\n", i);
        cr_assert_str_eq(mac, want);
        free(mac);
    }
    alloc_store *s;
    alloc_lease *l;
    size_t n;
    char err[512];
    cr_assert_eq(alloc_store_open(&s, state, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(alloc_list(s, &l, &n, err, sizeof(err)), 0, "%s", err);
    for (size_t i = 0; i < n; i++)
        cr_assert_str_neq(l[i].kind, "vf", "VF %s still leased by %s", l[i].value, l[i].owner);
    free(l);
    alloc_store_close(s);
    free(evs);
    json_free(ev);
    json_free(st);
    free(status);
}

/* Two pools of different names over the same PF compete for its 3 VFs:
 * the suite drawing 2 from "other" waits while the one drawing 2 from
 * "net1" runs. (The cfg warns that the PF is in two pools.) */
Test(run_vf, pools_over_one_pf_add_up)
{
    fake_pf();
    sfx_qemu(dir, "qemu", SFX_QEMU_REAL);
    write_cfg(";name=other,pf=ens1f0");
    write_suite("first", "vm2", "vm2");
    write_suite("second", "vm3", "vm3");
    const char *names[] = { "first", "second" };
    int code = run_suites(names, 2);
    json_t *ev = events();
    char *evs = json_dump_pretty(ev, NULL);
    cr_assert_eq(code, 0, "exit %d\n%s", code, evs);
    int waited = find(ev, "suite", "suite", "second", "state", "waiting");
    cr_assert_geq(waited, 0, "second never waited:\n%s", evs);
    const char *why = str_or(json_at(ev, (size_t)waited), "reason");
    /* 1 free: net1's 2 are other's too. */
    cr_assert(strstr(why, "waiting for 2 VF(s) of pool other (1 of 3 free)"), "%s", why);
    int first_stopped = find(ev, "guest", "suite", "first", "state", "stopped");
    int second_alloc = find(ev, "guest", "suite", "second", "state", "allocating");
    cr_assert_gt(second_alloc, first_stopped, "%s", evs);
    cr_assert_eq(rec.n, 8, "%d RTM_SETLINK", rec.n);
    free(evs);
    json_free(ev);
}
