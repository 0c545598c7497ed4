/* sched.c - suite admission bookkeeping and sharding (sched.h). */
#include "src/run/sched.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sched_cpu_set(sched_cpuset *s, int cpu)
{
    if (cpu >= 0 && cpu < SCHED_CPU_MAX)
        s->bits[cpu / 64] |= 1ull << (cpu % 64);
}

int sched_cpu_isset(const sched_cpuset *s, int cpu)
{
    return cpu >= 0 && cpu < SCHED_CPU_MAX && (s->bits[cpu / 64] >> (cpu % 64)) & 1;
}

int sched_cpu_count(const sched_cpuset *s)
{
    int n = 0;
    for (size_t i = 0; i < sizeof(s->bits) / sizeof(s->bits[0]); i++)
        n += __builtin_popcountll(s->bits[i]);
    return n;
}

/* The lowest member of a & b, or -1. */
static int first_common(const sched_cpuset *a, const sched_cpuset *b)
{
    for (int i = 0; i < SCHED_CPU_MAX / 64; i++)
        if (a->bits[i] & b->bits[i])
            return i * 64 + __builtin_ctzll(a->bits[i] & b->bits[i]);
    return -1;
}

/* The lowest member of a not in b, or -1. */
static int first_missing(const sched_cpuset *a, const sched_cpuset *b)
{
    for (int i = 0; i < SCHED_CPU_MAX / 64; i++)
        if (a->bits[i] & ~b->bits[i])
            return i * 64 + __builtin_ctzll(a->bits[i] & ~b->bits[i]);
    return -1;
}

long long sched_mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return -1;
    char line[256];
    long long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1)
            break;
    fclose(f);
    return kb < 0 ? -1 : kb / 1024;
}

void sched_host_defaults(sched_limits *l)
{
    memset(l, 0, sizeof(*l));
    long long m = sched_mem_available();
    l->mem_mb = m > 0 ? m : 0;
    cpu_set_t cs;
    CPU_ZERO(&cs);
    if (sched_getaffinity(0, sizeof(cs), &cs) == 0) {
        for (int c = 0; c < CPU_SETSIZE && c < SCHED_CPU_MAX; c++)
            if (CPU_ISSET(c, &cs))
                sched_cpu_set(&l->host_cpus, c);
    }
    l->vnc_pool = SCHED_VNC_MAX;
}

int sched_need_add(sched_need *n, const char *guest, int mem_mb, const int *cpupin, int ncpupin,
                   int vnc, char *why, size_t whylen)
{
    sched_cpuset mine = { { 0 } };
    for (int i = 0; i < ncpupin; i++)
        sched_cpu_set(&mine, cpupin[i]);
    int c = first_common(&mine, &n->cpus);
    if (c >= 0) {
        snprintf(why, whylen, "%s pins CPU %d, which another guest of the suite pins too (a pinned "
                 "CPU is leased to one guest)", guest, c);
        return -EINVAL;
    }
    if (vnc >= 0 && sched_cpu_isset(&n->vnc_fixed, vnc)) {
        snprintf(why, whylen, "%s uses VNC display %d, which another guest of the suite uses too",
                 guest, vnc);
        return -EINVAL;
    }
    for (int i = 0; i < SCHED_CPU_MAX / 64; i++)
        n->cpus.bits[i] |= mine.bits[i];
    n->guests++;
    n->mem_mb += mem_mb + SCHED_QEMU_OVERHEAD_MB;
    if (vnc == -2)
        n->vnc_auto++;
    else if (vnc >= 0)
        sched_cpu_set(&n->vnc_fixed, vnc);
    return 0;
}

int sched_vf_pool_find(const sched_limits *l, unsigned long long key)
{
    for (int i = 0; i < l->nvf_pools; i++)
        if (l->vf_pool[i].key == key)
            return i;
    return -1;
}

static int vf_index(sched_limits *l, const char *pci)
{
    for (int i = 0; i < l->nvf; i++)
        if (!strcmp(l->vf_pci[i], pci))
            return i;
    if (l->nvf == SCHED_VF_MAX)
        return -1;
    snprintf(l->vf_pci[l->nvf], sizeof(l->vf_pci[0]), "%s", pci);
    return l->nvf++;
}

