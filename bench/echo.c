/* The benchmark's "limit" row: the fastest request/response exchange the
 * socket allows, with no NBD and no storage behind it.
 *
 *   echo server unix:PATH | tcp:PORT
 *       Listens (TCP: 127.0.0.1 only; port 0 lets the kernel pick), prints
 *       "ready PORT" once listening, then serves every connection on its own
 *       thread until killed.
 *   echo client unix:PATH | tcp:PORT REQ RESP DEPTH CONNS SECONDS
 *       Opens CONNS connections, keeps DEPTH requests of REQ bytes in flight
 *       on each, answered by RESP bytes each, for SECONDS.  Prints
 *       "OPS ELAPSED_SECONDS".
 *
 * Both ends batch: one read takes every request (or response) that has
 * arrived, and one writev sends all the answers (or new requests) it calls
 * for; over TCP, a message of 64 KiB or more is waited for whole
 * (SO_RCVLOWAT, at most 1 MiB), instead of waking for every piece.  That is
 * the most an NBD server could do with the same traffic shape.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF (1u << 20)
#define MAX_IOV 64
#define LOWAT_MIN (64u * 1024)
#define LOWAT_MAX (1u << 20)

/* The receiving side of a connection. */
struct input {
    int fd;
    int tcp;
    int lowat;          /* SO_RCVLOWAT as last set */
    size_t partial;     /* bytes of the next message already read */
};

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* "unix:PATH" or "tcp:PORT" into a socket address; returns its length. */
static socklen_t parse_addr(const char *spec, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (strncmp(spec, "unix:", 5) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)ss;
        if (strlen(spec + 5) >= sizeof un->sun_path) {
            fprintf(stderr, "echo: socket path too long\n");
            exit(2);
        }
        un->sun_family = AF_UNIX;
        strcpy(un->sun_path, spec + 5);
        return sizeof *un;
    }
    if (strncmp(spec, "tcp:", 4) == 0) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)atoi(spec + 4));
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return sizeof *in;
    }
    fprintf(stderr, "echo: address must be unix:PATH or tcp:PORT\n");
    exit(2);
}

static void set_nodelay(int fd, int family)
{
    int one = 1;
    if (family == AF_INET &&
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        die("setsockopt");
}

static void write_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t r = writev(fd, iov, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            die("writev");
        }
        while (n > 0 && (size_t)r >= iov->iov_len) {
            r -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + r;
            iov->iov_len -= r;
        }
    }
}

/* Sends COUNT messages of SIZE bytes taken from BUF, MAX_IOV per call. */
static void send_messages(int fd, const char *buf, size_t size, uint64_t count)
{
    struct iovec iov[MAX_IOV];
    while (count > 0) {
        int n = count < MAX_IOV ? (int)count : MAX_IOV;
        for (int i = 0; i < n; i++)
            iov[i] = (struct iovec){ (void *)buf, size };
        write_all(fd, iov, n);
        count -= n;
    }
}

static int is_tcp(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    return getsockname(fd, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_INET;
}

/* Over TCP, waits until the rest of a large message is in.  The wait is a
 * poll, as a server's event loop would do: a blocking read would copy what
 * has arrived and then sleep until the mark is reached by what is still
 * queued, which never happens. */
static void wait_for_rest(struct input *in, size_t size)
{
    size_t missing = size - in->partial;
    int lowat = !in->tcp || size < LOWAT_MIN ? 1 :
                missing > LOWAT_MAX ? (int)LOWAT_MAX : (int)missing;
    if (lowat != in->lowat &&
        setsockopt(in->fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat) == 0)
        in->lowat = lowat;
    struct pollfd p = { .fd = in->fd, .events = POLLIN };
    while (in->lowat > 1 && poll(&p, 1, -1) < 0)
        if (errno != EINTR)
            die("poll");
}

/* Reads what has arrived; returns how many whole messages of SIZE bytes it
 * completed (in->partial carries the remainder), or -1 at end of stream. */
static int64_t receive_messages(struct input *in, char *buf, size_t size)
{
    ssize_t r;
    wait_for_rest(in, size);
    do
        r = read(in->fd, buf, READ_BUF);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        die("read");
    if (r == 0)
        return -1;
    in->partial += (size_t)r;
    int64_t done = (int64_t)(in->partial / size);
    in->partial %= size;
    return done;
}

struct hello {
    uint32_t req, resp;
};

static void *serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    struct hello h;
    size_t got = 0;
    while (got < sizeof h) {
        ssize_t r = read(fd, (char *)&h + got, sizeof h - got);
        if (r <= 0) {
            close(fd);
            return NULL;
        }
        got += (size_t)r;
    }
    char *in = malloc(READ_BUF);
    char *out = calloc(1, h.resp);
    if (!in || !out || h.req == 0 || h.resp == 0)
        die("serve");
    struct input input = { fd, is_tcp(fd), 1, 0 };
    for (;;) {
        int64_t n = receive_messages(&input, in, h.req);
        if (n < 0)
            break;
        send_messages(fd, out, h.resp, (uint64_t)n);
    }
    free(in);
    free(out);
    close(fd);
    return NULL;
}

