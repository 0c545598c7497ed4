/* test_guest.c - SSH sessions (guest/session.h) against the real test
 * guest of tools/mkguest: dropbear on the forwarded port 22.
 *
 * Booting is the slow part (TCG), so main() boots two guests once for the
 * whole binary, with the fleet itself (src/fleet, as `qfleet up` does),
 * before Criterion runs any test, and stops them after. Criterion starts
 * every test in a fresh process (its globals reset), so the guests' SSH
 * ports and known_hosts files reach the tests through the environment.
 * While they boot, tg_up() also logs in to each over SSH as soon as the
 * fleet has leased its port: that exercises the connect retry while sshd
 * is not up yet. The fleet spawns every QEMU with PR_SET_PDEATHSIG: none
 * outlives the binary. Sessions over the guest agent, whose one connection
 * the fleet holds, are in test_guest_agent.c. */
#include <criterion/criterion.h>
#include <libssh/libssh.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "guest_fx.h"
#include "testutil.h"

#define NVM 2

static const char *env(const char *name)
{
    const char *v = getenv(name);
    cr_assert(v && *v, "%s not set: run this binary itself, not a single test of it", name);
    return v;
}

static int vm_port(int i)
{
    char n[32];
    snprintf(n, sizeof(n), "QF_TG_PORT%d", i);
    return atoi(env(n));
}

/* SSH to guest i, as the fleet's own login saw its host key unless
 * known_hosts says otherwise. */
static guest_opts ssh_opts(int i, const char *known_hosts)
{
    static char name[16];
    char n[32];
    snprintf(name, sizeof(name), "vm%d", i);
    snprintf(n, sizeof(n), "QF_TG_KNOWN_HOSTS%d", i);
    return tg_ssh_opts(name, vm_port(i), known_hosts ? known_hosts : env(n));
}

static guest_session_t *open_ssh(uv_loop_t *loop, int i)
{
    res r = {0};
    guest_opts o = ssh_opts(i, NULL);
    guest_session_t *s = open_wait(loop, &o, &r);
    cr_assert_eq(r.status, 0, "ssh open: %s", r.error);
    res_free(&r);
    return s;
}

/* The loop must end with nothing left on it: every handle closed. */
static void loop_done(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(loop), 0, "handles left on the loop");
}

TestSuite(guest, .timeout = 240);

Test(guest, shell_send_expect)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    guest_session_t *s = open_ssh(&loop, 1);
    res prompt = {0}, sent = {0}, m = {0}, none = {0}, bad = {0};
    /* Wait for the prompt first, so the command does not race the login
     * banner; then the answer on a line of its own (the pty echoes the
     * command line itself, which must not match). */
    cr_assert_eq(guest_expect(s, "# $", 20000, on_res, &prompt), 0);
    cr_assert_eq(guest_send(s, "echo $((6*7))\n", 14, on_res, &sent), 0);
    cr_assert_eq(guest_expect(s, "^42\r?$", 20000, on_res, &m), 0);
    cr_assert_eq(guest_expect(s, "no such text", 1000, on_res, &none), 0);
    cr_assert_eq(guest_expect(s, "([", 1000, on_res, &bad), -EINVAL);
    wait_flag(&loop, &none.done);
    cr_assert_eq(prompt.status, 0, "%s", prompt.error);
    cr_assert_eq(sent.status, 0, "%s", sent.error);
    cr_assert_eq(m.status, 0, "%s", m.error);
    cr_assert(strncmp(m.out, "42", 2) == 0, "matched '%s'", m.out);
    cr_assert(strstr(m.before, "echo $((6*7))"), "before: '%s'", m.before);
    cr_assert_eq(none.status, -ETIMEDOUT);
    cr_assert(none.timed_out);
    cr_assert(strstr(none.error, "vm1: ssh shell expect /no such text/: no match within 1000 ms"),
              "%s", none.error);
    cr_assert(strstr(none.error, "last output:"), "%s", none.error);
    res_free(&prompt);
    res_free(&sent);
    res_free(&m);
    res_free(&none);
    /* After a timeout nothing was consumed: the prompt is still there. */
    cr_assert_eq(guest_expect(s, "# $", 20000, on_res, &prompt), 0);
    wait_flag(&loop, &prompt.done);
    cr_assert_eq(prompt.status, 0, "%s", prompt.error);
    res_free(&prompt);
    /* The shell ending is reported as such, not as a timeout. */
    cr_assert_eq(guest_send(s, "exit\n", 5, on_res, &sent), 0);
    cr_assert_eq(guest_expect(s, "never", 20000, on_res, &m), 0);
    wait_flag(&loop, &m.done);
    cr_assert_eq(m.status, -EPIPE, "%d %s", m.status, m.error);
    res_free(&sent);
    res_free(&m);
    close_session(&loop, s);
    loop_done(&loop);
}