int sched_vf_pool_add(sched_limits *l, unsigned long long key, const char *name,
                      const char *const *pci, int npci, char *why, size_t whylen)
{
    int i = sched_vf_pool_find(l, key);
    if (i >= 0)
        return i;
    if (l->nvf_pools == SCHED_VF_POOLS) {
        snprintf(why, whylen, "VF pool %s: a run schedules at most %d distinct VF pools", name,
                 SCHED_VF_POOLS);
        return -ENOSPC;
    }
    sched_vf_pool *p = &l->vf_pool[l->nvf_pools];
    memset(p, 0, sizeof(*p));
    p->key = key;
    snprintf(p->name, sizeof(p->name), "%s", name);
    for (int k = 0; k < npci; k++) {
        int v = vf_index(l, pci[k]);
        if (v < 0) {
            snprintf(why, whylen, "VF pool %s: a run schedules at most %d distinct VFs", name,
                     SCHED_VF_MAX);
            return -ENOSPC;
        }
        sched_cpu_set(&p->vfs, v);
    }
    p->nvf = sched_cpu_count(&p->vfs);
    return l->nvf_pools++;
}

void sched_need_vfs(sched_need *n, int pool, int count)
{
    if (pool >= 0 && pool < SCHED_VF_POOLS)
        n->vf[pool] += count;
}

/* What pool p and every pool sharing a VF with it want (dem). */
static int vf_around(const sched_limits *l, const int *dem, int p)
{
    int want = 0;
    for (int q = 0; q < l->nvf_pools; q++)
        if (dem[q] > 0 && (q == p || first_common(&l->vf_pool[p].vfs, &l->vf_pool[q].vfs) >= 0))
            want += dem[q];
    return want;
}

/* A pool in demand whose VFs cannot cover vf_around, or -1: one the new
 * suite asks for (mine) if any, so the message names its pool. See sched.h
 * for why this holds for any order the fleet takes VFs in. */
static int vf_short(const sched_limits *l, const int *dem, const int *mine)
{
    int other = -1;
    for (int p = 0; p < l->nvf_pools; p++)
        if (dem[p] > 0 && vf_around(l, dem, p) > l->vf_pool[p].nvf) {
            if (mine[p] > 0)
                return p;
            if (other < 0)
                other = p;
        }
    return other;
}

/* ", with N of pools sharing its VFs (a, b)" for the message about pool p. */
static void vf_sharers(const sched_limits *l, const int *dem, int p, char *out, size_t len)
{
    size_t o = 0;
    int others = 0;
    out[0] = '\0';
    for (int q = 0; q < l->nvf_pools; q++)
        if (q != p && dem[q] > 0 && first_common(&l->vf_pool[p].vfs, &l->vf_pool[q].vfs) >= 0)
            others += dem[q];
    if (!others)
        return;
    o += (size_t)snprintf(out, len, " and %d of pool(s) sharing its VFs (", others);
    const char *sep = "";
    for (int q = 0; q < l->nvf_pools && o < len; q++)
        if (q != p && dem[q] > 0 && first_common(&l->vf_pool[p].vfs, &l->vf_pool[q].vfs) >= 0) {
            o += (size_t)snprintf(out + o, len - o, "%s%s", sep, l->vf_pool[q].name);
            sep = ", ";
        }
    if (o < len)
        snprintf(out + o, len - o, ")");
}

int sched_never_fits(const sched_limits *l, const sched_need *n, char *why, size_t whylen)
{
    int c;
    if (l->jobs > 0 && n->guests > l->jobs)
        snprintf(why, whylen, "needs %d guests at once, --jobs allows %d", n->guests, l->jobs);
    else if (l->mem_mb > 0 && n->mem_mb > l->mem_mb)
        snprintf(why, whylen, "needs %lld MiB (guest memory + %d MiB per QEMU), the budget is %lld "
                 "MiB (--mem-budget, default MemAvailable)", n->mem_mb, SCHED_QEMU_OVERHEAD_MB,
                 l->mem_mb);
    else if ((c = first_missing(&n->cpus, &l->host_cpus)) >= 0)
        snprintf(why, whylen, "pins CPU %d, which this host does not have (or qfleet may not use)", c);
    else if (n->vnc_auto + sched_cpu_count(&n->vnc_fixed) > l->vnc_pool)
        snprintf(why, whylen, "needs %d VNC displays, the pool has %d",
                 n->vnc_auto + sched_cpu_count(&n->vnc_fixed), l->vnc_pool);
    else if ((c = vf_short(l, n->vf, n->vf)) >= 0) {
        char more[160];
        vf_sharers(l, n->vf, c, more, sizeof(more));
        snprintf(why, whylen, "needs %d VF(s) of pool %s%s, the pool has %d usable (its VFs after "
                 "vfs=/exclude=, less those leased elsewhere when the run began)", n->vf[c],
                 l->vf_pool[c].name, more, l->vf_pool[c].nvf);
    } else
        return 0;
    return 1;
}

