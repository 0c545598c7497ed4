/* cmd_report.c - `qfleet report`: the HTML report of a run's status dir
 * (src/status/report.c), for a run that finished or one still going. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "src/cli/cmd.h"
#include "src/status/status.h"

static const char report_usage[] =
    "usage: qfleet report STATUS_DIR [-o FILE] [--json]\n"
    "\n"
    "Write one self-contained HTML page (no scripts, nothing fetched) of a\n"
    "qfleet run from its status dir (status.json, events.jsonl, junit.xml):\n"
    "suites and cases with result, time, failure message and folded steps and\n"
    "logs, and a timeline of every suite and guest instance (waiting for a\n"
    "guest slot of the run, each boot phase up to ready, stopping). `qfleet\n"
    "run` writes it to STATUS_DIR/report.html when it ends.\n"
    "\n"
    "options:\n"
    "  -o, --output FILE  write here (default STATUS_DIR/report.html)\n"
    "  --json             print {\"report\": PATH} instead of the path\n"
    "\n"
    "exit: 0 written, 1 no readable status.json there or the file cannot be\n"
    "      written, 2 usage\n";

int cmd_report(int argc, char **argv)
{
    static const char P[] = "qfleet report";
    enum { O_OUT, O_JSON };
    cli_opt opts[] = { { "--output", 'o', 1, NULL }, { "--json", 0, 0, NULL }, { NULL, 0, 0, NULL } };
    cli_args ca;
    if (cli_parse(P, argc, argv, opts, 1, &ca))
        return 2;
    if (ca.help)
        return cli_help(report_usage);
    if (ca.npos != 1)
        return cli_usage_error(P, "name the run's STATUS_DIR (it holds status.json)");
    const char *dir = ca.pos[0], *out = opts[O_OUT].value;
    char def[PATH_MAX + 32], err[1024];
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "%s: %s: %s\n", P, dir, errno ? strerror(errno) : "not a directory");
        return 1;
    }
    if (!out) {
        snprintf(def, sizeof(def), "%s/report.html", dir);
        out = def;
    }
    if (status_report_write(dir, out, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", P, err);
        return 1;
    }
    if (opts[O_JSON].value) {
        json_t *v = json_object();
        json_set_str(v, "report", out);
        return cli_print_json(v) < 0 ? 1 : 0;
    }
    printf("%s\n", out);
    return 0;
}
