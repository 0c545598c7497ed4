/* step.c - running one step of a case: a command on the host or in a
 * guest, a QMP or agent command, a file copy or a sleep, with its
 * ${variables} filled in. Judging the outcome is verdict.c's.
 *
 * Each step runs as a job that owns a timer (and, for host commands, a
 * base/proc child with its output captured). The job reports through the
 * runner's callback once and is freed when its timer and child are closed,
 * so a step abandoned by an infrastructure error can finish in its own
 * time without anyone waiting. */
#include "src/run/run_int.h"
#include "base/time.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/proc.h"
#include "base/str.h"
#include "qmp/agent.h"
#include "qmp/qmp.h"

extern char **environ;

struct sjob {
    struct rsuite *s;
    unsigned token;
    step_done_fn done;
    step_out *o;
    double t0;
    int reported;
    int handles;                 /* the timer, the child: freed when both closed */
    uv_timer_t timer;
    struct sjob *next;           /* in s->jobs while listed */
    int listed;
    proc_t *proc;                /* host commands, once started */
    const struct suite_step *st;
    double spawn_t0;             /* interactive steps: when their session was spawned */
    guest_session_t *closing;    /* close: the session taken out of the table */
    int mig_src, mig_dst;        /* migrate: the logical guests */
    fguest_t *mig_g[2];          /* migrate: their instances when it began */
};

void run__step_out_free(step_out *o)
{
    if (!o)
        return;
    free(o->error);
    free(o->out);
    free(o->err);
    free(o->err_text);
    json_free(o->ret);
    free(o);
}

char *run__mask(const struct rsuite *s, const char *text)
{
    if (!text)
        return NULL;
    char *cur = strdup(text);
    for (int i = 0; cur && i < s->npasswords; i++) {
        struct sbuf b = { 0 };
        sb_add_masked(&b, cur, s->passwords[i]);
        free(cur);
        cur = sb_take(&b);
    }
    return cur;
}

/* ---- ${variables} ------------------------------------------------------------ */

struct vctx {
    struct rsuite *s;
    char buf[PATH_MAX + 64];
};

static const char *var(const char *name, void *data)
{
    struct vctx *v = data;
    struct rsuite *s = v->s;
    if (!strcmp(name, "suite"))
        return s->def->name;
    if (!strcmp(name, "case"))
        return run__case_name(s);
    if (!strcmp(name, "run_dir"))
        return s->st.run_dir;
    if (!strcmp(name, "tmp"))
        return s->tmp_dir;
    if (!strcmp(name, "suite_dir"))
        return s->def->dir;
    if (!strcmp(name, "status_dir"))
        return s->r->st.status_dir;
    if (strncmp(name, "guest.", 6))
        return NULL;
    const char *dot = strrchr(name, '.');
    char gname[CFG_NAME_MAX + 16];
    snprintf(gname, sizeof(gname), "%.*s", (int)(dot - name - 6), name + 6);
    int gi = suite_guest_index(s->def, gname);
    if (gi < 0)
        return NULL;
    const json_t *sn = s->st.guests[gi].snap;
    const char *f = dot + 1, *inst = s->st.guests[gi].instance;
    if (!strcmp(f, "name"))
        return inst;
    if (!strcmp(f, "qmp") || !strcmp(f, "serial")) {
        snprintf(v->buf, sizeof(v->buf), "%s/%s-%s", s->st.run_dir, inst,
                 *f == 'q' ? "qmp-inspect.sock" : "serial.log");
        return v->buf;
    }
    const json_t *val = !strcmp(f, "mac") ? json_at(json_get(sn, "macs"), 0) : json_get(sn, f);
    if (!val || json_typeof(val) == JSON_NULL)
        return "";
    if (json_typeof(val) == JSON_STRING)
        return json_str(val);
    long long n = 0;
    json_as_int(val, &n);
    snprintf(v->buf, sizeof(v->buf), "%lld", n);
    return v->buf;
}

char *run__expand(struct rsuite *s, const char *text, char *err, size_t errlen)
{
    struct vctx v = { .s = s };
    return suite_expand(text ? text : "", var, &v, err, errlen);
}

