/* lease.c - owners and the operations on leases of any kind. The
 * table itself (locking, loading, writing) is store.c. */
#include "src/alloc/alloc_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int alloc__name_ok(const char *name, size_t max)
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
    if (!name || !alloc__name_ok(name, ALLOC_OWNER_MAX - 12))
        return alloc__errf(err, errlen, -EINVAL,
                          "bad owner name '%s': want 1-%d printable characters, no spaces, "
                          "'/' only between parts",
                          name ? name : "", ALLOC_OWNER_MAX - 13);
    if (pid < 0)
        return alloc__errf(err, errlen, -EINVAL, "bad owner pid %d", (int)pid);
    if (pid > 0) {
        int rc = alloc_proc_start(pid, &o->start);
        if (rc < 0)
            return alloc__errf(err, errlen, rc, "owner process %d: %s", (int)pid,
                              rc == -ESRCH ? "not running" : strerror(-rc));
    }
    strcpy(o->name, name);
    o->pid = pid;
    return 0;
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
    if (!kind_ok(kind) || !alloc__name_ok(value, ALLOC_VALUE_MAX))
        return alloc__errf(err, errlen, -EINVAL, "bad lease '%s %s'", kind, value);
    int rc = alloc__enter(s, err, errlen);
    if (rc < 0)
        return rc;
    int mine = 0;
    for (size_t i = 0; i < alloc__count(s) && rc == 0; i++) {
        const alloc_lease *l = alloc__at(s, i);
        if (strcmp(l->kind, kind) || strcmp(l->value, value))
            continue;
        if (!strcmp(l->owner, o->name))
            mine = 1;
        else if (!(flags & l->flags & ALLOC_SHARED)) {
            char what[96];
            snprintf(what, sizeof(what), "%s %s", kind, value);
            rc = alloc__err_held(l, what, err, errlen);
        }
    }
    if (rc == 0 && !mine && (rc = alloc__add(s, o, NULL, kind, value, flags, data)) < 0)
        alloc__errf(err, errlen, rc, "lease %s %s: %s", kind, value, strerror(-rc));
    return alloc__leave(s, rc, err, errlen);
}

int alloc_release(alloc_store *s, const char *owner, const char *kind, const char *value,
                  char *err, size_t errlen)
{
    int rc = alloc__enter(s, err, errlen);
    if (rc < 0)
        return rc;
    rc = alloc__errf(err, errlen, -ENOENT, "%s holds no %s %s", owner, kind, value);
    for (size_t i = 0; i < alloc__count(s); i++) {
        const alloc_lease *l = alloc__at(s, i);
        if (!strcmp(l->owner, owner) && !strcmp(l->kind, kind) && !strcmp(l->value, value)) {
            alloc__remove_at(s, i);
            rc = 0;
            break;
        }
    }
    return alloc__leave(s, rc, err, errlen);
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
        return alloc__errf(err, errlen, -EINVAL, "no owner given");
    int rc = alloc__enter(s, err, errlen), count = 0;
    if (rc < 0)
        return rc;
    for (size_t i = alloc__count(s); i-- > 0;)
        if (owner_covers(owner, alloc__at(s, i)->owner)) {
            alloc__remove_at(s, i);
            count++;
        }
    return alloc__leave(s, count, err, errlen);
}

int alloc_adopt(alloc_store *s, const char *owner, pid_t pid, char *err, size_t errlen)
{
    alloc_owner o;
    int rc = alloc_owner_init(&o, owner, pid, err, errlen);
    if (rc < 0)
        return rc;
    if ((rc = alloc__enter(s, err, errlen)) < 0)
        return rc;
    int count = 0;
    for (size_t i = 0; i < alloc__count(s); i++) {
        alloc_lease *l = alloc__at(s, i);
        if (!owner_covers(owner, l->owner))
            continue;
        l->pid = pid;
        l->start = o.start;
        l->flags = (l->flags & ~ALLOC_HOLD) | (pid == 0 ? ALLOC_HOLD : 0);
        count++;
    }
    if (count)
        alloc__touch(s);
    return alloc__leave(s, count, err, errlen);
}

int alloc_list(alloc_store *s, alloc_lease **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    int rc = alloc__enter(s, err, errlen);
    if (rc < 0)
        return rc;
    size_t count = alloc__count(s);
    if (count) {
        *out = malloc(count * sizeof(**out));
        if (!*out)
            rc = alloc__errf(err, errlen, -ENOMEM, "out of memory");
        for (size_t i = 0; *out && i < count; i++)
            (*out)[i] = *alloc__at(s, i);
        *n = *out ? count : 0;
    }
    /* Commit even after a failed copy: reclaiming dead leases is worth
     * keeping. */
    int c = alloc__leave(s, 0, err, errlen);
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
    int rc = alloc__enter(s, err, errlen);
    if (rc < 0)
        return rc;
    const alloc_lease *l = alloc__find(s, kind, value);
    if (l)
        *out = *l;
    else
        rc = alloc__errf(err, errlen, -ENOENT, "%s %s is free", kind, value);
    /* Commit even when nothing was found: the reclaim is worth keeping. */
    char cerr[256];
    int c = alloc__leave(s, 0, cerr, sizeof(cerr));
    if (c < 0 && rc == 0)
        rc = alloc__errf(err, errlen, c, "%s", cerr);
    return rc;
}
