/* scan_json: one block of OTLP/JSON Lines (whole lines) into the column buffers of flat.h.
 *
 * A schema-directed, strict JSON reader: it walks each line once, validating JSON syntax as it
 * goes (strings incl. escapes and UTF-8, numbers per RFC 8259, nesting), and writes span fields
 * straight into column buffers. It accepts only what it can read *exactly* as the tolerant
 * Python reader (tailscope/ingest/otlp_json.py) does: spec-shaped lines with 32/16-digit hex
 * ids, integer enums, int64s as digit strings or integers, and string/bool/int/double/bytes
 * attribute values. Anything else -- base64 ids, enum names, snake_case fields, arrayValue and
 * kvlistValue, "NaN" doubles, duplicate fields, metric or log lines, bad records, invalid JSON
 * -- makes the whole block fall back to the tolerant reader, which counts problems exactly.
 * Unknown camelCase fields are skipped (after validating them), as the tolerant reader ignores
 * them. Scopes and resources are not decoded here: their byte ranges are recorded and Python
 * decodes the few distinct ones.
 */
#include "flat.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

#define MAX_DEPTH 64

typedef struct {
    const unsigned char *p;    /* cursor */
    const unsigned char *end;  /* end of the current line */
    const unsigned char *base; /* start of the block (for byte ranges) */
    const char *why;           /* reason when a function returns -1 */
    Flat *f;
    Buf esc;                   /* unescaped text of the last string with escapes */
    Buf key_tmp, val_tmp, name_tmp, msg_tmp, ts_tmp, ev_name_tmp;
    int32_t promo[N_PROMOTED]; /* the current span's first promoted attributes */
} Sc;

typedef struct {
    const char *s;
    size_t n;
} Str;

#define OOM(sc, expr)                                  \
    do {                                               \
        if ((expr) < 0) FAIL((sc), "out of memory");   \
    } while (0)

static const signed char HEX[256] = {
    ['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7, ['7'] = 8,
    ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15,
    ['f'] = 16, ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};  /* value + 1; 0 means "not a hex digit" */

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

static inline uint64_t load64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Non-zero when any byte of v is '"', '\\', a control character or non-ASCII (exact as a
 * yes/no answer: these bit tricks have no false negatives and no false positives overall). */
static inline uint64_t swar_special(uint64_t v) {
    uint64_t quote = v ^ (ONES * '"'), slash = v ^ (ONES * '\\');
    uint64_t zero_quote = (quote - ONES) & ~quote;
    uint64_t zero_slash = (slash - ONES) & ~slash;
    uint64_t below_space = (v - ONES * 0x20) & ~v;
    return (zero_quote | zero_slash | below_space | v) & HIGHS;
}

/* 1 for bytes that end the plain run of a string: '"', '\\', control, non-ASCII. */
static unsigned char STR_STOP[256];
/* 1 for JSON whitespace. */
static unsigned char IS_WS[256];

static void init_tables(void) {
    for (int c = 0; c < 256; c++) {
        STR_STOP[c] = (unsigned char)(c == '"' || c == '\\' || c < 0x20 || c >= 0x80);
        IS_WS[c] = (unsigned char)(c == ' ' || c == '\t' || c == '\r' || c == '\n');
    }
}

static inline void skip_ws(Sc *sc) {
    while (sc->p < sc->end && IS_WS[*sc->p]) sc->p++;
}

static inline int expect(Sc *sc, unsigned char c) {
    skip_ws(sc);
    if (sc->p >= sc->end || *sc->p != c) FAIL(sc, "unexpected character");
    sc->p++;
    return 0;
}

/* Validates one UTF-8 sequence starting at p (p[0] >= 0x80); returns its length or 0. */
static inline size_t utf8_len(const unsigned char *p, const unsigned char *end) {
    unsigned char c = p[0];
    if (c >= 0xC2 && c <= 0xDF) {
        if (end - p >= 2 && (p[1] & 0xC0) == 0x80) return 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        if (end - p >= 3 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80) {
            if (c == 0xE0 && p[1] < 0xA0) return 0;  /* overlong */
            if (c == 0xED && p[1] >= 0xA0) return 0; /* surrogate */
            return 3;
        }
    } else if (c >= 0xF0 && c <= 0xF4) {
        if (end - p >= 4 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80 &&
            (p[3] & 0xC0) == 0x80) {
            if (c == 0xF0 && p[1] < 0x90) return 0; /* overlong */
            if (c == 0xF4 && p[1] >= 0x90) return 0; /* > U+10FFFF */
            return 4;
        }
    }
    return 0;
}

static inline int put_utf8(Buf *b, uint32_t cp) {
    unsigned char out[4];
    size_t n;
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        out[0] = (unsigned char)(0xF0 | (cp >> 18));
        out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return buf_put(b, out, n);
}

static inline int hex4(const unsigned char *p, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int d = HEX[p[i]];
        if (!d) return -1;
        v = (v << 4) | (uint32_t)(d - 1);
    }
    *out = v;
    return 0;
}

/* Reads a string (cursor on the opening quote). The text is left in *out: a view of the input
 * when it has no escapes, else of sc->esc (valid until the next string with escapes). */
