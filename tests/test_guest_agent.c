/* test_guest_agent.c - guest sessions (guest/session.h) over the guest
 * agent, side by side with SSH, against the real test guest of
 * tools/mkguest.
 *
 * The fleet (src/fleet) boots the guest, as `qfleet up` would, and keeps
 * the one connection QEMU allows to the guest's agent: so each test boots
 * a guest of its own in its own process (Criterion runs every test in a
 * fresh one) and takes the agent client from the fleet. The SSH-only tests,
 * which share two guests booted once, are in test_guest.c. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guest_fx.h"
#include "qmp/agent.h"
#include "testutil.h"

static uv_loop_t loop;
static tg_fleet T;
static char fxdir[256]; /* the fleet's state and run dirs */

static void setup(void)
{
    memset(&T, 0, sizeof(T));
    cr_assert_eq(tu_mkdtemp(fxdir, sizeof(fxdir), "guest-agent"), 0);
    cr_assert_eq(uv_loop_init(&loop), 0);
}

/* After a test that failed before down(): stop its guest, no asserts. */
static void teardown(void)
{
    char err[256];
    if (T.f)
        tg_down(&T, err, sizeof(err));
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_loop_close(&loop);
    tu_rmtree(fxdir);
}

/* The first line of every test: a guest of its own, ready. */
static void up(void)
{
    char err[512];
    cr_assert_eq(tg_up(&T, &loop, fxdir, 1, err, sizeof(err)), 0, "%s", err);
}

/* The last line of every test: the guest stops, the fleet is freed, and
 * nothing is left on the loop (in the body: Criterion 2.4 ignores failed
 * asserts in a .fini). */
static void down(void)
{
    char err[256];
    cr_assert_eq(tg_down(&T, err, sizeof(err)), 0, "%s", err);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0, "handles left on the loop");
}

static guest_session_t *open_ssh(uv_loop_t *l, int i)
{
    const char *host, *user, *password;
    int port;
    char kh[512], name[16];
    cr_assert_eq(fguest_ssh_target(tg_guest(&T, i), &host, &port, &user, &password), 0);
    tg_known_hosts(&T, i, kh, sizeof(kh));
    snprintf(name, sizeof(name), "vm%d", i);
    guest_opts o = tg_ssh_opts(name, port, kh);
    res r = {0};
    guest_session_t *s = open_wait(l, &o, &r);
    cr_assert_eq(r.status, 0, "ssh open: %s", r.error);
    res_free(&r);
    return s;
}

/* The fleet's agent client of guest i: connected and synced at ready. */
static agent_t *agent_up(uv_loop_t *l, int i)
{
    (void)l;
    agent_t *a = fguest_agent(tg_guest(&T, i));
    cr_assert(a, "the fleet has no agent client for vm%d", i);
    cr_assert(agent_is_synced(a), "the fleet's agent client for vm%d is not synced", i);
    return a;
}

static guest_session_t *agent_session(uv_loop_t *l, agent_t *a, int i)
{
    static char name[16];
    snprintf(name, sizeof(name), "vm%d", i);
    guest_opts o = {.name = name, .transport = GUEST_AGENT};
    o.agent.client = a;
    res r = {0};
    guest_session_t *s = open_wait(l, &o, &r);
    cr_assert_eq(r.status, 0, "agent open: %s", r.error);
    res_free(&r);
    return s;
}

static void stop_loop(uv_timer_t *t)
{
    uv_stop(t->loop);
}

/* Every test starts with up() and ends with down(). */
TestSuite(guest, .init = setup, .fini = teardown, .timeout = 300);

