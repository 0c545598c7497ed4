/* test_agent.c - the guest-agent client (qmp/agent.h) and its base64
 * helper: a scripted qemu-ga on a socketpair (driven from the test thread
 * between loop turns), then the real qemu-ga in unix-listen mode. */
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

#include "qmp/agent.h"
#include "base/base64.h"
#include "testutil.h"

/* ---- base64 ---- */

Test(base64, rfc4648_vectors)
{
    const char *plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
    const char *enc[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
    for (int i = 0; i < 7; i++) {
        size_t n;
        char *e = qf_base64_encode(plain[i], strlen(plain[i]), &n);
        cr_assert(e);
        cr_expect_str_eq(e, enc[i]);
        cr_expect_eq(n, strlen(enc[i]));
        unsigned char *d = qf_base64_decode(enc[i], strlen(enc[i]), &n);
        cr_assert(d);
        cr_expect_eq(n, strlen(plain[i]));
        cr_expect_str_eq((char *)d, plain[i]);
        free(e);
        free(d);
    }
}

Test(base64, binary_round_trip_and_whitespace)
{
    unsigned char buf[256];
    for (int i = 0; i < 256; i++)
        buf[i] = (unsigned char)(255 - i);
    for (size_t len = 0; len <= sizeof(buf); len += 17) {
        char *e = qf_base64_encode(buf, len, NULL);
        size_t n;
        unsigned char *d = qf_base64_decode(e, strlen(e), &n);
        cr_assert(d);
        cr_expect_eq(n, len);
        cr_expect(!memcmp(d, buf, len));
        free(e);
        free(d);
    }
    size_t n;
    unsigned char *d = qf_base64_decode("aGVs\nbG8K\r\n", 11, &n);
    cr_assert(d);
    cr_expect_eq(n, 6);
    cr_expect_str_eq((char *)d, "hello\n");
    free(d);
    d = qf_base64_decode("aGVsbG8", 7, &n); /* padding is optional */
    cr_assert(d);
    cr_expect_str_eq((char *)d, "hello");
    free(d);
}

Test(base64, rejects_garbage)
{
    const char *bad[] = { "a", "Zg=a", "Z===", "Zm9v!", "Zh==", "Zm9=", "====", "Zg==Zg==" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n;
        errno = 0;
        unsigned char *d = qf_base64_decode(bad[i], strlen(bad[i]), &n);
        cr_expect_null(d, "'%s' should be rejected", bad[i]);
        cr_expect_eq(errno, EINVAL);
        free(d);
    }
}

/* ---- fixture ---- */

struct rec {
    int done;
    int code;
    char cls[64];
    char desc[300];
    long long value;
    char *text;       /* dumped raw return, or decoded bytes */
    size_t len;
    int eof;
};

struct fx {
    uv_loop_t loop;
    uv_timer_t tick;
    agent_t *a;
    int peer;
    unsigned char pbuf[1 << 16];
    size_t plen;
    int connected, connect_code;
    int synced, sync_code;
    char sync_desc[300];
    int dead, dead_code;
    int closed;
    struct rec r[16];
    int ndone;
    char dir[256];
    /* real qemu-ga */
    uv_process_t proc;
    int proc_spawned, proc_exited;
    int proc_signal;
    char sock[300];
    /* typed results copied out of callbacks */
    char version[64];
    int ncommands, has_ping;
    int lo_found, lo_v4, lo_prefix;
    char lo_hw[64];
    int nifs;
    int exited, exitcode, sig;
};

static struct fx F;

static void on_tick(uv_timer_t *t) { (void)t; }

static int run_until(int *flag, int ms)
{
    double end = tu_now_ms() + ms;
    while (!*flag && tu_now_ms() < end)
        uv_run(&F.loop, UV_RUN_ONCE);
    return *flag;
}

static void spin(int ms)
{
    int never = 0;
    run_until(&never, ms);
}

static void on_connected(agent_t *a, const conn_err *err, void *data)
{
    (void)a;
    (void)data;
    F.connected++;
    F.connect_code = err ? err->code : 0;
}

static void on_synced(agent_t *a, const conn_err *err, void *data)
{
    (void)a;
    (void)data;
    F.synced++;
    F.sync_code = err ? err->code : 0;
    snprintf(F.sync_desc, sizeof(F.sync_desc), "%s", err ? err->desc : "");
}

static void on_dead(agent_t *a, const conn_err *err, void *data)
{
    (void)a;
    (void)data;
    F.dead++;
    F.dead_code = err->code;
}

static void on_closed(agent_t *a, void *data)
{
    (void)a;
    (void)data;
    F.closed++;
}

static struct rec *finish(void *data, const conn_err *err)
{
    struct rec *x = &F.r[(intptr_t)data];
    cr_expect_eq(x->done, 0, "a command completes once");
    x->done = 1;
    F.ndone++;
    if (err) {
        x->code = err->code;
        snprintf(x->cls, sizeof(x->cls), "%s", err->cls);
        snprintf(x->desc, sizeof(x->desc), "%s", err->desc);
    }
    return x;
}

static void on_raw(agent_t *a, const json_t *ret, const conn_err *err, void *data)
{
    (void)a;
    struct rec *x = finish(data, err);
    if (!err)
        x->text = ret ? json_dump(ret, NULL) : strdup("(sent)");
}

static void on_done(agent_t *a, const conn_err *err, void *data)
{
    (void)a;
    finish(data, err);
}

static void on_int(agent_t *a, long long v, const conn_err *err, void *data)
{
    (void)a;
    finish(data, err)->value = v;
}

static void on_info(agent_t *a, const agent_info *info, const conn_err *err, void *data)
{
    (void)a;
    finish(data, err);
    if (err)
        return;
    snprintf(F.version, sizeof(F.version), "%s", info->version);
    F.ncommands = (int)info->ncommands;
    for (size_t i = 0; i < info->ncommands; i++)
        if (!strcmp(info->commands[i], "guest-ping"))
            F.has_ping = 1;
}

static void on_ifaces(agent_t *a, const agent_iface *ifs, size_t n, const conn_err *err, void *data)
{
    (void)a;
    finish(data, err);
    if (err)
        return;
    F.nifs = (int)n;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ifs[i].name, "lo"))
            continue;
        F.lo_found = 1;
        snprintf(F.lo_hw, sizeof(F.lo_hw), "%s", ifs[i].hwaddr ? ifs[i].hwaddr : "");
        for (size_t j = 0; j < ifs[i].naddrs; j++) {
            if (ifs[i].addrs[j].family == 4 && !strcmp(ifs[i].addrs[j].addr, "127.0.0.1")) {
                F.lo_v4 = 1;
                F.lo_prefix = ifs[i].addrs[j].prefix;
            }
        }
    }
}

