/* benchutil.h - what the benchmarks share: the clocks they report in, and
 * one fleet of test guests booted to settled on the default loop. */
#ifndef QF_BENCHUTIL_H
#define QF_BENCHUTIL_H

#include "src/fleet/fleet.h"

double bench_now_ms(void); /* monotonic */
double bench_cpu_s(void);  /* this process's user + system CPU, children excluded */
long bench_rss_kb(void);   /* VmRSS now */
long bench_peak_kb(void);  /* peak RSS */

/* One fleet of n guests "vm0-1".."vm0-N" of VM vm0 of cfg. */
typedef struct bench_fleet {
    fleet_t *f;
    double t0, t_all; /* bench_now_ms at start; ms until every guest settled */
    double cpu_s;     /* the controller's CPU over the boot */
    int failed;       /* a guest failed on the way */
    int done;
} bench_fleet;

/* Boot them (fleet_opts.clone = clone) and run the default loop until all
 * are settled. 0, or -1 with the reason on stderr. The guests stay up for
 * the caller to read (b->f) until bench_fleet_stop. */
int bench_fleet_boot(bench_fleet *b, const char *cfg, const char *state_dir, int n, int clone);
/* Stop every guest and free the fleet, on the default loop. */
void bench_fleet_stop(bench_fleet *b);

#endif
