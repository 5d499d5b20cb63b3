/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Listening sockets: TCP, Unix, inherited, and systemd socket activation. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include "log-internal.h"
#include "server-internal.h"

static int add_listener(nbdsdk_server *s, int fd, const char *unix_path) {
        listener *v = realloc(s->listeners, (s->n_listeners + 1) * sizeof *v);
        if (!v) {
                close(fd);
                return -ENOMEM;
        }
        s->listeners = v;
        listener *l = &v[s->n_listeners];
        *l = (listener) { .fd = fd };
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (getsockname(fd, (struct sockaddr *) &ss, &len) == 0)
                l->is_tcp = ss.ss_family == AF_INET || ss.ss_family == AF_INET6;
        if (unix_path && !(l->unix_path = strdup(unix_path))) {
                close(fd);
                return -ENOMEM;
        }
        int flags = fcntl(fd, F_GETFL);
        if (flags >= 0)
                (void) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
        s->n_listeners++;
        if (s->event) {
                int r = server_event_add_listener(s, l);
                if (r < 0)
                        return r;
        }
        return 0;
}

int nbdsdk_server_listen_tcp(nbdsdk_server *s, const char *host, const char *port) {
        if (!s || !port)
                return -EINVAL;
        if (s->shutting_down)
                return -ESHUTDOWN;
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                  .ai_flags = AI_PASSIVE | AI_ADDRCONFIG };
        struct addrinfo *ai;
        int g = getaddrinfo(host, port, &hints, &ai);
        if (g != 0) {
                log_error("cannot resolve %s:%s: %s", host ? host : "*", port, gai_strerror(g));
                return g == EAI_SYSTEM ? -errno : -EADDRNOTAVAIL;
        }
        int r = -EADDRNOTAVAIL, n = 0;
        /* With port 0, every address family shares the port the first one got. */
        char picked[16] = "";
        for (struct addrinfo *a = ai; a; a = a->ai_next) {
                int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
                if (fd < 0) {
                        r = -errno;
                        continue;
                }
                int one = 1;
                (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
                if (a->ai_family == AF_INET6)
                        (void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
                if (picked[0]) {
                        uint16_t p = htons((uint16_t) atoi(picked));
                        if (a->ai_family == AF_INET)
                                ((struct sockaddr_in *) a->ai_addr)->sin_port = p;
                        else if (a->ai_family == AF_INET6)
                                ((struct sockaddr_in6 *) a->ai_addr)->sin6_port = p;
                }
                if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
                        r = -errno;
                        close(fd);
                        continue;
                }
                r = add_listener(s, fd, NULL);
                if (r < 0)
                        break;
                n++;
                if (!picked[0] && strcmp(port, "0") == 0) {
                        int p = nbdsdk_server_get_port(s);
                        if (p > 0)
                                snprintf(picked, sizeof picked, "%d", p);
                }
        }
        freeaddrinfo(ai);
        /* Success if any address could be bound (e.g. IPv4 without IPv6). */
        return n > 0 ? 0 : r;
}

int nbdsdk_server_listen_unix(nbdsdk_server *s, const char *path) {
        if (!s || !path)
                return -EINVAL;
        if (s->shutting_down)
                return -ESHUTDOWN;
        struct sockaddr_un sun = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof sun.sun_path)
                return -ENAMETOOLONG;
        strcpy(sun.sun_path, path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sun, sizeof sun) < 0 || listen(fd, SOMAXCONN) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return add_listener(s, fd, path);
}

int nbdsdk_server_listen_fd(nbdsdk_server *s, int fd) {
        if (fd < 0)
                return -EBADF;
        int r = 0, listening = 0;
        socklen_t len = sizeof listening;
        if (!s)
                r = -EINVAL;
        else if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
                r = -errno;
        else if (!listening)
                r = -EINVAL;
        if (r < 0) {
                close(fd); /* the fd is ours whatever happens */
                return r;
        }
        return add_listener(s, fd, NULL);
}

int nbdsdk_server_listen_activation(nbdsdk_server *s) {
        if (!s)
                return -EINVAL;
        char **names = NULL;
        int n = sd_listen_fds_with_names(1, &names);
        if (n <= 0)
                return n;
        int r = 0;
        for (int i = 0; i < n; i++) {
                log_debug("socket activation: fd %d named \"%s\"", SD_LISTEN_FDS_START + i,
                          names && names[i] ? names[i] : "");
                if (r >= 0)
                        r = nbdsdk_server_listen_fd(s, SD_LISTEN_FDS_START + i);
                else
                        close(SD_LISTEN_FDS_START + i);
        }
        for (int i = 0; names && i < n; i++)
                free(names[i]);
        free(names);
        return r < 0 ? r : n;
}

int nbdsdk_server_get_port(nbdsdk_server *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < s->n_listeners; i++) {
                if (!s->listeners[i].is_tcp)
                        continue;
                struct sockaddr_storage ss;
                socklen_t len = sizeof ss;
                if (getsockname(s->listeners[i].fd, (struct sockaddr *) &ss, &len) < 0)
                        return -errno;
                if (ss.ss_family == AF_INET)
                        return ntohs(((struct sockaddr_in *) &ss)->sin_port);
                return ntohs(((struct sockaddr_in6 *) &ss)->sin6_port);
        }
        return -ENOENT;
}

void server_close_listeners(nbdsdk_server *s) {
        for (size_t i = 0; i < s->n_listeners; i++) {
                listener *l = &s->listeners[i];
                l->source = sd_event_source_disable_unref(l->source);
                close(l->fd);
                if (l->unix_path) {
                        (void) unlink(l->unix_path);
                        free(l->unix_path);
                }
        }
        free(s->listeners);
        s->listeners = NULL;
        s->n_listeners = 0;
}
