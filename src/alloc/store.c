/* store.c - the host-wide lease table: locking, loading, reclaiming
 * dead owners' leases and atomic rewrites. See alloc_int.h for the files.
 *
 * Why one table rewritten whole: a table of a few hundred leases is a few
 * tens of KB, so rewriting it is cheap, and rename(2) gives all-or-nothing
 * replacement for free: a reader, or a process killed at any instant, sees
 * the old table or the new one, never a mix.
 *
 * Why not every write is synced: kill -9 needs no fsync (the page cache
 * survives the process), only a power cut does, and after a power cut
 * every process-owned lease is stale anyway. So a table is fdatasync'd
 * before its rename only while it holds something that must outlive a
 * reboot: hold leases and notes. A table that was not synced held nothing
 * of the kind; if a power cut mangled it, it dates from before the current
 * boot, and loading sets it aside and starts afresh instead of failing.
 * A mangled table written during this boot is never discarded. */
#include "src/alloc/alloc_int.h"
#include "base/time.h"
#include "base/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TABLE_NAME "leases.json"
#define TMP_NAME "leases.tmp"
#define LOCK_NAME "leases.lock"
#define TABLE_VERSION 1
#define NOTE_MAX 128

typedef struct note {
    char *key, *val;
} note;

struct alloc_store {
    char dir[PATH_MAX];
    int dirfd, lockfd;
    pid_t opener;   /* flock belongs to an open file, which fork shares */
    int locked;     /* the flock is ours */
    int batch;      /* inside alloc_begin .. alloc_commit */
    int group;      /* a store shared by group qfleet (FS_DIR_GROUP): files 0660 */
    int dirty;      /* table differs from the file */
    int durable;    /* a change that must survive a reboot: fsync the dir */
    alloc_lease *v;
    size_t n, cap;
    note *notes;
    size_t nnotes;
    /* The bytes of leases.json as last read or written by us. When the file
     * still holds them, the parsed table is current and parsing is skipped. */
    char *cache;
    size_t cache_len;
    int cache_valid;
    char boot_id[64];
    alloc_opts opts;
    char listen[64];
    char sysfs_root[PATH_MAX];
};

