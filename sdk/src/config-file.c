/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* nbdsdk_main's --config FILE. GKeyFile checks the syntax and unescapes the
 * values; it does not say on which line anything is, so a scan of the text
 * finds every group header and key, and each message names FILE:LINE. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include "config-file-internal.h"
#include "server-internal.h"

/* A group header or a key, and its line. */
typedef struct {
        unsigned line;
        char *name;
        const char *group;       /* a key's group (its header's name); NULL for a header */
} entry;

struct config_file {
        GKeyFile *keys;
        GArray *entries;         /* of entry, in file order */
        GPtrArray *values;       /* handed on; config callbacks may keep them */
};

typedef struct {
        const char *path;
        config_file *file;
        nbdsdk_server *server;
        config_general_fn general;
        void *userdata;
        nbdsdk_export *exp;      /* the current section's export; NULL in [general] */
        unsigned n_exports;      /* export sections so far */
        const char *default_name; /* default-export=, applied once every export exists */
        unsigned default_line;
        char *error;
} loader;

/* Record "PATH:LINE: what" (no LINE if 0) and return -1. */
static int failed(loader *l, unsigned line, const char *format, ...) __attribute__((format(printf, 3, 4)));
static int failed(loader *l, unsigned line, const char *format, ...) {
        char *what;
        va_list ap;
        va_start(ap, format);
        int r = vasprintf(&what, format, ap);
        va_end(ap);
        if (r >= 0) {
                char at[16] = "";
                if (line)
                        snprintf(at, sizeof at, ":%u", line);
                r = asprintf(&l->error, "%s%s: %s", l->path, at, what);
                free(what);
        }
        if (r < 0)
                l->error = NULL;
        return -1;
}

/* The whole file, read here rather than by GLib so that errors carry errno. */
static int read_text(loader *l, char **rettext, size_t *retlen) {
        FILE *f = fopen(l->path, "re");
        if (!f)
                return failed(l, 0, "cannot open it: %s", strerror(errno));
        char *text = NULL;
        size_t size = 0;
        ssize_t n = getdelim(&text, &size, '\0', f);
        int error = n < 0 && ferror(f) ? errno : 0;
        bool nul = n > 0 && text[n - 1] == '\0';
        fclose(f);
        *rettext = text;
        *retlen = n > 0 ? (size_t) n : 0;
        if (error)
                return failed(l, 0, "cannot read it: %s", strerror(error));
        if (nul)
                return failed(l, 0, "not a text file (it holds a NUL byte)");
        return 0;
}

/* The line GKeyFile rejected. It reads line by line, so the first prefix of
 * whole lines that it rejects ends with that line. */
static unsigned rejected_line(const char *text, size_t len) {
        GKeyFile *kf = g_key_file_new();
        unsigned line = 0;
        for (size_t end = 0; end < len;) {
                const char *nl = memchr(text + end, '\n', len - end);
                end = nl ? (size_t) (nl - text) + 1 : len;
                line++;
                if (!g_key_file_load_from_data(kf, text, end, G_KEY_FILE_NONE, NULL))
                        break;
        }
        g_key_file_free(kf);
        return line;
}

static const entry *find_entry(const config_file *f, const char *name, const char *group) {
        for (guint i = 0; i < f->entries->len; i++) {
                const entry *e = &g_array_index(f->entries, entry, i);
                if (e->group == group && strcmp(e->name, name) == 0)
                        return e;
        }
        return NULL;
}

/* Every group header and key and its line, reading a line as GKeyFile does
 * (leading blanks skipped, '#' comments, "[group]", "key = value"); its
 * checks passed already. A repeated group or key is refused: GKeyFile would
 * quietly merge or replace it. */
static int scan(loader *l, const char *text, size_t len) {
        const char *group = NULL, *end = text + len;
        unsigned line = 0;
        for (const char *p = text; p < end;) {
                const char *eol = memchr(p, '\n', (size_t) (end - p));
                if (!eol)
                        eol = end;
                line++;
                while (p < eol && g_ascii_isspace(*p))
                        p++;
                if (p < eol && *p != '#') {
                        entry e = { .line = line };
                        if (*p == '[') {
                                const char *close = memchr(p, ']', (size_t) (eol - p));
                                e.name = g_strndup(p + 1, (size_t) (close - p - 1));
                        } else {
                                const char *k = memchr(p, '=', (size_t) (eol - p));
                                while (k > p && g_ascii_isspace(k[-1]))
                                        k--;
                                e.name = g_strndup(p, (size_t) (k - p));
                                e.group = group;
                        }
                        const entry *first = find_entry(l->file, e.name, e.group);
                        unsigned first_line = first ? first->line : 0;
                        g_array_append_val(l->file->entries, e);
                        if (first_line && e.group)
                                return failed(l, line, "key %s: given twice in [%s] (first on line %u)", e.name,
                                              e.group, first_line);
                        if (first_line)
                                return failed(l, line, "[%s] appears twice (first on line %u)", e.name, first_line);
                        if (!e.group)
                                group = e.name;
                }
                p = eol < end ? eol + 1 : end;
        }
        return 0;
}

static int parse(loader *l, const char *text, size_t len) {
        GError *err = NULL;
        if (!g_key_file_load_from_data(l->file->keys, text ? text : "", len, G_KEY_FILE_NONE, &err)) {
                int r = failed(l, rejected_line(text, len), "%s", err->message);
                g_error_free(err);
                return r;
        }
        return scan(l, text, len);
}

