/* A YAML document as a tree whose every node remembers where it was written.
 *
 * libyaml's event parser feeds the tree; scalars get ${VAR} and ${VAR:-default}
 * expansion (values only, never keys). The tree is what the directive table in
 * config.c walks, so every later error can name FILE:LINE:COL.
 */
#ifndef SP_CONFIG_YAML_TREE_H
#define SP_CONFIG_YAML_TREE_H

#include <stdbool.h>
#include <stddef.h>

enum sp_ynode_kind {
    SP_YNODE_SCALAR,
    SP_YNODE_MAP,
    SP_YNODE_SEQ,
};

struct sp_ynode {
    enum sp_ynode_kind kind;
    unsigned line; /* 1-based */
    unsigned col;  /* 1-based */
    char *value;   /* scalars: text after expansion, never NULL */
    bool plain;    /* scalars: written without quotes (so "~" or "" mean null) */
    bool invalid;  /* scalars: already reported (e.g. an unset variable); skip */
    /* maps: items[2i] is a key, items[2i+1] its value; sequences: items[i] */
    struct sp_ynode **items;
    size_t count; /* number of items (a map holds count / 2 pairs) */
};

/* Every problem found while loading, in source order. */
struct sp_diags {
    char **lines; /* "FILE:LINE:COL: message" */
    size_t count;
};

void sp_diags_add(struct sp_diags *d, const char *file, unsigned line, unsigned col,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void sp_diags_clear(struct sp_diags *d);

/* Looks up an environment variable; returns NULL when unset. With a lookup
 * of the caller's, ${file:PATH} asks it for the name "file:PATH" too. */
typedef const char *(*sp_env_lookup)(const char *name, void *ctx);

/* The files a configuration was made of: the file itself, then every file a
 * ${file:PATH} read (a mounted Secret, say), each once. */
struct sp_sources {
    char **paths;
    size_t count;
};

void sp_sources_clear(struct sp_sources *s);

/* Parses text (len bytes, need not be NUL-terminated). file names the source
 * in diagnostics. With env NULL, ${NAME} is getenv(NAME) and ${file:PATH}
 * the contents of PATH (relative to file's directory; one trailing newline
 * dropped), and the paths read are added to sources (which may be NULL). Sets *root to the tree
 * (NULL for an empty document or a syntax error; owned by the caller, freed with sp_ynode_free) and
 * returns 0, or -1 after appending every problem found to diags. A tree is still handed back after
 * errors such as an unset variable, so that the caller can go on reporting the problems it finds
 * too. env may be NULL to use getenv(). */
int sp_yaml_load(const char *file, const char *text, size_t len, sp_env_lookup env, void *env_ctx,
                 struct sp_ynode **root, struct sp_diags *diags, struct sp_sources *sources);

void sp_ynode_free(struct sp_ynode *node);

/* True for a plain "", "~" or "null" scalar. */
bool sp_ynode_is_null(const struct sp_ynode *node);

#endif
