// Memory plans: the list of parts, the memory available (MemAvailable and cgroup limits), the
// check with its one-line reason, and the --verbosity 2 table.
#include "bd_memplan.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bd_memplan_add(bd_memplan *p, const char *name, uint64_t bytes, const char *shrink) {
    if (bytes == 0) return;
    if (p->n == BD_MEMPLAN_MAX) {  // never silently dropped: counted in the last part
        p->part[p->n - 1].bytes += bytes;
        return;
    }
    p->part[p->n++] = (bd_mempart){name, bytes, shrink};
}

uint64_t bd_memplan_total(const bd_memplan *p) {
    uint64_t t = 0;
    for (int i = 0; i < p->n; i++) t += p->part[i].bytes;
    return t;
}

const bd_mempart *bd_memplan_largest(const bd_memplan *p, int shrinkable) {
    const bd_mempart *best = NULL;
    for (int i = 0; i < p->n; i++)
        if ((!shrinkable || p->part[i].shrink) && (!best || p->part[i].bytes > best->bytes)) best = &p->part[i];
    return best;
}

char *bd_mem_size(uint64_t bytes, char *buf, size_t size) {
    static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) {
        snprintf(buf, size, "%" PRIu64 " B", bytes);
        return buf;
    }
    double v = (double)bytes / 1024;
    int u = 0;
    while (v >= 1024 && u < 3) v /= 1024, u++;
    snprintf(buf, size, "%.1f %s", v, unit[u]);
    return buf;
}

// ---- the memory available ----

// The first line of root/path read into buf; false if it cannot be read.
static bool read_line(const char *root, const char *path, char *buf, size_t size) {
    char name[4600];
    snprintf(name, sizeof name, "%s%s", root, path);
    FILE *f = fopen(name, "r");
    if (!f) return false;
    bool ok = fgets(buf, (int)size, f) != NULL;
    fclose(f);
    return ok;
}

// The value of "key" (followed by a space or ':') in a key-value file, times mult; false if absent.
static bool read_key(const char *root, const char *path, const char *key, uint64_t mult, uint64_t *out) {
    char name[4600], line[256];
    snprintf(name, sizeof name, "%s%s", root, path);
    FILE *f = fopen(name, "r");
    if (!f) return false;
    size_t kl = strlen(key);
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && (line[kl] == ' ' || line[kl] == ':')) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(line + kl + 1 + strspn(line + kl + 1, " \t:"), &end, 10);
            if (errno == 0 && end != line + kl + 1) *out = (uint64_t)v * mult, found = true;
        }
    fclose(f);
    return found;
}

static bool read_u64(const char *root, const char *path, uint64_t *out) {
    char line[64], *end;
    if (!read_line(root, path, line, sizeof line)) return false;
    errno = 0;
    unsigned long long v = strtoull(line, &end, 10);
    if (errno || end == line) return false;  // "max" (v2: no limit) lands here
    *out = (uint64_t)v;
    return true;
}

// What the cgroup at dir (a path under root) still lets its processes take: its limit less its
// use, file pages that can be dropped excepted; UINT64_MAX when it sets no limit.
static uint64_t cgroup_room(const char *root, const char *dir, bool v2) {
    char path[4400];
    uint64_t limit, used, inactive = 0;
    snprintf(path, sizeof path, "%s/%s", dir, v2 ? "memory.max" : "memory.limit_in_bytes");
    if (!read_u64(root, path, &limit) || limit >= (uint64_t)1 << 60) return UINT64_MAX;  // v1 "unlimited": ~2^63
    snprintf(path, sizeof path, "%s/%s", dir, v2 ? "memory.current" : "memory.usage_in_bytes");
    if (!read_u64(root, path, &used)) used = 0;
    snprintf(path, sizeof path, "%s/memory.stat", dir);
    read_key(root, path, v2 ? "inactive_file" : "total_inactive_file", 1, &inactive);
    used = used > inactive ? used - inactive : 0;
    return limit > used ? limit - used : 0;
}

