/* fleet.h - many guests on one loop, each followed from launch to ready.
 *
 * A fleet owns one run directory (docs/rundir.md) and a set of guest
 * instances. Each instance walks the states below; every transition is
 * timestamped, written to events.jsonl, mirrored in guests.json and handed
 * to the owner's callback. Nothing here blocks the loop except the short
 * flock of the host lease store.
 *
 *   fleet_t *f;
 *   fleet_new(loop, &opts, on_event, data, &f, err, sizeof(err));
 *   fleet_add(f, vm, "vm0-1", err, sizeof(err));   (vm is the fleet's now)
 *   fleet_start(f);
 *   ... on_event sees each guest reach GS_READY or GS_FAILED ...
 *   fleet_stop_all(f, done_cb, data);  then fleet_free(f).
 *
 * When things happen. The fleet takes its decisions (which queued guest
 * boots next, who is told what) only from its own zero-delay timer, never
 * inside a QMP, agent, process or SSH callback and never inside a call of
 * the owner. So every callback below (on_event, fguest_stop's, the
 * fleet_stop_all one) runs from that timer, after the change it reports,
 * and may call any function of this header, fleet_free included. on_event
 * sees every transition once and in order, but a guest may have moved on
 * by then: fguest_state() and fleet_settled() tell the present. No
 * function here calls back before it returns, but fleet_free, which runs
 * the fguest_stop callbacks still waiting (and no on_event). */
#ifndef QF_FLEET_H
#define QF_FLEET_H

#include <stddef.h>
#include <uv.h>

#include "cfg/vm.h"
#include "base/json.h"
#include "src/cluster/cluster.h"

/* One guest's life. The order matters: states before GS_READY are the way
 * there, the ones after GS_AWAITING_MIGRATION the way down.
 *
 * A guest whose cfg VM has `migration = enable=yes` is a migration
 * destination: QEMU starts with -incoming and reports inmigrate, and the
 * guest parks in GS_AWAITING_MIGRATION (leases held, QMP connected, no
 * agent or SSH expected) until fleet_migrate() lands a guest in it. Then
 * it walks GS_RUNNING .. GS_READY like any boot. A parked guest counts as
 * settled and holds no --jobs slot. */
typedef enum fleet_state {
    GS_QUEUED,          /* waiting for a --jobs slot */
    GS_ALLOCATING,      /* taking leases */
    GS_LAUNCHING,       /* QEMU spawned, QMP not yet up */
    GS_QMP_CONNECTED,   /* QMP negotiated */
    GS_RESTORING,       /* a warm clone: QEMU loads the template (fleet_opts.clone) */
    GS_RUNNING,         /* query-status says running */
    GS_AGENT_CONNECTED, /* guest opened the agent port, sync answered */
    GS_NET_READY,       /* agent reports an IPv4 address on host_connect */
    GS_PCI_MAPPED,      /* every pt_N found in query-pci */
    GS_SSH_READY,       /* SSH login worked (cfg with login only) */
    GS_READY,
    GS_AWAITING_MIGRATION, /* -incoming: QMP up, waiting for fleet_migrate */
    GS_STOPPING,
    GS_STOPPED,
    GS_FAILED,
    GS_COUNT
} fleet_state;

/* The one name table of these states ("qmp-connected", ...): what
 * guests.json, events.jsonl and status.json spell. */
const char *fleet_state_name(fleet_state s);
/* The state named name, or -1 for no state of a guest. */
int fleet_state_from_name(const char *name);

typedef struct fleet fleet_t;
typedef struct fguest fguest_t;
struct alloc_nl;

