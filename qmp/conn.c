/* conn.c - newline-delimited JSON over a uv_pipe_t (conn.h): connecting,
 * input and closing; output is in conn_out.c. */
#include "qmp/conn_int.h"
#include "qmp/test_hooks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

/* Read in chunks of this much; the buffer grows as lines need. */
#define READ_CHUNK (64u * 1024)
#define RETRY_FIRST_MS 10
#define RETRY_MAX_MS 200

static void set_err(conn_t *c, int code, const char *cls, const char *desc)
{
    if (c->label[0])
        snprintf(c->errbuf, sizeof(c->errbuf), "%s: %s", c->label, desc);
    else
        snprintf(c->errbuf, sizeof(c->errbuf), "%s", desc);
    c->err.code = code;
    c->err.cls = cls;
    c->err.desc = c->errbuf;
}

static int alive(const conn_t *c)
{
    return c->state == C_OPEN && !c->closing;
}

static int held(const conn_t *c)
{
    return c->paused || c->out_blocked;
}

int conn_new(uv_loop_t *loop, conn_msg_cb on_msg, conn_dead_cb on_dead, void *data, conn_t **out)
{
    if (!loop || !out)
        return -EINVAL;
    conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    int rc = uv_timer_init(loop, &c->timer);
    if (rc < 0) {
        free(c);
        return rc;
    }
    c->timer.data = c;
    c->loop = loop;
    c->on_msg = on_msg;
    c->on_dead = on_dead;
    c->data = data;
    c->max_input = CONN_DEFAULT_MAX_INPUT;
    c->state = C_IDLE;
    *out = c;
    return 0;
}

/* ---- closing ---- */

static void maybe_free(conn_t *c)
{
    if (!c->closing || c->pipe_inited || !c->timer_closed)
        return;
    conn_close_cb cb = c->close_cb;
    void *data = c->close_data;
    if (cb)
        cb(c, data);
    free(c->rbuf);
    free(c);
}

static void try_connect(conn_t *c);
static void connect_done(conn_t *c, int code, const char *desc);

static void on_retry_timer(uv_timer_t *t)
{
    try_connect(t->data);
}

static void on_pipe_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    c->pipe_inited = 0;
    c->pipe_closing = 0;
    if (c->closing) {
        maybe_free(c);
        return;
    }
    if (c->state != C_WAIT)
        return;
    /* A refused or missing socket: wait, then try again, never past the
     * deadline. */
    uint64_t now = uv_now(c->loop);
    uint64_t delay = c->retry_ms;
    if (c->deadline) {
        if (now >= c->deadline) {
            char desc[240];
            snprintf(desc, sizeof(desc), "timed out after %d ms connecting to %s (last error: %s)",
                     c->timeout_ms, c->path, uv_strerror(c->last_err));
            connect_done(c, -ETIMEDOUT, desc);
            return;
        }
        if (c->deadline - now < delay)
            delay = c->deadline - now;
    }
    c->retry_ms = c->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : c->retry_ms * 2;
    uv_timer_start(&c->timer, on_retry_timer, delay, 0);
}

