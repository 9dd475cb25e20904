/*
 * cell_net.c: Cell networking on a node: the bridge, the node's Cell range, and
 * "network slots": a network namespace already holding eth0 (one end of a veth
 * pair whose other end is on the bridge), its address, a default route, loopback
 * up and forwarding off.
 *
 * Why slots: making a namespace and a veth pair takes the rtnl lock and, under
 * load, tens of milliseconds (docs/cell.md), far more than the rest of a Cell
 * start.  A slot is made when the Cell is created (or ahead of time, into a small
 * pool, by net_node_fill when the supervisor is idle), so cell_start only joins
 * it with setns.  A slot belongs to one Cell from create to free: restarts keep
 * their namespace and address, like a pod's IP across container restarts.  A
 * freed slot is never handed to another Cell; its namespace is released and the
 * kernel dismantles it, veth pair included, asynchronously.
 *
 * The supervisor configures a slot from inside: it enters the new namespace
 * with setns, talks rtnetlink there, and returns.  That is safe only because the
 * supervisor is single-threaded (cell.h).
 *
 * Design
 *   1. ip_used[i] is set iff host number i is the network, the gateway, the
 *      broadcast address, or the address of a live slot (pooled or owned).
 *   2. Addresses are handed out next-fit (ip_next), so a just-released address,
 *      whose dying namespace may still answer ARP for a moment, is reused only
 *      after the rest of the range.
 *   3. The supervisor is back in its own namespace (orig_nsfd) whenever a
 *      function here returns.
 */
#include "cell/cell_linux.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int net_node_init(struct net_node *n, const char *bridge, uint32_t net_be, uint8_t prefix,
                  unsigned pool, struct sc_error *e)
{
    memset(n, 0, sizeof(*n));
    n->nlfd = n->orig_nsfd = -1;
    snprintf(n->bridge, sizeof(n->bridge), "%s", bridge ? bridge : "scbr0");
    n->prefix = prefix ? prefix : 24;
    if (n->prefix < 16 || n->prefix > 30)
        return sc_error_set(e, -SC_E_INVALID, "net_prefix", "Cell range prefix must be 16..30");
    n->net = net_be ? ntohl(net_be) : 0x0a580000u; /* 10.88.0.0 */
    n->net &= ~((1u << (32 - n->prefix)) - 1);
    n->n_ips = (size_t)1 << (32 - n->prefix);
    n->want_pool = pool;
    return 0;
}

void net_node_done(struct net_node *n)
{
    for (size_t i = 0; i < n->n_pool; i++)
        net_slot_put(n, &n->pool[i]);
    free(n->pool);
    if (n->nlfd >= 0)
        close(n->nlfd);
    if (n->orig_nsfd >= 0)
        close(n->orig_nsfd);
    free(n->ip_used);
    /* The bridge is node state shared with later supervisors; it stays. */
    memset(n, 0, sizeof(*n));
}

/* The bridge and our handles, on first use. */
static int node_ready(struct net_node *n, struct sc_error *e)
{
    if (n->bridge_idx > 0)
        return 0;
    if (n->nlfd < 0) {
        n->nlfd = nl_open();
        if (n->nlfd < 0)
            return sc_error_set(e, n->nlfd, "net", "netlink: %s", strerror(-n->nlfd));
    }
    if (n->orig_nsfd < 0) {
        n->orig_nsfd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        if (n->orig_nsfd < 0)
            return sc_error_set(e, -errno, "net", "open /proc/self/ns/net: %m");
    }
    int idx = (int)if_nametoindex(n->bridge);
    if (idx <= 0) {
        int r = nl_bridge_add(n->nlfd, n->bridge);
        if (r < 0 && r != -EEXIST)
            return sc_error_set(e, r, "net", "create bridge %s: %s", n->bridge, strerror(-r));
        idx = (int)if_nametoindex(n->bridge);
        if (idx <= 0)
            return sc_error_set(e, -ENODEV, "net", "bridge %s vanished", n->bridge);
    }
    int r = nl_addr_add(n->nlfd, idx, htonl(n->net + 1), n->prefix);
    if (r >= 0)
        r = nl_link_up(n->nlfd, idx);
    if (r < 0)
        return sc_error_set(e, r, "net", "configure bridge %s: %s", n->bridge, strerror(-r));
    n->bridge_idx = idx;
    n->ip_used = xcalloc(n->n_ips, 1);
    n->ip_used[0] = n->ip_used[1] = n->ip_used[n->n_ips - 1] = 1; /* net, gw, bcast */
    n->ip_next = 2;
    return 0;
}

