/* json.c - owned JSON trees on top of yajl's event parser and generator.
 *
 * yajl stays in this file. Parsing builds the tree from yajl callbacks with
 * an explicit stack, so depth is bounded (JSON_MAX_DEPTH) and a hostile peer
 * cannot make later recursive walks (dump, free) overflow the C stack. */
#include "base/json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

/* yajl's generator refuses a 128th level; parse no deeper, so every
 * parsed tree can be dumped again. */
#define JSON_MAX_DEPTH 127

struct json {
    json_type type;
    union {
        int b;
        long long i;
        double d;
        struct {
            char *s;
            size_t len;
        } str;
        struct {
            json_t **vals;
            char **keys; /* objects only */
            size_t n, cap;
        } c;
    } u;
};

static json_t *json_new(json_type t)
{
    json_t *v = calloc(1, sizeof(*v));
    if (v)
        v->type = t;
    return v;
}

json_t *json_null(void) { return json_new(JSON_NULL); }
json_t *json_array(void) { return json_new(JSON_ARRAY); }
json_t *json_object(void) { return json_new(JSON_OBJECT); }

json_t *json_bool(int b)
{
    json_t *v = json_new(JSON_BOOL);
    if (v)
        v->u.b = !!b;
    return v;
}

json_t *json_int(long long i)
{
    json_t *v = json_new(JSON_INT);
    if (v)
        v->u.i = i;
    return v;
}

json_t *json_double(double d)
{
    json_t *v = json_new(JSON_DOUBLE);
    if (v)
        v->u.d = d;
    return v;
}

json_t *json_stringn(const char *s, size_t n)
{
    json_t *v = json_new(JSON_STRING);
    if (!v)
        return NULL;
    v->u.str.s = malloc(n + 1);
    if (!v->u.str.s) {
        free(v);
        return NULL;
    }
    if (n)
        memcpy(v->u.str.s, s, n);
    v->u.str.s[n] = '\0';
    v->u.str.len = n;
    return v;
}

json_t *json_string(const char *s)
{
    return s ? json_stringn(s, strlen(s)) : json_null();
}

void json_free(json_t *v)
{
    if (!v)
        return;
    if (v->type == JSON_STRING) {
        free(v->u.str.s);
    } else if (v->type == JSON_ARRAY || v->type == JSON_OBJECT) {
        for (size_t i = 0; i < v->u.c.n; i++) {
            json_free(v->u.c.vals[i]);
            if (v->u.c.keys)
                free(v->u.c.keys[i]);
        }
        free(v->u.c.vals);
        free(v->u.c.keys);
    }
    free(v);
}

static int container_grow(json_t *c)
{
    if (c->u.c.n < c->u.c.cap)
        return 0;
    size_t cap = c->u.c.cap ? c->u.c.cap * 2 : 4;
    json_t **vals = realloc(c->u.c.vals, cap * sizeof(*vals));
    if (!vals)
        return -ENOMEM;
    c->u.c.vals = vals;
    if (c->type == JSON_OBJECT) {
        char **keys = realloc(c->u.c.keys, cap * sizeof(*keys));
        if (!keys)
            return -ENOMEM;
        c->u.c.keys = keys;
    }
    c->u.c.cap = cap;
    return 0;
}

int json_append(json_t *arr, json_t *val)
{
    if (!arr || arr->type != JSON_ARRAY || !val) {
        json_free(val);
        return -EINVAL;
    }
    if (container_grow(arr) < 0) {
        json_free(val);
        return -ENOMEM;
    }
    arr->u.c.vals[arr->u.c.n++] = val;
    return 0;
}

static long find_key(const json_t *obj, const char *key)
{
    for (size_t i = 0; i < obj->u.c.n; i++)
        if (!strcmp(obj->u.c.keys[i], key))
            return (long)i;
    return -1;
}

/* Append without the duplicate check: the parser keeps what the peer sent. */
static int object_push(json_t *obj, char *key, json_t *val)
{
    if (container_grow(obj) < 0)
        return -ENOMEM;
    obj->u.c.keys[obj->u.c.n] = key;
    obj->u.c.vals[obj->u.c.n++] = val;
    return 0;
}

