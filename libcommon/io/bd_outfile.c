#include "bd_outfile.h"

#include <errno.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct bd_outfile {
    FILE *f;
    char *path;      // final name
    char *tmp;       // temporary name, NULL when written in place
    bool is_stdout;  // "-"
    struct bd_outfile *next;
};

// Pending temporary files, so that a fatal error or a signal can remove them.
static bd_outfile *volatile pending;

static void unlink_pending(bd_outfile *o) {
    for (bd_outfile *volatile *p = &pending; *p; p = &(*p)->next)
        if (*p == o) {
            *p = o->next;
            return;
        }
}

// Whether path must be written where it is rather than replaced by a renamed temporary:
// devices, FIFOs and sockets (renaming over /dev/null would replace the device with a regular
// file), and the /dev/stdout, /dev/fd/N, /proc/self/fd/N aliases of open descriptors (a rename
// would leave the descriptor's file behind). Symbolic links to regular files are followed, so
// the link stays and its target is replaced.
bool bd_outfile_in_place(const char *path) {
    struct stat st;
    if (strncmp(path, "/dev/", 5) == 0 || strncmp(path, "/proc/", 6) == 0) return true;
    if (stat(path, &st) != 0) return false;  // new file (or dangling link): temp + rename
    return !S_ISREG(st.st_mode);
}

static bd_outfile *open_in_place(bd_outfile *o, const char *path, const char *mode) {
    o->path = strdup(path);
    if (!o->path) {
        free(o);
        return NULL;
    }
    if (!(o->f = fopen(path, mode))) {
        int e = errno;
        free(o->path);
        free(o);
        errno = e;
        return NULL;
    }
    return o;
}

size_t bd_glob_escape(char *out, size_t size, const char *path) {
    size_t j = 0;
    for (const char *c = path; *c && j + 3 < size; c++) {
        if (strchr("*?[\\", *c)) out[j++] = '\\';
        out[j++] = *c;
    }
    if (size) out[j] = 0;
    return j;
}

int bd_outfile_sweep(const char *path) {
    char pat[4200];
    size_t j = bd_glob_escape(pat, sizeof pat - 8, path);
    snprintf(pat + j, sizeof pat - j, ".tmp.*");
    return bd_outfile_sweep_matching(pat);
}

int bd_outfile_sweep_matching(const char *pat) {
    glob_t g;
    if (glob(pat, 0, NULL, &g) != 0) return 0;
    int live = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        int fd = open(g.gl_pathv[i], O_RDONLY | O_NOFOLLOW);
        if (fd < 0) continue;
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
            // Every writer holds a lock on its temporary until it commits or aborts.
            if (flock(fd, LOCK_EX | LOCK_NB) == 0)
                unlink(g.gl_pathv[i]);  // its writer is gone
            else if (errno == EWOULDBLOCK)
                live++;
        }
        close(fd);
    }
    globfree(&g);
    return live;
}

// The target of a symbolic link (malloc'd), or NULL when path is not one.
static char *link_target(const char *path) {
    struct stat lst;
    return lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode) ? realpath(path, NULL) : NULL;
}

int bd_outfile_prepare(const char *path) {
    if (!path || !strcmp(path, "-") || bd_outfile_in_place(path)) return 0;
    char *real = link_target(path);
    int live = bd_outfile_sweep(real ? real : path);
    free(real);
    return live;
}

bd_outfile *bd_outfile_open(const char *path, const char *mode) {
    bd_outfile *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    if (!path || strcmp(path, "-") == 0) {
        o->f = stdout;
        o->is_stdout = true;
        o->path = strdup("-");
        if (!o->path) {
            free(o);
            return NULL;
        }
        return o;
    }
    if (bd_outfile_in_place(path)) return open_in_place(o, path, mode);
    char *real = link_target(path);  // a symbolic link to a regular file: replace the target, keep the link
    if (real) path = real;
    size_t n = strlen(path);
    o->path = strdup(path);
    o->tmp = malloc(n + 32);
    if (o->tmp) snprintf(o->tmp, n + 32, "%s.tmp.%ld.XXXXXX", path, (long)getpid());
    free(real);
    if (!o->path || !o->tmp) goto fail;
    if (bd_outfile_sweep(o->path) > 0) {
        errno = EBUSY;
        goto fail;
    }  // another live run writes it
    int fd = mkstemp(o->tmp);
    if (fd < 0) {
        free(o->tmp);
        o->tmp = NULL;
        goto fail;
    }
    flock(fd, LOCK_EX | LOCK_NB);  // held until commit or abort: tells bd_outfile_sweep we live
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0 || !(o->f = fdopen(fd, mode))) {
        int e = errno;
        close(fd);
        unlink(o->tmp);
        errno = e;
        goto fail;
    }
    o->next = pending;
    pending = o;
    return o;
fail:;
    int e = errno;
    free(o->path);
    free(o->tmp);
    free(o);
    errno = e;
    return NULL;
}

FILE *bd_outfile_fp(bd_outfile *o) { return o->f; }
const char *bd_outfile_path(const bd_outfile *o) { return o->path; }
bool bd_outfile_is_stdout(const bd_outfile *o) { return o->is_stdout; }

int bd_outfile_commit(bd_outfile *o) {
    int rc = BD_OK, e = 0;
    if (o->is_stdout) {
        if (fflush(o->f) != 0 || ferror(o->f)) {
            rc = BD_ERR_IO;
            e = errno;
        }
    } else if (!o->tmp) {  // written in place: nothing to rename, nothing to sync
        if (fflush(o->f) != 0 || ferror(o->f)) {
            rc = BD_ERR_IO;
            e = errno;
        }
        if (fclose(o->f) != 0 && rc == BD_OK) {
            rc = BD_ERR_IO;
            e = errno;
        }
    } else {
        if (fflush(o->f) != 0 || ferror(o->f) || fsync(fileno(o->f)) != 0) {
            rc = BD_ERR_IO;
            e = errno;
        }
        if (fclose(o->f) != 0 && rc == BD_OK) {
            rc = BD_ERR_IO;
            e = errno;
        }
        if (rc == BD_OK && rename(o->tmp, o->path) != 0) {
            rc = BD_ERR_IO;
            e = errno;
        }
        if (rc != BD_OK) unlink(o->tmp);
        unlink_pending(o);
    }
    free(o->path);
    free(o->tmp);
    free(o);
    errno = e;
    return rc;
}

void bd_outfile_abort(bd_outfile *o) {
    if (!o) return;
    if (o->tmp) {
        fclose(o->f);
        unlink(o->tmp);
        unlink_pending(o);
    } else if (!o->is_stdout) {
        fclose(o->f);  // a device or FIFO: what was written is gone already
    }
    free(o->path);
    free(o->tmp);
    free(o);
}

void bd_outfile_abort_all(void) {
    for (bd_outfile *o = pending; o; o = o->next) unlink(o->tmp);
}
