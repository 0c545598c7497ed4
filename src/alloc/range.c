/* alloc_range.c - tuple pools kept as sorted free intervals. */
#include "src/alloc/range.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct alloc_range {
    size_t nf;
    alloc_span f[ALLOC_RANGE_MAX_FIELDS];
    uint64_t total;
    alloc_span *iv; /* free intervals of tuple numbers, sorted, disjoint,
                     * never adjacent (adjacent ones are merged) */
    size_t n, cap;
};

static int grow(alloc_range *r, size_t need)
{
    if (r->cap >= need)
        return 0;
    size_t cap = r->cap ? r->cap * 2 : 8;
    while (cap < need)
        cap *= 2;
    alloc_span *iv = realloc(r->iv, cap * sizeof(*iv));
    if (!iv)
        return -ENOMEM;
    r->iv = iv;
    r->cap = cap;
    return 0;
}

/* Shape only: fields checked, no free list. */
static int shape(alloc_range **out, const alloc_span *fields, size_t nf)
{
    *out = NULL;
    if (nf == 0 || nf > ALLOC_RANGE_MAX_FIELDS)
        return -EINVAL;
    uint64_t total = 1;
    for (size_t i = 0; i < nf; i++) {
        if (fields[i].lo > fields[i].hi)
            return -EINVAL;
        if (fields[i].hi > ALLOC_RANGE_VALUE_MAX)
            return -EOVERFLOW;
        uint64_t size = fields[i].hi - fields[i].lo + 1;
        if (total > ALLOC_RANGE_VALUE_MAX / size)
            return -EOVERFLOW;
        total *= size;
    }
    alloc_range *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->nf = nf;
    memcpy(r->f, fields, nf * sizeof(*fields));
    r->total = total;
    *out = r;
    return 0;
}

int alloc_range_new(alloc_range **out, const alloc_span *fields, size_t nfields)
{
    int rc = shape(out, fields, nfields);
    if (rc < 0)
        return rc;
    if (grow(*out, 1) < 0) {
        alloc_range_free(*out);
        *out = NULL;
        return -ENOMEM;
    }
    (*out)->iv[0] = (alloc_span){ 0, (*out)->total - 1 };
    (*out)->n = 1;
    return 0;
}

void alloc_range_free(alloc_range *r)
{
    if (!r)
        return;
    free(r->iv);
    free(r);
}

alloc_range *alloc_range_copy(const alloc_range *r)
{
    alloc_range *c = malloc(sizeof(*c));
    if (!c)
        return NULL;
    *c = *r;
    c->iv = malloc((r->n ? r->n : 1) * sizeof(*c->iv));
    if (!c->iv) {
        free(c);
        return NULL;
    }
    memcpy(c->iv, r->iv, r->n * sizeof(*c->iv));
    c->cap = r->n ? r->n : 1;
    return c;
}

size_t alloc_range_nfields(const alloc_range *r) { return r->nf; }
const alloc_span *alloc_range_field(const alloc_range *r, size_t i) { return &r->f[i]; }
uint64_t alloc_range_size(const alloc_range *r) { return r->total; }
size_t alloc_range_holes(const alloc_range *r) { return r->n; }

uint64_t alloc_range_free_count(const alloc_range *r)
{
    uint64_t c = 0;
    for (size_t i = 0; i < r->n; i++)
        c += r->iv[i].hi - r->iv[i].lo + 1;
    return c;
}

/* Tuple <-> number, the first field most significant. */
static int encode(const alloc_range *r, const uint64_t *t, uint64_t *idx)
{
    uint64_t v = 0;
    for (size_t i = 0; i < r->nf; i++) {
        if (t[i] < r->f[i].lo || t[i] > r->f[i].hi)
            return -ERANGE;
        v = v * (r->f[i].hi - r->f[i].lo + 1) + (t[i] - r->f[i].lo);
    }
    *idx = v;
    return 0;
}

static void decode(const alloc_range *r, uint64_t idx, uint64_t *t)
{
    for (size_t i = r->nf; i-- > 0;) {
        uint64_t size = r->f[i].hi - r->f[i].lo + 1;
        t[i] = r->f[i].lo + idx % size;
        idx /= size;
    }
}

