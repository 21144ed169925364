/*
 * A TLS 1.3 listener for the one-message services (NTS-KE, RFC 8915 §4, and EKS): accept, handshake, read,
 * export keys, write one answer, close, on OpenSSL directly (the OpenSSL that Node links, through its exported
 * symbols), driven by libuv poll handles and timers.
 *
 * Why: an NTS-KE exchange through node:tls costs about twice chrony's whole exchange before the service does
 * anything (two stream objects per connection, the TLS wrap, callbacks into JS at every stage of the
 * handshake); on OpenSSL alone it costs a little more than chrony's. What the services do stays in
 * TypeScript: JS decides who is admitted, sees the negotiated ALPN protocol and the decrypted bytes, asks for
 * exporter keys, and writes the answer (src/server/native-tls.ts adapts this to the service interface).
 *
 * Events to JS, through one function onEvent(kind, id, a, b):
 *   ACCEPT (id, address, port) → true to admit; a refused connection is closed before any TLS work.
 *   SECURE (id, alpn or null)   the handshake is done.
 *   DATA   (id, bytes)          decrypted application data.
 *   CLOSE  (id, reason, detail) the connection is gone, for every reason but destroy() from JS.
 * A connection is only torn down outside any callback about it, so JS may call end() or destroy() from one.
 */
#define NAPI_VERSION 8
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "socket_address.h"

enum { EV_ACCEPT = 1, EV_SECURE = 2, EV_DATA = 3, EV_CLOSE = 4, EV_ACCEPT_ERROR = 5 };
/* Why a connection closed (keep in step with src/server/native-tls.ts). */
enum {
  R_CLOSED = 0,            /* an orderly end, ours or the peer's */
  R_HANDSHAKE_TIMEOUT = 1,
  R_TLS_VERSION = 2,       /* the client offered no TLS 1.3 */
  R_NO_ALPN_MATCH = 3,     /* the client's ALPN protocols are none of ours: no_application_protocol alert */
  R_HANDSHAKE_ABORTED = 4, /* the peer went away during the handshake */
  R_HANDSHAKE_ERROR = 5,
  R_IDLE_TIMEOUT = 6,
  R_SOCKET_ERROR = 7
};
enum { S_HANDSHAKE, S_OPEN, S_DRAINING, S_DEAD };

#define BUCKETS 4096
#define READ_CHUNK 16384
#define MAX_ALPN 255

struct Listener;

typedef struct Conn {
  struct Listener *l;
  uint32_t id;
  int fd;
  SSL *ssl;
  uv_poll_t poll;
  uv_timer_t timer;
  int state;
  int events;
  int busy;          /* > 0 while drive() or a callback about this connection runs */
  int doomed;        /* tear down as soon as nothing runs */
  int report_close;  /* JS learns of the close (not when JS destroyed it) */
  int handles_open;
  uint8_t *out;
  size_t out_len;
  int end_requested;
  uint32_t idle_ms;
  struct Conn *next; /* hash chain */
} Conn;

typedef struct Listener {
  napi_env env;
  int fd;
  uv_poll_t poll;
  uv_timer_t retry; /* accept paused after EMFILE/ENFILE */
  int handles_open;
  int closing;
  SSL_CTX *ctx;
  uint8_t alpn[MAX_ALPN + 1];
  int alpn_length;
  uint32_t handshake_ms;
  uint32_t idle_ms;
  napi_ref on_event_ref;
  napi_ref resource_ref;
  napi_async_context async_context;
  uint32_t next_id;
  int conns;
  int released; /* JS let go of it: freed once nothing is left */
  Conn *buckets[BUCKETS];
  uint8_t read_buffer[READ_CHUNK];
} Listener;

static void drive(Conn *c, int may_read);
static void maybe_free_listener(Listener *l);

/* ---- connections by id ---- */

static Conn *find(Listener *l, uint32_t id) {
  for (Conn *c = l->buckets[id % BUCKETS]; c != NULL; c = c->next)
    if (c->id == id) return c;
  return NULL;
}

static void unlink_conn(Conn *c) {
  Conn **at = &c->l->buckets[c->id % BUCKETS];
  while (*at != NULL && *at != c) at = &(*at)->next;
  if (*at == c) *at = c->next;
}

/* ---- calls into JS ---- */

/* Calls onEvent(kind, id, a, b); returns the result in *result when asked. 0 when JS threw. */
static int emit(Listener *l, int kind, uint32_t id, napi_value a, napi_value b, napi_value *result) {
  napi_env env = l->env;
  napi_value resource, fn, argv[4], out;
  if (napi_get_reference_value(env, l->resource_ref, &resource) != napi_ok ||
      napi_get_reference_value(env, l->on_event_ref, &fn) != napi_ok || napi_create_int32(env, kind, &argv[0]) != napi_ok ||
      napi_create_uint32(env, id, &argv[1]) != napi_ok)
    return 0;
  argv[2] = a;
  argv[3] = b;
  napi_status status = napi_make_callback(env, l->async_context, resource, fn, 4, argv, &out);
  if (status == napi_pending_exception) {
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    napi_fatal_exception(env, exception);
    return 0;
  }
  if (status != napi_ok) return 0;
  if (result != NULL) *result = out;
  return 1;
}

