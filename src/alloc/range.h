/* alloc_range.h - a pool of fixed-length integer tuples, such as guest PCI
 * addresses bus:slot.function over {0..0}:{0..31}.{0..7}, or IPv4
 * addresses over {10}.{0}.{0..255}.{1..254}.
 *
 * The pool is given as one inclusive range per field. Tuples are numbered
 * in order (the first field most significant) and the free ones are kept
 * as a sorted list of intervals of those numbers, so memory grows with the
 * number of holes, not of tuples: a fresh 2^32 pool is one interval.
 *
 * A pure in-memory structure, one per user (the fleet keeps one per guest
 * for its PCI slots); no locking. alloc_range_dump/_load and _to_json/
 * _from_json persist it. Returns are 0 or -errno as elsewhere:
 * -ERANGE for a tuple outside the pool, -EEXIST for one already reserved,
 * -ENOENT for releasing a free one, -ENOSPC when nothing fits. */
#ifndef QF_ALLOC_RANGE_H
#define QF_ALLOC_RANGE_H

#include <stddef.h>
#include <stdint.h>

#include "base/json.h"

#define ALLOC_RANGE_MAX_FIELDS 8
/* Field values, and the pool's size, stay below 2^63 so they fit JSON
 * integers. */
#define ALLOC_RANGE_VALUE_MAX ((uint64_t)INT64_MAX)

typedef struct alloc_span {
    uint64_t lo, hi; /* inclusive */
} alloc_span;

typedef struct alloc_range alloc_range;

/* A pool with every tuple free. -EINVAL for no/too many fields or lo > hi,
 * -EOVERFLOW when a value or the number of tuples reaches 2^63. */
int alloc_range_new(alloc_range **out, const alloc_span *fields, size_t nfields);
void alloc_range_free(alloc_range *r);
alloc_range *alloc_range_copy(const alloc_range *r); /* NULL on ENOMEM */

size_t alloc_range_nfields(const alloc_range *r);
const alloc_span *alloc_range_field(const alloc_range *r, size_t i);
uint64_t alloc_range_size(const alloc_range *r);       /* all tuples */
uint64_t alloc_range_free_count(const alloc_range *r); /* free tuples */
size_t alloc_range_holes(const alloc_range *r);        /* free intervals */

/* 1 free, 0 reserved, -ERANGE outside. tuple has nfields values. */
int alloc_range_is_free(const alloc_range *r, const uint64_t *tuple);
/* Reserve the given tuple. */
int alloc_range_reserve(alloc_range *r, const uint64_t *tuple);
/* Reserve the first free tuple (first fit), written to out. */
int alloc_range_reserve_any(alloc_range *r, uint64_t *out);
/* Reserve the first free tuple whose every field lies in want[i] (clipped
 * to the pool), e.g. any slot but function 0 only. */
int alloc_range_reserve_in(alloc_range *r, const alloc_span *want, uint64_t *out);
int alloc_range_release(alloc_range *r, const uint64_t *tuple);

/* Text form, one line: "fields=0-0,0-31,0-7 free=0-3,5-255" (free lists
 * intervals of tuple numbers; "free=" when all are reserved). malloc'd. */
char *alloc_range_dump(const alloc_range *r);
int alloc_range_load(alloc_range **out, const char *text);
/* {"fields":[[lo,hi],...],"free":[[a,b],...]} */
json_t *alloc_range_to_json(const alloc_range *r);
int alloc_range_from_json(alloc_range **out, const json_t *v);

/* --- guest PCI addresses ---------------------------------------------
 * Bus 0, slots 0x00-0x1f, functions 0-7. The reserved set is a comma
 * separated list of hex addresses: "SS" takes a whole slot, "SS.F" one
 * function (a "BB:" or "DDDD:BB:" before it must be 0). Devices the fleet
 * places itself are in the set, so they are not reserved again. */
#define ALLOC_PCI_RESERVED_PC "0,1,1f.0"   /* host bridge, PIIX3, host_connect */
#define ALLOC_PCI_RESERVED_PC_VGA "0,1,2,1f.0"
#define ALLOC_PCI_RESERVED_Q35 "0,1f"      /* MCH, ICH9 (LPC, SATA, SMBus) */

int alloc_pci_new(alloc_range **out, const char *reserved, char *err, size_t errlen);
/* Reserve an address from the cfg ("SS" or "SS.F"); -EEXIST if taken. */
int alloc_pci_reserve(alloc_range *r, const char *addr, char *err, size_t errlen);
/* Reserve the lowest slot whose eight functions are all free: the address
 * for a device without opt_addr ("addr=0x%02x"). */
int alloc_pci_take_slot(alloc_range *r, int *slot);
/* Release a slot's functions that are reserved. -ENOENT if none were. */
int alloc_pci_release_slot(alloc_range *r, int slot);

#endif
