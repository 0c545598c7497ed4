/* agent_fx.h - the fixture of test_agent (a scripted qemu-ga) and
 * test_agent_ga (the real one): one agent client on a loop of its own,
 * and callbacks that copy every result into F, slot by slot. */
#ifndef QF_AGENT_FX_H
#define QF_AGENT_FX_H

#include <stdint.h>

#include <uv.h>

#include "qmp/agent.h"
#include "testutil.h"

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

struct afx {
    tu_loop l;          /* the loop, its tick, the close count, qemu-ga */
    agent_t *a;
    int peer;
    unsigned char pbuf[1 << 16];
    size_t plen;
    int connected, connect_code;
    int synced, sync_code;
    char sync_desc[300];
    int dead, dead_code;
    struct rec r[16];
    int ndone;
    char dir[256];
    /* real qemu-ga */
    char sock[300];
    /* typed results copied out of callbacks */
    char version[64];
    int ncommands, has_ping;
    int lo_found, lo_v4, lo_prefix;
    char lo_hw[64];
    int nifs;
    int exited, exitcode, sig;
};

extern struct afx F;

/* data for the result callbacks: the slot in F.r */
#define SLOT(i) ((void *)(intptr_t)(i))

/* .init and .fini of both suites. Every test ends with down(): it closes
 * the client, kills qemu-ga, and asserts that the close callback ran once
 * and that no handle is left (testutil.h says why not in the .fini). */
void agent_fx_setup(void);
void agent_fx_teardown(void);
void down(void);

int run_until(int *flag, int ms);
void spin(int ms);

void on_connected(agent_t *a, const conn_err *err, void *data);
void on_synced(agent_t *a, const conn_err *err, void *data);
void on_dead(agent_t *a, const conn_err *err, void *data);
void on_closed(agent_t *a, void *data);
void on_raw(agent_t *a, const json_t *ret, const conn_err *err, void *data);
void on_done(agent_t *a, const conn_err *err, void *data);
void on_int(agent_t *a, long long v, const conn_err *err, void *data);
void on_info(agent_t *a, const agent_info *info, const conn_err *err, void *data);
void on_ifaces(agent_t *a, const agent_iface *ifs, size_t n, const conn_err *err, void *data);
void on_status(agent_t *a, const agent_exec_result *st, const conn_err *err, void *data);
void on_read(agent_t *a, const void *buf, size_t len, int eof, const conn_err *err, void *data);
void on_write(agent_t *a, size_t written, const conn_err *err, void *data);

#endif
