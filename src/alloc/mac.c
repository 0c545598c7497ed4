/* alloc_mac.c - guest MAC addresses, one per (VM instance, NIC index).
 *
 * Leases are keyed by owner: the lease of NIC n of "RUN/VM" belongs to
 * "RUN/VM/nicn", so asking again returns the same MAC and each NIC has
 * exactly one. A MAC may appear in two leases only when both are marked
 * shareable: the source and destination of a migration carry one MAC. */
#include "src/alloc/alloc_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#define RANDOM_TRIES 32

static int read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    int rc = fgets(buf, (int)len, f) ? 0 : -EIO;
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
    return rc;
}

/* The MAC of the first NIC (by name) under root/class/net that is not
 * loopback and not all-zero; NICs backed by a device first, since a
 * bridge's or tunnel's address may change at every boot. */
static int host_mac(const char *root, unsigned char mac[6], char *name, size_t namelen)
{
    char dir[4096], path[4096 + 320], line[128];
    snprintf(dir, sizeof(dir), "%s/class/net", root);
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, alphasort);
    if (n < 0)
        return -errno;
    int found = -ENODEV;
    for (int pass = 0; pass < 2 && found < 0; pass++) {
        for (int i = 0; i < n && found < 0; i++) {
            const char *nm = ents[i]->d_name;
            struct stat st;
            if (nm[0] == '.' || !strcmp(nm, "lo"))
                continue;
            snprintf(path, sizeof(path), "%s/%s/device", dir, nm);
            if (pass == 0 && stat(path, &st) < 0)
                continue;
            snprintf(path, sizeof(path), "%s/%s/address", dir, nm);
            if (read_line(path, line, sizeof(line)) < 0 || mac_parse(line, mac) < 0)
                continue; /* not Ethernet (e.g. InfiniBand's 20 octets) */
            if (!(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
                continue;
            snprintf(name, namelen, "%s", nm);
            found = 0;
        }
    }
    for (int i = 0; i < n; i++)
        free(ents[i]);
    free(ents);
    return found;
}

int alloc_mac_host_prefix(const char *sysfs_root, char *out, size_t outlen, char *err,
                          size_t errlen)
{
    unsigned char m[6];
    char nic[256];
    const char *root = sysfs_root ? sysfs_root : "/sys";
    int rc = host_mac(root, m, nic, sizeof(nic));
    if (rc < 0)
        return alloc__errf(err, errlen, rc,
                          "cannot derive a MAC prefix: no NIC with a MAC under %s/class/net; "
                          "set mac_prefix",
                          root);
    /* The first octet keeps the vendor's high bits but is made locally
     * administered (so it can never equal a burnt-in address) and unicast
     * (a NIC's own address must not be a group address). The last three
     * octets are the per-NIC serial: what tells two hosts apart. */
    unsigned first = (m[0] | 0x02u) & ~0x01u;
    if (snprintf(out, outlen, "%02x:%02x:%02x:%02x:", first, m[3], m[4], m[5]) >= (int)outlen)
        return alloc__errf(err, errlen, -ENAMETOOLONG, "prefix buffer too small");
    return 0;
}

/* Once per process: a prefix derived from a locally administered NIC MAC
 * is likely the same on every VM cloned from one image (issue 18). */
static void warn_cloned(const char *prefix, const char *nic, const unsigned char m[6])
{
    static int warned;
    char mac[MAC_STRLEN];
    if (warned++)
        return;
    mac_format(m, mac);
    fprintf(stderr,
            "qfleet: warning: MAC prefix %s is derived from NIC %s (%s), a locally administered "
            "MAC: every VM cloned from the same image likely derives the same prefix and hands "
            "out the same MACs; use --store etcd://HOST:PORT (docs/cluster.md) or set mac_prefix "
            "(or $%s) per host\n",
            prefix, nic, mac, ALLOC_MAC_PREFIX_ENV);
}

int alloc_mac_default_prefix(const char *sysfs_root, char *out, size_t outlen, const char **from,
                             char *err, size_t errlen)
{
    const char *env = getenv(ALLOC_MAC_PREFIX_ENV);
    if (env && *env) {
        if (from)
            *from = ALLOC_MAC_PREFIX_ENV;
        if (snprintf(out, outlen, "%s", env) >= (int)outlen)
            return alloc__errf(err, errlen, -EINVAL, "bad MAC prefix '%s' in $%s: too long", env,
                              ALLOC_MAC_PREFIX_ENV);
        return 0;
    }
    int rc = alloc_mac_host_prefix(sysfs_root, out, outlen, err, errlen);
    unsigned char m[6];
    char nic[256];
    int local = rc == 0 && host_mac(sysfs_root ? sysfs_root : "/sys", m, nic, sizeof(nic)) == 0 &&
                (m[0] & 0x02);
    if (from)
        *from = local ? ALLOC_MAC_FROM_LOCAL : ALLOC_MAC_FROM_NIC;
    if (local)
        warn_cloned(out, nic, m);
    return rc;
}

static int nic_owner(const alloc_owner *o, int nic, char *out, char *err, size_t errlen)
{
    if (nic < 0 || nic > 9999)
        return alloc__errf(err, errlen, -EINVAL, "bad NIC index %d", nic);
    if (snprintf(out, ALLOC_OWNER_MAX, "%s/nic%d", o->name, nic) >= ALLOC_OWNER_MAX)
        return alloc__errf(err, errlen, -ENAMETOOLONG, "owner name too long");
    return 0;
}

/* Resolve the prefix into octets; explain errors. */
static int get_prefix(alloc_store *s, const char *prefix, unsigned char *oct, char *err,
                      size_t errlen)
{
    char host[32];
    const char *from = NULL;
    if (!prefix) {
        int rc = alloc_mac_default_prefix(alloc__opts(s)->sysfs_root, host, sizeof(host), &from,
                                          err, errlen);
        if (rc < 0)
            return rc;
        prefix = host;
    }
    int k = mac_octets_parse(prefix, oct, 5);
    if (k < 0)
        return alloc__errf(err, errlen, -EINVAL,
                          "bad MAC prefix '%s'%s%s: want 0 to 5 octets like 02:11:22:", prefix,
                          from ? " from " : "", from ? from : "");
    /* A prefix from the cfg is used as given (the cfg may name a vendor
     * OUI on purpose), but a multicast address cannot be a NIC's. */
    if (k > 0 && (oct[0] & 0x01))
        return alloc__errf(err, errlen, -EINVAL,
                          "MAC prefix '%s' is multicast (bit 0 of the first octet is set)",
                          prefix);
    return k;
}

static uint64_t mac_u64(const unsigned char m[6])
{
    uint64_t v = 0;
    for (int i = 0; i < 6; i++)
        v = v << 8 | m[i];
    return v;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* After random tries failed the space is nearly full: list the leased
 * suffixes under the prefix and take the first gap at or after a random
 * point, so exhaustion is told apart from bad luck. */
static int find_gap(alloc_store *s, const unsigned char *oct, int k, uint64_t start,
                    unsigned char mac[6])
{
    int bits = 8 * (6 - k);
    uint64_t space = (uint64_t)1 << bits, mask = space - 1;
    uint64_t base = 0;
    for (int i = 0; i < k; i++)
        base = base << 8 | oct[i];
    base <<= bits;
    size_t n = 0, cap = alloc__count(s);
    uint64_t *used = malloc((cap ? cap : 1) * sizeof(*used));
    if (!used)
        return -ENOMEM;
    for (size_t i = 0; i < cap; i++) {
        const alloc_lease *l = alloc__at(s, i);
        unsigned char m[6];
        if (!strcmp(l->kind, "mac") && mac_parse(l->value, m) == 0 &&
            (mac_u64(m) & ~mask) == base)
            used[n++] = mac_u64(m) & mask;
    }
    qsort(used, n, sizeof(*used), cmp_u64);
    /* Count distinct leased suffixes (shared MACs appear twice). */
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++)
        distinct += i == 0 || used[i] != used[i - 1];
    int rc = -ENOSPC;
    if (distinct < space) {
        /* Fewer than space are used, so a gap lies within distinct + 1
         * steps of any starting point. */
        uint64_t cand = start & mask;
        while (bsearch(&cand, used, n, sizeof(*used), cmp_u64))
            cand = (cand + 1) & mask;
        uint64_t v = base | cand;
        for (int b = 5; b >= 0; b--, v >>= 8)
            mac[b] = (unsigned char)(v & 0xff);
        rc = 0;
    }
    free(used);
    return rc;
}

int alloc_mac(alloc_store *s, const alloc_owner *o, int nic, const char *prefix, unsigned flags,
              char *out, char *err, size_t errlen)
{
    char owner[ALLOC_OWNER_MAX];
    unsigned char oct[6];
    int rc = nic_owner(o, nic, owner, err, errlen);
    int k = rc < 0 ? rc : get_prefix(s, prefix, oct, err, errlen);
    if (k < 0)
        return k;
    if ((rc = alloc__enter(s, err, errlen)) < 0)
        return rc;
    const alloc_lease *mine = alloc__find_owned(s, "mac", owner);
    if (mine) {
        snprintf(out, MAC_STRLEN, "%.17s", mine->value);
        return alloc__leave(s, 0, err, errlen);
    }
    unsigned char mac[6];
    char text[MAC_STRLEN];
    rc = -ENOSPC;
    for (int t = 0; t < RANDOM_TRIES && rc < 0; t++) {
        memcpy(mac, oct, (size_t)k);
        if (getrandom(mac + k, (size_t)(6 - k), 0) != 6 - k) {
            rc = alloc__errf(err, errlen, -EIO, "getrandom: %s", strerror(errno));
            return alloc__leave(s, rc, err, errlen);
        }
        if (k == 0)
            mac[0] = (unsigned char)((mac[0] | 0x02) & ~0x01);
        mac_format(mac, text);
        if (!alloc__find(s, "mac", text))
            rc = 0;
    }
    if (rc < 0 && k > 0) {
        uint64_t r = 0;
        if (getrandom(&r, sizeof(r), 0) != sizeof(r))
            r = 0;
        rc = find_gap(s, oct, k, r, mac);
        if (rc == 0)
            mac_format(mac, text);
    }
    if (rc < 0) {
        char pfx[20] = "";
        for (int i = 0; i < k; i++) /* "02:11:22:33:44", no trailing ':' */
            snprintf(pfx + (i ? 3 * i - 1 : 0), sizeof(pfx) - 3 * (size_t)i, "%s%02x",
                     i ? ":" : "", oct[i]);
        if (rc == -ENOSPC && k > 0)
            alloc__errf(err, errlen, rc, "no free MAC under prefix %s (all %llu are leased)", pfx,
                       1ULL << (8 * (6 - k)));
        else
            alloc__errf(err, errlen, rc, "no free MAC under prefix %s: %s", pfx[0] ? pfx : "(none)",
                       strerror(-rc));
        return alloc__leave(s, rc, err, errlen);
    }
    if ((rc = alloc__add(s, o, owner, "mac", text, flags, NULL)) < 0)
        alloc__errf(err, errlen, rc, "lease MAC: %s", strerror(-rc));
    else
        snprintf(out, MAC_STRLEN, "%s", text);
    return alloc__leave(s, rc, err, errlen);
}

/* A shared MAC has at most ALLOC_SHARED_MAX holders (a migration pair):
 * -EEXIST naming them when owner would be one more. */
static int shared_full(alloc_store *s, const char *owner, const char *mac, char *err,
                       size_t errlen)
{
    const alloc_lease *h[ALLOC_SHARED_MAX];
    int n = 0;
    for (size_t i = 0; i < alloc__count(s); i++) {
        const alloc_lease *l = alloc__at(s, i);
        if (strcmp(l->kind, "mac") || strcmp(l->value, mac) || !(l->flags & ALLOC_SHARED))
            continue;
        if (!strcmp(l->owner, owner))
            return 0; /* already one of them */
        if (n < ALLOC_SHARED_MAX)
            h[n] = l;
        n++;
    }
    if (n < ALLOC_SHARED_MAX)
        return 0;
    return alloc__errf(err, errlen, -EEXIST,
                      "MAC %s is already shared by %s (pid %d) and %s (pid %d): a shared MAC "
                      "has at most %d holders, a migration pair (source and destination)",
                      mac, h[0]->owner, (int)h[0]->pid, h[1]->owner, (int)h[1]->pid,
                      ALLOC_SHARED_MAX);
}

int alloc_reserve_mac(alloc_store *s, const alloc_owner *o, int nic, const char *mac,
                      unsigned flags, char *err, size_t errlen)
{
    char owner[ALLOC_OWNER_MAX], text[MAC_STRLEN];
    unsigned char m[6];
    int rc = nic_owner(o, nic, owner, err, errlen);
    if (rc < 0)
        return rc;
    if (mac_parse(mac, m) < 0)
        return alloc__errf(err, errlen, -EINVAL, "bad MAC address '%s'", mac ? mac : "");
    if (m[0] & 0x01)
        return alloc__errf(err, errlen, -EINVAL, "MAC %s is multicast", mac);
    mac_format(m, text);
    if ((rc = alloc__enter(s, err, errlen)) < 0)
        return rc;
    /* Check everything first: a failed reserve changes nothing. The pair
     * tag this NIC's lease of the MAC carries, if any, lets it past its
     * partner's. */
    const char *mytag = "";
    for (size_t i = 0; i < alloc__count(s); i++) {
        const alloc_lease *l = alloc__at(s, i);
        if (!strcmp(l->kind, "mac") && !strcmp(l->owner, owner) && !strcmp(l->value, text))
            mytag = l->data;
    }
    ssize_t same = -1, old = -1;
    if ((flags & ALLOC_SHARED) && (rc = shared_full(s, owner, text, err, errlen)) < 0)
        return alloc__leave(s, rc, err, errlen);
    for (size_t i = 0; i < alloc__count(s) && rc == 0; i++) {
        const alloc_lease *l = alloc__at(s, i);
        if (strcmp(l->kind, "mac"))
            continue;
        if (!strcmp(l->owner, owner)) {
            if (strcmp(l->value, text))
                old = (ssize_t)i;
            else
                same = (ssize_t)i;
        } else if (!strcmp(l->value, text) && l->data[0] && strcmp(l->data, mytag)) {
            /* A migration pair's MAC (alloc_share_mac) is theirs alone. */
            char what[96];
            snprintf(what, sizeof(what), "MAC %s", text);
            rc = alloc__err_held(l, what, err, errlen);
            size_t used = err ? strlen(err) : 0;
            if (err && used < errlen)
                snprintf(err + used, errlen - used, ", shared by a migration pair");
        } else if (!strcmp(l->value, text) && mytag[0] && !strcmp(l->data, mytag)) {
            /* the partner of our pair: untouched, whatever we make ours */
        } else if (!strcmp(l->value, text) && !(flags & l->flags & ALLOC_SHARED)) {
            char what[96];
            snprintf(what, sizeof(what), "MAC %s", text);
            rc = alloc__err_held(l, what, err, errlen);
            const char *why = l->flags & ALLOC_SHARED ? "; reserve it as shareable to share it"
                              : flags & ALLOC_SHARED  ? ", which does not share it"
                                                      : "";
            size_t used = err ? strlen(err) : 0;
            if (err && used < errlen)
                snprintf(err + used, errlen - used, "%s", why);
        }
    }
    if (rc == 0 && same >= 0) {
        /* Already ours: only the shareable mark may change, and a
         * migration pair's tag goes (the lease is plainly ours again). */
        alloc_lease *l = alloc__at(s, (size_t)same);
        if ((l->flags & ALLOC_SHARED) != (flags & ALLOC_SHARED) || l->data[0]) {
            l->flags = (l->flags & ~ALLOC_SHARED) | (flags & ALLOC_SHARED);
            l->data[0] = '\0';
            alloc__touch(s);
        }
    } else if (rc == 0) {
        if ((rc = alloc__reserve(s, 1)) < 0)
            alloc__errf(err, errlen, rc, "out of memory");
        else {
            if (old >= 0)
                alloc__remove_at(s, (size_t)old);
            alloc__add(s, o, owner, "mac", text, flags, NULL);
        }
    }
    return alloc__leave(s, rc, err, errlen);
}

/* --- a migration pair ------------------------------------------------ */

/* "pair " and 16 hex digits of FNV-1a over both owners: what marks the two
 * leases of one pair (owner names are longer than a lease's data). */
static void pair_tag(const char *a, const char *b, char out[ALLOC_DATA_MAX])
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const char *p = a; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    h = (h ^ 0xff) * 0x100000001b3ULL;
    for (const char *p = b; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    snprintf(out, ALLOC_DATA_MAX, "pair %016llx", (unsigned long long)h);
}

int alloc_share_mac(alloc_store *s, const alloc_owner *src, int src_nic, const alloc_owner *dst,
                    int dst_nic, char *out, char *err, size_t errlen)
{
    char so[ALLOC_OWNER_MAX], dn[ALLOC_OWNER_MAX], tag[ALLOC_DATA_MAX];
    int rc = nic_owner(src, src_nic, so, err, errlen);
    if (rc == 0)
        rc = nic_owner(dst, dst_nic, dn, err, errlen);
    if (rc < 0)
        return rc;
    if (!strcmp(src->name, dst->name))
        return alloc__errf(err, errlen, -EINVAL, "%s cannot share a MAC with itself", src->name);
    pair_tag(so, dn, tag);
    if ((rc = alloc__enter(s, err, errlen)) < 0)
        return rc;
    alloc_lease *mine = alloc__find_owned(s, "mac", so);
    if (!mine)
        return alloc__leave(s, alloc__errf(err, errlen, -ENOENT, "%s holds no MAC", so), err,
                           errlen);
    char mac[MAC_STRLEN];
    snprintf(mac, sizeof(mac), "%.17s", mine->value);
    /* Check first: the MAC has no holder but the pair, each NIC one MAC. */
    ssize_t old = -1, same = -1;
    for (size_t i = 0; i < alloc__count(s) && rc == 0; i++) {
        const alloc_lease *l = alloc__at(s, i);
        if (strcmp(l->kind, "mac"))
            continue;
        if (!strcmp(l->owner, dn))
            *(strcmp(l->value, mac) ? &old : &same) = (ssize_t)i;
        else if (strcmp(l->owner, so) && !strcmp(l->value, mac))
            rc = alloc__err_held(l, "the source's MAC", err, errlen);
    }
    if (rc == 0 && same < 0 && (rc = alloc__reserve(s, 1)) < 0)
        alloc__errf(err, errlen, rc, "out of memory");
    if (rc == 0) {
        mine = alloc__find_owned(s, "mac", so);
        mine->flags |= ALLOC_SHARED;
        snprintf(mine->data, sizeof(mine->data), "%s", tag);
        if (same >= 0) {
            alloc_lease *l = alloc__at(s, (size_t)same);
            l->flags |= ALLOC_SHARED;
            snprintf(l->data, sizeof(l->data), "%s", tag);
        } else {
            if (old >= 0)
                alloc__remove_at(s, (size_t)old);
            alloc__add(s, dst, dn, "mac", mac, ALLOC_SHARED, tag);
        }
        alloc__touch(s);
        snprintf(out, MAC_STRLEN, "%s", mac);
    }
    return alloc__leave(s, rc, err, errlen);
}
