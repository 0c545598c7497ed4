/* test_mkguest.c - boots the test guest built by tools/mkguest under plain
 * QEMU (TCG) with the argv shape qfleet uses, and checks every service the
 * controller relies on: QMP, the guest agent on virtio-serial (sync, network
 * interfaces, exec, files, shutdown), DHCP on host_connect and SSH login.
 *
 * Deliberately self-contained: blocking sockets with poll() deadlines and
 * substring checks on QEMU's one-line JSON, so this test does not depend on
 * the project's own QMP/agent/SSH code it is meant to give a guest to. */
#include <criterion/criterion.h>
#include <libssh/libssh.h>
#include <libssh/sftp.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define BOOT_MS 120000   /* QEMU start -> agent port opened */
#define DHCP_MS 60000    /* agent ready -> host_connect has its lease */
#define SSH_MS 60000     /* SSH connect + login, retried */
#define EXIT_MS 60000    /* quit/shutdown -> QEMU process gone */
#define CMD_MS 20000     /* one QMP or agent command */

typedef struct {
    int fd;
    size_t len;
    char buf[1 << 16];
} conn_t;

typedef struct {
    pid_t pid;
    char run[256];       /* per-VM directory: sockets, logs */
    char guest[512];     /* tu_guest_dir() */
    int ssh_port;
    double t0;           /* when QEMU was started */
    conn_t qmp, qga;
    int agent_open;      /* VSERPORT_CHANGE open:true seen for qga0port */
    char tail[4096];     /* failure context, see ctx() */
} vm_t;

static vm_t vm = { .pid = -1, .qmp.fd = -1, .qga.fd = -1 };

/* ------------------------------------------------------------ small utils */

static void path_in(char *out, size_t outlen, const char *dir, const char *name)
{
    int n = snprintf(out, outlen, "%s/%s", dir, name);
    cr_assert(n > 0 && (size_t)n < outlen, "path too long: %s/%s", dir, name);
}

/* Last `max` bytes of a file, control characters made visible. */
static void file_tail(const char *path, char *out, size_t outlen, size_t max)
{
    out[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (max >= outlen)
        max = outlen - 1;
    off_t end = lseek(fd, 0, SEEK_END);
    off_t from = end > (off_t)max ? end - (off_t)max : 0;
    ssize_t n = pread(fd, out, max, from);
    close(fd);
    if (n < 0)
        n = 0;
    out[n] = '\0';
    for (ssize_t i = 0; i < n; i++)
        if (!isprint((unsigned char)out[i]) && out[i] != '\n')
            out[i] = '.';
}

/* Failure context for assertion messages: tails of the serial console and
 * of QEMU's own output. */
static const char *ctx(void)
{
    char p[512], serial[2500], qemu[800];
    path_in(p, sizeof p, vm.run, "serial.log");
    file_tail(p, serial, sizeof serial, 2000);
    path_in(p, sizeof p, vm.run, "qemu.log");
    file_tail(p, qemu, sizeof qemu, 600);
    snprintf(vm.tail, sizeof vm.tail,
             "\n--- serial.log (tail) ---\n%s\n--- qemu output (tail) ---\n%s", serial, qemu);
    return vm.tail;
}

/* "key=value" from the guest's manifest. */
static int manifest_get(const char *key, char *out, size_t outlen)
{
    char p[600], line[512];
    path_in(p, sizeof p, vm.guest, "manifest");
    FILE *f = fopen(p, "re");
    if (!f)
        return -errno;
    size_t kl = strlen(key);
    int rc = -ENOENT;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, kl) == 0 && line[kl] == '=') {
            line[strcspn(line, "\r\n")] = '\0';
            snprintf(out, outlen, "%s", line + kl + 1);
            rc = 0;
            break;
        }
    }
    fclose(f);
    return rc;
}

