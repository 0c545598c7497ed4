/* test_qmp.c - the QMP client (qmp/qmp.h): a scripted QEMU on a socketpair
 * (driven from the test thread between loop turns), then a real
 * qemu-system-x86_64 -machine none. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "qmp/qmp.h"
#include "qmp/test_hooks.h"
#include "testutil.h"

#define MAXR 2100

struct rec {
    int done;
    uint64_t id;
    int code;
    char cls[64];
    char desc[300];
    char *ret; /* dumped return value */
};

struct fx {
    tu_loop l;          /* the loop, its tick, the close count, QEMU */
    qmp_t *q;
    int peer;
    char pbuf[1 << 16]; /* what the client wrote, not yet consumed */
    size_t plen;
    int ready;
    int ready_code;
    char ready_desc[300];
    int dead;
    int dead_code;
    char dead_desc[300];
    struct rec r[MAXR];
    uint64_t order[MAXR]; /* ids in completion order */
    int ndone;
    char *events[64];
    int64_t ev_sec[64], ev_usec[64];
    int nev;
    int nev_all;
    char dir[256];
    /* real QEMU */
    char sock[300];
    double dead_at, event_at[64];
};

static struct fx F;

static int run_until(int *flag, int ms) { return tu_run_until(&F.l, flag, ms); }

static int run_until_n(int *counter, int n, int ms) { return tu_run_until_n(&F.l, counter, n, ms); }

static void spin(int ms) { tu_spin(&F.l, ms); }

static void on_ready(qmp_t *q, const conn_err *err, void *data)
{
    (void)q;
    (void)data;
    cr_expect_eq(F.ready, 0, "ready must run once");
    F.ready++;
    F.ready_code = err ? err->code : 0;
    snprintf(F.ready_desc, sizeof(F.ready_desc), "%s", err ? err->desc : "");
}

static void on_dead(qmp_t *q, const conn_err *err, void *data)
{
    (void)q;
    (void)data;
    F.dead++;
    F.dead_code = err->code;
    F.dead_at = tu_now_ms();
    snprintf(F.dead_desc, sizeof(F.dead_desc), "%s", err->desc);
}

static void on_closed(qmp_t *q, void *data)
{
    (void)q;
    (void)data;
    F.l.closed++;
}

/* data = slot index */
static void on_reply(qmp_t *q, const qmp_reply *r, void *data)
{
    (void)q;
    struct rec *x = &F.r[(intptr_t)data];
    cr_expect_eq(x->done, 0, "a command completes once");
    x->done = 1;
    x->id = r->id;
    if (F.ndone < MAXR)
        F.order[F.ndone] = r->id;
    F.ndone++;
    if (r->err) {
        cr_expect_null(r->ret);
        x->code = r->err->code;
        snprintf(x->cls, sizeof(x->cls), "%s", r->err->cls);
        snprintf(x->desc, sizeof(x->desc), "%s", r->err->desc);
    } else {
        x->ret = json_dump(r->ret, NULL);
    }
}

static void on_event(qmp_t *q, const qmp_event *ev, void *data)
{
    (void)q;
    int *count = data;
    if (count) {
        (*count)++;
        return;
    }
    if (F.nev >= 64)
        return;
    char buf[400];
    char *d = ev->data ? json_dump(ev->data, NULL) : NULL;
    snprintf(buf, sizeof(buf), "%s %s", ev->name, d ? d : "-");
    free(d);
    F.ev_sec[F.nev] = ev->seconds;
    F.ev_usec[F.nev] = ev->microseconds;
    F.event_at[F.nev] = tu_now_ms();
    F.events[F.nev++] = strdup(buf);
}

static void setup(void)
{
    memset(&F, 0, sizeof(F));
    F.peer = -1;
    tu_loop_init(&F.l);
    cr_assert_eq(qmp_new(&F.l.loop, &F.q), 0);
    qmp_set_dead_cb(F.q, on_dead, NULL);
    cr_assert_eq(qmp_subscribe(F.q, NULL, on_event, NULL), 0);
    cr_assert_eq(tu_mkdtemp(F.dir, sizeof(F.dir), "qmp"), 0);
}

static void close_client(void) { qmp_close(F.q, on_closed, NULL); }

/* The last line of every test: close the client (and kill QEMU), then
 * assert that the close callback ran once and that no handle is left
 * (testutil.h says why this is not in the .fini). */
