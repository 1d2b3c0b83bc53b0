// fcgi-bench: nodefpm's load generator: FastCGI (as nginx sends it) or HTTP/1.1 keep-alive, one thread, epoll, one JSON line out.
//
// Built by bench/run.mjs (cc -O2 -o bench/bin/fcgi-bench bench/loadgen/fcgi-bench.c). Run by hand:
//
//   fcgi-bench -c 32 -d 8 unix:/tmp/app.sock                 FastCGI GET, 32 kept connections, 8 s
//   fcgi-bench -c 16 -d 8 -b 64k -u /upload unix:/tmp/app.sock   FastCGI POST of 64 KiB bodies
//   fcgi-bench -c 1 -n 2 -b 1g unix:/tmp/app.sock           two 1 GiB uploads, one after the other
//   fcgi-bench -p http -c 32 -d 8 127.0.0.1:3000             HTTP/1.1 keep-alive GET
//   fcgi-bench -c 2000 --hold 30 unix:/tmp/app.sock          2000 connections, one request each, then idle
//
// Each connection carries one request at a time and keeps the connection (FCGI_KEEP_CONN; HTTP
// keep-alive). Every response is validated: FastCGI wants STDOUT records with a CGI head whose status
// is 200, the empty STDOUT record, then END_REQUEST with REQUEST_COMPLETE and app status 0; HTTP wants
// status 200 and a body framed by Content-Length or chunked encoding. Body bytes are checked against
// Content-Length (and --expect-body). Failures are counted by kind, never fatal.
//
// The output is one line of JSON on stdout (see print_result). In --hold mode a line
// {"event":"holding",...} comes first, once every connection has completed its request and is idle:
// the caller measures the server then, and ends the hold early with SIGTERM or SIGINT.
//
// Why not a copy of an existing tool: the project's bench must run from the project alone, validate
// every byte it relies on, and stream bodies of any size without holding them in memory.
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

// ---- FastCGI constants (specification section 8) ----

enum { FCGI_BEGIN_REQUEST = 1, FCGI_END_REQUEST = 3, FCGI_PARAMS = 4, FCGI_STDIN = 5, FCGI_STDOUT = 6, FCGI_STDERR = 7 };
enum { FCGI_RESPONDER = 1, FCGI_KEEP_CONN = 1, FCGI_REQUEST_COMPLETE = 0 };
// nginx uses request id 1 on every connection (it never multiplexes); so do we.
#define REQUEST_ID 1
#define MAX_HEAD 8192

// ---- error kinds: counted, reported by name ----

enum {
  E_CONNECT,       // connect() failed (server not there, backlog full for too long)
  E_CLOSED,        // the server closed or reset the connection while a request was in progress
  E_IDLE_CLOSED,   // the server closed a kept connection that had no request in progress
  E_PROTOCOL,      // a malformed record or HTTP framing: wrong version, request id, record type, chunk size
  E_UNEXPECTED,    // bytes after the end of a response, before the next request
  E_STATUS,        // a complete response whose status is not 200
  E_END_STATUS,    // END_REQUEST with a protocol status other than REQUEST_COMPLETE, or a non-zero app status
  E_NO_STDOUT_END, // END_REQUEST before the empty STDOUT record, or STDOUT after it
  E_HEAD,          // the CGI/HTTP head is missing, incomplete or larger than MAX_HEAD
  E_LENGTH,        // body bytes differ from Content-Length or --expect-body
  E_EARLY,         // the response ended before the request was fully sent
  E_WRITE,         // write() failed
  E_KINDS
};
static const char *error_names[E_KINDS] = {"connect",   "closed",       "idle_closed", "protocol", "unexpected_data", "status",
                                           "end_status", "no_stdout_end", "head",       "length",   "early_response",  "write"};

// ---- configuration ----

static int use_http = 0;
static int nconn = 32;
static double duration = 8.0, warmup = 0.0, hold_seconds = -1.0;
static long long max_requests = 0;
static long long body_size = 0;
static long long expect_body = -1;
static int record_size = 32768;
static const char *uri = "/";
static const char *host_header = "localhost";
static int verbose = 0;
static int ramp = 64;
static int lifeline = 0;

static struct sockaddr_storage target_addr;
static socklen_t target_len;
static int target_family;
static const char *target_text;

// ---- the request, as segments repeated on the wire (a 1 GiB body is never held whole) ----

typedef struct {
  const unsigned char *p;
  size_t len;
  long long repeat;
} segment_t;
static segment_t segs[6];
static int nsegs = 0;
static long long request_length = 0;

// ---- connections ----

enum { C_FREE, C_RETRY, C_ACTIVE, C_IDLE };

typedef struct conn {
  int fd, state, writing_armed;
  double started, retry_at;
  // write position: segment, repetition, offset
  int wseg;
  long long wrep;
  size_t woff;
  // FastCGI record parser
  unsigned char hdr[8];
  int hfill, rtype, end_seen;
  unsigned clen_left, pad_left;
  unsigned char endb[8];
  int efill, stdout_ended;
  // response head (CGI or HTTP) and body accounting
  char head[MAX_HEAD];
  int head_len, head_done, status, close_after;
  long long content_length, body_bytes;
  // HTTP body framing
  int hstate;
  long long chunk_left;
  int chunk_digits, in_extension, line_len;
  int requests_done, got_bytes;
  unsigned generation;  // bumped on every close, so callers can tell the connection was replaced
} conn_t;

static conn_t *conns;
static int ep;

// ---- statistics ----

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