static int free_tcp_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    cr_assert(bind(fd, (struct sockaddr *)&a, sizeof a) == 0, "bind: %s", strerror(errno));
    cr_assert(getsockname(fd, (struct sockaddr *)&a, &al) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* In s, does some "key" have exactly the JSON token val as its value?
 * Tolerates any whitespace around ':'; enough for QEMU's flat replies. */
static int json_has(const char *s, const char *key, const char *val)
{
    char k[128];
    snprintf(k, sizeof k, "\"%s\"", key);
    size_t vl = strlen(val);
    for (const char *p = strstr(s, k); p; p = strstr(p + 1, k)) {
        const char *q = p + strlen(k);
        while (isspace((unsigned char)*q))
            q++;
        if (*q++ != ':')
            continue;
        while (isspace((unsigned char)*q))
            q++;
        if (strncmp(q, val, vl) == 0 && !isalnum((unsigned char)q[vl]))
            return 1;
    }
    return 0;
}

/* --------------------------------------------------- line-based sockets */

static int conn_open(conn_t *c, const char *path, double deadline)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof a.sun_path)
        return -ENAMETOOLONG;
    strcpy(a.sun_path, path);
    c->len = 0;
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -errno;
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
            c->fd = fd;
            return 0;
        }
        int e = errno;
        close(fd);
        /* QEMU creates the listening socket shortly after it starts. */
        if ((e != ENOENT && e != ECONNREFUSED) || tu_now_ms() > deadline)
            return -e;
        usleep(20000);
    }
}

static void conn_close(conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->len = 0;
}

static int conn_send(conn_t *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Read more bytes into c->buf, waiting until deadline at most. */
static int conn_fill(conn_t *c, double deadline)
{
    if (c->len == sizeof c->buf)
        return -EMSGSIZE;
    int ms = (int)(deadline - tu_now_ms());
    if (ms <= 0)
        return -ETIMEDOUT;
    struct pollfd p = { .fd = c->fd, .events = POLLIN };
    int r = poll(&p, 1, ms);
    if (r == 0)
        return -ETIMEDOUT;
    if (r < 0)
        return errno == EINTR ? 0 : -errno;
    ssize_t n = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
    if (n == 0)
        return -EPIPE;
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 0 : -errno;
    c->len += (size_t)n;
    return 0;
}

/* One '\n'-terminated line, without the line end, into out (truncated to
 * outlen). 0, -ETIMEDOUT, -EPIPE at EOF, or another -errno. */
static int conn_line(conn_t *c, char *out, size_t outlen, double deadline)
{
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl) {
            size_t n = (size_t)(nl - c->buf);
            size_t keep = n < outlen - 1 ? n : outlen - 1;
            memcpy(out, c->buf, keep);
            out[keep] = '\0';
            if (keep > 0 && out[keep - 1] == '\r')
                out[keep - 1] = '\0';
            c->len -= n + 1;
            memmove(c->buf, nl + 1, c->len);
            return 0;
        }
        int r = conn_fill(c, deadline);
        if (r < 0)
            return r;
    }
}

/* ------------------------------------------------------------------ QMP */

static void qmp_note_event(const char *line)
{
    if (json_has(line, "event", "\"VSERPORT_CHANGE\"") && json_has(line, "id", "\"qga0port\"")
        && json_has(line, "open", "true"))
        vm.agent_open = 1;
}

/* Send one command and return its reply line (events seen on the way are
 * noted). Fails the test on timeout or an error reply. */
static void qmp_cmd(const char *cmd, char *reply, size_t replylen)
{
    int cl = (int)strcspn(cmd, "\n"); /* for messages */
    cr_assert(conn_send(&vm.qmp, cmd, strlen(cmd)) == 0, "QMP send %.*s failed%s", cl, cmd, ctx());
    double deadline = tu_now_ms() + CMD_MS;
    for (;;) {
        int r = conn_line(&vm.qmp, reply, replylen, deadline);
        cr_assert(r == 0, "QMP: no reply to %.*s: %s%s", cl, cmd, strerror(-r), ctx());
        if (strstr(reply, "\"event\"")) {
            qmp_note_event(reply);
            continue;
        }
        cr_assert(strstr(reply, "\"return\""), "QMP %.*s failed: %s%s", cl, cmd, reply, ctx());
        return;
    }
}

