/* cmd.h - qfleet subcommands (their option parser is base/cli.h, shared
 * with qmpctl).
 *
 * Each command takes argv with argv[0] = its own name and returns the
 * process exit code: 0 ok, 1 failure, 2 usage/config error, 3
 * infrastructure error. Each is three steps: parse (argv into an options
 * struct; a usage error names the option and exits 2), load (cfg, suite or
 * state; an error names FILE:LINE), run. `--help` prints to stdout, exit 0. */
#ifndef QF_CMD_H
#define QF_CMD_H

#include "base/cli.h"
#include "src/cluster/cluster.h"

/* cmd_up.c: the fleet. */
int cmd_up(int argc, char **argv);
int cmd_down(int argc, char **argv);

/* cmd_up.c: the cluster session of `qfleet up` and `qfleet run` (--store,
 * $QFLEET_STORE, --host-id). cmd_session_open opens it and runs the loop
 * until etcd answered: 0 with cc->c live, 0 with cc->c NULL for the local
 * store, 2 for a bad store string, 3 when no endpoint answered (both said
 * on stderr as "PROG: ..."; nothing is left open). From then on every
 * state change and conflict goes to the callbacks set in cc (NULL: none).
 * cmd_session_close: cb (may be NULL) once the session is freed, from the
 * loop; at once without a session. */
typedef struct cmd_session {
    cluster_t *c;
    char store[512];       /* the endpoints, for errors and status */
    cluster_state state;   /* the last one seen */
    char why[CLUSTER_ERR_MAX];
    void (*on_state)(struct cmd_session *cc, cluster_state s, const char *why);
    void (*on_conflict)(struct cmd_session *cc, const char *kind, const char *value,
                        const char *owner, const char *holder);
    void *data;
    void (*closed)(void *data);
} cmd_session;
int cmd_session_open(uv_loop_t *loop, const char *prog, const char *store, const char *host_id,
                     cmd_session *cc);
void cmd_session_close(cmd_session *cc, void (*cb)(void *data), void *data);

/* cmd_migrate.c: live migration between two guests of a live run. */
int cmd_migrate(int argc, char **argv);

/* cmd_templates.c: the warm-clone templates of the state dir. */
int cmd_templates(int argc, char **argv);

/* cmd_run.c: test suites in parallel. */
int cmd_run(int argc, char **argv);

/* cmd_alloc.c: the host's lease store. */
int cmd_leases(int argc, char **argv);
int cmd_alloc(int argc, char **argv);
int cmd_free(int argc, char **argv);

/* cmd_cluster.c: `leases` and `alloc` on an etcd store (cluster.h). The
 * store of argv (--store etcd://...) or $QFLEET_STORE when it is etcd, in
 * *store (NULL: the local store; a `--store DIR` of argv is rewritten to
 * --state-dir DIR in place); 2 after a usage error. */
int cmd_cluster_store(const char *prog, int argc, char **argv, const char **store);
int cmd_cluster_leases(const char *store, int argc, char **argv);
int cmd_cluster_alloc(const char *store, int argc, char **argv);
extern const char cmd_cluster_leases_help[];
extern const char cmd_cluster_alloc_help[];

/* cmd_cmdline.c: the QEMU command line of a cfg VM, without launching it. */
int cmd_cmdline(int argc, char **argv);

/* cmd_report.c: report.html of a run's status dir. */
int cmd_report(int argc, char **argv);

#endif
