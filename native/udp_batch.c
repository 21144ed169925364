/*
 * Batched UDP for the NTP service: recvmmsg(2) and sendmmsg(2) on a socket driven by libuv's poll handle.
 *
 * Node's dgram costs one JS callback, one sendmsg(2) and several allocations per datagram; at NTP's request
 * sizes that per-datagram cost is most of the service's CPU. Here one readable event drains up to `slots`
 * datagrams with one system call, hands them to JS in one call (the datagrams and their metadata live in
 * buffers JS allocated and reads in place), and sends every answer JS wrote back with one more system call.
 * The kernel's receive timestamp (SO_TIMESTAMPNS) of each datagram comes along, as its age at the batch's
 * start, so that queueing in a batch does not delay the NTP receive timestamp (RFC 5905 §8).
 *
 * Nothing here knows NTP: the protocol stays in TypeScript (src/proto/ntp/). Linux only; other systems use
 * dgram (src/server/udp-batch.ts decides).
 */
#define NAPI_VERSION 8
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "socket_address.h"

/* Per-slot metadata, as Int32 words (keep in step with src/server/udp-batch.ts). */
enum {
  META_LENGTH = 0,       /* received length; -1 when the datagram was longer than the slot (MSG_TRUNC) */
  META_FAMILY = 1,       /* 4 or 6 */
  META_PORT = 2,         /* source port */
  META_ADDRESS_LEN = 3,  /* length of the source address text in the address area */
  META_AGE_NS = 4,       /* nanoseconds from the kernel receive timestamp to the batch start; -1 if none */
  META_REPLY_LENGTH = 5, /* set by JS: bytes of the reply in the slot's tx area, 0 for none */
  META_STRIDE = 8
};
/* Counters JS reads, as Int32 words of the stats array (they wrap; JS takes differences). */
enum { STAT_SEND_ERRORS = 0, STAT_RECEIVE_ERRORS = 1, STAT_WORDS = 4 };
#define ADDRESS_TEXT_SIZE 48 /* INET6_ADDRSTRLEN (46) rounded up */
#define CONTROL_SIZE 64      /* one SCM_TIMESTAMPNS message */
#define MAX_BATCHES_PER_WAKEUP 16

typedef struct {
  napi_env env;
  uv_poll_t poll;
  int fd;
  int family;
  int slots;
  int slot_size;
  int closing;
  int env_gone; /* the environment was torn down: no N-API call may follow */
  uint8_t *rx;
  uint8_t *tx;
  int32_t *meta;
  uint8_t *address_text;
  int32_t *stats;
  napi_ref buffers_ref; /* the object holding the JS buffers: keeps them alive while the socket lives */
  napi_ref on_batch_ref;
  napi_ref on_closed_ref;
  napi_async_context async_context;
  napi_ref resource_ref;
  struct mmsghdr *rmsgs;
  struct mmsghdr *smsgs;
  struct iovec *riov;
  struct iovec *siov;
  struct sockaddr_storage *addrs;
  uint8_t *control;
} UdpBatch;

static int throw_errno(napi_env env, int err, const char *what) {
  const char *code = "EIO";
  switch (err) {
    case EADDRINUSE: code = "EADDRINUSE"; break;
    case EACCES: code = "EACCES"; break;
    case EADDRNOTAVAIL: code = "EADDRNOTAVAIL"; break;
    case EAFNOSUPPORT: code = "EAFNOSUPPORT"; break;
    case EINVAL: code = "EINVAL"; break;
    case EMFILE: code = "EMFILE"; break;
    case ENFILE: code = "ENFILE"; break;
    case ENOMEM: code = "ENOMEM"; break;
    case EPERM: code = "EPERM"; break;
    default: break;
  }
  char message[160];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_throw_error(env, code, message);
  return -1;
}

#define CHECK(call)                                                        \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      napi_throw_error(env, "ERR_NATIVE", "udp_batch: " #call " failed"); \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

