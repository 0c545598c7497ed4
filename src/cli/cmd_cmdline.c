/* cmd_cmdline.c - `qfleet cmdline CFG VM`: the QEMU command line of a VM,
 * without launching it. What the fleet leases at launch (MACs, ports, the
 * VNC display, guest PCI slots, SR-IOV VFs) is filled with previews and
 * said so. Nothing on the host is read for the VFs: the pools' PFs need
 * not exist where the command line is previewed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg/argv.h"
#include "cfg/vm.h"
#include "base/json.h"
#include "src/alloc/alloc.h"
#include "src/cli/cmd.h"

static const char cmdline_help[] =
    "usage: qfleet cmdline CFG VM [--defaults FILE] [--run-dir DIR] [--qemu-path N|PATH]\n"
    "                     [--mac-prefix P] [--json]\n"
    "\n"
    "Print the QEMU command line of VM (a [section] of the DTS cfg file CFG)\n"
    "without launching anything: one argument per line, shell-quoted.\n"
    "MACs, host ports, the VNC display and guest PCI slots, which the fleet\n"
    "leases at launch, are previews (first free guesses). The host address of\n"
    "a VF from a vf_pool (device driver=vfio-pci,opt_pool=POOL) is a\n"
    "placeholder in PCI domain ffff: the fleet takes a free VF at launch.\n"
    "The login password is never printed.\n"
    "\n"
    "  --defaults FILE  global defaults merged under CFG (the [KVM] section\n"
    "                   of a DTS virt_global.cfg)\n"
    "  --run-dir DIR    directory for the VM's sockets and logs\n"
    "                   (default: $TMPDIR/qfleet-preview)\n"
    "  --qemu-path N|PATH  the QEMU binary: path N (from 0) of a multi-path\n"
    "                   qemu key, or PATH (default: the key's last path, as DTS)\n"
    "  --mac-prefix P   the VM's MAC prefix (1-5 octets), over the cfg's mac_prefix;\n"
    "                   without either: $QFLEET_MAC_PREFIX, else derived from the host\n"
    "  --json           {\"vm\":..., \"argv\":[...], \"warnings\":[...], \"preview\":{...}}\n"
    "  -h, --help       this text\n"
    "\n"
    "Warnings go to stderr. Exit status: 0 ok, 2 usage or cfg error (the\n"
    "message names FILE:LINE:COL), 3 host or internal error.\n";

static json_t *preview_json(const struct cfg_needs *nd, const struct cfg_res *res,
                            const char *hugedir_note)
{
    json_t *p = json_object(), *a;
    json_set_str(p, "note", "values here are previews: the fleet leases real ones at launch");
    json_set_str(p, "run_dir", res->run_dir);
    json_set(p, "macs", a = json_array());
    for (int i = 0; i < nd->macs; i++) {
        json_t *e = json_object();
        json_set_str(e, "value", res->macs[i]);
        json_set_str(e, "for", nd->mac_for[i]);
        json_append(a, e);
    }
    json_set(p, "pci_slots", a = json_array());
    for (int i = 0; i < nd->slots; i++) {
        json_t *e = json_object();
        char s[16];
        snprintf(s, sizeof(s), "%02x", (unsigned)res->pci_slot[i] & 0xffu);
        json_set_str(e, "value", s);
        json_set_str(e, "for", nd->slot_for[i]);
        json_append(a, e);
    }
    json_set(p, "ssh_ports", a = json_array());
    for (int i = 0; i < nd->ports; i++) {
        json_t *e = json_object();
        json_set_int(e, "value", res->ssh_port[i]);
        json_set_str(e, "for", nd->port_for[i]);
        json_append(a, e);
    }
    json_set(p, "vfs", a = json_array());
    for (int i = 0; i < nd->vfs; i++) {
        json_t *e = json_object();
        json_set_str(e, "value", res->vf_host[i]);
        json_set_str(e, "pool", nd->vf_pool[i]);
        json_set_str(e, "mac", cfg_vf_mac(nd, res, i));
        json_set_str(e, "for", nd->vf_for[i]);
        json_set_str(e, "note", "placeholder: the fleet takes a free VF of the pool at launch");
        json_append(a, e);
    }
    json_set(p, "pfs", a = json_array());
    for (int i = 0; i < nd->pfs; i++) {
        json_t *e = json_object();
        json_set_str(e, "value", res->pf_host[i]);
        json_set_str(e, "pool", nd->pf_pool[i]);
        json_set_str(e, "for", nd->pf_for[i]);
        json_set_str(e, "note", "placeholder: the fleet passes the pool's PF at launch");
        json_append(a, e);
    }
    json_set(p, "vnc", nd->vnc ? json_int(res->vnc) : json_null());
    json_set(p, "migrate_port", nd->migrate_port ? json_int(res->migrate_port) : json_null());
    json_set(p, "hugepage_dir", hugedir_note ? json_string(res->hugepage_dir) : json_null());
    return p;
}

static void preview_comments(const struct cfg_vm *vm, const struct cfg_needs *nd,
                             const struct cfg_res *res, const char *hugedir_note)
{
    const struct cfg_vm_info *vi = cfg_vm_info(vm);
    int taps = 0;
    for (int i = 0; i < vi->nnics; i++)
        taps += vi->nics[i].attach_bridge;
    int any = nd->macs || nd->slots || nd->ports || nd->vnc || nd->migrate_port || hugedir_note ||
              nd->vfs || nd->pfs || taps;
    if (!any)
        return;
    printf("# previews (the fleet leases real values at launch):\n");
    for (int i = 0; i < nd->macs; i++)
        printf("#   mac %s for %s\n", res->macs[i], nd->mac_for[i]);
    for (int i = 0; i < nd->slots; i++)
        printf("#   guest pci slot %02x for %s\n", (unsigned)res->pci_slot[i] & 0xffu,
               nd->slot_for[i]);
    for (int i = 0; i < nd->ports; i++)
        printf("#   host port %d for %s\n", res->ssh_port[i], nd->port_for[i]);
    if (nd->vnc)
        printf("#   vnc display %d (port %d)\n", res->vnc, 5900 + res->vnc);
    if (nd->migrate_port)
        printf("#   migration port %d\n", res->migrate_port);
    if (hugedir_note)
        printf("#   hugetlbfs %s (%s)\n", res->hugepage_dir, hugedir_note);
    for (int i = 0; i < nd->vfs; i++)
        printf("#   vf host %s for %s is a PLACEHOLDER: a free VF of pool %s, given MAC %s\n",
               res->vf_host[i], nd->vf_for[i], nd->vf_pool[i], cfg_vf_mac(nd, res, i));
    for (int i = 0; i < vi->nnics; i++)
        if (vi->nics[i].attach_bridge) {
            char ifn[16];
            cfg_tap_ifname(vm, res, i, ifn);
            printf("#   tap %s of %s joins bridge %s (the fleet attaches it)\n", ifn,
                   vi->nics[i].id, vi->nics[i].bridge);
        }
    for (int i = 0; i < nd->pfs; i++)
        printf("#   pf host %s for %s is a PLACEHOLDER: the PF of pool %s\n", res->pf_host[i],
               nd->pf_for[i], nd->pf_pool[i]);
}

static int exit_code(int r) { return r == -ENOMEM || r == -EIO ? 3 : 2; }

/* What `qfleet cmdline` was asked for. */
struct cmdline_args {
    const char *cfg, *vm, *defaults, *qemu, *mac_prefix;
    char run_dir[4096]; /* absolute */
    int json;
};