int json_set(json_t *obj, const char *key, json_t *val)
{
    if (!obj || obj->type != JSON_OBJECT || !key || !val) {
        json_free(val);
        return -EINVAL;
    }
    long i = find_key(obj, key);
    if (i >= 0) {
        json_free(obj->u.c.vals[i]);
        obj->u.c.vals[i] = val;
        return 0;
    }
    char *k = strdup(key);
    if (!k || object_push(obj, k, val) < 0) {
        free(k);
        json_free(val);
        return -ENOMEM;
    }
    return 0;
}

int json_set_str(json_t *obj, const char *key, const char *s) { return json_set(obj, key, json_string(s)); }
int json_set_int(json_t *obj, const char *key, long long i) { return json_set(obj, key, json_int(i)); }
int json_set_bool(json_t *obj, const char *key, int b) { return json_set(obj, key, json_bool(b)); }

json_t *json_take(json_t *obj, const char *key)
{
    if (!obj || obj->type != JSON_OBJECT || !key)
        return NULL;
    long i = find_key(obj, key);
    if (i < 0)
        return NULL;
    json_t *v = obj->u.c.vals[i];
    free(obj->u.c.keys[i]);
    size_t rest = obj->u.c.n - (size_t)i - 1;
    memmove(&obj->u.c.vals[i], &obj->u.c.vals[i + 1], rest * sizeof(json_t *));
    memmove(&obj->u.c.keys[i], &obj->u.c.keys[i + 1], rest * sizeof(char *));
    obj->u.c.n--;
    return v;
}

json_t *json_copy(const json_t *v)
{
    if (!v)
        return NULL;
    switch (v->type) {
    case JSON_NULL: return json_null();
    case JSON_BOOL: return json_bool(v->u.b);
    case JSON_INT: return json_int(v->u.i);
    case JSON_DOUBLE: return json_double(v->u.d);
    case JSON_STRING: return json_stringn(v->u.str.s, v->u.str.len);
    case JSON_ARRAY:
    case JSON_OBJECT: {
        json_t *c = json_new(v->type);
        for (size_t i = 0; c && i < v->u.c.n; i++) {
            json_t *e = json_copy(v->u.c.vals[i]);
            int rc = v->type == JSON_ARRAY ? json_append(c, e) : json_set(c, v->u.c.keys[i], e);
            if (!e || rc < 0) {
                json_free(c);
                return NULL;
            }
        }
        return c;
    }
    }
    return NULL;
}

json_type json_typeof(const json_t *v) { return v ? v->type : JSON_NULL; }

size_t json_len(const json_t *v)
{
    if (!v)
        return 0;
    if (v->type == JSON_STRING)
        return v->u.str.len;
    if (v->type == JSON_ARRAY || v->type == JSON_OBJECT)
        return v->u.c.n;
    return 0;
}

json_t *json_at(const json_t *arr, size_t i)
{
    if (!arr || (arr->type != JSON_ARRAY && arr->type != JSON_OBJECT) || i >= arr->u.c.n)
        return NULL;
    return arr->u.c.vals[i];
}

const char *json_key_at(const json_t *obj, size_t i)
{
    if (!obj || obj->type != JSON_OBJECT || i >= obj->u.c.n)
        return NULL;
    return obj->u.c.keys[i];
}

json_t *json_get(const json_t *obj, const char *key)
{
    if (!obj || obj->type != JSON_OBJECT || !key)
        return NULL;
    long i = find_key(obj, key);
    return i < 0 ? NULL : obj->u.c.vals[i];
}

json_t *json_path(const json_t *v, const char *path)
{
    char seg[256];
    const char *p = path;
    while (v && p && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof(seg))
            return NULL;
        memcpy(seg, p, n);
        seg[n] = '\0';
        v = json_get(v, seg);
        p = dot ? dot + 1 : NULL;
    }
    return (json_t *)v;
}

const char *json_str(const json_t *v)
{
    return v && v->type == JSON_STRING ? v->u.str.s : NULL;
}

const char *json_get_str(const json_t *obj, const char *key) { return json_str(json_get(obj, key)); }

int json_as_int(const json_t *v, long long *out)
{
    if (v && v->type == JSON_INT) {
        *out = v->u.i;
        return 0;
    }
    return -EINVAL;
}

