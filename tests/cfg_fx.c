/* cfg_fx.c - the cfg tests' shared helpers (cfg_fx.h). */
#include "cfg_fx.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

char cfx_err[1024];

struct cfg_doc *cfx_parse_ok(const char *text)
{
    struct cfg_doc *d;
    int r = cfg_doc_parse(F, text, strlen(text), &d, cfx_err, sizeof(cfx_err));
    cr_assert_eq(r, 0, "parse failed: %s", cfx_err);
    return d;
}

void cfx_parse_err(const char *text, const char *want)
{
    struct cfg_doc *d;
    cfx_err[0] = 0;
    int r = cfg_doc_parse(F, text, strlen(text), &d, cfx_err, sizeof(cfx_err));
    cr_assert_eq(r, -EINVAL, "parse of <<%s>> gave %d", text, r);
    cr_assert_str_eq(cfx_err, want);
}

/* Load VM name from text, with optional defaults text. */
int cfx_load(const char *text, const char *name, const char *defaults, struct cfg_vm **vm)
{
    struct cfg_doc *d, *g = NULL;
    cfx_err[0] = 0;
    int r = cfg_doc_parse(F, text, strlen(text), &d, cfx_err, sizeof(cfx_err));
    if (r < 0)
        return r;
    if (defaults && (r = cfg_doc_parse(D, defaults, strlen(defaults), &g, cfx_err, sizeof(cfx_err))) < 0) {
        cfg_doc_free(d);
        return r;
    }
    r = cfg_vm_from_docs(d, name, g, vm, cfx_err, sizeof(cfx_err));
    cfg_doc_free(d);
    cfg_doc_free(g);
    return r;
}

struct cfg_vm *cfx_load_ok(const char *text)
{
    struct cfg_vm *vm;
    int r = cfx_load(text, "vm0", NULL, &vm);
    cr_assert_eq(r, 0, "load failed: %s", cfx_err);
    return vm;
}

void cfx_load_err(const char *text, const char *want)
{
    struct cfg_vm *vm = NULL;
    int r = cfx_load(text, "vm0", NULL, &vm);
    cr_assert_lt(r, 0, "load of <<%s>> succeeded", text);
    cr_assert_null(vm);
    cr_assert_str_eq(cfx_err, want);
}

/* The warnings of a VM joined by '\n'. */
char *cfx_warnings(const struct cfg_vm *vm)
{
    static char buf[8192];
    const struct cfg_vm_info *vi = cfg_vm_info(vm);
    buf[0] = 0;
    for (int i = 0; i < vi->nwarnings; i++) {
        strcat(buf, vi->warnings[i]);
        strcat(buf, "\n");
    }
    return buf;
}