static void on_status(agent_t *a, const agent_exec_result *st, const conn_err *err, void *data)
{
    (void)a;
    struct rec *x = finish(data, err);
    if (err)
        return;
    F.exited = st->exited;
    F.exitcode = st->exitcode;
    F.sig = st->signal;
    x->text = malloc(st->out_len + 1);
    memcpy(x->text, st->out, st->out_len + 1); /* includes the NUL */
    x->len = st->out_len;
    cr_expect_eq(st->out[st->out_len], '\0');
    cr_expect(st->errout != NULL);
}

static void on_read(agent_t *a, const void *buf, size_t len, int eof, const conn_err *err, void *data)
{
    (void)a;
    struct rec *x = finish(data, err);
    if (err)
        return;
    x->text = malloc(len + 1);
    memcpy(x->text, buf, len);
    x->text[len] = '\0';
    x->len = len;
    x->eof = eof;
}

static void on_write(agent_t *a, size_t written, const conn_err *err, void *data)
{
    (void)a;
    finish(data, err)->value = (long long)written;
}

#define SLOT(i) ((void *)(intptr_t)(i))

static void setup(void)
{
    memset(&F, 0, sizeof(F));
    F.peer = -1;
    cr_assert_eq(uv_loop_init(&F.loop), 0);
    uv_timer_init(&F.loop, &F.tick);
    uv_timer_start(&F.tick, on_tick, 5, 5);
    cr_assert_eq(agent_new(&F.loop, &F.a), 0);
    agent_set_dead_cb(F.a, on_dead, NULL);
    cr_assert_eq(tu_mkdtemp(F.dir, sizeof(F.dir), "agent"), 0);
}

static void teardown(void)
{
    if (!F.closed) {
        agent_close(F.a, on_closed, NULL);
        agent_close(F.a, on_closed, NULL);
    }
    if (F.proc_spawned && !F.proc_exited) {
        uv_process_kill(&F.proc, SIGKILL);
        run_until(&F.proc_exited, 5000);
    }
    if (F.proc_spawned)
        uv_close((uv_handle_t *)&F.proc, NULL);
    uv_close((uv_handle_t *)&F.tick, NULL);
    uv_run(&F.loop, UV_RUN_DEFAULT);
    cr_expect_eq(F.closed, 1);
    cr_expect_eq(uv_loop_close(&F.loop), 0, "handles left open");
    if (F.peer >= 0)
        close(F.peer);
    for (int i = 0; i < 16; i++)
        free(F.r[i].text);
    tu_rmtree(F.dir);
}

TestSuite(agent, .init = setup, .fini = teardown, .timeout = 60);

/* ---- the scripted agent ---- */

static void attach(void)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    F.peer = sv[0];
    fcntl(F.peer, F_SETFL, O_NONBLOCK);
    cr_assert_eq(agent_attach_fd(F.a, sv[1]), 0);
}

static void peer_write(const void *buf, size_t len)
{
    const char *s = buf;
    while (len) {
        ssize_t n = write(F.peer, s, len);
        if (n < 0 && errno == EAGAIN) {
            uv_run(&F.loop, UV_RUN_NOWAIT);
            continue;
        }
        cr_assert_gt(n, 0);
        s += n;
        len -= (size_t)n;
    }
}

static void peer_puts(const char *s) { peer_write(s, strlen(s)); }

