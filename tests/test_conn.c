/* test_conn.c - the newline-delimited JSON transport (qmp/conn.h), against
 * a scripted peer on the other end of a socketpair (driven from the test
 * thread between loop turns) and real listening Unix sockets. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <uv.h>

#include "qmp/conn.h"
#include "qmp/test_hooks.h"
#include "testutil.h"

#define MAXMSG 4096

struct fx {
    tu_loop l;       /* the loop, its tick, the close count */
    conn_t *c;
    int peer;        /* our end of the socketpair, non-blocking */
    char *msgs[MAXMSG];
    int nmsg;
    int nbad;
    char bad_why[256];
    int dead;
    conn_err dead_err;
    char dead_desc[400];
    int connected;
    int connect_code;
    char connect_desc[400];
    double connected_at;
    int writes_done;
    int write_status;
    char dir[256];
};

static struct fx F;

static void on_msg(conn_t *c, json_t *msg, const char *why, void *data)
{
    struct fx *f = data;
    (void)c;
    if (!msg) {
        f->nbad++;
        snprintf(f->bad_why, sizeof(f->bad_why), "%s", why);
        return;
    }
    cr_assert_lt(f->nmsg, MAXMSG);
    f->msgs[f->nmsg++] = json_dump(msg, NULL);
}

static void on_dead(conn_t *c, const conn_err *err, void *data)
{
    struct fx *f = data;
    (void)c;
    cr_expect_eq(f->dead, 0, "on_dead must run once");
    f->dead++;
    f->dead_err = *err;
    snprintf(f->dead_desc, sizeof(f->dead_desc), "%s", err->desc);
}

static void on_connect(conn_t *c, const conn_err *err, void *data)
{
    struct fx *f = data;
    (void)c;
    f->connected++;
    f->connect_code = err ? err->code : 0;
    snprintf(f->connect_desc, sizeof(f->connect_desc), "%s", err ? err->desc : "");
    f->connected_at = tu_now_ms();
}

static void on_closed(conn_t *c, void *data)
{
    struct fx *f = data;
    (void)c;
    f->l.closed++;
}

static void on_write(conn_t *c, int status, void *data)
{
    struct fx *f = data;
    (void)c;
    f->writes_done++;
    f->write_status = status;
}

static int run_until(int *flag, int ms) { return tu_run_until(&F.l, flag, ms); }

static void spin(int ms) { tu_spin(&F.l, ms); }

static void setup(void)
{
    memset(&F, 0, sizeof(F));
    F.peer = -1;
    tu_loop_init(&F.l);
    cr_assert_eq(conn_new(&F.l.loop, on_msg, on_dead, &F, &F.c), 0);
    cr_assert_eq(tu_mkdtemp(F.dir, sizeof(F.dir), "conn"), 0);
}

static void pair(void)
{
    cr_assert_eq(conn_attach_fd(F.c, tu_peer_pair(&F.peer)), 0);
}

static void close_client(void) { conn_close(F.c, on_closed, &F); }

/* The last line of every test: close the conn, then assert that its close
 * callback ran once and that no handle is left (testutil.h says why this
 * is not in the .fini). */
static void down(void) { tu_loop_down(&F.l, close_client); }

static void teardown(void)
{
    tu_loop_cleanup(&F.l, close_client);
    if (F.peer >= 0)
        close(F.peer);
    for (int i = 0; i < F.nmsg; i++)
        free(F.msgs[i]);
    tu_rmtree(F.dir);
}

/* Every test ends with down(). */
TestSuite(conn, .init = setup, .fini = teardown);

static void peer_write(const void *buf, size_t len) { tu_peer_write(&F.l, F.peer, buf, len); }

static void peer_puts(const char *s) { peer_write(s, strlen(s)); }

/* Read what the client wrote, running the loop meanwhile, until want bytes
 * or ms pass. Returns the count. */
static size_t peer_read(char *buf, size_t want, int ms)
{
    size_t got = 0;
    double end = tu_now_ms() + ms;
    while (got < want && tu_now_ms() < end) {
        ssize_t n = read(F.peer, buf + got, want - got);
        if (n > 0)
            got += (size_t)n;
        else
            uv_run(&F.l.loop, UV_RUN_ONCE);
    }
    return got;
}

