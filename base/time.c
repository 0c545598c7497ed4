/* time.c - wall and monotonic milliseconds. */
#include "base/time.h"

#include <stdio.h>
#include <time.h>

long long time_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double time_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

char *time_wall_text(long long ms, const char *fmt, char *out, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!localtime_r(&t, &tm) || strftime(out, len, fmt, &tm) == 0)
        snprintf(out, len, "?");
    return out;
}
