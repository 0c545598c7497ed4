/* sshchan.c - channel work of the SSH transport, on the session's worker
 * thread: commands, the interactive shell, and file copies.
 *
 * Copies: SFTP when the guest has an sftp-server, else a `cat` on an exec
 * channel. Dropbear (the test guest's sshd) has no SFTP server of its own;
 * it runs the sftp-server binary from OpenSSH when present, and the test
 * guest does not carry one. The `cat` path needs nothing but a POSIX shell,
 * is binary-safe (exec channels have no pty) and reports failures through
 * cat's exit status and stderr. GUEST_COPY_AUTO tries SFTP once per session
 * and remembers the answer. */
#include "guest/ssh.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK 32768
#define SLICE_MS 100
#define TAIL 160

/* One exec channel's state, shared with its libssh callbacks. */
typedef struct run {
    sshtp *t;
    guest_job *j;
    int out_fd;        /* stdout goes to this fd (copy out), or -1: j->out */
    int out_err;       /* errno of a failed write to out_fd */
    int eof, closed, have_status, status;
    char sig[16];
} run;

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int run_data(ssh_session ss, ssh_channel ch, void *d, uint32_t len, int is_stderr, void *u)
{
    run *r = u;
    if (is_stderr) {
        guest__buf_add(&r->j->errout, d, len, r->t->max_output, 1);
    } else if (r->out_fd >= 0) {
        if (!r->out_err)
            r->out_err = -write_all(r->out_fd, d, len);
    } else {
        guest__buf_add(&r->j->out, d, len, r->t->max_output, 1);
    }
    return (int)len; /* always consumed: libssh then reopens the window */
}

static void run_eof(ssh_session ss, ssh_channel ch, void *u)
{
    ((run *)u)->eof = 1;
}

static void run_close(ssh_session ss, ssh_channel ch, void *u)
{
    ((run *)u)->closed = 1;
}

static void run_status(ssh_session ss, ssh_channel ch, int status, void *u)
{
    run *r = u;
    r->have_status = 1;
    r->status = status;
}

static void run_signal(ssh_session ss, ssh_channel ch, const char *sig, int core,
                       const char *errmsg, const char *lang, void *u)
{
    snprintf(((run *)u)->sig, sizeof(((run *)u)->sig), "%s", sig ? sig : "?");
}

static void fail_timeout(sshtp *t, guest_job *j, const char *during)
{
    char step[512], out[TAIL * 4 + 16], err[TAIL * 4 + 16];
    ssh__step(j, step, sizeof(step));
    guest__tail(j->out.p ? j->out.p : "", j->out.len, TAIL, out, sizeof(out));
    guest__tail(j->errout.p ? j->errout.p : "", j->errout.len, TAIL, err, sizeof(err));
    j->timed_out = 1;
    guest__fail(j, t->name, -ETIMEDOUT, step, "timed out after %d ms%s; last output: %s%s%s",
                j->timeout_ms, during, out, j->errout.len ? "; stderr: " : "",
                j->errout.len ? err : "");
}

/* Stream fd into the channel's stdin. 0 when all was sent or the command
 * stopped reading (its exit status will tell), -errno with j failed. */
static int feed(sshtp *t, guest_job *j, ssh_channel ch, int fd, double deadline)
{
    char *buf = malloc(CHUNK);
    if (!buf) {
        ssh__fail(t, j, "out of memory");
        return j->status = -ENOMEM;
    }
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0) {
                char step[512];
                rc = -errno;
                ssh__step(j, step, sizeof(step));
                guest__fail(j, t->name, rc, step, "reading the host file: %s", strerror(-rc));
            }
            break;
        }
        for (ssize_t off = 0; off < n && rc == 0;) {
            if (ssh__stopping(t) || ssh__lost(t)) {
                ssh__fail(t, j, "sending data");
                rc = j->status;
            } else if (guest__now_ms() >= deadline) {
                fail_timeout(t, j, " while sending data");
                rc = -ETIMEDOUT;
            } else if (ssh_channel_is_closed(ch) || ssh_channel_is_eof(ch)) {
                goto out; /* the command quit early; its status explains */
            } else {
                /* Blocks for window space at most the io timeout; a short
                 * count is that timeout, and the deadline check decides. */
                int w = ssh_channel_write(ch, buf + off, (uint32_t)(n - off));
                if (w == SSH_ERROR) {
                    if (ssh_channel_is_closed(ch))
                        goto out;
                    ssh__fail(t, j, "sending data");
                    rc = j->status;
                } else {
                    off += w;
                }
            }
        }
        if (rc < 0)
            break;
    }
