/* agent_fx.c - the fixture test_agent and test_agent_ga share: one agent
 * client on a loop of its own and callbacks that copy every result into F. */
#include "agent_fx.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct afx F;


int run_until(int *flag, int ms) { return tu_run_until(&F.l, flag, ms); }

void spin(int ms) { tu_spin(&F.l, ms); }

void on_connected(agent_t *a, const conn_err *err, void *data)
{
    (void)a;
    (void)data;
    F.connected++;
    F.connect_code = err ? err->code : 0;
}

void on_synced(agent_t *a, const conn_err *err, void *data)
{
    (void)a;
    (void)data;
    F.synced++;
    F.sync_code = err ? err->code : 0;
    snprintf(F.sync_desc, sizeof(F.sync_desc), "%s", err ? err->desc : "");
}

void on_dead(agent_t *a, const conn_err *err, void *data)
{
    (void)a;
    (void)data;
    F.dead++;
    F.dead_code = err->code;
}

void on_closed(agent_t *a, void *data)
{
    (void)a;
    (void)data;
    F.l.closed++;
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

void on_raw(agent_t *a, const json_t *ret, const conn_err *err, void *data)
{
    (void)a;
    struct rec *x = finish(data, err);
    if (!err)
        x->text = ret ? json_dump(ret, NULL) : strdup("(sent)");
}

void on_done(agent_t *a, const conn_err *err, void *data)
{
    (void)a;
    finish(data, err);
}

void on_int(agent_t *a, long long v, const conn_err *err, void *data)
{
    (void)a;
    finish(data, err)->value = v;
}

void on_info(agent_t *a, const agent_info *info, const conn_err *err, void *data)
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

void on_ifaces(agent_t *a, const agent_iface *ifs, size_t n, const conn_err *err, void *data)
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

void on_status(agent_t *a, const agent_exec_result *st, const conn_err *err, void *data)
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

void on_read(agent_t *a, const void *buf, size_t len, int eof, const conn_err *err, void *data)
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

void on_write(agent_t *a, size_t written, const conn_err *err, void *data)
{
    (void)a;
    finish(data, err)->value = (long long)written;
}

void agent_fx_setup(void)
{
    memset(&F, 0, sizeof(F));
    F.peer = -1;
    tu_loop_init(&F.l);
    cr_assert_eq(agent_new(&F.l.loop, &F.a), 0);
    agent_set_dead_cb(F.a, on_dead, NULL);
    cr_assert_eq(tu_mkdtemp(F.dir, sizeof(F.dir), "agent"), 0);
}

static void close_client(void) { agent_close(F.a, on_closed, NULL); }

void down(void) { tu_loop_down(&F.l, close_client); }

void agent_fx_teardown(void)
{
    tu_loop_cleanup(&F.l, close_client);
    if (F.peer >= 0)
        close(F.peer);
    for (int i = 0; i < 16; i++)
        free(F.r[i].text);
    tu_rmtree(F.dir);
}
