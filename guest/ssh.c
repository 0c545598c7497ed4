/* ssh.c - libssh transport: the per-session worker thread, its queues,
 * connecting (with retry while sshd starts), host keys, login, keepalive.
 * See ssh.h for why this is a worker thread and not non-blocking libssh. */
#include "guest/ssh.h"
#include "base/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libssh/server.h> /* ssh_send_keepalive; works on client sessions too */

#define DEF_CONNECT_MS 120000
#define DEF_IO_MS 20000
#define DEF_KEEPALIVE_MS 15000
#define DEF_KEEPALIVE_MAX 3
#define SLICE_MS 100
#define FIRST_BANNER_MS 4000 /* see do_connect */
#define WD_SLACK_MS 2000
#define WD_PERIOD_MS 1000

/* known_hosts files are shared by every session of a run: the check and the
 * append must not interleave between threads. */
static pthread_mutex_t known_hosts_mu = PTHREAD_MUTEX_INITIALIZER;

/* ------------------------------------------------------------- small bits */

int ssh__stopping(sshtp *t)
{
    pthread_mutex_lock(&t->mu);
    int stop = t->stop;
    pthread_mutex_unlock(&t->mu);
    return stop;
}

int ssh__lost(sshtp *t)
{
    if (t->lost)
        return 1;
    if (!t->ss)
        return 0;
    if (ssh_is_connected(t->ss) && !(ssh_get_status(t->ss) & (SSH_CLOSED | SSH_CLOSED_ERROR)))
        return 0;
    t->lost = 1;
    t->why_status = -ENOTCONN;
    pthread_mutex_lock(&t->mu);
    int wd = t->wd_fired;
    pthread_mutex_unlock(&t->mu);
    if (wd)
        snprintf(t->why, sizeof(t->why),
                 "connection dropped: the guest stopped answering (still no progress %d ms "
                 "after the step's deadline)", t->io_timeout_ms + WD_SLACK_MS);
    else
        snprintf(t->why, sizeof(t->why), "connection lost: %s", ssh_get_error(t->ss));
    return 1;
}

int ssh__pump(sshtp *t, int ms)
{
    /* The session joins the event only while we poll it, so that libssh's
     * own blocking calls keep using the session's default poll context. */
    ssh_event_add_session(t->ev, t->ss);
    int rc = ssh_event_dopoll(t->ev, ms);
    ssh_event_remove_session(t->ev, t->ss);
    return rc == SSH_ERROR || ssh__lost(t) ? -1 : 0;
}

void ssh__step(const guest_job *j, char *out, size_t outlen)
{
    guest__step(j, "ssh", out, outlen);
}

void ssh__fail(sshtp *t, guest_job *j, const char *what)
{
    char step[512];
    ssh__step(j, step, sizeof(step));
    if (ssh__stopping(t))
        guest__fail(j, t->name, -ECANCELED, step, "cancelled: session closed");
    else if (ssh__lost(t))
        guest__fail(j, t->name, -ENOTCONN, step, "%s", t->why);
    else if (*ssh_get_error(t->ss))
        guest__fail(j, t->name, -EIO, step, "%s: %s", what, ssh_get_error(t->ss));
    else /* libssh's blocking calls give up silently when their timeout ends */
        guest__fail(j, t->name, -ETIMEDOUT, step, "%s: no answer from the guest in time", what);
}

static void set_timeout(ssh_session ss, int ms)
{
    long sec = ms / 1000, usec = (long)(ms % 1000) * 1000;
    ssh_options_set(ss, SSH_OPTIONS_TIMEOUT, &sec);
    ssh_options_set(ss, SSH_OPTIONS_TIMEOUT_USEC, &usec);
}

/* Sleep up to ms unless a stop is requested. 1 if stopping. */
static int nap(sshtp *t, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&t->mu);
    while (!t->stop && pthread_cond_timedwait(&t->cv, &t->mu, &ts) != ETIMEDOUT)
        ;
    int stop = t->stop;
    pthread_mutex_unlock(&t->mu);
    return stop;
}