Test(guest, uname_both_ways)
{
    up();
    guest_session_t *ss = open_ssh(&loop, 0);
    agent_t *a = agent_up(&loop, 0);
    guest_session_t *as = agent_session(&loop, a, 0);
    res r1, r2;
    exec_wait(&loop, ss, "uname -r", 20000, &r1);
    exec_wait(&loop, as, "uname -r", 20000, &r2);
    cr_assert_eq(r1.status, 0, "%s", r1.error);
    cr_assert_eq(r2.status, 0, "%s", r2.error);
    cr_assert_eq(r1.exit_code, 0);
    cr_assert_eq(r2.exit_code, 0);
    cr_assert(r1.out_len > 2 && strchr(r1.out, '\n'), "ssh said '%s'", r1.out);
    cr_assert_str_eq(r1.out, r2.out);
    cr_assert_str_eq(r1.errout, "");
    cr_log_info("uname -r: ssh %.0f ms, agent %.0f ms: %s", r1.elapsed, r2.elapsed, r1.out);
    res_free(&r1);
    res_free(&r2);
    /* Exit status and stderr come through both transports the same way. */
    exec_wait(&loop, ss, "echo out; echo err >&2; exit 3", 20000, &r1);
    exec_wait(&loop, as, "echo out; echo err >&2; exit 3", 20000, &r2);
    cr_assert_eq(r1.exit_code, 3);
    cr_assert_eq(r2.exit_code, 3);
    cr_assert_str_eq(r1.out, "out\n");
    cr_assert_str_eq(r2.out, "out\n");
    cr_assert_str_eq(r1.errout, "err\n");
    cr_assert_str_eq(r2.errout, "err\n");
    res_free(&r1);
    res_free(&r2);
    /* The agent has no shell to drive. */
    cr_assert_eq(guest_send(as, "x", 1, on_res, &r1), -ENOTSUP);
    close_session(&loop, ss);
    close_session(&loop, as);
    down();
}

Test(guest, copy_1mib)
{
    char dir[256], src[300], back[300], back2[300];
    tmp_dir(dir, sizeof(dir));
    snprintf(src, sizeof(src), "%s/src", dir);
    snprintf(back, sizeof(back), "%s/back", dir);
    snprintf(back2, sizeof(back2), "%s/back2", dir);
    rand_file(src, 1u << 20);
    up();
    guest_session_t *ss = open_ssh(&loop, 0);
    agent_t *a = agent_up(&loop, 0);
    guest_session_t *as = agent_session(&loop, a, 0);
    res in = {0}, out = {0}, sum = {0}, in2 = {0}, out2 = {0}, miss = {0};
    cr_assert_eq(guest_copy_in(ss, src, "/tmp/qf-1m", 60000, on_res, &in), 0);
    cr_assert_eq(guest_copy_out(ss, "/tmp/qf-1m", back, 60000, on_res, &out), 0);
    cr_assert_eq(guest_exec(ss, "md5sum < /tmp/qf-1m; wc -c < /tmp/qf-1m", 20000, on_res, &sum), 0);
    /* In through the agent, out through SSH, and the other way round. */
    cr_assert_eq(guest_copy_in(as, src, "/tmp/qf-1m-agent", 120000, on_res, &in2), 0);
    cr_assert_eq(guest_copy_out(as, "/tmp/qf-1m", back2, 120000, on_res, &out2), 0);
    wait_flag(&loop, &sum.done);
    wait_flag(&loop, &out2.done);
    cr_assert_eq(in.status, 0, "%s", in.error);
    cr_assert_eq(out.status, 0, "%s", out.error);
    cr_assert_eq(in2.status, 0, "%s", in2.error);
    cr_assert_eq(out2.status, 0, "%s", out2.error);
    cr_assert(strstr(sum.out, "1048576"), "%s", sum.out);
    cr_assert(same_file(src, back), "ssh round trip differs");
    cr_assert(same_file(src, back2), "ssh in, agent out differs");
    cr_log_info("1 MiB: ssh in %.0f ms, out %.0f ms; agent in %.0f ms, out %.0f ms", in.elapsed,
                out.elapsed, in2.elapsed, out2.elapsed);
    res_free(&out);
    cr_assert_eq(guest_copy_out(ss, "/tmp/qf-1m-agent", back, 60000, on_res, &out), 0);
    cr_assert_eq(guest_copy_out(ss, "/nonexistent/file", back2, 60000, on_res, &miss), 0);
    wait_flag(&loop, &miss.done);
    cr_assert_eq(out.status, 0, "%s", out.error);
    cr_assert(same_file(src, back), "agent in, ssh out differs");
    cr_assert_eq(miss.status, -ENOENT, "%d %s", miss.status, miss.error);
    cr_assert(strstr(miss.error, "vm0: ssh copy out /nonexistent/file"), "%s", miss.error);
    cr_assert_eq(access(back2, F_OK), -1, "a failed copy left a host file");
    res_free(&in);
    res_free(&out);
    res_free(&sum);
    res_free(&in2);
    res_free(&out2);
    res_free(&miss);
    close_session(&loop, ss);
    close_session(&loop, as);
    down();
    tu_rmtree(dir);
}