long long json_get_int(const json_t *obj, const char *key, long long fallback)
{
    long long i;
    return json_as_int(json_get(obj, key), &i) == 0 ? i : fallback;
}

int json_get_bool(const json_t *obj, const char *key, int fallback)
{
    json_t *v = json_get(obj, key);
    return v && v->type == JSON_BOOL ? v->u.b : fallback;
}

double json_as_double(const json_t *v, double fallback)
{
    if (v && v->type == JSON_DOUBLE)
        return v->u.d;
    if (v && v->type == JSON_INT)
        return (double)v->u.i;
    return fallback;
}

int json_truthy(const json_t *v)
{
    if (!v)
        return 0;
    switch (v->type) {
    case JSON_BOOL: return v->u.b;
    case JSON_INT: return v->u.i != 0;
    case JSON_DOUBLE: return v->u.d != 0;
    default: return 0;
    }
}

/* ---- parsing ---- */

struct pstate {
    json_t *stack[JSON_MAX_DEPTH];
    int depth;
    char *key;      /* pending object key */
    json_t *root;
    const char *fail; /* our own reason, beats yajl's text */
};

/* Attach v to the innermost open container (or make it the root). */
static int p_add(struct pstate *ps, json_t *v)
{
    if (!v) {
        ps->fail = "out of memory";
        return 0;
    }
    if (ps->depth == 0) {
        if (ps->root) {
            json_free(v);
            ps->fail = "more than one JSON value";
            return 0;
        }
        ps->root = v;
    } else {
        json_t *top = ps->stack[ps->depth - 1];
        int rc;
        if (top->type == JSON_ARRAY) {
            rc = json_append(top, v);
        } else {
            rc = object_push(top, ps->key, v);
            if (rc < 0)
                json_free(v);
            else
                ps->key = NULL;
        }
        if (rc < 0) {
            ps->fail = "out of memory";
            return 0;
        }
    }
    if (v->type == JSON_ARRAY || v->type == JSON_OBJECT) {
        if (ps->depth >= JSON_MAX_DEPTH) {
            ps->fail = "nesting too deep";
            return 0;
        }
        ps->stack[ps->depth++] = v;
    }
    return 1;
}

static int p_null(void *ctx) { return p_add(ctx, json_null()); }
static int p_bool(void *ctx, int b) { return p_add(ctx, json_bool(b)); }

