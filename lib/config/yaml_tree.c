#include "config/yaml_tree.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* Deeper documents are rejected rather than recursed into, so a hostile file
 * cannot exhaust the stack. Real configurations nest four levels. */
#define MAX_DEPTH 64
#define MAX_SCALAR (1024 * 1024)
#define MAX_FILE_VALUE (64 * 1024) /* a token, a password, a certificate */

struct loader {
    yaml_parser_t parser;
    const char *file;
    sp_env_lookup env; /* NULL: the process's environment and files */
    void *env_ctx;
    struct sp_diags *diags;
    struct sp_sources *sources;
    char *file_value; /* the last ${file:} read, until it is copied */
    bool failed;
};

/* ---- diagnostics ---------------------------------------------------------- */

void sp_diags_add(struct sp_diags *d, const char *file, unsigned line, unsigned col,
                  const char *fmt, ...)
{
    char msg[512];
    char *text;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (asprintf(&text, "%s:%u:%u: %s", file, line, col, msg) < 0)
        return;
    char **grown = realloc(d->lines, (d->count + 1) * sizeof(*grown));
    if (grown == NULL) {
        free(text);
        return;
    }
    d->lines = grown;
    d->lines[d->count++] = text;
}

void sp_diags_clear(struct sp_diags *d)
{
    for (size_t i = 0; i < d->count; i++)
        free(d->lines[i]);
    free(d->lines);
    d->lines = NULL;
    d->count = 0;
}

static void loader_error(struct loader *l, const yaml_mark_t *mark, const char *msg)
{
    sp_diags_add(l->diags, l->file, (unsigned)mark->line + 1, (unsigned)mark->column + 1, "%s",
                 msg);
    l->failed = true;
}

/* ---- nodes ---------------------------------------------------------------- */

void sp_ynode_free(struct sp_ynode *node)
{
    if (node == NULL)
        return;
    for (size_t i = 0; i < node->count; i++)
        sp_ynode_free(node->items[i]);
    free(node->items);
    free(node->value);
    free(node);
}

bool sp_ynode_is_null(const struct sp_ynode *node)
{
    return node->kind == SP_YNODE_SCALAR && node->plain &&
           (node->value[0] == '\0' || strcmp(node->value, "~") == 0 ||
            strcmp(node->value, "null") == 0);
}

static struct sp_ynode *node_new(enum sp_ynode_kind kind, const yaml_mark_t *mark)
{
    struct sp_ynode *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return NULL;
    n->kind = kind;
    n->line = (unsigned)mark->line + 1;
    n->col = (unsigned)mark->column + 1;
    return n;
}

static int node_append(struct sp_ynode *parent, struct sp_ynode *child)
{
    struct sp_ynode **grown = realloc(parent->items, (parent->count + 1) * sizeof(*grown));
    if (grown == NULL)
        return -1;
    parent->items = grown;
    parent->items[parent->count++] = child;
    return 0;
}

/* ---- ${VAR} and ${file:PATH} expansion ------------------------------------ */

void sp_sources_clear(struct sp_sources *s)
{
    for (size_t i = 0; i < s->count; i++)
        free(s->paths[i]);
    free(s->paths);
    s->paths = NULL;
    s->count = 0;
}

static void sources_add(struct sp_sources *s, const char *path)
{
    for (size_t i = 0; s != NULL && i < s->count; i++) {
        if (strcmp(s->paths[i], path) == 0)
            return;
    }
    char **grown = s ? realloc(s->paths, (s->count + 1) * sizeof(*grown)) : NULL;
    if (grown == NULL)
        return;
    s->paths = grown;
    if ((s->paths[s->count] = strdup(path)) != NULL)
        s->count++;
}

/* A ${file:} path relative to the configuration's own directory, as the
 * configuration's other files would be in a mounted volume. */
static bool file_path(const struct loader *l, const char *path, char *out, size_t size)
{
    const char *slash = strrchr(l->file, '/');
    int n = path[0] == '/' || slash == NULL
                ? snprintf(out, size, "%s", path)
                : snprintf(out, size, "%.*s/%s", (int)(slash - l->file), l->file, path);

    return n >= 0 && (size_t)n < size;
}

/* Reads ${file:PATH} for the process's own loader. Returns the text (owned
 * by l until the next read) or NULL with why filled in. */
