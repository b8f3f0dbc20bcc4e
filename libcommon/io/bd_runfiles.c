// The check that no output of a run overwrites an input or another output (see bd_runfiles.h).
#include "bd_runfiles.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bd_outfile.h"

int bd_runfiles_add(bd_runfiles *s, bd_rf_role role, const char *opt, const char *path) {
    if (!path || !strcmp(path, "-")) return BD_OK;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 8;
        bd_runfile *f = realloc(s->f, cap * sizeof *f);
        if (!f) return BD_ERR_NOMEM;
        s->f = f, s->cap = cap;
    }
    bd_runfile *f = &s->f[s->n];
    *f = (bd_runfile){role, strdup(opt), strdup(path)};
    if (!f->opt || !f->path) {
        free(f->opt), free(f->path);
        return BD_ERR_NOMEM;
    }
    s->n++;
    return BD_OK;
}

void bd_runfiles_free(bd_runfiles *s) {
    for (size_t i = 0; i < s->n; i++) free(s->f[i].opt), free(s->f[i].path);
    free(s->f);
    *s = (bd_runfiles){0};
}

// A file as the check sees it.
typedef struct {
    const bd_runfile *f;
    char *path;   // f->path, or DIR/NAME for a file of an input directory (then owned)
    bool exists;  // the file is there: (dev, ino) is its identity
    dev_t dev;
    ino_t ino;
    bool placed;  // its directory (pdev, pino) and its name there are known
    dev_t pdev;
    ino_t pino;
    char name[256];
} ident;

typedef struct {
    ident *v;
    size_t n, cap;
} ident_list;

// Where path's file is: the directory and name after following symbolic links to the file itself
// (where bd_outfile writes, and its temporaries go), or as given for a name that does not exist.
static void locate(ident *d, const char *path) {
    char *real = realpath(path, NULL);
    const char *p = real ? real : path, *slash = strrchr(p, '/'), *base = slash ? slash + 1 : p;
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", !slash ? 1 : slash == p ? 1 : (int)(slash - p), slash ? p : ".");
    struct stat st;
    if (*base && strlen(base) < sizeof d->name && stat(dir, &st) == 0) {
        d->placed = true, d->pdev = st.st_dev, d->pino = st.st_ino;
        memcpy(d->name, base, strlen(base) + 1);
    }
    free(real);
}

static int push(ident_list *l, const bd_runfile *f, char *path, const struct stat *st) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        ident *v = realloc(l->v, cap * sizeof *v);
        if (!v) return BD_ERR_NOMEM;
        l->v = v, l->cap = cap;
    }
    ident *d = &l->v[l->n++];
    *d = (ident){.f = f, .path = path, .exists = st != NULL};
    if (st) d->dev = st->st_dev, d->ino = st->st_ino;
    locate(d, path);
    return BD_OK;
}

// The regular files of an input directory, each an input of its own.
static int push_dir(ident_list *l, const bd_runfile *f) {
    DIR *d = opendir(f->path);
    if (!d) return BD_OK;  // unreadable: the tool will say so
    int rc = BD_OK;
    struct dirent *e;
    while (rc == BD_OK && (e = readdir(d))) {
        size_t n = strlen(f->path) + strlen(e->d_name) + 2;
        char *p = malloc(n);
        struct stat st;
        if (!p) {
            rc = BD_ERR_NOMEM;
            break;
        }
        snprintf(p, n, "%s/%s", f->path, e->d_name);
        if (stat(p, &st) != 0 || !S_ISREG(st.st_mode) || (rc = push(l, f, p, &st)) < 0) free(p);
    }
    closedir(d);
    return rc;
}

// The files to compare: outputs written in place and inputs that are not there are left out.
static int collect(const bd_runfiles *s, ident_list *l) {
    int rc = BD_OK;
    for (size_t i = 0; rc == BD_OK && i < s->n; i++) {
        const bd_runfile *f = &s->f[i];
        struct stat st;
        bool there = stat(f->path, &st) == 0;
        if (f->role == BD_RF_OUTPUT && bd_outfile_in_place(f->path)) continue;
        if (f->role == BD_RF_INPUT && !there) continue;
        if (f->role == BD_RF_INPUT && S_ISDIR(st.st_mode))
            rc = push_dir(l, f);
        else
            rc = push(l, f, f->path, there && f->role != BD_RF_FAMILY ? &st : NULL);
    }
    return rc;
}

static bool same_file(const ident *a, const ident *b) {
    if (a->exists && b->exists) return a->dev == b->dev && a->ino == b->ino;
    return a->placed && b->placed && a->pdev == b->pdev && a->pino == b->pino && !strcmp(a->name, b->name);
}

// Whether b's name, in a's directory, begins with a's name and then suffix.
static bool named_after(const ident *a, const char *suffix, const ident *b) {
    size_t n = strlen(a->name);
    return a->placed && b->placed && a->pdev == b->pdev && a->pino == b->pino && !strncmp(b->name, a->name, n) &&
           !strncmp(b->name + n, suffix, strlen(suffix));
}

// A reason why a and b cannot be files of one run, or BD_OK.
static int compare(const ident *a, const ident *b, char *why, size_t ws) {
    bd_rf_role ra = a->f->role, rb = b->f->role;
    if (ra == BD_RF_INPUT && rb == BD_RF_INPUT) return BD_OK;
    if (ra == BD_RF_FAMILY || rb == BD_RF_FAMILY) {
        const ident *fam = ra == BD_RF_FAMILY ? a : b, *x = fam == a ? b : a;
        if (x->f->role == BD_RF_FAMILY || !named_after(fam, "", x)) return BD_OK;
        return bd_fail(why, ws, BD_ERR_ARG, "%s \"%s\" is one of the files \"%s*\" that %s writes and removes",
                       x->f->opt, x->path, fam->path, fam->f->opt);
    }
    if (same_file(a, b))
        return bd_fail(why, ws, BD_ERR_ARG, "%s \"%s\" and %s \"%s\" are the same file", a->f->opt, a->path, b->f->opt,
                       b->path);
    for (int k = 0; k < 2; k++) {
        const ident *o = k ? b : a, *x = k ? a : b;
        if (o->f->role == BD_RF_OUTPUT && named_after(o, ".tmp.", x))
            return bd_fail(why, ws, BD_ERR_ARG,
                           "%s \"%s\" is named like a temporary file of %s \"%s\" (which are removed when stale)",
                           x->f->opt, x->path, o->f->opt, o->path);
    }
    return BD_OK;
}

int bd_runfiles_check(const bd_runfiles *s, char *why, size_t ws) {
    ident_list l = {0};
    int rc = collect(s, &l);
    if (rc < 0) bd_fail(why, ws, rc, "out of memory");
    for (size_t i = 0; rc == BD_OK && i < l.n; i++)
        for (size_t j = i + 1; rc == BD_OK && j < l.n; j++) rc = compare(&l.v[i], &l.v[j], why, ws);
    for (size_t i = 0; i < l.n; i++)
        if (l.v[i].path != l.v[i].f->path) free(l.v[i].path);
    free(l.v);
    return rc;
}
