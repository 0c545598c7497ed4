/* ssh.h - the libssh transport of guest sessions (internal).
 *
 * Design: one worker thread per session runs libssh in blocking mode; the
 * loop thread talks to it through two job queues under a mutex and is woken
 * by a uv_async for completions. Why not non-blocking libssh on uv_poll:
 * in libssh 0.10 only part of the API has a non-blocking form (SFTP, the
 * known_hosts and publickey helpers do not), and every call would have to
 * become a resumable state machine. Blocking calls on a thread keep each
 * operation straight-line code whose every wait is bounded (the session's
 * io timeout, short pump slices, deadlines), and closing interrupts a worker
 * stuck in libssh by shutting its socket down. A thread costs ~10 MB of
 * mostly untouched stack; at tens of guests that is fine.
 *
 * ssh.c holds the thread, the queues, connect/host key/login and keepalive;
 * sshchan.c the channel work: exec, the shell, copies. */
#ifndef QF_GUEST_SSH_H
#define QF_GUEST_SSH_H

#include <pthread.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/sftp.h>

#include "guest/internal.h"

int guest__ssh_init(guest_session_t *s, const guest_opts *o);

typedef struct sshtp {
    /* immutable after init */
    guest_session_t *s;    /* touched by the loop thread only */
    char *name, *host, *user, *password, *key_path, *known_hosts;
    int port, connect_timeout_ms, io_timeout_ms, keepalive_ms, keepalive_max;
    guest_copy_mode copy_mode;
    size_t max_output;

    /* shared, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;     /* job queued or stop requested */
    guest_job *pend, *pend_tail; /* loop -> worker */
    guest_job *done, *done_tail; /* worker -> loop */
    int stop;              /* guest_close was called */
    int busy;              /* the worker is inside libssh, not idle */
    int exited;            /* the worker has released everything */
    int sock;              /* our dup of the session's socket, or -1 */
    double job_deadline;   /* when the running step must be over, 0: none */
    int wd_fired;          /* the watchdog shut the socket down */

    /* loop thread */
    uv_async_t async;
    uv_timer_t wd;         /* watchdog over steps stuck inside libssh */
    int handles;           /* of async and wd, not yet closed */
    pthread_t thr;
    int joined;

    /* worker thread */
    ssh_session ss;        /* NULL until connected */
    ssh_event ev;
    int lost;              /* the connection is gone */
    char why[1024];         /* why connecting failed or the connection was lost */
    int why_status;
    double last_io;
    int ka_missed;
    ssh_channel sh;        /* the interactive shell, or NULL */
    struct ssh_channel_callbacks_struct sh_cb;
    gbuf sh_buf;           /* unconsumed shell output */
    int sh_bol;            /* sh_buf starts at the beginning of a line */
    int sh_ended;          /* the shell sent EOF or closed its channel */
    int sh_esc;            /* escape-sequence filter state, see sshchan.c */
    sftp_session sftp;
    struct ssh_channel_callbacks_struct sftp_cb;
    int sftp_state;        /* 0 untried, 1 usable, -1 absent */
} sshtp;

/* ssh.c, worker thread */
int ssh__stopping(sshtp *t);
/* Run libssh's packet processing for up to ms so channel callbacks fire.
 * -1 when the connection is gone. */
int ssh__pump(sshtp *t, int ms);
/* 1 if the connection is gone (and records why). */
int ssh__lost(sshtp *t);
/* Fail j for a libssh call that went wrong while doing `what`: cancelled,
 * connection lost, or the session's error text. */
void ssh__fail(sshtp *t, guest_job *j, const char *what);
void ssh__step(const guest_job *j, char *out, size_t outlen);

/* ssh_connect.c, worker thread */
void ssh__set_timeout(ssh_session ss, int ms);
/* Connect, check the host key and log in, retrying while sshd starts;
 * the result goes into j. */
void ssh__connect(sshtp *t, guest_job *j);
void ssh__disconnect(sshtp *t);

/* sshchan.c, worker thread */
void ssh__exec(sshtp *t, guest_job *j, double deadline);
void ssh__send(sshtp *t, guest_job *j, double deadline);
void ssh__expect(sshtp *t, guest_job *j, double deadline);
void ssh__copy_in(sshtp *t, guest_job *j, double deadline);
void ssh__copy_out(sshtp *t, guest_job *j, double deadline);
/* Drop the shell and SFTP channels before the session goes. */
void ssh__chan_teardown(sshtp *t);

#endif
