/* One BGP message -> the rows of the reference's diag/decode/bgp.py, for the messages a busy
 * session is made of: KEEPALIVEs and UPDATEs of IPv4/IPv6 unicast and multicast (body NLRI,
 * MP_REACH_NLRI, MP_UNREACH_NLRI, ADD-PATH as negotiated) whose attributes are ORIGIN, AS_PATH,
 * NEXT_HOP, MED, LOCAL_PREF, ATOMIC_AGGREGATE, AGGREGATOR, AS4_AGGREGATOR, COMMUNITIES,
 * ORIGINATOR_ID, CLUSTER_LIST and LARGE_COMMUNITY, all well formed.
 *
 * Anything else goes to the reference (bgp.decode_message, one message): OPEN, NOTIFICATION,
 * ROUTE-REFRESH, unknown types, every problem the reference would word (a bad length, a bad
 * flag, a duplicate, a missing well-known attribute, a bad prefix), AS_TRANS in the path and
 * AS4_PATH (the RFC 6793 merge), extended communities, Prefix-SID / BGP-LS / PMSI, unknown
 * attributes, the other families (labeled, VPN, EVPN, BGP-LS, flow spec ...), and an assumed
 * context whose NLRI would need the ADD-PATH guess.  dc_emit_reference turns the reference's
 * Decoded into the same rows.
 */
#include "dec.h"

#define HEADER_LEN 19
#define MAX_PREFIXES 65536
#define AS_TRANS 23456
#define CACHE_MAX 16384

enum { DECODED = 1, REFERENCE = 0, ERROR = -1 };

/* ATTRIBUTE_COLUMNS positions */
enum {
    A_NEXT_HOP, A_NEXT_HOP_LL, A_ORIGIN, A_AS_PATH, A_AS_PATH_STR, A_AS4_PATH, A_AS4_PATH_STR,
    A_MED, A_LOCAL_PREF, A_ATOMIC, A_AGGREGATOR, A_AS4_AGGREGATOR, A_COMMUNITIES, A_LARGE,
    A_EXT, A_ORIGINATOR, A_CLUSTER, A_UNKNOWN, A_EFFECTIVE, A_EFFECTIVE_STR, A_NOTE, A_SID,
    A_LS, A_PMSI, N_ATTRS
};

/* bgp._nlri without its guesses: 1 parsed, 0 for the reference, -1 no memory */
static int walk_nlri(Span data, Py_ssize_t pos, Py_ssize_t end, int v6, int addpath, int assumed,
                     Nlri *out)
{
    out->v6 = v6;
    out->addpath = addpath;
    out->data = data;
    out->n = 0;
    int max_bits = v6 ? 128 : 32, defaults = 0;
    while (pos < end) {
        uint32_t id = 0;
        if (addpath) {
            if (pos + 5 > end)
                return 0;
            id = rd32(data, pos);
            pos += 4;
        }
        int plen = (int)rd8(data, pos);
        if (plen > max_bits)
            return 0;
        Py_ssize_t nxt = pos + 1 + ((plen + 7) >> 3);
        if (nxt > end || out->n == MAX_PREFIXES)
            return 0;
        if (out->n == out->cap) {
            Py_ssize_t cap = out->cap, cap2 = out->cap;
            if (dc_grow((void **)&out->pos, &cap, out->n + 1, sizeof(int32_t))
                || dc_grow((void **)&out->ids, &cap2, out->n + 1, sizeof(uint32_t)))
                return -1;
            out->cap = cap < cap2 ? cap : cap2;
        }
        out->pos[out->n] = (int32_t)pos;
        out->ids[out->n] = id;
        out->n++;
        defaults += plen == 0;
        pos = nxt;
    }
    /* an assumed context reads a repeated default route as ADD-PATH ids: the reference guesses */
    if (assumed && !addpath && out->n > 1 && defaults > 1)
        return 0;
    return 1;
}

static int has_addpath(const Ctx *c, int afi, int safi)
{
    for (int i = 0; i < c->naddpath; i++)
        if (c->addpath[i] == (uint32_t)(afi << 8 | safi))
            return 1;
    return 0;
}

/* ---------------------------------------------------------------- attribute values */

