/* cfg_fx.h - what the cfg tests (test_cfg, test_cfg_dts) share: parse or
 * load a cfg from text and assert on the outcome. Errors land in cfx_err. */
#ifndef QF_TESTS_CFG_FX_H
#define QF_TESTS_CFG_FX_H

#include "cfg/parse.h"
#include "cfg/vm.h"

#define F "/cfgdir/t.cfg"
#define D "/cfgdir/virt_global.cfg"

extern char cfx_err[1024];

struct cfg_doc *cfx_parse_ok(const char *text);
/* Parsing text fails with exactly want. */
void cfx_parse_err(const char *text, const char *want);
/* Load VM name from text (file F), with optional defaults text (file D). */
int cfx_load(const char *text, const char *name, const char *defaults, struct cfg_vm **vm);
/* Load vm0, or load it and expect exactly the error want. */
struct cfg_vm *cfx_load_ok(const char *text);
void cfx_load_err(const char *text, const char *want);
/* The warnings of a VM joined by '\n' (a static buffer). */
char *cfx_warnings(const struct cfg_vm *vm);

#endif