int alloc__errf(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static void read_boot_id(char *out, size_t len)
{
    out[0] = '\0';
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
    if (!f)
        return;
    if (fgets(out, (int)len, f))
        out[strcspn(out, "\n")] = '\0';
    fclose(f);
}

int alloc_store_open(alloc_store **out, const char *dir, const alloc_opts *opts, char *err,
                     size_t errlen)
{
    char def[PATH_MAX];
    *out = NULL;
    if (!dir || !*dir) {
        if (alloc_state_dir_default(def, sizeof(def)) < 0)
            return alloc__errf(err, errlen, -ENOENT,
                              "no state dir: set QFLEET_STATE_DIR or XDG_RUNTIME_DIR, or pass "
                              "--state-dir");
        dir = def;
    }
    alloc_store *s = calloc(1, sizeof(*s));
    if (!s)
        return alloc__errf(err, errlen, -ENOMEM, "out of memory");
    s->dirfd = s->lockfd = -1;
    if (snprintf(s->dir, sizeof(s->dir), "%s", dir) >= (int)sizeof(s->dir)) {
        free(s);
        return alloc__errf(err, errlen, -ENAMETOOLONG, "state dir name too long");
    }
    int rc = alloc__state_dir_open(s->dir, &s->group, err, errlen);
    if (rc < 0) {
        free(s);
        char why[768];
        snprintf(why, sizeof(why), "%s", err ? err : "");
        return alloc__errf(err, errlen, rc, "state dir %s", why);
    }
    s->dirfd = rc;
    s->lockfd = alloc__lock_open(s->dirfd, LOCK_NAME, s->group);
    if (s->lockfd < 0) {
        rc = s->lockfd;
        alloc_store_close(s);
        return alloc__errf(err, errlen, rc, "state dir %s: " LOCK_NAME ": %s", dir,
                           rc == -EMLINK ? "has other hard links (refused in a shared store)"
                                         : fs_strerror(rc));
    }
    s->opener = getpid();
    read_boot_id(s->boot_id, sizeof(s->boot_id));
    if (opts)
        s->opts = *opts;
    snprintf(s->listen, sizeof(s->listen), "%s", s->opts.listen ? s->opts.listen : "127.0.0.1");
    snprintf(s->sysfs_root, sizeof(s->sysfs_root), "%s",
             s->opts.sysfs_root ? s->opts.sysfs_root : "/sys");
    s->opts.listen = s->listen;
    s->opts.sysfs_root = s->sysfs_root;
    if (s->opts.vnc_first == 0 && s->opts.vnc_last == 0)
        s->opts.vnc_last = 99;
    *out = s;
    return 0;
}

static void notes_clear(alloc_store *s)
{
    for (size_t i = 0; i < s->nnotes; i++) {
        free(s->notes[i].key);
        free(s->notes[i].val);
    }
    free(s->notes);
    s->notes = NULL;
    s->nnotes = 0;
}

void alloc_store_close(alloc_store *s)
{
    if (!s)
        return;
    if (s->locked && s->opener == getpid())
        flock(s->lockfd, LOCK_UN);
    if (s->lockfd >= 0)
        close(s->lockfd);
    if (s->dirfd >= 0)
        close(s->dirfd);
    notes_clear(s);
    free(s->v);
    free(s->cache);
    free(s);
}

const char *alloc_store_dir(const alloc_store *s) { return s->dir; }
const alloc_opts *alloc__opts(const alloc_store *s) { return &s->opts; }

/* --- (de)serialization ---------------------------------------------- */

json_t *alloc_lease_json(const alloc_lease *l)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int rc = json_set_str(o, "kind", l->kind);
    rc |= json_set_str(o, "value", l->value);
    rc |= json_set_str(o, "owner", l->owner);
    /* run / vm / nic are the owner name's parts, spelled out for readers;
     * loading ignores them. */
    char run[ALLOC_OWNER_MAX];
    snprintf(run, sizeof(run), "%s", l->owner);
    char *vm = strchr(run, '/');
    if (vm) {
        *vm++ = '\0';
        char *rest = strchr(vm, '/');
        if (rest)
            *rest++ = '\0';
        const char *last = strrchr(l->owner, '/') + 1;
        char *end;
        if (!strncmp(last, "nic", 3) && last[3]) {
            long nic = strtol(last + 3, &end, 10);
            if (!*end)
                rc |= json_set_int(o, "nic", nic);
        }
        rc |= json_set_str(o, "vm", vm);
    }
    rc |= json_set_str(o, "run", run);
    rc |= json_set_int(o, "pid", l->pid);
    rc |= json_set_int(o, "start", (long long)l->start);
    rc |= json_set_int(o, "taken", l->taken_ms);
    rc |= json_set_bool(o, "hold", !!(l->flags & ALLOC_HOLD));
    rc |= json_set_bool(o, "shared", !!(l->flags & ALLOC_SHARED));
    if (l->data[0])
        rc |= json_set_str(o, "data", l->data);
    if (rc) {
        json_free(o);
        return NULL;
    }
    return o;
}

static char *table_dump(const alloc_store *s, size_t *len)
{
    json_t *root = json_object(), *arr = json_array(), *notes = json_object();
    int rc = !root || !arr || !notes;
    if (!rc) {
        rc |= json_set_int(root, "version", TABLE_VERSION);
        rc |= json_set_str(root, "boot_id", s->boot_id);
        for (size_t i = 0; i < s->n && !rc; i++) {
            json_t *l = alloc_lease_json(&s->v[i]);
            rc |= !l || json_append(arr, l);
        }
        for (size_t i = 0; i < s->nnotes && !rc; i++)
            rc |= json_set_str(notes, s->notes[i].key, s->notes[i].val);
        rc |= json_set(root, "leases", arr);
        arr = NULL;
        rc |= json_set(root, "notes", notes);
        notes = NULL;
    }
    char *out = rc ? NULL : json_dump(root, len);
    json_free(arr);
    json_free(notes);
    json_free(root);
    return out;
}

static int copy_field(char *dst, size_t size, const char *src)
{
    if (!src || strlen(src) >= size)
        return -1;
    strcpy(dst, src);
    return 0;
}