static PyObject *as_path_value(Decoder *d, Span data, Py_ssize_t pos, Py_ssize_t end, int width,
                               int *as_trans)
{
    /* cached by value and width: (list, text, AS_TRANS seen) */
    Py_ssize_t len = end - pos;
    SKEntry *shortcut = NULL;
    if (len + 1 <= SK_MAX) {
        uint8_t k[SK_MAX];
        k[0] = (uint8_t)width;
        if (len)
            memcpy(k + 1, rdp(data, pos, len), (size_t)len);
        shortcut = skmap_get(&d->short_paths, k, (size_t)len + 1, 1);
        if (shortcut == NULL)
            return NULL;
        if (shortcut->obj != NULL) {
            if (shortcut->obj != Py_None)
                *as_trans = PyTuple_GET_ITEM(shortcut->obj, 2) == Py_True;
            return Py_NewRef(shortcut->obj);
        }
    }
    PyObject *key = PyBytes_FromStringAndSize(NULL, len + 1);
    if (key == NULL)
        return NULL;
    char *k = PyBytes_AS_STRING(key);
    k[0] = (char)width;
    if (len)
        memcpy(k + 1, rdp(data, pos, len), (size_t)len);
    PyObject *hit = PyDict_GetItemWithError(d->as_paths, key);
    if (hit != NULL || PyErr_Occurred()) {
        Py_DECREF(key);
        if (hit == NULL)
            return NULL;
        if (hit != Py_None)
            *as_trans = PyTuple_GET_ITEM(hit, 2) == Py_True;
        if (shortcut)
            shortcut->obj = Py_NewRef(hit);
        return Py_NewRef(hit);
    }
    PyObject *path = PyList_New(0), *parts = PyList_New(0);
    PyObject *out = NULL;
    int trans = 0;
    if (path == NULL || parts == NULL)
        goto done;
    while (pos < end) {
        if (pos + 2 > end)
            goto bad;
        int seg_type = (int)rd8(data, pos), count = (int)rd8(data, pos + 1);
        pos += 2;
        Py_ssize_t seg_end = pos + (Py_ssize_t)count * width;
        if (count == 0 || seg_end > end || seg_type < 1 || seg_type > 4)
            goto bad;
        static const char *const open[5] = {"", "{", "", "(", "["};
        static const char *const close[5] = {"", "}", "", ")", "]"};
        static const char sep[5] = {0, ',', ' ', ' ', ','};
        char text[256 * 11 + 4];
        size_t at = (size_t)snprintf(text, sizeof text, "%s", open[seg_type]);
        for (int i = 0; i < count; i++) {
            uint32_t asn = width == 4 ? rd32(data, pos + 4 * i) : rd16(data, pos + 2 * i);
            trans |= asn == AS_TRANS;
            PyObject *v = PyLong_FromUnsignedLong(asn);
            if (v == NULL || PyList_Append(path, v) < 0) {
                Py_XDECREF(v);
                goto done;
            }
            Py_DECREF(v);
            if (i)
                text[at++] = sep[seg_type];
            at += (size_t)snprintf(text + at, sizeof text - at, "%u", asn);
        }
        at += (size_t)snprintf(text + at, sizeof text - at, "%s", close[seg_type]);
        PyObject *part = PyUnicode_FromStringAndSize(text, (Py_ssize_t)at);
        if (part == NULL || PyList_Append(parts, part) < 0) {
            Py_XDECREF(part);
            goto done;
        }
        Py_DECREF(part);
        pos = seg_end;
    }
    {
        PyObject *space = PyUnicode_FromString(" ");
        PyObject *joined = space ? PyUnicode_Join(space, parts) : NULL;
        Py_XDECREF(space);
        if (joined == NULL)
            goto done;
        out = Py_BuildValue("(NNO)", path, joined, trans ? Py_True : Py_False);
        path = NULL;
    }
    goto store;
bad:
    out = Py_NewRef(Py_None);
store:
    if (out != NULL) {
        if (PyDict_GET_SIZE(d->as_paths) >= CACHE_MAX)
            PyDict_Clear(d->as_paths);
        if (PyDict_SetItem(d->as_paths, key, out) < 0)
            Py_CLEAR(out);
        else if (out != Py_None)
            *as_trans = trans;
        if (out && shortcut)
            shortcut->obj = Py_NewRef(out);
    }
done:
    Py_XDECREF(path);
    Py_XDECREF(parts);
    Py_DECREF(key);
    return out;
}

static PyObject *communities_value(Decoder *d, Span data, Py_ssize_t pos, Py_ssize_t len)
{
    SKEntry *shortcut = NULL;
    if (len <= SK_MAX) {
        shortcut = skmap_get(&d->short_communities, len ? rdp(data, pos, len) : (const uint8_t *)"",
                             (size_t)len, 1);
        if (shortcut == NULL)
            return NULL;
        if (shortcut->obj)
            return Py_NewRef(shortcut->obj);
    }
    PyObject *key = PyBytes_FromStringAndSize(len ? (const char *)rdp(data, pos, len) : "", len);
    if (key == NULL)
        return NULL;
    PyObject *hit = PyDict_GetItemWithError(d->communities, key);
    if (hit != NULL || PyErr_Occurred()) {
        Py_DECREF(key);
        if (hit && shortcut)
            shortcut->obj = Py_NewRef(hit);
        return hit ? Py_NewRef(hit) : NULL;
    }
    PyObject *list = PyList_New(len / 4);
    if (list == NULL) {
        Py_DECREF(key);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < len / 4; i++) {
        uint32_t v = rd32(data, pos + 4 * i);
        PyObject *num = PyLong_FromUnsignedLong(v);
        PyObject *name = num ? PyDict_GetItemWithError(d->well_known, num) : NULL;
        Py_XDECREF(num);
        if (name == NULL && PyErr_Occurred()) {
            Py_DECREF(list);
            Py_DECREF(key);
            return NULL;
        }
        uint32_t halves[2] = {v >> 16, v & 0xFFFF};
        PyObject *s = name ? Py_NewRef(name) : text_uints(halves, 2);
        if (s == NULL) {
            Py_DECREF(list);
            Py_DECREF(key);
            return NULL;
        }
        PyList_SET_ITEM(list, i, s);
    }
    if (PyDict_GET_SIZE(d->communities) >= CACHE_MAX)
        PyDict_Clear(d->communities);
    int rc = PyDict_SetItem(d->communities, key, list);
    Py_DECREF(key);
    if (rc < 0) {
        Py_DECREF(list);
        return NULL;
    }
    if (shortcut)
        shortcut->obj = Py_NewRef(list);
    return list;
}

