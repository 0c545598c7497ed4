/* fuzz_qmp.c - libFuzzer target for the QMP and guest-agent readers.
 *
 * Built by tools/fuzz (clang -fsanitize=fuzzer,address,undefined), not by
 * CMake. Input layout: byte 0 picks the client and options, byte 1 seeds
 * how the rest is cut into chunks; the rest is what "QEMU" or "qemu-ga"
 * sends. The client sits on a socketpair whose far end is never read, so
 * its writes behave as in real life; the input goes in through the test
 * feed entry points, one chunk at a time, as reads would deliver it.
 *
 *   bit 0: 0 = QMP client, 1 = agent client
 *   bit 1: start past the handshake/sync (canned greeting or sync reply),
 *          so the input's first bytes land on command replies
 *   bit 2: small input cap (512 bytes), to exercise the overflow path */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "qmp/agent.h"
#include "qmp/qmp.h"
#include "qmp/test_hooks.h"

static uv_loop_t loop;
static int loop_ready;

/* Callbacks read what they are given, so the sanitizers see every byte. */
static size_t sink;

static void touch_json(const json_t *v)
{
    char *s = json_dump(v, NULL);
    if (s)
        sink += strlen(s);
    free(s);
}

static void touch_err(const conn_err *e)
{
    if (e)
        sink += strlen(e->cls) + strlen(e->desc) + (size_t)-e->code;
}

static void q_ready(qmp_t *q, const conn_err *err, void *data)
{
    (void)data;
    touch_err(err);
    const qmp_greeting *g = qmp_get_greeting(q);
    if (g) {
        sink += strlen(g->package) + (size_t)g->major;
        for (size_t i = 0; i < g->ncaps; i++)
            sink += strlen(g->caps[i]);
    }
}

static void q_reply(qmp_t *q, const qmp_reply *r, void *data)
{
    (void)q;
    (void)data;
    sink += strlen(r->cmd) + r->id;
    touch_err(r->err);
    if (r->ret)
        touch_json(r->ret);
}

static void q_event(qmp_t *q, const qmp_event *ev, void *data)
{
    (void)data;
    sink += strlen(ev->name) + (size_t)ev->seconds;
    if (ev->data)
        touch_json(ev->data);
    /* exercise subscription changes during dispatch */
    if (!strcmp(ev->name, "UNSUB"))
        qmp_unsubscribe(q, NULL, q_event, NULL);
}

static void q_dead(qmp_t *q, const conn_err *err, void *data)
{
    (void)q;
    (void)data;
    touch_err(err);
}

static void a_done(agent_t *a, const conn_err *err, void *data)
{
    (void)a;
    (void)data;
    touch_err(err);
}

static void a_raw(agent_t *a, const json_t *ret, const conn_err *err, void *data)
{
    (void)a;
    (void)data;
    touch_err(err);
    if (ret)
        touch_json(ret);
}

static void a_int(agent_t *a, long long v, const conn_err *err, void *data)
{
    (void)a;
    (void)data;
    sink += (size_t)v;
    touch_err(err);
}

static void a_info(agent_t *a, const agent_info *info, const conn_err *err, void *data)
{
    (void)a;
    (void)data;
    touch_err(err);
    if (!info)
        return;
    sink += strlen(info->version);
    for (size_t i = 0; i < info->ncommands; i++)
        sink += strlen(info->commands[i]);
}

static void a_ifaces(agent_t *a, const agent_iface *ifs, size_t n, const conn_err *err, void *data)
{
    (void)a;
    (void)data;
    touch_err(err);
    for (size_t i = 0; i < n; i++) {
        sink += strlen(ifs[i].name) + (ifs[i].hwaddr ? strlen(ifs[i].hwaddr) : 0);
        for (size_t j = 0; j < ifs[i].naddrs; j++)
            sink += strlen(ifs[i].addrs[j].addr) + (size_t)ifs[i].addrs[j].prefix +
                    (size_t)ifs[i].addrs[j].family;
    }
}

static void a_status(agent_t *a, const agent_exec_result *st, const conn_err *err, void *data)
{
    (void)a;
    (void)data;
    touch_err(err);
    if (!st)
        return;
    for (size_t i = 0; i <= st->out_len; i++) /* includes the NUL */
        sink += st->out[i];
    for (size_t i = 0; i <= st->errout_len; i++)
        sink += st->errout[i];
    sink += (size_t)(st->exitcode + st->signal + st->exited);
}

