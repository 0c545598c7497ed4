/* alloc_port.c - VNC displays and host ports (SSH forwards, migration,
 * serial sockets).
 *
 * A port is free when no lease holds it and it can be bound right now: the
 * lease keeps other qfleet processes off it from the moment it is chosen
 * until QEMU listens on it, and the bind test keeps us off ports that
 * processes outside qfleet use. VNC display N leases "vnc N" and the port
 * 5900+N (and 5700+N for its websocket) so port ranges that overlap the VNC
 * ports stay consistent with displays. */
#include "src/alloc/alloc_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int alloc_port_bindable(const char *addr, int port)
{
    struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port) };
    struct sockaddr *sa;
    socklen_t len;
    if (port <= 0 || port > 65535)
        return 0;
    if (inet_pton(AF_INET, addr, &a4.sin_addr) == 1) {
        sa = (struct sockaddr *)&a4;
        len = sizeof(a4);
    } else if (inet_pton(AF_INET6, addr, &a6.sin6_addr) == 1) {
        sa = (struct sockaddr *)&a6;
        len = sizeof(a6);
    } else {
        return 0;
    }
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    /* QEMU listens with SO_REUSEADDR, so test the same way: a port left in
     * TIME_WAIT is usable, one with a listener (on any address) is not. */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    int ok = bind(fd, sa, len) == 0;
    close(fd);
    return ok;
}

static const alloc_lease *port_lease(alloc_store *s, int port)
{
    char v[16];
    snprintf(v, sizeof(v), "%d", port);
    return alloc__find(s, "port", v);
}

/* 0 if o may take port (free, or o's already), else -EEXIST/-EADDRINUSE
 * with err filled. *mine tells which. */
static int port_check(alloc_store *s, const char *owner, int port, int *mine, char *err,
                      size_t errlen)
{
    const alloc_lease *l = port_lease(s, port);
    *mine = l && !strcmp(l->owner, owner);
    if (l && !*mine) {
        char what[32];
        snprintf(what, sizeof(what), "port %d", port);
        return alloc__err_held(l, what, err, errlen);
    }
    /* A port we hold may already have its listener: no bind test then. */
    if (!*mine && !alloc_port_bindable(alloc__opts(s)->listen, port))
        return alloc__errf(err, errlen, -EADDRINUSE, "port %d is in use by a process outside qfleet",
                          port);
    return 0;
}

static int add_port(alloc_store *s, const alloc_owner *o, int port, const char *why)
{
    char v[16];
    snprintf(v, sizeof(v), "%d", port);
    return alloc__add(s, o, NULL, "port", v, 0, why);
}

/* Checks for display n of o: the display lease and each port. */
static int vnc_check(alloc_store *s, const alloc_owner *o, int n, unsigned flags, int *mine_ws,
                     int *mine_vnc, char *err, size_t errlen)
{
    char v[16];
    snprintf(v, sizeof(v), "%d", n);
    const alloc_lease *l = alloc__find(s, "vnc", v);
    if (l && strcmp(l->owner, o->name)) {
        char what[32];
        snprintf(what, sizeof(what), "VNC display %d", n);
        return alloc__err_held(l, what, err, errlen);
    }
    int rc = port_check(s, o->name, ALLOC_VNC_PORT_BASE + n, mine_vnc, err, errlen);
    *mine_ws = 1;
    if (rc == 0 && (flags & ALLOC_WEBSOCKET))
        rc = port_check(s, o->name, ALLOC_WS_PORT_BASE + n, mine_ws, err, errlen);
    return rc;
}

/* Lease display n (checked) with what o does not hold yet. */
static int vnc_add(alloc_store *s, const alloc_owner *o, int n, int have_vnc, int mine_port,
                   int mine_ws, char *err, size_t errlen)
{
    char v[16], why[24];
    snprintf(v, sizeof(v), "%d", n);
    snprintf(why, sizeof(why), "vnc %d", n);
    if (alloc__reserve(s, 3) < 0)
        return alloc__errf(err, errlen, -ENOMEM, "out of memory");
    if (!have_vnc)
        alloc__add(s, o, NULL, "vnc", v, 0, NULL);
    if (!mine_port)
        add_port(s, o, ALLOC_VNC_PORT_BASE + n, why);
    if (!mine_ws) {
        snprintf(why, sizeof(why), "vnc %d websocket", n);
        add_port(s, o, ALLOC_WS_PORT_BASE + n, why);
    }
    return 0;
}

static int display_ok(int n) { return n >= 0 && n <= 65535 - ALLOC_VNC_PORT_BASE; }