static PyObject *ipv4_list(Decoder *d, Span data, Py_ssize_t pos, Py_ssize_t len)
{
    PyObject *list = PyList_New(len / 4);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < len / 4; i++) {
        PyObject *s = text_ipv4(d->tx, rdp(data, pos + 4 * i, 4));
        if (s == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, Py_NewRef(s));
    }
    return list;
}

static PyObject *large_list(Span data, Py_ssize_t pos, Py_ssize_t len)
{
    PyObject *list = PyList_New(len / 12);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < len / 12; i++) {
        Py_ssize_t p = pos + 12 * i;
        uint32_t parts[3] = {rd32(data, p), rd32(data, p + 4), rd32(data, p + 8)};
        PyObject *s = text_uints(parts, 3);
        if (s == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, s);
    }
    return list;
}

/* bgp_attrs._next_hop: by length, the VPN forms with their 8-octet RD too */
static int next_hop_values(Decoder *d, Span nh, PyObject **hop, PyObject **ll)
{
    Texts *tx = d->tx;
    *hop = *ll = NULL;
    switch (nh.n) {
    case 0: return 0;
    case 4: *hop = Py_NewRef(text_ipv4(tx, rdp(nh, 0, 4))); return 0;
    case 16: *hop = Py_NewRef(text_ipv6_bgp(tx, rdp(nh, 0, 16))); return 0;
    case 32:
        *hop = Py_NewRef(text_ipv6_bgp(tx, rdp(nh, 0, 16)));
        *ll = Py_NewRef(text_ipv6_bgp(tx, rdp(nh, 16, 16)));
        return 0;
    case 12: *hop = Py_NewRef(text_ipv4(tx, rdp(nh, 8, 4))); return 0;
    case 24: *hop = Py_NewRef(text_ipv6_bgp(tx, rdp(nh, 8, 16))); return 0;
    case 48:
        *hop = Py_NewRef(text_ipv6_bgp(tx, rdp(nh, 8, 16)));
        *ll = Py_NewRef(text_ipv6_bgp(tx, rdp(nh, 32, 16)));
        return 0;
    default: {
        char hex[2 * 256 + 1];
        for (Py_ssize_t i = 0; i < nh.n && i < 256; i++)
            snprintf(hex + 2 * i, 3, "%02x", rd8(nh, i));
        *hop = PyUnicode_FromStringAndSize(hex, 2 * (nh.n < 256 ? nh.n : 256));
        return *hop ? 0 : -1;
    }
    }
}

/* ---------------------------------------------------------------- rows */

typedef struct {
    Decoder *d;
    Conn *c;
    int sender, receiver, depth;
    int64_t last_frame, first_frame;
    double when;
} Head;

static int head_of(Head *h, Decoder *d, Conn *c, int sender, int64_t last, int64_t first,
                   double when, int depth)
{
    h->d = d;
    h->c = c;
    h->sender = sender;
    h->receiver = 1 - sender;
    if (c->ends[0].port == c->ends[1].port && c->ends[0].ip.fam == c->ends[1].ip.fam
        && memcmp(c->ends[0].ip.a, c->ends[1].ip.a, 16) == 0)
        h->receiver = sender;
    h->depth = depth;
    h->last_frame = last;
    h->first_frame = first;
    h->when = when;
    return 0;
}

#define TRY(x) do { if ((x) < 0) return -1; } while (0)

static int message_head(const Head *h)
{
    Col *k = h->d->messages.cols;
    const Conn *c = h->c;
    TRY(col_i64(&k[0], h->last_frame));
    TRY(col_i64(&k[1], h->first_frame));
    TRY(col_f64(&k[2], h->when));
    TRY(col_obj(&k[3], c->ends[h->sender].text));
    TRY(col_i64(&k[4], c->ends[h->sender].port));
    TRY(col_obj(&k[5], c->ends[h->receiver].text));
    TRY(col_i64(&k[6], c->ends[h->receiver].port));
    TRY(col_obj(&k[7], c->session));
    TRY(col_i64(&k[8], h->depth));
    return 0;
}

#define MSG_HEAD 9
#define MSG_COLS 26   /* bgp.MESSAGE_COLUMNS before the attributes */
#define ROUTE_HEAD 7
#define ROUTE_OWN 15  /* action, afi, safi, prefix, nlri_raw, path_id + 9 family columns */

