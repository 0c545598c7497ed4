/* cmd_migrate.c - `qfleet migrate SRC DST`: live migration between two
 * guests of a live run, through its controller (the "migrate" request of
 * docs/rundir.md). */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "base/json.h"
#include "src/cli/cmd.h"
#include "src/ctl/control.h"
#include "src/ctl/runs.h"

/* How long past the migration's own timeout the destination may take to
 * reach ready (agent, DHCP, SSH under TCG). */
#define READY_MARGIN_MS 300000

static const char migrate_usage[] =
    "usage: qfleet migrate SRC DST [--run RUN] [--state-dir DIR] [--timeout S] [--cancel]\n"
    "                      [--downtime-limit MS] [--max-bandwidth BYTES] [--json]\n"
    "\n"
    "Live-migrate the guest SRC (ready) into DST, a guest of the same run whose VM\n"
    "has `migration = enable=yes` (state awaiting-migration). The controller\n"
    "drives QMP migrate on SRC to DST's incoming address and follows it through\n"
    "setup, active, completed; then DST walks to ready and takes SRC's name, and\n"
    "the old QEMU is quit and its leases released.\n"
    "\n"
    "  --run RUN            run id or run directory (default: the latest live run)\n"
    "  --state-dir DIR      host state dir (default $QFLEET_STATE_DIR, /var/lib/qfleet)\n"
    "  --timeout S          seconds for the migration to complete (default 600)\n"
    "  --cancel             cancel the migration when the time is up (SRC keeps running)\n"
    "  --downtime-limit MS  migrate-set-parameters downtime-limit\n"
    "  --max-bandwidth B    migrate-set-parameters max-bandwidth, bytes per second\n"
    "  --json               print the migration record instead of a line\n"
    "\n"
    "exit: 0 migrated and ready, 1 failed (the message names the phase), 2 usage\n";

struct migrate_args {
    const char *state_dir, *run, *src, *dst;
    int timeout, cancel, json;
    long long downtime, bandwidth;
};

static int migrate_parse(int argc, char **argv, struct migrate_args *a)
{
    static const char P[] = "qfleet migrate";
    enum { O_RUN, O_STATE, O_TIMEOUT, O_CANCEL, O_DOWNTIME, O_BW, O_JSON };
    cli_opt opts[] = { { "--run", 0, 1, NULL },           { "--state-dir", 0, 1, NULL },
                       { "--timeout", 0, 1, NULL },       { "--cancel", 0, 0, NULL },
                       { "--downtime-limit", 0, 1, NULL }, { "--max-bandwidth", 0, 1, NULL },
                       { "--json", 0, 0, NULL },          { NULL, 0, 0, NULL } };
    cli_args ca;
    if (cli_parse(P, argc, argv, opts, 2, &ca))
        return 2;
    if (ca.help)
        return CLI_HELP;
    if (ca.npos != 2)
        return cli_usage_error(P, "give the source and the destination guest");
    *a = (struct migrate_args){ .state_dir = opts[O_STATE].value, .run = opts[O_RUN].value,
                                .src = ca.pos[0], .dst = ca.pos[1], .timeout = 600,
                                .cancel = !!opts[O_CANCEL].value, .json = !!opts[O_JSON].value };
    if (cli_int(P, &opts[O_TIMEOUT], 1, 86400, &a->timeout) ||
        cli_number(P, &opts[O_DOWNTIME], 1, 2000000, &a->downtime) ||
        cli_number(P, &opts[O_BW], 1, (long long)1 << 50, &a->bandwidth))
        return 2;
    return 0;
}

static void print_line(const char *src, const char *dst, const json_t *r)
{
    printf("migrated %s -> %s: total %lld ms, downtime %lld ms, %lld bytes", src, dst,
           json_get_int(r, "total_ms", -1), json_get_int(r, "downtime_ms", -1),
           json_get_int(r, "transferred_bytes", -1));
    const json_t *ph = json_get(r, "phases_ms");
    for (size_t i = 0; i < json_len(ph); i++)
        printf("%s%s at %lld ms", i ? ", " : "; ", json_key_at(ph, i),
               json_get_int(ph, json_key_at(ph, i), -1));
    printf("\n");
}

int cmd_migrate(int argc, char **argv)
{
    struct migrate_args a;
    int rc = migrate_parse(argc, argv, &a);
    if (rc)
        return rc == CLI_HELP ? cli_help(migrate_usage) : rc;
    char dir[PATH_MAX], err[1024], sock[PATH_MAX + 16];
    rc = a.run ? runs_resolve(a.state_dir, a.run, dir, sizeof(dir), err, sizeof(err))
               : runs_latest(a.state_dir, dir, sizeof(dir), err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "qfleet migrate: %s\n", err);
        return 1;
    }
    snprintf(sock, sizeof(sock), "%s/control.sock", dir);
    json_t *req = json_object(), *reply = NULL;
    json_set_str(req, "cmd", "migrate");
    json_set_str(req, "guest", a.src);
    json_set_str(req, "destination", a.dst);
    json_set_int(req, "timeout_ms", (long long)a.timeout * 1000);
    json_set_bool(req, "cancel", a.cancel);
    if (a.downtime)
        json_set_int(req, "downtime_limit_ms", a.downtime);
    if (a.bandwidth)
        json_set_int(req, "max_bandwidth", a.bandwidth);
    rc = control_request(sock, req, &reply, a.timeout * 1000 + READY_MARGIN_MS, err, sizeof(err));
    json_free(req);
    if (rc < 0) {
        fprintf(stderr, "qfleet migrate: %s\n", err);
        return 1;
    }
    const json_t *e = json_get(reply, "error");
    if (e) {
        fprintf(stderr, "qfleet migrate: %s\n", json_get_str(e, "desc"));
        json_free(reply);
        return 1;
    }
    const json_t *r = json_get(reply, "return");
    if (a.json) {
        rc = cli_print_json(json_copy(r)) < 0 ? 1 : 0;
    } else {
        print_line(a.src, a.dst, r);
        rc = 0;
    }
    json_free(reply);
    return rc;
}
