#include "bd_log.h"

#include <stdarg.h>
#include <stdio.h>

static int log_level = BD_LOG_WARN;
static const char *log_prefix = "bd";

void bd_log_set_level(int level) { log_level = level; }
int bd_log_level(void) { return log_level; }
void bd_log_set_prefix(const char *prefix) { log_prefix = prefix ? prefix : "bd"; }
const char *bd_log_prefix(void) { return log_prefix; }

void bd_log(int level, const char *fmt, ...) {
    if (level > log_level) return;
    static const char *names[] = {"error", "warning", "info", "debug"};
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", log_prefix);
    if (level != BD_LOG_INFO) fprintf(stderr, "%s: ", names[level < 0 ? 0 : level > 3 ? 3 : level]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
