/* cmd.h - qfleet subcommands. Each takes argv with argv[0] = its own name
 * and returns the process exit code: 0 ok, 1 failure, 2 usage/config error,
 * 3 infrastructure error. */
#ifndef QF_CMD_H
#define QF_CMD_H

#endif
