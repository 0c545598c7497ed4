/* alloc.h - host-wide leases of the resources two guests must never share:
 * MAC addresses, VNC displays, host ports, pinned host CPUs and SR-IOV VFs
 * (vf.h). Guest PCI slots are per guest: see range.h.
 *
 * All qfleet processes on a host share one lease store (a directory). Every
 * operation runs under an exclusive flock of that directory and rewrites the
 * lease table atomically, so no two live leases ever hold the same resource,
 * whatever runs concurrently and whoever is killed when.
 *
 * A lease belongs to an owner: a '/'-separated name ("RUN/VM"; NIC leases
 * append "/nicN") and a process. When that process is gone, or its pid was
 * reused by another process, the lease is reclaimed by the next operation of
 * anyone. Hold leases (pid 0) live until released explicitly.
 *
 * Conventions: functions return 0 (or a count) on success and -errno on
 * failure, with one line of explanation in err (which may be NULL). A store
 * handle serves one thread and one process: after fork, open a new one.
 * Every call may block briefly on the flock. Pids are those of the pid
 * namespace the caller sees: processes sharing a state dir must share it. */
#ifndef QF_ALLOC_H
#define QF_ALLOC_H

#include <stddef.h>
#include <sys/types.h>

#include "base/json.h"
#include "base/mac.h"

#define ALLOC_OWNER_MAX 128 /* owner names, including the "/nicN" suffix */
#define ALLOC_KIND_MAX 8    /* "mac", "vnc", "port", "cpu", "vf", ... */
#define ALLOC_VALUE_MAX 48
#define ALLOC_DATA_MAX 64

/* Lease and call flags. */
#define ALLOC_HOLD 0x1u      /* recorded on leases of pid-0 owners */
#define ALLOC_SHARED 0x2u    /* a MAC that another shareable lease may also
                              * hold (migration source and destination) */
#define ALLOC_WEBSOCKET 0x4u /* alloc_vnc: also lease 5700+N */
#define ALLOC_SHARED_MAX 2   /* holders of one shared MAC: a migration pair */

typedef struct alloc_owner {
    char name[ALLOC_OWNER_MAX];
    pid_t pid;                /* 0: hold until released */
    unsigned long long start; /* field 22 of /proc/PID/stat */
} alloc_owner;

typedef struct alloc_lease {
    char kind[ALLOC_KIND_MAX];
    char value[ALLOC_VALUE_MAX]; /* canonical text: "02:1a:..", "3", "5903" */
    char owner[ALLOC_OWNER_MAX];
    pid_t pid;
    unsigned long long start;
    long long taken_ms; /* wall clock, ms since the epoch */
    unsigned flags;     /* ALLOC_HOLD, ALLOC_SHARED */
    char data[ALLOC_DATA_MAX]; /* kind specific; "" for most */
} alloc_lease;

typedef struct alloc_store alloc_store;

typedef struct alloc_opts {
    const char *listen;     /* address for bind tests; NULL: 127.0.0.1 */
    const char *sysfs_root; /* NULL: /sys (host MAC prefix) */
    int vnc_first, vnc_last; /* displays to hand out; both 0: 0..99 */
} alloc_opts;

/* --- owners --------------------------------------------------------- */

/* Fill o for the process pid (0 for a hold owner). name must be non-empty,
 * printable, without spaces and not end in '/'. -ESRCH if pid is not
 * running (or is a zombie). */
int alloc_owner_init(alloc_owner *o, const char *name, pid_t pid, char *err, size_t errlen);

/* Start time (field 22 of /proc/PID/stat) of a running process; -ESRCH for
 * a process that is gone or a zombie. */
int alloc_proc_start(pid_t pid, unsigned long long *start);

/* --- the store ------------------------------------------------------ */

/* The host's state dir: $QFLEET_STATE_DIR, else /var/lib/qfleet for root,
 * else $XDG_RUNTIME_DIR/qfleet. -ENOENT when none applies. */
int alloc_state_dir_default(char *out, size_t outlen);