/* Why n waits for pool c's VFs: its own, or a pool of n sharing c's. */
static void vf_waiting(const sched_limits *l, const sched_use *u, const sched_need *n, int c,
                       char *why, size_t whylen)
{
    int q = c;
    for (int p = 0; n->vf[c] <= 0 && p < l->nvf_pools; p++)
        if (n->vf[p] > 0 && first_common(&l->vf_pool[p].vfs, &l->vf_pool[c].vfs) >= 0)
            q = p;
    int free_n = l->vf_pool[c].nvf - vf_around(l, u->vf, c);
    if (q == c)
        snprintf(why, whylen, "waiting for %d VF(s) of pool %s (%d of %d free)",
                 vf_around(l, n->vf, c), l->vf_pool[c].name, free_n, l->vf_pool[c].nvf);
    else
        snprintf(why, whylen, "waiting for %d VF(s) of pool %s, which shares VFs with pool %s "
                 "(%d of %d free)", n->vf[q], l->vf_pool[q].name, l->vf_pool[c].name, free_n,
                 l->vf_pool[c].nvf);
}

int sched_fits_now(const sched_limits *l, const sched_use *u, const sched_need *n, char *why,
                   size_t whylen)
{
    int c, dem[SCHED_VF_POOLS];
    for (int p = 0; p < SCHED_VF_POOLS; p++)
        dem[p] = u->vf[p] + n->vf[p];
    if (l->jobs > 0 && u->guests + n->guests > l->jobs)
        snprintf(why, whylen, "waiting for %d guest slots (%d of %d free)", n->guests,
                 l->jobs - u->guests, l->jobs);
    else if (l->mem_mb > 0 && u->mem_mb + n->mem_mb > l->mem_mb)
        snprintf(why, whylen, "waiting for %lld MiB of memory (%lld of %lld MiB free)", n->mem_mb,
                 l->mem_mb - u->mem_mb, l->mem_mb);
    else if ((c = first_common(&n->cpus, &u->cpus)) >= 0)
        snprintf(why, whylen, "waiting for pinned CPU %d", c);
    else if ((c = first_common(&n->vnc_fixed, &u->vnc_fixed)) >= 0)
        snprintf(why, whylen, "waiting for VNC display %d", c);
    else if (u->vnc_auto + sched_cpu_count(&u->vnc_fixed) + n->vnc_auto + sched_cpu_count(&n->vnc_fixed)
             > l->vnc_pool)
        snprintf(why, whylen, "waiting for %d VNC displays", n->vnc_auto);
    else if ((c = vf_short(l, dem, n->vf)) >= 0)
        vf_waiting(l, u, n, c, why, whylen);
    else
        return 1;
    return 0;
}

void sched_take(sched_use *u, const sched_need *n)
{
    u->guests += n->guests;
    u->mem_mb += n->mem_mb;
    u->vnc_auto += n->vnc_auto;
    for (int p = 0; p < SCHED_VF_POOLS; p++)
        u->vf[p] += n->vf[p];
    for (int i = 0; i < SCHED_CPU_MAX / 64; i++) {
        u->cpus.bits[i] |= n->cpus.bits[i];
        u->vnc_fixed.bits[i] |= n->vnc_fixed.bits[i];
    }
}

void sched_release(sched_use *u, const sched_need *n)
{
    u->guests -= n->guests;
    u->mem_mb -= n->mem_mb;
    u->vnc_auto -= n->vnc_auto;
    for (int p = 0; p < SCHED_VF_POOLS; p++)
        u->vf[p] -= n->vf[p];
    /* Admitted needs never overlap in CPUs or fixed displays, so clearing
     * this suite's bits leaves everyone else's. */
    for (int i = 0; i < SCHED_CPU_MAX / 64; i++) {
        u->cpus.bits[i] &= ~n->cpus.bits[i];
        u->vnc_fixed.bits[i] &= ~n->vnc_fixed.bits[i];
    }
}

int sched_shard_parse(const char *s, int *k, int *n)
{
    char *end;
    long kk = strtol(s, &end, 10);
    if (end == s || *end != '/')
        return -EINVAL;
    const char *p = end + 1;
    long nn = strtol(p, &end, 10);
    if (end == p || *end || nn < 1 || nn > 10000 || kk < 1 || kk > nn)
        return -EINVAL;
    *k = (int)kk;
    *n = (int)nn;
    return 0;
}

int sched_shard_of(const char *name, int n)
{
    /* FNV-1a 64: stable across hosts, builds and the order suites are
     * given in, which is what lets a CI matrix split one list. */
    uint64_t h = 14695981039346656037ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return n > 0 ? (int)(h % (uint64_t)n) : 0;
}