int alloc_vnc(alloc_store *s, const alloc_owner *o, unsigned flags, int *display, char *err,
              size_t errlen)
{
    const alloc_opts *opt = alloc__opts(s);
    if (!display_ok(opt->vnc_first) || !display_ok(opt->vnc_last) ||
        opt->vnc_first > opt->vnc_last ||
        ((flags & ALLOC_WEBSOCKET) && ALLOC_WS_PORT_BASE + opt->vnc_last > 65535))
        return alloc__errf(err, errlen, -EINVAL, "bad VNC display range %d-%d", opt->vnc_first,
                          opt->vnc_last);
    int rc = alloc__enter(s, err, errlen);
    if (rc < 0)
        return rc;
    int mine_ws, mine_port;
    const alloc_lease *have = alloc__find_owned(s, "vnc", o->name);
    if (have) {
        /* One display per owner: hand back the one it has (and add the
         * websocket port if it is asked for now). */
        int n = atoi(have->value);
        rc = vnc_check(s, o, n, flags, &mine_ws, &mine_port, err, errlen);
        if (rc == 0)
            rc = vnc_add(s, o, n, 1, mine_port, mine_ws, err, errlen);
        if (rc == 0)
            *display = n;
        return alloc__leave(s, rc, err, errlen);
    }
    rc = -ENOSPC;
    for (int n = opt->vnc_first; n <= opt->vnc_last && rc < 0; n++) {
        if (vnc_check(s, o, n, flags, &mine_ws, &mine_port, NULL, 0) == 0) {
            rc = vnc_add(s, o, n, 0, mine_port, mine_ws, err, errlen);
            if (rc == 0)
                *display = n;
        }
    }
    if (rc == -ENOSPC)
        alloc__errf(err, errlen, rc, "no free VNC display in %d-%d", opt->vnc_first,
                   opt->vnc_last);
    return alloc__leave(s, rc, err, errlen);
}

int alloc_reserve_vnc(alloc_store *s, const alloc_owner *o, int display, unsigned flags,
                      char *err, size_t errlen)
{
    if (!display_ok(display) ||
        ((flags & ALLOC_WEBSOCKET) && ALLOC_WS_PORT_BASE + display > 65535))
        return alloc__errf(err, errlen, -EINVAL, "bad VNC display %d", display);
    int rc = alloc__enter(s, err, errlen);
    if (rc < 0)
        return rc;
    int mine_ws, mine_port;
    rc = vnc_check(s, o, display, flags, &mine_ws, &mine_port, err, errlen);
    const alloc_lease *have = alloc__find_owned(s, "vnc", o->name);
    int same = have && atoi(have->value) == display;
    if (rc == 0 && alloc__reserve(s, 3) < 0)
        rc = alloc__errf(err, errlen, -ENOMEM, "out of memory");
    if (rc == 0 && have && !same) {
        /* The cfg names another display than the owner holds: the owner
         * moves to it, as a NIC does to a reserved MAC. */
        char old[ALLOC_VALUE_MAX], why[ALLOC_VALUE_MAX + 8];
        snprintf(old, sizeof(old), "%s", have->value);
        snprintf(why, sizeof(why), "vnc %s", old);
        for (size_t i = alloc__count(s); i-- > 0;) {
            const alloc_lease *l = alloc__at(s, i);
            if (!strcmp(l->owner, o->name) &&
                ((!strcmp(l->kind, "vnc") && !strcmp(l->value, old)) ||
                 (!strcmp(l->kind, "port") && !strncmp(l->data, why, strlen(why)) &&
                  (l->data[strlen(why)] == '\0' || l->data[strlen(why)] == ' '))))
                alloc__remove_at(s, i);
        }
    }
    if (rc == 0)
        rc = vnc_add(s, o, display, same, mine_port, mine_ws, err, errlen);
    return alloc__leave(s, rc, err, errlen);
}

int alloc_port(alloc_store *s, const alloc_owner *o, int first, int last, int *port, char *err,
               size_t errlen)
{
    if (first < 1 || last > 65535 || first > last)
        return alloc__errf(err, errlen, -EINVAL, "bad port range %d-%d", first, last);
    int rc = alloc__enter(s, err, errlen);
    if (rc < 0)
        return rc;
    rc = -ENOSPC;
    for (int p = first; p <= last && rc < 0; p++) {
        if (port_lease(s, p) || !alloc_port_bindable(alloc__opts(s)->listen, p))
            continue;
        rc = add_port(s, o, p, NULL);
        if (rc == 0)
            *port = p;
        else
            alloc__errf(err, errlen, rc, "lease port %d: %s", p, strerror(-rc));
    }
    if (rc == -ENOSPC)
        alloc__errf(err, errlen, rc, "no free port in %d-%d", first, last);
    return alloc__leave(s, rc, err, errlen);
}

int alloc_reserve_port(alloc_store *s, const alloc_owner *o, int port, char *err, size_t errlen)
{
    if (port < 1 || port > 65535)
        return alloc__errf(err, errlen, -EINVAL, "bad port %d", port);
    int rc = alloc__enter(s, err, errlen), mine = 0;
    if (rc < 0)
        return rc;
    rc = port_check(s, o->name, port, &mine, err, errlen);
    if (rc == 0 && !mine && (rc = add_port(s, o, port, NULL)) < 0)
        alloc__errf(err, errlen, rc, "lease port %d: %s", port, strerror(-rc));
    return alloc__leave(s, rc, err, errlen);
}
