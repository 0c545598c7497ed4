/* runs.c - run directories: resolve, list, and tell live from finished.
 *
 * A run directory is one with a controller.json: a `qfleet up`, or one
 * suite of a `qfleet run` (STATE/runs/RUN/SUITE, the top RUN has none). */
#include "src/ctl/runs.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/json.h"
#include "src/alloc/alloc.h"
#include "base/fs.h"

static json_t *read_controller(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/controller.json", dir);
    size_t n;
    char *s = fs_read_file(path, 1 << 20, &n);
    if (!s)
        return NULL;
    json_t *v = json_parse(s, n, NULL, 0);
    free(s);
    return v;
}

int runs_alive(const char *dir, pid_t *pid)
{
    json_t *c = read_controller(dir);
    long long p = json_get_int(c, "pid", 0);
    long long start = json_get_int(c, "start_time", -1);
    json_free(c);
    if (pid)
        *pid = (pid_t)p;
    unsigned long long now;
    return p > 0 && alloc_proc_start((pid_t)p, &now) == 0 && (long long)now == start;
}

static int state_dir_of(const char *state_dir, char *out, size_t outlen, char *err, size_t errlen)
{
    if (state_dir) {
        snprintf(out, outlen, "%s", state_dir);
        return 0;
    }
    int rc = alloc_state_dir_default(out, outlen);
    if (rc < 0)
        snprintf(err, errlen, "no state dir: set QFLEET_STATE_DIR or pass --state-dir");
    return rc;
}

static int is_run(const char *dir)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof(path), "%s/controller.json", dir);
    return stat(path, &st) == 0;
}

static void name_suites(const char *top, char *out, size_t outlen)
{
    DIR *d = opendir(top);
    struct dirent *de;
    size_t off = 0;
    char dir[PATH_MAX];
    out[0] = '\0';
    while (d && (de = readdir(d)) && off < outlen) {
        snprintf(dir, sizeof(dir), "%s/%s", top, de->d_name);
        if (de->d_name[0] != '.' && is_run(dir))
            off += (size_t)snprintf(out + off, outlen - off, "%s%s", off ? ", " : "", de->d_name);
    }
    if (d)
        closedir(d);
}

/* dir, which exists, is no run: say so, naming its suites if it is the
 * top of a `qfleet run`. */
static int not_a_run(const char *dir, const char *what, char *err, size_t errlen)
{
    char suites[512];
    name_suites(dir, suites, sizeof(suites));
    if (suites[0])
        snprintf(err, errlen, "%s is a 'qfleet run' of suites; name one as %s/SUITE (%s)", what, what,
                 suites);
    else
        snprintf(err, errlen, "%s is not a qfleet run directory (no controller.json)", what);
    return -ENOENT;
}

int runs_resolve(const char *state_dir, const char *what, char *out, size_t outlen, char *err,
                 size_t errlen)
{
    struct stat st;
    char sd[PATH_MAX], dir[PATH_MAX];
    int path_only = what[0] == '/' || !strncmp(what, "./", 2) || !strncmp(what, "../", 3);
    if (strchr(what, '/') && is_run(what)) {
        snprintf(out, outlen, "%s", what);
        return 0;
    }
    if (path_only && stat(what, &st) == 0)
        return not_a_run(what, what, err, errlen);
    if (path_only) {
        snprintf(err, errlen, "%s: %s", what, strerror(errno));
        return -ENOENT;
    }
    /* A run id, or RUN/SUITE, under STATE/runs. */
    int rc = state_dir_of(state_dir, sd, sizeof(sd), err, errlen);
    if (rc < 0)
        return rc;
    snprintf(dir, sizeof(dir), "%s/runs/%s", sd, what);
    if (is_run(dir)) {
        snprintf(out, outlen, "%s", dir);
        return 0;
    }
    if (strchr(what, '/') && stat(what, &st) == 0)
        return not_a_run(what, what, err, errlen);
    if (stat(dir, &st) == 0)
        return not_a_run(dir, what, err, errlen);
    snprintf(err, errlen, "no run '%s' in %s/runs", what, sd);
    return -ENOENT;
}

struct entry {
    char dir[PATH_MAX];
    long long started;
    dev_t dev;
    ino_t ino;
};

struct list {
    struct entry *e;
    size_t n, cap;
    int live_only;
};

/* Add dir if it is a run (live, when asked) not seen under another name
 * (a --run-dir symlink). 1 if it is a run directory at all. */
static int add_run(struct list *l, const char *dir)
{
    json_t *c = read_controller(dir);
    long long started = json_get_int(c, "started_ms", -1);
    json_free(c);
    struct stat st;
    if (started < 0 || stat(dir, &st) < 0)
        return 0;
    if (l->live_only && !runs_alive(dir, NULL))
        return 1;
    for (size_t i = 0; i < l->n; i++)
        if (l->e[i].dev == st.st_dev && l->e[i].ino == st.st_ino)
            return 1;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct entry *ne = realloc(l->e, cap * sizeof(*ne));
        if (!ne)
            return 1;
        l->e = ne;
        l->cap = cap;
    }
    struct entry *e = &l->e[l->n++];
    snprintf(e->dir, sizeof(e->dir), "%s", dir);
    e->started = started;
    e->dev = st.st_dev;
    e->ino = st.st_ino;
    return 1;
}

/* The suites of a `qfleet run`: its subdirectories that are runs. */
static void add_suites(struct list *l, const char *top)
{
    DIR *d = opendir(top);
    if (!d)
        return;
    struct dirent *de;
    char dir[PATH_MAX];
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
            continue;
        snprintf(dir, sizeof(dir), "%s/%s", top, de->d_name);
        add_run(l, dir);
    }
    closedir(d);
}

static int by_start_desc(const void *a, const void *b)
{
    long long x = ((const struct entry *)a)->started, y = ((const struct entry *)b)->started;
    return x < y ? 1 : x > y ? -1 : 0;
}

int runs_each(const char *state_dir, int live_only, void (*fn)(const char *dir, void *data),
              void *data, char *err, size_t errlen)
{
    char sd[PATH_MAX], runs[PATH_MAX];
    int rc = state_dir_of(state_dir, sd, sizeof(sd), err, errlen);
    if (rc < 0)
        return rc;
    snprintf(runs, sizeof(runs), "%s/runs", sd);
    DIR *d = opendir(runs);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        rc = -errno;
        snprintf(err, errlen, "cannot read the runs of this host in %s: %s", runs, strerror(-rc));
        return rc;
    }
    struct list l = { .live_only = live_only };
    struct dirent *de;
    char dir[PATH_MAX];
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(dir, sizeof(dir), "%s/%s", runs, de->d_name);
        if (!add_run(&l, dir))
            add_suites(&l, dir);
    }
    closedir(d);
    if (l.n)
        qsort(l.e, l.n, sizeof(*l.e), by_start_desc);
    for (size_t i = 0; i < l.n; i++)
        fn(l.e[i].dir, data);
    free(l.e);
    return (int)l.n;
}

static void take_first(const char *dir, void *data)
{
    char *out = data;
    if (!out[0])
        snprintf(out, PATH_MAX, "%s", dir);
}

int runs_latest(const char *state_dir, char *out, size_t outlen, char *err, size_t errlen)
{
    char first[PATH_MAX] = "";
    int n = runs_each(state_dir, 1, take_first, first, err, errlen);
    if (n < 0)
        return n;
    if (!first[0]) {
        snprintf(err, errlen, "no running qfleet run on this host (start one with 'qfleet up')");
        return -ENOENT;
    }
    snprintf(out, outlen, "%s", first);
    return 0;
}