typedef struct fleet_opts {
    const char *state_dir;   /* NULL: the host default (alloc.h) */
    const char *run_dir;     /* NULL: STATE/runs/RUN */
    const char *cfg_path;    /* recorded in controller.json */
    int jobs;                /* guests booting at once; 0: no limit */
    int boot_timeout_s;      /* running -> agent; 0: the cfg's wait_seconds */
    int net_timeout_s;       /* agent -> DHCP address; 0: 60 */
    int ssh_timeout_s;       /* 0: the cfg's login_timeout */
    int stop_timeout_s;      /* agent shutdown -> SHUTDOWN event; 0: 20 */
    int no_ssh;              /* skip the ssh-ready phase */
    /* SR-IOV VF pools (src/alloc/vf.h). Both are kept by pointer and must
     * outlive the fleet. Tests point them at a fake sysfs tree and a
     * netlink recorder; anything else leaves them NULL. */
    const char *sysfs_root;        /* where the pools' PFs and VFs are; NULL: /sys */
    const struct alloc_nl *vf_nl;  /* how VF MACs are set; NULL: the kernel */
    /* Warm clones (below, "warm clones"): 1 starts each guest from its VM's
     * template when there is one and saves one when there is none. 0: every
     * guest cold-boots and no template is read or written. */
    int clone;
    /* Leases across hosts (below, "cluster-wide leases"): the session the
     * owner opened, kept by pointer; NULL: every lease is host-local. */
    cluster_t *cluster;
    unsigned cluster_wide;   /* FLEET_CW_*: kinds claimed beside the MACs */
} fleet_opts;

/* ---- cluster-wide leases (claims.c) ----
 *
 * With fleet_opts.cluster, a guest still takes every lease from the host's
 * store first; then every MAC it gets (allocated or fixed by the cfg) is
 * also claimed cluster-wide as ("mac", MAC) for owner RUN/NAME, and so are
 * the kinds of cluster_wide: FLEET_CW_VNC its VNC display ("vnc", "N"),
 * FLEET_CW_MIGRATION its migration port ("migration", "PORT"),
 * FLEET_CW_VLAN the VLAN ids of its VFs ("vlan", "ID"). The claims are
 * answered asynchronously and the guest stays allocating until all are.
 * A value another host holds fails the guest naming that host when the
 * cfg fixes it; an allocated one is given back and another taken (at most
 * FLEET_CLAIM_TRIES times). A migration destination's fixed MACs are its
 * source's and are not claimed. The guest's cluster keys go when its
 * leases do.
 *
 * While the session is not CLUSTER_LIVE no queued guest boots: each says
 * why in its reason ("waiting: etcd unreachable since 12:01:02 ..."), and
 * so does guests.json's "cluster" object; running guests keep running.
 * The owner forwards the session's callbacks: fleet_cluster_state (every
 * change: a line {"event":"cluster"} in events.jsonl; when it is live
 * again queued guests boot) and fleet_cluster_conflict (a key of a guest
 * of this fleet taken by another host while this one was cut off: that
 * guest fails naming the holder). Both only record and kick.
 *
 * Each guest is published (cluster_publish, as RUN.NAME) with its
 * fguest_json plus "run" on every change and dropped when it is down. */
#define FLEET_CW_VNC 1u
#define FLEET_CW_MIGRATION 2u
#define FLEET_CW_VLAN 4u
#define FLEET_CLAIM_TRIES 8
/* "vnc,migration,vlan" (any of them, comma-separated) into FLEET_CW_*
 * bits. 0, or -EINVAL naming the bad word. */
int fleet_cluster_wide_parse(const char *list, unsigned *out, char *err, size_t errlen);
void fleet_cluster_state(fleet_t *f, cluster_state s, const char *why);
void fleet_cluster_conflict(fleet_t *f, const char *kind, const char *value, const char *owner,
                            const char *holder);

/* Every state change, from the fleet's timer. fguest_reason is set for
 * GS_FAILED. */
typedef void (*fleet_event_cb)(fleet_t *f, fguest_t *g, fleet_state s, void *data);
typedef void (*fleet_done_cb)(fleet_t *f, void *data);
typedef void (*fguest_done_cb)(fguest_t *g, void *data);

int fleet_new(uv_loop_t *loop, const fleet_opts *o, fleet_event_cb cb, void *data, fleet_t **out,
              char *err, size_t errlen);
/* Add an instance of vm named name (unique in the fleet; [A-Za-z0-9_.-]).
 * The fleet owns vm from here on, also on failure. */
