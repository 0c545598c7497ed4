/* test_json.c - the owned JSON tree (base/json.h): parse/dump round trips,
 * escaping, UTF-8, NUL bytes, integer range, nesting limits, errors. */
#include <criterion/criterion.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"

static json_t *parse_ok(const char *text)
{
    char err[200] = "";
    json_t *v = json_parse(text, strlen(text), err, sizeof(err));
    cr_assert(v, "parse of %s failed: %s", text, err);
    return v;
}

/* Parse must fail and say something. */
static void parse_bad(const char *text, size_t len)
{
    char err[200] = "";
    json_t *v = json_parse(text, len, err, sizeof(err));
    cr_expect_null(v, "parse of '%.*s' should fail", (int)len, text);
    cr_expect(strlen(err) > 0, "no reason for '%.*s'", (int)len, text);
    json_free(v);
}

static char *dump(const json_t *v)
{
    char *s = json_dump(v, NULL);
    cr_assert(s);
    return s;
}

/* Structural equality, through the public API only. */
static int equal(const json_t *a, const json_t *b)
{
    if (json_typeof(a) != json_typeof(b))
        return 0;
    long long x, y;
    switch (json_typeof(a)) {
    case JSON_NULL: return 1;
    case JSON_BOOL: return json_truthy(a) == json_truthy(b);
    case JSON_INT: return json_as_int(a, &x) == 0 && json_as_int(b, &y) == 0 && x == y;
    case JSON_DOUBLE: return json_as_double(a, 0) == json_as_double(b, 1);
    case JSON_STRING:
        return json_len(a) == json_len(b) && !memcmp(json_str(a), json_str(b), json_len(a));
    case JSON_ARRAY:
    case JSON_OBJECT:
        if (json_len(a) != json_len(b))
            return 0;
        for (size_t i = 0; i < json_len(a); i++) {
            if (json_typeof(a) == JSON_OBJECT && strcmp(json_key_at(a, i), json_key_at(b, i)))
                return 0;
            if (!equal(json_at(a, i), json_at(b, i)))
                return 0;
        }
        return 1;
    }
    return 0;
}

static void round_trip(const json_t *v)
{
    size_t n = 0;
    char *s = json_dump(v, &n);
    cr_assert(s);
    cr_assert_eq(n, strlen(s)); /* NUL bytes are escaped, never raw */
    char err[200] = "";
    json_t *back = json_parse(s, n, err, sizeof(err));
    cr_assert(back, "re-parse of %s: %s", s, err);
    cr_expect(equal(v, back), "round trip changed %s", s);
    json_free(back);
    free(s);
}

Test(json, compact_dump_keeps_order)
{
    json_t *v = parse_ok(" { \"b\" : [1, 2.5, true, false, null], \"a\": {\"x\": \"y\"}, \"e\": {}, \"f\": [] } ");
    char *s = dump(v);
    cr_expect_str_eq(s, "{\"b\":[1,2.5,true,false,null],\"a\":{\"x\":\"y\"},\"e\":{},\"f\":[]}");
    round_trip(v);
    free(s);
    json_free(v);
}

Test(json, build_and_read)
{
    json_t *o = json_object();
    cr_assert_eq(json_set_str(o, "execute", "query-status"), 0);
    json_t *args = json_object();
    cr_assert_eq(json_set_int(args, "id", 42), 0);
    cr_assert_eq(json_set_bool(args, "force", 1), 0);
    cr_assert_eq(json_set(o, "arguments", args), 0);
    json_t *arr = json_array();
    for (int i = 0; i < 5; i++)
        cr_assert_eq(json_append(arr, json_int(i)), 0);
    cr_assert_eq(json_set(o, "list", arr), 0);
    cr_expect_str_eq(json_get_str(o, "execute"), "query-status");
    cr_expect_eq(json_get_int(json_path(o, "arguments"), "id", -1), 42);
    cr_expect_eq(json_get_bool(json_path(o, "arguments"), "force", 0), 1);
    cr_expect_null(json_path(o, "arguments.missing.deeper"));
    cr_expect_eq(json_get_int(o, "missing", -7), -7);
    cr_expect_eq(json_len(json_get(o, "list")), 5);
    long long x;
    cr_expect_eq(json_as_int(json_at(arr, 3), &x), 0);
    cr_expect_eq(x, 3);
    cr_expect_null(json_at(arr, 5));
    cr_expect_eq(json_as_int(json_get(o, "execute"), &x), -EINVAL);
    /* set replaces */
    cr_assert_eq(json_set_str(o, "execute", "quit"), 0);
    cr_expect_str_eq(json_get_str(o, "execute"), "quit");
    cr_expect_eq(json_len(o), 3);
    /* take detaches */
    json_t *t = json_take(o, "arguments");
    cr_assert(t);
    cr_expect_eq(json_len(o), 2);
    cr_expect_null(json_get(o, "arguments"));
    cr_expect_str_eq(json_key_at(o, 1), "list");
    json_free(t);
    /* copy is deep */
    json_t *c = json_copy(o);
    cr_expect(equal(o, c));
    json_set_str(c, "execute", "changed");
    cr_expect_str_eq(json_get_str(o, "execute"), "quit");
    json_free(c);
    round_trip(o);
    json_free(o);
}