static const char *read_file_value(struct loader *l, const char *path, char *why, size_t whylen)
{
    char full[4096];
    FILE *f;

    if (!file_path(l, path, full, sizeof(full))) {
        snprintf(why, whylen, "the path is too long");
        return NULL;
    }
    sources_add(l->sources, full); /* watched even while missing: it may appear */
    free(l->file_value);
    l->file_value = malloc(MAX_FILE_VALUE + 2);
    if (l->file_value == NULL || (f = fopen(full, "rb")) == NULL) {
        snprintf(why, whylen, "cannot read '%.300s': %s", full,
                 l->file_value ? strerror(errno) : "out of memory");
        return NULL;
    }
    size_t n = fread(l->file_value, 1, MAX_FILE_VALUE + 1, f);
    bool failed = ferror(f);
    fclose(f);
    if (failed || n > MAX_FILE_VALUE || memchr(l->file_value, '\0', n) != NULL) {
        snprintf(why, whylen, "'%.300s' %s", full,
                 failed               ? "cannot be read"
                 : n > MAX_FILE_VALUE ? "is over 64 KiB"
                                      : "holds a NUL byte");
        return NULL;
    }
    if (n > 0 && l->file_value[n - 1] == '\n')
        n--;
    if (n > 0 && l->file_value[n - 1] == '\r')
        n--;
    l->file_value[n] = '\0';
    return l->file_value;
}

static bool valid_var_name(const char *name, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!(c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (i > 0 && c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

/* The value of ${name}: a variable, or for "file:PATH" a file's contents.
 * NULL when unset or unreadable (why says which, for a file). */
static const char *lookup(struct loader *l, const char *name, char *why, size_t whylen)
{
    bool is_file = strncmp(name, "file:", 5) == 0;

    why[0] = '\0';
    if (l->env != NULL)
        return l->env(name, l->env_ctx);
    return is_file ? read_file_value(l, name + 5, why, whylen) : getenv(name);
}

static int buf_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t want = (*len + n + 1) * 2;
        char *grown = realloc(*buf, want);
        if (grown == NULL)
            return -1;
        *buf = grown;
        *cap = want;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

/* Expands ${NAME} and ${NAME:-fallback}; "$${" stands for a literal "${".
 * Returns a new string, or NULL after reporting the problem at mark. */
static char *expand_env(struct loader *l, const char *in, const yaml_mark_t *mark)
{
    char *out = NULL;
    size_t len = 0, cap = 0;
    char msg[512];

    if (buf_append(&out, &len, &cap, "", 0) < 0)
        return NULL;
    for (const char *p = in; *p != '\0';) {
        if (p[0] == '$' && p[1] == '$' && p[2] == '{') {
            if (buf_append(&out, &len, &cap, "${", 2) < 0)
                goto fail;
            p += 3;
            continue;
        }
        if (p[0] != '$' || p[1] != '{') {
            if (buf_append(&out, &len, &cap, p, 1) < 0)
                goto fail;
            p++;
            continue;
        }
        const char *name = p + 2;
        const char *end = strchr(name, '}');
        if (end == NULL) {
            loader_error(l, mark, "unterminated '${' in value (write '$${' for a literal)");
            goto fail;
        }
        size_t name_len = (size_t)(end - name);
        const char *fallback = NULL;
        const char *sep = strstr(name, ":-");
        if (sep != NULL && sep < end) {
            fallback = sep + 2;
            name_len = (size_t)(sep - name);
        }
        char var[4096 + 8], why[400];
        bool is_file = name_len > 5 && strncmp(name, "file:", 5) == 0;
        bool valid = name_len < sizeof(var) && (is_file || valid_var_name(name, name_len));
        if (!valid) {
            snprintf(msg, sizeof(msg), "invalid environment variable name in '%.*s'",
                     (int)(end - p + 1), p);
            loader_error(l, mark, msg);
            goto fail;
        }
        memcpy(var, name, name_len);
        var[name_len] = '\0';
        const char *value = lookup(l, var, why, sizeof(why));
        if (value == NULL && fallback == NULL) {
            if (is_file)
                snprintf(msg, sizeof(msg), "${%.*s}: %.200s",
                         (int)(name_len > 200 ? 200 : name_len), var, why[0] ? why : "not found");
            else
                snprintf(msg, sizeof(msg), "environment variable '%.200s' is not set", var);
            loader_error(l, mark, msg);
            goto fail;
        }
        if (value != NULL) {
            if (buf_append(&out, &len, &cap, value, strlen(value)) < 0)
                goto fail;
        } else if (buf_append(&out, &len, &cap, fallback, (size_t)(end - fallback)) < 0) {
            goto fail;
        }
        p = end + 1;
    }
    return out;

fail:
    free(out);
    return NULL;
}

/* ---- event-driven tree building ------------------------------------------- */

static int next_event(struct loader *l, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&l->parser, ev)) {
        char msg[400];
        snprintf(msg, sizeof(msg), "YAML syntax error: %s%s%s",
                 l->parser.problem ? l->parser.problem : "invalid document",
                 l->parser.context ? " " : "", l->parser.context ? l->parser.context : "");
        loader_error(l, &l->parser.problem_mark, msg);
        return -1;
    }
    return 0;
}

static struct sp_ynode *parse_node(struct loader *l, yaml_event_t *ev, int depth, bool is_key);

static struct sp_ynode *parse_collection(struct loader *l, yaml_event_t *start, int depth)
{
    bool is_map = start->type == YAML_MAPPING_START_EVENT;
    yaml_event_type_t end_type = is_map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT;
    struct sp_ynode *node = node_new(is_map ? SP_YNODE_MAP : SP_YNODE_SEQ, &start->start_mark);
    yaml_event_t ev;

    if (node == NULL)
        return NULL;
    for (;;) {
        if (next_event(l, &ev) < 0)
            goto fail;
        if (ev.type == end_type) {
            yaml_event_delete(&ev);
            return node;
        }
        bool is_key = is_map && node->count % 2 == 0;
        struct sp_ynode *child = parse_node(l, &ev, depth + 1, is_key);
        yaml_event_delete(&ev);
        if (child == NULL || node_append(node, child) < 0) {
            sp_ynode_free(child);
            goto fail;
        }
        if (is_key && child->kind != SP_YNODE_SCALAR) {
            sp_diags_add(l->diags, l->file, child->line, child->col,
                         "mapping keys must be plain strings");
            l->failed = true;
        }
        for (size_t i = 0; is_key && child->kind == SP_YNODE_SCALAR && i + 1 < node->count;
             i += 2) {
            if (node->items[i]->kind == SP_YNODE_SCALAR &&
                strcmp(node->items[i]->value, child->value) == 0) {
                sp_diags_add(l->diags, l->file, child->line, child->col,
                             "duplicate key '%s' (first at line %u)", child->value,
                             node->items[i]->line);
                l->failed = true;
            }
        }
    }

fail:
    sp_ynode_free(node);
    return NULL;
}

static struct sp_ynode *parse_scalar(struct loader *l, yaml_event_t *ev, bool is_key)
{
    struct sp_ynode *node = node_new(SP_YNODE_SCALAR, &ev->start_mark);
    const char *raw = (const char *)ev->data.scalar.value;

    if (node == NULL)
        return NULL;
    node->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    if (ev->data.scalar.length > MAX_SCALAR || strlen(raw) != ev->data.scalar.length) {
        loader_error(l, &ev->start_mark, "value is too long or contains a NUL byte");
        node->invalid = true;
        node->value = strdup("");
    } else if (is_key) {
        node->value = strdup(raw);
    } else {
        node->value = expand_env(l, raw, &ev->start_mark);
        if (node->value == NULL) {
            node->invalid = true; /* reported already; later checks skip it */
            node->value = strdup("");
        }
    }
    if (node->value == NULL) {
        free(node);
        return NULL;
    }
    return node;
}

static struct sp_ynode *parse_node(struct loader *l, yaml_event_t *ev, int depth, bool is_key)
{
    if (depth > MAX_DEPTH) {
        loader_error(l, &ev->start_mark, "document is nested too deeply");
        return NULL;
    }
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return parse_scalar(l, ev, is_key);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        return parse_collection(l, ev, depth);
    case YAML_ALIAS_EVENT:
        loader_error(l, &ev->start_mark, "YAML aliases (*name) are not supported");
        return NULL;
    default:
        loader_error(l, &ev->start_mark, "unexpected YAML event");
        return NULL;
    }
}