int fleet_add(fleet_t *f, struct cfg_vm *vm, const char *name, char *err, size_t errlen);
/* Boot every queued guest (up to jobs at a time), from the next loop turn. */
void fleet_start(fleet_t *f);
/* Stop every guest gracefully; cb runs once none is left running (also
 * when none was: from the loop, never before this returns). */
void fleet_stop_all(fleet_t *f, fleet_done_cb cb, void *data);
/* Free after everything stopped (a guest still up fails with "the
 * controller shut down"): no on_event from here on; fguest_stop callbacks
 * still waiting run before this returns; closes handles, cb from the loop.
 * A second call does nothing. */
void fleet_free(fleet_t *f, fleet_done_cb cb, void *data);

const char *fleet_run_dir(const fleet_t *f);
const char *fleet_run_id(const fleet_t *f);
size_t fleet_count(const fleet_t *f);
fguest_t *fleet_guest_at(const fleet_t *f, size_t i);
fguest_t *fleet_find(const fleet_t *f, const char *name);
/* 1 when no guest is queued or on its way to ready. */
int fleet_settled(const fleet_t *f);
/* Write guests.json now if a change is still pending (it is otherwise
 * written once per loop turn): before telling anyone outside about one.
 * 0, or -errno (a full disk) with the reason in err: the old registry
 * stays intact and the change pending, and whoever was about to report the
 * change must report this failure instead. */
int fleet_flush_registry(fleet_t *f, char *err, size_t errlen);
/* guests.json as an object (caller frees). */
json_t *fleet_registry(const fleet_t *f);

const char *fguest_name(const fguest_t *g);
fleet_state fguest_state(const fguest_t *g);
const char *fguest_reason(const fguest_t *g);
/* The registry entry of one guest (caller frees). */
json_t *fguest_json(const fguest_t *g);
/* Stop one guest gracefully; cb (may be NULL) once it is stopped or
 * failed, from the fleet's timer (also when it already was). */
void fguest_stop(fguest_t *g, fguest_done_cb cb, void *data);
/* The guest's agent client once connected, else NULL (for the control
 * socket's raw agent commands). */
struct agent *fguest_agent(const fguest_t *g);

/* ---- live migration (migrate.c) ----
 *
 *   fleet_migrate(f, src, dst, &opts, on_done, data, err, sizeof(err));
 *
 * Moves the guest running in src (GS_READY) into dst (a parked
 * GS_AWAITING_MIGRATION guest of the same fleet): dst takes src's MACs as
 * a migration pair in the lease store (alloc_share_mac), the source's QMP
 * gets migrate-set-parameters (when opts ask) and `migrate` to the address
 * dst's QEMU reports it listens on, and the fleet follows the source's
 * MIGRATION events (and query-migrate) through setup, active, completed.
 * Each phase is a line in events.jsonl ({"event":"migration",...}) and the
 * latest record is the "migration" object of both guests in guests.json.
 *
 * When it completes, the names swap: dst is from then on called by src's
 * name (the guest lives on under its name; files and leases keep their
 * own, guests.json's "qmp", "log", ... say which), and the old QEMU gets
 * dst's former name. The old QEMU is quit (it is in postmigrate; its agent
 * is not asked) and its leases released, the shared MACs staying with the
 * destination, which walks running -> agent -> net -> ssh -> ready.
 *
 * cb runs once, from the fleet's timer: with status 0 when dst reached
 * GS_READY and the source stopped; else with -errno and error naming the
 * phase ("migration failed in phase active: ..."). A failed or cancelled
 * migration leaves the source running (QEMU resumes it), stops the
 * destination and releases its leases. On a timeout with cancel_on_timeout
 * the migration is cancelled first; without it cb is told -ETIMEDOUT at
 * once and the fleet still follows the migration to its end (the hand-over
 * happens if it completes). fleet_free tells a waiting cb
 * "the controller shut down". */

typedef struct fleet_migrate_opts {
    int timeout_ms;           /* migrate until completed; 0: 600 s */
    int cancel_on_timeout;    /* migrate_cancel when the time is up */
    long long downtime_limit_ms; /* migrate-set-parameters downtime-limit; 0: QEMU's */
    long long max_bandwidth;  /* bytes per second (max-bandwidth); 0: QEMU's */
} fleet_migrate_opts;

