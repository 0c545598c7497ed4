/* agent_int.h - what agent.c (the channel: sync, queue, timeouts) and
 * agent_cmds.c (typed commands and their results) share. Not public. */
#ifndef QF_AGENT_INT_H
#define QF_AGENT_INT_H

#include "qmp/agent.h"

/* How a reply is turned into a result for the callback. */
enum akind {
    K_RAW,
    K_DONE,
    K_INT,
    K_INFO,
    K_IFACES,
    K_EXEC_STATUS,
    K_READ,
    K_WRITE,
};

struct acmd {
    struct acmd *prev, *next; /* the queue */
    enum akind kind;
    int noreply;              /* the agent answers only on failure */
    uint64_t seq;
    json_t *msg;
    uint64_t deadline;        /* uv_now() ms, 0 = none */
    int timeout_ms;
    const char *int_key;      /* K_INT: member holding the value, NULL = the value itself */
    int has_cb;
    union {
        agent_reply_cb raw;
        agent_done_cb done;
        agent_int_cb i;
        agent_info_cb info;
        agent_ifaces_cb ifaces;
        agent_exec_status_cb st;
        agent_read_cb rd;
        agent_write_cb wr;
    } cb;
    void *data;
    char name[];
};


/* agent.c: build a command (consumes args; NULL with *rc on failure, for
 * instance the connection's error once dead) and queue it for sending.
 * agent__enqueue always succeeds and returns 0. */
struct acmd *agent__new_cmd(agent_t *a, const char *cmd, json_t *args, int timeout_ms,
                             enum akind kind, int *rc);
int agent__enqueue(agent_t *a, struct acmd *k, void *data);

/* agent_cmds.c: run k's callback with the error, or with ret decoded the
 * way k's kind wants. agent__call_ok returns NULL when it called back, or
 * why ret is malformed (then it did not call back). */
void agent__call_err(agent_t *a, struct acmd *k, const conn_err *e);
const char *agent__call_ok(agent_t *a, struct acmd *k, const json_t *ret);

#endif