/* 1 MiB of random bytes in and out, through both transports and across. */
Test(guest, wrong_password)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    guest_opts o = ssh_opts(1, NULL);
    o.ssh.password = "Wr0ng-Secret-71";
    res r = {0}, e = {0};
    guest_session_t *s = open_wait(&loop, &o, &r);
    cr_assert_eq(r.status, -EACCES, "%d %s", r.status, r.error);
    cr_assert(strstr(r.error, "vm1: ssh login as root: authentication failed"), "%s", r.error);
    cr_assert_null(strstr(r.error, "Wr0ng-Secret-71"), "password in error: %s", r.error);
    cr_assert_not(guest_is_up(s));
    /* A step after a failed login says why it cannot run. */
    exec_wait(&loop, s, "true", 5000, &e);
    cr_assert_eq(e.status, -ENOTCONN);
    cr_assert(strstr(e.error, "vm1: ssh exec `true`: not connected (ssh login as root: "
                              "authentication failed"), "%s", e.error);
    cr_assert_null(strstr(e.error, "Wr0ng-Secret-71"));
    cr_log_info("%s", r.error);
    res_free(&r);
    res_free(&e);
    close_session(&loop, s);
    loop_done(&loop);
}

typedef struct multi {
    uv_loop_t *loop;
    guest_session_t *s;
    int idx, left, failed;
    res open, exec, prompt, answer;
    double done_at;
    double start, end; /* the guest's uptime around the command's sleep */
} multi;

static void multi_done(guest_session_t *s, const guest_result *r, void *data)
{
    multi *m = data;
    if (r->status)
        m->failed++;
    if (--m->left == 0)
        m->done_at = tu_now_ms();
}

/* Eight sessions at once from one loop: four into each of the two guests
 * (eight guests would take minutes to boot under TCG on two cores). Each
 * runs a command and a shell dialogue; all of it interleaves on the loop. */
Test(guest, eight_sessions)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    multi m[8];
    char cmd[8][128], line[8][32], re[8][32];
    double t0 = tu_now_ms();
    for (int i = 0; i < 8; i++) {
        memset(&m[i], 0, sizeof(m[i]));
        m[i].idx = i;
        guest_opts o = ssh_opts(i % NVM, NULL);
        cr_assert_eq(guest_open(&loop, &o, on_res, &m[i].open, &m[i].s), 0);
        snprintf(cmd[i], sizeof(cmd[i]),
                 "echo session-%d; cut -d' ' -f1 /proc/uptime; sleep 1; cut -d' ' -f1 /proc/uptime", i);
        snprintf(line[i], sizeof(line[i]), "echo $((%d*1000+7))\n", i);
        snprintf(re[i], sizeof(re[i]), "^%d\r?$", i * 1000 + 7);
        m[i].left = 3;
        cr_assert_eq(guest_exec(m[i].s, cmd[i], 30000, on_res, &m[i].exec), 0);
        cr_assert_eq(guest_send(m[i].s, line[i], strlen(line[i]), multi_done, &m[i]), 0);
        cr_assert_eq(guest_expect(m[i].s, re[i], 30000, multi_done, &m[i]), 0);
        cr_assert_eq(guest_exec(m[i].s, "true", 30000, multi_done, &m[i]), 0);
    }
    for (int i = 0; i < 8; i++)
        while (m[i].left > 0)
            uv_run(&loop, UV_RUN_ONCE);
    double all = tu_now_ms() - t0;
    for (int i = 0; i < 8; i++) {
        char want[32];
        int n = snprintf(want, sizeof(want), "session-%d\n", i);
        cr_assert_eq(m[i].open.status, 0, "session %d: %s", i, m[i].open.error);
        cr_assert_eq(m[i].exec.status, 0, "session %d: %s", i, m[i].exec.error);
        cr_assert(!strncmp(m[i].exec.out, want, (size_t)n), "session %d said '%s'", i, m[i].exec.out);
        cr_assert_eq(sscanf(m[i].exec.out + n, "%lf %lf", &m[i].start, &m[i].end), 2, "%s",
                     m[i].exec.out);
        cr_assert_geq(m[i].end - m[i].start, 0.99, "session %d did not sleep", i);
        cr_assert_eq(m[i].failed, 0, "session %d: shell dialogue failed", i);
        res_free(&m[i].open);
        res_free(&m[i].exec);
    }
    /* Each command slept 1 s: run one by one, no two sleeps would overlap.
     * In each guest (one clock) some must have run at the same time. */
    for (int g = 0; g < NVM; g++) {
        int most = 0;
        for (int i = g; i < 8; i += NVM) {
            int at_once = 0; /* sessions running when session i started */
            for (int k = g; k < 8; k += NVM)
                at_once += m[k].start <= m[i].start && m[i].start < m[k].end;
            most = at_once > most ? at_once : most;
        }
        cr_assert_geq(most, 2, "vm%d ran its 4 sessions one at a time", g);
        cr_log_info("vm%d: up to %d of its 4 sessions ran at once", g, most);
    }
    cr_log_info("8 concurrent sessions (4 per guest): all done in %.0f ms", all);
    for (int i = 0; i < 8; i++)
        guest_close(m[i].s, NULL, NULL);
    loop_done(&loop);
}