// Latencies in a log-linear histogram (128 sub-buckets per power of two: under 1 % error), so runs
// of any length take constant memory.
#define SUB_BITS 7
#define SUB_COUNT (1 << SUB_BITS)
static unsigned long long hist[64 * SUB_COUNT];
static unsigned long long lat_count = 0;
static double lat_sum = 0, lat_max = 0;

static int bucket_of(unsigned long long ns) {
  if (ns < 2 * SUB_COUNT) return (int)ns;
  int k = 63 - __builtin_clzll(ns);
  int shift = k - SUB_BITS;
  return shift * SUB_COUNT + (int)(ns >> shift);
}

static double bucket_value(int index) {
  if (index < 2 * SUB_COUNT) return index;
  int shift = index / SUB_COUNT - 1;
  long long sub = index % SUB_COUNT + SUB_COUNT;
  return ((double)(sub << shift) + (double)((sub + 1) << shift)) / 2.0;
}

static void record_latency(double seconds) {
  unsigned long long ns = (unsigned long long)(seconds * 1e9);
  hist[bucket_of(ns)]++;
  lat_count++;
  lat_sum += seconds;
  if (seconds > lat_max) lat_max = seconds;
}

static double percentile_ms(double p) {
  if (lat_count == 0) return 0;
  unsigned long long rank = (unsigned long long)(p * (double)(lat_count - 1)) + 1, seen = 0;
  for (size_t i = 0; i < sizeof hist / sizeof hist[0]; i++) {
    seen += hist[i];
    if (seen >= rank) return bucket_value((int)i) / 1e6;
  }
  return lat_max * 1e3;
}

static int measuring = 0;
static long long ok_requests = 0, warmup_ok = 0, warmup_errors = 0, reconnects = 0, started_requests = 0;
static long long errors[E_KINDS];
static long long bytes_sent = 0, bytes_received = 0, payload_bytes = 0, stderr_bytes = 0;
static double measure_start = 0;
static struct rusage usage_start;

static void error_detail(conn_t *c, const char *fmt, ...) {
  if (!verbose) return;
  static int printed = 0;
  if (printed++ > 20) return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "fcgi-bench: connection %d: ", (int)(c - conns));
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

// ---- building the request ----

static size_t put_pair(unsigned char *p, const char *name, const char *value) {
  size_t nl = strlen(name), vl = strlen(value), o = 0;
  if (nl < 128) p[o++] = (unsigned char)nl;
  else { p[o++] = 0x80 | (nl >> 24); p[o++] = nl >> 16; p[o++] = nl >> 8; p[o++] = nl; }
  if (vl < 128) p[o++] = (unsigned char)vl;
  else { p[o++] = 0x80 | (vl >> 24); p[o++] = vl >> 16; p[o++] = vl >> 8; p[o++] = vl; }
  memcpy(p + o, name, nl);
  memcpy(p + o + nl, value, vl);
  return o + nl + vl;
}

// Padding to a multiple of 8, as nginx writes it.
static size_t padding_for(size_t len) { return (8 - (len & 7)) & 7; }

static size_t put_record(unsigned char *p, int type, const unsigned char *content, size_t len) {
  size_t pad = padding_for(len);
  p[0] = 1; p[1] = (unsigned char)type; p[2] = REQUEST_ID >> 8; p[3] = REQUEST_ID & 0xff;
  p[4] = (unsigned char)(len >> 8); p[5] = (unsigned char)len; p[6] = (unsigned char)pad; p[7] = 0;
  if (len) memcpy(p + 8, content, len);
  memset(p + 8 + len, 0, pad);
  return 8 + len + pad;
}

static void add_segment(const unsigned char *p, size_t len, long long repeat) {
  if (len == 0 || repeat == 0) return;
  segs[nsegs].p = p; segs[nsegs].len = len; segs[nsegs].repeat = repeat;
  nsegs++;
  request_length += (long long)len * repeat;
}

static unsigned char *body_pattern(size_t len) {
  unsigned char *b = malloc(len);
  for (size_t i = 0; i < len; i++) b[i] = (unsigned char)('a' + i % 26);
  return b;
}

