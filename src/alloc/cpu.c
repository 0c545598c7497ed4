/* alloc_cpu.c - host CPUs pinned by guests ("cpu" leases). Two guests
 * running at once never pin to the same core, and a guest gets its whole
 * set or nothing: a half-pinned guest would be slower than an unpinned one
 * and skew the results it exists to produce. */
#include "src/alloc/alloc_int.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

static const alloc_lease *cpu_lease(alloc_store *s, int cpu)
{
    char v[16];
    snprintf(v, sizeof(v), "%d", cpu);
    return alloc__find(s, "cpu", v);
}

int alloc_cpus(alloc_store *s, const alloc_owner *o, const int *cpus, size_t n, char *err,
               size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        if (cpus[i] < 0 || cpus[i] >= CPU_SETSIZE)
            return alloc__errf(err, errlen, -EINVAL, "bad CPU number %d", cpus[i]);
    int rc = alloc__enter(s, err, errlen);
    if (rc < 0)
        return rc;
    /* Check all before taking any. */
    for (size_t i = 0; i < n && rc == 0; i++) {
        const alloc_lease *l = cpu_lease(s, cpus[i]);
        if (l && strcmp(l->owner, o->name)) {
            char what[32];
            snprintf(what, sizeof(what), "CPU %d", cpus[i]);
            rc = alloc__err_held(l, what, err, errlen);
        }
    }
    if (rc == 0 && alloc__reserve(s, n) < 0)
        rc = alloc__errf(err, errlen, -ENOMEM, "out of memory");
    for (size_t i = 0; i < n && rc == 0; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", cpus[i]);
        if (!cpu_lease(s, cpus[i])) /* also skips repeats in cpus[] */
            alloc__add(s, o, NULL, "cpu", v, 0, NULL);
    }
    return alloc__leave(s, rc, err, errlen);
}

int alloc_cpus_any(alloc_store *s, const alloc_owner *o, size_t n, int *out, char *err,
                   size_t errlen)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) < 0)
        return alloc__errf(err, errlen, -errno, "sched_getaffinity: %s", strerror(errno));
    int rc = alloc__enter(s, err, errlen);
    if (rc < 0)
        return rc;
    size_t got = 0;
    for (int c = 0; c < CPU_SETSIZE && got < n; c++)
        if (CPU_ISSET(c, &set) && !cpu_lease(s, c))
            out[got++] = c;
    if (got < n)
        rc = alloc__errf(err, errlen, -ENOSPC, "only %zu of the %d usable CPUs are free, %zu wanted",
                        got, CPU_COUNT(&set), n);
    else if (alloc__reserve(s, n) < 0)
        rc = alloc__errf(err, errlen, -ENOMEM, "out of memory");
    for (size_t i = 0; i < n && rc == 0; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", out[i]);
        alloc__add(s, o, NULL, "cpu", v, 0, NULL);
    }
    return alloc__leave(s, rc, err, errlen);
}
