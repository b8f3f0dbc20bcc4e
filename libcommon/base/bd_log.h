// Logging: the one place the library talks to people. Always stderr, never stdout.
#ifndef BD_LOG_H
#define BD_LOG_H

enum { BD_LOG_ERROR = 0, BD_LOG_WARN = 1, BD_LOG_INFO = 2, BD_LOG_DEBUG = 3 };

// Messages above this level are dropped. Default BD_LOG_WARN; tools set it from --verbosity.
void bd_log_set_level(int level);
int bd_log_level(void);
// Prefix for every line, normally the tool name ("bd-cat").
void bd_log_set_prefix(const char *prefix);
const char *bd_log_prefix(void);

void bd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