static int route_head(const Head *h)
{
    Col *k = h->d->routes.cols;
    const Conn *c = h->c;
    TRY(col_i64(&k[0], h->last_frame));
    TRY(col_f64(&k[1], h->when));
    TRY(col_obj(&k[2], c->ends[h->sender].text));
    TRY(col_i64(&k[3], c->ends[h->sender].port));
    TRY(col_obj(&k[4], c->ends[h->receiver].text));
    TRY(col_i64(&k[5], c->ends[h->receiver].port));
    TRY(col_obj(&k[6], c->session));
    return 0;
}

/* one native route group: its row, then one prefix per NLRI entry */
static int native_group(const Head *h, PyObject *action, int afi, int safi, PyObject **attrs,
                        int attributes, const Nlri *nl)
{
    Decoder *d = h->d;
    PyObject *family = d->s_family[afi][safi];
    if (d->fold && dc_fold_routes_native(d, h->c->session, family, action, nl->v6, nl->data,
                                         nl->pos, nl->n))
        return -1;
    if (!d->tables)
        return 0;
    TRY(route_head(h));
    Col *k = d->routes.cols + ROUTE_HEAD;
    TRY(col_obj(&k[0], action));
    TRY(col_obj(&k[1], d->s_afi[afi]));
    TRY(col_obj(&k[2], d->s_safi[safi]));
    for (int i = 3; i < ROUTE_OWN; i++)
        TRY(col_none(&k[i]));
    k += ROUTE_OWN;
    for (int i = 0; i < N_ATTRS; i++) {
        if (i == A_ATOMIC)
            TRY(col_bool(&k[i], attributes && attrs[i] == Py_True));
        else
            TRY(col_obj(&k[i], attributes ? attrs[i] : NULL));
    }
    TRY(col_i64(&d->route_counts, nl->n));
    for (Py_ssize_t i = 0; i < nl->n; i++) {
        Py_ssize_t p = nl->pos[i];
        int plen = (int)rd8(nl->data, p);
        int nbytes = (plen + 7) >> 3;
        /* the text is made at take, with the chunk's other prefixes (prefix_texts_fill) */
        TRY(prefix_texts_add(&d->pending, d->route_prefix.n, nl->v6, plen,
                             rdp(nl->data, p + 1, nbytes), nbytes));
        TRY(col_none(&d->route_prefix));
        TRY(nl->addpath ? col_i64(&d->route_path_id, nl->ids[i]) : col_none(&d->route_path_id));
    }
    return 0;
}

/* ---------------------------------------------------------------- UPDATE */

typedef struct {
    int seen64;              /* bit N: attribute type N (< 64) present */
    uint64_t seen;
    int origin;
    int has_as_path;
    Py_ssize_t as_path_at, as_path_end;
    int has_mp_reach, mr_afi, mr_safi;
    Span mr_nh;
    Py_ssize_t mr_start, mr_end;
    int has_mp_unreach, mu_afi, mu_safi;
    Py_ssize_t mu_start, mu_end;
} Walk;

static int is_optional(int t)
{
    return t == 4 || t == 7 || t == 8 || t == 9 || t == 10 || t == 14 || t == 15 || t == 16
           || t == 17 || t == 18 || t == 22 || t == 29 || t == 32 || t == 40;
}

static int is_well_known(int t) { return t == 1 || t == 2 || t == 3 || t == 5 || t == 6; }

