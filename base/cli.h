/* cli.h - the one command-line option parser, help and JSON printing of
 * qfleet and qmpctl, and their version string. */
#ifndef QF_BASE_CLI_H
#define QF_BASE_CLI_H

#include "base/json.h"

/* What a command's parse step returns besides 0 and the exit code 2. */
#define CLI_HELP (-1)

/* One option of a command; a table of them ends with a NULL name. */
typedef struct cli_opt {
    const char *name;  /* long form, "--owner" */
    char alias;        /* short form ('q' for -q), or 0 */
    int takes_value;
    const char *value; /* after cli_parse: the value, "" for a flag seen, NULL when absent */
} cli_opt;

typedef struct cli_args {
    char **pos; /* the positional arguments, in order (argv + 1, which is permuted) */
    int npos;
    int help;   /* -h or --help appeared */
} cli_args;

/* Match argv[1..] against opts. Options and positional arguments may mix;
 * "--" ends the options; a long option may be shortened to a unique prefix
 * and takes its value as --opt=V or --opt V, a short one as -oV or -o V;
 * short flags bundle (-fq). -h/--help is always known and sets help, which
 * also silences any usage error (help wins). maxpos < 0: any number.
 * Returns 0, or prints "PROG: why (see 'PROG --help')" to stderr and
 * returns 2. */
int cli_parse(const char *prog, int argc, char **argv, cli_opt *opts, int maxpos,
              cli_args *out);

/* The value of o as a whole decimal number in [lo, hi]; *out is left alone
 * when o was not given. 0, or prints "PROG: --o must be a number from LO to
 * HI, not 'V'" and returns 2. */
int cli_number(const char *prog, const cli_opt *o, long long lo, long long hi, long long *out);
int cli_int(const char *prog, const cli_opt *o, int lo, int hi, int *out);

/* Print a usage error "PROG: WHY (see 'PROG --help')" and return 2. */
int cli_usage_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print text to stdout for --help; returns 0. */
int cli_help(const char *text);

/* Print v (consumed) pretty on stdout. 0, or -ENOMEM when v is NULL or
 * cannot be printed (said on stderr), -EIO when stdout fails. */
int cli_print_json(json_t *v);

/* version.c */

/* "0.2.0 (git v0.1-12-gabcdef)": the CMake project version and the
 * `git describe` of the tree at configure time, when there was one. */
const char *cli_version(void);

#endif
