#include "core/template.h"

#include <stdio.h>
#include <stdlib.h>

struct token {
    bool capture;
    const char *text; /* literal text or capture name, inside the owned pattern */
    size_t len;
};

struct sp_tmpl {
    char *pattern;
    struct token tokens[2 * SP_TMPL_MAX_CAPTURES + 1];
    size_t ntokens;
    size_t ncaptures;
    size_t capture_token[SP_TMPL_MAX_CAPTURES];
};

static bool name_char(char c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int add_token(struct sp_tmpl *t, bool capture, const char *text, size_t len)
{
    if (t->ntokens == sizeof(t->tokens) / sizeof(t->tokens[0]))
        return -1;
    t->tokens[t->ntokens++] = (struct token){capture, text, len};
    return 0;
}

int sp_tmpl_compile(const char *pattern, struct sp_tmpl **out, char *err, size_t errlen)
{
    struct sp_tmpl *t = calloc(1, sizeof(*t));
    if (t == NULL || (t->pattern = strdup(pattern)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    const char *p = t->pattern;
    while (*p != '\0') {
        const char *open = strchr(p, '{');
        const char *stray = strchr(p, '}');
        if (stray != NULL && (open == NULL || stray < open)) {
            snprintf(err, errlen, "unbalanced '}' in '%s'", pattern);
            goto fail;
        }
        if (open == NULL) {
            if (add_token(t, false, p, strlen(p)) < 0)
                goto too_many;
            break;
        }
        if (open > p && add_token(t, false, p, (size_t)(open - p)) < 0)
            goto too_many;
        const char *close = strchr(open, '}');
        if (close == NULL) {
            snprintf(err, errlen, "unterminated '{' in '%s'", pattern);
            goto fail;
        }
        size_t len = (size_t)(close - open - 1);
        for (size_t i = 0; i < len; i++) {
            if (!name_char(open[1 + i])) {
                snprintf(err, errlen,
                         "invalid capture name '%.*s' in '%s' (use letters, digits, _)", (int)len,
                         open + 1, pattern);
                goto fail;
            }
        }
        if (len == 0) {
            snprintf(err, errlen, "empty capture '{}' in '%s'", pattern);
            goto fail;
        }
        if (t->ntokens > 0 && t->tokens[t->ntokens - 1].capture) {
            snprintf(err, errlen, "two captures must be separated by literal text in '%s'",
                     pattern);
            goto fail;
        }
        if (sp_tmpl_capture_index(t, open + 1, len) >= 0) {
            snprintf(err, errlen, "capture '{%.*s}' appears twice in '%s'", (int)len, open + 1,
                     pattern);
            goto fail;
        }
        if (t->ncaptures == SP_TMPL_MAX_CAPTURES)
            goto too_many;
        t->capture_token[t->ncaptures++] = t->ntokens;
        if (add_token(t, true, open + 1, len) < 0)
            goto too_many;
        p = close + 1;
    }
    *out = t;
    return 0;

too_many:
    snprintf(err, errlen, "too many captures in '%s' (at most %d)", pattern, SP_TMPL_MAX_CAPTURES);
fail:
    sp_tmpl_free(t);
    return -1;
}

void sp_tmpl_free(struct sp_tmpl *t)
{
    if (t == NULL)
        return;
    free(t->pattern);
    free(t);
}

size_t sp_tmpl_capture_count(const struct sp_tmpl *t)
{
    return t->ncaptures;
}

int sp_tmpl_capture_index(const struct sp_tmpl *t, const char *name, size_t len)
{
    for (size_t i = 0; i < t->ncaptures; i++) {
        const struct token *tok = &t->tokens[t->capture_token[i]];
        if (tok->len == len && memcmp(tok->text, name, len) == 0)
            return (int)i;
    }
    return -1;
}

bool sp_tmpl_match(const struct sp_tmpl *t, const char *path, size_t len,
                   struct sp_slice caps[SP_TMPL_MAX_CAPTURES])
{
    size_t pos = 0, cap = 0;

    for (size_t i = 0; i < t->ntokens; i++) {
        const struct token *tok = &t->tokens[i];
        if (!tok->capture) {
            if (len - pos < tok->len || memcmp(path + pos, tok->text, tok->len) != 0)
                return false;
            pos += tok->len;
            continue;
        }
        /* A capture ends at the next literal's first occurrence in this segment. */
        const struct token *next = i + 1 < t->ntokens ? &t->tokens[i + 1] : NULL;
        size_t start = pos;
        while (pos < len && path[pos] != '/') {
            if (next != NULL && len - pos >= next->len &&
                memcmp(path + pos, next->text, next->len) == 0 && pos > start)
                break;
            pos++;
        }
        if (pos == start)
            return false;
        caps[cap++] = (struct sp_slice){path + start, pos - start};
    }
    return pos == len;
}

int sp_tmpl_check_refs(const struct sp_tmpl *t, const char *text, char *err, size_t errlen)
{
    for (const char *p = strchr(text, '{'); p != NULL; p = strchr(p + 1, '{')) {
        const char *close = strchr(p, '}');
        if (close == NULL) {
            snprintf(err, errlen, "unterminated '{' in '%s'", text);
            return -1;
        }
        if (sp_tmpl_capture_index(t, p + 1, (size_t)(close - p - 1)) < 0) {
            snprintf(err, errlen, "'%.*s' is not a capture of the route's path",
                     (int)(close - p + 1), p);
            return -1;
        }
    }
    return 0;
}

int sp_tmpl_expand(const struct sp_tmpl *t, const char *text,
                   const struct sp_slice caps[SP_TMPL_MAX_CAPTURES], char *out, size_t size)
{
    size_t n = 0;

    for (const char *p = text; *p != '\0';) {
        const char *piece = p;
        size_t piece_len = 1;
        const char *close = p[0] == '{' ? strchr(p, '}') : NULL;
        int idx = close ? sp_tmpl_capture_index(t, p + 1, (size_t)(close - p - 1)) : -1;
        if (idx >= 0) {
            piece = caps[idx].ptr;
            piece_len = caps[idx].len;
            p = close + 1;
        } else {
            p++;
        }
        if (n + piece_len >= size)
            return -1;
        memcpy(out + n, piece, piece_len);
        n += piece_len;
    }
    if (size == 0)
        return -1;
    out[n] = '\0';
    return (int)n;
}
