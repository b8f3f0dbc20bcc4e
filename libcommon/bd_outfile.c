#include "bd_outfile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct bd_outfile {
    FILE *f;
    char *path;  // final name
    char *tmp;   // temporary name, NULL for stdout
    struct bd_outfile *next;
};

// Pending temporary files, so that a fatal error or a signal can remove them.
static bd_outfile *volatile pending;

static void unlink_pending(bd_outfile *o) {
    for (bd_outfile *volatile *p = &pending; *p; p = &(*p)->next)
        if (*p == o) { *p = o->next; return; }
}

bd_outfile *bd_outfile_open(const char *path, const char *mode) {
    bd_outfile *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    if (!path || strcmp(path, "-") == 0) {
        o->f = stdout;
        o->path = strdup("-");
        if (!o->path) { free(o); return NULL; }
        return o;
    }
    size_t n = strlen(path);
    o->path = strdup(path);
    o->tmp = malloc(n + 32);
    if (!o->path || !o->tmp) goto fail;
    snprintf(o->tmp, n + 32, "%s.tmp.%ld.XXXXXX", path, (long)getpid());
    int fd = mkstemp(o->tmp);
    if (fd < 0) { free(o->tmp); o->tmp = NULL; goto fail; }
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
    free(o->path); free(o->tmp); free(o);
    errno = e;
    return NULL;
}

FILE *bd_outfile_fp(bd_outfile *o) { return o->f; }
const char *bd_outfile_path(const bd_outfile *o) { return o->path; }
bool bd_outfile_is_stdout(const bd_outfile *o) { return o->tmp == NULL; }

int bd_outfile_commit(bd_outfile *o) {
    int rc = BD_OK, e = 0;
    if (!o->tmp) {
        if (fflush(o->f) != 0 || ferror(o->f)) { rc = BD_ERR_IO; e = errno; }
    } else {
        if (fflush(o->f) != 0 || ferror(o->f) || fsync(fileno(o->f)) != 0) { rc = BD_ERR_IO; e = errno; }
        if (fclose(o->f) != 0 && rc == BD_OK) { rc = BD_ERR_IO; e = errno; }
        if (rc == BD_OK && rename(o->tmp, o->path) != 0) { rc = BD_ERR_IO; e = errno; }
        if (rc != BD_OK) unlink(o->tmp);
        unlink_pending(o);
    }
    free(o->path); free(o->tmp); free(o);
    errno = e;
    return rc;
}

void bd_outfile_abort(bd_outfile *o) {
    if (!o) return;
    if (o->tmp) {
        fclose(o->f);
        unlink(o->tmp);
        unlink_pending(o);
    }
    free(o->path); free(o->tmp); free(o);
}

void bd_outfile_abort_all(void) {
    for (bd_outfile *o = pending; o; o = o->next) unlink(o->tmp);
}