out:
    free(buf);
    return rc;
}

/* After a timeout: ask sshd to KILL the command and give it a moment to
 * report the end and close the channel itself. Closing our side first
 * while the command dies makes dropbear 2022.83 abort the whole connection
 * (failed assertion `!channel->sent_close`), taking the session with it. */
static void kill_wait(sshtp *t, ssh_channel ch, run *r)
{
    if (ssh_channel_request_send_signal(ch, "KILL") != SSH_OK)
        return;
    int grace = t->io_timeout_ms < 3000 ? t->io_timeout_ms : 3000;
    double end = guest__now_ms() + grace;
    while (!r->closed && !ssh__stopping(t) && guest__now_ms() < end)
        if (ssh__pump(t, SLICE_MS) < 0)
            break;
}

/* Run cmd on a new exec channel, stdin from in_fd (or empty), output as r
 * says, until it exits or the deadline passes. 0 when it ran to its end (see
 * r), or -errno with j failed. On timeout the command gets SIGKILL (if the
 * sshd honours signal requests) and its channel is closed; the session
 * itself stays usable. */
static int run_channel(sshtp *t, guest_job *j, const char *cmd, int in_fd, run *r,
                       double deadline)
{
    struct ssh_channel_callbacks_struct cb = {
        .userdata = r,
        .channel_data_function = run_data,
        .channel_eof_function = run_eof,
        .channel_close_function = run_close,
        .channel_exit_status_function = run_status,
        .channel_exit_signal_function = run_signal,
    };
    ssh_callbacks_init(&cb);
    ssh_channel ch = ssh_channel_new(t->ss);
    if (!ch) {
        ssh__fail(t, j, "cannot create a channel");
        return j->status;
    }
    int rc = 0;
    if (ssh_channel_open_session(ch) != SSH_OK) {
        ssh__fail(t, j, "cannot open a session channel");
        rc = j->status;
        goto out;
    }
    ssh_set_channel_callbacks(ch, &cb);
    if (ssh_channel_request_exec(ch, cmd) != SSH_OK) {
        ssh__fail(t, j, "the guest refused the exec request");
        rc = j->status;
        goto out;
    }
    if (in_fd >= 0 && (rc = feed(t, j, ch, in_fd, deadline)) < 0) {
        if (rc == -ETIMEDOUT)
            kill_wait(t, ch, r);
        goto out;
    }
    /* An empty stdin, so a command that reads it does not hang. */
    if (!ssh_channel_is_closed(ch))
        ssh_channel_send_eof(ch);
    while (!r->closed && !(r->eof && (r->have_status || r->sig[0]))) {
        double rem = deadline - guest__now_ms();
        if (ssh__stopping(t)) {
            ssh__fail(t, j, "cancelled");
            rc = j->status;
            break;
        }
        if (rem <= 0) {
            fail_timeout(t, j, "");
            rc = -ETIMEDOUT;
            kill_wait(t, ch, r);
            break;
        }
        if (ssh__pump(t, rem < SLICE_MS ? (int)rem + 1 : SLICE_MS) < 0) {
            ssh__fail(t, j, "waiting for the command");
            rc = j->status;
            break;
        }
    }
out:
    /* Callbacks off before the channel goes: libssh may keep a locally
     * freed channel until the guest's close arrives, and r is on our stack. */
    ssh_remove_channel_callbacks(ch, &cb);
    ssh_channel_free(ch);
    return rc;
}

