/* ssh_connect.c - the SSH worker's way in: TCP connect with retry while
 * sshd starts, the banner wait, host keys (known_hosts shared by a run's
 * sessions), login by password or keyboard-interactive, and the way out. */
#include "guest/ssh.h"
#include "base/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SLICE_MS 100
#define FIRST_BANNER_MS 4000 /* see ssh__connect */

/* known_hosts files are shared by every session of a run: the check and the
 * append must not interleave between threads. */
static pthread_mutex_t known_hosts_mu = PTHREAD_MUTEX_INITIALIZER;

void ssh__set_timeout(ssh_session ss, int ms)
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
    ssh__set_timeout(ss, t->io_timeout_ms);
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
void ssh__disconnect(sshtp *t)
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

void ssh__connect(sshtp *t, guest_job *j)
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
        ssh__set_timeout(t->ss, t->io_timeout_ms);
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
        ssh__disconnect(t);
    }
}