static int lease_from_json(const json_t *o, alloc_lease *l)
{
    memset(l, 0, sizeof(*l));
    if (json_typeof(o) != JSON_OBJECT || copy_field(l->kind, sizeof(l->kind), json_get_str(o, "kind")) ||
        copy_field(l->value, sizeof(l->value), json_get_str(o, "value")) ||
        copy_field(l->owner, sizeof(l->owner), json_get_str(o, "owner")))
        return -1;
    const char *data = json_get_str(o, "data");
    if (data && copy_field(l->data, sizeof(l->data), data))
        return -1;
    long long pid = json_get_int(o, "pid", -1), start = json_get_int(o, "start", -1);
    if (pid < 0 || pid > INT_MAX || start < 0)
        return -1;
    l->pid = (pid_t)pid;
    l->start = (unsigned long long)start;
    l->taken_ms = json_get_int(o, "taken", 0);
    if (json_get_bool(o, "hold", 0) || pid == 0)
        l->flags |= ALLOC_HOLD;
    if (json_get_bool(o, "shared", 0))
        l->flags |= ALLOC_SHARED;
    return 0;
}

/* Parse buf into the table; a NULL buf is "no table yet". On error the
 * table is left empty. */
static int table_parse(alloc_store *s, const char *buf, size_t len, int *other_boot, char *err,
                       size_t errlen)
{
    char why[160] = "";
    s->n = 0;
    notes_clear(s);
    *other_boot = 0;
    if (!buf)
        return 0;
    /* An empty file is not an empty table: a table is never written
     * without its header, so a crash lost what it held. */
    json_t *root = len ? json_parse(buf, len, why, sizeof(why)) : NULL;
    if (!len)
        snprintf(why, sizeof(why), "the file is empty; a lease table never is");
    const json_t *arr = json_get(root, "leases"), *notes = json_get(root, "notes");
    int rc = 0;
    if (!root || json_typeof(root) != JSON_OBJECT || json_typeof(arr) != JSON_ARRAY) {
        rc = -EBADMSG;
        if (!why[0])
            snprintf(why, sizeof(why), "not a lease table");
    } else if (json_get_int(root, "version", 0) != TABLE_VERSION) {
        rc = -EPROTO;
        snprintf(why, sizeof(why), "version %lld, this qfleet reads %d",
                 json_get_int(root, "version", 0), TABLE_VERSION);
    }
    if (!rc && (rc = alloc__reserve(s, json_len(arr))) < 0)
        snprintf(why, sizeof(why), "out of memory");
    for (size_t i = 0; !rc && i < json_len(arr); i++) {
        if (lease_from_json(json_at(arr, i), &s->v[s->n]) < 0) {
            rc = -EBADMSG;
            snprintf(why, sizeof(why), "lease %zu is malformed", i);
        } else {
            s->n++;
        }
    }
    for (size_t i = 0; !rc && json_typeof(notes) == JSON_OBJECT && i < json_len(notes); i++) {
        const char *val = json_str(json_at(notes, i));
        if (val && (rc = alloc__note_set(s, json_key_at(notes, i), val)) < 0)
            snprintf(why, sizeof(why), "note %zu: %s", i, strerror(-rc));
    }
    const char *boot = json_get_str(root, "boot_id");
    *other_boot = boot && s->boot_id[0] && strcmp(boot, s->boot_id) != 0;
    json_free(root);
    if (rc < 0) {
        s->n = 0;
        notes_clear(s);
        return alloc__errf(err, errlen, rc,
                           "lease table %s/" TABLE_NAME " is unreadable (%s); to start afresh, "
                           "forgetting its leases: mv %s/" TABLE_NAME " %s/" TABLE_NAME ".bad",
                           s->dir, why, s->dir, s->dir);
    }
    return 0;
}

/* --- locking, loading, writing -------------------------------------- */

/* When this boot began (seconds since the epoch), from /proc/stat. */
static time_t boot_time(void)
{
    static time_t bt;
    if (bt)
        return bt;
    FILE *f = fopen("/proc/stat", "re");
    char line[256];
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, "btime ", 6)) {
            bt = (time_t)strtoll(line + 6, NULL, 10);
            break;
        }
    if (f)
        fclose(f);
    return bt;
}

static void unlock(alloc_store *s)
{
    if (s->locked)
        flock(s->lockfd, LOCK_UN);
    s->locked = 0;
}

/* Forget the in-memory table: the next load parses the file again. */
static void drop(alloc_store *s)
{
    s->cache_valid = 0;
    s->dirty = s->durable = 0;
    s->batch = 0;
    unlock(s);
}