static int parse_string(Sc *sc, Str *out) {
    skip_ws(sc);
    if (sc->p >= sc->end || *sc->p != '"') FAIL(sc, "expected a string");
    const unsigned char *p = ++sc->p;
    const unsigned char *end = sc->end;
    /* fast scan of plain ASCII, eight bytes at a time while none of them needs a look */
    while (end - p >= 8 && !swar_special(load64(p))) p += 8;
    while (p < end && !STR_STOP[*p]) p++;
    if (p < end && *p == '"') {
        out->s = (const char *)sc->p;
        out->n = (size_t)(p - sc->p);
        sc->p = p + 1;
        return 0;
    }
    /* general case: validate UTF-8, decode escapes into esc */
    int escaped = 0;
    Buf *b = &sc->esc;
    b->len = 0;
    const unsigned char *run = sc->p;
    while (1) {
        if (p >= end) FAIL(sc, "unterminated string");
        unsigned char c = *p;
        if (c == '"') break;
        if (c < 0x20) FAIL(sc, "control character in string");
        if (c < 0x80 && c != '\\') {
            p++;
            continue;
        }
        if (c >= 0x80) {
            size_t n = utf8_len(p, end);
            if (!n) FAIL(sc, "invalid UTF-8");
            p += n;
            continue;
        }
        /* backslash */
        if (!escaped) {
            escaped = 1;
        }
        OOM(sc, buf_put(b, run, (size_t)(p - run)));
        if (end - p < 2) FAIL(sc, "bad escape");
        unsigned char e = p[1];
        p += 2;
        char lit = 0;
        switch (e) {
            case '"': lit = '"'; break;
            case '\\': lit = '\\'; break;
            case '/': lit = '/'; break;
            case 'b': lit = '\b'; break;
            case 'f': lit = '\f'; break;
            case 'n': lit = '\n'; break;
            case 'r': lit = '\r'; break;
            case 't': lit = '\t'; break;
            case 'u': {
                uint32_t cp;
                if (end - p < 4 || hex4(p, &cp)) FAIL(sc, "bad \\u escape");
                p += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    uint32_t lo;
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) ||
                        lo < 0xDC00 || lo > 0xDFFF)
                        FAIL(sc, "lone surrogate");
                    p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    FAIL(sc, "lone surrogate");
                }
                OOM(sc, put_utf8(b, cp));
                run = p;
                continue;
            }
            default:
                FAIL(sc, "bad escape");
        }
        OOM(sc, buf_put(b, &lit, 1));
        run = p;
    }
    if (escaped) {
        OOM(sc, buf_put(b, run, (size_t)(p - run)));
        out->s = b->p ? b->p : "";
        out->n = b->len;
    } else {
        out->s = (const char *)sc->p;
        out->n = (size_t)(p - sc->p);
    }
    sc->p = p + 1;
    return 0;
}

/* Validates a JSON number at the cursor; sets its text and whether it is a plain integer. */
static int parse_number(Sc *sc, Str *out, int *is_int) {
    skip_ws(sc);
    const unsigned char *p = sc->p, *end = sc->end, *start = p;
    if (p < end && *p == '-') p++;
    if (p >= end) FAIL(sc, "bad number");
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') p++;
    } else {
        FAIL(sc, "bad number");
    }
    *is_int = 1;
    if (p < end && *p == '.') {
        *is_int = 0;
        p++;
        if (p >= end || *p < '0' || *p > '9') FAIL(sc, "bad number");
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        *is_int = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || *p < '0' || *p > '9') FAIL(sc, "bad number");
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    out->s = (const char *)start;
    out->n = (size_t)(p - start);
    sc->p = p;
    return 0;
}

static int literal(Sc *sc, const char *word, size_t n) {
    if ((size_t)(sc->end - sc->p) < n || memcmp(sc->p, word, n)) FAIL(sc, "bad literal");
    sc->p += n;
    return 0;
}

/* Validates and skips any JSON value. */
static int skip_value(Sc *sc, int depth) {
    if (depth > MAX_DEPTH) FAIL(sc, "nested too deeply");
    skip_ws(sc);
    if (sc->p >= sc->end) FAIL(sc, "truncated");
    Str tmp;
    int is_int;
    switch (*sc->p) {
        case '"':
            return parse_string(sc, &tmp);
        case '{':
            sc->p++;
            skip_ws(sc);
            if (sc->p < sc->end && *sc->p == '}') {
                sc->p++;
                return 0;
            }
            while (1) {
                TRY(parse_string(sc, &tmp));
                TRY(expect(sc, ':'));
                TRY(skip_value(sc, depth + 1));
                skip_ws(sc);
                if (sc->p < sc->end && *sc->p == ',') {
                    sc->p++;
                    continue;
                }
                return expect(sc, '}');
            }
        case '[':
            sc->p++;
            skip_ws(sc);
            if (sc->p < sc->end && *sc->p == ']') {
                sc->p++;
                return 0;
            }
            while (1) {
                TRY(skip_value(sc, depth + 1));
                skip_ws(sc);
                if (sc->p < sc->end && *sc->p == ',') {
                    sc->p++;
                    continue;
                }
                return expect(sc, ']');
            }
        case 't':
            return literal(sc, "true", 4);
        case 'f':
            return literal(sc, "false", 5);
        case 'n':
            return literal(sc, "null", 4);
        default:
            return parse_number(sc, &tmp, &is_int);
    }
}

