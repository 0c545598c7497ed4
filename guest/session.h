/* session.h - sessions into guests: the VM as a device under test.
 *
 * A session is one channel of control into one guest over one transport:
 *
 *   GUEST_SSH    libssh through the guest's forwarded sshd port. Commands,
 *                an interactive shell (send/expect) and file copies.
 *   GUEST_AGENT  the QEMU guest agent (qmp/agent.h) over virtio-serial, for
 *                guests without network. Commands and file copies; no shell.
 *
 * The transport is chosen per session, and every operation has the same
 * signature for both, so a test step picks its transport by picking which
 * of the guest's sessions it hands the step to.
 *
 * Everything is driven from one libuv loop and nothing blocks it. Operations
 * on one session run one at a time, in the order they were submitted (a
 * shell expect waits behind an exec and vice versa); sessions run in
 * parallel with each other. Each operation reports exactly once through its
 * callback, from the loop thread, also when it fails, times out or the
 * session is closed under it (-ECANCELED).
 *
 * Functions return 0 or a negative errno. Errors in results name the guest
 * and the step, e.g. "vm0: ssh login as root: authentication failed". No
 * password is ever put into an error or a log line. */
#ifndef QF_GUEST_SESSION_H
#define QF_GUEST_SESSION_H

#include <stddef.h>

#include <uv.h>

typedef struct guest_session guest_session_t;

typedef enum {
    GUEST_SSH = 1,
    GUEST_AGENT = 2,
} guest_transport;

/* How SSH copies files. AUTO tries the SFTP subsystem once per session and,
 * when the guest has no sftp-server (dropbear has none built in), streams
 * through an exec channel running `cat` instead. */
typedef enum {
    GUEST_COPY_AUTO = 0,
    GUEST_COPY_SFTP,
    GUEST_COPY_EXEC,
} guest_copy_mode;

typedef struct guest_ssh_opts {
    const char *host;          /* where the forwarded port listens; NULL: "127.0.0.1" */
    int port;                  /* host side of the guest's port 22; required */
    const char *user;          /* login user; required */
    const char *password;      /* password auth; NULL: none. Copied, never logged */
    const char *key_path;      /* private key file for publickey auth; NULL: none */
    const char *known_hosts;   /* the run's own known_hosts file; required. A new
                                * host key is added to it, a changed one fails */
    int connect_timeout_ms;    /* retry budget while sshd starts; 0: 120000 */
    int io_timeout_ms;         /* bound on any single protocol exchange; 0: 20000 */
    int keepalive_ms;          /* idle keepalive period; 0: 15000, <0: off */
    int keepalive_max_missed;  /* unanswered keepalives before the session is
                                * declared dead; 0: 3 */
    guest_copy_mode copy_mode;
} guest_ssh_opts;

struct agent; /* agent_t of qmp/agent.h */

typedef struct guest_agent_opts {
    struct agent *client;      /* a connected agent client; required. The caller
                                * owns it, calls agent_sync once the guest opened
                                * its port, and keeps it alive until the session's
                                * close callback has run. */
    int open_timeout_ms;       /* guest_open pings the agent this long; 0: 60000 */
    int poll_ms;               /* longest pause between guest-exec-status polls;
                                * 0: 200 */
} guest_agent_opts;

typedef struct guest_opts {
    const char *name;          /* the guest, for errors ("vm0"); required */
    guest_transport transport;
    guest_ssh_opts ssh;        /* GUEST_SSH */
    guest_agent_opts agent;    /* GUEST_AGENT */
    int default_timeout_ms;    /* for operations given timeout_ms <= 0; 0: 60000 */
    size_t max_output;         /* bytes kept per stream / shell buffer; 0: 16 MiB */
} guest_opts;

