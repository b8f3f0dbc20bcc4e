#include "bd_input.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// A pipe's first bytes, handed out again before the rest of the pipe.
typedef struct {
    FILE *src;
    bool own;  // close src with the stream (not standard input)
    unsigned char head[BD_INPUT_HEAD];
    size_t len, pos;
} replay;

static ssize_t replay_read(void *cookie, char *buf, size_t n) {
    replay *r = cookie;
    if (r->pos < r->len) {
        size_t k = r->len - r->pos < n ? r->len - r->pos : n;
        memcpy(buf, r->head + r->pos, k);
        r->pos += k;
        return (ssize_t)k;
    }
    size_t k = fread(buf, 1, n, r->src);
    return k == 0 && ferror(r->src) ? -1 : (ssize_t)k;
}

static int replay_close(void *cookie) {
    replay *r = cookie;
    int rc = r->own ? fclose(r->src) : 0;
    free(r);
    return rc;
}

// The stream over a pipe from which head_len bytes were taken; closes src on failure.
static FILE *replay_open(FILE *src, bool own, const bd_input *in) {
    replay *r = calloc(1, sizeof *r);
    FILE *f = NULL;
    if (r) {
        *r = (replay){.src = src, .own = own, .len = in->head_len};
        memcpy(r->head, in->head, in->head_len);
        f = fopencookie(r, "rb", (cookie_io_functions_t){.read = replay_read, .close = replay_close});
    }
    if (!f) {
        free(r);
        if (own) fclose(src);
    }
    return f;
}

int bd_input_open(bd_input *in, const char *path, char *why, size_t ws) {
    bool is_stdin = !path || strcmp(path, "-") == 0;
    *in = (bd_input){.name = is_stdin ? "-" : path, .size = -1};
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0) {
        int e = errno;
        if (f && !is_stdin) fclose(f);
        return bd_fail(why, ws, BD_ERR_IO, "\"%s\": cannot open: %s", in->name, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        if (!is_stdin) fclose(f);
        return bd_fail(why, ws, BD_ERR_ARG, "\"%s\": is a directory", in->name);
    }
    off_t at = S_ISREG(st.st_mode) ? ftello(f) : -1;  // standard input may start past 0
    in->head_len = fread(in->head, 1, sizeof in->head, f);
    if (ferror(f)) {
        int e = errno;
        if (!is_stdin) fclose(f);
        return bd_fail(why, ws, BD_ERR_IO, "\"%s\": read error: %s", in->name, strerror(e));
    }
    if (at >= 0 && fseeko(f, at, SEEK_SET) == 0) {
        in->f = f;
        in->size = (int64_t)st.st_size - (int64_t)at;
        return BD_OK;
    }
    clearerr(f);  // a FIFO at its end
    if (!(in->f = replay_open(f, !is_stdin, in))) return bd_fail(why, ws, BD_ERR_NOMEM, "out of memory");
    return BD_OK;
}

bool bd_input_is_zstd(const bd_input *in) {
    static const unsigned char magic[4] = {0x28, 0xB5, 0x2F, 0xFD};
    return in->head_len >= 4 && memcmp(in->head, magic, 4) == 0;
}

void bd_input_close(bd_input *in) {
    if (in->f && in->f != stdin) fclose(in->f);
    in->f = NULL;
}