static void free_batch(UdpBatch *b) {
  free(b->rmsgs);
  free(b->smsgs);
  free(b->riov);
  free(b->siov);
  free(b->addrs);
  free(b->control);
  free(b);
}

static void release_refs(UdpBatch *b) {
  napi_env env = b->env;
  if (b->async_context != NULL) napi_async_destroy(env, b->async_context);
  if (b->buffers_ref != NULL) napi_delete_reference(env, b->buffers_ref);
  if (b->on_batch_ref != NULL) napi_delete_reference(env, b->on_batch_ref);
  if (b->resource_ref != NULL) napi_delete_reference(env, b->resource_ref);
  b->async_context = NULL;
  b->buffers_ref = b->on_batch_ref = b->resource_ref = NULL;
}

static void send_replies(UdpBatch *b, int count) {
  int pending = 0;
  for (int i = 0; i < count; i++) {
    int32_t length = b->meta[i * META_STRIDE + META_REPLY_LENGTH];
    if (length <= 0 || length > b->slot_size) continue;
    struct mmsghdr *m = &b->smsgs[pending];
    b->siov[pending].iov_base = b->tx + (size_t)i * b->slot_size;
    b->siov[pending].iov_len = (size_t)length;
    memset(&m->msg_hdr, 0, sizeof m->msg_hdr);
    m->msg_hdr.msg_name = &b->addrs[i];
    m->msg_hdr.msg_namelen = b->rmsgs[i].msg_hdr.msg_namelen;
    m->msg_hdr.msg_iov = &b->siov[pending];
    m->msg_hdr.msg_iovlen = 1;
    pending++;
  }
  int sent = 0;
  while (sent < pending) {
    int r = sendmmsg(b->fd, b->smsgs + sent, (unsigned)(pending - sent), MSG_DONTWAIT);
    if (r > 0) {
      sent += r;
    } else if (r < 0 && errno == EINTR) {
      continue;
    } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
      /* The send buffer is full: NTP clients retry, so the rest of the batch is dropped, and counted. */
      b->stats[STAT_SEND_ERRORS] += pending - sent;
      break;
    } else {
      /* This one datagram cannot be sent (an unreachable or invalid destination): skip it. */
      b->stats[STAT_SEND_ERRORS] += 1;
      sent += 1;
    }
  }
}