static void peer_fill(int ms)
{
    double end = tu_now_ms() + ms;
    while (tu_now_ms() < end) {
        ssize_t r = read(F.peer, F.pbuf + F.plen, sizeof(F.pbuf) - F.plen);
        if (r > 0) {
            F.plen += (size_t)r;
            return;
        }
        uv_run(&F.loop, UV_RUN_ONCE);
    }
}

/* Bytes the client wrote so far (after running the loop for ms). */
static size_t peer_pending(int ms)
{
    double end = tu_now_ms() + ms;
    while (tu_now_ms() < end) {
        uv_run(&F.loop, UV_RUN_NOWAIT);
        ssize_t r = read(F.peer, F.pbuf + F.plen, sizeof(F.pbuf) - F.plen);
        if (r > 0)
            F.plen += (size_t)r;
        else
            usleep(2000);
    }
    return F.plen;
}

/* Next message from the client. A leading 0xFF is reported in *ff. */
static json_t *peer_recv(int *ff, int ms)
{
    double end = tu_now_ms() + ms;
    if (ff)
        *ff = 0;
    for (;;) {
        if (F.plen && F.pbuf[0] == 0xFF) {
            cr_assert(ff, "unexpected 0xFF from the client");
            *ff = 1;
            memmove(F.pbuf, F.pbuf + 1, --F.plen);
        }
        unsigned char *nl = memchr(F.pbuf, '\n', F.plen);
        if (nl) {
            size_t n = (size_t)(nl - F.pbuf);
            json_t *v = json_parse((char *)F.pbuf, n, NULL, 0);
            cr_assert(v, "client wrote invalid JSON: %.*s", (int)n, F.pbuf);
            memmove(F.pbuf, nl + 1, F.plen - n - 1);
            F.plen -= n + 1;
            return v;
        }
        if (tu_now_ms() > end)
            return NULL;
        peer_fill(10);
    }
}

/* Expect 0xFF + guest-sync-delimited; return its id. */
static long long expect_sync(void)
{
    int ff;
    json_t *m = peer_recv(&ff, 2000);
    cr_assert(m, "no sync from the client");
    cr_expect(ff, "sync must follow a 0xFF byte");
    cr_expect_str_eq(json_get_str(m, "execute"), "guest-sync-delimited");
    long long id = json_get_int(json_get(m, "arguments"), "id", -1);
    cr_expect_gt(id, 0);
    json_free(m);
    return id;
}

/* What qemu-ga does: an error for the stray 0xFF, then 0xFF + reply. */
static void answer_sync(long long id)
{
    char buf[200];
    snprintf(buf, sizeof(buf),
             "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\n"
             "\xff{\"return\": %lld}\n", id);
    peer_puts(buf);
}

static void do_sync(void)
{
    cr_assert_eq(agent_sync(F.a, 2000, on_synced, NULL), 0);
    answer_sync(expect_sync());
    cr_assert(run_until(&F.synced, 2000));
    cr_assert_eq(F.sync_code, 0, "%s", F.sync_desc);
    F.synced = 0;
    cr_assert(agent_is_synced(F.a));
}

static json_t *expect_cmd(const char *name)
{
    int ff;
    json_t *m = peer_recv(&ff, 2000);
    cr_assert(m, "no %s from the client", name);
    cr_expect_eq(ff, 0);
    cr_expect_str_eq(json_get_str(m, "execute"), name);
    return m;
}

static void expect_cmd_free(const char *name) { json_free(expect_cmd(name)); }

Test(agent, never_writes_before_port_open)
{
    attach();
    cr_assert_eq(agent_ping(F.a, 5000, on_done, SLOT(0)), 0);
    cr_assert_eq(agent_get_info(F.a, 5000, on_info, SLOT(1)), 0);
    cr_expect_eq(peer_pending(150), 0, "the client wrote before the port was open");
    cr_expect_eq(F.ndone, 0);
    /* the agent may talk first (stale output): still nothing written */
    peer_puts("{\"return\": {}}\n");
    cr_expect_eq(peer_pending(50), 0);
    do_sync();
    expect_cmd_free("guest-ping");
    peer_puts("{\"return\": {}}\n");
    json_t *m = expect_cmd("guest-info");
    json_free(m);
    peer_puts("{\"return\": {\"version\": \"9.9\", \"supported_commands\": ["
              "{\"enabled\": true, \"name\": \"guest-ping\", \"success-response\": true},"
              "{\"enabled\": false, \"name\": \"guest-exec\", \"success-response\": true}]}}\n");
    cr_assert(run_until(&F.r[1].done, 2000));
    cr_expect_eq(F.r[0].code, 0);
    cr_expect_eq(F.r[1].code, 0);
    cr_expect_str_eq(F.version, "9.9");
    cr_expect_eq(F.ncommands, 1, "only enabled commands are listed");
    cr_expect(F.has_ping);
}

