/* etcd_fx.c - a real etcd for tests (see etcd_fx.h). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/base64.h"
#include "base/json.h"
#include "base/proc.h"
#include "base/str.h"
#include "tests/etcd_fx.h"
#include "tests/testutil.h"

typedef struct member {
    struct etcd_fx *fx;
    int i, client, peer;
    proc_t *p;
    int exited;
    char ep[32];
} member;

struct etcd_fx {
    uv_loop_t *loop;
    uv_timer_t wake;
    int n;
    member m[ETCD_FX_MAX];
    char dir[256];
    char store[256];
    char cluster[512];
    char token[64];
    int woke;
};

/* A free port below the kernel's ephemeral range (32768-60999 by
 * default), so an outgoing connection of another test cannot take it
 * between this check and etcd's bind. */
static int free_port(const etcd_fx *fx)
{
    for (int t = 0; t < 1000; t++) {
        int port = 12000 + (int)(random() % 20000), dup = 0;
        for (int i = 0; i < ETCD_FX_MAX; i++)
            dup |= fx->m[i].client == port || fx->m[i].peer == port;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        cr_assert(fd >= 0);
        int ok = !dup && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(fd);
        if (ok)
            return port;
    }
    cr_assert_fail("no free port in 12000-31999");
    return -1;
}

static void on_wake(uv_timer_t *t)
{
    ((etcd_fx *)t->data)->woke = 1;
}

void etcd_fx_spin(etcd_fx *fx, int ms)
{
    fx->woke = 0;
    uv_timer_start(&fx->wake, on_wake, (uint64_t)ms, 0);
    while (!fx->woke)
        uv_run(fx->loop, UV_RUN_ONCE);
}

static void on_exit_cb(proc_t *p, int status, int sig, void *data)
{
    ((member *)data)->exited = 1;
}

/* 1 when member i says it is healthy (it has a leader). Blocking, short. */
static int healthy(const member *m)
{
    char url[64];
    struct sbuf b = {0};
    snprintf(url, sizeof(url), "http://%s/health", m->ep);
    CURL *e = curl_easy_init();
    if (!e)
        return 0;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 500L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    FILE *f = open_memstream(&b.s, &b.len);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
    int ok = curl_easy_perform(e) == CURLE_OK;
    fclose(f);
    curl_easy_cleanup(e);
    ok = ok && b.s && strstr(b.s, "\"true\"");
    free(b.s);
    return ok;
}

static void member_start(etcd_fx *fx, member *m)
{
    char name[16], data[300], client[64], peer[64], log[300], err[512];
    snprintf(name, sizeof(name), "m%d", m->i);
    snprintf(data, sizeof(data), "%s/%s", fx->dir, name);
    snprintf(log, sizeof(log), "%s/%s.log", fx->dir, name);
    snprintf(client, sizeof(client), "http://%s", m->ep);
    snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", m->peer);
    char *argv[] = { "etcd", "--name", name, "--data-dir", data,
                     "--listen-client-urls", client, "--advertise-client-urls", client,
                     "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                     "--initial-cluster", fx->cluster, "--initial-cluster-token", fx->token,
                     "--initial-cluster-state", "new", NULL };
    proc_opts o = { .argv = argv, .log_path = log };
    m->exited = 0;
    int rc = proc_start(fx->loop, &o, on_exit_cb, m, &m->p, err, sizeof(err));
    cr_assert_eq(rc, 0, "etcd member %d: %s", m->i, err);
}

/* 1 when member m answers within 20 s, 0 when it exited first. */
static int wait_healthy(etcd_fx *fx, member *m)
{
    for (int t = 0; t < 400; t++) { /* three members elect a leader in ~2 s */
        if (m->exited)
            return 0;
        if (healthy(m))
            return 1;
        etcd_fx_spin(fx, 50);
    }
    cr_assert_fail("etcd member %d (%s) did not answer /health in 20 s; see %s/m%d.log", m->i,
                   m->ep, fx->dir, m->i);
    return 0;
}

static void member_gone(etcd_fx *fx, member *m);

/* Pick ports and start every member: 1 when all answer, 0 when one
 * exited (its port was taken after all: the caller tries again). */
static int start_all(etcd_fx *fx)
{
    struct sbuf c = {0}, s = {0};
    memset(fx->m, 0, sizeof(fx->m));
    for (int i = 0; i < fx->n; i++) {
        member *m = &fx->m[i];
        m->fx = fx;
        m->i = i;
        m->client = free_port(fx);
        m->peer = free_port(fx);
        snprintf(m->ep, sizeof(m->ep), "127.0.0.1:%d", m->client);
        sb_printf(&c, "%sm%d=http://127.0.0.1:%d", i ? "," : "", i, m->peer);
        sb_printf(&s, "%s%s", i ? "," : "etcd://", m->ep);
    }
    snprintf(fx->cluster, sizeof(fx->cluster), "%s", c.s);
    snprintf(fx->store, sizeof(fx->store), "%s", s.s);
    sb_free(&c);
    sb_free(&s);
    for (int i = 0; i < fx->n; i++)
        member_start(fx, &fx->m[i]);
    int ok = 1;
    for (int i = 0; i < fx->n && ok; i++)
        ok = wait_healthy(fx, &fx->m[i]);
    if (ok)
        return 1;
    for (int i = 0; i < fx->n; i++) {
        proc_kill(fx->m[i].p, SIGKILL);
        member_gone(fx, &fx->m[i]);
        char d[300];
        snprintf(d, sizeof(d), "%s/m%d", fx->dir, i);
        tu_rmtree(d);
    }
    return 0;
}

