/* scan_proto: one OTLP TracesData / ExportTraceServiceRequest protobuf message into the column
 * buffers of flat.h.
 *
 * A schema-directed walk of the protobuf wire format: every varint, length and fixed-width
 * value is bounds-checked against the enclosing message, strings are checked to be UTF-8 (as
 * upb does for proto3 `string` fields), unknown fields are skipped by wire type, and span
 * fields go straight into column buffers (with each span's promoted attribute indexes). It accepts only what it reads *exactly* as the
 * tolerant Python reader (tailscope/ingest/otlp_proto.py: upb + `_append_span`) does. Anything
 * else -- malformed or truncated wire data, groups, a known field with an unexpected wire type,
 * invalid UTF-8, a bad record (missing/long/all-zero ids, end before start, times beyond
 * int64, unknown kind or status code), doubles inside array/kvlist attribute values (orjson
 * formats those) and string-table values, a singular message field given twice (protobuf
 * would merge them) -- returns a short reason and the caller reads the message with upb,
 * which counts problems exactly. Array and kvlist values are rendered as the compact JSON
 * text the upb path writes.
 *
 * Resources and instrumentation scopes are validated here (wire format, UTF-8, bounded
 * nesting) but not decoded: their byte ranges are recorded and Python decodes the few distinct
 * ones with upb.
 */
#include "flat.h"

/* AnyValue nesting accepted inside resources and scopes (upb allows 100 levels in all). */
#define MAX_ANY_DEPTH 24

typedef struct {
    const uint8_t *base; /* start of the message (byte ranges are relative to it) */
    const char *why;     /* reason when a function returns -1 */
    Flat *f;
} Sc;

/* One decoded field: number, wire type, and its value (varint/fixed) or payload. */
typedef struct {
    uint32_t num;
    uint32_t wt;
    uint64_t v;
    const uint8_t *p;
    size_t n;
} Field;

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

/* A known field must come with its own wire type. */
#define WANT(sc, fl, type)                                                \
    do {                                                                  \
        if ((fl)->wt != (type)) FAIL((sc), "known field with another wire type"); \
    } while (0)

static inline int read_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out) {
    const uint8_t *p = *pp;
    if (p < end && !(*p & 0x80)) {
        *out = *p;
        *pp = p + 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
        if (p >= end) return -1;
        uint8_t b = *p++;
        if (i == 9 && b > 1) return -1; /* more than 64 bits */
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = v;
            *pp = p;
            return 0;
        }
    }
    return -1;
}

static inline uint64_t load64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static inline uint32_t load32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Reads the field at *pp (< end) and moves past it. */
static inline int next_field(Sc *sc, const uint8_t **pp, const uint8_t *end, Field *fl) {
    uint64_t tag;
    if (read_varint(pp, end, &tag)) FAIL(sc, "truncated or overlong tag");
    if (tag > UINT32_MAX || (tag >> 3) == 0) FAIL(sc, "bad field number");
    fl->num = (uint32_t)(tag >> 3);
    fl->wt = (uint32_t)(tag & 7);
    const uint8_t *p = *pp;
    switch (fl->wt) {
        case WT_VARINT:
            if (read_varint(pp, end, &fl->v)) FAIL(sc, "truncated varint");
            return 0;
        case WT_I64:
            if ((size_t)(end - p) < 8) FAIL(sc, "truncated fixed64");
            fl->v = load64(p);
            *pp = p + 8;
            return 0;
        case WT_I32:
            if ((size_t)(end - p) < 4) FAIL(sc, "truncated fixed32");
            fl->v = load32(p);
            *pp = p + 4;
            return 0;
        case WT_LEN: {
            uint64_t n;
            if (read_varint(pp, end, &n)) FAIL(sc, "truncated length");
            p = *pp;
            if (n > (uint64_t)(end - p)) FAIL(sc, "length beyond the message");
            fl->p = p;
            fl->n = (size_t)n;
            *pp = p + n;
            return 0;
        }
        default:
            FAIL(sc, "group or invalid wire type");
    }
}

/* Strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF), as upb checks it. */
static int utf8_ok(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!(w & 0x8080808080808080ULL)) {
                i += 8;
                continue;
            }
        }
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return 0;
        }
        if (n - i - 1 < need) return 0;
        uint8_t c1 = s[i + 1];
        if (c1 < lo || c1 > hi) return 0;
        for (size_t k = 2; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
        }
        i += need + 1;
    }
    return 1;
}

#define WANT_UTF8(sc, fl)                                               \
    do {                                                                \
        WANT((sc), (fl), WT_LEN);                                       \
        if (!utf8_ok((fl)->p, (fl)->n)) FAIL((sc), "invalid UTF-8 in a string"); \
    } while (0)

/* ------------------------------------------------------------------ validation only */

static int check_kv(Sc *sc, const uint8_t *p, const uint8_t *end, int depth);

static int check_any(Sc *sc, const uint8_t *p, const uint8_t *end, int depth) {
    if (depth > MAX_ANY_DEPTH) FAIL(sc, "attribute values nested too deep");
    Field fl;
    while (p < end) {
        TRY(next_field(sc, &p, end, &fl));
        switch (fl.num) {
            case 1: WANT_UTF8(sc, &fl); break;
            case 2: case 3: case 8: WANT(sc, &fl, WT_VARINT); break;
            case 4: WANT(sc, &fl, WT_I64); break;
            case 7: WANT(sc, &fl, WT_LEN); break;
            case 5: case 6: { /* ArrayValue / KeyValueList: repeated field 1 */
                WANT(sc, &fl, WT_LEN);
                const uint8_t *q = fl.p, *qend = fl.p + fl.n;
                Field item;
                while (q < qend) {
                    TRY(next_field(sc, &q, qend, &item));
                    if (item.num != 1) continue;
                    WANT(sc, &item, WT_LEN);
                    if (fl.num == 5) {
                        TRY(check_any(sc, item.p, item.p + item.n, depth + 1));
                    } else {
                        TRY(check_kv(sc, item.p, item.p + item.n, depth + 1));
                    }
                }
                break;
            }
            default: break;
        }
    }
    return 0;
}

static int check_kv(Sc *sc, const uint8_t *p, const uint8_t *end, int depth) {
    Field fl;
    while (p < end) {
        TRY(next_field(sc, &p, end, &fl));
        switch (fl.num) {
            case 1: WANT_UTF8(sc, &fl); break;
            case 2: WANT(sc, &fl, WT_LEN); TRY(check_any(sc, fl.p, fl.p + fl.n, depth + 1)); break;
            case 3: WANT(sc, &fl, WT_VARINT); break;
            default: break;
        }
    }
    return 0;
}

/* Resource: attributes 1, dropped_attributes_count 2, entity_refs 3 (strings 1..4). */
static int check_resource(Sc *sc, const uint8_t *p, const uint8_t *end) {
    Field fl;
    while (p < end) {
        TRY(next_field(sc, &p, end, &fl));
        switch (fl.num) {
            case 1: WANT(sc, &fl, WT_LEN); TRY(check_kv(sc, fl.p, fl.p + fl.n, 0)); break;
            case 2: WANT(sc, &fl, WT_VARINT); break;
            case 3: {
                WANT(sc, &fl, WT_LEN);
                const uint8_t *q = fl.p, *qend = fl.p + fl.n;
                Field ref;
                while (q < qend) {
                    TRY(next_field(sc, &q, qend, &ref));
                    if (ref.num >= 1 && ref.num <= 4) WANT_UTF8(sc, &ref);
                }
                break;
            }
            default: break;
        }
    }
    return 0;
}

