/* agent_cmds.c - the typed guest-agent commands: building their arguments
 * and turning their replies into the small structs of agent.h. */
#include "qmp/agent_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base64.h"

/* ---- results ---- */

void agent__call_err(agent_t *a, struct acmd *k, const conn_err *e)
{
    if (!k->has_cb)
        return;
    switch (k->kind) {
    case K_RAW: k->cb.raw(a, NULL, e, k->data); break;
    case K_DONE: k->cb.done(a, e, k->data); break;
    case K_INT: k->cb.i(a, -1, e, k->data); break;
    case K_INFO: k->cb.info(a, NULL, e, k->data); break;
    case K_IFACES: k->cb.ifaces(a, NULL, 0, e, k->data); break;
    case K_EXEC_STATUS: k->cb.st(a, NULL, e, k->data); break;
    case K_READ: k->cb.rd(a, NULL, 0, 0, e, k->data); break;
    case K_WRITE: k->cb.wr(a, 0, e, k->data); break;
    }
}

/* Returns NULL or a description of what is wrong with ret. */
static const char *deliver_info(agent_t *a, struct acmd *k, const json_t *ret)
{
    if (json_typeof(ret) != JSON_OBJECT)
        return "not an object";
    const json_t *sc = json_get(ret, "supported_commands");
    size_t n = json_typeof(sc) == JSON_ARRAY ? json_len(sc) : 0;
    const char **names = calloc(n + 1, sizeof(*names));
    if (!names)
        return "out of memory";
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_at(sc, i);
        const char *name = json_get_str(e, "name");
        if (name && json_get_bool(e, "enabled", 1))
            names[m++] = name;
    }
    const char *ver = json_get_str(ret, "version");
    agent_info info = { .version = ver ? ver : "", .ncommands = m, .commands = names };
    k->cb.info(a, &info, NULL, k->data);
    free(names);
    return NULL;
}

static const char *deliver_ifaces(agent_t *a, struct acmd *k, const json_t *ret)
{
    if (json_typeof(ret) != JSON_ARRAY)
        return "not an array";
    size_t n = json_len(ret), total = 0;
    for (size_t i = 0; i < n; i++)
        total += json_len(json_get(json_at(ret, i), "ip-addresses"));
    agent_iface *ifs = calloc(n + 1, sizeof(*ifs));
    agent_ipaddr *addrs = calloc(total + 1, sizeof(*addrs));
    const char *bad = NULL;
    if (!ifs || !addrs) {
        bad = "out of memory";
        goto out;
    }
    size_t used = 0;
    for (size_t i = 0; i < n && !bad; i++) {
        const json_t *e = json_at(ret, i);
        ifs[i].name = json_get_str(e, "name");
        ifs[i].hwaddr = json_get_str(e, "hardware-address");
        ifs[i].addrs = addrs + used;
        if (!ifs[i].name) {
            bad = "interface without a name";
            break;
        }
        const json_t *ips = json_get(e, "ip-addresses");
        for (size_t j = 0; j < json_len(ips); j++) {
            const json_t *ip = json_at(ips, j);
            const char *type = json_get_str(ip, "ip-address-type");
            const char *addr = json_get_str(ip, "ip-address");
            if (!type || !addr) {
                bad = "address without a type or text";
                break;
            }
            if (strcmp(type, "ipv4") && strcmp(type, "ipv6"))
                continue; /* a future family: not ours to show */
            agent_ipaddr *ad = &addrs[used++];
            ad->family = type[3] == '4' ? 4 : 6;
            ad->addr = addr;
            ad->prefix = (int)json_get_int(ip, "prefix", -1);
            ifs[i].naddrs++;
        }
    }
    if (!bad)
        k->cb.ifaces(a, ifs, n, NULL, k->data);
out:
    free(ifs);
    free(addrs);
    return bad;
}

/* Decode the base64 member key of obj; absent means empty. */
static unsigned char *decode_member(const json_t *obj, const char *key, size_t *len)
{
    const json_t *v = json_get(obj, key);
    if (!v) {
        *len = 0;
        return calloc(1, 1);
    }
    if (json_typeof(v) != JSON_STRING)
        return NULL;
    return qf_base64_decode(json_str(v), json_len(v), len);
}

