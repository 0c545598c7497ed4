/* qmpctl_login.c - the verbs people reach for first (issue 16): ssh into a
 * guest through its hostfwd port with the cfg's credentials, print where
 * its VNC display listens, and run an HMP command on its inspection
 * monitor.
 *
 * ssh: the system ssh client does the login (a real terminal, escape
 * keys, ~/.ssh/config-free and the run's own known_hosts). The password
 * never appears on a command line, in the environment or in a file: ssh is
 * pointed at qmpctl itself as its SSH_ASKPASS, and that helper fetches the
 * password from this process over a Unix socket in a private 0700
 * directory; the server answers only a peer of our uid whose parent is the
 * ssh we started, and only to a password prompt. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cfg/vm.h"
#include "base/fs.h"
#include "tools/qmpctl_int.h"

#define QMP_TIMEOUT_MS 10000
#define ASKPASS_ENV "QMPCTL_ASKPASS_SOCK"
#define ASKPASS_MAX 4   /* answers per login: ssh asks again after a wrong one */

/* ---- credentials ---- */

/* The cfg the controller loaded (controller.json) and the guest's VM
 * section in it (the registry's "vm"). Loaded again here: the registry
 * never holds a password. */
static int load_vm(const struct qc_guest *g, struct cfg_vm **vm)
{
    char path[PATH_MAX + 32], err[1024];
    snprintf(path, sizeof(path), "%s/controller.json", g->run_dir);
    size_t n;
    char *s = fs_read_file(path, 1 << 20, &n);
    json_t *c = s ? json_parse(s, n, NULL, 0) : NULL;
    free(s);
    const char *cfg = json_get_str(c, "cfg"), *sect = json_get_str(g->g, "vm");
    int rc = QC_FAIL;
    if (!cfg || !sect)
        fprintf(stderr, "%s: %s: the run does not name its cfg or the guest's VM section\n", qc_prog,
                g->name);
    else if (cfg_vm_load(cfg, sect, NULL, vm, err, sizeof(err)) < 0)
        fprintf(stderr, "%s: %s: %s\n", qc_prog, g->name, err);
    else
        rc = QC_OK;
    json_free(c);
    return rc;
}

/* ---- the askpass side ---- */

/* ssh runs qmpctl as SSH_ASKPASS with the prompt as its argument: fetch the
 * password from the qmpctl that started ssh and print it for ssh. */
static int askpass_main(const char *sock, const char *prompt)
{
    if (!prompt || !strcasestr(prompt, "password"))
        return 1; /* a host-key question or a key passphrase: not ours to answer */
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    if (strlen(sock) >= sizeof(a.sun_path))
        return 1;
    memcpy(a.sun_path, sock, strlen(sock) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        if (fd >= 0)
            close(fd);
        return 1;
    }
    char buf[4096];
    size_t len = 0;
    ssize_t k;
    while (len < sizeof(buf) && (k = read(fd, buf + len, sizeof(buf) - len)) > 0)
        len += (size_t)k;
    close(fd);
    int rc = len > 0 && fs_write_all(1, buf, len) == 0 && fs_write_all(1, "\n", 1) == 0 ? 0 : 1;
    explicit_bzero(buf, sizeof(buf));
    return rc;
}

int qc_askpass_hook(int argc, char **argv)
{
    const char *sock = getenv(ASKPASS_ENV);
    if (!sock)
        return -1;
    return askpass_main(sock, argc > 1 ? argv[1] : NULL);
}

/* ---- the serving side ---- */

struct askpass {
    char dir[PATH_MAX];
    char sock[PATH_MAX + 16];
    int lfd;
};