static void qmp_connect(void)
{
    char p[512], line[4096];
    path_in(p, sizeof p, vm.run, "qmp.sock");
    int r = conn_open(&vm.qmp, p, tu_now_ms() + 10000);
    cr_assert(r == 0, "cannot connect to QMP at %s: %s%s", p, strerror(-r), ctx());
    r = conn_line(&vm.qmp, line, sizeof line, tu_now_ms() + CMD_MS);
    cr_assert(r == 0, "no QMP greeting: %s%s", strerror(-r), ctx());
    cr_assert(strstr(line, "\"QMP\""), "unexpected QMP greeting: %s", line);
    qmp_cmd("{\"execute\":\"qmp_capabilities\"}\n", line, sizeof line);
}

/* Writing to the agent's chardev before the guest opened its end corrupts
 * the agent's input stream, so wait for the port-open event first. */
static void wait_agent_port(void)
{
    char line[4096];
    double deadline = vm.t0 + BOOT_MS;
    while (!vm.agent_open) {
        int r = conn_line(&vm.qmp, line, sizeof line, deadline);
        cr_assert(r == 0, "guest agent port not opened within %d s: %s%s", BOOT_MS / 1000,
                  strerror(-r), ctx());
        qmp_note_event(line);
    }
}

/* ---------------------------------------------------------------- agent */

/* guest-sync-delimited: the leading 0xFF makes qemu-ga drop any partial
 * input (it answers it with a parse error), and qemu-ga puts a 0xFF before
 * its reply, so everything before that byte is stale. Of what follows only
 * the reply carrying our id counts. */
static void agent_sync(void)
{
    static int seq;
    long id = (long)getpid() * 1000 + ++seq;
    char cmd[160], line[4096], want[32];
    int n = snprintf(cmd, sizeof cmd,
                     "\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":%ld}}\n", id);
    snprintf(want, sizeof want, "%ld", id);
    cr_assert(conn_send(&vm.qga, cmd, (size_t)n) == 0, "agent send failed%s", ctx());
    double deadline = tu_now_ms() + CMD_MS;
    for (;;) {
        char *ff = memchr(vm.qga.buf, 0xff, vm.qga.len);
        if (ff) {
            vm.qga.len -= (size_t)(ff + 1 - vm.qga.buf);
            memmove(vm.qga.buf, ff + 1, vm.qga.len);
            break;
        }
        vm.qga.len = 0;
        int r = conn_fill(&vm.qga, deadline);
        cr_assert(r == 0, "agent sync: no 0xFF delimiter: %s%s", strerror(-r), ctx());
    }
    for (;;) {
        int r = conn_line(&vm.qga, line, sizeof line, deadline);
        cr_assert(r == 0, "agent sync: no reply for id %ld: %s%s", id, strerror(-r), ctx());
        if (json_has(line, "return", want))
            return;
    }
}

/* One agent command after a sync; its reply line, which must be a return. */
static void agent_cmd(const char *cmd, char *reply, size_t replylen)
{
    int cl = (int)strcspn(cmd, "\n"); /* for messages */
    cr_assert(conn_send(&vm.qga, cmd, strlen(cmd)) == 0, "agent send %.*s failed%s", cl, cmd, ctx());
    int r = conn_line(&vm.qga, reply, replylen, tu_now_ms() + CMD_MS);
    cr_assert(r == 0, "agent: no reply to %.*s: %s%s", cl, cmd, strerror(-r), ctx());
    cr_assert(strstr(reply, "\"return\""), "agent %.*s failed: %s%s", cl, cmd, reply, ctx());
}

