/* Growable column buffers shared by the native OTLP scanners (JSON Lines and protobuf).
 *
 * A scanner fills one `Flat` per block of input *without the GIL*: plain malloc'd buffers,
 * no Python objects. `flat_to_dict` (GIL held) then hands every buffer to Python as `bytes`,
 * and tailscope/ingest/flat.py assembles the Arrow span table from them. The layout of every
 * buffer is documented there (FLAT_FIELDS) and must stay in step with this file.
 */
#ifndef TAILSCOPE_FLAT_H
#define TAILSCOPE_FLAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    char *p;
    size_t len;
    size_t cap;
} Buf;

/* 0 on success, -1 when memory runs out (the scan is then abandoned). */
static inline int buf_reserve(Buf *b, size_t extra) {
    if (b->len + extra <= b->cap) return 0;
    if (extra > ((size_t)1 << 40)) return -1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    char *p = (char *)realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int buf_put(Buf *b, const void *src, size_t n) {
    if (buf_reserve(b, n)) return -1;
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
    return 0;
}

#define BUF_PUT(b, T, v)                          \
    do {                                          \
        T v_ = (T)(v);                            \
        if (buf_put((b), &v_, sizeof(T))) return -1; \
    } while (0)

/* Scanner control flow: every step returns 0 (ok) or -1 (stop; `sc->why` says why). */
#define FAIL(sc, msg)      \
    do {                   \
        (sc)->why = (msg); \
        return -1;         \
    } while (0)

#define TRY(expr)                  \
    do {                           \
        if ((expr) < 0) return -1; \
    } while (0)

/* True when the n bytes at p are all zero (an absent or invalid id). */
static inline int all_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

static inline void buf_free(Buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* One pool of key/value attributes (span, event or link attributes).
 * key_off / val_off: int32 offsets (count + 1 entries, first is 0) into key_data / val_data.
 * tag: uint8 ValueType per attribute (0 empty, 1 string, 2 bool, 3 int, 4 double, 5 bytes).
 * Double values are not rendered here: their text is left empty and (index, value) pairs go to
 * dbl_idx (int64) / dbl_val (float64); Python renders them exactly as repr(float) does. */
typedef struct {
    Buf key_off, key_data, val_off, val_data, tag, dbl_idx, dbl_val;
    int64_t count;
} AttrPool;

/* Span attribute keys promoted to typed columns, sorted (tailscope.schema.PROMOTIONS;
 * a test checks both lists agree). */
#define N_PROMOTED 12
static const char *const PROMOTED_KEYS[N_PROMOTED] = {
    "db.system", "db.system.name", "error.type", "http.request.resend_count",
    "http.response.status_code", "http.status_code", "rpc.grpc.status_code", "rpc.method",
    "rpc.response.status_code", "rpc.system", "rpc.system.name", "server.address",
};

static const unsigned char PROMOTED_LENGTHS[N_PROMOTED] = {9, 14, 10, 25, 25, 16, 20, 10, 24, 10, 15, 14};

/* Index of `key` in PROMOTED_KEYS, or -1. */
static inline int promoted_index(const char *key, size_t n) {
    if (n < 9 || n > 25 || (key[0] != 'd' && key[0] != 'e' && key[0] != 'h' && key[0] != 'r' &&
                            key[0] != 's'))
        return -1;
    for (int i = 0; i < N_PROMOTED; i++)
        if (PROMOTED_LENGTHS[i] == n && memcmp(PROMOTED_KEYS[i], key, n) == 0) return i;
    return -1;
}

typedef struct {
    int64_t n_spans, n_events, n_links, n_scopes, n_resources;
    int64_t n_lines;     /* JSON Lines: newlines in the block */
    int64_t n_non_trace; /* JSON: metric/log lines skipped (counted, not problems) */
    /* per span */
    Buf trace_id;       /* 16 bytes each */
    Buf span_id;        /* 8 bytes each */
    Buf parent_id;      /* 8 bytes each (zeros for a root) */
    Buf parent_valid;   /* uint8 0/1 */
    Buf name_off, name_data;                     /* int32 offsets + UTF-8 */
    Buf kind;           /* int8 */
    Buf start, end;     /* int64 ns */
    Buf status_code;    /* int8 */
    Buf status_msg_off, status_msg_data, status_msg_valid;
    Buf trace_state_off, trace_state_data, trace_state_valid;
    Buf flags;          /* uint32 */
    Buf flags_valid;    /* uint8 0/1 */
    Buf span_scope;     /* int32 index into scopes */
    Buf attr_off;       /* int32, n_spans + 1: span i owns attributes [attr_off[i], attr_off[i+1]) */
    AttrPool a;
    Buf a_promo;        /* int32 [n_spans][N_PROMOTED], index in `a` of the span's
                           first attribute with each PROMOTED_KEYS key, -1 if none */
    /* events */
    Buf ev_off;         /* int32, n_spans + 1 */
    Buf ev_time;        /* int64 */
    Buf ev_name_off, ev_name_data;
    Buf ev_attr_off;    /* int32, n_events + 1 */
    AttrPool e;
    /* links */
    Buf ln_off;         /* int32, n_spans + 1 */
    Buf ln_trace;       /* 16 bytes each */
    Buf ln_span;        /* 8 bytes each */
    Buf ln_attr_off;    /* int32, n_links + 1 */
    AttrPool l;
    /* scopes and resources: raw encoded slices of the input, decoded in Python (few per block) */
    Buf scope_res;      /* int32 index into resources */
    Buf scope_start, scope_end;  /* int64 byte offsets into the input; -1 when absent */
    Buf res_start, res_end;      /* int64 byte offsets into the input; -1 when absent */
} Flat;

static inline int pool_init(AttrPool *p) {
    BUF_PUT(&p->key_off, int32_t, 0);
    BUF_PUT(&p->val_off, int32_t, 0);
    p->count = 0;
    return 0;
}

/* Starts every offsets buffer with its leading 0. */
static inline int flat_init(Flat *f) {
    memset(f, 0, sizeof *f);
    BUF_PUT(&f->name_off, int32_t, 0);
    BUF_PUT(&f->status_msg_off, int32_t, 0);
    BUF_PUT(&f->trace_state_off, int32_t, 0);
    BUF_PUT(&f->attr_off, int32_t, 0);
    BUF_PUT(&f->ev_off, int32_t, 0);
    BUF_PUT(&f->ev_name_off, int32_t, 0);
    BUF_PUT(&f->ev_attr_off, int32_t, 0);
    BUF_PUT(&f->ln_off, int32_t, 0);
    BUF_PUT(&f->ln_attr_off, int32_t, 0);
    if (pool_init(&f->a) || pool_init(&f->e) || pool_init(&f->l)) return -1;
    return 0;
}

/* Appends `n` bytes to a string column (offsets + data). -1 on overflow of int32 or OOM. */
static inline int str_put(Buf *off, Buf *data, const char *s, size_t n) {
    if (data->len + n > (size_t)INT32_MAX) return -1;
    if (buf_put(data, s, n)) return -1;
    BUF_PUT(off, int32_t, (int32_t)data->len);
    return 0;
}

#define FLAT_POOL_FIELDS(X, pool, prefix)          \
    X(pool.key_off, prefix "key_off")              \
    X(pool.key_data, prefix "key_data")            \
    X(pool.val_off, prefix "val_off")              \
    X(pool.val_data, prefix "val_data")            \
    X(pool.tag, prefix "tag")                      \
    X(pool.dbl_idx, prefix "dbl_idx")              \
    X(pool.dbl_val, prefix "dbl_val")

#define FLAT_FIELDS(X)                                                          \
    X(trace_id, "trace_id") X(span_id, "span_id") X(parent_id, "parent_id")    \
    X(parent_valid, "parent_valid") X(name_off, "name_off")                    \
    X(name_data, "name_data") X(kind, "kind") X(start, "start") X(end, "end")  \
    X(status_code, "status_code") X(status_msg_off, "status_msg_off")          \
    X(status_msg_data, "status_msg_data") X(status_msg_valid, "status_msg_valid") \
    X(trace_state_off, "trace_state_off") X(trace_state_data, "trace_state_data") \
    X(trace_state_valid, "trace_state_valid") X(flags, "flags")                \
    X(flags_valid, "flags_valid") X(span_scope, "span_scope")                  \
    X(attr_off, "attr_off") FLAT_POOL_FIELDS(X, a, "a_") X(a_promo, "a_promo")  \
    X(ev_off, "ev_off") X(ev_time, "ev_time") X(ev_name_off, "ev_name_off")    \
    X(ev_name_data, "ev_name_data") X(ev_attr_off, "ev_attr_off")              \
    FLAT_POOL_FIELDS(X, e, "e_")                                               \
    X(ln_off, "ln_off") X(ln_trace, "ln_trace") X(ln_span, "ln_span")          \
    X(ln_attr_off, "ln_attr_off") FLAT_POOL_FIELDS(X, l, "l_")                 \
    X(scope_res, "scope_res") X(scope_start, "scope_start")                    \
    X(scope_end, "scope_end") X(res_start, "res_start") X(res_end, "res_end")

static inline void flat_free(Flat *f) {
#define FREE_ONE(field, name) buf_free(&f->field);
    FLAT_FIELDS(FREE_ONE)
#undef FREE_ONE
}

/* d[name] = v, taking v's reference; -1 (and nothing set) when v is NULL or on error. */
static inline int dict_put(PyObject *d, const char *name, PyObject *v) {
    if (!v) return -1;
    int rc = PyDict_SetItemString(d, name, v);
    Py_DECREF(v);
    return rc;
}

/* A dict {name: bytes} of every buffer plus the counts; frees nothing. NULL on error. */
static inline PyObject *flat_to_dict(const Flat *f) {
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    int rc = 0;
#define ADD_ONE(field, name)                                                          \
    rc = rc ? rc                                                                      \
            : dict_put(d, name,                                                       \
                       PyBytes_FromStringAndSize(f->field.p ? f->field.p : "",        \
                                                 (Py_ssize_t)f->field.len));
    FLAT_FIELDS(ADD_ONE)
#undef ADD_ONE
#define ADD_COUNT(name, value) rc = rc ? rc : dict_put(d, name, PyLong_FromLongLong(value));
    ADD_COUNT("n_spans", f->n_spans)
    ADD_COUNT("n_events", f->n_events)
    ADD_COUNT("n_links", f->n_links)
    ADD_COUNT("n_scopes", f->n_scopes)
    ADD_COUNT("n_resources", f->n_resources)
    ADD_COUNT("n_lines", f->n_lines)
    ADD_COUNT("n_non_trace", f->n_non_trace)
#undef ADD_COUNT
    if (rc) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

#endif