// The params nginx sends with Debian's fastcgi_params plus SCRIPT_FILENAME, then the request headers.
static size_t build_params(unsigned char *out) {
  char path[1024], query[1024] = "", length[32], port[16] = "8080";
  const char *q = strchr(uri, '?');
  if (q) {
    snprintf(path, sizeof path, "%.*s", (int)(q - uri), uri);
    snprintf(query, sizeof query, "%s", q + 1);
  } else snprintf(path, sizeof path, "%s", uri);
  snprintf(length, sizeof length, "%lld", body_size);
  char script[1200];
  snprintf(script, sizeof script, "/srv/app%s", path);
  const char *pairs[][2] = {
      {"SCRIPT_FILENAME", script},
      {"QUERY_STRING", query},
      {"REQUEST_METHOD", body_size > 0 ? "POST" : "GET"},
      {"CONTENT_TYPE", body_size > 0 ? "application/octet-stream" : ""},
      {"CONTENT_LENGTH", body_size > 0 ? length : ""},
      {"SCRIPT_NAME", path},
      {"REQUEST_URI", uri},
      {"DOCUMENT_URI", path},
      {"DOCUMENT_ROOT", "/srv/app"},
      {"SERVER_PROTOCOL", "HTTP/1.1"},
      {"REQUEST_SCHEME", "http"},
      {"GATEWAY_INTERFACE", "CGI/1.1"},
      {"SERVER_SOFTWARE", "nginx/1.22.1"},
      {"REMOTE_ADDR", "127.0.0.1"},
      {"REMOTE_PORT", "51234"},
      {"SERVER_ADDR", "127.0.0.1"},
      {"SERVER_PORT", port},
      {"SERVER_NAME", host_header},
      {"REDIRECT_STATUS", "200"},
      {"HTTP_HOST", host_header},
      {"HTTP_USER_AGENT", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
      {"HTTP_ACCEPT", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
      {"HTTP_ACCEPT_LANGUAGE", "en-US,en;q=0.5"},
      {"HTTP_ACCEPT_ENCODING", "gzip, deflate, br"},
      {"HTTP_CONNECTION", "keep-alive"},
  };
  size_t o = 0;
  // Empty CONTENT_TYPE and CONTENT_LENGTH on a GET are sent, as nginx sends them.
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) o += put_pair(out + o, pairs[i][0], pairs[i][1]);
  return o;
}

static void build_fcgi_request(void) {
  // BEGIN_REQUEST, one PARAMS record, the empty PARAMS record: one contiguous prefix.
  unsigned char params[8192];
  size_t plen = build_params(params);
  unsigned char *prefix = malloc(64 + plen + 16);
  unsigned char begin[8] = {0, FCGI_RESPONDER, FCGI_KEEP_CONN, 0, 0, 0, 0, 0};
  size_t o = put_record(prefix, FCGI_BEGIN_REQUEST, begin, 8);
  o += put_record(prefix + o, FCGI_PARAMS, params, plen);
  o += put_record(prefix + o, FCGI_PARAMS, NULL, 0);

  // STDIN: records of record_size (nginx: 32 KiB), repeated from one block of up to 256 KiB.
  long long full = body_size / record_size;
  size_t last = (size_t)(body_size % record_size);
  size_t full_len = 8 + record_size + padding_for(record_size);
  long long per_block = full < (long long)(262144 / full_len) ? full : (long long)(262144 / full_len);
  if (per_block < 1) per_block = 1;
  unsigned char *pattern = body_pattern(record_size);
  unsigned char *block = malloc(full_len * per_block);
  for (long long i = 0; i < per_block; i++) put_record(block + i * full_len, FCGI_STDIN, pattern, record_size);
  unsigned char *tail = malloc(8 + record_size + 8 + 8);
  size_t tail_len = last ? put_record(tail, FCGI_STDIN, pattern, last) : 0;
  tail_len += put_record(tail + tail_len, FCGI_STDIN, NULL, 0);

  long long blocks = full / per_block, rest = full % per_block;
  if (o + (size_t)(full * full_len) + tail_len <= 262144) {
    // Small requests go out as one contiguous buffer: one iovec, one write.
    size_t total = o + (size_t)(full * full_len) + tail_len;
    unsigned char *all = malloc(total);
    memcpy(all, prefix, o);
    for (long long i = 0; i < full; i++) memcpy(all + o + i * full_len, block, full_len);
    memcpy(all + o + full * full_len, tail, tail_len);
    add_segment(all, total, 1);
    return;
  }
  add_segment(prefix, o, 1);
  add_segment(block, full_len * per_block, blocks);
  add_segment(block, full_len * rest, 1);
  add_segment(tail, tail_len, 1);
}

/* The browser's headers the FastCGI request carries as HTTP_* params (build_params): the HTTP request
   sends the same, so both servers are given the same request. */
#define BROWSER_HEADERS                                                                   \
  "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" \
  "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"          \
  "Accept-Language: en-US,en;q=0.5\r\n"                                                  \
  "Accept-Encoding: gzip, deflate, br\r\n"                                               \
  "Connection: keep-alive\r\n"

static void build_http_request(void) {
  char *head = malloc(2048);
  int n;
  if (body_size > 0)
    n = snprintf(head, 2048,
                 "POST %s HTTP/1.1\r\nHost: %s\r\n" BROWSER_HEADERS
                 "Content-Type: application/octet-stream\r\nContent-Length: %lld\r\n\r\n",
                 uri, host_header, body_size);
  else
    n = snprintf(head, 2048, "GET %s HTTP/1.1\r\nHost: %s\r\n" BROWSER_HEADERS "\r\n", uri, host_header);
  size_t block_len = 262144;
  unsigned char *block = body_pattern(block_len);
  if (body_size <= (long long)block_len) {
    unsigned char *all = malloc(n + body_size);
    memcpy(all, head, n);
    memcpy(all + n, block, body_size);
    add_segment(all, n + body_size, 1);
    return;
  }
  add_segment((unsigned char *)head, n, 1);
  add_segment(block, block_len, body_size / block_len);
  add_segment(block, body_size % block_len, 1);
}

// ---- connection lifecycle ----

static void start_request(conn_t *c);
static void on_writable(conn_t *c);

static void set_events(conn_t *c, int want_write) {
  if (c->writing_armed == want_write) return;
  struct epoll_event ev = {.events = EPOLLIN | (want_write ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->writing_armed = want_write;
}

static void close_conn(conn_t *c) {
  if (c->fd >= 0) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
  }
  c->generation++;
  c->writing_armed = 0;
}

static void count_error(conn_t *c, int kind) {
  (void)c;
  if (measuring) errors[kind]++;
  else warmup_errors++;
}

static int retries_pending = 0;

// Opens the connection (non-blocking). Unix sockets refuse at once with EAGAIN when the listen backlog
// is full: try again shortly, as a client would.
static int open_conn(conn_t *c) {
  int fd = socket(target_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) { perror("fcgi-bench: socket"); exit(1); }
  if (target_family != AF_UNIX) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  if (connect(fd, (struct sockaddr *)&target_addr, target_len) < 0 && errno != EINPROGRESS) {
    int e = errno;
    close(fd);
    if (e != EAGAIN) {
      count_error(c, E_CONNECT);
      error_detail(c, "connect: %s", strerror(e));
    }
    c->state = C_RETRY;
    c->retry_at = now() + (e == EAGAIN ? 0.001 : 0.05);
    retries_pending++;
    return -1;
  }
  c->fd = fd;
  c->writing_armed = 0;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  return 0;
}

static int can_start(void) {
  if (max_requests > 0 && measuring && started_requests >= max_requests) return 0;
  return 1;
}

static int hold_mode(void) { return hold_seconds >= 0; }

static void start_request(conn_t *c) {
  if (hold_mode() && c->requests_done > 0) {
    c->state = C_IDLE;
    return;
  }
  if (!can_start()) {
    c->state = C_IDLE;
    return;
  }
  if (c->fd < 0 && open_conn(c) < 0) return;
  c->state = C_ACTIVE;
  if (measuring) started_requests++;
  c->wseg = 0; c->wrep = 0; c->woff = 0;
  c->hfill = 0; c->clen_left = 0; c->pad_left = 0; c->end_seen = 0; c->efill = 0; c->stdout_ended = 0;
  c->head_len = 0; c->head_done = 0; c->status = 0; c->close_after = 0;
  c->content_length = -1; c->body_bytes = 0;
  c->hstate = 0; c->chunk_left = 0; c->chunk_digits = 0; c->in_extension = 0; c->line_len = 0; c->got_bytes = 0;
  c->started = now();
  on_writable(c);
}

// A failed connection: count it, drop it, and start afresh on a new one.
static void fail_conn(conn_t *c, int kind) {
  count_error(c, kind);
  close_conn(c);
  reconnects++;
  start_request(c);
}

static void on_writable(conn_t *c) {
  while (c->wseg < nsegs) {
    struct iovec iov[16];
    int n = 0, s = c->wseg;
    long long rep = c->wrep;
    size_t off = c->woff;
    while (n < 16 && s < nsegs) {
      iov[n].iov_base = (void *)(segs[s].p + off);
      iov[n].iov_len = segs[s].len - off;
      n++;
      off = 0;
      if (++rep >= segs[s].repeat) { s++; rep = 0; }
    }
    ssize_t w = writev(c->fd, iov, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) { set_events(c, 1); return; }
      error_detail(c, "write: %s", strerror(errno));
      fail_conn(c, c->requests_done > 0 || errno != ECONNREFUSED ? E_WRITE : E_CONNECT);
      return;
    }
    if (measuring) bytes_sent += w;
    size_t left = (size_t)w;
    while (left > 0) {
      size_t room = segs[c->wseg].len - c->woff;
      if (left < room) { c->woff += left; left = 0; break; }
      left -= room;
      c->woff = 0;
      if (++c->wrep >= segs[c->wseg].repeat) { c->wseg++; c->wrep = 0; }
    }
  }
  set_events(c, 0);
}

// A response is complete and valid or not: account for it and send the next request.
static void finish_response(conn_t *c, int error_kind) {
  c->requests_done++;
  if (error_kind < 0 && c->wseg < nsegs) error_kind = E_EARLY;
  if (error_kind < 0 && expect_body >= 0 && c->body_bytes != expect_body) error_kind = E_LENGTH;
  if (error_kind >= 0) {
    count_error(c, error_kind);
    if (error_kind == E_STATUS) error_detail(c, "status %d", c->status);
    else error_detail(c, "response failed: %s", error_names[error_kind]);
  } else if (measuring) {
    ok_requests++;
    record_latency(now() - c->started);
    payload_bytes += body_size + c->body_bytes;
  } else warmup_ok++;
  // After an early answer the rest of our request is still in flight: the stream is no longer usable.
  if (c->close_after || error_kind == E_EARLY) {
    close_conn(c);
    reconnects++;
  }
  start_request(c);
}

// ---- response heads ----

// Appends head bytes; returns how many of `n` belong to the head (the rest is body), or -1 if the
// head is too large. Sets head_done when the blank line is found.
static long take_head(conn_t *c, const unsigned char *p, size_t n) {
  size_t room = MAX_HEAD - 1 - c->head_len;
  size_t take = n < room ? n : room;
  int from = c->head_len > 3 ? c->head_len - 3 : 0;
  memcpy(c->head + c->head_len, p, take);
  c->head_len += (int)take;
  c->head[c->head_len] = 0;
  for (int i = from; i < c->head_len; i++) {
    // CRLF CRLF, or LF LF (CGI allows bare newlines).
    int end = 0;
    if (c->head[i] == '\n' && i + 1 < c->head_len && c->head[i + 1] == '\n') end = i + 2;
    else if (c->head[i] == '\n' && i + 2 < c->head_len && c->head[i + 1] == '\r' && c->head[i + 2] == '\n') end = i + 3;
    if (end) {
      long used = (long)take - (c->head_len - end);
      c->head_len = end;
      c->head[end] = 0;
      c->head_done = 1;
      return used;
    }
  }
  if (take < n) return -1;
  return (long)take;
}

static int header_is(const char *line, const char *name) {
  size_t n = strlen(name);
  return !strncasecmp(line, name, n) && line[n] == ':';
}

static const char *header_value(const char *line, const char *name) {
  const char *v = line + strlen(name) + 1;
  while (*v == ' ' || *v == '\t') v++;
  return v;
}

// Reads Status / Location / Content-Length (CGI), or the status line plus Content-Length,
// Transfer-Encoding and Connection (HTTP). Returns 0, or -1 for a head that is not one.
static int parse_head(conn_t *c) {
  char *line = c->head;
  int chunked = 0, location = 0;
  c->status = 0;
  if (use_http) {
    if (strncmp(line, "HTTP/1.", 7) || strlen(line) < 12) return -1;
    c->status = atoi(line + 9);
    if (line[7] == '0') c->close_after = 1;
    line = strchr(line, '\n') + 1;
  }
  while (*line && *line != '\r' && *line != '\n') {
    char *eol = strchr(line, '\n');
    if (!eol) return -1;
    if (!use_http && header_is(line, "Status")) c->status = atoi(header_value(line, "Status"));
    else if (!use_http && header_is(line, "Location")) location = 1;
    else if (header_is(line, "Content-Length")) c->content_length = atoll(header_value(line, "Content-Length"));
    else if (use_http && header_is(line, "Transfer-Encoding")) chunked = strncasecmp(header_value(line, "Transfer-Encoding"), "chunked", 7) == 0;
    else if (use_http && header_is(line, "Connection")) {
      if (!strncasecmp(header_value(line, "Connection"), "close", 5)) c->close_after = 1;
    }
    line = eol + 1;
  }
  if (!use_http && c->status == 0) c->status = location ? 302 : 200;  // CGI/1.1 section 6.3
  if (use_http) {
    if (chunked) { c->hstate = 2; c->content_length = -1; }
    else if (c->status == 204 || c->status == 304 || c->status < 200) c->hstate = 9;
    else if (c->content_length >= 0) c->hstate = c->content_length > 0 ? 1 : 9;
    else return -1;  // a body delimited by closing the connection is not keep-alive
  }
  return 0;
}

// ---- FastCGI responses ----

// Feeds STDOUT content: the CGI head first, then body bytes.
static int fcgi_stdout(conn_t *c, const unsigned char *p, size_t n) {
  if (!c->head_done) {
    long used = take_head(c, p, n);
    if (used < 0) return E_HEAD;
    if (!c->head_done) return -1;
    if (parse_head(c) < 0) return E_HEAD;
    p += used;
    n -= (size_t)used;
  }
  c->body_bytes += (long long)n;
  return -1;
}

// Parses response bytes; returns how many were consumed (a response may end inside the buffer).
// The outcome of a finished response is in *done: -2 none yet, -1 valid, else an error kind.
static size_t fcgi_feed(conn_t *c, const unsigned char *p, size_t n, int *done) {
  size_t o = 0;
  *done = -2;
  while (o < n) {
    if (c->clen_left > 0) {
      size_t take = n - o < c->clen_left ? n - o : c->clen_left;
      if (c->rtype == FCGI_STDOUT) {
        int e = fcgi_stdout(c, p + o, take);
        if (e >= 0) { *done = e; return n; }
      } else if (c->rtype == FCGI_END_REQUEST) {
        for (size_t i = 0; i < take && c->efill < 8; i++) c->endb[c->efill++] = p[o + i];
      } else if (c->rtype == FCGI_STDERR) {
        if (measuring) stderr_bytes += (long long)take;
      }
      c->clen_left -= (unsigned)take;
      o += take;
    } else if (c->pad_left > 0) {
      size_t take = n - o < c->pad_left ? n - o : c->pad_left;
      c->pad_left -= (unsigned)take;
      o += take;
    } else {
      size_t want = (size_t)(8 - c->hfill), take = want < n - o ? want : n - o;
      memcpy(c->hdr + c->hfill, p + o, take);
      c->hfill += (int)take;
      o += take;
      if (c->hfill < 8) break;
      c->hfill = 0;
      int type = c->hdr[1], id = (c->hdr[2] << 8) | c->hdr[3];
      unsigned len = (c->hdr[4] << 8) | c->hdr[5];
      if (c->hdr[0] != 1 || id != REQUEST_ID) { *done = E_PROTOCOL; return n; }
      if (type == FCGI_STDOUT) {
        if (c->stdout_ended) { *done = E_NO_STDOUT_END; return n; }
        if (len == 0) c->stdout_ended = 1;
      } else if (type == FCGI_END_REQUEST) {
        if (len != 8) { *done = E_PROTOCOL; return n; }
        c->end_seen = 1;
        c->efill = 0;
      } else if (type != FCGI_STDERR) {
        *done = E_PROTOCOL;
        return n;
      }
      c->rtype = type;
      c->clen_left = len;
      c->pad_left = c->hdr[6];
    }
    if (c->end_seen && c->clen_left == 0 && c->pad_left == 0) {
      unsigned app = ((unsigned)c->endb[0] << 24) | (c->endb[1] << 16) | (c->endb[2] << 8) | c->endb[3];
      int proto = c->endb[4];
      if (proto != FCGI_REQUEST_COMPLETE) *done = E_END_STATUS;
      else if (!c->stdout_ended) *done = E_NO_STDOUT_END;
      else if (!c->head_done) *done = E_HEAD;
      else if (c->status != 200) *done = E_STATUS;
      else if (app != 0) *done = E_END_STATUS;
      else if (c->content_length >= 0 && c->content_length != c->body_bytes) *done = E_LENGTH;
      else *done = -1;
      return o;
    }
  }
  return o;
}

// ---- HTTP responses ----

// hstate: 0 head, 1 body by Content-Length, 2 chunk size line, 3 chunk data, 4 CRLF after data,
// 5 trailers, 9 complete.
static size_t http_feed(conn_t *c, const unsigned char *p, size_t n, int *done) {
  size_t o = 0;
  *done = -2;
  while (o < n && c->hstate != 9) {
    switch (c->hstate) {
      case 0: {
        long used = take_head(c, p + o, n - o);
        if (used < 0) { *done = E_HEAD; return n; }
        o += (size_t)used;
        if (c->head_done && parse_head(c) < 0) { *done = E_HEAD; return n; }
        break;
      }
      case 1: {
        long long want = c->content_length - c->body_bytes;
        size_t take = (long long)(n - o) < want ? n - o : (size_t)want;
        c->body_bytes += (long long)take;
        o += take;
        if (c->body_bytes == c->content_length) c->hstate = 9;
        break;
      }
      case 2: {
        // The chunk-size line: hex digits, then maybe an extension (";name=value") up to CRLF.
        unsigned char ch = p[o++];
        int hex = (ch >= '0' && ch <= '9') || ((ch | 32) >= 'a' && (ch | 32) <= 'f');
        if (ch == '\n') {
          if (!c->chunk_digits) { *done = E_PROTOCOL; return n; }
          c->hstate = c->chunk_left > 0 ? 3 : 5;
          c->line_len = 0;
          c->chunk_digits = 0;
          c->in_extension = 0;
        } else if (c->in_extension) {
          // skipped
        } else if (hex) {
          c->chunk_left = c->chunk_left * 16 + (ch <= '9' ? ch - '0' : (ch | 32) - 'a' + 10);
          if (++c->chunk_digits > 15) { *done = E_PROTOCOL; return n; }
        } else if (ch == ';' || ch == '\r' || ch == ' ' || ch == '\t') {
          c->in_extension = 1;
        } else {
          *done = E_PROTOCOL;
          return n;
        }
        break;
      }
      case 3: {
        size_t take = (long long)(n - o) < c->chunk_left ? n - o : (size_t)c->chunk_left;
        c->chunk_left -= (long long)take;
        c->body_bytes += (long long)take;
        o += take;
        if (c->chunk_left == 0) { c->hstate = 4; c->line_len = 0; }
        break;
      }
      case 4: {
        unsigned char ch = p[o++];
        if (ch == '\n') { c->hstate = 2; c->chunk_left = 0; c->chunk_digits = 0; }
        else if (ch != '\r') { *done = E_PROTOCOL; return n; }
        break;
      }
      case 5: {
        unsigned char ch = p[o++];
        if (ch == '\n') {
          if (c->line_len == 0) c->hstate = 9;
          c->line_len = 0;
        } else if (ch != '\r') c->line_len++;
        break;
      }
    }
  }
  if (c->hstate == 9) {
    if (c->status != 200) *done = E_STATUS;
    else if (c->content_length >= 0 && c->body_bytes != c->content_length) *done = E_LENGTH;
    else *done = -1;
  }
  return o;
}

// ---- reading ----

static unsigned char rbuf[1 << 18];

static void on_readable(conn_t *c) {
  for (int rounds = 0; rounds < 4 && c->fd >= 0; rounds++) {
    ssize_t n = read(c->fd, rbuf, sizeof rbuf);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
    }
    if (n <= 0) {
      if (c->state == C_IDLE || (c->state == C_ACTIVE && !c->got_bytes && c->requests_done > 0)) {
        // Closed between requests: idle, or before answering the next one (keep-conn not honoured).
        error_detail(c, "the server closed a kept connection (%s)", n < 0 ? strerror(errno) : "EOF");
        count_error(c, E_IDLE_CLOSED);
        close_conn(c);
        if (c->state == C_IDLE) { c->state = C_FREE; return; }
        reconnects++;
        start_request(c);
        return;
      }
      error_detail(c, "connection lost mid-request (%s)", n < 0 ? strerror(errno) : "EOF");
      fail_conn(c, E_CLOSED);
      return;
    }
    if (measuring) bytes_received += n;
    c->got_bytes = 1;
    size_t o = 0;
    while (o < (size_t)n) {
      if (c->state != C_ACTIVE) {
        error_detail(c, "%zd bytes arrived with no request in progress", (size_t)n - o);
        fail_conn(c, E_UNEXPECTED);
        return;
      }
      int done;
      unsigned generation = c->generation;
      size_t used = use_http ? http_feed(c, rbuf + o, (size_t)n - o, &done) : fcgi_feed(c, rbuf + o, (size_t)n - o, &done);
      o += used;
      if (done == -2) break;
      if (done == E_PROTOCOL || done == E_HEAD || done == E_NO_STDOUT_END) {
        // The byte stream can no longer be trusted.
        error_detail(c, "bad response: %s", error_names[done]);
        c->requests_done++;
        fail_conn(c, done);
        return;
      }
      if (o < (size_t)n) {
        // Bytes beyond the end of the response: one request at a time means there should be none.
        c->requests_done++;
        error_detail(c, "%zd bytes after the end of a response", (size_t)n - o);
        fail_conn(c, E_UNEXPECTED);
        return;
      }
      finish_response(c, done);
      if (c->generation != generation) return;
    }
    if ((size_t)n < sizeof rbuf) return;
  }
}

