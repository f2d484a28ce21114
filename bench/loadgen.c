/*
 * sockserve's load generator: one single-threaded epoll loop, non-blocking
 * sockets, to 127.0.0.1 only.
 *
 * Built by the benchmark suite with the machine's cc (see bench/build.py) and
 * driven by it; each run prints one JSON object on stdout.
 *
 *   loadgen echo    --port P --conns C --size S --warmup MS --duration MS
 *   loadgen oneshot --port P --conns C --size S --warmup MS --duration MS
 *   loadgen chat    --port P --clients N --senders K --lines L --size S
 *                   [--window W] [--ws PATH] [--irc CHANNEL] [--rooms R]
 *                   [--mix --ws PATH --ws-port P --irc CHANNEL --irc-port P]
 *   loadgen idle    --port P --clients N [--concurrency C]
 *   loadgen scale   --port P --clients N --rooms R --senders K [--size S]
 *                   [--ws PATH | --irc NAME] [--sources S] [--concurrency C] [--interval-ms I]
 *                   [--duration MS] [--connect-timeout-ms MS] [--hold]
 *                   [--room-offset N] [--source-offset N] [--histogram]
 *
 * --port may be given several times, for a server of several processes (the
 * nodes of one chat room on a bus): connection i goes to the (i mod n)-th
 * port. Chat then times the deliveries that crossed from one node to another
 * apart as well (p50_remote_us, p99_remote_us): sender and receiver on
 * different ports.
 *
 * With --rooms R, chat spreads its clients over R rooms: client i goes to
 * the room "room-K", K = (i div n) mod R with n the number of ports (so with
 * several nodes each room has members on each), by sending "/join room-K"
 * after its welcome and waiting for the server's "* you are now in #room-K;"
 * before the synchronisation. Each line must then reach the other members of
 * its sender's room, and no one else: a line delivered in another room is an
 * error, counted apart (crossed_rooms). Every client may send (--senders).
 *
 * A chat client learns its name from its welcome ("* you are NAME (" from
 * sockserve, "* you are NAME;" from the peers; a server that sends none, as
 * ncat, names nobody) and the "<NAME> " before each delivery must then be
 * its sender's name.
 *
 * Every reply is checked byte for byte; nothing assumes a reply's length:
 * input is buffered and split on LF (echo, chat) or read to EOF (oneshot),
 * and output is buffered and flushed across partial writes. Chat payloads carry
 * the sender, a sequence number and the send time (CLOCK_MONOTONIC, ns), so
 * every delivery is checked, ordered and timed. Each loop is bounded in time.
 *
 * With --ws PATH, chat speaks WebSocket as a browser does: each client asks
 * for an upgrade (GET PATH; no Origin, no extension offered), checks the 101
 * answer (Upgrade, Connection, Sec-WebSocket-Accept), then sends each line as
 * one masked text frame without its line ending and takes each text frame it
 * receives as one line; it answers pings, and leaves with a close frame.
 * Everything past the framing (checking, pacing, timing, the report) is the
 * same as over plain TCP.
 *
 * With --irc CHANNEL, chat speaks IRC as an IRC client does: client i
 * registers (NICK lgI, USER lgI 0 * :..., then JOIN #CHANNEL, sent together),
 * takes its name from the server's 001 (the nick there is authoritative) and
 * counts itself in the room at the server's 366 (end of NAMES) for the
 * channel; it sends each line as "PRIVMSG #CHANNEL :line" and takes each
 * ":nick!user@host PRIVMSG #CHANNEL :text" it receives as the line "text"
 * from "nick", which must be its sender's name. It answers PING with PONG;
 * an ERROR or a 4xx or 5xx numeric is an error (it only sends what needs
 * none), and one before the 366 closes the client, which will not be in
 * the room. Everything past the framing is the same as over plain TCP.
 *
 * With --mix, the clients of one room take turns: client i is a line client
 * over TCP on --port (i mod 3 = 0), a WebSocket client on --ws-port (1) or
 * an IRC client on --irc-port (2), all in one room of one server, each line
 * delivered to the members on the other transports as to its own.
 *
 * Scale holds as many chat clients as one server takes, in --rooms R rooms
 * (client i in room-(i mod R), by "/join room-K" after its welcome), at most
 * --concurrency of them in flight at once (connecting, greeted or joining):
 * one is connected once the server has said "* you are now in #room-K;".
 * With --sources S, client i connects from 127.0.0.(1 + i mod S), so that
 * each source address brings its own ephemeral ports. Then the first
 * --senders K clients (one in each room for K = R) each say a line every
 * --interval-ms, spread evenly over the interval, for --duration ms; every
 * delivery is checked and timed as in chat. It prints a line when everyone
 * is connected ({"phase": "connected", ...}) and when the measured window
 * is over ({"phase": "measured", ...}); with --hold it then waits for a
 * line on stdin (at most --connect-timeout-ms and 120 s more: other
 * generators of the same run may still be connecting), so that the harness can read the server's
 * memory while the connections are all held, and it stops once before,
 * with half of them connected and none in flight ({"phase": "half", ...}).
 * With --ws PATH, every client is a WebSocket client (on --port), as in
 * chat, sending "/join room-K" as a text frame; with --irc NAME, every client
 * is an IRC client (on --port) that joins the channel #NAME-K, and is in its
 * room at the end of its NAMES; with --mix (and --ws-port, --irc-port as in
 * chat), the members of each room take turns: TCP, WebSocket, IRC.
 *
 * Several scale generators share one server (each has its own slice of the
 * members, rooms and source addresses; the harness coordinates their
 * phases): with --room-offset N, client i is in room-(N + i mod R), and with
 * --source-offset N it connects from 127.0.0.(1 + N + i mod S). With
 * --histogram, scale's report also gives every delivery's latency as a
 * histogram, "latency_histogram_us": [[LOW, COUNT], ...], LOW the bucket's
 * lower bound in microseconds: one microsecond wide below 128 us, then 64
 * buckets an octave (each at most 1/64 of its lower bound wide), so that the
 * harness can merge the generators' latencies.
 *
 * Add --server-pid PID to report the server's CPU use over the measured window
 * beside the generator's own (getrusage); given several times, the CPU of all
 * those processes together.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24 /* linux/in.h, Linux 4.2 */
#endif

#define MAX_INPUT (4u << 20)   /* unconsumed input beyond this is an error */
#define SEND_CHUNK 16384       /* chat: bytes of lines prepared per refill */
#define MAX_ERRORS 1000        /* stop early past this many errors */
#define MAX_PORTS 16           /* --port and --server-pid, each */

typedef struct {
    char *data;
    size_t off, len, cap; /* unconsumed bytes are data[off, len) */
} buf_t;

typedef struct {
    int fd;
    int id;
    int connected;
    int open;
    int eof;
    buf_t in, out;
    /* echo and oneshot */
    uint64_t t0;
    uint64_t seq;
    int waiting;
    char *req;
    size_t req_len;
    /* chat and idle */
    int got_line;
    int hangup; /* the last event said the peer closed */
    uint32_t sent;
    uint32_t sync_seen;
    char name[40];       /* chat: the name its welcome gave it ("" if none) */
    size_t name_len;
    int room;            /* chat: its room, 0 to rooms - 1 (0 without --rooms) */
    int room_state;      /* chat --rooms: ROOM_NONE, ROOM_ASKED or ROOM_IN */
    /* chat --ws */
    int ws;              /* WS_OFF, WS_UPGRADING or WS_OPEN */
    char ws_accept[32];  /* the Sec-WebSocket-Accept the server must answer */
    /* chat */
    int transport;       /* T_TCP, T_WS or T_IRC */
    int irc;             /* chat --irc: IRC_OFF, IRC_JOINING or IRC_IN */
} conn_t;

enum { WS_OFF, WS_UPGRADING, WS_OPEN };
enum { T_TCP, T_WS, T_IRC };
enum { IRC_OFF, IRC_JOINING, IRC_IN };
enum { ROOM_NONE, ROOM_ASKED, ROOM_IN };

/* Options. */
static const char *mode;
static int ports[MAX_PORTS], nports; /* connection i goes to ports[i % nports] */
static int conns = 1, size = 64, window_lines = 0, senders = 1;
static int clients = 10, lines_per_sender = 1000, concurrency = 256;
static long warmup_ms = 300, duration_ms = 2000;
static long server_pids[MAX_PORTS];
static int nserver_pids;
static const char *ws_path; /* chat over WebSocket: the path to upgrade */
static int nrooms;          /* chat: rooms to spread the clients over (0: one) */
static const char *irc_channel; /* chat over IRC: the channel, without its '#' */
static int mix;             /* chat: clients on TCP, WebSocket and IRC in turn */
static int ws_port, irc_port; /* chat --mix: the WebSocket and IRC ports */

/* State. */
static int ep;
static int short_reads; /* echo, chat: trust a short read to have emptied the socket */
static size_t read_chunk = 65536; /* room made in a connection's input per read */
static int nsources;        /* scale: source addresses 127.0.0.1 to 127.0.0.S (0: any) */
static int source_offset;   /* scale: the first source address is 127.0.0.(1 + N) */
static int room_offset;     /* scale: client i is in room-(N + i mod R) */
static int histogram;       /* scale: report the latencies' histogram */
static int harness_said;    /* a line (or the end) came on stdin */
static conn_t *cs;
static int nconns;
static struct sockaddr_in targets[MAX_PORTS];
static struct sockaddr_in ws_target, irc_target; /* chat --mix */

typedef struct {
    uint64_t *ns;
    size_t n, cap;
} latencies_t;

static latencies_t lat;        /* every timed reply or delivery */
static latencies_t lat_remote; /* chat: deliveries from a sender on another port */
static uint64_t errors;
static char error_sample[256];
static uint64_t completed; /* echo, oneshot: in the window; chat: deliveries */

/* CPU accounting over the measured window. */
static double cpu_self_start, cpu_self_end, cpu_srv_start, cpu_srv_end;
static uint64_t t_cpu_start, t_cpu_end;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        die("out of memory");
    return q;
}

static void error_at(conn_t *c, const char *fmt, ...)
{
    errors++;
    if (error_sample[0] == 0) {
        va_list ap;
        int n = snprintf(error_sample, sizeof error_sample, "conn %d: ", c ? c->id : -1);
        va_start(ap, fmt);
        vsnprintf(error_sample + n, sizeof error_sample - (size_t)n, fmt, ap);
        va_end(ap);
    }
}

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
         + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static double process_cpu(long pid)
{
    char path[64], text[2048];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    char *p = strrchr(text, ')');
    if (!p)
        return 0;
    unsigned long utime = 0, stime = 0;
    /* Fields after the command: state(3) ... utime(14) stime(15). */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
               &utime, &stime) != 2)
        return 0;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static double server_cpu(void)
{
    double total = 0;
    for (int i = 0; i < nserver_pids; i++)
        total += process_cpu(server_pids[i]);
    return total;
}