Test(conn, split_byte_by_byte)
{
    pair();
    const char *text = "{\"a\":1}\n{\"b\":\"x\\ny\"}\r\n";
    for (const char *p = text; *p; p++) {
        peer_write(p, 1);
        uv_run(&F.l.loop, UV_RUN_NOWAIT); /* one read per byte */
    }
    spin(20);
    cr_assert_eq(F.nmsg, 2);
    cr_expect_str_eq(F.msgs[0], "{\"a\":1}");
    cr_expect_str_eq(F.msgs[1], "{\"b\":\"x\\ny\"}");
    cr_expect_eq(conn_bytes_in(F.c), strlen(text));
    down();
}

Test(conn, many_lines_in_one_read)
{
    pair();
    size_t cap = 1000 * 40, len = 0;
    char *buf = malloc(cap);
    for (int i = 0; i < 1000; i++)
        len += (size_t)snprintf(buf + len, cap - len, "{\"n\":%d}\n", i);
    peer_write(buf, len);
    free(buf);
    double end = tu_now_ms() + 3000;
    while (F.nmsg < 1000 && tu_now_ms() < end)
        uv_run(&F.l.loop, UV_RUN_ONCE);
    cr_assert_eq(F.nmsg, 1000);
    for (int i = 0; i < 1000; i++) {
        char exp[32];
        snprintf(exp, sizeof(exp), "{\"n\":%d}", i);
        cr_expect_str_eq(F.msgs[i], exp);
    }
    down();
}

Test(conn, blank_lines_and_crlf_are_ignored)
{
    pair();
    peer_puts("\n\r\n   \n{\"k\":true}  \r\n\n");
    spin(30);
    cr_assert_eq(F.nmsg, 1);
    cr_expect_str_eq(F.msgs[0], "{\"k\":true}");
    cr_expect_eq(F.nbad, 0);
    down();
}

Test(conn, invalid_json_goes_to_owner)
{
    /* The conn reports a bad line and keeps going: whether that is fatal is
     * the protocol's call (QMP: yes; the agent: resync). */
    pair();
    peer_puts("{not json}\n{\"ok\":1}\n");
    spin(30);
    cr_expect_eq(F.nbad, 1);
    cr_expect(strlen(F.bad_why) > 0);
    cr_assert_eq(F.nmsg, 1);
    cr_expect_eq(conn_is_open(F.c), 1);
    down();
}

Test(conn, oversized_partial_line_is_a_clean_error)
{
    pair();
    conn_set_max_input(F.c, 1024);
    char big[2000];
    memset(big, ' ', sizeof(big));
    big[0] = '"';
    peer_write(big, sizeof(big)); /* no newline: a line that never ends */
    cr_assert(run_until(&F.dead, 1000));
    cr_expect_eq(F.dead_err.code, -EMSGSIZE);
    cr_expect(strstr(F.dead_desc, "1024"), "%s", F.dead_desc);
    cr_expect_eq(conn_is_open(F.c), 0);
    json_t *v = json_object();
    cr_expect_eq(conn_send(F.c, v, NULL, NULL), -EMSGSIZE);
    json_free(v);
    cr_expect_eq(conn_error(F.c)->code, -EMSGSIZE);
    down();
}

Test(conn, oversized_complete_line_is_a_clean_error)
{
    pair();
    conn_set_max_input(F.c, 64);
    char line[200];
    memset(line, ' ', sizeof(line));
    memcpy(line, "{}", 2);
    line[sizeof(line) - 1] = '\n';
    peer_write(line, sizeof(line));
    cr_assert(run_until(&F.dead, 1000));
    cr_expect_eq(F.dead_err.code, -EMSGSIZE);
    cr_expect_eq(F.nmsg, 0);
    down();
}