/* Object iteration: call with the cursor before '{'. obj_next returns 1 and sets *key for
 * each member (cursor then at the value), 0 at the closing brace, -1 on error. */
static int obj_open(Sc *sc, int *first) {
    TRY(expect(sc, '{'));
    *first = 1;
    return 0;
}

static int obj_next(Sc *sc, int *first, Str *key) {
    skip_ws(sc);
    if (sc->p >= sc->end) FAIL(sc, "truncated object");
    if (*first) {
        *first = 0;
        if (*sc->p == '}') {
            sc->p++;
            return 0;
        }
    } else {
        if (*sc->p == '}') {
            sc->p++;
            return 0;
        }
        if (*sc->p != ',') FAIL(sc, "expected , or }");
        sc->p++;
    }
    TRY(parse_string(sc, key));
    TRY(expect(sc, ':'));
    return 1;
}

/* Array iteration: arr_open then arr_next (1: cursor at an element, 0: closed). A JSON null
 * instead of the array reads as empty when allow_null. */
static int arr_open(Sc *sc, int *first, int allow_null) {
    skip_ws(sc);
    if (allow_null && sc->p < sc->end && *sc->p == 'n') {
        TRY(literal(sc, "null", 4));
        *first = -1;
        return 0;
    }
    TRY(expect(sc, '['));
    *first = 1;
    return 0;
}

static int arr_next(Sc *sc, int *first) {
    if (*first == -1) return 0;
    skip_ws(sc);
    if (sc->p >= sc->end) FAIL(sc, "truncated array");
    if (*first) {
        *first = 0;
        if (*sc->p == ']') {
            sc->p++;
            return 0;
        }
        return 1;
    }
    if (*sc->p == ']') {
        sc->p++;
        return 0;
    }
    if (*sc->p != ',') FAIL(sc, "expected , or ]");
    sc->p++;
    return 1;
}

static inline int key_is(const Str *k, const char *lit, size_t n) {
    return k->n == n && memcmp(k->s, lit, n) == 0;
}
#define KEY(k, lit) key_is((k), lit, sizeof(lit) - 1)

/* snake_case spellings are read by the tolerant path only. */
static inline int has_underscore(const Str *k) { return memchr(k->s, '_', k->n) != NULL; }

static inline int seen(Sc *sc, unsigned *mask, unsigned bit) {
    if (*mask & bit) {
        sc->why = "repeated field";
        return -1;
    }
    *mask |= bit;
    return 0;
}

/* Skips the value of a member this reader does not use; snake_case keys are refused. */
static int skip_member(Sc *sc, const Str *key) {
    if (has_underscore(key)) FAIL(sc, "snake_case field");
    return skip_value(sc, 1);
}

/* Hex id of exactly 2 * size digits into out. */
static int hex_id(Sc *sc, unsigned char *out, size_t size) {
    Str t;
    TRY(parse_string(sc, &t));
    if (t.n != 2 * size) FAIL(sc, "id length");
    for (size_t i = 0; i < size; i++) {
        int hi = HEX[(unsigned char)t.s[2 * i]], lo = HEX[(unsigned char)t.s[2 * i + 1]];
        if (!hi || !lo) FAIL(sc, "id not hex");
        out[i] = (unsigned char)(((hi - 1) << 4) | (lo - 1));
    }
    return 0;
}


/* Digits only, value <= max. */
static int digits_value(Sc *sc, const char *s, size_t n, uint64_t max, uint64_t *out) {
    if (n == 0 || n > 20) FAIL(sc, "bad integer");
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9) FAIL(sc, "bad integer");
        if (v > (UINT64_MAX - d) / 10) FAIL(sc, "integer out of range");
        v = v * 10 + d;
    }
    if (v > max) FAIL(sc, "integer out of range");
    *out = v;
    return 0;
}

/* A non-negative integer given as a JSON integer or a string of digits. */
static int uint_field(Sc *sc, uint64_t max, int allow_string, uint64_t *out) {
    skip_ws(sc);
    if (sc->p >= sc->end) FAIL(sc, "truncated");
    Str t;
    if (*sc->p == '"') {
        if (!allow_string) FAIL(sc, "enum or flags as a string");
        TRY(parse_string(sc, &t));
    } else {
        int is_int;
        TRY(parse_number(sc, &t, &is_int));
        if (!is_int) FAIL(sc, "not an integer");
    }
    return digits_value(sc, t.s, t.n, max, out);
}

