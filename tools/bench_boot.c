/* bench_boot.c - how fast the controller gets guests to ready, and what it
 * costs: `tools/bench boot [--counts 1,4,8] [--peers 200] [--etcd] [--json]`.
 *
 * Part 1: N test guests (cfg/examples/guest.cfg, TCG) booted by one fleet:
 * time to all-ready, and for each guest the time the controller itself
 * adds: agent-connected minus QEMU's timestamp of VSERPORT_CHANGE (sync
 * latency), and the time from the DHCP address to ready (pt map + SSH).
 * With --etcd, each N is booted twice, side by side: with the local store,
 * then with every MAC also claimed through a private etcd (src/cluster).
 * Part 2: P `qemu-system-x86_64 -machine none` processes launched and
 * QMP-connected by one loop: wall time and RSS. Controller peak RSS and
 * CPU seconds are from getrusage(RUSAGE_SELF), children excluded. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cfg/vm.h"
#include "base/json.h"
#include "qmp/qmp.h"
#include "src/fleet/fleet.h"
#include "base/proc.h"
#include "tools/benchutil.h"

static json_t *boot_run(const char *cfg, int n, const char *state_dir, cluster_t *cluster)
{
    bench_fleet b;
    if (bench_fleet_boot(&b, cfg, state_dir, n, 0, cluster) < 0)
        return NULL;
    json_t *r = json_object();
    json_set_int(r, "guests", n);
    json_set_str(r, "store", cluster ? "etcd" : "local");
    json_set(r, "all_ready_s", json_double(b.t_all / 1000));
    json_set_bool(r, "all_ready", !b.failed);
    double sync_sum = 0, sync_max = 0, tail_sum = 0;
    int counted = 0;
    for (size_t i = 0; i < fleet_count(b.f); i++) {
        json_t *g = fguest_json(fleet_guest_at(b.f, i));
        json_t *t = json_get(g, "timings_ms");
        long long open = json_get_int(g, "port_open_ms", -1), agent = json_get_int(t, "agent-connected", -1);
        long long net = json_get_int(t, "net-ready", -1), ready = json_get_int(t, "ready", -1);
        if (open >= 0 && agent >= 0 && net >= 0 && ready >= 0) {
            double sync = (double)(agent - open);
            sync_sum += sync;
            sync_max = sync > sync_max ? sync : sync_max;
            tail_sum += (double)(ready - net);
            counted++;
        }
        json_free(g);
    }
    json_set(r, "agent_sync_after_port_open_ms_avg", json_double(counted ? sync_sum / counted : -1));
    json_set(r, "agent_sync_after_port_open_ms_max", json_double(sync_max));
    json_set(r, "dhcp_to_ready_ms_avg", json_double(counted ? tail_sum / counted : -1));
    json_set(r, "controller_cpu_s", json_double(b.cpu_s));
    json_set_int(r, "controller_peak_rss_kb", bench_peak_kb());
    bench_fleet_stop(&b);
    return r;
}

/* ---- many QMP peers ---- */

struct peers {
    int connected, failed, exited;
};

static void on_peer_ready(qmp_t *q, const conn_err *err, void *data)
{
    struct peers *p = data;
    (void)q;
    if (err) {
        p->failed++;
        fprintf(stderr, "bench: peer: %s\n", err->desc);
    } else {
        p->connected++;
    }
}

static void on_peer_exit(proc_t *pr, int code, int sig, void *data)
{
    (void)pr;
    (void)code;
    (void)sig;
    ((struct peers *)data)->exited++;
}

static json_t *bench_peers(int n, const char *dir)
{
    uv_loop_t *loop = uv_default_loop();
    proc_t **procs = calloc((size_t)n, sizeof(*procs));
    qmp_t **qs = calloc((size_t)n, sizeof(*qs));
    struct peers p = { 0 };
    long rss0 = bench_rss_kb();
    double cpu0 = bench_cpu_s(), t0 = bench_now_ms();
    char err[512];
    for (int i = 0; i < n; i++) {
        char sock[512], arg[600];
        snprintf(sock, sizeof(sock), "%s/peer%d.sock", dir, i);
        snprintf(arg, sizeof(arg), "unix:%s,server=on,wait=off", sock);
        char *argv[] = { "qemu-system-x86_64", "-machine", "none", "-nodefaults", "-display", "none",
                         "-qmp", arg, NULL };
        if (proc_spawn(loop, &procs[i], argv, "/dev/null", on_peer_exit, &p, err, sizeof(err)) < 0) {
            fprintf(stderr, "bench: %s\n", err);
            p.failed++;
            continue;
        }
        qmp_new(loop, &qs[i]);
        qmp_connect(qs[i], sock, 60000, on_peer_ready, &p);
    }
    while (p.connected + p.failed < n)
        uv_run(loop, UV_RUN_ONCE);
    double t = bench_now_ms() - t0;
    json_t *r = json_object();
    json_set_int(r, "peers", n);
    json_set_int(r, "connected", p.connected);
    json_set(r, "launch_and_connect_s", json_double(t / 1000));
    json_set_int(r, "controller_rss_kb_added", bench_rss_kb() - rss0);
    json_set(r, "controller_cpu_s", json_double(bench_cpu_s() - cpu0));
    for (int i = 0; i < n; i++) {
        if (qs[i])
            qmp_close(qs[i], NULL, NULL);
        if (procs[i])
            proc_close(procs[i], NULL, NULL);
    }
    uv_run(loop, UV_RUN_DEFAULT);
    free(procs);
    free(qs);
    return r;
}