Test(conn, line_of_exactly_the_cap_is_fine)
{
    pair();
    conn_set_max_input(F.c, 64);
    char line[65];
    memset(line, ' ', 64);
    memcpy(line, "[1]", 3);
    line[64] = '\n';
    peer_write(line, sizeof(line));
    spin(30);
    cr_expect_eq(F.dead, 0);
    cr_expect_eq(F.nmsg, 1);
    down();
}

Test(conn, eof_kills_and_later_sends_fail_at_once)
{
    pair();
    peer_puts("{\"last\":1}\n");
    close(F.peer);
    F.peer = -1;
    cr_assert(run_until(&F.dead, 1000));
    cr_expect_eq(F.nmsg, 1, "data before EOF is delivered");
    cr_expect_eq(F.dead_err.code, -ECONNRESET);
    cr_expect_str_eq(F.dead_err.cls, CONN_ERR_DISCONNECTED);
    cr_expect(strstr(F.dead_desc, "EOF"), "%s", F.dead_desc);
    json_t *v = json_object();
    cr_expect_eq(conn_send(F.c, v, NULL, NULL), -ECONNRESET);
    cr_expect_eq(conn_send_raw(F.c, "x", 1, NULL, NULL), -ECONNRESET);
    json_free(v);
    down();
}

Test(conn, label_prefixes_errors)
{
    conn_set_label(F.c, "QMP");
    pair();
    close(F.peer);
    F.peer = -1;
    cr_assert(run_until(&F.dead, 1000));
    cr_expect(!strncmp(F.dead_desc, "QMP: ", 5), "%s", F.dead_desc);
    down();
}

Test(conn, send_writes_one_line)
{
    pair();
    json_t *v = json_object();
    json_set_str(v, "execute", "x\ny\"z");
    cr_assert_eq(conn_send(F.c, v, on_write, &F), 0);
    json_free(v); /* the caller's, even right after the call */
    char buf[128] = "";
    const char *exp = "{\"execute\":\"x\\ny\\\"z\"}\n";
    size_t n = peer_read(buf, strlen(exp), 1000);
    cr_expect_eq(n, strlen(exp));
    cr_expect_str_eq(buf, exp);
    run_until(&F.writes_done, 1000);
    cr_expect_eq(F.write_status, 0);
    cr_expect_eq(conn_bytes_out(F.c), strlen(exp));
    down();
}

Test(conn, big_send_survives_partial_writes)
{
    pair();
    size_t big = 4u << 20;
    char *s = malloc(big + 1);
    for (size_t i = 0; i < big; i++)
        s[i] = (char)('a' + i % 26);
    s[big] = '\0';
    json_t *v = json_string(s);
    cr_assert_eq(conn_send(F.c, v, on_write, &F), 0);
    json_free(v);
    /* The kernel takes it in pieces; the peer drains it slowly. */
    char *got = malloc(big + 3);
    size_t n = 0;
    double end = tu_now_ms() + 10000;
    while (n < big + 3 && tu_now_ms() < end) {
        ssize_t r = read(F.peer, got + n, 4096 < big + 3 - n ? 4096 : big + 3 - n);
        if (r > 0)
            n += (size_t)r;
        else
            uv_run(&F.l.loop, UV_RUN_ONCE);
    }
    cr_assert_eq(n, big + 3);
    cr_expect_eq(got[0], '"');
    cr_expect(!memcmp(got + 1, s, big));
    cr_expect_eq(got[big + 1], '"');
    cr_expect_eq(got[big + 2], '\n');
    run_until(&F.writes_done, 1000);
    cr_expect_eq(F.writes_done, 1);
    cr_expect_eq(F.write_status, 0);
    free(got);
    free(s);
    down();
}

Test(conn, big_receive_in_pieces)
{
    pair();
    size_t big = 3u << 20;
    char *line = malloc(big + 4);
    line[0] = '"';
    memset(line + 1, 'q', big);
    line[big + 1] = '"';
    line[big + 2] = '\n';
    /* the peer writes while the loop reads */
    size_t off = 0;
    double end = tu_now_ms() + 10000;
    while (off < big + 3 && tu_now_ms() < end) {
        ssize_t w = write(F.peer, line + off, big + 3 - off);
        if (w > 0)
            off += (size_t)w;
        uv_run(&F.l.loop, UV_RUN_NOWAIT);
    }
    free(line);
    spin(50);
    cr_assert_eq(F.nmsg, 1);
    cr_expect_eq(strlen(F.msgs[0]), big + 2);
    down();
}