/* ---------------------------------------------------------------- connect */

/* TCP connect to host:port within ms. The socket is returned non-blocking,
 * as libssh keeps its own sockets. fd, or -errno with why filled. */
static int tcp_connect(sshtp *t, int ms, char *why, size_t whylen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    char port[16];
    snprintf(port, sizeof(port), "%d", t->port);
    int rc = getaddrinfo(t->host, port, &hints, &ai);
    if (rc != 0) {
        snprintf(why, whylen, "cannot resolve %s: %s", t->host, gai_strerror(rc));
        return -EHOSTUNREACH;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        freeaddrinfo(ai);
        snprintf(why, whylen, "socket: %s", strerror(-rc));
        return rc;
    }
    rc = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : -errno;
    freeaddrinfo(ai);
    double end = guest__now_ms() + ms;
    while (rc == -EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, SLICE_MS) > 0) {
            int err = 0;
            socklen_t len = sizeof(err);
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            rc = -err;
        } else if (ssh__stopping(t)) {
            rc = -ECANCELED;
        } else if (guest__now_ms() >= end) {
            rc = -ETIMEDOUT;
        }
    }
    if (rc < 0) {
        close(fd);
        snprintf(why, whylen, "%s", rc == -ECONNREFUSED ? "connection refused" : strerror(-rc));
        return rc;
    }
    int one = 1; /* interactive traffic: small packets must not wait */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Wait up to ms for the server to say anything (its banner), without
 * consuming it. 0 when there is data, -ETIMEDOUT, -ECONNRESET on EOF. */
static int await_banner(sshtp *t, int fd, int ms)
{
    double end = guest__now_ms() + ms;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, SLICE_MS) > 0) {
            char c;
            ssize_t n = recv(fd, &c, 1, MSG_PEEK);
            if (n > 0)
                return 0;
            if (n == 0 || (errno != EAGAIN && errno != EINTR))
                return -ECONNRESET;
        }
        if (ssh__stopping(t))
            return -ECANCELED;
        if (guest__now_ms() >= end)
            return -ETIMEDOUT;
    }
}

/* One attempt: TCP, the SSH banner within banner_ms, then the key exchange.
 * 0 with t->ss set, or -errno with why filled; *retry says whether sshd may
 * just not be up yet. */