// The least room of the cgroup at rel (its path in /proc/self/cgroup) and its ancestors, under
// base (the hierarchy's mount point). A path that is not there (another cgroup namespace) falls
// back to the mount point itself.
static uint64_t hierarchy_room(const char *root, const char *base, const char *rel, bool v2) {
    char dir[4300], probe[4400], full[4600];
    snprintf(dir, sizeof dir, "%s%s", base, strcmp(rel, "/") ? rel : "");
    snprintf(probe, sizeof probe, "%s/memory.stat", dir);
    snprintf(full, sizeof full, "%s%s", root, probe);
    FILE *f = fopen(full, "r");
    if (f)
        fclose(f);
    else
        snprintf(dir, sizeof dir, "%s", base);
    uint64_t room = UINT64_MAX;
    size_t stop = strlen(base);
    for (;;) {
        uint64_t r = cgroup_room(root, dir, v2);
        if (r < room) room = r;
        char *slash = strrchr(dir, '/');
        if (strlen(dir) <= stop || !slash || (size_t)(slash - dir) < stop) break;
        *slash = 0;
    }
    return room;
}

uint64_t bd_mem_available_at(const char *root) {
    uint64_t avail = 0;
    if (!read_key(root, "/proc/meminfo", "MemAvailable", 1024, &avail)) avail = 0;  // kB
    uint64_t room = UINT64_MAX;
    char name[4600], line[4200];
    snprintf(name, sizeof name, "%s/proc/self/cgroup", root);
    FILE *f = fopen(name, "r");
    while (f && fgets(line, sizeof line, f)) {  // "0::/path" (v2) or "4:memory:/path" (v1)
        line[strcspn(line, "\n")] = 0;
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        *c2 = 0;
        const char *ctrl = c1 + 1, *rel = c2 + 1;
        uint64_t r = UINT64_MAX;
        if (!*ctrl && !strncmp(line, "0", 1)) {
            r = hierarchy_room(root, "/sys/fs/cgroup", rel, true);
            uint64_t u = hierarchy_room(root, "/sys/fs/cgroup/unified", rel, true);
            if (u < r) r = u;
        } else if (strstr(ctrl, "memory")) {
            r = hierarchy_room(root, "/sys/fs/cgroup/memory", rel, false);
        }
        if (r < room) room = r;
    }
    if (f) fclose(f);
    if (room != UINT64_MAX && (avail == 0 || room < avail)) avail = room ? room : 1;  // 1: a full cgroup, not "unknown"
    return avail;
}

uint64_t bd_mem_available(void) {
    const char *env = getenv("BD_MEM_AVAILABLE");
    if (env && *env) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(env, &end, 10);
        if (!errno && !*end && v > 0) return (uint64_t)v;
    }
    return bd_mem_available_at("");
}

// ---- the check and the table ----

int bd_memplan_check(const bd_memplan *p, uint64_t avail, char *why, size_t ws) {
    uint64_t total = bd_memplan_total(p);
    if (avail == 0 || total <= avail) return BD_OK;
    char t[32], a[32], l[32], s[32];
    const bd_mempart *big = bd_memplan_largest(p, 0), *small = bd_memplan_largest(p, 1);
    bd_mem_size(total, t, sizeof t), bd_mem_size(avail, a, sizeof a), bd_mem_size(big->bytes, l, sizeof l);
    if (big->shrink)
        return bd_fail(why, ws, BD_ERR_NOMEM, "needs %s (largest: %s %s, shrink with %s), %s available", t, big->name,
                       l, big->shrink, a);
    if (small)
        return bd_fail(why, ws, BD_ERR_NOMEM, "needs %s (largest: %s %s; next: %s %s, shrink with %s), %s available", t,
                       big->name, l, small->name, bd_mem_size(small->bytes, s, sizeof s), small->shrink, a);
    return bd_fail(why, ws, BD_ERR_NOMEM, "needs %s (largest: %s %s), %s available", t, big->name, l, a);
}

char *bd_memplan_format(const bd_memplan *p, uint64_t avail, char *buf, size_t size) {
    size_t at = 0;
    char s[32];
#define PUT(...)                                                                 \
    do {                                                                         \
        if (at < size) at += (size_t)snprintf(buf + at, size - at, __VA_ARGS__); \
    } while (0)
    if (size) buf[0] = 0;
    PUT("memory plan:\n");
    for (int i = 0; i < p->n; i++) {
        const bd_mempart *q = &p->part[i];
        PUT("  %-24s %12s", q->name, bd_mem_size(q->bytes, s, sizeof s));
        if (q->shrink) PUT("  (%s)", q->shrink);
        PUT("\n");
    }
    PUT("  %-24s %12s\n", "total", bd_mem_size(bd_memplan_total(p), s, sizeof s));
    PUT("  %-24s %12s\n", "available", avail ? bd_mem_size(avail, s, sizeof s) : "unknown");
#undef PUT
    return buf;
}