static void close_pipe(conn_t *c)
{
    if (c->pipe_inited && !c->pipe_closing) {
        c->pipe_closing = 1;
        uv_close((uv_handle_t *)&c->pipe, on_pipe_closed);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    c->timer_closed = 1;
    maybe_free(c);
}

void conn_close(conn_t *c, conn_close_cb cb, void *data)
{
    if (!c || c->closing)
        return;
    c->closing = 1;
    c->close_cb = cb;
    c->close_data = data;
    if (c->state == C_CONNECTING || c->state == C_WAIT)
        connect_done(c, -ECANCELED, "connection attempt cancelled: closed by its owner");
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    close_pipe(c);
}

/* ---- connecting ---- */

/* End a connection attempt: success (code 0) or failure. */
static void connect_done(conn_t *c, int code, const char *desc)
{
    uv_timer_stop(&c->timer);
    conn_connect_cb cb = c->connect_cb;
    void *data = c->connect_data;
    c->connect_cb = NULL;
    if (code == 0) {
        c->state = C_OPEN;
    } else {
        c->state = C_DEAD;
        set_err(c, code, code == -ECANCELED ? CONN_ERR_CANCELLED : CONN_ERR_DISCONNECTED, desc);
        close_pipe(c);
    }
    if (cb)
        cb(c, code ? &c->err : NULL, data);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn_t *c = h->data;
    (void)suggested;
    if (c->rcap - c->rlen < READ_CHUNK) {
        size_t cap = c->rcap ? c->rcap : READ_CHUNK;
        while (cap - c->rlen < READ_CHUNK)
            cap *= 2;
        char *p = realloc(c->rbuf, cap);
        if (!p) {
            *buf = uv_buf_init(NULL, 0); /* read_cb gets UV_ENOBUFS */
            return;
        }
        c->rbuf = p;
        c->rcap = cap;
    }
    *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void process(conn_t *c);
static void deliver(conn_t *c, char *line, size_t len);

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = s->data;
    (void)buf;
    if (nread > 0) {
        c->rlen += (size_t)nread;
        c->bytes_in += (uint64_t)nread;
        process(c);
        conn__update_reading(c);
    } else if (nread == UV_EOF && c->on_eof) {
        c->eof = 1;
        conn__update_reading(c);
        process(c);
    } else if (nread == UV_EOF) {
        conn_fail(c, -ECONNRESET, CONN_ERR_DISCONNECTED, "connection closed by peer (EOF)");
    } else if (nread < 0) {
        char desc[160];
        snprintf(desc, sizeof(desc), "read error: %s", uv_strerror((int)nread));
        conn_fail(c, (int)nread, CONN_ERR_DISCONNECTED, desc);
    }
}

static int start_reading(conn_t *c)
{
    int rc = uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
    c->reading = rc == 0;
    if (rc < 0) {
        char desc[160];
        snprintf(desc, sizeof(desc), "cannot read from socket: %s", uv_strerror(rc));
        conn_fail(c, rc, CONN_ERR_DISCONNECTED, desc);
    }
    return rc;
}

static int retryable(int status)
{
    return status == UV_ENOENT || status == UV_ECONNREFUSED || status == UV_EAGAIN;
}

static void on_connect(uv_connect_t *req, int status)
{
    conn_t *c = req->data;
    if (c->closing || c->state != C_CONNECTING)
        return; /* cancelled, timed out or aborted meanwhile */
    if (status == 0) {
        connect_done(c, 0, NULL);
        if (alive(c))
            start_reading(c);
        return;
    }
    if (retryable(status)) {
        c->last_err = status;
        c->state = C_WAIT;
        close_pipe(c); /* on_pipe_closed schedules the next attempt */
        return;
    }
    char desc[240];
    snprintf(desc, sizeof(desc), "cannot connect to %s: %s", c->path, uv_strerror(status));
    connect_done(c, status, desc);
}

static void on_connect_deadline(uv_timer_t *t)
{
    conn_t *c = t->data;
    char desc[240];
    snprintf(desc, sizeof(desc), "timed out after %d ms connecting to %s", c->timeout_ms, c->path);
    connect_done(c, -ETIMEDOUT, desc);
}

static void try_connect(conn_t *c)
{
    if (c->closing || c->state != C_WAIT)
        return;
    int rc = uv_pipe_init(c->loop, &c->pipe, 0);
    if (rc < 0) {
        connect_done(c, rc, "cannot create a socket handle");
        return;
    }
    c->pipe.data = c;
    c->pipe_inited = 1;
    c->state = C_CONNECTING;
    c->creq.data = c;
    uv_pipe_connect(&c->creq, &c->pipe, c->path, on_connect);
    /* Unix sockets connect without waiting in practice; the watchdog keeps
     * the deadline honest if one ever does not. */
    if (c->deadline) {
        uint64_t now = uv_now(c->loop);
        uv_timer_start(&c->timer, on_connect_deadline, c->deadline > now ? c->deadline - now : 0, 0);
    }
}

int conn_connect(conn_t *c, const char *path, int timeout_ms, conn_connect_cb cb, void *data)
{
    if (!c || !path)
        return -EINVAL;
    if (c->closing)
        return -ECANCELED;
    if (c->state != C_IDLE)
        return -EBUSY;
    if (strlen(path) >= sizeof(c->path))
        return -ENAMETOOLONG;
    strcpy(c->path, path);
    c->timeout_ms = timeout_ms;
    c->deadline = timeout_ms > 0 ? uv_now(c->loop) + (uint64_t)timeout_ms : 0;
    c->retry_ms = RETRY_FIRST_MS;
    c->last_err = UV_ENOENT;
    c->connect_cb = cb;
    c->connect_data = data;
    c->state = C_WAIT;
    try_connect(c);
    return 0;
}

int conn_attach_fd(conn_t *c, int fd)
{
    if (!c || fd < 0) {
        if (fd >= 0)
            close(fd);
        return -EINVAL;
    }
    if (c->closing || c->state != C_IDLE) {
        close(fd);
        return c->closing ? -ECANCELED : -EBUSY;
    }
    int rc = uv_pipe_init(c->loop, &c->pipe, 0);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    c->pipe.data = c;
    c->pipe_inited = 1;
    rc = uv_pipe_open(&c->pipe, fd);
    if (rc < 0) {
        close(fd);
        c->state = C_DEAD;
        set_err(c, rc, CONN_ERR_LOCAL, "cannot adopt the socket");
        close_pipe(c);
        return rc;
    }
    c->state = C_OPEN;
    return start_reading(c);
}

int conn_accept(conn_t *c, uv_stream_t *server)
{
    if (!c || !server)
        return -EINVAL;
    if (c->closing || c->state != C_IDLE)
        return c->closing ? -ECANCELED : -EBUSY;
    int rc = uv_pipe_init(c->loop, &c->pipe, 0);
    if (rc < 0)
        return rc;
    c->pipe.data = c;
    c->pipe_inited = 1;
    rc = uv_accept(server, (uv_stream_t *)&c->pipe);
    if (rc < 0) {
        c->state = C_DEAD;
        set_err(c, rc, CONN_ERR_LOCAL, "cannot accept the connection");
        close_pipe(c);
        return rc;
    }
    c->state = C_OPEN;
    return start_reading(c);
}

void conn_abort(conn_t *c)
{
    if (!c || c->closing || (c->state != C_CONNECTING && c->state != C_WAIT))
        return;
    char desc[240];
    snprintf(desc, sizeof(desc), "peer process exited before accepting a connection on %s", c->path);
    connect_done(c, -ECONNABORTED, desc);
}

/* ---- input ---- */

/* Read exactly while the conn may take input: open, not held, before EOF. */
void conn__update_reading(conn_t *c)
{
    int want = alive(c) && !held(c) && !c->eof && c->pipe_inited && !c->pipe_closing;
    if (want == c->reading)
        return;
    if (want) {
        start_reading(c);
        return;
    }
    c->reading = 0;
    if (c->pipe_inited && !c->pipe_closing)
        uv_read_stop((uv_stream_t *)&c->pipe);
}

static void on_resume(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (!alive(c) || held(c))
        return;
    process(c); /* the lines that waited */
    conn__update_reading(c);
}

/* Input may flow again: from the loop, not inside the caller's callback. */
void conn__schedule_resume(conn_t *c)
{
    if (alive(c) && !held(c))
        uv_timer_start(&c->timer, on_resume, 0, 0);
}

void conn_pause(conn_t *c)
{
    if (!c || c->paused)
        return;
    c->paused = 1;
    conn__update_reading(c);
}

void conn_resume(conn_t *c)
{
    if (!c || !c->paused)
        return;
    c->paused = 0;
    conn__schedule_resume(c);
}

void conn_set_eof_cb(conn_t *c, conn_eof_cb cb)
{
    if (c)
        c->on_eof = cb;
}

void conn_set_handlers(conn_t *c, conn_msg_cb on_msg, conn_dead_cb on_dead, void *data)
{
    if (!c)
        return;
    c->on_msg = on_msg;
    c->on_dead = on_dead;
    c->data = data;
}

/* Input is over: the last line may lack its '\n'; then tell the owner. */
static void finish_input(conn_t *c)
{
    if (!alive(c) || !c->eof || held(c) || c->eof_reported)
        return;
    if (c->rlen && !c->discard)
        deliver(c, c->rbuf, c->rlen);
    c->rlen = 0;
    c->scan = 0;
    c->eof_reported = 1;
    if (alive(c) && c->on_eof)
        c->on_eof(c, c->data);
}

static void deliver(conn_t *c, char *line, size_t len)
{
    /* QEMU ends QMP lines with "\r\n". */
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        len--;
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
        i++;
    if (i == len)
        return; /* blank lines carry nothing */
    char why[200];
    json_t *msg = json_parse(line + i, len - i, why, sizeof(why));
    if (c->on_msg)
        c->on_msg(c, msg, msg ? NULL : why, c->data);
    json_free(msg);
}

static void process(conn_t *c)
{
    /* The owner's callbacks never reach back into process() (reads only
     * come from the loop), but guard anyway: a nested pass would deliver
     * lines twice. */
    if (c->dispatching)
        return;
    c->dispatching = 1;
    size_t pos = 0;
    int too_long = 0;
    while (pos < c->rlen && alive(c) && !held(c)) {
        if (c->discard) {
            char *d = memchr(c->rbuf + pos, c->delim, c->rlen - pos);
            if (!d) {
                pos = c->rlen;
                break;
            }
            pos = (size_t)(d - c->rbuf) + 1;
            c->discard = 0;
            c->scan = pos;
            continue;
        }
        if (c->scan < pos)
            c->scan = pos;
        char *nl = memchr(c->rbuf + c->scan, '\n', c->rlen - c->scan);
        if (!nl) {
            c->scan = c->rlen;
            break;
        }
        size_t end = (size_t)(nl - c->rbuf);
        if (end - pos > c->max_input) {
            too_long = 1;
            break;
        }
        size_t start = pos;
        pos = end + 1;
        c->scan = pos;
        deliver(c, c->rbuf + start, end - start);
    }
    if (alive(c)) {
        if (c->discard)
            pos = c->rlen; /* all of it precedes the delimiter: junk */
        size_t rest = c->rlen - pos;
        /* Held input may hold whole lines; only an unfinished one counts. */
        if (too_long || (!held(c) && rest > c->max_input)) {
            char desc[160];
            snprintf(desc, sizeof(desc), "input line exceeds the limit of %zu bytes", c->max_input);
            conn_fail(c, -EMSGSIZE, CONN_ERR_PROTOCOL, desc);
        } else {
            if (rest && pos)
                memmove(c->rbuf, c->rbuf + pos, rest);
            c->rlen = rest;
            c->scan = c->scan > pos ? c->scan - pos : 0;
        }
    }
    finish_input(c);
    if (!alive(c)) {
        c->rlen = 0;
        c->scan = 0;
    }
    c->dispatching = 0;
}

int conn_feed(conn_t *c, const void *buf, size_t len)
{
    if (!c)
        return -EINVAL;
    if (!alive(c))
        return c->state == C_DEAD ? c->err.code : c->closing ? -ECANCELED : -ENOTCONN;
    if (c->dispatching)
        return -EBUSY;
    if (c->rcap - c->rlen < len) {
        size_t cap = c->rcap ? c->rcap : READ_CHUNK;
        while (cap - c->rlen < len)
            cap *= 2;
        char *p = realloc(c->rbuf, cap);
        if (!p)
            return -ENOMEM;
        c->rbuf = p;
        c->rcap = cap;
    }
    if (len)
        memcpy(c->rbuf + c->rlen, buf, len);
    c->rlen += len;
    c->bytes_in += len;
    process(c);
    return c->state == C_DEAD ? c->err.code : 0;
}

void conn_discard_until(conn_t *c, unsigned char delim)
{
    if (!c)
        return;
    c->discard = 1;
    c->delim = delim;
}

void conn_set_label(conn_t *c, const char *label)
{
    if (c)
        snprintf(c->label, sizeof(c->label), "%s", label ? label : "");
}

void conn_set_max_input(conn_t *c, size_t bytes)
{
    if (c && bytes)
        c->max_input = bytes;
}

void conn_fail(conn_t *c, int code, const char *cls, const char *desc)
{
    if (!c || c->state != C_OPEN)
        return;
    c->state = C_DEAD;
    set_err(c, code, cls ? cls : CONN_ERR_DISCONNECTED, desc ? desc : uv_strerror(code));
    c->reading = 0;
    if (c->pipe_inited && !c->pipe_closing)
        uv_read_stop((uv_stream_t *)&c->pipe);
    if (c->on_dead && !c->closing)
        c->on_dead(c, &c->err, c->data);
}

/* ---- queries ---- */

int conn_is_open(const conn_t *c)
{
    return c && alive(c);
}

const conn_err *conn_error(const conn_t *c)
{
    return c && c->state == C_DEAD ? &c->err : NULL;
}

uint64_t conn_bytes_in(const conn_t *c) { return c ? c->bytes_in : 0; }
uint64_t conn_bytes_out(const conn_t *c) { return c ? c->bytes_out : 0; }
size_t conn_queued_out(const conn_t *c) { return c ? c->out_queued : 0; }
