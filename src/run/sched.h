/* sched.h - what a suite needs from the host and whether it fits: the
 * bookkeeping `qfleet run` admits suites with. Pure logic, no I/O (except
 * sched_host_defaults, which reads the host's facts once).
 *
 * A suite is admitted whole: all its guests' resources are reserved when
 * it starts and returned when its last guest has stopped, so guests of
 * admitted suites never wait for each other. A suite that does not fit now
 * waits; one that could not fit even on an idle host fails at once.
 *
 *   sched_limits lim;  sched_host_defaults(&lim);  lim.jobs = 4;
 *   sched_need n = { 0 };
 *   sched_need_add(&n, mem_mb, cpupin, ncpupin, vnc, why, sizeof(why));
 *   if (sched_never_fits(&lim, &n, why, sizeof(why))) fail the suite;
 *   if (sched_fits_now(&lim, &use, &n, why, sizeof(why))) sched_take(&use, &n);
 *   ... sched_release(&use, &n);
 *
 * SR-IOV VFs: the caller registers each VF pool its suites use once, with
 * the VFs of the pool that are usable for this run (its PFs' VFs after
 * vfs=/exclude=, less those another process leased when the run began):
 *   int p = sched_vf_pool_add(&lim, key, "net1", pcis, npci, why, sizeof(why));
 *   sched_need_vfs(&n, p, 2);
 * Pools are told apart by the VFs they hold, not by name: two pools over
 * one PF compete for the same VFs. The fleet gives a guest the first free
 * VF of its pool, in whatever order guests launch, so the check is the one
 * that holds for any order: for every pool P in demand, the VFs wanted from
 * P and from every pool sharing a VF with P must fit in P's VFs. Exact for
 * disjoint pools and for pools with the same VFs; conservative (may wait
 * where a perfect assignment would fit) for pools that overlap in part. */
#ifndef QF_SCHED_H
#define QF_SCHED_H

#include <stddef.h>
#include <stdint.h>

#define SCHED_CPU_MAX 1024          /* host CPUs the pin bookkeeping covers */
#define SCHED_VNC_MAX 100           /* displays the lease store hands out (0..99) */
#define SCHED_QEMU_OVERHEAD_MB 64   /* QEMU's own memory on top of the guest's */
#define SCHED_VF_MAX 1024           /* distinct VFs of the pools of one run */
#define SCHED_VF_POOLS 16           /* distinct pools of one run */

typedef struct sched_cpuset {
    uint64_t bits[SCHED_CPU_MAX / 64];
} sched_cpuset;

/* What one suite needs while it runs. */
typedef struct sched_need {
    int guests;
    long long mem_mb;        /* guest memory plus QEMU overhead */
    sched_cpuset cpus;       /* union of the guests' cpupin sets */
    int vnc_auto;            /* displays taken from the pool */
    sched_cpuset vnc_fixed;  /* displays fixed by the cfg (bit = display) */
    int vf[SCHED_VF_POOLS];  /* VFs wanted of each pool (sched_limits.vf_pool) */
} sched_need;

/* A set of VFs: bit i is VF i of sched_limits.vf_pci (same width as a cpuset). */
typedef sched_cpuset sched_vfset;

typedef struct sched_vf_pool {
    unsigned long long key;  /* the caller's identity of the pool's definition */
    char name[64];           /* for messages */
    sched_vfset vfs;         /* its usable VFs */
    int nvf;
} sched_vf_pool;

typedef struct sched_limits {
    int jobs;                /* guests at once (allocating..stopped); 0: none */
    long long mem_mb;        /* memory budget; 0: none */
    sched_cpuset host_cpus;  /* CPUs guests may be pinned to */
    int vnc_pool;            /* displays in the pool */
    sched_vf_pool vf_pool[SCHED_VF_POOLS];
    int nvf_pools;
    char vf_pci[SCHED_VF_MAX][16]; /* VF i's PCI address */
    int nvf;
} sched_limits;

/* What admitted suites hold. */
typedef struct sched_use {
    int guests;
    long long mem_mb;
    sched_cpuset cpus;
    int vnc_auto;
    sched_cpuset vnc_fixed;
    int vf[SCHED_VF_POOLS];
} sched_use;

/* Host facts: MemAvailable as the memory budget, the CPUs this process may
 * run on, the VNC pool; jobs 0. */
void sched_host_defaults(sched_limits *l);
/* MemAvailable of /proc/meminfo in MiB, or -1. */
long long sched_mem_available(void);

/* Add one guest. -EINVAL with a reason when it cannot share the suite with
 * the guests added before (same pinned CPU, same fixed VNC display). */
int sched_need_add(sched_need *n, const char *guest, int mem_mb, const int *cpupin, int ncpupin,
                   int vnc, char *why, size_t whylen);

/* The pool registered with key, or -1. */
int sched_vf_pool_find(const sched_limits *l, unsigned long long key);
/* Register pool name (key: the caller's hash of its definition) with its
 * usable VFs (PCI addresses); its index. -ENOSPC (and why) when the run
 * has too many pools or VFs. */
int sched_vf_pool_add(sched_limits *l, unsigned long long key, const char *name,
                      const char *const *pci, int npci, char *why, size_t whylen);
/* The suite needs count more VFs of pool (an index from sched_vf_pool_add). */
void sched_need_vfs(sched_need *n, int pool, int count);

/* 1 (and why) if the suite could not run even alone on this host. */
int sched_never_fits(const sched_limits *l, const sched_need *n, char *why, size_t whylen);
/* 1 if it fits next to what is in use; else 0 and what it waits for. */
int sched_fits_now(const sched_limits *l, const sched_use *u, const sched_need *n, char *why,
                   size_t whylen);
void sched_take(sched_use *u, const sched_need *n);
void sched_release(sched_use *u, const sched_need *n);

/* --shard K/N: parse "K/N" (1 <= K <= N). 0 or -EINVAL. */
int sched_shard_parse(const char *s, int *k, int *n);
/* Which of n shards (0..n-1) a suite belongs to: a hash of its name, the
 * same on every host and for every order of the suite list. */
int sched_shard_of(const char *name, int n);

void sched_cpu_set(sched_cpuset *s, int cpu);
int sched_cpu_isset(const sched_cpuset *s, int cpu);
int sched_cpu_count(const sched_cpuset *s);

#endif
