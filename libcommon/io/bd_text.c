#include "bd_text.h"

#include <string.h>

long long bd_text_nul_line(const char *text, size_t n, bool json) {
    long long line = 1;
    for (size_t i = 0; i < n; i++) {
        if (text[i] == '\n') line++;
        if (text[i] == '\0') return line;
        if (!json || text[i] != '\\' || i + 1 >= n || text[i + 1] == '\n' || text[i + 1] == '\0') continue;
        if (text[i + 1] == 'u' && n - i >= 6 && memcmp(text + i + 2, "0000", 4) == 0) return line;
        i++;  // the escaped character: "\\u0000" is a backslash and "u0000"
    }
    return 0;
}