/* Canonical decimal text of an integer given as digits (optionally negative). */
static int int_text(Sc *sc, const char *s, size_t n, Buf *out) {
    int neg = 0;
    if (n && s[0] == '-') {
        neg = 1;
        s++;
        n--;
    }
    if (n == 0) FAIL(sc, "bad integer");
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') FAIL(sc, "bad integer");
    while (n > 1 && s[0] == '0') {
        s++;
        n--;
    }
    out->len = 0;
    if (neg && !(n == 1 && s[0] == '0')) OOM(sc, buf_put(out, "-", 1));
    OOM(sc, buf_put(out, s, n));
    return 0;
}

/* A JSON number (cursor on it) read as Python's float() of orjson's value would be. */
static int double_value(Sc *sc, double *out) {
    Str t;
    int is_int;
    TRY(parse_number(sc, &t, &is_int));
    /* orjson reads at most 64-bit integers; longer ones fail the line there */
    if (t.n > 64 || (is_int && t.n > 18)) FAIL(sc, "double text");
    char tmp[72];
    memcpy(tmp, t.s, t.n);
    tmp[t.n] = 0;
    errno = 0;
    char *stop;
    double v = strtod(tmp, &stop);
    /* ERANGE with a finite non-zero result is a (correctly rounded) subnormal */
    if (stop != tmp + t.n || !isfinite(v) || (errno && v == 0)) FAIL(sc, "double out of range");
    if (is_int && v == 0) v = 0.0; /* orjson reads "-0" as the integer 0 */
    *out = v;
    return 0;
}

/* One AnyValue object into (tag, text) -- text in sc->val_tmp; doubles into *dbl. */
static int any_value(Sc *sc, uint8_t *tag, double *dbl) {
    int first;
    Str key, t;
    int n_values = 0;
    *tag = 0;
    sc->val_tmp.len = 0;
    TRY(obj_open(sc, &first));
    int r;
    while ((r = obj_next(sc, &first, &key)) == 1) {
        if (++n_values > 1) FAIL(sc, "several values");
        skip_ws(sc);
        if (sc->p >= sc->end) FAIL(sc, "truncated");
        /* decide on the key first: an escaped key shares sc->esc with the value */
        int is_string = KEY(&key, "stringValue");
        if (is_string || KEY(&key, "bytesValue")) {
            *tag = is_string ? 1 : 5;
            TRY(parse_string(sc, &t));
            OOM(sc, buf_put(&sc->val_tmp, t.s, t.n));
        } else if (KEY(&key, "boolValue")) {
            if (*sc->p == 't') {
                TRY(literal(sc, "true", 4));
                OOM(sc, buf_put(&sc->val_tmp, "true", 4));
            } else {
                TRY(literal(sc, "false", 5));
                OOM(sc, buf_put(&sc->val_tmp, "false", 5));
            }
            *tag = 2;
        } else if (KEY(&key, "intValue")) {
            if (*sc->p == '"') {
                TRY(parse_string(sc, &t));
            } else {
                int is_int;
                TRY(parse_number(sc, &t, &is_int));
                /* orjson reads at most 64-bit integers; longer ones fail the line there */
                if (!is_int || t.n > 18) FAIL(sc, "intValue number");
            }
            TRY(int_text(sc, t.s, t.n, &sc->val_tmp));
            *tag = 3;
        } else if (KEY(&key, "doubleValue")) {
            if (*sc->p == '"') FAIL(sc, "double as a string");
            TRY(double_value(sc, dbl));
            *tag = 4;
        } else {
            FAIL(sc, "unsupported value kind");
        }
    }
    return r;
}

static int attr_append(Sc *sc, AttrPool *pool, const char *key, size_t key_len, uint8_t tag,
                       const char *text, size_t text_len, double dbl) {
    if (tag == 4) {
        BUF_PUT(&pool->dbl_idx, int64_t, pool->count);
        BUF_PUT(&pool->dbl_val, double, dbl);
        text_len = 0;
    }
    if (pool == &sc->f->a) {
        int k = promoted_index(key_len ? key : "", key_len);
        if (k >= 0 && sc->promo[k] < 0) sc->promo[k] = (int32_t)pool->count;
    }
    OOM(sc, str_put(&pool->key_off, &pool->key_data, key, key_len));
    OOM(sc, str_put(&pool->val_off, &pool->val_data, text, text_len));
    BUF_PUT(&pool->tag, uint8_t, tag);
    pool->count++;
    return 0;
}

/* End of a string without escapes or non-ASCII (p after the opening quote): the closing
 * quote, or NULL when the string needs the general reader. */
static inline const unsigned char *plain_string_end(const unsigned char *p,
                                                    const unsigned char *end) {
    while (end - p >= 8 && !swar_special(load64(p))) p += 8;
    while (p < end && !STR_STOP[*p]) p++;
    return (p < end && *p == '"') ? p : NULL;
}

#define HAS(p, end, lit) ((size_t)((end) - (p)) >= sizeof(lit) - 1 && !memcmp((p), lit, sizeof(lit) - 1))

/* The common compact shape {"key":"k","value":{"<kind>Value":v}} read in one pass.
 * 1: read and appended; 0: not that shape (cursor unchanged, use the general reader);
 * -1: invalid (the general reader would refuse it too). */
