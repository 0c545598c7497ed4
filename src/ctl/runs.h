/* runs.h - finding run directories of this host (docs/rundir.md). */
#ifndef QF_RUNS_H
#define QF_RUNS_H

#include <stddef.h>
#include <sys/types.h>

/* 1 if the run in dir has a live controller (pid and start time match
 * controller.json), else 0. *pid gets the recorded pid (may be NULL). */
int runs_alive(const char *dir, pid_t *pid);

/* Resolve what a user typed: a run directory path, or a run id under
 * STATE/runs. state_dir NULL: the host default. 0 or -ENOENT with err. */
int runs_resolve(const char *state_dir, const char *what, char *out, size_t outlen, char *err,
                 size_t errlen);

/* The live run with the newest start, or -ENOENT. */
int runs_latest(const char *state_dir, char *out, size_t outlen, char *err, size_t errlen);

/* Call fn for every run directory (live ones only if live_only), newest
 * first. Returns how many were visited or -errno. */
int runs_each(const char *state_dir, int live_only, void (*fn)(const char *dir, void *data),
              void *data, char *err, size_t errlen);

#endif