static void cpu_start(void)
{
    t_cpu_start = now_ns();
    cpu_self_start = self_cpu();
    cpu_srv_start = server_cpu();
}

static void cpu_stop(void)
{
    t_cpu_end = now_ns();
    cpu_self_end = self_cpu();
    cpu_srv_end = server_cpu();
}

static void record_latency(latencies_t *l, uint64_t ns)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 65536;
        l->ns = xrealloc(l->ns, l->cap * sizeof *l->ns);
    }
    l->ns[l->n++] = ns;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile of l, sorted, in microseconds; -1 if l is empty. */
static double percentile_us(const latencies_t *l, double q)
{
    if (l->n == 0)
        return -1;
    size_t i = (size_t)((double)(l->n - 1) * q + 0.5);
    return (double)l->ns[i] / 1000.0;
}

/* Buffers. */

static void buf_reserve(buf_t *b, size_t extra)
{
    if (b->off && (b->off == b->len || b->len + extra > b->cap)) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    if (b->len + extra > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + extra)
            cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
}

static void buf_append(buf_t *b, const char *p, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static size_t buf_size(const buf_t *b) { return b->len - b->off; }

static void buf_clear(buf_t *b) { b->off = b->len = 0; }

/* Connections. */

static void conn_close(conn_t *c)
{
    if (c->open) {
        close(c->fd); /* also leaves the epoll set */
        c->open = 0;
    }
}

static int conn_open(conn_t *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        error_at(c, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    if (strcmp(mode, "idle") != 0 && strcmp(mode, "oneshot") != 0)
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->open = 1;
    c->connected = 0;
    c->eof = 0;
    c->ws = WS_OFF;
    c->irc = IRC_OFF;
    buf_clear(&c->in);
    buf_clear(&c->out);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        die("epoll_ctl: %s", strerror(errno));
    struct sockaddr_in *target = &targets[c->id % nports];
    if (nsources > 0) {
        /* Each source address has its own ephemeral ports: bind the
         * address only, and let connect() choose the port. */
        struct sockaddr_in source = {.sin_family = AF_INET};
        int host = 1 + source_offset + c->id % nsources;
        source.sin_addr.s_addr = htonl(INADDR_LOOPBACK + (uint32_t)(host - 1));
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(c->fd, (struct sockaddr *)&source, sizeof source) < 0) {
            error_at(c, "bind 127.0.0.%d: %s", host, strerror(errno));
            conn_close(c);
            return -1;
        }
    }
    if (mix && c->transport == T_WS)
        target = &ws_target;
    else if (mix && c->transport == T_IRC)
        target = &irc_target;
    if (connect(c->fd, (struct sockaddr *)target, sizeof *target) == 0) {
        c->connected = 1;
        return 1;
    }
    if (errno != EINPROGRESS) {
        error_at(c, "connect: %s", strerror(errno));
        conn_close(c);
        return -1;
    }
    return 0;
}

/* Write as much buffered output as the socket takes; -1 on error. */
static int conn_flush(conn_t *c)
{
    while (c->open && buf_size(&c->out)) {
        ssize_t n = send(c->fd, c->out.data + c->out.off, buf_size(&c->out), MSG_NOSIGNAL);
        if (n > 0) {
            c->out.off += (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (errno == EAGAIN)
                return 0;
        } else {
            error_at(c, "send: %s", strerror(errno));
            conn_close(c);
            return -1;
        }
    }
    if (c->open && buf_size(&c->out) == 0)
        buf_clear(&c->out);
    return 0;
}

/* Read everything available; sets eof on end of stream; -1 on error. */
static int conn_read(conn_t *c)
{
    for (;;) {
        buf_reserve(&c->in, read_chunk);
        size_t room = c->in.cap - c->in.len;
        ssize_t n = recv(c->fd, c->in.data + c->in.len, room, 0);
        if (n > 0) {
            c->in.len += (size_t)n;
            if (buf_size(&c->in) > MAX_INPUT) {
                error_at(c, "more than %u bytes without a complete line or frame",
                         MAX_INPUT);
                conn_close(c);
                return -1;
            }
            /* A short read emptied the socket: data arriving later raises a
             * new edge, so save the read that would only say EAGAIN. */
            if ((size_t)n < room && short_reads && !c->hangup)
                return 0;
        } else if (n == 0) {
            c->eof = 1;
            return 0;
        } else if (errno == EAGAIN) {
            return 0;
        } else if (errno != EINTR) {
            error_at(c, "recv: %s", strerror(errno));
            conn_close(c);
            return -1;
        }
    }
}

/* Take the next complete line from c->in; returns its length (ending
 * included) or 0. */
static size_t next_line(conn_t *c, char **line)
{
    char *start = c->in.data + c->in.off;
    char *nl = memchr(start, '\n', buf_size(&c->in));
    if (!nl)
        return 0;
    size_t n = (size_t)(nl - start) + 1;
    *line = start;
    c->in.off += n;
    return n;
}

static void show(char *dst, size_t cap, const char *p, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j + 7 < cap; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
            dst[j++] = (char)ch;
        else
            j += (size_t)snprintf(dst + j, cap - j, "\\u%04x", ch);
    }
    dst[j] = 0;
}

/* ----------------------------------------------------------- WebSocket */

#define WS_TEXT 0x1
#define WS_CLOSE 0x8
#define WS_PING 0x9
#define WS_PONG 0xa
#define WS_MAX_RESPONSE 8192 /* an upgrade response longer than this is an error */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static uint64_t rng_state;
static uint64_t ws_pings; /* pings answered */

/* xorshift64*: mask keys and handshake keys need to vary, not to be secret. */
static uint32_t rng32(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

static uint32_t rol32(uint32_t x, int n) { return x << n | x >> (32 - n); }

/* SHA-1 of at most 119 bytes: enough for Sec-WebSocket-Accept (60). */
static void sha1(const char *data, size_t len, uint8_t out[20])
{
    uint8_t m[128] = {0};
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t blocks = len + 9 <= 64 ? 1 : 2;
    if (len > 119)
        die("sha1: input too long");
    memcpy(m, data, len);
    m[len] = 0x80;
    for (int i = 0; i < 8; i++)
        m[blocks * 64 - 1 - (size_t)i] = (uint8_t)((uint64_t)len * 8 >> (8 * i));
    for (size_t b = 0; b < blocks; b++) {
        uint32_t w[80], v[5];
        for (int i = 0; i < 16; i++) {
            const uint8_t *q = m + b * 64 + 4 * (size_t)i;
            w[i] = (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
        }
        for (int i = 16; i < 80; i++)
            w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        memcpy(v, h, sizeof v);
        for (int i = 0; i < 80; i++) {
            uint32_t f, k;
            if (i < 20) {
                f = (v[1] & v[2]) | (~v[1] & v[3]);
                k = 0x5A827999;
            } else if (i < 40) {
                f = v[1] ^ v[2] ^ v[3];
                k = 0x6ED9EBA1;
            } else if (i < 60) {
                f = (v[1] & v[2]) | (v[1] & v[3]) | (v[2] & v[3]);
                k = 0x8F1BBCDC;
            } else {
                f = v[1] ^ v[2] ^ v[3];
                k = 0xCA62C1D6;
            }
            uint32_t t = rol32(v[0], 5) + f + v[4] + k + w[i];
            v[4] = v[3];
            v[3] = v[2];
            v[2] = rol32(v[1], 30);
            v[1] = v[0];
            v[0] = t;
        }
        for (int i = 0; i < 5; i++)
            h[i] += v[i];
    }
    for (int i = 0; i < 20; i++)
        out[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
}

/* Base64 of p[0, n) into out, NUL-terminated (4 * ceil(n / 3) + 1 bytes). */
static void base64(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        *out++ = digits[v >> 18 & 63];
        *out++ = digits[v >> 12 & 63];
        *out++ = i + 1 < n ? digits[v >> 6 & 63] : '=';
        *out++ = i + 2 < n ? digits[v & 63] : '=';
    }
    *out = 0;
}

/* Append one frame from the client: FIN, opcode, masked with a fresh key. */
static void ws_frame(buf_t *out, int opcode, const char *p, size_t n)
{
    uint8_t head[14];
    size_t k = 0;
    head[k++] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        head[k++] = (uint8_t)(0x80 | n);
    } else if (n < 65536) {
        head[k++] = 0x80 | 126;
        head[k++] = (uint8_t)(n >> 8);
        head[k++] = (uint8_t)n;
    } else {
        head[k++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            head[k++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    uint32_t key = rng32();
    uint8_t mask[4];
    memcpy(mask, &key, 4);
    buf_reserve(out, k + 4 + n);
    uint8_t *dst = (uint8_t *)out->data + out->len;
    memcpy(dst, head, k);
    memcpy(dst + k, mask, 4);
    dst += k + 4;
    for (size_t i = 0; i < n; i++)
        dst[i] = (uint8_t)p[i] ^ mask[i & 3];
    out->len += k + 4 + n;
}

/* Ask for the upgrade to WebSocket, and note the answer it must get. */
static void ws_start(conn_t *c)
{
    uint8_t nonce[16], digest[20];
    char key[32], request[512], keyed[128];
    for (int i = 0; i < 16; i += 4) {
        uint32_t r = rng32();
        memcpy(nonce + i, &r, 4);
    }
    base64(nonce, sizeof nonce, key);
    int k = snprintf(keyed, sizeof keyed, "%s%s", key, WS_GUID);
    sha1(keyed, (size_t)k, digest);
    base64(digest, sizeof digest, c->ws_accept);
    k = snprintf(request, sizeof request,
                 "GET %s HTTP/1.1\r\n"
                 "Host: 127.0.0.1:%d\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n"
                 "\r\n",
                 ws_path, mix ? ws_port : ports[c->id % nports], key);
    buf_append(&c->out, request, (size_t)k);
    c->ws = WS_UPGRADING;
    conn_flush(c);
}

/* Count an error on c, showing the start of p[0, n), and close c. */
static void ws_fail(conn_t *c, const char *what, const char *p, size_t n)
{
    char shown[120];
    show(shown, sizeof shown, p, n < 60 ? n : 60);
    error_at(c, "%s '%s'", what, shown);
    conn_close(c);
}

/* Find header `name` in the response head[0, n); set *value (trimmed) and
 * return its length, or return -1 if it is absent. */
static long header_value(const char *head, size_t n, const char *name, const char **value)
{
    size_t len = strlen(name);
    const char *end = head + n, *p = memchr(head, '\n', n);
    while (p && ++p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        if (!eol)
            eol = end;
        if ((size_t)(eol - p) > len && p[len] == ':' && strncasecmp(p, name, len) == 0) {
            const char *v = p + len + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *w = eol;
            while (w > v && (w[-1] == ' ' || w[-1] == '\t'))
                w--;
            *value = v;
            return w - v;
        }
        p = memchr(p, '\n', (size_t)(end - p));
    }
    return -1;
}

/* Whether header `name` of head[0, n) lists `token` (case ignored). */
static int header_has(const char *head, size_t n, const char *name, const char *token)
{
    const char *v;
    long k = header_value(head, n, name, &v), len = (long)strlen(token);
    for (long i = 0; i + len <= k; i++)
        if (strncasecmp(v + i, token, (size_t)len) == 0
            && (i == 0 || v[i - 1] == ' ' || v[i - 1] == ',')
            && (i + len == k || v[i + len] == ' ' || v[i + len] == ','))
            return 1;
    return 0;
}

/* Take the server's answer to the upgrade once it is complete: 1 if it
 * accepts, 0 if more is needed, -1 (c closed) if it is wrong. */
static int ws_upgraded(conn_t *c)
{
    const char *head = c->in.data + c->in.off, *v = NULL, *why = NULL;
    size_t avail = buf_size(&c->in);
    const char *blank = memmem(head, avail, "\r\n\r\n", 4);
    if (!blank) {
        if (avail <= WS_MAX_RESPONSE)
            return 0;
        ws_fail(c, "no end to the upgrade answer", head, avail);
        return -1;
    }
    size_t n = (size_t)(blank - head) + 2; /* the head, each line's CRLF included */
    size_t status = (size_t)((const char *)memchr(head, '\r', n) - head);
    long k = header_value(head, n, "Sec-WebSocket-Accept", &v);
    if (status < 12 || memcmp(head, "HTTP/1.1 101", 12) != 0 || (status > 12 && head[12] != ' '))
        why = "upgrade refused:";
    else if (!header_has(head, n, "Upgrade", "websocket"))
        why = "101 without Upgrade: websocket:";
    else if (!header_has(head, n, "Connection", "upgrade"))
        why = "101 without Connection: upgrade:";
    else if (k != (long)strlen(c->ws_accept) || memcmp(v, c->ws_accept, (size_t)k) != 0)
        why = "101 with a wrong or no Sec-WebSocket-Accept:";
    if (why) {
        ws_fail(c, why, head, why[0] == 'u' ? status : n);
        return -1;
    }
    c->in.off += n + 2;
    c->ws = WS_OPEN;
    return 1;
}

/* Take the next text message from c->in, answering pings on the way; 0 if
 * none is complete. A close frame ends the stream (sets eof); anything a
 * browser would refuse (a masked, fragmented, binary or reserved frame) is an
 * error that closes c. */
static int ws_next_text(conn_t *c, const char **msg, size_t *len)
{
    if (c->ws == WS_UPGRADING && ws_upgraded(c) <= 0)
        return 0;
    while (c->open && !c->eof) {
        const uint8_t *p = (const uint8_t *)c->in.data + c->in.off;
        size_t avail = buf_size(&c->in), head = 2;
        if (avail < 2)
            return 0;
        uint64_t n = p[1] & 0x7f;
        if (n == 126) {
            head = 4;
            if (avail < head)
                return 0;
            n = (uint64_t)p[2] << 8 | p[3];
        } else if (n == 127) {
            head = 10;
            if (avail < head)
                return 0;
            n = 0;
            for (int i = 2; i < 10; i++)
                n = n << 8 | p[i];
        }
        int opcode = p[0] & 0x0f, fin = p[0] & 0x80;
        const char *why = p[1] & 0x80 ? "masked frame from the server:"
                        : p[0] & 0x70 ? "frame with reserved bits set:"
                        : n > MAX_INPUT ? "frame too long:"
                        : NULL;
        if (why) {
            ws_fail(c, why, (const char *)p, head);
            return 0;
        }
        if (avail - head < n)
            return 0;
        const char *payload = (const char *)p + head;
        c->in.off += head + (size_t)n;
        if (opcode == WS_TEXT && fin) {
            *msg = payload;
            *len = (size_t)n;
            return 1;
        } else if (opcode == WS_PING && fin && n <= 125) {
            ws_frame(&c->out, WS_PONG, payload, (size_t)n);
            ws_pings++;
            conn_flush(c);
        } else if (opcode == WS_CLOSE) {
            c->eof = 1;
        } else if (opcode != WS_PONG || !fin || n > 125) {
            ws_fail(c, fin ? "unexpected frame:" : "fragmented message:", (const char *)p,
                    head + (size_t)n);
            return 0;
        }
    }
    return 0;
}

/* Leave as a browser does: a close frame (1000, normal); the server then
 * answers and closes. */
static void ws_close(conn_t *c)
{
    static const char normal[2] = {0x03, (char)0xe8};
    if (c->open && c->ws == WS_OPEN) {
        ws_frame(&c->out, WS_CLOSE, normal, sizeof normal);
        conn_flush(c);
    }
}

/* ----------------------------------------------------------------- IRC */

#define IRC_MAX_PARAMS 15

static uint64_t irc_pings; /* PINGs answered */

/* One IRC message (modern.ircdocs.horse, "Message format"), pointing into
 * the line it was parsed from: tags skipped, the source without its ':' (""
 * if none), the command, and the parameters, the trailing one (after " :")
 * last, without its ':'. */
typedef struct {
    const char *source;
    size_t source_len;
    const char *command;
    size_t command_len;
    int nparams;
    const char *param[IRC_MAX_PARAMS];
    size_t param_len[IRC_MAX_PARAMS];
} irc_msg_t;

/* Parse the line p[0, n) (without its CRLF) into m; 0 if it holds no
 * command. */
static int irc_parse(const char *p, size_t n, irc_msg_t *m)
{
    const char *end = p + n, *sp;
    memset(m, 0, sizeof *m);
    m->source = "";
    if (p < end && *p == '@') { /* tags: not asked for, skipped if sent */
        sp = memchr(p, ' ', (size_t)(end - p));
        if (!sp)
            return 0;
        p = sp;
        while (p < end && *p == ' ')
            p++;
    }
    if (p < end && *p == ':') {
        sp = memchr(p, ' ', (size_t)(end - p));
        if (!sp)
            return 0;
        m->source = p + 1;
        m->source_len = (size_t)(sp - p - 1);
        p = sp;
        while (p < end && *p == ' ')
            p++;
    }
    sp = p;
    while (sp < end && *sp != ' ')
        sp++;
    if (sp == p)
        return 0;
    m->command = p;
    m->command_len = (size_t)(sp - p);
    p = sp;
    while (p < end) {
        while (p < end && *p == ' ')
            p++;
        if (p == end)
            break;
        if (m->nparams == IRC_MAX_PARAMS)
            return 0;
        if (*p == ':' || m->nparams == IRC_MAX_PARAMS - 1) {
            if (*p == ':')
                p++;
            m->param[m->nparams] = p;
            m->param_len[m->nparams++] = (size_t)(end - p);
            break;
        }
        sp = p;
        while (sp < end && *sp != ' ')
            sp++;
        m->param[m->nparams] = p;
        m->param_len[m->nparams++] = (size_t)(sp - p);
        p = sp;
    }
    return 1;
}

/* Whether the command (or a parameter) s[0, n) is word. */
static int irc_is(const char *s, size_t n, const char *word)
{
    size_t k = strlen(word);
    return n == k && memcmp(s, word, k) == 0;
}

/* c's channel, without its '#', in buf: --irc's name, or in scale (with
 * rooms) that name, '-' and c's room (--irc room: #room-K). */
static const char *irc_channel_of(const conn_t *c, char *buf, size_t cap)
{
    if (!nrooms)
        return irc_channel;
    snprintf(buf, cap, "%s-%d", irc_channel, room_offset + c->room);
    return buf;
}

/* Whether s[0, n) names c's channel: '#' and its name, in any case (both
 * servers measured fold ASCII). */
static int irc_our_channel(const conn_t *c, const char *s, size_t n)
{
    char buf[64];
    const char *channel = irc_channel_of(c, buf, sizeof buf);
    size_t k = strlen(channel);
    return n == k + 1 && s[0] == '#' && strncasecmp(s + 1, channel, k) == 0;
}

/* The nick of a source "nick!user@host" (all of it if it has no '!'). */
static size_t irc_nick_len(const irc_msg_t *m)
{
    const char *bang = memchr(m->source, '!', m->source_len);
    return bang ? (size_t)(bang - m->source) : m->source_len;
}

/* Register, and join the channel at once: servers take the lines in order. */
static void irc_start(conn_t *c)
{
    char request[256], buf[64];
    int k = snprintf(request, sizeof request,
                     "NICK lg%d\r\nUSER lg%d 0 * :sockserve load generator\r\n"
                     "JOIN #%s\r\n",
                     c->id, c->id, irc_channel_of(c, buf, sizeof buf));
    buf_append(&c->out, request, (size_t)k);
    c->irc = IRC_JOINING;
    conn_flush(c);
}

/* Messages: lines over TCP and IRC, text frames over WebSocket. */

/* Take the next message from c->in: a line without its ending (LF or CRLF),
 * or a text frame's payload; 0 if none is complete. */
static int next_message(conn_t *c, const char **msg, size_t *len)
{
    if (c->ws)
        return ws_next_text(c, msg, len);
    char *line;
    size_t n = next_line(c, &line);
    if (!n)
        return 0;
    n--;
    if (n && line[n - 1] == '\r')
        n--;
    *msg = line;
    *len = n;
    return 1;
}

/* Queue one message: p[0, n) and LF, a text frame holding p[0, n), or
 * "PRIVMSG #CHANNEL :" p[0, n) CRLF. */
static void send_message(conn_t *c, const char *p, size_t n)
{
    if (c->ws) {
        ws_frame(&c->out, WS_TEXT, p, n);
        return;
    }
    if (c->irc) {
        char buf[64];
        const char *channel = irc_channel_of(c, buf, sizeof buf);
        size_t k = strlen(channel);
        buf_reserve(&c->out, n + k + 13);
        char *o = c->out.data + c->out.len;
        memcpy(o, "PRIVMSG #", 9);
        memcpy(o + 9, channel, k);
        memcpy(o + 9 + k, " :", 2);
        memcpy(o + 11 + k, p, n);
        memcpy(o + 11 + k + n, "\r\n", 2);
        c->out.len += n + k + 13;
        return;
    }
    buf_reserve(&c->out, n + 1);
    memcpy(c->out.data + c->out.len, p, n);
    c->out.data[c->out.len + n] = '\n';
    c->out.len += n + 1;
}

typedef void (*handler_t)(conn_t *c, uint64_t now);
static handler_t on_connected, on_input;

/* Wait for events for at most timeout_ms and dispatch them. */
static void pump(int timeout_ms)
{
    struct epoll_event evs[512];
    int n = epoll_wait(ep, evs, 512, timeout_ms);
    if (n < 0 && errno != EINTR)
        die("epoll_wait: %s", strerror(errno));
    for (int i = 0; i < n; i++) {
        conn_t *c = evs[i].data.ptr;
        if (!c) { /* stdin: the harness (scale --hold) */
            harness_said = 1;
            continue;
        }
        if (!c->open)
            continue;
        uint64_t now = now_ns();
        if (!c->connected) {
            int err = 0;
            socklen_t len = sizeof err;
            if (evs[i].events & (EPOLLERR | EPOLLHUP))
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (!err && (evs[i].events & (EPOLLERR | EPOLLHUP)))
                err = ECONNRESET;
            if (err) {
                error_at(c, "connect: %s", strerror(err));
                conn_close(c);
                on_input(c, now);
                continue;
            }
            if (!(evs[i].events & (EPOLLOUT | EPOLLIN)))
                continue;
            c->connected = 1;
            on_connected(c, now);
            if (!c->open)
                continue;
        }
        if (evs[i].events & EPOLLOUT)
            conn_flush(c);
        c->hangup = (evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
        if (c->open && (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
            conn_read(c);
            on_input(c, now_ns());
        }
    }
}

/* Pump events while some connection is still pending(), at most timeout_ns. */
static void pump_while_any(int (*pending)(const conn_t *), uint64_t timeout_ns)
{
    uint64_t deadline = now_ns() + timeout_ns;
    for (;;) {
        int waiting = 0;
        for (int i = 0; i < nconns; i++)
            waiting += pending(&cs[i]);
        if (!waiting || now_ns() > deadline)
            return;
        pump(10);
    }
}

static int connecting(const conn_t *c) { return c->open && !c->connected; }
static int awaiting_reply(const conn_t *c) { return c->open && c->waiting; }
static int still_open(const conn_t *c) { return c->open; }
static int not_greeted(const conn_t *c) { return c->open && !c->got_line; }

static conn_t *make_conns(int n)
{
    cs = calloc((size_t)n, sizeof *cs);
    if (!cs)
        die("out of memory");
    for (int i = 0; i < n; i++)
        cs[i].id = i;
    nconns = n;
    return cs;
}

/* ---------------------------------------------------------------- echo */

static uint64_t win_start, win_end;
static int stopping;

static void make_request(conn_t *c, char tag)
{
    if (!c->req)
        c->req = xrealloc(NULL, (size_t)size + 1);
    int n = snprintf(c->req, (size_t)size, "%c %d %llu ", tag, c->id,
                     (unsigned long long)c->seq);
    memset(c->req + n, 'a', (size_t)(size - 1 - n));
    c->req[size - 1] = '\n';
    c->req_len = (size_t)size;
    c->seq++;
}

static int reply_matches(conn_t *c, const char *p, size_t n)
{
    return n == c->req_len + 6 && memcmp(p, "OK .. ", 6) == 0
        && memcmp(p + 6, c->req, c->req_len) == 0;
}

static void echo_send(conn_t *c, uint64_t now)
{
    make_request(c, 'E');
    buf_append(&c->out, c->req, c->req_len);
    c->t0 = now;
    c->waiting = 1;
    conn_flush(c);
}

static void echo_connected(conn_t *c, uint64_t now)
{
    if (!stopping)
        echo_send(c, now);
}

static void echo_input(conn_t *c, uint64_t now)
{
    char *line;
    size_t n;
    if (!c->open)
        return;
    while ((n = next_line(c, &line)) > 0) {
        if (!c->waiting) {
            char shown[120];
            show(shown, sizeof shown, line, n < 40 ? n : 40);
            error_at(c, "unexpected line '%s'", shown);
            continue;
        }
        c->waiting = 0;
        if (!reply_matches(c, line, n)) {
            char shown[120];
            show(shown, sizeof shown, line, n < 40 ? n : 40);
            error_at(c, "wrong reply '%s'", shown);
        } else if (c->t0 >= win_start && now <= win_end) {
            completed++;
            record_latency(&lat, now - c->t0);
        }
        if (!stopping)
            echo_send(c, now);
    }
    if (c->eof) {
        if (c->waiting || !stopping)
            error_at(c, "closed by the server");
        conn_close(c);
    }
}

static int run_echo(void)
{
    make_conns(conns);
    short_reads = 1;
    on_connected = echo_connected;
    on_input = echo_input;
    stopping = 1; /* connect everything first */
    int pending = 0;
    for (int i = 0; i < nconns; i++)
        if (conn_open(&cs[i]) == 0)
            pending++;
    pump_while_any(connecting, 10000000000ull);
    uint64_t t = now_ns();
    win_start = t + (uint64_t)warmup_ms * 1000000u;
    win_end = win_start + (uint64_t)duration_ms * 1000000u;
    stopping = 0;
    for (int i = 0; i < nconns; i++)
        if (cs[i].open && cs[i].connected)
            echo_send(&cs[i], t);
    int measuring = 0;
    while (errors < MAX_ERRORS) {
        uint64_t now = now_ns();
        if (!measuring && now >= win_start) {
            measuring = 1;
            cpu_start();
        }
        if (now >= win_end)
            break;
        pump(5);
    }
    if (!measuring)
        cpu_start();
    cpu_stop();
    stopping = 1;
    pump_while_any(awaiting_reply, 5000000000ull);
    for (int i = 0; i < nconns; i++) {
        if (cs[i].open && cs[i].waiting)
            error_at(&cs[i], "no reply within 5 s");
        conn_close(&cs[i]);
    }
    (void)pending;
    return 0;
}

/* ------------------------------------------------------------- oneshot */

static uint64_t started;

static void oneshot_start(conn_t *c)
{
    while (!stopping && errors < MAX_ERRORS) {
        c->t0 = now_ns();
        make_request(c, 'O');
        c->waiting = 1;
        started++;
        int r = conn_open(c);
        if (r < 0)
            continue;
        if (r == 1) {
            buf_append(&c->out, c->req, c->req_len);
            conn_flush(c);
        }
        return;
    }
}

static void oneshot_connected(conn_t *c, uint64_t now)
{
    (void)now;
    buf_append(&c->out, c->req, c->req_len);
    conn_flush(c);
}

static void oneshot_input(conn_t *c, uint64_t now)
{
    if (c->open && !c->eof)
        return;
    if (c->open) {
        const char *p = c->in.data + c->in.off;
        size_t n = buf_size(&c->in);
        if (!reply_matches(c, p, n)) {
            char shown[120];
            show(shown, sizeof shown, p, n < 40 ? n : 40);
            error_at(c, "wrong reply '%s' (%zu bytes)", shown, n);
        } else if (c->t0 >= win_start && now <= win_end) {
            completed++;
            record_latency(&lat, now - c->t0);
        }
        conn_close(c);
    }
    c->waiting = 0;
    oneshot_start(c);
}

static int run_oneshot(void)
{
    make_conns(conns);
    on_connected = oneshot_connected;
    on_input = oneshot_input;
    uint64_t t = now_ns();
    win_start = t + (uint64_t)warmup_ms * 1000000u;
    win_end = win_start + (uint64_t)duration_ms * 1000000u;
    stopping = 0;
    for (int i = 0; i < nconns; i++)
        oneshot_start(&cs[i]);
    int measuring = 0;
    uint64_t next_check = t;
    while (errors < MAX_ERRORS) {
        uint64_t now = now_ns();
        if (!measuring && now >= win_start) {
            measuring = 1;
            cpu_start();
        }
        if (now >= win_end)
            break;
        if (now >= next_check) {
            next_check = now + 100000000u;
            for (int i = 0; i < nconns; i++)
                if (cs[i].open && now - cs[i].t0 > 10000000000ull) {
                    error_at(&cs[i], "no complete reply within 10 s");
                    conn_close(&cs[i]);
                    oneshot_start(&cs[i]);
                }
        }
        pump(5);
    }
    if (!measuring)
        cpu_start();
    cpu_stop();
    stopping = 1;
    pump_while_any(still_open, 5000000000ull);
    for (int i = 0; i < nconns; i++) {
        if (cs[i].open)
            error_at(&cs[i], "no complete reply within 5 s of the end");
        conn_close(&cs[i]);
    }
    return 0;
}

/* ---------------------------------------------------------------- chat */

static uint32_t **delivered_to;   /* [sender][seq]: receivers that got it */
static uint32_t *fully;           /* [sender]: lines every receiver has */
static uint32_t *next_seq;        /* [receiver * senders + sender] */
static int *room_size;            /* [room]: its members */
static uint64_t expected, bad_lines, out_of_order, notices;
static uint64_t crossed_rooms;    /* lines (and probes) delivered in another room */
static uint64_t wrong_names;      /* deliveries under a name not their sender's */
static double join_seconds;       /* --rooms: from the first /join to the last answer */
static uint64_t t_last_delivery;
static uint32_t sync_round;
static int chat_measuring;
static size_t room_senders; /* scale: the most senders one room has (0: chat) */
static uint64_t *worst_by_second; /* scale: the slowest delivery of lines sent in
                                   * each second of the window */
static size_t nworst;
static uint64_t t_window_start;

/* Where next_seq keeps what receiver expects next from sender s: in chat,
 * one slot per sender; in scale (one port, sender s in room s mod R), one
 * per sender of the receiver's own room. */
static size_t seq_slot(int receiver, int s)
{
    if (room_senders)
        return (size_t)receiver * room_senders + (size_t)(s / nrooms);
    return (size_t)receiver * (size_t)senders + (size_t)s;
}
static int chat_leaving; /* the run is over: input is only drained */
static char server_error[256];    /* the first "ERROR ..." line any client got */

static size_t chat_payload(char *dst, int s, uint32_t q, uint64_t ts)
{
    int n = snprintf(dst, (size_t)size, "#B# %d %u %llu ", s, q, (unsigned long long)ts);
    memset(dst + n, 'x', (size_t)(size - 1 - n));
    return (size_t)(size - 1); /* without the line ending */
}

static void chat_fill(conn_t *c)
{
    if (!chat_measuring || c->id >= senders)
        return;
    char line[4096];
    while (buf_size(&c->out) < SEND_CHUNK && c->sent < (uint32_t)lines_per_sender
           && (window_lines == 0 || c->sent - fully[c->id] < (uint32_t)window_lines)) {
        size_t n = chat_payload(line, c->id, c->sent, now_ns());
        send_message(c, line, n);
        c->sent++;
    }
    conn_flush(c);
}

static void chat_connected(conn_t *c, uint64_t now)
{
    (void)now;
    if (c->transport == T_WS)
        ws_start(c);
    else if (c->transport == T_IRC)
        irc_start(c);
}

/* Parse a canonical decimal number (no sign, no leading zero). */
static int parse_number(const char **pp, const char *end, uint64_t *out)
{
    const char *p = *pp;
    uint64_t v = 0;
    if (p >= end || *p < '0' || *p > '9' || (*p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9'))
        return 0;
    while (p < end && *p >= '0' && *p <= '9' && p - *pp < 20)
        v = v * 10 + (uint64_t)(*p++ - '0');
    *pp = p;
    *out = v;
    return 1;
}

static char padding[4096];

/* Check that mark[0, n) is exactly what chat_payload() makes for the numbers
 * it holds (without formatting it again: this is the generator's hot path). */
static int parse_payload(const char *mark, size_t n, uint64_t *s, uint64_t *q, uint64_t *ts)
{
    const char *p = mark + 4, *end = mark + n;
    if (n != (size_t)(size - 1))
        return 0;
    if (!parse_number(&p, end, s) || p >= end || *p++ != ' ')
        return 0;
    if (!parse_number(&p, end, q) || p >= end || *p++ != ' ')
        return 0;
    if (!parse_number(&p, end, ts) || p >= end || *p++ != ' ')
        return 0;
    return memcmp(p, padding, (size_t)(end - p)) == 0;
}

/* Whether p[0, n) is a sender's prefix "<NAME> ", NAME without '#' (which
 * would hide a payload's mark). */
static int sender_prefix(const char *p, size_t n)
{
    return n >= 4 && p[0] == '<' && p[n - 2] == '>' && p[n - 1] == ' '
        && !memchr(p, '#', n);
}

/* Whether name[0, n) names sender c: its NAME, if its welcome (or its 001)
 * gave it one (any name otherwise). */
static int named_as(const conn_t *c, const char *name, size_t n)
{
    return c->name_len == 0 || (n == c->name_len && memcmp(name, c->name, n) == 0);
}

/* A delivery to c: the line (or frame) p[0, n) that brought it, the payload
 * mark[0, mark_len) in it, and the sender as that line names it,
 * name[0, name_len) (name NULL: not named, as by ncat); named_ok is 0 if
 * the line names its sender in a malformed way. */
static void chat_delivery(conn_t *c, const char *p, size_t n, const char *name,
                          size_t name_len, int named_ok, const char *mark,
                          size_t mark_len, uint64_t now)
{
    char shown[160];
    uint64_t s64, q64, ts;
    if (!chat_measuring) {
        /* Nobody has sent yet: a line of an earlier run, delivered late. */
        bad_lines++;
        show(shown, sizeof shown, p, n < 48 ? n : 48);
        error_at(c, "delivery before the run started '%s'", shown);
        return;
    }
    if (!named_ok || !parse_payload(mark, mark_len, &s64, &q64, &ts)
        || s64 >= (uint64_t)senders || (int)s64 == c->id
        || q64 >= (uint64_t)lines_per_sender) {
        bad_lines++;
        show(shown, sizeof shown, p, n < 48 ? n : 48);
        error_at(c, "bad delivery '%s'", shown);
        return;
    }
    int s = (int)s64;
    uint32_t q = (uint32_t)q64;
    if (cs[s].room != c->room) {
        crossed_rooms++;
        error_at(c, "in room-%d got line %u of sender %d, of room-%d", room_offset + c->room,
                 q, s, room_offset + cs[s].room);
        return;
    }
    if (name && !named_as(&cs[s], name, name_len)) {
        wrong_names++;
        show(shown, sizeof shown, name, name_len < 48 ? name_len : 48);
        error_at(c, "line %u of sender %d (%s) came as '%s'", q, s, cs[s].name, shown);
    }
    uint32_t *want = &next_seq[seq_slot(c->id, s)];
    if (q != *want) {
        out_of_order++;
        error_at(c, "from sender %d got line %u, expected %u", s, q, *want);
        if (q < *want)
            return; /* a duplicate */
    }
    *want = q + 1;
    completed++;
    t_last_delivery = now;
    record_latency(&lat, now - ts);
    if (worst_by_second && ts >= t_window_start) {
        uint64_t second = (ts - t_window_start) / 1000000000u;
        if (second < nworst && now - ts > worst_by_second[second])
            worst_by_second[second] = now - ts;
    }
    if (nports > 1 && s % nports != c->id % nports)
        record_latency(&lat_remote, now - ts);
    conn_t *sender = &cs[s];
    uint32_t receivers = (uint32_t)(room_size[sender->room] - 1);
    if (++delivered_to[s][q] == receivers) {
        while (fully[s] < (uint32_t)lines_per_sender
               && delivered_to[s][fully[s]] == receivers)
            fully[s]++;
        if (window_lines)
            chat_fill(sender);
    }
}

/* A "* you are ..." line: the welcome, which names c ("* you are NAME (" or
 * "* you are NAME;"), or the answer to its /join ("* you are now in #ROOM;"). */
static void chat_you_are(conn_t *c, const char *line, size_t n)
{
    static const char entered[] = "* you are now in #";
    size_t k = sizeof entered - 1;
    char want[32], shown[120];
    if (c->room_state == ROOM_ASKED && n > k && memcmp(line, entered, k) == 0) {
        int w = snprintf(want, sizeof want, "room-%d;", room_offset + c->room);
        if (n >= k + (size_t)w && memcmp(line + k, want, (size_t)w) == 0) {
            c->room_state = ROOM_IN;
        } else {
            show(shown, sizeof shown, line, n < 100 ? n : 100);
            error_at(c, "asked for room-%d, got '%s'", room_offset + c->room, shown);
        }
        return;
    }
    if (c->name_len)
        return;
    const char *name = line + 10, *end = line + n, *p = name;
    while (p < end && *p != ' ' && *p != ';')
        p++;
    size_t len = (size_t)(p - name);
    if (len == 0 || len >= sizeof c->name || p == end
        || (*p == ' ' && (p + 1 == end || p[1] != '('))) {
        show(shown, sizeof shown, line, n < 100 ? n : 100);
        error_at(c, "a welcome without a name: '%s'", shown);
        return;
    }
    memcpy(c->name, name, len);
    c->name[len] = 0;
    c->name_len = len;
}

/* A probe "#S# ROUND FROM" in c's room (mark: its start). */
static void chat_probe(conn_t *c, const char *mark)
{
    char *after;
    if (strtoul(mark + 4, &after, 10) != sync_round)
        return;
    long from = strtol(after, NULL, 10);
    if (from >= 0 && from < nconns && cs[from].room != c->room) {
        crossed_rooms++;
        error_at(c, "in room-%d got a probe of client %ld, of room-%d",
                 room_offset + c->room, from, room_offset + cs[from].room);
    } else {
        c->sync_seen++;
    }
}

/* A line that should have been a delivery and is not one. */
static void chat_bad(conn_t *c, const char *p, size_t n, const char *what)
{
    char shown[160];
    bad_lines++;
    show(shown, sizeof shown, p, n < 48 ? n : 48);
    error_at(c, "%s '%s'", what, shown);
}

/* The sender a line client's line names: "<NAME> " before the payload at
 * mark, or nobody (no prefix, as from ncat); 0 if the prefix is malformed. */
static int line_sender(const char *line, const char *mark, const char **name,
                       size_t *name_len)
{
    size_t prefix = (size_t)(mark - line);
    *name = NULL;
    *name_len = 0;
    if (prefix == 0)
        return 1;
    if (!sender_prefix(line, prefix))
        return 0;
    *name = line + 1;
    *name_len = prefix - 3;
    return 1;
}

/* One line to an IRC client: a PRIVMSG to the channel is a delivery or a
 * probe from its source's nick; the rest registers, joins, keeps alive or
 * is an error. */
static void chat_irc_message(conn_t *c, const char *line, size_t n, uint64_t now)
{
    irc_msg_t m;
    char shown[120];
    if (!irc_parse(line, n, &m)) {
        chat_bad(c, line, n, "not an IRC message");
        return;
    }
    if (irc_is(m.command, m.command_len, "PRIVMSG")) {
        if (m.nparams != 2 || !irc_our_channel(c, m.param[0], m.param_len[0])) {
            chat_bad(c, line, n, "a PRIVMSG not to the channel");
            return;
        }
        const char *text = m.param[1];
        size_t len = m.param_len[1], nick = irc_nick_len(&m);
        if (len >= 4 && memcmp(text, "#B# ", 4) == 0)
            chat_delivery(c, line, n, m.source, nick, nick > 0, text, len, now);
        else if (len >= 4 && memcmp(text, "#S# ", 4) == 0)
            chat_probe(c, text);
        else if (memmem(text, len, "#B# ", 4) || memmem(text, len, "#S# ", 4))
            chat_bad(c, line, n, "a payload moved within the message");
        else
            notices++;
        return;
    }
    if (irc_is(m.command, m.command_len, "PING")) {
        const char *token = m.nparams ? m.param[m.nparams - 1] : "";
        size_t k = m.nparams ? m.param_len[m.nparams - 1] : 0;
        buf_append(&c->out, "PONG :", 6);
        buf_append(&c->out, token, k);
        buf_append(&c->out, "\r\n", 2);
        irc_pings++;
        conn_flush(c);
        return;
    }
    if (irc_is(m.command, m.command_len, "001") && m.nparams >= 1 && !c->name_len) {
        if (m.param_len[0] == 0 || m.param_len[0] >= sizeof c->name) {
            show(shown, sizeof shown, line, n < 100 ? n : 100);
            error_at(c, "a 001 without a usable nick: '%s'", shown);
            return;
        }
        memcpy(c->name, m.param[0], m.param_len[0]);
        c->name[m.param_len[0]] = 0;
        c->name_len = m.param_len[0];
        return;
    }
    if (irc_is(m.command, m.command_len, "366") && m.nparams >= 2
        && irc_our_channel(c, m.param[1], m.param_len[1])) {
        if (c->irc == IRC_JOINING)
            c->irc = IRC_IN;
        return;
    }
    if (irc_is(m.command, m.command_len, "ERROR")
        || (m.command_len == 3 && (m.command[0] == '4' || m.command[0] == '5')
            && m.command[1] >= '0' && m.command[1] <= '9' && m.command[2] >= '0'
            && m.command[2] <= '9')) {
        show(shown, sizeof shown, line, n < 100 ? n : 100);
        error_at(c, "the server answered '%s'", shown);
        if (c->irc == IRC_JOINING)
            conn_close(c); /* it will not be in the room: nobody waits for it */
        return;
    }
    notices++;
}

static void chat_input(conn_t *c, uint64_t now)
{
    const char *line, *name;
    size_t body, name_len;
    if (!c->open)
        return;
    while (next_message(c, &line, &body)) {
        c->got_line = 1;
        if (chat_leaving)
            continue;
        if (!server_error[0] && body >= 6 && memcmp(line, "ERROR ", 6) == 0)
            show(server_error, sizeof server_error, line, body < 120 ? body : 120);
        if (c->irc) {
            chat_irc_message(c, line, body, now);
            if (!c->open)
                return;
            continue;
        }
        if (body > 10 && memcmp(line, "* you are ", 10) == 0)
            chat_you_are(c, line, body);
        else if (c->room_state == ROOM_ASKED && body >= 6 && memcmp(line, "ERROR ", 6) == 0) {
            char shown[120];
            show(shown, sizeof shown, line, body < 100 ? body : 100);
            error_at(c, "/join room-%d refused: '%s'", room_offset + c->room, shown);
        }
        /* The payload follows the prefix "<name> ", or starts the line. */
        const char *mark = NULL;
        if (body >= 4 && line[0] == '#') {
            mark = line;
        } else if (body >= 4 && line[0] == '<') {
            const char *gt = memchr(line, '>', body);
            if (gt && gt + 6 <= line + body && gt[1] == ' ')
                mark = gt + 2;
        }
        if (!mark || (memcmp(mark, "#B# ", 4) != 0 && memcmp(mark, "#S# ", 4) != 0)) {
            /* A notice, or a payload mangled or moved within the line. */
            mark = memmem(line, body, "#B# ", 4);
            if (!mark)
                mark = memmem(line, body, "#S# ", 4);
        }
        if (!mark) {
            notices++;
        } else if (memcmp(mark, "#B# ", 4) == 0) {
            int named_ok = line_sender(line, mark, &name, &name_len);
            chat_delivery(c, line, body, name, name_len, named_ok, mark,
                          body - (size_t)(mark - line), now);
        } else {
            chat_probe(c, mark);
        }
    }
    if (c->open && c->eof) {
        if (!chat_leaving)
            error_at(c, "closed by the server");
        conn_close(c);
    }
}

static void chat_writable_refill(void)
{
    for (int s = 0; s < senders && s < nconns; s++)
        if (cs[s].open && buf_size(&cs[s].out) < SEND_CHUNK / 2)
            chat_fill(&cs[s]);
}

static int not_named(const conn_t *c) { return c->open && c->name_len == 0; }
static int irc_joining(const conn_t *c) { return c->open && c->irc == IRC_JOINING; }
/* A WebSocket client the server has not closed yet (in a mixed room, the
 * others are closed by us, without waiting). */
static int ws_still_open(const conn_t *c) { return c->open && c->transport == T_WS; }
static int joining(const conn_t *c) { return c->open && c->room_state == ROOM_ASKED; }

/* --rooms: send every client to its room, and wait (bounded) for the
 * answers. */
static void chat_join_rooms(void)
{
    pump_while_any(not_named, 10000000000ull);
    uint64_t t0 = now_ns();
    char command[64];
    for (int i = 0; i < nconns; i++) {
        conn_t *c = &cs[i];
        if (!c->open)
            continue;
        if (!c->name_len) {
            error_at(c, "no welcome, so no /join");
            continue;
        }
        int k = snprintf(command, sizeof command, "/join room-%d", room_offset + c->room);
        send_message(c, command, (size_t)k);
        c->room_state = ROOM_ASKED;
        conn_flush(c);
    }
    pump_while_any(joining, 30000000000ull);
    join_seconds = (double)(now_ns() - t0) / 1e9;
    for (int i = 0; i < nconns; i++)
        if (cs[i].open && cs[i].room_state == ROOM_ASKED)
            error_at(&cs[i], "no answer to /join room-%d in 30 s", cs[i].room);
}

static int run_chat(void)
{
    if (senders > clients)
        senders = clients;
    make_conns(clients);
    room_size = calloc((size_t)(nrooms ? nrooms : 1), sizeof *room_size);
    for (int i = 0; i < nconns; i++) {
        cs[i].room = nrooms ? (i / nports) % nrooms : 0;
        room_size[cs[i].room]++;
        cs[i].transport = mix ? (i % 3 == 0 ? T_TCP : i % 3 == 1 ? T_WS : T_IRC)
                        : ws_path ? T_WS
                        : irc_channel ? T_IRC
                        : T_TCP;
    }
    for (int r = 0; r < (nrooms ? nrooms : 1); r++)
        if (room_size[r] < 2)
            die("room-%d would have %d member(s): --clients must give every room two",
                r, room_size[r]);
    short_reads = 1;
    on_connected = chat_connected;
    on_input = chat_input;
    for (int i = 0; i < nconns; i++)
        if (conn_open(&cs[i]) == 1)
            chat_connected(&cs[i], now_ns());
    pump_while_any(not_greeted, 10000000000ull);
    if (irc_channel) {
        /* ngircd listens with a backlog of 10: some of many clients
         * connecting at once wait for the kernel's retries. */
        pump_while_any(irc_joining, 30000000000ull);
        for (int i = 0; i < nconns; i++)
            if (irc_joining(&cs[i]))
                error_at(&cs[i], "no end of NAMES for #%s in 30 s", irc_channel);
    }
    if (nrooms)
        chat_join_rooms();
    /* Synchronise: every client sends a probe until one round reaches
     * everyone in its room, which proves every client is there. */
    int synced = 0;
    for (sync_round = 1; sync_round <= 20 && !synced; sync_round++) {
        char probe[64];
        for (int i = 0; i < nconns; i++) {
            cs[i].sync_seen = 0;
            if (!cs[i].open || cs[i].ws == WS_UPGRADING || cs[i].irc == IRC_JOINING)
                continue;
            int k = snprintf(probe, sizeof probe, "#S# %u %d", sync_round, i);
            send_message(&cs[i], probe, (size_t)k);
            conn_flush(&cs[i]);
        }
        int alive = 0;
        for (int i = 0; i < nconns; i++)
            alive += cs[i].open;
        if (alive < nconns)
            break; /* the server dropped someone: no use trying */
        uint64_t deadline = now_ns() + 2000000000ull;
        while (now_ns() < deadline) {
            synced = 1;
            for (int i = 0; i < nconns; i++)
                if (!cs[i].open || cs[i].sync_seen < (uint32_t)(room_size[cs[i].room] - 1))
                    synced = 0;
            if (synced)
                break;
            pump(10);
        }
    }
    if (!synced)
        error_at(NULL, "clients never all saw each other's probes");
    delivered_to = calloc((size_t)senders, sizeof *delivered_to);
    for (int s = 0; s < senders; s++)
        delivered_to[s] = calloc((size_t)lines_per_sender, sizeof **delivered_to);
    fully = calloc((size_t)senders, sizeof *fully);
    next_seq = calloc((size_t)nconns * (size_t)senders, sizeof *next_seq);
    expected = 0;
    for (int s = 0; s < senders; s++)
        expected += (uint64_t)lines_per_sender * (uint64_t)(room_size[cs[s].room] - 1);
    completed = 0;
    lat.n = lat_remote.n = 0;
    uint64_t t0 = now_ns();
    t_last_delivery = t0;
    cpu_start();
    chat_measuring = synced;
    chat_writable_refill();
    uint64_t hard = t0 + 120000000000ull;
    while (synced && completed < expected && errors < MAX_ERRORS) {
        uint64_t now = now_ns();
        if (now > hard || now - t_last_delivery > 10000000000ull)
            break;
        pump(5);
        chat_writable_refill();
    }
    cpu_stop();
    t_cpu_end = t_last_delivery > t0 ? t_last_delivery : t_cpu_end;
    win_start = t0;
    win_end = t_last_delivery;
    chat_leaving = 1;
    if (ws_path) {
        for (int i = 0; i < nconns; i++)
            ws_close(&cs[i]);
        pump_while_any(ws_still_open, 2000000000ull);
    }
    for (int i = 0; i < nconns; i++)
        conn_close(&cs[i]);
    return 0;
}

/* ---------------------------------------------------------------- idle */

static void idle_connected(conn_t *c, uint64_t now)
{
    (void)c;
    (void)now;
}

static int accepted, failed;
static uint64_t t_all_accepted;

static void idle_input(conn_t *c, uint64_t now)
{
    if (!c->open) {
        if (!c->got_line && !c->waiting) {
            c->waiting = 1; /* counted */
            failed++;
        }
        return;
    }
    if (!c->got_line && memchr(c->in.data + c->in.off, '\n', buf_size(&c->in))) {
        c->got_line = 1;
        accepted++;
        t_all_accepted = now;
    }
    buf_clear(&c->in);
    if (c->eof) {
        error_at(c, "closed by the server");
        conn_close(c);
        idle_input(c, now);
    }
}

static int run_idle(void)
{
    make_conns(clients);
    on_connected = idle_connected;
    on_input = idle_input;
    uint64_t t0 = now_ns();
    cpu_start();
    int next = 0;
    uint64_t deadline = t0 + 120000000000ull;
    while (accepted + failed < nconns && now_ns() < deadline) {
        while (next < nconns && next - accepted - failed < concurrency) {
            if (conn_open(&cs[next]) < 0)
                idle_input(&cs[next], now_ns());
            next++;
        }
        pump(10);
    }
    cpu_stop();
    win_start = t0;
    win_end = accepted ? t_all_accepted : t0;
    printf("{\"phase\": \"accepted\", \"accepted\": %d}\n", accepted);
    fflush(stdout);
    /* Hold the connections until the harness has read the server's memory
     * use and says so on stdin (or 120 s pass). */
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    deadline = now_ns() + 120000000000ull;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) < 0)
        deadline = 0; /* stdin is no pipe: nobody will say when */
    while (now_ns() < deadline) {
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 100);
        int done = 0;
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (!c) {
                done = 1;
                continue;
            }
            if (c->open) {
                conn_read(c);
                idle_input(c, now_ns());
            }
        }
        if (done)
            break;
    }
    for (int i = 0; i < nconns; i++)
        conn_close(&cs[i]);
    if (accepted < nconns)
        error_at(NULL, "%d of %d clients accepted", accepted, nconns);
    return 0;
}

/* --------------------------------------------------------------- scale */

static int scale_joined, scale_failed, scale_inflight, scale_held;
static uint64_t t_scale_last_join;
static double connect_seconds;
static long interval_ms = 1000; /* scale: each sender's line every interval */
static long connect_timeout_ms = 300000;
static int hold;                /* scale: wait for the harness at each phase */
static uint64_t scale_sent;
static uint64_t window_errors; /* errors in the measured window */
static char connect_error[256]; /* the first error while connecting */

/* A client in its room. */
static int held(const conn_t *c) { return c->open && c->room_state == ROOM_IN; }

/* Print phase's line and, with --hold, wait (at most --connect-timeout-ms
 * and 120 s more, as other generators of the run may still be connecting)
 * for a line on stdin, the harness's word that it has read the server's
 * state, while keeping the connections read. */
static void scale_phase(const char *phase)
{
    int now_held = 0;
    for (int i = 0; i < nconns; i++)
        now_held += held(&cs[i]);
    printf("{\"phase\": \"%s\", \"held\": %d, \"joined\": %d, \"failed\": %d, "
           "\"connect_seconds\": %.3f}\n",
           phase, now_held, scale_joined, scale_failed, connect_seconds);
    fflush(stdout);
    if (!hold)
        return;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) < 0)
        return; /* stdin is no pipe: nobody will say when */
    harness_said = 0;
    uint64_t deadline = now_ns() + (uint64_t)connect_timeout_ms * 1000000u + 120000000000ull;
    while (!harness_said && now_ns() < deadline)
        pump(100);
    char line[256];
    if (harness_said && read(0, line, sizeof line) < 0)
        error_at(NULL, "stdin: %s", strerror(errno));
    epoll_ctl(ep, EPOLL_CTL_DEL, 0, NULL);
}

/* Connected: nothing to say until the welcome (over WebSocket, until the
 * upgrade). */
static void scale_connected(conn_t *c, uint64_t now)
{
    (void)now;
    if (c->transport == T_WS)
        ws_start(c); /* the welcome comes once it is upgraded */
    else if (c->transport == T_IRC)
        irc_start(c); /* registers, and joins its room's channel */
}

/* Input to a client: the welcome (then it asks for its room), the answer
 * to its /join (then it is in), and later the lines of its room. A client
 * in flight (c->waiting) is settled once it is in its room, or gone. */
static void scale_input(conn_t *c, uint64_t now)
{
    int state = c->room_state;
    uint64_t seen = errors;
    chat_input(c, now);
    if (c->open && state == ROOM_ASKED && c->room_state == ROOM_ASKED && errors > seen)
        conn_close(c); /* its /join refused: it will not be in its room */
    if (c->transport == T_IRC) {
        if (c->open && c->irc == IRC_IN)
            c->room_state = ROOM_IN; /* at the end of its channel's NAMES */
    } else if (c->open && c->room_state == ROOM_NONE && c->name_len) {
        char command[64];
        int k = snprintf(command, sizeof command, "/join room-%d", room_offset + c->room);
        send_message(c, command, (size_t)k);
        c->room_state = ROOM_ASKED;
        conn_flush(c);
    }
    if (!c->waiting)
        return;
    if (c->open && c->room_state == ROOM_IN) {
        c->waiting = 0;
        scale_inflight--;
        scale_joined++;
        t_scale_last_join = now;
    } else if (!c->open) {
        c->waiting = 0;
        scale_inflight--;
        scale_failed++;
        if (!connect_error[0])
            snprintf(connect_error, sizeof connect_error, "%s", error_sample);
    }
}

/* Connect everyone, at most --concurrency in flight (connecting, greeted,
 * joining); stop at --connect-timeout, or when connecting stalls (30 s
 * without anyone settled) or fails past MAX_ERRORS. */
static void scale_connect(void)
{
    uint64_t t0 = now_ns(), last_progress = t0, last_report = t0, paused = 0;
    uint64_t deadline = t0 + (uint64_t)connect_timeout_ms * 1000000u;
    int next = 0, settled = 0, half = nconns / 2, halfway = !hold;
    while (scale_joined + scale_failed < nconns) {
        uint64_t now = now_ns();
        if (!halfway && next == half && scale_inflight == 0) {
            /* Half of them: the harness reads the server's memory, so that
             * the growth over the second half is what one more costs. */
            halfway = 1;
            scale_phase("half");
            uint64_t after = now_ns();
            paused += after - now;
            deadline += after - now;
            now = last_progress = after;
        }
        if (now > deadline) {
            error_at(NULL, "%d of %d in their rooms after %ld s", scale_joined, nconns,
                     connect_timeout_ms / 1000);
            break;
        }
        if (scale_failed >= MAX_ERRORS)
            break;
        if (scale_joined + scale_failed != settled) {
            settled = scale_joined + scale_failed;
            last_progress = now;
        } else if (now - last_progress > 30000000000ull) {
            error_at(NULL, "connecting stalled at %d in their rooms", scale_joined);
            break;
        }
        if (now - last_report > 5000000000ull) {
            last_report = now;
            fprintf(stderr, "loadgen: %d in their rooms, %d failed, %.1f s\n",
                    scale_joined, scale_failed, (double)(now - t0) / 1e9);
        }
        while (next < (halfway ? nconns : half) && scale_inflight < concurrency
               && scale_failed < MAX_ERRORS) {
            conn_t *c = &cs[next++];
            c->waiting = 1;
            scale_inflight++;
            int r = conn_open(c);
            if (r < 0)
                scale_input(c, now_ns());
            else if (r == 1)
                scale_connected(c, now_ns());
        }
        pump(10);
    }
    /* The time connecting took, the pause at half of them left out (when
     * the last one came after it). */
    if (t_scale_last_join >= t0 + paused)
        connect_seconds = (double)(t_scale_last_join - t0 - paused) / 1e9;
    else if (scale_joined)
        connect_seconds = (double)(t_scale_last_join - t0) / 1e9;
    for (int i = 0; i < nconns; i++)
        if (cs[i].waiting && cs[i].open)
            conn_close(&cs[i]); /* never in its room: out of the count */
}

/* Each sender says a line every --interval-ms for --duration ms, the
 * senders spread evenly over the interval; then wait (at most 10 s) for
 * the last deliveries. */
static void scale_measure(void)
{
    for (int r = 0; r < nrooms; r++)
        room_size[r] = 0;
    for (int i = 0; i < nconns; i++)
        if (held(&cs[i]))
            room_size[cs[i].room]++;
    lines_per_sender = (int)(duration_ms / interval_ms);
    if (lines_per_sender < 1)
        lines_per_sender = 1;
    room_senders = (size_t)((senders + nrooms - 1) / nrooms);
    delivered_to = calloc((size_t)senders, sizeof *delivered_to);
    for (int s = 0; s < senders; s++)
        delivered_to[s] = calloc((size_t)lines_per_sender, sizeof **delivered_to);
    fully = calloc((size_t)senders, sizeof *fully);
    next_seq = calloc((size_t)nconns * room_senders, sizeof *next_seq);
    if (!delivered_to || !fully || !next_seq)
        die("out of memory");
    expected = 0;
    for (int s = 0; s < senders; s++)
        if (held(&cs[s]) && room_size[cs[s].room] > 1)
            expected += (uint64_t)lines_per_sender * (uint64_t)(room_size[cs[s].room] - 1);
    completed = 0;
    lat.n = 0;
    char line[4096];
    uint64_t total = (uint64_t)lines_per_sender * (uint64_t)senders, m = 0;
    uint64_t interval = (uint64_t)interval_ms * 1000000u;
    uint64_t t0 = now_ns();
    uint64_t hard = t0 + (uint64_t)lines_per_sender * interval + 10000000000ull;
    nworst = (size_t)((hard - t0) / 1000000000u) + 1;
    worst_by_second = calloc(nworst, sizeof *worst_by_second);
    if (!worst_by_second)
        die("out of memory");
    t_window_start = t0;
    t_last_delivery = t0;
    cpu_start();
    chat_measuring = 1;
    uint64_t before = errors; /* the window's own budget, past connecting's */
    if (!connect_error[0])
        snprintf(connect_error, sizeof connect_error, "%s", error_sample);
    error_sample[0] = 0; /* from now on, the window's first error */
    while (errors - before < MAX_ERRORS) {
        uint64_t now = now_ns();
        if (now > hard || (m == total && completed >= expected))
            break;
        /* Line m is sender m mod K's (m div K)-th, due at t0 + m * interval / K. */
        while (m < total && now >= t0 + m * interval / (uint64_t)senders) {
            conn_t *c = &cs[m % (uint64_t)senders];
            if (held(c)) {
                size_t n = chat_payload(line, c->id, c->sent, now_ns());
                send_message(c, line, n);
                conn_flush(c);
                scale_sent++;
            }
            c->sent++;
            m++;
        }
        pump(1);
    }
    cpu_stop();
    window_errors = errors - before;
    win_start = t0;
    win_end = t_last_delivery;
    for (int i = 0; i < nconns; i++)
        scale_held += held(&cs[i]);
}

static int run_scale(void)
{
    if (senders > clients)
        senders = clients;
    make_conns(clients);
    room_size = calloc((size_t)nrooms, sizeof *room_size);
    if (!room_size)
        die("out of memory");
    for (int i = 0; i < nconns; i++) {
        cs[i].room = i % nrooms;
        /* --mix: the members of each room take turns (its n-th member is
         * i div R), whatever R is, starting with room r's r mod 3-th front
         * end, so that the senders (the first of each room) take turns too. */
        int turn = (i / nrooms + i % nrooms) % 3;
        cs[i].transport = mix ? (turn == 0 ? T_TCP : turn == 1 ? T_WS : T_IRC)
                        : ws_path ? T_WS
                        : irc_channel ? T_IRC
                        : T_TCP;
        room_size[cs[i].room]++;
    }
    for (int r = 0; r < nrooms; r++)
        if (room_size[r] < 2)
            die("room-%d would have %d member(s): --clients must give every room two",
                r, room_size[r]);
    short_reads = 1;
    read_chunk = 4096; /* 100,000 input buffers of 64 KiB would be 6 GiB */
    on_connected = scale_connected;
    on_input = scale_input;
    scale_connect();
    scale_phase("connected");
    scale_measure();
    scale_phase("measured");
    chat_leaving = 1;
    for (int i = 0; i < nconns; i++)
        conn_close(&cs[i]);
    return 0;
}

/* Print l (sorted) as --histogram's buckets: [LOW, COUNT] pairs, LOW the
 * bucket's lower bound in microseconds; one microsecond wide below 128 us,
 * then 64 buckets an octave. */
static void print_histogram(const latencies_t *l)
{
    uint64_t low = 0, count = 0;
    int first = 1;
    printf(", \"latency_histogram_us\": [");
    for (size_t i = 0; i <= l->n; i++) {
        uint64_t bucket = 0;
        if (i < l->n) {
            uint64_t us = l->ns[i] / 1000u;
            int shift = us < 128 ? 0 : 63 - __builtin_clzll(us) - 6;
            bucket = us >> shift << shift;
        }
        if (count && (i == l->n || bucket != low)) {
            printf("%s[%llu, %llu]", first ? "" : ", ", (unsigned long long)low,
                   (unsigned long long)count);
            first = 0;
            count = 0;
        }
        low = bucket;
        count++;
    }
    printf("]");
}

/* ---------------------------------------------------------------- main */

static long arg_long(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc)
        die("%s needs a value", argv[*i]);
    char *end;
    long v = strtol(argv[++*i], &end, 10);
    if (*end)
        die("bad number %s", argv[*i]);
    return v;
}

static const char *arg_str(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc)
        die("%s needs a value", argv[*i]);
    return argv[++*i];
}

int main(int argc, char **argv)
{
    if (argc < 2)
        die("usage: loadgen echo|oneshot|chat|idle --port P [options]");
    mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--port")) {
            if (nports == MAX_PORTS)
                die("at most %d ports", MAX_PORTS);
            ports[nports] = (int)arg_long(argc, argv, &i);
            if (ports[nports] <= 0 || ports[nports] > 65535)
                die("bad port %d", ports[nports]);
            nports++;
        }
        else if (!strcmp(a, "--conns"))
            conns = (int)arg_long(argc, argv, &i);
        else if (!strcmp(a, "--size"))
            size = (int)arg_long(argc, argv, &i);
        else if (!strcmp(a, "--warmup"))
            warmup_ms = arg_long(argc, argv, &i);
        else if (!strcmp(a, "--duration"))
            duration_ms = arg_long(argc, argv, &i);
        else if (!strcmp(a, "--clients"))
            clients = (int)arg_long(argc, argv, &i);
        else if (!strcmp(a, "--senders"))
            senders = (int)arg_long(argc, argv, &i);
        else if (!strcmp(a, "--lines"))
            lines_per_sender = (int)arg_long(argc, argv, &i);
        else if (!strcmp(a, "--window"))
            window_lines = (int)arg_long(argc, argv, &i);
        else if (!strcmp(a, "--concurrency"))
            concurrency = (int)arg_long(argc, argv, &i);
        else if (!strcmp(a, "--server-pid")) {
            if (nserver_pids == MAX_PORTS)
                die("at most %d server processes", MAX_PORTS);
            server_pids[nserver_pids++] = arg_long(argc, argv, &i);
        }
        else if (!strcmp(a, "--ws"))
            ws_path = arg_str(argc, argv, &i);
        else if (!strcmp(a, "--rooms"))
            nrooms = (int)arg_long(argc, argv, &i);
        else if (!strcmp(a, "--irc"))
            irc_channel = arg_str(argc, argv, &i);
        else if (!strcmp(a, "--mix"))
            mix = 1;
        else if (!strcmp(a, "--ws-port"))
            ws_port = (int)arg_long(argc, argv, &i);
        else if (!strcmp(a, "--irc-port"))
            irc_port = (int)arg_long(argc, argv, &i);
        else if (!strcmp(a, "--sources"))
            nsources = (int)arg_long(argc, argv, &i);
        else if (!strcmp(a, "--interval-ms"))
            interval_ms = arg_long(argc, argv, &i);
        else if (!strcmp(a, "--connect-timeout-ms"))
            connect_timeout_ms = arg_long(argc, argv, &i);
        else if (!strcmp(a, "--hold"))
            hold = 1;
        else if (!strcmp(a, "--room-offset"))
            room_offset = (int)arg_long(argc, argv, &i);
        else if (!strcmp(a, "--source-offset"))
            source_offset = (int)arg_long(argc, argv, &i);
        else if (!strcmp(a, "--histogram"))
            histogram = 1;
        else
            die("unknown option %s", a);
    }
    if (nports == 0)
        die("--port is required");
    if (size < 48 || size > 4000)
        die("--size must be 48 to 4000 bytes");
    if (ws_path && strcmp(mode, "chat") != 0 && strcmp(mode, "scale") != 0)
        die("--ws is for chat and scale only");
    if (ws_path && (ws_path[0] != '/' || strlen(ws_path) > 200 || strpbrk(ws_path, " \r\n")))
        die("--ws needs a path such as /ws");
    int scale = !strcmp(mode, "scale");
    if (nrooms && strcmp(mode, "chat") != 0 && !scale)
        die("--rooms is for chat and scale only");
    if (scale && (nrooms < 1 || nports != 1))
        die("scale needs --rooms R (at least 1) and one --port");
    if (nsources < 0 || nsources > 250)
        die("--sources must be 0 (any) to 250");
    if ((room_offset || source_offset || histogram) && !scale)
        die("--room-offset, --source-offset and --histogram are for scale only");
    if (room_offset < 0 || room_offset > 1000000)
        die("--room-offset must be 0 to 1000000");
    if (source_offset < 0 || (source_offset && nsources < 1) || source_offset + nsources > 250)
        die("--source-offset needs --sources, and their sum must be at most 250");
    if (interval_ms < 1 || interval_ms > 60000 || connect_timeout_ms < 1
        || connect_timeout_ms > 3600000)
        die("--interval-ms must be 1 to 60000, --connect-timeout-ms 1 to 3600000");
    if (irc_channel && strcmp(mode, "chat") != 0 && !scale)
        die("--irc is for chat and scale only");
    if (irc_channel && (!irc_channel[0] || strlen(irc_channel) > 40
                        || strspn(irc_channel, "abcdefghijklmnopqrstuvwxyz"
                                               "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
                               != strlen(irc_channel)))
        die("--irc needs a channel name (letters, digits, - and _), without its #");
    if (irc_channel && nrooms && !scale)
        die("--rooms is for line clients (/join), not with --irc");
    if (mix && (!ws_path || !irc_channel || ws_port <= 0 || ws_port > 65535
                || irc_port <= 0 || irc_port > 65535 || nports != 1))
        die("--mix needs --ws PATH --ws-port P --irc CHANNEL --irc-port P and one --port");
    if (!mix && (ws_port || irc_port))
        die("--ws-port and --irc-port are for --mix");
    if (!mix && ws_path && irc_channel)
        die("--ws and --irc together need --mix");
    if (mix && nrooms && !scale)
        die("--rooms is for line clients, not with --mix");
    if (nrooms < 0 || nrooms > 100000)
        die("--rooms must be 0 (one room) to 100000");
    if (conns < 1 || clients < 2 || senders < 1 || lines_per_sender < 1 || concurrency < 1)
        die("counts must be positive (chat needs 2 clients)");
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    for (int i = 0; i < nports; i++) {
        memset(&targets[i], 0, sizeof targets[i]);
        targets[i].sin_family = AF_INET;
        targets[i].sin_port = htons((uint16_t)ports[i]);
        targets[i].sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* 127.0.0.1, always */
    }
    ws_target = irc_target = targets[0];
    ws_target.sin_port = htons((uint16_t)ws_port);
    irc_target.sin_port = htons((uint16_t)irc_port);
    memset(padding, 'x', sizeof padding);
    rng_state = (now_ns() ^ (uint64_t)getpid() << 32) | 1; /* never 0 */
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1: %s", strerror(errno));

    if (!strcmp(mode, "echo"))
        run_echo();
    else if (!strcmp(mode, "oneshot"))
        run_oneshot();
    else if (!strcmp(mode, "chat"))
        run_chat();
    else if (!strcmp(mode, "idle"))
        run_idle();
    else if (scale)
        run_scale();
    else
        die("unknown mode %s", mode);

    qsort(lat.ns, lat.n, sizeof *lat.ns, cmp_u64);
    qsort(lat_remote.ns, lat_remote.n, sizeof *lat_remote.ns, cmp_u64);
    double wall = (double)(t_cpu_end - t_cpu_start) / 1e9;
    double window = (double)(win_end - win_start) / 1e9;
    if (!strcmp(mode, "echo") || !strcmp(mode, "oneshot"))
        window = (double)duration_ms / 1000.0;
    double rate = window > 0 ? (double)completed / window : 0;
    printf("{\"mode\": \"%s\", \"completed\": %llu, \"rate\": %.1f, \"seconds\": %.4f, "
           "\"p50_us\": %.1f, \"p99_us\": %.1f, \"errors\": %llu, "
           "\"cpu_pct\": %.1f, \"server_cpu_pct\": %.1f",
           mode, (unsigned long long)completed, rate, window, percentile_us(&lat, 0.5),
           percentile_us(&lat, 0.99), (unsigned long long)errors,
           wall > 0 ? 100.0 * (cpu_self_end - cpu_self_start) / wall : 0,
           wall > 0 && nserver_pids ? 100.0 * (cpu_srv_end - cpu_srv_start) / wall : -1);
    printf(", \"ports\": %d", nports);
    if (!strcmp(mode, "oneshot"))
        printf(", \"started\": %llu", (unsigned long long)started);
    if (!strcmp(mode, "chat"))
        printf(", \"transport\": \"%s\", \"expected\": %llu, \"missing\": %llu, "
               "\"bad_lines\": %llu, \"out_of_order\": %llu, \"notices\": %llu, "
               "\"pings\": %llu, \"irc_pings\": %llu",
               mix ? "mixed" : ws_path ? "websocket" : irc_channel ? "irc" : "tcp",
               (unsigned long long)expected,
               (unsigned long long)(expected > completed ? expected - completed : 0),
               (unsigned long long)bad_lines, (unsigned long long)out_of_order,
               (unsigned long long)notices, (unsigned long long)ws_pings,
               (unsigned long long)irc_pings);
    if (!strcmp(mode, "chat")) {
        int named = 0;
        for (int i = 0; i < nconns; i++)
            named += cs[i].name_len > 0;
        printf(", \"sync_rounds\": %u, \"rooms\": %d, \"named\": %d, "
               "\"wrong_names\": %llu, \"crossed_rooms\": %llu",
               sync_round - 1, nrooms ? nrooms : 1, named,
               (unsigned long long)wrong_names, (unsigned long long)crossed_rooms);
        if (nrooms)
            printf(", \"join_seconds\": %.4f", join_seconds);
    }
    if (!strcmp(mode, "chat") && nports > 1)
        printf(", \"remote_deliveries\": %zu, \"p50_remote_us\": %.1f, "
               "\"p99_remote_us\": %.1f",
               lat_remote.n, percentile_us(&lat_remote, 0.5),
               percentile_us(&lat_remote, 0.99));
    if (!strcmp(mode, "idle"))
        printf(", \"accepted\": %d, \"accept_seconds\": %.4f", accepted, window);
    if (scale) {
        char shown[300];
        show(shown, sizeof shown, connect_error, strlen(connect_error));
        printf(", \"clients\": %d, \"joined\": %d, \"failed\": %d, \"held\": %d, "
               "\"connect_seconds\": %.3f, \"rooms\": %d, \"senders\": %d, "
               "\"sources\": %d, \"lines_per_sender\": %d, \"sent\": %llu, "
               "\"expected\": %llu, \"missing\": %llu, \"bad_lines\": %llu, "
               "\"out_of_order\": %llu, \"crossed_rooms\": %llu, "
               "\"wrong_names\": %llu, \"notices\": %llu, "
               "\"window_errors\": %llu, \"transport\": \"%s\", "
               "\"server_cpu_seconds\": %.3f, \"cpu_seconds\": %.3f, "
               "\"connect_error\": \"%s\", \"server_error\": \"%s\"",
               nconns, scale_joined, scale_failed, scale_held, connect_seconds, nrooms,
               senders, nsources, lines_per_sender, (unsigned long long)scale_sent,
               (unsigned long long)expected,
               (unsigned long long)(expected > completed ? expected - completed : 0),
               (unsigned long long)bad_lines, (unsigned long long)out_of_order,
               (unsigned long long)crossed_rooms, (unsigned long long)wrong_names,
               (unsigned long long)notices, (unsigned long long)window_errors,
               mix ? "mixed" : ws_path ? "websocket" : irc_channel ? "irc" : "tcp",
               cpu_srv_end - cpu_srv_start,
               cpu_self_end - cpu_self_start, shown, server_error);
        size_t last = nworst;
        while (last > 0 && worst_by_second[last - 1] == 0)
            last--;
        printf(", \"worst_ms_by_second\": [");
        for (size_t i = 0; i < last; i++)
            printf("%s%.1f", i ? ", " : "", (double)worst_by_second[i] / 1e6);
        printf("]");
        if (histogram)
            print_histogram(&lat);
    }
    printf(", \"error_sample\": \"%s\"}\n", error_sample);
    return 0;
}
