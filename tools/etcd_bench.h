/* etcd_bench.h - the --etcd half of tools/bench_alloc: MAC allocations per
 * second and p50/p99 latency through etcd beside the local store. */
#ifndef QF_ETCD_BENCH_H
#define QF_ETCD_BENCH_H

/* store NULL: start a private etcd for the run. dir: the local store's
 * state dir. Prints a table (or JSON); returns the exit code. */
int etcd_bench(const char *store, const char *dir, const int *procs, int np, double secs,
               int json);

#endif