/* ---- teardown ---- */

static void on_conn_handle_closed(uv_handle_t *handle) {
  Conn *c = (Conn *)handle->data;
  if (--c->handles_open > 0) return;
  Listener *l = c->l;
  free(c->out);
  free(c);
  l->conns--;
  maybe_free_listener(l);
}

static void teardown(Conn *c) {
  if (c->state == S_DEAD) return;
  c->state = S_DEAD;
  unlink_conn(c);
  if (c->ssl != NULL) SSL_free(c->ssl);
  c->ssl = NULL;
  uv_timer_stop(&c->timer);
  uv_poll_stop(&c->poll);
  uv_close((uv_handle_t *)&c->poll, on_conn_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
  /* The fd goes now: uv_poll only watched it, and nothing reads it again. */
  close(c->fd);
  c->fd = -1;
}

/* Reports the close to JS (when it should hear of it) and tears down once nothing runs. */
static void finish(Conn *c, int reason, const char *detail) {
  if (c->doomed || c->state == S_DEAD) return;
  c->doomed = 1;
  if (c->report_close) {
    Listener *l = c->l;
    napi_handle_scope scope;
    if (napi_open_handle_scope(l->env, &scope) == napi_ok) {
      napi_value a, b;
      c->busy++;
      if (napi_create_int32(l->env, reason, &a) == napi_ok &&
          napi_create_string_utf8(l->env, detail != NULL ? detail : "", NAPI_AUTO_LENGTH, &b) == napi_ok)
        emit(l, EV_CLOSE, c->id, a, b, NULL);
      c->busy--;
      napi_close_handle_scope(l->env, scope);
    }
  }
  if (c->busy == 0) teardown(c);
}

/* ---- TLS ---- */

static const char *last_ssl_error(char *buffer, size_t size) {
  unsigned long error = ERR_peek_last_error();
  if (error == 0) return "";
  ERR_error_string_n(error, buffer, size);
  return buffer;
}

static void handshake_failed(Conn *c, int ssl_error) {
  char text[160] = "";
  int reason = R_HANDSHAKE_ERROR;
  if (ssl_error == SSL_ERROR_SSL) {
    unsigned long error = ERR_peek_last_error();
    int why = ERR_GET_REASON(error);
    if (why == SSL_R_UNSUPPORTED_PROTOCOL || why == SSL_R_NO_PROTOCOLS_AVAILABLE)
      reason = R_TLS_VERSION;
    else if (why == SSL_R_NO_APPLICATION_PROTOCOL)
      reason = R_NO_ALPN_MATCH;
    else if (why == SSL_R_UNEXPECTED_EOF_WHILE_READING)
      reason = R_HANDSHAKE_ABORTED;
    last_ssl_error(text, sizeof text);
  } else if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN) {
    reason = R_HANDSHAKE_ABORTED;
    snprintf(text, sizeof text, "%s", errno != 0 ? strerror(errno) : "the peer closed the connection");
  }
  ERR_clear_error();
  finish(c, reason, text);
}