static int attr_fast(Sc *sc, AttrPool *pool) {
    const unsigned char *p = sc->p, *end = sc->end;
    if (!HAS(p, end, "{\"key\":\"")) return 0;
    p += 8;
    const unsigned char *k0 = p, *k1 = plain_string_end(p, end);
    if (!k1) return 0;
    p = k1 + 1;
    if (!HAS(p, end, ",\"value\":{\"")) return 0;
    p += 11;
    uint8_t tag;
    if (HAS(p, end, "stringValue\":\"")) {
        p += 14;
        tag = 1;
    } else if (HAS(p, end, "intValue\":\"")) {
        p += 11;
        tag = 3;
    } else if (HAS(p, end, "boolValue\":true}}")) {
        sc->p = p + 17;
        return attr_append(sc, pool, (const char *)k0, (size_t)(k1 - k0), 2, "true", 4, 0) < 0
                   ? -1 : 1;
    } else if (HAS(p, end, "boolValue\":false}}")) {
        sc->p = p + 18;
        return attr_append(sc, pool, (const char *)k0, (size_t)(k1 - k0), 2, "false", 5, 0) < 0
                   ? -1 : 1;
    } else if (HAS(p, end, "doubleValue\":") && end - p > 13 && p[13] != '"') {
        const unsigned char *saved = sc->p;
        double dbl;
        sc->p = p + 13;
        TRY(double_value(sc, &dbl));
        if (!HAS(sc->p, end, "}}")) {
            sc->p = saved;
            return 0;
        }
        sc->p += 2;
        return attr_append(sc, pool, (const char *)k0, (size_t)(k1 - k0), 4, NULL, 0, dbl) < 0
                   ? -1 : 1;
    } else if (HAS(p, end, "bytesValue\":\"")) {
        p += 13;
        tag = 5;
    } else {
        return 0;
    }
    const unsigned char *v0 = p, *v1 = plain_string_end(p, end);
    if (!v1 || !HAS(v1 + 1, end, "}}")) return 0;
    const char *text = (const char *)v0;
    size_t text_len = (size_t)(v1 - v0);
    if (tag == 3) {
        TRY(int_text(sc, text, text_len, &sc->val_tmp));
        text = sc->val_tmp.p;
        text_len = sc->val_tmp.len;
    }
    sc->p = v1 + 3;
    return attr_append(sc, pool, (const char *)k0, (size_t)(k1 - k0), tag, text, text_len, 0) < 0
               ? -1 : 1;
}

/* One attribute list (cursor at the array or null) appended to pool. */
static int attributes(Sc *sc, AttrPool *pool) {
    int afirst, r;
    TRY(arr_open(sc, &afirst, 1));
    while ((r = arr_next(sc, &afirst)) == 1) {
        skip_ws(sc);
        int fast = attr_fast(sc, pool);
        TRY(fast);
        if (fast) continue;
        int first;
        unsigned mask = 0;
        uint8_t tag = 0;
        double dbl = 0;
        Str key;
        sc->key_tmp.len = 0;
        sc->val_tmp.len = 0;
        TRY(obj_open(sc, &first));
        int m;
        while ((m = obj_next(sc, &first, &key)) == 1) {
            if (KEY(&key, "key")) {
                Str t;
                TRY(seen(sc, &mask, 1));
                TRY(parse_string(sc, &t));
                sc->key_tmp.len = 0;
                OOM(sc, buf_put(&sc->key_tmp, t.s, t.n));
            } else if (KEY(&key, "value")) {
                TRY(seen(sc, &mask, 2));
                TRY(any_value(sc, &tag, &dbl));
            } else {
                TRY(skip_member(sc, &key));
            }
        }
        TRY(m);
        TRY(attr_append(sc, pool, sc->key_tmp.p, sc->key_tmp.len, tag, sc->val_tmp.p,
                        sc->val_tmp.len, dbl));
    }
    return r;
}

static int time_field(Sc *sc, int64_t *out) {
    uint64_t v;
    TRY(uint_field(sc, (uint64_t)INT64_MAX, 1, &v));
    *out = (int64_t)v;
    return 0;
}

static int span_event(Sc *sc) {
    Flat *f = sc->f;
    int first, r;
    unsigned mask = 0;
    int64_t when = 0;
    Str key, t;
    sc->ev_name_tmp.len = 0;
    TRY(obj_open(sc, &first));
    while ((r = obj_next(sc, &first, &key)) == 1) {
        if (KEY(&key, "timeUnixNano")) {
            TRY(seen(sc, &mask, 1));
            TRY(time_field(sc, &when));
        } else if (KEY(&key, "name")) {
            TRY(seen(sc, &mask, 2));
            TRY(parse_string(sc, &t));
            sc->ev_name_tmp.len = 0;
            OOM(sc, buf_put(&sc->ev_name_tmp, t.s, t.n));
        } else if (KEY(&key, "attributes")) {
            TRY(seen(sc, &mask, 4));
            TRY(attributes(sc, &f->e));
        } else {
            TRY(skip_member(sc, &key));
        }
    }
    TRY(r);
    BUF_PUT(&f->ev_time, int64_t, when);
    OOM(sc, str_put(&f->ev_name_off, &f->ev_name_data, sc->ev_name_tmp.p, sc->ev_name_tmp.len));
    BUF_PUT(&f->ev_attr_off, int32_t, (int32_t)f->e.count);
    f->n_events++;
    return 0;
}