/* The outcome of one operation. Pointers stay valid only while the callback
 * runs; copy what must outlive it. Text fields are NUL-terminated (and may
 * also contain NUL bytes, hence the lengths); unused ones are "" with len 0.
 *
 *   status     0, or a negative errno: -ETIMEDOUT, -EACCES (authentication),
 *              -ECONNREFUSED / -ECONNRESET (could not reach sshd),
 *              -EKEYREJECTED (host key changed), -ENOTCONN (session lost),
 *              -EPIPE (shell ended), -ENOENT / -EIO (copy), -ECANCELED.
 *              For exec, 0 means the command ran; see exit_code.
 *   error      one line naming guest and step; NULL when status is 0.
 *   exit_code  exec: the command's exit status; -1 when it has none (killed
 *              by a signal, see signal; timed out; not run).
 *   signal     exec: name of the signal that ended it ("KILL"), or "".
 *   timed_out  the operation hit its timeout (status is then -ETIMEDOUT).
 *   out        exec: stdout (what arrived, also on timeout). expect: the
 *              matched text.
 *   errout     exec: stderr.
 *   before     expect: the shell output between the previous match and this
 *              one. On an expect timeout, everything unmatched so far.
 *   truncated  out or errout hit max_output and lost bytes.
 *   elapsed_ms from the start of the operation (not its submission). */
typedef struct guest_result {
    int status;
    const char *error;
    int exit_code;
    const char *signal;
    int timed_out;
    const char *out;
    size_t out_len;
    const char *errout;
    size_t errout_len;
    const char *before;
    size_t before_len;
    int truncated;
    double elapsed_ms;
} guest_result;

typedef void (*guest_cb)(guest_session_t *s, const guest_result *r, void *data);
typedef void (*guest_close_cb)(guest_session_t *s, void *data);

/* Create a session and start connecting (SSH: retrying while sshd starts,
 * within connect_timeout_ms). cb (may be NULL) reports the connection.
 * Operations may be submitted at once; they run after the connection is up,
 * or fail with its error. The session must be closed with guest_close even
 * if connecting failed. -EINVAL for missing options. */
int guest_open(uv_loop_t *loop, const guest_opts *o, guest_cb cb, void *data,
               guest_session_t **out);

/* Run cmd through the guest's shell (`sh -c`), stdin empty. On timeout the
 * session stays usable and the command is killed as far as the transport
 * can: SSH sends a KILL signal request for the command's shell (sshd kills
 * that one process; children it started may live on) and drops the channel;
 * the agent kills the shell and its direct children. The agent hands out
 * output only once a command has ended, so its timeouts carry none. */
int guest_exec(guest_session_t *s, const char *cmd, int timeout_ms, guest_cb cb, void *data);

/* Interactive shell (SSH only; -ENOTSUP on the agent). The shell starts on a
 * pty with the first send or expect and lives until the session closes or it
 * exits. Its output accumulates in a buffer of up to max_output bytes
 * (oldest dropped) that expect consumes. Terminal control sequences (ESC [
 * ... and ESC ] ... as line editors send them) and NUL bytes are removed;
 * line ends are the pty's "\r\n". */
int guest_send(guest_session_t *s, const char *text, size_t len, guest_cb cb, void *data);
/* Wait until the unconsumed shell output matches the POSIX extended regex
 * (REG_EXTENDED | REG_NEWLINE: '.' stops at newlines, ^ and $ match at
 * them). The match and what came before it are consumed. -EINVAL (at once)
 * for a regex that does not compile. On timeout nothing is consumed. */
int guest_expect(guest_session_t *s, const char *regex, int timeout_ms, guest_cb cb,
                 void *data);

/* Copy a regular file host -> guest and guest -> host. The destination is
 * replaced; a failed copy_out removes the partial host file. SSH keeps the
 * mode bits on copy_in; the agent creates files with qemu-ga's defaults. */
int guest_copy_in(guest_session_t *s, const char *host_path, const char *guest_path,
                  int timeout_ms, guest_cb cb, void *data);
int guest_copy_out(guest_session_t *s, const char *guest_path, const char *host_path,
                   int timeout_ms, guest_cb cb, void *data);

/* Close: the running operation is aborted and every queued one reports
 * -ECANCELED, then cb (may be NULL) runs and the memory is freed. Later
 * submissions return -ESHUTDOWN. Idempotent. */
void guest_close(guest_session_t *s, guest_close_cb cb, void *data);

const char *guest_name(const guest_session_t *s);
guest_transport guest_kind(const guest_session_t *s);
/* 1 while connected and usable, 0 before the connection is up or after it
 * failed or was lost. */
int guest_is_up(const guest_session_t *s);

#endif
