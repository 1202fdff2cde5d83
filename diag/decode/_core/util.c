/* Shared machinery of the compiled core: vectors, hash tables, cached texts, columns.
 *
 * Texts (addresses, MACs, prefixes) are made once per distinct value and cached (bounded: a
 * cache is emptied when it fills), exactly as the reference formats them: IPv4 as inet_ntoa,
 * IPv6 as inet_ntop (RFC 5952; a dotted IPv4 tail in packet headers as glibc prints it, in BGP
 * messages as the reference's ipv6_str, i.e. Python's ipaddress, prints it), MACs lower-case
 * with colons.
 *
 * Columns hold one table column while a chunk is decoded; col_take hands it over as
 * (kind, n, data, mask): an object array filled in place (numpy's buffer interface), or the raw
 * int64/double/bool bytes and a mask of missing values, which diag/decode/core.py turns into
 * the dtypes the reference's rows would give (see docs/performance.md).
 */
#include "core.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef DIAG_CORE_CHECKED
void dc_out_of_bounds(const char *file, int line)
{
    fprintf(stderr, "diag core: read out of bounds at %s:%d\n", file, line);
    abort();
}
#endif

int dc_grow(void **v, Py_ssize_t *cap, Py_ssize_t want, size_t item)
{
    Py_ssize_t n = *cap ? *cap : 16;
    while (n < want) {
        if (n > PY_SSIZE_T_MAX / 2 / (Py_ssize_t)item) {
            PyErr_NoMemory();
            return -1;
        }
        n *= 2;
    }
    void *p = PyMem_Realloc(*v, (size_t)n * item);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *v = p;
    *cap = n;
    return 0;
}

int bytes_add(Bytes *b, const uint8_t *p, Py_ssize_t n)
{
    if (n <= 0)
        return 0;
    if (VEC_RESERVE(*b, b->n + n))
        return -1;
    memcpy(b->v + b->n, p, (size_t)n);
    b->n += n;
    return 0;
}

/* Every byte is read by loads of constant size (the last word of a key of 8 bytes or more
 * overlaps the one before it; a shorter key takes two overlapping 4-byte loads, or three
 * bytes), each word folded in by a multiply and a rotation, the result mixed once. */
uint64_t hash_bytes(const void *p, size_t n, uint64_t seed)
{
    const uint8_t *b = p;
    uint64_t h = seed ^ (n * 0x9E3779B97F4A7C15ULL), w;
    if (n >= 8) {
        const uint8_t *last = b + n - 8;
        for (; b < last; b += 8) {
            memcpy(&w, b, 8);
            h = (h ^ w) * 0x9E3779B97F4A7C15ULL;
            h = h << 31 | h >> 33;
        }
        memcpy(&w, last, 8);
    } else if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, b, 4);
        memcpy(&hi, b + n - 4, 4);
        w = (uint64_t)hi << 32 | lo;
    } else {
        w = n ? (uint64_t)b[0] << 16 | (uint64_t)b[n >> 1] << 8 | b[n - 1] : 0;
    }
    return mix64(h ^ w ^ ((uint64_t)n << 56));
}

/* ------------------------------------------------------------------ U64Set */

static int u64set_resize(U64Set *s, size_t cap)
{
    uint64_t *slots = PyMem_Calloc(cap, sizeof(uint64_t));
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < s->cap; i++) {
        uint64_t k = s->slots[i];
        if (!k)
            continue;
        size_t j = mix64(k) & (cap - 1);
        while (slots[j])
            j = (j + 1) & (cap - 1);
        slots[j] = k;
    }
    PyMem_Free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return 0;
}

int u64set_add(U64Set *s, uint64_t key)
{
    if (key == 0) {
        int fresh = !s->has_zero;
        s->has_zero = 1;
        return fresh;
    }
    if ((s->used + 1) * 4 >= s->cap * 3 && u64set_resize(s, s->cap ? s->cap * 2 : 64))
        return -1;
    size_t j = mix64(key) & (s->cap - 1);
    while (s->slots[j]) {
        if (s->slots[j] == key)
            return 0;
        j = (j + 1) & (s->cap - 1);
    }
    s->slots[j] = key;
    s->used++;
    return 1;
}

/* a hint: the slot ``key`` would be looked up in, fetched into the cache ahead of the add */
void u64set_prefetch(const U64Set *s, uint64_t key)
{
    if (s->cap)
        __builtin_prefetch(&s->slots[mix64(key) & (s->cap - 1)], 0, 1);
}

void u64set_free(U64Set *s)
{
    PyMem_Free(s->slots);
    memset(s, 0, sizeof(*s));
}

size_t u64set_len(const U64Set *s) { return s->used + (s->has_zero ? 1 : 0); }

/* ------------------------------------------------------------------ SKMap */

static int skmap_resize(SKMap *m, size_t cap)
{
    SKEntry *slots = PyMem_Calloc(cap, sizeof(SKEntry));
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++) {
        SKEntry *e = &m->slots[i];
        if (!e->used)
            continue;
        size_t j = hash_bytes(e->key, e->len, 0) & (cap - 1);
        while (slots[j].used)
            j = (j + 1) & (cap - 1);
        slots[j] = *e;
    }
    PyMem_Free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

