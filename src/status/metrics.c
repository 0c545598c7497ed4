/* metrics.c - metrics.prom: the run in Prometheus text format, for
 * node_exporter's textfile collector (docs/status.md). Written atomically
 * with status.json (a temp file in the same directory, renamed), so the
 * collector never reads half a file; with --metrics-textfile DIR also as
 * DIR/qfleet.prom, the same way. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/fleet/fleet.h"
#include "src/status/status_int.h"
#include "base/str.h"

/* Boot times under TCG run from seconds to minutes. */
static const double boot_buckets[] = { 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300 };

/* Label values: escape \, " and newlines as the text format requires. */
static void label_value(char *out, size_t len, const char *v)
{
    size_t o = 0;
    for (; v && *v && o + 3 < len; v++) {
        if (*v == '\\' || *v == '"') {
            out[o++] = '\\';
            out[o++] = *v;
        } else if (*v == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *v;
        }
    }
    out[o] = '\0';
}

/* Where boots spend their time: one histogram per phase (the fleet state a
 * guest was in, allocating .. ssh-ready), over every instance that got to
 * ready. A phase no boot went through has no series. */
static void phase_histograms(struct sbuf *b, const st_run *r)
{
    sb_printf(b, "# HELP qfleet_guest_phase_seconds Time each guest boot spent in each phase "
                 "(fleet state) on its way to ready.\n"
                 "# TYPE qfleet_guest_phase_seconds histogram\n");
    for (int k = GS_ALLOCATING; k < GS_READY; k++) {
        if (!r->phase_n[k])
            continue;
        const char *ph = fleet_state_name(k);
        for (int i = 0; i < ST_PHASE_BUCKETS; i++)
            sb_printf(b, "qfleet_guest_phase_seconds_bucket{phase=\"%s\",le=\"%g\"} %d\n", ph,
                      ST_PHASE_LE[i], r->phase_le[k][i]);
        sb_printf(b, "qfleet_guest_phase_seconds_bucket{phase=\"%s\",le=\"+Inf\"} %d\n", ph,
                  r->phase_n[k]);
        sb_printf(b, "qfleet_guest_phase_seconds_sum{phase=\"%s\"} %.3f\n", ph, r->phase_sum[k]);
        sb_printf(b, "qfleet_guest_phase_seconds_count{phase=\"%s\"} %d\n", ph, r->phase_n[k]);
    }
}

/* The cluster session's health, when the run has one (docs/status.md). */
static void cluster_metrics(struct sbuf *b, const st_run *r)
{
    if (!r->cluster)
        return;
    const cluster_stats *c = &r->cl_stats;
    char host[CLUSTER_HOST_MAX * 2], ep[sizeof(r->cluster_store) * 2];
    label_value(host, sizeof(host), r->cl_host);
    label_value(ep, sizeof(ep), r->cluster_store);
    sb_printf(b, "# HELP qfleet_cluster_state The etcd lease session's state (1 for the present one).\n"
                 "# TYPE qfleet_cluster_state gauge\n");
    for (int s = CLUSTER_CONNECTING; s <= CLUSTER_CLOSED; s++)
        sb_printf(b, "qfleet_cluster_state{state=\"%s\",host=\"%s\",endpoint=\"%s\"} %d\n",
                  cluster_state_name((cluster_state)s), host, ep, c->state == (cluster_state)s);
    sb_printf(b, "# HELP qfleet_cluster_keepalive_seconds Round trip of the last good lease keepalive.\n"
                 "# TYPE qfleet_cluster_keepalive_seconds gauge\n"
                 "qfleet_cluster_keepalive_seconds %.6f\n"
                 "# HELP qfleet_cluster_keepalive_max_seconds Longest round trip of a good keepalive.\n"
                 "# TYPE qfleet_cluster_keepalive_max_seconds gauge\n"
                 "qfleet_cluster_keepalive_max_seconds %.6f\n",
              c->keepalive_last_ms / 1000.0, c->keepalive_max_ms / 1000.0);
    sb_printf(b, "# HELP qfleet_cluster_keepalives_total Lease keepalives that etcd confirmed.\n"
                 "# TYPE qfleet_cluster_keepalives_total counter\n"
                 "qfleet_cluster_keepalives_total %llu\n"
                 "# HELP qfleet_cluster_keepalive_failures_total Lease keepalives that failed.\n"
                 "# TYPE qfleet_cluster_keepalive_failures_total counter\n"
                 "qfleet_cluster_keepalive_failures_total %llu\n",
              c->keepalives, c->keepalive_failures);
    sb_printf(b, "# HELP qfleet_cluster_leases_held Keys this controller holds cluster-wide.\n"
                 "# TYPE qfleet_cluster_leases_held gauge\nqfleet_cluster_leases_held %zu\n"
                 "# HELP qfleet_cluster_lease_ttl_seconds TTL of the controller's etcd lease.\n"
                 "# TYPE qfleet_cluster_lease_ttl_seconds gauge\nqfleet_cluster_lease_ttl_seconds %d\n",
              c->held, c->ttl_s);
}

