/* util.c - messages, QEMU escaping and value checks for the cfg library. */
#include "cfg/util.h"

#include "base/mac.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sb_add_qemu(struct sbuf *b, const char *s)
{
    for (const char *p = s; *p; p++) {
        if (*p == ',')
            sb_addc(b, ',');
        sb_addc(b, *p);
    }
}

/* --- messages ------------------------------------------------------------ */

int cfg_verrf(char *err, size_t errlen, struct cfg_loc loc, const char *fmt, va_list ap)
{
    if (err && errlen) {
        int n = snprintf(err, errlen, "%s:%d:%d: error: ", loc.file ? loc.file : "?", loc.line,
                         loc.col);
        if (n >= 0 && (size_t)n < errlen)
            vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    }
    return -EINVAL;
}

int cfg_errf(char *err, size_t errlen, struct cfg_loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = cfg_verrf(err, errlen, loc, fmt, ap);
    va_end(ap);
    return r;
}

struct cfg_loc loc_add(struct cfg_loc loc, int off)
{
    loc.col += off;
    return loc;
}

/* --- values -------------------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Up to maxd hex digits at *p; advances. -1 if none or too many. */
static long hexnum(const char **p, int maxd)
{
    long v = 0;
    int d = 0;
    while (hexval((unsigned char)**p) >= 0) {
        if (++d > maxd)
            return -1;
        v = v * 16 + hexval((unsigned char)**p);
        (*p)++;
    }
    return d ? v : -1;
}

int slot_parse(const char *s, int *slot, int *fn)
{
    const char *p = s;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
        p += 2;
    long sl = hexnum(&p, 2), f = 0;
    if (sl < 0 || sl > 0x1f)
        return -EINVAL;
    if (*p == '.') {
        p++;
        f = hexnum(&p, 1);
        if (f < 0 || f > 7)
            return -EINVAL;
    }
    if (*p)
        return -EINVAL;
    *slot = (int)sl;
    *fn = (int)f;
    return 0;
}

int bdf_parse(const char *s, char out[13])
{
    const char *p = s;
    long dom = 0, bus, dev, fn;
    long a = hexnum(&p, 4);
    if (a < 0 || *p != ':')
        return -EINVAL;
    p++;
    long b = hexnum(&p, 2);
    if (b < 0)
        return -EINVAL;
    if (*p == ':') { /* DDDD:BB:DD.F */
        p++;
        dom = a;
        bus = b;
        dev = hexnum(&p, 2);
    } else {
        if (a > 0xff)
            return -EINVAL;
        bus = a;
        dev = b;
    }
    if (dev < 0 || dev > 0x1f || *p != '.')
        return -EINVAL;
    p++;
    fn = hexnum(&p, 1);
    if (fn < 0 || fn > 7 || *p)
        return -EINVAL;
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "%04lx:%02lx:%02lx.%lx", dom, bus, dev, fn);
    memcpy(out, tmp, 13);
    out[12] = '\0';
    return 0;
}

int int_parse(const char *s, long lo, long hi, long *out)
{
    long v = 0;
    if (!*s || strlen(s) > 18)
        return -EINVAL;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        v = v * 10 + (*p - '0');
    }
    if (v < lo || v > hi)
        return -EINVAL;
    *out = v;
    return 0;
}

char *path_resolve(struct arena *a, const char *dir, const char *path)
{
    if (path[0] == '/' || !dir || !*dir)
        return ar_strdup(a, path);
    while (path[0] == '.' && path[1] == '/') {
        path += 2;
        while (*path == '/')
            path++;
    }
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    if (!*path || !strcmp(path, "."))
        return ar_strndup(a, dir, dl);
    return ar_printf(a, "%.*s/%s", (int)dl, dir, path);
}

int cfg_mac_parse(const char *s, char out[18])
{
    unsigned char m[6];
    if (mac_parse(s, m) < 0)
        return -EINVAL;
    if ((m[0] & 1) || !(m[0] | m[1] | m[2] | m[3] | m[4] | m[5]))
        return -EDOM;
    mac_format(m, out);
    return 0;
}