/* RFC 7301 §3.2: the first of our protocols that the client offers; none → no_application_protocol. */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *out_length, const unsigned char *in,
                       unsigned int in_length, void *arg) {
  (void)arg;
  Conn *c = (Conn *)SSL_get_app_data(ssl);
  if (c == NULL) return SSL_TLSEXT_ERR_ALERT_FATAL;
  const Listener *l = c->l;
  for (int i = 0; i < l->alpn_length; i += 1 + l->alpn[i]) {
    unsigned ours = l->alpn[i];
    for (unsigned j = 0; j < in_length; j += 1u + in[j]) {
      unsigned theirs = in[j];
      if (j + 1u + theirs > in_length) break;
      if (theirs == ours && memcmp(in + j + 1, l->alpn + i + 1, ours) == 0) {
        *out = in + j + 1;
        *out_length = (unsigned char)theirs;
        return SSL_TLSEXT_ERR_OK;
      }
    }
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static void on_conn_io(uv_poll_t *handle, int status, int events);

static void watch(Conn *c, int events) {
  if (c->state == S_DEAD || events == c->events) return;
  c->events = events;
  uv_poll_start(&c->poll, events, on_conn_io);
}

static void restart_timer(Conn *c, uint32_t ms);

/*
 * Advances the connection as far as the socket allows. With may_read 0 (a call from JS: write, end) it only
 * sends what is pending, so that no event reaches JS from inside its own call; reading resumes on the next
 * readable event.
 */
static void drive(Conn *c, int may_read) {
  if (c->state == S_DEAD || c->doomed) return;
  Listener *l = c->l;
  napi_env env = l->env;
  c->busy++;
  for (;;) {
    if (c->doomed || c->state == S_DEAD) break;
    if (c->state == S_HANDSHAKE) {
      ERR_clear_error();
      errno = 0;
      int r = SSL_do_handshake(c->ssl);
      if (r == 1) {
        c->state = S_OPEN;
        restart_timer(c, c->idle_ms);
        const unsigned char *alpn = NULL;
        unsigned alpn_length = 0;
        SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_length);
        napi_handle_scope scope;
        if (napi_open_handle_scope(env, &scope) != napi_ok) break;
        napi_value protocol, nothing;
        napi_get_null(env, &nothing);
        if (alpn_length > 0) napi_create_string_latin1(env, (const char *)alpn, alpn_length, &protocol);
        else protocol = nothing;
        emit(l, EV_SECURE, c->id, protocol, nothing, NULL);
        napi_close_handle_scope(env, scope);
        continue;
      }
      int e = SSL_get_error(c->ssl, r);
      if (e == SSL_ERROR_WANT_READ) watch(c, UV_READABLE);
      else if (e == SSL_ERROR_WANT_WRITE) watch(c, UV_READABLE | UV_WRITABLE);
      else handshake_failed(c, e);
      break;
    }
    /* S_OPEN or S_DRAINING: first what JS wrote, then the close_notify it asked for, then read. */
    if (c->out_len > 0) {
      ERR_clear_error();
      int r = SSL_write(c->ssl, c->out, (int)c->out_len);
      if (r > 0) {
        memmove(c->out, c->out + r, c->out_len - (size_t)r);
        c->out_len -= (size_t)r;
        continue;
      }
      int e = SSL_get_error(c->ssl, r);
      if (e == SSL_ERROR_WANT_WRITE) {
        watch(c, UV_READABLE | UV_WRITABLE);
        break;
      }
      if (e != SSL_ERROR_WANT_READ) {
        char text[160];
        finish(c, R_SOCKET_ERROR, e == SSL_ERROR_SYSCALL ? strerror(errno) : last_ssl_error(text, sizeof text));
        ERR_clear_error();
        break;
      }
    }
    if (c->out_len == 0 && c->end_requested && c->state == S_OPEN) {
      /* Our side is done: close_notify and FIN, then wait (bounded by the timer) for the peer to close, so
         that unread bytes from it never turn our close into a reset that could discard the answer. */
      ERR_clear_error();
      SSL_shutdown(c->ssl);
      ERR_clear_error();
      shutdown(c->fd, SHUT_WR);
      c->state = S_DRAINING;
      restart_timer(c, c->idle_ms);
    }
    if (!may_read) {
      watch(c, c->out_len > 0 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
      break;
    }
    ERR_clear_error();
    errno = 0;
    int r = SSL_read(c->ssl, l->read_buffer, sizeof l->read_buffer);
    if (r > 0) {
      if (c->state != S_OPEN) continue; /* after our end: discarded */
      restart_timer(c, c->idle_ms);
      napi_handle_scope scope;
      if (napi_open_handle_scope(env, &scope) != napi_ok) break;
      napi_value bytes, nothing;
      void *data;
      napi_get_null(env, &nothing);
      if (napi_create_buffer_copy(env, (size_t)r, l->read_buffer, &data, &bytes) == napi_ok) emit(l, EV_DATA, c->id, bytes, nothing, NULL);
      napi_close_handle_scope(env, scope);
      continue;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
      watch(c, c->out_len > 0 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
    } else if (e == SSL_ERROR_WANT_WRITE) {
      watch(c, UV_READABLE | UV_WRITABLE);
    } else if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0)) {
      finish(c, R_CLOSED, ""); /* close_notify or EOF from the peer */
    } else {
      char text[160];
      finish(c, c->state == S_DRAINING ? R_CLOSED : R_SOCKET_ERROR, e == SSL_ERROR_SYSCALL ? strerror(errno) : last_ssl_error(text, sizeof text));
    }
    ERR_clear_error();
    break;
  }
  c->busy--;
  if (c->busy == 0 && c->doomed) teardown(c);
}

static void on_conn_io(uv_poll_t *handle, int status, int events) {
  (void)events;
  Conn *c = (Conn *)handle->data;
  if (c->state == S_DEAD) return;
  if (status < 0) {
    finish(c, c->state == S_HANDSHAKE ? R_HANDSHAKE_ABORTED : R_SOCKET_ERROR, uv_strerror(status));
    return;
  }
  drive(c, 1);
}

static void on_conn_timer(uv_timer_t *handle) {
  Conn *c = (Conn *)handle->data;
  if (c->state == S_DEAD) return;
  if (c->state == S_HANDSHAKE) finish(c, R_HANDSHAKE_TIMEOUT, "");
  else if (c->state == S_OPEN) finish(c, R_IDLE_TIMEOUT, "");
  else finish(c, R_CLOSED, ""); /* the peer never closed after our end */
}

static void restart_timer(Conn *c, uint32_t ms) {
  if (c->state == S_DEAD) return;
  uv_timer_start(&c->timer, on_conn_timer, ms, 0);
}

/* ---- accepting ---- */

static void on_listen_io(uv_poll_t *handle, int status, int events);

static void on_retry(uv_timer_t *handle) {
  Listener *l = (Listener *)handle->data;
  if (!l->closing) uv_poll_start(&l->poll, UV_READABLE, on_listen_io);
}

static void accept_one(Listener *l, int fd, const struct sockaddr_storage *peer) {
  char address[INET6_ADDRSTRLEN] = "";
  int port = peer_text(peer, address, sizeof address);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  uint32_t id = ++l->next_id;
  if (id == 0) id = ++l->next_id;

  napi_env env = l->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) {
    close(fd);
    return;
  }
  napi_value a, b, result;
  bool admit = false;
  if (napi_create_string_latin1(env, address, NAPI_AUTO_LENGTH, &a) == napi_ok && napi_create_int32(env, port, &b) == napi_ok &&
      emit(l, EV_ACCEPT, id, a, b, &result))
    napi_get_value_bool(env, result, &admit);
  napi_close_handle_scope(env, scope);
  if (!admit || l->closing) {
    close(fd);
    return;
  }

  Conn *c = calloc(1, sizeof *c);
  SSL *ssl = c != NULL ? SSL_new(l->ctx) : NULL;
  uv_loop_t *loop;
  /* OpenSSL buffers each handshake flight itself (one write per flight); the socket BIO does not close fd. */
  if (c == NULL || ssl == NULL || napi_get_uv_event_loop(env, &loop) != napi_ok || SSL_set_fd(ssl, fd) != 1) {
    /* JS admitted it: it must hear that it is gone. */
    if (ssl != NULL) SSL_free(ssl);
    free(c);
    close(fd);
    ERR_clear_error();
    if (napi_open_handle_scope(env, &scope) == napi_ok) {
      napi_value reason, detail;
      napi_create_int32(env, R_SOCKET_ERROR, &reason);
      napi_create_string_utf8(env, "out of memory", NAPI_AUTO_LENGTH, &detail);
      emit(l, EV_CLOSE, id, reason, detail, NULL);
      napi_close_handle_scope(env, scope);
    }
    return;
  }
  c->l = l;
  c->id = id;
  c->fd = fd;
  c->ssl = ssl;
  c->report_close = 1;
  c->idle_ms = l->idle_ms;
  c->state = S_HANDSHAKE;
  SSL_set_app_data(ssl, c);
  SSL_set_accept_state(ssl);
  uv_poll_init(loop, &c->poll, fd);
  uv_timer_init(loop, &c->timer);
  c->poll.data = c;
  c->timer.data = c;
  c->handles_open = 2;
  c->next = l->buckets[id % BUCKETS];
  l->buckets[id % BUCKETS] = c;
  l->conns++;
  restart_timer(c, l->handshake_ms);
  drive(c, 1);
}

