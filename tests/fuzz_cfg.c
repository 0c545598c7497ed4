/* fuzz_cfg.c - libFuzzer target for the cfg library: parse any bytes as a
 * cfg file, build every VM in it, its command line, its JSON and its shell
 * text; and feed the bytes to cfg_vm_set as a device value. Build and run
 * with tools/fuzz-cfg. Nothing here touches the host but /proc/mounts.
 *
 * Every text rendered for people (the argv as shell text and as JSON, the
 * VM as JSON, the errors) must not contain the login password: a leak
 * aborts, and libFuzzer keeps the input. */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg/argv.h"
#include "cfg/parse.h"
#include "cfg/vm.h"
#include "base/json.h"

/* Deterministic resources: no port probing. */
static void res_for(const struct cfg_vm *vm, struct cfg_res *res)
{
    struct cfg_needs nd;
    cfg_vm_needs(vm, &nd);
    memset(res, 0, sizeof(*res));
    res->run_dir = "/run/fuzz";
    res->hugepage_dir = "/dev/huge,pages";
    for (int i = 0; i < nd.macs; i++)
        snprintf(res->macs[i], sizeof(res->macs[i]), "52:54:00:00:01:%02x", (unsigned)i & 0xffu);
    unsigned used = nd.slots_taken;
    for (int i = 0; i < nd.slots; i++) {
        int s = 0;
        while (s < 31 && (used & (1u << s)))
            s++;
        res->pci_slot[i] = s;
        used |= 1u << s;
    }
    for (int i = 0; i < nd.ports; i++)
        res->ssh_port[i] = 20000 + i;
    res->vnc = 5;
    res->migrate_port = 30000;
    for (int k = 0; k < nd.vfs; k++)
        snprintf(res->vf_host[k], sizeof(res->vf_host[k]), "0000:3b:%02x.%x", k / 8, k % 8);
    for (int k = 0; k < nd.pfs; k++)
        snprintf(res->pf_host[k], sizeof(res->pf_host[k]), "0000:5e:%02x.0", k);
}

/* ---- the password never shows ----
 *
 * Masking writes "********" where the password was, so a password with a
 * '*' can reappear (or be built) from the mask itself, and one with bytes
 * outside printable ASCII from utf8_clean's U+FFFD: those are not checked.
 * Shell text is checked only for a password of characters shell quoting
 * never adds (quotes, spaces and backslashes join words and could spell a
 * password across two of them). JSON is checked value by value, decoded,
 * keys aside; values qfleet makes from a fixed vocabulary or from the
 * leases, not from cfg text, are left out: a password "e1000" would be
 * found in any NIC's "model". */

static const char *checked_pw(const struct cfg_vm *vm)
{
    const char *pw = cfg_vm_info(vm)->password;
    if (!pw || !*pw)
        return NULL;
    for (const char *p = pw; *p; p++)
        if (*p < 0x20 || *p > 0x7e || *p == '*')
            return NULL;
    return pw;
}

static int shell_plain(const char *pw)
{
    for (const char *p = pw; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-_./:=,@%+", *p))
            return 0;
    return 1;
}

static void leak(const char *pw, const char *where, const char *text)
{
    fprintf(stderr, "fuzz_cfg: the password '%s' appears in %s: %s\n", pw, where, text);
    abort();
}

static int generated(const char *key, const char *val)
{
    static const char *const fixed[] = { "model", "backend", "mac", "driver", "numa", "vnc" };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (!strcmp(key, fixed[i]))
            return 1;
    /* a guest PCI address (show.c's jaddr); a hostfwd "addr" is cfg text */
    unsigned s, f;
    char end;
    return !strcmp(key, "addr") && sscanf(val, "0000:00:%2x.%1x%c", &s, &f, &end) == 2;
}

static void json_no_pw(const json_t *v, const char *key, const char *pw, const char *where)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        if (!generated(key, json_str(v)) && strstr(json_str(v), pw))
            leak(pw, where, json_str(v));
        return;
    case JSON_ARRAY:
        for (size_t i = 0; i < json_len(v); i++)
            json_no_pw(json_at(v, i), key, pw, where);
        return;
    case JSON_OBJECT:
        for (size_t i = 0; i < json_len(v); i++)
            json_no_pw(json_at(v, i), json_key_at(v, i), pw, where);
        return;
    default:
        return;
    }
}

