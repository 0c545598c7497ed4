/* alloc_int.h - the lease table behind alloc.h, for src/alloc's own files
 * only. Cross-file internals are alloc__name. The calls point one way:
 * the allocators (lease.c, mac.c, port.c, cpu.c, vf.c) call store.c, which
 * owns the table; both use host.c (process start times, the state dir),
 * which calls nothing of the module.
 *
 * On disk, in the state dir:
 *   leases.lock  flock(LOCK_EX) target; never replaced or removed
 *   leases.json  the table; only ever replaced whole by rename(2)
 *   leases.tmp   the next table while it is written; a leftover one (its
 *                writer was killed) is removed by the next operation
 *   leases.json.bad  a table a power cut mangled, set aside (store.c)
 *
 * leases.json, one line:
 *   {"version":1, "boot_id":"<kernel boot id>",
 *    "leases":[{"kind":"mac", "value":"02:00:00:01:5f:86",
 *               "owner":"RUN/VM/nic0", "run":"RUN", "vm":"VM", "nic":0,
 *               "pid":4242, "start":123456, "taken":1795000000000,
 *               "hold":false, "shared":false, "data":"..."}, ...],
 *    "notes":{"vfmac:0000:3b:02.1":"aa:bb:cc:dd:ee:ff ens1f0 1"}}
 * Values are canonical text: MACs lower case, numbers decimal, VFs as
 * sysfs names PCI devices. run/vm/nic repeat the owner name's parts for
 * readers and are ignored when loading; "start" is field 22 of
 * /proc/PID/stat; "taken" is ms since the epoch; "data" (optional) is kind
 * specific ("vnc 3" on a display's ports, the guest MAC on a VF). Leases
 * of a boot_id other than the running kernel's are stale unless held.
 *
 * Allocators wrap their work in alloc__enter/alloc__leave: outside a user
 * batch that takes the lock, loads the table and reclaims dead owners'
 * leases, then writes the table if it changed and unlocks. Inside a batch
 * both are no-ops on the lock. An allocator checks everything before it
 * changes anything, so a failed call leaves the table as it was. */
#ifndef QF_ALLOC_INT_H
#define QF_ALLOC_INT_H

#include "base/json.h"
#include "src/alloc/alloc.h"

int alloc__enter(alloc_store *s, char *err, size_t errlen);
/* rc is the operation's result: on rc < 0 an operation that has the lock
 * to itself is dropped, else committed (which may fail). Returns rc or the
 * commit error. */
int alloc__leave(alloc_store *s, int rc, char *err, size_t errlen);

/* Inside alloc_begin .. alloc_commit: alloc__leave will not commit. */
int alloc__in_batch(const alloc_store *s);

size_t alloc__count(const alloc_store *s);
alloc_lease *alloc__at(alloc_store *s, size_t i);
/* First lease of (kind, value), or NULL. */
alloc_lease *alloc__find(alloc_store *s, const char *kind, const char *value);
/* First lease of kind held by exactly owner, or NULL. */
alloc_lease *alloc__find_owned(alloc_store *s, const char *kind, const char *owner);
/* Append a lease for owner o under the name owner (o->name plus a suffix,
 * or NULL for o->name). Checks nothing; 0 or -ENOMEM/-ENAMETOOLONG. */
int alloc__add(alloc_store *s, const alloc_owner *o, const char *owner, const char *kind,
              const char *value, unsigned flags, const char *data);
/* Make room for n more leases, so that n alloc__add calls cannot fail on
 * memory: lets an allocator check, reserve, then add without a way back. */
int alloc__reserve(alloc_store *s, size_t n);
void alloc__remove_at(alloc_store *s, size_t i);
void alloc__touch(alloc_store *s); /* the table changed in place */

/* Notes: small strings that outlive leases, e.g. the MAC a VF had before
 * qfleet first changed it, kept until it is given back. */
const char *alloc__note_get(const alloc_store *s, const char *key);
int alloc__note_set(alloc_store *s, const char *key, const char *val);
void alloc__note_del(alloc_store *s, const char *key);

const alloc_opts *alloc__opts(const alloc_store *s);

/* An owner name or lease value: printable, no spaces, '/' only between
 * parts, shorter than max. */
int alloc__name_ok(const char *name, size_t max);

/* host.c: open (making it 0700 if missing) and check the state dir: a
 * private one (FS_DIR_PRIVATE), or, when it is group-writable or setgid,
 * one shared by group qfleet (FS_DIR_GROUP, *group set; its runs/ is made
 * 2770 too). The dir's fd, or -errno with a reason. */
int alloc__state_dir_open(const char *dir, int *group, char *err, size_t errlen);
/* Open (creating) the lock file name in dfd: 0600, or 0660 in a shared
 * store, where one with other hard links is -EMLINK. fd or -errno. */
int alloc__lock_open(int dfd, const char *name, int group);

/* Format err (if any) and return rc: `return alloc__errf(err, n, -EINVAL, ...)`. */
int alloc__errf(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "owner holds it" error text: fills err with "<what> is held by <owner>
 * (pid N)" and returns -EEXIST. */
int alloc__err_held(const alloc_lease *l, const char *what, char *err, size_t errlen);

#endif
