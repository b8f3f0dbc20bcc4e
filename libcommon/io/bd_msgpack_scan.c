#include "bd_msgpack_scan.h"

void bd_msgpack_scan_init(bd_msgpack_scan *s, size_t start) {
    s->pos = start;
    s->depth = 0;
    s->need[0] = 1;
}

static uint64_t be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

int bd_msgpack_scan_step(bd_msgpack_scan *s, const uint8_t *buf, size_t len) {
    while (s->depth > 0 || s->need[0] > 0) {
        if (s->pos >= len) return 0;
        const uint8_t *p = buf + s->pos;
        size_t avail = len - s->pos;
        uint8_t b = p[0];
        uint64_t head = 1, body = 0, children = 0;
        int lenbytes = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
        } else if (b <= 0x8f) {
            children = 2u * (b & 0x0f);
        } else if (b <= 0x9f) {
            children = b & 0x0f;
        } else if (b <= 0xbf) {
            body = b & 0x1f;
        } else
            switch (b) {
            case 0xc4:
            case 0xd9: lenbytes = 1; break;  // bin8, str8
            case 0xc5:
            case 0xda: lenbytes = 2; break;  // bin16, str16
            case 0xc6:
            case 0xdb: lenbytes = 4; break;  // bin32, str32
            case 0xc7:
                lenbytes = 1;
                head = 1;
                body = 1;
                break;  // ext8: + type byte
            case 0xc8:
                lenbytes = 2;
                body = 1;
                break;
            case 0xc9:
                lenbytes = 4;
                body = 1;
                break;
            case 0xca: body = 4; break;
            case 0xcb: body = 8; break;
            case 0xcc:
            case 0xd0: body = 1; break;
            case 0xcd:
            case 0xd1: body = 2; break;
            case 0xce:
            case 0xd2: body = 4; break;
            case 0xcf:
            case 0xd3: body = 8; break;
            case 0xd4: body = 2; break;
            case 0xd5: body = 3; break;
            case 0xd6: body = 5; break;
            case 0xd7: body = 9; break;
            case 0xd8: body = 17; break;
            case 0xdc:
            case 0xde: lenbytes = 2; break;
            case 0xdd:
            case 0xdf: lenbytes = 4; break;
            default: return -1;  // 0xc1 is never used
            }
        if (avail < head + (uint64_t)lenbytes) return 0;
        if (lenbytes) {
            uint64_t n = be(p + 1, lenbytes);
            head += (uint64_t)lenbytes;
            if (b == 0xdc || b == 0xdd)
                children = n;
            else if (b == 0xde || b == 0xdf)
                children = 2 * n;
            else
                body += n;
        }
        if (avail < head + body) return 0;
        s->pos += head + body;
        s->need[s->depth]--;
        if (children > 0) {
            if (s->depth == BD_SCAN_MAX_DEPTH) return -1;
            s->need[++s->depth] = children;
        }
        while (s->depth > 0 && s->need[s->depth] == 0) s->depth--;
    }
    return 1;
}
