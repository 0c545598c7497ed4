/* fleet_int.h - what fleet.c (the set of guests, the scheduler, the run
 * dir, the registry), boot.c (one guest's state machine up to ready),
 * stop.c (its graceful stop and failure), leases.c (its leases) and
 * claims.c (its cluster-wide claims) share. Not for other modules.
 *
 * The direction: fleet.c drives each guest through the fleet__guest_*
 * functions of boot.c and stop.c; they report every change of g->state
 * back through fleet__guest_changed() alone, which records it and kicks
 * the fleet's timer. Decisions (boot the next queued guest, tell the owner, end a
 * stop-all) are taken there, in fleet.c's advance(), never inside the QMP,
 * agent or process callback that caused the change. */
#ifndef QF_FLEET_INT_H
#define QF_FLEET_INT_H

#include <limits.h>

#include "cfg/argv.h"
#include "guest/session.h"
#include "qmp/agent.h"
#include "qmp/qmp.h"
#include "src/alloc/alloc.h"
#include "src/alloc/range.h"
#include "base/time.h"
#include "src/fleet/fleet.h"
#include "base/proc.h"

#define FLEET_REASON_MAX 4096
#define FLEET_PT_MAX (CFG_NIC_MAX + CFG_DEV_MAX)

/* A graceful stop, stage after stage; each runs only if the one before did
 * not end QEMU in time. */
enum stop_stage {
    STOP_NONE,   /* not stopping */
    STOP_AGENT,  /* agent guest-shutdown sent, waiting for QMP SHUTDOWN */
    STOP_QUIT,   /* QMP quit sent */
    STOP_KILL,   /* SIGTERM, then SIGKILL after a grace period (proc_stop) */
};

/* A caller of fguest_stop, told from the fleet's timer. */
struct fleet_waiter {
    fguest_done_cb cb;
    void *data;
    struct fleet_waiter *next;
};

struct fleet_mig;

#define FLEET_TKEY_LEN 16 /* hex digits of a template key */

/* A guest's part in warm cloning (template.c). */
struct fleet_clone {
    char key[FLEET_TKEY_LEN + 1]; /* "" unless the fleet clones and the VM may be */
    int restoring;   /* launched with -incoming from the template */
    int ided;        /* a restored guest has its identity back */
    int save;        /* to be saved as the template before its SSH login */
    int saving;      /* a save under way */
    int busy;        /* a QMP or agent reply of template.c outstanding */
    long long epid;  /* guest-exec pid of the identity script */
    double t0;       /* time_mono_ms at the start of the step */
    char incoming[PATH_MAX + 32]; /* res.incoming */
    char tmp[PATH_MAX];           /* the save's temporary file */
    char tmac[CFG_MAC_MAX][18];   /* the template's res.macs */
};

/* One cluster-wide claim of a guest (claims.c). The callback of its
 * cluster_claim records the answer here and kicks; claims.c decides. */
enum claim_what { CLAIM_FIXED, CLAIM_MAC, CLAIM_VNC, CLAIM_MIGPORT };
struct fleet_claim {
    fguest_t *g;
    char kind[CLUSTER_KIND_MAX];
    char value[CLUSTER_VALUE_MAX];
    enum claim_what what; /* how to pick another value; CLAIM_FIXED: none */
    int idx;              /* CLAIM_MAC: the MAC need k (res.macs[k]) */
    int pending;          /* a cluster_claim outstanding */
    int answered;         /* result is news for claims.c */
    int result;
    int held;
    int tries;
    char holder[256];
};

struct fguest {
    fleet_t *f;
    char name[CFG_NAME_MAX + 16];  /* what status shows; a migration hands it on */
    char fname[CFG_NAME_MAX + 16]; /* the name at fleet_add: its files (res.name) */
    struct cfg_vm *vm;
    const struct cfg_vm_info *vi;
    struct cfg_needs nd;
    struct cfg_res res;
    alloc_owner owner;
    alloc_range *pci;
    int leased;
    int had_leases;                /* res holds what was leased (shown after release) */
    int nvf;                       /* VFs taken: res.vf_host[0..nvf), their MACs set */

    fleet_state state;
    char reason[FLEET_REASON_MAX];
    long long started_ms;          /* wall clock at allocating */
    long long t_ms[GS_COUNT];      /* ms since started_ms; -1 not reached */
    double mono_start;             /* uv_hrtime based, for timings */