static int span_link(Sc *sc) {
    Flat *f = sc->f;
    int first, r;
    unsigned mask = 0;
    unsigned char trace[16], span[8];
    Str key;
    TRY(obj_open(sc, &first));
    while ((r = obj_next(sc, &first, &key)) == 1) {
        if (KEY(&key, "traceId")) {
            TRY(seen(sc, &mask, 1));
            TRY(hex_id(sc, trace, 16));
        } else if (KEY(&key, "spanId")) {
            TRY(seen(sc, &mask, 2));
            TRY(hex_id(sc, span, 8));
        } else if (KEY(&key, "attributes")) {
            TRY(seen(sc, &mask, 4));
            TRY(attributes(sc, &f->l));
        } else {
            TRY(skip_member(sc, &key));
        }
    }
    TRY(r);
    if ((mask & 3) != 3) FAIL(sc, "link without ids");
    OOM(sc, buf_put(&f->ln_trace, trace, 16));
    OOM(sc, buf_put(&f->ln_span, span, 8));
    BUF_PUT(&f->ln_attr_off, int32_t, (int32_t)f->l.count);
    f->n_links++;
    return 0;
}

static int status(Sc *sc, int8_t *code, int *has_msg) {
    int first, r;
    unsigned mask = 0;
    Str key, t;
    skip_ws(sc);
    TRY(obj_open(sc, &first));
    while ((r = obj_next(sc, &first, &key)) == 1) {
        if (KEY(&key, "code")) {
            uint64_t v;
            TRY(seen(sc, &mask, 1));
            TRY(uint_field(sc, 2, 0, &v));
            *code = (int8_t)v;
        } else if (KEY(&key, "message")) {
            TRY(seen(sc, &mask, 2));
            TRY(parse_string(sc, &t));
            sc->msg_tmp.len = 0;
            OOM(sc, buf_put(&sc->msg_tmp, t.s, t.n));
            *has_msg = t.n > 0;
        } else {
            TRY(skip_member(sc, &key));
        }
    }
    return r;
}

enum {
    S_TRACE = 1 << 0, S_SPAN = 1 << 1, S_PARENT = 1 << 2, S_NAME = 1 << 3, S_KIND = 1 << 4,
    S_START = 1 << 5, S_END = 1 << 6, S_ATTRS = 1 << 7, S_EVENTS = 1 << 8, S_LINKS = 1 << 9,
    S_STATUS = 1 << 10, S_STATE = 1 << 11, S_FLAGS = 1 << 12,
};

