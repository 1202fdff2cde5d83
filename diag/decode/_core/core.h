/* The compiled decode core: what every part of it shares.
 *
 * Contract: the core (diag.decode._core) decodes what the pure-Python decoder decodes, for the
 * common shapes, and hands everything else to that reference decoder one frame or one BGP
 * message at a time (the "bail" paths), so its output is the reference's output.
 *
 * Memory safety: every byte of capture data is read through a Span, and every read is preceded
 * by an explicit bounds test (span_has / NEED).  Built with -DDIAG_CORE_CHECKED (the fuzz build,
 * see benchmarks/fuzz_core.py) the readers themselves test the bound again and abort on a
 * violation, so a missing test is a crash under fuzzing, never a silent over-read.
 */
#ifndef DIAG_CORE_H
#define DIAG_CORE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------ bounds-checked reads */

typedef struct {
    const uint8_t *p;
    Py_ssize_t n;
} Span;

static inline int span_has(Span s, Py_ssize_t off, Py_ssize_t len)
{
    return off >= 0 && len >= 0 && off <= s.n && len <= s.n - off;
}

#ifdef DIAG_CORE_CHECKED
void dc_out_of_bounds(const char *file, int line);
#define DC_AT(s, off, len) (span_has((s), (off), (len)) ? (void)0 : dc_out_of_bounds(__FILE__, __LINE__))
#else
#define DC_AT(s, off, len) ((void)0)
#endif

static inline uint32_t rd8(Span s, Py_ssize_t off) { DC_AT(s, off, 1); return s.p[off]; }
static inline uint32_t rd16(Span s, Py_ssize_t off)
{
    DC_AT(s, off, 2);
    return (uint32_t)s.p[off] << 8 | s.p[off + 1];
}
static inline uint32_t rd32(Span s, Py_ssize_t off)
{
    DC_AT(s, off, 4);
    return (uint32_t)s.p[off] << 24 | (uint32_t)s.p[off + 1] << 16 | (uint32_t)s.p[off + 2] << 8
           | s.p[off + 3];
}
static inline uint64_t rd48(Span s, Py_ssize_t off)
{
    DC_AT(s, off, 6);
    return (uint64_t)rd16(s, off) << 32 | rd32(s, off + 2);
}
static inline const uint8_t *rdp(Span s, Py_ssize_t off, Py_ssize_t len)
{
    DC_AT(s, off, len);
    (void)len;
    return s.p + off;
}
static inline Span subspan(Span s, Py_ssize_t off, Py_ssize_t len)
{
    DC_AT(s, off, len);
    Span out = {s.p + off, len};
    return out;
}

/* ------------------------------------------------------------------ growable vectors */

#define VEC(T) struct { T *v; Py_ssize_t n, cap; }
#define VEC_RESERVE(vec, want)                                                                   \
    (((vec).cap >= (want)) ? 0 : dc_grow((void **)&(vec).v, &(vec).cap, (want), sizeof(*(vec).v)))
#define VEC_PUSH(vec, x) (VEC_RESERVE((vec), (vec).n + 1) ? -1 : ((vec).v[(vec).n++] = (x), 0))
#define VEC_FREE(vec) (PyMem_Free((vec).v), (vec).v = NULL, (vec).n = (vec).cap = 0)
int dc_grow(void **v, Py_ssize_t *cap, Py_ssize_t want, size_t item);

typedef VEC(uint8_t) Bytes;
int bytes_add(Bytes *b, const uint8_t *p, Py_ssize_t n);

/* ------------------------------------------------------------------ hashing */

static inline uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}
uint64_t hash_bytes(const void *p, size_t n, uint64_t seed);

/* A set of 64-bit keys (open addressing; key 0 stored apart). */
typedef struct {
    uint64_t *slots;
    size_t cap, used;
    int has_zero;
} U64Set;
int u64set_add(U64Set *s, uint64_t key);          /* 1 new, 0 present, -1 no memory */
void u64set_free(U64Set *s);
void u64set_prefetch(const U64Set *s, uint64_t key);   /* a cache hint before u64set_add */
size_t u64set_len(const U64Set *s);

/* Small fixed-size keys (up to 48 bytes) -> a PyObject (owned) or a counter. */
#define SK_MAX 48
typedef struct {
    uint8_t len, used;
    uint8_t key[SK_MAX];
    PyObject *obj;
    int64_t count;
    double lo, hi;
} SKEntry;
typedef struct {
    SKEntry *slots;
    size_t cap, used;
    size_t limit; /* cleared when it would grow past this (a cache); 0: never */
    PyObject *graveyard; /* a cache's evicted objects wait here until the chunk ends */
} SKMap;
SKEntry *skmap_get(SKMap *m, const void *key, size_t len, int create);
void skmap_clear(SKMap *m);
void skmap_free(SKMap *m);

/* ------------------------------------------------------------------ addresses and texts */

typedef struct {
    uint8_t fam; /* 0 none, 4, 6 */
    uint8_t a[16];
} Addr;

