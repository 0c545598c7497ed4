/* test_fleet_pci.c - the pt_N map end to end: `qfleet up` (the real
 * binary, real QEMU under TCG, the test guest of tools/mkguest) with
 * several pt devices at chosen slots and functions, and the map the fleet
 * publishes checked twice: against the exact addresses the cfg chose, and
 * against what the guest's own kernel enumerates at each address.
 *
 * The devices are emulated NICs: vfio-pci needs an IOMMU group bound to
 * vfio-pci, which this host does not have (no /dev/vfio); the fleet maps
 * a vfio-pci pt_N by the same qdev id lookup as any other, so the map is
 * tested here and the host side of vfio in test_fleet_vf and test_cfg_qemu. */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/json.h"
#include "qfleet_fx.h"
#include "testutil.h"

#define QFLEET QF_BINARY_DIR "/src/qfleet"

static char dir[256], run_dir[300], state_dir[300];
static pid_t qfleet_pid; /* the qfleet up of the test, until it was reaped */

static void setup(void)
{
    cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "fleetpci"), 0);
    snprintf(run_dir, sizeof(run_dir), "%s/run", dir);
    snprintf(state_dir, sizeof(state_dir), "%s/state", dir);
    qfx_need_guest();
}

/* A test that failed before stopping its qfleet stops it here: left
 * running, it and its guest would outlive the test binary. */
static void teardown(void)
{
    if (qfleet_pid > 0) {
        kill(qfleet_pid, SIGINT);
        tu_wait_exit(qfleet_pid, 60000); /* SIGKILL when the time is up */
    }
    tu_rmtree(dir);
}

TestSuite(fleet_pci, .init = setup, .fini = teardown, .timeout = 600);

/* One pt device: what the cfg says, where it must be, what it is. */
struct pt_case {
    const char *id, *driver, *addr_opt; /* addr_opt NULL: the fleet leases a slot */
    const char *settings;               /* opt_settings, or NULL */
    const char *want_addr;              /* NULL with addr_opt NULL */
    const char *vendor, *device;        /* PCI ids the guest must see there */
};

/* Out of id order on purpose, so a map that takes the n-th device seen for
 * pt_n, or any pt_* for another, lands on the wrong address:
 * - slot 05 is multifunction: pt_2 at 05.0 carries multifunction=on (the
 *   cfg's opt_settings; QEMU refuses 05.1 next to a single-function 05.0),
 *   pt_0 is function 1 of it;
 * - pt_1 at slot 0x12, which DTS once printed in decimal ("00:18.0");
 * - pt_3 without opt_addr takes a slot the fleet leases. */
static const struct pt_case cases[] = {
    { "pt_2", "virtio-net-pci", "05.0", "multifunction=on", "0000:00:05.0", "0x1af4", "0x1000" },
    { "pt_0", "e1000", "05.1", NULL, "0000:00:05.1", "0x8086", "0x100e" },
    { "pt_1", "rtl8139", "12", NULL, "0000:00:12.0", "0x10ec", "0x8139" },
    { "pt_3", "e1000", NULL, NULL, NULL, "0x8086", "0x100e" },
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static void write_cfg(const char *path)
{
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f,
            "[vm0]\n"
            "cpu =\n    model=qemu64,number=1;\n"
            "mem =\n    size=256;\n"
            "kernel =\n    file=%s/vmlinux,initrd=%s/initrd.img,append=console=ttyS0 quiet "
            "panic=-1;\n"
            "login =\n    user=root,password=tester;\n"
            "net =\n    type=nic,opt_model=e1000,opt_addr=1f;\n    type=user;\n"
            "device =\n",
            tu_guest_dir(), tu_guest_dir());
    for (size_t i = 0; i < NCASES; i++) {
        fprintf(f, "    driver=%s,opt_id=%s", cases[i].driver, cases[i].id);
        if (cases[i].addr_opt)
            fprintf(f, ",opt_addr=%s", cases[i].addr_opt);
        if (cases[i].settings)
            fprintf(f, ",opt_settings=%s", cases[i].settings);
        fprintf(f, ";\n");
    }
    fprintf(f, "enable_kvm =\n    enable=no;\n");
    fclose(f);
}