Test(agent, sync_before_connect_waits_for_connect)
{
    cr_assert_eq(agent_sync(F.a, 2000, on_synced, NULL), 0);
    cr_expect_eq(agent_sync(F.a, 2000, on_synced, NULL), -EBUSY);
    attach();
    answer_sync(expect_sync());
    cr_assert(run_until(&F.synced, 2000));
    cr_expect_eq(F.sync_code, 0);
}

Test(agent, sync_skips_junk_and_foreign_ids)
{
    attach();
    cr_assert_eq(agent_sync(F.a, 2000, on_synced, NULL), 0);
    long long id = expect_sync();
    char buf[300];
    snprintf(buf, sizeof(buf),
             "{\"return\": {\"stale\": 1}}\ngarbage that is not json\n"
             "\xff{\"return\": %lld}\n" /* an older sync */
             "{\"return\": 5}\n"
             "\xff" "not json\n"
             "\xff{\"return\": %lld}\n",
             id + 1, id);
    peer_puts(buf);
    cr_assert(run_until(&F.synced, 2000));
    cr_expect_eq(F.sync_code, 0, "%s", F.sync_desc);
    spin(20);
    cr_expect_eq(F.synced, 1, "sync completes once");
    /* and the channel works afterwards */
    cr_assert_eq(agent_ping(F.a, 2000, on_done, SLOT(0)), 0);
    expect_cmd_free("guest-ping");
    peer_puts("{\"return\": {}}\n");
    cr_assert(run_until(&F.r[0].done, 2000));
    cr_expect_eq(F.r[0].code, 0);
}

Test(agent, sync_split_byte_by_byte)
{
    attach();
    agent_set_sync_id_for_test(F.a, 4242);
    cr_assert_eq(agent_sync(F.a, 2000, on_synced, NULL), 0);
    cr_expect_eq(expect_sync(), 4242);
    const char *ans = "{\"error\": {}}\n\xff{\"return\": 4242}\n";
    for (const char *p = ans; *p; p++) {
        peer_write(p, 1);
        uv_run(&F.loop, UV_RUN_NOWAIT);
    }
    cr_assert(run_until(&F.synced, 2000));
    cr_expect_eq(F.sync_code, 0);
}

Test(agent, sync_timeout)
{
    attach();
    double t0 = tu_now_ms();
    cr_assert_eq(agent_sync(F.a, 200, on_synced, NULL), 0);
    expect_sync();
    cr_assert(run_until(&F.synced, 2000));
    cr_expect_eq(F.sync_code, -ETIMEDOUT);
    cr_expect_geq(tu_now_ms() - t0, 180);
    cr_expect(strstr(F.sync_desc, "guest-sync-delimited"), "%s", F.sync_desc);
    cr_expect_eq(agent_is_synced(F.a), 0);
}

