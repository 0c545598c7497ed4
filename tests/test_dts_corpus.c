/* test_dts_corpus.c - `qfleet cmdline` on every VM section of the real DTS
 * cfg files in ../shared/dts-corpus (with its virt_global.cfg as
 * --defaults) and of cfg/examples/wild/dts_constructs.cfg: the real binary
 * must exit 0 with valid JSON, and the argv must have what DTS's
 * qemu_kvm.py gives for the constructs these files use: nic/backend pairs
 * in either order, crypto, pflash, scene VFs and PFs, a tap on a bridge,
 * the migration listen address and multi-path qemu keys. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/json.h"
#include "cfg/parse.h"
#include "cfg/vm.h"
#include "testutil.h"

#define CONSTRUCTS_DIR QF_SOURCE_DIR "/cfg/examples/wild"
#define CONSTRUCTS CONSTRUCTS_DIR "/dts_constructs.cfg"
#define QFLEET QF_BINARY_DIR "/src/qfleet"

static char tmp[256];
static char corpus[1024], corpus_defaults[1100];

/* The corpus sits in shared/ beside the project root (QF_SOURCE_DIR/..);
 * a git worktree one level deeper (wt/NAME) finds it one more level up.
 * QF_DTS_CORPUS overrides both. */
static void find_corpus(void)
{
    const char *env = getenv("QF_DTS_CORPUS");
    static const char *const rel[] = { "/../shared/dts-corpus", "/../../shared/dts-corpus" };
    if (env && *env) {
        snprintf(corpus, sizeof(corpus), "%s", env);
    } else {
        for (size_t i = 0; i < sizeof(rel) / sizeof(*rel); i++) {
            snprintf(corpus, sizeof(corpus), "%s%s", QF_SOURCE_DIR, rel[i]);
            if (access(corpus, F_OK) == 0)
                break;
        }
    }
    snprintf(corpus_defaults, sizeof(corpus_defaults), "%s/virt_global.cfg", corpus);
}

static void setup(void)
{
    cr_assert_eq(tu_mkdtemp(tmp, sizeof(tmp), "dtscorpus"), 0);
    find_corpus();
}
static void teardown(void) { tu_rmtree(tmp); }

TestSuite(corpus, .init = setup, .fini = teardown, .timeout = 300);

struct result {
    int rc;
    json_t *j;   /* the --json output, NULL if not valid JSON */
    char *out, *errout;
};

/* qfleet cmdline FILE SECTION [--defaults DEFAULTS] [--json] [extra] */
static struct result cmdline_as(const char *file, const char *sec, const char *defaults, int json,
                                const char *extra1, const char *extra2)
{
    char outp[512], errp[512], rundir[512];
    snprintf(outp, sizeof(outp), "%s/out", tmp);
    snprintf(errp, sizeof(errp), "%s/err", tmp);
    snprintf(rundir, sizeof(rundir), "%s/run", tmp);
    const char *av[16];
    int n = 0;
    av[n++] = QFLEET;
    av[n++] = "cmdline";
    av[n++] = file;
    av[n++] = sec;
    if (defaults) {
        av[n++] = "--defaults";
        av[n++] = defaults;
    }
    av[n++] = "--run-dir";
    av[n++] = rundir;
    if (json)
        av[n++] = "--json";
    if (extra1)
        av[n++] = extra1;
    if (extra2)
        av[n++] = extra2;
    av[n] = NULL;
    tu_child c = { .out = outp, .err = errp };
    struct result r = { .rc = tu_wait_exit(tu_start(av, &c), 120000) };
    r.out = tu_slurp(outp);
    r.errout = tu_slurp(errp);
    char jerr[256];
    r.j = json_parse(r.out, strlen(r.out), jerr, sizeof(jerr));
    return r;
}

static struct result cmdline(const char *file, const char *sec, const char *defaults,
                             const char *extra1, const char *extra2)
{
    return cmdline_as(file, sec, defaults, 1, extra1, extra2);
}

static void result_free(struct result *r)
{
    json_free(r->j);
    free(r->out);
    free(r->errout);
}

static const json_t *argv_of(const struct result *r) { return json_get(r->j, "argv"); }

