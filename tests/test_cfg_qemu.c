/* test_cfg_qemu.c - QEMU accepts the generated command lines.
 *
 * Each case builds a VM from a cfg, fills the resources with previews
 * (free ports, first-fit slots), starts qemu-system-x86_64 with the argv
 * plus -S (paused; the cfgs say enable_kvm=no, so -accel tcg), asks
 * query-pci over the controller's QMP socket and checks that every qdev id
 * sits at the slot the model promised (host_connect at 00:1f.0, pt_N where
 * allocated), then quits through QMP. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cfg/argv.h"
#include "cfg/vm.h"
#include "base/json.h"
#include "testutil.h"

static char dir[256], run[512], err[1024];
static const char *qemu_log; /* of the QEMU running now, shown on failures */
static void dump_log(const char *log);

static void setup(void)
{
    cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "cfgqemu"), 0);
    snprintf(run, sizeof(run), "%s/run,dir", dir); /* a comma on purpose */
    cr_assert_eq(mkdir(run, 0700), 0);
}

static void teardown(void) { tu_rmtree(dir); }

TestSuite(qemu, .init = setup, .fini = teardown, .timeout = 120);

/* --- a small blocking QMP client ----------------------------------------- */

struct qmp {
    int fd;
    char buf[1 << 17];
    size_t len;
};

static char why[1200]; /* why qmp_read gave nothing */

static json_t *qmp_read(struct qmp *q, int ms)
{
    double end = tu_now_ms() + ms;
    for (;;) {
        char *nl = memchr(q->buf, '\n', q->len);
        if (nl) {
            size_t n = (size_t)(nl - q->buf) + 1;
            json_t *j = json_parse(q->buf, n - 1, err, sizeof(err));
            if (!j)
                snprintf(why, sizeof(why), "bad JSON (%s): %.*s", err, (int)n, q->buf);
            memmove(q->buf, q->buf + n, q->len - n);
            q->len -= n;
            return j;
        }
        int left = (int)(end - tu_now_ms());
        struct pollfd p = { q->fd, POLLIN, 0 };
        if (left <= 0 || poll(&p, 1, left) <= 0 || q->len == sizeof(q->buf)) {
            snprintf(why, sizeof(why), "timeout");
            return NULL;
        }
        ssize_t r = read(q->fd, q->buf + q->len, sizeof(q->buf) - q->len);
        if (r <= 0) {
            snprintf(why, sizeof(why), "read: %s", r ? strerror(errno) : "end of file");
            return NULL;
        }
        q->len += (size_t)r;
    }
}

/* Send cmd and return its reply (events are skipped). */
static json_t *qmp_cmd(struct qmp *q, const char *cmd)
{
    size_t n = strlen(cmd);
    cr_assert_eq(write(q->fd, cmd, n), (ssize_t)n);
    for (;;) {
        json_t *j = qmp_read(q, 20000);
        if (!j && qemu_log)
            dump_log(qemu_log);
        cr_assert_not_null(j, "no QMP reply to %s: %s", cmd, why);
        if (!json_get(j, "event"))
            return j;
        json_free(j);
    }
}

/* Connect and negotiate. 0, or -errno / -EPIPE when QEMU went away. */
static int qmp_connect(struct qmp *q, const char *path)
{
    q->len = 0;
    q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    /* the socket file appears at bind(), a moment before listen() */
    double end = tu_now_ms() + 10000;
    while (connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if ((errno != ECONNREFUSED && errno != ENOENT) || tu_now_ms() > end)
            return -errno;
        usleep(10000);
    }
    json_t *greet = qmp_read(q, 20000);
    int ok = json_get(greet, "QMP") != NULL;
    json_free(greet);
    static const char caps[] = "{\"execute\":\"qmp_capabilities\"}\n";
    if (!ok || write(q->fd, caps, sizeof(caps) - 1) != (ssize_t)sizeof(caps) - 1)
        return -EPIPE;
    json_t *r = qmp_read(q, 20000);
    ok = json_get(r, "return") != NULL;
    json_free(r);
    return ok ? 0 : -EPIPE;
}