static const char *deliver_exec_status(agent_t *a, struct acmd *k, const json_t *ret)
{
    if (json_typeof(ret) != JSON_OBJECT)
        return "not an object";
    agent_exec_result st = {
        .exited = json_get_bool(ret, "exited", 0),
        .exitcode = (int)json_get_int(ret, "exitcode", -1),
        .signal = (int)json_get_int(ret, "signal", -1),
        .out_truncated = json_get_bool(ret, "out-truncated", 0),
        .errout_truncated = json_get_bool(ret, "err-truncated", 0),
    };
    unsigned char *out = decode_member(ret, "out-data", &st.out_len);
    unsigned char *err = decode_member(ret, "err-data", &st.errout_len);
    const char *bad = NULL;
    if (!out || !err) {
        bad = "bad base64 in out-data or err-data";
    } else {
        st.out = out;
        st.errout = err;
        k->cb.st(a, &st, NULL, k->data);
    }
    free(out);
    free(err);
    return bad;
}

/* Hand a successful reply to k's callback in the shape its kind wants. */
const char *agent__call_ok(agent_t *a, struct acmd *k, const json_t *ret)
{
    if (!k->has_cb)
        return NULL;
    const char *bad = NULL;
    long long v;
    switch (k->kind) {
    case K_RAW: k->cb.raw(a, ret, NULL, k->data); break;
    case K_DONE: k->cb.done(a, NULL, k->data); break;
    case K_INT:
        if (json_as_int(k->int_key ? json_get(ret, k->int_key) : ret, &v) < 0)
            bad = "no integer result";
        else
            k->cb.i(a, v, NULL, k->data);
        break;
    case K_INFO: bad = deliver_info(a, k, ret); break;
    case K_IFACES: bad = deliver_ifaces(a, k, ret); break;
    case K_EXEC_STATUS: bad = deliver_exec_status(a, k, ret); break;
    case K_READ: {
        size_t len;
        unsigned char *buf = decode_member(ret, "buf-b64", &len);
        if (json_typeof(ret) != JSON_OBJECT || !buf) {
            bad = "no valid buf-b64";
        } else {
            k->cb.rd(a, buf, len, json_get_bool(ret, "eof", 0), NULL, k->data);
        }
        free(buf);
        break;
    }
    case K_WRITE:
        if (json_as_int(json_get(ret, "count"), &v) < 0 || v < 0)
            bad = "no count";
        else
            k->cb.wr(a, (size_t)v, NULL, k->data);
        break;
    }
    return bad;
}

/* ---- commands ---- */

#define SUBMIT(a, cmd, args, timeout, kind, member, cbfn, data)                 \
    do {                                                                         \
        int rc_;                                                                 \
        struct acmd *k_ = agent__new_cmd((a), (cmd), (args), (timeout), (kind), &rc_); \
        if (!k_)                                                                 \
            return rc_;                                                          \
        k_->cb.member = (cbfn);                                                  \
        k_->has_cb = (cbfn) != NULL;                                             \
        return agent__enqueue((a), k_, (data));                                         \
    } while (0)

int agent_execute(agent_t *a, const char *cmd, json_t *args, int timeout_ms, agent_reply_cb cb,
                  void *data)
{
    SUBMIT(a, cmd, args, timeout_ms, K_RAW, raw, cb, data);
}

int agent_ping(agent_t *a, int timeout_ms, agent_done_cb cb, void *data)
{
    SUBMIT(a, "guest-ping", NULL, timeout_ms, K_DONE, done, cb, data);
}

int agent_get_info(agent_t *a, int timeout_ms, agent_info_cb cb, void *data)
{
    SUBMIT(a, "guest-info", NULL, timeout_ms, K_INFO, info, cb, data);
}

int agent_get_interfaces(agent_t *a, int timeout_ms, agent_ifaces_cb cb, void *data)
{
    SUBMIT(a, "guest-network-get-interfaces", NULL, timeout_ms, K_IFACES, ifaces, cb, data);
}