static void down(void) { tu_loop_down(&F.l, close_client); }

static void teardown(void)
{
    tu_loop_cleanup(&F.l, close_client);
    if (F.peer >= 0)
        close(F.peer);
    for (int i = 0; i < MAXR; i++)
        free(F.r[i].ret);
    for (int i = 0; i < F.nev; i++)
        free(F.events[i]);
    tu_rmtree(F.dir);
}

/* Every test ends with down(). */
TestSuite(qmp, .init = setup, .fini = teardown, .timeout = 120);

/* ---- the scripted peer ---- */

static void attach(int timeout_ms)
{
    cr_assert_eq(qmp_attach_fd(F.q, tu_peer_pair(&F.peer), timeout_ms, on_ready, NULL), 0);
}

static void peer_write(const char *s, size_t len) { tu_peer_write(&F.l, F.peer, s, len); }

static void peer_puts(const char *s) { peer_write(s, strlen(s)); }

/* The next line the client wrote, parsed; NULL after ms. */
static json_t *peer_recv(int ms)
{
    double end = tu_now_ms() + ms;
    for (;;) {
        json_t *v = tu_take_json_line(F.pbuf, &F.plen);
        if (v)
            return v;
        if (tu_now_ms() > end)
            return NULL;
        ssize_t r = read(F.peer, F.pbuf + F.plen, sizeof(F.pbuf) - F.plen);
        if (r > 0)
            F.plen += (size_t)r;
        else
            uv_run(&F.l.loop, UV_RUN_ONCE);
    }
}

/* Read one command; check its name; return its id. */
static long long expect_cmd(const char *name)
{
    json_t *m = peer_recv(2000);
    cr_assert(m, "no %s from the client", name);
    cr_expect_str_eq(json_get_str(m, "execute"), name);
    long long id = json_get_int(m, "id", -1);
    cr_expect_gt(id, 0);
    json_free(m);
    return id;
}

static void peer_reply(long long id, const char *ret_json)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "{\"return\": %s, \"id\": %lld}\r\n", ret_json, id);
    peer_puts(buf);
}

static const char *GREETING =
    "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 3, \"minor\": 2, \"major\": 7}, "
    "\"package\": \"test-pkg\"}, \"capabilities\": [\"oob\"]}}\r\n";

static void handshake(void)
{
    attach(2000);
    peer_puts(GREETING);
    long long id = expect_cmd("qmp_capabilities");
    cr_expect_eq(qmp_is_ready(F.q), 0);
    peer_reply(id, "{}");
    cr_assert(run_until(&F.ready, 2000));
    cr_assert_eq(F.ready_code, 0, "%s", F.ready_desc);
    cr_assert(qmp_is_ready(F.q));
}

static void exec(const char *cmd, json_t *args, int timeout_ms, int slot)
{
    cr_assert_eq(qmp_execute(F.q, cmd, args, timeout_ms, on_reply, (void *)(intptr_t)slot), 0);
}

Test(qmp, handshake_and_greeting)
{
    handshake();
    const qmp_greeting *g = qmp_get_greeting(F.q);
    cr_assert(g);
    cr_expect_eq(g->major, 7);
    cr_expect_eq(g->minor, 2);
    cr_expect_eq(g->micro, 3);
    cr_expect_str_eq(g->package, "test-pkg");
    cr_assert_eq(g->ncaps, 1);
    cr_expect_str_eq(g->caps[0], "oob");
    down();
}

Test(qmp, greeting_byte_by_byte)
{
    attach(2000);
    for (const char *p = GREETING; *p; p++) {
        peer_write(p, 1);
        uv_run(&F.l.loop, UV_RUN_NOWAIT);
    }
    long long id = expect_cmd("qmp_capabilities");
    const char *rep = "{\"return\": {}, \"id\": ";
    for (const char *p = rep; *p; p++) {
        peer_write(p, 1);
        uv_run(&F.l.loop, UV_RUN_NOWAIT);
    }
    char tail[32];
    snprintf(tail, sizeof(tail), "%lld}\r\n", id);
    for (const char *p = tail; *p; p++) {
        peer_write(p, 1);
        uv_run(&F.l.loop, UV_RUN_NOWAIT);
    }
    cr_assert(run_until(&F.ready, 2000));
    cr_expect_eq(F.ready_code, 0);
    down();
}