Test(conn, discard_until_delimiter)
{
    pair();
    conn_discard_until(F.c, 0xFF);
    peer_puts("{\"stale\":1}\n{\"error\":\"x\"}\n{\"partial");
    peer_puts("\xff{\"fresh\":2}\n{\"next\":3}\n");
    spin(30);
    cr_assert_eq(F.nmsg, 2);
    cr_expect_str_eq(F.msgs[0], "{\"fresh\":2}");
    cr_expect_str_eq(F.msgs[1], "{\"next\":3}");
    down();
}

Test(conn, discard_drops_buffered_partial_line)
{
    pair();
    peer_puts("{\"half\":");
    spin(20);
    conn_discard_until(F.c, 0xFF);
    peer_puts("1}\n\xff[7]\n");
    spin(20);
    cr_assert_eq(F.nmsg, 1);
    cr_expect_str_eq(F.msgs[0], "[7]");
    cr_expect_eq(F.nbad, 0);
    down();
}

Test(conn, feed_random_splits)
{
    pair();
    const char *text = "{\"a\":[1,2,3]}\n\n{\"b\":{\"c\":\"\\u00e9\"}}\r\n[true]\n";
    size_t len = strlen(text);
    srand(7);
    for (int round = 0; round < 50; round++) {
        size_t off = 0;
        while (off < len) {
            size_t n = 1 + (size_t)rand() % 7;
            if (n > len - off)
                n = len - off;
            cr_assert_eq(conn_feed(F.c, text + off, n), 0);
            off += n;
        }
    }
    cr_assert_eq(F.nmsg, 150);
    for (int i = 0; i < 150; i += 3) {
        cr_expect_str_eq(F.msgs[i], "{\"a\":[1,2,3]}");
        cr_expect_str_eq(F.msgs[i + 1], "{\"b\":{\"c\":\"\xc3\xa9\"}}");
        cr_expect_str_eq(F.msgs[i + 2], "[true]");
    }
    down();
}

/* ---- connecting ---- */

static int listen_on(const char *path, int do_listen)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "bind %s: %s", path, strerror(errno));
    if (do_listen)
        cr_assert_eq(listen(fd, 4), 0);
    return fd;
}

struct later {
    uv_timer_t t;
    char path[300];
    int fd;
    int mode; /* 0: create listening socket, 1: listen on bound fd, 2: abort */
    int cb_before_return; /* mode 2: the connect callback had run when conn_abort returned */
};

static void on_later(uv_timer_t *t)
{
    struct later *l = (struct later *)t;
    if (l->mode == 0)
        l->fd = listen_on(l->path, 1);
    else if (l->mode == 1)
        cr_assert_eq(listen(l->fd, 4), 0);
    else {
        conn_abort(F.c);
        l->cb_before_return = F.connected;
    }
}

Test(conn, connect_retries_until_socket_appears)
{
    struct later l = { .fd = -1, .mode = 0 };
    snprintf(l.path, sizeof(l.path), "%s/late.sock", F.dir);
    double t0 = tu_clock_start(&F.l);
    uv_timer_init(&F.l.loop, &l.t);
    uv_timer_start(&l.t, on_later, 300, 0);
    cr_assert_eq(conn_connect(F.c, l.path, 5000, on_connect, &F), 0);
    cr_assert(run_until(&F.connected, 6000));
    cr_expect_eq(F.connect_code, 0, "%s", F.connect_desc);
    cr_expect_geq(F.connected_at - t0, 250);
    cr_expect_eq(conn_is_open(F.c), 1);
    /* and it works: the server side sees our line */
    int s = accept(l.fd, NULL, NULL);
    cr_assert_geq(s, 0);
    F.peer = s;
    fcntl(F.peer, F_SETFL, O_NONBLOCK);
    json_t *v = json_array();
    conn_send(F.c, v, NULL, NULL);
    json_free(v);
    char buf[8] = "";
    cr_expect_eq(peer_read(buf, 3, 1000), 3);
    cr_expect_str_eq(buf, "[]\n");
    uv_close((uv_handle_t *)&l.t, NULL);
    spin(10); /* l lives on this stack: let its close finish */
    close(l.fd);
    down();
}