/* Index of the first argument equal to s at or after from, or -1. */
static int arg_find(const json_t *av, const char *s, int from)
{
    for (size_t i = (size_t)from; i < json_len(av); i++)
        if (!strcmp(json_str(json_at(av, i)), s))
            return (int)i;
    return -1;
}

/* How many "OPT VALUE" pairs have a VALUE starting with prefix. */
static int count_opt(const json_t *av, const char *opt, const char *prefix)
{
    int n = 0;
    for (size_t i = 0; i + 1 < json_len(av); i++)
        if (!strcmp(json_str(json_at(av, i)), opt) &&
            !strncmp(json_str(json_at(av, i + 1)), prefix, strlen(prefix)))
            n++;
    return n;
}

/* The VALUE of the first "OPT VALUE" pair whose VALUE starts with prefix. */
static const char *opt_value(const json_t *av, const char *opt, const char *prefix)
{
    for (size_t i = 0; i + 1 < json_len(av); i++)
        if (!strcmp(json_str(json_at(av, i)), opt) &&
            !strncmp(json_str(json_at(av, i + 1)), prefix, strlen(prefix)))
            return json_str(json_at(av, i + 1));
    cr_assert_fail("no %s %s...", opt, prefix);
    return "";
}

/* 1 if some "OPT VALUE" pair has VALUE exactly v. */
static int has_opt(const json_t *av, const char *opt, const char *v)
{
    for (size_t i = 0; i + 1 < json_len(av); i++)
        if (!strcmp(json_str(json_at(av, i)), opt) && !strcmp(json_str(json_at(av, i + 1)), v))
            return 1;
    return 0;
}

/* Every -netdev of a NIC (id=netN) is the peer of exactly one -device and
 * every netdev=netN of a device has its -netdev: no NIC without a backend,
 * no backend without a NIC, none twice (DTS's pairing). Returns the count
 * of NIC pairs. */
static int check_pairs(const char *what, const json_t *av)
{
    int pairs = 0;
    for (size_t i = 0; i + 1 < json_len(av); i++) {
        if (strcmp(json_str(json_at(av, i)), "-netdev"))
            continue;
        const char *nd = json_str(json_at(av, i + 1));
        const char *id = strstr(nd, "id=net");
        if (!id || (strncmp(nd, "user,", 5) && strncmp(nd, "tap,", 4) && strncmp(nd, "bridge,", 7)))
            continue;
        char want[32];
        int k = atoi(id + 6);
        snprintf(want, sizeof(want), ",netdev=net%d,", k);
        int peers = 0;
        for (size_t j = 0; j + 1 < json_len(av); j++)
            peers += !strcmp(json_str(json_at(av, j)), "-device") &&
                     strstr(json_str(json_at(av, j + 1)), want) != NULL;
        cr_assert_eq(peers, 1, "%s: netdev net%d has %d NIC devices", what, k, peers);
        pairs++;
    }
    int devs = 0;
    for (size_t j = 0; j + 1 < json_len(av); j++) {
        const char *v = strstr(json_str(json_at(av, j + 1)), ",netdev=net");
        devs += !strcmp(json_str(json_at(av, j)), "-device") && v && v[11] >= '0' && v[11] <= '9';
    }
    cr_assert_eq(devs, pairs, "%s: %d NIC devices for %d backends", what, devs, pairs);
    return pairs;
}

/* Every VM section of file: exit 0, valid JSON, consistent pairs, a
 * control NIC. Calls more() for each with the result. Returns the count. */