Test(qmp, execute_before_ready_fails_at_once)
{
    json_t *args = json_object();
    json_set_int(args, "x", 1);
    /* args are the callee's even on failure: LeakSanitizer would notice */
    cr_expect_eq(qmp_execute(F.q, "query-status", args, 0, on_reply, 0), -ENOTCONN);
    attach(2000);
    cr_expect_eq(qmp_execute(F.q, "query-status", NULL, 0, on_reply, 0), -ENOTCONN);
    down();
}

Test(qmp, reply_goes_to_the_right_callback)
{
    handshake();
    json_t *args = json_object();
    json_set_str(args, "device", "vda");
    exec("query-block", args, 0, 1);
    json_t *m = peer_recv(2000);
    cr_assert(m);
    cr_expect_str_eq(json_get_str(m, "execute"), "query-block");
    cr_expect_str_eq(json_str(json_path(m, "arguments.device")), "vda");
    long long id = json_get_int(m, "id", -1);
    json_free(m);
    peer_reply(id, "[{\"device\": \"vda\"}]");
    cr_assert(run_until(&F.r[1].done, 2000));
    cr_expect_eq(F.r[1].code, 0);
    cr_expect_eq(F.r[1].id, (uint64_t)id);
    cr_expect_str_eq(F.r[1].ret, "[{\"device\":\"vda\"}]");
    down();
}

Test(qmp, replies_out_of_order)
{
    handshake();
    long long ids[3];
    for (int i = 0; i < 3; i++) {
        exec("query-x", NULL, 0, i);
        ids[i] = expect_cmd("query-x");
    }
    cr_expect(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2], "ids are unique");
    char ret[32];
    int order[3] = { 2, 0, 1 };
    for (int k = 0; k < 3; k++) {
        snprintf(ret, sizeof(ret), "{\"n\": %d}", order[k]);
        peer_reply(ids[order[k]], ret);
    }
    cr_assert(run_until_n(&F.ndone, 3, 2000));
    for (int i = 0; i < 3; i++) {
        snprintf(ret, sizeof(ret), "{\"n\":%d}", i);
        cr_expect_str_eq(F.r[i].ret, ret);
        cr_expect_eq(F.r[i].id, (uint64_t)ids[i]);
    }
    cr_expect_eq(F.order[0], (uint64_t)ids[2]);
    down();
}

Test(qmp, events_between_command_and_reply)
{
    int stops = 0, all = 0;
    cr_assert_eq(qmp_subscribe(F.q, "STOP", on_event, &stops), 0);
    cr_assert_eq(qmp_subscribe(F.q, NULL, on_event, &all), 0);
    handshake();
    exec("stop", NULL, 0, 0);
    long long id = expect_cmd("stop");
    peer_puts("{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 123456}, "
              "\"event\": \"STOP\"}\r\n"
              "{\"timestamp\": {\"seconds\": 1700000001, \"microseconds\": 7}, "
              "\"event\": \"VSERPORT_CHANGE\", \"data\": {\"open\": true, \"id\": \"qga0\"}}\r\n");
    peer_reply(id, "{}");
    peer_puts("{\"event\": \"RESUME\", \"timestamp\": {\"seconds\": 5, \"microseconds\": 6}}\r\n");
    cr_assert(run_until_n(&F.nev, 3, 2000));
    cr_expect(F.r[0].done);
    cr_expect_eq(F.r[0].code, 0);
    cr_expect_str_eq(F.events[0], "STOP -");
    cr_expect_eq(F.ev_sec[0], 1700000000);
    cr_expect_eq(F.ev_usec[0], 123456);
    cr_expect_str_eq(F.events[1], "VSERPORT_CHANGE {\"open\":true,\"id\":\"qga0\"}");
    cr_expect_str_eq(F.events[2], "RESUME -");
    cr_expect_eq(stops, 1);
    cr_expect_eq(all, 3);
    qmp_stats st;
    qmp_get_stats(F.q, &st);
    cr_expect_eq(st.events, 3);
    /* unsubscribe: no more deliveries */
    cr_expect_eq(qmp_unsubscribe(F.q, "STOP", on_event, &stops), 0);
    cr_expect_eq(qmp_unsubscribe(F.q, "STOP", on_event, &stops), -ENOENT);
    peer_puts("{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\r\n");
    cr_assert(run_until_n(&F.nev, 4, 2000));
    cr_expect_eq(stops, 1);
    cr_expect_eq(all, 4);
    down();
}