etcd_fx *etcd_fx_start(uv_loop_t *loop, int n, char *why, size_t whylen)
{
    char path[256];
    if (proc_which("etcd", path, sizeof(path)) < 0) {
        snprintf(why, whylen, "etcd is not installed (tools/setup installs etcd-server)");
        return NULL;
    }
    cr_assert(n >= 1 && n <= ETCD_FX_MAX);
    etcd_fx *fx = calloc(1, sizeof(*fx));
    cr_assert(fx);
    fx->loop = loop;
    fx->n = n;
    uv_timer_init(loop, &fx->wake);
    fx->wake.data = fx;
    cr_assert_eq(tu_mkdtemp(fx->dir, sizeof(fx->dir), "etcd"), 0);
    srandom((unsigned)getpid() ^ (unsigned)time(NULL));
    for (int t = 0; t < 5; t++) {
        snprintf(fx->token, sizeof(fx->token), "qf-%d-%ld-%d", (int)getpid(), (long)time(NULL), t);
        if (start_all(fx))
            return fx;
    }
    cr_assert_fail("etcd did not start in 5 tries; see %s/m0.log", fx->dir);
    return NULL;
}

const char *etcd_fx_store(const etcd_fx *fx)
{
    return fx->store;
}

const char *etcd_fx_endpoint(const etcd_fx *fx, int i)
{
    return fx->m[i].ep;
}

static void member_gone(etcd_fx *fx, member *m)
{
    for (int t = 0; t < 200 && !m->exited; t++)
        etcd_fx_spin(fx, 50);
    cr_assert(m->exited, "etcd member %d did not exit", m->i);
    proc_close(m->p, NULL, NULL);
    m->p = NULL;
}

void etcd_fx_kill(etcd_fx *fx, int i)
{
    member *m = &fx->m[i];
    if (!m->p)
        return;
    proc_kill(m->p, SIGKILL);
    member_gone(fx, m);
}

void etcd_fx_stop(etcd_fx *fx, int i)
{
    member *m = &fx->m[i];
    if (!m->p)
        return;
    proc_stop(m->p, 5000);
    member_gone(fx, m);
}

void etcd_fx_restart(etcd_fx *fx, int i)
{
    member *m = &fx->m[i];
    cr_assert(!m->p, "etcd member %d still runs", i);
    member_start(fx, m);
    cr_assert(wait_healthy(fx, m), "etcd member %d exited on restart; see %s/m%d.log", i, fx->dir,
              i);
}

static int range_one(const member *m, const char *prefix, struct sbuf *out)
{
    char url[64], end[256];
    size_t pl = strlen(prefix);
    snprintf(url, sizeof(url), "http://%s/v3/kv/range", m->ep);
    snprintf(end, sizeof(end), "%s", prefix);
    end[pl - 1]++;
    char *k = qf_base64_encode(prefix, pl, NULL), *e = qf_base64_encode(end, pl, NULL);
    char *body = str_printf("{\"key\":\"%s\",\"range_end\":\"%s\"}", k, e);
    free(k);
    free(e);
    CURL *c = curl_easy_init();
    FILE *f = open_memstream(&out->s, &out->len);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    int rc = curl_easy_perform(c) == CURLE_OK ? 0 : -1;
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    fclose(f);
    curl_easy_cleanup(c);
    free(body);
    return rc == 0 && status == 200 ? 0 : -1;
}

static char *decode(const char *s)
{
    size_t n;
    return s ? (char *)qf_base64_decode(s, strlen(s), &n) : strdup("");
}

int etcd_fx_range(etcd_fx *fx, const char *prefix, char ***keys, char ***values)
{
    for (int i = 0; i < fx->n; i++) {
        struct sbuf b = {0};
        if (!fx->m[i].p || range_one(&fx->m[i], prefix, &b) < 0) {
            free(b.s);
            continue;
        }
        json_t *r = json_parse(b.s, b.len, NULL, 0);
        free(b.s);
        cr_assert(r, "etcd range reply is not JSON");
        json_t *kvs = json_get(r, "kvs");
        int n = kvs ? (int)json_len(kvs) : 0;
        *keys = calloc((size_t)n + 1, sizeof(char *));
        *values = calloc((size_t)n + 1, sizeof(char *));
        for (int j = 0; j < n; j++) {
            (*keys)[j] = decode(json_get_str(json_at(kvs, (size_t)j), "key"));
            (*values)[j] = decode(json_get_str(json_at(kvs, (size_t)j), "value"));
        }
        json_free(r);
        return n;
    }
    return -1;
}

void etcd_fx_free_kv(char **keys, char **values, int n)
{
    for (int i = 0; i < n; i++) {
        free(keys[i]);
        free(values[i]);
    }
    free(keys);
    free(values);
}

static void wake_closed(uv_handle_t *h)
{
    free(h->data);
}

void etcd_fx_down(etcd_fx *fx)
{
    if (!fx)
        return;
    for (int i = 0; i < fx->n; i++)
        if (fx->m[i].p) {
            proc_kill(fx->m[i].p, SIGKILL);
            member_gone(fx, &fx->m[i]);
        }
    tu_rmtree(fx->dir);
    uv_close((uv_handle_t *)&fx->wake, wake_closed);
    uv_run(fx->loop, UV_RUN_NOWAIT);
}
