// Output files that appear whole or not at all: a regular file (or a new name) is written under
// a temporary name in the destination directory and renamed into place on commit; a symbolic
// link keeps pointing at the replaced target. Outputs that are not regular files (devices such
// as /dev/null, FIFOs, sockets, /dev/stdout and /dev/fd/N) are opened and written in place.
// "-" means stdout.
#ifndef BD_OUTFILE_H
#define BD_OUTFILE_H

#include <stdbool.h>
#include <stdio.h>

#include "bd_error.h"

typedef struct bd_outfile bd_outfile;

// Temporaries are named PATH.tmp.PID.XXXXXX and locked (flock) while their writer lives.
// mode is an fopen mode ("wb" or "w"). On error returns NULL with errno set; EBUSY when
// another live process is writing the same PATH. Opening removes PATH's stale temporaries
// (those of killed runs) first.
bd_outfile *bd_outfile_open(const char *path, const char *mode);
FILE *bd_outfile_fp(bd_outfile *o);
const char *bd_outfile_path(const bd_outfile *o);  // final name ("-" for stdout)
bool bd_outfile_is_stdout(const bd_outfile *o);
// Flushes, syncs, closes and renames into place (stdout: flushes and checks for errors).
// Frees o. Returns BD_OK or BD_ERR_IO with errno set.
BD_MUST_CHECK int bd_outfile_commit(bd_outfile *o);
// Closes and removes the temporary file. Frees o.
void bd_outfile_abort(bd_outfile *o);
// Whether path is written in place (devices, FIFOs, sockets, /dev/ and /proc/ names) rather than
// replaced through a temporary.
bool bd_outfile_in_place(const char *path);
// What bd_outfile_open does first, for a tool to do before its work: removes the stale
// temporaries of path (of its target, for a symbolic link) and returns how many live processes
// are writing it (then bd_outfile_open would fail with EBUSY). 0 for "-" and in-place outputs.
int bd_outfile_prepare(const char *path);
// Removes the temporaries of PATH whose writers are gone (unlocked); returns how many are
// still being written by live processes. Never touches another output's files.
int bd_outfile_sweep(const char *path);
// The same for every temporary matching a glob pattern (e.g. escaped "OUT.w*.tmp.*").
int bd_outfile_sweep_matching(const char *pattern);
// Copies path into out with glob metacharacters escaped; returns the length.
size_t bd_glob_escape(char *out, size_t size, const char *path);
// Removes every temporary file still pending (uses only unlink: safe in a signal handler).
void bd_outfile_abort_all(void);

#endif