Test(json, set_on_wrong_type_frees_value)
{
    json_t *arr = json_array();
    /* ownership passes also on failure: LeakSanitizer checks this */
    cr_expect_eq(json_set(arr, "k", json_string("v")), -EINVAL);
    json_t *obj = json_object();
    cr_expect_eq(json_append(obj, json_string("v")), -EINVAL);
    json_free(arr);
    json_free(obj);
    json_t *n = json_string(NULL);
    cr_expect_eq(json_typeof(n), JSON_NULL);
    json_free(n);
}

Test(json, escapes_control_characters_and_quotes)
{
    const char raw[] = "q\"b\\s/\n\r\t\b\f\x01\x1f end";
    json_t *s = json_string(raw);
    char *out = dump(s);
    /* Nothing below 0x20 may appear raw in JSON text. */
    for (const char *p = out; *p; p++)
        cr_expect((unsigned char)*p >= 0x20, "raw control byte 0x%02x in %s", *p, out);
    cr_expect(strstr(out, "q\\\"b\\\\s"), "%s", out);
    cr_expect(strstr(out, "\\n\\r\\t"), "%s", out);
    cr_expect(strstr(out, "\\u0001"), "%s", out);
    cr_expect(strstr(out, "\\u001f") || strstr(out, "\\u001F"), "%s", out);
    round_trip(s);
    free(out);
    json_free(s);
    /* and the other way */
    json_t *p = parse_ok("\"a\\\"b\\\\c\\/d\\n\\t\\u0007\"");
    cr_expect_str_eq(json_str(p), "a\"b\\c/d\n\t\a");
    json_free(p);
}

Test(json, raw_control_characters_rejected)
{
    parse_bad("\"a\nb\"", 5);
    parse_bad("\"a\x01" "b\"", 5);
}

Test(json, utf8_passes_through)
{
    const char *text = "caf\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80";
    json_t *s = json_string(text);
    char *out = dump(s);
    json_t *back = parse_ok(out);
    cr_expect_str_eq(json_str(back), text);
    free(out);
    json_free(back);
    json_free(s);
    /* \u escapes, including a surrogate pair, decode to UTF-8 */
    json_t *e = parse_ok("\"caf\\u00e9 \\u2603 \\ud83d\\ude00\"");
    cr_expect_str_eq(json_str(e), text);
    json_free(e);
}

Test(json, invalid_utf8_rejected)
{
    parse_bad("\"\xff\"", 3);
    parse_bad("\"\xc3\"", 3);
    parse_bad("\"\xc3\xa9\x80\"", 5); /* a stray continuation byte */
}

Test(json, nul_inside_strings)
{
    json_t *s = json_stringn("a\0b", 3);
    cr_expect_eq(json_len(s), 3);
    size_t n;
    char *out = json_dump(s, &n);
    cr_assert(out);
    cr_expect_str_eq(out, "\"a\\u0000b\"");
    cr_expect_eq(n, strlen(out));
    json_t *back = json_parse(out, n, NULL, 0);
    cr_assert(back);
    cr_expect_eq(json_len(back), 3);
    cr_expect(!memcmp(json_str(back), "a\0b", 3));
    free(out);
    json_free(back);
    json_free(s);
    /* a NUL in an object key cannot be represented: refused */
    parse_bad("{\"a\\u0000b\":1}", 14);
    /* a raw NUL byte in the input is not JSON */
    parse_bad("\"a\0b\"", 5);
}

Test(json, integer_range)
{
    json_t *v = parse_ok("[9223372036854775807,-9223372036854775808,0,-1]");
    long long x;
    cr_expect_eq(json_as_int(json_at(v, 0), &x), 0);
    cr_expect_eq(x, LLONG_MAX);
    cr_expect_eq(json_as_int(json_at(v, 1), &x), 0);
    cr_expect_eq(x, LLONG_MIN);
    round_trip(v);
    char *out = dump(v);
    cr_expect_str_eq(out, "[9223372036854775807,-9223372036854775808,0,-1]");
    free(out);
    json_free(v);
    /* beyond int64 (QEMU's u64 sizes): a double, not garbage */
    json_t *big = parse_ok("18446744073709551615");
    cr_expect_eq(json_typeof(big), JSON_DOUBLE);
    cr_expect_float_eq(json_as_double(big, 0), 18446744073709551615.0, 1e4);
    cr_expect_eq(json_as_int(big, &x), -EINVAL);
    json_free(big);
}