/* Calls JS with the number of datagrams in the slots; returns 0 when JS threw or the socket closed. */
static int deliver(UdpBatch *b, int count) {
  napi_env env = b->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return 0;
  napi_value resource, on_batch, argument, result;
  int ok = napi_get_reference_value(env, b->resource_ref, &resource) == napi_ok &&
           napi_get_reference_value(env, b->on_batch_ref, &on_batch) == napi_ok &&
           napi_create_int32(env, count, &argument) == napi_ok;
  if (ok) {
    napi_status status = napi_make_callback(env, b->async_context, resource, on_batch, 1, &argument, &result);
    if (status == napi_pending_exception) {
      /* A bug in the JS handler: report it like any uncaught exception, never lose the loop. */
      napi_value exception;
      napi_get_and_clear_last_exception(env, &exception);
      napi_fatal_exception(env, exception);
      ok = 0;
    } else if (status != napi_ok) {
      ok = 0;
    }
  }
  napi_close_handle_scope(env, scope);
  return ok && !b->closing;
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  UdpBatch *b = (UdpBatch *)handle->data;
  if (b->closing || status < 0 || !(events & UV_READABLE)) return;
  for (int round = 0; round < MAX_BATCHES_PER_WAKEUP; round++) {
    for (int i = 0; i < b->slots; i++) {
      struct msghdr *h = &b->rmsgs[i].msg_hdr;
      h->msg_name = &b->addrs[i];
      h->msg_namelen = sizeof(struct sockaddr_storage);
      h->msg_control = b->control + (size_t)i * CONTROL_SIZE;
      h->msg_controllen = CONTROL_SIZE;
      h->msg_flags = 0;
    }
    int count = recvmmsg(b->fd, b->rmsgs, (unsigned)b->slots, MSG_DONTWAIT, NULL);
    if (count < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) b->stats[STAT_RECEIVE_ERRORS] += 1;
      return;
    }
    if (count == 0) return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    for (int i = 0; i < count; i++) {
      int32_t *meta = b->meta + (size_t)i * META_STRIDE;
      struct msghdr *h = &b->rmsgs[i].msg_hdr;
      meta[META_LENGTH] = (h->msg_flags & MSG_TRUNC) ? -1 : (int32_t)b->rmsgs[i].msg_len;
      meta[META_REPLY_LENGTH] = 0;
      meta[META_AGE_NS] = -1;
      for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c != NULL; c = CMSG_NXTHDR(h, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
          struct timespec at;
          memcpy(&at, CMSG_DATA(c), sizeof at);
          int64_t age = (int64_t)(now.tv_sec - at.tv_sec) * 1000000000LL + (now.tv_nsec - at.tv_nsec);
          /* A step of the clock between the two reads would make the age meaningless: take none. */
          meta[META_AGE_NS] = (age >= 0 && age < 1000000000LL) ? (int32_t)age : -1;
        }
      }
      char *text = (char *)b->address_text + (size_t)i * ADDRESS_TEXT_SIZE;
      meta[META_FAMILY] = b->addrs[i].ss_family == AF_INET6 ? 6 : 4;
      meta[META_PORT] = peer_text(&b->addrs[i], text, ADDRESS_TEXT_SIZE);
      meta[META_ADDRESS_LEN] = (int32_t)strlen(text);
    }
    if (!deliver(b, count)) return;
    send_replies(b, count);
    if (count < b->slots) return; /* drained: the next datagram wakes us again */
  }
}

static void on_poll_closed(uv_handle_t *handle) {
  UdpBatch *b = (UdpBatch *)handle->data;
  close(b->fd);
  if (b->env_gone) {
    free_batch(b);
    return;
  }
  napi_env env = b->env;
  napi_ref on_closed_ref = b->on_closed_ref;
  release_refs(b);
  free_batch(b);
  if (on_closed_ref == NULL) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback, global, result;
  if (napi_get_reference_value(env, on_closed_ref, &callback) == napi_ok && callback != NULL &&
      napi_get_global(env, &global) == napi_ok) {
    napi_call_function(env, global, callback, 0, NULL, &result);
  }
  napi_delete_reference(env, on_closed_ref);
  napi_close_handle_scope(env, scope);
}

static void begin_close(UdpBatch *b) {
  if (b->closing) return;
  b->closing = 1;
  uv_poll_stop(&b->poll);
  uv_close((uv_handle_t *)&b->poll, on_poll_closed);
}

static void on_env_cleanup(void *data) {
  UdpBatch *b = (UdpBatch *)data;
  /* The environment is going away: references go with it, no JS may run, and the handle closes on its own. */
  release_refs(b);
  if (b->on_closed_ref != NULL) napi_delete_reference(b->env, b->on_closed_ref);
  b->on_closed_ref = NULL;
  b->env_gone = 1;
  begin_close(b);
}

static int get_int(napi_env env, napi_value object, const char *name, int32_t *out) {
  napi_value value;
  return napi_get_named_property(env, object, name, &value) == napi_ok && napi_get_value_int32(env, value, out) == napi_ok;
}

static void *get_buffer(napi_env env, napi_value object, const char *name, size_t need) {
  napi_value value;
  napi_typedarray_type type;
  size_t length, offset;
  void *data;
  napi_value arraybuffer;
  if (napi_get_named_property(env, object, name, &value) != napi_ok) return NULL;
  if (napi_get_typedarray_info(env, value, &type, &length, &data, &arraybuffer, &offset) != napi_ok) return NULL;
  size_t element = (type == napi_int32_array) ? 4 : 1;
  if (length * element < need) return NULL;
  return data;
}