static int connect_once(sshtp *t, int banner_ms, char *why, size_t whylen, int *retry)
{
    *retry = 0;
    int fd = tcp_connect(t, banner_ms, why, whylen);
    if (fd >= 0) {
        int rc = await_banner(t, fd, banner_ms);
        if (rc < 0) {
            close(fd);
            snprintf(why, whylen, "%s",
                     rc == -ETIMEDOUT    ? "no SSH banner yet (sshd not reachable?)"
                     : rc == -ECONNRESET ? "closed before the SSH banner (sshd not up yet?)"
                                         : "cancelled: session closed");
            *retry = rc != -ECANCELED;
            return rc;
        }
    }
    if (fd < 0) {
        *retry = fd == -ECONNREFUSED || fd == -ETIMEDOUT || fd == -ECONNRESET ||
                 fd == -EHOSTUNREACH || fd == -ENETUNREACH || fd == -EAGAIN;
        return fd;
    }
    /* libssh owns fd from ssh_connect on and may close it whenever it sees
     * an error. guest_close shuts the socket down to interrupt a blocked
     * worker; doing that through a dup of our own means it can never hit a
     * descriptor number libssh already closed and someone else reused. */
    int dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    ssh_session ss = ssh_new();
    if (dupfd < 0 || !ss) {
        snprintf(why, whylen, "out of resources");
        if (dupfd >= 0)
            close(dupfd);
        close(fd);
        ssh_free(ss);
        return -ENOMEM;
    }
    unsigned int port = (unsigned int)t->port;
    int no = 0, verbosity = SSH_LOG_NOLOG;
    ssh_options_set(ss, SSH_OPTIONS_LOG_VERBOSITY, &verbosity);
    ssh_options_set(ss, SSH_OPTIONS_HOST, t->host);
    ssh_options_set(ss, SSH_OPTIONS_PORT, &port);
    ssh_options_set(ss, SSH_OPTIONS_USER, t->user);
    /* Only the run's own known_hosts counts: not ~/.ssh, not /etc/ssh, and
     * no ssh_config can change what we connect to. */
    ssh_options_set(ss, SSH_OPTIONS_KNOWNHOSTS, t->known_hosts);
    ssh_options_set(ss, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null");
    ssh_options_set(ss, SSH_OPTIONS_PROCESS_CONFIG, &no);
    set_timeout(ss, t->io_timeout_ms);
    if (ssh_options_set(ss, SSH_OPTIONS_FD, &fd) < 0) {
        snprintf(why, whylen, "libssh refused the socket: %s", ssh_get_error(ss));
        close(dupfd);
        close(fd);
        ssh_free(ss);
        return -EIO;
    }
    pthread_mutex_lock(&t->mu);
    t->sock = dupfd;
    pthread_mutex_unlock(&t->mu);
    if (ssh_connect(ss) == SSH_OK) {
        t->ss = ss;
        return 0;
    }
    /* No banner: the guest side went away before sshd spoke (dropbear
     * drops connections beyond its per-address limit of unauthenticated
     * clients). A timeout: the guest is too slow yet. Both are worth another
     * attempt; any other failure after a banner (no common algorithms, a
     * protocol error) is final. */
    const char *err = ssh_get_error(ss);
    int timeout = strstr(err, "imeout") != NULL, banner = ssh_get_serverbanner(ss) != NULL;
    *retry = !banner || timeout;
    int rc = timeout ? -ETIMEDOUT : banner ? -EPROTO : -ECONNRESET;
    snprintf(why, whylen, "%s%s", banner ? "" : "closed before the SSH banner: ", err);
    ssh_free(ss);
    pthread_mutex_lock(&t->mu);
    close(t->sock);
    t->sock = -1;
    pthread_mutex_unlock(&t->mu);
    return rc;
}

static void fingerprint(ssh_session ss, char *out, size_t outlen)
{
    ssh_key k = NULL;
    unsigned char *h = NULL;
    size_t hl = 0;
    snprintf(out, outlen, "an unreadable key");
    if (ssh_get_server_publickey(ss, &k) != SSH_OK)
        return;
    if (ssh_get_publickey_hash(k, SSH_PUBLICKEY_HASH_SHA256, &h, &hl) == 0) {
        char *fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, h, hl);
        snprintf(out, outlen, "%s key %s", ssh_key_type_to_char(ssh_key_type(k)), fp ? fp : "?");
        ssh_string_free_char(fp);
        ssh_clean_pubkey_hash(&h);
    }
    ssh_key_free(k);
}

/* Trust on first use, within the run: a key never seen is added to the
 * run's known_hosts; a different key for the same host:port is an error. */
