/* test_control.c - the control socket: a real fleet's server on a real Unix
 * socket, driven by the blocking client and by raw bytes from a thread. */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/json.h"
#include "src/ctl/control.h"
#include "src/fleet/fleet.h"
#include "testutil.h"

static char dir[256], sock[320];

struct server {
    uv_loop_t loop;
    fleet_t *f;
    control_t *ctl;
    uv_async_t wake;
    int downs;
};

static void on_down(control_t *c, void *data) { ((struct server *)data)->downs++; }

static void on_wake(uv_async_t *a)
{
    struct server *s = a->data;
    control_close(s->ctl);
    fleet_free(s->f, NULL, NULL);
    uv_close((uv_handle_t *)&s->wake, NULL);
}

static void *serve(void *arg)
{
    struct server *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void start(struct server *s, pthread_t *th)
{
    char err[512], state[300], run[300];
    cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "ctl"), 0);
    snprintf(state, sizeof(state), "%s/state", dir);
    snprintf(run, sizeof(run), "%s/run", dir);
    snprintf(sock, sizeof(sock), "%s/control.sock", run);
    uv_loop_init(&s->loop);
    fleet_opts o = { .state_dir = state, .run_dir = run };
    cr_assert_eq(fleet_new(&s->loop, &o, NULL, NULL, &s->f, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(control_start(&s->loop, s->f, sock, on_down, s, &s->ctl, err, sizeof(err)), 0, "%s", err);
    uv_async_init(&s->loop, &s->wake, on_wake);
    s->wake.data = s;
    cr_assert_eq(pthread_create(th, NULL, serve, s), 0);
}

static void stop(struct server *s, pthread_t th)
{
    uv_async_send(&s->wake);
    pthread_join(th, NULL);
    uv_loop_close(&s->loop);
    tu_rmtree(dir);
}

static json_t *ask(const char *text)
{
    char err[256];
    json_t *req = json_parse(text, strlen(text), err, sizeof(err));
    cr_assert(req, "%s", err);
    json_t *rep = NULL;
    cr_assert_eq(control_request(sock, req, &rep, 5000, err, sizeof(err)), 0, "%s", err);
    json_free(req);
    return rep;
}

Test(control, socket_is_private)
{
    struct server s = { 0 };
    pthread_t th;
    start(&s, &th);
    struct stat st;
    cr_assert_eq(stat(sock, &st), 0);
    cr_assert(S_ISSOCK(st.st_mode));
    cr_assert_eq(st.st_mode & 0077, 0, "control socket mode %o", st.st_mode & 0777);
    stop(&s, th);
}

Test(control, requests_and_errors)
{
    struct server s = { 0 };
    pthread_t th;
    start(&s, &th);

    json_t *r = ask("{\"id\":7,\"cmd\":\"status\"}");
    cr_assert_eq(json_get_int(r, "id", -1), 7, "the reply echoes the id");
    cr_assert_eq(json_get_int(json_get(r, "return"), "version", 0), 1);
    cr_assert_eq(json_len(json_path(r, "return.guests")), 0);
    json_free(r);

    r = ask("{\"cmd\":\"qga\",\"guest\":\"vm9\",\"execute\":\"guest-ping\"}");
    cr_assert_str_eq(json_str(json_path(r, "error.class")), "NoSuchGuest");
    cr_assert(strstr(json_str(json_path(r, "error.desc")), "vm9"));
    json_free(r);

    r = ask("{\"cmd\":\"reboot-the-host\"}");
    cr_assert_str_eq(json_str(json_path(r, "error.class")), "BadRequest");
    json_free(r);

    r = ask("{\"no\":\"cmd\"}");
    cr_assert_str_eq(json_str(json_path(r, "error.class")), "BadRequest");
    json_free(r);

    r = ask("[1,2,3]");
    cr_assert_str_eq(json_str(json_path(r, "error.class")), "BadRequest");
    json_free(r);

    r = ask("{\"cmd\":\"down\"}");
    cr_assert(json_get(r, "return"));
    json_free(r);
    stop(&s, th);
    cr_assert_eq(s.downs, 1);
}

Test(control, garbage_then_a_good_request_on_one_connection)
{
    struct server s = { 0 };
    pthread_t th;
    start(&s, &th);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, sock);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    /* Not JSON, binary junk, then a real request: each line gets an answer
     * and the connection survives the garbage. */
    const char junk[] = "this is not json\n\x01\x02\xff\xfe{]\n{\"cmd\":\"status\",\"id\":3}\n";
    cr_assert_eq(write(fd, junk, sizeof(junk) - 1), (ssize_t)(sizeof(junk) - 1));
    char buf[65536];
    size_t len = 0;
    int lines = 0;
    double end = tu_now_ms() + 5000;
    while (lines < 3 && tu_now_ms() < end) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        cr_assert_gt(n, 0, "the controller dropped the connection");
        len += (size_t)n;
        buf[len] = '\0';
        lines = 0;
        for (char *p = buf; (p = strchr(p, '\n')); p++)
            lines++;
    }
    cr_assert_eq(lines, 3, "got: %s", buf);
    char *second = strchr(buf, '\n') + 1, *third = strchr(second, '\n') + 1;
    json_t *a = json_parse(buf, (size_t)(second - 1 - buf), NULL, 0);
    json_t *c = json_parse(third, strcspn(third, "\n"), NULL, 0);
    cr_assert_str_eq(json_str(json_path(a, "error.class")), "BadRequest");
    cr_assert_eq(json_get_int(c, "id", -1), 3);
    cr_assert(json_get(c, "return"));
    json_free(a);
    json_free(c);
    close(fd);
    stop(&s, th);
}

Test(control, client_reports_a_missing_controller)
{
    char err[256];
    json_t *req = json_object(), *rep = NULL;
    json_set_str(req, "cmd", "status");
    int rc = control_request("/nonexistent/control.sock", req, &rep, 1000, err, sizeof(err));
    cr_assert_lt(rc, 0);
    cr_assert(strstr(err, "controller"), "%s", err);
    json_free(req);
}
