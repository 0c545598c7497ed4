/* util.h - internal helpers of the cfg library: error/warning formatting,
 * QEMU option escaping and small value checks. The arena and string buffer
 * are base/str.h.
 *
 * Nothing here is part of the public API (see vm.h, argv.h, parse.h). */
#ifndef QF_CFG_UTIL_H
#define QF_CFG_UTIL_H

#include <stdarg.h>
#include <stddef.h>

#include "base/str.h"
#include "cfg/parse.h"

/* Append s with every ',' doubled: QEMU's option-list escaping. */
void sb_add_qemu(struct sbuf *b, const char *s);

/* --- messages ---------------------------------------------------------- */
/* "FILE:LINE:COL: error: MSG" into err; returns -EINVAL. */
int cfg_errf(char *err, size_t errlen, struct cfg_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int cfg_verrf(char *err, size_t errlen, struct cfg_loc loc, const char *fmt, va_list ap);
/* The location off bytes after loc on the same line. */
struct cfg_loc loc_add(struct cfg_loc loc, int off);

/* --- values ------------------------------------------------------------ */
/* "aa:bb:cc:dd:ee:ff" for a guest NIC (base/mac.h's parser): 0, -EINVAL
 * (syntax) or -EDOM (multicast/zero). out gets the lowercase form. */
int cfg_mac_parse(const char *s, char out[18]);
/* Guest PCI address "1f", "0x1f", "1f.0", "0x03.2": 0 or -EINVAL. */
int slot_parse(const char *s, int *slot, int *fn);
/* Host PCI address "07:10.0" or "0000:07:10.0"; out gets the 12-char
 * domain form (13 bytes). 0 or -EINVAL. */
int bdf_parse(const char *s, char out[13]);
/* Decimal integer in [lo, hi]; 0 or -EINVAL. */
int int_parse(const char *s, long lo, long hi, long *out);
/* Resolve path against dir ("./" prefixes removed) into the arena. */
char *path_resolve(struct arena *a, const char *dir, const char *path);

#endif