/* --- running QEMU ------------------------------------------------------- */

struct run {
    pid_t pid;
    struct qmp q;
    json_t *pci; /* return[0].devices of query-pci */
    json_t *reply;
    char log[600];
};

static void dump_log(const char *log)
{
    char buf[4096];
    int fd = open(log, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : 0;
    buf[n > 0 ? n : 0] = 0;
    if (fd >= 0)
        close(fd);
    cr_log_error("QEMU output:\n%s", buf);
}

static int log_has(const char *log, const char *what)
{
    char buf[8192];
    int fd = open(log, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : 0;
    if (fd >= 0)
        close(fd);
    buf[n > 0 ? n : 0] = 0;
    return strstr(buf, what) != NULL;
}

/* QEMU died because a host port the preview guessed was taken meanwhile
 * (other tests on this host lease VNC displays and ports too)? */
static int port_race(const char *log)
{
    return log_has(log, "in use") || log_has(log, "host forwarding");
}

static int bindable(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* Move host ports and the display away from the ranges the fleet's own
 * tests lease from, to random free ones. */
static void pick_ports(struct cfg_vm *vm, struct cfg_res *res)
{
    static unsigned seed;
    if (!seed)
        seed = (unsigned)getpid() ^ (unsigned)tu_now_ms();
    struct cfg_needs nd;
    cfg_vm_needs(vm, &nd);
    int port = 40000 + (int)(rand_r(&seed) % 20000);
    for (int i = 0; i < nd.ports; i++) {
        while (!bindable(port))
            port++;
        res->ssh_port[i] = port++;
    }
    if (nd.migrate_port) {
        while (!bindable(port))
            port++;
        res->migrate_port = port++;
    }
    if (nd.vnc) {
        int d = 200 + (int)(rand_r(&seed) % 2000);
        while (!bindable(5900 + d))
            d++;
        res->vnc = d;
    }
}

static void reap(pid_t pid, int ms)
{
    int st;
    double end = tu_now_ms() + ms;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (tu_now_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return;
        }
        usleep(20000);
    }
}

/* 0 once QEMU answered query-pci, -EAGAIN after a port race. */
static int try_start(struct cfg_vm *vm, struct cfg_res *res, struct run *rn)
{
    char **argv;
    cr_assert_eq(cfg_argv_build(vm, res, &argv, err, sizeof(err)), 0, "build: %s", err);
    int n = 0;
    while (argv[n])
        n++;
    char **full = calloc((size_t)n + 2, sizeof(char *));
    memcpy(full, argv, sizeof(char *) * (size_t)n);
    full[n] = "-S";
    snprintf(rn->log, sizeof(rn->log), "%s/qemu.log", dir);
    qemu_log = rn->log;
    rn->pid = fork();
    cr_assert_geq(rn->pid, 0);
    if (rn->pid == 0) {
        int fd = open(rn->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp(full[0], full);
        _exit(127);
    }
    free(full);
    cfg_argv_free(argv);
    char qmp[600];
    cr_assert_eq(cfg_run_path(vm, res, CFG_RUN_QMP, qmp, sizeof(qmp)), 0);
    double end = tu_now_ms() + 30000;
    while (access(qmp, F_OK) != 0) {
        int st;
        if (waitpid(rn->pid, &st, WNOHANG) == rn->pid) {
            if (port_race(rn->log))
                return -EAGAIN;
            dump_log(rn->log);
            cr_assert_fail("QEMU exited (status %d) before its QMP socket appeared", st);
        }
        cr_assert_lt(tu_now_ms(), end, "no QMP socket %s", qmp);
        usleep(20000);
    }
    if (qmp_connect(&rn->q, qmp) < 0) {
        close(rn->q.fd);
        reap(rn->pid, 5000);
        if (port_race(rn->log))
            return -EAGAIN;
        dump_log(rn->log);
        cr_assert_fail("QMP handshake failed: %s", why);
    }
    rn->reply = qmp_cmd(&rn->q, "{\"execute\":\"query-pci\"}\n");
    rn->pci = json_get(json_at(json_get(rn->reply, "return"), 0), "devices");
    cr_assert_not_null(rn->pci, "query-pci gave no devices");
    return 0;
}

static void start(struct cfg_vm *vm, struct cfg_res *res, struct run *rn)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        pick_ports(vm, res);
        if (try_start(vm, res, rn) == 0)
            return;
        cr_log_warn("a host port was taken before QEMU bound it; trying others");
    }
    dump_log(rn->log);
    cr_assert_fail("QEMU kept losing its host ports to other processes");
}

static void stop(struct run *rn)
{
    json_t *r = qmp_cmd(&rn->q, "{\"execute\":\"quit\"}\n");
    json_free(r);
    json_free(rn->reply);
    close(rn->q.fd);
    int st = 0;
    double end = tu_now_ms() + 20000;
    while (waitpid(rn->pid, &st, WNOHANG) == 0) {
        if (tu_now_ms() > end) {
            kill(rn->pid, SIGKILL);
            waitpid(rn->pid, &st, 0);
            cr_assert_fail("QEMU did not quit");
        }
        usleep(20000);
    }
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "QEMU exit status %d", st);
}