static void print_boot(const json_t *r)
{
    printf("boot N=%-2lld %-5s all ready %6.1f s | agent sync after port open avg %5.1f ms max "
           "%5.1f ms | DHCP->ready avg %6.0f ms | controller CPU %.2f s, peak RSS %lld KiB\n",
           json_get_int(r, "guests", 0), json_get_str(r, "store"),
           json_as_double(json_get(r, "all_ready_s"), 0),
           json_as_double(json_get(r, "agent_sync_after_port_open_ms_avg"), 0),
           json_as_double(json_get(r, "agent_sync_after_port_open_ms_max"), 0),
           json_as_double(json_get(r, "dhcp_to_ready_ms_avg"), 0),
           json_as_double(json_get(r, "controller_cpu_s"), 0),
           json_get_int(r, "controller_peak_rss_kb", 0));
    fflush(stdout);
}

/* Each count booted with the local store, then (with a session) with the
 * MACs also claimed through etcd: side by side. 0, or -1. */
static int boots(const char *counts, const char *dir, cluster_t *cluster, int as_json,
                 json_t *out, int *ok)
{
    const char *cfg = QF_SOURCE_DIR "/cfg/examples/guest.cfg";
    json_t *arr = json_array();
    char list[64];
    snprintf(list, sizeof(list), "%s", counts);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        for (int e = 0; e <= (cluster != NULL); e++) {
            json_t *r = boot_run(cfg, atoi(tok), dir, e ? cluster : NULL);
            if (!r)
                return -1;
            *ok &= json_get_bool(r, "all_ready", 0);
            if (!as_json)
                print_boot(r);
            json_append(arr, r);
        }
    }
    json_set(out, "boot", arr);
    return 0;
}

int main(int argc, char **argv)
{
    /* QEMU going away mid-write must be an error, not the end of us. */
    signal(SIGPIPE, SIG_IGN);
    const char *counts = "1,4,8";
    int peers = 200, as_json = 0, etcd = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--counts") && i + 1 < argc)
            counts = argv[++i];
        else if (!strcmp(argv[i], "--peers") && i + 1 < argc)
            peers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json"))
            as_json = 1;
        else if (!strcmp(argv[i], "--etcd"))
            etcd = 1;
        else {
            fprintf(stderr, "usage: tools/bench boot [--counts 1,4,8] [--peers 200] [--etcd] "
                            "[--json]\n");
            return 2;
        }
    }
    char dir[] = "/tmp/qf-bench-boot-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    json_t *out = json_object();
    int ok = 1;
    bench_etcd e = { 0 };
    bench_sess ses = { 0 };
    if (etcd && bench_etcd_up(&e) == 0)
        bench_sess_open(uv_default_loop(), e.store, "bench-boot", &ses);
    if (etcd && !ses.live) {
        fprintf(stderr, "bench: no etcd session\n");
        bench_etcd_down(&e);
        return 1;
    }
    int rc = boots(counts, dir, ses.c, as_json, out, &ok);
    if (ses.c)
        bench_sess_close(uv_default_loop(), &ses);
    if (etcd)
        bench_etcd_down(&e);
    if (rc < 0)
        return 1;
    if (peers > 0) {
        json_t *r = bench_peers(peers, dir);
        if (!as_json)
            printf("peers: %lld QEMU -machine none launched + QMP-connected in %.2f s by one loop;"
                   " controller CPU %.2f s, RSS +%lld KiB\n",
                   json_get_int(r, "connected", 0), json_as_double(json_get(r, "launch_and_connect_s"), 0),
                   json_as_double(json_get(r, "controller_cpu_s"), 0),
                   json_get_int(r, "controller_rss_kb_added", 0));
        json_set(out, "peers", r);
    }
    if (as_json) {
        char *s = json_dump_pretty(out, NULL);
        printf("%s\n", s);
        free(s);
    }
    json_free(out);
    return ok ? 0 : 1;
}
