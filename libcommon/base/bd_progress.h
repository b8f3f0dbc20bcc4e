// Progress of long loops on stderr (rate, ETA), only when stderr is a terminal (or
// BD_PROGRESS=1 is set) and the log level shows warnings. Never on stdout.
#ifndef BD_PROGRESS_H
#define BD_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *label;
    const char *unit;
    uint64_t total;  // 0 if unknown
    uint64_t done;
    double t_start, t_last;
    bool active;
} bd_progress;

void bd_progress_start(bd_progress *p, const char *label, uint64_t total, const char *unit);
void bd_progress_update(bd_progress *p, uint64_t done);
void bd_progress_finish(bd_progress *p);
double bd_now(void);  // monotonic seconds

// Formats the status line into buf: "label 120/400 tok (30.0%) 1.25k tok/s ETA 0:00:03".
void bd_progress_format(char *buf, int size, const char *label, uint64_t done, uint64_t total, const char *unit,
                        double elapsed);

#endif