static void unsub_self(qmp_t *q, const qmp_event *ev, void *data)
{
    int *n = data;
    (*n)++;
    cr_expect_eq(qmp_unsubscribe(q, ev->name, unsub_self, data), 0);
    /* a subscription added now sees the next event, not this one */
    qmp_subscribe(q, ev->name, on_event, n + 1);
}

Test(qmp, subscriptions_change_inside_callbacks)
{
    int n[2] = { 0, 0 };
    cr_assert_eq(qmp_subscribe(F.q, "RESET", unsub_self, n), 0);
    handshake();
    peer_puts("{\"event\": \"RESET\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\r\n");
    peer_puts("{\"event\": \"RESET\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 3}}\r\n");
    cr_assert(run_until_n(&F.nev, 2, 2000));
    cr_expect_eq(n[0], 1);
    cr_expect_eq(n[1], 1);
    down();
}

Test(qmp, unknown_ids_are_ignored_and_counted)
{
    handshake();
    exec("query-x", NULL, 0, 0);
    long long id = expect_cmd("query-x");
    peer_reply(id + 1000, "{\"wrong\": 1}");
    peer_puts("{\"return\": {}}\r\n");              /* no id */
    peer_puts("{\"return\": {}, \"id\": \"str\"}\r\n"); /* an id we never use */
    peer_puts("{\"something\": \"else\"}\r\n");
    peer_reply(id, "{\"right\": 1}");
    cr_assert(run_until(&F.r[0].done, 2000));
    cr_expect_str_eq(F.r[0].ret, "{\"right\":1}");
    qmp_stats st;
    qmp_get_stats(F.q, &st);
    cr_expect_eq(st.unknown_replies, 4);
    cr_expect(qmp_is_ready(F.q));
    down();
}

Test(qmp, error_reply)
{
    handshake();
    exec("nope", NULL, 0, 0);
    long long id = expect_cmd("nope");
    char buf[256];
    snprintf(buf, sizeof(buf),
             "{\"id\": %lld, \"error\": {\"class\": \"CommandNotFound\", "
             "\"desc\": \"The command nope has not been found\"}}\r\n", id);
    peer_puts(buf);
    cr_assert(run_until(&F.r[0].done, 2000));
    cr_expect_eq(F.r[0].code, -EREMOTEIO);
    cr_expect_str_eq(F.r[0].cls, "CommandNotFound");
    cr_expect_str_eq(F.r[0].desc, "The command nope has not been found");
    cr_expect(qmp_is_ready(F.q));
    down();
}

Test(qmp, timeout_then_late_reply_is_dropped)
{
    handshake();
    double t0 = tu_clock_start(&F.l);
    exec("slow", NULL, 150, 0);
    exec("fast", NULL, 5000, 1);
    long long slow = expect_cmd("slow");
    long long fast = expect_cmd("fast");
    cr_assert(run_until(&F.r[0].done, 2000));
    cr_expect_geq(tu_now_ms() - t0, 100);
    cr_expect_eq(F.r[0].code, -ETIMEDOUT);
    cr_expect_str_eq(F.r[0].cls, CONN_ERR_TIMEOUT);
    cr_expect(strstr(F.r[0].desc, "slow"), "%s", F.r[0].desc);
    cr_expect_eq(F.r[1].done, 0);
    peer_reply(slow, "{\"late\": 1}");
    peer_reply(fast, "{}");
    cr_assert(run_until(&F.r[1].done, 2000));
    cr_expect_eq(F.r[1].code, 0);
    qmp_stats st;
    qmp_get_stats(F.q, &st);
    cr_expect_eq(st.timeouts, 1);
    cr_expect_eq(st.late_replies, 1);
    cr_expect_eq(st.in_flight, 0);
    down();
}