char *metrics_render(const st_run *r)
{
    struct sbuf b = { 0 };
    char id[128], sd[PATH_MAX * 2];
    label_value(id, sizeof(id), r->id);
    label_value(sd, sizeof(sd), r->status_dir);
    sb_printf(&b, "# HELP qfleet_run_info The qfleet run these metrics describe.\n"
                  "# TYPE qfleet_run_info gauge\n"
                  "qfleet_run_info{run=\"%s\",status_dir=\"%s\",state=\"%s\"} 1\n", id, sd, st_run_state_name(r->state));
    sb_printf(&b, "# HELP qfleet_run_start_time_seconds When the run started (epoch).\n"
                  "# TYPE qfleet_run_start_time_seconds gauge\n"
                  "qfleet_run_start_time_seconds %.3f\n", r->started_ms / 1000.0);
    if (r->exit_code >= 0)
        sb_printf(&b, "# HELP qfleet_run_exit_code The exit code of the finished run.\n"
                      "# TYPE qfleet_run_exit_code gauge\nqfleet_run_exit_code %d\n", r->exit_code);

    int ng[GS_COUNT + 1] = { 0 };
    for (int i = 0; i < r->nsuites; i++)
        for (int g = 0; g < r->suites[i]->nguests; g++) {
            const char *st = json_get_str(r->suites[i]->guests[g].snap, "state");
            int idx = GS_COUNT;
            for (int k = 0; st && k < GS_COUNT; k++)
                if (!strcmp(st, fleet_state_name(k)))
                    idx = k;
            ng[idx]++;
        }
    sb_printf(&b, "# HELP qfleet_guests Guests of the run by state (pending: not started yet).\n"
                  "# TYPE qfleet_guests gauge\nqfleet_guests{state=\"pending\"} %d\n", ng[GS_COUNT]);
    for (int k = 0; k < GS_COUNT; k++)
        sb_printf(&b, "qfleet_guests{state=\"%s\"} %d\n", fleet_state_name(k), ng[k]);

    int nc[RES_COUNT];
    status_case_counts(r, nc);
    sb_printf(&b, "# HELP qfleet_cases Test cases of the run by result.\n# TYPE qfleet_cases gauge\n");
    for (int k = 0; k < RES_COUNT; k++)
        sb_printf(&b, "qfleet_cases{result=\"%s\"} %d\n", st_result_name(k), nc[k]);

    int ns[RES_COUNT] = { 0 }, retries = 0;
    for (int i = 0; i < r->nsuites; i++) {
        ns[r->suites[i]->result]++;
        retries += r->suites[i]->retries_used;
    }
    sb_printf(&b, "# HELP qfleet_suites Suites of the run by result.\n# TYPE qfleet_suites gauge\n");
    for (int k = 0; k < RES_COUNT; k++)
        sb_printf(&b, "qfleet_suites{result=\"%s\"} %d\n", st_result_name(k), ns[k]);
    sb_printf(&b, "# HELP qfleet_infra_retries_total Cases rerun after an infrastructure error.\n"
                  "# TYPE qfleet_infra_retries_total counter\nqfleet_infra_retries_total %d\n", retries);
    sb_printf(&b, "# HELP qfleet_guests_in_use Guest slots held by running suites.\n"
                  "# TYPE qfleet_guests_in_use gauge\nqfleet_guests_in_use %d\n", r->guests_in_use);

    sb_printf(&b, "# HELP qfleet_guest_boot_seconds Time from allocating to ready of each guest.\n"
                  "# TYPE qfleet_guest_boot_seconds histogram\n");
    double sum = 0;
    for (int i = 0; i < r->nboot; i++)
        sum += r->boot_s[i];
    for (size_t k = 0; k < sizeof(boot_buckets) / sizeof(boot_buckets[0]); k++) {
        int n = 0;
        for (int i = 0; i < r->nboot; i++)
            n += r->boot_s[i] <= boot_buckets[k];
        sb_printf(&b, "qfleet_guest_boot_seconds_bucket{le=\"%g\"} %d\n", boot_buckets[k], n);
    }
    sb_printf(&b, "qfleet_guest_boot_seconds_bucket{le=\"+Inf\"} %d\n", r->nboot);
    sb_printf(&b, "qfleet_guest_boot_seconds_sum %.3f\nqfleet_guest_boot_seconds_count %d\n", sum,
              r->nboot);
    phase_histograms(&b, r);
    cluster_metrics(&b, r);
    return sb_take(&b);
}