Test(json, doubles)
{
    json_t *v = parse_ok("[1.5,-0.25,1e3,2.5E-3]");
    cr_expect_eq(json_typeof(json_at(v, 2)), JSON_DOUBLE);
    cr_expect_float_eq(json_as_double(json_at(v, 3), 0), 0.0025, 1e-12);
    round_trip(v);
    json_free(v);
    /* an integral double stays a double */
    json_t *d = json_double(1.0);
    round_trip(d);
    json_free(d);
    cr_expect_float_eq(json_as_double(NULL, 3.5), 3.5, 0);
}

Test(json, nesting)
{
    enum { OK = 120, TOO_DEEP = 100000 };
    char *buf = malloc(2 * TOO_DEEP + 1);
    memset(buf, '[', OK);
    memset(buf + OK, ']', OK);
    json_t *v = json_parse(buf, 2 * OK, NULL, 0);
    cr_assert(v, "200 levels must parse");
    const json_t *p = v;
    int depth = 0;
    while (json_typeof(p) == JSON_ARRAY && json_len(p)) {
        p = json_at(p, 0);
        depth++;
    }
    cr_expect_eq(depth, OK - 1);
    round_trip(v);
    json_free(v);
    /* a hostile depth is an error, not a stack overflow */
    memset(buf, '[', TOO_DEEP);
    memset(buf + TOO_DEEP, ']', TOO_DEEP);
    parse_bad(buf, 2 * TOO_DEEP);
    /* objects too */
    for (int i = 0; i < TOO_DEEP / 8; i++) {
        memcpy(buf + 6 * i, "{\"a\":", 5);
        buf[6 * i + 5] = ' ';
    }
    parse_bad(buf, (TOO_DEEP / 8) * 6);
    free(buf);
}

/* Whatever json_parse accepts, json_dump must be able to write back (QMP
 * replies get logged and relayed): the deepest tree the parser takes (127
 * levels, under yajl's generator limit) dumps, one level more does not parse. */
Test(json, everything_parsed_can_be_dumped)
{
    enum { DEPTH = 127 };
    char buf[2 * DEPTH + 2];
    memset(buf, '[', DEPTH + 1);
    memset(buf + DEPTH + 1, ']', DEPTH + 1);
    cr_assert_null(json_parse(buf, sizeof(buf), NULL, 0), "%d levels parsed", DEPTH + 1);
    json_t *v = json_parse(buf + 1, 2 * DEPTH, NULL, 0);
    cr_assert(v);
    char *s = json_dump(v, NULL);
    cr_expect(s, "json_dump failed on a %d-deep tree that json_parse accepted", DEPTH);
    free(s);
    json_free(v);
}

Test(json, errors)
{
    const char *bad[] = { "", "   ", "{", "[1,]", "{\"a\" 1}", "{\"a\":1,}", "{} x", "1 2", "tru",
                          "'single'", "/* c */ 1", "[1] [2]", "{\"a\":}", "\"unterminated", "01x",
                          "NaN", "{1:2}" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        parse_bad(bad[i], strlen(bad[i]));
    /* err may be NULL */
    cr_expect_null(json_parse("{", 1, NULL, 0));
    /* a small err buffer is truncated, not overrun */
    char tiny[8];
    cr_expect_null(json_parse("[1,", 3, tiny, sizeof(tiny)));
    cr_expect_lt(strlen(tiny), sizeof(tiny));
}

Test(json, parse_uses_only_len_bytes)
{
    const char text[] = "{\"a\":1}garbage";
    json_t *v = json_parse(text, 7, NULL, 0);
    cr_assert(v);
    cr_expect_eq(json_get_int(v, "a", 0), 1);
    json_free(v);
}

Test(json, pretty_has_no_trailing_newline)
{
    json_t *v = parse_ok("{\"a\":[1,2],\"b\":{\"c\":null}}");
    size_t n;
    char *s = json_dump_pretty(v, &n);
    cr_assert(s);
    cr_expect(strchr(s, '\n'));
    cr_expect_neq(s[n - 1], '\n');
    json_t *back = json_parse(s, n, NULL, 0);
    cr_expect(equal(v, back));
    json_free(back);
    free(s);
    json_free(v);
}

Test(json, non_finite_double_is_not_dumped_as_garbage)
{
    /* JSON has no NaN/Infinity: whatever json_dump does, it must not emit
     * text that fails to parse. (Today it returns NULL.) */
    json_t *v = json_double(NAN);
    char *s = json_dump(v, NULL);
    if (s) {
        json_t *back = json_parse(s, strlen(s), NULL, 0);
        cr_expect(back, "json_dump(NaN) produced unparsable %s", s);
        json_free(back);
    }
    free(s);
    json_free(v);
}