Test(guest, timeout_keeps_session)
{
    up();
    guest_session_t *ss = open_ssh(&loop, 0);
    agent_t *a = agent_up(&loop, 0);
    guest_session_t *as = agent_session(&loop, a, 0);
    guest_session_t *both[2] = {ss, as};
    for (int k = 0; k < 2; k++) {
        res r, ok, ps;
        double t0 = tu_now_ms();
        exec_wait(&loop, both[k], "echo started; sleep 30", 2000, &r);
        double took = tu_now_ms() - t0;
        cr_assert_eq(r.status, -ETIMEDOUT, "%d %s", r.status, r.error);
        cr_assert(r.timed_out);
        cr_assert_eq(r.exit_code, -1);
        cr_assert(strstr(r.error, "exec `echo started; sleep 30`: timed out after 2000 ms"), "%s",
                  r.error);
        if (k == 0) /* SSH streams: the output so far is in the error */
            cr_assert(strstr(r.error, "last output: 'started\\n'"), "%s", r.error);
        /* the 2 s timeout, not the 30 s the command would take */
        cr_assert(took < 25000, "timeout took %.0f ms", took);
        exec_wait(&loop, both[k], "echo still usable", 20000, &ok);
        cr_assert_eq(ok.status, 0, "%s", ok.error);
        cr_assert_str_eq(ok.out, "still usable\n");
        cr_log_info("%s; next command after %.0f ms", r.error, ok.elapsed);
        /* The timed-out command is not left running in the guest. The
         * [s] keeps grep from finding itself. */
        exec_wait(&loop, both[k], "sleep 1; ps | grep '[s]leep 30' || echo none", 20000, &ps);
        cr_assert_str_eq(ps.out, "none\n", "still running: %s", ps.out);
        res_free(&r);
        res_free(&ok);
        res_free(&ps);
    }
    close_session(&loop, ss);
    close_session(&loop, as);
    down();
}

/* Closing an agent session with a command running and more queued:
 * everything reports -ECANCELED, then the close callback runs. The agent
 * client (the fleet's) lives on: a fresh session on it works right after. */
Test(guest, cancel_over_agent)
{
    up();
    agent_t *a = agent_up(&loop, 0);
    guest_session_t *s = agent_session(&loop, a, 0);
    res run = {0}, queued = {0};
    int closed = 0;
    uv_timer_t tm;
    uv_timer_init(&loop, &tm);
    cr_assert_eq(guest_exec(s, "sleep 5", 30000, on_res, &run), 0);
    cr_assert_eq(guest_exec(s, "true", 30000, on_res, &queued), 0);
    uv_timer_start(&tm, stop_loop, 300, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    guest_close(s, on_closed, &closed);
    wait_flag(&loop, &closed);
    cr_assert_eq(run.status, -ECANCELED, "%d %s", run.status, run.error);
    cr_assert_eq(queued.status, -ECANCELED, "%d %s", queued.status, queued.error);
    res_free(&run);
    res_free(&queued);
    s = agent_session(&loop, a, 0);
    exec_wait(&loop, s, "echo again", 30000, &run);
    cr_assert_str_eq(run.out, "again\n", "%s", run.error);
    res_free(&run);
    close_session(&loop, s);
    uv_close((uv_handle_t *)&tm, NULL);
    down();
}