/* the attribute block: values into attrs (new references), REFERENCE on anything unusual */
static int attributes(Decoder *d, const Ctx *ctx, Span data, Py_ssize_t pos, Py_ssize_t end,
                      PyObject **attrs, Walk *w)
{
    memset(w, 0, sizeof *w);
    while (pos < end) {
        if (pos + 3 > end)
            return REFERENCE;
        uint32_t flags = rd8(data, pos), atype = rd8(data, pos + 1);
        Py_ssize_t length;
        if (flags & 0x10) {
            if (pos + 4 > end)
                return REFERENCE;
            length = (Py_ssize_t)rd16(data, pos + 2);
            pos += 4;
        } else {
            length = (Py_ssize_t)rd8(data, pos + 2);
            pos += 3;
        }
        Py_ssize_t vend = pos + length;
        if (vend > end)
            return REFERENCE;
        if (atype < 64) {
            if (w->seen >> atype & 1)
                return REFERENCE;                  /* duplicate */
            w->seen |= 1ULL << atype;
        }
        if (is_well_known((int)atype) && (flags & 0x80))
            return REFERENCE;
        if (is_optional((int)atype) && !(flags & 0x80))
            return REFERENCE;
        PyObject *v = NULL;
        switch (atype) {
        case 1:
            if (length != 1 || rd8(data, pos) >= 3)
                return REFERENCE;
            attrs[A_ORIGIN] = Py_NewRef(d->s_origin[rd8(data, pos)]);
            break;
        case 2: {
            int trans = 0;
            v = as_path_value(d, data, pos, vend, ctx->as4 ? 4 : 2, &trans);
            if (v == NULL)
                return ERROR;
            if (v == Py_None || trans) {
                Py_DECREF(v);
                return REFERENCE;      /* 2-octet fallback, problem, or AS_TRANS: reference */
            }
            attrs[A_AS_PATH] = Py_NewRef(PyTuple_GET_ITEM(v, 0));
            attrs[A_AS_PATH_STR] = Py_NewRef(PyTuple_GET_ITEM(v, 1));
            Py_DECREF(v);
            w->has_as_path = 1;
            break;
        }
        case 3:
            if (length != 4)
                return REFERENCE;
            attrs[A_NEXT_HOP] = Py_NewRef(text_ipv4(d->tx, rdp(data, pos, 4)));
            break;
        case 4: case 5:
            if (length != 4)
                return REFERENCE;
            v = PyLong_FromUnsignedLong(rd32(data, pos));
            if (v == NULL)
                return ERROR;
            attrs[atype == 4 ? A_MED : A_LOCAL_PREF] = v;
            break;
        case 6:
            if (length)
                return REFERENCE;
            attrs[A_ATOMIC] = Py_NewRef(Py_True);
            break;
        case 7: case 18: {
            uint32_t asn;
            const uint8_t *ip;
            if (length == 8) {
                if (atype == 7 && !ctx->as4 && !ctx->assumed)
                    return REFERENCE;
                asn = rd32(data, pos);
                ip = rdp(data, pos + 4, 4);
            } else if (length == 6 && atype == 7) {
                if (ctx->as4 && !ctx->assumed)
                    return REFERENCE;
                asn = rd16(data, pos);
                ip = rdp(data, pos + 2, 4);
            } else {
                return REFERENCE;
            }
            PyObject *ipt = text_ipv4(d->tx, ip);
            if (ipt == NULL)
                return ERROR;
            v = PyUnicode_FromFormat("%u:%U", asn, ipt);
            if (v == NULL)
                return ERROR;
            attrs[atype == 7 ? A_AGGREGATOR : A_AS4_AGGREGATOR] = v;
            break;
        }
        case 8:
            if (length % 4)
                return REFERENCE;
            v = communities_value(d, data, pos, length);
            if (v == NULL)
                return ERROR;
            attrs[A_COMMUNITIES] = v;
            break;
        case 9:
            if (length != 4)
                return REFERENCE;
            attrs[A_ORIGINATOR] = Py_NewRef(text_ipv4(d->tx, rdp(data, pos, 4)));
            break;
        case 10:
            if (length % 4)
                return REFERENCE;
            v = ipv4_list(d, data, pos, length);
            if (v == NULL)
                return ERROR;
            attrs[A_CLUSTER] = v;
            break;
        case 14: {
            if (length < 5)
                return REFERENCE;
            int nh_len = (int)rd8(data, pos + 3);
            Py_ssize_t nlri_start = pos + 4 + nh_len + 1;
            if (nlri_start > vend)
                return REFERENCE;
            w->has_mp_reach = 1;
            w->mr_afi = (int)rd16(data, pos);
            w->mr_safi = (int)rd8(data, pos + 2);
            w->mr_nh = subspan(data, pos + 4, nh_len);
            w->mr_start = nlri_start;
            w->mr_end = vend;
            break;
        }
        case 15:
            if (length < 3)
                return REFERENCE;
            w->has_mp_unreach = 1;
            w->mu_afi = (int)rd16(data, pos);
            w->mu_safi = (int)rd8(data, pos + 2);
            w->mu_start = pos + 3;
            w->mu_end = vend;
            break;
        case 32:
            if (length % 12)
                return REFERENCE;
            v = large_list(data, pos, length);
            if (v == NULL)
                return ERROR;
            attrs[A_LARGE] = v;
            break;
        default:
            return REFERENCE;   /* extended communities, AS4_PATH, TLV attributes, unknown */
        }
        pos = vend;
    }
    if (w->has_as_path) {
        attrs[A_EFFECTIVE] = Py_NewRef(attrs[A_AS_PATH]);
        attrs[A_EFFECTIVE_STR] = Py_NewRef(attrs[A_AS_PATH_STR]);
    }
    return DECODED;
}

static int plain_family(int afi, int safi) { return (afi == 1 || afi == 2) && (safi == 1 || safi == 2); }

