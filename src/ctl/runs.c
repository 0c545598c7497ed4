/* runs.c - run directories: resolve, list, and tell live from finished. */
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

int runs_resolve(const char *state_dir, const char *what, char *out, size_t outlen, char *err,
                 size_t errlen)
{
    struct stat st;
    char path[PATH_MAX];
    if (strchr(what, '/')) {
        snprintf(path, sizeof(path), "%s/controller.json", what);
        if (stat(path, &st) == 0) {
            snprintf(out, outlen, "%s", what);
            return 0;
        }
        snprintf(err, errlen, "%s is not a qfleet run directory (no controller.json)", what);
        return -ENOENT;
    }
    char sd[PATH_MAX];
    int rc = state_dir_of(state_dir, sd, sizeof(sd), err, errlen);
    if (rc < 0)
        return rc;
    snprintf(path, sizeof(path), "%s/runs/%s/controller.json", sd, what);
    if (stat(path, &st) < 0) {
        snprintf(err, errlen, "no run '%s' in %s/runs", what, sd);
        return -ENOENT;
    }
    snprintf(out, outlen, "%s/runs/%s", sd, what);
    return 0;
}

struct entry {
    char dir[PATH_MAX];
    long long started;
};

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
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    struct entry *e = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            struct entry *ne = realloc(e, cap * sizeof(*e));
            if (!ne)
                break;
            e = ne;
        }
        snprintf(e[n].dir, sizeof(e[n].dir), "%s/%s", runs, de->d_name);
        json_t *c = read_controller(e[n].dir);
        e[n].started = json_get_int(c, "started_ms", -1);
        json_free(c);
        if (e[n].started < 0 || (live_only && !runs_alive(e[n].dir, NULL)))
            continue;
        n++;
    }
    closedir(d);
    if (n)
        qsort(e, n, sizeof(*e), by_start_desc);
    for (size_t i = 0; i < n; i++)
        fn(e[i].dir, data);
    free(e);
    return (int)n;
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