Test(agent, typed_results)
{
    attach();
    do_sync();
    cr_assert_eq(agent_get_interfaces(F.a, 2000, on_ifaces, SLOT(0)), 0);
    expect_cmd_free("guest-network-get-interfaces");
    peer_puts("{\"return\": [{\"name\": \"lo\", \"ip-addresses\": ["
              "{\"ip-address-type\": \"ipv4\", \"ip-address\": \"127.0.0.1\", \"prefix\": 8},"
              "{\"ip-address-type\": \"ipv6\", \"ip-address\": \"::1\", \"prefix\": 128}],"
              "\"hardware-address\": \"00:00:00:00:00:00\"},"
              "{\"name\": \"eth0\", \"hardware-address\": \"52:54:00:12:34:56\"}]}\n");
    cr_assert(run_until(&F.r[0].done, 2000));
    cr_expect_eq(F.r[0].code, 0, "%s", F.r[0].desc);
    cr_expect_eq(F.nifs, 2);
    cr_expect(F.lo_found && F.lo_v4);
    cr_expect_eq(F.lo_prefix, 8);
    cr_expect_str_eq(F.lo_hw, "00:00:00:00:00:00");

    const char *argv[] = { "-c", "echo hi", NULL };
    agent_exec_opts o = { .path = "/bin/sh", .argv = argv, .input = "in", .input_len = 2,
                          .capture_output = 1 };
    cr_assert_eq(agent_exec(F.a, &o, 2000, on_int, SLOT(1)), 0);
    json_t *m = expect_cmd("guest-exec");
    cr_expect_str_eq(json_str(json_path(m, "arguments.path")), "/bin/sh");
    cr_expect_str_eq(json_str(json_at(json_path(m, "arguments.arg"), 1)), "echo hi");
    cr_expect_str_eq(json_str(json_path(m, "arguments.input-data")), "aW4=");
    cr_expect_eq(json_truthy(json_path(m, "arguments.capture-output")), 1);
    json_free(m);
    peer_puts("{\"return\": {\"pid\": 321}}\n");
    cr_assert(run_until(&F.r[1].done, 2000));
    cr_expect_eq(F.r[1].value, 321);

    cr_assert_eq(agent_exec_status(F.a, 321, 2000, on_status, SLOT(2)), 0);
    m = expect_cmd("guest-exec-status");
    cr_expect_eq(json_get_int(json_get(m, "arguments"), "pid", -1), 321);
    json_free(m);
    peer_puts("{\"return\": {\"exitcode\": 3, \"out-data\": \"aGkK\", \"exited\": true}}\n");
    cr_assert(run_until(&F.r[2].done, 2000));
    cr_expect_eq(F.exited, 1);
    cr_expect_eq(F.exitcode, 3);
    cr_expect_eq(F.sig, -1);
    cr_expect_str_eq(F.r[2].text, "hi\n");

    cr_assert_eq(agent_file_open(F.a, "/etc/x", "r", 2000, on_int, SLOT(3)), 0);
    expect_cmd_free("guest-file-open");
    peer_puts("{\"return\": 1000}\n");
    cr_assert_eq(agent_file_read(F.a, 1000, 4096, 2000, on_read, SLOT(4)), 0);
    cr_assert_eq(agent_file_write(F.a, 1000, "\0\1\2", 3, 2000, on_write, SLOT(5)), 0);
    cr_assert_eq(agent_file_close(F.a, 1000, 2000, on_done, SLOT(6)), 0);
    expect_cmd_free("guest-file-read");
    peer_puts("{\"return\": {\"count\": 3, \"buf-b64\": \"AP8K\", \"eof\": true}}\n");
    m = expect_cmd("guest-file-write");
    cr_expect_str_eq(json_str(json_path(m, "arguments.buf-b64")), "AAEC");
    json_free(m);
    peer_puts("{\"return\": {\"count\": 3, \"eof\": false}}\n");
    expect_cmd_free("guest-file-close");
    peer_puts("{\"return\": {}}\n");
    cr_assert(run_until(&F.r[6].done, 2000));
    cr_expect_eq(F.r[3].value, 1000);
    cr_expect_eq(F.r[4].len, 3);
    cr_expect(!memcmp(F.r[4].text, "\0\xff\n", 3));
    cr_expect_eq(F.r[4].eof, 1);
    cr_expect_eq(F.r[5].value, 3);
    cr_expect_eq(F.r[6].code, 0);

    json_t *args = json_object();
    json_set_str(args, "x", "y");
    cr_assert_eq(agent_execute(F.a, "guest-custom", args, 2000, on_raw, SLOT(7)), 0);
    m = expect_cmd("guest-custom");
    cr_expect_str_eq(json_str(json_path(m, "arguments.x")), "y");
    json_free(m);
    peer_puts("{\"return\": [1, \"two\"]}\n");
    cr_assert(run_until(&F.r[7].done, 2000));
    cr_expect_str_eq(F.r[7].text, "[1,\"two\"]");
    agent_stats st;
    agent_get_stats(F.a, &st);
    cr_expect_eq(st.completed, 8);
    cr_expect_eq(st.syncs, 1, "no resync while all goes well");
}

Test(agent, error_reply)
{
    attach();
    do_sync();
    cr_assert_eq(agent_file_open(F.a, "/nope", NULL, 2000, on_int, SLOT(0)), 0);
    expect_cmd_free("guest-file-open");
    peer_puts("{\"error\": {\"class\": \"GenericError\", \"desc\": \"failed to open file '/nope'\"}}\n");
    cr_assert(run_until(&F.r[0].done, 2000));
    cr_expect_eq(F.r[0].code, -EREMOTEIO);
    cr_expect_str_eq(F.r[0].cls, "GenericError");
    cr_expect(strstr(F.r[0].desc, "/nope"));
    cr_expect_eq(F.r[0].value, -1);
    cr_expect(agent_is_synced(F.a), "an error reply is still a reply");
}

Test(agent, malformed_reply_is_a_protocol_error_then_resync)
{
    attach();
    do_sync();
    cr_assert_eq(agent_exec_status(F.a, 1, 2000, on_status, SLOT(0)), 0);
    expect_cmd_free("guest-exec-status");
    peer_puts("{\"return\": {\"exited\": true, \"out-data\": \"!!notbase64\"}}\n");
    cr_assert(run_until(&F.r[0].done, 2000));
    cr_expect_eq(F.r[0].code, -EPROTO);
    cr_expect(strstr(F.r[0].desc, "guest-exec-status"), "%s", F.r[0].desc);
    /* invalid JSON: fails the command, and the next one is preceded by a sync */
    cr_assert_eq(agent_ping(F.a, 2000, on_done, SLOT(1)), 0);
    expect_cmd_free("guest-ping");
    peer_puts("{\"return\": \n");
    cr_assert(run_until(&F.r[1].done, 2000));
    cr_expect_eq(F.r[1].code, -EPROTO);
    cr_assert_eq(agent_ping(F.a, 2000, on_done, SLOT(2)), 0);
    answer_sync(expect_sync());
    expect_cmd_free("guest-ping");
    peer_puts("{\"return\": {}}\n");
    cr_assert(run_until(&F.r[2].done, 2000));
    cr_expect_eq(F.r[2].code, 0);
}

