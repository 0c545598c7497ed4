/* test_alloc_range.c - the tuple range allocator and its PCI helpers. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "src/alloc/range.h"

static alloc_range *pool(const alloc_span *f, size_t n)
{
    alloc_range *r;
    cr_assert_eq(alloc_range_new(&r, f, n), 0);
    return r;
}

static const alloc_span PCI[3] = { { 0, 0 }, { 0, 31 }, { 0, 7 } };

Test(alloc_range, reserve_given_any_release)
{
    alloc_range *r = pool(PCI, 3);
    cr_assert_eq(alloc_range_size(r), 256);
    uint64_t t[3] = { 0, 13, 2 }, out[3];
    cr_assert_eq(alloc_range_is_free(r, t), 1);
    cr_assert_eq(alloc_range_reserve(r, t), 0);
    cr_assert_eq(alloc_range_is_free(r, t), 0);
    cr_assert_eq(alloc_range_reserve(r, t), -EEXIST);
    /* the hole splits the free interval in two */
    cr_assert_eq(alloc_range_holes(r), 2);
    cr_assert_eq(alloc_range_free_count(r), 255);
    cr_assert_eq(alloc_range_reserve_any(r, out), 0);
    cr_assert_eq(out[0], 0);
    cr_assert_eq(out[1], 0);
    cr_assert_eq(out[2], 0);
    cr_assert_eq(alloc_range_reserve_any(r, out), 0);
    cr_assert_eq(out[2], 1, "first fit");
    uint64_t outside[3] = { 1, 0, 0 }, badfn[3] = { 0, 0, 8 };
    cr_assert_eq(alloc_range_reserve(r, outside), -ERANGE);
    cr_assert_eq(alloc_range_reserve(r, badfn), -ERANGE);
    cr_assert_eq(alloc_range_is_free(r, badfn), -ERANGE);
    cr_assert_eq(alloc_range_release(r, t), 0);
    cr_assert_eq(alloc_range_release(r, t), -ENOENT);
    uint64_t z[3] = { 0, 0, 0 }, o[3] = { 0, 0, 1 };
    cr_assert_eq(alloc_range_release(r, o), 0);
    cr_assert_eq(alloc_range_release(r, z), 0);
    /* everything back: one interval again */
    cr_assert_eq(alloc_range_holes(r), 1);
    cr_assert_eq(alloc_range_free_count(r), 256);
    alloc_range_free(r);
}

Test(alloc_range, bad_pools)
{
    alloc_range *r;
    alloc_span bad[1] = { { 5, 4 } };
    cr_assert_eq(alloc_range_new(&r, bad, 1), -EINVAL);
    cr_assert_eq(alloc_range_new(&r, PCI, 0), -EINVAL);
    alloc_span huge[2] = { { 0, UINT32_MAX }, { 0, UINT32_MAX } };
    cr_assert_eq(alloc_range_new(&r, huge, 2), -EOVERFLOW);
    alloc_span top[1] = { { 0, UINT64_MAX } };
    cr_assert_eq(alloc_range_new(&r, top, 1), -EOVERFLOW);
    alloc_span nine[9] = { { 0, 1 } };
    cr_assert_eq(alloc_range_new(&r, nine, 9), -EINVAL);
}

/* An IPv4 /0 as four octets: 2^32 addresses in a few intervals. */
Test(alloc_range, ipv4_2_pow_32)
{
    alloc_span ip[4] = { { 0, 255 }, { 0, 255 }, { 0, 255 }, { 0, 255 } };
    alloc_range *r = pool(ip, 4);
    cr_assert_eq(alloc_range_size(r), 1ULL << 32);
    uint64_t out[4];
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(alloc_range_reserve_any(r, out), 0);
    cr_assert_eq(out[3], 999 % 256);
    cr_assert_eq(out[2], 999 / 256);
    cr_assert_eq(alloc_range_holes(r), 1, "first fit keeps one interval");
    uint64_t bcast[4] = { 255, 255, 255, 255 }, mid[4] = { 10, 1, 2, 3 };
    cr_assert_eq(alloc_range_reserve(r, bcast), 0);
    cr_assert_eq(alloc_range_reserve(r, mid), 0);
    cr_assert_eq(alloc_range_holes(r), 2);
    cr_assert_eq(alloc_range_free_count(r), (1ULL << 32) - 1002);
    char *text = alloc_range_dump(r);
    cr_assert(strlen(text) < 200, "stored as ranges: %s", text);
    free(text);
    alloc_range_free(r);
}