/* Open (creating it with mode 0700 if needed) the store in dir, or in the
 * default dir when dir is NULL. opts may be NULL. */
int alloc_store_open(alloc_store **out, const char *dir, const alloc_opts *opts, char *err,
                     size_t errlen);
void alloc_store_close(alloc_store *s);
/* One lease as a JSON object: the on-disk form, which is also what
 * `qfleet leases --json` prints. NULL on allocation failure. */
json_t *alloc_lease_json(const alloc_lease *l);
const char *alloc_store_dir(const alloc_store *s);

/* Batches: between alloc_begin and alloc_commit every call below runs under
 * one lock and the table is written once, at commit. After a failed call
 * the batch may still be committed (a failed call changes nothing) or
 * dropped whole with alloc_abort: a VM takes all its leases or none.
 * Outside a batch each call is a batch of its own. Batches do not nest. */
int alloc_begin(alloc_store *s, char *err, size_t errlen);
int alloc_commit(alloc_store *s, char *err, size_t errlen);
void alloc_abort(alloc_store *s);

/* --- any kind ------------------------------------------------------- */

/* Lease (kind, value) for o. -EEXIST naming the holder if another owner
 * holds it (a MAC is shared only when both leases are ALLOC_SHARED). Taking
 * what o already holds succeeds. data may be NULL. */
int alloc_take(alloc_store *s, const alloc_owner *o, const char *kind, const char *value,
               unsigned flags, const char *data, char *err, size_t errlen);
/* Release one lease of owner (exact name). -ENOENT if it holds none such. */
int alloc_release(alloc_store *s, const char *owner, const char *kind, const char *value,
                  char *err, size_t errlen);
/* Release every lease of owner and of the names below it ("RUN" releases
 * "RUN/VM/nic0"). Returns how many. */
int alloc_release_owner(alloc_store *s, const char *owner, char *err, size_t errlen);
/* Hand every lease of owner (and below) to the process pid, e.g. to the
 * QEMU process once it runs, so they outlive a crashed controller exactly
 * as long as the guest does. Returns how many. */
int alloc_adopt(alloc_store *s, const char *owner, pid_t pid, char *err, size_t errlen);
/* A malloc'd snapshot of the live leases (dead owners reclaimed first). */
int alloc_list(alloc_store *s, alloc_lease **out, size_t *n, char *err, size_t errlen);
/* The holder of (kind, value), copied to *out: 0, or -ENOENT if free. */
int alloc_lookup(alloc_store *s, const char *kind, const char *value, alloc_lease *out,
                 char *err, size_t errlen);
/* One lease as a JSON object: the on-disk form, which is also what
 * `qfleet leases --json` prints. NULL on allocation failure. */
json_t *alloc_lease_json(const alloc_lease *l);

/* --- MAC addresses -------------------------------------------------- */

/* The prefix this host uses when the cfg gives no mac_prefix, derived from
 * the first (by name) non-loopback NIC with a non-zero MAC under
 * ROOT/class/net: its first octet made locally administered and unicast,
 * then its last three octets ("52:12:34:56:"), so hosts with different
 * NICs draw from disjoint spaces of 65536 MACs. */
int alloc_mac_host_prefix(const char *sysfs_root, char *out, size_t outlen, char *err,
                          size_t errlen);

/* The prefix alloc_mac uses when the caller gives none: $QFLEET_MAC_PREFIX
 * when set and not empty (a host-wide choice, checked when used), else
 * alloc_mac_host_prefix. *from (may be NULL) says which, for people. The
 * fleet passes the VM's mac_prefix (cfg, or --mac-prefix), which wins. */
#define ALLOC_MAC_PREFIX_ENV "QFLEET_MAC_PREFIX"
/* *from when derived: ALLOC_MAC_FROM_LOCAL when the NIC's own MAC is
 * locally administered (bit 0x02 of its first octet): the mark of a VM
 * cloned from an image, whose every clone derives the same prefix. Then
 * alloc_mac_default_prefix also warns once per process on stderr and
 * suggests --store etcd://... or mac_prefix (docs/cluster.md). */
