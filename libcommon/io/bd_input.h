// An input read once, whatever it is: a regular file, standard input ("-"), a FIFO, a pipe
// such as the /dev/fd/N of a shell's process substitution. Its first bytes can be looked at
// (a format sniffed) before it is read from byte 0: a file is sought back; a pipe, which
// cannot be read twice nor opened again, replays them through the stream (fopencookie).
#ifndef BD_INPUT_H
#define BD_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bd_error.h"

#define BD_INPUT_HEAD 16

typedef struct {
    FILE *f;           // reads the input from its first byte
    const char *name;  // the path as given ("-": standard input), for messages
    unsigned char head[BD_INPUT_HEAD];
    size_t head_len;  // the first bytes; fewer at the end of a short input
    int64_t size;     // a regular file's size, -1 for anything else
} bd_input;

// Opens path ("-" or NULL: standard input) and reads its first bytes. BD_ERR_IO (cannot open
// or read; why names path), BD_ERR_ARG (a directory), BD_ERR_NOMEM.
BD_MUST_CHECK int bd_input_open(bd_input *in, const char *path, char *why, size_t why_size);
// Whether the input starts with zstd's magic number (a bd stream).
bool bd_input_is_zstd(const bd_input *in);
// Closes the stream (standard input stays open).
void bd_input_close(bd_input *in);

#endif