SKEntry *skmap_get(SKMap *m, const void *key, size_t len, int create)
{
    if (len > SK_MAX) {
        PyErr_SetString(PyExc_SystemError, "diag core: key too long");
        return NULL;
    }
    if (m->cap) {
        size_t j = hash_bytes(key, len, 0) & (m->cap - 1);
        while (m->slots[j].used) {
            SKEntry *e = &m->slots[j];
            if (e->len == len && memcmp(e->key, key, len) == 0)
                return e;
            j = (j + 1) & (m->cap - 1);
        }
    }
    if (!create)
        return NULL;
    if (m->limit && m->used >= m->limit)
        skmap_clear(m);
    if ((m->used + 1) * 4 >= m->cap * 3 && skmap_resize(m, m->cap ? m->cap * 2 : 64))
        return NULL;
    size_t j = hash_bytes(key, len, 0) & (m->cap - 1);
    while (m->slots[j].used)
        j = (j + 1) & (m->cap - 1);
    SKEntry *e = &m->slots[j];
    memset(e, 0, sizeof(*e));
    e->used = 1;
    e->len = (uint8_t)len;
    memcpy(e->key, key, len);
    m->used++;
    return e;
}

void skmap_clear(SKMap *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].used && m->slots[i].obj && m->graveyard
            && PyList_Append(m->graveyard, m->slots[i].obj) < 0)
            PyErr_Clear();     /* no memory for the list: the object goes now */
        if (m->slots[i].used)
            Py_CLEAR(m->slots[i].obj);
        m->slots[i].used = 0;
    }
    m->used = 0;
}

void skmap_free(SKMap *m)
{
    skmap_clear(m);
    PyMem_Free(m->slots);
    m->slots = NULL;
    m->cap = 0;
}

/* ------------------------------------------------------------------ texts */

#define TEXT_CACHE 32768      /* sets of the prefix text cache (2 entries each) */

/* A 2-way set-associative cache of texts keyed by two 64-bit words and a 32-bit kind: a
 * lookup is a hash and two compares; a miss replaces the older entry of its set (the evicted
 * text waits in the graveyard until the chunk ends, as borrowed texts must stay valid that
 * long). An entry is 32 bytes and a set one 64-byte cache line, so that a set can be
 * prefetched ahead of a batch of lookups (tcache_ahead). */
typedef struct {
    uint64_t k1, k2;
    PyObject *v;
    uint32_t k3;
    uint32_t stamp;       /* the cache's clock at the last use (compared modulo 2^32) */
} TCEntry;

typedef struct {
    TCEntry *e;           /* 64-byte aligned, inside raw */
    void *raw;
    size_t mask;          /* sets - 1 */
    uint32_t clock;
} TCache;

