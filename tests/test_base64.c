/* test_base64.c - base/base64.h: the RFC 4648 vectors, binary round trips,
 * whitespace and what the decoder must reject. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/base64.h"
#include "testutil.h"

Test(base64, rfc4648_vectors)
{
    const char *plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
    const char *enc[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
    for (int i = 0; i < 7; i++) {
        size_t n;
        char *e = qf_base64_encode(plain[i], strlen(plain[i]), &n);
        cr_assert(e);
        cr_expect_str_eq(e, enc[i]);
        cr_expect_eq(n, strlen(enc[i]));
        unsigned char *d = qf_base64_decode(enc[i], strlen(enc[i]), &n);
        cr_assert(d);
        cr_expect_eq(n, strlen(plain[i]));
        cr_expect_str_eq((char *)d, plain[i]);
        free(e);
        free(d);
    }
}

Test(base64, binary_round_trip_and_whitespace)
{
    unsigned char buf[256];
    for (int i = 0; i < 256; i++)
        buf[i] = (unsigned char)(255 - i);
    for (size_t len = 0; len <= sizeof(buf); len += 17) {
        char *e = qf_base64_encode(buf, len, NULL);
        size_t n;
        unsigned char *d = qf_base64_decode(e, strlen(e), &n);
        cr_assert(d);
        cr_expect_eq(n, len);
        cr_expect(!memcmp(d, buf, len));
        free(e);
        free(d);
    }
    size_t n;
    unsigned char *d = qf_base64_decode("aGVs\nbG8K\r\n", 11, &n);
    cr_assert(d);
    cr_expect_eq(n, 6);
    cr_expect_str_eq((char *)d, "hello\n");
    free(d);
    d = qf_base64_decode("aGVsbG8", 7, &n); /* padding is optional */
    cr_assert(d);
    cr_expect_str_eq((char *)d, "hello");
    free(d);
}

Test(base64, rejects_garbage)
{
    const char *bad[] = { "a", "Zg=a", "Z===", "Zm9v!", "Zh==", "Zm9=", "====", "Zg==Zg==" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n;
        errno = 0;
        unsigned char *d = qf_base64_decode(bad[i], strlen(bad[i]), &n);
        cr_expect_null(d, "'%s' should be rejected", bad[i]);
        cr_expect_eq(errno, EINVAL);
        free(d);
    }
}