static void on_listen_io(uv_poll_t *handle, int status, int events) {
  (void)events;
  Listener *l = (Listener *)handle->data;
  if (l->closing || status < 0) return;
  for (int i = 0; i < 64 && !l->closing; i++) {
    struct sockaddr_storage peer;
    socklen_t length = sizeof peer;
    int fd = accept4(l->fd, (struct sockaddr *)&peer, &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      accept_one(l, fd, &peer);
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    if (errno == EINTR || errno == ECONNABORTED) continue;
    int err = errno;
    napi_handle_scope scope;
    if (napi_open_handle_scope(l->env, &scope) == napi_ok) {
      napi_value code, nothing;
      napi_get_null(l->env, &nothing);
      napi_create_string_utf8(l->env, strerror(err), NAPI_AUTO_LENGTH, &code);
      emit(l, EV_ACCEPT_ERROR, 0, code, nothing, NULL);
      napi_close_handle_scope(l->env, scope);
    }
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
      /* Out of descriptors: pause accepting for a moment rather than spin on a readable socket. */
      if (!l->closing) {
        uv_poll_stop(&l->poll);
        uv_timer_start(&l->retry, on_retry, 100, 0);
      }
    }
    return;
  }
}

/* ---- the listener's own lifetime ---- */

static void release_listener_refs(Listener *l) {
  if (l->async_context != NULL) napi_async_destroy(l->env, l->async_context);
  if (l->on_event_ref != NULL) napi_delete_reference(l->env, l->on_event_ref);
  if (l->resource_ref != NULL) napi_delete_reference(l->env, l->resource_ref);
  l->async_context = NULL;
  l->on_event_ref = l->resource_ref = NULL;
}