typedef struct fleet_migration {
    const char *source, *destination; /* the guests' names when it began */
    int status;               /* 0, or -errno */
    const char *error;        /* NULL on success, else one line naming the phase */
    const char *phase;        /* last MIGRATION status seen: "setup", "active", "completed", ... */
    json_t *record;           /* the guests.json "migration" object (the fleet's; copy to keep) */
} fleet_migration;

typedef void (*fleet_migrate_cb)(fleet_t *f, const fleet_migration *m, void *data);

/* Start migrating src into dst. -EBUSY/-EINVAL with err (and no cb) when
 * src is not ready, dst not awaiting a migration, either is in another
 * migration, or their NICs differ. */
int fleet_migrate(fleet_t *f, fguest_t *src, fguest_t *dst, const fleet_migrate_opts *o,
                  fleet_migrate_cb cb, void *data, char *err, size_t errlen);
/* The guest's latest migration record (as in guests.json), or NULL; the
 * caller frees. */
json_t *fguest_migration(const fguest_t *g);

/* ---- warm clones (template.c) ----
 *
 * With fleet_opts.clone, a guest whose VM has no template yet cold-boots
 * and, once its network is up and before its SSH login (nothing of the
 * fleet in flight), is saved: QMP stop, migrate to STATE/templates/KEY.state,
 * cont; it then goes on to ready. A guest whose VM has a template starts
 * with the same argv plus -incoming from that file, goes qmp-connected ->
 * restoring -> (cont) running, and gets its own identity back through the
 * agent before the net-ready poll: its leased MACs on its NICs (and so on
 * QEMU's devices), the guest's neighbour cache flushed and the gateway
 * pinged (slirp learns the new MAC), the host's time (guest-set-time) and
 * its name as hostname. A clone shares everything else with the template:
 * SSH host keys, random-number state, files and addresses.
 *
 * KEY hashes what makes two guests interchangeable: the argv with the
 * per-instance parts (MACs, ports, VNC, run dir, name) replaced, the
 * contents of kernel and initrd, and the identity (size, mtime, inode) of
 * the QEMU binary and read-only disks. Any change gives a new key: the old
 * template is no longer used and shows as stale. A template that does not
 * load is deleted and the guest cold-boots; both say why in events.jsonl
 * ({"event":"template","what":"dropped","reason":...}). Guests with
 * writable disks, passed-through devices, tap/bridge NICs, vhost-user
 * devices or -incoming of their own are never cloned ("refused", with the
 * reason). Two creators at once: each writes its own temporary file and
 * the first to link it in place wins. */

/* The templates of state_dir (NULL: the host default) as an array of
 * {"key","vm","cfg","bytes","created_ms","save_ms","stale","inputs"};
 * "stale" is true when an input recorded at save time changed since. NULL
 * with err on failure; the caller frees. */
json_t *fleet_templates(const char *state_dir, char *err, size_t errlen);
/* Remove template key (NULL: every one). The number removed, or -errno
 * (-ENOENT: no such template) with err. */
int fleet_template_rm(const char *state_dir, const char *key, char *err, size_t errlen);
/* The template key of guest g's VM ("" when the fleet does not clone or
 * the VM cannot be cloned), and whether g was restored from it. */
const char *fguest_template(const fguest_t *g, int *restored);

/* ---- accessors for the suite runner ---- */

struct qmp;
/* The guest's QMP client from qmp-connected to ready (and while awaiting
 * a migration), else NULL. Commands
 * may be sent on it; it stays the fleet's (never close it). */
struct qmp *fguest_qmp(const fguest_t *g);
/* Where SSH reaches the guest once it has leases: host address and port
 * of the host_connect forward and the cfg's login (password NULL if none;
 * never print it). -ENOENT without a forward or login, or before leases. */
int fguest_ssh_target(const fguest_t *g, const char **host, int *port, const char **user,
                      const char **password);
/* The cfg VM of the guest (facts via cfg_vm_info, masking via cfg_vm_mask). */
const struct cfg_vm *fguest_vm(const fguest_t *g);

#endif
