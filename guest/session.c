/* session.c - the transport-neutral half of guest sessions: argument checks,
 * job objects, result delivery, close, and the small text helpers every
 * transport uses for its errors. */
#include "guest/session.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "guest/agentx.h"
#include "guest/internal.h"
#include "guest/ssh.h"

#define DEFAULT_TIMEOUT_MS 60000
#define DEFAULT_MAX_OUTPUT (16u << 20)

/* ------------------------------------------------------------------ gbuf */

int guest__buf_add(gbuf *b, const void *d, size_t n, size_t cap, int keep_head)
{
    if (keep_head && b->len + n > cap) {
        b->truncated = 1;
        n = cap > b->len ? cap - b->len : 0;
    }
    if (!keep_head && n > cap) { /* only the last cap bytes can survive */
        d = (const char *)d + (n - cap);
        n = cap;
        b->truncated = 1;
    }
    if (!keep_head && b->len + n > cap) {
        guest__buf_consume(b, b->len + n - cap);
        b->truncated = 1;
    }
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n + 1)
            nc *= 2;
        char *p = realloc(b->p, nc);
        if (!p)
            return -ENOMEM;
        b->p = p;
        b->cap = nc;
    }
    if (n)
        memcpy(b->p + b->len, d, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

void guest__buf_consume(gbuf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->p, b->p + n, b->len - n);
        b->len -= n;
    }
    if (b->p)
        b->p[b->len] = '\0';
}