int net_config_inside(bool with_eth0, uint32_t ip_be, uint8_t prefix, uint32_t gw_be,
                      struct sc_error *e)
{
    int fd = nl_open();
    if (fd < 0)
        return sc_error_set(e, fd, "net", "netlink socket: %s", strerror(-fd));
    int r = nl_link_up(fd, 1); /* lo is always ifindex 1 in a new namespace */
    if (r < 0) {
        sc_error_set(e, r, "net", "loopback up: %s", strerror(-r));
        goto out;
    }
    if (with_eth0) {
        int idx = (int)if_nametoindex("eth0");
        if (idx <= 0) {
            r = sc_error_set(e, -ENODEV, "net", "eth0 missing in the Cell namespace");
            goto out;
        }
        r = nl_addr_add(fd, idx, ip_be, prefix);
        if (r >= 0)
            r = nl_link_up(fd, idx);
        if (r >= 0)
            r = nl_route_default(fd, gw_be);
        if (r < 0) {
            sc_error_set(e, r, "net", "configure eth0: %s", strerror(-r));
            goto out;
        }
    }
    /* A new namespace copies IPv4 forwarding from the initial one (IPv6 too,
     * with net.core.devconf_inherit_init_net); a Cell never routes.  Asked over
     * netlink and written only when on: every /proc/sys/net lookup costs one
     * step per network namespace on the node (3% of the CPU of 300 concurrent
     * starts), and /proc/sys/net shows the namespace of whoever opens it. */
    r = nl_forwarding(fd, AF_INET);
    if (r != 0) {
        r = cell_write_str("/proc/sys/net/ipv4/ip_forward", "0");
        if (r < 0) {
            sc_error_set(e, r, "net", "ip_forward=0: %s", strerror(-r));
            goto out;
        }
    }
    if (nl_forwarding(fd, AF_INET6) > 0) /* absent without IPv6 */
        (void)cell_write_str("/proc/sys/net/ipv6/conf/all/forwarding", "0");
    r = 0;
out:
    close(fd);
    return r;
}

static int slot_make(struct net_node *n, struct net_slot *s, struct sc_error *e)
{
    size_t span = n->n_ips - 3, i = 0;
    for (size_t k = 0; k < span; k++) {
        size_t cand = 2 + (n->ip_next - 2 + k) % span;
        if (!n->ip_used[cand]) {
            i = cand;
            break;
        }
    }
    if (!i)
        return sc_error_set(e, -EADDRNOTAVAIL, "net", "the node's Cell range is full");
    memset(s, 0, sizeof(*s));
    s->ip = n->net + (uint32_t)i;
    snprintf(s->veth, sizeof(s->veth), "scv%x", (unsigned)s->ip);
    /* a new namespace: enter it, keep a handle, come back */
    if (unshare(CLONE_NEWNET) < 0)
        return sc_error_set(e, -errno, "net", "new network namespace: %m");
    s->nsfd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    int err = s->nsfd < 0 ? -errno : 0;
    if (setns(n->orig_nsfd, CLONE_NEWNET) < 0)
        abort(); /* invariant 3: the supervisor must never stay in a Cell's namespace */
    if (err < 0)
        return sc_error_set(e, err, "net", "open the new namespace: %s", strerror(-err));
    int r = nl_veth_add(n->nlfd, s->veth, n->bridge_idx, "eth0", s->nsfd);
    if (r == -EEXIST) { /* a previous owner's pair is still being dismantled */
        int old = (int)if_nametoindex(s->veth);
        if (old > 0)
            (void)nl_link_del(n->nlfd, old);
        r = nl_veth_add(n->nlfd, s->veth, n->bridge_idx, "eth0", s->nsfd);
    }
    if (r < 0) {
        close(s->nsfd);
        return sc_error_set(e, r, "net", "veth %s: %s", s->veth, strerror(-r));
    }
    if (setns(s->nsfd, CLONE_NEWNET) < 0) {
        r = sc_error_set(e, -errno, "net", "enter the Cell namespace: %m");
    } else {
        r = net_config_inside(true, htonl(s->ip), n->prefix, htonl(n->net + 1), e);
        if (setns(n->orig_nsfd, CLONE_NEWNET) < 0)
            abort();
    }
    if (r < 0) {
        close(s->nsfd); /* the namespace, and the pair with it, go away */
        return r;
    }
    n->ip_used[i] = 1;
    n->ip_next = i + 1 < n->n_ips - 1 ? i + 1 : 2;
    return 0;
}

int net_slot_get(struct net_node *n, struct net_slot *ret, struct sc_error *e)
{
    int r = node_ready(n, e);
    if (r < 0)
        return r;
    if (n->n_pool > 0) {
        *ret = n->pool[--n->n_pool];
        return 0;
    }
    return slot_make(n, ret, e);
}

void net_slot_put(struct net_node *n, struct net_slot *s)
{
    if (s->ip) {
        close(s->nsfd);
        n->ip_used[s->ip - n->net] = 0;
    }
    memset(s, 0, sizeof(*s));
    s->nsfd = -1;
}

int net_node_fill(struct net_node *n, struct sc_error *e)
{
    if (n->want_pool == 0)
        return 0;
    int r = node_ready(n, e);
    if (r < 0)
        return r;
    n->pool = sc_grow(n->pool, &n->cap_pool, n->want_pool, sizeof(*n->pool));
    while (n->n_pool < n->want_pool) {
        r = slot_make(n, &n->pool[n->n_pool], e);
        if (r < 0)
            return r;
        n->n_pool++;
    }
    return 0;
}
