#include "bd_readfile.h"

#include <bzlib.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


bool bd_is_bzip2(const unsigned char *d, size_t n) {
    return n >= 4 && d[0] == 'B' && d[1] == 'Z' && d[2] == 'h' && d[3] >= '1' && d[3] <= '9';
}

int bd_bunzip2(const unsigned char *src, size_t n, const char *name, char **out, size_t *out_len, char *why,
               size_t ws) {
    *out = NULL;
    *out_len = 0;
    size_t cap = n * 4 + 4096, len = 0, pos = 0;
    char *buf = malloc(cap);
    if (!buf) return bd_fail(why, ws, BD_ERR_NOMEM, "\"%s\": out of memory decompressing bzip2", name);
    int rc = BD_OK;
    // One pass per concatenated stream; each must start with the magic.
    while (pos < n && rc == BD_OK) {
        if (!bd_is_bzip2(src + pos, n - pos)) {
            rc = bd_fail(why, ws, BD_ERR_CORRUPT, "\"%s\": byte %zu: garbage after the bzip2 data", name, pos);
            break;
        }
        bz_stream z;
        memset(&z, 0, sizeof z);
        if (BZ2_bzDecompressInit(&z, 0, 0) != BZ_OK) {
            rc = bd_fail(why, ws, BD_ERR_NOMEM, "\"%s\": cannot start the bzip2 decoder", name);
            break;
        }
        for (;;) {
            if (cap - len < 65536) {
                size_t ncap = cap * 2;
                char *p = realloc(buf, ncap);
                if (!p) {
                    rc = bd_fail(why, ws, BD_ERR_NOMEM, "\"%s\": out of memory decompressing bzip2", name);
                    break;
                }
                buf = p;
                cap = ncap;
            }
            size_t in_avail = n - pos < UINT_MAX ? n - pos : UINT_MAX;
            size_t out_avail = cap - len - 1 < UINT_MAX ? cap - len - 1 : UINT_MAX;
            z.next_in = (char *)(src + pos);
            z.avail_in = (unsigned)in_avail;
            z.next_out = buf + len;
            z.avail_out = (unsigned)out_avail;
            int zr = BZ2_bzDecompress(&z);
            pos += in_avail - z.avail_in;
            len += out_avail - z.avail_out;
            if (zr == BZ_STREAM_END) break;
            if (zr != BZ_OK) {
                rc = bd_fail(why, ws, zr == BZ_MEM_ERROR ? BD_ERR_NOMEM : BD_ERR_CORRUPT,
                             "\"%s\": bzip2 data error near compressed byte %zu (code %d)", name, pos, zr);
                break;
            }
            if (pos == n && z.avail_out > 0) {  // all input used, the decoder wants more
                rc = bd_fail(why, ws, BD_ERR_TRUNCATED, "\"%s\": truncated bzip2 data (ends after %zu bytes)", name, n);
                break;
            }
        }
        BZ2_bzDecompressEnd(&z);
    }
    if (rc < 0) {
        free(buf);
        return rc;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return BD_OK;
}

int bd_read_file(const char *path, char **data, size_t *len, char *why, size_t ws) {
    *data = NULL;
    *len = 0;
    bool is_stdin = strcmp(path, "-") == 0;
    const char *name = is_stdin ? "<stdin>" : path;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) return bd_fail(why, ws, BD_ERR_IO, "\"%s\": cannot open: %s", name, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    int rc = BD_OK;
    while (buf) {
        if (cap - n < 2) {
            char *p = realloc(buf, cap * 2);
            if (!p) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    if (!buf)
        rc = bd_fail(why, ws, BD_ERR_NOMEM, "\"%s\": out of memory reading", name);
    else if (ferror(f))
        rc = bd_fail(why, ws, BD_ERR_IO, "\"%s\": read error: %s", name, strerror(errno));
    if (!is_stdin) fclose(f);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    if (bd_is_bzip2((const unsigned char *)buf, n)) {
        rc = bd_bunzip2((const unsigned char *)buf, n, name, data, len, why, ws);
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return BD_OK;
}

int bd_read_small_file(const char *path, size_t max_bytes, char **data, size_t *len, char *why, size_t ws) {
    *data = NULL;
    *len = 0;
    // O_NONBLOCK: opening a FIFO without a writer must not hang; the type is checked next.
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        bd_fail(why, ws, BD_ERR_IO, "%s: cannot open: %s", path, strerror(e));
        errno = e;
        return BD_ERR_IO;
    }
    struct stat st;
    int rc = BD_OK;
    if (fstat(fd, &st) != 0)
        rc = bd_fail(why, ws, BD_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = bd_fail(why, ws, BD_ERR_ARG, "%s: not a regular file (%s)", path,
                     S_ISFIFO(st.st_mode)                         ? "a FIFO"
                     : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                                                                  : "not a file");
    else if ((uint64_t)st.st_size > max_bytes)
        rc = bd_fail(why, ws, BD_ERR_MALFORMED, "%s: %lld bytes, more than the %zu this kind of file may have", path,
                     (long long)st.st_size, max_bytes);
    char *buf = rc == BD_OK ? malloc((size_t)st.st_size + 1) : NULL;
    if (rc == BD_OK && !buf) rc = bd_fail(why, ws, BD_ERR_NOMEM, "%s: out of memory reading", path);
    size_t n = 0;
    while (rc == BD_OK && n < (size_t)st.st_size) {
        ssize_t got = read(fd, buf + n, (size_t)st.st_size - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0)
            rc = bd_fail(why, ws, BD_ERR_IO, "%s: read error: %s", path, strerror(errno));
        else if (got == 0)
            break;  // shrank while reading: take what is there
        else
            n += (size_t)got;
    }
    close(fd);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return BD_OK;
}