Test(qmp, mixed_timeouts_fire_in_deadline_order)
{
    handshake();
    exec("a", NULL, 400, 0);
    exec("b", NULL, 100, 1);
    exec("c", NULL, -1, 2); /* never times out */
    exec("d", NULL, 250, 3);
    cr_assert(run_until_n(&F.ndone, 3, 3000));
    spin(100);
    cr_expect_eq(F.ndone, 3);
    cr_expect_eq(F.r[1].code, -ETIMEDOUT);
    cr_expect_eq(F.r[3].code, -ETIMEDOUT);
    cr_expect_eq(F.r[0].code, -ETIMEDOUT);
    cr_expect_eq(F.r[2].done, 0);
    cr_expect_eq(F.order[0], F.r[1].id);
    cr_expect_eq(F.order[1], F.r[3].id);
    cr_expect_eq(F.order[2], F.r[0].id);
    down();
}

Test(qmp, oversized_input_fails_pending_cleanly)
{
    qmp_set_max_input(F.q, 4096);
    handshake();
    exec("query-x", NULL, 0, 0);
    exec("query-y", NULL, 0, 1);
    expect_cmd("query-x");
    char *big = malloc(10000);
    memset(big, 'x', 10000);
    peer_write(big, 10000);
    free(big);
    cr_assert(run_until_n(&F.ndone, 2, 2000));
    cr_expect_eq(F.r[0].code, -EMSGSIZE);
    cr_expect_eq(F.r[1].code, -EMSGSIZE);
    cr_expect_eq(F.dead, 1);
    cr_expect_eq(qmp_execute(F.q, "query-z", NULL, 0, on_reply, (void *)2), -EMSGSIZE);
    cr_expect_eq(qmp_error(F.q)->code, -EMSGSIZE);
    down();
}

Test(qmp, invalid_json_is_a_protocol_error)
{
    handshake();
    exec("query-x", NULL, 0, 0);
    expect_cmd("query-x");
    peer_puts("{\"return\": {}, \"id\": 2,,}\r\n");
    cr_assert(run_until(&F.r[0].done, 2000));
    cr_expect_eq(F.r[0].code, -EPROTO);
    cr_expect_str_eq(F.r[0].cls, CONN_ERR_PROTOCOL);
    cr_expect(strstr(F.r[0].desc, "invalid JSON"), "%s", F.r[0].desc);
    cr_expect_eq(F.dead, 1);
    cr_expect_eq(F.dead_code, -EPROTO);
    cr_expect_eq(qmp_execute(F.q, "query-z", NULL, 0, NULL, NULL), -EPROTO);
    down();
}

Test(qmp, eof_mid_command)
{
    handshake();
    for (int i = 0; i < 5; i++)
        exec("query-x", NULL, 0, i);
    expect_cmd("query-x");
    close(F.peer);
    F.peer = -1;
    cr_assert(run_until_n(&F.ndone, 5, 2000));
    for (int i = 0; i < 5; i++) {
        cr_expect_eq(F.r[i].code, -ECONNRESET);
        cr_expect_str_eq(F.r[i].cls, CONN_ERR_DISCONNECTED);
        cr_expect(strstr(F.r[i].desc, "QMP") && strstr(F.r[i].desc, "EOF"), "%s", F.r[i].desc);
    }
    cr_assert(run_until(&F.dead, 1000));
    cr_expect_eq(F.dead_code, -ECONNRESET);
    /* later calls fail at once with the same error */
    json_t *args = json_object();
    cr_expect_eq(qmp_execute(F.q, "query-x", args, 0, on_reply, (void *)9), -ECONNRESET);
    cr_expect_str_eq(qmp_error(F.q)->desc, F.r[0].desc);
    cr_expect_eq(qmp_is_ready(F.q), 0);
    down();
}

Test(qmp, eof_before_greeting_fails_ready)
{
    attach(2000);
    close(F.peer);
    F.peer = -1;
    cr_assert(run_until(&F.ready, 2000));
    cr_expect_eq(F.ready_code, -ECONNRESET);
    cr_expect_eq(F.dead, 0, "dead_cb is for connections that were ready");
    down();
}

Test(qmp, no_greeting_times_out)
{
    double t0 = tu_clock_start(&F.l);
    attach(200);
    cr_assert(run_until(&F.ready, 2000));
    cr_expect_eq(F.ready_code, -ETIMEDOUT);
    cr_expect_geq(tu_now_ms() - t0, 150);
    cr_expect(strstr(F.ready_desc, "greeting"), "%s", F.ready_desc);
    down();
}

Test(qmp, not_a_greeting)
{
    attach(2000);
    peer_puts("{\"return\": {}}\r\n");
    cr_assert(run_until(&F.ready, 2000));
    cr_expect_eq(F.ready_code, -EPROTO);
    down();
}

