/* mac.c - the one MAC address parser and formatter. */
#include "base/mac.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Parse up to max octets "aa:bb:.." (':' or '-' separated, one trailing
 * separator allowed). Returns the count, or -EINVAL. */
int mac_octets_parse(const char *text, unsigned char *out, int max)
{
    int n = 0;
    const char *p = text;
    while (*p) {
        if (n == max)
            return -EINVAL;
        int hi, lo;
        char c = p[0], d = p[1];
#define HEXVAL(ch) ((ch) >= '0' && (ch) <= '9' ? (ch) - '0'             \
                    : (ch) >= 'a' && (ch) <= 'f' ? (ch) - 'a' + 10      \
                    : (ch) >= 'A' && (ch) <= 'F' ? (ch) - 'A' + 10 : -1)
        hi = HEXVAL(c);
        lo = hi < 0 ? -1 : HEXVAL(d);
#undef HEXVAL
        if (hi < 0 || lo < 0)
            return -EINVAL;
        out[n++] = (unsigned char)(hi << 4 | lo);
        p += 2;
        if (*p == ':' || *p == '-')
            p++;
        else if (*p)
            return -EINVAL;
    }
    return n;
}

int mac_parse(const char *text, unsigned char mac[6])
{
    size_t len = text ? strlen(text) : 0;
    if (len != 17 || text[16] == ':' || text[16] == '-')
        return -EINVAL;
    return mac_octets_parse(text, mac, 6) == 6 ? 0 : -EINVAL;
}

void mac_format(const unsigned char mac[6], char *out)
{
    snprintf(out, MAC_STRLEN, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2],
             mac[3], mac[4], mac[5]);
}