/* Consumes STREAM-START … STREAM-END; returns the first document's root. */
static int parse_stream(struct loader *l, struct sp_ynode **root)
{
    yaml_event_t ev;
    struct sp_ynode *doc = NULL;
    int documents = 0;

    *root = NULL;
    for (;;) {
        if (next_event(l, &ev) < 0)
            goto fail;
        yaml_event_type_t type = ev.type;
        if (type == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (type == YAML_DOCUMENT_START_EVENT && ++documents > 1) {
            loader_error(l, &ev.start_mark, "only one YAML document is allowed");
            yaml_event_delete(&ev);
            goto fail;
        }
        if (type == YAML_SCALAR_EVENT || type == YAML_SEQUENCE_START_EVENT ||
            type == YAML_MAPPING_START_EVENT || type == YAML_ALIAS_EVENT) {
            doc = parse_node(l, &ev, 0, false);
            yaml_event_delete(&ev);
            if (doc == NULL)
                goto fail;
            continue;
        }
        yaml_event_delete(&ev);
    }
    *root = doc;
    return 0;

fail:
    sp_ynode_free(doc);
    return -1;
}

int sp_yaml_load(const char *file, const char *text, size_t len, sp_env_lookup env, void *env_ctx,
                 struct sp_ynode **root, struct sp_diags *diags, struct sp_sources *sources)
{
    struct loader l = {
        .file = file,
        .env = env,
        .env_ctx = env_ctx,
        .diags = diags,
        .sources = env == NULL ? sources : NULL,
    };
    struct sp_ynode *doc = NULL;

    if (!yaml_parser_initialize(&l.parser)) {
        sp_diags_add(diags, file, 1, 1, "out of memory");
        return -1;
    }
    yaml_parser_set_input_string(&l.parser, (const unsigned char *)text, len);
    int rc = parse_stream(&l, &doc);
    yaml_parser_delete(&l.parser);
    free(l.file_value);
    *root = doc;
    return (rc < 0 || l.failed) ? -1 : 0;
}
