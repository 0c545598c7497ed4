/* template.c - warm clones (fleet.h "warm clones"): template keys, the
 * save of a ready guest, a restored guest's identity, and the template
 * files of the state dir.
 *
 * STATE/templates/KEY.state is QEMU's migration stream of a stopped guest,
 * KEY.json what is known about it (docs/rundir.md). A save writes
 * KEY.state.PID-NAME.tmp (O_EXCL) and links it to KEY.state: link never
 * replaces, so of two creators the first wins and the other drops its own.
 *
 * boot.c calls in at three points of the walk (plan before launch, save
 * before the SSH login, identity after the agent sync) and is called back
 * through fleet__guest_saved / fleet__guest_identity_done; the replies
 * here check the guest is still where the step left it. */
#include "src/fleet/fleet_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/fs.h"

#define SAVE_POLL_MS 20
#define RESTORE_POLL_MS 20 /* query-status while QEMU loads a template */
#define EXEC_POLL_MS 50
#define AGENT_MS 10000
#define META_MAX (64 * 1024)

/* ---- keys ---- */

struct hash { unsigned long long h; };

static void hash_add(struct hash *k, const void *p, size_t n)
{
    const unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) { /* FNV-1a, a word at a time (kernels are big) */
        unsigned long long w;
        memcpy(&w, b + i, 8);
        k->h = (k->h ^ w) * 0x100000001b3ULL;
        k->h ^= k->h >> 29;
    }
    for (; i < n; i++)
        k->h = (k->h ^ b[i]) * 0x100000001b3ULL;
}

static int hash_file(struct hash *k, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    static unsigned char buf[1 << 16];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        hash_add(k, buf, (size_t)n);
    int rc = n < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* Contents hashes by file identity: a fleet of N guests of one VM reads
 * its kernel once, not N times, on the loop. */
#define CACHE_MAX 16
static struct cached { dev_t dev; ino_t ino; off_t size; struct timespec mtime; unsigned long long h; }
    cache[CACHE_MAX];
static int ncache;

static unsigned long long file_hash(const char *path, const struct stat *st)
{
    for (int i = 0; i < ncache; i++)
        if (cache[i].dev == st->st_dev && cache[i].ino == st->st_ino && cache[i].size == st->st_size &&
            cache[i].mtime.tv_sec == st->st_mtim.tv_sec && cache[i].mtime.tv_nsec == st->st_mtim.tv_nsec)
            return cache[i].h;
    struct hash k = { 0xcbf29ce484222325ULL };
    if (hash_file(&k, path) < 0)
        return 0;
    struct cached c = { st->st_dev, st->st_ino, st->st_size, st->st_mtim, k.h };
    cache[ncache < CACHE_MAX ? ncache++ : (int)(k.h % CACHE_MAX)] = c;
    return k.h;
}

/* argv[0] as exec would find it. */
static int which(const char *prog, char *out, size_t outlen)
{
    if (strchr(prog, '/'))
        return snprintf(out, outlen, "%s", prog), 0;
    const char *path = getenv("PATH");
    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(out, outlen, "%.*s/%s", (int)n, p, prog);
        if (access(out, X_OK) == 0)
            return 0;
        p += n + (p[n] == ':');
    }
    return -ENOENT;
}

/* An input whose identity (not contents) goes into the key and into
 * KEY.json's "inputs", so the listing can tell a stale template. */
static void add_input(json_t *inputs, struct hash *k, const char *path, int contents)
{
    struct stat st;
    json_t *o = json_object();
    json_set_str(o, "path", path);
    if (stat(path, &st) == 0) {
        long long id[4] = { (long long)st.st_size, (long long)st.st_mtim.tv_sec * 1000000000LL +
                            st.st_mtim.tv_nsec, (long long)st.st_ino, (long long)st.st_dev };
        hash_add(k, id, sizeof(id));
        json_set_int(o, "size", id[0]);
        json_set_int(o, "mtime_ns", id[1]);
        json_set_int(o, "ino", id[2]);
        if (contents) {
            unsigned long long h = file_hash(path, &st);
            hash_add(k, &h, sizeof(h));
        }
    }
    hash_add(k, path, strlen(path) + 1);
    json_append(inputs, o);
}