Test(conn, connect_retries_while_refused)
{
    struct later l = { .mode = 1 };
    snprintf(l.path, sizeof(l.path), "%s/refuse.sock", F.dir);
    l.fd = listen_on(l.path, 0); /* exists, but refuses */
    uv_timer_init(&F.l.loop, &l.t);
    uv_timer_start(&l.t, on_later, 200, 0);
    cr_assert_eq(conn_connect(F.c, l.path, 5000, on_connect, &F), 0);
    cr_assert(run_until(&F.connected, 6000));
    cr_expect_eq(F.connect_code, 0, "%s", F.connect_desc);
    uv_close((uv_handle_t *)&l.t, NULL);
    spin(10); /* l lives on this stack: let its close finish */
    close(l.fd);
    down();
}

Test(conn, connect_times_out)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/never.sock", F.dir);
    double t0 = tu_clock_start(&F.l);
    cr_assert_eq(conn_connect(F.c, path, 300, on_connect, &F), 0);
    cr_assert(run_until(&F.connected, 10000), "the connect never gave up");
    double took = tu_now_ms() - t0;
    cr_expect_eq(F.connect_code, -ETIMEDOUT);
    cr_expect(strstr(F.connect_desc, path), "%s", F.connect_desc);
    cr_expect_geq(took, 280);
    json_t *v = json_object();
    cr_expect_eq(conn_send(F.c, v, NULL, NULL), -ETIMEDOUT);
    json_free(v);
    down();
}

Test(conn, abort_stops_retrying_at_once)
{
    struct later l = { .mode = 2 };
    char path[300];
    snprintf(path, sizeof(path), "%s/gone.sock", F.dir);
    uv_timer_init(&F.l.loop, &l.t);
    uv_timer_start(&l.t, on_later, 100, 0);
    cr_assert_eq(conn_connect(F.c, path, 10000, on_connect, &F), 0);
    cr_assert(run_until(&F.connected, 8000), "still retrying after the abort");
    cr_expect_eq(F.connect_code, -ECONNABORTED);
    /* At once: inside conn_abort, not at the next retry or the timeout. */
    cr_expect_eq(l.cb_before_return, 1);
    uv_close((uv_handle_t *)&l.t, NULL);
    spin(10); /* l lives on this stack: let its close finish */
    down();
}

Test(conn, close_while_connecting_cancels)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/none.sock", F.dir);
    cr_assert_eq(conn_connect(F.c, path, 10000, on_connect, &F), 0);
    spin(50);
    conn_close(F.c, on_closed, &F);
    cr_expect_eq(F.connected, 1);
    cr_expect_eq(F.connect_code, -ECANCELED);
    run_until(&F.l.closed, 1000);
    cr_expect_eq(F.l.closed, 1);
    down();
}

Test(conn, bad_arguments)
{
    char path[200];
    memset(path, 'x', sizeof(path) - 1);
    path[sizeof(path) - 1] = '\0';
    cr_expect_eq(conn_connect(F.c, path, 100, on_connect, &F), -ENAMETOOLONG);
    pair();
    cr_expect_eq(conn_connect(F.c, "/tmp/x", 100, on_connect, &F), -EBUSY);
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    cr_expect_eq(conn_attach_fd(F.c, sv[0]), -EBUSY); /* and sv[0] is closed */
    close(sv[1]);
    down();
}

/* ---- flow control, half-close, and the listener (qmp/listener.h) ---- */

#include <sys/stat.h>

#include "qmp/listener.h"

static int eofs;

static void on_eof_count(conn_t *c, void *data)
{
    (void)c;
    (void)data;
    eofs++;
}

/* Output counts from conn_send to its write callback, so the hard limit is
 * checked before the loop ever runs. */
