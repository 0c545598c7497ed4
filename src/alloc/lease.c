/* alloc_lease.c - owners and the operations on leases of any kind. The
 * table itself (locking, loading, writing) is alloc_store.c. */
#include "src/alloc/alloc_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --- processes ------------------------------------------------------ */

int alloc_proc_start(pid_t pid, unsigned long long *start)
{
    char path[64], buf[1024];
    if (pid <= 0)
        return -EINVAL;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -ESRCH : -errno;
    ssize_t r = read(fd, buf, sizeof(buf) - 1);
    int e = errno;
    close(fd);
    if (r < 0)
        return e == ESRCH ? -ESRCH : -e;
    buf[r] = '\0';
    /* comm (field 2) may hold spaces and parentheses: count from the last
     * ')'. Field 3 is the state, field 22 the start time in clock ticks. */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return -EIO;
    p += 2;
    char state = *p;
    if (state == 'Z' || state == 'X')
        return -ESRCH; /* a zombie holds nothing any more */
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p)
            return -EIO;
        p++;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno || end == p)
        return -EIO;
    *start = v;
    return 0;
}

int store_name_ok(const char *name, size_t max)
{
    size_t len = strlen(name);
    if (len == 0 || len >= max || name[0] == '/' || name[len - 1] == '/' || strstr(name, "//"))
        return 0;
    for (const char *p = name; *p; p++)
        if (*p <= ' ' || *p > '~')
            return 0;
    return 1;
}

int alloc_owner_init(alloc_owner *o, const char *name, pid_t pid, char *err, size_t errlen)
{
    memset(o, 0, sizeof(*o));
    /* Leave room for the "/nicN" that NIC leases append. */
    if (!name || !store_name_ok(name, ALLOC_OWNER_MAX - 12))
        return store_errf(err, errlen, -EINVAL,
                          "bad owner name '%s': want 1-%d printable characters, no spaces, "
                          "'/' only between parts",
                          name ? name : "", ALLOC_OWNER_MAX - 13);
    if (pid < 0)
        return store_errf(err, errlen, -EINVAL, "bad owner pid %d", (int)pid);
    if (pid > 0) {
        int rc = alloc_proc_start(pid, &o->start);
        if (rc < 0)
            return store_errf(err, errlen, rc, "owner process %d: %s", (int)pid,
                              rc == -ESRCH ? "not running" : strerror(-rc));
    }
    strcpy(o->name, name);
    o->pid = pid;
    return 0;
}

/* --- state dir ------------------------------------------------------ */