static void exercise(struct cfg_vm *vm)
{
    struct cfg_res res;
    char err[512], **argv;
    const char *pw = checked_pw(vm);
    res_for(vm, &res);
    if (cfg_argv_build(vm, &res, &argv, err, sizeof(err)) == 0) {
        char *s = cfg_argv_shell(vm, argv);
        if (pw && s && shell_plain(pw) && strstr(s, pw))
            leak(pw, "cfg_argv_shell", s);
        free(s);
        json_t *j = cfg_argv_json(vm, argv);
        if (pw)
            json_no_pw(j, "", pw, "cfg_argv_json");
        json_free(j);
        cfg_argv_free(argv);
    } else if (pw && strstr(err, pw)) {
        leak(pw, "a cfg_argv_build error", err);
    }
    json_t *j = cfg_vm_json(vm, &res);
    if (pw)
        json_no_pw(j, "", pw, "cfg_vm_json");
    char *s = json_dump(j, NULL);
    free(s);
    json_free(j);
    char p[256];
    for (int i = 0; i < cfg_vm_info(vm)->ncrypto; i++)
        cfg_crypto_path(vm, &res, i, p, sizeof(p));
    /* every path of a multi-path qemu key, then one out of range */
    int nq = cfg_vm_info(vm)->nqemu_paths;
    for (int i = 0; i <= nq && i < 4; i++) {
        char sel[8];
        snprintf(sel, sizeof(sel), "%d", i);
        if (cfg_vm_select_qemu(vm, sel, err, sizeof(err)) == 0 &&
            cfg_argv_build(vm, &res, &argv, err, sizeof(err)) == 0)
            cfg_argv_free(argv);
    }
    cfg_vm_select_qemu(vm, NULL, err, sizeof(err));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cfg_doc *d;
    char err[512];
    if (cfg_doc_parse("/fuzz/f.cfg", (const char *)data, size, &d, err, sizeof(err)) == 0) {
        int n = cfg_doc_nsections(d);
        for (int i = 0; i < n && i < 8; i++) {
            struct cfg_vm *vm;
            (void)cfg_section_is_vm(cfg_doc_section_at(d, i));
            if (cfg_vm_from_docs(d, cfg_doc_section_at(d, i)->name, i ? d : NULL, &vm, err,
                                 sizeof(err)) == 0) {
                exercise(vm);
                cfg_vm_free(vm);
            }
        }
        cfg_doc_free(d);
    }
    /* the same bytes as a value given to cfg_vm_set */
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    /* with a password the dictionary knows, to be pasted into values */
    static const char base[] = "[vm0]\nenable_kvm = enable=no\nlogin = user=root,password=Pw9q\n";
    if (cfg_doc_parse("/fuzz/b.cfg", base, sizeof(base) - 1, &d, err, sizeof(err)) == 0) {
        struct cfg_vm *vm;
        if (cfg_vm_from_docs(d, "vm0", NULL, &vm, err, sizeof(err)) == 0) {
            static const char *const keys[] = { "device", "net",    "usercmd", "cpu",
                                                "qemu",   "crypto", "pflash",  "mem" };
            if (cfg_vm_set(vm, keys[size % 8], text, err, sizeof(err)) == 0)
                exercise(vm);
            else if (strstr(err, "Pw9q"))
                leak("Pw9q", "a cfg_vm_set error", err);
            cfg_vm_free(vm);
        }
        cfg_doc_free(d);
    }
    free(text);
    return 0;
}
