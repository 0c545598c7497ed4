/* guest_fx.h - what test_guest and test_guest_agent share: test guests
 * (tools/mkguest) booted by the fleet itself, exactly as `qfleet up` boots
 * them, and guest-session results copied out of their callbacks. */
#ifndef QF_GUEST_FX_H
#define QF_GUEST_FX_H

#include <stddef.h>

#include <uv.h>

#include "guest/session.h"
#include "src/fleet/fleet.h"

#define TG_USER "root"
#define TG_PASSWORD "tester"

/* ---- guests ---- */

typedef struct tg_fleet {
    uv_loop_t *loop;
    fleet_t *f;
    char dir[256]; /* the fleet's state/ and run/ */
    int n;
} tg_fleet;

/* Boot n test guests vm0, vm1, ... with the fleet on loop and wait until
 * each is ready: QMP, agent synced, a DHCP address, SSH login. dir holds
 * the fleet's state and run directories. 0, or -1 with the reason (a
 * guest's failure, or the time it took) in err. No asserts: main() calls
 * it before any test runs. */
int tg_up(tg_fleet *t, uv_loop_t *loop, const char *dir, int n, char *err, size_t errlen);
/* Stop every guest and free the fleet. 0 or -1 with err. */
int tg_down(tg_fleet *t, char *err, size_t errlen);
fguest_t *tg_guest(const tg_fleet *t, int i);
/* known_hosts of guest i, as its SSH login in the fleet recorded it. */
void tg_known_hosts(const tg_fleet *t, int i, char *out, size_t outlen);

/* ---- sessions ---- */

/* A copy of one guest_result, kept past its callback. */
typedef struct res {
    int done, status, exit_code, timed_out;
    char *error, *out, *errout, *before;
    size_t out_len;
    char signal[16];
    double elapsed;
} res;

void on_res(guest_session_t *s, const guest_result *r, void *data); /* data: res */
void res_free(res *r);
void wait_flag(uv_loop_t *loop, const int *flag);
/* Close callback: sets the int at data to 1. */
void on_closed(guest_session_t *s, void *data);
void close_session(uv_loop_t *loop, guest_session_t *s);
/* SSH options for port with the test guest's login. name is copied. */
guest_opts tg_ssh_opts(const char *name, int port, const char *known_hosts);
/* Open and wait; the session is returned also when opening failed. */
guest_session_t *open_wait(uv_loop_t *loop, const guest_opts *o, res *r);
void exec_wait(uv_loop_t *loop, guest_session_t *s, const char *cmd, int ms, res *r);

/* ---- files ---- */

void rand_file(const char *path, size_t n);
int same_file(const char *a, const char *b);
void tmp_dir(char *out, size_t outlen);

#endif
