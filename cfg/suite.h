/* suite.h - suite files: which guests a test suite needs and the ordered
 * steps of its cases (format: cfg/SUITES.md).
 *
 *   struct suite *s;
 *   char err[1024];
 *   if (suite_load("conf/smoke.suite", &s, err, sizeof(err)) < 0) {
 *       fprintf(stderr, "%s\n", err);   "smoke.suite:12:5: error: ..."
 *       exit(2);
 *   }
 *   ... s->guests, s->cases[i].steps ...; cfg_vm_from_docs(s->doc, ...)
 *   suite_free(s);
 *
 * suite_parse checks the suite file alone; suite_resolve then loads the
 * DTS cfg it names, validates every VM section it uses, every guest a
 * step or a ${guest.NAME.FIELD} variable refers to and every interactive
 * session a step names (and adds the implicit closes at the end of each
 * case). suite_load does both.
 * Functions return 0 or a negative errno and put one line
 * "FILE:LINE:COL: error: WHAT" into err. */
#ifndef QF_CFG_SUITE_H
#define QF_CFG_SUITE_H

#include <stddef.h>

#include "cfg/parse.h"

#define SUITE_NAME_MAX 64     /* suite and case names: [A-Za-z0-9_.-] */
#define SUITE_COUNT_MAX 999   /* instances of one VM section */
#define SUITE_TIMEOUT_DEFAULT_MS 60000
#define SUITE_SESSIONS_MAX 16 /* interactive sessions open at once in one case */

enum suite_verb {
    SV_RUN = 1,   /* a shell command in a guest (ssh or agent) */
    SV_HOST,      /* a shell command on the host */
    SV_QMP,       /* a QMP command to a guest's QEMU */
    SV_QGA,       /* a guest agent command */
    SV_COPY_TO,   /* host file -> guest */
    SV_COPY_FROM, /* guest file -> host */
    SV_SLEEP,
    SV_SPAWN,     /* start a program on a fresh interactive shell (ssh) */
    SV_SEND,      /* a line of text to an interactive session */
    SV_EXPECT,    /* wait until a session's output matches a regex */
    SV_CLOSE,     /* end an interactive session (no-op when not open) */
    SV_MIGRATE,   /* live-migrate the guest running in one guest into another */
};

enum suite_transport {
    ST_DEFAULT = 0, /* the suite's transport */
    ST_SSH,
    ST_AGENT,
};

enum suite_subject {
    SX_EXIT = 1, /* run/host: exit status */
    SX_STDOUT,
    SX_STDERR,
    SX_OUTPUT,   /* stdout then stderr */
    SX_ERROR,    /* qmp/qga: "CLASS: description" of an error reply */
    SX_PATH,     /* qmp/qga: dotted path into the return value */
};

enum suite_op {
    SO_EQ = 1, /* =  */
    SO_NE,     /* != */
    SO_MATCH,  /* ~  POSIX extended regex, found anywhere */
    SO_NOMATCH /* !~ */
};

struct suite_expect {
    enum suite_subject subject;
    const char *path;  /* SX_PATH: "*.devices.*.qdev_id", "." for the root */
    enum suite_op op;
    const char *value; /* may hold ${variables} */
    struct cfg_loc loc;
};

struct suite_step {
    enum suite_verb verb;
    const char *guest;       /* logical guest name; NULL for host and sleep */
    enum suite_transport via;
    const char *text;        /* command; QMP/agent command name; copy source */
    const char *arg;         /* QMP/agent arguments (JSON object text) or
                              * copy destination; NULL when absent */
    int timeout_ms;          /* 0: the suite's timeout; sleep: its length */
    const struct suite_expect *ex;
    int nex;
    int has_exit;            /* an "expect exit" clause exists */
    const char *source;      /* the step line as written, for reports */
    struct cfg_loc loc;
    /* Interactive sessions (spawn, send, expect, close). */
    const char *session;     /* its name: "as NAME", else the guest's name */
    int implicit;            /* close: added at the end of a case, not written */
    /* migrate SRC -> DST: guest is SRC. */
    const char *dest;        /* DST, a logical guest */
    long long downtime_ms;   /* downtime-limit clause; 0: QEMU's default */
    long long bandwidth;     /* max-bandwidth clause, bytes per second; 0: QEMU's */
};

