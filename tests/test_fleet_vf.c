/* test_fleet_vf.c - the fleet with SR-IOV VF pools: a guest whose cfg asks
 * for `device = driver=vfio-pci,opt_pool=POOL` gets a free VF of the pool,
 * the VF gets the guest's MAC, QEMU gets `-device vfio-pci,host=VF,id=pt_N`,
 * and stopping or failing the guest puts the VF's own MAC back.
 *
 * There is NO SR-IOV hardware on the machines these tests run on, so the
 * fake SR-IOV host of tests/sriov_fx.h stands in for it, and nothing else
 * is fake: a sysfs tree in a temp dir (PF ens1f0 with its VFs) handed to
 * the fleet as fleet_opts.sysfs_root; a netlink recorder as
 * fleet_opts.vf_nl, which keeps every RTM_SETLINK request (MAC, VLAN),
 * plays the kernel by writing the new MAC into the fake VF, and answers
 * RTM_GETLINK for VFs bound to vfio-pci (no netdev); and, since vfio would
 * refuse a fake VF, a QEMU stand-in script that records its argv and then
 * waits to be stopped (or exits at once). Everything else - cfg, leases,
 * the guest state machine on a libuv loop, the run dir - is the real
 * thing, in this process. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "cfg/vm.h"
#include "src/alloc/alloc.h"
#include "src/alloc/vf.h"
#include "src/fleet/fleet.h"
#include "base/fs.h"
#include "sriov_fx.h"
#include "testutil.h"

#define PF_IFINDEX 7
#define VF_NETDEV "ens1f0v" /* VF i of the fake PF ens1f0 is ens1f0v<i> */

static char dir[256], root[300], state[300], run[300], err[1024];
static sfx_rec rec; /* what the netlink recorder saw; the fake PF's view */
static alloc_nl recorder;

static void setup(void)
{
    cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "fleetvf"), 0);
    snprintf(root, sizeof(root), "%s/sys", dir);
    snprintf(state, sizeof(state), "%s/state", dir);
    snprintf(run, sizeof(run), "%s/run", dir);
    rec = (sfx_rec){ .root = root, .vfname = VF_NETDEV };
    recorder = sfx_nl(&rec, 1);
}

static void teardown(void) { tu_rmtree(dir); }

TestSuite(fleet_vf, .init = setup, .fini = teardown, .timeout = 120);

/* --- the fake SR-IOV host (tests/sriov_fx.h) ---------------------------- */

/* PF ens1f0 (PF_IFINDEX) with nvf VFs 0000:3b:02.i, netdevs ens1f0vI with
 * MAC aa:00:00:00:3b:0I; the PF says the same over RTM_GETLINK. */
static void fake_pf(int nvf)
{
    sfx_pf(root, "ens1f0", PF_IFINDEX, 0x3b, nvf, VF_NETDEV);
    sfx_view(&rec, nvf, "aa:00:00:00:3b:%02x");
}

/* VF i loses its netdev and is bound to vfio-pci, as QEMU needs it. Its
 * MAC is then only known to the PF: set it to pf_mac there. */
static void bind_vfio(int i, const char *pf_mac)
{
    sfx_bind(root, 0x3b, i, VF_NETDEV, "vfio-pci");
    snprintf(rec.pf[i].mac, MAC_STRLEN, "%s", pf_mac);
}

/* --- cfg ------------------------------------------------------------------ */

/* The pool is in the defaults' [KVM], where a DTS setup keeps host facts;
 * the VM asks for a VF of it. extra: more device options. */
static const char *kvm_extra = "";  /* more [KVM] lines, for the next vf_vm */
static const char *pool_extra = ""; /* more vf_pool groups (";name=...") */

