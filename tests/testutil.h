/* testutil.h - small helpers shared by the test binaries. */
#ifndef QF_TESTUTIL_H
#define QF_TESTUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* A fresh 0700 directory under $TMPDIR (or /tmp); path written to out. */
int tu_mkdtemp(char *out, size_t outlen, const char *tag);
/* rm -rf without a shell. */
void tu_rmtree(const char *path);
/* Directory of the test guest (vmlinuz, initrd.img): $QFLEET_GUEST_DIR or
 * the build-time default. */
const char *tu_guest_dir(void);
/* Wait until path exists, up to ms milliseconds. 0 or -ETIMEDOUT. */
int tu_wait_path(const char *path, int ms);
/* Wait up to ms for child pid: its exit status, 128+signal if killed, or
 * -1 after killing it when the time is up. */
int tu_wait_exit(pid_t pid, int ms);
/* 1 if pid runs (exists and is not a zombie). */
int tu_alive(long long pid);
/* Monotonic milliseconds. */
double tu_now_ms(void);

#endif
