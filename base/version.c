/* version.c - what `qfleet --version` and `qmpctl --version` say. The
 * numbers come from CMake at configure time (base/CMakeLists.txt). */
#include "base/cli.h"
#include "qf_version.h"

const char *cli_version(void)
{
    return QF_GIT_DESCRIBE[0] ? QF_VERSION " (git " QF_GIT_DESCRIBE ")" : QF_VERSION;
}