static struct cfg_vm *vf_vm(const char *qemu, const char *extra)
{
    char text[1024];
    snprintf(text, sizeof(text), "[KVM]\nvf_pool = name=net1,pf=ens1f0%s\n%s", pool_extra,
             kvm_extra);
    sfx_write(text, 0644, "%s/global.cfg", dir);
    snprintf(text, sizeof(text),
             "[vm0]\n"
             "qemu = path=./%s\n"
             "enable_kvm = enable=no\n"
             "qga = enable=no\n"
             "vnc = disable=yes\n"
             "device = driver=vfio-pci,opt_pool=net1%s\n",
             qemu, extra ? extra : "");
    sfx_write(text, 0644, "%s/vm.cfg", dir);
    char cfg[400], glob[400];
    snprintf(cfg, sizeof(cfg), "%s/vm.cfg", dir);
    snprintf(glob, sizeof(glob), "%s/global.cfg", dir);
    struct cfg_vm *vm;
    cr_assert_eq(cfg_vm_load(cfg, "vm0", glob, &vm, err, sizeof(err)), 0, "%s", err);
    return vm;
}

/* --- the loop --------------------------------------------------------- */

static uv_loop_t loop;

static void tick(uv_timer_t *t) { (void)t; }

/* Run the loop until pred holds or ms pass; returns pred. */
static int run_until(int (*pred)(void *), void *arg, int ms)
{
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, tick, 20, 20); /* wakes UV_RUN_ONCE to re-check pred */
    double end = tu_now_ms() + ms;
    int ok;
    while (!(ok = pred(arg)) && tu_now_ms() < end)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return ok;
}

static int flag_set(void *arg) { return *(int *)arg; }
static void set_flag(fleet_t *f, void *data)
{
    (void)f;
    *(int *)data = 1;
}

static fleet_t *fleet(void)
{
    cr_assert_eq(uv_loop_init(&loop), 0);
    fleet_opts o = { .state_dir = state, .run_dir = run, .sysfs_root = root, .vf_nl = &recorder };
    fleet_t *f;
    cr_assert_eq(fleet_new(&loop, &o, NULL, NULL, &f, err, sizeof(err)), 0, "%s", err);
    return f;
}

static void fleet_down(fleet_t *f)
{
    int stopped = 0, freed = 0;
    fleet_stop_all(f, set_flag, &stopped);
    cr_assert(run_until(flag_set, &stopped, 20000), "the fleet did not stop");
    fleet_free(f, set_flag, &freed);
    cr_assert(run_until(flag_set, &freed, 5000));
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0, "handles left open");
}

/* A fleet with guest name of vf_vm(qemu, extra), started. */
static fleet_t *started(const char *qemu, const char *extra, const char *name)
{
    fleet_t *f = fleet();
    cr_assert_eq(fleet_add(f, vf_vm(qemu, extra), name, err, sizeof(err)), 0, "%s", err);
    fleet_start(f);
    return f;
}

struct want_state {
    fleet_t *f;
    const char *name;
    fleet_state s;
};

static int in_state(void *arg)
{
    struct want_state *w = arg;
    fguest_t *g = fleet_find(w->f, w->name);
    return g && fguest_state(g) == w->s;
}

static void wait_state(fleet_t *f, const char *name, fleet_state s)
{
    struct want_state w = { f, name, s };
    cr_assert(run_until(in_state, &w, 20000), "%s: %s, not %s (%s)", name,
              fleet_state_name(fguest_state(fleet_find(f, name))), fleet_state_name(s),
              fguest_reason(fleet_find(f, name)));
}

static int argv_written(void *name)
{
    char p[400];
    snprintf(p, sizeof(p), "%s/argv-%s", dir, (const char *)name);
    return access(p, R_OK) == 0;
}

/* The stand-in's argv, one argument a line. */
static char *argv_of(const char *name)
{
    cr_assert(run_until(argv_written, (void *)name, 20000), "%s: QEMU never ran", name);
    char *s = sfx_read("%s/argv-%s", dir, name);
    cr_assert(s);
    return s;
}