static void a_read(agent_t *a, const void *buf, size_t len, int eof, const conn_err *err, void *data)
{
    (void)a;
    (void)data;
    touch_err(err);
    for (size_t i = 0; i < len; i++)
        sink += ((const unsigned char *)buf)[i];
    sink += (size_t)eof;
}

static void a_write(agent_t *a, size_t n, const conn_err *err, void *data)
{
    (void)a;
    (void)data;
    touch_err(err);
    sink += n;
}

/* Feed data in chunks of 1..64 bytes chosen by a small PRNG. */
static void feed_chunks(int (*feed)(void *, const void *, size_t), void *obj, const uint8_t *data,
                        size_t size, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    size_t off = 0;
    while (off < size) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        size_t n = 1 + (x % 64);
        if (n > size - off)
            n = size - off;
        if (feed(obj, data + off, n) < 0)
            return; /* dead: the rest would be refused anyway */
        off += n;
        uv_run(&loop, UV_RUN_NOWAIT);
    }
}

static int qfeed(void *q, const void *b, size_t n) { return qmp_feed_for_test(q, b, n); }
static int afeed(void *a, const void *b, size_t n) { return agent_feed_for_test(a, b, n); }

static void fuzz_qmp(const uint8_t *data, size_t size, int flags, uint32_t seed, int fd)
{
    qmp_t *q;
    if (qmp_new(&loop, &q) < 0) {
        close(fd);
        return;
    }
    if (flags & 4)
        qmp_set_max_input(q, 512);
    qmp_set_dead_cb(q, q_dead, NULL);
    qmp_subscribe(q, NULL, q_event, NULL);
    qmp_subscribe(q, "SHUTDOWN", q_event, NULL);
    if (qmp_attach_fd(q, fd, -1, q_ready, NULL) == 0 && (flags & 2)) {
        static const char hello[] =
            "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "
            "\"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n{\"return\": {}, \"id\": 1}\r\n";
        qmp_feed_for_test(q, hello, sizeof(hello) - 1);
        /* ids 2..6 are in flight for the input to answer */
        static const char *cmds[] = { "query-status", "query-version", "stop", "cont", "x" };
        for (int i = 0; i < 5; i++) {
            json_t *args = i == 4 ? json_object() : NULL;
            qmp_execute(q, cmds[i], args, -1, q_reply, NULL);
        }
    }
    feed_chunks(qfeed, q, data, size, seed);
    qmp_close(q, NULL, NULL);
}

static void fuzz_agent(const uint8_t *data, size_t size, int flags, uint32_t seed, int fd)
{
    agent_t *a;
    if (agent_new(&loop, &a) < 0) {
        close(fd);
        return;
    }
    if (flags & 4)
        agent_set_max_input(a, 512);
    agent_set_sync_id_for_test(a, 1);
    if (agent_attach_fd(a, fd) == 0) {
        agent_sync(a, -1, a_done, NULL);
        if (flags & 2) {
            static const char synced[] = "{\"error\": {}}\n\xff{\"return\": 1}\n";
            agent_feed_for_test(a, synced, sizeof(synced) - 1);
        }
        /* one of each kind, answered in order by the input */
        agent_get_info(a, -1, a_info, NULL);
        agent_get_interfaces(a, -1, a_ifaces, NULL);
        agent_exec_status(a, 7, -1, a_status, NULL);
        agent_file_read(a, 3, 100, -1, a_read, NULL);
        agent_file_write(a, 3, "xyz", 3, -1, a_write, NULL);
        agent_file_open(a, "/f", "r", -1, a_int, NULL);
        const char *argv[] = { "a", NULL };
        agent_exec_opts o = { .path = "/bin/true", .argv = argv, .capture_output = 1 };
        agent_exec(a, &o, -1, a_int, NULL);
        agent_ping(a, -1, a_done, NULL);
        agent_execute(a, "guest-get-time", NULL, -1, a_raw, NULL);
        agent_shutdown(a, NULL, a_done, NULL);
        agent_ping(a, -1, a_done, NULL);
    } else {
        agent_close(a, NULL, NULL);
        return;
    }
    feed_chunks(afeed, a, data, size, seed);
    agent_close(a, NULL, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    if (!loop_ready) {
        uv_loop_init(&loop);
        loop_ready = 1;
    }
    int flags = data[0];
    uint32_t seed = data[1];
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return 0;
    if (flags & 1)
        fuzz_agent(data + 2, size - 2, flags, seed, sv[1]);
    else
        fuzz_qmp(data + 2, size - 2, flags, seed, sv[1]);
    uv_run(&loop, UV_RUN_DEFAULT); /* finish the close: everything freed */
    close(sv[0]);
    return 0;
}