static int cmdline_parse(int argc, char **argv, struct cmdline_args *a)
{
    static const char P[] = "qfleet cmdline";
    enum { O_DEFAULTS, O_RUN_DIR, O_QEMU, O_JSON, O_MAC_PREFIX };
    cli_opt opts[] = { { "--defaults", 0, 1, NULL }, { "--run-dir", 0, 1, NULL },
                       { "--qemu-path", 0, 1, NULL }, { "--json", 0, 0, NULL },
                       { "--mac-prefix", 0, 1, NULL }, { NULL, 0, 0, NULL } };
    cli_args ca;
    if (cli_parse(P, argc, argv, opts, 2, &ca))
        return 2;
    if (ca.help)
        return CLI_HELP;
    if (ca.npos < 2)
        return cli_usage_error(P, "name the cfg file and the VM: qfleet cmdline CFG VM");
    *a = (struct cmdline_args){ .cfg = ca.pos[0], .vm = ca.pos[1],
                                .defaults = opts[O_DEFAULTS].value,
                                .qemu = opts[O_QEMU].value, .json = !!opts[O_JSON].value,
                                .mac_prefix = opts[O_MAC_PREFIX].value };
    const char *rd = opts[O_RUN_DIR].value;
    if (!rd) {
        const char *tmp = getenv("TMPDIR");
        snprintf(a->run_dir, sizeof(a->run_dir), "%s/qfleet-preview",
                 tmp && *tmp == '/' ? tmp : "/tmp");
    } else if (rd[0] != '/') {
        char cwd[2048];
        if (!getcwd(cwd, sizeof(cwd))) {
            perror("qfleet cmdline: getcwd");
            return 3;
        }
        snprintf(a->run_dir, sizeof(a->run_dir), "%s/%s", cwd, rd);
    } else {
        snprintf(a->run_dir, sizeof(a->run_dir), "%s", rd);
    }
    return 0;
}

/* The VM and its command line with previewed leases. */
struct preview {
    struct cfg_vm *vm;
    struct cfg_needs nd;
    struct cfg_res res;
    const char *hugedir_note; /* why the hugetlbfs dir is a guess, or NULL */
    char mac_prefix[32];      /* what the fleet's MACs will start with */
    const char *mac_prefix_from;
    char hugedir[4096];
    char **qargv;
};

static void preview_free(struct preview *p)
{
    cfg_argv_free(p->qargv);
    cfg_vm_free(p->vm);
}