static void expect_at(struct run *rn, const char *id, int slot, int fn)
{
    for (size_t i = 0; i < json_len(rn->pci); i++) {
        json_t *d = json_at(rn->pci, i);
        const char *q = json_get_str(d, "qdev_id");
        if (q && !strcmp(q, id)) {
            cr_assert_eq(json_get_int(d, "slot", -1), slot, "%s at slot %lld, expected %d", id,
                         json_get_int(d, "slot", -1), slot);
            cr_assert_eq(json_get_int(d, "function", -1), fn, "%s function", id);
            return;
        }
    }
    cr_assert_fail("no PCI device with id %s", id);
}

/* Every NIC and pt device where the model says, plus the fixed ones. */
static void expect_model(struct run *rn, struct cfg_vm *vm, const struct cfg_res *res)
{
    const struct cfg_vm_info *vi = cfg_vm_info(vm);
    if (vi->host_connect >= 0) {
        cr_assert_str_eq(vi->nics[vi->host_connect].id, "host_connect");
        expect_at(rn, "host_connect", 0x1f, 0);
    }
    for (int i = 0; i < vi->nnics; i++) {
        const struct cfg_nic_info *n = &vi->nics[i];
        expect_at(rn, n->id, n->slot >= 0 ? n->slot : res->pci_slot[n->slot_need], n->fn);
    }
    for (int i = 0; i < vi->npt; i++)
        expect_at(rn, vi->pt[i].id, cfg_pt_slot(&vi->pt[i], res), vi->pt[i].fn);
    if (vi->vnc != -1)
        expect_at(rn, "vga0", 2, 0);
}

static struct cfg_vm *vm_from(const char *text)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/t.cfg", dir);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    struct cfg_vm *vm;
    cr_assert_eq(cfg_vm_load(path, "vm0", NULL, &vm, err, sizeof(err)), 0, "%s", err);
    /* the cfgs leave enable_kvm at its default; KVM is not usable here */
    cr_assert_eq(cfg_vm_set(vm, "enable_kvm", "enable=no", err, sizeof(err)), 0, "%s", err);
    return vm;
}

static void run_case(const char *text, void (*more)(struct run *, struct cfg_vm *, struct cfg_res *))
{
    struct cfg_vm *vm = vm_from(text);
    struct cfg_res res;
    cr_assert_eq(cfg_res_preview(vm, run, &res, err, sizeof(err)), 0, "%s", err);
    struct run rn;
    start(vm, &res, &rn);
    expect_model(&rn, vm, &res);
    if (more)
        more(&rn, vm, &res);
    stop(&rn);
    cfg_vm_free(vm);
}

/* --- cases ---------------------------------------------------------------- */

