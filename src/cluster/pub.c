/* pub.c - keys this session writes on its lease and keeps written: its
 * host record and its published guests. Publishing only records the latest
 * value and marks it dirty; advance writes what is dirty, one request per
 * key at a time, so a burst of updates to one guest costs one write. After
 * a new lease everything is written again. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/cluster/cluster_int.h"

static cpub *pub_find(cluster_t *c, const char *key)
{
    for (cpub *p = c->pubs; p; p = p->next)
        if (strcmp(p->key, key) == 0)
            return p;
    return NULL;
}

int cluster__pub_set(cluster_t *c, const char *key, const json_t *v)
{
    cpub *p = pub_find(c, key);
    char *text = NULL;
    if (v && !(text = json_dump(v, NULL)))
        return -ENOMEM;
    if (!p) {
        if (!v)
            return 0;
        if (!(p = calloc(1, sizeof(*p)))) {
            free(text);
            return -ENOMEM;
        }
        snprintf(p->key, sizeof(p->key), "%s", key);
        p->next = c->pubs;
        c->pubs = p;
    }
    free(p->v);
    p->v = text;
    p->dirty = 1;
    cluster__kick(c);
    return 0;
}

static void on_pub_reply(int res, long status, const char *body, size_t len, const char *err,
                         void *data)
{
    cpub *p = data;
    p->inflight = 0;
    if (res < 0)
        p->dirty = 1; /* written again from the next advance that finds etcd */
    /* The session is reached through the list: kick from there. */
}

void cluster__pubs_advance(cluster_t *c)
{
    if (c->state != CLUSTER_LIVE || !c->lease)
        return;
    cpub **pp = &c->pubs;
    while (*pp) {
        cpub *p = *pp;
        if (!p->dirty && !p->inflight && !p->v) {
            *pp = p->next; /* dropped and deleted */
            free(p);
            continue;
        }
        if (p->dirty && !p->inflight) {
            char *body = p->v ? cluster__etcd_put_body(p->key, p->v, c->lease)
                              : cluster__etcd_delete_body(p->key, c->lease);
            const char *path = p->v ? "/v3/kv/put" : "/v3/kv/txn";
            if (body && cluster__http_post(c->http, path, body, on_pub_reply, p, NULL) == 0) {
                p->dirty = 0;
                p->inflight = 1;
            }
            free(body);
        }
        pp = &p->next;
    }
}

void cluster__pubs_dirty(cluster_t *c)
{
    for (cpub *p = c->pubs; p; p = p->next)
        p->dirty = 1;
}

void cluster__pubs_free(cluster_t *c)
{
    while (c->pubs) {
        cpub *p = c->pubs;
        c->pubs = p->next;
        free(p->v);
        free(p);
    }
}

int cluster_publish(cluster_t *c, const char *name, const json_t *v)
{
    if (!c || !name || !*name || strlen(name) >= CLUSTER_OWNER_MAX || strchr(name, '\n'))
        return -EINVAL;
    if (c->closing)
        return -ESHUTDOWN;
    char key[CLUSTER__KEY_MAX];
    snprintf(key, sizeof(key), "/qfleet/guest/%s/%s", c->host, name);
    if (!v)
        return cluster__pub_set(c, key, NULL);
    if (json_typeof(v) != JSON_OBJECT)
        return -EINVAL;
    json_t *copy = json_copy(v);
    if (!copy || json_set_str(copy, "host", c->host) < 0) {
        json_free(copy);
        return -ENOMEM;
    }
    int rc = cluster__pub_set(c, key, copy);
    json_free(copy);
    return rc;
}