static void agent_connect(void)
{
    char p[512];
    path_in(p, sizeof p, vm.run, "qga.sock");
    int r = conn_open(&vm.qga, p, tu_now_ms() + 5000);
    cr_assert(r == 0, "cannot connect to the agent chardev %s: %s%s", p, strerror(-r), ctx());
    agent_sync();
}

/* Does interface ifname list address addr? The agent's reply is an array of
 * {"name", "ip-addresses", ...} objects; the addresses of one interface lie
 * between its name and the next interface's "name". */
static int iface_has_addr(const char *reply, const char *ifname, const char *addr)
{
    char pat[80];
    snprintf(pat, sizeof pat, "\"%s\"", ifname);
    const char *p = strstr(reply, pat);
    if (!p)
        return 0;
    p += strlen(pat);
    const char *end = strstr(p, "\"name\"");
    snprintf(pat, sizeof pat, "\"%s\"", addr);
    const char *a = strstr(p, pat);
    return a && (!end || a < end);
}

/* ------------------------------------------------------------------ QEMU */

static void vm_start(const char *kernel)
{
    char kpath[600], ipath[600], logp[600], append[256];
    char serial[600], qmpdev[600], qgadev[600], netdev[128];
    const char *g = tu_guest_dir();

    snprintf(vm.guest, sizeof vm.guest, "%s", g);
    path_in(kpath, sizeof kpath, g, kernel);
    path_in(ipath, sizeof ipath, g, "initrd.img");
    cr_assert(access(kpath, R_OK) == 0 && access(ipath, R_OK) == 0,
              "test guest missing (%s, %s): run tools/mkguest first", kpath, ipath);
    if (manifest_get("append", append, sizeof append) != 0)
        snprintf(append, sizeof append, "console=ttyS0 quiet panic=-1");

    cr_assert(tu_mkdtemp(vm.run, sizeof vm.run, "mkguest") == 0, "mkdtemp failed");
    path_in(logp, sizeof logp, vm.run, "qemu.log");
    snprintf(serial, sizeof serial, "file:%s/serial.log", vm.run);
    snprintf(qmpdev, sizeof qmpdev, "socket,id=qmp0,path=%s/qmp.sock,server=on,wait=off", vm.run);
    snprintf(qgadev, sizeof qgadev, "socket,id=qga0,path=%s/qga.sock,server=on,wait=off", vm.run);
    vm.ssh_port = free_tcp_port();
    snprintf(netdev, sizeof netdev, "user,id=hostnet0,hostfwd=tcp:127.0.0.1:%d-:22", vm.ssh_port);

    /* machine pc, not q35: the host_connect NIC must sit at 00:1f.0, which
     * q35 gives to its ICH9 LPC bridge. */
    char *argv[] = {
        "qemu-system-x86_64", "-accel", "tcg", "-machine", "pc",
        "-m", "256", "-smp", "1", "-nodefaults", "-display", "none",
        "-kernel", kpath, "-initrd", ipath, "-append", append,
        "-serial", serial,
        "-chardev", qmpdev, "-mon", "chardev=qmp0,mode=control",
        "-device", "virtio-serial-pci,id=vser0",
        "-chardev", qgadev,
        "-device", "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0,id=qga0port",
        "-netdev", netdev,
        "-device", "e1000,netdev=hostnet0,addr=1f.0,id=host_connect",
        "-device", "e1000,id=pt_0",
        NULL,
    };

    pid_t parent = getpid();
    vm.t0 = tu_now_ms();
    vm.pid = fork();
    cr_assert(vm.pid >= 0, "fork: %s", strerror(errno));
    if (vm.pid == 0) {
        /* QEMU must not outlive a test process that crashes or is killed
         * before its fini runs. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(126);
        execvp(argv[0], argv);
        dprintf(2, "execvp %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
}

/* Wait for QEMU to exit by itself; its wait status, or -1 on timeout. */
static int vm_wait_exit(int ms)
{
    double deadline = tu_now_ms() + ms;
    int st;
    while (tu_now_ms() < deadline) {
        pid_t r = waitpid(vm.pid, &st, WNOHANG);
        if (r == vm.pid) {
            vm.pid = -1;
            return st;
        }
        if (r < 0 && errno != EINTR)
            return -1;
        usleep(20000);
    }
    return -1;
}

static void vm_cleanup(void)
{
    conn_close(&vm.qmp);
    conn_close(&vm.qga);
    if (vm.pid > 0) {
        kill(vm.pid, SIGKILL);
        waitpid(vm.pid, NULL, 0);
        vm.pid = -1;
    }
    if (vm.run[0])
        tu_rmtree(vm.run);
    vm.run[0] = '\0';
}

static void boot_to_agent(const char *kernel)
{
    vm_start(kernel);
    qmp_connect();
    wait_agent_port();
    double t_agent = tu_now_ms();
    agent_connect();
    fprintf(stderr, "test_mkguest: %s: agent port open %.1f s after QEMU start, synced %.1f s\n",
            kernel, (t_agent - vm.t0) / 1e3, (tu_now_ms() - vm.t0) / 1e3);
}

/* ------------------------------------------------------------------ SSH */

/* Log in as root/tester through the forwarded port and run cmd. Connecting
 * is retried: slirp accepts on the host port even while the guest side
 * cannot take the connection yet. Returns the exit status; out gets stdout. */
static int ssh_run(const char *cmd, char *out, size_t outlen, char *err, size_t errlen)
{
    double deadline = tu_now_ms() + SSH_MS;
    ssh_session s = NULL;
    long timeout_s = 20;
    int port = vm.ssh_port, verbosity = SSH_LOG_NOLOG, no = 0;

    for (;;) {
        s = ssh_new();
        if (!s) {
            snprintf(err, errlen, "ssh_new failed");
            return -1;
        }
        ssh_options_set(s, SSH_OPTIONS_HOST, "127.0.0.1");
        ssh_options_set(s, SSH_OPTIONS_PORT, &port);
        ssh_options_set(s, SSH_OPTIONS_USER, "root");
        ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &timeout_s);
        ssh_options_set(s, SSH_OPTIONS_LOG_VERBOSITY, &verbosity);
        ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &no);
        ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, "/dev/null");
        ssh_options_set(s, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null");
        if (ssh_connect(s) == SSH_OK) {
            /* Throwaway guest on loopback: its host key is not checked. */
            if (ssh_userauth_password(s, NULL, "tester") == SSH_AUTH_SUCCESS)
                break;
            snprintf(err, errlen, "password login failed: %s", ssh_get_error(s));
        } else {
            snprintf(err, errlen, "connect failed: %s", ssh_get_error(s));
        }
        ssh_disconnect(s);
        ssh_free(s);
        if (tu_now_ms() > deadline)
            return -1;
        usleep(500000);
    }

    int status = -1;
    size_t used = 0;
    ssh_channel ch = ssh_channel_new(s);
    if (!ch || ssh_channel_open_session(ch) != SSH_OK || ssh_channel_request_exec(ch, cmd) != SSH_OK) {
        snprintf(err, errlen, "exec %s: %s", cmd, ssh_get_error(s));
        goto out;
    }
    out[0] = '\0';
    for (;;) {
        char buf[512];
        int n = ssh_channel_read_timeout(ch, buf, sizeof buf, 0, 10000);
        if (n == SSH_ERROR) {
            snprintf(err, errlen, "read: %s", ssh_get_error(s));
            goto out;
        }
        if (n == 0 && (ssh_channel_is_eof(ch) || tu_now_ms() > deadline))
            break;
        size_t take = (size_t)n < outlen - 1 - used ? (size_t)n : outlen - 1 - used;
        memcpy(out + used, buf, take);
        used += take;
        out[used] = '\0';
    }
    status = ssh_channel_get_exit_status(ch);

    /* Debian's dropbear runs /usr/lib/sftp-server for the sftp subsystem;
     * the guest ships it so file copies over SFTP work. */
    sftp_session sf = sftp_new(s);
    if (!sf || sftp_init(sf) != SSH_OK) {
        snprintf(err, errlen, "sftp init: %s", ssh_get_error(s));
        status = -2;
    } else {
        sftp_attributes at = sftp_stat(sf, "/etc/os-release");
        if (!at) {
            snprintf(err, errlen, "sftp stat /etc/os-release failed: %d", sftp_get_error(sf));
            status = -2;
        }
        sftp_attributes_free(at);
    }
    if (sf)
        sftp_free(sf);
out:
    if (ch) {
        ssh_channel_close(ch);
        ssh_channel_free(ch);
    }
    ssh_disconnect(s);
    ssh_free(s);
    return status;
}

