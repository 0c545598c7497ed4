/* status_int.h - what status's own files (status.c, model.c, check.c,
 * junit.c, metrics.c) share. Not for other modules.
 *
 * The calls point one way: status.c (the publisher) uses the renderers of
 * junit.c and metrics.c, which, like check.c, use only model.c. */
#ifndef QF_STATUS_INT_H
#define QF_STATUS_INT_H

#include <uv.h>

#include "src/status/status.h"

/* The publisher behind status_t: it reads the caller's model. */
struct status {
    st_run *m;
    uv_loop_t *loop;
    int evfd;
    int dirty, junit_dirty;
    int tty, quiet;
    int drawn_lines;           /* table lines on screen */
    uv_prepare_t flush;
    uv_timer_t redraw;
    int handles_open;
    status_close_cb close_cb;
    void *close_data;
    double last_draw_ms;
    double cl_refresh_ms;      /* when the cluster's figures were last due */
};

#endif