/* The prefix the fleet will use: --mac-prefix, the cfg's mac_prefix,
 * $QFLEET_MAC_PREFIX, or the host's (alloc_mac_default_prefix). */
static void mac_prefix_of(struct preview *p, const char *option)
{
    const char *cfgp = cfg_vm_info(p->vm)->mac_prefix;
    char err[256];
    if (cfgp) {
        snprintf(p->mac_prefix, sizeof(p->mac_prefix), "%s", cfgp);
        p->mac_prefix_from = option ? "--mac-prefix" : "the cfg's mac_prefix";
    } else if (alloc_mac_default_prefix(NULL, p->mac_prefix, sizeof(p->mac_prefix),
                                        &p->mac_prefix_from, err, sizeof(err)) < 0) {
        snprintf(p->mac_prefix, sizeof(p->mac_prefix), "?");
        p->mac_prefix_from = "no NIC to derive it from: set mac_prefix";
    }
}

/* Load the VM and build its argv; errors name FILE:LINE:COL. 0 or the
 * exit code (2 cfg error, 3 host or internal error), said on stderr. */
static int preview_load(const struct cmdline_args *a, struct preview *p)
{
    char err[1024];
    memset(p, 0, sizeof(*p));
    int r = cfg_vm_load(a->cfg, a->vm, a->defaults, &p->vm, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "%s\n", err);
        return exit_code(r);
    }
    if (a->qemu && (r = cfg_vm_select_qemu(p->vm, a->qemu, err, sizeof(err))) < 0) {
        fprintf(stderr, "qfleet cmdline: --qemu-path: %s\n", err);
        cfg_vm_free(p->vm);
        return exit_code(r);
    }
    if (a->mac_prefix && (r = cfg_vm_set(p->vm, "mac_prefix", a->mac_prefix, err, sizeof(err))) < 0) {
        fprintf(stderr, "qfleet cmdline: --mac-prefix: %s\n", err);
        cfg_vm_free(p->vm);
        return exit_code(r);
    }
    mac_prefix_of(p, a->mac_prefix);
    cfg_vm_needs(p->vm, &p->nd);
    r = cfg_res_preview(p->vm, a->run_dir, &p->res, err, sizeof(err));
    if (r == 0 && p->nd.hugepages && cfg_hugetlbfs_find(NULL, p->hugedir, sizeof(p->hugedir)) < 0) {
        p->res.hugepage_dir = "/dev/hugepages";
        p->hugedir_note = "no hugetlbfs is mounted on this host; launching would fail";
    }
    if (r == 0)
        r = cfg_argv_build(p->vm, &p->res, &p->qargv, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "%s\n", err);
        preview_free(p);
        return r == -EINVAL ? 2 : 3;
    }
    const struct cfg_vm_info *vi = cfg_vm_info(p->vm);
    for (int i = 0; i < vi->nwarnings; i++) {
        char *m = cfg_vm_mask(p->vm, vi->warnings[i]);
        fprintf(stderr, "%s\n", m ? m : "(out of memory)");
        free(m);
    }
    return 0;
}

static int print_preview_json(const struct preview *p)
{
    json_t *o = json_object(), *vj = cfg_vm_json(p->vm, &p->res);
    json_t *w = vj ? json_take(vj, "warnings") : NULL;
    json_set(o, "vm", vj);
    json_set(o, "argv", cfg_argv_json(p->vm, p->qargv));
    json_set(o, "warnings", w ? w : json_array());
    json_t *pv = preview_json(&p->nd, &p->res, p->hugedir_note), *mp = json_object();
    json_set_str(mp, "value", p->mac_prefix);
    json_set_str(mp, "from", p->mac_prefix_from);
    json_set(pv, "mac_prefix", mp);
    json_set(o, "preview", pv);
    return cli_print_json(o) < 0 ? 3 : 0;
}

static int print_preview_text(const struct cmdline_args *a, const struct preview *p)
{
    const struct cfg_vm_info *vi = cfg_vm_info(p->vm);
    char *s = cfg_argv_shell(p->vm, p->qargv);
    printf("# VM %s ([%s] of %s)\n", vi->name, vi->section, a->cfg);
    printf("# mac prefix %s (%s)\n", p->mac_prefix, p->mac_prefix_from);
    preview_comments(p->vm, &p->nd, &p->res, p->hugedir_note);
    if (s)
        fputs(s, stdout);
    free(s);
    return s && fflush(stdout) == 0 ? 0 : 3;
}

int cmd_cmdline(int argc, char **argv)
{
    struct cmdline_args a;
    int rc = cmdline_parse(argc, argv, &a);
    if (rc)
        return rc == CLI_HELP ? cli_help(cmdline_help) : rc;
    struct preview p;
    if ((rc = preview_load(&a, &p)) != 0)
        return rc;
    rc = a.json ? print_preview_json(&p) : print_preview_text(&a, &p);
    preview_free(&p);
    return rc;
}