static int span(Sc *sc, int32_t scope_index) {
    Flat *f = sc->f;
    int first, r;
    unsigned mask = 0;
    unsigned char trace[16], sid[8], parent[8] = {0};
    int parent_valid = 0, has_msg = 0, has_state = 0;
    int64_t start = 0, end = 0;
    uint64_t kind = 0, flags = 0;
    int8_t code = 0;
    Str key, t;
    sc->name_tmp.len = 0;
    for (int i = 0; i < N_PROMOTED; i++) sc->promo[i] = -1;
    TRY(obj_open(sc, &first));
    while ((r = obj_next(sc, &first, &key)) == 1) {
        switch (key.n) {
            case 7:
                if (KEY(&key, "traceId")) {
                    TRY(seen(sc, &mask, S_TRACE));
                    TRY(hex_id(sc, trace, 16));
                    continue;
                }
                break;
            case 6:
                if (KEY(&key, "spanId")) {
                    TRY(seen(sc, &mask, S_SPAN));
                    TRY(hex_id(sc, sid, 8));
                    continue;
                }
                if (KEY(&key, "status")) {
                    TRY(seen(sc, &mask, S_STATUS));
                    TRY(status(sc, &code, &has_msg));
                    continue;
                }
                if (KEY(&key, "events")) {
                    int efirst, er;
                    TRY(seen(sc, &mask, S_EVENTS));
                    TRY(arr_open(sc, &efirst, 1));
                    while ((er = arr_next(sc, &efirst)) == 1) TRY(span_event(sc));
                    TRY(er);
                    continue;
                }
                break;
            case 12:
                if (KEY(&key, "parentSpanId")) {
                    TRY(seen(sc, &mask, S_PARENT));
                    skip_ws(sc);
                    if (sc->end - sc->p >= 2 && sc->p[0] == '"' && sc->p[1] == '"') {
                        sc->p += 2;
                    } else {
                        TRY(hex_id(sc, parent, 8));
                        parent_valid = !all_zero(parent, 8);
                    }
                    continue;
                }
                break;
            case 4:
                if (KEY(&key, "name")) {
                    TRY(seen(sc, &mask, S_NAME));
                    TRY(parse_string(sc, &t));
                    OOM(sc, buf_put(&sc->name_tmp, t.s, t.n));
                    continue;
                }
                if (KEY(&key, "kind")) {
                    TRY(seen(sc, &mask, S_KIND));
                    TRY(uint_field(sc, 5, 0, &kind));
                    continue;
                }
                break;
            case 17:
                if (KEY(&key, "startTimeUnixNano")) {
                    TRY(seen(sc, &mask, S_START));
                    TRY(time_field(sc, &start));
                    continue;
                }
                break;
            case 15:
                if (KEY(&key, "endTimeUnixNano")) {
                    TRY(seen(sc, &mask, S_END));
                    TRY(time_field(sc, &end));
                    continue;
                }
                break;
            case 10:
                if (KEY(&key, "attributes")) {
                    TRY(seen(sc, &mask, S_ATTRS));
                    TRY(attributes(sc, &f->a));
                    continue;
                }
                if (KEY(&key, "traceState")) {
                    TRY(seen(sc, &mask, S_STATE));
                    TRY(parse_string(sc, &t));
                    sc->ts_tmp.len = 0;
                    OOM(sc, buf_put(&sc->ts_tmp, t.s, t.n));
                    has_state = t.n > 0;
                    continue;
                }
                break;
            case 5:
                if (KEY(&key, "links")) {
                    int lfirst, lr;
                    TRY(seen(sc, &mask, S_LINKS));
                    TRY(arr_open(sc, &lfirst, 1));
                    while ((lr = arr_next(sc, &lfirst)) == 1) TRY(span_link(sc));
                    TRY(lr);
                    continue;
                }
                if (KEY(&key, "flags")) {
                    TRY(seen(sc, &mask, S_FLAGS));
                    TRY(uint_field(sc, UINT32_MAX, 0, &flags));
                    continue;
                }
                break;
            default:
                break;
        }
        TRY(skip_member(sc, &key));
    }
    TRY(r);
    if (!(mask & S_TRACE) || !(mask & S_SPAN)) FAIL(sc, "missing id");
    if (all_zero(trace, 16) || all_zero(sid, 8)) FAIL(sc, "all-zero id");
    if (!(mask & S_START) || !(mask & S_END)) FAIL(sc, "missing time");
    if (end < start) FAIL(sc, "end before start");

    OOM(sc, buf_put(&f->trace_id, trace, 16));
    OOM(sc, buf_put(&f->span_id, sid, 8));
    OOM(sc, buf_put(&f->parent_id, parent, 8));
    BUF_PUT(&f->parent_valid, uint8_t, parent_valid);
    OOM(sc, str_put(&f->name_off, &f->name_data, sc->name_tmp.p, sc->name_tmp.len));
    BUF_PUT(&f->kind, int8_t, kind);
    BUF_PUT(&f->start, int64_t, start);
    BUF_PUT(&f->end, int64_t, end);
    BUF_PUT(&f->status_code, int8_t, code);
    OOM(sc, str_put(&f->status_msg_off, &f->status_msg_data, sc->msg_tmp.p,
                    has_msg ? sc->msg_tmp.len : 0));
    BUF_PUT(&f->status_msg_valid, uint8_t, has_msg);
    OOM(sc, str_put(&f->trace_state_off, &f->trace_state_data, sc->ts_tmp.p,
                    has_state ? sc->ts_tmp.len : 0));
    BUF_PUT(&f->trace_state_valid, uint8_t, has_state);
    BUF_PUT(&f->flags, uint32_t, flags);
    BUF_PUT(&f->flags_valid, uint8_t, flags != 0);
    BUF_PUT(&f->span_scope, int32_t, scope_index);
    BUF_PUT(&f->attr_off, int32_t, (int32_t)f->a.count);
    OOM(sc, buf_put(&f->a_promo, sc->promo, sizeof sc->promo));
    BUF_PUT(&f->ev_off, int32_t, (int32_t)f->n_events);
    BUF_PUT(&f->ln_off, int32_t, (int32_t)f->n_links);
    f->n_spans++;
    return 0;
}

/* Records the byte range of an object member's value (validated, skipped). */
static int object_range(Sc *sc, int64_t *start, int64_t *end) {
    skip_ws(sc);
    if (sc->p >= sc->end || *sc->p != '{') FAIL(sc, "expected an object");
    *start = (int64_t)(sc->p - sc->base);
    TRY(skip_value(sc, 1));
    *end = (int64_t)(sc->p - sc->base);
    return 0;
}

static int scope_spans(Sc *sc, int32_t resource_index) {
    Flat *f = sc->f;
    int first, r;
    unsigned mask = 0;
    int64_t s0 = -1, s1 = -1;
    int32_t index = (int32_t)f->n_scopes++;
    Str key;
    TRY(obj_open(sc, &first));
    while ((r = obj_next(sc, &first, &key)) == 1) {
        if (KEY(&key, "scope")) {
            TRY(seen(sc, &mask, 1));
            TRY(object_range(sc, &s0, &s1));
        } else if (KEY(&key, "spans")) {
            int sfirst, sr;
            TRY(seen(sc, &mask, 2));
            TRY(arr_open(sc, &sfirst, 0));
            while ((sr = arr_next(sc, &sfirst)) == 1) TRY(span(sc, index));
            TRY(sr);
        } else if (KEY(&key, "instrumentationLibrary")) {
            FAIL(sc, "instrumentationLibrary");
        } else {
            TRY(skip_member(sc, &key));
        }
    }
    TRY(r);
    BUF_PUT(&f->scope_res, int32_t, resource_index);
    BUF_PUT(&f->scope_start, int64_t, s0);
    BUF_PUT(&f->scope_end, int64_t, s1);
    return 0;
}

