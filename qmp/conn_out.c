/* conn_out.c - conn.h's output side: queued writes with their callbacks,
 * the soft and hard limits that hold or drop a peer that does not read,
 * and half-close (conn_shutdown). */
#include "qmp/conn_int.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct wreq {
    uv_write_t req;
    conn_t *c;
    conn_write_cb cb;
    void *data;
    size_t len;
    char *buf; /* what we allocated: a json_dump result or a raw copy */
};

static const char newline = '\n';

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = req->data;
    conn_t *c = w->c;
    c->out_queued -= w->len;
    if (c->out_blocked && c->out_queued <= c->out_soft / 2) {
        c->out_blocked = 0;
        conn__schedule_resume(c);
    }
    if (status == 0) {
        c->bytes_out += w->len;
    } else if (status != UV_ECANCELED) {
        char desc[160];
        snprintf(desc, sizeof(desc), "write error: %s", uv_strerror(status));
        conn_fail(c, status, CONN_ERR_DISCONNECTED, desc);
    }
    if (w->cb)
        w->cb(c, status, w->data);
    free(w->buf);
    free(w);
}

static int send_state(const conn_t *c)
{
    if (c->state == C_DEAD)
        return c->err.code;
    if (c->closing)
        return -ECANCELED;
    if (c->state != C_OPEN)
        return -ENOTCONN;
    return 0;
}

/* A peer that does not read makes output pile up: hold its input past the
 * soft limit (it gets no new replies), drop it past the hard one. */
static int check_output(conn_t *c)
{
    if (c->out_hard && c->out_queued > c->out_hard) {
        char desc[160];
        snprintf(desc, sizeof(desc), "the peer does not read: %zu bytes of output queued (limit %zu)",
                 c->out_queued, c->out_hard);
        conn_fail(c, -ENOBUFS, CONN_ERR_PROTOCOL, desc);
        return -ENOBUFS;
    }
    if (c->out_soft && c->out_queued > c->out_soft && !c->out_blocked) {
        c->out_blocked = 1;
        conn__update_reading(c);
    }
    return 0;
}

void conn_set_output_limit(conn_t *c, size_t soft, size_t hard)
{
    if (!c)
        return;
    c->out_soft = soft;
    c->out_hard = hard;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn_t *c = req->data;
    conn_write_cb cb = c->shut_cb;
    c->shut_cb = NULL;
    if (cb)
        cb(c, status, c->shut_data);
}

int conn_shutdown(conn_t *c, conn_write_cb cb, void *data)
{
    if (!c)
        return -EINVAL;
    int rc = send_state(c);
    if (rc < 0)
        return rc;
    if (c->shut)
        return -EALREADY;
    c->shut = 1;
    c->shut_cb = cb;
    c->shut_data = data;
    c->sreq.data = c;
    rc = uv_shutdown(&c->sreq, (uv_stream_t *)&c->pipe, on_shutdown);
    if (rc < 0)
        c->shut_cb = NULL;
    return rc;
}

/* Queue buf (ours to free) plus an optional trailing newline. */
static int queue_write(conn_t *c, char *buf, size_t len, int nl, conn_write_cb cb, void *data)
{
    struct wreq *w = calloc(1, sizeof(*w));
    if (!w) {
        free(buf);
        return -ENOMEM;
    }
    w->c = c;
    w->cb = cb;
    w->data = data;
    w->buf = buf;
    w->len = len + (nl ? 1 : 0);
    w->req.data = w;
    uv_buf_t bufs[2] = { uv_buf_init(buf, (unsigned)len), uv_buf_init((char *)&newline, 1) };
    int rc = uv_write(&w->req, (uv_stream_t *)&c->pipe, bufs, nl ? 2 : 1, on_write);
    if (rc < 0) {
        free(buf);
        free(w);
        char desc[160];
        snprintf(desc, sizeof(desc), "write error: %s", uv_strerror(rc));
        conn_fail(c, rc, CONN_ERR_DISCONNECTED, desc);
        return rc;
    }
    c->out_queued += w->len;
    return check_output(c);
}

int conn_send(conn_t *c, const json_t *v, conn_write_cb cb, void *data)
{
    if (!c || !v)
        return -EINVAL;
    int rc = send_state(c);
    if (rc < 0)
        return rc;
    size_t len = 0;
    char *s = json_dump(v, &len);
    if (!s)
        return -ENOMEM;
    if (len > UINT32_MAX) {
        free(s);
        return -EMSGSIZE;
    }
    return queue_write(c, s, len, 1, cb, data);
}

int conn_send_raw(conn_t *c, const void *buf, size_t len, conn_write_cb cb, void *data)
{
    if (!c || (!buf && len))
        return -EINVAL;
    int rc = send_state(c);
    if (rc < 0)
        return rc;
    if (len > UINT32_MAX)
        return -EMSGSIZE;
    char *copy = malloc(len ? len : 1);
    if (!copy)
        return -ENOMEM;
    if (len)
        memcpy(copy, buf, len);
    return queue_write(c, copy, len, 0, cb, data);
}