static int check_host_key(sshtp *t, guest_job *j)
{
    char step[320], fp[160];
    snprintf(step, sizeof(step), "ssh host key check for [%s]:%d", t->host, t->port);
    pthread_mutex_lock(&known_hosts_mu);
    /* libssh appends through fopen: it would follow a link and make the
     * file 0644. It finds a plain 0600 file of ours in a private dir. */
    char why[512];
    int fd = fs_open_in(t->known_hosts, O_WRONLY | O_CREAT | O_APPEND, 0600, why, sizeof(why));
    if (fd < 0) {
        pthread_mutex_unlock(&known_hosts_mu);
        guest__fail(j, t->name, fd, step, "%s", why);
        return fd;
    }
    close(fd);
    enum ssh_known_hosts_e k = ssh_session_is_known_server(t->ss);
    int rc = 0;
    switch (k) {
    case SSH_KNOWN_HOSTS_OK:
        break;
    case SSH_KNOWN_HOSTS_NOT_FOUND:
    case SSH_KNOWN_HOSTS_UNKNOWN:
        if (ssh_session_update_known_hosts(t->ss) != SSH_OK) {
            guest__fail(j, t->name, -EIO, step, "cannot add the key to %s: %s", t->known_hosts,
                        ssh_get_error(t->ss));
            rc = -EIO;
        }
        break;
    case SSH_KNOWN_HOSTS_CHANGED:
    case SSH_KNOWN_HOSTS_OTHER:
        fingerprint(t->ss, fp, sizeof(fp));
        guest__fail(j, t->name, -EKEYREJECTED, step,
                    "HOST KEY CHANGED: the guest presents %s, but %s holds a different key "
                    "for it; refusing to log in", fp, t->known_hosts);
        rc = -EKEYREJECTED;
        break;
    case SSH_KNOWN_HOSTS_ERROR:
    default:
        guest__fail(j, t->name, -EIO, step, "cannot read %s: %s", t->known_hosts,
                    ssh_get_error(t->ss));
        rc = -EIO;
        break;
    }
    pthread_mutex_unlock(&known_hosts_mu);
    return rc;
}

static void methods_text(int m, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s%s%s%s", m & SSH_AUTH_METHOD_PUBLICKEY ? "publickey," : "",
             m & SSH_AUTH_METHOD_PASSWORD ? "password," : "",
             m & SSH_AUTH_METHOD_INTERACTIVE ? "keyboard-interactive," : "",
             m & SSH_AUTH_METHOD_HOSTBASED ? "hostbased," : "");
    size_t n = strlen(out);
    if (n)
        out[n - 1] = '\0';
    else
        snprintf(out, outlen, "none");
}

/* keyboard-interactive with the password as the answer to hidden prompts,
 * for servers that only offer password logins that way (PAM sshd). */
static int kbdint(sshtp *t)
{
    int rc = ssh_userauth_kbdint(t->ss, NULL, NULL);
    for (int round = 0; rc == SSH_AUTH_INFO && round < 4; round++) {
        int n = ssh_userauth_kbdint_getnprompts(t->ss);
        for (int i = 0; i < n; i++) {
            char echo = 0;
            ssh_userauth_kbdint_getprompt(t->ss, (unsigned)i, &echo);
            ssh_userauth_kbdint_setanswer(t->ss, (unsigned)i, echo ? "" : t->password);
        }
        rc = ssh_userauth_kbdint(t->ss, NULL, NULL);
    }
    return rc;
}

static int login(sshtp *t, guest_job *j)
{
    char step[160], tried[64] = "", offered[96];
    snprintf(step, sizeof(step), "ssh login as %s", t->user);
    int rc = ssh_userauth_none(t->ss, NULL);
    if (rc == SSH_AUTH_SUCCESS)
        return 0;
    int methods = rc == SSH_AUTH_ERROR ? 0 : ssh_userauth_list(t->ss, NULL);
    if (rc != SSH_AUTH_ERROR && t->key_path) {
        ssh_key key = NULL;
        if (ssh_pki_import_privkey_file(t->key_path, NULL, NULL, NULL, &key) != SSH_OK) {
            guest__fail(j, t->name, -EINVAL, step, "cannot read private key %s", t->key_path);
            return -EINVAL;
        }
        rc = ssh_userauth_publickey(t->ss, NULL, key);
        ssh_key_free(key);
        strcat(tried, "publickey");
    }
    if (rc != SSH_AUTH_SUCCESS && rc != SSH_AUTH_ERROR && t->password) {
        int kbd = !(methods & SSH_AUTH_METHOD_PASSWORD) && (methods & SSH_AUTH_METHOD_INTERACTIVE);
        rc = kbd ? kbdint(t) : ssh_userauth_password(t->ss, NULL, t->password);
        strcat(tried, *tried ? ", " : "");
        strcat(tried, kbd ? "keyboard-interactive" : "password");
    }
    if (rc == SSH_AUTH_SUCCESS)
        return 0;
    if (rc == SSH_AUTH_ERROR) { /* not a "no": the exchange itself broke */
        int st = ssh__stopping(t) ? -ECANCELED : ssh__lost(t) ? -ENOTCONN : -EIO;
        guest__fail(j, t->name, st, step, "%s",
                    st == -ECANCELED ? "cancelled: session closed" : ssh_get_error(t->ss));
        return st;
    }
    methods_text(methods, offered, sizeof(offered));
    guest__fail(j, t->name, -EACCES, step, "authentication failed (tried %s; the guest accepts %s)",
                *tried ? tried : "no credentials", offered);
    return -EACCES;
}