Test(conn, output_over_the_hard_limit_kills_the_conn)
{
    pair();
    conn_set_output_limit(F.c, 16384, 100000);
    char big[40000];
    memset(big, 'x', sizeof(big));
    cr_assert_eq(conn_send_raw(F.c, big, sizeof(big), NULL, NULL), 0);
    cr_assert_eq(conn_send_raw(F.c, big, sizeof(big), NULL, NULL), 0);
    cr_assert_eq(conn_queued_out(F.c), 2 * sizeof(big));
    cr_assert_eq(conn_send_raw(F.c, big, sizeof(big), NULL, NULL), -ENOBUFS);
    cr_assert_eq(F.dead, 1);
    cr_assert_eq(F.dead_err.code, -ENOBUFS);
    cr_assert(strstr(F.dead_desc, "does not read"), "%s", F.dead_desc);
    cr_assert_eq(conn_send_raw(F.c, "x", 1, NULL, NULL), -ENOBUFS);
    down();
}

/* A peer that does not read gets no new lines read from it (so no new
 * replies) until its output drained; then the held lines come, in order. */
Test(conn, input_waits_while_output_is_over_the_soft_limit)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    int small = 4096;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    F.peer = sv[0];
    fcntl(F.peer, F_SETFL, O_NONBLOCK);
    cr_assert_eq(conn_attach_fd(F.c, sv[1]), 0);
    conn_set_output_limit(F.c, 8192, 0);
    static char big[1 << 20];
    memset(big, 'x', sizeof(big));
    cr_assert_eq(conn_send_raw(F.c, big, sizeof(big), NULL, NULL), 0);
    peer_puts("{\"n\":1}\n{\"n\":2}\n");
    spin(200);
    cr_assert_eq(F.nmsg, 0, "a line was read while %zu bytes of output waited", conn_queued_out(F.c));
    static char sink[1 << 20];
    cr_assert_eq(peer_read(sink, sizeof(big), 20000), sizeof(big));
    cr_assert(run_until(&F.nmsg, 5000));
    spin(50);
    cr_assert_eq(F.nmsg, 2);
    cr_assert_str_eq(F.msgs[0], "{\"n\":1}");
    cr_assert_str_eq(F.msgs[1], "{\"n\":2}");
    down();
}

Test(conn, owner_pause_holds_buffered_lines)
{
    pair();
    conn_pause(F.c);
    peer_puts("{\"n\":1}\n");
    spin(100);
    cr_assert_eq(F.nmsg, 0);
    conn_resume(F.c);
    cr_assert_eq(F.nmsg, 0, "resume delivers from the loop, not in place");
    cr_assert(run_until(&F.nmsg, 5000));
    cr_assert_str_eq(F.msgs[0], "{\"n\":1}");
    down();
}

/* EOF on a half-close conn: every line (the last without '\n' too), then
 * the EOF callback; the conn still writes, and shutdown flushes first. */
Test(conn, half_close_answers_after_eof)
{
    pair();
    eofs = 0;
    conn_set_eof_cb(F.c, on_eof_count);
    peer_puts("{\"a\":1}\n{\"b\":2}");
    shutdown(F.peer, SHUT_WR);
    cr_assert(run_until(&eofs, 5000));
    cr_assert_eq(F.dead, 0);
    cr_assert_eq(F.nmsg, 2);
    cr_assert_str_eq(F.msgs[1], "{\"b\":2}");
    cr_assert(conn_is_open(F.c));
    static char big[300000];
    memset(big, 'y', sizeof(big));
    cr_assert_eq(conn_send_raw(F.c, big, sizeof(big), NULL, NULL), 0);
    cr_assert_eq(conn_shutdown(F.c, on_write, &F), 0);
    cr_assert_eq(conn_shutdown(F.c, on_write, &F), -EALREADY);
    static char got[sizeof(big) + 1];
    cr_assert_eq(peer_read(got, sizeof(big), 20000), sizeof(big));
    cr_assert(run_until(&F.writes_done, 5000));
    cr_assert_eq(F.write_status, 0);
    cr_assert_eq(read(F.peer, got, 1), 0, "EOF after the last byte");
    down();
}

