#include "bd_json.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

#include "bd_stream.h"

// Length of the valid UTF-8 sequence at s (n bytes left), or 0 if invalid.
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        min = 0x10000;
    } else
        return 0;
    if (n < len) return 0;
    unsigned cp = c & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

void bd_json_string(FILE *f, const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc((int)c, f);
            i++;
        } else if (c == '\n') {
            fputs("\\n", f);
            i++;
        } else if (c == '\t') {
            fputs("\\t", f);
            i++;
        } else if (c == '\r') {
            fputs("\\r", f);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
            i++;
        } else {
            size_t l = utf8_len(s + i, n - i);
            if (l == 0) {
                fputs("\\ufffd", f);
                i++;
            } else {
                fwrite(s + i, 1, l, f);
                i += l;
            }
        }
    }
    fputc('"', f);
}

static void json_double(FILE *f, double v, bool single) {
    if (!isfinite(v))
        fputs("null", f);
    else
        fprintf(f, single ? "%.9g" : "%.17g", v);
}

static void tensor_values(FILE *f, const bd_tensor_view *t) {
    float *tmp = malloc(t->numel > 0 ? (size_t)t->numel * sizeof(float) : 1);
    const uint8_t *p = t->data;
    fputc('[', f);
    if (t->dtype == BD_I32 || t->dtype == BD_U32) {  // exact integers, not via float
        for (int64_t i = 0; i < t->numel; i++) {
            uint32_t u = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
                         (uint32_t)p[4 * i + 3] << 24;
            if (i) fputc(',', f);
            if (t->dtype == BD_I32)
                fprintf(f, "%" PRId32, (int32_t)u);
            else
                fprintf(f, "%" PRIu32, u);
        }
    } else if (tmp) {
        bd_convert_to_f32(tmp, t->data, t->dtype, (size_t)t->numel);
        for (int64_t i = 0; i < t->numel; i++) {
            if (i) fputc(',', f);
            json_double(f, tmp[i], true);
        }
    }
    fputc(']', f);
    free(tmp);
}

static void write_tensor(FILE *f, const msgpack_object *o, bool full) {
    bd_tensor_view t;
    if (bd_obj_tensor(o, &t, NULL, 0) < 0) {  // looks like a tensor but is not valid: show raw
        fputs("{\"invalid_tensor\":true}", f);
        return;
    }
    fputs("{\"name\":", f);
    bd_json_string(f, t.name ? t.name : "", t.name_len);
    fprintf(f, ",\"dtype\":\"%s\",\"shape\":[", bd_dtype_name(t.dtype));
    for (int i = 0; i < t.ndim; i++) fprintf(f, "%s%" PRId64, i ? "," : "", t.shape[i]);
    fputc(']', f);
    if (full) {
        fputs(",\"data\":", f);
        tensor_values(f, &t);
    }
    fputc('}', f);
}

void bd_json_write(FILE *f, const msgpack_object *o, bool full) {
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: fputs("null", f); break;
    case MSGPACK_OBJECT_BOOLEAN: fputs(o->via.boolean ? "true" : "false", f); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: fprintf(f, "%" PRIu64, o->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: fprintf(f, "%" PRId64, o->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32: json_double(f, o->via.f64, true); break;
    case MSGPACK_OBJECT_FLOAT64: json_double(f, o->via.f64, false); break;
    case MSGPACK_OBJECT_STR: bd_json_string(f, o->via.str.ptr, o->via.str.size); break;
    case MSGPACK_OBJECT_BIN:
        if (full) {
            fputc('"', f);
            for (uint32_t i = 0; i < o->via.bin.size; i++) fprintf(f, "%02x", (unsigned char)o->via.bin.ptr[i]);
            fputc('"', f);
        } else {
            fprintf(f, "{\"bin\":%u}", o->via.bin.size);
        }
        break;
    case MSGPACK_OBJECT_EXT: fprintf(f, "{\"ext\":%d,\"bytes\":%u}", o->via.ext.type, o->via.ext.size); break;
    case MSGPACK_OBJECT_ARRAY:
        fputc('[', f);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i) fputc(',', f);
            bd_json_write(f, &o->via.array.ptr[i], full);
        }
        fputc(']', f);
        break;
    case MSGPACK_OBJECT_MAP:
        if (bd_obj_is_tensor(o)) {
            write_tensor(f, o, full);
            break;
        }
        fputc('{', f);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            if (i) fputc(',', f);
            if (k->type == MSGPACK_OBJECT_STR)
                bd_json_string(f, k->via.str.ptr, k->via.str.size);
            else {  // JSON keys must be strings: print the key's JSON text as a string
                char *buf = NULL;
                size_t len = 0;
                FILE *m = open_memstream(&buf, &len);
                if (m) {
                    bd_json_write(m, k, full);
                    fclose(m);
                }
                bd_json_string(f, buf ? buf : "", buf ? len : 0);
                free(buf);
            }
            fputc(':', f);
            bd_json_write(f, &o->via.map.ptr[i].val, full);
        }
        fputc('}', f);
        break;
    default: fputs("null", f);
    }
}
