/* test_guest.c - guest sessions (guest/session.h) against the real test
 * guest of tools/mkguest: dropbear on the forwarded port 22, qemu-ga on
 * virtio-serial.
 *
 * Booting is the slow part (TCG), so main() boots two guests once for the
 * whole binary, before criterion runs any test, and kills them after it.
 * Criterion starts every test in a fresh process (its globals reset), so the
 * guests' ports and socket paths reach the tests through the environment.
 * While they boot, main() also opens an SSH session to each: that exercises
 * the connect retry while sshd is not up yet. Every QEMU gets
 * PR_SET_PDEATHSIG, and main() kills them on every exit path, so none
 * outlives the binary. */
#include <criterion/criterion.h>
#include <libssh/libssh.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest/session.h"
#include "qmp/agent.h"
#include "qmp/qmp.h"
#include "testutil.h"

#define NVM 2
#define BOOT_MS 180000
#define USER "root"
#define PASSWORD "tester"

/* ---------------------------------------------------------------- helpers */

/* A copy of one guest_result, kept past its callback. */
typedef struct res {
    int done, status, exit_code, timed_out;
    char *error, *out, *errout, *before;
    size_t out_len;
    char signal[16];
    double elapsed;
} res;

static char *dupn(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    cr_assert(d);
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

static void on_res(guest_session_t *s, const guest_result *r, void *data)
{
    res *o = data;
    o->done = 1;
    o->status = r->status;
    o->exit_code = r->exit_code;
    o->timed_out = r->timed_out;
    o->error = r->error ? strdup(r->error) : NULL;
    o->out = dupn(r->out, r->out_len);
    o->out_len = r->out_len;
    o->errout = dupn(r->errout, r->errout_len);
    o->before = dupn(r->before, r->before_len);
    snprintf(o->signal, sizeof(o->signal), "%s", r->signal);
    o->elapsed = r->elapsed_ms;
}

static void res_free(res *r)
{
    free(r->error);
    free(r->out);
    free(r->errout);
    free(r->before);
    memset(r, 0, sizeof(*r));
}

static void wait_flag(uv_loop_t *loop, const int *flag)
{
    while (!*flag)
        uv_run(loop, UV_RUN_ONCE);
}

static void on_closed(guest_session_t *s, void *data)
{
    *(int *)data = 1;
}

static void close_session(uv_loop_t *loop, guest_session_t *s)
{
    int done = 0;
    guest_close(s, on_closed, &done);
    wait_flag(loop, &done);
}

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

static void vm_file(int i, const char *name, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/vm%d/%s", env("QF_TG_DIR"), i, name);
}

static guest_opts ssh_opts(int i, const char *known_hosts)
{
    static char name[16];
    snprintf(name, sizeof(name), "vm%d", i);
    guest_opts o = {.name = name, .transport = GUEST_SSH};
    o.ssh.port = vm_port(i);
    o.ssh.user = USER;
    o.ssh.password = PASSWORD;
    o.ssh.known_hosts = known_hosts ? known_hosts : env("QF_TG_KNOWN_HOSTS");
    o.ssh.connect_timeout_ms = 60000;
    return o;
}

/* Open and wait; the session is returned also when opening failed. */
static guest_session_t *open_wait(uv_loop_t *loop, const guest_opts *o, res *r)
{
    guest_session_t *s = NULL;
    cr_assert_eq(guest_open(loop, o, on_res, r, &s), 0);
    wait_flag(loop, &r->done);
    return s;
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

static void exec_wait(uv_loop_t *loop, guest_session_t *s, const char *cmd, int ms, res *r)
{
    memset(r, 0, sizeof(*r));
    cr_assert_eq(guest_exec(s, cmd, ms, on_res, r), 0);
    wait_flag(loop, &r->done);
}

/* -------------------------------------------------------- agent plumbing */

static void on_agent_done(agent_t *a, const conn_err *err, void *data)
{
    int *st = data;
    *st = err ? (err->code ? err->code : -EIO) : 1;
}

static void on_agent_closed(agent_t *a, void *data)
{
    *(int *)data = 1;
}

/* Connect to guest i's agent socket and sync. The guest opened its port
 * before the tests started (main waited for VSERPORT_CHANGE). */
static agent_t *agent_up(uv_loop_t *loop, int i)
{
    char path[512];
    agent_t *a = NULL;
    int st = 0;
    vm_file(i, "qga.sock", path, sizeof(path));
    cr_assert_eq(agent_new(loop, &a), 0);
    cr_assert_eq(agent_connect(a, path, 10000, on_agent_done, &st), 0);
    wait_flag(loop, &st);
    cr_assert_eq(st, 1, "agent connect: %d", st);
    st = 0;
    cr_assert_eq(agent_sync(a, 10000, on_agent_done, &st), 0);
    wait_flag(loop, &st);
    cr_assert_eq(st, 1, "agent sync: %d", st);
    return a;
}

static guest_session_t *agent_session(uv_loop_t *loop, agent_t *a, int i)
{
    static char name[16];
    snprintf(name, sizeof(name), "vm%d", i);
    guest_opts o = {.name = name, .transport = GUEST_AGENT};
    o.agent.client = a;
    res r = {0};
    guest_session_t *s = open_wait(loop, &o, &r);
    cr_assert_eq(r.status, 0, "agent open: %s", r.error);
    res_free(&r);
    return s;
}

static void agent_down(uv_loop_t *loop, agent_t *a)
{
    int done = 0;
    agent_close(a, on_agent_closed, &done);
    wait_flag(loop, &done);
}

/* The loop must end with nothing left on it: every handle closed. */
static void loop_done(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(loop), 0, "handles left on the loop");
}

static void rand_file(const char *path, size_t n)
{
    int in = open("/dev/urandom", O_RDONLY), out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert(in >= 0 && out >= 0);
    char buf[65536];
    while (n) {
        size_t k = n < sizeof(buf) ? n : sizeof(buf);
        cr_assert_eq(read(in, buf, k), (ssize_t)k);
        cr_assert_eq(write(out, buf, k), (ssize_t)k);
        n -= k;
    }
    close(in);
    close(out);
}

static int same_file(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        same = ca == cb;
        if (ca == EOF || cb == EOF)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

static void tmp_dir(char *out, size_t outlen)
{
    cr_assert_eq(tu_mkdtemp(out, outlen, "guest-t"), 0);
}

/* ------------------------------------------------------------------ tests */

TestSuite(guest, .timeout = 240);

Test(guest, uname_both_ways)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
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
    agent_down(&loop, a);
    loop_done(&loop);
}

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
Test(guest, copy_1mib)
{
    char dir[256], src[300], back[300], back2[300];
    tmp_dir(dir, sizeof(dir));
    snprintf(src, sizeof(src), "%s/src", dir);
    snprintf(back, sizeof(back), "%s/back", dir);
    snprintf(back2, sizeof(back2), "%s/back2", dir);
    rand_file(src, 1u << 20);
    uv_loop_t loop;
    uv_loop_init(&loop);
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
    agent_down(&loop, a);
    loop_done(&loop);
    tu_rmtree(dir);
}

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

Test(guest, timeout_keeps_session)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
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
        cr_assert(took < 8000, "timeout took %.0f ms", took);
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
    agent_down(&loop, a);
    loop_done(&loop);
}