/* Index of the last interval with lo <= idx, or -1. */
static ssize_t find_le(const alloc_range *r, uint64_t idx)
{
    size_t a = 0, b = r->n; /* answer in [a, b) shifted by one */
    while (a < b) {
        size_t m = a + (b - a) / 2;
        if (r->iv[m].lo <= idx)
            a = m + 1;
        else
            b = m;
    }
    return (ssize_t)a - 1;
}

static int is_free_idx(const alloc_range *r, uint64_t idx)
{
    ssize_t i = find_le(r, idx);
    return i >= 0 && idx <= r->iv[i].hi;
}

int alloc_range_is_free(const alloc_range *r, const uint64_t *tuple)
{
    uint64_t idx;
    int rc = encode(r, tuple, &idx);
    return rc < 0 ? rc : is_free_idx(r, idx);
}

/* Take idx out of interval i, which holds it. */
static int take(alloc_range *r, ssize_t i, uint64_t idx)
{
    alloc_span *s = &r->iv[i];
    if (s->lo == s->hi) {
        memmove(s, s + 1, (r->n - (size_t)i - 1) * sizeof(*s));
        r->n--;
    } else if (idx == s->lo) {
        s->lo++;
    } else if (idx == s->hi) {
        s->hi--;
    } else {
        if (grow(r, r->n + 1) < 0)
            return -ENOMEM;
        s = &r->iv[i];
        memmove(s + 2, s + 1, (r->n - (size_t)i - 1) * sizeof(*s));
        s[1] = (alloc_span){ idx + 1, s->hi };
        s->hi = idx - 1;
        r->n++;
    }
    return 0;
}

int alloc_range_reserve(alloc_range *r, const uint64_t *tuple)
{
    uint64_t idx;
    int rc = encode(r, tuple, &idx);
    if (rc < 0)
        return rc;
    ssize_t i = find_le(r, idx);
    if (i < 0 || idx > r->iv[i].hi)
        return -EEXIST;
    return take(r, i, idx);
}

int alloc_range_reserve_any(alloc_range *r, uint64_t *out)
{
    if (r->n == 0)
        return -ENOSPC;
    uint64_t idx = r->iv[0].lo;
    int rc = take(r, 0, idx);
    if (rc == 0)
        decode(r, idx, out);
    return rc;
}

/* The smallest tuple number >= idx whose fields all lie in want, or -1
 * (as *ok = 0). Works on digits: raise a low digit to want.lo, and when a
 * digit is past want.hi carry into the next more significant one. */
static int next_match(const alloc_range *r, const alloc_span *want, uint64_t idx, uint64_t *out)
{
    uint64_t d[ALLOC_RANGE_MAX_FIELDS];
    decode(r, idx, d);
    for (size_t i = 0; i < r->nf; i++) {
        if (d[i] >= want[i].lo && d[i] <= want[i].hi)
            continue;
        size_t from = i + 1;
        if (d[i] < want[i].lo) {
            d[i] = want[i].lo;
        } else {
            size_t k = i;
            while (k > 0 && d[k - 1] == want[k - 1].hi)
                k--;
            if (k == 0)
                return 0;
            d[k - 1]++;
            from = k;
        }
        for (size_t j = from; j < r->nf; j++)
            d[j] = want[j].lo;
        break;
    }
    return encode(r, d, out) == 0;
}

int alloc_range_reserve_in(alloc_range *r, const alloc_span *want, uint64_t *out)
{
    alloc_span w[ALLOC_RANGE_MAX_FIELDS];
    for (size_t i = 0; i < r->nf; i++) {
        w[i].lo = want[i].lo > r->f[i].lo ? want[i].lo : r->f[i].lo;
        w[i].hi = want[i].hi < r->f[i].hi ? want[i].hi : r->f[i].hi;
        if (w[i].lo > w[i].hi)
            return -ERANGE;
    }
    size_t i = 0;
    while (i < r->n) {
        uint64_t m;
        if (!next_match(r, w, r->iv[i].lo, &m))
            return -ENOSPC;
        /* m is the first match at or after this interval: it is free if
         * some interval holds it, else look on from the next one after it. */
        ssize_t j = find_le(r, m);
        if (j >= 0 && m <= r->iv[j].hi) {
            int rc = take(r, j, m);
            if (rc == 0)
                decode(r, m, out);
            return rc;
        }
        i = (size_t)(j + 1);
    }
    return -ENOSPC;
}

