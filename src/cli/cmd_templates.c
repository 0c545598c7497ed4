/* cmd_templates.c - `qfleet templates`: the warm-clone templates of the
 * state dir (fleet.h "warm clones"), listed, sized and removed. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/json.h"
#include "base/time.h"
#include "src/cli/cmd.h"
#include "src/fleet/fleet.h"

static const char templates_help[] =
    "usage: qfleet templates [--json] [--state-dir DIR]\n"
    "       qfleet templates rm KEY|--all [--state-dir DIR]\n"
    "\n"
    "List or remove the templates warm clones start from ('qfleet up --clone').\n"
    "A template is saved the first time a guest of a cfg VM reaches the network\n"
    "with --clone and no template of its key exists; the key hashes the VM's\n"
    "QEMU command line (without per-guest MACs, ports, VNC and paths), the\n"
    "contents of its kernel and initrd and the identity of its QEMU binary and\n"
    "read-only disks. STALE: an input changed since the save; the template is\n"
    "no longer used and goes the next time its VM starts with --clone.\n"
    "\n"
    "  --json           a JSON array of template objects, for machines\n"
    "  --all            with rm: every template (and leftover temporary files)\n"
    "  --state-dir DIR  the host's state dir (default: $QFLEET_STATE_DIR, else\n"
    "                   /var/lib/qfleet as root, else $XDG_RUNTIME_DIR/qfleet)\n";

static void print_table(const json_t *t)
{
    if (json_len(t) == 0) {
        printf("no templates\n");
        return;
    }
    printf("%-16s  %-12s  %9s  %7s  %-19s  %-5s  %s\n", "KEY", "VM", "SIZE", "SAVE", "CREATED", "STALE",
           "CFG");
    for (size_t i = 0; i < json_len(t); i++) {
        const json_t *o = json_at(t, i);
        char when[32];
        time_wall_text(json_get_int(o, "created_ms", 0), "%Y-%m-%d %H:%M:%S", when, sizeof(when));
        const char *vm = json_get_str(o, "vm"), *cfg = json_get_str(o, "cfg");
        printf("%-16s  %-12s  %8.1fM  %6.2fs  %-19s  %-5s  %s\n", json_get_str(o, "key"), vm ? vm : "?",
               (double)json_get_int(o, "bytes", 0) / (1 << 20), (double)json_get_int(o, "save_ms", 0) / 1e3,
               when, json_get_bool(o, "stale", 0) ? "yes" : "no", cfg ? cfg : "?");
    }
}

int cmd_templates(int argc, char **argv)
{
    static const char P[] = "qfleet templates";
    enum { O_JSON, O_STATE, O_ALL };
    cli_opt opts[] = { { "--json", 0, 0, NULL }, { "--state-dir", 0, 1, NULL }, { "--all", 0, 0, NULL },
                       { NULL, 0, 0, NULL } };
    cli_args ca;
    if (cli_parse(P, argc, argv, opts, 2, &ca))
        return 2;
    if (ca.help)
        return cli_help(templates_help);
    const char *dir = opts[O_STATE].value;
    char err[512];
    if (ca.npos == 0) {
        if (opts[O_ALL].value)
            return cli_usage_error(P, "--all goes with rm");
        json_t *t = fleet_templates(dir, err, sizeof(err));
        if (!t) {
            fprintf(stderr, "%s: %s\n", P, err);
            return 3;
        }
        if (opts[O_JSON].value)
            return cli_print_json(t) < 0 ? 1 : 0;
        print_table(t);
        json_free(t);
        return 0;
    }
    if (strcmp(ca.pos[0], "rm"))
        return cli_usage_error(P, "unknown subcommand '%s' (only rm)", ca.pos[0]);
    int all = !!opts[O_ALL].value;
    if (all == (ca.npos == 2))
        return cli_usage_error(P, "rm takes one KEY or --all");
    int n = fleet_template_rm(dir, all ? NULL : ca.pos[1], err, sizeof(err));
    if (n < 0) {
        fprintf(stderr, "%s rm: %s\n", P, err);
        return n == -ENOENT ? 1 : 3;
    }
    if (opts[O_JSON].value) {
        json_t *o = json_object();
        json_set_int(o, "removed", n);
        return cli_print_json(o) < 0 ? 1 : 0;
    }
    printf("removed %d template%s\n", n, n == 1 ? "" : "s");
    return 0;
}