/* Drop the libssh session and our socket dup. */
static void disconnect(sshtp *t)
{
    if (t->ss) {
        ssh__chan_teardown(t);
        if (ssh_is_connected(t->ss))
            ssh_disconnect(t->ss);
        ssh_free(t->ss);
        t->ss = NULL;
    }
    pthread_mutex_lock(&t->mu);
    if (t->sock >= 0)
        close(t->sock);
    t->sock = -1;
    pthread_mutex_unlock(&t->mu);
}

static void do_connect(sshtp *t, guest_job *j)
{
    char step[320], why[384] = "";
    snprintf(step, sizeof(step), "ssh connect to %s:%d", t->host, t->port);
    double t0 = guest__now_ms(), end = t0 + t->connect_timeout_ms;
    int attempts = 0, rc = 0, retry = 0;
    for (;;) {
        double rem = end - guest__now_ms();
        if (ssh__stopping(t)) {
            rc = -ECANCELED;
            snprintf(why, sizeof(why), "cancelled: session closed");
            break;
        }
        if (attempts && rem <= 0)
            break;
        attempts++;
        /* While the guest boots, QEMU's user network accepts our TCP
         * connection and keeps retrying the guest side (the guest has no
         * address before DHCP), so an attempt can sit waiting for a banner
         * that only comes when slirp's next, ever later, SYN retransmission
         * lands. A short banner wait, growing a little per attempt, gets in
         * soon after sshd is reachable; the key exchange then has the full
         * io timeout. The first attempt waits longer: when the guest is
         * already up (a warm clone, or the SSH phase after the agent said
         * ready) the connection usually reaches sshd, and dropbear under
         * TCG takes 1.2-2.3 s to send its banner; giving up at 1.5 s threw
         * that away and made the login take a second attempt. A guest with
         * no sshd refuses or resets at once, which retries without waiting;
         * the total stays bounded by the connect timeout. */
        int banner_ms = attempts == 1 ? FIRST_BANNER_MS : 1500 + 500 * (attempts - 1);
        if (banner_ms > t->io_timeout_ms)
            banner_ms = t->io_timeout_ms;
        if (banner_ms > rem)
            banner_ms = rem > 1000 ? (int)rem : 1000;
        rc = connect_once(t, banner_ms, why, sizeof(why), &retry);
        if (rc == 0 || !retry)
            break;
        int pause = attempts < 4 ? 250 * attempts : 1000; /* sshd is usually seconds away */
        rem = end - guest__now_ms();
        if (rem <= 0)
            break;
        if (nap(t, pause < rem ? pause : (int)rem)) {
            rc = -ECANCELED;
            snprintf(why, sizeof(why), "cancelled: session closed");
            break;
        }
    }
    if (rc < 0) {
        if (rc == -ECANCELED || !retry)
            guest__fail(j, t->name, rc, step, "%s", why);
        else
            guest__fail(j, t->name, rc, step, "%s (gave up after %d attempt%s in %.1f s)", why,
                        attempts, attempts == 1 ? "" : "s", (guest__now_ms() - t0) / 1e3);
    } else {
        set_timeout(t->ss, t->io_timeout_ms);
        rc = check_host_key(t, j);
        if (rc == 0)
            rc = login(t, j);
        if (rc == 0 && !(t->ev = ssh_event_new())) {
            guest__fail(j, t->name, -ENOMEM, step, "out of memory");
            rc = -ENOMEM;
        }
    }
    if (rc < 0) {
        /* Later jobs fail with this, so the reason is never lost. */
        t->lost = 1;
        t->why_status = rc == -ECANCELED ? rc : -ENOTCONN;
        /* j->error is "<guest>: <step>: <what>"; keep "<step>: <what>". */
        const char *e = j->error ? j->error + strlen(t->name) + 2 : why;
        snprintf(t->why, sizeof(t->why), "not connected (%s)", e);
        disconnect(t);
    }
}