typedef struct multi {
    uv_loop_t *loop;
    guest_session_t *s;
    int idx, left, failed;
    res open, exec, prompt, answer;
    double done_at;
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
    char cmd[8][64], line[8][32], re[8][32];
    double t0 = tu_now_ms();
    for (int i = 0; i < 8; i++) {
        memset(&m[i], 0, sizeof(m[i]));
        m[i].idx = i;
        guest_opts o = ssh_opts(i % NVM, NULL);
        cr_assert_eq(guest_open(&loop, &o, on_res, &m[i].open, &m[i].s), 0);
        snprintf(cmd[i], sizeof(cmd[i]), "echo session-%d; sleep 1", i);
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
        snprintf(want, sizeof(want), "session-%d\n", i);
        cr_assert_eq(m[i].open.status, 0, "session %d: %s", i, m[i].open.error);
        cr_assert_eq(m[i].exec.status, 0, "session %d: %s", i, m[i].exec.error);
        cr_assert_str_eq(m[i].exec.out, want);
        cr_assert_eq(m[i].failed, 0, "session %d: shell dialogue failed", i);
        res_free(&m[i].open);
        res_free(&m[i].exec);
    }
    /* Each session slept 1 s; together they must not have run one by one. */
    cr_assert(all < 8 * 1000 + 20000, "8 sessions took %.0f ms", all);
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

Test(guest, refused_and_cancel)
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
    cr_assert(took >= 1400 && took < 4000, "took %.0f ms", took);
    res_free(&r);
    close_session(&loop, s);

    /* Closing with a command running and more queued: everything reports
     * -ECANCELED at once, then the close callback runs. */
    s = open_ssh(&loop, 0);
    res run = {0}, queued = {0};
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
    cr_assert(tu_now_ms() - t0 < 3000, "close took %.0f ms", tu_now_ms() - t0);
    res_free(&run);
    res_free(&queued);

    /* The same over the agent, whose client lives on: a fresh session on it
     * works right after. */
    agent_t *a = agent_up(&loop, 1);
    s = agent_session(&loop, a, 1);
    closed = 0;
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
    s = agent_session(&loop, a, 1);
    exec_wait(&loop, s, "echo again", 30000, &run);
    cr_assert_str_eq(run.out, "again\n", "%s", run.error);
    res_free(&run);
    close_session(&loop, s);
    agent_down(&loop, a);
    uv_close((uv_handle_t *)&tm, NULL);
    loop_done(&loop);
}