/* ---- jobs ---------------------------------------------------------------------- */

static void job_unref(struct sjob *j)
{
    if (--j->handles > 0)
        return;
    run__step_out_free(j->o);
    free(j);
}

static void job_closed(uv_handle_t *h) { job_unref(h->data); }

static void job_proc_closed(proc_t *p, void *data)
{
    (void)p;
    job_unref(data);
}

static void unlist(struct sjob *j)
{
    if (!j->listed)
        return;
    for (struct sjob **p = &j->s->jobs; *p; p = &(*p)->next) {
        if (*p == j) {
            *p = j->next;
            break;
        }
    }
    j->listed = 0;
}

/* Hand the outcome over (once) and let the handles go. */
static void job_end(struct sjob *j)
{
    if (j->reported)
        return;
    j->reported = 1;
    unlist(j);
    step_out *o = j->o;
    j->o = NULL;
    o->elapsed_ms = time_mono_ms() - j->t0;
    j->done(j->s, j->token, o);
    uv_close((uv_handle_t *)&j->timer, job_closed);
    if (j->proc)
        proc_close(j->proc, job_proc_closed, j);
}

static void on_soon(uv_timer_t *t)
{
    struct sjob *j = t->data;
    if (j->closing)
        guest_close(j->closing, NULL, NULL);
    j->closing = NULL;
    job_end(j);
}

/* Report an error from the next loop turn (never inside run__step_start). */
static void job_fail(struct sjob *j, int status, int channel, const char *msg)
{
    j->o->status = status < 0 ? status : -EINVAL;
    j->o->channel = channel;
    free(j->o->error);
    j->o->error = strdup(msg);
    uv_timer_start(&j->timer, on_soon, 0, 0);
}

static int is_channel(int status)
{
    return status == -ENOTCONN || status == -ECONNRESET || status == -ECONNREFUSED || status == -EPIPE ||
           status == -ECANCELED || status == -ESHUTDOWN || status == -ECONNABORTED;
}

/* ---- host commands ------------------------------------------------------------- */