struct suite_case {
    const char *name;        /* "" for the set_up/tear_down blocks */
    const struct suite_step *steps;
    int nsteps;
    struct cfg_loc loc;
    /* Filled by suite_resolve for cases and [tear_down_all]: an implicit
     * close for every session spawned in the case's set_up, body or
     * tear_down (its own steps for tear_down_all), run after all of them,
     * also after a failure. */
    const struct suite_step *closes;
    int ncloses;
};

/* A VM section and how many instances of it the suite runs. */
struct suite_vm {
    const char *section;
    int count;
    struct cfg_loc loc;
};

/* One guest instance as steps name it: "vm0" (count 1) or "vm0-3". */
struct suite_guest {
    const char *name;
    const char *section;
    int mem_mb;              /* facts of the VM, filled by suite_resolve */
    const int *cpupin;
    int ncpupin;
    int vnc;                 /* -1 none, -2 allocated, else a fixed display */
    int has_login;           /* the cfg gives a login and an SSH forward */
    int has_agent;           /* the cfg enables qga */
};

struct suite {
    const char *path;        /* as given */
    const char *dir;         /* absolute directory of the file */
    const char *name;        /* name key, else the file name without .suite */
    const char *description; /* "" if none */
    const char *cfg;         /* absolute path of the DTS cfg */
    const char *defaults;    /* absolute path of the [KVM] defaults, or NULL */
    const struct suite_vm *vms; /* empty: every section of cfg once */
    int nvms;
    int setup_each;          /* setup = each or clone: fresh guests for every case */
    int setup_clone;         /* setup = clone: ... started from templates (fleet_opts.clone) */
    int timeout_ms;          /* default step timeout */
    int boot_timeout_s;      /* 0: the cfg's wait_seconds */
    enum suite_transport transport; /* ST_DEFAULT: ssh if the cfg has a login */
    struct suite_case set_up_all, set_up, tear_down, tear_down_all;
    const struct suite_case *cases;
    int ncases;

    struct cfg_loc cfg_loc, vms_loc; /* of the cfg and vms values */

    /* Filled by suite_resolve. */
    const struct suite_guest *guests;
    int nguests;
    struct cfg_doc *doc, *defaults_doc; /* for cfg_vm_from_docs */
    const char *const *warnings; /* the cfg's, "FILE:LINE:COL: warning: ..." */
    int nwarnings;

    struct arena *arena;     /* owns everything above */
};

int suite_load(const char *path, struct suite **out, char *err, size_t errlen);
/* Parse text[0..len) as if read from path (which need not exist). */
int suite_parse(const char *path, const char *text, size_t len, struct suite **out, char *err,
                size_t errlen);
/* Load the cfg, expand the guests, check every reference. */
int suite_resolve(struct suite *s, char *err, size_t errlen);
void suite_free(struct suite *s);

/* Index of a guest by its logical name, or -1. */
int suite_guest_index(const struct suite *s, const char *name);

/* The transport a step uses in the end: its own, else the suite's, else ssh
 * when the guest's VM has a login, else the agent. */
enum suite_transport suite_step_transport(const struct suite *s, const struct suite_step *st,
                                          int has_login);

/* ${variables}: resolve gets a name ("tmp", "guest.vm0-1.pid") and returns
 * its value (NULL: unknown). "$${" stands for a literal "${". Returns a
 * malloc'd string, or NULL with the unknown name in err. */
typedef const char *(*suite_var_fn)(const char *name, void *data);
char *suite_expand(const char *text, suite_var_fn resolve, void *data, char *err, size_t errlen);

const char *suite_verb_name(enum suite_verb v);

#endif