Test(agent, timeout_forces_resync_and_drops_late_reply)
{
    attach();
    do_sync();
    cr_assert_eq(agent_ping(F.a, 150, on_done, SLOT(0)), 0);
    cr_assert_eq(agent_get_info(F.a, 3000, on_info, SLOT(1)), 0);
    expect_cmd_free("guest-ping");
    cr_assert(run_until(&F.r[0].done, 2000));
    cr_expect_eq(F.r[0].code, -ETIMEDOUT);
    cr_expect_str_eq(F.r[0].cls, CONN_ERR_TIMEOUT);
    /* the next thing on the wire is a resync, not guest-info */
    long long id = expect_sync();
    /* the late ping reply arrives first and must not be taken for anything */
    peer_puts("{\"return\": {}}\n");
    answer_sync(id);
    json_free(expect_cmd("guest-info"));
    peer_puts("{\"return\": {\"version\": \"1.0\", \"supported_commands\": []}}\n");
    cr_assert(run_until(&F.r[1].done, 2000));
    cr_expect_eq(F.r[1].code, 0, "%s", F.r[1].desc);
    cr_expect_str_eq(F.version, "1.0");
    agent_stats st;
    agent_get_stats(F.a, &st);
    cr_expect_eq(st.timeouts, 1);
    cr_expect_eq(st.syncs, 2);
}

Test(agent, shutdown_completes_when_sent)
{
    attach();
    do_sync();
    cr_assert_eq(agent_shutdown(F.a, "reboot", on_done, SLOT(0)), 0);
    json_t *m = expect_cmd("guest-shutdown");
    cr_expect_str_eq(json_str(json_path(m, "arguments.mode")), "reboot");
    json_free(m);
    cr_assert(run_until(&F.r[0].done, 2000), "no reply is ever sent: completion is the write");
    cr_expect_eq(F.r[0].code, 0);
    /* a resync precedes whatever comes next */
    cr_assert_eq(agent_ping(F.a, 2000, on_done, SLOT(1)), 0);
    answer_sync(expect_sync());
    expect_cmd_free("guest-ping");
    peer_puts("{\"return\": {}}\n");
    cr_assert(run_until(&F.r[1].done, 2000));
    cr_expect_eq(F.r[1].code, 0);
}

Test(agent, raw_noreply_command)
{
    attach();
    do_sync();
    cr_assert_eq(agent_execute(F.a, "guest-suspend-ram", NULL, 2000, on_raw, SLOT(0)), 0);
    expect_cmd_free("guest-suspend-ram");
    cr_assert(run_until(&F.r[0].done, 2000));
    cr_expect_str_eq(F.r[0].text, "(sent)");
}

Test(agent, port_closed_stops_writing)
{
    attach();
    do_sync();
    cr_assert_eq(agent_ping(F.a, 5000, on_done, SLOT(0)), 0);
    expect_cmd_free("guest-ping");
    agent_port_closed(F.a);
    cr_expect_eq(F.r[0].done, 1);
    cr_expect_eq(F.r[0].code, -EPIPE);
    cr_assert_eq(agent_ping(F.a, 5000, on_done, SLOT(1)), 0);
    cr_expect_eq(peer_pending(100), 0, "wrote to a closed port");
    cr_expect_eq(F.r[1].done, 0, "queued commands wait for the port");
    do_sync();
    expect_cmd_free("guest-ping");
    peer_puts("{\"return\": {}}\n");
    cr_assert(run_until(&F.r[1].done, 2000));
    cr_expect_eq(F.r[1].code, 0);
}

Test(agent, queued_command_times_out_unsent)
{
    attach();
    cr_assert_eq(agent_ping(F.a, 150, on_done, SLOT(0)), 0);
    cr_assert(run_until(&F.r[0].done, 2000));
    cr_expect_eq(F.r[0].code, -ETIMEDOUT);
    cr_expect(strstr(F.r[0].desc, "never sent"), "%s", F.r[0].desc);
    cr_expect_eq(peer_pending(20), 0);
}

Test(agent, eof_mid_command)
{
    attach();
    do_sync();
    cr_assert_eq(agent_ping(F.a, 5000, on_done, SLOT(0)), 0);
    cr_assert_eq(agent_ping(F.a, 5000, on_done, SLOT(1)), 0);
    expect_cmd_free("guest-ping");
    close(F.peer);
    F.peer = -1;
    cr_assert(run_until(&F.r[1].done, 2000));
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(F.r[i].code, -ECONNRESET);
        cr_expect(strstr(F.r[i].desc, "qemu-ga") && strstr(F.r[i].desc, "EOF"), "%s", F.r[i].desc);
    }
    cr_expect_eq(F.dead, 1);
    cr_expect_eq(agent_ping(F.a, 5000, on_done, SLOT(2)), -ECONNRESET);
    cr_expect_eq(agent_sync(F.a, 5000, on_synced, NULL), -ECONNRESET);
    json_t *args = json_object();
    cr_expect_eq(agent_execute(F.a, "x", args, 0, on_raw, SLOT(3)), -ECONNRESET);
    cr_expect_eq(agent_error(F.a)->code, -ECONNRESET);
}