static void has_qga(struct run *rn, struct cfg_vm *vm, struct cfg_res *res)
{
    char p[600];
    cfg_run_path(vm, res, CFG_RUN_QGA, p, sizeof(p));
    cr_assert_eq(access(p, F_OK), 0, "no guest agent socket %s", p);
    cfg_run_path(vm, res, CFG_RUN_QMP_INSPECT, p, sizeof(p));
    cr_assert_eq(access(p, F_OK), 0, "no inspection QMP socket %s", p);
    int found = 0;
    for (size_t i = 0; i < json_len(rn->pci); i++)
        found |= json_get_str(json_at(rn->pci, i), "qdev_id") &&
                 !strcmp(json_get_str(json_at(rn->pci, i), "qdev_id"), "vser0");
    cr_assert(found, "no virtio-serial for the guest agent");
}

Test(qemu, default_vm)
{
    run_case("[vm0]\nmem = size=128\n", has_qga);
}

static void has_rng(struct run *rn, struct cfg_vm *vm, struct cfg_res *res)
{
    int found = 0;
    for (size_t i = 0; i < json_len(rn->pci); i++) {
        const char *id = json_get_str(json_at(rn->pci, i), "qdev_id");
        found |= id && !strcmp(id, "rng0");
    }
    cr_assert(found, "usercmd's virtio-rng-pci is missing");
}

Test(qemu, nics_devices_disk_usercmd_migration)
{
    char img[600];
    snprintf(img, sizeof(img), "%s/disk.img", dir);
    int fd = open(img, O_WRONLY | O_CREAT, 0600);
    cr_assert_eq(ftruncate(fd, 1 << 20), 0);
    close(fd);
    run_case("[vm0]\n"
             "cpu = model=qemu64,number=2\n"
             "mem = size=256\n"
             "disk = file=disk.img,opt_format=raw,opt_if=virtio\n"
             "net =\n"
             "    type=nic,opt_addr=1f;type=user\n"
             "    type=nic,opt_model=virtio,opt_vectors=4;type=user,opt_hostfwd=::-:80\n"
             "    type=nic,opt_model=rtl8139,opt_name=pt_3,opt_addr=0x0c;type=user,opt_hostfwd=tcp::-:23\n"
             "device =\n"
             "    driver=e1000,opt_id=pt_0;\n"
             "    driver=virtio-net-pci,opt_id=pt_1,opt_addr=7,opt_legacy=off;\n"
             "    driver=e1000e,opt_id=pt_2,opt_addr=9.0;\n"
             "    driver=virtio-net-pci,opt_netdev=extra0,opt_id=extra0\n"
             "usercmd = cmd=-device virtio-rng-pci,id=rng0 -netdev user,id=extra0\n"
             "migration = enable=yes\n"
             "vnc =\n",
             has_rng);
}

Test(qemu, q35_without_vnc)
{
    run_case("[vm0]\nmachine = type=q35\nmem = size=128\nvnc = disable=yes\nqga = enable=no\n"
             "net = type=nic,opt_addr=3;type=user\n"
             "device = driver=e1000e,opt_id=pt_0\n",
             NULL);
}

/* Issue 19 item 5: two functions in one slot start only when function 0
 * says multifunction=on; QEMU refused this VM before. */
Test(qemu, two_functions_in_one_slot)
{
    run_case("[vm0]\nmem = size=128\nvnc = disable=yes\nqga = enable=no\n"
             "net = type=nic,opt_addr=05.1;type=user\n"
             "device = driver=e1000,opt_id=pt_0,opt_addr=05.0;driver=virtio-net-pci,opt_addr=5.2\n",
             NULL);
}

/* A vhost-user backend just good enough for QEMU's start-up handshake
 * (QEMU is the client and waits for it before it opens QMP). */
struct vhu {
    int lfd, stop;
    pthread_t th;
};

static void vhu_reply(int fd, uint32_t req, uint64_t val)
{
    struct __attribute__((packed)) {
        uint32_t req, flags, size;
        uint64_t val;
    } m = { req, 0x1 | 0x4, 8, val };
    (void)!write(fd, &m, sizeof(m));
}

