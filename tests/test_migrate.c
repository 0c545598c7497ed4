/* test_migrate.c - live migration: the lease store's MAC pairs, and
 * `qfleet migrate` end to end between two real test guests (TCG, loopback
 * migration) under the real qfleet binary. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/json.h"
#include "src/alloc/alloc.h"
#include "src/ctl/control.h"
#include "qfleet_fx.h"
#include "testutil.h"

#define QFLEET QF_BINARY_DIR "/src/qfleet"

static char dir[256], run_dir[300], state_dir[300], err[512];

static void setup_dirs(void)
{
    cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "migrate"), 0);
    snprintf(run_dir, sizeof(run_dir), "%s/run", dir);
    snprintf(state_dir, sizeof(state_dir), "%s/state", dir);
    cr_assert_eq(mkdir(state_dir, 0700), 0);
}

static void setup(void)
{
    setup_dirs();
    qfx_need_guest();
}

static void teardown(void) { tu_rmtree(dir); }

TestSuite(mac_pair, .init = setup_dirs, .fini = teardown, .timeout = 60);
TestSuite(migrate, .init = setup, .fini = teardown, .timeout = 600);

/* ---- the lease store: one MAC, two owners that are a migration pair ---- */

static alloc_owner owner(const char *name)
{
    alloc_owner o;
    cr_assert_eq(alloc_owner_init(&o, name, getpid(), err, sizeof(err)), 0, "%s", err);
    return o;
}

static int holders(alloc_store *s, const char *mac, char *tags, size_t len)
{
    alloc_lease *v;
    size_t n;
    cr_assert_eq(alloc_list(s, &v, &n, err, sizeof(err)), 0, "%s", err);
    int k = 0;
    tags[0] = '\0';
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i].kind, "mac") && !strcmp(v[i].value, mac)) {
            k++;
            snprintf(tags + strlen(tags), len - strlen(tags), "%s%s[%s]", v[i].owner,
                     v[i].flags & ALLOC_SHARED ? "+shared" : "", v[i].data);
        }
    free(v);
    return k;
}

