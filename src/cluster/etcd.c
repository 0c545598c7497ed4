/* etcd.c - the bodies and replies of etcd's v3 JSON gateway (3.4): lease
 * grant/keepalive/revoke, kv txn/range/deleterange. Keys and values travel
 * base64; int64 fields come as strings; zero and default fields are left
 * out of replies ("succeeded" absent means false). Pure: no I/O here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base64.h"
#include "src/cluster/cluster_int.h"

long long cluster__etcd_int(const json_t *obj, const char *key)
{
    const json_t *v = json_get(obj, key);
    long long i = 0;
    if (!v)
        return 0;
    if (json_typeof(v) == JSON_STRING)
        return strtoll(json_str(v), NULL, 10);
    return json_as_int(v, &i) == 0 ? i : 0;
}

void cluster__etcd_prefix_end(const char *key, size_t keylen, char *end)
{
    memcpy(end, key, keylen);
    /* Our keys are printable text, so the last byte never is 0xff. */
    end[keylen - 1] = (char)(end[keylen - 1] + 1);
}

static json_t *b64(const char *s, size_t n)
{
    char *e = qf_base64_encode(s, n, NULL);
    json_t *v = e ? json_string(e) : NULL;
    free(e);
    return v;
}

static char *dump(json_t *v)
{
    char *s = v ? json_dump(v, NULL) : NULL;
    json_free(v);
    return s;
}

char *cluster__etcd_grant_body(int ttl_s)
{
    json_t *o = json_object();
    if (o)
        json_set_int(o, "TTL", ttl_s);
    return dump(o);
}

char *cluster__etcd_id_body(long long lease)
{
    json_t *o = json_object();
    if (o)
        json_set_int(o, "ID", lease);
    return dump(o);
}

static json_t *put_op(const char *key, const char *value, long long lease)
{
    json_t *put = json_object(), *op = json_object();
    if (!put || !op) {
        json_free(put);
        json_free(op);
        return NULL;
    }
    json_set(put, "key", b64(key, strlen(key)));
    json_set(put, "value", b64(value, strlen(value)));
    if (lease)
        json_set_int(put, "lease", lease);
    json_set(op, "request_put", put);
    return op;
}

static json_t *one(json_t *v)
{
    json_t *a = json_array();
    if (a)
        json_append(a, v);
    else
        json_free(v);
    return a;
}

char *cluster__etcd_create_body(const char *key, const char *value, long long lease)
{
    json_t *t = json_object(), *cmp = json_object(), *rng = json_object(),
           *rop = json_object();
    if (!t || !cmp || !rng || !rop) {
        json_free(t);
        json_free(cmp);
        json_free(rng);
        json_free(rop);
        return NULL;
    }
    json_set(cmp, "key", b64(key, strlen(key)));
    json_set_str(cmp, "target", "CREATE");
    json_set_str(cmp, "result", "EQUAL");
    json_set_str(cmp, "create_revision", "0");
    json_set(t, "compare", one(cmp));
    json_set(t, "success", one(put_op(key, value, lease)));
    json_set(rng, "key", b64(key, strlen(key)));
    json_set(rop, "request_range", rng);
    json_set(t, "failure", one(rop));
    return dump(t);
}

char *cluster__etcd_put_body(const char *key, const char *value, long long lease)
{
    json_t *op = put_op(key, value, lease);
    json_t *put = op ? json_take(op, "request_put") : NULL;
    json_free(op);
    return dump(put);
}

/* A txn doing op (freed) only while key is attached to lease. */
static char *on_lease_body(const char *key, long long lease, json_t *op)
{
    json_t *t = json_object(), *cmp = json_object();
    if (!t || !cmp || !op) {
        json_free(t);
        json_free(cmp);
        json_free(op);
        return NULL;
    }
    json_set(cmp, "key", b64(key, strlen(key)));
    json_set_str(cmp, "target", "LEASE");
    json_set_str(cmp, "result", "EQUAL");
    json_set_int(cmp, "lease", lease);
    json_set(t, "compare", one(cmp));
    json_set(t, "success", one(op));
    return dump(t);
}

char *cluster__etcd_delete_body(const char *key, long long lease)
{
    json_t *op = json_object(), *del = json_object();
    if (!op || !del) {
        json_free(op);
        json_free(del);
        return NULL;
    }
    json_set(del, "key", b64(key, strlen(key)));
    json_set(op, "request_delete_range", del);
    return on_lease_body(key, lease, op);
}

char *cluster__etcd_retag_body(const char *key, const char *value, long long lease)
{
    return on_lease_body(key, lease, put_op(key, value, lease));
}

char *cluster__etcd_range_body(const char *from, const char *end, int limit)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_set(o, "key", b64(from, strlen(from)));
    if (end)
        json_set(o, "range_end", b64(end, strlen(end)));
    if (limit > 0)
        json_set_int(o, "limit", limit);
    json_set_str(o, "sort_order", "ASCEND");
    json_set_str(o, "sort_target", "KEY");
    return dump(o);
}

json_t *cluster__etcd_reply(const char *body, size_t len, char *err, size_t errlen)
{
    char perr[128];
    json_t *v = json_parse(body, len, perr, sizeof(perr));
    if (!v) {
        snprintf(err, errlen, "reply is not JSON (%s)", perr);
        return NULL;
    }
    if (json_typeof(v) != JSON_OBJECT) {
        snprintf(err, errlen, "reply is not a JSON object");
        json_free(v);
        return NULL;
    }
    const char *e = json_get_str(v, "error");
    if (!e)
        e = json_get_str(v, "message");
    if (e && !json_get(v, "header") && !json_get(v, "result")) {
        snprintf(err, errlen, "%s", e);
        json_free(v);
        return NULL;
    }
    return v;
}

static char *decode(const json_t *s, size_t *n)
{
    const char *t = json_str(s);
    *n = 0;
    if (!t)
        return calloc(1, 1);
    return (char *)qf_base64_decode(t, strlen(t), n);
}

void cluster__etcd_kvs_free(cetcd_kv *kv, size_t n)
{
    for (size_t i = 0; kv && i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

int cluster__etcd_kvs(const json_t *reply, int txn, cetcd_kv **out, size_t *n)
{
    const json_t *r = reply;
    *out = NULL;
    *n = 0;
    if (txn)
        r = json_path(json_at(json_get(reply, "responses"), 0), "response_range");
    if (!r)
        return -EPROTO;
    const json_t *kvs = json_get(r, "kvs");
    size_t cnt = kvs ? json_len(kvs) : 0;
    if (cnt == 0)
        return 0;
    cetcd_kv *kv = calloc(cnt, sizeof(*kv));
    if (!kv)
        return -ENOMEM;
    for (size_t i = 0; i < cnt; i++) {
        const json_t *o = json_at(kvs, i);
        size_t kl;
        kv[i].key = decode(json_get(o, "key"), &kl);
        kv[i].value = decode(json_get(o, "value"), &kv[i].value_len);
        kv[i].lease = cluster__etcd_int(o, "lease");
        kv[i].create_revision = cluster__etcd_int(o, "create_revision");
        if (!kv[i].key || !kv[i].value) {
            cluster__etcd_kvs_free(kv, cnt);
            return -EPROTO;
        }
    }
    *out = kv;
    *n = cnt;
    return 0;
}