static int vhu_serve(int fd)
{
    struct {
        uint32_t req, flags, size;
    } h;
    char cbuf[CMSG_SPACE(8 * sizeof(int))];
    struct iovec iov = { &h, sizeof(h) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                         .msg_controllen = sizeof(cbuf) };
    ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    if (n != (ssize_t)sizeof(h))
        return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_type == SCM_RIGHTS)
            for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++)
                close(((int *)CMSG_DATA(c))[i]);
    char payload[4096];
    if (h.size > sizeof(payload) || (h.size && read(fd, payload, h.size) != (ssize_t)h.size))
        return -1;
    switch (h.req) {
    case 1: /* GET_FEATURES: VIRTIO_F_VERSION_1, no protocol features */
        vhu_reply(fd, h.req, 1ull << 32);
        break;
    case 11: /* GET_VRING_BASE */
    case 15: /* GET_PROTOCOL_FEATURES */
    case 17: /* GET_QUEUE_NUM */
        vhu_reply(fd, h.req, h.req == 17 ? 1 : 0);
        break;
    }
    return 0;
}

static void *vhu_main(void *arg)
{
    struct vhu *v = arg;
    struct pollfd p[9] = { { v->lfd, POLLIN, 0 } };
    int n = 1;
    while (!v->stop) {
        if (poll(p, (nfds_t)n, 100) <= 0)
            continue;
        for (int i = n - 1; i >= 1; i--)
            if (p[i].revents && vhu_serve(p[i].fd) < 0) {
                close(p[i].fd);
                p[i] = p[--n];
            }
        if ((p[0].revents & POLLIN) && n < 9) {
            int c = accept4(v->lfd, NULL, NULL, SOCK_CLOEXEC);
            if (c >= 0)
                p[n++] = (struct pollfd){ c, POLLIN, 0 };
        }
    }
    for (int i = 1; i < n; i++)
        close(p[i].fd);
    return NULL;
}