// ---- main ----

static volatile sig_atomic_t stop_signal = 0;
static void on_signal(int sig) { stop_signal = sig; }

static long long parse_size(const char *s) {
  char *end;
  double v = strtod(s, &end);
  switch (*end | 32) {
    case 'k': v *= 1024; break;
    case 'm': v *= 1024 * 1024; break;
    case 'g': v *= 1024.0 * 1024 * 1024; break;
    default: break;
  }
  return (long long)v;
}

static void parse_target(const char *t) {
  target_text = t;
  memset(&target_addr, 0, sizeof target_addr);
  if (!strncmp(t, "unix:", 5) || t[0] == '/') {
    const char *path = t[0] == '/' ? t : t + 5;
    struct sockaddr_un *sun = (struct sockaddr_un *)&target_addr;
    if (strlen(path) >= sizeof sun->sun_path) { fprintf(stderr, "fcgi-bench: socket path too long\n"); exit(2); }
    sun->sun_family = AF_UNIX;
    strcpy(sun->sun_path, path);
    target_len = sizeof *sun;
    target_family = AF_UNIX;
    return;
  }
  char host[256], port[16];
  const char *colon = strrchr(t, ':');
  if (!colon) { fprintf(stderr, "fcgi-bench: target must be unix:/path, /path or host:port\n"); exit(2); }
  snprintf(port, sizeof port, "%s", colon + 1);
  if (t[0] == '[') snprintf(host, sizeof host, "%.*s", (int)(colon - t - 2), t + 1);
  else snprintf(host, sizeof host, "%.*s", (int)(colon - t), t);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
  int e = getaddrinfo(host, port, &hints, &res);
  if (e) { fprintf(stderr, "fcgi-bench: %s: %s\n", t, gai_strerror(e)); exit(2); }
  memcpy(&target_addr, res->ai_addr, res->ai_addrlen);
  target_len = res->ai_addrlen;
  target_family = res->ai_family;
  freeaddrinfo(res);
}