static int read_file(alloc_store *s, char **buf, size_t *len, time_t *mtime)
{
    *buf = NULL;
    *len = 0;
    *mtime = 0;
    int fd = fs_openat(s->dirfd, TABLE_NAME, O_RDONLY, 0);
    if (fd < 0)
        return fd == -ENOENT ? 0 : fd; /* no table yet: *buf stays NULL */
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (s->group && st.st_nlink != 1) { /* a member's link to a file root may read */
        close(fd);
        return -EMLINK;
    }
    *mtime = st.st_mtime;
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *b = malloc(cap);
    for (;;) {
        if (!b) {
            close(fd);
            return -ENOMEM;
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(b);
            close(fd);
            return -e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n == cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb)
                free(b);
            b = nb;
        }
    }
    close(fd);
    *buf = b;
    *len = n;
    return 0;
}

/* Is the owner of l gone? memo caches answers per pid within one load. */
struct memo {
    pid_t pid;
    unsigned long long start;
    int rc;
};

static int owner_dead(const alloc_lease *l, struct memo *m, size_t *nm, size_t cap)
{
    if (l->pid == 0)
        return 0;
    size_t i;
    for (i = 0; i < *nm && m[i].pid != l->pid; i++)
        ;
    if (i == *nm) {
        struct memo x = { l->pid, 0, 0 };
        x.rc = alloc_proc_start(l->pid, &x.start);
        if (*nm == cap)
            i = 0; /* memo full: overwrite the first slot, it is only a cache */
        else
            (*nm)++;
        m[i] = x;
    }
    if (m[i].rc == -ESRCH)
        return 1;
    if (m[i].rc < 0)
        return 0; /* cannot tell (e.g. /proc hidepid): keep the lease */
    return m[i].start != l->start; /* the pid now names another process */
}

static void reclaim(alloc_store *s, int other_boot)
{
    struct memo memo[64];
    size_t nm = 0, j = 0;
    for (size_t i = 0; i < s->n; i++) {
        const alloc_lease *l = &s->v[i];
        int dead = l->pid != 0 && (other_boot || owner_dead(l, memo, &nm, 64));
        if (!dead)
            s->v[j++] = *l;
    }
    if (j != s->n) {
        s->n = j;
        s->dirty = 1;
    }
}

/* Lock, load and reclaim. */
static int lock_load(alloc_store *s, char *err, size_t errlen)
{
    if (s->opener != getpid())
        return alloc__errf(err, errlen, -ECHILD,
                          "lease store handle used after fork: open one in this process");
    while (flock(s->lockfd, LOCK_EX) < 0)
        if (errno != EINTR)
            return alloc__errf(err, errlen, -errno, "lock %s/" LOCK_NAME ": %s", s->dir,
                              strerror(errno));
    s->locked = 1;
    s->dirty = s->durable = 0;
    /* A leftover tmp file is a write that was killed before its rename:
     * the table never saw it. */
    if (unlinkat(s->dirfd, TMP_NAME, 0) < 0 && errno != ENOENT) {
        int e = errno;
        unlock(s);
        return alloc__errf(err, errlen, -e, "remove stale %s/" TMP_NAME ": %s", s->dir,
                          strerror(e));
    }
    char *buf;
    size_t len;
    time_t mtime;
    int rc = read_file(s, &buf, &len, &mtime), other_boot = 0;
    if (rc < 0) {
        unlock(s);
        return alloc__errf(err, errlen, rc, "read %s/" TABLE_NAME ": %s", s->dir, fs_strerror(rc));
    }
    if (!s->cache_valid || !buf != !s->cache || len != s->cache_len ||
        (len && memcmp(buf, s->cache, len))) {
        s->cache_valid = 0;
        rc = table_parse(s, buf, len, &other_boot, err, errlen);
        if (rc < 0 && mtime < boot_time() &&
            renameat(s->dirfd, TABLE_NAME, s->dirfd, TABLE_NAME ".bad") == 0) {
            /* A power cut's casualty (see the top of this file): keep it
             * for a post-mortem, start afresh. */
            fprintf(stderr, "qfleet: lease table %s/" TABLE_NAME " from before this boot is "
                            "unreadable; moved it to " TABLE_NAME ".bad\n", s->dir);
            rc = 0;
            other_boot = 1;
            s->dirty = 1;
        }
        if (rc < 0) {
            free(buf);
            unlock(s);
            return rc;
        }
        free(s->cache);
        s->cache = buf;
        s->cache_len = len;
        s->cache_valid = 1;
        if (other_boot)
            s->durable = 1; /* the new boot id must stick */
    } else {
        free(buf);
    }
    reclaim(s, other_boot);
    return 0;
}

