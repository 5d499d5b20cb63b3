/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The connection state table: one row per state, in enum order. The I/O
 * direction the loop waits for is read from here, never computed ad hoc. */
#include "conn-internal.h"

const conn_state_info conn_states[_CONN_STATE_MAX] = {
        [CONN_GREETING]     = { "GREETING",     state_greeting,     DIR_NONE,  PHASE_HANDSHAKE },
        [CONN_CLIENT_FLAGS] = { "CLIENT_FLAGS", state_client_flags, DIR_READ,  PHASE_HANDSHAKE },
        [CONN_OPT_HEADER]   = { "OPT_HEADER",   state_opt_header,   DIR_READ,  PHASE_OPTIONS },
        [CONN_OPT_PAYLOAD]  = { "OPT_PAYLOAD",  state_opt_payload,  DIR_READ,  PHASE_OPTIONS },
        [CONN_OPT_DISCARD]  = { "OPT_DISCARD",  state_opt_discard,  DIR_READ,  PHASE_OPTIONS },
        [CONN_OPT_DISPATCH] = { "OPT_DISPATCH", state_opt_dispatch, DIR_NONE,  PHASE_OPTIONS },
        [CONN_OPT_WAIT]     = { "OPT_WAIT",     state_opt_wait,     DIR_READ,  PHASE_OPTIONS },
        [CONN_TLS_HANDSHAKE] = { "TLS_HANDSHAKE", state_tls_handshake, DIR_TRANSPORT, PHASE_OPTIONS },
        [CONN_REQ_HEADER]   = { "REQ_HEADER",   state_req_header,   DIR_READ,  PHASE_TRANSMISSION },
        [CONN_REQ_PAYLOAD]  = { "REQ_PAYLOAD",  state_req_payload,  DIR_READ,  PHASE_TRANSMISSION },
        [CONN_REQ_DISCARD]  = { "REQ_DISCARD",  state_req_discard,  DIR_READ,  PHASE_TRANSMISSION },
        [CONN_DRAIN]        = { "DRAIN",        state_drain,        DIR_NONE,  PHASE_CLOSING },
        [CONN_FLUSH_CLOSE]  = { "FLUSH_CLOSE",  state_flush_close,  DIR_WRITE, PHASE_CLOSING },
        [CONN_CLOSED]       = { "CLOSED",       state_closed,       DIR_NONE,  PHASE_CLOSING },
};