int agent_shutdown(agent_t *a, const char *mode, agent_done_cb cb, void *data)
{
    json_t *args = NULL;
    if (mode) {
        args = json_object();
        if (!args || json_set_str(args, "mode", mode) < 0) {
            json_free(args);
            return -ENOMEM;
        }
    }
    SUBMIT(a, "guest-shutdown", args, 0, K_DONE, done, cb, data);
}

static json_t *str_array(const char *const *v)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && v && v[i]; i++) {
        if (json_append(arr, json_string(v[i])) < 0) {
            json_free(arr);
            return NULL;
        }
    }
    return arr;
}

int agent_exec(agent_t *a, const agent_exec_opts *o, int timeout_ms, agent_int_cb cb, void *data)
{
    if (!o || !o->path)
        return -EINVAL;
    json_t *args = json_object();
    int rc = args ? json_set_str(args, "path", o->path) : -ENOMEM;
    if (rc == 0 && o->argv)
        rc = json_set(args, "arg", str_array(o->argv));
    if (rc == 0 && o->env)
        rc = json_set(args, "env", str_array(o->env));
    if (rc == 0 && o->input) {
        char *b64 = qf_base64_encode(o->input, o->input_len, NULL);
        rc = b64 ? json_set_str(args, "input-data", b64) : -ENOMEM;
        free(b64);
    }
    if (rc == 0)
        rc = json_set_bool(args, "capture-output", !!o->capture_output);
    if (rc < 0) {
        json_free(args);
        return -ENOMEM;
    }
    int rc2;
    struct acmd *k = agent__new_cmd(a, "guest-exec", args, timeout_ms, K_INT, &rc2);
    if (!k)
        return rc2;
    k->int_key = "pid";
    k->cb.i = cb;
    k->has_cb = cb != NULL;
    return agent__enqueue(a, k, data);
}

int agent_exec_status(agent_t *a, long long pid, int timeout_ms, agent_exec_status_cb cb,
                      void *data)
{
    json_t *args = json_object();
    if (!args || json_set_int(args, "pid", pid) < 0) {
        json_free(args);
        return -ENOMEM;
    }
    SUBMIT(a, "guest-exec-status", args, timeout_ms, K_EXEC_STATUS, st, cb, data);
}

int agent_file_open(agent_t *a, const char *path, const char *mode, int timeout_ms, agent_int_cb cb,
                    void *data)
{
    if (!path)
        return -EINVAL;
    json_t *args = json_object();
    int rc = args ? json_set_str(args, "path", path) : -ENOMEM;
    if (rc == 0 && mode)
        rc = json_set_str(args, "mode", mode);
    if (rc < 0) {
        json_free(args);
        return -ENOMEM;
    }
    SUBMIT(a, "guest-file-open", args, timeout_ms, K_INT, i, cb, data);
}

int agent_file_read(agent_t *a, long long handle, size_t count, int timeout_ms, agent_read_cb cb,
                    void *data)
{
    json_t *args = json_object();
    if (!args || json_set_int(args, "handle", handle) < 0 ||
        json_set_int(args, "count", (long long)count) < 0) {
        json_free(args);
        return -ENOMEM;
    }
    SUBMIT(a, "guest-file-read", args, timeout_ms, K_READ, rd, cb, data);
}

int agent_file_write(agent_t *a, long long handle, const void *buf, size_t len, int timeout_ms,
                     agent_write_cb cb, void *data)
{
    if (!buf && len)
        return -EINVAL;
    char *b64 = qf_base64_encode(buf ? buf : "", len, NULL);
    json_t *args = json_object();
    if (!b64 || !args || json_set_int(args, "handle", handle) < 0 ||
        json_set_str(args, "buf-b64", b64) < 0 || json_set_int(args, "count", (long long)len) < 0) {
        free(b64);
        json_free(args);
        return -ENOMEM;
    }
    free(b64);
    SUBMIT(a, "guest-file-write", args, timeout_ms, K_WRITE, wr, cb, data);
}

int agent_file_close(agent_t *a, long long handle, int timeout_ms, agent_done_cb cb, void *data)
{
    json_t *args = json_object();
    if (!args || json_set_int(args, "handle", handle) < 0) {
        json_free(args);
        return -ENOMEM;
    }
    SUBMIT(a, "guest-file-close", args, timeout_ms, K_DONE, done, cb, data);
}

