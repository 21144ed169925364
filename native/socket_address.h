/* Socket addresses for the native module's sockets: numeric host → sockaddr, sockaddr → text and port. */
#ifndef NTPTSD_SOCKET_ADDRESS_H
#define NTPTSD_SOCKET_ADDRESS_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

/* `host` (numeric, of `family` 4 or 6) and `port` as a sockaddr; its length, or 0 when host is no such address. */
static inline socklen_t numeric_address(int family, const char *host, int port, struct sockaddr_storage *out) {
  memset(out, 0, sizeof *out);
  if (family == 4) {
    struct sockaddr_in *a = (struct sockaddr_in *)out;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? (socklen_t)sizeof *a : 0;
  }
  struct sockaddr_in6 *a = (struct sockaddr_in6 *)out;
  a->sin6_family = AF_INET6;
  a->sin6_port = htons((uint16_t)port);
  return inet_pton(AF_INET6, host, &a->sin6_addr) == 1 ? (socklen_t)sizeof *a : 0;
}

/* The address as inet_ntop writes it (as Node reports peers), into text[size]; returns the port. */
static inline int peer_text(const struct sockaddr_storage *from, char *text, size_t size) {
  if (from->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)from;
    if (inet_ntop(AF_INET6, &a->sin6_addr, text, (socklen_t)size) == NULL) text[0] = '\0';
    return ntohs(a->sin6_port);
  }
  const struct sockaddr_in *a = (const struct sockaddr_in *)from;
  if (inet_ntop(AF_INET, &a->sin_addr, text, (socklen_t)size) == NULL) text[0] = '\0';
  return ntohs(a->sin_port);
}

/* The local port of a bound socket. */
static inline int bound_port(int fd) {
  struct sockaddr_storage bound;
  socklen_t length = sizeof bound;
  memset(&bound, 0, sizeof bound);
  getsockname(fd, (struct sockaddr *)&bound, &length);
  return bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port) : ntohs(((struct sockaddr_in *)&bound)->sin_port);
}

#endif