static void on_listener_handle_closed(uv_handle_t *handle) {
  Listener *l = (Listener *)handle->data;
  l->handles_open--;
  maybe_free_listener(l);
}

/* Freed once JS closed it, its own handles are closed and no connection is left. */
static void maybe_free_listener(Listener *l) {
  if (!l->released || !l->closing || l->handles_open > 0 || l->conns > 0) return;
  if (l->ctx != NULL) SSL_CTX_free(l->ctx);
  release_listener_refs(l);
  free(l);
}

/* No more connections: the listening socket closes; the connections already open go on. */
static void stop_accepting(Listener *l) {
  if (l->closing) return;
  l->closing = 1;
  uv_poll_stop(&l->poll);
  uv_timer_stop(&l->retry);
  close(l->fd);
  uv_close((uv_handle_t *)&l->poll, on_listener_handle_closed);
  uv_close((uv_handle_t *)&l->retry, on_listener_handle_closed);
}

static void env_cleanup(void *data) {
  Listener *l = (Listener *)data;
  /* Process exit: close what is open without calling JS. */
  for (int i = 0; i < BUCKETS; i++) {
    for (Conn *c = l->buckets[i]; c != NULL;) {
      Conn *next = c->next;
      c->report_close = 0;
      if (c->busy == 0) teardown(c);
      c = next;
    }
  }
  stop_accepting(l);
}

/* ---- JS API ---- */

#define CHECK(call)                                                           \
  do {                                                                        \
    if ((call) != napi_ok) {                                                  \
      napi_throw_error(env, "ERR_NATIVE", "tls_listener: " #call " failed"); \
      return NULL;                                                            \
    }                                                                         \
  } while (0)

static void free_context(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  SSL_CTX_free((SSL_CTX *)data);
}

static napi_value throw_openssl(napi_env env, const char *code, const char *what) {
  char text[200], message[320];
  snprintf(message, sizeof message, "%s: %s", what, last_ssl_error(text, sizeof text));
  ERR_clear_error();
  napi_throw_error(env, code, message);
  return NULL;
}

/* No passphrase: an encrypted key is refused, never prompted for on a terminal (OpenSSL's default). */
static int no_passphrase(char *buffer, int size, int rwflag, void *user) {
  (void)buffer;
  (void)size;
  (void)rwflag;
  (void)user;
  return 0;
}

static char *get_string(napi_env env, napi_value value, size_t *length) {
  size_t n;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &n) != napi_ok) return NULL;
  char *s = malloc(n + 1);
  if (s == NULL || napi_get_value_string_utf8(env, value, s, n + 1, &n) != napi_ok) {
    free(s);
    return NULL;
  }
  if (length != NULL) *length = n;
  return s;
}

/*
 * createContext(certificateChainPem, privateKeyPem) → context. TLS 1.3 only (RFC 8915 §3), no session
 * tickets or cache (no client of these services resumes), the key checked against the certificate.
 */
static napi_value js_create_context(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "createContext(chainPem, keyPem)");
    return NULL;
  }
  size_t chain_length, key_length;
  char *chain = get_string(env, argv[0], &chain_length);
  char *key = get_string(env, argv[1], &key_length);
  if (chain == NULL || key == NULL) {
    free(chain);
    free(key);
    napi_throw_type_error(env, "ERR_INVALID_ARG", "createContext: PEM strings expected");
    return NULL;
  }
  ERR_clear_error();
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  const char *failure = NULL;
  if (ctx == NULL) failure = "SSL_CTX_new";
  if (failure == NULL && SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1) failure = "TLS 1.3 only";
  if (failure == NULL) {
    SSL_CTX_set_num_tickets(ctx, 0);
    /* A peer that closes TCP without close_notify has just closed (as Node treats it): the exchange is framed
       by End of Message (RFC 8915 §4), so a truncated stream is seen by the decoder, not by TLS. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* A record header and body in one read(2), not two. */
    SSL_CTX_set_read_ahead(ctx, 1);
    /* The TLS 1.3 suites OpenSSL enables, AES-128-GCM first and chosen by us: SHA-256 is the cheaper hash
       for the key schedule, and every TLS 1.3 client supports it (RFC 8446 §9.1). */
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256") != 1)
      failure = "the TLS 1.3 cipher suites";
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    BIO *bio = BIO_new_mem_buf(chain, (int)chain_length);
    X509 *leaf = bio != NULL ? PEM_read_bio_X509_AUX(bio, NULL, no_passphrase, NULL) : NULL;
    if (leaf == NULL || SSL_CTX_use_certificate(ctx, leaf) != 1) failure = "the certificate";
    X509_free(leaf);
    if (failure == NULL) {
      X509 *extra;
      while ((extra = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL)) != NULL) {
        if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
          X509_free(extra);
          failure = "the certificate chain";
          break;
        }
      }
      if (failure == NULL) ERR_clear_error(); /* the end of the PEM data */
    }
    BIO_free(bio);
  }
  if (failure == NULL) {
    BIO *bio = BIO_new_mem_buf(key, (int)key_length);
    EVP_PKEY *pkey = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
    if (pkey == NULL || SSL_CTX_use_PrivateKey(ctx, pkey) != 1) failure = "the private key";
    else if (SSL_CTX_check_private_key(ctx) != 1) failure = "the private key does not match the certificate";
    EVP_PKEY_free(pkey);
    BIO_free(bio);
  }
  OPENSSL_cleanse(key, key_length);
  free(key);
  free(chain);
  if (failure != NULL) {
    if (ctx != NULL) SSL_CTX_free(ctx);
    return throw_openssl(env, "TLS_CONTEXT_INVALID", failure);
  }
  napi_value external;
  if (napi_create_external(env, ctx, free_context, NULL, &external) != napi_ok) {
    SSL_CTX_free(ctx);
    napi_throw_error(env, "ERR_NATIVE", "createContext: cannot wrap the context");
    return NULL;
  }
  return external;
}