Test(alloc_range, reserve_within_fields)
{
    /* 192.168.1.{1..254}, the router at .254 fixed first */
    alloc_span net[4] = { { 192, 192 }, { 168, 168 }, { 1, 1 }, { 0, 255 } };
    alloc_range *r = pool(net, 4);
    uint64_t router[4] = { 192, 168, 1, 254 }, out[4];
    cr_assert_eq(alloc_range_reserve(r, router), 0);
    alloc_span hosts[4] = { { 0, 255 }, { 0, 255 }, { 0, 255 }, { 1, 254 } };
    cr_assert_eq(alloc_range_reserve_in(r, hosts, out), 0);
    cr_assert_eq(out[3], 1, ".0 is outside the wanted range");
    for (int i = 2; i <= 253; i++) {
        cr_assert_eq(alloc_range_reserve_in(r, hosts, out), 0);
        cr_assert_eq(out[3], (uint64_t)i);
    }
    cr_assert_eq(alloc_range_reserve_in(r, hosts, out), -ENOSPC, ".254 is the router's");
    cr_assert_eq(alloc_range_free_count(r), 2); /* .0 and .255 */

    /* PCI: function 0 of any slot, skipping slots whose function 0 is used */
    alloc_range *p = pool(PCI, 3);
    uint64_t s0f3[3] = { 0, 0, 3 }, s1f0[3] = { 0, 1, 0 };
    alloc_range_reserve(p, s0f3);
    alloc_range_reserve(p, s1f0);
    alloc_span fn0[3] = { { 0, 0 }, { 0, 31 }, { 0, 0 } };
    cr_assert_eq(alloc_range_reserve_in(p, fn0, out), 0);
    cr_assert_eq(out[1], 0);
    cr_assert_eq(alloc_range_reserve_in(p, fn0, out), 0);
    cr_assert_eq(out[1], 2, "slot 1 function 0 is taken");
    alloc_span none[3] = { { 1, 1 }, { 0, 31 }, { 0, 7 } };
    cr_assert_eq(alloc_range_reserve_in(p, none, out), -ERANGE);
    alloc_range_free(p);
    alloc_range_free(r);
}

Test(alloc_range, exhaustion)
{
    alloc_span f[2] = { { 0, 3 }, { 10, 11 } };
    alloc_range *r = pool(f, 2);
    uint64_t out[2];
    for (int i = 0; i < 8; i++)
        cr_assert_eq(alloc_range_reserve_any(r, out), 0);
    cr_assert_eq(alloc_range_reserve_any(r, out), -ENOSPC);
    cr_assert_eq(alloc_range_free_count(r), 0);
    cr_assert_eq(alloc_range_holes(r), 0);
    uint64_t t[2] = { 2, 11 };
    cr_assert_eq(alloc_range_release(r, t), 0);
    cr_assert_eq(alloc_range_reserve_any(r, out), 0);
    cr_assert_eq(out[0], 2);
    cr_assert_eq(out[1], 11);
    alloc_range_free(r);
}