static void vhu_start(struct vhu *v, const char *path)
{
    v->stop = 0;
    v->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    cr_assert_lt(strlen(path), sizeof(sa.sun_path));
    memcpy(sa.sun_path, path, strlen(path) + 1);
    cr_assert_eq(bind(v->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(v->lfd, 8), 0);
    pthread_create(&v->th, NULL, vhu_main, v);
}

static void vhu_stop(struct vhu *v)
{
    v->stop = 1;
    pthread_join(v->th, NULL);
    close(v->lfd);
}

Test(qemu, dts_sample_with_vhost_user)
{
    /* The DTS document's VM with hugepage=yes turned off (the mem key is
     * set again): vhost-user then gets the shared memfd backend;
     * vhost_user_on_hugepages below runs it on hugepages, as DTS does. opt_path=./vhost-net resolves against
     * the cfg's directory, where the fake backend listens. */
    char sock[600];
    snprintf(sock, sizeof(sock), "%s/vhost-net", dir);
    struct vhu v;
    vhu_start(&v, sock);
    struct cfg_vm *vm = vm_from(
        "[vm0]\n"
        "cpu =\n   model=qemu64,number=2,cpupin=24 25;\n"
        "mem =\n    size=4096,hugepage=yes;\n"
        "login =\n    user=root,password=tester;\n"
        "vnc =\n    displayNum=1;\n"
        "device =\n"
        "        driver=vhost-user,opt_path=./vhost-net,opt_mac=00:00:20:00:00:20\n"
        "        driver=vhost-user,opt_path=./vhost-net,opt_mac=00:00:20:00:00:21\n");
    cr_assert_eq(cfg_vm_set(vm, "mem", "size=256", err, sizeof(err)), 0, "%s", err);
    /* display 1 may be busy on this host: let the preview pick one */
    cr_assert_eq(cfg_vm_set(vm, "vnc", "", err, sizeof(err)), 0, "%s", err);
    struct cfg_res res;
    cr_assert_eq(cfg_res_preview(vm, run, &res, err, sizeof(err)), 0, "%s", err);
    struct run rn;
    start(vm, &res, &rn);
    expect_model(&rn, vm, &res);
    expect_at(&rn, "vhostuser0", res.pci_slot[0], 0);
    expect_at(&rn, "vhostuser1", res.pci_slot[1], 0);
    stop(&rn);
    vhu_stop(&v);
    cfg_vm_free(vm);
}

/* A hugetlbfs for one test: as root a private one (tu_hugetlbfs: its own
 * mount namespace, pages from the surplus pool), so the hugepage cases run
 * on any host the suite runs on as root, CI included; otherwise the host's
 * own mount if it has free pages for mb MiB. 0, or a reason to skip. */
static tu_huge huge = { .old_overcommit = -1, .lock_fd = -1 };

static const char *hugepages_for(int mb)
{
    static char reason[512];
    if (geteuid() == 0)
        return tu_hugetlbfs(&huge, mb, reason, sizeof(reason)) == 0 ? NULL : reason;
    char hp[1024];
    if (cfg_hugetlbfs_find(NULL, hp, sizeof(hp)) < 0)
        return "not root (a private hugetlbfs needs it) and no hugetlbfs mounted on this host";
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    long freep = 0, kb = 0;
    while (f && fgets(line, sizeof(line), f)) {
        sscanf(line, "HugePages_Free: %ld", &freep);
        sscanf(line, "Hugepagesize: %ld kB", &kb);
    }
    if (f)
        fclose(f);
    if (freep * kb < mb * 1024L) {
        snprintf(reason, sizeof(reason), "not root, and fewer than %d MiB of free huge pages "
                 "(prealloc=on would fail)", mb);
        return reason;
    }
    return NULL;
}

static void huge_fini(void)
{
    tu_hugetlbfs_release(&huge);
    teardown();
}

/* QEMU's guest memory is in the test's hugetlbfs: prealloc=on took every
 * page of it (a private mount only; the host's is shared with others). */
static void memory_in_hugetlbfs(struct run *rn, struct cfg_vm *vm, struct cfg_res *res)
{
    (void)rn;
    (void)res;
    if (!huge.dir[0])
        return;
    long want = cfg_vm_info(vm)->mem_mb * 1024L / huge.page_kb;
    cr_assert_eq(tu_hugetlbfs_used(&huge), want, "%ld huge pages of %s in use, expected %ld",
                 tu_hugetlbfs_used(&huge), huge.dir, want);
}

Test(qemu, hugepage_backend, .fini = huge_fini)
{
    const char *skip = hugepages_for(128);
    if (skip)
        cr_skip_test("%s", skip);
    run_case("[vm0]\nmem = size=128,hugepage=yes\n", memory_in_hugetlbfs);
    tu_hugetlbfs_release(&huge);
}

/* DTS's vhost-user set-up: guest memory on hugepages, shared with the
 * backend (memory-backend-file,share=on on the hugetlbfs), two vhost-user
 * NICs on one backend socket. */
Test(qemu, vhost_user_on_hugepages, .fini = huge_fini)
{
    const char *skip = hugepages_for(256);
    if (skip)
        cr_skip_test("%s", skip);
    char sock[600];
    snprintf(sock, sizeof(sock), "%s/vhost-net", dir);
    struct vhu v;
    vhu_start(&v, sock);
    struct cfg_vm *vm = vm_from(
        "[vm0]\n"
        "cpu =\n   model=qemu64,number=2;\n"
        "mem =\n    size=256,hugepage=yes;\n"
        "device =\n"
        "        driver=vhost-user,opt_path=./vhost-net,opt_mac=00:00:20:00:00:20\n"
        "        driver=vhost-user,opt_path=./vhost-net,opt_mac=00:00:20:00:00:21\n");
    struct cfg_res res;
    cr_assert_eq(cfg_res_preview(vm, run, &res, err, sizeof(err)), 0, "%s", err);
    char **argv;
    cr_assert_eq(cfg_argv_build(vm, &res, &argv, err, sizeof(err)), 0, "%s", err);
    int file_backed = 0;
    for (int i = 0; argv[i]; i++)
        file_backed |= !strncmp(argv[i], "memory-backend-file,", 20) && strstr(argv[i], ",share=on");
    cfg_argv_free(argv);
    cr_assert(file_backed, "no shared memory-backend-file in the argv");
    struct run rn;
    start(vm, &res, &rn);
    expect_model(&rn, vm, &res);
    expect_at(&rn, "vhostuser0", res.pci_slot[0], 0);
    expect_at(&rn, "vhostuser1", res.pci_slot[1], 0);
    memory_in_hugetlbfs(&rn, vm, &res);
    stop(&rn);
    vhu_stop(&v);
    cfg_vm_free(vm);
    tu_hugetlbfs_release(&huge);
}

Test(qemu, vfio_passthrough)
{
    DIR *d = opendir("/sys/bus/pci/drivers/vfio-pci");
    struct dirent *e;
    char bdf[256] = "";
    while (d && (e = readdir(d)))
        if (strchr(e->d_name, ':'))
            snprintf(bdf, sizeof(bdf), "%s", e->d_name);
    if (d)
        closedir(d);
    /* It cannot run here: this host has no IOMMU (no /dev/vfio, no IOMMU
     * groups), so nothing can be bound to vfio-pci, and QEMU does not take
     * vfio's no-IOMMU mode. The map of a vfio-pci pt_N is the same lookup
     * as any device's (test_fleet_pci); VF leasing is in test_fleet_vf. */
    if (!*bdf)
        cr_skip_test("no PCI device is bound to vfio-pci on this host (vfio-pci needs an IOMMU%s)",
                     access("/dev/vfio", F_OK) ? "; there is no /dev/vfio" : "");
    char text[512];
    snprintf(text, sizeof(text), "[vm0]\nmem = size=128\ndevice = driver=vfio-pci,opt_host=%s\n", bdf);
    run_case(text, NULL);
}

Test(qemu, tap_backend)
{
    if (geteuid() != 0 || access("/dev/net/tun", R_OK | W_OK) != 0)
        cr_skip_test("tap needs root and /dev/net/tun");
    run_case("[vm0]\nmem = size=128\n"
             "net = type=nic,opt_addr=1f;type=user;type=nic;type=tap,opt_script=no,opt_downscript=no\n",
             NULL);
}

static const char *test_bridge = "qftbr0";

/* The bridge has a port: the tap qemu-bridge-helper made for the NIC. */
static void joined_bridge(struct run *rn, struct cfg_vm *vm, struct cfg_res *res)
{
    (void)rn;
    (void)vm;
    (void)res;
    char path[128];
    snprintf(path, sizeof(path), "/sys/class/net/%s/brif", test_bridge);
    DIR *d = opendir(path);
    int ports = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        ports += e->d_name[0] != '.';
    if (d)
        closedir(d);
    cr_assert_eq(ports, 1, "%s has %d ports, expected the helper's tap", test_bridge, ports);
}

Test(qemu, bridge_backend)
{
    /* -netdev bridge runs qemu-bridge-helper, which joins only bridges
     * /etc/qemu/bridge.conf allows. The test makes its own bridge in a
     * network namespace of its own and its own bridge.conf in a mount
     * namespace of its own (over /etc/qemu): the host's network and files
     * are not touched, and both go away with the test's process. */
    char reason[512];
    if (tu_private_net(reason, sizeof(reason)) < 0 || tu_private_mounts(reason, sizeof(reason)) < 0)
        cr_skip_test("%s", reason);
    if (access("/etc/qemu", F_OK) != 0)
        cr_skip_test("no /etc/qemu to put a private bridge.conf over");
    /* the host's /sys shows the host's network namespace */
    cr_assert_eq(mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL), 0,
                 "mount sysfs: %s", strerror(errno));
    char *add[] = { "ip", "link", "add", (char *)test_bridge, "type", "bridge", NULL };
    char *up[] = { "ip", "link", "set", (char *)test_bridge, "up", NULL };
    cr_assert_eq(tu_run(add), 0, "ip link add %s type bridge", test_bridge);
    cr_assert_eq(tu_run(up), 0);
    char etc[600], conf[700];
    snprintf(etc, sizeof(etc), "%s/etc-qemu", dir);
    cr_assert_eq(mkdir(etc, 0755), 0);
    snprintf(conf, sizeof(conf), "%s/bridge.conf", etc);
    FILE *f = fopen(conf, "w");
    cr_assert(f);
    fprintf(f, "allow %s\n", test_bridge);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(mount(etc, "/etc/qemu", NULL, MS_BIND, NULL), 0, "bind %s: %s", etc, strerror(errno));
    char text[256];
    snprintf(text, sizeof(text),
             "[vm0]\nmem = size=128\nnet = type=nic,opt_addr=1f;type=user;type=nic;type=bridge,opt_br=%s\n",
             test_bridge);
    run_case(text, joined_bridge);
    umount2("/etc/qemu", MNT_DETACH);
}