/* Exit code and signal into j; a channel closed without either is an error. */
static int finish(sshtp *t, guest_job *j, const run *r)
{
    j->exit_code = r->have_status ? r->status : -1;
    snprintf(j->signal, sizeof(j->signal), "%s", r->sig);
    if (r->have_status || r->sig[0])
        return 0;
    char step[512];
    ssh__step(j, step, sizeof(step));
    guest__fail(j, t->name, -EIO, step, "the guest closed the channel without an exit status");
    return -EIO;
}

void ssh__exec(sshtp *t, guest_job *j, double deadline)
{
    run r = {.t = t, .j = j, .out_fd = -1};
    if (run_channel(t, j, j->arg, -1, &r, deadline) == 0)
        finish(t, j, &r);
}

/* ------------------------------------------------------------------ shell */

/* Terminal control sequences the shell's line editor emits even for a
 * "dumb" terminal (busybox asks for the cursor position with ESC [ 6 n after
 * every prompt) would sit between the text and the patterns written for it.
 * They are removed as they arrive; the state survives packet boundaries. */
enum { ESC_NONE, ESC_SEEN, ESC_CSI, ESC_OSC, ESC_OSC_ESC };

static int esc_step(int *st, unsigned char c)
{
    switch (*st) {
    case ESC_SEEN:
        *st = c == '[' ? ESC_CSI : c == ']' ? ESC_OSC : ESC_NONE;
        return 0;
    case ESC_CSI: /* parameters and intermediates, up to a final byte */
        if (c >= 0x40 && c <= 0x7e)
            *st = ESC_NONE;
        return 0;
    case ESC_OSC: /* up to BEL or ESC \ */
        *st = c == 0x07 ? ESC_NONE : c == 0x1b ? ESC_OSC_ESC : ESC_OSC;
        return 0;
    case ESC_OSC_ESC:
        *st = c == '\\' ? ESC_NONE : ESC_OSC;
        return 0;
    default:
        if (c == 0x1b) {
            *st = ESC_SEEN;
            return 0;
        }
        return c != 0; /* NULs would end regexec's subject early */
    }
}

static int sh_data(ssh_session ss, ssh_channel ch, void *d, uint32_t len, int is_stderr, void *u)
{
    sshtp *t = u;
    const unsigned char *p = d;
    char clean[1024];
    size_t n = 0;
    for (uint32_t i = 0; i < len; i++) {
        if (esc_step(&t->sh_esc, p[i]))
            clean[n++] = (char)p[i];
        if (n == sizeof(clean) || (i + 1 == len && n)) {
            guest__buf_add(&t->sh_buf, clean, n, t->max_output, 0);
            n = 0;
        }
    }
    return (int)len;
}

static void sh_end(ssh_session ss, ssh_channel ch, void *u)
{
    ((sshtp *)u)->sh_ended = 1;
}

static void shell_drop(sshtp *t)
{
    if (!t->sh)
        return;
    ssh_remove_channel_callbacks(t->sh, &t->sh_cb);
    ssh_channel_free(t->sh);
    t->sh = NULL;
    t->sh_ended = 0;
}

static int shell_open(sshtp *t, guest_job *j)
{
    shell_drop(t);
    guest__buf_consume(&t->sh_buf, t->sh_buf.len);
    t->sh_bol = 1;
    t->sh_esc = 0;
    ssh_channel ch = ssh_channel_new(t->ss);
    if (!ch || ssh_channel_open_session(ch) != SSH_OK) {
        ssh__fail(t, j, "cannot open a channel for the shell");
        ssh_channel_free(ch);
        return j->status;
    }
    memset(&t->sh_cb, 0, sizeof(t->sh_cb));
    t->sh_cb.userdata = t;
    t->sh_cb.channel_data_function = sh_data;
    t->sh_cb.channel_eof_function = sh_end;
    t->sh_cb.channel_close_function = sh_end;
    ssh_callbacks_init(&t->sh_cb);
    ssh_set_channel_callbacks(ch, &t->sh_cb);
    t->sh = ch;
    /* A pty makes the shell interactive (prompt, echo) as a person would
     * see it. "dumb" keeps colour and cursor codes out; wide lines keep long
     * commands from wrapping. A guest without ptys still gets a shell. */
    if (ssh_channel_request_pty_size(ch, "dumb", 512, 40) != SSH_OK && ssh__lost(t)) {
        ssh__fail(t, j, "pty request");
        return j->status;
    }
    if (ssh_channel_request_shell(ch) != SSH_OK) {
        ssh__fail(t, j, "the guest refused to start a shell");
        shell_drop(t);
        return j->status;
    }
    return 0;
}