int alloc_range_release(alloc_range *r, const uint64_t *tuple)
{
    uint64_t idx;
    int rc = encode(r, tuple, &idx);
    if (rc < 0)
        return rc;
    ssize_t i = find_le(r, idx);
    if (i >= 0 && idx <= r->iv[i].hi)
        return -ENOENT;
    /* idx lies between iv[i] (or nothing) and iv[i+1] (or nothing). */
    size_t p = (size_t)(i + 1);
    int left = i >= 0 && r->iv[i].hi + 1 == idx;
    int right = p < r->n && idx + 1 == r->iv[p].lo;
    if (left && right) {
        r->iv[i].hi = r->iv[p].hi;
        memmove(&r->iv[p], &r->iv[p + 1], (r->n - p - 1) * sizeof(*r->iv));
        r->n--;
    } else if (left) {
        r->iv[i].hi = idx;
    } else if (right) {
        r->iv[p].lo = idx;
    } else {
        if (grow(r, r->n + 1) < 0)
            return -ENOMEM;
        memmove(&r->iv[p + 1], &r->iv[p], (r->n - p) * sizeof(*r->iv));
        r->iv[p] = (alloc_span){ idx, idx };
        r->n++;
    }
    return 0;
}

/* --- persistence ---------------------------------------------------- */

/* Append "lo-hi" pairs joined by ','. */
static int put_spans(char **buf, size_t *len, size_t *cap, const alloc_span *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (*cap - *len < 48) {
            size_t nc = *cap * 2 + 64;
            char *nb = realloc(*buf, nc);
            if (!nb)
                return -ENOMEM;
            *buf = nb;
            *cap = nc;
        }
        *len += (size_t)snprintf(*buf + *len, *cap - *len, "%s%" PRIu64 "-%" PRIu64,
                                 i ? "," : "", s[i].lo, s[i].hi);
    }
    return 0;
}

char *alloc_range_dump(const alloc_range *r)
{
    size_t cap = 64, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    len = (size_t)snprintf(buf, cap, "fields=");
    if (put_spans(&buf, &len, &cap, r->f, r->nf) < 0)
        goto fail;
    /* put_spans leaves at least 48 bytes free after each span */
    len += (size_t)snprintf(buf + len, cap - len, " free=");
    if (put_spans(&buf, &len, &cap, r->iv, r->n) < 0)
        goto fail;
    return buf;
fail:
    free(buf);
    return NULL;
}

/* Parse "a-b,c,d-e" into spans; stops at end or a space. */
static int get_spans(const char **pp, alloc_span *out, size_t max, size_t *n)
{
    const char *p = *pp;
    *n = 0;
    while (*p && *p != ' ') {
        if (*n == max)
            return -EINVAL;
        char *end;
        if (*p < '0' || *p > '9')
            return -EINVAL;
        errno = 0;
        uint64_t lo = strtoull(p, &end, 10), hi = lo;
        if (errno)
            return -EINVAL;
        p = end;
        if (*p == '-') {
            if (p[1] < '0' || p[1] > '9')
                return -EINVAL;
            hi = strtoull(p + 1, &end, 10);
            if (errno)
                return -EINVAL;
            p = end;
        }
        out[(*n)++] = (alloc_span){ lo, hi };
        if (*p == ',')
            p++;
        else if (*p && *p != ' ')
            return -EINVAL;
    }
    *pp = p;
    return 0;
}

/* Install a free list read from outside: sorted, disjoint, inside. */
static int set_free(alloc_range *r, const alloc_span *iv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (iv[i].lo > iv[i].hi || iv[i].hi >= r->total)
            return -EINVAL;
        /* adjacent intervals would break the merging invariant */
        if (i && iv[i].lo <= iv[i - 1].hi + 1)
            return -EINVAL;
    }
    if (grow(r, n ? n : 1) < 0)
        return -ENOMEM;
    memcpy(r->iv, iv, n * sizeof(*iv));
    r->n = n;
    return 0;
}