static int askpass_open(struct askpass *ap)
{
    const char *base = getenv("XDG_RUNTIME_DIR");
    snprintf(ap->dir, sizeof(ap->dir), "%s/qmpctl-ssh.XXXXXX", base && *base ? base : "/tmp");
    ap->lfd = -1;
    if (!mkdtemp(ap->dir)) { /* mkdtemp makes it 0700 */
        fprintf(stderr, "%s: %s: %s\n", qc_prog, ap->dir, strerror(errno));
        return QC_FAIL;
    }
    snprintf(ap->sock, sizeof(ap->sock), "%s/pw", ap->dir);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (strlen(ap->sock) < sizeof(a.sun_path))
        memcpy(a.sun_path, ap->sock, strlen(ap->sock) + 1);
    if (fd < 0 || !a.sun_path[0] || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(fd, 4) < 0) {
        fprintf(stderr, "%s: askpass socket %s: %s\n", qc_prog, ap->sock, strerror(errno));
        if (fd >= 0)
            close(fd);
        rmdir(ap->dir);
        return QC_FAIL;
    }
    ap->lfd = fd;
    return QC_OK;
}

static void askpass_close(struct askpass *ap)
{
    if (ap->lfd >= 0)
        close(ap->lfd);
    unlink(ap->sock);
    rmdir(ap->dir);
}

static long long parent_of(pid_t pid)
{
    char p[64], buf[512];
    snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
    long long ppid = -1;
    return rp && sscanf(rp + 1, " %*c %lld", &ppid) == 1 ? ppid : -1;
}

/* One connection: the password to the askpass child of our ssh, nothing to
 * anyone else. */
static void askpass_serve(int lfd, pid_t ssh, const char *password)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    struct ucred cr;
    socklen_t l = sizeof(cr);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) == 0 && cr.uid == getuid() &&
        parent_of(cr.pid) == (long long)ssh)
        (void)fs_write_all(fd, password, strlen(password));
    close(fd);
}

/* Wait for ssh, answering its askpass meanwhile. Its exit status. */
static int wait_ssh(pid_t pid, struct askpass *ap, const char *password)
{
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0), served = 0, st = 0;
    while (pfd >= 0 && ap && served < ASKPASS_MAX) {
        struct pollfd p[2] = { { .fd = pfd, .events = POLLIN }, { .fd = ap->lfd, .events = POLLIN } };
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[0].revents)
            break;
        if (p[1].revents) {
            askpass_serve(ap->lfd, pid, password);
            served++;
        }
    }
    if (pfd >= 0)
        close(pfd);
    /* A helper that comes after the last answer is refused at once rather
     * than left waiting on a socket nobody serves. */
    if (ap && ap->lfd >= 0) {
        close(ap->lfd);
        ap->lfd = -1;
    }
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ssh's argv: no config files, only the run's known_hosts for this guest
 * (the key the controller learned when it logged in), password auth only
 * when the cfg has a password. */
static char **ssh_argv(const struct qc_guest *g, const char *user, int password, int timeout_s,
                       int argc, char **argv, char *bufs, size_t buflen)
{
    char **a = calloc((size_t)argc + 32, sizeof(*a));
    if (!a)
        return NULL;
    int n = 0;
    long long port = json_get_int(g->g, "ssh_port", 0);
    char *kh = bufs, *po = bufs + buflen / 4, *cto = po + 32, *dst = bufs + buflen / 2;
    snprintf(kh, buflen / 4, "UserKnownHostsFile=%s/%s-known_hosts", g->run_dir, g->name);
    snprintf(po, 32, "%lld", port);
    snprintf(cto, 64, "ConnectTimeout=%d", timeout_s);
    snprintf(dst, buflen / 2, "%s@127.0.0.1", user);
    static char *const fixed[] = { "ssh", "-F", "/dev/null", "-o", "GlobalKnownHostsFile=/dev/null",
                                   "-o", "StrictHostKeyChecking=accept-new", "-o", "LogLevel=ERROR",
                                   NULL };
    for (int i = 0; fixed[i]; i++)
        a[n++] = fixed[i];
    a[n++] = "-o";
    a[n++] = kh;
    if (password) {
        a[n++] = "-o";
        a[n++] = "PubkeyAuthentication=no";
        a[n++] = "-o";
        a[n++] = "PreferredAuthentications=password,keyboard-interactive";
        a[n++] = "-o";
        a[n++] = "NumberOfPasswordPrompts=1";
    }
    if (timeout_s > 0) {
        a[n++] = "-o";
        a[n++] = cto;
    }
    a[n++] = "-p";
    a[n++] = po;
    a[n++] = dst;
    if (argc > 0)
        a[n++] = "--";
    for (int i = 0; i < argc; i++)
        a[n++] = argv[i];
    return a;
}