/* --------------------------------------------------------------- keepalive */

/* A keepalive@openssh.com request wants a reply (sshd answers "failure",
 * which is fine): unlike SSH_MSG_IGNORE, silence then means the guest is
 * gone. libssh waits for the reply up to the io timeout and does not say
 * whether it came, so a wait that long counts as a miss. */
static void keepalive(sshtp *t)
{
    double t0 = guest__now_ms();
    set_timeout(t->ss, t->io_timeout_ms); /* a step may have left a shorter one */
    ssh_send_keepalive(t->ss);
    if (ssh__lost(t))
        return;
    if (guest__now_ms() - t0 >= t->io_timeout_ms * 0.9) {
        if (++t->ka_missed >= t->keepalive_max) {
            t->lost = 1;
            t->why_status = -ENOTCONN;
            snprintf(t->why, sizeof(t->why), "connection lost: no answer to %d keepalives",
                     t->ka_missed);
        }
    } else {
        t->ka_missed = 0;
    }
    t->last_io = guest__now_ms();
}

/* ------------------------------------------------------------------ worker */

/* Arm the watchdog for a step that should be over by `end`. Our own
 * deadlines are checked between libssh calls, and libssh bounds most of its
 * waits by the io timeout, but not all: its SFTP reader retries a silent
 * channel forever. */
static void arm_watchdog(sshtp *t, double end)
{
    pthread_mutex_lock(&t->mu);
    t->job_deadline = end ? end + t->io_timeout_ms + WD_SLACK_MS : 0;
    pthread_mutex_unlock(&t->mu);
}

static void run_job(sshtp *t, guest_job *j)
{
    double t0 = guest__now_ms(), deadline = t0 + j->timeout_ms;
    arm_watchdog(t, j->kind == JOB_OPEN ? t0 + t->connect_timeout_ms : deadline);
    if (j->kind == JOB_OPEN) {
        do_connect(t, j);
    } else if (ssh__stopping(t)) {
        ssh__fail(t, j, "cancelled");
    } else if (!t->ss || ssh__lost(t)) {
        char step[512];
        ssh__step(j, step, sizeof(step));
        guest__fail(j, t->name, t->why_status ? t->why_status : -ENOTCONN, step, "%s", t->why);
    } else {
        /* libssh's own waits inside this step end with the step, at most
         * the io timeout. */
        set_timeout(t->ss, j->timeout_ms < t->io_timeout_ms ? j->timeout_ms : t->io_timeout_ms);
        switch (j->kind) {
        case JOB_EXEC: ssh__exec(t, j, deadline); break;
        case JOB_SEND: ssh__send(t, j, deadline); break;
        case JOB_EXPECT: ssh__expect(t, j, deadline); break;
        case JOB_COPY_IN: ssh__copy_in(t, j, deadline); break;
        case JOB_COPY_OUT: ssh__copy_out(t, j, deadline); break;
        default: break;
        }
    }
    arm_watchdog(t, 0);
    j->elapsed_ms = guest__now_ms() - t0;
    t->last_io = guest__now_ms();
}