/* InstrumentationScope: name 1, version 2, attributes 3, dropped_attributes_count 4. */
static int check_scope(Sc *sc, const uint8_t *p, const uint8_t *end) {
    Field fl;
    while (p < end) {
        TRY(next_field(sc, &p, end, &fl));
        switch (fl.num) {
            case 1: case 2: WANT_UTF8(sc, &fl); break;
            case 3: WANT(sc, &fl, WT_LEN); TRY(check_kv(sc, fl.p, fl.p + fl.n, 0)); break;
            case 4: WANT(sc, &fl, WT_VARINT); break;
            default: break;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ attributes */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with padding of s[0..n) appended to b. */
static int put_base64(Buf *b, const uint8_t *s, size_t n) {
    size_t out = (n + 2) / 3 * 4;
    if (buf_reserve(b, out)) return -1;
    char *d = b->p + b->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *d++ = B64[v >> 18];
        *d++ = B64[(v >> 12) & 63];
        *d++ = B64[(v >> 6) & 63];
        *d++ = B64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        *d++ = B64[v >> 18];
        *d++ = B64[(v >> 12) & 63];
        *d++ = '=';
        *d++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
        *d++ = B64[v >> 18];
        *d++ = B64[(v >> 12) & 63];
        *d++ = B64[(v >> 6) & 63];
        *d++ = '=';
    }
    b->len += out;
    return 0;
}

/* Decimal text of an int64, as Python's str(int) writes it. */
static int put_int(Buf *b, int64_t value) {
    char tmp[24];
    int k = 0;
    uint64_t u = value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;
    do {
        tmp[k++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (value < 0) tmp[k++] = '-';
    if (buf_reserve(b, (size_t)k)) return -1;
    for (int i = 0; i < k; i++) b->p[b->len + (size_t)i] = tmp[k - 1 - i];
    b->len += (size_t)k;
    return 0;
}

/* ------------------------------------------------------------------ array/kvlist values as JSON
 * otlp_proto.any_value_text renders them as orjson.dumps(any_value_json(value)): compact JSON,
 * keys in insertion order, strings with orjson's escapes (", \, and U+0000..U+001F; \b \t \n
 * \f \r short, the others as lowercase \u00XX; everything else verbatim). Doubles inside are
 * formatted by orjson, which this does not reproduce: they send the message to upb. */

static int json_lit(Buf *b, const char *s) { return buf_put(b, s, strlen(s)); }

static int json_string(Buf *b, const uint8_t *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    if (n > ((size_t)INT32_MAX - 2) / 6 || buf_reserve(b, n * 6 + 2)) return -1;
    char *d = b->p + b->len;
    *d++ = '"';
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c == '"' || c == '\\') {
            *d++ = '\\';
            *d++ = (char)c;
        } else if (c < 0x20) {
            *d++ = '\\';
            switch (c) {
                case '\b': *d++ = 'b'; break;
                case '\t': *d++ = 't'; break;
                case '\n': *d++ = 'n'; break;
                case '\f': *d++ = 'f'; break;
                case '\r': *d++ = 'r'; break;
                default:
                    *d++ = 'u';
                    *d++ = '0';
                    *d++ = '0';
                    *d++ = hex[c >> 4];
                    *d++ = hex[c & 15];
            }
        } else {
            *d++ = (char)c;
        }
    }
    *d++ = '"';
    b->len = (size_t)(d - b->p);
    return 0;
}

static int json_any(Sc *sc, Buf *b, const uint8_t *p, const uint8_t *end, int depth);

/* KeyValue as {"key":...,"value":{...}} (a missing value is {}). */
static int json_kv(Sc *sc, Buf *b, const uint8_t *p, const uint8_t *end, int depth) {
    Field fl;
    const uint8_t *key = NULL, *val = NULL;
    size_t key_n = 0, val_n = 0;
    while (p < end) {
        TRY(next_field(sc, &p, end, &fl));
        switch (fl.num) {
            case 1: WANT_UTF8(sc, &fl); key = fl.p; key_n = fl.n; break;
            case 2:
                WANT(sc, &fl, WT_LEN);
                if (val) FAIL(sc, "attribute value given twice");
                val = fl.p;
                val_n = fl.n;
                break;
            case 3: WANT(sc, &fl, WT_VARINT); break;
            default: break;
        }
    }
    TRY(json_lit(b, "{\"key\":"));
    TRY(json_string(b, key ? key : (const uint8_t *)"", key_n));
    TRY(json_lit(b, ",\"value\":"));
    if (val) {
        TRY(json_any(sc, b, val, val + val_n, depth + 1));
    } else {
        TRY(json_lit(b, "{}"));
    }
    return json_lit(b, "}");
}

/* ArrayValue (member 5) or KeyValueList (member 6): repeated field 1. */
static int json_list(Sc *sc, Buf *b, uint32_t member, const uint8_t *p, const uint8_t *end,
                     int depth) {
    if (depth > MAX_ANY_DEPTH) FAIL(sc, "attribute values nested too deep");
    TRY(json_lit(b, member == 5 ? "{\"arrayValue\":{\"values\":[" : "{\"kvlistValue\":{\"values\":["));
    Field fl;
    int first = 1;
    while (p < end) {
        TRY(next_field(sc, &p, end, &fl));
        if (fl.num != 1) continue;
        WANT(sc, &fl, WT_LEN);
        if (!first) TRY(json_lit(b, ","));
        first = 0;
        if (member == 5) {
            TRY(json_any(sc, b, fl.p, fl.p + fl.n, depth + 1));
        } else {
            TRY(json_kv(sc, b, fl.p, fl.p + fl.n, depth + 1));
        }
    }
    return json_lit(b, "]}}");
}

/* One AnyValue as any_value_json renders it. */
static int json_any(Sc *sc, Buf *b, const uint8_t *p, const uint8_t *end, int depth) {
    if (depth > MAX_ANY_DEPTH) FAIL(sc, "attribute values nested too deep");
    Field fl, which = {0};
    while (p < end) {
        TRY(next_field(sc, &p, end, &fl));
        if (fl.num < 1 || fl.num > 8) continue;
        if (which.num) FAIL(sc, "attribute value with two members");
        switch (fl.num) {
            case 1: WANT_UTF8(sc, &fl); break;
            case 2: case 3: WANT(sc, &fl, WT_VARINT); break;
            case 5: case 6: case 7: WANT(sc, &fl, WT_LEN); break;
            default: FAIL(sc, "double or string-table value inside an array or kvlist");
        }
        which = fl;
    }
    switch (which.num) {
        case 0: return json_lit(b, "{}");
        case 1:
            TRY(json_lit(b, "{\"stringValue\":"));
            TRY(json_string(b, which.p, which.n));
            return json_lit(b, "}");
        case 2: return json_lit(b, which.v ? "{\"boolValue\":true}" : "{\"boolValue\":false}");
        case 3:
            TRY(json_lit(b, "{\"intValue\":\""));
            TRY(put_int(b, (int64_t)which.v));
            return json_lit(b, "\"}");
        case 7:
            TRY(json_lit(b, "{\"bytesValue\":\""));
            TRY(put_base64(b, which.p, which.n));
            return json_lit(b, "\"}");
        default: return json_list(sc, b, which.num, which.p, which.p + which.n, depth + 1);
    }
}

/* Appends one attribute (KeyValue message p..end) to `pool`: the key, then the AnyValue
 * rendered as otlp_proto.any_value_text does (doubles are left to Python: dbl_idx/dbl_val).
 * `promo` (span attributes only) gets the pool index of the first attribute per promoted key. */
static int scan_kv(Sc *sc, AttrPool *pool, int32_t *promo, const uint8_t *p,
                   const uint8_t *end) {
    Field fl;
    const uint8_t *key = NULL, *val = NULL;
    size_t key_n = 0, val_n = 0;
    int have_val = 0;
    while (p < end) {
        TRY(next_field(sc, &p, end, &fl));
        switch (fl.num) {
            case 1: WANT_UTF8(sc, &fl); key = fl.p; key_n = fl.n; break;
            case 2:
                WANT(sc, &fl, WT_LEN);
                if (have_val) FAIL(sc, "attribute value given twice");
                have_val = 1;
                val = fl.p;
                val_n = fl.n;
                break;
            case 3: WANT(sc, &fl, WT_VARINT); break;
            default: break;
        }
    }
    /* the AnyValue: at most one member of the oneof */
    uint8_t tag = 0;
    Field which = {0};
    if (have_val) {
        const uint8_t *q = val, *qend = val + val_n;
        while (q < qend) {
            TRY(next_field(sc, &q, qend, &fl));
            if (fl.num < 1 || fl.num > 8) continue;
            if (tag) FAIL(sc, "attribute value with two members");
            switch (fl.num) {
                case 1: WANT_UTF8(sc, &fl); tag = 1; break;
                case 2: WANT(sc, &fl, WT_VARINT); tag = 2; break;
                case 3: WANT(sc, &fl, WT_VARINT); tag = 3; break;
                case 4: WANT(sc, &fl, WT_I64); tag = 4; break;
                case 7: WANT(sc, &fl, WT_LEN); tag = 5; break;
                case 5: WANT(sc, &fl, WT_LEN); tag = 6; break;
                case 6: WANT(sc, &fl, WT_LEN); tag = 7; break;
                default: FAIL(sc, "string-table attribute value");
            }
            which = fl;
        }
    }
    if (promo) {
        int k = promoted_index((const char *)key, key_n);
        if (k >= 0 && promo[k] < 0) promo[k] = (int32_t)pool->count;
    }
    if (str_put(&pool->key_off, &pool->key_data, key ? (const char *)key : "", key_n)) return -1;
    Buf *vd = &pool->val_data;
    switch (tag) {
        case 1: TRY(buf_put(vd, which.p, which.n)); break;
        case 2: TRY(which.v ? buf_put(vd, "true", 4) : buf_put(vd, "false", 5)); break;
        case 3: TRY(put_int(vd, (int64_t)which.v)); break;
        case 4: {
            double d;
            memcpy(&d, &which.v, sizeof d);
            BUF_PUT(&pool->dbl_idx, int64_t, pool->count);
            BUF_PUT(&pool->dbl_val, double, d);
            break;
        }
        case 5: TRY(put_base64(vd, which.p, which.n)); break;
        case 6: case 7: TRY(json_list(sc, vd, which.num, which.p, which.p + which.n, 1)); break;
        default: break;
    }
    if (vd->len > (size_t)INT32_MAX) FAIL(sc, "attribute text beyond 2 GiB");
    BUF_PUT(&pool->val_off, int32_t, (int32_t)vd->len);
    BUF_PUT(&pool->tag, uint8_t, tag);
    pool->count++;
    return 0;
}

/* ------------------------------------------------------------------ spans */


/* An id as otlp_proto._fix_id reads it: 1..size bytes, right-justified, not all zero. */
static int put_id(Sc *sc, Buf *b, const uint8_t *id, size_t n, size_t size) {
    if (!id || n == 0) FAIL(sc, "missing id");
    if (n > size) FAIL(sc, "id too long");
    if (all_zero(id, n)) FAIL(sc, "all-zero id");
    if (buf_reserve(b, size)) return -1;
    memset(b->p + b->len, 0, size - n);
    memcpy(b->p + b->len + size - n, id, n);
    b->len += size;
    return 0;
}

/* Span.Event: time_unix_nano 1, name 2, attributes 3, dropped_attributes_count 4. */
static int scan_event(Sc *sc, const uint8_t *p, const uint8_t *end) {
    Flat *f = sc->f;
    Field fl;
    uint64_t time = 0;
    const uint8_t *name = NULL;
    size_t name_n = 0;
    while (p < end) {
        TRY(next_field(sc, &p, end, &fl));
        switch (fl.num) {
            case 1: WANT(sc, &fl, WT_I64); time = fl.v; break;
            case 2: WANT_UTF8(sc, &fl); name = fl.p; name_n = fl.n; break;
            case 3: WANT(sc, &fl, WT_LEN); TRY(scan_kv(sc, &f->e, NULL, fl.p, fl.p + fl.n)); break;
            case 4: WANT(sc, &fl, WT_VARINT); break;
            default: break;
        }
    }
    if (time > (uint64_t)INT64_MAX) FAIL(sc, "event time beyond int64");
    BUF_PUT(&f->ev_time, int64_t, (int64_t)time);
    if (str_put(&f->ev_name_off, &f->ev_name_data, name ? (const char *)name : "", name_n)) {
        FAIL(sc, "event names beyond 2 GiB");
    }
    BUF_PUT(&f->ev_attr_off, int32_t, (int32_t)f->e.count);
    f->n_events++;
    return 0;
}

/* Span.Link: trace_id 1, span_id 2, trace_state 3, attributes 4, dropped 5, flags 6. */
static int scan_link(Sc *sc, const uint8_t *p, const uint8_t *end) {
    Flat *f = sc->f;
    Field fl;
    const uint8_t *tid = NULL, *sid = NULL;
    size_t tid_n = 0, sid_n = 0;
    while (p < end) {
        TRY(next_field(sc, &p, end, &fl));
        switch (fl.num) {
            case 1: WANT(sc, &fl, WT_LEN); tid = fl.p; tid_n = fl.n; break;
            case 2: WANT(sc, &fl, WT_LEN); sid = fl.p; sid_n = fl.n; break;
            case 3: WANT_UTF8(sc, &fl); break;
            case 4: WANT(sc, &fl, WT_LEN); TRY(scan_kv(sc, &f->l, NULL, fl.p, fl.p + fl.n)); break;
            case 5: WANT(sc, &fl, WT_VARINT); break;
            case 6: WANT(sc, &fl, WT_I32); break;
            default: break;
        }
    }
    TRY(put_id(sc, &f->ln_trace, tid, tid_n, 16));
    TRY(put_id(sc, &f->ln_span, sid, sid_n, 8));
    BUF_PUT(&f->ln_attr_off, int32_t, (int32_t)f->l.count);
    f->n_links++;
    return 0;
}

/* Status: message 2, code 3 (1 is reserved). */
static int scan_status(Sc *sc, const uint8_t *p, const uint8_t *end, uint64_t *code,
                       const uint8_t **msg, size_t *msg_n) {
    Field fl;
    while (p < end) {
        TRY(next_field(sc, &p, end, &fl));
        switch (fl.num) {
            case 2: WANT_UTF8(sc, &fl); *msg = fl.p; *msg_n = fl.n; break;
            case 3: WANT(sc, &fl, WT_VARINT); *code = fl.v; break;
            default: break;
        }
    }
    return 0;
}

/* Appends a nullable string: "" is null, as `x or None` reads it. */
static int put_nullable(Buf *off, Buf *data, Buf *valid, const uint8_t *s, size_t n) {
    if (str_put(off, data, s ? (const char *)s : "", n)) return -1;
    BUF_PUT(valid, uint8_t, n ? 1 : 0);
    return 0;
}

static int scan_span(Sc *sc, const uint8_t *p, const uint8_t *end, int32_t scope) {
    Flat *f = sc->f;
    Field fl;
    const uint8_t *tid = NULL, *sid = NULL, *pid = NULL, *name = NULL, *state = NULL;
    const uint8_t *msg = NULL;
    size_t tid_n = 0, sid_n = 0, pid_n = 0, name_n = 0, state_n = 0, msg_n = 0;
    uint64_t kind = 0, start = 0, stop = 0, code = 0, flags = 0;
    int have_status = 0;
    int32_t promo[N_PROMOTED];
    for (int i = 0; i < N_PROMOTED; i++) promo[i] = -1;
    while (p < end) {
        TRY(next_field(sc, &p, end, &fl));
        switch (fl.num) {
            case 1: WANT(sc, &fl, WT_LEN); tid = fl.p; tid_n = fl.n; break;
            case 2: WANT(sc, &fl, WT_LEN); sid = fl.p; sid_n = fl.n; break;
            case 3: WANT_UTF8(sc, &fl); state = fl.p; state_n = fl.n; break;
            case 4: WANT(sc, &fl, WT_LEN); pid = fl.p; pid_n = fl.n; break;
            case 5: WANT_UTF8(sc, &fl); name = fl.p; name_n = fl.n; break;
            case 6: WANT(sc, &fl, WT_VARINT); kind = fl.v; break;
            case 7: WANT(sc, &fl, WT_I64); start = fl.v; break;
            case 8: WANT(sc, &fl, WT_I64); stop = fl.v; break;
            case 9: WANT(sc, &fl, WT_LEN); TRY(scan_kv(sc, &f->a, promo, fl.p, fl.p + fl.n)); break;
            case 11: WANT(sc, &fl, WT_LEN); TRY(scan_event(sc, fl.p, fl.p + fl.n)); break;
            case 13: WANT(sc, &fl, WT_LEN); TRY(scan_link(sc, fl.p, fl.p + fl.n)); break;
            case 10: case 12: case 14: WANT(sc, &fl, WT_VARINT); break;
            case 15:
                WANT(sc, &fl, WT_LEN);
                if (have_status) FAIL(sc, "status given twice");
                have_status = 1;
                TRY(scan_status(sc, fl.p, fl.p + fl.n, &code, &msg, &msg_n));
                break;
            case 16: WANT(sc, &fl, WT_I32); flags = fl.v; break;
            default: break;
        }
    }
    if (start > (uint64_t)INT64_MAX || stop > (uint64_t)INT64_MAX) FAIL(sc, "time beyond int64");
    if (stop < start) FAIL(sc, "end before start");
    if (kind > 5) FAIL(sc, "unknown span kind");
    if (code > 2) FAIL(sc, "unknown status code");
    TRY(put_id(sc, &f->trace_id, tid, tid_n, 16));
    TRY(put_id(sc, &f->span_id, sid, sid_n, 8));
    if (pid_n > 8) FAIL(sc, "parent id too long");
    if (pid_n == 0 || all_zero(pid, pid_n)) {
        static const uint8_t zeros[8] = {0};
        TRY(buf_put(&f->parent_id, zeros, 8));
        BUF_PUT(&f->parent_valid, uint8_t, 0);
    } else {
        if (buf_reserve(&f->parent_id, 8)) return -1;
        memset(f->parent_id.p + f->parent_id.len, 0, 8 - pid_n);
        memcpy(f->parent_id.p + f->parent_id.len + 8 - pid_n, pid, pid_n);
        f->parent_id.len += 8;
        BUF_PUT(&f->parent_valid, uint8_t, 1);
    }
    if (str_put(&f->name_off, &f->name_data, name ? (const char *)name : "", name_n)) {
        FAIL(sc, "span names beyond 2 GiB");
    }
    BUF_PUT(&f->kind, int8_t, kind);
    BUF_PUT(&f->start, int64_t, start);
    BUF_PUT(&f->end, int64_t, stop);
    BUF_PUT(&f->status_code, int8_t, code);
    if (put_nullable(&f->status_msg_off, &f->status_msg_data, &f->status_msg_valid, msg, msg_n) ||
        put_nullable(&f->trace_state_off, &f->trace_state_data, &f->trace_state_valid, state,
                     state_n)) {
        FAIL(sc, "span texts beyond 2 GiB");
    }
    BUF_PUT(&f->flags, uint32_t, flags);
    BUF_PUT(&f->flags_valid, uint8_t, flags ? 1 : 0);
    BUF_PUT(&f->span_scope, int32_t, scope);
    BUF_PUT(&f->attr_off, int32_t, (int32_t)f->a.count);
    TRY(buf_put(&f->a_promo, promo, sizeof promo));
    BUF_PUT(&f->ev_off, int32_t, (int32_t)f->n_events);
    BUF_PUT(&f->ln_off, int32_t, (int32_t)f->n_links);
    f->n_spans++;
    return 0;
}

/* ------------------------------------------------------------------ containers */

/* ScopeSpans: scope 1, spans 2, schema_url 3. */
static int scan_scope_spans(Sc *sc, const uint8_t *p, const uint8_t *end, int32_t resource) {
    Flat *f = sc->f;
    int32_t index = (int32_t)f->n_scopes++;
    int64_t scope_start = -1, scope_end = -1;
    Field fl;
    while (p < end) {
        TRY(next_field(sc, &p, end, &fl));
        switch (fl.num) {
            case 1:
                WANT(sc, &fl, WT_LEN);
                if (scope_start >= 0) FAIL(sc, "scope given twice");
                TRY(check_scope(sc, fl.p, fl.p + fl.n));
                scope_start = fl.p - sc->base;
                scope_end = scope_start + (int64_t)fl.n;
                break;
            case 2: WANT(sc, &fl, WT_LEN); TRY(scan_span(sc, fl.p, fl.p + fl.n, index)); break;
            case 3: WANT_UTF8(sc, &fl); break;
            default: break;
        }
    }
    BUF_PUT(&f->scope_res, int32_t, resource);
    BUF_PUT(&f->scope_start, int64_t, scope_start);
    BUF_PUT(&f->scope_end, int64_t, scope_end);
    return 0;
}

/* ResourceSpans: resource 1, scope_spans 2, schema_url 3. */
static int scan_resource_spans(Sc *sc, const uint8_t *p, const uint8_t *end) {
    Flat *f = sc->f;
    int32_t index = (int32_t)f->n_resources++;
    int64_t res_start = -1, res_end = -1;
    Field fl;
    while (p < end) {
        TRY(next_field(sc, &p, end, &fl));
        switch (fl.num) {
            case 1:
                WANT(sc, &fl, WT_LEN);
                if (res_start >= 0) FAIL(sc, "resource given twice");
                TRY(check_resource(sc, fl.p, fl.p + fl.n));
                res_start = fl.p - sc->base;
                res_end = res_start + (int64_t)fl.n;
                break;
            case 2: WANT(sc, &fl, WT_LEN); TRY(scan_scope_spans(sc, fl.p, fl.p + fl.n, index)); break;
            case 3: WANT_UTF8(sc, &fl); break;
            default: break;
        }
    }
    BUF_PUT(&f->res_start, int64_t, res_start);
    BUF_PUT(&f->res_end, int64_t, res_end);
    return 0;
}

/* TracesData / ExportTraceServiceRequest: resource_spans 1. */
static int scan_message(Sc *sc, const uint8_t *p, const uint8_t *end) {
    Field fl;
    while (p < end) {
        TRY(next_field(sc, &p, end, &fl));
        if (fl.num == 1) {
            WANT(sc, &fl, WT_LEN);
            TRY(scan_resource_spans(sc, fl.p, fl.p + fl.n));
        }
    }
    return 0;
}

PyObject *tailscope_scan_proto(PyObject *self, PyObject *arg) {
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    if (view.len > INT32_MAX) {
        PyBuffer_Release(&view);
        return PyUnicode_FromString("message larger than 2 GiB");
    }
    Flat flat;
    Sc sc = {(const uint8_t *)view.buf, NULL, &flat};
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = flat_init(&flat);
    if (rc == 0) rc = scan_message(&sc, sc.base, sc.base + view.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    PyObject *out;
    if (rc < 0) {
        out = PyUnicode_FromString(sc.why ? sc.why : "out of memory");
    } else {
        out = flat_to_dict(&flat);
    }
    flat_free(&flat);
    return out;
}