/* ---------------------------------------------------------------- tests */

static void setup(void)
{
    ssh_init();
}

static void teardown(void)
{
    vm_cleanup();
    ssh_finalize();
}

TestSuite(mkguest, .init = setup, .fini = teardown, .timeout = 600);

Test(mkguest, guest_is_built)
{
    char p[600];
    const char *files[] = { "vmlinuz", "initrd.img", "manifest" };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        path_in(p, sizeof p, tu_guest_dir(), files[i]);
        cr_assert(access(p, R_OK) == 0, "%s missing: run tools/mkguest (QFLEET_GUEST_DIR=%s)", p,
                  tu_guest_dir());
    }
}

/* The whole service stack, booting vmlinuz with qfleet's argv shape. */
Test(mkguest, boots_with_agent_dhcp_and_ssh)
{
    char reply[16384], kver[128], out[512], err[512];

    boot_to_agent("vmlinuz");

    /* DHCP runs in the background of the boot: poll, bounded. */
    double deadline = tu_now_ms() + DHCP_MS;
    for (;;) {
        agent_cmd("{\"execute\":\"guest-network-get-interfaces\"}\n", reply, sizeof reply);
        if (iface_has_addr(reply, "host_connect", "10.0.2.15"))
            break;
        cr_assert(tu_now_ms() < deadline, "host_connect got no 10.0.2.15 by DHCP: %s%s", reply, ctx());
        usleep(300000);
    }
    fprintf(stderr, "test_mkguest: host_connect has 10.0.2.15 %.1f s after QEMU start\n",
            (tu_now_ms() - vm.t0) / 1e3);
    cr_assert(strstr(reply, "\"eth0\""), "the pt_0 NIC should be eth0: %s", reply);

    /* guest-exec with captured output: "qfleet" is cWZsZWV0 in base64. */
    agent_cmd("{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"/bin/echo\","
              "\"arg\":[\"-n\",\"qfleet\"],\"capture-output\":true}}\n", reply, sizeof reply);
    const char *pidp = strstr(reply, "\"pid\"");
    cr_assert(pidp, "guest-exec returned no pid: %s", reply);
    long gpid = strtol(pidp + strcspn(pidp, "0123456789"), NULL, 10);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":%ld}}\n", gpid);
    deadline = tu_now_ms() + CMD_MS;
    for (;;) {
        agent_cmd(cmd, reply, sizeof reply);
        if (json_has(reply, "exited", "true"))
            break;
        cr_assert(tu_now_ms() < deadline, "guest-exec never finished: %s", reply);
        usleep(100000);
    }
    cr_assert(json_has(reply, "exitcode", "0") && json_has(reply, "out-data", "\"cWZsZWV0\""),
              "guest-exec output wrong: %s", reply);

    /* guest-file-*: write then read back "hello" (aGVsbG8=). */
    agent_cmd("{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"/tmp/qf\",\"mode\":\"w\"}}\n",
              reply, sizeof reply);
    long h = strtol(reply + strcspn(reply, "0123456789"), NULL, 10);
    snprintf(cmd, sizeof cmd,
             "{\"execute\":\"guest-file-write\",\"arguments\":{\"handle\":%ld,\"buf-b64\":\"aGVsbG8=\"}}\n", h);
    agent_cmd(cmd, reply, sizeof reply);
    cr_assert(json_has(reply, "count", "5"), "guest-file-write: %s", reply);
    snprintf(cmd, sizeof cmd, "{\"execute\":\"guest-file-close\",\"arguments\":{\"handle\":%ld}}\n", h);
    agent_cmd(cmd, reply, sizeof reply);
    agent_cmd("{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"/tmp/qf\",\"mode\":\"r\"}}\n",
              reply, sizeof reply);
    h = strtol(reply + strcspn(reply, "0123456789"), NULL, 10);
    snprintf(cmd, sizeof cmd, "{\"execute\":\"guest-file-read\",\"arguments\":{\"handle\":%ld,\"count\":64}}\n", h);
    agent_cmd(cmd, reply, sizeof reply);
    cr_assert(json_has(reply, "buf-b64", "\"aGVsbG8=\""), "guest-file-read: %s", reply);
    snprintf(cmd, sizeof cmd, "{\"execute\":\"guest-file-close\",\"arguments\":{\"handle\":%ld}}\n", h);
    agent_cmd(cmd, reply, sizeof reply);

    /* SSH login and the kernel the manifest promises. */
    cr_assert(manifest_get("kernel_version", kver, sizeof kver) == 0, "manifest has no kernel_version");
    err[0] = '\0';
    int st = ssh_run("uname -r", out, sizeof out, err, sizeof err);
    cr_assert(st == 0, "ssh root@127.0.0.1:%d 'uname -r' failed (%d): %s%s", vm.ssh_port, st, err, ctx());
    out[strcspn(out, "\r\n")] = '\0';
    cr_assert_str_eq(out, kver, "guest runs kernel %s, manifest says %s", out, kver);

    char serial[600], log[8192];
    path_in(serial, sizeof serial, vm.run, "serial.log");
    file_tail(serial, log, sizeof log, sizeof log - 1);
    cr_assert(strstr(log, "qfleet-guest: dhcp host_connect 10.0.2.15"), "no DHCP marker%s", ctx());
    cr_assert(strstr(log, "qfleet-guest: agent started"), "no agent marker%s", ctx());

    qmp_cmd("{\"execute\":\"quit\"}\n", reply, sizeof reply);
    st = vm_wait_exit(EXIT_MS);
    cr_assert(st != -1, "QEMU still running %d s after quit%s", EXIT_MS / 1000, ctx());
}

/* The decompressed kernel mkguest also ships boots by its PVH entry, and
 * guest-shutdown powers the guest off so that QEMU exits by itself. */
Test(mkguest, pvh_vmlinux_boots_and_guest_shutdown_powers_off)
{
    char pvh[64];
    snprintf(vm.guest, sizeof vm.guest, "%s", tu_guest_dir());
    cr_assert(manifest_get("kernel_pvh", pvh, sizeof pvh) == 0,
              "test guest in %s missing or without kernel_pvh: run tools/mkguest", vm.guest);
    boot_to_agent(pvh);

    /* guest-shutdown sends no reply on success: the guest powers off. */
    const char *cmd = "{\"execute\":\"guest-shutdown\"}\n";
    cr_assert(conn_send(&vm.qga, cmd, strlen(cmd)) == 0, "agent send failed%s", ctx());
    int st = vm_wait_exit(EXIT_MS);
    cr_assert(st != -1, "QEMU still running %d s after guest-shutdown%s", EXIT_MS / 1000, ctx());
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "QEMU exit status %#x after guest-shutdown%s", st, ctx());
}
