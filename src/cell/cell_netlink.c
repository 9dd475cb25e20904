/*
 * cell_netlink.c: the few rtnetlink requests Cell networking needs, written
 * directly over an AF_NETLINK socket: a bridge, a veth pair whose peer is created
 * inside the Cell's network namespace, addresses, link state and a default route.
 *
 * Why not `ip`: a fork+exec of iproute2 per step costs about a millisecond each,
 * more than the whole Cell start budget; one netlink message costs microseconds.
 * Every request asks for an ACK and the kernel's error is returned as -errno.
 */
#include "cell/cell_linux.h"

#include <assert.h>
#include <errno.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/netconf.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct nlb {
    union {
        struct nlmsghdr h;
        char buf[1024];
    };
};

static void *nlb_init(struct nlb *b, uint16_t type, uint16_t flags, size_t hdr)
{
    memset(b, 0, sizeof(*b));
    b->h.nlmsg_type = type;
    b->h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    b->h.nlmsg_len = NLMSG_LENGTH(hdr);
    return NLMSG_DATA(&b->h);
}

static struct rtattr *nlb_put(struct nlb *b, uint16_t type, const void *data, size_t len)
{
    size_t at = NLMSG_ALIGN(b->h.nlmsg_len);
    assert(at + RTA_SPACE(len) <= sizeof(b->buf));
    struct rtattr *a = (struct rtattr *)(b->buf + at);
    a->rta_type = type;
    a->rta_len = (unsigned short)RTA_LENGTH(len);
    if (len)
        memcpy(RTA_DATA(a), data, len);
    b->h.nlmsg_len = (uint32_t)(at + RTA_SPACE(len));
    return a;
}

static void nlb_put_str(struct nlb *b, uint16_t type, const char *s)
{
    nlb_put(b, type, s, strlen(s) + 1);
}

static void nlb_put_u32(struct nlb *b, uint16_t type, uint32_t v)
{
    nlb_put(b, type, &v, sizeof(v));
}

static struct rtattr *nlb_nest(struct nlb *b, uint16_t type)
{
    return nlb_put(b, type, NULL, 0);
}

static void nlb_nest_end(struct nlb *b, struct rtattr *a)
{
    a->rta_len = (unsigned short)(b->buf + b->h.nlmsg_len - (char *)a);
}

/* Appends raw bytes (a nested ifinfomsg) inside the current nest. */
static void *nlb_reserve(struct nlb *b, size_t len)
{
    size_t at = NLMSG_ALIGN(b->h.nlmsg_len);
    assert(at + NLMSG_ALIGN(len) <= sizeof(b->buf));
    void *p = b->buf + at;
    memset(p, 0, len);
    b->h.nlmsg_len = (uint32_t)(at + NLMSG_ALIGN(len));
    return p;
}

/* Sends b and waits for its ACK; with reply_type, also takes the u32 attribute
 * attr of a reply of that type (after a reply_hdr-byte header) into *val. */
