/* test_agent.c - the guest-agent client (qmp/agent.h) against a scripted
 * qemu-ga on a socketpair, driven from the test thread between loop turns.
 * The real qemu-ga is in test_agent_ga.c. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "agent_fx.h"
#include "qmp/test_hooks.h"

/* Every test ends with down(). */
TestSuite(agent, .init = agent_fx_setup, .fini = agent_fx_teardown, .timeout = 60);

static void attach(void) { cr_assert_eq(agent_attach_fd(F.a, tu_peer_pair(&F.peer)), 0); }

static void peer_write(const void *buf, size_t len) { tu_peer_write(&F.l, F.peer, buf, len); }

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
        uv_run(&F.l.loop, UV_RUN_ONCE);
    }
}

/* Bytes the client wrote so far (after running the loop for ms). */
static size_t peer_pending(int ms)
{
    double end = tu_now_ms() + ms;
    while (tu_now_ms() < end) {
        uv_run(&F.l.loop, UV_RUN_NOWAIT);
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
        json_t *v = tu_take_json_line(F.pbuf, &F.plen);
        if (v)
            return v;
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
    down();
}

Test(agent, sync_before_connect_waits_for_connect)
{
    cr_assert_eq(agent_sync(F.a, 2000, on_synced, NULL), 0);
    cr_expect_eq(agent_sync(F.a, 2000, on_synced, NULL), -EBUSY);
    attach();
    answer_sync(expect_sync());
    cr_assert(run_until(&F.synced, 2000));
    cr_expect_eq(F.sync_code, 0);
    down();
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
    down();
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
        uv_run(&F.l.loop, UV_RUN_NOWAIT);
    }
    cr_assert(run_until(&F.synced, 2000));
    cr_expect_eq(F.sync_code, 0);
    down();
}

Test(agent, sync_timeout)
{
    attach();
    double t0 = tu_clock_start(&F.l);
    cr_assert_eq(agent_sync(F.a, 200, on_synced, NULL), 0);
    expect_sync();
    cr_assert(run_until(&F.synced, 2000));
    cr_expect_eq(F.sync_code, -ETIMEDOUT);
    cr_expect_geq(tu_now_ms() - t0, 180);
    cr_expect(strstr(F.sync_desc, "guest-sync-delimited"), "%s", F.sync_desc);
    cr_expect_eq(agent_is_synced(F.a), 0);
    down();
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
    down();
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
    down();
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
    down();
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
    down();
}

/* A resync must drop what the agent left half-written before it: here the
 * start of a reply to the timed-out ping. If those bytes stayed in front
 * of the agent's 0xFF, the sync reply would be glued to them, the 0xFF
 * swallowed inside one bad line, and the sync would never complete. */
Test(agent, resync_drops_stale_partial_line)
{
    attach();
    do_sync();
    cr_assert_eq(agent_ping(F.a, 150, on_done, SLOT(0)), 0);
    cr_assert_eq(agent_get_info(F.a, 3000, on_info, SLOT(1)), 0);
    expect_cmd_free("guest-ping");
    peer_puts("{\"return\": {\"half"); /* and then the ping times out */
    cr_assert(run_until(&F.r[0].done, 2000));
    cr_expect_eq(F.r[0].code, -ETIMEDOUT);
    long long id = expect_sync();
    char buf[64];
    snprintf(buf, sizeof(buf), "\xff{\"return\": %lld}\n", id);
    peer_puts(buf);
    json_free(expect_cmd("guest-info"));
    peer_puts("{\"return\": {\"version\": \"2.0\", \"supported_commands\": []}}\n");
    cr_assert(run_until(&F.r[1].done, 2000));
    cr_expect_eq(F.r[1].code, 0, "%s", F.r[1].desc);
    cr_expect_str_eq(F.version, "2.0");
    down();
}

/* A reply nobody asked for, while idle, means replies and commands can no
 * longer be paired: the next command must be preceded by a resync. */
Test(agent, stray_reply_while_idle_forces_resync)
{
    attach();
    do_sync();
    peer_puts("{\"return\": {}}\n");
    agent_stats st = { 0 };
    for (double end = tu_now_ms() + 2000; !st.unexpected && tu_now_ms() < end;) {
        spin(5);
        agent_get_stats(F.a, &st);
    }
    cr_assert_eq(st.unexpected, 1, "the stray reply never arrived");
    cr_expect_eq(agent_is_synced(F.a), 0);
    cr_assert_eq(agent_ping(F.a, 2000, on_done, SLOT(0)), 0);
    answer_sync(expect_sync());
    expect_cmd_free("guest-ping");
    peer_puts("{\"return\": {}}\n");
    cr_assert(run_until(&F.r[0].done, 2000));
    cr_expect_eq(F.r[0].code, 0, "%s", F.r[0].desc);
    agent_get_stats(F.a, &st);
    cr_expect_eq(st.syncs, 2);
    down();
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
    down();
}

Test(agent, raw_noreply_command)
{
    attach();
    do_sync();
    cr_assert_eq(agent_execute(F.a, "guest-suspend-ram", NULL, 2000, on_raw, SLOT(0)), 0);
    expect_cmd_free("guest-suspend-ram");
    cr_assert(run_until(&F.r[0].done, 2000));
    cr_expect_str_eq(F.r[0].text, "(sent)");
    down();
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
    down();
}

Test(agent, queued_command_times_out_unsent)
{
    attach();
    cr_assert_eq(agent_ping(F.a, 150, on_done, SLOT(0)), 0);
    cr_assert(run_until(&F.r[0].done, 2000));
    cr_expect_eq(F.r[0].code, -ETIMEDOUT);
    cr_expect(strstr(F.r[0].desc, "never sent"), "%s", F.r[0].desc);
    cr_expect_eq(peer_pending(20), 0);
    down();
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
    down();
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
    down();
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
    cr_assert(run_until(&F.l.closed, 1000), "the close callback never ran");
    down();
}