static int p_number(void *ctx, const char *s, size_t n)
{
    char buf[128];
    if (n >= sizeof(buf)) {
        ((struct pstate *)ctx)->fail = "number too long";
        return 0;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (!strpbrk(buf, ".eE")) {
        errno = 0;
        char *end;
        long long i = strtoll(buf, &end, 10);
        if (errno == 0 && *end == '\0')
            return p_add(ctx, json_int(i));
        /* Out of range integers (u64 sizes from QEMU) degrade to double. */
    }
    return p_add(ctx, json_double(strtod(buf, NULL)));
}

static int p_string(void *ctx, const unsigned char *s, size_t n)
{
    return p_add(ctx, json_stringn((const char *)s, n));
}

static int p_start_map(void *ctx) { return p_add(ctx, json_object()); }
static int p_start_array(void *ctx) { return p_add(ctx, json_array()); }

static int p_map_key(void *ctx, const unsigned char *s, size_t n)
{
    struct pstate *ps = ctx;
    if (memchr(s, '\0', n)) {
        ps->fail = "NUL byte in object key";
        return 0;
    }
    free(ps->key);
    ps->key = strndup((const char *)s, n);
    if (!ps->key) {
        ps->fail = "out of memory";
        return 0;
    }
    return 1;
}

static int p_end(void *ctx)
{
    struct pstate *ps = ctx;
    ps->depth--;
    return 1;
}

static const yajl_callbacks pcb = {
    .yajl_null = p_null,
    .yajl_boolean = p_bool,
    .yajl_number = p_number,
    .yajl_string = p_string,
    .yajl_start_map = p_start_map,
    .yajl_map_key = p_map_key,
    .yajl_end_map = p_end,
    .yajl_start_array = p_start_array,
    .yajl_end_array = p_end,
};

json_t *json_parse(const char *buf, size_t len, char *err, size_t errlen)
{
    struct pstate *ps = calloc(1, sizeof(*ps));
    if (!ps) {
        if (err)
            snprintf(err, errlen, "out of memory");
        return NULL;
    }
    yajl_handle h = yajl_alloc(&pcb, NULL, ps);
    if (!h) {
        free(ps);
        if (err)
            snprintf(err, errlen, "out of memory");
        return NULL;
    }
    yajl_status st = yajl_parse(h, (const unsigned char *)buf, len);
    /* yajl's byte count restarts for complete_parse: an input that ends
     * too early is wrong at its end, not at byte 1. */
    size_t at = st == yajl_status_ok ? len : yajl_get_bytes_consumed(h);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    json_t *root = ps->root;
    if (st != yajl_status_ok || !root) {
        if (err) {
            if (ps->fail) {
                snprintf(err, errlen, "invalid JSON: %s", ps->fail);
            } else if (st == yajl_status_ok) {
                snprintf(err, errlen, "invalid JSON: empty input");
            } else {
                unsigned char *m = yajl_get_error(h, 0, (const unsigned char *)buf, len);
                char *nl;
                if (m && (nl = strchr((char *)m, '\n')))
                    *nl = '\0';
                snprintf(err, errlen, "invalid JSON at byte %zu: %s", at,
                         m ? (char *)m : "parse error");
                if (m)
                    yajl_free_error(h, m);
            }
        }
        json_free(root);
        root = NULL;
    }
    free(ps->key);
    free(ps);
    yajl_free(h);
    return root;
}

/* ---- generation ---- */

static int gen_value(yajl_gen g, const json_t *v, int depth)
{
    if (depth > JSON_MAX_DEPTH)
        return -1;
    switch (v->type) {
    case JSON_NULL: return yajl_gen_null(g);
    case JSON_BOOL: return yajl_gen_bool(g, v->u.b);
    case JSON_INT: return yajl_gen_integer(g, v->u.i);
    case JSON_DOUBLE:
        /* JSON has no NaN or infinity (1e400 parses to one): write null. */
        if (v->u.d != v->u.d || v->u.d - v->u.d != 0)
            return yajl_gen_null(g);
        return yajl_gen_double(g, v->u.d);
    case JSON_STRING:
        return yajl_gen_string(g, (const unsigned char *)v->u.str.s, v->u.str.len);
    case JSON_ARRAY:
        if (yajl_gen_array_open(g) != yajl_gen_status_ok)
            return -1;
        for (size_t i = 0; i < v->u.c.n; i++)
            if (gen_value(g, v->u.c.vals[i], depth + 1) != yajl_gen_status_ok)
                return -1;
        return yajl_gen_array_close(g);
    case JSON_OBJECT:
        if (yajl_gen_map_open(g) != yajl_gen_status_ok)
            return -1;
        for (size_t i = 0; i < v->u.c.n; i++) {
            const char *k = v->u.c.keys[i];
            if (yajl_gen_string(g, (const unsigned char *)k, strlen(k)) != yajl_gen_status_ok ||
                gen_value(g, v->u.c.vals[i], depth + 1) != yajl_gen_status_ok)
                return -1;
        }
        return yajl_gen_map_close(g);
    }
    return -1;
}

static char *dump(const json_t *v, size_t *len, int pretty)
{
    if (!v)
        return NULL;
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g)
        return NULL;
    if (pretty) {
        yajl_gen_config(g, yajl_gen_beautify, 1);
        yajl_gen_config(g, yajl_gen_indent_string, "  ");
    }
    char *out = NULL;
    if (gen_value(g, v, 0) == yajl_gen_status_ok) {
        const unsigned char *buf;
        size_t n;
        yajl_gen_get_buf(g, &buf, &n);
        /* yajl's beautifier ends with a newline; callers add their own. */
        while (pretty && n && buf[n - 1] == '\n')
            n--;
        out = malloc(n + 1);
        if (out) {
            memcpy(out, buf, n);
            out[n] = '\0';
            if (len)
                *len = n;
        }
    }
    yajl_gen_free(g);
    return out;
}

char *json_dump(const json_t *v, size_t *len) { return dump(v, len, 0); }
char *json_dump_pretty(const json_t *v, size_t *len) { return dump(v, len, 1); }