/* [export NAME]: the first is the server's default export, with the
 * program's userdata; later ones get theirs from ops->new_export. */
static int begin_export(loader *l, const entry *e, const char *name) {
        nbdsdk_server *s = l->server;
        bool first = l->n_exports++ == 0;
        if (!first && !s->ops.new_export)
                return failed(l, e->line, "[%s]: this server serves a single export (its ops have no new_export)",
                              e->name);
        int r = first ? nbdsdk_server_set_export_name(s, name) : nbdsdk_server_add_export(s, name, NULL, NULL);
        if (r == -EEXIST && !name[0])
                return failed(l, e->line, "[%s]: the empty name is the default export's (make this section the first)",
                              e->name);
        if (r == -EEXIST)
                return failed(l, e->line, "[%s]: another export has that name", e->name);
        if (r < 0)
                return failed(l, e->line, "[%s]: %s", e->name,
                              r == -EINVAL ? "the name is too long (at most 4096 bytes)" : strerror(-r));
        l->exp = nbdsdk_server_get_export(s, name);
        if (!first && (r = s->ops.new_export(l->exp, s->userdata, &l->exp->userdata)) < 0)
                return failed(l, e->line, "[%s]: the backend could not make the export: %s", e->name, strerror(-r));
        return 0;
}

static int begin_group(loader *l, const entry *e) {
        l->exp = NULL;
        if (strcmp(e->name, "general") == 0)
                return 0;
        if (strcmp(e->name, "export") == 0)
                return begin_export(l, e, "");
        if (strncmp(e->name, "export ", 7) == 0)
                return begin_export(l, e, e->name + 7);
        return failed(l, e->line, "unknown group [%s] (expected [general] or [export NAME])", e->name);
}

static int bad_value(loader *l, const entry *e, const char *value, const char *why) {
        return failed(l, e->line, "key %s: invalid value '%s' (%s)", e->name, value, why);
}

static int apply_export_key(loader *l, const entry *e, const char *value) {
        int r;
        if (strcmp(e->name, "description") == 0) {
                r = nbdsdk_export_set_description(l->exp, value);
                if (r < 0)
                        return bad_value(l, e, value, r == -EINVAL ? "at most 4096 bytes" : strerror(-r));
        } else if (strcmp(e->name, "read-only") == 0) {
                int on = config_file_parse_switch(value);
                if (on < 0)
                        return bad_value(l, e, value, "true or false");
                nbdsdk_export_set_read_only(l->exp, on);
        } else if ((r = nbdsdk_export_config(l->exp, e->name, value)) == -ENOENT)
                return failed(l, e->line, "key %s: unknown setting", e->name);
        else if (r < 0)
                return bad_value(l, e, value, strerror(-r));
        return 0;
}

static int apply_general_key(loader *l, const entry *e, const char *value) {
        if (strcmp(e->name, "default-export") == 0) {
                l->default_name = value;
                l->default_line = e->line;
                return 0;
        }
        const char *why = NULL;
        int r = l->general(e->name, value, &why, l->userdata);
        if (r == -ENOENT)
                return failed(l, e->line, "key %s: unknown setting in [general]", e->name);
        if (r < 0)
                return bad_value(l, e, value, why ? why : strerror(-r));
        return 0;
}

static int apply_key(loader *l, const entry *e) {
        GError *err = NULL;
        char *value = g_key_file_get_string(l->file->keys, e->group, e->name, &err);
        if (!value) {
                int r = failed(l, e->line, "key %s: %s", e->name, err->message);
                g_error_free(err);
                return r;
        }
        g_ptr_array_add(l->file->values, value);
        return l->exp ? apply_export_key(l, e, value) : apply_general_key(l, e, value);
}

int config_file_apply(const char *path, nbdsdk_server *server, config_general_fn general, void *userdata,
                      config_file **retfile, char **reterror) {
        config_file *f = g_new0(config_file, 1);
        f->keys = g_key_file_new();
        f->entries = g_array_new(FALSE, FALSE, sizeof(entry));
        f->values = g_ptr_array_new_with_free_func(g_free);
        loader l = { .path = path, .file = f, .server = server, .general = general, .userdata = userdata };
        char *text = NULL;
        size_t len = 0;
        int r = read_text(&l, &text, &len);
        if (r == 0)
                r = parse(&l, text, len);
        free(text);
        for (guint i = 0; r == 0 && i < f->entries->len; i++) {
                const entry *e = &g_array_index(f->entries, entry, i);
                r = e->group ? apply_key(&l, e) : begin_group(&l, e);
        }
        if (r == 0 && l.default_name && nbdsdk_server_set_default_export(server, l.default_name) < 0)
                r = failed(&l, l.default_line, "key default-export: there is no [export %s]", l.default_name);
        if (r < 0) {
                *reterror = l.error;
                config_file_free(f);
                return -1;
        }
        *retfile = f;
        return 0;
}

config_file *config_file_free(config_file *f) {
        if (!f)
                return NULL;
        for (guint i = 0; i < f->entries->len; i++)
                g_free(g_array_index(f->entries, entry, i).name);
        g_array_free(f->entries, TRUE);
        g_ptr_array_free(f->values, TRUE);
        g_key_file_free(f->keys);
        g_free(f);
        return NULL;
}

int config_file_parse_switch(const char *value) {
        if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0)
                return 1;
        if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0)
                return 0;
        return -EINVAL;
}