static int exec_ssh(char **av, const char *askpass_sock)
{
    char self[PATH_MAX];
    ssize_t k = askpass_sock ? readlink("/proc/self/exe", self, sizeof(self) - 1) : 0;
    if (k < 0) {
        fprintf(stderr, "%s: /proc/self/exe: %s\n", qc_prog, strerror(errno));
        return QC_FAIL;
    }
    self[k] = '\0';
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "%s: fork: %s\n", qc_prog, strerror(errno));
        return QC_FAIL;
    }
    if (pid == 0) {
        if (askpass_sock) {
            setenv("SSH_ASKPASS", self, 1);
            setenv("SSH_ASKPASS_REQUIRE", "force", 1);
            setenv(ASKPASS_ENV, askpass_sock, 1);
        }
        signal(SIGINT, SIG_DFL);
        signal(SIGQUIT, SIG_DFL);
        execvp(av[0], av);
        fprintf(stderr, "%s: ssh: %s\n", qc_prog, strerror(errno));
        _exit(127);
    }
    return (int)pid;
}

int qc_cmd_ssh(const struct qc_opts *o, const char *name, int argc, char **argv)
{
    if (o->json) {
        fprintf(stderr, "%s: ssh prints what the guest prints; --json is not for it\n"
                        "(%s ssh --help for usage)\n", qc_prog, qc_prog);
        return QC_USAGE;
    }
    struct qc_guest g;
    if (qc_guest_open(o, name, 1, &g) != QC_OK)
        return QC_FAIL;
    long long port = json_get_int(g.g, "ssh_port", 0);
    const char *st = json_get_str(g.g, "state");
    struct cfg_vm *vm = NULL;
    int rc = QC_FAIL;
    if (port <= 0)
        fprintf(stderr, "%s: %s has no SSH port (no user network with a forward in its cfg)\n",
                qc_prog, name);
    else if (qc_state_is_down(st))
        fprintf(stderr, "%s: %s is %s\n", qc_prog, name, st);
    else if (load_vm(&g, &vm) == QC_OK && !cfg_vm_info(vm)->user)
        fprintf(stderr, "%s: %s: the cfg names no login user\n", qc_prog, name);
    else if (vm)
        rc = QC_OK;
    if (rc != QC_OK) {
        cfg_vm_free(vm);
        qc_guest_close(&g);
        return rc;
    }
    const struct cfg_vm_info *vi = cfg_vm_info(vm);
    char bufs[3 * PATH_MAX];
    char **av = ssh_argv(&g, vi->user, vi->password != NULL, o->timeout_ms / 1000, argc, argv, bufs,
                         sizeof(bufs));
    struct askpass ap = { .lfd = -1 };
    if (!av || (vi->password && askpass_open(&ap) != QC_OK)) {
        free(av);
        cfg_vm_free(vm);
        qc_guest_close(&g);
        return QC_FAIL;
    }
    /* Like system(3): the terminal's signals are for ssh, and we wait. */
    struct sigaction ign = { .sa_handler = SIG_IGN }, oint, oquit;
    sigaction(SIGINT, &ign, &oint);
    sigaction(SIGQUIT, &ign, &oquit);
    int pid = exec_ssh(av, vi->password ? ap.sock : NULL);
    rc = pid > 0 ? wait_ssh(pid, vi->password ? &ap : NULL, vi->password) : QC_FAIL;
    sigaction(SIGINT, &oint, NULL);
    sigaction(SIGQUIT, &oquit, NULL);
    if (vi->password)
        askpass_close(&ap);
    free(av);
    cfg_vm_free(vm);
    qc_guest_close(&g);
    return rc;
}

/* ---- vnc ---- */