static double cpu_seconds(const struct rusage *a, const struct rusage *b) {
  return (b->ru_utime.tv_sec - a->ru_utime.tv_sec) + (b->ru_utime.tv_usec - a->ru_utime.tv_usec) / 1e6 +
         (b->ru_stime.tv_sec - a->ru_stime.tv_sec) + (b->ru_stime.tv_usec - a->ru_stime.tv_usec) / 1e6;
}

static void start_measuring(void) {
  measuring = 1;
  measure_start = now();
  getrusage(RUSAGE_SELF, &usage_start);
}

static void print_result(double elapsed) {
  struct rusage usage_end;
  getrusage(RUSAGE_SELF, &usage_end);
  long long total_errors = 0;
  for (int i = 0; i < E_KINDS; i++) total_errors += errors[i];
  printf("{\"protocol\":\"%s\",\"target\":\"%s\",\"connections\":%d,\"body_bytes\":%lld,\"uri\":\"%s\",", use_http ? "http" : "fcgi",
         target_text, nconn, body_size, uri);
  printf("\"requests\":%lld,\"errors\":%lld,\"seconds\":%.3f,\"rps\":%.1f,", ok_requests, total_errors, elapsed,
         elapsed > 0 ? ok_requests / elapsed : 0);
  printf("\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"mean_ms\":%.3f,", percentile_ms(0.5), percentile_ms(0.9),
         percentile_ms(0.99), lat_max * 1e3, lat_count ? lat_sum / lat_count * 1e3 : 0);
  printf("\"bytes_sent\":%lld,\"bytes_received\":%lld,\"payload_bytes\":%lld,\"mb_s\":%.2f,\"stderr_bytes\":%lld,", bytes_sent,
         bytes_received, payload_bytes, elapsed > 0 ? payload_bytes / 1e6 / elapsed : 0, stderr_bytes);
  int open = 0;
  for (int i = 0; i < nconn; i++) open += conns[i].fd >= 0;
  printf("\"open_connections\":%d,\"cpu_s\":%.3f,\"warmup_requests\":%lld,\"warmup_errors\":%lld,\"reconnects\":%lld,\"error_kinds\":{", open, cpu_seconds(&usage_start, &usage_end),
         warmup_ok, warmup_errors, reconnects);
  int first = 1;
  for (int i = 0; i < E_KINDS; i++) {
    if (!errors[i]) continue;
    printf("%s\"%s\":%lld", first ? "" : ",", error_names[i], errors[i]);
    first = 0;
  }
  printf("}}\n");
  fflush(stdout);
}