void ssh__send(sshtp *t, guest_job *j, double deadline)
{
    if ((!t->sh || t->sh_ended) && shell_open(t, j) < 0)
        return;
    for (size_t off = 0; off < j->arg_len;) {
        if (guest__now_ms() >= deadline) {
            fail_timeout(t, j, " while sending");
            return;
        }
        int w = ssh_channel_write(t->sh, j->arg + off, (uint32_t)(j->arg_len - off));
        if (w == SSH_ERROR) {
            if (t->sh_ended || ssh_channel_is_closed(t->sh)) {
                char step[512];
                ssh__step(j, step, sizeof(step));
                guest__fail(j, t->name, -EPIPE, step, "the shell has exited");
            } else {
                ssh__fail(t, j, "sending to the shell");
            }
            return;
        }
        off += (size_t)w;
    }
}

void ssh__expect(sshtp *t, guest_job *j, double deadline)
{
    char step[512], tail[TAIL * 4 + 16];
    if (!t->sh && shell_open(t, j) < 0)
        return;
    for (;;) {
        regmatch_t m;
        const char *p = t->sh_buf.p ? t->sh_buf.p : "";
        if (regexec(&j->re, p, 1, &m, t->sh_bol ? 0 : REG_NOTBOL) == 0) {
            size_t so = (size_t)m.rm_so, eo = (size_t)m.rm_eo;
            guest__buf_add(&j->before, p, so, (size_t)-1, 1);
            guest__buf_add(&j->out, p + so, eo - so, (size_t)-1, 1);
            if (eo > 0)
                t->sh_bol = p[eo - 1] == '\n';
            guest__buf_consume(&t->sh_buf, eo);
            return;
        }
        double rem = deadline - guest__now_ms();
        int ended = t->sh_ended;
        if (ended || rem <= 0 || ssh__stopping(t)) {
            /* Leave the output for the next expect; report what is there. */
            guest__buf_add(&j->before, p, t->sh_buf.len, (size_t)-1, 1);
            guest__tail(p, t->sh_buf.len, TAIL, tail, sizeof(tail));
            ssh__step(j, step, sizeof(step));
            if (ssh__stopping(t)) {
                ssh__fail(t, j, "cancelled");
            } else if (ended) {
                guest__fail(j, t->name, -EPIPE, step, "the shell exited; last output: %s", tail);
            } else {
                j->timed_out = 1;
                guest__fail(j, t->name, -ETIMEDOUT, step,
                            "no match within %d ms; last output: %s", j->timeout_ms, tail);
            }
            return;
        }
        if (ssh__pump(t, rem < SLICE_MS ? (int)rem + 1 : SLICE_MS) < 0) {
            ssh__fail(t, j, "waiting for shell output");
            return;
        }
    }
}

/* ------------------------------------------------------------------ copies */

static int sftp_stderr(ssh_session ss, ssh_channel ch, void *d, uint32_t len, int is_stderr,
                       void *u)
{
    return is_stderr ? (int)len : 0; /* stdout stays buffered for the SFTP reader */
}

static void sftp_drop(sftp_session sf, struct ssh_channel_callbacks_struct *cb)
{
    if (!sf)
        return;
    ssh_remove_channel_callbacks(sf->channel, cb);
    sftp_free(sf);
}