void guest__buf_free(gbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* --------------------------------------------------------------- helpers */

double guest__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void guest__fail(guest_job *j, const char *guest, int status, const char *step,
                 const char *fmt, ...)
{
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    free(j->error);
    j->status = status;
    /* If even this allocation fails, the result still carries the status;
     * guest__complete substitutes a generic text. */
    size_t n = strlen(guest) + strlen(step) + strlen(what) + 8;
    j->error = malloc(n);
    if (j->error)
        snprintf(j->error, n, "%s: %s: %s", guest, step, what);
}

void guest__tail(const char *d, size_t n, size_t max, char *out, size_t outlen)
{
    size_t start = n > max ? n - max : 0, o = 0;
    if (outlen < 8) {
        if (outlen)
            out[0] = '\0';
        return;
    }
    if (start)
        o += (size_t)snprintf(out + o, outlen - o, "...");
    out[o++] = '\'';
    for (size_t i = start; i < n && o + 6 < outlen; i++) {
        unsigned char c = (unsigned char)d[i];
        if (c == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else if (c == '\r') {
            out[o++] = '\\';
            out[o++] = 'r';
        } else if (c == '\'' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '\'';
    out[o] = '\0';
}

/* Copy s into out, at most max characters, newlines shown as spaces. */
static void preview(const char *s, size_t max, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; s[i] && o + 4 < outlen; i++) {
        if (i == max) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        out[o++] = (s[i] == '\n' || s[i] == '\r' || s[i] == '\t') ? ' ' : s[i];
    }
    out[o] = '\0';
}

void guest__step(const guest_job *j, const char *transport, char *out, size_t outlen)
{
    char a[96];
    switch (j->kind) {
    case JOB_OPEN:
        snprintf(out, outlen, "%s connect", transport);
        break;
    case JOB_EXEC:
        preview(j->arg, 72, a, sizeof(a));
        snprintf(out, outlen, "%s exec `%s`", transport, a);
        break;
    case JOB_SEND:
        snprintf(out, outlen, "%s shell send (%zu bytes)", transport, j->arg_len);
        break;
    case JOB_EXPECT:
        preview(j->arg, 72, a, sizeof(a));
        snprintf(out, outlen, "%s shell expect /%s/", transport, a);
        break;
    case JOB_COPY_IN:
        snprintf(out, outlen, "%s copy in %.200s -> %.200s", transport, j->path, j->arg);
        break;
    case JOB_COPY_OUT:
        snprintf(out, outlen, "%s copy out %.200s -> %.200s", transport, j->arg, j->path);
        break;
    }
}

char *guest__shquote(const char *s)
{
    size_t n = 3;
    for (const char *p = s; *p; p++)
        n += *p == '\'' ? 4 : 1;
    char *q = malloc(n), *o = q;
    if (!q)
        return NULL;
    *o++ = '\'';
    for (const char *p = s; *p; p++) {
        if (*p == '\'') {
            memcpy(o, "'\\''", 4); /* close, escaped quote, reopen */
            o += 4;
        } else {
            *o++ = *p;
        }
    }
    *o++ = '\'';
    *o = '\0';
    return q;
}

/* ------------------------------------------------------------------ jobs */

static void job_free(guest_job *j)
{
    if (j->kind == JOB_EXPECT)
        regfree(&j->re);
    free(j->arg);
    free(j->path);
    free(j->error);
    guest__buf_free(&j->out);
    guest__buf_free(&j->errout);
    guest__buf_free(&j->before);
    free(j);
}

static const char *text(const gbuf *b, size_t *len)
{
    *len = b->len;
    return b->p ? b->p : "";
}

void guest__complete(guest_session_t *s, guest_job *j)
{
    if (j->kind == JOB_OPEN)
        s->up = j->status == 0;
    else if (j->status == -ENOTCONN)
        s->up = 0;
    if (j->cb) {
        guest_result r = {
            .status = j->status,
            .error = j->status ? (j->error ? j->error : "guest session error (no memory for details)")
                               : NULL,
            .exit_code = j->exit_code,
            .signal = j->signal,
            .timed_out = j->timed_out,
            .truncated = j->out.truncated || j->errout.truncated,
            .elapsed_ms = j->elapsed_ms,
        };
        r.out = text(&j->out, &r.out_len);
        r.errout = text(&j->errout, &r.errout_len);
        r.before = text(&j->before, &r.before_len);
        j->cb(s, &r, j->data);
    }
    job_free(j);
}

void guest__closed(guest_session_t *s)
{
    if (s->close_cb)
        s->close_cb(s, s->close_data);
    free(s->name);
    free(s);
}

static guest_job *job_new(job_kind kind, guest_cb cb, void *data)
{
    guest_job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->kind = kind;
    j->cb = cb;
    j->data = data;
    j->exit_code = -1;
    return j;
}

static int submit(guest_session_t *s, guest_job *j, int timeout_ms)
{
    j->timeout_ms = timeout_ms > 0 ? timeout_ms : s->default_timeout_ms;
    s->ops->submit(s, j);
    return 0;
}

/* ------------------------------------------------------------------- API */

int guest_open(uv_loop_t *loop, const guest_opts *o, guest_cb cb, void *data,
               guest_session_t **out)
{
    if (!loop || !o || !out || !o->name || !*o->name)
        return -EINVAL;
    if (o->transport != GUEST_SSH && o->transport != GUEST_AGENT)
        return -EINVAL;
    guest_session_t *s = calloc(1, sizeof(*s));
    guest_job *j = job_new(JOB_OPEN, cb, data);
    if (!s || !j || !(s->name = strdup(o->name))) {
        free(j);
        if (s)
            free(s->name);
        free(s);
        return -ENOMEM;
    }
    s->loop = loop;
    s->kind = o->transport;
    s->default_timeout_ms = o->default_timeout_ms > 0 ? o->default_timeout_ms : DEFAULT_TIMEOUT_MS;
    s->max_output = o->max_output ? o->max_output : DEFAULT_MAX_OUTPUT;
    int rc = o->transport == GUEST_SSH ? guest__ssh_init(s, o) : guest__agent_init(s, o);
    if (rc < 0) {
        free(j);
        free(s->name);
        free(s);
        return rc;
    }
    *out = s;
    return submit(s, j, 0);
}

static int check(guest_session_t *s)
{
    if (!s)
        return -EINVAL;
    return s->closing ? -ESHUTDOWN : 0;
}

int guest_exec(guest_session_t *s, const char *cmd, int timeout_ms, guest_cb cb, void *data)
{
    int rc = check(s);
    if (rc < 0 || !cmd)
        return rc < 0 ? rc : -EINVAL;
    guest_job *j = job_new(JOB_EXEC, cb, data);
    if (!j || !(j->arg = strdup(cmd))) {
        free(j);
        return -ENOMEM;
    }
    j->arg_len = strlen(cmd);
    return submit(s, j, timeout_ms);
}

int guest_send(guest_session_t *s, const char *text_, size_t len, guest_cb cb, void *data)
{
    int rc = check(s);
    if (rc < 0 || !text_)
        return rc < 0 ? rc : -EINVAL;
    if (s->kind != GUEST_SSH)
        return -ENOTSUP;
    guest_job *j = job_new(JOB_SEND, cb, data);
    if (!j || !(j->arg = malloc(len + 1))) {
        free(j);
        return -ENOMEM;
    }
    memcpy(j->arg, text_, len);
    j->arg[len] = '\0';
    j->arg_len = len;
    return submit(s, j, 0);
}

int guest_expect(guest_session_t *s, const char *regex, int timeout_ms, guest_cb cb, void *data)
{
    int rc = check(s);
    if (rc < 0 || !regex)
        return rc < 0 ? rc : -EINVAL;
    if (s->kind != GUEST_SSH)
        return -ENOTSUP;
    guest_job *j = job_new(JOB_EXPECT, cb, data);
    if (!j || !(j->arg = strdup(regex))) {
        free(j);
        return -ENOMEM;
    }
    /* Compiled here so a bad pattern fails at once, in the caller's step,
     * rather than asynchronously on the worker. */
    if (regcomp(&j->re, regex, REG_EXTENDED | REG_NEWLINE) != 0) {
        free(j->arg);
        free(j);
        return -EINVAL;
    }
    j->arg_len = strlen(regex);
    return submit(s, j, timeout_ms);
}

static int copy(guest_session_t *s, job_kind kind, const char *host_path, const char *guest_path,
                int timeout_ms, guest_cb cb, void *data)
{
    int rc = check(s);
    if (rc < 0 || !host_path || !guest_path || !*host_path || !*guest_path)
        return rc < 0 ? rc : -EINVAL;
    guest_job *j = job_new(kind, cb, data);
    if (!j || !(j->arg = strdup(guest_path)) || !(j->path = strdup(host_path))) {
        if (j) {
            free(j->arg);
            free(j);
        }
        return -ENOMEM;
    }
    j->arg_len = strlen(guest_path);
    return submit(s, j, timeout_ms);
}

int guest_copy_in(guest_session_t *s, const char *host_path, const char *guest_path,
                  int timeout_ms, guest_cb cb, void *data)
{
    return copy(s, JOB_COPY_IN, host_path, guest_path, timeout_ms, cb, data);
}

int guest_copy_out(guest_session_t *s, const char *guest_path, const char *host_path,
                   int timeout_ms, guest_cb cb, void *data)
{
    return copy(s, JOB_COPY_OUT, host_path, guest_path, timeout_ms, cb, data);
}

void guest_close(guest_session_t *s, guest_close_cb cb, void *data)
{
    if (!s || s->closing)
        return;
    s->closing = 1;
    s->up = 0;
    s->close_cb = cb;
    s->close_data = data;
    s->ops->close(s);
}

const char *guest_name(const guest_session_t *s)
{
    return s->name;
}

guest_transport guest_kind(const guest_session_t *s)
{
    return s->kind;
}

int guest_is_up(const guest_session_t *s)
{
    return s->up;
}