static void post(sshtp *t, guest_job *j)
{
    pthread_mutex_lock(&t->mu);
    if (t->done_tail)
        t->done_tail->next = j;
    else
        t->done = j;
    t->done_tail = j;
    pthread_mutex_unlock(&t->mu);
    uv_async_send(&t->async);
}

/* Wait for a job or a stop; sends keepalives while idle. Called and returns
 * with mu held. */
static void idle_wait(sshtp *t)
{
    while (!t->pend && !t->stop) {
        int ka = t->keepalive_ms > 0 && t->ss && !t->lost;
        if (!ka) {
            pthread_cond_wait(&t->cv, &t->mu);
            continue;
        }
        double due = t->last_io + t->keepalive_ms, now = guest__now_ms();
        if (now < due) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            double ns = ts.tv_nsec + (due - now) * 1e6;
            ts.tv_sec += (time_t)(ns / 1e9);
            ts.tv_nsec = (long)(ns - (double)(time_t)(ns / 1e9) * 1e9);
            pthread_cond_timedwait(&t->cv, &t->mu, &ts);
            continue;
        }
        t->busy = 1;
        pthread_mutex_unlock(&t->mu);
        arm_watchdog(t, guest__now_ms() + t->io_timeout_ms);
        keepalive(t);
        arm_watchdog(t, 0);
        pthread_mutex_lock(&t->mu);
        t->busy = 0;
    }
}

static void *worker(void *arg)
{
    sshtp *t = arg;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        idle_wait(t);
        if (t->stop)
            break;
        guest_job *j = t->pend;
        t->pend = j->next;
        if (!t->pend)
            t->pend_tail = NULL;
        j->next = NULL;
        t->busy = 1;
        pthread_mutex_unlock(&t->mu);
        run_job(t, j);
        post(t, j);
        pthread_mutex_lock(&t->mu);
        t->busy = 0;
    }
    guest_job *rest = t->pend;
    t->pend = t->pend_tail = NULL;
    pthread_mutex_unlock(&t->mu);
    while (rest) {
        guest_job *j = rest;
        rest = j->next;
        j->next = NULL;
        ssh__fail(t, j, "cancelled");
        post(t, j);
    }
    disconnect(t);
    if (t->ev)
        ssh_event_free(t->ev);
    t->ev = NULL;
    guest__buf_free(&t->sh_buf);
    pthread_mutex_lock(&t->mu);
    t->exited = 1;
    pthread_mutex_unlock(&t->mu);
    /* Last touch of t by this thread: the loop joins before closing async. */
    uv_async_send(&t->async);
    return NULL;
}

/* -------------------------------------------------------------- loop side */

static void tp_free(sshtp *t)
{
    if (t->password) /* do not leave it lying in freed heap */
        memset(t->password, 0, strlen(t->password));
    free(t->name);
    free(t->host);
    free(t->user);
    free(t->password);
    free(t->key_path);
    free(t->known_hosts);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t);
}

static void on_handle_closed(uv_handle_t *h)
{
    sshtp *t = h->data;
    if (--t->handles > 0)
        return;
    guest_session_t *s = t->s;
    tp_free(t);
    if (s)
        guest__closed(s);
}

static void close_handles(sshtp *t)
{
    uv_close((uv_handle_t *)&t->wd, on_handle_closed);
    uv_close((uv_handle_t *)&t->async, on_handle_closed);
}

static void on_watchdog(uv_timer_t *tm)
{
    sshtp *t = tm->data;
    pthread_mutex_lock(&t->mu);
    if (t->busy && t->job_deadline > 0 && guest__now_ms() > t->job_deadline && t->sock >= 0 &&
        !t->wd_fired) {
        t->wd_fired = 1;
        shutdown(t->sock, SHUT_RDWR);
    }
    pthread_mutex_unlock(&t->mu);
}