static Listener *listener_of(napi_env env, napi_value handle) {
  napi_value external;
  Listener *l = NULL;
  if (napi_get_named_property(env, handle, "native", &external) != napi_ok || napi_get_value_external(env, external, (void **)&l) != napi_ok ||
      l == NULL) {
    napi_throw_error(env, "ERR_SOCKET_CLOSED", "tls_listener: not an open listener");
    return NULL;
  }
  return l;
}

static int get_int(napi_env env, napi_value object, const char *name, int32_t *out) {
  napi_value value;
  return napi_get_named_property(env, object, name, &value) == napi_ok && napi_get_value_int32(env, value, out) == napi_ok;
}

/*
 * listen({ family, host, port, backlog, context, alpn, handshakeTimeoutMs, idleTimeoutMs, onEvent }) → handle
 * with `port`. alpn: the protocols in preference order, in ALPN wire format. Errors carry errno codes.
 */
static napi_value js_listen(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value options;
  CHECK(napi_get_cb_info(env, info, &argc, &options, NULL, NULL));
  int32_t family = 0, port = -1, backlog = 511, handshake_ms = 0, idle_ms = 0;
  napi_value host_value, context_value, alpn_value, on_event;
  void *alpn_data = NULL;
  size_t alpn_length = 0;
  napi_typedarray_type type;
  napi_value arraybuffer;
  size_t offset;
  SSL_CTX *ctx = NULL;
  char host[64];
  size_t host_length;
  napi_valuetype on_event_type;
  if (argc < 1 || !get_int(env, options, "family", &family) || !get_int(env, options, "port", &port) ||
      !get_int(env, options, "backlog", &backlog) || !get_int(env, options, "handshakeTimeoutMs", &handshake_ms) ||
      !get_int(env, options, "idleTimeoutMs", &idle_ms) || napi_get_named_property(env, options, "host", &host_value) != napi_ok ||
      napi_get_value_string_utf8(env, host_value, host, sizeof host, &host_length) != napi_ok ||
      napi_get_named_property(env, options, "context", &context_value) != napi_ok ||
      napi_get_value_external(env, context_value, (void **)&ctx) != napi_ok || ctx == NULL ||
      napi_get_named_property(env, options, "alpn", &alpn_value) != napi_ok ||
      napi_get_typedarray_info(env, alpn_value, &type, &alpn_length, &alpn_data, &arraybuffer, &offset) != napi_ok ||
      type != napi_uint8_array || alpn_length == 0 || alpn_length > MAX_ALPN ||
      napi_get_named_property(env, options, "onEvent", &on_event) != napi_ok || napi_typeof(env, on_event, &on_event_type) != napi_ok ||
      on_event_type != napi_function || (family != 4 && family != 6) || port < 0 || port > 65535 || handshake_ms <= 0 || idle_ms <= 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "tls_listener.listen: bad options");
    return NULL;
  }
  struct sockaddr_storage local;
  socklen_t local_length = numeric_address(family, host, port, &local);
  if (local_length == 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", family == 4 ? "tls_listener.listen: host is not an IPv4 address" : "tls_listener.listen: host is not an IPv6 address");
    return NULL;
  }
  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    napi_throw_error(env, "EMFILE", strerror(errno));
    return NULL;
  }
  int on = 1, off = 0;
  /* As Node's net.Server: SO_REUSEADDR, and "::" takes IPv4 clients too (dual stack). */
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (family == 6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  if (bind(fd, (struct sockaddr *)&local, local_length) != 0 || listen(fd, backlog) != 0) {
    int err = errno;
    close(fd);
    const char *code = err == EADDRINUSE ? "EADDRINUSE" : err == EACCES ? "EACCES" : err == EADDRNOTAVAIL ? "EADDRNOTAVAIL" : err == EPERM ? "EPERM" : "EIO";
    char message[160];
    snprintf(message, sizeof message, "listen: %s", strerror(err));
    napi_throw_error(env, code, message);
    return NULL;
  }
  Listener *l = calloc(1, sizeof *l);
  uv_loop_t *loop;
  napi_value handle, resource_name;
  if (l == NULL || napi_get_uv_event_loop(env, &loop) != napi_ok) {
    close(fd);
    free(l);
    napi_throw_error(env, "ENOMEM", "tls_listener.listen: out of memory");
    return NULL;
  }
  l->env = env;
  l->fd = fd;
  l->handshake_ms = (uint32_t)handshake_ms;
  l->idle_ms = (uint32_t)idle_ms;
  memcpy(l->alpn, alpn_data, alpn_length);
  l->alpn_length = (int)alpn_length;
  SSL_CTX_up_ref(ctx);
  l->ctx = ctx;
  if (napi_create_object(env, &handle) != napi_ok || napi_create_reference(env, on_event, 1, &l->on_event_ref) != napi_ok ||
      napi_create_reference(env, handle, 1, &l->resource_ref) != napi_ok ||
      napi_create_string_utf8(env, "NtsKeTlsListener", NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
      napi_async_init(env, handle, resource_name, &l->async_context) != napi_ok) {
    close(fd);
    SSL_CTX_free(l->ctx);
    release_listener_refs(l);
    free(l);
    napi_throw_error(env, "ERR_NATIVE", "tls_listener.listen: setup failed");
    return NULL;
  }
  uv_poll_init(loop, &l->poll, fd);
  uv_timer_init(loop, &l->retry);
  l->poll.data = l;
  l->retry.data = l;
  l->handles_open = 2;
  uv_poll_start(&l->poll, UV_READABLE, on_listen_io);
  napi_add_env_cleanup_hook(env, env_cleanup, l);

  napi_value external, port_value;
  CHECK(napi_create_external(env, l, NULL, NULL, &external));
  CHECK(napi_set_named_property(env, handle, "native", external));
  CHECK(napi_create_int32(env, bound_port(fd), &port_value));
  CHECK(napi_set_named_property(env, handle, "port", port_value));
  return handle;
}

/* setContext(handle, context): new handshakes use it; established connections keep theirs. */
static napi_value js_set_context(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Listener *l = argc >= 2 ? listener_of(env, argv[0]) : NULL;
  SSL_CTX *ctx = NULL;
  if (l == NULL) return NULL;
  if (napi_get_value_external(env, argv[1], (void **)&ctx) != napi_ok || ctx == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "setContext: not a context");
    return NULL;
  }
  SSL_CTX_up_ref(ctx);
  SSL_CTX_free(l->ctx);
  l->ctx = ctx;
  return NULL;
}