Test(agent, oversized_reply)
{
    agent_set_max_input(F.a, 1000);
    attach();
    do_sync();
    cr_assert_eq(agent_ping(F.a, 5000, on_done, SLOT(0)), 0);
    expect_cmd_free("guest-ping");
    char big[3000];
    memset(big, 'a', sizeof(big));
    peer_write(big, sizeof(big));
    cr_assert(run_until(&F.r[0].done, 2000));
    cr_expect_eq(F.r[0].code, -EMSGSIZE);
    cr_expect_eq(F.dead_code, -EMSGSIZE);
}

Test(agent, close_cancels_everything)
{
    attach();
    cr_assert_eq(agent_sync(F.a, 5000, on_synced, NULL), 0);
    cr_assert_eq(agent_ping(F.a, 5000, on_done, SLOT(0)), 0);
    expect_sync();
    agent_close(F.a, on_closed, NULL);
    cr_expect_eq(F.synced, 1);
    cr_expect_eq(F.sync_code, -ECANCELED);
    cr_expect_eq(F.r[0].code, -ECANCELED);
    cr_expect_eq(agent_ping(F.a, 5000, on_done, SLOT(1)), -ECANCELED);
    run_until(&F.closed, 1000);
}

/* ---- the real qemu-ga ---- */

static void on_proc_exit(uv_process_t *p, int64_t status, int sig)
{
    (void)p;
    (void)status;
    F.proc_exited = 1;
    F.proc_signal = sig;
}

static void ga_up(void)
{
    snprintf(F.sock, sizeof(F.sock), "%s/ga.sock", F.dir);
    char pidfile[300], statedir[300];
    snprintf(pidfile, sizeof(pidfile), "%s/ga.pid", F.dir);
    snprintf(statedir, sizeof(statedir), "%s", F.dir);
    /* connect first: it must wait for qemu-ga to create its socket */
    cr_assert_eq(agent_connect(F.a, F.sock, 10000, on_connected, NULL), 0);
    char *argv[] = { "qemu-ga", "-m", "unix-listen", "-p", F.sock, "-t", statedir, "-f", pidfile,
                     NULL };
    uv_stdio_container_t stdio[3] = {
        { .flags = UV_IGNORE }, { .flags = UV_IGNORE }, { .flags = UV_INHERIT_FD, .data.fd = 2 } };
    uv_process_options_t o = { .exit_cb = on_proc_exit, .file = argv[0], .args = argv,
                               .stdio_count = 3, .stdio = stdio };
    int rc = uv_spawn(&F.loop, &F.proc, &o);
    cr_assert_eq(rc, 0, "spawn qemu-ga: %s", uv_strerror(rc));
    F.proc_spawned = 1;
    cr_assert(run_until(&F.connected, 12000));
    cr_assert_eq(F.connect_code, 0);
    /* unix-listen has no virtio port: open as soon as connected */
    cr_assert_eq(agent_sync(F.a, 5000, on_synced, NULL), 0);
    cr_assert(run_until(&F.synced, 6000));
    cr_assert_eq(F.sync_code, 0, "%s", F.sync_desc);
}

Test(agent_ga, ping_info_interfaces, .init = setup, .fini = teardown, .timeout = 60)
{
    ga_up();
    cr_assert_eq(agent_ping(F.a, 5000, on_done, SLOT(0)), 0);
    cr_assert_eq(agent_get_info(F.a, 5000, on_info, SLOT(1)), 0);
    cr_assert_eq(agent_get_interfaces(F.a, 5000, on_ifaces, SLOT(2)), 0);
    cr_assert(run_until(&F.r[2].done, 10000));
    cr_expect_eq(F.r[0].code, 0, "%s", F.r[0].desc);
    cr_expect_eq(F.r[1].code, 0, "%s", F.r[1].desc);
    cr_expect_eq(F.r[2].code, 0, "%s", F.r[2].desc);
    cr_expect(strlen(F.version) > 0);
    cr_expect_gt(F.ncommands, 10);
    cr_expect(F.has_ping);
    cr_expect(F.lo_found, "no lo among %d interfaces", F.nifs);
    cr_expect(F.lo_v4, "lo without 127.0.0.1");
    cr_expect_eq(F.lo_prefix, 8);
}

static void on_poll_status(agent_t *a, const agent_exec_result *st, const conn_err *err, void *data);

static void poll_status(uv_timer_t *t)
{
    long long pid = *(long long *)t->data;
    cr_assert_eq(agent_exec_status(F.a, pid, 5000, on_poll_status, t), 0);
}

static void on_poll_status(agent_t *a, const agent_exec_result *st, const conn_err *err, void *data)
{
    uv_timer_t *t = data;
    if (!err && !st->exited) {
        uv_timer_start(t, poll_status, 20, 0); /* qemu-ga has no wait: poll, gently */
        return;
    }
    on_status(a, st, err, SLOT(2));
}