#define ALLOC_MAC_FROM_NIC "derived from this host's NIC"
#define ALLOC_MAC_FROM_LOCAL "derived from this host's NIC, whose MAC is locally administered"
int alloc_mac_default_prefix(const char *sysfs_root, char *out, size_t outlen, const char **from,
                             char *err, size_t errlen);

/* The MAC of NIC nic of owner o: the one it already holds, else a random
 * free one under prefix (NULL: alloc_mac_default_prefix). A given prefix is used as
 * is, but may not be multicast. flags: ALLOC_SHARED. -ENOSPC when the
 * prefix's space is exhausted. out gets MAC_STRLEN bytes. */
int alloc_mac(alloc_store *s, const alloc_owner *o, int nic, const char *prefix, unsigned flags,
              char *out, char *err, size_t errlen);
/* Reserve the cfg's mac for NIC nic of o (replacing what that NIC held).
 * -EEXIST naming the holder unless both leases are ALLOC_SHARED, and
 * naming both holders when ALLOC_SHARED_MAX already share it. */
int alloc_reserve_mac(alloc_store *s, const alloc_owner *o, int nic, const char *mac,
                      unsigned flags, char *err, size_t errlen);

/* A migration pair: NIC dst_nic of dst takes the MAC NIC src_nic of src
 * holds (replacing what dst_nic held), and both leases are marked as that
 * pair's (ALLOC_SHARED, data "pair HASH"). A pair's MAC has exactly these
 * two holders: -EEXIST if anyone else holds it, and later reserves by
 * anyone else are refused, shareable or not. Releasing either lease leaves
 * the other; alloc_reserve_mac(src, src_nic, mac, 0) makes a lone one
 * plain again. out gets MAC_STRLEN bytes. */
int alloc_share_mac(alloc_store *s, const alloc_owner *src, int src_nic, const alloc_owner *dst,
                    int dst_nic, char *out, char *err, size_t errlen);

/* --- VNC displays and host ports ------------------------------------ */

#define ALLOC_VNC_PORT_BASE 5900
#define ALLOC_WS_PORT_BASE 5700
#define ALLOC_SSH_PORTS_FIRST 20000
#define ALLOC_SSH_PORTS_LAST 29999

/* A display for o: the one it holds, else the lowest N in the store's range
 * that no lease holds and whose port 5900+N (and 5700+N with
 * ALLOC_WEBSOCKET) binds on the listen address right now. The ports are
 * leased too ("port" kind), so port allocations never collide with them. */
int alloc_vnc(alloc_store *s, const alloc_owner *o, unsigned flags, int *display, char *err,
              size_t errlen);
/* Reserve the cfg's display: -EEXIST naming the holder, -EADDRINUSE when a
 * foreign process has the port. */
int alloc_reserve_vnc(alloc_store *s, const alloc_owner *o, int display, unsigned flags,
                      char *err, size_t errlen);
/* The lowest port in [first, last] that no lease holds and that binds on
 * the listen address right now. Each call takes another port. */
int alloc_port(alloc_store *s, const alloc_owner *o, int first, int last, int *port, char *err,
               size_t errlen);
int alloc_reserve_port(alloc_store *s, const alloc_owner *o, int port, char *err, size_t errlen);
/* 1 if port can be bound on addr (IPv4 or IPv6 text) now, else 0. */
int alloc_port_bindable(const char *addr, int port);

/* --- pinned host CPUs ----------------------------------------------- */

/* Lease all of cpus[0..n) or none: -EEXIST naming a holder. */
int alloc_cpus(alloc_store *s, const alloc_owner *o, const int *cpus, size_t n, char *err,
               size_t errlen);
/* Lease n free CPUs among those this process may run on, lowest first,
 * written to out. -ENOSPC when fewer are free. */
int alloc_cpus_any(alloc_store *s, const alloc_owner *o, size_t n, int *out, char *err,
                   size_t errlen);

#endif