static void usage(const char *argv0) {
  fprintf(stderr,
          "usage: %s [options] unix:/path | /path | host:port | [v6]:port\n"
          "  -p, --protocol fcgi|http   FastCGI (default) or HTTP/1.1 keep-alive\n"
          "  -c, --connections N        concurrent connections, one request at a time each (32)\n"
          "  -d, --duration S           measured seconds (8)\n"
          "  -n, --requests N           stop after N requests instead (after the warm-up)\n"
          "  -w, --warmup S             seconds of load before measuring (0)\n"
          "  -b, --body BYTES           POST a body of BYTES (k, m, g suffixes: KiB, MiB, GiB); 0 = GET\n"
          "  -u, --uri URI              request URI (/)\n"
          "  -H, --host NAME            Host header and SERVER_NAME (localhost)\n"
          "  -r, --record-size N        FastCGI STDIN record size (32768, as nginx)\n"
          "  -e, --expect-body N        every response body must be N bytes\n"
          "      --hold S               each connection makes one request, then all stay idle S seconds\n"
          "      --ramp N               connections opened at once in --hold mode (64)\n"
          "      --lifeline             stop when stdin closes (the process that started us is gone)\n"
          "  -v, --verbose              print the first errors on stderr\n",
          argv0);
  exit(2);
}