Test(qemu, direct_kernel_boot)
{
    char k[600], i[600];
    snprintf(k, sizeof(k), "%s/vmlinuz", tu_guest_dir());
    snprintf(i, sizeof(i), "%s/initrd.img", tu_guest_dir());
    if (access(k, R_OK) || access(i, R_OK))
        cr_skip_test("no test guest kernel in %s (tools/mkguest builds it)", tu_guest_dir());
    char text[2048];
    snprintf(text, sizeof(text), "[vm0]\nmem = size=256\nkernel = file=%s,initrd=%s,append=console=ttyS0 quiet\n", k, i);
    run_case(text, NULL);
}

static int pci_has(struct run *rn, const char *id)
{
    for (size_t i = 0; i < json_len(rn->pci); i++) {
        const char *q = json_get_str(json_at(rn->pci, i), "qdev_id");
        if (q && !strcmp(q, id))
            return 1;
    }
    return 0;
}

Test(qemu, dts_crypto_pflash_pairs_migration)
{
    /* DTS's crypto devices are clients of a vhost-user crypto backend at
     * /tmp/NAME_cryptoN.sock: the instance name keeps this test's own. */
    char name[32], sock[2][128], flash[600];
    snprintf(name, sizeof(name), "cq%d", (int)getpid());
    struct vhu v[2];
    for (int i = 0; i < 2; i++) {
        snprintf(sock[i], sizeof(sock[i]), "/tmp/%s_crypto%d.sock", name, i);
        unlink(sock[i]);
        vhu_start(&v[i], sock[i]);
    }
    snprintf(flash, sizeof(flash), "%s/vars.fd", dir);
    int fd = open(flash, O_WRONLY | O_CREAT, 0600);
    cr_assert_eq(ftruncate(fd, 256 << 10), 0);
    close(fd);
    struct cfg_vm *vm = vm_from("[vm0]\n"
                                "mem = size=128M\n"
                                "net = type=user;type=nic,opt_model=virtio\n"
                                "crypto = enable=yes,opt_num=2\n"
                                "pflash = file=./vars.fd\n"
                                "migration = enable=yes,listen=127.0.0.1\n");
    struct cfg_res res;
    cr_assert_eq(cfg_res_preview(vm, run, &res, err, sizeof(err)), 0, "%s", err);
    res.name = name;
    char p[128];
    cr_assert_eq(cfg_crypto_path(vm, &res, 1, p, sizeof(p)), 0);
    cr_assert_str_eq(p, sock[1]);
    struct run rn;
    start(vm, &res, &rn);
    expect_model(&rn, vm, &res);
    cr_assert(pci_has(&rn, "crypto0") && pci_has(&rn, "crypto1"), "no virtio-crypto devices");
    cr_assert_eq(cfg_vm_info(vm)->control, 0); /* user first: one NIC */
    cr_assert_eq(cfg_vm_info(vm)->nnics, 1);
    stop(&rn);
    for (int i = 0; i < 2; i++) {
        vhu_stop(&v[i]);
        unlink(sock[i]);
    }
    cfg_vm_free(vm);
}
