/* peer.c: the Raft peer transport (see peer.h for the frame and the design block);
 * the pure frame codec is peer_frame.c. */
#include "sctld/peer.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/util.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000

struct peer {
    struct peer_net *net;
    struct peer_info info;
    struct bufferevent *out;
    bool connecting;
    unsigned backoff_ms;
    struct event *retry;
};

struct inbound {
    struct peer_net *net;
    struct bufferevent *bev;
    uint64_t from;         /* 0 until the hello */
    char client_addr[128]; /* from the hello: for a peer added after it arrived */
    struct inbound *prev, *next;
};

struct peer_net {
    struct event_base *base;
    const struct peer_sock_ops *ops;
    uint64_t self_id;
    char self_name[64], client_addr[128];
    uint64_t rng;
    peer_recv_fn recv;
    void *ud;
    struct evconnlistener *listener;
    struct peer *peers[PEER_MAX_MEMBERS];
    size_t npeers;
    struct inbound *in;
};

static struct bufferevent *plain_wrap(void *ud, struct event_base *base, int fd, bool accepted,
                                      const char *host)
{
    return bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
}
const struct peer_sock_ops peer_sock_plain = {.wrap = plain_wrap};

/* ---- frames ------------------------------------------------------------------------- */

static void put_frame(struct bufferevent *bev, enum peer_frame_type type, const uint8_t *body,
                      size_t len)
{
    uint8_t hdr[PEER_FRAME_HDR];
    peer_frame_encode(type, body, len, hdr);
    struct evbuffer *out = bufferevent_get_output(bev);
    evbuffer_add(out, hdr, sizeof(hdr));
    evbuffer_add(out, body, len);
}

/* ---- outbound ------------------------------------------------------------------------ */

static struct peer *find(const struct peer_net *n, uint64_t id)
{
    for (size_t i = 0; i < n->npeers; i++)
        if (n->peers[i]->info.id == id)
            return n->peers[i];
    return NULL;
}

static uint64_t rng_next(struct peer_net *n)
{
    uint64_t z = (n->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void schedule_retry(struct peer *p)
{
    unsigned ms = p->backoff_ms ? p->backoff_ms : BACKOFF_MIN_MS;
    p->backoff_ms = MIN(ms * 2, (unsigned)BACKOFF_MAX_MS);
    /* +-25% jitter, so that members do not reconnect in lock step */
    ms = ms * 3 / 4 + (unsigned)(rng_next(p->net) % (ms / 2 + 1));
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(p->retry, &tv);
}

static void drop_out(struct peer *p)
{
    if (p->out)
        bufferevent_free(p->out);
    p->out = NULL;
    p->connecting = false;
    p->info.up = false;
}

static void out_event(struct bufferevent *bev, short what, void *arg)
{
    struct peer *p = arg;
    if (what & BEV_EVENT_CONNECTED) {
        const struct peer_sock_ops *ops = p->net->ops;
        if (ops->check && ops->check(ops->ud, bev, false, p->info.id, p->info.name) < 0) {
            drop_out(p); /* invariant 4: not the member we dialled */
            schedule_retry(p);
            return;
        }
        p->connecting = false;
        p->info.up = true;
        p->backoff_ms = 0;
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct sc_buf b = {0};
        struct peer_hello h = {.id = p->net->self_id};
        snprintf(h.name, sizeof(h.name), "%s", p->net->self_name);
        snprintf(h.client_addr, sizeof(h.client_addr), "%s", p->net->client_addr);
        peer_hello_encode(&h, &b);
        put_frame(bev, PEER_FRAME_HELLO, b.data, b.len);
        sc_buf_free(&b);
        return;
    }
    if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
        drop_out(p);
        schedule_retry(p);
    }
}

static void out_read(struct bufferevent *bev, void *arg)
{
    /* outbound connections only send: discard anything the peer writes */
    evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
}

static void connect_peer(evutil_socket_t fd, short what, void *arg)
{
    struct peer *p = arg;
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (p->out || evutil_parse_sockaddr_port(p->info.peer_addr, (struct sockaddr *)&ss, &sl) < 0)
        return;
    /* the host part of HOST:PORT ([v6]:PORT) for the TLS host check */
    char host[sizeof(p->info.peer_addr)];
    const char *colon = strrchr(p->info.peer_addr, ':');
    size_t hl = colon ? (size_t)(colon - p->info.peer_addr) : 0;
    const char *h = p->info.peer_addr;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
        h++, hl -= 2;
    memcpy(host, h, hl);
    host[hl] = '\0';
    int s = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) {
        schedule_retry(p);
        return;
    }
    p->out = p->net->ops->wrap(p->net->ops->ud, p->net->base, s, false, host);
    if (!p->out) {
        close(s);
        schedule_retry(p);
        return;
    }
    bufferevent_setcb(p->out, out_read, NULL, out_event, p);
    bufferevent_enable(p->out, EV_READ | EV_WRITE);
    p->connecting = true;
    if (bufferevent_socket_connect(p->out, (struct sockaddr *)&ss, sl) < 0) {
        drop_out(p);
        schedule_retry(p);
    }
}