static int each_vm(const char *file, const char *defaults,
                   void (*more)(const char *file, const char *sec, struct result *r))
{
    struct cfg_doc *doc;
    char err[1024];
    cr_assert_eq(cfg_doc_load(file, &doc, err, sizeof(err)), 0, "%s", err);
    int n = 0;
    for (int i = 0; i < cfg_doc_nsections(doc); i++) {
        const struct cfg_section *s = cfg_doc_section_at(doc, i);
        if (!cfg_section_is_vm(s)) {
            /* only a suite's, a scene's and per-case sections are not VMs */
            cr_assert(!strcmp(s->name, "suite") || !strcmp(s->name, "scene") ||
                          !strncmp(s->name, "test_", 5),
                      "%s: section [%s] taken for no VM", file, s->name);
            continue;
        }
        struct result r = cmdline(file, s->name, defaults, NULL, NULL);
        cr_assert_eq(r.rc, 0, "%s [%s]: exit %d: %s", file, s->name, r.rc, r.errout);
        cr_assert_not_null(r.j, "%s [%s]: --json output is not JSON", file, s->name);
        cr_assert_null(strstr(r.out, "tester"), "%s [%s]: the login password shows", file,
                       s->name);
        const json_t *av = argv_of(&r);
        cr_assert_gt(json_len(av), 10, "%s [%s]: short argv", file, s->name);
        char what[1024];
        snprintf(what, sizeof(what), "%s [%s]", file, s->name);
        cr_assert_geq(check_pairs(what, av), 1, "%s: no NIC", what);
        cr_assert_not_null(json_path(r.j, "vm.control"), "%s: no control NIC", what);
        cr_assert_eq(json_typeof(json_path(r.j, "vm.control")), JSON_INT, "%s: no control NIC",
                     what);
        /* nothing of DTS's that qfleet replaces on purpose leaks through */
        cr_assert_eq(arg_find(av, "-daemonize", 0), -1, "%s", what);
        cr_assert_eq(arg_find(av, "-pidfile", 0), -1, "%s", what);
        if (more)
            more(file, s->name, &r);
        result_free(&r);
        /* the text form for people: a pasteable command, the password masked */
        r = cmdline_as(file, s->name, defaults, 0, NULL, NULL);
        cr_assert_eq(r.rc, 0, "%s: exit %d: %s", what, r.rc, r.errout);
        cr_assert(!strncmp(r.out, "# VM ", 5), "%s: %s", what, r.out);
        cr_assert_null(strstr(r.out, "tester"), "%s: the login password shows", what);
        result_free(&r);
        n++;
    }
    cfg_doc_free(doc);
    return n;
}

static int ends_with(const char *s, const char *tail)
{
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && !strcmp(s + a - b, tail);
}

