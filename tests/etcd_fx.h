/* etcd_fx.h - a real etcd (3.4, Debian etcd-server) for tests: one member
 * or a 3-member cluster on 127.0.0.1 with free ports and a temp data dir,
 * each member spawned through base/proc.h on the test's loop.
 *
 * The fixture runs the loop itself while it waits (for a member to answer
 * or to exit), so it may be called between tu_run_until calls. Asserts
 * (criterion) when a member cannot start. etcd_fx_down stops every member
 * and removes the data dir; call it in the test body, and in .fini BEFORE
 * tu_loop_cleanup (running members keep the loop alive, so draining it
 * first hangs until the test's timeout and leaves the data dir). Set the
 * pointer to NULL after: etcd_fx_down(NULL) does nothing. */
#ifndef QF_ETCD_FX_H
#define QF_ETCD_FX_H

#include <stddef.h>
#include <uv.h>

#define ETCD_FX_MAX 3

typedef struct etcd_fx etcd_fx;

/* Start n members (1..3) and wait until each answers /health. NULL with
 * a reason in why when etcd is not installed (the test skips). */
etcd_fx *etcd_fx_start(uv_loop_t *loop, int n, char *why, size_t whylen);
/* "etcd://127.0.0.1:P[,127.0.0.1:P...]". */
const char *etcd_fx_store(const etcd_fx *fx);
/* "127.0.0.1:P" of member i. */
const char *etcd_fx_endpoint(const etcd_fx *fx, int i);
/* SIGKILL member i and wait for it to be gone. */
void etcd_fx_kill(etcd_fx *fx, int i);
/* SIGTERM member i (SIGKILL after 5 s) and wait for it to be gone. */
void etcd_fx_stop(etcd_fx *fx, int i);
/* Start member i again on its data dir and ports; wait until it answers
 * (a cluster member: until the cluster has a leader again). */
void etcd_fx_restart(etcd_fx *fx, int i);
/* Run the loop for ms (the fixture's members stay watched). */
void etcd_fx_spin(etcd_fx *fx, int ms);
/* The keys under prefix and their values, read from etcd directly (a
 * blocking request to a live member): n, with keys[i] and values[i]
 * malloc'd (free with etcd_fx_free_kv). -1 when no member answered. */
int etcd_fx_range(etcd_fx *fx, const char *prefix, char ***keys, char ***values);
void etcd_fx_free_kv(char **keys, char **values, int n);
/* Stop everything, remove the data dir, free fx. NULL is fine. */
void etcd_fx_down(etcd_fx *fx);

#endif
