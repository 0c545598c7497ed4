/* check.c - status.json checked against its documented schema
 * (docs/status.md): every required member present with its type, enums
 * within their values, counts consistent with the lists. The tests run it
 * on every rewrite a run makes; a dashboard author can run it on a sample. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "src/status/status_int.h"
#include "src/fleet/fleet.h"

/* A member: "name:T" with T one of s (string), i (integer), o (object),
 * a (array), then '?' if null is allowed too. */
static const char *const top_spec[] = { "version:i", "run:o", "counts:o", "suites:a", NULL };
static const char *const run_spec[] = { "id:s", "run_dir:s", "status_dir:s", "junit:s", "state:s",
                                        "started_ms:i", "updated_ms:i", "finished_ms:i?",
                                        "elapsed_ms:i", "exit_code:i?", "limits:o", "in_use:o",
                                        "cluster:o?", NULL };
static const char *const cluster_spec[] = { "endpoint:s", "host_id:s", "state:s", NULL };
static const char *const limits_spec[] = { "jobs:i?", "mem_budget_mb:i?", "retries:i", "shard:s?", NULL };
static const char *const use_spec[] = { "guests:i", "mem_mb:i", NULL };
static const char *const counts_spec[] = { "suites:o", "cases:o", "guests:o", NULL };
static const char *const suite_spec[] = { "name:s", "file:s", "run_dir:s?", "setup:s", "state:s",
                                          "result:s", "reason:s?", "started_ms:i?", "finished_ms:i?",
                                          "elapsed_ms:i?", "current_case:s?", "retries_used:i",
                                          "cases:a", "guests:a", NULL };
static const char *const case_spec[] = { "name:s", "result:s", "attempts:i", "started_ms:i?",
                                         "finished_ms:i?", "elapsed_ms:i?", "message:s?", "steps:a",
                                         NULL };
static const char *const step_spec[] = { "line:i", "source:s", "result:s", "elapsed_ms:i",
                                         "message:s?", NULL };
static const char *const guest_spec[] = { "name:s", "instance:s?", "boots:i", "state:s", "reason:s?",
                                          "pid:i?", "vnc:i?", "ssh_port:i?", "ip:s?", "started_ms:i?",
                                          "mac:s?", "macs:a", "pci:a", "serial:s?", "timings_ms:o",
                                          NULL };

static const char *const results[] = { "pending", "running", "passed", "failed", "error", "skipped",
                                       NULL };
static const char *const setups[] = { "all", "each", "clone", NULL };

