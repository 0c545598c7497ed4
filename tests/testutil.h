/* testutil.h - small helpers shared by the test binaries. */
#ifndef QF_TESTUTIL_H
#define QF_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <uv.h>

/* A fresh 0700 directory under $TMPDIR (or /tmp); path written to out. */
int tu_mkdtemp(char *out, size_t outlen, const char *tag);
/* rm -rf without a shell. */
void tu_rmtree(const char *path);
/* Directory of the test guest (vmlinuz, initrd.img): $QFLEET_GUEST_DIR or
 * the build-time default. */
const char *tu_guest_dir(void);
/* Write path: a DTS cfg with one section [name] for the test guest: one
 * CPU, 256 MiB, the guest's kernel and initrd with the kernel command line
 * append (NULL: "console=ttyS0 quiet panic=-1"), login root/tester, net
 * (NULL: an e1000 at slot 1f on user networking), then the keys in extra
 * verbatim (NULL: none), TCG. Asserts that the guest was built. */
void tu_guest_cfg(const char *path, const char *name, const char *append, const char *net,
                  const char *extra);
/* Wait until path exists, up to ms milliseconds. 0 or -ETIMEDOUT. */
int tu_wait_path(const char *path, int ms);
/* Wait up to ms for child pid: its exit status, 128+signal if killed, or
 * -1 after killing it when the time is up. */
int tu_wait_exit(pid_t pid, int ms);
/* 1 if pid runs (exists and is not a zombie). */
int tu_alive(long long pid);
/* Monotonic milliseconds. */
double tu_now_ms(void);
/* How tu_start runs a child; zeroed fields change nothing. */
typedef struct tu_child {
    const char *out, *err;  /* stdout, stderr to these files (0600, truncated) */
    const char *state_dir;  /* QFLEET_STATE_DIR */
    const char *cwd;
    const char *const *env; /* NAME, VALUE, NAME, VALUE, ..., NULL */
    rlim_t stack, nofile;   /* RLIMIT_STACK, RLIMIT_NOFILE */
    int as_nobody;          /* as uid/gid 65534 (when root) */
} tu_child;

/* Fork and exec argv[0] (a path, or looked up in PATH) as c says (c may be
 * NULL), with stdin from /dev/null, no descriptor above 2, and SIGTERM
 * when the test process ends, so a failed assertion leaves nothing behind.
 * A child that cannot be set up exits 126; one that cannot exec, 127. */
pid_t tu_start(const char *const argv[], const tu_child *c);
/* The build's qfleet with args (NULL-terminated, without argv[0]), run in
 * dir with QFLEET_STATE_DIR=state_dir, stdout and stderr to DIR/TAG.out and
 * DIR/TAG.err; tu_run_qfleet waits up to ms for its exit status. */
pid_t tu_start_qfleet(const char *dir, const char *state_dir, const char *tag,
                      const char *const args[]);
int tu_run_qfleet(const char *dir, const char *state_dir, const char *tag,
                  const char *const args[], int ms);

/* Write text to DIR/NAME (created or truncated). */
void tu_write_in(const char *dir, const char *name, const char *text);
/* The whole file at path (at most 64 MiB), malloc'd and NUL-terminated;
 * "" (malloc'd too) when it cannot be read. The caller frees. */
char *tu_slurp(const char *path);
/* The same for DIR/NAME. */
char *tu_slurp_in(const char *dir, const char *name);

/* The JSON Lines file at path (events.jsonl) as an array, one element a
 * line; asserted: the file is there, each line parses and, unless ok is
 * NULL, ok(element) holds. The caller frees it. */
struct json *tu_read_jsonl(const char *path, int (*ok)(const struct json *e));

/* Run argv (looked up in PATH), stdout and stderr to /dev/null: its exit
 * status as tu_wait_exit gives it (10 s at most). */
int tu_run(char *const argv[]);
/* The same, waiting up to ms. */
int tu_run_ms(char *const argv[], int ms);
/* The group qfleet (base/fs.h FS_GROUP_NAME), made if missing as
 * tools/shared-store makes it (kept: a fixed name, reused): its gid. */
gid_t tu_qfleet_gid(void);

/* ---- host resources private to one test (root only) ----
 *
 * Criterion runs every test in a process of its own. These put that
 * process (and so the QEMU it starts) into namespaces of its own, so a
 * mount or a bridge made for the test is seen by nothing else on the host
 * and goes away with the process, however it ends. Each returns 0, or
 * -errno with a reason for cr_skip_test in why (not root, no support). */

