#include "bd_progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bd_log.h"

double bd_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void human(char *buf, int size, double v) {
    if (v >= 1e9)
        snprintf(buf, size, "%.2fG", v / 1e9);
    else if (v >= 1e6)
        snprintf(buf, size, "%.2fM", v / 1e6);
    else if (v >= 1e3)
        snprintf(buf, size, "%.2fk", v / 1e3);
    else
        snprintf(buf, size, "%.1f", v);
}

void bd_progress_format(char *buf, int size, const char *label, uint64_t done, uint64_t total, const char *unit,
                        double elapsed) {
    char rate[32];
    double r = elapsed > 0 ? (double)done / elapsed : 0;
    human(rate, sizeof rate, r);
    if (total > 0) {
        long eta = r > 0 && done <= total ? (long)((double)(total - done) / r + 0.5) : 0;
        snprintf(buf, size, "%s %llu/%llu %s (%.1f%%) %s %s/s ETA %ld:%02ld:%02ld", label, (unsigned long long)done,
                 (unsigned long long)total, unit, 100.0 * (double)done / (double)total, rate, unit, eta / 3600,
                 eta / 60 % 60, eta % 60);
    } else {
        snprintf(buf, size, "%s %llu %s %s %s/s", label, (unsigned long long)done, unit, rate, unit);
    }
}

void bd_progress_start(bd_progress *p, const char *label, uint64_t total, const char *unit) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->unit = unit ? unit : "";
    p->total = total;
    p->t_start = p->t_last = bd_now();
    const char *force = getenv("BD_PROGRESS");
    p->active = bd_log_level() >= BD_LOG_WARN && ((force && strcmp(force, "1") == 0) || isatty(2));
}

static void show(bd_progress *p, double now, bool final) {
    char line[256];
    bd_progress_format(line, sizeof line, p->label, p->done, p->total, p->unit, now - p->t_start);
    fprintf(stderr, "\r%s: %s\033[K%s", bd_log_prefix(), line, final ? "\n" : "");
}

void bd_progress_update(bd_progress *p, uint64_t done) {
    p->done = done;
    if (!p->active) return;
    double now = bd_now();
    if (now - p->t_last < 0.25) return;
    p->t_last = now;
    show(p, now, false);
}

void bd_progress_finish(bd_progress *p) {
    if (p->active) show(p, bd_now(), true);
    p->active = false;
}