typedef struct Texts Texts;
Texts *texts_new(PyObject *ipv6_str);
void texts_free(Texts *t);
void texts_release(Texts *t);   /* the end of a chunk: evicted texts may go */
/* Texts are borrowed from the caches and stay alive until texts_release, even when evicted. */
PyObject *text_ipv4(Texts *t, const uint8_t *a);        /* borrowed, cached */
PyObject *text_uints(const uint32_t *v, int n);   /* new: "a:b" (n 2), "a:b:c" (n 3) */
PyObject *text_ipv6(Texts *t, const uint8_t *a);        /* borrowed, cached: a packet's */
PyObject *text_ipv6_bgp(Texts *t, const uint8_t *a);    /* borrowed, cached: in BGP */
PyObject *text_addr(Texts *t, const Addr *a);           /* borrowed; Py_None for none */
PyObject *text_mac(Texts *t, uint64_t mac);             /* borrowed */
PyObject *text_prefix(Texts *t, int v6, int plen, const uint8_t *raw, int nbytes); /* borrowed */
PyObject *text_int(Texts *t, int64_t v);                /* NEW reference */
PyObject *text_vlan(Texts *t, const uint16_t *tags, int n);   /* borrowed */
PyObject *text_etype(Texts *t, int etype);              /* borrowed: "0x0800"-style or "llc" */
PyObject *text_pkttype(Texts *t, int kind);             /* borrowed */
uint64_t prefix_key(int v6, int plen, const uint8_t *raw, int nbytes);

/* ------------------------------------------------------------------ columns */

enum { K_OBJ = 'o', K_I64 = 'i', K_F64 = 'f', K_BOOL = 'b' };

typedef struct {
    char kind;
    Py_ssize_t n, cap;
    void *data;        /* PyObject** (NULL = None), int64_t*, double* or uint8_t* */
    uint8_t *miss;     /* 'i'/'b'/'f': 1 where the value is None (allocated on the first) */
    Py_ssize_t nmiss;
    Py_ssize_t hint;   /* the first allocation's size: the last chunk's rows and a margin (one
                        * allocation a chunk instead of a chain of doubling reallocs) */
} Col;

/* Prefix texts made later, all at once: the rows of a text column left None, each with its
 * prefix, so that one pass can fetch the text cache's sets ahead of their lookups (a chunk's
 * prefixes miss the CPU caches; one at a time each lookup waits on memory). */
typedef struct {
    Py_ssize_t row;
    uint64_t hi, lo;
    uint32_t kind;       /* length << 8 | width (4 or 16 bytes) */
} PendingPrefix;
typedef VEC(PendingPrefix) PrefixTexts;
/* row ``row`` of the column (None so far) is this prefix's text, made by prefix_texts_fill */
int prefix_texts_add(PrefixTexts *p, Py_ssize_t row, int v6, int plen, const uint8_t *raw,
                     int nbytes);
/* every pending row of ``col`` (an object column) given its text (a new reference); empties p */
int prefix_texts_fill(Texts *t, PrefixTexts *p, Col *col);

int col_grow(Col *c, Py_ssize_t want);
int col_slow(Col *c, char kind, int64_t i, double f, PyObject *o);   /* kind mismatch / None */
int col_py(Col *c, PyObject *o);         /* any Python value, from the reference's rows */
void col_clear(Col *c);
int dc_owned_init(PyObject *module);     /* the type of the buffers col_take hands over */
PyObject *col_take(Col *c, PyObject *object_array); /* ('o'|'i'|'f'|'b', n, data, mask) */

static inline int col_reserve(Col *c, Py_ssize_t want)
{
    return c->cap >= want ? 0 : col_grow(c, want);
}

/* borrowed (increfed); NULL or Py_None: None */
static inline int col_obj(Col *c, PyObject *o)
{
    if (c->kind != K_OBJ || c->n == c->cap)
        return col_slow(c, K_OBJ, 0, 0, o);
    if (o == Py_None)
        o = NULL;
    Py_XINCREF(o);
    ((PyObject **)c->data)[c->n++] = o;
    return 0;
}

static inline int col_obj_steal(Col *c, PyObject *o)
{
    if (o == NULL)
        return -1;
    int rc = col_obj(c, o);
    Py_DECREF(o);
    return rc;
}

static inline int col_i64(Col *c, int64_t v)
{
    if (c->kind != K_I64 || c->n == c->cap)
        return col_slow(c, K_I64, v, 0, NULL);
    ((int64_t *)c->data)[c->n++] = v;
    return 0;
}

static inline int col_f64(Col *c, double v)
{
    if (c->kind != K_F64 || c->n == c->cap)
        return col_slow(c, K_F64, 0, v, NULL);
    ((double *)c->data)[c->n++] = v;
    return 0;
}

static inline int col_bool(Col *c, int v)
{
    if (c->kind != K_BOOL || c->n == c->cap)
        return col_slow(c, K_BOOL, v != 0, 0, NULL);
    ((uint8_t *)c->data)[c->n++] = (uint8_t)(v != 0);
    return 0;
}

static inline int col_none(Col *c)
{
    if (c->kind == K_OBJ) {
        if (c->n == c->cap && col_grow(c, c->n + 1))
            return -1;
        ((PyObject **)c->data)[c->n++] = NULL;
        return 0;
    }
    if (c->miss == NULL || c->n == c->cap)     /* the first missing value, or growth */
        return col_slow(c, 'n', 0, 0, NULL);
    switch (c->kind) {                         /* a typed column's missing value: 0, masked */
    case K_I64: ((int64_t *)c->data)[c->n] = 0; break;
    case K_F64: ((double *)c->data)[c->n] = 0; break;
    default: ((uint8_t *)c->data)[c->n] = 0; break;
    }
    c->miss[c->n++] = 1;
    c->nmiss++;
    return 0;
}

typedef struct {
    const char *name;
    int ncols;
    const char *const *names;
    char *kinds;
    Col *cols;
} Table;

int table_init(Table *t, const char *name, const char *const *names, const char *kinds);
void table_free(Table *t);
void table_clear(Table *t);
int table_check(Table *t, PyObject *columns);   /* the Python column tuple must match */
PyObject *table_take(Table *t, PyObject *object_array); /* dict name -> col_take */
int table_py_row(Table *t, PyObject *row);      /* a reference row (tuple) appended */

#endif