/*
 * open({ family, host, port, slots, slotSize, buffers: { rx, tx, meta, addressText, stats }, onBatch })
 * → handle. Binds exclusively (no SO_REUSEADDR), v6-only for family 6, as dgram does for the service.
 */
static napi_value udp_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value options;
  CHECK(napi_get_cb_info(env, info, &argc, &options, NULL, NULL));
  int32_t family = 0, port = -1, slots = 0, slot_size = 0;
  if (argc < 1 || !get_int(env, options, "family", &family) || !get_int(env, options, "port", &port) ||
      !get_int(env, options, "slots", &slots) || !get_int(env, options, "slotSize", &slot_size) ||
      (family != 4 && family != 6) || port < 0 || port > 65535 || slots < 1 || slots > 1024 || slot_size < 48 ||
      slot_size > 65536) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "udp_batch.open: bad options");
    return NULL;
  }
  char host[64];
  size_t host_length = 0;
  napi_value host_value, buffers, on_batch;
  CHECK(napi_get_named_property(env, options, "host", &host_value));
  if (napi_get_value_string_utf8(env, host_value, host, sizeof host, &host_length) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "udp_batch.open: host must be a string");
    return NULL;
  }
  CHECK(napi_get_named_property(env, options, "buffers", &buffers));
  CHECK(napi_get_named_property(env, options, "onBatch", &on_batch));
  napi_valuetype on_batch_type;
  CHECK(napi_typeof(env, on_batch, &on_batch_type));
  size_t area = (size_t)slots * (size_t)slot_size;
  uint8_t *rx = get_buffer(env, buffers, "rx", area);
  uint8_t *tx = get_buffer(env, buffers, "tx", area);
  int32_t *meta = get_buffer(env, buffers, "meta", (size_t)slots * META_STRIDE * 4);
  uint8_t *address_text = get_buffer(env, buffers, "addressText", (size_t)slots * ADDRESS_TEXT_SIZE);
  int32_t *stats = get_buffer(env, buffers, "stats", STAT_WORDS * 4);
  if (rx == NULL || tx == NULL || meta == NULL || address_text == NULL || stats == NULL || on_batch_type != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "udp_batch.open: buffers too small or onBatch not a function");
    return NULL;
  }

  struct sockaddr_storage local;
  socklen_t local_length = numeric_address(family, host, port, &local);
  if (local_length == 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", family == 4 ? "udp_batch.open: host is not an IPv4 address" : "udp_batch.open: host is not an IPv6 address");
    return NULL;
  }

  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return (throw_errno(env, errno, "socket"), NULL);
  int on = 1;
  if (family == 6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) != 0) {
    int err = errno;
    close(fd);
    return (throw_errno(env, err, "setsockopt IPV6_V6ONLY"), NULL);
  }
  /* Receive timestamps are an improvement, not a requirement: without them the batch start is used. */
  setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
  if (bind(fd, (struct sockaddr *)&local, local_length) != 0) {
    int err = errno;
    close(fd);
    return (throw_errno(env, err, "bind"), NULL);
  }

  UdpBatch *b = calloc(1, sizeof *b);
  if (b != NULL) {
    b->rmsgs = calloc((size_t)slots, sizeof *b->rmsgs);
    b->smsgs = calloc((size_t)slots, sizeof *b->smsgs);
    b->riov = calloc((size_t)slots, sizeof *b->riov);
    b->siov = calloc((size_t)slots, sizeof *b->siov);
    b->addrs = calloc((size_t)slots, sizeof *b->addrs);
    b->control = calloc((size_t)slots, CONTROL_SIZE);
  }
  if (b == NULL || !b->rmsgs || !b->smsgs || !b->riov || !b->siov || !b->addrs || !b->control) {
    close(fd);
    if (b != NULL) free_batch(b);
    return (throw_errno(env, ENOMEM, "udp_batch.open"), NULL);
  }
  b->env = env;
  b->fd = fd;
  b->family = family;
  b->slots = slots;
  b->slot_size = slot_size;
  b->rx = rx;
  b->tx = tx;
  b->meta = meta;
  b->address_text = address_text;
  b->stats = stats;
  for (int i = 0; i < slots; i++) {
    b->riov[i].iov_base = rx + (size_t)i * slot_size;
    b->riov[i].iov_len = (size_t)slot_size;
    b->rmsgs[i].msg_hdr.msg_iov = &b->riov[i];
    b->rmsgs[i].msg_hdr.msg_iovlen = 1;
  }

  napi_value handle, resource_name;
  uv_loop_t *loop;
  if (napi_create_object(env, &handle) != napi_ok || napi_create_reference(env, buffers, 1, &b->buffers_ref) != napi_ok ||
      napi_create_reference(env, on_batch, 1, &b->on_batch_ref) != napi_ok ||
      napi_create_reference(env, handle, 1, &b->resource_ref) != napi_ok ||
      napi_create_string_utf8(env, "NtpUdpBatch", NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
      napi_async_init(env, handle, resource_name, &b->async_context) != napi_ok ||
      napi_get_uv_event_loop(env, &loop) != napi_ok || uv_poll_init(loop, &b->poll, fd) != 0) {
    close(fd);
    release_refs(b);
    free_batch(b);
    napi_throw_error(env, "ERR_NATIVE", "udp_batch.open: setup failed");
    return NULL;
  }
  b->poll.data = b;
  uv_poll_start(&b->poll, UV_READABLE, on_readable);
  napi_add_env_cleanup_hook(env, on_env_cleanup, b);

  napi_value external, local_port;
  int bound = bound_port(fd);
  CHECK(napi_create_external(env, b, NULL, NULL, &external));
  CHECK(napi_set_named_property(env, handle, "native", external));
  CHECK(napi_create_int32(env, bound, &local_port));
  CHECK(napi_set_named_property(env, handle, "port", local_port));
  return handle;
}