int peer_net_add(struct peer_net *n, uint64_t id, const char *name, const char *peer_addr)
{
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (evutil_parse_sockaddr_port(peer_addr, (struct sockaddr *)&ss, &sl) < 0)
        return -EINVAL;
    struct peer *p = find(n, id);
    if (p) {
        if (strcmp(p->info.peer_addr, peer_addr) != 0) {
            snprintf(p->info.peer_addr, sizeof(p->info.peer_addr), "%s", peer_addr);
            drop_out(p);
            connect_peer(-1, 0, p);
        }
        return 0;
    }
    if (n->npeers >= PEER_MAX_MEMBERS)
        return -ENOSPC;
    p = xcalloc(1, sizeof(*p));
    p->net = n;
    p->info.id = id;
    snprintf(p->info.name, sizeof(p->info.name), "%s", name);
    snprintf(p->info.peer_addr, sizeof(p->info.peer_addr), "%s", peer_addr);
    for (struct inbound *c = n->in; c; c = c->next) /* its hello may have come first */
        if (c->from == id && c->client_addr[0])
            snprintf(p->info.client_addr, sizeof(p->info.client_addr), "%s", c->client_addr);
    p->retry = evtimer_new(n->base, connect_peer, p);
    n->peers[n->npeers++] = p;
    connect_peer(-1, 0, p);
    return 0;
}

void peer_net_remove(struct peer_net *n, uint64_t id)
{
    for (size_t i = 0; i < n->npeers; i++)
        if (n->peers[i]->info.id == id) {
            struct peer *p = n->peers[i];
            drop_out(p);
            event_free(p->retry);
            free(p);
            n->peers[i] = n->peers[--n->npeers];
            return;
        }
}

bool peer_net_send(struct peer_net *n, uint64_t to, const uint8_t *payload, size_t len)
{
    struct peer *p = find(n, to);
    if (!p || !p->info.up ||
        evbuffer_get_length(bufferevent_get_output(p->out)) + len > PEER_MAX_QUEUED)
        return false;
    put_frame(p->out, PEER_FRAME_RAFT, payload, len);
    return true;
}

/* ---- inbound ---------------------------------------------------------------------------- */

static void in_free(struct inbound *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        c->net->in = c->next;
    if (c->next)
        c->next->prev = c->prev;
    bufferevent_free(c->bev);
    free(c);
}

/* A bad hello is ignored: the connection's RAFT frames are then refused.  One
 * that ops->check refuses closes the connection: returns -1, c is freed. */
static int on_hello(struct inbound *c, const uint8_t *body, size_t len)
{
    struct peer_hello h;
    if (peer_hello_decode(body, len, &h) < 0)
        return 0;
    const struct peer_sock_ops *ops = c->net->ops;
    if (ops->check && ops->check(ops->ud, c->bev, true, h.id, h.name) < 0) {
        in_free(c); /* invariant 4 */
        return -1;
    }
    bufferevent_set_timeouts(c->bev, NULL, NULL); /* invariant 5: it said who it is */
    c->from = h.id;
    snprintf(c->client_addr, sizeof(c->client_addr), "%s", h.client_addr);
    struct peer *p = find(c->net, h.id);
    if (p) {
        snprintf(p->info.name, sizeof(p->info.name), "%s", h.name);
        snprintf(p->info.client_addr, sizeof(p->info.client_addr), "%s", h.client_addr);
    }
    return 0;
}

