/* fleet_int.h - what fleet.c (the collection, run dir, registry) and
 * boot.c (one guest's state machine) share. Not for other modules. */
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

#define FG_REASON_MAX 4096
#define FG_PT_MAX (CFG_NIC_MAX + CFG_DEV_MAX)

struct fg_waiter {
    fguest_done_cb cb;
    void *data;
    struct fg_waiter *next;
};

struct fguest {
    fleet_t *f;
    char name[CFG_NAME_MAX + 16];
    struct cfg_vm *vm;
    const struct cfg_vm_info *vi;
    struct cfg_needs nd;
    struct cfg_res res;
    alloc_owner owner;
    alloc_range *pci;
    int leased;
    int had_leases;                /* res holds what was leased (shown after release) */
    int nvf;                       /* VFs taken: res.vf_host[0..nvf), their MACs set */

    guest_state state;
    char reason[FG_REASON_MAX];
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
    uv_timer_t stop_timer;         /* steps of a graceful stop */
    int stop_step;
    int got_shutdown;

    long long port_open_ms;        /* QEMU's VSERPORT_CHANGE time, ms since started_ms */
    char ip[64];
    char ssh_host[64];
    int ssh_port;
    struct { char id[32]; char addr[16]; char host[32]; } pt[FG_PT_MAX];
    int npt;

    struct fg_waiter *waiters;     /* fguest_stop callers */
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
    uv_timer_t flush;              /* writes guests.json once per loop turn */
    int registry_dirty;
    int booting;                   /* guests between allocating and ready */
    fleet_event_cb cb;
    void *data;
    int stopping_all;
    fleet_done_cb stop_cb;
    void *stop_data;
    int pending_closes;
    fleet_done_cb free_cb;
    void *free_data;
};

/* fleet.c */
void fleet_publish(fleet_t *f, fguest_t *g);   /* registry + events + cb */
void fleet_guest_settled(fleet_t *f, fguest_t *g); /* a boot slot freed */

/* lease.c */
int fg_place_devices(fguest_t *g, char *err, size_t errlen);
int fg_take_leases(fguest_t *g, char *err, size_t errlen);
int fg_renew_ports(fguest_t *g, char *err, size_t errlen);
void fg_release(fguest_t *g);                  /* leases, VFs */

/* boot.c */
int fg_init(fleet_t *f, fguest_t *g);          /* timers */
void fg_boot(fguest_t *g);
void fg_stop(fguest_t *g);
void fg_close(fguest_t *g, uv_close_cb cb);    /* handles; cb per handle */
int fg_is_booting(const fguest_t *g);
/* Fail the guest: reason (with serial and stderr tails), kill, release. */
void fg_fail(fguest_t *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
