/* qfleet_fx.c - see qfleet_fx.h. */
#include "qfleet_fx.h"

#include <criterion/criterion.h>

#include <libssh/libssh.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fs.h"

void qfx_need_guest(void)
{
    char k[512];
    snprintf(k, sizeof(k), "%s/vmlinux", tu_guest_dir());
    cr_assert_eq(access(k, R_OK), 0, "no test guest in %s: run tools/mkguest", tu_guest_dir());
}

json_t *qfx_read_json(const char *path)
{
    size_t n;
    char *s = fs_read_file(path, 1 << 24, &n);
    json_t *v = s ? json_parse(s, n, NULL, 0) : NULL;
    free(s);
    return v;
}

json_t *qfx_registry(const char *run_dir)
{
    char p[400];
    snprintf(p, sizeof(p), "%s/guests.json", run_dir);
    return qfx_read_json(p);
}

json_t *qfx_guest_of(const json_t *reg, const char *name)
{
    const json_t *gs = json_get(reg, "guests");
    for (size_t i = 0; i < json_len(gs); i++)
        if (!strcmp(json_get_str(json_at(gs, i), "name"), name))
            return json_at(gs, i);
    return NULL;
}

const char *qfx_state_of(const json_t *reg, const char *name)
{
    const json_t *g = name ? qfx_guest_of(reg, name) : json_at(json_get(reg, "guests"), 0);
    const char *st = json_get_str(g, "state");
    return st ? st : "";
}

json_t *qfx_wait_state(const char *run_dir, const char *name, const char *const *states, int ms)
{
    double end = tu_now_ms() + ms;
    while (tu_now_ms() < end) {
        json_t *reg = qfx_registry(run_dir);
        for (const char *const *s = states; reg && *s; s++)
            if (!strcmp(qfx_state_of(reg, name), *s))
                return reg;
        json_free(reg);
        usleep(200000);
    }
    return NULL;
}

json_t *qfx_wait_settled(const char *run_dir, int n, int ms)
{
    double end = tu_now_ms() + ms;
    while (tu_now_ms() < end) {
        json_t *reg = qfx_registry(run_dir);
        const json_t *gs = json_get(reg, "guests");
        int settled = 0;
        for (size_t i = 0; i < json_len(gs); i++) {
            const char *st = json_get_str(json_at(gs, i), "state");
            settled += st && (!strcmp(st, "ready") || !strcmp(st, "failed"));
        }
        if ((int)json_len(gs) == n && settled == n)
            return reg;
        json_free(reg);
        usleep(200000);
    }
    return NULL;
}

int qfx_ssh_run(int port, const char *cmd, char *out, size_t outlen)
{
    ssh_session s = ssh_new();
    int p = port;
    ssh_options_set(s, SSH_OPTIONS_HOST, "127.0.0.1");
    ssh_options_set(s, SSH_OPTIONS_PORT, &p);
    ssh_options_set(s, SSH_OPTIONS_USER, "root");
    ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, "/dev/null");
    cr_assert_eq(ssh_connect(s), SSH_OK, "ssh to port %d: %s", port, ssh_get_error(s));
    cr_assert_eq(ssh_userauth_password(s, NULL, "tester"), SSH_AUTH_SUCCESS);
    ssh_channel c = ssh_channel_new(s);
    cr_assert_eq(ssh_channel_open_session(c), SSH_OK);
    cr_assert_eq(ssh_channel_request_exec(c, cmd), SSH_OK);
    size_t got = 0;
    int n;
    while (got + 1 < outlen &&
           (n = ssh_channel_read_timeout(c, out + got, (uint32_t)(outlen - 1 - got), 0, 30000)) > 0)
        got += (size_t)n;
    out[got] = '\0';
    ssh_channel_send_eof(c);
    for (int i = 0; i < 100 && !ssh_channel_is_eof(c); i++)
        ssh_channel_read_timeout(c, NULL, 0, 0, 100);
    int rc = ssh_channel_get_exit_status(c);
    ssh_channel_close(c);
    ssh_channel_free(c);
    ssh_disconnect(s);
    ssh_free(s);
    return rc;
}

void qfx_res_free(qfx_res *r)
{
    free(r->out);
    free(r->err);
}

void qfx_argv(char **argv, int max, const char *argv0, const char *first, va_list ap,
              const char *last)
{
    int n = 0, room = max - 1 - (last != NULL);
    argv[n++] = (char *)argv0;
    for (const char *a = first; a && n < room; a = va_arg(ap, const char *))
        argv[n++] = (char *)a;
    if (last)
        argv[n++] = (char *)last;
    argv[n] = NULL;
}

qfx_res qfx_collect(pid_t pid, const char *out, const char *err, int ms)
{
    qfx_res r = { .rc = tu_wait_exit(pid, ms) };
    r.out = tu_slurp(out);
    r.err = tu_slurp(err);
    return r;
}

void qfx_reap(pid_t *pid, int sig, int ms)
{
    if (*pid <= 0)
        return;
    kill(*pid, sig);
    tu_wait_exit(*pid, ms); /* SIGKILL and reaped when the time is up */
    *pid = 0;
}