static pid_t start_qfleet(char *const args[])
{
    char out[320], errp[320];
    snprintf(out, sizeof(out), "%s/out.txt", dir);
    snprintf(errp, sizeof(errp), "%s/err.txt", dir);
    tu_child c = { .out = out, .err = errp, .state_dir = state_dir };
    qfleet_pid = tu_start((const char *const *)args, &c);
    return qfleet_pid;
}

/* The guest's view: "ADDR VENDOR DEVICE" per PCI function it enumerated. */
#define GUEST_PCI_CMD                                                                             \
    "cd /sys/bus/pci/devices && for d in *; do echo \"$d $(cat $d/vendor) $(cat $d/device)\"; done"

Test(fleet_pci, pt_map_is_exact_and_what_the_guest_sees)
{
    char cfg[320];
    snprintf(cfg, sizeof(cfg), "%s/guest.cfg", dir);
    write_cfg(cfg);
    char *args[] = { QFLEET, "up", cfg, "--run-dir", run_dir, "-q", NULL };
    pid_t pid = start_qfleet(args);
    json_t *reg = qfx_wait_settled(run_dir, 1, 400000);
    char *err = tu_slurp_in(dir, "err.txt");
    cr_assert(reg, "the guest did not settle: %s", err);
    json_t *g = json_at(json_get(reg, "guests"), 0);
    cr_assert_str_eq(json_get_str(g, "state"), "ready", "%s", json_get_str(g, "reason"));

    /* The fleet's map: every pt device once, in cfg order, at its address. */
    const json_t *pci = json_get(g, "pci");
    cr_assert_eq(json_len(pci), NCASES, "pci map: %zu entries", json_len(pci));
    const char *addr[NCASES];
    for (size_t i = 0; i < NCASES; i++) {
        const json_t *pt = json_at(pci, i);
        cr_assert_str_eq(json_get_str(pt, "id"), cases[i].id);
        addr[i] = json_get_str(pt, "addr");
        cr_assert(addr[i], "%s has no addr", cases[i].id);
        cr_assert(json_get(pt, "host") && !json_get_str(pt, "host"), "%s: host not null", cases[i].id);
        if (cases[i].want_addr)
            cr_assert_str_eq(addr[i], cases[i].want_addr, "%s", cases[i].id);
        for (size_t k = 0; k < i; k++)
            cr_assert_str_neq(addr[i], addr[k], "%s and %s share an address", cases[i].id, cases[k].id);
    }
    /* The leased slot is a whole free slot on bus 0: not one the cfg took,
     * not the control NIC's 1f. */
    unsigned slot = 0, fn = 9;
    cr_assert_eq(sscanf(addr[3], "0000:00:%2x.%1x", &slot, &fn), 2, "%s", addr[3]);
    cr_assert_eq(fn, 0);
    cr_assert(slot != 0x05 && slot != 0x12 && slot != 0x1f && slot > 0, "leased slot %02x", slot);

    /* The guest's kernel finds each device at the fleet's address. */
    char seen[8192];
    qfx_ssh_run((int)json_get_int(g, "ssh_port", -1), GUEST_PCI_CMD, seen, sizeof(seen));
    for (size_t i = 0; i < NCASES; i++) {
        char want[96];
        snprintf(want, sizeof(want), "%s %s %s\n", addr[i], cases[i].vendor, cases[i].device);
        cr_assert(strstr(seen, want), "the guest has no %s (%s) at %s; it sees:\n%s", cases[i].id,
                  cases[i].driver, addr[i], seen);
    }
    json_free(reg);
    kill(pid, SIGINT);
    int code = tu_wait_exit(pid, 120000);
    qfleet_pid = 0;
    cr_assert_eq(code, 128 + SIGINT);
    free(err);
}