/* Random operations against a plain bitmap of the same pool. */
Test(alloc_range, model_check)
{
    alloc_span f[3] = { { 1, 3 }, { 0, 9 }, { 5, 9 } };
    alloc_range *r = pool(f, 3);
    char used[3][10][5] = { { { 0 } } };
    srand(42);
    for (int i = 0; i < 20000; i++) {
        uint64_t t[3] = { 1 + (uint64_t)(rand() % 3), (uint64_t)(rand() % 10),
                          5 + (uint64_t)(rand() % 5) };
        char *u = &used[t[0] - 1][t[1]][t[2] - 5];
        if (rand() % 2) {
            cr_assert_eq(alloc_range_reserve(r, t), *u ? -EEXIST : 0);
            *u = 1;
        } else {
            cr_assert_eq(alloc_range_release(r, t), *u ? 0 : -ENOENT);
            *u = 0;
        }
        if (i % 500 == 0) {
            uint64_t nfree = 0;
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 10; b++)
                    for (int c = 0; c < 5; c++)
                        nfree += !used[a][b][c];
            cr_assert_eq(alloc_range_free_count(r), nfree);
            alloc_range *back;
            char *text = alloc_range_dump(r);
            cr_assert_eq(alloc_range_load(&back, text), 0, "%s", text);
            char *again = alloc_range_dump(back);
            cr_assert_str_eq(text, again);
            free(text);
            free(again);
            alloc_range_free(back);
        }
    }
    alloc_range_free(r);
}

Test(alloc_range, serialization_round_trip)
{
    alloc_range *r = pool(PCI, 3);
    uint64_t a[3] = { 0, 4, 0 }, b[3] = { 0, 4, 1 }, c[3] = { 0, 31, 7 };
    alloc_range_reserve(r, a);
    alloc_range_reserve(r, b);
    alloc_range_reserve(r, c);
    char *text = alloc_range_dump(r);
    cr_assert_str_eq(text, "fields=0-0,0-31,0-7 free=0-31,34-254");
    alloc_range *back;
    cr_assert_eq(alloc_range_load(&back, text), 0);
    cr_assert_eq(alloc_range_is_free(back, a), 0);
    cr_assert_eq(alloc_range_is_free(back, c), 0);
    cr_assert_eq(alloc_range_free_count(back), 253);
    free(text);
    alloc_range_free(back);

    json_t *j = alloc_range_to_json(r);
    cr_assert(j);
    char *s = json_dump(j, NULL);
    cr_assert_str_eq(s, "{\"fields\":[[0,0],[0,31],[0,7]],\"free\":[[0,31],[34,254]]}");
    json_t *parsed = json_parse(s, strlen(s), NULL, 0);
    cr_assert_eq(alloc_range_from_json(&back, parsed), 0);
    cr_assert_eq(alloc_range_free_count(back), 253);
    cr_assert_eq(alloc_range_is_free(back, b), 0);
    json_free(parsed);
    json_free(j);
    free(s);
    alloc_range_free(back);

    /* a full pool and a copy */
    alloc_span one[1] = { { 7, 7 } };
    alloc_range *f = pool(one, 1), *cp;
    uint64_t out[1];
    alloc_range_reserve_any(f, out);
    text = alloc_range_dump(f);
    cr_assert_str_eq(text, "fields=7-7 free=");
    cr_assert_eq(alloc_range_load(&back, text), 0);
    cr_assert_eq(alloc_range_free_count(back), 0);
    cp = alloc_range_copy(r);
    cr_assert_eq(alloc_range_free_count(cp), 253);
    free(text);
    alloc_range_free(back);
    alloc_range_free(cp);
    alloc_range_free(f);
    alloc_range_free(r);
}