int main(int argc, char **argv) {
  static struct option longopts[] = {
      {"protocol", required_argument, 0, 'p'}, {"connections", required_argument, 0, 'c'}, {"duration", required_argument, 0, 'd'},
      {"requests", required_argument, 0, 'n'}, {"warmup", required_argument, 0, 'w'},      {"body", required_argument, 0, 'b'},
      {"uri", required_argument, 0, 'u'},      {"host", required_argument, 0, 'H'},        {"record-size", required_argument, 0, 'r'},
      {"expect-body", required_argument, 0, 'e'}, {"hold", required_argument, 0, 'h' + 256}, {"ramp", required_argument, 0, 'r' + 256},
      {"lifeline", no_argument, 0, 'l' + 256},
      {"verbose", no_argument, 0, 'v'},        {0, 0, 0, 0}};
  int opt;
  while ((opt = getopt_long(argc, argv, "p:c:d:n:w:b:u:H:r:e:v", longopts, NULL)) != -1) {
    switch (opt) {
      case 'p':
        if (!strcmp(optarg, "http")) use_http = 1;
        else if (strcmp(optarg, "fcgi")) usage(argv[0]);
        break;
      case 'c': nconn = atoi(optarg); break;
      case 'd': duration = atof(optarg); break;
      case 'n': max_requests = atoll(optarg); break;
      case 'w': warmup = atof(optarg); break;
      case 'b': body_size = parse_size(optarg); break;
      case 'u': uri = optarg; break;
      case 'H': host_header = optarg; break;
      case 'r': record_size = (int)parse_size(optarg); break;
      case 'e': expect_body = parse_size(optarg); break;
      case 'h' + 256: hold_seconds = atof(optarg); break;
      case 'r' + 256: ramp = atoi(optarg); break;
      case 'l' + 256: lifeline = 1; break;
      case 'v': verbose = 1; break;
      default: usage(argv[0]);
    }
  }
  if (optind != argc - 1 || nconn < 1 || record_size < 1 || record_size > 65535 || body_size < 0 || ramp < 1) usage(argv[0]);
  parse_target(argv[optind]);

  // Thousands of held connections need as many descriptors: take the hard limit.
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  if (use_http) build_http_request();
  else build_fcgi_request();

  ep = epoll_create1(EPOLL_CLOEXEC);
  conns = calloc(nconn, sizeof(conn_t));
  if (lifeline) {
    // stdin is a pipe from the runner: readable (EOF) or hung up once the runner is gone, even killed.
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);
  }
  for (int i = 0; i < nconn; i++) { conns[i].fd = -1; conns[i].state = C_FREE; }

  double t0 = now();
  if (warmup <= 0 && !hold_mode()) start_measuring();
  if (hold_mode()) start_measuring();
  int opened = 0;
  if (!hold_mode()) {
    for (; opened < nconn; opened++) start_request(&conns[opened]);
  }
  double measure_end = warmup > 0 && !hold_mode() ? t0 + warmup + duration : t0 + duration;
  double hold_until = 0;
  int holding = 0;
  struct epoll_event events[512];

  for (;;) {
    double t = now();
    if (stop_signal) break;
    if (!measuring && t >= t0 + warmup) {
      start_measuring();
      measure_end = t + duration;
    }
    if (hold_mode()) {
      // Open connections a few at a time, each making its one request.
      int setting_up = 0, idle = 0;
      for (int i = 0; i < opened; i++) {
        if (conns[i].state == C_IDLE && conns[i].fd >= 0) idle++;
        else if (conns[i].state == C_ACTIVE || conns[i].state == C_RETRY) setting_up++;
      }
      while (opened < nconn && setting_up < ramp) { start_request(&conns[opened++]); setting_up++; }
      if (!holding && opened == nconn && setting_up == 0) {
        holding = 1;
        hold_until = t + hold_seconds;
        printf("{\"event\":\"holding\",\"connections\":%d,\"seconds\":%.3f}\n", idle, t - measure_start);
        fflush(stdout);
      }
      if (holding && t >= hold_until) break;
    } else if (max_requests > 0 && measuring) {
      if (started_requests >= max_requests) {
        int busy = 0;
        for (int i = 0; i < nconn; i++) busy += conns[i].state == C_ACTIVE || conns[i].state == C_RETRY;
        if (!busy) break;
      }
    } else if (measuring && t >= measure_end) break;

    int timeout = 50;
    if (retries_pending) {
      retries_pending = 0;
      for (int i = 0; i < nconn; i++) {
        if (conns[i].state != C_RETRY) continue;
        if (conns[i].retry_at <= t) { conns[i].state = C_FREE; start_request(&conns[i]); }
        else retries_pending++;
      }
      if (retries_pending) timeout = 1;
    }
    int n = epoll_wait(ep, events, 512, timeout);
    for (int i = 0; i < n; i++) {
      conn_t *c = events[i].data.ptr;
      if (c == NULL) {
        char scratch[64];
        if (read(0, scratch, sizeof scratch) <= 0) stop_signal = SIGHUP;
        continue;
      }
      if (c->fd < 0) continue;
      if (events[i].events & EPOLLOUT && c->state == C_ACTIVE) on_writable(c);
      if (c->fd >= 0 && events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
    }
  }
  print_result(now() - measure_start);
  return 0;
}
