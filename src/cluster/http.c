/* http.c - POST JSON to etcd's gateway from the libuv loop, through
 * libcurl's multi-socket interface (as curl's docs/examples/multi-uv.c):
 * curl tells which sockets to watch (uv_poll_t each) and when to call it
 * back (one uv_timer_t); nothing blocks. */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/str.h"
#include "src/cluster/cluster_int.h"

typedef struct hsock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct chttp *h;
    struct hsock *next, *prev;
} hsock;

struct chreq {
    chttp *h;
    CURL *easy;
    char *path, *body;
    struct curl_slist *hdr;
    struct sbuf resp;
    int overflow;
    size_t ep, tried;   /* endpoint in use, how many were tried */
    struct sbuf errs;   /* what each tried endpoint said */
    chttp_cb cb;
    void *data;
    struct chreq *next, *prev;
};

struct chttp {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    char *ep[CLUSTER__EP_MAX];
    size_t nep, cur;
    int timeout_ms;
    chreq *reqs;
    hsock *socks;
    int handles;        /* open uv handles (timer + polls) */
    int closing;
    void (*close_cb)(void *data);
    void *close_data;
};

static int curl_ready;

static void link_req(chttp *h, chreq *r)
{
    r->next = h->reqs;
    if (h->reqs)
        h->reqs->prev = r;
    h->reqs = r;
}

static void unlink_req(chttp *h, chreq *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        h->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->next = r->prev = NULL;
}

static void free_req(chreq *r)
{
    if (r->easy) {
        curl_multi_remove_handle(r->h->multi, r->easy);
        curl_easy_cleanup(r->easy);
    }
    curl_slist_free_all(r->hdr);
    sb_free(&r->resp);
    sb_free(&r->errs);
    free(r->path);
    free(r->body);
    free(r);
}

static void handle_closed(uv_handle_t *hd)
{
    chttp *h = hd->data;
    if (hd != (uv_handle_t *)&h->timer)
        free(hd); /* an hsock: poll is its first member */
    if (--h->handles == 0 && h->closing) {
        void (*cb)(void *) = h->close_cb;
        void *data = h->close_data;
        for (size_t i = 0; i < h->nep; i++)
            free(h->ep[i]);
        free(h);
        if (cb)
            cb(data);
    }
}

static void close_sock(chttp *h, hsock *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        h->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, handle_closed);
}

static size_t on_write(char *ptr, size_t size, size_t n, void *userp)
{
    chreq *r = userp;
    size_t len = size * n;
    if (r->resp.len + len > CLUSTER__HTTP_MAX) {
        r->overflow = 1;
        return 0;
    }
    sb_addn(&r->resp, ptr, len);
    return r->resp.failed ? 0 : len;
}

static int start_easy(chreq *r)
{
    chttp *h = r->h;
    char url[512];
    snprintf(url, sizeof(url), "%s%s", h->ep[r->ep], r->path);
    if (r->easy) {
        curl_multi_remove_handle(h->multi, r->easy);
        curl_easy_reset(r->easy);
    } else if (!(r->easy = curl_easy_init())) {
        return -ENOMEM;
    }
    sb_free(&r->resp);
    r->overflow = 0;
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdr);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)h->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)h->timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*"); /* etcd is never reached through a proxy */
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http");
    return curl_multi_add_handle(h->multi, e) == CURLM_OK ? 0 : -ENOMEM;
}

/* The name of endpoint i without its scheme, for messages. */
static const char *ep_name(const chttp *h, size_t i)
{
    const char *s = h->ep[i];
    return strncmp(s, "http://", 7) == 0 ? s + 7 : s;
}

static int curl_errno(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_WRITE_ERROR:
        return -EMSGSIZE;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    default:
        return -ECONNREFUSED;
    }
}

/* One attempt ended: finish the request or go on to the next endpoint. */
static void attempt_done(chreq *r, CURLcode rc)
{
    chttp *h = r->h;
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    int res = 0;
    if (rc != CURLE_OK) {
        res = r->overflow ? -EMSGSIZE : curl_errno(rc);
        sb_printf(&r->errs, "%setcd %s: %s", r->errs.len ? "; " : "", ep_name(h, r->ep),
                  r->overflow ? "reply larger than 1 MiB" : curl_easy_strerror(rc));
    } else if (status != 200) {
        res = -EPROTO;
        sb_printf(&r->errs, "%setcd %s: HTTP %ld", r->errs.len ? "; " : "", ep_name(h, r->ep),
                  status);
    }
    int retry = (res == -ETIMEDOUT || res == -ECONNREFUSED || status >= 500);
    if (res < 0 && retry && ++r->tried < h->nep) {
        r->ep = (r->ep + 1) % h->nep;
        if (start_easy(r) == 0)
            return;
    }
    if (res == 0)
        h->cur = r->ep;
    else if (retry)
        h->cur = (r->ep + 1) % h->nep; /* start the next request elsewhere */
    unlink_req(h, r);
    sb_addc(&r->resp, '\0');
    chttp_cb cb = r->cb;
    void *data = r->data;
    cb(res, status, r->resp.s ? r->resp.s : "", r->resp.len ? r->resp.len - 1 : 0,
       r->errs.s ? r->errs.s : "", data);
    free_req(r);
}

