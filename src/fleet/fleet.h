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

/* One guest's life. The order matters: states before GS_READY are the way
 * there, the ones after it the way down. */
typedef enum fleet_state {
    GS_QUEUED,          /* waiting for a --jobs slot */
    GS_ALLOCATING,      /* taking leases */
    GS_LAUNCHING,       /* QEMU spawned, QMP not yet up */
    GS_QMP_CONNECTED,   /* QMP negotiated */
    GS_RUNNING,         /* query-status says running */
    GS_AGENT_CONNECTED, /* guest opened the agent port, sync answered */
    GS_NET_READY,       /* agent reports an IPv4 address on host_connect */
    GS_PCI_MAPPED,      /* every pt_N found in query-pci */
    GS_SSH_READY,       /* SSH login worked (cfg with login only) */
    GS_READY,
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
} fleet_opts;

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

/* ---- accessors for the suite runner ---- */

struct qmp;
/* The guest's QMP client from qmp-connected to ready, else NULL. Commands
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