static int nl_exchange(int fd, struct nlb *b, uint16_t reply_type, size_t reply_hdr, uint16_t attr,
                       uint32_t *val)
{
    static uint32_t seq;
    b->h.nlmsg_seq = ++seq;
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    if (sendto(fd, b->buf, b->h.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return -errno;
    char rbuf[4096];
    for (;;) {
        ssize_t n = recv(fd, rbuf, sizeof(rbuf), 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        for (struct nlmsghdr *h = (struct nlmsghdr *)rbuf; NLMSG_OK(h, (size_t)n);
             h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_seq != b->h.nlmsg_seq)
                continue;
            if (h->nlmsg_type == NLMSG_ERROR) {
                struct nlmsgerr *err = NLMSG_DATA(h);
                return err->error; /* 0 is the ACK */
            }
            if (!reply_type || h->nlmsg_type != reply_type ||
                h->nlmsg_len < NLMSG_LENGTH(reply_hdr))
                continue;
            int alen = (int)(h->nlmsg_len - NLMSG_LENGTH(reply_hdr));
            for (struct rtattr *a =
                     (struct rtattr *)((char *)NLMSG_DATA(h) + NLMSG_ALIGN(reply_hdr));
                 RTA_OK(a, alen); a = RTA_NEXT(a, alen))
                if (a->rta_type == attr && RTA_PAYLOAD(a) >= sizeof(uint32_t))
                    memcpy(val, RTA_DATA(a), sizeof(uint32_t));
        }
    }
}

static int nl_talk(int fd, struct nlb *b)
{
    return nl_exchange(fd, b, 0, 0, 0, NULL);
}

int nl_open(void)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return -errno;
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

int nl_forwarding(int fd, int family)
{
    struct nlb b;
    struct netconfmsg *ncm = nlb_init(&b, RTM_GETNETCONF, 0, sizeof(*ncm));
    ncm->ncm_family = (uint8_t)family;
    nlb_put_u32(&b, NETCONFA_IFINDEX, (uint32_t)NETCONFA_IFINDEX_ALL);
    uint32_t v = UINT32_MAX;
    int r = nl_exchange(fd, &b, RTM_NEWNETCONF, sizeof(*ncm), NETCONFA_FORWARDING, &v);
    if (r < 0)
        return r;
    return v == UINT32_MAX ? -ENODATA : v != 0;
}

int nl_link_up(int fd, int ifindex)
{
    struct nlb b;
    struct ifinfomsg *ifi = nlb_init(&b, RTM_NEWLINK, 0, sizeof(*ifi));
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = ifindex;
    ifi->ifi_flags = IFF_UP;
    ifi->ifi_change = IFF_UP;
    return nl_talk(fd, &b);
}

int nl_link_del(int fd, int ifindex)
{
    struct nlb b;
    struct ifinfomsg *ifi = nlb_init(&b, RTM_DELLINK, 0, sizeof(*ifi));
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = ifindex;
    return nl_talk(fd, &b);
}

int nl_bridge_add(int fd, const char *name)
{
    struct nlb b;
    struct ifinfomsg *ifi = nlb_init(&b, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, sizeof(*ifi));
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_flags = IFF_UP;
    ifi->ifi_change = IFF_UP;
    nlb_put_str(&b, IFLA_IFNAME, name);
    struct rtattr *li = nlb_nest(&b, IFLA_LINKINFO);
    nlb_put_str(&b, IFLA_INFO_KIND, "bridge");
    nlb_nest_end(&b, li);
    return nl_talk(fd, &b);
}

int nl_addr_add(int fd, int ifindex, uint32_t addr_be, uint8_t prefix)
{
    struct nlb b;
    struct ifaddrmsg *ifa = nlb_init(&b, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, sizeof(*ifa));
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = prefix;
    ifa->ifa_index = (uint32_t)ifindex;
    nlb_put(&b, IFA_LOCAL, &addr_be, 4);
    nlb_put(&b, IFA_ADDRESS, &addr_be, 4);
    return nl_talk(fd, &b);
}

int nl_route_default(int fd, uint32_t gw_be)
{
    struct nlb b;
    struct rtmsg *rt = nlb_init(&b, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, sizeof(*rt));
    rt->rtm_family = AF_INET;
    rt->rtm_table = RT_TABLE_MAIN;
    rt->rtm_protocol = RTPROT_BOOT;
    rt->rtm_scope = RT_SCOPE_UNIVERSE;
    rt->rtm_type = RTN_UNICAST;
    nlb_put(&b, RTA_GATEWAY, &gw_be, 4);
    return nl_talk(fd, &b);
}

int nl_veth_add(int fd, const char *host, int master, const char *peer, int peer_nsfd)
{
    struct nlb b;
    struct ifinfomsg *ifi = nlb_init(&b, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, sizeof(*ifi));
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_flags = IFF_UP;
    ifi->ifi_change = IFF_UP;
    nlb_put_str(&b, IFLA_IFNAME, host);
    if (master > 0)
        nlb_put_u32(&b, IFLA_MASTER, (uint32_t)master);
    struct rtattr *li = nlb_nest(&b, IFLA_LINKINFO);
    nlb_put_str(&b, IFLA_INFO_KIND, "veth");
    struct rtattr *data = nlb_nest(&b, IFLA_INFO_DATA);
    struct rtattr *pr = nlb_nest(&b, VETH_INFO_PEER);
    struct ifinfomsg *pifi = nlb_reserve(&b, sizeof(*pifi));
    pifi->ifi_family = AF_UNSPEC;
    nlb_put_str(&b, IFLA_IFNAME, peer);
    nlb_put_u32(&b, IFLA_NET_NS_FD, (uint32_t)peer_nsfd);
    nlb_nest_end(&b, pr);
    nlb_nest_end(&b, data);
    nlb_nest_end(&b, li);
    return nl_talk(fd, &b);
}
