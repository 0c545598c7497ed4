/* listener.c - Unix socket server on libuv's pipe listen/accept. See listener.h. */
#include "qmp/listener.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define BACKLOG 128
/* After a failed allocation for a waiting client, try again this late:
 * libuv does not watch the socket while a client waits to be accepted. */
#define RETRY_MS 100

struct listener {
    uv_loop_t *loop;
    uv_pipe_t pipe;
    uv_timer_t retry;
    int dirfd;              /* O_PATH descriptor of the socket's directory */
    char name[256];         /* the socket's name in it */
    char path[4096];        /* for messages */
    dev_t dev;              /* the socket file we made, to unlink only ours */
    ino_t ino;
    listener_conn_cb cb;
    void *data;
    listener_close_cb close_cb;
    void *close_data;
    int closing;
    int open_handles;
    unsigned long dropped;
};

/* ---- addresses ---- */

/* Split path into its directory and name; the name must be short enough to
 * fit behind /proc/self/fd/N/. */
static int split(const char *path, char *dir, size_t dirlen, char *name, size_t namelen,
                 char *err, size_t errlen)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!*base || strlen(base) >= namelen) {
        snprintf(err, errlen, "%s: socket name '%s' must be 1 to %zu bytes", path, base, namelen - 1);
        return -ENAMETOOLONG;
    }
    if (!slash)
        snprintf(dir, dirlen, ".");
    else if (slash == path)
        snprintf(dir, dirlen, "/");
    else if ((size_t)(slash - path) >= dirlen) {
        snprintf(err, errlen, "%.200s...: path too long", path);
        return -ENAMETOOLONG;
    } else
        snprintf(dir, dirlen, "%.*s", (int)(slash - path), path);
    snprintf(name, namelen, "%s", base);
    return 0;
}

static int proc_fd_works(int dirfd)
{
    char probe[64];
    snprintf(probe, sizeof(probe), "/proc/self/fd/%d", dirfd);
    return dirfd >= 0 && access(probe, F_OK) == 0;
}

/* sun_path for name in the directory dirfd: the directory's /proc/self/fd
 * link (it resolves to exactly the directory we opened and checked) when
 * via_dir or when path does not fit, else path itself. */
static int address(const char *path, int dirfd, const char *name, int via_dir,
                   struct sockaddr_un *sa, char *err, size_t errlen)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    int fits = strlen(path) < sizeof(sa->sun_path);
    if (fits && !(via_dir && proc_fd_works(dirfd))) {
        memcpy(sa->sun_path, path, strlen(path) + 1);
        return 0;
    }
    int n = snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", dirfd, name);
    if (n < 0 || (size_t)n >= sizeof(sa->sun_path)) {
        snprintf(err, errlen, "%s: socket name too long (sun_path holds %zu bytes)", path,
                 sizeof(sa->sun_path) - 1);
        return -ENAMETOOLONG;
    }
    if (!proc_fd_works(dirfd)) {
        snprintf(err, errlen, "%s: %zu bytes is over the %zu of a Unix socket address, and /proc "
                 "is not mounted to reach it through its directory", path, strlen(path),
                 sizeof(sa->sun_path) - 1);
        return -ENAMETOOLONG;
    }
    return 0;
}

static int open_dir(const char *path, const char *dir, char *err, size_t errlen)
{
    int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: directory %s: %s", path, dir, strerror(e));
        return -e;
    }
    return fd;
}

static int dial_at(const char *path, int dirfd, const char *name, int nonblock, int *out,
                   char *err, size_t errlen)
{
    struct sockaddr_un sa;
    int rc = address(path, dirfd, name, 0, &sa, err, errlen);
    if (rc < 0)
        return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        if (fd >= 0)
            close(fd);
        return -e;
    }
    *out = fd;
    return 0;
}

int listener_dial(const char *path, int nonblock, int *fd, char *err, size_t errlen)
{
    char dir[4096], name[256];
    int rc = split(path, dir, sizeof(dir), name, sizeof(name), err, errlen);
    if (rc < 0)
        return rc;
    struct sockaddr_un sa;
    if (strlen(path) < sizeof(sa.sun_path))
        return dial_at(path, -1, name, nonblock, fd, err, errlen);
    int dirfd = open_dir(path, dir, err, errlen);
    if (dirfd < 0)
        return dirfd;
    rc = dial_at(path, dirfd, name, nonblock, fd, err, errlen);
    close(dirfd);
    return rc;
}

/* ---- binding ---- */

/* The directory must be ours and closed to writers other than us. */
static int check_dir(const char *path, const char *dir, int dirfd, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(dirfd, &st) < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: directory %s: %s", path, dir, strerror(e));
        return -e;
    }
    if (st.st_uid != geteuid()) {
        snprintf(err, errlen, "%s: directory %s belongs to uid %u, not to us (uid %u)", path, dir,
                 (unsigned)st.st_uid, (unsigned)geteuid());
        return -EPERM;
    }
    if (st.st_mode & 022) {
        snprintf(err, errlen, "%s: directory %s is mode %04o: others could replace the socket "
                 "(make it 0700)", path, dir, (unsigned)(st.st_mode & 07777));
        return -EPERM;
    }
    return 0;
}

