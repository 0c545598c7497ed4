/* json.h - a small owned JSON value tree. The only door to yajl.
 *
 * Values are built as trees and serialized by json_dump, so any string a
 * caller puts in is escaped correctly: nothing builds JSON by pasting text.
 * Containers own their children; json_free frees a whole tree. */
#ifndef QF_JSON_H
#define QF_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    JSON_NULL,
    JSON_BOOL,
    JSON_INT,
    JSON_DOUBLE,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
} json_type;

typedef struct json json_t;

/* Parse exactly one JSON text from buf[0..len). NULL on error, with a
 * one-line reason in err (may be NULL). */
json_t *json_parse(const char *buf, size_t len, char *err, size_t errlen);

/* Serialize compactly (no newline). Returns a malloc'd NUL-terminated string
 * and its length in *len (len may be NULL); NULL only on allocation failure.
 * NaN and infinities, which JSON cannot express, are written as null.
 * json_dump_pretty indents for people. */
char *json_dump(const json_t *v, size_t *len);
char *json_dump_pretty(const json_t *v, size_t *len);

json_t *json_null(void);
json_t *json_bool(int b);
json_t *json_int(long long i);
json_t *json_double(double d);
json_t *json_string(const char *s);             /* copies; NULL s gives JSON null */
json_t *json_stringn(const char *s, size_t n);  /* may contain NUL bytes */
json_t *json_array(void);
json_t *json_object(void);
json_t *json_copy(const json_t *v);
void json_free(json_t *v);

/* Ownership of val passes to the container (also on failure, where it is
 * freed). object_set replaces an existing key. Return 0 or -ENOMEM/-EINVAL. */
int json_append(json_t *arr, json_t *val);
int json_set(json_t *obj, const char *key, json_t *val);
/* Convenience setters: json_set(obj, key, json_string(s)) etc. */
int json_set_str(json_t *obj, const char *key, const char *s);
int json_set_int(json_t *obj, const char *key, long long i);
int json_set_bool(json_t *obj, const char *key, int b);
/* Remove key from obj and return its value (caller owns), or NULL. */
json_t *json_take(json_t *obj, const char *key);

json_type json_typeof(const json_t *v);
size_t json_len(const json_t *v);               /* array/object members, string bytes */
json_t *json_at(const json_t *arr, size_t i);   /* array element or object value */
const char *json_key_at(const json_t *obj, size_t i);
json_t *json_get(const json_t *obj, const char *key);
/* Dotted path through objects: json_path(reply, "return.status"). */
json_t *json_path(const json_t *v, const char *path);

/* Typed reads. They return NULL / the fallback when v is absent or of
 * another type, so lookups chain without checks. */
const char *json_str(const json_t *v);          /* NUL-terminated */
const char *json_get_str(const json_t *obj, const char *key);
long long json_get_int(const json_t *obj, const char *key, long long fallback);
int json_get_bool(const json_t *obj, const char *key, int fallback);
int json_as_int(const json_t *v, long long *out); /* 0 or -EINVAL */
double json_as_double(const json_t *v, double fallback);
int json_truthy(const json_t *v);               /* true, non-zero number */

#endif