static int tcache_init(TCache *c, size_t sets)
{
    c->raw = PyMem_Calloc(sets * 2 + 2, sizeof(TCEntry));
    if (c->raw == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    c->e = (TCEntry *)(((uintptr_t)c->raw + 63) & ~(uintptr_t)63);
    c->mask = sets - 1;
    return 0;
}

static void tcache_free(TCache *c)
{
    if (c->e)
        for (size_t i = 0; i <= c->mask * 2 + 1; i++)
            Py_XDECREF(c->e[i].v);
    PyMem_Free(c->raw);
    c->raw = NULL;
    c->e = NULL;
}

static inline TCEntry *tcache_set(const TCache *c, uint64_t k1, uint64_t k2, uint32_t k3)
{
    return &c->e[(size_t)(mix64(k1 * 0x9E3779B97F4A7C15ULL ^ mix64(k2 ^ (uint64_t)k3 << 1))
                          & c->mask) * 2];
}

/* the set of (k1, k2, k3) fetched into the cache ahead of its lookup */
static inline void tcache_ahead(const TCache *c, uint64_t k1, uint64_t k2, uint32_t k3)
{
    __builtin_prefetch(tcache_set(c, k1, k2, k3), 1, 3);
}

/* the entry for (k1, k2, k3): found (v set), or the one to fill (v NULL, its old text
 * buried) */
static TCEntry *tcache_slot(TCache *c, uint64_t k1, uint64_t k2, uint32_t k3,
                            PyObject *graveyard)
{
    TCEntry *a = tcache_set(c, k1, k2, k3), *b = a + 1;
    c->clock++;
    if (a->v && a->k1 == k1 && a->k2 == k2 && a->k3 == k3) {
        a->stamp = c->clock;
        return a;
    }
    if (b->v && b->k1 == k1 && b->k2 == k2 && b->k3 == k3) {
        b->stamp = c->clock;
        return b;
    }
    TCEntry *victim = !a->v ? a : !b->v ? b : (int32_t)(a->stamp - b->stamp) <= 0 ? a : b;
    if (victim->v) {
        if (PyList_Append(graveyard, victim->v) < 0)
            PyErr_Clear();
        Py_CLEAR(victim->v);
    }
    victim->k1 = k1;
    victim->k2 = k2;
    victim->k3 = k3;
    victim->stamp = c->clock;
    return victim;
}

struct Texts {
    TCache v4, v6, mac, prefix;
    SKMap vlan, misc;
    PyObject *graveyard;
    PyObject **ints; /* 0..65535, made on first use */
    PyObject *ipv6_str;
};

Texts *texts_new(PyObject *ipv6_str)
{
    Texts *t = PyMem_Calloc(1, sizeof(Texts));
    if (t == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    t->vlan.limit = t->misc.limit = 4096;
    t->graveyard = PyList_New(0);
    if (t->graveyard == NULL) {
        PyMem_Free(t);
        return NULL;
    }
    t->vlan.graveyard = t->misc.graveyard = t->graveyard;
    /* prefixes: 2 x TEXT_CACHE entries of 32 bytes (2 MB), as many texts as the reference's
     * cache (diag/decode/nlri.py) keeps; twice as many held ~6 MB more at 1 GB of BGP-heavy
     * traffic for no time measured */
    if (tcache_init(&t->v4, 1 << 11) || tcache_init(&t->v6, 1 << 10)
        || tcache_init(&t->mac, 1 << 11) || tcache_init(&t->prefix, TEXT_CACHE)) {
        tcache_free(&t->v4);
        tcache_free(&t->v6);
        tcache_free(&t->mac);
        tcache_free(&t->prefix);
        Py_DECREF(t->graveyard);
        PyMem_Free(t);
        return NULL;
    }
    t->ints = PyMem_Calloc(65536, sizeof(PyObject *));
    if (t->ints == NULL) {
        Py_DECREF(t->graveyard);
        tcache_free(&t->v4);
        tcache_free(&t->v6);
        tcache_free(&t->mac);
        tcache_free(&t->prefix);
        PyMem_Free(t);
        PyErr_NoMemory();
        return NULL;
    }
    Py_INCREF(ipv6_str);
    t->ipv6_str = ipv6_str;
    return t;
}

void texts_free(Texts *t)
{
    if (t == NULL)
        return;
    tcache_free(&t->v4);
    tcache_free(&t->v6);
    tcache_free(&t->mac);
    tcache_free(&t->prefix);
    skmap_free(&t->vlan);
    skmap_free(&t->misc);
    for (int i = 0; i < 65536; i++)
        Py_XDECREF(t->ints[i]);
    PyMem_Free(t->ints);
    Py_XDECREF(t->ipv6_str);
    Py_XDECREF(t->graveyard);
    PyMem_Free(t);
}

void texts_release(Texts *t)
{
    if (PyList_GET_SIZE(t->graveyard))
        PyList_SetSlice(t->graveyard, 0, PyList_GET_SIZE(t->graveyard), NULL);
}

static PyObject *cached(SKMap *m, const void *key, size_t len, SKEntry **slot)
{
    SKEntry *e = skmap_get(m, key, len, 1);
    *slot = e;
    if (e == NULL)
        return NULL;
    return e->obj;
}

/* an ASCII text straight into a compact str object (no format parsing, no decoding) */
static PyObject *ascii_str(const char *buf, size_t n)
{
    PyObject *o = PyUnicode_New((Py_ssize_t)n, 127);
    if (o != NULL)
        memcpy(PyUnicode_1BYTE_DATA(o), buf, n);
    return o;
}

static size_t put_uint(char *p, unsigned v)
{
    char tmp[12];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

PyObject *text_uints(const uint32_t *v, int n)
{
    char buf[3 * 11];
    size_t at = 0;
    for (int i = 0; i < n && i < 3; i++) {
        if (i)
            buf[at++] = ':';
        at += put_uint(buf + at, v[i]);
    }
    return ascii_str(buf, at);
}

static size_t ipv4_chars(char *p, const uint8_t *a)
{
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        if (i)
            p[n++] = '.';
        n += put_uint(p + n, a[i]);
    }
    return n;
}

static PyObject *ipv4_new(const uint8_t *a)
{
    char buf[16];
    return ascii_str(buf, ipv4_chars(buf, a));
}

/* Whether inet_ntop prints this address with a dotted IPv4 tail (::a.b.c.d, ::ffff:a.b.c.d):
 * ipaddress prints those its own way (and Python 3.13 changed how), so the reference is asked. */
static int dotted_tail(const uint8_t a[16])
{
    for (int i = 0; i < 10; i++)
        if (a[i])
            return 0;
    int w5 = a[10] << 8 | a[11], w6 = a[12] << 8 | a[13];
    return w5 == 0xffff || (w5 == 0 && w6 != 0);
}

/* An IPv6 address as inet_ntop (and ipaddress) prints it when it has no dotted tail (RFC 5952:
 * lower-case hex without leading zeros, the longest run of two or more zero groups, the first
 * of equal runs, as "::"); buf holds 40 bytes. */
static size_t ipv6_chars(char *buf, const uint8_t a[16])
{
    static const char hex[] = "0123456789abcdef";
    unsigned g[8];
    int best = -1, best_len = 1, run = -1;
    for (int i = 0; i < 8; i++) {
        g[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
        if (g[i] != 0) {
            run = -1;
        } else {
            if (run < 0)
                run = i;
            if (i - run + 1 > best_len) {
                best = run;
                best_len = i - run + 1;
            }
        }
    }
    size_t n = 0;
    int gap = 0;                   /* the last thing written was "::" */
    for (int i = 0; i < 8;) {
        if (i == best) {
            buf[n++] = ':';
            buf[n++] = ':';
            i += best_len;
            gap = 1;
            continue;
        }
        if (i > 0 && !gap)
            buf[n++] = ':';
        gap = 0;
        unsigned v = g[i++];
        int shift = v >= 0x1000 ? 12 : v >= 0x100 ? 8 : v >= 0x10 ? 4 : 0;
        for (; shift >= 0; shift -= 4)
            buf[n++] = hex[(v >> shift) & 15];
    }
    return n;
}

/* wire: as the reference prints packet addresses (socket.inet_ntop, dotted tail included);
 * otherwise as it prints the addresses in BGP messages (bgp_attrs.ipv6_str: ipaddress's) */
static PyObject *ipv6_new(Texts *t, const uint8_t *a, int wire)
{
    if (dotted_tail(a)) {
        if (wire) {
            char buf[INET6_ADDRSTRLEN];
            if (inet_ntop(AF_INET6, a, buf, sizeof buf) == NULL) {
                PyErr_SetString(PyExc_SystemError, "inet_ntop failed");
                return NULL;
            }
            return PyUnicode_FromString(buf);
        }
        PyObject *raw = PyBytes_FromStringAndSize((const char *)a, 16);
        if (raw == NULL)
            return NULL;
        PyObject *s = PyObject_CallOneArg(t->ipv6_str, raw);
        Py_DECREF(raw);
        return s;
    }
    char buf[40];
    return ascii_str(buf, ipv6_chars(buf, a));
}

PyObject *text_ipv4(Texts *t, const uint8_t *a)
{
    uint64_t k = (uint64_t)a[0] << 24 | (uint64_t)a[1] << 16 | (uint64_t)a[2] << 8 | a[3];
    TCEntry *e = tcache_slot(&t->v4, k, 0, 4, t->graveyard);
    if (e->v == NULL)
        e->v = ipv4_new(a);
    return e->v;
}

static void words16(const uint8_t *a, uint64_t *hi, uint64_t *lo)
{
    memcpy(hi, a, 8);
    memcpy(lo, a + 8, 8);
}

/* the cached text of an IPv6 address in one of ipv6_new's two forms (kept apart in the cache) */
static PyObject *ipv6_cached(Texts *t, const uint8_t *a, int wire)
{
    uint64_t hi, lo;
    words16(a, &hi, &lo);
    TCEntry *e = tcache_slot(&t->v6, hi, lo, wire ? 6 : 7, t->graveyard);
    if (e->v == NULL)
        e->v = ipv6_new(t, a, wire);
    return e->v;
}

PyObject *text_ipv6(Texts *t, const uint8_t *a)
{
    return ipv6_cached(t, a, 1);
}

PyObject *text_ipv6_bgp(Texts *t, const uint8_t *a)
{
    return ipv6_cached(t, a, 0);
}

PyObject *text_addr(Texts *t, const Addr *a)
{
    if (a->fam == 4)
        return text_ipv4(t, a->a);
    if (a->fam == 6)
        return text_ipv6(t, a->a);
    return Py_None;
}

PyObject *text_mac(Texts *t, uint64_t mac)
{
    TCEntry *e = tcache_slot(&t->mac, mac, 0, 48, t->graveyard);
    if (e->v)
        return e->v;
    static const char hex[] = "0123456789abcdef";
    char buf[17];
    for (int i = 0; i < 6; i++) {
        uint8_t b = (uint8_t)(mac >> (40 - 8 * i));
        buf[3 * i] = hex[b >> 4];
        buf[3 * i + 1] = hex[b & 15];
        if (i < 5)
            buf[3 * i + 2] = ':';
    }
    return e->v = PyUnicode_FromStringAndSize(buf, 17);
}

/* a prefix's cache key: its address bytes (zero-padded) as two words, length and width */
static void prefix_words(int v6, int plen, const uint8_t *raw, int nbytes, uint8_t k[16],
                         uint64_t *hi, uint64_t *lo, uint32_t *kind)
{
    int width = v6 ? 16 : 4;
    if (nbytes > width)
        nbytes = width;
    memset(k, 0, 16);
    memcpy(k, raw, (size_t)nbytes);
    words16(k, hi, lo);
    *kind = (uint32_t)plen << 8 | (uint32_t)width;
}

/* the text of a prefix whose key is computed (k: its address bytes, zero-padded) */
static PyObject *prefix_text_of(Texts *t, const uint8_t k[16], uint64_t hi, uint64_t lo,
                                uint32_t kind)
{
    TCEntry *e = tcache_slot(&t->prefix, hi, lo, kind, t->graveyard);
    if (e->v)
        return e->v;
    int v6 = (kind & 0xff) == 16, plen = (int)(kind >> 8);
    char buf[INET6_ADDRSTRLEN + 8];
    size_t n;
    if (!v6) {
        n = ipv4_chars(buf, k);
    } else if (!dotted_tail(k)) {
        n = ipv6_chars(buf, k);
    } else {           /* a dotted tail: the reference's text (ipaddress) */
        PyObject *addr = ipv6_new(t, k, 0);
        if (addr == NULL)
            return NULL;
        PyObject *s = PyUnicode_FromFormat("%U/%d", addr, plen);
        Py_DECREF(addr);
        return e->v = s;
    }
    buf[n++] = '/';
    n += put_uint(buf + n, (unsigned)plen);
    return e->v = ascii_str(buf, n);
}

PyObject *text_prefix(Texts *t, int v6, int plen, const uint8_t *raw, int nbytes)
{
    uint8_t k[16];
    uint64_t hi, lo;
    uint32_t kind;
    prefix_words(v6, plen, raw, nbytes, k, &hi, &lo, &kind);
    return prefix_text_of(t, k, hi, lo, kind);
}

int prefix_texts_add(PrefixTexts *p, Py_ssize_t row, int v6, int plen, const uint8_t *raw,
                     int nbytes)
{
    uint8_t k[16];
    PendingPrefix e = {.row = row};
    prefix_words(v6, plen, raw, nbytes, k, &e.hi, &e.lo, &e.kind);
    return VEC_PUSH(*p, e);
}

/* the text of a pending prefix (borrowed, as text_prefix's): its key as recorded */
static PyObject *pending_text(Texts *t, const PendingPrefix *e)
{
    uint8_t k[16];
    memcpy(k, &e->hi, 8);
    memcpy(k + 8, &e->lo, 8);
    return prefix_text_of(t, k, e->hi, e->lo, e->kind);
}

int prefix_texts_fill(Texts *t, PrefixTexts *p, Col *col)
{
    /* in batches: the batch's cache sets fetched, then its texts looked up (their objects
     * fetched), then the references taken: each stage's misses overlap */
    enum { BATCH = 64 };
    PyObject *texts[BATCH];
    PyObject **out = (PyObject **)col->data;
    Py_ssize_t n = p->n;
    int rc = 0;
    if (n && col->kind != K_OBJ) {
        PyErr_SetString(PyExc_RuntimeError, "diag core: prefix texts for a typed column");
        p->n = 0;
        return -1;
    }
    for (Py_ssize_t from = 0; rc == 0 && from < n; from += BATCH) {
        Py_ssize_t m = n - from < BATCH ? n - from : BATCH;
        const PendingPrefix *v = p->v + from;
        for (Py_ssize_t j = 0; j < m; j++)
            tcache_ahead(&t->prefix, v[j].hi, v[j].lo, v[j].kind);
        for (Py_ssize_t j = 0; j < m; j++) {
            texts[j] = pending_text(t, &v[j]);
            if (texts[j] == NULL) {
                m = j;
                rc = -1;
                break;
            }
            __builtin_prefetch(texts[j], 1, 3);
        }
        for (Py_ssize_t j = 0; j < m; j++) {
            Py_ssize_t row = v[j].row;
            if (row < 0 || row >= col->n || out[row] != NULL) {
                PyErr_SetString(PyExc_RuntimeError,
                                "diag core: a pending prefix row out of place");
                rc = -1;
                break;
            }
            out[row] = Py_NewRef(texts[j]);
        }
    }
    p->n = 0;
    return rc;
}

PyObject *text_int(Texts *t, int64_t v)
{
    if (v >= 0 && v < 65536) {
        PyObject *o = t->ints[v];
        if (o == NULL)
            o = t->ints[v] = PyLong_FromLongLong(v);
        Py_XINCREF(o);
        return o;
    }
    return PyLong_FromLongLong(v);
}

PyObject *text_vlan(Texts *t, const uint16_t *tags, int n)
{
    SKEntry *e;
    PyObject *o = cached(&t->vlan, tags, (size_t)n * 2, &e);
    if (o || e == NULL)
        return o;
    char buf[64];
    int at = 0;
    for (int i = 0; i < n; i++)
        at += snprintf(buf + at, sizeof buf - (size_t)at, i ? ".%u" : "%u", tags[i]);
    return e->obj = PyUnicode_FromStringAndSize(buf, at);
}

PyObject *text_etype(Texts *t, int etype)
{
    uint8_t k[3] = {1, (uint8_t)(etype >> 8), (uint8_t)etype};
    SKEntry *e;
    PyObject *o = cached(&t->misc, k, 3, &e);
    if (o || e == NULL)
        return o;
    if (etype >= 0x0600)
        return e->obj = PyUnicode_FromFormat("0x%04x", etype);
    return e->obj = PyUnicode_FromString("llc");
}

static const char *const PKTTYPES[5] = {"host", "broadcast", "multicast", "otherhost", "outgoing"};

PyObject *text_pkttype(Texts *t, int kind)
{
    uint8_t k[3] = {2, (uint8_t)(kind >> 8), (uint8_t)kind};
    SKEntry *e;
    PyObject *o = cached(&t->misc, k, 3, &e);
    if (o || e == NULL)
        return o;
    if (kind < 5)
        return e->obj = PyUnicode_FromString(PKTTYPES[kind]);
    return e->obj = PyUnicode_FromFormat("%d", kind);
}

/* diag.decode.nlri._raw_key: IPv4 exact, IPv6 a splitmix64 mix with bit 62 set */
#define M1 0x9E3779B97F4A7C15ULL
#define M2 0xBF58476D1CE4E5B9ULL
#define M3 0x94D049BB133111EBULL

static uint64_t fmix(uint64_t h)
{
    h ^= h >> 30;
    h *= M2;
    h ^= h >> 27;
    h *= M3;
    return h ^ (h >> 31);
}

uint64_t prefix_key(int v6, int plen, const uint8_t *raw, int nbytes)
{
    uint8_t a[16] = {0};
    int width = v6 ? 16 : 4;
    memcpy(a, raw, (size_t)(nbytes < width ? nbytes : width));
    if (!v6) {
        uint64_t v = (uint64_t)a[0] << 24 | (uint64_t)a[1] << 16 | (uint64_t)a[2] << 8 | a[3];
        return v << 8 | (uint64_t)plen;
    }
    uint64_t hi = 0, lo = 0;
    for (int i = 0; i < 8; i++) {
        hi = hi << 8 | a[i];
        lo = lo << 8 | a[8 + i];
    }
    uint64_t inner = fmix(lo ^ ((uint64_t)plen * M3));
    uint64_t h = fmix(hi ^ (inner * M1));
    return (h & ((1ULL << 62) - 1)) | (1ULL << 62);
}

/* ------------------------------------------------------------------ columns */

static size_t kind_size(char kind)
{
    switch (kind) {
    case K_OBJ: return sizeof(PyObject *);
    case K_I64: return sizeof(int64_t);
    case K_F64: return sizeof(double);
    default: return 1;
    }
}

int col_grow(Col *c, Py_ssize_t want)
{
    if (c->cap >= want)
        return 0;
    Py_ssize_t cap = c->cap;
    if (cap == 0 && c->hint > want)
        want = c->hint;
    if (dc_grow(&c->data, &cap, want, kind_size(c->kind)))
        return -1;
    if (c->miss) {
        uint8_t *m = PyMem_Realloc(c->miss, (size_t)cap);
        if (m == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memset(m + c->cap, 0, (size_t)(cap - c->cap));
        c->miss = m;
    }
    c->cap = cap;
    return 0;
}

static int col_mark_missing(Col *c)
{
    if (c->miss == NULL) {
        c->miss = PyMem_Calloc((size_t)(c->cap ? c->cap : 1), 1);
        if (c->miss == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    c->miss[c->n] = 1;
    c->nmiss++;
    return 0;
}

static int col_to_objects(Col *c);

/* the appends the inline fast paths leave: growth, None in a typed column, a value of another
 * kind (the column becomes an object column) */
int col_slow(Col *c, char kind, int64_t i, double f, PyObject *o)
{
    if (col_grow(c, c->n + 1))
        return -1;
    if (kind == 'n' || (kind == K_OBJ && (o == NULL || o == Py_None))) {
        switch (c->kind) {
        case K_OBJ: ((PyObject **)c->data)[c->n] = NULL; break;
        case K_I64: ((int64_t *)c->data)[c->n] = 0; if (col_mark_missing(c)) return -1; break;
        case K_F64: ((double *)c->data)[c->n] = 0; if (col_mark_missing(c)) return -1; break;
        default: ((uint8_t *)c->data)[c->n] = 0; if (col_mark_missing(c)) return -1; break;
        }
        c->n++;
        return 0;
    }
    if (kind == c->kind) {
        switch (kind) {
        case K_OBJ: Py_INCREF(o); ((PyObject **)c->data)[c->n] = o; break;
        case K_I64: ((int64_t *)c->data)[c->n] = i; break;
        case K_F64: ((double *)c->data)[c->n] = f; break;
        default: ((uint8_t *)c->data)[c->n] = (uint8_t)i; break;
        }
        c->n++;
        return 0;
    }
    PyObject *obj = o ? Py_NewRef(o)
                    : kind == K_I64 ? PyLong_FromLongLong(i)
                    : kind == K_F64 ? PyFloat_FromDouble(f)
                    : Py_NewRef(i ? Py_True : Py_False);
    if (obj == NULL)
        return -1;
    int rc = c->kind == K_OBJ ? 0 : col_to_objects(c);
    if (rc == 0)
        rc = col_grow(c, c->n + 1);
    if (rc == 0)
        ((PyObject **)c->data)[c->n++] = obj;
    else
        Py_DECREF(obj);
    return rc;
}

/* A value of a type the column's kind cannot hold: the column becomes an object column. */
static int col_to_objects(Col *c)
{
    PyObject **objs = PyMem_Calloc((size_t)(c->cap ? c->cap : 1), sizeof(PyObject *));
    if (objs == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < c->n; i++) {
        if (c->miss && c->miss[i])
            continue;
        PyObject *o;
        if (c->kind == K_I64)
            o = PyLong_FromLongLong(((int64_t *)c->data)[i]);
        else if (c->kind == K_F64)
            o = PyFloat_FromDouble(((double *)c->data)[i]);
        else
            o = ((uint8_t *)c->data)[i] ? Py_NewRef(Py_True) : Py_NewRef(Py_False);
        if (o == NULL) {
            for (Py_ssize_t j = 0; j < i; j++)
                Py_XDECREF(objs[j]);
            PyMem_Free(objs);
            return -1;
        }
        objs[i] = o;
    }
    PyMem_Free(c->data);
    PyMem_Free(c->miss);
    c->data = objs;
    c->miss = NULL;
    c->nmiss = 0;
    c->kind = K_OBJ;
    return 0;
}

int col_py(Col *c, PyObject *o)
{
    if (o == NULL || o == Py_None)
        return col_none(c);
    switch (c->kind) {
    case K_OBJ:
        return col_obj(c, o);
    case K_I64:
        if (PyLong_CheckExact(o)) {
            int overflow = 0;
            long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
            if (v == -1 && PyErr_Occurred())
                return -1;
            if (!overflow)
                return col_i64(c, v);
        }
        break;
    case K_F64:
        if (PyFloat_CheckExact(o))
            return col_f64(c, PyFloat_AS_DOUBLE(o));
        break;
    default:
        if (PyBool_Check(o))
            return col_bool(c, o == Py_True);
        break;
    }
    if (col_to_objects(c))
        return -1;
    return col_obj(c, o);
}

void col_clear(Col *c)
{
    if (c->kind == K_OBJ && c->data) {
        PyObject **objs = c->data;
        for (Py_ssize_t i = 0; i < c->n; i++)
            Py_XDECREF(objs[i]);
    }
    PyMem_Free(c->data);
    PyMem_Free(c->miss);
    c->data = NULL;
    c->miss = NULL;
    c->n = c->cap = c->nmiss = 0;
}

/* ------------------------------------------------------------------ owned buffers */

/* A typed column's values (or its mask) handed over without a copy: numpy.frombuffer views
 * them, and the memory is freed with the last view. Pickled as a bytearray. */
typedef struct {
    PyObject_HEAD
    void *p;
    Py_ssize_t n;
} Owned;

static PyTypeObject *owned_type;

static int owned_getbuffer(PyObject *self, Py_buffer *view, int flags)
{
    Owned *o = (Owned *)self;
    static char none[1];
    return PyBuffer_FillInfo(view, self, o->p ? o->p : none, o->n, 0, flags);
}

static void owned_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyMem_Free(((Owned *)self)->p);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *owned_reduce(PyObject *self, PyObject *unused)
{
    Owned *o = (Owned *)self;
    return Py_BuildValue("(O(N))", (PyObject *)&PyByteArray_Type,
                         PyByteArray_FromStringAndSize(o->p, o->n));
}

static PyMethodDef owned_methods[] = {
    {"__reduce__", owned_reduce, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};

static PyType_Slot owned_slots[] = {
    {Py_tp_dealloc, owned_dealloc}, {Py_bf_getbuffer, owned_getbuffer},
    {Py_tp_methods, owned_methods},
    {Py_tp_doc, "A column's memory, handed over by the core (a buffer)."}, {0, NULL}};

static PyType_Spec owned_spec = {"diag.decode._core.Owned", sizeof(Owned), 0,
                                 Py_TPFLAGS_DEFAULT, owned_slots};

int dc_owned_init(PyObject *module)
{
    PyObject *t = PyType_FromModuleAndSpec(module, &owned_spec, NULL);
    if (t == NULL)
        return -1;
    owned_type = (PyTypeObject *)t;      /* kept for the process's life */
    return 0;
}

/* *p (n bytes, PyMem-allocated) as an Owned; *p is NULL after (the caller's copy is gone) */
static PyObject *owned_take(void **p, Py_ssize_t n)
{
    if (n == 0 || owned_type == NULL)
        return PyByteArray_FromStringAndSize(*p, n);
    Owned *o = PyObject_New(Owned, owned_type);
    if (o == NULL)
        return NULL;
    void *fit = PyMem_Realloc(*p, (size_t)n);    /* the slack given back */
    o->p = fit ? fit : *p;
    o->n = n;
    *p = NULL;
    return (PyObject *)o;
}

PyObject *col_take(Col *c, PyObject *object_array)
{
    PyObject *data = NULL, *mask = Py_None;
    char kind = c->kind;
    if (kind == K_OBJ) {
        PyObject *n = PyLong_FromSsize_t(c->n);
        if (n == NULL)
            return NULL;
        data = PyObject_CallOneArg(object_array, n);
        Py_DECREF(n);
        if (data == NULL)
            return NULL;
        Py_buffer view;
        if (PyObject_GetBuffer(data, &view, PyBUF_WRITABLE | PyBUF_FORMAT | PyBUF_ND) < 0) {
            Py_DECREF(data);
            return NULL;
        }
        if (view.len != c->n * (Py_ssize_t)sizeof(PyObject *) || view.format == NULL
            || strcmp(view.format, "O") != 0) {
            PyBuffer_Release(&view);
            Py_DECREF(data);
            PyErr_SetString(PyExc_SystemError, "diag core: object_array is not an object array");
            return NULL;
        }
        PyObject **dst = view.buf, **src = c->data;
        Py_ssize_t present = 0;
        for (Py_ssize_t i = 0; i < c->n; i++) {
            PyObject *o = src[i];
            if (o == NULL)
                continue;  /* the array holds None already */
            present++;
            PyObject *old = dst[i];
            dst[i] = o;   /* the column's reference moves into the array */
            src[i] = NULL;
            Py_XDECREF(old);
        }
        PyBuffer_Release(&view);
        mask = PyLong_FromSsize_t(present);     /* objects: how many are not None */
        if (mask == NULL) {
            Py_DECREF(data);
            return NULL;
        }
    } else {
        data = owned_take(&c->data, c->n * (Py_ssize_t)kind_size(kind));
        if (data == NULL)
            return NULL;
        if (c->nmiss) {
            mask = owned_take((void **)&c->miss, c->n);
            if (mask == NULL) {
                Py_DECREF(data);
                return NULL;
            }
        } else {
            Py_INCREF(mask);
        }
    }
    Py_ssize_t rows = c->n;
    PyObject *out = Py_BuildValue("(CnNN)", kind, rows, data, mask);
    if (kind == K_OBJ)
        c->n = 0;         /* every reference moved into the array: none left to release */
    col_clear(c);
    c->hint = rows + rows / 16;
    return out;
}

/* ------------------------------------------------------------------ tables */

int table_init(Table *t, const char *name, const char *const *names, const char *kinds)
{
    t->name = name;
    t->names = names;
    t->ncols = (int)strlen(kinds);
    t->kinds = PyMem_Malloc((size_t)t->ncols + 1);
    t->cols = PyMem_Calloc((size_t)t->ncols, sizeof(Col));
    if (t->kinds == NULL || t->cols == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(t->kinds, kinds, (size_t)t->ncols + 1);
    for (int i = 0; i < t->ncols; i++)
        t->cols[i].kind = kinds[i];
    return 0;
}

void table_clear(Table *t)
{
    for (int i = 0; i < t->ncols; i++) {
        col_clear(&t->cols[i]);
        t->cols[i].kind = t->kinds[i];
    }
}

void table_free(Table *t)
{
    if (t->cols)
        table_clear(t);
    PyMem_Free(t->cols);
    PyMem_Free(t->kinds);
    t->cols = NULL;
    t->kinds = NULL;
}

int table_check(Table *t, PyObject *columns)
{
    if (!PyTuple_Check(columns) || PyTuple_GET_SIZE(columns) != t->ncols) {
        PyErr_Format(PyExc_RuntimeError,
                     "diag core was built for other %s columns: rebuild it (pip install -e .)",
                     t->name);
        return -1;
    }
    for (int i = 0; i < t->ncols; i++) {
        PyObject *item = PyTuple_GET_ITEM(columns, i);
        const char *s = PyUnicode_Check(item) ? PyUnicode_AsUTF8(item) : NULL;
        if (s == NULL || strcmp(s, t->names[i]) != 0) {
            PyErr_Format(PyExc_RuntimeError,
                         "diag core was built for other %s columns (%s): rebuild it "
                         "(pip install -e .)", t->name, t->names[i]);
            return -1;
        }
    }
    return 0;
}

PyObject *table_take(Table *t, PyObject *object_array)
{
    PyObject *out = PyDict_New();
    if (out == NULL)
        return NULL;
    for (int i = 0; i < t->ncols; i++) {
        PyObject *col = col_take(&t->cols[i], object_array);
        t->cols[i].kind = t->kinds[i];
        if (col == NULL || PyDict_SetItemString(out, t->names[i], col) < 0) {
            Py_XDECREF(col);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(col);
    }
    return out;
}

int table_py_row(Table *t, PyObject *row)
{
    PyObject *seq = PySequence_Fast(row, "a row must be a sequence");
    if (seq == NULL)
        return -1;
    if (PySequence_Fast_GET_SIZE(seq) != t->ncols) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_RuntimeError, "diag core: a %s row of %zd values, %d columns",
                     t->name, PySequence_Fast_GET_SIZE(seq), t->ncols);
        return -1;
    }
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (int i = 0; i < t->ncols; i++) {
        if (col_py(&t->cols[i], items[i])) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    return 0;
}