/* Properties of particular corpus files, by what they contain. */
static void corpus_props(const char *file, const char *sec, struct result *r)
{
    const json_t *av = argv_of(r);
    const char *base = strrchr(file, '/') + 1;
    if (!strcmp(base, "kernelpf_iavf.cfg") || !strcmp(base, "vf_macfilter.cfg")) {
        /* net = type=nic; type=user: one e1000 on one user backend, the
         * control NIC though it is not at 1f */
        cr_assert_eq(count_opt(av, "-netdev", "user,"), 1, "%s", base);
        cr_assert_eq(count_opt(av, "-device", "e1000,netdev=net0,id=nic0,"), 1, "%s", base);
        cr_assert_eq(json_get_int(json_get(r->j, "vm"), "control", -1), 0);
    }
    if (!strcmp(base, "port_control.cfg")) {
        cr_assert_eq(count_opt(av, "-netdev", "user,"), 2);
        cr_assert_eq(json_len(json_path(r->j, "vm.nics")), 2);
    }
    if (strstr(base, "cryptodev")) { /* crypto = enable=yes,opt_num=2 */
        char p[128];
        for (int i = 0; i < 2; i++) {
            snprintf(p, sizeof(p), "socket,id=cryptochr%d,path=/tmp/%s_crypto%d.sock", i, sec, i);
            cr_assert(has_opt(av, "-chardev", p), "%s [%s]: no %s", base, sec, p);
            snprintf(p, sizeof(p), "cryptodev-vhost-user,id=cryptodev%d,chardev=cryptochr%d", i, i);
            cr_assert(has_opt(av, "-object", p), "%s [%s]: no %s", base, sec, p);
            snprintf(p, sizeof(p), "virtio-crypto-pci,id=crypto%d,cryptodev=cryptodev%d", i, i);
            cr_assert(has_opt(av, "-device", p), "%s [%s]: no %s", base, sec, p);
        }
        cr_assert_eq(count_opt(av, "-device", "virtio-crypto-pci,"), 2);
        /* its multi-path-free qemu key is argv[0] */
        cr_assert_str_eq(json_str(json_at(av, 0)), "/opt/qemu-2.12.0/bin/qemu-system-x86_64");
    }
    if (!strncmp(base, "scene_", 6) && strstr(base, "vf_passthrough")) {
        /* vf_idx=0,pf_dev=0 / pf_dev=1: VFs of DTS ports 0 and 1, from the
         * vf_pools port0 and port1, placeholders until the fleet leases */
        cr_assert_eq(count_opt(av, "-device", "vfio-pci,host=ffff:ff:"), 2, "%s", base);
        const json_t *vfs = json_path(r->j, "preview.vfs");
        cr_assert_eq(json_len(vfs), 2);
        cr_assert_str_eq(json_get_str(json_at(vfs, 0), "pool"), "port0");
        cr_assert_str_eq(json_get_str(json_at(vfs, 1), "pool"), "port1");
        if (!strcmp(base, "scene_vf_passthrough.cfg")) {
            cr_assert_str_eq(json_get_str(json_at(vfs, 0), "mac"), "00:00:00:00:01:01");
            cr_assert_str_eq(json_get_str(json_at(vfs, 1), "mac"), "00:00:00:00:01:02");
        }
        cr_assert(strstr(r->errout, "no vf_pool named port0"), "%s: %s", base, r->errout);
    }
    if (!strcmp(base, "scene_pf_passthrough.cfg")) { /* pf_idx=0,1: the ports themselves */
        cr_assert_eq(count_opt(av, "-device", "vfio-pci,host=ffff:fe:"), 2);
        cr_assert_eq(json_len(json_path(r->j, "preview.pfs")), 2);
        cr_assert_eq(json_len(json_path(r->j, "preview.vfs")), 0);
    }
    if (!strcmp(base, "pvp_diff_qemu_version.cfg")) { /* five paths: the last, as DTS */
        cr_assert_str_eq(json_str(json_at(av, 0)), "/home/QEMU/qemu-7.2.0/bin/qemu-system-x86_64");
        cr_assert_eq(json_len(json_path(r->j, "vm.qemu_paths")), 5);
        cr_assert_eq(json_get_int(json_get(r->j, "vm"), "qemu_selected", -1), 4);
    }
    /* DTS's [KVM] defaults apply where the file has no key of its own */
    if (!strcmp(base, "ddp_gtp.cfg")) {
        cr_assert(has_opt(av, "-m", "2048"));
        cr_assert_eq(json_get_int(json_get(r->j, "vm"), "wait_seconds", 0), 120);
    }
}

Test(corpus, every_vm_section_of_every_file)
{
    DIR *d = opendir(corpus);
    cr_assert_not_null(d, "%s: %s (the DTS corpus sits in shared/ beside the project; "
                          "QF_DTS_CORPUS names another place)",
                       corpus, strerror(errno));
    int files = 0, vms = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!ends_with(e->d_name, ".cfg") || !strcmp(e->d_name, "virt_global.cfg"))
            continue;
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", corpus, e->d_name);
        vms += each_vm(path, corpus_defaults, corpus_props);
        files++;
    }
    closedir(d);
    cr_assert_geq(files, 27, "only %d corpus files", files);
    cr_assert_geq(vms, 33, "only %d VM sections", vms);
}

Test(corpus, multi_path_qemu_matrix)
{
    /* a run or suite picks each path in turn: one case per QEMU */
    static const char *const v[] = { "5.2.0", "6.2.0", "7.0.0", "7.1.0", "7.2.0" };
    char file[1100];
    snprintf(file, sizeof(file), "%s/pvp_diff_qemu_version.cfg", corpus);
    for (int i = 0; i < 5; i++) {
        char sel[8], want[128];
        snprintf(sel, sizeof(sel), "%d", i);
        struct result r = cmdline(file, "vm0", corpus_defaults, "--qemu-path", sel);
        cr_assert_eq(r.rc, 0, "%s", r.errout);
        snprintf(want, sizeof(want), "/home/QEMU/qemu-%s/bin/qemu-system-x86_64", v[i]);
        cr_assert_str_eq(json_str(json_at(argv_of(&r), 0)), want);
        cr_assert_eq(json_get_int(json_get(r.j, "vm"), "qemu_selected", -1), i);
        result_free(&r);
    }
    struct result r = cmdline(file, "vm0", corpus_defaults, "--qemu-path", "5");
    cr_assert_eq(r.rc, 2);
    cr_assert(strstr(r.errout, "qemu path 5: expected an index from 0 to 4"), "%s", r.errout);
    result_free(&r);
    r = cmdline(file, "vm0", corpus_defaults, "--qemu-path", "/usr/bin/qemu-system-x86_64");
    cr_assert_eq(r.rc, 0, "%s", r.errout);
    cr_assert_str_eq(json_str(json_at(argv_of(&r), 0)), "/usr/bin/qemu-system-x86_64");
    result_free(&r);
}