Test(agent_ga, exec_echo, .init = setup, .fini = teardown, .timeout = 60)
{
    ga_up();
    const char *argv[] = { "hello", NULL };
    agent_exec_opts o = { .path = "/bin/echo", .argv = argv, .capture_output = 1 };
    cr_assert_eq(agent_exec(F.a, &o, 5000, on_int, SLOT(1)), 0);
    cr_assert(run_until(&F.r[1].done, 6000));
    cr_assert_eq(F.r[1].code, 0, "%s", F.r[1].desc);
    cr_assert_gt(F.r[1].value, 0);
    long long pid = F.r[1].value;
    uv_timer_t t;
    uv_timer_init(&F.loop, &t);
    t.data = &pid;
    poll_status(&t);
    cr_assert(run_until(&F.r[2].done, 10000));
    uv_close((uv_handle_t *)&t, NULL);
    spin(5);
    cr_assert_eq(F.r[2].code, 0, "%s", F.r[2].desc);
    cr_expect_eq(F.exited, 1);
    cr_expect_eq(F.exitcode, 0);
    cr_expect_str_eq(F.r[2].text, "hello\n");
}

Test(agent_ga, file_open_read_write_close, .init = setup, .fini = teardown, .timeout = 60)
{
    ga_up();
    char path[300];
    snprintf(path, sizeof(path), "%s/data.txt", F.dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs("line one\nline two\n", f);
    fclose(f);
    cr_assert_eq(agent_file_open(F.a, path, "r", 5000, on_int, SLOT(0)), 0);
    cr_assert(run_until(&F.r[0].done, 6000));
    cr_assert_eq(F.r[0].code, 0, "%s", F.r[0].desc);
    long long h = F.r[0].value;
    cr_assert_eq(agent_file_read(F.a, h, 4096, 5000, on_read, SLOT(1)), 0);
    cr_assert_eq(agent_file_close(F.a, h, 5000, on_done, SLOT(2)), 0);
    cr_assert(run_until(&F.r[2].done, 6000));
    cr_expect_eq(F.r[1].code, 0, "%s", F.r[1].desc);
    cr_expect_str_eq(F.r[1].text, "line one\nline two\n");
    cr_expect_eq(F.r[2].code, 0, "%s", F.r[2].desc);
    /* write a new file through the agent */
    snprintf(path, sizeof(path), "%s/out.bin", F.dir);
    cr_assert_eq(agent_file_open(F.a, path, "w", 5000, on_int, SLOT(3)), 0);
    cr_assert(run_until(&F.r[3].done, 6000));
    cr_assert_eq(F.r[3].code, 0, "%s", F.r[3].desc);
    cr_assert_eq(agent_file_write(F.a, F.r[3].value, "a\0b\n", 4, 5000, on_write, SLOT(4)), 0);
    cr_assert_eq(agent_file_close(F.a, F.r[3].value, 5000, on_done, SLOT(5)), 0);
    cr_assert(run_until(&F.r[5].done, 6000));
    cr_expect_eq(F.r[4].value, 4);
    f = fopen(path, "rb");
    cr_assert(f);
    char back[8];
    cr_expect_eq(fread(back, 1, sizeof(back), f), 4);
    cr_expect(!memcmp(back, "a\0b\n", 4));
    fclose(f);
    /* an agent error */
    cr_assert_eq(agent_file_open(F.a, "/nonexistent/dir/x", "r", 5000, on_int, SLOT(6)), 0);
    cr_assert(run_until(&F.r[6].done, 6000));
    cr_expect_eq(F.r[6].code, -EREMOTEIO);
    cr_expect(strlen(F.r[6].desc) > 0);
}

Test(agent_ga, killed_mid_command, .init = setup, .fini = teardown, .timeout = 60)
{
    ga_up();
    /* Freeze the agent so the command is surely in flight, then kill it. */
    cr_assert_eq(uv_process_kill(&F.proc, SIGSTOP), 0);
    cr_assert_eq(agent_ping(F.a, 10000, on_done, SLOT(0)), 0);
    cr_assert_eq(agent_get_info(F.a, 10000, on_info, SLOT(1)), 0);
    spin(100);
    cr_expect_eq(F.ndone, 0);
    cr_assert_eq(uv_process_kill(&F.proc, SIGKILL), 0);
    double t0 = tu_now_ms();
    cr_assert(run_until(&F.r[1].done, 5000));
    cr_expect_lt(tu_now_ms() - t0, 2000, "a dead agent must not wait for timeouts");
    cr_expect_eq(F.r[0].code, -ECONNRESET, "%s", F.r[0].desc);
    cr_expect_eq(F.r[1].code, -ECONNRESET, "%s", F.r[1].desc);
    /* EOF, or a reset when the agent died with our request unread */
    cr_expect(strstr(F.r[0].desc, "qemu-ga: ") &&
                  (strstr(F.r[0].desc, "EOF") || strstr(F.r[0].desc, "reset")),
              "%s", F.r[0].desc);
    cr_assert(run_until(&F.proc_exited, 5000));
    cr_expect_eq(F.proc_signal, SIGKILL);
    cr_expect_eq(agent_ping(F.a, 1000, on_done, SLOT(2)), -ECONNRESET);
}