/* A private mount namespace (mounts below / made private first). */
int tu_private_mounts(char *why, size_t whylen);
/* A private network namespace with lo up. */
int tu_private_net(char *why, size_t whylen);

/* A hugetlbfs of mb MiB in a private mount namespace, at h->dir. Its
 * pages come from the host's surplus pool: the overcommit limit
 * (/proc/sys/vm/nr_overcommit_hugepages) is raised while the test runs
 * and put back by tu_hugetlbfs_release; surplus pages go back to the
 * kernel as soon as QEMU unmaps them, so even a test killed before the
 * release leaves no memory reserved. Concurrent tests take turns (an
 * flock held until the release). */
typedef struct tu_huge {
    char dir[256];
    long page_kb;          /* the default huge page size */
    long old_overcommit;   /* -1 when nothing was raised */
    int lock_fd;           /* -1 when not held */
} tu_huge;
int tu_hugetlbfs(tu_huge *h, int mb, char *why, size_t whylen);
/* Pages of the mount in use now (statfs), or -1. */
long tu_hugetlbfs_used(const tu_huge *h);
/* Unmount, put the limit back, drop the lock; idempotent (for .fini). */
void tu_hugetlbfs_release(tu_huge *h);

/* ---- one libuv client under test, on a loop of its own ----
 *
 * The fixture of test_conn, test_qmp and test_agent: a loop with a 5 ms
 * tick (so tu_run_until wakes up to look at its deadline), the count of
 * the client's close callback, and the peer process (QEMU, qemu-ga) when
 * the test spawned one.
 *
 * Every test ends with tu_loop_down(): it closes the client (twice: close
 * must be idempotent), kills the peer, runs the loop dry and asserts that
 * the close callback ran exactly once and that no handle is left open.
 * Those checks live in the test body because Criterion 2.4 prints a failed
 * assert in a fixture's .fini but still passes the test. The .fini calls
 * tu_loop_cleanup(), which only releases what a failed test left behind. */
typedef struct tu_loop {
    uv_loop_t loop;
    uv_timer_t tick;
    int closed;            /* the client's close callback counts here */
    uv_process_t proc;     /* the peer, after tu_spawn */
    int proc_spawned, proc_exited, proc_signal;
    int64_t proc_status;
    int down;              /* tu_loop_down ran */
} tu_loop;

/* Closes the client under test with a close callback that counts in
 * tu_loop.closed. */
typedef void (*tu_close_fn)(void);

void tu_loop_init(tu_loop *l);
/* Run the loop until *flag is set or ms pass; returns *flag. */
int tu_run_until(tu_loop *l, const int *flag, int ms);
/* Run the loop until *counter >= n or ms pass; 1 if it got there. */
int tu_run_until_n(tu_loop *l, const int *counter, int n, int ms);
/* Run the loop for ms. */
void tu_spin(tu_loop *l, int ms);
/* Start a measurement: bring the loop's cached clock (libuv timers count
 * from it, and it is stale after work outside the loop) up to date, and
 * return tu_now_ms(). Take it before arming whatever is measured. */
double tu_clock_start(tu_loop *l);
/* Spawn argv (looked up in PATH) on the loop: stdin and stdout ignored,
 * stderr inherited. Asserts that it started. */
void tu_spawn(tu_loop *l, char *const argv[]);
/* The end of every test: see above. */
void tu_loop_down(tu_loop *l, tu_close_fn close_client);
/* For .fini: after a test that failed before tu_loop_down, close what is
 * left without asserting anything; after one that passed, a warning if
 * it never called tu_loop_down (its checks did not run). */
void tu_loop_cleanup(tu_loop *l, tu_close_fn close_client);

/* ---- a scripted peer on the other end of a socketpair ----
 *
 * test_conn, test_qmp and test_agent play the server from the test thread,
 * between turns of the client's loop. */

/* A socketpair: the test's end, non-blocking, in *peer; returns the
 * client's end (asserted). */
int tu_peer_pair(int *peer);
/* Write all of buf to peer, turning l's loop while the socket is full. */
void tu_peer_write(tu_loop *l, int peer, const void *buf, size_t len);
/* The first line ('\n') of buf[0, *len) as JSON (asserted to parse), taken
 * out of buf; NULL while buf holds no whole line. The caller frees it. */
struct json *tu_take_json_line(void *buf, size_t *len);

#endif