struct lfx {
    conn_t *conns[8];
    int n;
    int closed;
};

static void on_listener_conn(listener_t *l, conn_t *c, void *data)
{
    struct lfx *x = data;
    (void)l;
    cr_assert_lt(x->n, 8);
    conn_set_handlers(c, on_msg, NULL, &F);
    x->conns[x->n++] = c;
}

static void on_listener_closed(listener_t *l, void *data)
{
    (void)l;
    ((struct lfx *)data)->closed++;
}

static void listener_done(listener_t *l, struct lfx *x)
{
    listener_close(l, on_listener_closed, x);
    for (int i = 0; i < x->n; i++)
        conn_close(x->conns[i], NULL, NULL);
    cr_assert(run_until(&x->closed, 5000));
}

/* A socket path of 200+ bytes, far over sun_path: served and dialled
 * through the directory; the socket is 0600 and gone after close. */
Test(conn, listener_serves_a_path_longer_than_sun_path)
{
    char d[512], path[600];
    snprintf(d, sizeof(d), "%s/%0120d", F.dir, 0);
    cr_assert_eq(mkdir(d, 0700), 0);
    snprintf(d + strlen(d), sizeof(d) - strlen(d), "/%0100d", 1);
    cr_assert_eq(mkdir(d, 0700), 0);
    snprintf(path, sizeof(path), "%s/test.sock", d);
    cr_assert_gt(strlen(path), 200);
    struct lfx x = { 0 };
    listener_t *l = NULL;
    char err[512];
    cr_assert_eq(listener_start(&F.l.loop, path, on_listener_conn, &x, &l, err, sizeof(err)), 0, "%s", err);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert(S_ISSOCK(st.st_mode));
    cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
    int fd = -1;
    cr_assert_eq(listener_dial(path, 0, &fd, err, sizeof(err)), 0, "%s", err);
    cr_assert(run_until(&x.n, 5000));
    cr_assert_eq(write(fd, "{\"hi\":1}\n", 9), 9);
    cr_assert(run_until(&F.nmsg, 5000));
    cr_assert_str_eq(F.msgs[0], "{\"hi\":1}");
    close(fd);
    listener_done(l, &x);
    cr_assert_neq(stat(path, &st), 0, "the socket outlived its listener");
    down();
}

Test(conn, listener_refuses_a_directory_others_can_write)
{
    char d[300], path[340], err[512];
    snprintf(d, sizeof(d), "%s/open", F.dir);
    cr_assert_eq(mkdir(d, 0700), 0);
    chmod(d, 0777);
    snprintf(path, sizeof(path), "%s/x.sock", d);
    listener_t *l = NULL;
    struct lfx x = { 0 };
    cr_assert_eq(listener_start(&F.l.loop, path, on_listener_conn, &x, &l, err, sizeof(err)), -EPERM);
    cr_assert(strstr(err, "0777") && strstr(err, d), "%s", err);
    cr_assert_neq(access(path, F_OK), 0);
    down();
}

/* A dead server's socket file is replaced; a live server's is not. */
Test(conn, listener_replaces_a_stale_socket_not_a_live_one)
{
    char path[300], err[512];
    snprintf(path, sizeof(path), "%s/s.sock", F.dir);
    close(listen_on(path, 0)); /* bound, never listening: connect is refused */
    struct lfx x = { 0 }, y = { 0 };
    listener_t *l = NULL, *l2 = NULL;
    cr_assert_eq(listener_start(&F.l.loop, path, on_listener_conn, &x, &l, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(listener_start(&F.l.loop, path, on_listener_conn, &y, &l2, err, sizeof(err)), -EADDRINUSE);
    cr_assert(strstr(err, "another process"), "%s", err);
    int fd = -1;
    cr_assert_eq(listener_dial(path, 1, &fd, err, sizeof(err)), 0, "%s", err);
    cr_assert(run_until(&x.n, 5000));
    close(fd);
    listener_done(l, &x);
    down();
}