/* A socket file already there: a live server keeps it, a dead one's goes. */
static int clear_stale(const char *path, int dirfd, const char *name, char *err, size_t errlen)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s exists and is not a socket", path);
        return -EEXIST;
    }
    int fd;
    char why[256];
    int rc = dial_at(path, dirfd, name, 1, &fd, why, sizeof(why));
    if (rc == 0 || rc == -EAGAIN) {
        if (rc == 0)
            close(fd);
        snprintf(err, errlen, "%s: another process is listening on it", path);
        return -EADDRINUSE;
    }
    if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT) {
        int e = errno;
        snprintf(err, errlen, "%s: cannot remove the stale socket: %s", path, strerror(e));
        return -e;
    }
    return 0;
}

/* socket, 0600 before bind (Linux gives the file the socket inode's mode
 * minus the umask), bind. The fd or -errno. */
static int bind_private(struct listener *l, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    int rc = address(l->path, l->dirfd, l->name, 1, &sa, err, errlen);
    if (rc < 0)
        return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || fchmod(fd, 0600) < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", l->path, strerror(e));
        if (fd >= 0)
            close(fd);
        return -e;
    }
    struct stat st;
    if (fstatat(l->dirfd, l->name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        l->dev = st.st_dev;
        l->ino = st.st_ino;
    }
    return fd;
}

/* ---- accepting ---- */

static void accept_one(struct listener *l);

static void on_retry(uv_timer_t *t)
{
    struct listener *l = t->data;
    if (!l->closing)
        accept_one(l);
}

static void accept_one(struct listener *l)
{
    conn_t *c = NULL;
    int rc = conn_new(l->loop, NULL, NULL, NULL, &c);
    if (rc < 0) {
        /* The client stays in the queue; libuv stops watching until then. */
        uv_timer_start(&l->retry, on_retry, RETRY_MS, 0);
        return;
    }
    rc = conn_accept(c, (uv_stream_t *)&l->pipe);
    if (rc < 0) {
        l->dropped++;
        conn_close(c, NULL, NULL);
        return;
    }
    conn_set_output_limit(c, LISTENER_OUT_SOFT, LISTENER_OUT_HARD);
    l->cb(l, c, l->data);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct listener *l = server->data;
    if (status < 0) {
        l->dropped++; /* libuv carries on with the next one */
        return;
    }
    if (l->closing)
        return;
    accept_one(l);
}

/* ---- start and close ---- */

static void on_handle_closed(uv_handle_t *h)
{
    struct listener *l = h->data;
    if (--l->open_handles > 0)
        return;
    if (l->dirfd >= 0)
        close(l->dirfd);
    if (l->close_cb)
        l->close_cb(l, l->close_data);
    free(l);
}

static int start_pipe(struct listener *l, int fd, char *err, size_t errlen)
{
    uv_pipe_init(l->loop, &l->pipe, 0);
    l->pipe.data = l;
    uv_timer_init(l->loop, &l->retry);
    l->retry.data = l;
    l->open_handles = 2;
    int rc = uv_pipe_open(&l->pipe, fd);
    if (rc < 0)
        close(fd);
    else
        rc = uv_listen((uv_stream_t *)&l->pipe, BACKLOG, on_connection);
    if (rc < 0)
        snprintf(err, errlen, "%s: listen: %s", l->path, uv_strerror(rc));
    return rc;
}

int listener_start(uv_loop_t *loop, const char *path, listener_conn_cb cb, void *data,
                   listener_t **out, char *err, size_t errlen)
{
    if (!loop || !path || !cb || !out)
        return -EINVAL;
    struct listener *l = calloc(1, sizeof(*l));
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    l->loop = loop;
    l->cb = cb;
    l->data = data;
    l->dirfd = -1;
    snprintf(l->path, sizeof(l->path), "%s", path);
    char dir[4096];
    int rc = split(path, dir, sizeof(dir), l->name, sizeof(l->name), err, errlen);
    if (rc == 0 && (rc = l->dirfd = open_dir(path, dir, err, errlen)) >= 0)
        rc = check_dir(path, dir, l->dirfd, err, errlen);
    if (rc >= 0)
        rc = clear_stale(path, l->dirfd, l->name, err, errlen);
    int fd = rc >= 0 ? bind_private(l, err, errlen) : rc;
    if (fd < 0) {
        if (l->dirfd >= 0)
            close(l->dirfd);
        free(l);
        return fd;
    }
    rc = start_pipe(l, fd, err, errlen);
    if (rc < 0) {
        listener_close(l, NULL, NULL);
        return rc;
    }
    *out = l;
    return 0;
}

void listener_close(listener_t *l, listener_close_cb cb, void *data)
{
    if (!l || l->closing)
        return;
    l->closing = 1;
    l->close_cb = cb;
    l->close_data = data;
    /* Unlink first, so nobody new finds a server that is going away; and
     * only our own file: a successor may have bound the name already. */
    struct stat st;
    if (l->ino && fstatat(l->dirfd, l->name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        st.st_dev == l->dev && st.st_ino == l->ino)
        unlinkat(l->dirfd, l->name, 0);
    uv_close((uv_handle_t *)&l->pipe, on_handle_closed);
    uv_close((uv_handle_t *)&l->retry, on_handle_closed);
}

unsigned long listener_dropped(const listener_t *l)
{
    return l ? l->dropped : 0;
}
