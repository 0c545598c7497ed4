/* test_agent_ga.c - the guest-agent client (qmp/agent.h) against the real
 * qemu-ga in unix-listen mode on the host. */
#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "agent_fx.h"

/* Every test ends with down(). */
TestSuite(agent_ga, .init = agent_fx_setup, .fini = agent_fx_teardown, .timeout = 60);

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
    tu_spawn(&F.l, argv);
    cr_assert(run_until(&F.connected, 12000));
    cr_assert_eq(F.connect_code, 0);
    /* unix-listen has no virtio port: open as soon as connected */
    cr_assert_eq(agent_sync(F.a, 5000, on_synced, NULL), 0);
    cr_assert(run_until(&F.synced, 6000));
    cr_assert_eq(F.sync_code, 0, "%s", F.sync_desc);
}

Test(agent_ga, ping_info_interfaces)
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
    down();
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

Test(agent_ga, exec_echo)
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
    uv_timer_init(&F.l.loop, &t);
    t.data = &pid;
    poll_status(&t);
    cr_assert(run_until(&F.r[2].done, 10000));
    uv_close((uv_handle_t *)&t, NULL);
    spin(5);
    cr_assert_eq(F.r[2].code, 0, "%s", F.r[2].desc);
    cr_expect_eq(F.exited, 1);
    cr_expect_eq(F.exitcode, 0);
    cr_expect_str_eq(F.r[2].text, "hello\n");
    down();
}

Test(agent_ga, file_open_read_write_close)
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
    down();
}

Test(agent_ga, killed_mid_command)
{
    ga_up();
    /* Freeze the agent so the command is surely in flight, then kill it. */
    cr_assert_eq(uv_process_kill(&F.l.proc, SIGSTOP), 0);
    cr_assert_eq(agent_ping(F.a, 10000, on_done, SLOT(0)), 0);
    cr_assert_eq(agent_get_info(F.a, 10000, on_info, SLOT(1)), 0);
    spin(100);
    cr_expect_eq(F.ndone, 0);
    cr_assert_eq(uv_process_kill(&F.l.proc, SIGKILL), 0);
    /* The commands' timeouts are 10 s: completing well before says the
     * client did not wait for them. */
    cr_assert(run_until(&F.r[1].done, 8000), "a dead agent must not wait for timeouts");
    cr_expect_eq(F.r[0].code, -ECONNRESET, "%s", F.r[0].desc);
    cr_expect_eq(F.r[1].code, -ECONNRESET, "%s", F.r[1].desc);
    /* EOF, or a reset when the agent died with our request unread */
    cr_expect(strstr(F.r[0].desc, "qemu-ga: ") &&
                  (strstr(F.r[0].desc, "EOF") || strstr(F.r[0].desc, "reset")),
              "%s", F.r[0].desc);
    cr_assert(run_until(&F.l.proc_exited, 5000));
    cr_expect_eq(F.l.proc_signal, SIGKILL);
    cr_expect_eq(agent_ping(F.a, 1000, on_done, SLOT(2)), -ECONNRESET);
    down();
}