/* Why g's VM cannot be cloned, or NULL. */
static const char *refusal(const fguest_t *g, char *const *argv, char *buf, size_t n)
{
    const struct cfg_vm_info *vi = g->vi;
    if (vi->migrate)
        return "it waits for a migration of its own (migration key)";
    if (!vi->qga)
        return "it has no guest agent, through which a clone gets its MACs, clock and hostname";
    for (int i = 0; i < vi->nnics; i++)
        if (strcmp(vi->nics[i].backend, "user"))
            return snprintf(buf, n, "NIC %s has a %s backend: its MAC is seen on the host", vi->nics[i].id,
                            vi->nics[i].backend), buf;
    for (int i = 0; i < vi->npt; i++)
        if (vi->pt[i].host || vi->pt[i].pool || vi->pt[i].pf_pool || !strcmp(vi->pt[i].driver, "vfio-pci"))
            return snprintf(buf, n, "device %s is passed through from the host", vi->pt[i].id), buf;
    if (vi->ncrypto)
        return "it has vhost-user crypto devices";
    for (int i = 1; argv[i]; i++) {
        const char *a = argv[i], *v = argv[i + 1] ? argv[i + 1] : "";
        if (strstr(a, "vhost-user"))
            return "it has a vhost-user backend";
        if (!strcmp(a, "-incoming"))
            return "its command line has an -incoming of its own";
        if (!strncmp(a, "-hd", 3) || !strcmp(a, "-blockdev") || !strcmp(a, "-mtdblock") ||
            (!strcmp(a, "-drive") && !strstr(v, "readonly=on")))
            return snprintf(buf, n, "it has a writable disk (%s %.200s): clones would share its writes", a, v),
                   buf;
    }
    return NULL;
}

/* The key of g's VM into g->cl.key and its inputs; NULL, or why the VM
 * cannot be cloned. */
static const char *make_key(fguest_t *g, json_t *inputs, char *buf, size_t n)
{
    struct cfg_res r = g->res; /* the per-instance parts, made the same for all */
    r.run_dir = "/qfleet-template";
    r.name = g->vi->name;
    r.incoming = NULL;
    for (int k = 0; k < CFG_MAC_MAX; k++)
        snprintf(r.macs[k], sizeof(r.macs[k]), CFG_PREVIEW_MAC, k & 0xff);
    for (int k = 0; k < CFG_NIC_MAX; k++)
        r.ssh_port[k] = CFG_PREVIEW_SSH_FIRST + k;
    r.vnc = 0;
    r.migrate_port = CFG_PREVIEW_MIGRATE_FIRST;
    char **argv, err[512], bin[PATH_MAX];
    if (cfg_argv_build(g->vm, &r, &argv, err, sizeof(err)) < 0)
        return snprintf(buf, n, "%s", err), buf;
    const char *why = refusal(g, argv, buf, n);
    struct hash k = { 0xcbf29ce484222325ULL };
    for (int i = 0; !why && argv[i]; i++)
        hash_add(&k, argv[i], strlen(argv[i]) + 1);
    if (!why && which(argv[0], bin, sizeof(bin)) == 0)
        add_input(inputs, &k, bin, 0);
    for (int i = 1; !why && argv[i] && argv[i + 1]; i++) {
        const char *f = !strcmp(argv[i], "-drive") ? strstr(argv[i + 1], "file=") : NULL;
        if (f) {
            char path[PATH_MAX];
            snprintf(path, sizeof(path), "%.*s", (int)strcspn(f + 5, ","), f + 5);
            add_input(inputs, &k, path, 0);
        }
    }
    if (!why && g->vi->kernel)
        add_input(inputs, &k, g->vi->kernel, 1);
    if (!why && g->vi->initrd)
        add_input(inputs, &k, g->vi->initrd, 1);
    cfg_argv_free(argv);
    if (!why)
        snprintf(g->cl.key, sizeof(g->cl.key), "%016llx", k.h);
    return why;
}

/* ---- files ---- */

static int tdir_path(const char *state_dir, char *out, size_t outlen)
{
    char def[PATH_MAX];
    if (!state_dir) {
        int rc = alloc_state_dir_default(def, sizeof(def));
        if (rc < 0)
            return rc;
        state_dir = def;
    }
    return snprintf(out, outlen, "%s/templates", state_dir) < (int)outlen ? 0 : -ENAMETOOLONG;
}

static void tfile(const fguest_t *g, const char *key, const char *ext, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/templates/%s.%s", g->f->state_dir, key, ext);
}

