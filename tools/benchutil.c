/* benchutil.c - see benchutil.h. */
#include "tools/benchutil.h"

#include <stdio.h>
#include <sys/resource.h>

#include "cfg/vm.h"

double bench_now_ms(void) { return (double)uv_hrtime() / 1e6; }

double bench_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

long bench_rss_kb(void)
{
    long kb = 0;
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

long bench_peak_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void on_event(fleet_t *f, fguest_t *g, fleet_state s, void *data)
{
    bench_fleet *b = data;
    if (s == GS_FAILED && !b->t_all) {
        fprintf(stderr, "bench: %s failed: %s\n", fguest_name(g), fguest_reason(g));
        b->failed = 1;
    }
    if (!b->t_all && fleet_settled(f))
        b->t_all = bench_now_ms() - b->t0;
}

int bench_fleet_boot(bench_fleet *b, const char *cfg, const char *state_dir, int n, int clone)
{
    *b = (bench_fleet){ 0 };
    uv_loop_t *loop = uv_default_loop();
    fleet_opts o = { .state_dir = state_dir, .cfg_path = cfg, .clone = clone };
    char err[1024];
    if (fleet_new(loop, &o, on_event, b, &b->f, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench: %s\n", err);
        return -1;
    }
    for (int i = 1; i <= n; i++) {
        struct cfg_vm *vm;
        char name[32];
        snprintf(name, sizeof(name), "vm0-%d", i);
        if (cfg_vm_load(cfg, "vm0", NULL, &vm, err, sizeof(err)) < 0 ||
            fleet_add(b->f, vm, name, err, sizeof(err)) < 0) {
            fprintf(stderr, "bench: %s\n", err);
            return -1;
        }
    }
    double cpu0 = bench_cpu_s();
    b->t0 = bench_now_ms();
    fleet_start(b->f);
    while (!b->t_all)
        uv_run(loop, UV_RUN_ONCE);
    b->cpu_s = bench_cpu_s() - cpu0;
    return 0;
}

static void on_stopped(fleet_t *f, void *data)
{
    fleet_free(f, NULL, NULL);
    ((bench_fleet *)data)->done = 1;
}

void bench_fleet_stop(bench_fleet *b)
{
    fleet_stop_all(b->f, on_stopped, b);
    while (!b->done)
        uv_run(uv_default_loop(), UV_RUN_ONCE);
    b->f = NULL;
}