/* ------------------------------------------------------- booting, main() */

typedef struct vm {
    pid_t pid;
    int port;
    char dir[300];
    qmp_t *q;
    guest_session_t *s;
    res ssh;
    int port_open, qmp_ready;
    double t0, t_ssh, t_agent;
} vm;

static vm vms[NVM];

static void kill_all(void)
{
    for (int i = 0; i < NVM; i++) {
        if (vms[i].pid > 0) {
            kill(vms[i].pid, SIGKILL);
            waitpid(vms[i].pid, NULL, 0);
            vms[i].pid = 0;
        }
    }
}

static void on_signal(int sig)
{
    for (int i = 0; i < NVM; i++)
        if (vms[i].pid > 0)
            kill(vms[i].pid, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd);
    return ntohs(sa.sin_port);
}

static int boot(vm *v, const char *guest)
{
    char kernel[600], initrd[600], serial[400], qmpc[400], qgac[400], net[200];
    snprintf(kernel, sizeof(kernel), "%s/vmlinux", guest);
    if (access(kernel, R_OK) != 0) /* the PVH image boots ~3 s faster; older guests lack it */
        snprintf(kernel, sizeof(kernel), "%s/vmlinuz", guest);
    snprintf(initrd, sizeof(initrd), "%s/initrd.img", guest);
    snprintf(serial, sizeof(serial), "file:%s/serial.log", v->dir);
    snprintf(qmpc, sizeof(qmpc), "socket,id=qmp0,path=%s/qmp.sock,server=on,wait=off", v->dir);
    snprintf(qgac, sizeof(qgac), "socket,id=qga0,path=%s/qga.sock,server=on,wait=off", v->dir);
    snprintf(net, sizeof(net), "user,id=hostnet0,hostfwd=tcp:127.0.0.1:%d-:22", v->port);
    char *argv[] = {"qemu-system-x86_64", "-accel", "tcg", "-machine", "pc", "-m", "256",
                    "-smp", "1", "-nodefaults", "-display", "none", "-kernel", kernel,
                    "-initrd", initrd, "-append", "console=ttyS0 quiet panic=-1",
                    "-serial", serial, "-chardev", qmpc, "-mon", "chardev=qmp0,mode=control",
                    "-device", "virtio-serial-pci,id=vser0", "-chardev", qgac, "-device",
                    "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0,id=qga0port",
                    "-netdev", net, "-device", "e1000,netdev=hostnet0,addr=1f.0,id=host_connect",
                    NULL};
    char log[400];
    snprintf(log, sizeof(log), "%s/qemu.log", v->dir);
    v->t0 = tu_now_ms();
    v->pid = fork();
    if (v->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive this binary */
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    return v->pid > 0 ? 0 : -errno;
}

static void on_boot_ssh(guest_session_t *s, const guest_result *r, void *data)
{
    vm *v = data;
    on_res(s, r, &v->ssh);
    v->t_ssh = tu_now_ms();
}

static void on_vserport(qmp_t *q, const qmp_event *ev, void *data)
{
    vm *v = data;
    if (json_get_bool(ev->data, "open", 0) && !v->port_open) {
        v->port_open = 1;
        v->t_agent = tu_now_ms();
    }
}

static void on_chardevs(qmp_t *q, const qmp_reply *r, void *data)
{
    vm *v = data;
    for (size_t i = 0; r->ret && i < json_len(r->ret); i++) {
        const json_t *c = json_at(r->ret, i);
        const char *label = json_get_str(c, "label");
        if (label && !strcmp(label, "qga0") && json_get_bool(c, "frontend-open", 0) &&
            !v->port_open) {
            v->port_open = 1;
            v->t_agent = tu_now_ms();
        }
    }
}

static void on_qmp_ready(qmp_t *q, const conn_err *err, void *data)
{
    vm *v = data;
    v->qmp_ready = err ? -1 : 1;
    /* The port may have opened before we subscribed. */
    if (!err)
        qmp_execute(q, "query-chardev", NULL, 0, on_chardevs, v);
}

static void on_qmp_closed(qmp_t *q, void *data)
{
    (*(int *)data)++;
}

/* Boot every guest, wait until each has sshd (a logged-in session) and an
 * open agent port. 0 when all are up. */
static int bring_up(const char *run, const char *kh)
{
    const char *guest = tu_guest_dir();
    uv_loop_t loop;
    uv_loop_init(&loop);
    int rc = 0;
    for (int i = 0; i < NVM; i++) {
        vm *v = &vms[i];
        snprintf(v->dir, sizeof(v->dir), "%s/vm%d", run, i);
        mkdir(v->dir, 0700);
        v->port = free_port();
        if (boot(v, guest) < 0)
            return -1;
        char name[16], sock[400];
        snprintf(name, sizeof(name), "vm%d", i);
        guest_opts o = {.name = name, .transport = GUEST_SSH};
        o.ssh.port = v->port;
        o.ssh.user = USER;
        o.ssh.password = PASSWORD;
        o.ssh.known_hosts = kh;
        o.ssh.connect_timeout_ms = BOOT_MS;
        guest_open(&loop, &o, on_boot_ssh, v, &v->s);
        snprintf(sock, sizeof(sock), "%s/qmp.sock", v->dir);
        qmp_new(&loop, &v->q);
        qmp_subscribe(v->q, "VSERPORT_CHANGE", on_vserport, v);
        qmp_connect(v->q, sock, 30000, on_qmp_ready, v);
    }
    double end = tu_now_ms() + BOOT_MS;
    for (;;) {
        int all = 1;
        for (int i = 0; i < NVM; i++)
            all &= vms[i].ssh.done && (vms[i].port_open || vms[i].qmp_ready < 0);
        if (all || tu_now_ms() > end)
            break;
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(5000);
    }
    int closed = 0;
    for (int i = 0; i < NVM; i++) {
        vm *v = &vms[i];
        fprintf(stderr, "test_guest: vm%d: ssh %s after %.1f s%s%s; agent port %s after %.1f s\n",
                i, v->ssh.status == 0 && v->ssh.done ? "up" : "FAILED", (v->t_ssh - v->t0) / 1e3,
                v->ssh.error ? ": " : "", v->ssh.error ? v->ssh.error : "",
                v->port_open ? "open" : "NOT OPEN", (v->t_agent - v->t0) / 1e3);
        if (!v->ssh.done || v->ssh.status || !v->port_open)
            rc = -1;
        guest_close(v->s, NULL, NULL);
        qmp_close(v->q, on_qmp_closed, &closed);
        res_free(&v->ssh);
    }
    while (closed < NVM)
        uv_run(&loop, UV_RUN_ONCE);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return rc;
}

int main(int argc, char **argv)
{
    struct criterion_test_set *tests = criterion_initialize();
    char run[256], kh[300], v[32];
    int result = 1;
    if (!criterion_handle_args(argc, argv, true)) {
        criterion_finalize(tests);
        return 0;
    }
    char probe[600];
    snprintf(probe, sizeof(probe), "%s/initrd.img", tu_guest_dir());
    if (access(probe, R_OK) != 0) {
        fprintf(stderr, "test_guest: no test guest at %s: run tools/mkguest\n", tu_guest_dir());
        criterion_finalize(tests);
        return 1;
    }
    if (tu_mkdtemp(run, sizeof(run), "guest") < 0) {
        criterion_finalize(tests);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    signal(SIGPIPE, SIG_IGN);
    snprintf(kh, sizeof(kh), "%s/known_hosts", run);
    double t0 = tu_now_ms();
    if (bring_up(run, kh) == 0) {
        fprintf(stderr, "test_guest: %d guests up in %.1f s\n", NVM, (tu_now_ms() - t0) / 1e3);
        setenv("QF_TG_DIR", run, 1);
        setenv("QF_TG_KNOWN_HOSTS", kh, 1);
        for (int i = 0; i < NVM; i++) {
            char n[32];
            snprintf(n, sizeof(n), "QF_TG_PORT%d", i);
            snprintf(v, sizeof(v), "%d", vms[i].port);
            setenv(n, v, 1);
        }
        result = !criterion_run_all_tests(tests);
    } else {
        fprintf(stderr, "test_guest: the guests did not come up; logs in %s\n", run);
    }
    criterion_finalize(tests);
    kill_all();
    if (result == 0)
        tu_rmtree(run);
    return result;
}