/* 1: copy by SFTP, 0: by exec channel, <0: j failed. */
static int use_sftp(sshtp *t, guest_job *j)
{
    if (t->copy_mode == GUEST_COPY_EXEC)
        return 0;
    if (t->sftp_state == 0) {
        sftp_session sf = sftp_new(t->ss);
        if (sf) {
            /* When the guest lacks the sftp-server binary, sshd's shell says
             * "not found" on stderr and exits. libssh 0.10's SFTP reader
             * treats a channel with unread stderr as not at EOF and spins
             * forever: throw stderr away as it comes, and what came already. */
            memset(&t->sftp_cb, 0, sizeof(t->sftp_cb));
            t->sftp_cb.channel_data_function = sftp_stderr;
            ssh_callbacks_init(&t->sftp_cb);
            ssh_set_channel_callbacks(sf->channel, &t->sftp_cb);
            char junk[256];
            while (ssh_channel_read_nonblocking(sf->channel, junk, sizeof(junk), 1) > 0)
                ;
        }
        if (sf && sftp_init(sf) == SSH_OK) {
            t->sftp = sf;
            t->sftp_state = 1;
        } else {
            sftp_drop(sf, &t->sftp_cb);
            t->sftp_state = -1;
        }
    }
    if (ssh__stopping(t) || ssh__lost(t)) {
        ssh__fail(t, j, "starting SFTP");
        return j->status;
    }
    if (t->sftp_state < 0 && t->copy_mode == GUEST_COPY_SFTP) {
        char step[512];
        ssh__step(j, step, sizeof(step));
        guest__fail(j, t->name, -ENOTSUP, step, "the guest has no SFTP server");
        return -ENOTSUP;
    }
    return t->sftp_state > 0;
}

static void sftp_fail(sshtp *t, guest_job *j, const char *what)
{
    int e = sftp_get_error(t->sftp);
    if (ssh__stopping(t) || ssh__lost(t)) {
        ssh__fail(t, j, what);
        return;
    }
    char step[512];
    ssh__step(j, step, sizeof(step));
    int st = e == SSH_FX_NO_SUCH_FILE || e == SSH_FX_NO_SUCH_PATH ? -ENOENT
             : e == SSH_FX_PERMISSION_DENIED ? -EACCES : -EIO;
    guest__fail(j, t->name, st, step, "%s: %s (sftp error %d)", what,
                st == -EIO ? ssh_get_error(t->ss) : strerror(-st), e);
}

/* Move data between a host fd and an open SFTP file. */
static void sftp_pump(sshtp *t, guest_job *j, sftp_file f, int fd, int in, double deadline)
{
    char *buf = malloc(CHUNK);
    if (!buf) {
        ssh__fail(t, j, "out of memory");
        return;
    }
    for (;;) {
        if (ssh__stopping(t) || ssh__lost(t)) {
            ssh__fail(t, j, "copying");
            break;
        }
        if (guest__now_ms() >= deadline) {
            fail_timeout(t, j, " while copying");
            break;
        }
        ssize_t n = in ? read(fd, buf, CHUNK) : sftp_read(f, buf, CHUNK);
        if (n < 0 && in && errno == EINTR)
            continue;
        if (n < 0) {
            if (in) {
                char step[512];
                int e = errno;
                ssh__step(j, step, sizeof(step));
                guest__fail(j, t->name, -e, step, "reading the host file: %s", strerror(e));
            } else {
                sftp_fail(t, j, "reading the guest file");
            }
            break;
        }
        if (n == 0)
            break;
        if (in && sftp_write(f, buf, (size_t)n) != n) {
            sftp_fail(t, j, "writing the guest file");
            break;
        }
        int e = in ? 0 : write_all(fd, buf, (size_t)n);
        if (e < 0) {
            char step[512];
            ssh__step(j, step, sizeof(step));
            guest__fail(j, t->name, e, step, "writing the host file: %s", strerror(-e));
            break;
        }
    }
    free(buf);
}

/* Status for a failed `cat`, from what it said on stderr. */
static void cat_failed(sshtp *t, guest_job *j, const run *r)
{
    char step[512], err[TAIL * 4 + 16];
    const char *e = j->errout.p ? j->errout.p : "";
    int st = strstr(e, "No such file") || strstr(e, "nonexistent") ? -ENOENT
             : strstr(e, "denied") ? -EACCES : -EIO;
    ssh__step(j, step, sizeof(step));
    guest__tail(e, j->errout.len, TAIL, err, sizeof(err));
    if (r->out_err)
        guest__fail(j, t->name, -r->out_err, step, "writing the host file: %s",
                    strerror(r->out_err));
    else
        guest__fail(j, t->name, st, step, "the guest's shell exited with %d: %s", j->exit_code,
                    err);
}

