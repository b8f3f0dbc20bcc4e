// Progress of long loops on stderr, never on stdout, when the log level shows warnings (the
// default verbosity). Two ways, chosen once per loop by bd_progress_mode:
// - live: stderr is a terminal: one line redrawn in place (carriage return, erase to the end
//   of the line) at most 4 times a second, erased at the end;
// - plain: stderr is not a terminal (make, nohup, CI logs): one ordinary line every
//   BD_PROGRESS_EVERY seconds, no carriage returns nor escape codes.
// The environment variable BD_PROGRESS sets it: "0" off; a number of seconds N > 0: plain lines
// every N seconds, even on a terminal; unset or empty: live on a terminal, else plain lines
// every BD_PROGRESS_EVERY seconds. Tools print their own one-line summary at the end.
#ifndef BD_PROGRESS_H
#define BD_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#define BD_PROGRESS_EVERY 30.0  // seconds between plain lines by default

typedef enum { BD_PROGRESS_OFF = 0, BD_PROGRESS_LIVE, BD_PROGRESS_PLAIN } bd_progress_kind;

typedef struct {
    const char *label;
    const char *unit;
    uint64_t total;  // 0 if unknown
    uint64_t done;
    double t_start, t_last;
    bool active;
    bd_progress_kind kind;
    double every;  // seconds between two lines
    bool drawn;    // live: a line is on the terminal
} bd_progress;

// The way to show progress for the value of BD_PROGRESS (env, NULL if unset), whether stderr is a
// terminal and the log level; *every: the seconds between two lines. A malformed value (not a
// number >= 0) is treated as unset.
bd_progress_kind bd_progress_mode(const char *env, bool tty, int level, double *every);

void bd_progress_start(bd_progress *p, const char *label, uint64_t total, const char *unit);
void bd_progress_update(bd_progress *p, uint64_t done);
// Ends the loop: live, erases the line (the tool's summary follows); plain, prints nothing more.
void bd_progress_finish(bd_progress *p);
double bd_now(void);  // monotonic seconds

// Formats the status line into buf: "label 120/400 tok (30.0%) 1.25k tok/s ETA 0:00:03".
void bd_progress_format(char *buf, int size, const char *label, uint64_t done, uint64_t total, const char *unit,
                        double elapsed);

#endif