/* A different key recorded for the guest's host:port fails loudly. */
Test(guest, host_key_changed)
{
    char dir[256], kh[300];
    tmp_dir(dir, sizeof(dir));
    snprintf(kh, sizeof(kh), "%s/known_hosts", dir);
    ssh_key key = NULL;
    char *b64 = NULL;
    cr_assert_eq(ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key), SSH_OK);
    cr_assert_eq(ssh_pki_export_pubkey_base64(key, &b64), SSH_OK);
    FILE *f = fopen(kh, "w");
    cr_assert(f);
    fprintf(f, "[127.0.0.1]:%d ssh-ed25519 %s\n", vm_port(0), b64);
    fclose(f);
    ssh_string_free_char(b64);
    ssh_key_free(key);
    uv_loop_t loop;
    uv_loop_init(&loop);
    guest_opts o = ssh_opts(0, kh);
    res r = {0};
    guest_session_t *s = open_wait(&loop, &o, &r);
    cr_assert_eq(r.status, -EKEYREJECTED, "%d %s", r.status, r.error);
    cr_assert(strstr(r.error, "vm0: ssh host key check for [127.0.0.1]:"), "%s", r.error);
    cr_assert(strstr(r.error, "HOST KEY CHANGED"), "%s", r.error);
    cr_log_info("%s", r.error);
    res_free(&r);
    close_session(&loop, s);
    loop_done(&loop);
    tu_rmtree(dir);
}

/* Publickey login, with the key installed over a password session. */
Test(guest, key_login)
{
    char dir[256], keyf[300], cmd[512];
    tmp_dir(dir, sizeof(dir));
    snprintf(keyf, sizeof(keyf), "%s/id_ed25519", dir);
    ssh_key key = NULL;
    char *b64 = NULL;
    cr_assert_eq(ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key), SSH_OK);
    cr_assert_eq(ssh_pki_export_privkey_file(key, NULL, NULL, NULL, keyf), SSH_OK);
    cr_assert_eq(ssh_pki_export_pubkey_base64(key, &b64), SSH_OK);
    snprintf(cmd, sizeof(cmd),
             "mkdir -p -m 700 /root/.ssh && echo 'ssh-ed25519 %s qf' >> /root/.ssh/authorized_keys"
             " && chmod 600 /root/.ssh/authorized_keys", b64);
    ssh_string_free_char(b64);
    ssh_key_free(key);
    uv_loop_t loop;
    uv_loop_init(&loop);
    guest_session_t *s = open_ssh(&loop, 1);
    res r, w = {0};
    exec_wait(&loop, s, cmd, 20000, &r);
    cr_assert_eq(r.exit_code, 0, "%s %s", r.error, r.errout);
    res_free(&r);
    guest_opts o = ssh_opts(1, NULL);
    o.ssh.password = NULL;
    o.ssh.key_path = keyf;
    guest_session_t *k = open_wait(&loop, &o, &w);
    cr_assert_eq(w.status, 0, "%s", w.error);
    exec_wait(&loop, k, "whoami", 20000, &r);
    cr_assert_str_eq(r.out, "root\n");
    res_free(&r);
    res_free(&w);
    close_session(&loop, k);
    close_session(&loop, s);
    loop_done(&loop);
    tu_rmtree(dir);
}