static void on_async(uv_async_t *a)
{
    sshtp *t = a->data;
    pthread_mutex_lock(&t->mu);
    guest_job *list = t->done;
    t->done = t->done_tail = NULL;
    int exited = t->exited;
    pthread_mutex_unlock(&t->mu);
    while (list) {
        guest_job *j = list;
        list = j->next;
        j->next = NULL;
        guest__complete(t->s, j);
    }
    if (exited && !t->joined) {
        t->joined = 1;
        pthread_join(t->thr, NULL);
        close_handles(t);
    }
}

static void ssh_submit(guest_session_t *s, guest_job *j)
{
    sshtp *t = s->tp;
    pthread_mutex_lock(&t->mu);
    if (t->pend_tail)
        t->pend_tail->next = j;
    else
        t->pend = j;
    t->pend_tail = j;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void ssh_close(guest_session_t *s)
{
    sshtp *t = s->tp;
    pthread_mutex_lock(&t->mu);
    t->stop = 1;
    /* A busy worker may sit in a blocking libssh call for up to the io
     * timeout: shutting the socket down makes that call fail now. An idle
     * one wakes on the condvar and can still say goodbye properly. */
    if (t->busy && t->sock >= 0)
        shutdown(t->sock, SHUT_RDWR);
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static const guest_ops ssh_ops = {.submit = ssh_submit, .close = ssh_close};

static int dup_opt(char **dst, const char *src)
{
    *dst = NULL;
    return src && !(*dst = strdup(src)) ? -ENOMEM : 0;
}

int guest__ssh_init(guest_session_t *s, const guest_opts *o)
{
    const guest_ssh_opts *so = &o->ssh;
    if (so->port <= 0 || so->port > 65535 || !so->user || !*so->user || !so->known_hosts ||
        !*so->known_hosts)
        return -EINVAL;
    sshtp *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->sock = -1;
    t->s = s;
    if (dup_opt(&t->name, o->name) || dup_opt(&t->host, so->host ? so->host : "127.0.0.1") ||
        dup_opt(&t->user, so->user) || dup_opt(&t->password, so->password) ||
        dup_opt(&t->key_path, so->key_path) || dup_opt(&t->known_hosts, so->known_hosts)) {
        pthread_mutex_init(&t->mu, NULL); /* tp_free destroys them */
        pthread_cond_init(&t->cv, NULL);
        tp_free(t);
        return -ENOMEM;
    }
    t->port = so->port;
    t->connect_timeout_ms = so->connect_timeout_ms > 0 ? so->connect_timeout_ms : DEF_CONNECT_MS;
    t->io_timeout_ms = so->io_timeout_ms > 0 ? so->io_timeout_ms : DEF_IO_MS;
    t->keepalive_ms = so->keepalive_ms < 0 ? 0 : so->keepalive_ms ? so->keepalive_ms : DEF_KEEPALIVE_MS;
    t->keepalive_max = so->keepalive_max_missed > 0 ? so->keepalive_max_missed : DEF_KEEPALIVE_MAX;
    t->copy_mode = so->copy_mode;
    t->max_output = s->max_output;
    t->sh_bol = 1;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* deadlines ignore clock steps */
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = uv_async_init(s->loop, &t->async, on_async);
    if (rc < 0) {
        tp_free(t);
        return rc;
    }
    t->async.data = t;
    uv_timer_init(s->loop, &t->wd); /* cannot fail on Linux */
    t->wd.data = t;
    t->handles = 2;
    uv_timer_start(&t->wd, on_watchdog, WD_PERIOD_MS, WD_PERIOD_MS);
    uv_unref((uv_handle_t *)&t->wd); /* the async keeps the loop alive */
    /* The worker must never take the process's signals (SIGCHLD for QEMU
     * children, SIGINT, ...): they belong to the loop thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = -pthread_create(&t->thr, NULL, worker, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0) {
        t->s = NULL; /* the session is freed by guest_open's caller */
        close_handles(t);
        return rc;
    }
    s->tp = t;
    s->ops = &ssh_ops;
    return 0;
}