static int update(Decoder *d, const Ctx *ctx, Span data, const Head *h)
{
    Nlri *nw = &d->nlri[0], *na = &d->nlri[1], *nmu = &d->nlri[2], *nmr = &d->nlri[3];
    int walked;
    Py_ssize_t end = data.n, pos = HEADER_LEN;
    if (end < 23)
        return REFERENCE;
    Py_ssize_t wlen = rd16(data, pos), w_start = pos + 2, w_end = w_start + wlen;
    if (w_end + 2 > end)
        return REFERENCE;
    Py_ssize_t alen = rd16(data, w_end), a_start = w_end + 2, a_end = a_start + alen;
    if (a_end > end)
        return REFERENCE;
    int v4_addpath = has_addpath(ctx, 1, 1);
    if (ctx->addpath_overflow)
        return REFERENCE;
    walked = walk_nlri(data, w_start, w_end, 0, v4_addpath, ctx->assumed, nw);
    if (walked <= 0)
        return walked < 0 ? ERROR : REFERENCE;
    PyObject *attrs[N_ATTRS] = {0};
    Walk w;
    int rc = attributes(d, ctx, data, a_start, a_end, attrs, &w);
    if (rc != DECODED)
        goto out;
    rc = REFERENCE;
    walked = walk_nlri(data, a_end, end, 0, v4_addpath, ctx->assumed, na);
    if (walked <= 0) {
        rc = walked < 0 ? ERROR : REFERENCE;
        goto out;
    }
    int mr = w.has_mp_reach, mu = w.has_mp_unreach;
    if ((mr && !plain_family(w.mr_afi, w.mr_safi)) || (mu && !plain_family(w.mu_afi, w.mu_safi)))
        goto out;
    nmu->n = nmr->n = 0;
    if (mu) {
        walked = walk_nlri(data, w.mu_start, w.mu_end, w.mu_afi == 2,
                           has_addpath(ctx, w.mu_afi, w.mu_safi), ctx->assumed, nmu);
        if (walked <= 0) {
            rc = walked < 0 ? ERROR : REFERENCE;
            goto out;
        }
    }
    if (mr) {
        walked = walk_nlri(data, w.mr_start, w.mr_end, w.mr_afi == 2,
                           has_addpath(ctx, w.mr_afi, w.mr_safi), ctx->assumed, nmr);
        if (walked <= 0) {
            rc = walked < 0 ? ERROR : REFERENCE;
            goto out;
        }
    }
    /* RFC 7606: what announces routes carries ORIGIN and AS_PATH (and NEXT_HOP for the body) */
    uint64_t need = na->n ? (1 << 1 | 1 << 2 | 1 << 3)
                    : (mr && w.mr_start < w.mr_end) ? (1 << 1 | 1 << 2) : 0;
    if ((w.seen & need) != need)
        goto out;
    PyObject *mp_hop = NULL, *mp_ll = NULL;
    if (mr && next_hop_values(d, w.mr_nh, &mp_hop, &mp_ll)) {
        rc = ERROR;
        goto out;
    }
    int64_t n_withdrawn = nw->n + nmu->n, n_announced = na->n + nmr->n;
    PyObject *eor = NULL;
    if (mu && w.mu_start >= w.mu_end && !nw->n && !na->n && !mr)
        eor = d->s_family[w.mu_afi][w.mu_safi];
    if (a_end == a_start && w_end == w_start && end <= a_end)
        eor = d->s_ipv4_unicast;
    /* the message row */
    rc = ERROR;
    if (d->fold) {
        if (dc_fold_message(d, h->c->session, 2, d->s_types[2], 0, h->when))
            goto out_hop;
        if (eor) {
            PyObject *row = Py_BuildValue(
                "{s:O,s:i,s:L,s:d,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O}",
                "src", h->c->ends[h->sender].text, "sport", h->c->ends[h->sender].port,
                "frame", (long long)h->last_frame, "ts", h->when, "eor", eor,
                "open_my_as", Py_None, "open_bgp_id", Py_None, "open_hold_time", Py_None,
                "open_capabilities", Py_None, "notify_code", Py_None, "notify_subcode", Py_None,
                "notify_name", Py_None, "notify_subname", Py_None, "notify_text", Py_None);
            if (row == NULL || dc_fold_special(d, h->c->session, d->s_types[2], row)) {
                Py_XDECREF(row);
                goto out_hop;
            }
            Py_DECREF(row);
        }
    }
    if (d->tables) {
        if (message_head(h))
            goto out_hop;
        Col *k = d->messages.cols + MSG_HEAD;
        if (col_i64(&k[0], 2) || col_obj(&k[1], d->s_types[2]) || col_i64(&k[2], end)
            || col_none(&k[3]))
            goto out_hop;
        for (int i = 4; i < 22; i++)
            if (col_none(&k[i]))
                goto out_hop;
        if (col_i64(&k[22], n_withdrawn) || col_i64(&k[23], n_announced) || col_obj(&k[24], eor)
            || col_none(&k[25]))
            goto out_hop;
        k += MSG_COLS;
        for (int i = 0; i < N_ATTRS; i++) {
            int bad;
            if (i == A_ATOMIC)
                bad = col_bool(&k[i], attrs[i] == Py_True);
            else if (i == A_NEXT_HOP && attrs[i] == NULL)
                bad = col_obj(&k[i], mp_hop);
            else if (i == A_NEXT_HOP_LL && attrs[A_NEXT_HOP] == NULL)
                bad = col_obj(&k[i], mp_ll);
            else
                bad = col_obj(&k[i], attrs[i]);
            if (bad)
                goto out_hop;
        }
    }
    /* the route groups, in the reference's order */
    if (nw->n && native_group(h, d->s_withdraw, 1, 1, attrs, 0, nw))
        goto out_hop;
    if (na->n && native_group(h, d->s_announce, 1, 1, attrs, 1, na))
        goto out_hop;
    if (nmu->n && native_group(h, d->s_withdraw, w.mu_afi, w.mu_safi, attrs, 0, nmu))
        goto out_hop;
    if (nmr->n) {
        PyObject *saved[2] = {attrs[A_NEXT_HOP], attrs[A_NEXT_HOP_LL]};
        attrs[A_NEXT_HOP] = mp_hop;
        attrs[A_NEXT_HOP_LL] = mp_ll;
        int bad = native_group(h, d->s_announce, w.mr_afi, w.mr_safi, attrs, 1, nmr);
        attrs[A_NEXT_HOP] = saved[0];
        attrs[A_NEXT_HOP_LL] = saved[1];
        if (bad)
            goto out_hop;
    }
    rc = DECODED;
out_hop:
    Py_XDECREF(mp_hop);
    Py_XDECREF(mp_ll);
out:
    for (int i = 0; i < N_ATTRS; i++)
        Py_XDECREF(attrs[i]);
    return rc;
}