/* Anything in the table that outlives a reboot? */
static int has_durable(const alloc_store *s)
{
    if (s->nnotes)
        return 1;
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].flags & ALLOC_HOLD)
            return 1;
    return 0;
}

/* Write the table if it changed, then unlock. */
static int commit(alloc_store *s, char *err, size_t errlen)
{
    if (!s->dirty) {
        unlock(s);
        return 0;
    }
    size_t len = 0;
    char *buf = table_dump(s, &len);
    if (!buf) {
        drop(s);
        return alloc__errf(err, errlen, -ENOMEM, "out of memory writing the lease table");
    }
    const char *step = "create";
    /* Created anew (O_EXCL, O_NOFOLLOW): never a file or link found there. */
    unlinkat(s->dirfd, TMP_NAME, 0);
    int fd = fs_openat(s->dirfd, TMP_NAME, O_WRONLY | O_CREAT | O_EXCL, s->group ? 0660 : 0600);
    int rc = fd < 0 ? fd : 0;
    if (!rc && s->group && fchmod(fd, 0660) < 0) /* every member rewrites it: past the umask */
        rc = -errno, step = "chmod";
    if (!rc && (rc = fs_write_all(fd, buf, len)) < 0)
        step = "write";
    /* Data before name: after a power cut the new name must not point at
     * blocks that were never written, if the table holds anything that
     * must survive one. */
    if (!rc && (s->durable || has_durable(s)) && fdatasync(fd) < 0)
        rc = -errno, step = "sync";
    if (fd >= 0 && close(fd) < 0 && !rc)
        rc = -errno, step = "close";
    if (!rc && renameat(s->dirfd, TMP_NAME, s->dirfd, TABLE_NAME) < 0)
        rc = -errno, step = "rename";
    if (rc < 0) {
        unlinkat(s->dirfd, TMP_NAME, 0);
        free(buf);
        drop(s);
        return alloc__errf(err, errlen, rc,
                          "%s %s/" TMP_NAME ": %s (lease table left unchanged)", step, s->dir,
                          fd < 0 ? fs_strerror(rc) : strerror(-rc));
    }
    /* Only hold leases and notes outlive a reboot (every other owner is
     * dead after one), so only their changes pay for a directory sync. */
    if (s->durable)
        fsync(s->dirfd);
    free(s->cache);
    s->cache = buf;
    s->cache_len = len;
    s->cache_valid = 1;
    s->dirty = s->durable = 0;
    unlock(s);
    return 0;
}

/* --- batches -------------------------------------------------------- */

int alloc__enter(alloc_store *s, char *err, size_t errlen)
{
    return s->batch ? 0 : lock_load(s, err, errlen);
}

int alloc__leave(alloc_store *s, int rc, char *err, size_t errlen)
{
    if (s->batch)
        return rc;
    if (rc < 0) {
        drop(s);
        return rc;
    }
    int c = commit(s, err, errlen);
    return c < 0 ? c : rc;
}

int alloc_begin(alloc_store *s, char *err, size_t errlen)
{
    if (s->batch)
        return alloc__errf(err, errlen, -EBUSY, "a lease batch is already open");
    int rc = lock_load(s, err, errlen);
    if (rc == 0)
        s->batch = 1;
    return rc;
}

int alloc_commit(alloc_store *s, char *err, size_t errlen)
{
    if (!s->batch)
        return alloc__errf(err, errlen, -EINVAL, "no lease batch is open");
    s->batch = 0;
    return commit(s, err, errlen);
}

void alloc_abort(alloc_store *s)
{
    if (s->batch || s->locked)
        drop(s);
}

/* --- the table ------------------------------------------------------ */

int alloc__in_batch(const alloc_store *s) { return s->batch; }
size_t alloc__count(const alloc_store *s) { return s->n; }
alloc_lease *alloc__at(alloc_store *s, size_t i) { return &s->v[i]; }