/* The host address in "-device vfio-pci,host=ADDR,id=pt_0,addr=..". */
static void vf_of_argv(const char *argv, char out[13])
{
    const char *p = strstr(argv, "\nvfio-pci,host=");
    cr_assert(p, "no vfio-pci device in:\n%s", argv);
    p += strlen("\nvfio-pci,host=");
    snprintf(out, 13, "%.12s", p);
    cr_assert(!strncmp(p + 12, ",id=pt_0,addr=", 14), "%s", p);
}

/* --- leases --------------------------------------------------------------- */

static alloc_lease *leases(size_t *n)
{
    alloc_store *s;
    alloc_lease *l;
    cr_assert_eq(alloc_store_open(&s, state, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(alloc_list(s, &l, n, err, sizeof(err)), 0, "%s", err);
    alloc_store_close(s);
    return l;
}

/* How many leases of kind (NULL: any) have an owner containing part. */
static int count_leases(const char *kind, const char *part)
{
    size_t n;
    alloc_lease *l = leases(&n);
    int c = 0;
    for (size_t i = 0; i < n; i++)
        c += (!kind || !strcmp(l[i].kind, kind)) && strstr(l[i].owner, part);
    free(l);
    return c;
}

/* The VF lease of guest name: its VF and the MAC it was given. */
static void vf_lease(const char *name, char pci[13], char mac[MAC_STRLEN])
{
    char owner[64];
    snprintf(owner, sizeof(owner), "/%s/nic", name);
    size_t n;
    alloc_lease *l = leases(&n);
    int found = 0;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(l[i].kind, "vf") && strstr(l[i].owner, owner)) {
            snprintf(pci, 13, "%s", l[i].value);
            snprintf(mac, MAC_STRLEN, "%s", l[i].data);
            found++;
        }
    free(l);
    cr_assert_eq(found, 1, "%s holds %d VF leases", name, found);
}

/* Guest name holds a "mac" lease of mac (the MAC allocator gave it out,
 * so no other guest on the host can get it). */
static int holds_mac(const char *name, const char *mac)
{
    char owner[64];
    snprintf(owner, sizeof(owner), "/%s/nic", name);
    size_t n;
    alloc_lease *l = leases(&n);
    int found = 0;
    for (size_t i = 0; i < n; i++)
        found |= !strcmp(l[i].kind, "mac") && !strcmp(l[i].value, mac) && strstr(l[i].owner, owner);
    free(l);
    return found;
}

/* No saved MAC is left behind in the store. */
static void no_saved_macs(void)
{
    char *s = sfx_read("%s/leases.json", state);
    cr_assert(s);
    cr_assert_null(strstr(s, "vfmac:"), "%s", s);
    free(s);
}

static void assert_req(int i, int vf, const char *mac)
{
    cr_assert_lt(i, rec.n);
    cr_assert_eq(rec.r[i].ifindex, PF_IFINDEX);
    cr_assert_eq(rec.r[i].vf, vf);
    cr_assert_str_eq(rec.r[i].mac, mac);
}

static void stop_guest_cb(fguest_t *g, void *data)
{
    (void)g;
    *(int *)data = 1;
}

/* --- tests ---------------------------------------------------------------- */

Test(fleet_vf, vf_gets_the_guest_mac_and_it_is_restored_at_stop)
{
    fake_pf(2);
    sfx_qemu(dir, "qemu-stay", SFX_QEMU_STAYS);
    fleet_t *f = started("qemu-stay", NULL, "vm0-1");
    char *argv = argv_of("vm0-1");
    char host[13], pci[13], mac[MAC_STRLEN];
    vf_of_argv(argv, host);
    cr_assert_str_eq(host, "0000:3b:02.0", "%s", argv);
    free(argv);
    cr_assert_eq(fguest_state(fleet_find(f, "vm0-1")), GS_LAUNCHING);

    /* the VF QEMU got is the one leased, with the guest's MAC; that MAC is
     * a MAC lease of the guest like any NIC's, and the netlink request set
     * exactly it on VF 0 of the PF */
    vf_lease("vm0-1", pci, mac);
    cr_assert_str_eq(pci, host);
    cr_assert(holds_mac("vm0-1", mac), "%s is not leased to the guest", mac);
    cr_assert_eq(rec.n, 1);
    assert_req(0, 0, mac);

    int stopped = 0;
    fguest_stop(fleet_find(f, "vm0-1"), stop_guest_cb, &stopped);
    cr_assert(run_until(flag_set, &stopped, 20000));
    cr_assert_eq(fguest_state(fleet_find(f, "vm0-1")), GS_STOPPED);
    /* release: the VF's own MAC back, lease and saved MAC gone */
    cr_assert_eq(rec.n, 2);
    assert_req(1, 0, "aa:00:00:00:3b:00");
    cr_assert_eq(count_leases(NULL, "/vm0-1"), 0);
    no_saved_macs();
    fleet_down(f);
    cr_assert_eq(rec.n, 2);
}

Test(fleet_vf, qemu_failing_gives_the_vf_back)
{
    fake_pf(1);
    sfx_qemu(dir, "qemu-fail", SFX_QEMU_FAILS);
    fleet_t *f = started("qemu-fail", NULL, "vm0");
    wait_state(f, "vm0", GS_FAILED);
    const char *why = fguest_reason(fleet_find(f, "vm0"));
    cr_assert(strstr(why, "exited with status 1 in state launching"), "%s", why);
    cr_assert(strstr(why, "stand-in: no VF here"), "%s", why); /* its stderr */
    char *argv = argv_of("vm0");
    cr_assert(strstr(argv, "\nvfio-pci,host=0000:3b:02.0,id=pt_0,addr="), "%s", argv);
    free(argv);
    cr_assert_eq(rec.n, 2);
    assert_req(1, 0, "aa:00:00:00:3b:00");
    cr_assert_str_neq(rec.r[0].mac, "aa:00:00:00:3b:00");
    cr_assert_eq(count_leases(NULL, "/vm0"), 0);
    no_saved_macs();
    fleet_down(f);
}

Test(fleet_vf, two_guests_two_vfs_and_the_third_finds_the_pool_empty)
{
    fake_pf(2);
    sfx_qemu(dir, "qemu-stay", SFX_QEMU_STAYS);
    fleet_t *f = fleet();
    char name[16];
    for (int i = 1; i <= 3; i++) {
        snprintf(name, sizeof(name), "vm0-%d", i);
        cr_assert_eq(fleet_add(f, vf_vm("qemu-stay", NULL), name, err, sizeof(err)), 0, "%s", err);
    }
    fleet_start(f);
    wait_state(f, "vm0-3", GS_FAILED);
    cr_assert_str_eq(fguest_reason(fleet_find(f, "vm0-3")),
                     "vm0-3: allocating: a VF of pool net1 for device 0 pt_0: "
                     "VF pool net1: all 2 VFs are leased");
    char *a1 = argv_of("vm0-1"), *a2 = argv_of("vm0-2"), h1[13], h2[13], pci[13], mac[2][18];
    vf_of_argv(a1, h1);
    vf_of_argv(a2, h2);
    free(a1);
    free(a2);
    cr_assert_str_neq(h1, h2);
    cr_assert(!strcmp(h1, "0000:3b:02.0") || !strcmp(h2, "0000:3b:02.0"));
    cr_assert(!strcmp(h1, "0000:3b:02.1") || !strcmp(h2, "0000:3b:02.1"));
    vf_lease("vm0-1", pci, mac[0]);
    cr_assert_str_eq(pci, h1);
    vf_lease("vm0-2", pci, mac[1]);
    cr_assert_str_eq(pci, h2);
    cr_assert_str_neq(mac[0], mac[1]);
    /* the third never touched a VF and holds nothing */
    cr_assert(!argv_written("vm0-3"));
    cr_assert_eq(rec.n, 2);
    cr_assert_eq(count_leases(NULL, "/vm0-3"), 0);

    fleet_down(f);
    /* both VFs got their own MACs back */
    cr_assert_eq(rec.n, 4);
    int back = 0;
    for (int i = 2; i < 4; i++) {
        char want[18];
        snprintf(want, sizeof(want), "aa:00:00:00:3b:%02x", rec.r[i].vf);
        cr_assert_str_eq(rec.r[i].mac, want);
        back |= 1 << rec.r[i].vf;
    }
    cr_assert_eq(back, 3);
    cr_assert_eq(count_leases("vf", "/"), 0);
    no_saved_macs();
}

Test(fleet_vf, netdev_and_pci_address_must_agree)
{
    fake_pf(2);
    /* a broken tree: VF 0's PCI device lists netdev ens1f0v0, whose device
     * link leads to VF 1's PCI device */
    sfx_symlink("../../../bus/pci/devices/0000:3b:02.1", "%s/class/net/" VF_NETDEV "0/device", root);
    sfx_qemu(dir, "qemu-stay", SFX_QEMU_STAYS);
    fleet_t *f = started("qemu-stay", NULL, "vm0");
    wait_state(f, "vm0", GS_FAILED);
    cr_assert_str_eq(fguest_reason(fleet_find(f, "vm0")),
                     "vm0: allocating: a VF of pool net1 for device 0 pt_0: VF 0 of ens1f0: PCI "
                     "device 0000:3b:02.0 lists netdev ens1f0v0, but ens1f0v0 belongs to "
                     "0000:3b:02.1");
    cr_assert(!argv_written("vm0"));
    cr_assert_eq(rec.n, 0);
    cr_assert_eq(count_leases(NULL, "/vm0"), 0);
    fleet_down(f);
}

Test(fleet_vf, cfg_mac_is_reserved_and_set)
{
    fake_pf(1);
    sfx_qemu(dir, "qemu-stay", SFX_QEMU_STAYS);
    fleet_t *f = started("qemu-stay", ",opt_mac=02:00:00:00:00:42", "vm0");
    free(argv_of("vm0"));
    char pci[13], mac[MAC_STRLEN];
    vf_lease("vm0", pci, mac);
    cr_assert_str_eq(mac, "02:00:00:00:00:42");
    cr_assert(holds_mac("vm0", "02:00:00:00:00:42"));
    cr_assert_eq(rec.n, 1);
    assert_req(0, 0, "02:00:00:00:00:42");
    fleet_down(f);
    cr_assert_eq(rec.n, 2);
    assert_req(1, 0, "aa:00:00:00:3b:00");
    cr_assert_eq(count_leases(NULL, "/vm0"), 0);
}

Test(fleet_vf, refused_mac_fails_the_guest_and_takes_nothing)
{
    fake_pf(1);
    sfx_qemu(dir, "qemu-stay", SFX_QEMU_STAYS);
    rec.fail = rec.fail_vlan = -EPERM;
    fleet_t *f = started("qemu-stay", NULL, "vm0");
    wait_state(f, "vm0", GS_FAILED);
    const char *why = fguest_reason(fleet_find(f, "vm0"));
    cr_assert(strstr(why, "vm0: allocating: a VF of pool net1 for device 0 pt_0: set MAC "), "%s", why);
    cr_assert(strstr(why, " on VF 0 of ens1f0 (0000:3b:02.0): Operation not permitted"), "%s", why);
    cr_assert(!argv_written("vm0"));
    cr_assert_eq(rec.n, 1); /* the refused request; nothing to restore */
    cr_assert_eq(count_leases(NULL, "/vm0"), 0);
    no_saved_macs();
    fleet_down(f);
}

/* Issue 19 item 1: the cfg's mac_prefix (here in [KVM], where DTS keeps
 * host facts) is what the fleet's MACs start with; before, the fleet
 * passed NULL and the host's derived prefix was used. */
Test(fleet_vf, cfg_mac_prefix_is_used_by_the_fleet)
{
    fake_pf(1);
    sfx_qemu(dir, "qemu-stay", SFX_QEMU_STAYS);
    kvm_extra = "mac_prefix = prefix=02:5a:5a:\n";
    fleet_t *f = started("qemu-stay", NULL, "vm0");
    char *argv = argv_of("vm0");
    char pci[13], mac[MAC_STRLEN];
    vf_lease("vm0", pci, mac);
    cr_assert(!strncmp(mac, "02:5a:5a:", 9), "VF MAC %s", mac);
    cr_assert(holds_mac("vm0", mac));
    /* the host_connect NIC's MAC too */
    const char *nic = strstr(argv, ",id=host_connect,mac=");
    cr_assert(nic && !strncmp(nic + strlen(",id=host_connect,mac="), "02:5a:5a:", 9), "%s", argv);
    free(argv);
    fleet_down(f);
}

/* A port nobody here listens on or leases, from a range of its own. */
static int quiet_port(int first)
{
    for (int p = first; p < first + 500; p++)
        if (alloc_port_bindable("127.0.0.1", p))
            return p;
    cr_assert_fail("no free port from %d", first);
    return -1;
}

static void hold_port(int port, const char *owner)
{
    alloc_store *s;
    alloc_owner o;
    cr_assert_eq(alloc_store_open(&s, state, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(alloc_owner_init(&o, owner, 0, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(alloc_reserve_port(s, &o, port, err, sizeof(err)), 0, "%s", err);
    alloc_store_close(s);
}

/* Issue 19 item 6: a hostfwd port and a migration port fixed by the cfg
 * are leased like config MACs: held by the guest while it lives, and a
 * clash fails the guest naming the holder, before QEMU runs (which used
 * to be a QEMU bind failure, or worse, two guests on one port). */
Test(fleet_vf, fixed_ports_are_leased_and_a_clash_names_the_holder)
{
    fake_pf(2);
    sfx_qemu(dir, "qemu-stay", SFX_QEMU_STAYS);
    int fwd = quiet_port(41000), mig = quiet_port(fwd + 1);
    char extra[256];
    snprintf(extra, sizeof(extra),
             "\nnet = type=nic;type=user,opt_hostfwd=tcp:127.0.0.1:%d-:22\n"
             "migration = enable=yes,port=%d\n", fwd, mig);
    fleet_t *f = started("qemu-stay", extra, "vm0");
    free(argv_of("vm0"));
    char v[16];
    alloc_store *s;
    alloc_lease l;
    cr_assert_eq(alloc_store_open(&s, state, NULL, err, sizeof(err)), 0, "%s", err);
    snprintf(v, sizeof(v), "%d", fwd);
    cr_assert_eq(alloc_lookup(s, "port", v, &l, err, sizeof(err)), 0, "hostfwd port %d not leased", fwd);
    cr_assert(strstr(l.owner, "/vm0"), "%s", l.owner);
    snprintf(v, sizeof(v), "%d", mig);
    cr_assert_eq(alloc_lookup(s, "port", v, &l, err, sizeof(err)), 0, "migration port %d not leased", mig);
    cr_assert(strstr(l.owner, "/vm0"), "%s", l.owner);
    alloc_store_close(s);
    fleet_down(f);
    cr_assert_eq(count_leases("port", "/vm0"), 0);

    /* held by someone else: the guest fails naming the holder */
    hold_port(mig, "other/mig");
    f = started("qemu-stay", extra, "vm1");
    wait_state(f, "vm1", GS_FAILED);
    const char *why = fguest_reason(fleet_find(f, "vm1"));
    snprintf(v, sizeof(v), "port %d", mig);
    cr_assert(strstr(why, v) && strstr(why, "other/mig"), "%s", why);
    cr_assert(!argv_written("vm1"));
    cr_assert_eq(count_leases(NULL, "/vm1"), 0);
    fleet_down(f);

    hold_port(fwd, "other/fwd");
    f = started("qemu-stay", extra, "vm2");
    wait_state(f, "vm2", GS_FAILED);
    why = fguest_reason(fleet_find(f, "vm2"));
    snprintf(v, sizeof(v), "port %d", fwd);
    cr_assert(strstr(why, v) && strstr(why, "other/fwd"), "%s", why);
    fleet_down(f);
}

/* Issue 19 item 2: the pool's VFs are bound to vfio-pci, so they have no
 * netdev. The fleet still saves VF 0's MAC (read through the PF) before
 * the guest's goes on and restores it when the guest stops; before, the
 * note was empty and the VF kept the guest's MAC. */
Test(fleet_vf, vfio_bound_vf_gets_its_mac_back)
{
    fake_pf(1);
    bind_vfio(0, "5a:00:00:00:3b:00");
    sfx_qemu(dir, "qemu-stay", SFX_QEMU_STAYS);
    fleet_t *f = started("qemu-stay", NULL, "vm0");
    free(argv_of("vm0"));
    char pci[13], mac[MAC_STRLEN];
    vf_lease("vm0", pci, mac);
    cr_assert_eq(rec.n, 1);
    assert_req(0, 0, mac);
    cr_assert_str_eq(rec.pf[0].mac, mac);
    fleet_down(f);
    cr_assert_eq(rec.n, 2);
    assert_req(1, 0, "5a:00:00:00:3b:00");
    cr_assert_str_eq(rec.pf[0].mac, "5a:00:00:00:3b:00");
    no_saved_macs();
}

/* Item 2: a pool VF bound to another driver fails the guest before QEMU
 * runs, saying how to bind it. */
Test(fleet_vf, vf_not_on_vfio_fails_before_launch)
{
    fake_pf(1);
    sfx_mkdir_p("%s/bus/pci/drivers/iavf", root);
    sfx_symlink("../../../bus/pci/drivers/iavf", "%s/bus/pci/devices/0000:3b:02.0/driver", root);
    sfx_qemu(dir, "qemu-stay", SFX_QEMU_STAYS);
    fleet_t *f = started("qemu-stay", NULL, "vm0");
    wait_state(f, "vm0", GS_FAILED);
    const char *why = fguest_reason(fleet_find(f, "vm0"));
    cr_assert(strstr(why, "is bound to iavf, not vfio-pci") && strstr(why, "driver_override"), "%s", why);
    cr_assert(!argv_written("vm0"));
    cr_assert_eq(rec.n, 0);
    cr_assert_eq(count_leases(NULL, "/vm0"), 0);
    fleet_down(f);
}

/* Item 3: exclude= keeps the VF the host uses out of the pool. */
Test(fleet_vf, pool_exclude_skips_the_hosts_vf)
{
    fake_pf(2);
    sfx_qemu(dir, "qemu-stay", SFX_QEMU_STAYS);
    pool_extra = ";name=net2,pf=ens1f0,exclude=ens1f0:0";
    fleet_t *f = fleet();
    struct cfg_vm *vm = vf_vm("qemu-stay", NULL);
    cr_assert_eq(cfg_vm_set(vm, "device", "driver=vfio-pci,opt_pool=net2", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(fleet_add(f, vm, "vm0", err, sizeof(err)), 0, "%s", err);
    fleet_start(f);
    char *argv = argv_of("vm0");
    /* pt_0 from net1 takes VF 0; pt_1 from net2 may not, and gets VF 1 */
    cr_assert(strstr(argv, "\nvfio-pci,host=0000:3b:02.0,id=pt_0,"), "%s", argv);
    cr_assert(strstr(argv, "\nvfio-pci,host=0000:3b:02.1,id=pt_1,"), "%s", argv);
    free(argv);
    fleet_down(f);

    /* the excluded VF is never handed out, though free: after VF 1 the
     * pool is empty */
    rec.n = 0;
    f = fleet();
    for (int k = 1; k <= 2; k++) {
        char name[8];
        snprintf(name, sizeof(name), "vm%d", k);
        vm = vf_vm("qemu-stay", NULL);
        cr_assert_eq(cfg_vm_clear(vm, "device", err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(cfg_vm_set(vm, "device", "driver=vfio-pci,opt_pool=net2", err, sizeof(err)),
                     0, "%s", err);
        cr_assert_eq(fleet_add(f, vm, name, err, sizeof(err)), 0, "%s", err);
    }
    fleet_start(f);
    free(argv_of("vm1"));
    wait_state(f, "vm2", GS_FAILED);
    cr_assert(strstr(fguest_reason(fleet_find(f, "vm2")), "VF pool net2: all 1 VFs are leased"),
              "%s", fguest_reason(fleet_find(f, "vm2")));
    char pci[13], mac[MAC_STRLEN];
    vf_lease("vm1", pci, mac);
    cr_assert_str_eq(pci, "0000:3b:02.1");
    fleet_down(f);
    for (int i = 0; i < rec.n; i++)
        cr_assert_neq(rec.r[i].vf, 0, "the host's VF 0 was touched");
}

/* Item 4: opt_vlan on a pool VF: the PF tags it before launch
 * (IFLA_VF_VLAN after the MAC); at stop the VLAN comes off, then the MAC
 * goes back. */
Test(fleet_vf, pool_vf_vlan_set_and_taken_off)
{
    fake_pf(1);
    sfx_qemu(dir, "qemu-stay", SFX_QEMU_STAYS);
    fleet_t *f = started("qemu-stay", ",opt_vlan=100", "vm0");
    free(argv_of("vm0"));
    char pci[13], mac[MAC_STRLEN];
    vf_lease("vm0", pci, mac);
    cr_assert_eq(rec.n, 2);
    assert_req(0, 0, mac);
    cr_assert_eq(rec.r[1].vlan, 100);
    cr_assert_eq(rec.pf[0].vlan, 100);
    fleet_down(f);
    cr_assert_eq(rec.n, 4);
    cr_assert_eq(rec.r[2].vlan, 0);
    assert_req(3, 0, "aa:00:00:00:3b:00");
    no_saved_macs();
}

/* Item 4 (seed 003, step 1): a hand-picked VF (opt_host) with opt_mac
 * gets that MAC (and opt_vlan) through its PF before launch, the MAC is
 * leased like a NIC's, and both go back at stop. It was warned and
 * dropped before. */
Test(fleet_vf, hand_picked_vf_gets_fixed_mac_and_vlan)
{
    fake_pf(2);
    bind_vfio(1, "5a:00:00:00:3b:01");
    sfx_qemu(dir, "qemu-stay", SFX_QEMU_STAYS);
    fleet_t *f = fleet();
    struct cfg_vm *vm = vf_vm("qemu-stay", NULL);
    cr_assert_eq(cfg_vm_clear(vm, "device", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg_vm_set(vm, "device",
                            "driver=vfio-pci,opt_host=3b:02.1,opt_mac=02:11:22:33:44:55,opt_vlan=7",
                            err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(fleet_add(f, vm, "vm0", err, sizeof(err)), 0, "%s", err);
    fleet_start(f);
    char *argv = argv_of("vm0");
    cr_assert(strstr(argv, "\nvfio-pci,host=0000:3b:02.1,id=pt_0,"), "%s", argv);
    free(argv);
    cr_assert_eq(rec.n, 2);
    assert_req(0, 1, "02:11:22:33:44:55");
    cr_assert_eq(rec.r[1].vf, 1);
    cr_assert_eq(rec.r[1].vlan, 7);
    cr_assert(holds_mac("vm0", "02:11:22:33:44:55"));
    cr_assert_eq(count_leases("vf", "/vm0"), 1);
    fleet_down(f);
    cr_assert_eq(rec.n, 4);
    cr_assert_eq(rec.r[2].vlan, 0);
    assert_req(3, 1, "5a:00:00:00:3b:01");
    cr_assert_eq(count_leases(NULL, "/vm0"), 0);
    no_saved_macs();
}