static void in_read(struct bufferevent *bev, void *arg)
{
    struct inbound *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        uint8_t hdr[PEER_FRAME_HDR];
        size_t have = evbuffer_get_length(in);
        if (have < PEER_FRAME_HDR)
            return;
        evbuffer_copyout(in, hdr, PEER_FRAME_HDR);
        long size = peer_frame_size(hdr, PEER_FRAME_HDR);
        if (size < 0) { /* a bad header: nothing after it can be trusted */
            in_free(c);
            return;
        }
        if (have < (size_t)size)
            return;
        const uint8_t *p = evbuffer_pullup(in, size);
        enum peer_frame_type type;
        const uint8_t *body;
        size_t len;
        long k = peer_frame_parse(p, (size_t)size, &type, &body, &len);
        if (k <= 0 || (type == PEER_FRAME_RAFT && c->from == 0)) {
            in_free(c);
            return;
        }
        if (type == PEER_FRAME_HELLO) {
            if (on_hello(c, body, len) < 0)
                return;
        } else
            c->net->recv(c->net->ud, c->from, body, len);
        evbuffer_drain(in, (size_t)k);
    }
}

static void in_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF | BEV_EVENT_TIMEOUT))
        in_free(arg);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int sl,
                      void *arg)
{
    struct peer_net *n = arg;
    struct bufferevent *bev = n->ops->wrap(n->ops->ud, n->base, fd, true, NULL);
    if (!bev) {
        close(fd);
        return;
    }
    struct inbound *c = xcalloc(1, sizeof(*c));
    c->net = n;
    c->bev = bev;
    c->next = n->in;
    if (n->in)
        n->in->prev = c;
    n->in = c;
    bufferevent_setcb(bev, in_read, NULL, in_event, c);
    const struct timeval hello = {PEER_HELLO_TIMEOUT_SEC, 0}; /* invariant 5 */
    bufferevent_set_timeouts(bev, &hello, NULL);
    bufferevent_enable(bev, EV_READ);
}

int peer_net_listen(struct peer_net *n, const char *addr)
{
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sl) < 0)
        return -EINVAL;
    n->listener = evconnlistener_new_bind(
        n->base, on_accept, n, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
        128, (struct sockaddr *)&ss, sl);
    return n->listener ? 0 : -errno ? -errno : -EADDRINUSE;
}

/* ---- life cycle -------------------------------------------------------------------------- */

int peer_net_new(struct event_base *base, const struct peer_sock_ops *ops, uint64_t self_id,
                 const char *self_name, const char *client_addr, uint64_t seed, peer_recv_fn recv,
                 void *ud, struct peer_net **ret)
{
    struct peer_net *n = xcalloc(1, sizeof(*n));
    n->base = base;
    n->ops = ops ? ops : &peer_sock_plain;
    n->self_id = self_id;
    snprintf(n->self_name, sizeof(n->self_name), "%s", self_name);
    snprintf(n->client_addr, sizeof(n->client_addr), "%s", client_addr);
    n->rng = seed;
    n->recv = recv;
    n->ud = ud;
    *ret = n;
    return 0;
}

void peer_net_free(struct peer_net *n)
{
    if (!n)
        return;
    while (n->npeers)
        peer_net_remove(n, n->peers[0]->info.id);
    while (n->in)
        in_free(n->in);
    if (n->listener)
        evconnlistener_free(n->listener);
    free(n);
}

const struct peer_info *peer_net_get(const struct peer_net *n, uint64_t id)
{
    const struct peer *p = n ? find(n, id) : NULL;
    return p ? &p->info : NULL;
}

size_t peer_net_list(const struct peer_net *n, const struct peer_info **out, size_t max)
{
    size_t k = 0;
    for (size_t i = 0; n && i < n->npeers && k < max; i++)
        out[k++] = &n->peers[i]->info;
    return k;
}