Test(alloc_range, load_rejects_bad_text)
{
    alloc_range *r;
    const char *bad[] = {
        "",
        "fields= free=",
        "fields=0-3",
        "fields=0-3 free=0-4",          /* beyond the pool */
        "fields=0-9 free=3-5,1-2",      /* unsorted */
        "fields=0-9 free=1-3,4-5",      /* adjacent: should have been one */
        "fields=0-9 free=1-3,3-5",      /* overlapping */
        "fields=0-9 free=5-3",
        "fields=0-9 free=1-3x",
        "fields=9-0 free=",
        "fields=0-9 free=-1",
        "fields=0-99999999999999999999 free=",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        cr_assert_lt(alloc_range_load(&r, bad[i]), 0, "accepted '%s'", bad[i]);
    cr_assert_eq(alloc_range_load(&r, "fields=0-9,5 free=0,2-3,9"), 0);
    cr_assert_eq(alloc_range_free_count(r), 4);
    alloc_range_free(r);
    json_t *j = json_parse("{\"fields\":[[0,3]],\"free\":[[0,9]]}", 33, NULL, 0);
    cr_assert(j);
    cr_assert_eq(alloc_range_from_json(&r, j), -EINVAL);
    json_free(j);
}

Test(alloc_range, pci_slots)
{
    char err[256];
    alloc_range *r;
    cr_assert_eq(alloc_pci_new(&r, ALLOC_PCI_RESERVED_PC, err, sizeof(err)), 0, "%s", err);
    int slot;
    cr_assert_eq(alloc_pci_take_slot(r, &slot), 0);
    cr_assert_eq(slot, 2, "0 host bridge, 1 ISA bridge");
    cr_assert_eq(alloc_pci_reserve(r, "4", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(alloc_pci_take_slot(r, &slot), 0);
    cr_assert_eq(slot, 3);
    cr_assert_eq(alloc_pci_take_slot(r, &slot), 0);
    cr_assert_eq(slot, 5, "4 came from the cfg");
    cr_assert_eq(alloc_pci_reserve(r, "0x04", err, sizeof(err)), -EEXIST);
    cr_assert(strstr(err, "04 is already used"), "%s", err);
    /* host_connect's 1f.0 is reserved: the rest of slot 1f is usable one
     * function at a time, never as a whole slot */
    cr_assert_eq(alloc_pci_reserve(r, "1f.0", err, sizeof(err)), -EEXIST);
    cr_assert_eq(alloc_pci_reserve(r, "00:1f.1", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(alloc_pci_reserve(r, "0000:00:1e.0", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(alloc_pci_reserve(r, "20", err, sizeof(err)), -ERANGE);
    cr_assert_eq(alloc_pci_reserve(r, "01:02.0", err, sizeof(err)), -ERANGE, "bus 1");
    cr_assert_eq(alloc_pci_reserve(r, "3.8", err, sizeof(err)), -EINVAL);
    cr_assert_eq(alloc_pci_reserve(r, "zz", err, sizeof(err)), -EINVAL);
    int n = 0;
    while (alloc_pci_take_slot(r, &slot) == 0)
        n++;
    cr_assert_eq(n, 32 - 8, "slots 0-5, 1e and 1f are taken or not whole: %d", n);
    cr_assert_eq(alloc_pci_release_slot(r, 3), 0);
    cr_assert_eq(alloc_pci_release_slot(r, 3), -ENOENT);
    cr_assert_eq(alloc_pci_take_slot(r, &slot), 0);
    cr_assert_eq(slot, 3);
    alloc_range_free(r);

    cr_assert_eq(alloc_pci_new(&r, ALLOC_PCI_RESERVED_PC_VGA, err, sizeof(err)), 0);
    cr_assert_eq(alloc_pci_take_slot(r, &slot), 0);
    cr_assert_eq(slot, 3, "2 is the VGA card");
    alloc_range_free(r);
    cr_assert_eq(alloc_pci_new(&r, "", err, sizeof(err)), 0);
    cr_assert_eq(alloc_pci_take_slot(r, &slot), 0);
    cr_assert_eq(slot, 0);
    alloc_range_free(r);
    cr_assert_eq(alloc_pci_new(&r, "0,,1", err, sizeof(err)), -EINVAL);
    cr_assert_eq(alloc_pci_new(&r, "0,1,1", err, sizeof(err)), -EEXIST);
}