static void stop_loop(uv_timer_t *t)
{
    uv_stop(t->loop);
}

Test(guest, refused)
{
    /* A port nobody listens on: refused, retried within the budget. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd);
    uv_loop_t loop;
    uv_loop_init(&loop);
    guest_opts o = ssh_opts(0, NULL);
    o.ssh.port = ntohs(sa.sin_port);
    o.ssh.connect_timeout_ms = 1500;
    res r = {0};
    double t0 = tu_now_ms();
    guest_session_t *s = open_wait(&loop, &o, &r);
    double took = tu_now_ms() - t0;
    cr_assert_eq(r.status, -ECONNREFUSED, "%d %s", r.status, r.error);
    cr_assert(strstr(r.error, "vm0: ssh connect to 127.0.0.1:"), "%s", r.error);
    cr_assert(strstr(r.error, "connection refused (gave up after"), "%s", r.error);
    /* gave up after its 1.5 s budget, not after the 60 s default */
    cr_assert(took >= 1400 && took < 15000, "took %.0f ms", took);
    res_free(&r);
    close_session(&loop, s);
    loop_done(&loop);
}

/* Closing with a command running and more queued: everything reports
 * -ECANCELED at once, then the close callback runs. The agent's side of
 * this is in test_guest_agent.c. */
Test(guest, cancel_over_ssh)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    guest_session_t *s = open_ssh(&loop, 0);
    res run = {0}, queued = {0}, r = {0};
    double t0;
    int closed = 0;
    cr_assert_eq(guest_exec(s, "sleep 20", 30000, on_res, &run), 0);
    cr_assert_eq(guest_exec(s, "true", 30000, on_res, &queued), 0);
    uv_timer_t tm;
    uv_timer_init(&loop, &tm);
    uv_timer_start(&tm, stop_loop, 500, 0); /* let sleep start */
    uv_run(&loop, UV_RUN_DEFAULT);
    t0 = tu_now_ms();
    guest_close(s, on_closed, &closed);
    cr_assert_eq(guest_exec(s, "true", 1000, on_res, &r), -ESHUTDOWN);
    wait_flag(&loop, &closed);
    cr_assert(run.done && queued.done, "close ran before the jobs reported");
    cr_assert_eq(run.status, -ECANCELED, "%d %s", run.status, run.error);
    cr_assert_eq(queued.status, -ECANCELED, "%d %s", queued.status, queued.error);
    /* the close cut the running `sleep 20` short */
    cr_assert(tu_now_ms() - t0 < 15000, "close took %.0f ms", tu_now_ms() - t0);
    res_free(&run);
    res_free(&queued);
    uv_close((uv_handle_t *)&tm, NULL);
    loop_done(&loop);
}

/* ------------------------------------------------------- booting, main() */

int main(int argc, char **argv)
{
    struct criterion_test_set *tests = criterion_initialize();
    char dir[256], err[512];
    int result = 1;
    if (!criterion_handle_args(argc, argv, true)) {
        criterion_finalize(tests);
        return 0;
    }
    if (tu_mkdtemp(dir, sizeof(dir), "guest") < 0) {
        criterion_finalize(tests);
        return 1;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    tg_fleet t;
    if (tg_up(&t, &loop, dir, NVM, err, sizeof(err)) == 0) {
        for (int i = 0; i < NVM; i++) {
            const char *host, *user, *password;
            int port = 0;
            char n[32], v[512];
            fguest_ssh_target(tg_guest(&t, i), &host, &port, &user, &password);
            snprintf(n, sizeof(n), "QF_TG_PORT%d", i);
            snprintf(v, sizeof(v), "%d", port);
            setenv(n, v, 1);
            snprintf(n, sizeof(n), "QF_TG_KNOWN_HOSTS%d", i);
            tg_known_hosts(&t, i, v, sizeof(v));
            setenv(n, v, 1);
        }
        /* The loop does not run while the tests do: the fleet just waits. */
        result = !criterion_run_all_tests(tests);
    } else {
        fprintf(stderr, "test_guest: the guests did not come up: %s\n", err);
    }
    criterion_finalize(tests);
    if (tg_down(&t, err, sizeof(err)) < 0) {
        fprintf(stderr, "test_guest: %s\n", err);
        result = 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) {
        fprintf(stderr, "test_guest: handles left on the loop\n");
        result = 1;
    }
    if (result == 0)
        tu_rmtree(dir);
    else
        fprintf(stderr, "test_guest: logs in %s\n", dir);
    return result;
}