void ssh__copy_in(sshtp *t, guest_job *j, double deadline)
{
    char step[512];
    struct stat st;
    int fd = open(j->path, O_RDONLY | O_CLOEXEC), e = 0;
    if (fd < 0 || fstat(fd, &st) < 0)
        e = errno;
    else if (!S_ISREG(st.st_mode))
        e = EINVAL;
    if (e) {
        ssh__step(j, step, sizeof(step));
        guest__fail(j, t->name, -e, step, "host file: %s",
                    e == EINVAL ? "not a regular file" : strerror(e));
        if (fd >= 0)
            close(fd);
        return;
    }
    unsigned mode = st.st_mode & 07777;
    int sftp = use_sftp(t, j);
    if (sftp > 0) {
        sftp_file f = sftp_open(t->sftp, j->arg, O_WRONLY | O_CREAT | O_TRUNC, mode);
        if (!f) {
            sftp_fail(t, j, "creating the guest file");
        } else {
            sftp_pump(t, j, f, fd, 1, deadline);
            if (sftp_close(f) != SSH_NO_ERROR && !j->status)
                sftp_fail(t, j, "closing the guest file");
            if (!j->status && sftp_chmod(t->sftp, j->arg, mode) < 0)
                sftp_fail(t, j, "setting the guest file's mode");
        }
    } else if (sftp == 0) {
        char *q = guest__shquote(j->arg), *cmd = NULL;
        if (!q || asprintf(&cmd, "cat > %s && chmod %o %s", q, mode, q) < 0) {
            cmd = NULL;
            ssh__fail(t, j, "out of memory");
        } else {
            run r = {.t = t, .j = j, .out_fd = -1};
            if (run_channel(t, j, cmd, fd, &r, deadline) == 0 && finish(t, j, &r) == 0 &&
                j->exit_code != 0)
                cat_failed(t, j, &r);
        }
        free(q);
        free(cmd);
    }
    j->exit_code = -1; /* copies have no exit code of their own */
    close(fd);
}

void ssh__copy_out(sshtp *t, guest_job *j, double deadline)
{
    int fd = open(j->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        char step[512];
        int e = errno;
        ssh__step(j, step, sizeof(step));
        guest__fail(j, t->name, -e, step, "host file: %s", strerror(e));
        return;
    }
    int sftp = use_sftp(t, j);
    if (sftp > 0) {
        sftp_file f = sftp_open(t->sftp, j->arg, O_RDONLY, 0);
        if (!f) {
            sftp_fail(t, j, "opening the guest file");
        } else {
            sftp_pump(t, j, f, fd, 0, deadline);
            sftp_close(f);
        }
    } else if (sftp == 0) {
        char *q = guest__shquote(j->arg), *cmd = NULL;
        if (!q || asprintf(&cmd, "cat %s", q) < 0) {
            cmd = NULL;
            ssh__fail(t, j, "out of memory");
        } else {
            run r = {.t = t, .j = j, .out_fd = fd};
            if (run_channel(t, j, cmd, -1, &r, deadline) == 0 && finish(t, j, &r) == 0 &&
                (j->exit_code != 0 || r.out_err))
                cat_failed(t, j, &r);
        }
        free(q);
        free(cmd);
    }
    j->exit_code = -1;
    if (close(fd) < 0 && !j->status) {
        char step[512];
        int e = errno;
        ssh__step(j, step, sizeof(step));
        guest__fail(j, t->name, -e, step, "writing the host file: %s", strerror(e));
    }
    if (j->status)
        unlink(j->path); /* no partial file that looks like a good copy */
}

void ssh__chan_teardown(sshtp *t)
{
    shell_drop(t);
    sftp_drop(t->sftp, &t->sftp_cb);
    t->sftp = NULL;
}