static int bad(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static int members(const json_t *o, const char *const *spec, const char *where, char *err, size_t errlen);

/* run.cluster: null, or the session's endpoint, host and a state name. */
static int cluster_of(const json_t *c, char *err, size_t errlen)
{
    if (json_typeof(c) == JSON_NULL)
        return 0;
    if (members(c, cluster_spec, "run.cluster", err, errlen) < 0)
        return -EINVAL;
    const char *st = json_get_str(c, "state");
    for (int s = CLUSTER_CONNECTING; s <= CLUSTER_CLOSED; s++)
        if (!strcmp(st, cluster_state_name((cluster_state)s)))
            return 0;
    return bad(err, errlen, "run.cluster.state: '%s' is not a cluster state", st);
}

static int members(const json_t *o, const char *const *spec, const char *where, char *err, size_t errlen)
{
    if (json_typeof(o) != JSON_OBJECT)
        return bad(err, errlen, "%s: expected an object", where);
    for (; *spec; spec++) {
        char name[64];
        const char *colon = strchr(*spec, ':');
        snprintf(name, sizeof(name), "%.*s", (int)(colon - *spec), *spec);
        char t = colon[1];
        int nullable = colon[2] == '?';
        const json_t *v = json_get(o, name);
        if (!v)
            return bad(err, errlen, "%s.%s: missing", where, name);
        json_type jt = json_typeof(v);
        if (jt == JSON_NULL && nullable)
            continue;
        json_type want = t == 's' ? JSON_STRING : t == 'i' ? JSON_INT : t == 'o' ? JSON_OBJECT : JSON_ARRAY;
        if (jt != want)
            return bad(err, errlen, "%s.%s: expected %s%s", where, name,
                       t == 's' ? "a string" : t == 'i' ? "an integer" : t == 'o' ? "an object" : "an array",
                       nullable ? " or null" : "");
    }
    return 0;
}

static int one_of(const json_t *o, const char *key, const char *const *vals, const char *where, char *err,
                  size_t errlen)
{
    const char *v = json_get_str(o, key);
    for (const char *const *p = vals; v && *p; p++)
        if (!strcmp(*p, v))
            return 0;
    return bad(err, errlen, "%s.%s: '%s' is not a documented value", where, key, v ? v : "(null)");
}

/* A guest is "pending" (no instance yet) or in a state of the fleet's. */
static int guest_state_ok(const json_t *g, const char *where, char *err, size_t errlen)
{
    static const char *const pending[] = { "pending", NULL };
    if (fleet_state_from_name(json_get_str(g, "state")) >= 0)
        return 0;
    return one_of(g, "state", pending, where, err, errlen);
}

/* o's state is one of the model's names for a suite (or run) state. */
static int state_of(const json_t *o, int run, const char *where, char *err, size_t errlen)
{
    const char *v = json_get_str(o, "state");
    int n = run ? RUN_STATE_COUNT : SS_COUNT;
    for (int k = 0; v && k < n; k++)
        if (!strcmp(v, run ? st_run_state_name(k) : st_suite_state_name(k)))
            return 0;
    return bad(err, errlen, "%s.state: '%s' is not a documented value", where, v ? v : "(null)");
}

/* Every member of o is an integer (counts, timings). */
static int all_ints(const json_t *o, const char *where, char *err, size_t errlen)
{
    if (json_typeof(o) != JSON_OBJECT)
        return bad(err, errlen, "%s: expected an object", where);
    for (size_t i = 0; i < json_len(o); i++)
        if (json_typeof(json_at(o, i)) != JSON_INT)
            return bad(err, errlen, "%s.%s: expected an integer", where, json_key_at(o, i));
    return 0;
}

static int check_suite(const json_t *s, const char *where, int *ncases, char *err, size_t errlen)
{
    char w[160];
    if (members(s, suite_spec, where, err, errlen) < 0 || one_of(s, "setup", setups, where, err, errlen) < 0 ||
        state_of(s, 0, where, err, errlen) < 0 ||
        one_of(s, "result", results, where, err, errlen) < 0)
        return -EINVAL;
    const json_t *cs = json_get(s, "cases"), *gs = json_get(s, "guests");
    *ncases += (int)json_len(cs);
    for (size_t i = 0; i < json_len(cs); i++) {
        const json_t *c = json_at(cs, i);
        snprintf(w, sizeof(w), "%s.cases[%zu]", where, i);
        if (members(c, case_spec, w, err, errlen) < 0 || one_of(c, "result", results, w, err, errlen) < 0)
            return -EINVAL;
        const json_t *st = json_get(c, "steps");
        for (size_t k = 0; k < json_len(st); k++) {
            char ws[200];
            snprintf(ws, sizeof(ws), "%s.steps[%zu]", w, k);
            if (members(json_at(st, k), step_spec, ws, err, errlen) < 0 ||
                one_of(json_at(st, k), "result", results, ws, err, errlen) < 0)
                return -EINVAL;
        }
    }
    for (size_t i = 0; i < json_len(gs); i++) {
        const json_t *g = json_at(gs, i);
        snprintf(w, sizeof(w), "%s.guests[%zu]", where, i);
        if (members(g, guest_spec, w, err, errlen) < 0 || guest_state_ok(g, w, err, errlen) < 0)
            return -EINVAL;
        snprintf(w, sizeof(w), "%s.guests[%zu].timings_ms", where, i);
        if (all_ints(json_get(g, "timings_ms"), w, err, errlen) < 0)
            return -EINVAL;
        const json_t *macs = json_get(g, "macs");
        for (size_t k = 0; k < json_len(macs); k++)
            if (json_typeof(json_at(macs, k)) != JSON_STRING)
                return bad(err, errlen, "%s.guests[%zu].macs[%zu]: expected a string", where, i, k);
    }
    return 0;
}

int status_check(const json_t *doc, char *err, size_t errlen)
{
    if (members(doc, top_spec, "status", err, errlen) < 0)
        return -EINVAL;
    if (json_get_int(doc, "version", 0) != STATUS_VERSION)
        return bad(err, errlen, "status.version: %lld, expected %d", json_get_int(doc, "version", 0),
                   STATUS_VERSION);
    const json_t *run = json_get(doc, "run"), *counts = json_get(doc, "counts");
    if (members(run, run_spec, "run", err, errlen) < 0 ||
        state_of(run, 1, "run", err, errlen) < 0 ||
        members(json_get(run, "limits"), limits_spec, "run.limits", err, errlen) < 0 ||
        members(json_get(run, "in_use"), use_spec, "run.in_use", err, errlen) < 0 ||
        cluster_of(json_get(run, "cluster"), err, errlen) < 0 ||
        members(counts, counts_spec, "counts", err, errlen) < 0 ||
        all_ints(json_get(counts, "suites"), "counts.suites", err, errlen) < 0 ||
        all_ints(json_get(counts, "cases"), "counts.cases", err, errlen) < 0 ||
        all_ints(json_get(counts, "guests"), "counts.guests", err, errlen) < 0)
        return -EINVAL;
    const json_t *suites = json_get(doc, "suites");
    int ncases = 0;
    for (size_t i = 0; i < json_len(suites); i++) {
        char w[64];
        snprintf(w, sizeof(w), "suites[%zu]", i);
        if (check_suite(json_at(suites, i), w, &ncases, err, errlen) < 0)
            return -EINVAL;
    }
    if (json_get_int(json_get(counts, "suites"), "total", -1) != (long long)json_len(suites))
        return bad(err, errlen, "counts.suites.total: %lld, but there are %zu suites",
                   json_get_int(json_get(counts, "suites"), "total", -1), json_len(suites));
    const json_t *cc = json_get(counts, "cases");
    long long sum = 0;
    for (const char *const *r = results; *r; r++)
        sum += json_get_int(cc, *r, 0);
    if (json_get_int(cc, "total", -1) != ncases || sum != ncases)
        return bad(err, errlen, "counts.cases: total %lld and the results' sum %lld, but there are %d cases",
                   json_get_int(cc, "total", -1), sum, ncases);
    return 0;
}
