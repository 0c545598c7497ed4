/* main.c - the qfleet command: dispatch to subcommands (src/cli/cmd_*.c). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "src/cli/cmd.h"

static const struct cmd {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} cmds[] = {
    /* CMD-TABLE: one line per subcommand, kept in the order of the help text. */
    { "up", cmd_up, "launch guests from a cfg and follow them to ready" },
    { "down", cmd_down, "stop a running fleet and its controller" },
    { "migrate", cmd_migrate, "live-migrate a guest into an awaiting one of the same run" },
    { "templates", cmd_templates, "list or remove the templates warm clones start from" },
    { "run", cmd_run, "run test suites in parallel" },
    { "report", cmd_report, "write the HTML report of a run's status dir" },
    { "leases", cmd_leases, "list leases held on this host" },
    { "alloc", cmd_alloc, "take a MAC, VNC display or port lease for a script" },
    { "free", cmd_free, "release every lease of an owner" },
    { "cmdline", cmd_cmdline, "print the QEMU command line of a VM without launching it" },
    { NULL, NULL, NULL },
};

static void usage(FILE *f)
{
    fprintf(f, "usage: qfleet COMMAND [ARGS]...\n\ncommands:\n");
    for (const struct cmd *c = cmds; c->name; c++)
        fprintf(f, "  %-10s %s\n", c->name, c->help);
    fprintf(f, "\n'qfleet COMMAND --help' describes each command; 'qfleet --version' says which\n"
               "qfleet this is.\n");
}

int main(int argc, char **argv)
{
    /* A peer that went away (QEMU exiting mid-write) is an error on that
     * connection, never a reason for the controller to die. */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("qfleet %s\n", cli_version());
        return 0;
    }
    for (const struct cmd *c = cmds; c->name; c++)
        if (!strcmp(c->name, argv[1]))
            return c->fn(argc - 1, argv + 1);
    fprintf(stderr, "qfleet: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
