/* bench_clone.c - warm clones against cold boots, side by side in one run
 * on the same cfg: `tools/bench clone [--counts 1,4,8] [--json]`.
 *
 * For each N: N test guests (cfg/examples/guest.cfg, TCG) booted cold by
 * one fleet, then the template saved (one cold guest with --clone, timed
 * by the fleet: stop -> migrate to the file -> cont), then N clones of it.
 * Reported: time to all-ready, per-guest restore time (launching ->
 * running: QEMU start plus loading the template), the template's save time
 * and size, and the controller's own CPU seconds (children excluded). The
 * state dir is a fresh one under /tmp (its run dirs are kept). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/json.h"
#include "cfg/vm.h"
#include "src/fleet/fleet.h"
#include "tools/benchutil.h"

/* One fleet of n guests; NULL on a setup error. */
static json_t *fleet_run(const char *cfg, const char *state, int n, int clone)
{
    bench_fleet b;
    if (bench_fleet_boot(&b, cfg, state, n, clone, NULL) < 0)
        return NULL;
    json_t *r = json_object();
    json_set_int(r, "guests", n);
    json_set_str(r, "mode", clone ? "clone" : "cold");
    json_set(r, "all_ready_s", json_double(b.t_all / 1000));
    json_set_bool(r, "all_ready", !b.failed);
    json_set(r, "controller_cpu_s", json_double(b.cpu_s));
    double restore_sum = 0, restore_max = 0;
    int restored = 0;
    for (size_t i = 0; i < fleet_count(b.f); i++) {
        int was;
        fguest_template(fleet_guest_at(b.f, i), &was);
        json_t *g = fguest_json(fleet_guest_at(b.f, i));
        json_t *t = json_get(g, "timings_ms");
        long long l = json_get_int(t, "launching", -1), run = json_get_int(t, "running", -1);
        if (was && l >= 0 && run >= 0) {
            restore_sum += (double)(run - l);
            restore_max = (double)(run - l) > restore_max ? (double)(run - l) : restore_max;
            restored++;
        }
        json_free(g);
    }
    json_set_int(r, "restored", restored);
    json_set(r, "restore_ms_avg", json_double(restored ? restore_sum / restored : -1));
    json_set(r, "restore_ms_max", json_double(restore_max));
    bench_fleet_stop(&b);
    return r;
}

static void print_run(const json_t *r)
{
    printf("%-5s N=%-2lld all ready %6.1f s", json_get_str(r, "mode"), json_get_int(r, "guests", 0),
           json_as_double(json_get(r, "all_ready_s"), 0));
    if (json_get_int(r, "restored", 0))
        printf(" | restore (launch -> running) avg %5.0f ms max %5.0f ms",
               json_as_double(json_get(r, "restore_ms_avg"), 0), json_as_double(json_get(r, "restore_ms_max"), 0));
    printf(" | controller CPU %.2f s%s\n", json_as_double(json_get(r, "controller_cpu_s"), 0),
           json_get_bool(r, "all_ready", 0) ? "" : " | NOT ALL READY");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const char *counts = "1,4,8";
    int as_json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--counts") && i + 1 < argc)
            counts = argv[++i];
        else if (!strcmp(argv[i], "--json"))
            as_json = 1;
        else {
            fprintf(stderr, "usage: tools/bench clone [--counts 1,4,8] [--json]\n");
            return 2;
        }
    }
    if (access(QF_SOURCE_DIR "/build/guest/vmlinux", R_OK) != 0) {
        fprintf(stderr, "bench: no test guest: run tools/mkguest\n");
        return 1;
    }
    char state[] = "/tmp/qf-bench-clone-XXXXXX", err[512];
    if (!mkdtemp(state)) {
        perror("mkdtemp");
        return 1;
    }
    const char *cfg = QF_SOURCE_DIR "/cfg/examples/guest.cfg";
    json_t *out = json_object(), *runs = json_array();
    int ok = 1;
    /* the template, made once by a cold guest with --clone */
    json_t *mk = fleet_run(cfg, state, 1, 1);
    json_t *t = fleet_templates(state, err, sizeof(err));
    if (!mk || !t || json_len(t) != 1) {
        fprintf(stderr, "bench: no template was saved%s%s\n", t ? "" : ": ", t ? "" : err);
        return 1;
    }
    json_t *tpl = json_object();
    json_set_int(tpl, "bytes", json_get_int(json_at(t, 0), "bytes", -1));
    json_set_int(tpl, "save_ms", json_get_int(json_at(t, 0), "save_ms", -1));
    json_set(tpl, "first_guest_ready_s", json_copy(json_get(mk, "all_ready_s")));
    if (!as_json)
        printf("template: saved in %lld ms, %.1f MiB (the first guest, saving it, ready in %.1f s)\n",
               json_get_int(tpl, "save_ms", 0), (double)json_get_int(tpl, "bytes", 0) / (1 << 20),
               json_as_double(json_get(mk, "all_ready_s"), 0));
    json_free(t);
    json_free(mk);
    char list[64];
    snprintf(list, sizeof(list), "%s", counts);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        for (int clone = 0; clone <= 1; clone++) {
            json_t *r = fleet_run(cfg, state, atoi(tok), clone);
            if (!r)
                return 1;
            ok &= json_get_bool(r, "all_ready", 0);
            if (!as_json)
                print_run(r);
            json_append(runs, r);
        }
    }
    json_set(out, "template", tpl);
    json_set(out, "runs", runs);
    if (as_json) {
        char *s = json_dump_pretty(out, NULL);
        printf("%s\n", s);
        free(s);
    }
    json_free(out);
    /* the template goes; the run dirs stay for a look at the logs */
    fleet_template_rm(state, NULL, err, sizeof(err));
    fprintf(stderr, "bench: run dirs in %s/runs\n", state);
    return ok ? 0 : 1;
}
