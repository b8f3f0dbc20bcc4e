// The files one run of a tool reads and writes, and the check, made before any work, that no
// output would overwrite an input or another output. Files that exist are compared by identity
// (device and inode: hard links, symbolic links, "./x" and "d/../x" are caught); an output that
// does not exist yet by place (its directory's device and inode, and its name there). Outputs
// written in place (standard output, devices such as /dev/null, FIFOs: see bd_outfile) are
// exempt, and so are inputs read from standard input.
#ifndef BD_RUNFILES_H
#define BD_RUNFILES_H

#include <stddef.h>

#include "bd_error.h"

typedef enum {
    BD_RF_INPUT,   // read; a directory stands for the regular files in it (a Hugging Face model)
    BD_RF_OUTPUT,  // written; PATH.tmp.* are its temporaries (bd_outfile)
    BD_RF_FAMILY,  // the files whose names begin with PATH, which the run writes and removes
                   // (bd-qat's checkpoint generations OUT.state.wSTEP)
} bd_rf_role;

typedef struct {
    bd_rf_role role;
    char *opt;   // the option that names the file, for messages: "-o", "--log", "TOKENS"
    char *path;  // as given
} bd_runfile;

typedef struct {
    bd_runfile *f;
    size_t n, cap;
} bd_runfiles;

// Adds a file (copies opt and path). NULL and "-" (standard input or output) are ignored.
// BD_ERR_NOMEM.
BD_MUST_CHECK int bd_runfiles_add(bd_runfiles *s, bd_rf_role role, const char *opt, const char *path);
// BD_ERR_ARG when an output is the same file as another output or an input, or when an input or
// output has a name of another output's family or temporaries; why names both files and their
// options. Files that cannot be looked at (an input that does not exist) are left to the tool.
BD_MUST_CHECK int bd_runfiles_check(const bd_runfiles *s, char *why, size_t why_size);
void bd_runfiles_free(bd_runfiles *s);

#endif