static _Noreturn void run_server(const char *spec)
{
    struct sockaddr_storage ss;
    socklen_t len = parse_addr(spec, &ss);
    int lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        die("socket");
    int one = 1;
    if (ss.ss_family == AF_INET)
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&ss, len) < 0)
        die("bind");
    if (listen(lfd, 16) < 0)
        die("listen");
    int port = 0;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in in;
        socklen_t l = sizeof in;
        if (getsockname(lfd, (struct sockaddr *)&in, &l) < 0)
            die("getsockname");
        port = ntohs(in.sin_port);
    }
    printf("ready %d\n", port);
    fflush(stdout);
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            die("accept");
        }
        set_nodelay(fd, ss.ss_family);
        pthread_t t;
        if (pthread_create(&t, NULL, serve, (void *)(intptr_t)fd) != 0)
            die("pthread_create");
        pthread_detach(t);
    }
}

struct client {
    const char *spec;
    struct hello h;
    uint64_t depth;
    double deadline;
    uint64_t ops;
};

static void *client(void *arg)
{
    struct client *c = arg;
    struct sockaddr_storage ss;
    socklen_t len = parse_addr(c->spec, &ss);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    if (connect(fd, (struct sockaddr *)&ss, len) < 0)
        die("connect");
    set_nodelay(fd, ss.ss_family);
    struct iovec hello = { &c->h, sizeof c->h };
    write_all(fd, &hello, 1);

    char *in = malloc(READ_BUF);
    char *out = calloc(1, c->h.req);
    if (!in || !out)
        die("client");
    struct input input = { fd, is_tcp(fd), 1, 0 };
    uint64_t in_flight = c->depth;
    send_messages(fd, out, c->h.req, in_flight);
    while (in_flight > 0) {
        int64_t n = receive_messages(&input, in, c->h.resp);
        if (n < 0) {
            fprintf(stderr, "echo: server closed the connection\n");
            exit(1);
        }
        c->ops += (uint64_t)n;
        in_flight -= (uint64_t)n;
        if (n > 0 && now() < c->deadline) {
            send_messages(fd, out, c->h.req, (uint64_t)n);
            in_flight += (uint64_t)n;
        }
    }
    free(in);
    free(out);
    close(fd);
    return NULL;
}

static int run_client(const char *spec, char **argv)
{
    int conns = atoi(argv[3]);
    double seconds = atof(argv[4]);
    struct hello h = { (uint32_t)atol(argv[0]), (uint32_t)atol(argv[1]) };
    long depth = atol(argv[2]);
    if (h.req == 0 || h.resp == 0 || depth <= 0 || conns <= 0 || conns > 64 ||
        seconds <= 0) {
        fprintf(stderr, "echo: bad client parameters\n");
        return 2;
    }
    struct client c[64];
    pthread_t t[64];
    double start = now();
    for (int i = 0; i < conns; i++) {
        c[i] = (struct client){ spec, h, (uint64_t)depth, start + seconds, 0 };
        if (pthread_create(&t[i], NULL, client, &c[i]) != 0)
            die("pthread_create");
    }
    uint64_t ops = 0;
    for (int i = 0; i < conns; i++) {
        pthread_join(t[i], NULL);
        ops += c[i].ops;
    }
    printf("%llu %.6f\n", (unsigned long long)ops, now() - start);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "server") == 0)
        run_server(argv[2]);
    if (argc == 8 && strcmp(argv[1], "client") == 0)
        return run_client(argv[2], argv + 3);
    fprintf(stderr,
            "usage: echo server unix:PATH|tcp:PORT\n"
            "       echo client unix:PATH|tcp:PORT REQ RESP DEPTH CONNS SECONDS\n");
    return 2;
}