alloc_lease *alloc__find(alloc_store *s, const char *kind, const char *value)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i].value, value) && !strcmp(s->v[i].kind, kind))
            return &s->v[i];
    return NULL;
}

alloc_lease *alloc__find_owned(alloc_store *s, const char *kind, const char *owner)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i].owner, owner) && !strcmp(s->v[i].kind, kind))
            return &s->v[i];
    return NULL;
}

int alloc__reserve(alloc_store *s, size_t n)
{
    if (s->cap - s->n >= n)
        return 0;
    size_t cap = s->cap ? s->cap : 16;
    while (cap - s->n < n)
        cap *= 2;
    alloc_lease *v = realloc(s->v, cap * sizeof(*v));
    if (!v)
        return -ENOMEM;
    s->v = v;
    s->cap = cap;
    return 0;
}

int alloc__add(alloc_store *s, const alloc_owner *o, const char *owner, const char *kind,
              const char *value, unsigned flags, const char *data)
{
    if (!owner)
        owner = o->name;
    if (strlen(owner) >= ALLOC_OWNER_MAX || strlen(kind) >= ALLOC_KIND_MAX ||
        strlen(value) >= ALLOC_VALUE_MAX || (data && strlen(data) >= ALLOC_DATA_MAX))
        return -ENAMETOOLONG;
    if (alloc__reserve(s, 1) < 0)
        return -ENOMEM;
    alloc_lease *l = &s->v[s->n++];
    memset(l, 0, sizeof(*l));
    strcpy(l->kind, kind);
    strcpy(l->value, value);
    strcpy(l->owner, owner);
    if (data)
        strcpy(l->data, data);
    l->pid = o->pid;
    l->start = o->pid ? o->start : 0;
    l->taken_ms = time_wall_ms();
    l->flags = (flags & ALLOC_SHARED) | (o->pid == 0 ? ALLOC_HOLD : 0);
    s->dirty = 1;
    if (l->flags & ALLOC_HOLD)
        s->durable = 1;
    return 0;
}

void alloc__remove_at(alloc_store *s, size_t i)
{
    if (s->v[i].flags & ALLOC_HOLD)
        s->durable = 1;
    /* Order is kept so that listings read in the order leases were taken. */
    memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof(*s->v));
    s->n--;
    s->dirty = 1;
}

void alloc__touch(alloc_store *s)
{
    s->dirty = 1;
    s->durable = 1;
}

const char *alloc__note_get(const alloc_store *s, const char *key)
{
    for (size_t i = 0; i < s->nnotes; i++)
        if (!strcmp(s->notes[i].key, key))
            return s->notes[i].val;
    return NULL;
}

int alloc__note_set(alloc_store *s, const char *key, const char *val)
{
    if (strlen(key) >= NOTE_MAX || strlen(val) >= NOTE_MAX)
        return -ENAMETOOLONG;
    char *v = strdup(val);
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < s->nnotes; i++)
        if (!strcmp(s->notes[i].key, key)) {
            free(s->notes[i].val);
            s->notes[i].val = v;
            alloc__touch(s);
            return 0;
        }
    char *k = strdup(key);
    note *n = k ? realloc(s->notes, (s->nnotes + 1) * sizeof(*n)) : NULL;
    if (!n) {
        free(k);
        free(v);
        return -ENOMEM;
    }
    s->notes = n;
    s->notes[s->nnotes].key = k;
    s->notes[s->nnotes++].val = v;
    alloc__touch(s);
    return 0;
}

void alloc__note_del(alloc_store *s, const char *key)
{
    for (size_t i = 0; i < s->nnotes; i++)
        if (!strcmp(s->notes[i].key, key)) {
            free(s->notes[i].key);
            free(s->notes[i].val);
            s->notes[i] = s->notes[--s->nnotes];
            alloc__touch(s);
            return;
        }
}

int alloc__err_held(const alloc_lease *l, const char *what, char *err, size_t errlen)
{
    if (l->pid)
        return alloc__errf(err, errlen, -EEXIST, "%s is held by %s (pid %d)", what, l->owner,
                          (int)l->pid);
    return alloc__errf(err, errlen, -EEXIST, "%s is held by %s (held until freed)", what,
                      l->owner);
}
