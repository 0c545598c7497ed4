/* time.h - the one clock helper pair: wall time for what people and files
 * read (timestamps in status, events, leases), monotonic time for durations
 * and deadlines. */
#ifndef QF_BASE_TIME_H
#define QF_BASE_TIME_H

#include <stddef.h>

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
long long time_wall_ms(void);
/* Milliseconds on CLOCK_MONOTONIC, with sub-millisecond precision. */
double time_mono_ms(void);
/* Wall-clock ms as local time in strftime's fmt, into out (len bytes);
 * "?" when it cannot be shown. Returns out. */
char *time_wall_text(long long ms, const char *fmt, char *out, size_t len);

#endif