int qc_cmd_vnc(const struct qc_opts *o, const char *name)
{
    struct qc_guest g;
    if (qc_guest_open(o, name, 0, &g) != QC_OK)
        return QC_FAIL;
    const json_t *v = json_get(g.g, "vnc");
    long long disp = json_typeof(v) == JSON_INT ? json_get_int(g.g, "vnc", -1) : -1;
    int rc = QC_OK;
    if (disp < 0) {
        fprintf(stderr, "%s: %s has no VNC display (vnc is off in its cfg)\n", qc_prog, name);
        rc = QC_FAIL;
    } else if (o->json) {
        json_t *r = json_object();
        char addr[64];
        snprintf(addr, sizeof(addr), "127.0.0.1:%lld", 5900 + disp);
        json_set_str(r, "name", name);
        json_set_str(r, "host", "127.0.0.1");
        json_set_int(r, "display", disp);
        json_set_int(r, "port", 5900 + disp);
        json_set_str(r, "address", addr);
        json_set_str(r, "state", json_get_str(g.g, "state"));
        qc_print_json(r, 1);
        json_free(r);
    } else {
        /* host:port (vncviewer takes it as is; host:N would be a display) */
        printf("127.0.0.1:%lld\n", 5900 + disp);
    }
    if (rc == QC_OK && (!g.live || qc_state_is_down(json_get_str(g.g, "state"))))
        fprintf(stderr, "%s: note: %s is %s; nothing listens there now\n", qc_prog, name,
                g.live ? json_get_str(g.g, "state") : "in a finished run");
    qc_guest_close(&g);
    return rc;
}

/* ---- hmp ---- */

int qc_cmd_hmp(const struct qc_opts *o, const char *name, int argc, char **argv)
{
    if (argc < 1) {
        fprintf(stderr, "%s: hmp needs a command, e.g. 'info pci'\n(%s hmp --help for usage)\n",
                qc_prog, qc_prog);
        return QC_USAGE;
    }
    char line[4096];
    size_t off = 0;
    for (int i = 0; i < argc && off < sizeof(line); i++)
        off += (size_t)snprintf(line + off, sizeof(line) - off, "%s%s", i ? " " : "", argv[i]);
    struct qc_target t = { .what = "socket" };
    struct qc_guest g = { 0 };
    char why[600] = "";
    if (o->socket) {
        snprintf(t.sock, sizeof(t.sock), "%s", o->socket);
    } else {
        if (qc_guest_open(o, name, 1, &g) != QC_OK)
            return QC_FAIL;
        qc_guest_target(&g, &t);
    }
    json_t *args = json_object();
    json_set_str(args, "command-line", line);
    struct qc_result r = { 0 };
    if (qc_qmp_call(&t, "human-monitor-command", args, o->timeout_ms ? o->timeout_ms : QMP_TIMEOUT_MS,
                    &r) < 0 && !r.remote && !o->socket)
        qc_guest_why_gone(&g, why, sizeof(why));
    int rc = QC_FAIL;
    /* HMP ends its lines in \r\n: keep the \n only. */
    char *out = json_typeof(r.ret) == JSON_STRING ? strdup(json_str(r.ret)) : NULL;
    size_t w = 0;
    for (size_t i = 0; out && out[i]; i++)
        if (out[i] != '\r')
            out[w++] = out[i];
    if (out)
        out[w] = '\0';
    if (out && !strncmp(out, "unknown command:", 16)) {
        /* HMP says so in its output, and QMP calls that a success. */
        fprintf(stderr, "%s: %s%s%s%s", qc_prog, name ? name : "", name ? ": " : "", out,
                w && out[w - 1] == '\n' ? "" : "\n");
    } else if (out && o->json) {
        json_t *v = json_object();
        json_set_str(v, "command", line);
        json_set_str(v, "output", out);
        qc_print_json(v, 1);
        json_free(v);
        rc = QC_OK;
    } else if (out) {
        fputs(out, stdout);
        fflush(stdout);
        rc = QC_OK;
    } else {
        fprintf(stderr, "%s: %s%s%s%s%s\n", qc_prog, name ? name : "", name ? ": " : "",
                r.remote ? r.cls : "", r.remote ? ": " : "", why[0] ? why : r.desc);
    }
    free(out);
    qc_result_clear(&r);
    qc_guest_close(&g);
    return rc;
}