static int keepalive(Decoder *d, Span data, const Head *h)
{
    if (data.n != HEADER_LEN)
        return REFERENCE;
    if (d->fold && dc_fold_message(d, h->c->session, 4, d->s_types[4], 0, h->when))
        return ERROR;
    if (d->tables) {
        if (message_head(h))
            return ERROR;
        Col *k = d->messages.cols + MSG_HEAD;
        if (col_i64(&k[0], 4) || col_obj(&k[1], d->s_types[4]) || col_i64(&k[2], HEADER_LEN))
            return ERROR;
        for (int i = 3; i < MSG_COLS + N_ATTRS; i++)
            if (col_none(&k[i]))
                return ERROR;
    }
    return DECODED;
}

int dc_message(Decoder *d, Conn *c, int sender, Span raw, int64_t last_frame,
               int64_t first_frame, double when, int depth)
{
    if (raw.n < HEADER_LEN)
        return REFERENCE;
    for (int i = 0; i < 16; i++)
        if (rd8(raw, i) != 0xFF)
            return REFERENCE;
    if ((Py_ssize_t)rd16(raw, 16) != raw.n)
        return REFERENCE;
    Head h;
    head_of(&h, d, c, sender, last_frame, first_frame, when, depth);
    const Ctx *ctx = c->has_ctx[sender] ? &c->ctx[sender] : &d->default_ctx;
    switch (rd8(raw, 18)) {
    case 2: return update(d, ctx, raw, &h);
    case 4: return keepalive(d, raw, &h);
    default: return REFERENCE;
    }
}

/* ---------------------------------------------------------------- the reference's rows */