static void construct_props(const char *file, const char *sec, struct result *r)
{
    (void)file;
    const json_t *av = argv_of(r);
    const json_t *vm = json_get(r->j, "vm");
    if (!strcmp(sec, "user_first")) { /* user then nic: one NIC */
        cr_assert_eq(count_opt(av, "-netdev", "user,"), 1);
        cr_assert_eq(count_opt(av, "-device", "virtio-net-pci,netdev=net0,id=nic0,"), 1);
        cr_assert_eq(count_opt(av, "-device", "e1000"), 0);
        cr_assert_eq(json_get_int(vm, "control", -1), 0);
        cr_assert_eq(json_typeof(json_get(vm, "host_connect")), JSON_NULL);
        cr_assert(has_opt(av, "-m", "2048")); /* size=2G */
    }
    if (!strcmp(sec, "tap_bridge")) {
        const json_t *nic = json_at(json_get(vm, "nics"), 1);
        cr_assert_str_eq(json_get_str(nic, "backend"), "tap");
        cr_assert_str_eq(json_get_str(nic, "bridge"), "br1");
        cr_assert_eq(json_get_bool(nic, "attach_bridge", 0), 1);
        cr_assert_eq(count_opt(av, "-netdev", "tap,id=net1,ifname=qf"), 1);
        cr_assert_eq(count_opt(av, "-device", "virtio-net-pci,netdev=net1,"), 1);
        cr_assert_eq(json_len(json_get(r->j, "warnings")), 0, "%s", r->errout);
    }
    if (!strcmp(sec, "migration_target"))
        cr_assert(has_opt(av, "-incoming", "tcp::4444"));
    if (!strcmp(sec, "migration_local"))
        cr_assert(has_opt(av, "-incoming", "tcp:127.0.0.1:4445"));
    if (!strcmp(sec, "pflash")) {
        cr_assert(has_opt(av, "-drive", "file=/usr/share/OVMF/OVMF_CODE.fd,if=pflash,format=raw"));
        cr_assert_eq(count_opt(av, "-drive", "file=/"), 2);
        int i = arg_find(av, "-drive", 0);
        cr_assert(ends_with(json_str(json_at(av, arg_find(av, "-drive", i + 1) + 1)),
                            "/cfg/examples/wild/vars.fd,if=pflash,format=raw"));
    }
    if (!strcmp(sec, "vhost_settings")) { /* opt_settings=mrg_rxbuf=on,mq=on */
        cr_assert_eq(count_opt(av, "-device", "virtio-net-pci,netdev=netdev0,"), 1);
        const char *dev = opt_value(av, "-device", "virtio-net-pci,netdev=netdev0,");
        cr_assert(ends_with(dev, ",addr=03.0,mrg_rxbuf=on,mq=on"), "%s", dev);
    }
}

Test(corpus, constructs_the_corpus_does_not_show)
{
    cr_assert_eq(each_vm(CONSTRUCTS, NULL, construct_props), 6);
}

/* --json stays valid JSON when a value holds a byte that is not UTF-8. */
Test(corpus, json_with_a_non_utf8_byte)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/latin1.cfg", tmp);
    FILE *f = fopen(path, "w");
    fputs("[vm0]\ndisk = file=/img/caf\xe9.img\n", f);
    fclose(f);
    struct result r = cmdline(path, "vm0", NULL, NULL, NULL);
    cr_assert_eq(r.rc, 0, "%s", r.errout);
    cr_assert_not_null(r.j, "not JSON: %s", r.out);
    cr_assert(has_opt(argv_of(&r), "-drive", "file=/img/caf\xef\xbf\xbd.img"));
    result_free(&r);
}
