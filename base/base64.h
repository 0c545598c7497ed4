/* base64.h - RFC 4648 base64 (standard alphabet, '=' padding), as the
 * guest agent uses for file and exec data. */
#ifndef QF_BASE64_H
#define QF_BASE64_H

#include <stddef.h>

/* Encode len bytes. Returns a malloc'd NUL-terminated string (length in
 * *outlen if not NULL), or NULL when out of memory. */
char *qf_base64_encode(const void *buf, size_t len, size_t *outlen);

/* Decode text[0..len). Whitespace (CR, LF, space, tab) is skipped; padding
 * is optional at the very end; anything else is an error. Returns a
 * malloc'd buffer with one extra NUL byte after the data (handy for text),
 * the data length in *outlen; NULL with errno EINVAL on bad input or
 * ENOMEM. */
unsigned char *qf_base64_decode(const char *text, size_t len, size_t *outlen);

#endif
