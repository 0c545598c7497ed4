/* qmpctl_int.h - what the qmpctl source files share.
 *
 *   qmpctl.c       options, help, dispatch, finding runs and guests
 *   qmpctl_show.c  list, status, pci (mostly the registry) and tables
 *   qmpctl_cmds.c  ifaces, qmp, qga, stop, console, events
 *   qmpctl_login.c ssh (with its SSH_ASKPASS helper), vnc, hmp
 *   qmpctl_qmp.c   the QMP side on libuv: one-shot commands, the events
 *                  follower, and the relay through which a follower shares
 *                  the monitor it holds (QEMU serves one client at a time)
 */
#ifndef QMPCTL_INT_H
#define QMPCTL_INT_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#include "base/json.h"

enum { QC_OK = 0, QC_FAIL = 1, QC_USAGE = 2 };

/* A following qmpctl shares the monitor at SOCK through SOCK + this. */
#define QC_RELAY_SUFFIX ".qmpctl"

struct qc_opts {
    const char *run;        /* --run-dir: a run id or directory */
    const char *state_dir;  /* --state-dir */
    const char *socket;     /* -s: any QEMU's QMP socket */
    int all;                /* list --all */
    int cluster;            /* list --cluster */
    const char *store;      /* --store etcd://... (list --cluster) */
    int json;
    int follow;             /* console -f */
    int raw;                /* console --raw */
    int check;              /* pci --check */
    long lines;             /* console -n; -1: all */
    int timeout_ms;         /* --timeout */
};

/* One guest of one run, as the registry describes it. */
struct qc_guest {
    char run_dir[PATH_MAX];
    char run_id[128];
    int live;               /* the controller is running */
    json_t *reg;            /* guests.json (owned) */
    const json_t *g;        /* this guest's entry in reg */
    const char *name;
};

/* Where a QMP command goes and how errors name it. */
struct qc_target {
    char sock[PATH_MAX];
    const char *what;       /* "inspection socket" or "socket" */
    int guest;              /* a qfleet guest's monitor (not -s) */
};

/* The outcome of one QMP command. */
struct qc_result {
    json_t *ret;            /* QEMU's "return" (owned), NULL on error */
    int remote;             /* QEMU answered with an error (not a lost connection) */
    char cls[64];
    char desc[600];
    char version[32];       /* QEMU's version from the greeting */
};

/* qmpctl.c */
extern const char *qc_prog;
/* The run of --run-dir, or the latest live one, with its registry; prints
 * the error. The guest fields stay empty. */
int qc_run_open(const struct qc_opts *o, struct qc_guest *out);
/* Resolve the run (--run-dir or the latest live one) and the guest name;
 * prints the error. need_live: a finished run is an error. */
int qc_guest_open(const struct qc_opts *o, const char *name, int need_live, struct qc_guest *out);
void qc_guest_close(struct qc_guest *g);
/* Reread the guest's registry entry (its state may have moved on). */
void qc_guest_refresh(struct qc_guest *g);
/* The monitor target of a guest: its inspection socket. */
void qc_guest_target(const struct qc_guest *g, struct qc_target *t);
/* Why talking to the guest's QEMU failed, in words: the registry state or
 * the pid; "" when neither explains it (then the socket error does). */
void qc_guest_why_gone(struct qc_guest *g, char *out, size_t outlen);
/* Path of a file the registry names relative to the run dir. */
void qc_guest_file(const struct qc_guest *g, const char *key, char *out, size_t outlen);
void qc_print_json(const json_t *v, int compact);
/* One line of text (first line of s), for reasons that carry log tails. */
const char *qc_first_line(const char *s, char *buf, size_t len);
/* The first line of a registry entry's reason, without the leading "NAME: ". */
const char *qc_reason_line(const json_t *g, char *buf, size_t len);
/* stopping, stopped or failed: QEMU is gone or going. */
int qc_state_is_down(const char *st);
/* A control socket request to the guest's controller; *reply is the whole
 * reply object. Prints the error and returns QC_FAIL on transport errors. */
int qc_control(const struct qc_guest *g, json_t *req, int timeout_ms, json_t **reply);

/* qmpctl_qmp.c */
/* Run one command on the monitor (or a relay sharing it). args is owned. */
int qc_qmp_call(const struct qc_target *t, const char *cmd, json_t *args, int timeout_ms,
                struct qc_result *r);
void qc_result_clear(struct qc_result *r);
/* Follow events until a signal or the monitor goes away; returns the exit
 * code. label names the guest in JSON lines (NULL with -s). */
int qc_follow_events(const struct qc_target *t, const char *label, int json, int timeout_ms);

/* qmpctl_show.c */
int qc_cmd_list(const struct qc_opts *o);
/* list --cluster: every host's published guests, from etcd. */
int qc_cmd_list_cluster(const struct qc_opts *o);
int qc_cmd_status(const struct qc_opts *o, const char *name);
int qc_cmd_pci(const struct qc_opts *o, const char *name);

/* qmpctl_cmds.c */
int qc_cmd_ifaces(const struct qc_opts *o, const char *name);
int qc_cmd_raw(const struct qc_opts *o, int qga, const char *name, int argc, char **argv);
int qc_cmd_stop(const struct qc_opts *o, const char *name);
int qc_cmd_migrate(const struct qc_opts *o, const char *name, const char *dst);
int qc_cmd_console(const struct qc_opts *o, const char *name);
int qc_cmd_events(const struct qc_opts *o, const char *name);
/* Build a command from what the user typed: a bare name with optional
 * key=value pairs or a JSON arguments object, or {"execute":…,"arguments":…}.
 * QC_OK or QC_USAGE (printed). */
int qc_parse_command(const char *verb, int argc, char **argv, char *cmd, size_t cmdlen,
                     json_t **args);

/* qmpctl_login.c */
/* When ssh runs qmpctl as its askpass helper: do that job and return the
 * exit code; -1 when this is not such a run. */
int qc_askpass_hook(int argc, char **argv);
/* ssh's exit status (CMD's), or QC_FAIL before ssh ran. */
int qc_cmd_ssh(const struct qc_opts *o, const char *name, int argc, char **argv);
int qc_cmd_vnc(const struct qc_opts *o, const char *name);
int qc_cmd_hmp(const struct qc_opts *o, const char *name, int argc, char **argv);

#endif