int alloc_range_load(alloc_range **out, const char *text)
{
    *out = NULL;
    alloc_span f[ALLOC_RANGE_MAX_FIELDS];
    size_t nf, n;
    const char *p = text;
    if (!p || strncmp(p, "fields=", 7))
        return -EINVAL;
    p += 7;
    int rc = get_spans(&p, f, ALLOC_RANGE_MAX_FIELDS, &nf);
    if (rc < 0 || strncmp(p, " free=", 6))
        return -EINVAL;
    p += 6;
    /* Count the free list's entries to size it. */
    size_t max = 1;
    for (const char *q = p; *q; q++)
        max += *q == ',';
    alloc_span *iv = malloc(max * sizeof(*iv));
    alloc_range *r = NULL;
    if (!iv)
        return -ENOMEM;
    rc = get_spans(&p, iv, max, &n);
    if (rc == 0 && *p)
        rc = -EINVAL;
    if (rc == 0)
        rc = shape(&r, f, nf);
    if (rc == 0)
        rc = set_free(r, iv, n);
    free(iv);
    if (rc < 0) {
        alloc_range_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

static json_t *spans_json(const alloc_span *s, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        json_t *pair = json_array();
        if (!pair || json_append(pair, json_int((long long)s[i].lo)) ||
            json_append(pair, json_int((long long)s[i].hi)) || json_append(a, pair)) {
            json_free(a);
            return NULL;
        }
    }
    return a;
}

json_t *alloc_range_to_json(const alloc_range *r)
{
    json_t *o = json_object();
    if (!o || json_set(o, "fields", spans_json(r->f, r->nf)) ||
        json_set(o, "free", spans_json(r->iv, r->n))) {
        json_free(o);
        return NULL;
    }
    return o;
}

static int json_spans(const json_t *a, alloc_span **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (json_typeof(a) != JSON_ARRAY)
        return -EINVAL;
    size_t len = json_len(a);
    alloc_span *s = malloc((len ? len : 1) * sizeof(*s));
    if (!s)
        return -ENOMEM;
    for (size_t i = 0; i < len; i++) {
        const json_t *pair = json_at(a, i);
        long long lo, hi;
        if (json_typeof(pair) != JSON_ARRAY || json_len(pair) != 2 ||
            json_as_int(json_at(pair, 0), &lo) || json_as_int(json_at(pair, 1), &hi) || lo < 0 ||
            hi < 0) {
            free(s);
            return -EINVAL;
        }
        s[i] = (alloc_span){ (uint64_t)lo, (uint64_t)hi };
    }
    *out = s;
    *n = len;
    return 0;
}

int alloc_range_from_json(alloc_range **out, const json_t *v)
{
    *out = NULL;
    alloc_span *f = NULL, *iv = NULL;
    size_t nf = 0, n = 0;
    alloc_range *r = NULL;
    int rc = json_spans(json_get(v, "fields"), &f, &nf);
    if (rc == 0)
        rc = json_spans(json_get(v, "free"), &iv, &n);
    if (rc == 0)
        rc = shape(&r, f, nf);
    if (rc == 0)
        rc = set_free(r, iv, n);
    free(f);
    free(iv);
    if (rc < 0) {
        alloc_range_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* --- guest PCI addresses -------------------------------------------- */

#define PCI_SLOTS 32
#define PCI_FUNCS 8

/* "SS", "SS.F", "BB:SS.F", "DDDD:BB:SS.F" (hex); *fn = -1 for a slot. */
static int pci_parse(const char *text, int *slot, int *fn)
{
    unsigned long v[4];
    int nv = 0;
    const char *p = text;
    char *end;
    *fn = -1;
    while (nv < 4) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F')))
            return -EINVAL;
        if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
            p += 2;
        v[nv++] = strtoul(p, &end, 16);
        if (end == p || v[nv - 1] > 0xffff)
            return -EINVAL;
        p = end;
        if (*p == ':')
            p++;
        else
            break;
    }
    if (*p == '.') {
        if (p[1] < '0' || p[1] > '7' || p[2])
            return -EINVAL;
        *fn = p[1] - '0';
    } else if (*p) {
        return -EINVAL;
    }
    /* Everything before the slot (bus, domain) must be 0: one root bus. */
    for (int i = 0; i < nv - 1; i++)
        if (v[i] != 0)
            return -ERANGE;
    if (v[nv - 1] >= PCI_SLOTS)
        return -ERANGE;
    *slot = (int)v[nv - 1];
    return 0;
}

/* Reserve slot.fn, or every function of the slot for fn < 0, all or none. */
static int pci_take(alloc_range *r, int slot, int fn)
{
    int lo = fn < 0 ? 0 : fn, hi = fn < 0 ? PCI_FUNCS - 1 : fn;
    for (int f = lo; f <= hi; f++) {
        uint64_t t[3] = { 0, (uint64_t)slot, (uint64_t)f };
        if (alloc_range_is_free(r, t) != 1)
            return -EEXIST;
    }
    for (int f = lo; f <= hi; f++) {
        uint64_t t[3] = { 0, (uint64_t)slot, (uint64_t)f };
        int rc = alloc_range_reserve(r, t);
        if (rc < 0) {
            while (f-- > lo) {
                t[2] = (uint64_t)f;
                alloc_range_release(r, t);
            }
            return rc;
        }
    }
    return 0;
}

int alloc_pci_reserve(alloc_range *r, const char *addr, char *err, size_t errlen)
{
    int slot, fn, rc = pci_parse(addr ? addr : "", &slot, &fn);
    if (rc < 0) {
        if (err && errlen)
            snprintf(err, errlen, "bad guest PCI address '%s': want SS or SS.F (hex) on bus 0",
                     addr ? addr : "");
        return rc;
    }
    rc = pci_take(r, slot, fn);
    if (rc < 0 && err && errlen) {
        char where[8];
        if (fn < 0)
            snprintf(where, sizeof(where), "%02x", slot);
        else
            snprintf(where, sizeof(where), "%02x.%d", slot, fn);
        if (rc == -EEXIST)
            snprintf(err, errlen, "guest PCI address %s is already used", where);
        else
            snprintf(err, errlen, "guest PCI address %s: %s", where, strerror(-rc));
    }
    return rc;
}

int alloc_pci_new(alloc_range **out, const char *reserved, char *err, size_t errlen)
{
    const alloc_span f[3] = { { 0, 0 }, { 0, PCI_SLOTS - 1 }, { 0, PCI_FUNCS - 1 } };
    int rc = alloc_range_new(out, f, 3);
    if (rc < 0) {
        if (err && errlen)
            snprintf(err, errlen, "out of memory");
        return rc;
    }
    char item[32];
    for (const char *p = reserved ? reserved : ""; *p;) {
        size_t n = strcspn(p, ",");
        if (n == 0 || n >= sizeof(item)) {
            rc = -EINVAL;
            if (err && errlen)
                snprintf(err, errlen, "bad reserved PCI set '%s'", reserved);
            break;
        }
        memcpy(item, p, n);
        item[n] = '\0';
        if ((rc = alloc_pci_reserve(*out, item, err, errlen)) < 0)
            break;
        p += n + (p[n] == ',');
    }
    if (rc < 0) {
        alloc_range_free(*out);
        *out = NULL;
    }
    return rc;
}

int alloc_pci_take_slot(alloc_range *r, int *slot)
{
    for (int s = 0; s < PCI_SLOTS; s++)
        if (pci_take(r, s, -1) == 0) {
            *slot = s;
            return 0;
        }
    return -ENOSPC;
}

int alloc_pci_release_slot(alloc_range *r, int slot)
{
    if (slot < 0 || slot >= PCI_SLOTS)
        return -ERANGE;
    int released = 0;
    for (int f = 0; f < PCI_FUNCS; f++) {
        uint64_t t[3] = { 0, (uint64_t)slot, (uint64_t)f };
        released += alloc_range_release(r, t) == 0;
    }
    return released ? 0 : -ENOENT;
}
