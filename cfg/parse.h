/* parse.h - the DTS VM cfg grammar (see cfg/README.md).
 *
 * A document is a list of [sections]; a section a list of keys; a key's
 * value a list of groups (split on ';' and on line ends not preceded by
 * ','). A group keeps its raw text; cfg_group_pairs splits it into
 * opt=value pairs on demand, so keys that are only warned about are never
 * held to the pair syntax. Every piece of text knows its file:line:col.
 *
 * Conventions: functions return 0 or a negative errno; on error one line
 * "FILE:LINE:COL: error: WHAT" goes to err (which may be NULL). */
#ifndef QF_CFG_PARSE_H
#define QF_CFG_PARSE_H

#include <stddef.h>

struct arena;

#define CFG_FILE_MAX (4 << 20) /* bytes of one cfg file */

struct cfg_loc {
    const char *file; /* as given to the loader (or "<set KEY>") */
    int line, col;    /* 1-based; col counts bytes */
};

/* text[off..] of a group came from line:col (a group continued after a
 * line ending in ',' has one segment per line). */
struct cfg_seg {
    int off, line, col;
};

struct cfg_group {
    const char *text; /* trimmed, NUL-terminated */
    int len;
    const struct cfg_seg *segs;
    int nsegs;
};

struct cfg_key {
    const char *name;   /* lower case */
    struct cfg_loc loc; /* of the key name */
    const char *dir;    /* directory relative paths resolve against */
    const struct cfg_group *groups;
    int ngroups;
};

struct cfg_section {
    const char *name;
    struct cfg_loc loc; /* of the name, inside the brackets */
    const struct cfg_key *keys;
    int nkeys;
};

struct cfg_doc;

/* Read and parse path. The directory of path (made absolute) is where
 * relative paths inside resolve. -ENOENT etc. for unreadable files. */
int cfg_doc_load(const char *path, struct cfg_doc **out, char *err, size_t errlen);
/* Parse text[0..len) as if read from path (which need not exist). */
int cfg_doc_parse(const char *path, const char *text, size_t len, struct cfg_doc **out, char *err,
                  size_t errlen);
void cfg_doc_free(struct cfg_doc *doc);

const char *cfg_doc_path(const struct cfg_doc *doc);
const char *cfg_doc_dir(const struct cfg_doc *doc); /* absolute */
int cfg_doc_nsections(const struct cfg_doc *doc);
const struct cfg_section *cfg_doc_section_at(const struct cfg_doc *doc, int i);
/* Section by exact name, or NULL. */
const struct cfg_section *cfg_doc_section(const struct cfg_doc *doc, const char *name);

/* Where byte off of g's text came from. */
struct cfg_loc cfg_group_loc(const struct cfg_group *g, const char *file, int off);

struct cfg_pair {
    const char *opt, *val; /* stripped; val may be "" */
    struct cfg_loc opt_loc, val_loc;
};

/* Split g on ',' into pairs (at the first '=' of each). Empty items are
 * skipped. Strings live in a. Errors: item without '=', empty or
 * malformed option name, more than max items. */
int cfg_group_pairs(struct arena *a, const struct cfg_group *g, const char *file,
                    struct cfg_pair *out, int max, int *n, char *err, size_t errlen);

/* Parse text as the value of key (lines after the first are continuation
 * lines whatever their indentation) into *out, strings in a. file names
 * the source in messages; dir is where relative paths resolve. */
int cfg_value_parse(struct arena *a, const char *file, const char *dir, const char *key,
                    const char *text, struct cfg_key *out, char *err, size_t errlen);

/* Deep copy of k into a, its locations pointing at file (a string the
 * caller keeps alive as long as a). */
int cfg_key_copy(struct arena *a, const struct cfg_key *k, const char *file, struct cfg_key *out);

#endif
