/* time.h - the one clock helper pair: wall time for what people and files
 * read (timestamps in status, events, leases), monotonic time for durations
 * and deadlines. */
#ifndef QF_BASE_TIME_H
#define QF_BASE_TIME_H

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
long long time_wall_ms(void);
/* Milliseconds on CLOCK_MONOTONIC, with sub-millisecond precision. */
double time_mono_ms(void);

#endif