/* close(handle, onClosed): stops receiving at once; onClosed runs once the socket is closed. */
static napi_value udp_close(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2], external;
  CHECK(napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  UdpBatch *b = NULL;
  if (argc < 2 || napi_get_named_property(env, args[0], "native", &external) != napi_ok ||
      napi_get_value_external(env, external, (void **)&b) != napi_ok || b == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "udp_batch.close: not a socket handle");
    return NULL;
  }
  if (b->closing) {
    napi_throw_error(env, "ERR_SOCKET_CLOSED", "udp_batch.close: already closed");
    return NULL;
  }
  CHECK(napi_create_reference(env, args[1], 1, &b->on_closed_ref));
  napi_remove_env_cleanup_hook(env, on_env_cleanup, b);
  /* The external must not reach freed memory: a second close() sees no pointer. */
  napi_value nothing;
  CHECK(napi_get_null(env, &nothing));
  CHECK(napi_set_named_property(env, args[0], "native", nothing));
  begin_close(b);
  return NULL;
}

void ntptsd_register_aes(napi_env env, napi_value exports);
void ntptsd_register_tls(napi_env env, napi_value exports);

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn, constant;
  CHECK(napi_create_function(env, "open", NAPI_AUTO_LENGTH, udp_open, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "open", fn));
  CHECK(napi_create_function(env, "close", NAPI_AUTO_LENGTH, udp_close, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "close", fn));
  CHECK(napi_create_int32(env, META_STRIDE, &constant));
  CHECK(napi_set_named_property(env, exports, "metaStride", constant));
  CHECK(napi_create_int32(env, ADDRESS_TEXT_SIZE, &constant));
  CHECK(napi_set_named_property(env, exports, "addressTextSize", constant));
  CHECK(napi_create_int32(env, STAT_WORDS, &constant));
  CHECK(napi_set_named_property(env, exports, "statWords", constant));
  ntptsd_register_aes(env, exports);
  ntptsd_register_tls(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