int alloc_state_dir_default(char *out, size_t outlen)
{
    const char *env = getenv("QFLEET_STATE_DIR");
    int n;
    if (env && *env)
        n = snprintf(out, outlen, "%s", env);
    else if (geteuid() == 0)
        n = snprintf(out, outlen, "/var/lib/qfleet");
    else if ((env = getenv("XDG_RUNTIME_DIR")) && *env)
        n = snprintf(out, outlen, "%s/qfleet", env);
    else
        return -ENOENT;
    return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

/* --- generic operations --------------------------------------------- */

static int kind_ok(const char *kind)
{
    size_t n = strlen(kind);
    if (n == 0 || n >= ALLOC_KIND_MAX)
        return 0;
    for (; *kind; kind++)
        if (!((*kind >= 'a' && *kind <= 'z') || (*kind >= '0' && *kind <= '9')))
            return 0;
    return 1;
}

int alloc_take(alloc_store *s, const alloc_owner *o, const char *kind, const char *value,
               unsigned flags, const char *data, char *err, size_t errlen)
{
    if (!kind_ok(kind) || !store_name_ok(value, ALLOC_VALUE_MAX))
        return store_errf(err, errlen, -EINVAL, "bad lease '%s %s'", kind, value);
    int rc = store_enter(s, err, errlen);
    if (rc < 0)
        return rc;
    int mine = 0;
    for (size_t i = 0; i < store_count(s) && rc == 0; i++) {
        const alloc_lease *l = store_at(s, i);
        if (strcmp(l->kind, kind) || strcmp(l->value, value))
            continue;
        if (!strcmp(l->owner, o->name))
            mine = 1;
        else if (!(flags & l->flags & ALLOC_SHARED)) {
            char what[96];
            snprintf(what, sizeof(what), "%s %s", kind, value);
            rc = store_err_held(l, what, err, errlen);
        }
    }
    if (rc == 0 && !mine && (rc = store_add(s, o, NULL, kind, value, flags, data)) < 0)
        store_errf(err, errlen, rc, "lease %s %s: %s", kind, value, strerror(-rc));
    return store_leave(s, rc, err, errlen);
}

int alloc_release(alloc_store *s, const char *owner, const char *kind, const char *value,
                  char *err, size_t errlen)
{
    int rc = store_enter(s, err, errlen);
    if (rc < 0)
        return rc;
    rc = store_errf(err, errlen, -ENOENT, "%s holds no %s %s", owner, kind, value);
    for (size_t i = 0; i < store_count(s); i++) {
        const alloc_lease *l = store_at(s, i);
        if (!strcmp(l->owner, owner) && !strcmp(l->kind, kind) && !strcmp(l->value, value)) {
            store_remove_at(s, i);
            rc = 0;
            break;
        }
    }
    return store_leave(s, rc, err, errlen);
}

/* owner itself or a name below it: "RUN/VM" covers "RUN/VM/nic0". */
static int owner_covers(const char *owner, const char *name)
{
    size_t n = strlen(owner);
    return !strncmp(owner, name, n) && (name[n] == '\0' || name[n] == '/');
}

int alloc_release_owner(alloc_store *s, const char *owner, char *err, size_t errlen)
{
    if (!owner || !*owner)
        return store_errf(err, errlen, -EINVAL, "no owner given");
    int rc = store_enter(s, err, errlen), count = 0;
    if (rc < 0)
        return rc;
    for (size_t i = store_count(s); i-- > 0;)
        if (owner_covers(owner, store_at(s, i)->owner)) {
            store_remove_at(s, i);
            count++;
        }
    return store_leave(s, count, err, errlen);
}

int alloc_adopt(alloc_store *s, const char *owner, pid_t pid, char *err, size_t errlen)
{
    alloc_owner o;
    int rc = alloc_owner_init(&o, owner, pid, err, errlen);
    if (rc < 0)
        return rc;
    if ((rc = store_enter(s, err, errlen)) < 0)
        return rc;
    int count = 0;
    for (size_t i = 0; i < store_count(s); i++) {
        alloc_lease *l = store_at(s, i);
        if (!owner_covers(owner, l->owner))
            continue;
        l->pid = pid;
        l->start = o.start;
        l->flags = (l->flags & ~ALLOC_HOLD) | (pid == 0 ? ALLOC_HOLD : 0);
        count++;
    }
    if (count)
        store_touch(s);
    return store_leave(s, count, err, errlen);
}

int alloc_list(alloc_store *s, alloc_lease **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    int rc = store_enter(s, err, errlen);
    if (rc < 0)
        return rc;
    size_t count = store_count(s);
    if (count) {
        *out = malloc(count * sizeof(**out));
        if (!*out)
            rc = store_errf(err, errlen, -ENOMEM, "out of memory");
        for (size_t i = 0; *out && i < count; i++)
            (*out)[i] = *store_at(s, i);
        *n = *out ? count : 0;
    }
    /* Commit even after a failed copy: reclaiming dead leases is worth
     * keeping. */
    int c = store_leave(s, 0, err, errlen);
    if (rc == 0 && c < 0) {
        free(*out);
        *out = NULL;
        *n = 0;
        rc = c;
    }
    return rc;
}

int alloc_lookup(alloc_store *s, const char *kind, const char *value, alloc_lease *out,
                 char *err, size_t errlen)
{
    int rc = store_enter(s, err, errlen);
    if (rc < 0)
        return rc;
    const alloc_lease *l = store_find(s, kind, value);
    if (l)
        *out = *l;
    else
        rc = store_errf(err, errlen, -ENOENT, "%s %s is free", kind, value);
    /* Commit even when nothing was found: the reclaim is worth keeping. */
    char cerr[256];
    int c = store_leave(s, 0, cerr, sizeof(cerr));
    if (c < 0 && rc == 0)
        rc = store_errf(err, errlen, c, "%s", cerr);
    return rc;
}