Test(mac_pair, exactly_the_pair_shares_and_each_side_lets_go_alone)
{
    alloc_store *s;
    cr_assert_eq(alloc_store_open(&s, state_dir, NULL, err, sizeof(err)), 0, "%s", err);
    alloc_owner src = owner("run/host"), dst = owner("run/backup"), other = owner("run/other"),
                third = owner("run/third");
    char smac[MAC_STRLEN], dmac[MAC_STRLEN], mac[MAC_STRLEN], tags[512];
    cr_assert_eq(alloc_mac(s, &src, 0, "02:cc:", 0, smac, err, sizeof(err)), 0, "%s", err);
    /* the destination booted with a MAC of its own (shareable, as -incoming VMs are) */
    cr_assert_eq(alloc_mac(s, &dst, 0, "02:cc:", ALLOC_SHARED, dmac, err, sizeof(err)), 0);
    cr_assert_eq(alloc_share_mac(s, &src, 0, &dst, 0, mac, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(mac, smac);
    cr_assert_eq(holders(s, smac, tags, sizeof(tags)), 2, "%s", tags);
    cr_assert(strstr(tags, "run/host/nic0+shared[pair ") &&
              strstr(tags, "run/backup/nic0+shared[pair "), "%s", tags);
    /* the destination's own MAC went back */
    cr_assert_eq(holders(s, dmac, tags, sizeof(tags)), 0, "%s", tags);
    /* nobody else joins the pair, shareable or not */
    cr_assert_eq(alloc_reserve_mac(s, &other, 0, smac, ALLOC_SHARED, err, sizeof(err)), -EEXIST);
    cr_assert(strstr(err, "migration pair"), "%s", err);
    cr_assert_eq(alloc_reserve_mac(s, &other, 0, smac, 0, err, sizeof(err)), -EEXIST);
    cr_assert_eq(alloc_share_mac(s, &src, 0, &third, 0, mac, err, sizeof(err)), -EEXIST);
    cr_assert(strstr(err, "run/backup/nic0"), "%s", err);
    cr_assert_eq(holders(s, smac, tags, sizeof(tags)), 2, "%s", tags);
    /* a source without that NIC's MAC has nothing to share */
    cr_assert_eq(alloc_share_mac(s, &src, 5, &dst, 5, mac, err, sizeof(err)), -ENOENT);
    cr_assert_eq(alloc_share_mac(s, &src, 0, &src, 0, mac, err, sizeof(err)), -EINVAL);
    /* the source goes (migration done): the destination holds it alone */
    cr_assert_eq(alloc_release_owner(s, "run/host", err, sizeof(err)), 1);
    cr_assert_eq(holders(s, smac, tags, sizeof(tags)), 1, "%s", tags);
    /* and makes it plainly its own again */
    cr_assert_eq(alloc_reserve_mac(s, &dst, 0, smac, ALLOC_SHARED, err, sizeof(err)), 0, "%s", err);
    holders(s, smac, tags, sizeof(tags));
    cr_assert_str_eq(tags, "run/backup/nic0+shared[]");
    /* the other way round: a failed migration drops the destination; the
     * source unpairs while the destination still holds its lease */
    alloc_owner src2 = owner("run/h2"), dst2 = owner("run/b2");
    cr_assert_eq(alloc_mac(s, &src2, 0, "02:cc:", 0, smac, err, sizeof(err)), 0);
    cr_assert_eq(alloc_share_mac(s, &src2, 0, &dst2, 0, mac, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(alloc_reserve_mac(s, &src2, 0, smac, 0, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(alloc_release_owner(s, "run/b2", err, sizeof(err)), 1);
    holders(s, smac, tags, sizeof(tags));
    cr_assert_str_eq(tags, "run/h2/nic0[]");
    alloc_store_close(s);
}

/* ---- two real guests ---- */

static void write_cfg(const char *path)
{
    FILE *f = fopen(path, "w");
    cr_assert(f);
    for (int i = 0; i < 2; i++)
        fprintf(f,
                "[%s]\n"
                "cpu =\n    model=qemu64,number=1;\n"
                "mem =\n    size=256;\n"
                "kernel =\n    file=%s/vmlinux,initrd=%s/initrd.img,append=console=ttyS0 quiet "
                "panic=-1;\n"
                "login =\n    user=root,password=tester;\n"
                "net =\n    type=nic,opt_model=e1000,opt_addr=1f;\n    type=user;\n"
                "device =\n    driver=e1000,opt_id=pt_0;\n"
                "qga =\n    enable=yes;\n"
                "enable_kvm =\n    enable=no;\n%s\n",
                i ? "backup" : "host", tu_guest_dir(), tu_guest_dir(),
                i ? "migration =\n    enable=yes,listen=127.0.0.1;\n" : "");
    fclose(f);
}

/* Run QFLEET args; stdout/stderr to DIR/NAME.out, NAME.err. */
static pid_t start(char *const args[], const char *name)
{
    char out[320], errp[320];
    snprintf(out, sizeof(out), "%s/%s.out", dir, name);
    snprintf(errp, sizeof(errp), "%s/%s.err", dir, name);
    tu_child c = { .out = out, .err = errp, .state_dir = state_dir };
    return tu_start((const char *const *)args, &c);
}

/* `qfleet up` host and backup; until host is ready and backup parked. */
static pid_t up(json_t **reg_out)
{
    char cfg[320];
    snprintf(cfg, sizeof(cfg), "%s/migrate.cfg", dir);
    write_cfg(cfg);
    char *args[] = { QFLEET, "up", cfg, "host", "backup", "--run-dir", run_dir, "-q", NULL };
    pid_t pid = start(args, "up");
    double end = tu_now_ms() + 300000;
    json_t *reg = NULL;
    while (tu_now_ms() < end) {
        json_free(reg);
        reg = qfx_registry(run_dir);
        const char *h = qfx_state_of(reg, "host"), *b = qfx_state_of(reg, "backup");
        if (!strcmp(h, "failed") || !strcmp(b, "failed"))
            break;
        if (!strcmp(h, "ready") && !strcmp(b, "awaiting-migration"))
            break;
        usleep(200000);
    }
    char *e = tu_slurp_in(dir, "up.err");
    cr_assert_str_eq(qfx_state_of(reg, "host"), "ready", "%s", e);
    cr_assert_str_eq(qfx_state_of(reg, "backup"), "awaiting-migration", "%s", e);
    free(e);
    /* parked: QMP up, leases held, no agent expected */
    json_t *b = qfx_guest_of(reg, "backup");
    cr_assert(json_get_int(b, "pid", 0) > 0);
    cr_assert(json_get_int(b, "ssh_port", 0) > 0);
    cr_assert_eq(json_typeof(json_get(b, "ip")), JSON_NULL);
    *reg_out = reg;
    return pid;
}

static json_t *control(const char *guest, const char *cmd, const char *execute)
{
    char sock[400];
    snprintf(sock, sizeof(sock), "%s/control.sock", run_dir);
    json_t *req = json_object(), *rep = NULL;
    json_set_str(req, "cmd", cmd);
    json_set_str(req, "guest", guest);
    if (execute)
        json_set_str(req, "execute", execute);
    cr_assert_eq(control_request(sock, req, &rep, 30000, err, sizeof(err)), 0, "%s", err);
    json_free(req);
    return rep;
}

/* Leases whose owner contains part (with "shared" and data flags noted). */
static int leases_of(const char *part, const char *mac, int *mac_holders)
{
    alloc_store *s;
    cr_assert_eq(alloc_store_open(&s, state_dir, NULL, err, sizeof(err)), 0, "%s", err);
    alloc_lease *v;
    size_t n;
    cr_assert_eq(alloc_list(s, &v, &n, err, sizeof(err)), 0, "%s", err);
    int k = 0;
    if (mac_holders)
        *mac_holders = 0;
    for (size_t i = 0; i < n; i++) {
        k += strstr(v[i].owner, part) != NULL;
        if (mac && mac_holders && !strcmp(v[i].kind, "mac") && !strcmp(v[i].value, mac)) {
            (*mac_holders)++;
            cr_assert_str_eq(v[i].data, "", "%s still carries %s", v[i].owner, v[i].data);
        }
    }
    free(v);
    alloc_store_close(s);
    return k;
}

/* The migration lines of events.jsonl: "what" and "phase" of each. */
static void migration_events(char *out, size_t len)
{
    char p[400];
    snprintf(p, sizeof(p), "%s/events.jsonl", run_dir);
    char *s = fs_read_file(p, 1 << 24, NULL);
    cr_assert(s);
    out[0] = '\0';
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *e = json_parse(line, strlen(line), NULL, 0);
        const char *ev = json_get_str(e, "event");
        if (ev && !strcmp(ev, "migration"))
            snprintf(out + strlen(out), len - strlen(out), "%s:%s ", json_get_str(e, "what"),
                     json_get_str(e, "phase"));
        json_free(e);
    }
    free(s);
}

static void down(pid_t pid)
{
    kill(pid, SIGINT);
    cr_assert_eq(tu_wait_exit(pid, 120000), 128 + SIGINT);
    cr_assert_eq(leases_of("/", NULL, NULL), 0, "leases left after the run ended");
}

Test(migrate, file_survives_agent_answers_source_gone_name_and_mac_move)
{
    json_t *reg;
    pid_t pid = up(&reg);
    json_t *h = qfx_guest_of(reg, "host"), *b = qfx_guest_of(reg, "backup");
    long long src_pid = json_get_int(h, "pid", 0), dst_pid = json_get_int(b, "pid", 0);
    int dst_port = (int)json_get_int(b, "ssh_port", 0);
    char mac[32], out[4096];
    snprintf(mac, sizeof(mac), "%s", json_str(json_at(json_get(h, "macs"), 0)));
    cr_assert_eq(qfx_ssh_run((int)json_get_int(h, "ssh_port", 0),
                         "echo written-before-migration > /root/mark && sync", out, sizeof(out)),
                 0);
    json_free(reg);

    /* Refused before anything starts: the wrong way round, or no such guest. */
    char sock[400];
    snprintf(sock, sizeof(sock), "%s/control.sock", run_dir);
    static const char *const bad[][3] = {
        { "backup", "host", "source backup is awaiting-migration, not ready" },
        { "host", "nobody", "no destination guest named 'nobody'" },
    };
    for (int i = 0; i < 2; i++) {
        json_t *req = json_object(), *rep = NULL;
        json_set_str(req, "cmd", "migrate");
        json_set_str(req, "guest", bad[i][0]);
        json_set_str(req, "destination", bad[i][1]);
        cr_assert_eq(control_request(sock, req, &rep, 30000, err, sizeof(err)), 0, "%s", err);
        const char *desc = json_get_str(json_get(rep, "error"), "desc");
        cr_assert(desc && strstr(desc, bad[i][2]), "%s", desc ? desc : "no error");
        json_free(req);
        json_free(rep);
    }

    char *args[] = { QFLEET, "migrate", "host", "backup", "--run", run_dir, "--json",
                     "--downtime-limit", "300", "--max-bandwidth", "1000000000", NULL };
    pid_t m = start(args, "migrate");
    int rc = tu_wait_exit(m, 300000);
    char *mo = tu_slurp_in(dir, "migrate.out"), *me = tu_slurp_in(dir, "migrate.err");
    cr_assert_eq(rc, 0, "qfleet migrate: %s%s", mo, me);
    json_t *r = json_parse(mo, strlen(mo), NULL, 0);
    cr_assert(r, "not JSON: %s", mo);
    cr_assert_str_eq(json_get_str(r, "result"), "ok");
    cr_assert_str_eq(json_get_str(r, "phase"), "completed");
    cr_assert(json_get_int(r, "total_ms", 0) > 0, "%s", mo);
    cr_assert(json_get_int(r, "downtime_ms", -1) >= 0, "%s", mo);
    cr_assert(json_get_int(r, "transferred_bytes", 0) > 1 << 20, "%s", mo);
    const json_t *ph = json_get(r, "phases_ms");
    cr_assert(json_get(ph, "setup") && json_get(ph, "active") && json_get(ph, "completed"), "%s",
              mo);
    cr_assert_leq(json_get_int(ph, "setup", -1), json_get_int(ph, "completed", -1));
    /* where the destination listens: its leased migration port */
    const char *uri = json_get_str(r, "uri");
    cr_assert(uri && !strncmp(uri, "tcp:127.0.0.1:", 14) && atoi(uri + 14) >= 30000 &&
              atoi(uri + 14) <= 39999, "%s", uri ? uri : "no uri");
    json_free(r);
    free(mo);
    free(me);

    /* The guest lives on under its name in the destination's QEMU, with its MAC. */
    reg = qfx_registry(run_dir);
    h = qfx_guest_of(reg, "host");
    b = qfx_guest_of(reg, "backup");
    cr_assert_str_eq(json_get_str(h, "state"), "ready", "%s", json_get_str(h, "reason"));
    cr_assert_eq(json_get_int(h, "pid", 0), dst_pid);
    cr_assert_str_eq(json_get_str(h, "vm"), "backup");
    cr_assert_str_eq(json_get_str(h, "qmp"), "backup-qmp.sock");
    cr_assert_str_eq(json_str(json_at(json_get(h, "macs"), 0)), mac);
    cr_assert_eq(json_get_int(h, "ssh_port", 0), dst_port);
    cr_assert_str_eq(json_get_str(h, "ip"), "10.0.2.15");
    cr_assert_str_eq(json_get_str(json_get(h, "migration"), "result"), "ok");
    /* The old QEMU: stopped, gone, under the destination's old name. */
    cr_assert_str_eq(json_get_str(b, "state"), "stopped");
    cr_assert_eq(json_get_int(b, "pid", 0), src_pid);
    cr_assert(!tu_alive(src_pid), "the source QEMU %lld still runs", src_pid);
    json_free(reg);

    /* The file written before, read back over SSH on the destination. */
    cr_assert_eq(qfx_ssh_run(dst_port, "cat /root/mark", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "written-before-migration\n");
    /* The guest's NIC kept the source's MAC. */
    cr_assert_eq(qfx_ssh_run(dst_port, "cat /sys/class/net/host_connect/address", out, sizeof(out)), 0);
    cr_assert(!strncmp(out, mac, 17), "guest MAC %s, source's %s", out, mac);
    /* The agent answers through the controller. */
    json_t *rep = control("host", "qga", "guest-ping");
    cr_assert(json_get(rep, "return"), "guest-ping failed");
    json_free(rep);

    /* The MAC has one holder (the destination's lease), no pair tag; the
     * source's leases (RUN/host) are gone. */
    int holders = 0;
    leases_of("/backup", mac, &holders);
    cr_assert_eq(holders, 1);
    cr_assert_eq(leases_of("/host", NULL, NULL), 0);
    char evs[2048];
    migration_events(evs, sizeof(evs));
    cr_assert(strstr(evs, "phase:setup") && strstr(evs, "phase:active") &&
              strstr(evs, "phase:completed") && strstr(evs, "done:completed"), "%s", evs);
    down(pid);
}

Test(migrate, killed_destination_fails_naming_the_phase_source_runs_on)
{
    json_t *reg;
    pid_t pid = up(&reg);
    json_t *h = qfx_guest_of(reg, "host");
    long long dst_pid = json_get_int(qfx_guest_of(reg, "backup"), "pid", 0);
    long long src_pid = json_get_int(h, "pid", 0);
    char mac[32];
    snprintf(mac, sizeof(mac), "%s", json_str(json_at(json_get(h, "macs"), 0)));
    json_free(reg);
    /* 2 MB/s: the guest's ~80 MB take long enough to kill the destination
     * in the active phase. */
    char *args[] = { QFLEET, "migrate", "host", "backup", "--run", run_dir,
                     "--max-bandwidth", "2000000", NULL };
    pid_t m = start(args, "migrate");
    double end = tu_now_ms() + 60000;
    const char *phase = "";
    reg = NULL;
    while (tu_now_ms() < end && strcmp(phase, "active")) {
        json_free(reg);
        reg = qfx_registry(run_dir);
        phase = json_get_str(json_get(qfx_guest_of(reg, "host"), "migration"), "phase");
        phase = phase ? phase : "";
        usleep(50000);
    }
    cr_assert_str_eq(phase, "active");
    json_free(reg);
    cr_assert_eq(kill((pid_t)dst_pid, SIGKILL), 0);
    int rc = tu_wait_exit(m, 120000);
    char *me = tu_slurp_in(dir, "migrate.err");
    cr_assert_eq(rc, 1, "%s", me);
    cr_assert(strstr(me, "migration host -> backup failed in phase active"), "%s", me);
    cr_assert(strstr(me, "destination backup") && strstr(me, "SIGKILL"), "%s", me);
    free(me);

    /* The source runs on, ready, its agent answering; QEMU says running. */
    reg = qfx_registry(run_dir);
    h = qfx_guest_of(reg, "host");
    cr_assert_str_eq(json_get_str(h, "state"), "ready");
    cr_assert_eq(json_get_int(h, "pid", 0), src_pid);
    cr_assert_str_eq(json_get_str(json_get(h, "migration"), "result"), "failed");
    cr_assert_str_eq(qfx_state_of(reg, "backup"), "failed");
    json_free(reg);
    json_t *rep = control("host", "qga", "guest-ping");
    cr_assert(json_get(rep, "return"), "guest-ping failed");
    json_free(rep);
    char *qargs[] = { QF_BINARY_DIR "/tools/qmpctl", "--run-dir", run_dir, "qmp", "host",
                      "query-status", NULL };
    pid_t q = fork();
    if (q == 0) {
        char p[320];
        snprintf(p, sizeof(p), "%s/qmp.out", dir);
        int o = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(o, 1);
        execv(qargs[0], qargs);
        _exit(127);
    }
    cr_assert_eq(tu_wait_exit(q, 30000), 0);
    char *qo = tu_slurp_in(dir, "qmp.out");
    cr_assert(strstr(qo, "\"running\""), "%s", qo);
    free(qo);

    /* Nothing leaks: the destination's leases are gone, the source's MAC is
     * its own again (one holder, no pair tag). */
    int holders = 0;
    cr_assert_eq(leases_of("/backup", mac, &holders), 0);
    cr_assert_eq(holders, 1);
    down(pid);
}