Test(qmp, capabilities_refused)
{
    attach(2000);
    peer_puts(GREETING);
    long long id = expect_cmd("qmp_capabilities");
    char buf[200];
    snprintf(buf, sizeof(buf),
             "{\"id\": %lld, \"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}}\r\n", id);
    peer_puts(buf);
    cr_assert(run_until(&F.ready, 2000));
    cr_expect_eq(F.ready_code, -EPROTO);
    cr_expect(strstr(F.ready_desc, "qmp_capabilities"), "%s", F.ready_desc);
    down();
}

static void close_inside(qmp_t *q, const qmp_reply *r, void *data)
{
    on_reply(q, r, data);
    qmp_close(q, on_closed, NULL);
    /* the client is closing: new work is refused, nothing crashes */
    cr_expect_eq(qmp_execute(q, "more", NULL, 0, on_reply, (void *)50), -ECANCELED);
}

Test(qmp, close_cancels_pending)
{
    handshake();
    exec("a", NULL, 0, 0);
    cr_assert_eq(qmp_execute(F.q, "b", NULL, 0, close_inside, (void *)1), 0);
    exec("c", NULL, 0, 2);
    long long a = expect_cmd("a");
    peer_reply(a, "{}");
    cr_assert(run_until(&F.r[0].done, 2000));
    qmp_close(F.q, on_closed, NULL);
    qmp_close(F.q, on_closed, NULL); /* idempotent */
    cr_expect_eq(F.r[1].code, -ECANCELED);
    cr_expect_eq(F.r[2].code, -ECANCELED);
    cr_expect_str_eq(F.r[2].cls, CONN_ERR_CANCELLED);
    cr_assert(run_until(&F.l.closed, 1000));
    cr_expect_eq(F.l.closed, 1);
    down();
}

Test(qmp, close_before_ready)
{
    attach(2000);
    qmp_close(F.q, on_closed, NULL);
    cr_expect_eq(F.ready, 1);
    cr_expect_eq(F.ready_code, -ECANCELED);
    cr_assert(run_until(&F.l.closed, 1000), "the close callback never ran");
    down();
}

Test(qmp, feed_for_test)
{
    attach(2000);
    cr_assert_eq(qmp_feed_for_test(F.q, GREETING, strlen(GREETING)), 0);
    long long id = expect_cmd("qmp_capabilities");
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "{\"return\": {}, \"id\": %lld}\n", id);
    for (int i = 0; i < n; i++)
        cr_assert_eq(qmp_feed_for_test(F.q, buf + i, 1), 0);
    cr_expect_eq(F.ready, 1);
    cr_expect_eq(F.ready_code, 0);
    down();
}

/* ---- real QEMU ---- */

static void spawn_qemu(void)
{
    char qmparg[400];
    snprintf(qmparg, sizeof(qmparg), "unix:%s,server=on,wait=off", F.sock);
    char *argv[] = { "qemu-system-x86_64", "-machine", "none", "-nodefaults", "-display", "none",
                     "-qmp", qmparg, NULL };
    tu_spawn(&F.l, argv);
}

static void on_spawn_timer(uv_timer_t *t)
{
    (void)t;
    spawn_qemu();
}

/* Connect first, then start QEMU: the connect must retry until QEMU has
 * created its socket. */
static void qemu_up(void)
{
    snprintf(F.sock, sizeof(F.sock), "%s/qmp.sock", F.dir);
    cr_assert_eq(qmp_connect(F.q, F.sock, 20000, on_ready, NULL), 0);
    uv_timer_t t;
    uv_timer_init(&F.l.loop, &t);
    uv_timer_start(&t, on_spawn_timer, 150, 0);
    cr_assert(run_until(&F.ready, 25000), "QEMU never became ready");
    uv_close((uv_handle_t *)&t, NULL);
    spin(5);
    cr_assert_eq(F.ready_code, 0, "%s", F.ready_desc);
    cr_assert(F.l.proc_spawned, "ready before QEMU started?");
}

