/*
 * peer_probe.c: dials sctld's Raft peer port over TLS 1.3 with a given
 * certificate, sends one HELLO frame (src/sctld/peer.h) claiming to be a given
 * member, and reports whether sctld then closed the connection, for
 * tests/system/tls_peers.sh: a certificate from another CA, a node's certificate
 * signed by the cluster CA, and a controller's certificate that names another
 * member than the HELLO must each be closed; a controller's own certificate with
 * its own name must be kept open (the control that shows the probe can tell).
 *
 *   peer_probe --ca CA --cert CRT --key KEY --addr 127.0.0.1:PORT --id HEX --name NAME
 *              [--wait-ms N]
 *
 * Prints one line, "closed: ..." or "open", and exits 0 when sctld closed the
 * connection within --wait-ms (default 3000), 1 when it was still open, 2 on a
 * usage or local error.  The probe only checks the chain (no role, no host): it
 * must be able to present a certificate sctld will refuse.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "base/buf.h"
#include "net/tls.h"
#include "sctld/peer.h"

static int usage(void)
{
    fprintf(stderr, "usage: peer_probe --ca CA --cert CRT --key KEY --addr HOST:PORT --id HEX "
                    "--name NAME [--wait-ms N]\n");
    return 2;
}

static int dial(const char *addr)
{
    char host[128];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof(host))
        return -EINVAL;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

int main(int argc, char **argv)
{
    struct net_tls_files f = {0};
    const char *addr = NULL, *name = NULL;
    unsigned long long id = 0;
    long wait_ms = 3000;
    static const struct option opts[] = {
        {"ca", required_argument, NULL, 'a'},      {"cert", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'k'},     {"addr", required_argument, NULL, 'A'},
        {"id", required_argument, NULL, 'i'},      {"name", required_argument, NULL, 'n'},
        {"wait-ms", required_argument, NULL, 'w'}, {0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'a':
            f.ca = optarg;
            break;
        case 'c':
            f.cert = optarg;
            break;
        case 'k':
            f.key = optarg;
            break;
        case 'A':
            addr = optarg;
            break;
        case 'i':
            id = strtoull(optarg, NULL, 16);
            break;
        case 'n':
            name = optarg;
            break;
        case 'w':
            wait_ms = atol(optarg);
            break;
        default:
            return usage();
        }
    }
    if (!f.ca || !f.cert || !f.key || !addr || !name || !id || optind < argc)
        return usage();
    struct sc_error e = {0};
    SSL_CTX *ctx = NULL;
    if (net_tls_client_ctx_new(&f, PKI_ROLE_NONE, &ctx, &e) < 0) {
        fprintf(stderr, "peer_probe: %s\n", e.msg);
        return 2;
    }
    /* the probe trusts the cluster CA only when it was given it; a probe with
     * another CA's files must still reach sctld's verdict, so do not verify */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    int fd = dial(addr);
    if (fd < 0) {
        fprintf(stderr, "peer_probe: cannot connect to %s: %s\n", addr, strerror(-fd));
        SSL_CTX_free(ctx);
        return 2;
    }
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    int rc = 1;
    if (SSL_connect(ssl) != 1) {
        printf("closed: handshake failed: %s\n", ERR_reason_error_string(ERR_peek_error()));
        rc = 0;
        goto out;
    }
    struct sc_buf body = {0};
    struct peer_hello h = {.id = id};
    snprintf(h.name, sizeof(h.name), "%s", name);
    snprintf(h.client_addr, sizeof(h.client_addr), "127.0.0.1:1");
    peer_hello_encode(&h, &body);
    uint8_t hdr[PEER_FRAME_HDR];
    peer_frame_encode(PEER_FRAME_HELLO, body.data, body.len, hdr);
    int w = SSL_write(ssl, hdr, sizeof(hdr)) > 0 && SSL_write(ssl, body.data, (int)body.len) > 0;
    sc_buf_free(&body);
    if (!w) {
        printf("closed: write failed: %s\n", ERR_reason_error_string(ERR_peek_error()));
        rc = 0;
        goto out;
    }
    /* sctld writes nothing on an inbound peer connection but TLS 1.3 session
     * tickets: read (non-blocking) until the stream ends or the time is up */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    long left = wait_ms;
    while (left > 0) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) < 1) {
            left -= 100;
            continue;
        }
        char c;
        int n = SSL_read(ssl, &c, 1);
        int err = SSL_get_error(ssl, n);
        if (n > 0 || err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
            continue;
        const char *why = err == SSL_ERROR_SSL ? ERR_reason_error_string(ERR_peek_error()) : NULL;
        printf("closed: %s\n", why ? why : "end of stream");
        rc = 0;
        break;
    }
    if (rc)
        printf("open\n");
out:
    SSL_free(ssl);
    close(fd);
    SSL_CTX_free(ctx);
    return rc;
}