    proc_t *proc;
    pid_t pid;
    qmp_t *qmp;
    agent_t *agent;
    guest_session_t *ssh;
    int agent_connected;           /* socket connected (not yet synced) */
    int port_open;                 /* guest opened the agent port */
    int syncing;
    int port_retry_used;

    uv_timer_t phase_timer;        /* bounds the current phase */
    uv_timer_t poll_timer;         /* DHCP address polling */
    uv_timer_t stop_timer;         /* bounds the current stop stage */
    enum stop_stage stop_stage;
    int got_shutdown;

    long long port_open_ms;        /* QEMU's VSERPORT_CHANGE time, ms since started_ms */
    char ip[64];
    char ssh_host[64];
    int ssh_port;
    struct { char id[32]; char addr[16]; char host[32]; } pt[FLEET_PT_MAX];
    int npt;

    struct fleet_waiter *waiters;  /* fguest_stop callers */

    struct fleet_mig *mig;         /* the migration it is part of, or NULL */
    json_t *migration;             /* its latest migration record (guests.json) */
    int migrated_away;             /* the guest left this QEMU: stop without the agent */
    struct fleet_clone cl;         /* warm clones (template.c) */
    struct fleet_claim *cw;        /* cluster-wide claims (claims.c), or NULL */
    int ncw;
    int claiming;                  /* allocating: waiting for cw's answers */
    char conflict[512];            /* a key taken while cut off: fail with this */
    int pub_dirty, published;      /* cluster_publish due / done */
};

/* A transition the owner has not been told about yet. */
struct fleet_event {
    fguest_t *g;
    fleet_state s;
};

struct fleet {
    uv_loop_t *loop;
    fleet_opts o;
    char state_dir[PATH_MAX];
    char run_dir[PATH_MAX];
    char run_id[64];
    char cfg_path[PATH_MAX];
    alloc_store *store;
    fguest_t **g;
    size_t n, cap;
    int evfd;                      /* events.jsonl, O_APPEND */
    uv_timer_t kick;               /* zero-delay: advance(), then guests.json */
    int advancing;                 /* inside advance(): a kick means one more pass */
    int again;
    int registry_dirty;
    int registry_failed;           /* the last rewrite failed (said once) */
    struct fleet_event *ev;        /* for the owner, oldest first */
    size_t nev, evcap;
    fleet_event_cb cb;
    void *data;
    int stopping_all;
    fleet_done_cb stop_cb;
    void *stop_data;
    int freeing;                   /* fleet_free called: no scheduling, no on_event */
    int pending_closes;
    struct fleet_mig *migs;        /* migrations in progress (migrate.c) */
    fleet_done_cb free_cb;
    void *free_data;
    /* cluster-wide leases (claims.c) */
    cluster_state cl_state;        /* as last told (fleet_cluster_state) */
    char cl_why[256];
    long long cl_since_ms;         /* wall clock it stopped being live, or 0 */
    int cl_logged;                 /* cl_state is in events.jsonl */
    int claims_pending;            /* cluster_claim callbacks still to come */
};

/* fleet.c: g->state changed. Records it (events.jsonl, guests.json, the
 * owner's queue) and kicks the fleet; decides nothing. */
void fleet__guest_changed(fguest_t *g);

/* fleet.c: one line of events.jsonl (ev is freed; a failed append is said
 * on stderr: the run goes on). */
void fleet__event_write(fleet_t *f, json_t *ev);

/* fleet.c: run advance() from the loop soon (a zero-delay timer). */
void fleet__kick(fleet_t *f);

/* migrate.c, from advance(): hand-overs, failures, the callers' cb. */
void fleet__migrations_advance(fleet_t *f);
/* fleet.c: one handle of the fleet's closed (fleet_free counts them). */
void fleet__closed_one(fleet_t *f);
/* migrate.c, from fleet_free: tell waiting callers, close the timers;
 * returns how many fleet__closed_one calls will come. */
int fleet__migrations_close(fleet_t *f);
/* migrate.c, from free_all: free what is left. */
void fleet__migrations_free(fleet_t *f);

/* leases.c */
int fleet__place_devices(fguest_t *g, char *err, size_t errlen);
int fleet__take_leases(fguest_t *g, char *err, size_t errlen);
int fleet__renew_ports(fguest_t *g, char *err, size_t errlen);
void fleet__release(fguest_t *g);                       /* leases, VFs */