/* QEMU runs an exec: URI through /bin/sh -c: the path goes in single
 * quotes, and a path that could leave them is refused. */
static int shell_safe(const char *path)
{
    for (const unsigned char *p = (const unsigned char *)path; *p; p++)
        if (*p == '\'' || *p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

static json_t *read_json(const char *path)
{
    size_t n;
    char *s = fs_read_file(path, META_MAX, &n);
    json_t *v = s ? json_parse(s, n, NULL, 0) : NULL;
    free(s);
    return v;
}

void fleet__template_event(fguest_t *g, const char *what, const char *reason, json_t *extra)
{
    json_t *ev = extra ? extra : json_object();
    json_set_int(ev, "ts_ms", time_wall_ms());
    json_set_str(ev, "run", g->f->run_id);
    json_set_str(ev, "guest", g->name);
    json_set_str(ev, "event", "template");
    json_set_str(ev, "what", what);
    json_set_str(ev, "key", g->cl.key);
    json_set(ev, "reason", reason ? json_string(reason) : json_null());
    fleet__event_write(g->f, ev);
}

void fleet__template_drop(fguest_t *g, const char *why)
{
    char path[PATH_MAX];
    tfile(g, g->cl.key, "state", path, sizeof(path));
    unlink(path);
    tfile(g, g->cl.key, "json", path, sizeof(path));
    unlink(path);
    fprintf(stderr, "qfleet: %s: template %s dropped, booting cold: %s\n", g->name, g->cl.key, why);
    fleet__template_event(g, "dropped", why, NULL);
}

/* 1 when an input recorded in meta changed since (or is gone). */
static int stale(const json_t *meta)
{
    const json_t *in = json_get(meta, "inputs");
    for (size_t i = 0; i < json_len(in); i++) {
        const json_t *o = json_at(in, i);
        struct stat st;
        const char *p = json_get_str(o, "path");
        if (!p || stat(p, &st) < 0 || json_get_int(o, "size", -1) != (long long)st.st_size ||
            json_get_int(o, "ino", -1) != (long long)st.st_ino ||
            json_get_int(o, "mtime_ns", -1) != (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec)
            return 1;
    }
    return 0;
}

/* Templates of the same cfg VM made from inputs that changed since: the
 * key they were saved under can never come again. */
static void expire_old(fguest_t *g)
{
    char dir[PATH_MAX], path[PATH_MAX * 2];
    snprintf(dir, sizeof(dir), "%s/templates", g->f->state_dir);
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n != FLEET_TKEY_LEN + 5 || strcmp(de->d_name + FLEET_TKEY_LEN, ".json") ||
            !strncmp(de->d_name, g->cl.key, FLEET_TKEY_LEN))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        json_t *m = read_json(path);
        const char *vm = json_get_str(m, "vm"), *cfg = json_get_str(m, "cfg");
        if (m && vm && cfg && !strcmp(vm, g->vi->section ? g->vi->section : g->vi->name) &&
            !strcmp(cfg, g->f->cfg_path) && stale(m)) {
            char key[FLEET_TKEY_LEN + 1];
            snprintf(key, sizeof(key), "%.*s", FLEET_TKEY_LEN, de->d_name);
            fleet_template_rm(g->f->state_dir, key, NULL, 0);
            json_t *ex = json_object();
            json_set_str(ex, "old_key", key);
            fleet__template_event(g, "expired", "an input of the old template changed", ex);
        }
        json_free(m);
    }
    if (d)
        closedir(d);
}

/* ---- plan ---- */

void fleet__clone_plan(fguest_t *g)
{
    g->cl = (struct fleet_clone){ 0 };
    if (!g->f->o.clone)
        return;
    char buf[512], path[PATH_MAX], err[256];
    json_t *inputs = json_array();
    const char *why = make_key(g, inputs, buf, sizeof(buf));
    json_free(inputs);
    int dfd = why ? -1 : fs_dir_open(g->f->state_dir, 0700, FS_DIR_PRIVATE, err, sizeof(err));
    if (!why && dfd < 0)
        why = err;
    if (dfd >= 0)
        close(dfd);
    tfile(g, g->cl.key, "state", path, sizeof(path));
    if (!why && !shell_safe(path))
        why = "the state dir's path has a quote or control character, which QEMU's exec: URI cannot take";
    if (why) {
        g->cl.key[0] = 0;
        fleet__template_event(g, "refused", why, NULL);
        return;
    }
    expire_old(g);
    char mpath[PATH_MAX];
    tfile(g, g->cl.key, "json", mpath, sizeof(mpath));
    json_t *m = access(path, R_OK) == 0 ? read_json(mpath) : NULL;
    const json_t *macs = json_get(m, "macs");
    if (!m || json_len(macs) != (size_t)g->nd.macs) {
        json_free(m);
        g->cl.save = 1; /* none yet (or half written): this guest makes one */
        return;
    }
    for (int k = 0; k < g->nd.macs; k++)
        snprintf(g->cl.tmac[k], sizeof(g->cl.tmac[k]), "%s", json_str(json_at(macs, (size_t)k)) ?: "");
    json_free(m);
    snprintf(g->cl.incoming, sizeof(g->cl.incoming), "exec:cat '%s'", path);
    g->res.incoming = g->cl.incoming;
    g->cl.restoring = 1;
    fleet__template_event(g, "restore", NULL, NULL);
}

/* ---- restore ---- */

static void restore_poll(uv_timer_t *t);

static void on_cont(qmp_t *q, const qmp_reply *r, void *data)
{
    fguest_t *g = data;
    (void)q;
    if (g->state != GS_RESTORING)
        return;
    if (r->err)
        fleet__guest_fail(g, "%s: cont after loading the template: %s", g->name, r->err->desc);
    else
        fleet__guest_migrated_in(g);
}

static void on_restore_status(qmp_t *q, const qmp_reply *r, void *data)
{
    fguest_t *g = data;
    /* An error here is QEMU dying of a bad template: on_proc_exit says so
     * with its exit status (a living QEMU that stops answering meets the
     * phase timer). */
    if (g->state != GS_RESTORING || r->err)
        return;
    const char *st = json_get_str(r->ret, "status");
    if (st && !strcmp(st, "inmigrate"))
        uv_timer_start(&g->poll_timer, restore_poll, RESTORE_POLL_MS, 0);
    else if (st && !strcmp(st, "running"))
        fleet__guest_migrated_in(g);
    else if (st && !strcmp(st, "paused")) /* saved stopped: QEMU waits for cont */
        qmp_execute(q, "cont", NULL, 0, on_cont, g);
    else
        fleet__guest_unclone(g, "QEMU is %s after loading the template", st ? st : "in an unknown state");
}

static void restore_poll(uv_timer_t *t)
{
    fguest_t *g = t->data;
    if (g->state == GS_RESTORING && g->qmp)
        qmp_execute(g->qmp, "query-status", NULL, 0, on_restore_status, g);
}

/* Nothing announces the end of an incoming migration without the events
 * capability, which -incoming URI starts too early to set: poll. */
void fleet__clone_restore_poll(fguest_t *g)
{
    uv_timer_start(&g->poll_timer, restore_poll, RESTORE_POLL_MS, 0);
}


/* ---- save ---- */

static int saving(const fguest_t *g) { return g->state == GS_PCI_MAPPED && g->cl.saving && g->qmp; }

static void on_save_cont(qmp_t *q, const qmp_reply *r, void *data)
{
    fguest_t *g = data;
    (void)q;
    if (!saving(g))
        return;
    if (r->err)
        fleet__guest_fail(g, "%s: cont after saving the template: %s", g->name, r->err->desc);
    else
        fleet__guest_saved(g);
}

/* The save is over (why NULL: it worked): the guest runs on. */
static void save_end(fguest_t *g, const char *why)
{
    unlink(g->cl.tmp);
    if (why) {
        fprintf(stderr, "qfleet: %s: saving template %s: %s\n", g->name, g->cl.key, why);
        fleet__template_event(g, "save-failed", why, NULL);
    }
    qmp_execute(g->qmp, "cont", NULL, 0, on_save_cont, g);
}

/* The stream is complete in the temporary file: put it in place. */
static void save_commit(fguest_t *g)
{
    char path[PATH_MAX], err[256];
    struct stat st;
    long long bytes = stat(g->cl.tmp, &st) == 0 ? (long long)st.st_size : -1;
    tfile(g, g->cl.key, "state", path, sizeof(path));
    if (link(g->cl.tmp, path) < 0) {
        save_end(g, errno == EEXIST ? NULL : strerror(errno)); /* EEXIST: another creator won */
        return;
    }
    json_t *m = json_object(), *macs = json_array(), *inputs = json_array();
    char buf[512];
    make_key(g, inputs, buf, sizeof(buf));
    for (int k = 0; k < g->nd.macs; k++) /* the leased ones: fixed MACs are every clone's */
        json_append(macs, json_string(g->res.macs[k]));
    long long ms = (long long)(time_mono_ms() - g->cl.t0);
    json_set_int(m, "version", 1);
    json_set_str(m, "key", g->cl.key);
    json_set_str(m, "vm", g->vi->section ? g->vi->section : g->vi->name);
    json_set_str(m, "cfg", g->f->cfg_path);
    json_set_str(m, "from", g->name);
    json_set_str(m, "run", g->f->run_id);
    json_set_int(m, "created_ms", time_wall_ms());
    json_set_int(m, "save_ms", ms);
    json_set_int(m, "bytes", bytes);
    json_set(m, "macs", macs);
    json_set(m, "inputs", inputs);
    size_t n;
    char *s = json_dump_pretty(m, &n);
    json_free(m);
    tfile(g, g->cl.key, "json", path, sizeof(path));
    int rc = s ? fs_write_atomic(path, s, n, 0600, err, sizeof(err)) : -ENOMEM;
    free(s);
    if (rc < 0) {
        tfile(g, g->cl.key, "state", path, sizeof(path));
        unlink(path);
        save_end(g, rc == -ENOMEM ? "out of memory" : err);
        return;
    }
    json_t *ex = json_object();
    json_set_int(ex, "bytes", bytes);
    json_set_int(ex, "save_ms", ms);
    fleet__template_event(g, "saved", NULL, ex);
    save_end(g, NULL);
}

static void save_poll(uv_timer_t *t);

static void on_save_query(qmp_t *q, const qmp_reply *r, void *data)
{
    fguest_t *g = data;
    (void)q;
    if (!saving(g))
        return;
    const char *st = r->err ? NULL : json_get_str(r->ret, "status");
    if (r->err)
        save_end(g, r->err->desc);
    else if (st && !strcmp(st, "completed"))
        save_commit(g);
    else if (st && (!strcmp(st, "failed") || !strcmp(st, "cancelled")))
        save_end(g, json_get_str(r->ret, "error-desc") ?: "migration failed");
    else
        uv_timer_start(&g->poll_timer, save_poll, SAVE_POLL_MS, 0);
}

static void save_poll(uv_timer_t *t)
{
    fguest_t *g = t->data;
    if (saving(g))
        qmp_execute(g->qmp, "query-migrate", NULL, 0, on_save_query, g);
}

static void on_save_migrate(qmp_t *q, const qmp_reply *r, void *data)
{
    fguest_t *g = data;
    (void)q;
    if (!saving(g))
        return;
    if (r->err)
        save_end(g, r->err->desc);
    else
        save_poll(&g->poll_timer);
}

static void on_save_stopped(qmp_t *q, const qmp_reply *r, void *data)
{
    fguest_t *g = data;
    if (!saving(g))
        return;
    if (r->err) {
        save_end(g, r->err->desc);
        return;
    }
    char uri[PATH_MAX + 32];
    snprintf(uri, sizeof(uri), "exec:cat > '%s'", g->cl.tmp);
    json_t *args = json_object();
    json_set_str(args, "uri", uri);
    qmp_execute(q, "migrate", args, 0, on_save_migrate, g);
}

/* Another guest of this fleet is saving the same template. */
static int sibling_saving(const fguest_t *g)
{
    for (size_t i = 0; i < g->f->n; i++)
        if (g->f->g[i] != g && g->f->g[i]->cl.saving && !strcmp(g->f->g[i]->cl.key, g->cl.key))
            return 1;
    return 0;
}

int fleet__template_save(fguest_t *g)
{
    char path[PATH_MAX], err[256];
    if (!g->cl.save || !g->cl.key[0] || !g->qmp)
        return 0;
    g->cl.save = 0;
    tfile(g, g->cl.key, "state", path, sizeof(path));
    if (sibling_saving(g) || access(path, F_OK) == 0)
        return 0;
    snprintf(g->cl.tmp, sizeof(g->cl.tmp), "%s/templates/%s.state.%d-%s.tmp", g->f->state_dir, g->cl.key,
             (int)getpid(), g->fname);
    snprintf(path, sizeof(path), "%s/templates", g->f->state_dir);
    int fd = fs_dir_open(path, 0700, FS_DIR_PRIVATE, err, sizeof(err));
    if (fd >= 0) {
        int tfd = fs_openat(fd, strrchr(g->cl.tmp, '/') + 1, O_WRONLY | O_CREAT | O_EXCL, 0600);
        close(fd);
        fd = tfd;
        if (fd < 0)
            snprintf(err, sizeof(err), "%s: %s", g->cl.tmp, fs_strerror(fd));
    }
    if (fd < 0 || !shell_safe(g->cl.tmp)) {
        fleet__template_event(g, "save-failed", fd < 0 ? err : "unsafe path", NULL);
        if (fd >= 0)
            close(fd), unlink(g->cl.tmp);
        return 0;
    }
    close(fd);
    g->cl.saving = 1;
    g->cl.t0 = time_mono_ms();
    /* quiesced: the walk sends nothing between net-ready and the login */
    qmp_execute(g->qmp, "stop", NULL, 0, on_save_stopped, g);
    return 1;
}

/* ---- a restored guest's identity ---- */

/* $1 hostname, then pairs OLD NEW: the NIC with MAC OLD gets NEW (a MAC
 * of a device the guest has no interface for is skipped: the net-ready
 * poll finds the control NIC by its new MAC or times out saying so). Then
 * the neighbours go, so the next packet ARPs and slirp learns NEW. */
static const char ID_SCRIPT[] =
    "h=$1; shift\n"
    "while [ $# -ge 2 ]; do\n"
    "  found=\n"
    "  for d in /sys/class/net/*; do\n"
    "    [ \"$(cat \"$d/address\" 2>/dev/null)\" = \"$1\" ] || continue\n"
    "    ip link set dev \"${d##*/}\" address \"$2\" || exit 3\n"
    "    found=1\n"
    "  done\n"
    "  [ -n \"$found\" ] || echo \"no interface has MAC $1\" >&2\n"
    "  shift 2\n"
    "done\n"
    "ip neigh flush all\n"
    "hostname \"$h\" || exit 5\n"
    "gw=$(ip route show default | sed -n 's/.*via \\([0-9.]*\\).*/\\1/p' | head -n 1)\n"
    "ping -c 1 -W 1 \"${gw:-10.0.2.2}\" >/dev/null 2>&1\n"
    "exit 0\n";

static int identifying(const fguest_t *g)
{
    return g->state == GS_AGENT_CONNECTED && g->cl.restoring && !g->cl.ided && g->agent;
}

static void exec_poll(uv_timer_t *t);

static void on_exec_status(agent_t *a, const agent_exec_result *st, const conn_err *err, void *data)
{
    fguest_t *g = data;
    (void)a;
    if (!identifying(g))
        return;
    char why[512];
    if (err) {
        snprintf(why, sizeof(why), "guest-exec-status: %s", err->desc);
        fleet__guest_identity_done(g, why);
    } else if (!st->exited) {
        uv_timer_start(&g->poll_timer, exec_poll, EXEC_POLL_MS, 0);
    } else if (st->exitcode != 0) {
        snprintf(why, sizeof(why), "setting MACs and hostname in the guest: exit %d: %.300s", st->exitcode,
                 (const char *)st->errout);
        fleet__guest_identity_done(g, why);
    } else {
        fleet__guest_identity_done(g, NULL);
    }
}

static void exec_poll(uv_timer_t *t)
{
    fguest_t *g = t->data;
    if (identifying(g))
        agent_exec_status(g->agent, g->cl.epid, AGENT_MS, on_exec_status, g);
}

static void on_exec(agent_t *a, long long pid, const conn_err *err, void *data)
{
    fguest_t *g = data;
    (void)a;
    if (!identifying(g))
        return;
    if (err) {
        char why[512];
        snprintf(why, sizeof(why), "guest-exec: %s", err->desc);
        fleet__guest_identity_done(g, why);
        return;
    }
    g->cl.epid = pid;
    exec_poll(&g->poll_timer);
}

static void run_script(fguest_t *g)
{
    const char *argv[4 + 2 * CFG_MAC_MAX + 1];
    int n = 0;
    argv[n++] = "-c";
    argv[n++] = ID_SCRIPT;
    argv[n++] = "qfleet-clone";
    argv[n++] = g->name;
    for (int k = 0; k < g->nd.macs; k++) {
        if (strcasecmp(g->cl.tmac[k], g->res.macs[k])) {
            argv[n++] = g->cl.tmac[k];
            argv[n++] = g->res.macs[k];
        }
    }
    argv[n] = NULL;
    agent_exec_opts o = { .path = "/bin/sh", .argv = argv, .capture_output = 1 };
    if (agent_exec(g->agent, &o, AGENT_MS, on_exec, g) < 0)
        fleet__guest_identity_done(g, "guest-exec could not be sent");
}

static void on_set_time(agent_t *a, const json_t *ret, const conn_err *err, void *data)
{
    fguest_t *g = data;
    (void)a;
    (void)ret;
    if (!identifying(g))
        return;
    /* qemu-ga sets the clock, then runs hwclock -w, which a guest without
     * an RTC driver may fail: the clock is set all the same. */
    if (err && !strstr(err->desc, "hwclock")) {
        char why[512];
        snprintf(why, sizeof(why), "guest-set-time: %s", err->desc);
        fleet__guest_identity_done(g, why);
        return;
    }
    run_script(g);
}

void fleet__clone_identity(fguest_t *g)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    json_t *args = json_object();
    json_set_int(args, "time", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    if (agent_execute(g->agent, "guest-set-time", args, AGENT_MS, on_set_time, g) < 0)
        fleet__guest_identity_done(g, "guest-set-time could not be sent");
}

/* ---- the templates of a state dir ---- */

json_t *fleet__template_json(const fguest_t *g)
{
    if (!g->cl.key[0])
        return json_null();
    json_t *o = json_object();
    json_set_str(o, "key", g->cl.key);
    json_set_bool(o, "restored", g->cl.restoring);
    return o;
}

const char *fguest_template(const fguest_t *g, int *restored)
{
    if (restored)
        *restored = g->cl.restoring;
    return g->cl.key;
}

json_t *fleet_templates(const char *state_dir, char *err, size_t errlen)
{
    char dir[PATH_MAX], path[PATH_MAX * 2];
    int rc = tdir_path(state_dir, dir, sizeof(dir));
    if (rc < 0)
        return snprintf(err, errlen, "templates: %s", strerror(-rc)), NULL;
    json_t *out = json_array();
    DIR *d = opendir(dir);
    if (!d && errno != ENOENT) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        json_free(out);
        return NULL;
    }
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n != FLEET_TKEY_LEN + 5 || strcmp(de->d_name + FLEET_TKEY_LEN, ".json"))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        json_t *m = read_json(path);
        if (!m)
            continue;
        struct stat st;
        snprintf(path, sizeof(path), "%s/%.*s.state", dir, FLEET_TKEY_LEN, de->d_name);
        json_t *o = json_object();
        json_set_str(o, "key", json_get_str(m, "key"));
        json_set_str(o, "vm", json_get_str(m, "vm"));
        json_set_str(o, "cfg", json_get_str(m, "cfg"));
        json_set_int(o, "bytes", stat(path, &st) == 0 ? (long long)st.st_size : -1);
        json_set_int(o, "created_ms", json_get_int(m, "created_ms", 0));
        json_set_int(o, "save_ms", json_get_int(m, "save_ms", 0));
        json_set_bool(o, "stale", stale(m));
        json_set(o, "inputs", json_copy(json_get(m, "inputs")));
        json_append(out, o);
        json_free(m);
    }
    if (d)
        closedir(d);
    return out;
}

int fleet_template_rm(const char *state_dir, const char *key, char *err, size_t errlen)
{
    char dir[PATH_MAX], path[PATH_MAX * 2];
    int rc = tdir_path(state_dir, dir, sizeof(dir));
    if (rc < 0)
        return snprintf(err, errlen, "templates: %s", strerror(-rc)), rc;
    DIR *d = opendir(dir);
    if (!d && errno != ENOENT)
        return snprintf(err, errlen, "%s: %s", dir, strerror(errno)), -errno;
    int removed = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.' || (key && strncmp(de->d_name, key, strlen(key))) ||
            (key && de->d_name[strlen(key)] != '.'))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (unlink(path) == 0 && strstr(de->d_name, ".json") && !strstr(de->d_name, ".tmp"))
            removed++;
    }
    if (d)
        closedir(d);
    if (key && !removed)
        return snprintf(err, errlen, "no template %s in %s", key, dir), -ENOENT;
    return removed;
}
