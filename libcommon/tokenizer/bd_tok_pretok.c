// UTF-8 decoding, Unicode letter/number/space classes, and the byte-level split patterns
// (GPT-2, Qwen2, Llama 3) written out by hand as the leftmost-first regex alternation does
// them. Deviations: Unicode 14 classes (the reference regex engine may use a newer
// Unicode); a byte that is not valid UTF-8 counts as one "other" character (the reference
// cannot see such bytes, its input being a valid string).
#include <stddef.h>
#include <stdint.h>

#include "bd_tok_internal.h"
#include "bd_unicode_tables.h"

int bd_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
        min = 0x10000;
    } else
        return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

static bool is_space(uint32_t c) {  // Unicode White_Space, as regex \s
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

int bd_unicode_class(uint32_t cp) {
    if (is_space(cp)) return BD_UC_SPACE;
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return BD_UC_LETTER;
        return cp >= '0' && cp <= '9' ? BD_UC_NUMBER : BD_UC_OTHER;
    }
    size_t lo = 0, hi = sizeof bd_unicode_ranges / sizeof bd_unicode_ranges[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < bd_unicode_ranges[mid].lo)
            hi = mid;
        else if (cp > bd_unicode_ranges[mid].hi)
            lo = mid + 1;
        else
            return bd_unicode_ranges[mid].cls;
    }
    return BD_UC_OTHER;
}

// One character at byte i: its class, code point (0xFFFFFFFF for an invalid byte) and size.
typedef struct {
    int cls;
    uint32_t cp;
    size_t len;
} uchar;

static uchar char_at(const uint8_t *s, size_t n, size_t i) {
    uchar u = {BD_UC_OTHER, 0xFFFFFFFFu, 1};
    if (i >= n) {
        u.len = 0;
        u.cls = -1;
        return u;
    }  // past the end: matches no class
    uint32_t cp;
    int len = bd_utf8_decode(s + i, n - i, &cp);
    if (len > 0) {
        u.cp = cp;
        u.len = (size_t)len;
        u.cls = bd_unicode_class(cp);
    }
    return u;
}

static size_t run_of(const uint8_t *s, size_t n, size_t i, int cls) {
    for (;;) {
        uchar u = char_at(s, n, i);
        if (u.cls != cls) return i;
        i += u.len;
    }
}

static size_t run_of_other(const uint8_t *s, size_t n, size_t i) { return run_of(s, n, i, BD_UC_OTHER); }

// 's|'t|'re|'ve|'m|'ll|'d at i (s[i] == '\''); returns the end or 0.
static size_t contraction(const uint8_t *s, size_t n, size_t i, bool any_case) {
    if (i + 1 >= n) return 0;
    uint8_t a = s[i + 1], b = i + 2 < n ? s[i + 2] : 0;
    if (any_case) {
        if (a >= 'A' && a <= 'Z') a = (uint8_t)(a + 32);
        if (b >= 'A' && b <= 'Z') b = (uint8_t)(b + 32);
    }
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    return 0;
}

// The whitespace alternatives \s+(?!\S)|\s+ at i (s[i] is whitespace): a run followed by a
// non-space leaves its last character to start the next match.
static size_t space_run(const uint8_t *s, size_t n, size_t i) {
    size_t j = i, last = i;
    int count = 0;
    for (;;) {
        uchar u = char_at(s, n, j);
        if (u.cls != BD_UC_SPACE) break;
        last = j;
        j += u.len;
        count++;
    }
    if (j >= n || count == 1) return j;
    return last;
}

static size_t gpt2_next(const uint8_t *s, size_t n, size_t i) {
    if (s[i] == '\'') {
        size_t e = contraction(s, n, i, false);
        if (e) return e;
    }
    size_t j = s[i] == ' ' ? i + 1 : i;  // the optional leading space of ' ?X+'
    uchar u = char_at(s, n, j);
    if (u.cls == BD_UC_LETTER || u.cls == BD_UC_NUMBER) return run_of(s, n, j, u.cls);
    if (u.cls == BD_UC_OTHER) return run_of_other(s, n, j);
    return space_run(s, n, i);
}

static size_t qwen_next(const uint8_t *s, size_t n, size_t i, int max_digits) {
    if (s[i] == '\'') {
        size_t e = contraction(s, n, i, true);
        if (e) return e;
    }
    uchar c = char_at(s, n, i);
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (c.cls == BD_UC_LETTER) return run_of(s, n, i, BD_UC_LETTER);
    if (c.cls != BD_UC_NUMBER && s[i] != '\r' && s[i] != '\n' && char_at(s, n, i + c.len).cls == BD_UC_LETTER)
        return run_of(s, n, i + c.len, BD_UC_LETTER);
    // \p{N}{1,K}
    if (c.cls == BD_UC_NUMBER) {
        size_t j = i;
        for (int k = 0; k < max_digits; k++) {
            uchar u = char_at(s, n, j);
            if (u.cls != BD_UC_NUMBER) break;
            j += u.len;
        }
        return j;
    }
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    size_t j = s[i] == ' ' ? i + 1 : i;
    if (char_at(s, n, j).cls == BD_UC_OTHER) {
        j = run_of_other(s, n, j);
        while (j < n && (s[j] == '\r' || s[j] == '\n')) j++;
        return j;
    }
    // \s*[\r\n]+ : the whitespace run up to and including its last line break
    size_t k = i, end_nl = 0;
    for (;;) {
        uchar u = char_at(s, n, k);
        if (u.cls != BD_UC_SPACE) break;
        k += u.len;
        if (s[k - 1] == '\r' || s[k - 1] == '\n') end_nl = k;
    }
    if (end_nl) return end_nl;
    return space_run(s, n, i);
}

size_t bd_pretok_next(int style, const uint8_t *s, size_t n, size_t i) {
    switch (style) {
    case BD_PRETOK_GPT2: return gpt2_next(s, n, i);
    case BD_PRETOK_QWEN2: return qwen_next(s, n, i, 1);
    case BD_PRETOK_LLAMA3: return qwen_next(s, n, i, 3);
    default: return n;
    }
}