Test(qmp_qemu, greeting_status_version_error, .init = setup, .fini = teardown, .timeout = 120)
{
    qemu_up();
    const qmp_greeting *g = qmp_get_greeting(F.q);
    cr_assert(g);
    cr_expect_geq(g->major, 2);
    exec("query-status", NULL, 0, 0);
    exec("query-version", NULL, 0, 1);
    exec("no-such-command", NULL, 0, 2);
    cr_assert(run_until_n(&F.ndone, 3, 10000));
    json_t *st = json_parse(F.r[0].ret, strlen(F.r[0].ret), NULL, 0);
    cr_assert(st, "query-status: %s", F.r[0].desc);
    cr_expect(json_get_str(st, "status"), "%s", F.r[0].ret);
    json_free(st);
    json_t *ver = json_parse(F.r[1].ret, strlen(F.r[1].ret), NULL, 0);
    cr_assert(ver);
    cr_expect_eq(json_get_int(json_path(ver, "qemu"), "major", -1), g->major);
    cr_expect_eq(json_get_int(json_path(ver, "qemu"), "minor", -1), g->minor);
    json_free(ver);
    cr_expect_eq(F.r[2].code, -EREMOTEIO);
    cr_expect_str_eq(F.r[2].cls, "CommandNotFound");
    cr_expect(strstr(F.r[2].desc, "no-such-command"), "%s", F.r[2].desc);
    down();
}

Test(qmp_qemu, pipelined_1000_in_id_order, .init = setup, .fini = teardown, .timeout = 120)
{
    qemu_up();
    for (int i = 0; i < 1000; i++)
        exec("query-status", NULL, 0, i);
    cr_assert(run_until_n(&F.ndone, 1000, 30000));
    for (int i = 0; i < 1000; i++)
        cr_expect_eq(F.r[i].code, 0, "%d: %s", i, F.r[i].desc);
    for (int i = 1; i < 1000; i++)
        cr_expect_gt(F.order[i], F.order[i - 1], "completion %d out of id order", i);
    qmp_stats st;
    qmp_get_stats(F.q, &st);
    cr_expect_eq(st.in_flight, 0);
    cr_expect_eq(st.unknown_replies, 0);
    down();
}

Test(qmp_qemu, quit_shutdown_event_then_eof, .init = setup, .fini = teardown, .timeout = 120)
{
    int shutdowns = 0;
    cr_assert_eq(qmp_subscribe(F.q, "SHUTDOWN", on_event, &shutdowns), 0);
    qemu_up();
    exec("quit", NULL, 0, 0);
    cr_assert(run_until(&F.dead, 10000));
    cr_expect_eq(shutdowns, 1);
    cr_assert_geq(F.nev, 1);
    cr_expect(!strncmp(F.events[0], "SHUTDOWN ", 9), "%s", F.events[0]);
    cr_expect_gt(F.ev_sec[0], 0);
    cr_expect_leq(F.event_at[0], F.dead_at, "SHUTDOWN comes before EOF");
    cr_expect_eq(F.dead_code, -ECONNRESET, "%s", F.dead_desc);
    cr_assert(F.r[0].done);
    /* quit's own reply may beat the EOF or not */
    cr_expect(F.r[0].code == 0 || F.r[0].code == -ECONNRESET, "%s", F.r[0].desc);
    cr_assert(run_until(&F.l.proc_exited, 10000));
    cr_expect_eq(F.l.proc_status, 0);
    cr_expect_eq(qmp_execute(F.q, "query-status", NULL, 0, NULL, NULL), -ECONNRESET);
    down();
}

static void on_abort_timer(uv_timer_t *t)
{
    qmp_peer_exited(F.q);
    *(int *)t->data = F.ready; /* did the ready callback run inside the call? */
}

Test(qmp_qemu, peer_exited_stops_connect, .init = setup, .fini = teardown, .timeout = 60)
{
    snprintf(F.sock, sizeof(F.sock), "%s/never.sock", F.dir);
    cr_assert_eq(qmp_connect(F.q, F.sock, 20000, on_ready, NULL), 0);
    uv_timer_t t;
    int at_once = 0;
    uv_timer_init(&F.l.loop, &t);
    t.data = &at_once;
    uv_timer_start(&t, on_abort_timer, 100, 0);
    cr_assert(run_until(&F.ready, 15000), "still connecting after qmp_peer_exited");
    uv_close((uv_handle_t *)&t, NULL);
    spin(5);
    cr_expect_eq(F.ready_code, -ECONNABORTED);
    /* At once: inside qmp_peer_exited, not at a retry or the timeout. */
    cr_expect_eq(at_once, 1);
    down();
}