static void host_exit(proc_t *p, int code, int sig, void *data)
{
    struct sjob *j = data;
    step_out *o = j->o;
    o->exit_code = sig ? -1 : code;
    if (sig)
        snprintf(o->signal, sizeof(o->signal), "%s", sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
    o->timed_out = proc_timed_out(p);
    o->truncated = proc_truncated(p);
    o->out = proc_take_output(p, 1);
    o->err = proc_take_output(p, 2);
    job_end(j);
}

static void host_start(struct sjob *j, const char *cmd, int timeout_ms)
{
    struct rsuite *s = j->s;
    char *args[] = { "/bin/sh", "-c", (char *)cmd, NULL };
    size_t ne = 0;
    while (environ[ne])
        ne++;
    char **env = calloc(ne + 5, sizeof(char *));
    if (!env) {
        job_fail(j, -ENOMEM, 0, "out of memory");
        return;
    }
    memcpy(env, environ, ne * sizeof(char *));
    char *mine[4] = { str_printf("QF_SUITE=%s", s->def->name),
                      str_printf("QF_CASE=%s", run__case_name(s)),
                      str_printf("QF_RUN_DIR=%s", s->st.run_dir), str_printf("QF_TMP=%s", s->tmp_dir) };
    for (int i = 0; i < 4; i++)
        if (mine[i])
            env[ne++] = mine[i];
    /* Its own process group, so a timeout kills what the shell started
     * too; background jobs it leaves behind are its business. */
    proc_opts po = { .argv = args, .env = env, .cwd = s->def->dir, .capture_max = STEP_OUTPUT_MAX,
                     .timeout_ms = (uint64_t)timeout_ms, .keep_group = 1 };
    char perr[512];
    int rc = proc_start(s->r->loop, &po, host_exit, j, &j->proc, perr, sizeof(perr));
    for (int i = 0; i < 4; i++)
        free(mine[i]);
    free(env);
    if (rc < 0) {
        char msg[600];
        snprintf(msg, sizeof(msg), "cannot start /bin/sh: %s", perr);
        job_fail(j, rc, 0, msg);
        return;
    }
    j->handles++;
    j->next = s->jobs;
    s->jobs = j;
    j->listed = 1;
}

void run__step_cancel_all(struct rsuite *s)
{
    for (struct sjob *j = s->jobs, *next; j; j = next) {
        next = j->next;
        if (j->proc) {
            proc_kill(j->proc, SIGKILL); /* its exit ends the job (-ESRCH: it is draining) */
        } else {
            uv_timer_stop(&j->timer); /* a sleep: would keep the loop alive */
            job_end(j);
        }
    }
}

/* ---- guests --------------------------------------------------------------------- */

/* Options of an SSH session into guest gi; kh holds its known_hosts path. */
static int ssh_opts(struct rsuite *s, int gi, guest_opts *o, char *kh, size_t khlen, char *err,
                    size_t errlen)
{
    struct rguest *rg = &s->g[gi];
    const char *name = s->def->guests[gi].name;
    *o = (guest_opts){ .name = name, .transport = GUEST_SSH, .max_output = STEP_OUTPUT_MAX };
    if (fguest_ssh_target(rg->g, &o->ssh.host, &o->ssh.port, &o->ssh.user, &o->ssh.password) < 0) {
        snprintf(err, errlen, "%s: no SSH endpoint (guest %s)", name, fleet_state_name(fguest_state(rg->g)));
        return -ENOTCONN;
    }
    /* Per instance: a later instance may get the same port and another key. */
    snprintf(kh, khlen, "%s/%s-known_hosts", s->st.run_dir, fguest_name(rg->g));
    o->ssh.known_hosts = kh;
    o->ssh.connect_timeout_ms = 30000;
    return 0;
}

static guest_session_t *session(struct rsuite *s, int gi, enum suite_transport t, char *err,
                                size_t errlen)
{
    struct rguest *rg = &s->g[gi];
    guest_session_t **slot = t == ST_SSH ? &rg->ssh : &rg->ag;
    if (*slot)
        return *slot;
    const char *name = s->def->guests[gi].name;
    guest_opts o = { .name = name, .transport = GUEST_AGENT, .max_output = STEP_OUTPUT_MAX };
    char kh[PATH_MAX + 128];
    if (t == ST_SSH) {
        if (ssh_opts(s, gi, &o, kh, sizeof(kh), err, errlen) < 0)
            return NULL;
    } else if (!(o.agent.client = fguest_agent(rg->g))) {
        snprintf(err, errlen, "%s: the guest agent is not connected (guest %s)", name,
                 fleet_state_name(fguest_state(rg->g)));
        return NULL;
    }
    int rc = guest_open(s->r->loop, &o, NULL, NULL, slot);
    if (rc < 0) {
        snprintf(err, errlen, "%s: cannot open a session: %s", name, strerror(-rc));
        return NULL;
    }
    return *slot;
}

static void on_guest_result(guest_session_t *gs, const guest_result *r, void *data)
{
    struct sjob *j = data;
    (void)gs;
    step_out *o = j->o;
    o->timed_out = r->timed_out;
    o->exit_code = r->exit_code;
    snprintf(o->signal, sizeof(o->signal), "%s", r->signal ? r->signal : "");
    o->out = strdup(r->out ? r->out : "");
    o->err = strdup(r->errout ? r->errout : "");
    o->truncated = r->truncated;
    if (r->status < 0 && !r->timed_out) {
        o->status = r->status;
        o->channel = is_channel(r->status);
        o->error = strdup(r->error ? r->error : strerror(-r->status));
    } else if (r->status < 0) {
        o->error = strdup(r->error ? r->error : "timed out");
    }
    job_end(j);
}

static void take_reply(struct sjob *j, const json_t *ret, const conn_err *err)
{
    step_out *o = j->o;
    if (!err) {
        o->ret = ret ? json_copy(ret) : json_null();
    } else if (err->code == -EREMOTEIO) {
        o->err_text = str_printf("%s: %s", err->cls ? err->cls : "Error", err->desc ? err->desc : "");
    } else if (err->code == -ETIMEDOUT) {
        o->timed_out = 1;
        o->error = strdup(err->desc ? err->desc : "timed out");
    } else {
        o->status = err->code < 0 ? err->code : -EIO;
        o->channel = 1;
        o->error = strdup(err->desc ? err->desc : "connection lost");
    }
    job_end(j);
}

static void on_qmp_reply(qmp_t *q, const qmp_reply *r, void *data)
{
    (void)q;
    take_reply(data, r->ret, r->err);
}

static void on_agent_reply(agent_t *a, const json_t *ret, const conn_err *err, void *data)
{
    (void)a;
    take_reply(data, ret, err);
}

/* ---- interactive sessions --------------------------------------------------------- */

#define DRAIN_MS 1000        /* a close takes the output already there this long */
#define REASON_TAIL 300      /* bytes of session output in a failure's one-line reason */

const char *run__case_name(const struct rsuite *s)
{
    return !s->in_tda && s->cur < s->st.ncases ? s->st.cases[s->cur].name : "";
}

st_case *run__plan_case(struct rsuite *s)
{
    return s->in_tda ? &s->st.tear_down_all : &s->st.cases[s->cur];
}

static struct isession *isess_find(struct rsuite *s, const char *name)
{
    for (int i = 0; i < SUITE_SESSIONS_MAX; i++)
        if (s->isess[i].name && !strcmp(s->isess[i].name, name))
            return &s->isess[i];
    return NULL;
}

int run__sessions_close(struct rsuite *s, guest_close_cb cb, void *data)
{
    int n = 0;
    for (int i = 0; i < SUITE_SESSIONS_MAX; i++) {
        struct isession *is = &s->isess[i];
        if (is->gs) {
            guest_close(is->gs, cb, data);
            n++;
        }
        *is = (struct isession){ 0 };
    }
    return n;
}

/* The last REASON_TAIL bytes of text on one line, control bytes escaped. */
static char *tail_line(const char *text, size_t n)
{
    size_t from = n > REASON_TAIL ? n - REASON_TAIL : 0;
    char *t = str_escape_text(text + from, n - from, 1);
    char *r = t ? str_printf("%s'%s'", from ? "..." : "", t) : NULL;
    free(t);
    return r;
}

static void on_session_result(guest_session_t *gs, const guest_result *r, void *data)
{
    struct sjob *j = data;
    step_out *o = j->o;
    (void)gs;
    o->since_spawn_ms = time_mono_ms() - j->spawn_t0;
    struct sbuf b = { 0 };
    sb_addn(&b, r->before, r->before_len);
    sb_addn(&b, r->out, r->out_len);
    o->out = sb_take(&b);
    if (r->status < 0 && !j->closing) {
        const char *name = j->st->session;
        char *tail = tail_line(r->before, r->before_len);
        o->status = r->status;
        o->timed_out = r->timed_out;
        /* The program ending or a slow match is the case's failure; a lost
         * connection may be its guest dying (judged after the grace). */
        o->channel = r->status != -EPIPE && !r->timed_out && is_channel(r->status);
        if (r->timed_out && j->st->verb == SV_EXPECT)
            o->error = str_printf("session %s: no match for /%s/ within %.1fs; last output: %s", name,
                                  j->st->text, (j->st->timeout_ms > 0 ? j->st->timeout_ms
                                  : j->s->def->timeout_ms) / 1000.0, tail ? tail : "");
        else if (r->status == -EPIPE)
            o->error = str_printf("session %s: its shell has exited; last output: %s", name, tail ? tail : "");
        else
            o->error = str_printf("session %s: %s", name, r->error ? r->error : strerror(-r->status));
        free(tail);
    }
    if (j->closing)
        uv_timer_start(&j->timer, on_soon, 0, 0); /* closes it from the loop, then reports */
    else
        job_end(j);
}

static void spawn_start(struct sjob *j, const struct suite_step *st, int gi, const char *cmd, int timeout)
{
    struct rsuite *s = j->s;
    char err[1024], kh[PATH_MAX + 128];
    struct isession *is = isess_find(s, st->session);
    if (is) {
        snprintf(err, sizeof(err), "session %s is already open (close it first)", st->session);
        job_fail(j, -EEXIST, 0, err);
        return;
    }
    for (int i = 0; i < SUITE_SESSIONS_MAX && !is; i++)
        is = s->isess[i].name ? NULL : &s->isess[i];
    if (!is) {
        snprintf(err, sizeof(err), "more than %d sessions open", SUITE_SESSIONS_MAX);
        job_fail(j, -EMFILE, 0, err);
        return;
    }
    guest_opts o;
    if (ssh_opts(s, gi, &o, kh, sizeof(kh), err, sizeof(err)) < 0) {
        job_fail(j, -ENOTCONN, 1, err);
        return;
    }
    o.default_timeout_ms = timeout;
    guest_session_t *gs;
    int rc = guest_open(s->r->loop, &o, NULL, NULL, &gs);
    if (rc < 0) {
        snprintf(err, sizeof(err), "%s: cannot open a session: %s", st->guest, strerror(-rc));
        job_fail(j, rc, 1, err);
        return;
    }
    *is = (struct isession){ st->session, gi, gs, time_mono_ms() };
    j->spawn_t0 = is->t0;
    /* Typed into a fresh login shell on a pty, as a person would. */
    char *line = str_printf("%s\n", cmd);
    rc = line ? guest_send(gs, line, strlen(line), on_session_result, j) : -ENOMEM;
    free(line);
    if (rc < 0) {
        snprintf(err, sizeof(err), "session %s: %s", st->session, strerror(-rc));
        job_fail(j, rc, 0, err);
    }
}

static void interactive_start(struct sjob *j, const struct suite_step *st, int gi, const char *text,
                              int timeout)
{
    struct rsuite *s = j->s;
    char err[1024];
    if (st->verb == SV_SPAWN) {
        spawn_start(j, st, gi, text, timeout);
        return;
    }
    struct isession *is = isess_find(s, st->session);
    if (!is && st->verb == SV_CLOSE) {
        uv_timer_start(&j->timer, on_soon, 0, 0); /* nothing to close: since_spawn_ms stays -1 */
        return;
    }
    if (!is || !is->gs) {
        snprintf(err, sizeof(err), "session %s is not open (its spawn did not run or failed)", st->session);
        job_fail(j, -ENOENT, 0, err);
        return;
    }
    j->spawn_t0 = is->t0;
    int rc;
    if (st->verb == SV_SEND) {
        char *line = str_printf("%s\n", text);
        rc = line ? guest_send(is->gs, line, strlen(line), on_session_result, j) : -ENOMEM;
        free(line);
    } else if (st->verb == SV_EXPECT) {
        rc = guest_expect(is->gs, text, timeout, on_session_result, j);
    } else {
        /* Out of the table now; what it printed since the last expect goes
         * to the log, then it is closed from the loop (on_soon). */
        j->closing = is->gs;
        *is = (struct isession){ 0 };
        rc = guest_expect(j->closing, "(.|\n)*", DRAIN_MS, on_session_result, j);
    }
    if (rc < 0) {
        snprintf(err, sizeof(err), "session %s: %s", st->session, rc == -EINVAL && st->verb == SV_EXPECT
                 ? "bad regular expression" : strerror(-rc));
        job_fail(j, rc, 0, err);
    }
}

/* migrate SRC -> DST: the one place where the fleet's live migration is
 * wired in. The job holds one more reference until the fleet's callback
 * (which always comes: fleet_free tells a waiting one), so a step abandoned
 * by an infrastructure error still gets it. When the migration completes
 * the fleet swaps the instances' names: SRC's logical guest then is the
 * fguest carrying its instance name (the destination's QEMU), and DST's the
 * old one, which the fleet stops. */

static void migrated_swap(struct sjob *j)
{
    struct rsuite *s = j->s;
    struct rguest *src = &s->g[j->mig_src], *dst = &s->g[j->mig_dst];
    if (src->g != j->mig_g[0] || dst->g != j->mig_g[1])
        return; /* another generation by now */
    fguest_t *now = fleet_find(s->f, s->st.guests[j->mig_src].instance);
    fguest_t *old = fleet_find(s->f, s->st.guests[j->mig_dst].instance);
    if (!now || !old)
        return;
    src->g = now;
    dst->g = old;
    int gi[2] = { j->mig_src, j->mig_dst };
    for (int k = 0; k < 2; k++) {
        st_guest *sg = &s->st.guests[gi[k]];
        json_free(sg->snap);
        sg->snap = fguest_json(s->g[gi[k]].g);
    }
}

static void on_migrated(fleet_t *f, const fleet_migration *m, void *data)
{
    struct sjob *j = data;
    struct rsuite *s = j->s;
    (void)f;
    if (m->status == 0)
        migrated_swap(j);
    if (s->g[j->mig_src].g == j->mig_g[0] || s->g[j->mig_src].g == j->mig_g[1])
        s->g[j->mig_src].migrating = s->g[j->mig_dst].migrating = 0;
    json_t *e = m->record ? json_copy(m->record) : json_object();
    json_set_str(e, "suite", s->st.name);
    json_set_str(e, "case", run__case_name(s));
    json_set_str(e, "guest", j->st->guest);
    json_set_str(e, "into", j->st->dest);
    if (s->r->out)
        status_event(s->r->out, "migration", e);
    else
        json_free(e);
    if (j->o) {
        j->o->status = m->status;
        if (m->status < 0)
            j->o->error = run__mask(s, m->error ? m->error : strerror(-m->status));
        j->o->ret = m->record ? json_copy(m->record) : NULL; /* the report shows it */
        job_end(j);
    }
    job_unref(j);
}

static void migrate_start(struct sjob *j, const struct suite_step *st, struct rguest *src,
                          struct rguest *dst, int timeout)
{
    struct rsuite *s = j->s;
    char err[512];
    j->mig_src = (int)(src - s->g);
    j->mig_dst = (int)(dst - s->g);
    j->mig_g[0] = src->g;
    j->mig_g[1] = dst->g;
    /* The source's sessions go to a QEMU that is about to stop; later
     * steps open new ones to the guest where it then runs. */
    guest_session_t **ss[2] = { &src->ssh, &src->ag };
    for (int k = 0; k < 2; k++) {
        if (*ss[k])
            guest_close(*ss[k], NULL, NULL);
        *ss[k] = NULL;
    }
    /* Out of time, it is cancelled (the source runs on) before the step
     * fails: a hand-over after the step ended would leave the table stale. */
    fleet_migrate_opts mo = { .timeout_ms = timeout, .cancel_on_timeout = 1,
                              .downtime_limit_ms = st->downtime_ms, .max_bandwidth = st->bandwidth };
    j->handles++;
    int rc = src->g && dst->g ? fleet_migrate(s->f, src->g, dst->g, &mo, on_migrated, j, err, sizeof(err))
                              : (snprintf(err, sizeof(err), "no guest"), -ENOENT);
    if (rc < 0) {
        j->handles--;
        char msg[700];
        snprintf(msg, sizeof(msg), "%s -> %s: %s", st->guest, st->dest, err);
        job_fail(j, rc, 0, msg);
        return;
    }
    src->migrating = MIG_SRC;
    dst->migrating = MIG_DST;
}

/* A host path of a copy: relative ones are relative to the suite file. */
static char *host_path(struct rsuite *s, const char *p)
{
    return p[0] == '/' ? strdup(p) : str_printf("%s/%s", s->def->dir, p);
}

/* A QMP or agent command: a is its name, b its arguments (or NULL). */
static void qmp_start(struct sjob *j, const struct suite_step *st, struct rguest *rg, const char *a,
                      const char *b, int timeout)
{
    char err[1024];
    json_t *args = b ? json_parse(b, strlen(b), err, sizeof(err)) : NULL;
    if (b && !args) {
        job_fail(j, -EINVAL, 0, err);
        return;
    }
    void *cl = st->verb == SV_QMP ? (void *)fguest_qmp(rg->g) : (void *)fguest_agent(rg->g);
    if (!cl) {
        json_free(args);
        snprintf(err, sizeof(err), "%s: %s is not connected (guest %s)", st->guest,
                 st->verb == SV_QMP ? "QMP" : "the guest agent", fleet_state_name(fguest_state(rg->g)));
        job_fail(j, -ENOTCONN, 1, err);
        return;
    }
    int rc = st->verb == SV_QMP ? qmp_execute(cl, a, args, timeout, on_qmp_reply, j)
                                : agent_execute(cl, a, args, timeout, on_agent_reply, j);
    if (rc < 0) {
        snprintf(err, sizeof(err), "%s: %s: %s", st->guest, a, strerror(-rc));
        job_fail(j, rc, 1, err);
    }
}

/* run, copy_to, copy_from over the guest's session of the step's transport. */
static void guest_start(struct sjob *j, const struct suite_step *st, int gi, const char *a, const char *b,
                        int timeout)
{
    struct rsuite *s = j->s;
    char err[1024];
    enum suite_transport t = suite_step_transport(s->def, st, s->def->guests[gi].has_login);
    guest_session_t *gs = session(s, gi, t, err, sizeof(err));
    if (!gs) {
        job_fail(j, -ENOTCONN, 1, err);
        return;
    }
    int rc;
    char *hp = st->verb == SV_COPY_TO ? host_path(s, a) : st->verb == SV_COPY_FROM ? host_path(s, b) : NULL;
    if (st->verb == SV_RUN)
        rc = guest_exec(gs, a, timeout, on_guest_result, j);
    else if (st->verb == SV_COPY_TO)
        rc = hp ? guest_copy_in(gs, hp, b, timeout, on_guest_result, j) : -ENOMEM;
    else
        rc = hp ? guest_copy_out(gs, a, hp, timeout, on_guest_result, j) : -ENOMEM;
    free(hp);
    if (rc < 0) {
        snprintf(err, sizeof(err), "%s: %s", st->guest, strerror(-rc));
        job_fail(j, rc, is_channel(rc), err);
    }
}

int run__step_start(struct rsuite *s, const struct suite_step *st, unsigned token, step_done_fn done)
{
    struct sjob *j = calloc(1, sizeof(*j));
    step_out *o = calloc(1, sizeof(*o));
    if (!j || !o) {
        free(j);
        free(o);
        return -ENOMEM;
    }
    j->s = s;
    j->token = token;
    j->done = done;
    j->o = o;
    j->st = st;
    o->exit_code = -1;
    o->since_spawn_ms = -1;
    j->t0 = time_mono_ms();
    uv_timer_init(s->r->loop, &j->timer);
    j->timer.data = j;
    j->handles = 1;
    int timeout = st->timeout_ms > 0 ? st->timeout_ms : s->def->timeout_ms;
    char err[1024];
    char *a = NULL, *b = NULL;
    if (!(a = run__expand(s, st->text, err, sizeof(err))) ||
        (st->arg && !(b = run__expand(s, st->arg, err, sizeof(err))))) {
        job_fail(j, -EINVAL, 0, err);
        free(a);
        return 0;
    }
    int gi = st->guest ? suite_guest_index(s->def, st->guest) : -1;
    struct rguest *rg = gi >= 0 ? &s->g[gi] : NULL;
    switch (st->verb) {
    case SV_SPAWN:
    case SV_SEND:
    case SV_EXPECT:
    case SV_CLOSE:
        interactive_start(j, st, gi, a, timeout);
        break;
    case SV_MIGRATE:
        migrate_start(j, st, rg, &s->g[suite_guest_index(s->def, st->dest)], timeout);
        break;
    case SV_SLEEP:
        j->next = s->jobs;
        s->jobs = j;
        j->listed = 1;
        uv_timer_start(&j->timer, on_soon, (uint64_t)st->timeout_ms, 0);
        break;
    case SV_HOST:
        host_start(j, a, timeout);
        break;
    case SV_QMP:
    case SV_QGA:
        qmp_start(j, st, rg, a, b, timeout);
        break;
    default: /* run, copy_to, copy_from */
        guest_start(j, st, gi, a, b, timeout);
    }
    free(a);
    free(b);
    return 0;
}
