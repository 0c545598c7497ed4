/* qfleet_fx.h - what the tests that run the real qfleet and qmpctl
 * binaries share (test_fleet, test_fleet_pci, test_migrate, test_qmpctl,
 * test_qmpctl_verbs): the run's registry (RUN_DIR/guests.json) read from
 * outside, waiting on guest states in it, SSH into a test guest, and a
 * child run to its end with its output collected. Nothing here is a fake:
 * it drives and reads the real binaries, QEMU and the test guest
 * (tools/mkguest). */
#ifndef QF_QFLEET_FX_H
#define QF_QFLEET_FX_H

#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>

#include "base/json.h"
#include "testutil.h"

/* Asserts that the test guest was built (tools/mkguest). */
void qfx_need_guest(void);

/* ---- the registry ---- */

/* The JSON file at path, parsed; NULL when it is missing or not JSON. */
json_t *qfx_read_json(const char *path);
/* RUN_DIR/guests.json, parsed; NULL while there is none. */
json_t *qfx_registry(const char *run_dir);
/* Guest name's entry in the registry, or NULL. */
json_t *qfx_guest_of(const json_t *reg, const char *name);
/* Guest name's state, "" when it has none. */
const char *qfx_state_of(const json_t *reg, const char *name);
/* Read the registry (rewritten atomically on every change) until guest
 * name (NULL: the first guest) is in one of states (NULL-terminated):
 * that registry (the caller frees it), or NULL after ms. */
json_t *qfx_wait_state(const char *run_dir, const char *name, const char *const *states, int ms);
/* Until the registry lists n guests, each ready or failed; or NULL. */
json_t *qfx_wait_settled(const char *run_dir, int n, int ms);

/* ---- the guest ---- */

/* Run cmd in the test guest over SSH (root/tester on 127.0.0.1:port), its
 * stdout (up to outlen - 1 bytes) into out: cmd's exit status. Asserts
 * that the connection, the login and the command start. */
int qfx_ssh_run(int port, const char *cmd, char *out, size_t outlen);

/* ---- children run to their end ---- */

typedef struct qfx_res {
    int rc;         /* as tu_wait_exit gives it */
    char *out, *err; /* what it printed (malloc'd, "" when nothing) */
} qfx_res;

void qfx_res_free(qfx_res *r);
/* argv = { argv0, first, the rest of ap up to NULL, last (unless NULL),
 * NULL } in at most max slots. */
void qfx_argv(char **argv, int max, const char *argv0, const char *first, va_list ap,
              const char *last);
/* Wait up to ms for child pid's exit (tu_wait_exit), then collect what it
 * printed to the files out and err. */
qfx_res qfx_collect(pid_t pid, const char *out, const char *err, int ms);
/* Send sig to *pid (a child of this process; nothing when <= 0), give it
 * ms to exit, SIGKILL it then, reap it, and set *pid to 0. */
void qfx_reap(pid_t *pid, int sig, int ms);

/* The test's qmpctl(ARGS..., NULL), returning a qfx_res, must exit with
 * rc_ and, unless want is NULL, print want on stdout (stderr when
 * want_err). */
#define QFX_EXPECT(rc_, want, want_err, ...)                                                      \
    do {                                                                                          \
        qfx_res r_ = qmpctl(__VA_ARGS__, NULL);                                                   \
        cr_assert_eq(r_.rc, rc_, "qmpctl %s: exit %d, wanted %d\nstdout: %s\nstderr: %s",         \
                     #__VA_ARGS__, r_.rc, rc_, r_.out, r_.err);                                   \
        if (want)                                                                                 \
            cr_assert(strstr(want_err ? r_.err : r_.out, want ? want : ""),                       \
                      "qmpctl %s: no '%s' in\nstdout: %s\nstderr: %s", #__VA_ARGS__, want,        \
                      r_.out, r_.err);                                                            \
        qfx_res_free(&r_);                                                                        \
    } while (0)

#endif