static void check_done(chttp *h)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(h->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        chreq *r = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        if (r)
            attempt_done(r, m->data.result);
    }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    hsock *s = (hsock *)p;
    chttp *h = s->h;
    int flags = 0, running;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(h->multi, s->fd, flags, &running);
    check_done(h);
}

static void on_timer(uv_timer_t *t)
{
    chttp *h = t->data;
    int running;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(h);
}

static int sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *sockp)
{
    chttp *h = userp;
    hsock *s = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            close_sock(h, s);
            curl_multi_assign(h->multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        if (!(s = calloc(1, sizeof(*s))))
            return -1;
        if (uv_poll_init_socket(h->loop, &s->poll, fd) < 0) {
            free(s);
            return -1;
        }
        s->fd = fd;
        s->h = h;
        s->poll.data = h;
        s->next = h->socks;
        if (h->socks)
            h->socks->prev = s;
        h->socks = s;
        h->handles++;
        curl_multi_assign(h->multi, fd, s);
    }
    int ev = 0;
    if (what & CURL_POLL_IN)
        ev |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        ev |= UV_WRITABLE;
    uv_poll_start(&s->poll, ev, on_poll);
    return 0;
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    chttp *h = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&h->timer);
    else
        uv_timer_start(&h->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

static int parse_endpoints(chttp *h, const char *list, char *err, size_t errlen)
{
    const char *s = list;
    while (*s) {
        const char *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 0 || h->nep == CLUSTER__EP_MAX) {
            snprintf(err, errlen, "bad endpoint list '%s' (empty or more than %d)", list,
                     CLUSTER__EP_MAX);
            return -EINVAL;
        }
        if (!(h->ep[h->nep++] = strndup(s, n)))
            return -ENOMEM;
        s += n + (e ? 1 : 0);
    }
    if (h->nep == 0) {
        snprintf(err, errlen, "no etcd endpoint given");
        return -EINVAL;
    }
    return 0;
}

int cluster__http_new(uv_loop_t *loop, const char *endpoints, int timeout_ms, chttp **out,
                      char *err, size_t errlen)
{
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            snprintf(err, errlen, "libcurl: global init failed");
            return -ENOMEM;
        }
        curl_ready = 1;
    }
    chttp *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->loop = loop;
    h->timeout_ms = timeout_ms;
    int rc = parse_endpoints(h, endpoints, err, errlen);
    if (rc == 0 && !(h->multi = curl_multi_init()))
        rc = -ENOMEM;
    if (rc < 0) {
        for (size_t i = 0; i < h->nep; i++)
            free(h->ep[i]);
        free(h);
        return rc;
    }
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    h->handles = 1;
    *out = h;
    return 0;
}

int cluster__http_post(chttp *h, const char *path, const char *body, chttp_cb cb, void *data,
                       chreq **out)
{
    if (h->closing)
        return -ESHUTDOWN;
    chreq *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->h = h;
    r->cb = cb;
    r->data = data;
    r->ep = h->cur;
    r->path = strdup(path);
    r->body = strdup(body);
    r->hdr = curl_slist_append(NULL, "Content-Type: application/json");
    if (!r->path || !r->body || !r->hdr || start_easy(r) < 0) {
        free_req(r);
        return -ENOMEM;
    }
    link_req(h, r);
    if (out)
        *out = r;
    return 0;
}

void cluster__http_cancel(chttp *h, chreq *r)
{
    unlink_req(h, r);
    free_req(r);
}

const char *cluster__http_endpoint(const chttp *h)
{
    return ep_name(h, h->cur);
}

void cluster__http_close(chttp *h, void (*cb)(void *data), void *data)
{
    h->closing = 1;
    h->close_cb = cb;
    h->close_data = data;
    while (h->reqs) {
        chreq *r = h->reqs;
        unlink_req(h, r);
        free_req(r);
    }
    curl_multi_cleanup(h->multi);
    h->multi = NULL;
    while (h->socks)
        close_sock(h, h->socks);
    uv_timer_stop(&h->timer);
    uv_close((uv_handle_t *)&h->timer, handle_closed);
}
