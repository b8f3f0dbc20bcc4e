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

bd_progress_kind bd_progress_mode(const char *env, bool tty, int level, double *every) {
    *every = BD_PROGRESS_EVERY;
    if (level < BD_LOG_WARN) return BD_PROGRESS_OFF;
    if (env && *env) {
        char *end;
        double v = strtod(env, &end);
        if (end != env && *end == 0 && v >= 0 && v <= 1e9) {
            if (v == 0) return BD_PROGRESS_OFF;
            *every = v;
            return BD_PROGRESS_PLAIN;
        }
    }
    return tty ? BD_PROGRESS_LIVE : BD_PROGRESS_PLAIN;
}

void bd_progress_start(bd_progress *p, const char *label, uint64_t total, const char *unit) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->unit = unit ? unit : "";
    p->total = total;
    p->t_start = p->t_last = bd_now();
    p->kind = bd_progress_mode(getenv("BD_PROGRESS"), isatty(2), bd_log_level(), &p->every);
    if (p->kind == BD_PROGRESS_LIVE) p->every = 0.25;
    p->active = p->kind != BD_PROGRESS_OFF;
}

static void show(bd_progress *p, double now) {
    char line[320];
    bd_progress_format(line, sizeof line, p->label, p->done, p->total, p->unit, now - p->t_start);
    if (p->kind == BD_PROGRESS_LIVE) {
        fprintf(stderr, "\r%s: %s\033[K", bd_log_prefix(), line);
        p->drawn = true;
    } else {
        fprintf(stderr, "%s: %s\n", bd_log_prefix(), line);
    }
    fflush(stderr);
}

void bd_progress_update(bd_progress *p, uint64_t done) {
    p->done = done;
    if (!p->active) return;
    double now = bd_now();
    if (now - p->t_last < p->every) return;
    p->t_last = now;
    show(p, now);
}

void bd_progress_finish(bd_progress *p) {
    if (p->active && p->drawn) fputs("\r\033[K", stderr);
    p->active = false;
    p->drawn = false;
}
