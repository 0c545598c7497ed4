/* mac.h - the one MAC address parser and formatter: the cfg, the lease
 * store, the SR-IOV code and the CLI all read MACs through these. */
#ifndef QF_BASE_MAC_H
#define QF_BASE_MAC_H

#define MAC_STRLEN 18 /* "xx:xx:xx:xx:xx:xx" + NUL */

/* Exactly six octets "aa:bb:cc:dd:ee:ff", ':' or '-' between them, hex in
 * any case. 0 or -EINVAL. */
int mac_parse(const char *text, unsigned char mac[6]);
/* Up to max octets ("02:00:00" as a prefix; one trailing separator
 * allowed). The count, or -EINVAL. */
int mac_octets_parse(const char *text, unsigned char *out, int max);
/* Lowercase "aa:bb:cc:dd:ee:ff" into out (MAC_STRLEN bytes). */
void mac_format(const unsigned char mac[6], char *out);

#endif
