/* conn_int.h - what conn.c (connecting, input, closing) and conn_out.c
 * (output, flow control, half-close) share. Not for other modules. */
#ifndef QF_CONN_INT_H
#define QF_CONN_INT_H

#include <sys/un.h>

#include "qmp/conn.h"

enum cstate {
    C_IDLE,       /* fresh */
    C_CONNECTING, /* uv_pipe_connect in flight */
    C_WAIT,       /* between connect attempts */
    C_OPEN,
    C_DEAD,       /* failed; err says why */
};

struct conn {
    uv_loop_t *loop;
    uv_pipe_t pipe;
    uv_timer_t timer; /* connect retries and the connect deadline */
    uv_connect_t creq;
    enum cstate state;
    int pipe_inited;  /* pipe handle initialised and its close not yet done */
    int pipe_closing;
    int timer_closed;
    int closing;
    int dispatching;

    conn_msg_cb on_msg;
    conn_dead_cb on_dead;
    void *data;

    /* connect */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int timeout_ms;
    uint64_t deadline; /* uv_now() ms; 0 = none */
    unsigned retry_ms;
    int last_err;
    conn_connect_cb connect_cb;
    void *connect_data;

    /* input: rbuf[0..rlen) is unprocessed; '\n' was searched up to scan */
    char *rbuf;
    size_t rlen, rcap, scan;
    size_t max_input;
    int discard;
    unsigned char delim;

    conn_err err;
    char errbuf[320];
    char label[32];

    conn_close_cb close_cb;
    void *close_data;
    uint64_t bytes_in, bytes_out;

    /* flow control and half-close */
    int reading;      /* uv_read_start in effect */
    int paused;       /* by the owner */
    int out_blocked;  /* out_queued went over out_soft */
    size_t out_queued, out_soft, out_hard;
    conn_eof_cb on_eof;
    int eof;          /* the peer shut down its side */
    int eof_reported;
    int shut;
    uv_shutdown_t sreq;
    conn_write_cb shut_cb;
    void *shut_data;
};

/* conn.c: start or stop reading as pause, output pressure and EOF say; and
 * resume from the loop (never inside the write callback that unblocked). */
void conn__update_reading(conn_t *c);
void conn__schedule_resume(conn_t *c);

#endif