static Conn *conn_of(napi_env env, napi_callback_info info, size_t want, napi_value *argv, Listener **listener) {
  size_t argc = 5;
  napi_value args[5];
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "tls_listener: too few arguments");
    return NULL;
  }
  Listener *l = listener_of(env, args[0]);
  if (l == NULL) return NULL;
  uint32_t id;
  if (napi_get_value_uint32(env, args[1], &id) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "tls_listener: connection id expected");
    return NULL;
  }
  for (size_t i = 0; i < argc && i < 5; i++) argv[i] = args[i];
  if (listener != NULL) *listener = l;
  Conn *c = find(l, id);
  return (c != NULL && c->state != S_DEAD && !c->doomed) ? c : NULL;
}

/* write(handle, id, bytes, end) → false when the connection is gone. */
static napi_value js_write(napi_env env, napi_callback_info info) {
  napi_value argv[5], result;
  Listener *l = NULL;
  Conn *c = conn_of(env, info, 4, argv, &l);
  bool pending_exception = false;
  napi_is_exception_pending(env, &pending_exception);
  if (pending_exception) return NULL;
  bool end = false;
  napi_get_value_bool(env, argv[3], &end);
  if (c == NULL || c->end_requested || c->state != S_OPEN) {
    napi_get_boolean(env, false, &result);
    return result;
  }
  napi_typedarray_type type;
  size_t length = 0, offset;
  void *data = NULL;
  napi_value arraybuffer;
  if (napi_get_typedarray_info(env, argv[2], &type, &length, &data, &arraybuffer, &offset) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "write: bytes must be a Uint8Array");
    return NULL;
  }
  if (length > 0) {
    uint8_t *grown = realloc(c->out, c->out_len + length);
    if (grown == NULL) {
      napi_throw_error(env, "ENOMEM", "write: out of memory");
      return NULL;
    }
    c->out = grown;
    memcpy(c->out + c->out_len, data, length);
    c->out_len += length;
  }
  if (end) c->end_requested = 1;
  if (c->busy == 0) drive(c, 0);
  /* A call from inside a callback about this connection: the drive loop in progress sends it. */
  napi_get_boolean(env, true, &result);
  return result;
}