int dc_emit_reference(Decoder *d, Conn *c, int sender, PyObject *decoded, int64_t last_frame,
                      int64_t first_frame, double when, int depth)
{
    Head h;
    head_of(&h, d, c, sender, last_frame, first_frame, when, depth);
    PyObject *row = PyObject_GetAttrString(decoded, "row");
    PyObject *groups = row ? PyObject_GetAttrString(decoded, "groups") : NULL;
    PyObject *values = NULL, *gseq = NULL;
    int rc = -1;
    if (groups == NULL)
        goto done;
    values = PyDict_Values(row);
    if (values == NULL)
        goto done;
    if (d->tables) {
        if (message_head(&h))
            goto done;
        Col *k = d->messages.cols + MSG_HEAD;
        if (PyList_GET_SIZE(values) != MSG_COLS + N_ATTRS) {
            PyErr_SetString(PyExc_RuntimeError, "diag core: a message row of another shape");
            goto done;
        }
        for (int i = 0; i < MSG_COLS + N_ATTRS; i++)
            if (col_py(&k[i], PyList_GET_ITEM(values, i)))
                goto done;
    }
    if (d->fold) {
        PyObject *type_name = PyDict_GetItemString(row, "type_name");
        PyObject *malformed = PyDict_GetItemString(row, "malformed");
        PyObject *eor = PyDict_GetItemString(row, "eor");
        PyObject *type = PyDict_GetItemString(row, "type");
        int t = type && PyLong_Check(type) ? (int)PyLong_AsLong(type) : 0;
        if (PyErr_Occurred())
            goto done;
        if (dc_fold_message(d, c->session, t, type_name ? type_name : Py_None,
                            malformed && malformed != Py_None, when))
            goto done;
        int special = (type_name && type_name != Py_None
                       && (PyUnicode_CompareWithASCIIString(type_name, "OPEN") == 0
                           || PyUnicode_CompareWithASCIIString(type_name, "NOTIFICATION") == 0))
                      || (eor && eor != Py_None);
        if (special) {
            static const char *const names[] = {
                "eor", "open_my_as", "open_bgp_id", "open_hold_time", "open_capabilities",
                "notify_code", "notify_subcode", "notify_name", "notify_subname", "notify_text"};
            PyObject *s = Py_BuildValue("{s:O,s:i,s:L,s:d}", "src", c->ends[sender].text,
                                        "sport", c->ends[sender].port, "frame",
                                        (long long)last_frame, "ts", when);
            if (s == NULL)
                goto done;
            for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
                PyObject *v = PyDict_GetItemString(row, names[i]);
                if (PyDict_SetItemString(s, names[i], v ? v : Py_None) < 0) {
                    Py_DECREF(s);
                    goto done;
                }
            }
            int bad = dc_fold_special(d, c->session, type_name, s);
            Py_DECREF(s);
            if (bad)
                goto done;
        }
    }
    gseq = PySequence_Fast(groups, "groups");
    if (gseq == NULL)
        goto done;
    for (Py_ssize_t g = 0; g < PySequence_Fast_GET_SIZE(gseq); g++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(gseq, g);
        PyObject *base = PyTuple_GetItem(pair, 0), *prefixes = PyTuple_GetItem(pair, 1);
        if (base == NULL || prefixes == NULL)
            goto done;
        if (d->fold) {
            PyObject *afi = PyDict_GetItemString(base, "afi");
            PyObject *safi = PyDict_GetItemString(base, "safi");
            PyObject *family = PyUnicode_FromFormat("%S/%S", afi ? afi : Py_None,
                                                    safi ? safi : Py_None);
            PyObject *action = PyDict_GetItemString(base, "action");
            PyObject *rd = PyDict_GetItemString(base, "rd");
            if (family == NULL)
                goto done;
            int bad = dc_fold_routes_py(d, c->session, family, action ? action : Py_None,
                                        rd ? rd : Py_None, prefixes);
            Py_DECREF(family);
            if (bad)
                goto done;
        }
        if (!d->tables)
            continue;
        if (route_head(&h))
            goto done;
        PyObject *bv = PyDict_Values(base);
        if (bv == NULL)
            goto done;
        if (PyList_GET_SIZE(bv) != ROUTE_OWN + N_ATTRS) {
            Py_DECREF(bv);
            PyErr_SetString(PyExc_RuntimeError, "diag core: a route row of another shape");
            goto done;
        }
        Col *k = d->routes.cols + ROUTE_HEAD;
        for (int i = 0; i < ROUTE_OWN + N_ATTRS; i++) {
            if (col_py(&k[i], PyList_GET_ITEM(bv, i))) {
                Py_DECREF(bv);
                goto done;
            }
        }
        Py_DECREF(bv);
        if (PyObject_TypeCheck(prefixes, (PyTypeObject *)d->t_packed)) {
            PyObject *data = PyObject_GetAttrString(prefixes, "data");
            PyObject *offs = PyObject_GetAttrString(prefixes, "offsets");
            PyObject *v6o = PyObject_GetAttrString(prefixes, "v6");
            int ok = data && offs && v6o && PyBytes_Check(data) && PyList_Check(offs);
            if (ok) {
                Span s = {(const uint8_t *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data)};
                int v6 = PyObject_IsTrue(v6o);
                Py_ssize_t n = PyList_GET_SIZE(offs);
                ok = col_i64(&d->route_counts, n) == 0;
                for (Py_ssize_t i = 0; ok && i < n; i++) {
                    Py_ssize_t p = PyLong_AsSsize_t(PyList_GET_ITEM(offs, i));
                    ok = !PyErr_Occurred() && span_has(s, p, 1);
                    if (!ok)
                        break;
                    int plen = (int)rd8(s, p);
                    int nbytes = (plen + 7) >> 3;
                    ok = span_has(s, p + 1, nbytes);
                    PyObject *text = ok ? text_prefix(d->tx, v6, plen, rdp(s, p + 1, nbytes),
                                                      nbytes) : NULL;
                    ok = text && col_obj(&d->route_prefix, text) == 0
                         && col_none(&d->route_path_id) == 0;
                }
                if (!ok && !PyErr_Occurred())
                    PyErr_SetString(PyExc_RuntimeError, "diag core: packed prefixes out of range");
            }
            Py_XDECREF(data);
            Py_XDECREF(offs);
            Py_XDECREF(v6o);
            if (!ok)
                goto done;
        } else {
            PyObject *pseq = PySequence_Fast(prefixes, "prefixes");
            if (pseq == NULL)
                goto done;
            Py_ssize_t n = PySequence_Fast_GET_SIZE(pseq);
            int ok = col_i64(&d->route_counts, n) == 0;
            for (Py_ssize_t i = 0; ok && i < n; i++) {
                PyObject *p = PySequence_Fast_GET_ITEM(pseq, i);
                ok = PyTuple_Check(p) && PyTuple_GET_SIZE(p) == 2
                     && col_py(&d->route_path_id, PyTuple_GET_ITEM(p, 0)) == 0
                     && col_obj(&d->route_prefix, PyTuple_GET_ITEM(p, 1)) == 0;
            }
            Py_DECREF(pseq);
            if (!ok) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_RuntimeError, "diag core: a prefix of another shape");
                goto done;
            }
        }
    }
    rc = 0;
done:
    Py_XDECREF(gseq);
    Py_XDECREF(values);
    Py_XDECREF(groups);
    Py_XDECREF(row);
    return rc;
}

int dc_framing_error_row(Decoder *d, Conn *c, int sender, int64_t frame, double when, int depth,
                         PyObject *reason)
{
    Head h;
    head_of(&h, d, c, sender, frame, frame, when, depth);
    if (d->fold && dc_fold_message(d, c->session, 0, Py_None, 1, when))
        return -1;
    if (!d->tables)
        return 0;
    if (message_head(&h))
        return -1;
    Col *k = d->messages.cols + MSG_HEAD;
    for (int i = 0; i < MSG_COLS + N_ATTRS; i++)
        if (i == 3 ? col_obj(&k[i], reason) : col_none(&k[i]))
            return -1;
    return 0;
}
