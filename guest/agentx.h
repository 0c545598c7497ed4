/* agentx.h - the guest-agent transport of guest sessions (internal). */
#ifndef QF_GUEST_AGENTX_H
#define QF_GUEST_AGENTX_H

#include "guest/internal.h"

int guest__agent_init(guest_session_t *s, const guest_opts *o);

#endif
