/* control.h - the controller's control socket (docs/rundir.md): requests
 * that must go through the process that owns the guests (agent commands,
 * stop, down), as newline-delimited JSON. */
#ifndef QF_CONTROL_H
#define QF_CONTROL_H

#include <stddef.h>
#include <uv.h>

#include "base/json.h"
#include "src/fleet/fleet.h"

typedef struct control control_t;
typedef void (*control_down_cb)(control_t *c, void *data);

/* Listen on path: a qmp/listener, so the socket is 0600, its directory
 * must be ours and not group/other-writable, and the path may be longer
 * than sun_path. on_down runs after a "down" request was answered. */
int control_start(uv_loop_t *loop, fleet_t *f, const char *path, control_down_cb on_down,
                  void *data, control_t **out, char *err, size_t errlen);
/* Stop listening, drop clients, unlink the socket; freed from the loop. */
void control_close(control_t *c);

/* Client side, blocking (for commands, not for the controller): send one
 * request and wait up to timeout_ms for its reply. path may be of any
 * length (listener_dial). On success *reply is the
 * whole reply object ({"return":…} or {"error":…}). 0 or -errno, reason
 * in err. */
int control_request(const char *path, const json_t *req, json_t **reply, int timeout_ms,
                    char *err, size_t errlen);

#endif