/* claims.c. start: from boot, after the host leases: claim what is
 * cluster-wide (g->claiming set while answers are due; 0 with nothing
 * to wait for). advance: from advance(), before scheduling: decide on
 * the answers, fail guests that lost a key, log state changes, publish.
 * gate: 1 when queued guests may boot now, else 0 with their reason set.
 * release: the guest's cluster keys and its published entry. json:
 * guests.json's "cluster" (null without one). */
int fleet__claims_start(fguest_t *g, char *err, size_t errlen);
void fleet__claims_advance(fleet_t *f);
int fleet__cluster_gate(fleet_t *f);
void fleet__claims_release(fguest_t *g);
json_t *fleet__cluster_json(const fleet_t *f);
void fleet__claims_free(fguest_t *g);

/* A timeout in ms: the option s (seconds) if set, else the cfg's fallback_s. */
static inline int fleet__ms_of(int s, int fallback_s) { return (s > 0 ? s : fallback_s) * 1000; }

/* boot.c: one guest's machine, driven by fleet.c. */
void fleet__guest_init(fleet_t *f, fguest_t *g);       /* timers */
void fleet__guest_boot(fguest_t *g);                   /* queued -> allocating -> ... */
void fleet__guest_launch(fguest_t *g);                 /* leases all held: on to launching */
void fleet__guest_close(fguest_t *g, uv_close_cb cb);  /* handles; cb per handle */
#define FLEET_GUEST_HANDLES 3
int fleet__guest_booting(const fguest_t *g);           /* allocating .. before ready */
/* An incoming migration landed and QEMU runs the guest: awaiting-migration
 * -> running, then the usual phases (the agent port is already open). */
void fleet__guest_migrated_in(fguest_t *g);
/* g->state = s with its time, then fleet__guest_changed (boot.c, stop.c). */
void fleet__set_state(fguest_t *g, fleet_state s);

/* stop.c: one guest back down, for fleet.c and boot.c. */
void fleet__guest_stop(fguest_t *g);                   /* graceful; nothing if down */
/* Fail the guest: reason (with serial and stderr tails), kill, release.
 * Nothing if it is already stopped or failed. */
void fleet__guest_fail(fguest_t *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fleet__close_clients(fguest_t *g);  /* SSH, agent, QMP: closed, pointers NULL */
void fleet__drop_proc(fguest_t *g);      /* QEMU's group killed if alive, g->proc NULL */
void fleet__stop_next(fguest_t *g);      /* on to the next stop stage that applies */
void fleet__stop_finish(fguest_t *g);    /* QEMU is gone: clients, leases, -> stopped */

/* template.c: warm clones (fleet.h "warm clones").
 * plan: before launch (leases taken): decide restore, save or neither,
 * and set g->res.incoming for a restore. Never fails the guest.
 * save: from the walk before SSH; 1 when a save started (boot.c's
 * fleet__guest_saved follows, whatever happens), 0 when none is due.
 * identity: a restored guest, agent synced; fleet__guest_identity_done
 * follows once. drop: the template of g did not load: delete it and say
 * why in events.jsonl. event: one {"event":"template"} line. */
void fleet__clone_plan(fguest_t *g);
int fleet__template_save(fguest_t *g);
void fleet__clone_identity(fguest_t *g);
void fleet__template_drop(fguest_t *g, const char *why);
void fleet__template_event(fguest_t *g, const char *what, const char *reason, json_t *extra);
/* guests.json's "template": {"key","restored"}, or null (no cloning). */
json_t *fleet__template_json(const fguest_t *g);
/* restore_poll: a guest gone restoring: query-status until the template
 * is in, then cont and fleet__guest_migrated_in (or unclone). */
void fleet__clone_restore_poll(fguest_t *g);
/* boot.c: the ends of those steps. unclone: the template did not load
 * (QEMU exited, timed out, or came up in a state no restore leaves):
 * fleet__template_drop it and boot g cold with the same leases; 1 when
 * that happened, 0 when g was not restoring. */
void fleet__guest_saved(fguest_t *g);
void fleet__guest_identity_done(fguest_t *g, const char *error);
int fleet__guest_unclone(fguest_t *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* bridge.c: tap NICs joined to their host bridge (cfg nics[].attach_bridge).
 * check: every such bridge exists (before QEMU starts); attach: once QEMU
 * made the taps, each is up and a port of its bridge. 0 or -errno, err. */
int fleet__bridges_check(const struct cfg_vm_info *vi, char *err, size_t errlen);
int fleet__bridges_attach(fguest_t *g, char *err, size_t errlen);

#endif