/* destroy(handle, id): closes at once, without close_notify; JS hears no CLOSE for it. */
static napi_value js_destroy(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  Conn *c = conn_of(env, info, 2, argv, NULL);
  if (c == NULL) return NULL;
  c->report_close = 0;
  finish(c, R_CLOSED, "");
  return NULL;
}

/* setIdleTimeout(handle, id, ms) */
static napi_value js_set_idle(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  Conn *c = conn_of(env, info, 3, argv, NULL);
  if (c == NULL) return NULL;
  uint32_t ms;
  if (napi_get_value_uint32(env, argv[2], &ms) != napi_ok || ms == 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "setIdleTimeout: ms must be a positive integer");
    return NULL;
  }
  c->idle_ms = ms;
  if (c->state == S_OPEN) restart_timer(c, ms);
  return NULL;
}

/* exportKeyingMaterial(handle, id, length, label, context) → Buffer (RFC 5705 / RFC 8446 §7.5). */
static napi_value js_export(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  Conn *c = conn_of(env, info, 5, argv, NULL);
  bool pending_exception = false;
  napi_is_exception_pending(env, &pending_exception);
  if (pending_exception) return NULL;
  if (c == NULL || c->state == S_HANDSHAKE) {
    napi_throw_error(env, "ERR_SOCKET_CLOSED", "exportKeyingMaterial: the connection is not open");
    return NULL;
  }
  uint32_t length;
  char label[128];
  size_t label_length;
  napi_typedarray_type type;
  size_t context_length, offset;
  void *context_data;
  napi_value arraybuffer;
  if (napi_get_value_uint32(env, argv[2], &length) != napi_ok || length == 0 || length > 1024 ||
      napi_get_value_string_latin1(env, argv[3], label, sizeof label, &label_length) != napi_ok ||
      napi_get_typedarray_info(env, argv[4], &type, &context_length, &context_data, &arraybuffer, &offset) != napi_ok ||
      type != napi_uint8_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "exportKeyingMaterial(handle, id, length, label, context)");
    return NULL;
  }
  void *out;
  napi_value buffer;
  CHECK(napi_create_buffer(env, length, &out, &buffer));
  ERR_clear_error();
  if (SSL_export_keying_material(c->ssl, out, length, label, label_length, context_data, context_length, 1) != 1)
    return throw_openssl(env, "ERR_TLS_EXPORT", "exportKeyingMaterial");
  return buffer;
}

/* stopListening(handle): no new connections; the open ones go on (JS may still write to and destroy them). */
static napi_value js_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value handle;
  CHECK(napi_get_cb_info(env, info, &argc, &handle, NULL, NULL));
  Listener *l = argc >= 1 ? listener_of(env, handle) : NULL;
  if (l != NULL) stop_accepting(l);
  return NULL;
}

/*
 * release(handle): JS is done with the listener (stopped, every connection closed or destroyed); its memory
 * goes once the last handle has closed. The handle is unusable from now on.
 */
static napi_value js_release(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value handle, nothing;
  CHECK(napi_get_cb_info(env, info, &argc, &handle, NULL, NULL));
  Listener *l = argc >= 1 ? listener_of(env, handle) : NULL;
  if (l == NULL) return NULL;
  if (!l->closing) {
    napi_throw_error(env, "ERR_INVALID_STATE", "release: stop listening first");
    return NULL;
  }
  /* Connections JS did not destroy are closed without telling it: it has let go. */
  for (int i = 0; i < BUCKETS; i++) {
    for (Conn *c = l->buckets[i]; c != NULL;) {
      Conn *next = c->next;
      c->report_close = 0;
      finish(c, R_CLOSED, "");
      c = next;
    }
  }
  CHECK(napi_get_null(env, &nothing));
  CHECK(napi_set_named_property(env, handle, "native", nothing));
  napi_remove_env_cleanup_hook(env, env_cleanup, l);
  l->released = 1;
  maybe_free_listener(l);
  return NULL;
}

void ntptsd_register_tls(napi_env env, napi_value exports) {
  static const struct {
    const char *name;
    napi_callback fn;
  } functions[] = {{"tlsCreateContext", js_create_context}, {"tlsListen", js_listen}, {"tlsSetContext", js_set_context},
                   {"tlsWrite", js_write}, {"tlsDestroy", js_destroy}, {"tlsSetIdleTimeout", js_set_idle},
                   {"tlsExport", js_export}, {"tlsStopListening", js_stop}, {"tlsRelease", js_release}};
  for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
    napi_value fn;
    if (napi_create_function(env, functions[i].name, NAPI_AUTO_LENGTH, functions[i].fn, NULL, &fn) != napi_ok) return;
    napi_set_named_property(env, exports, functions[i].name, fn);
  }
}