static int resource_spans(Sc *sc) {
    Flat *f = sc->f;
    int first, r;
    unsigned mask = 0;
    int64_t r0 = -1, r1 = -1;
    int32_t index = (int32_t)f->n_resources++;
    Str key;
    TRY(obj_open(sc, &first));
    while ((r = obj_next(sc, &first, &key)) == 1) {
        if (KEY(&key, "resource")) {
            TRY(seen(sc, &mask, 1));
            TRY(object_range(sc, &r0, &r1));
        } else if (KEY(&key, "scopeSpans")) {
            int sfirst, sr;
            TRY(seen(sc, &mask, 2));
            TRY(arr_open(sc, &sfirst, 0));
            while ((sr = arr_next(sc, &sfirst)) == 1) TRY(scope_spans(sc, index));
            TRY(sr);
        } else if (KEY(&key, "instrumentationLibrarySpans")) {
            FAIL(sc, "instrumentationLibrarySpans");
        } else {
            TRY(skip_member(sc, &key));
        }
    }
    TRY(r);
    BUF_PUT(&f->res_start, int64_t, r0);
    BUF_PUT(&f->res_end, int64_t, r1);
    return 0;
}

static int line(Sc *sc) {
    int first, r;
    unsigned mask = 0;
    Str key;
    TRY(obj_open(sc, &first));
    while ((r = obj_next(sc, &first, &key)) == 1) {
        if (KEY(&key, "resourceSpans")) {
            int rfirst, rr;
            TRY(seen(sc, &mask, 1));
            TRY(arr_open(sc, &rfirst, 0));
            while ((rr = arr_next(sc, &rfirst)) == 1) TRY(resource_spans(sc));
            TRY(rr);
        } else if (KEY(&key, "resourceMetrics") || KEY(&key, "resourceLogs") ||
                   KEY(&key, "resourceProfiles")) {
            mask |= 2; /* a metric/log line (as the tolerant reader: only without spans) */
            TRY(skip_value(sc, 1));
        } else {
            TRY(skip_member(sc, &key));
        }
    }
    TRY(r);
    if (!(mask & 1)) {
        if (!(mask & 2)) FAIL(sc, "line without resourceSpans");
        sc->f->n_non_trace++;
    }
    skip_ws(sc);
    if (sc->p != sc->end) FAIL(sc, "data after the JSON value");
    return 0;
}

static int scan_block(Sc *sc, const unsigned char *data, size_t n) {
    const unsigned char *p = data, *end = data + n;
    sc->base = data;
    while (p < end) {
        const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
        const unsigned char *stop = nl ? nl : end;
        sc->p = p;
        sc->end = stop;
        skip_ws(sc);
        if (sc->p < sc->end) TRY(line(sc));
        if (nl) sc->f->n_lines++;
        p = nl ? nl + 1 : end;
    }
    return 0;
}

static void sc_free(Sc *sc) {
    buf_free(&sc->esc);
    buf_free(&sc->key_tmp);
    buf_free(&sc->val_tmp);
    buf_free(&sc->name_tmp);
    buf_free(&sc->msg_tmp);
    buf_free(&sc->ts_tmp);
    buf_free(&sc->ev_name_tmp);
}

/* One JSON value filling the whole input (a pretty-printed TracesData document). */
static int scan_document(Sc *sc, const unsigned char *data, size_t n) {
    sc->base = sc->p = data;
    sc->end = data + n;
    skip_ws(sc);
    if (sc->p == sc->end) FAIL(sc, "empty document");
    return line(sc);
}

static PyObject *scan(PyObject *arg, int whole) {
    Py_buffer view;
    if (!IS_WS[' ']) init_tables(); /* idempotent; first call holds the GIL */
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    Flat f;
    Sc sc;
    memset(&sc, 0, sizeof sc);
    sc.f = &f;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = flat_init(&f);
    if (rc != 0)
        sc.why = "out of memory";
    else if (whole)
        rc = scan_document(&sc, (const unsigned char *)view.buf, (size_t)view.len);
    else
        rc = scan_block(&sc, (const unsigned char *)view.buf, (size_t)view.len);
    Py_END_ALLOW_THREADS
    PyObject *out = rc == 0 ? flat_to_dict(&f) : PyUnicode_FromString(sc.why ? sc.why : "?");
    flat_free(&f);
    sc_free(&sc);
    PyBuffer_Release(&view);
    return out;
}

PyObject *tailscope_scan_json(PyObject *self, PyObject *arg) {
    (void)self;
    return scan(arg, 0);
}

PyObject *tailscope_scan_json_document(PyObject *self, PyObject *arg) {
    (void)self;
    return scan(arg, 1);
}
