/* The summary's folds of one chunk, counted while decoding (diag/decode/summary.py's fold()
 * for what the core decoded itself; diag/decode/core.py merges them with the reference's fold
 * of the frames that bailed, and CaptureSummary.apply adds them exactly as it adds its own).
 *
 * Packets: counts per (app, l3, direction, interface) combination and the time span. Tunnels:
 * counts per (type, VNI, outer addresses, outer port, inner l3). ARP: the rows the pairing
 * rule needs, in frame order. BGP: per session the time span, malformed count and counts per
 * message type; the OPEN / NOTIFICATION / End-of-RIB rows; per (session, family, action) the
 * route rows, the prefix keys not seen before in that (session, family, announce|withdraw)
 * store (distinct counting, diag.decode.nlri keys), and the first route texts while the
 * summary's sample still takes them.
 */
#include "dec.h"

#define MAX_SAMPLE 1000

static int put_addr(uint8_t *k, const Addr *a)
{
    k[0] = a->fam;
    memcpy(k + 1, a->a, 16);
    return 17;
}

/* A tuple of ``n`` new references, stolen (also when it fails: NULL if any item is NULL, its
 * exception set). Py_BuildValue parses its format string for every row it makes: building an
 * ARP row that way cost more than the rest of the ARP worker's extra work in another worker's
 * blocks. */
static PyObject *tuple_of(Py_ssize_t n, PyObject **items)
{
    PyObject *t = NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        if (items[i] == NULL)
            goto fail;
    t = PyTuple_New(n);
    if (t == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++)
        PyTuple_SET_ITEM(t, i, items[i]);
    return t;
fail:
    for (Py_ssize_t i = 0; i < n; i++)
        Py_XDECREF(items[i]);
    return NULL;
}

int dc_fold_packet(Decoder *d, const Frame *f)
{
    if (d->pk_total == 0 || f->ts < d->pk_lo)
        d->pk_lo = f->ts;
    if (d->pk_total == 0 || f->ts > d->pk_hi)
        d->pk_hi = f->ts;
    d->pk_total++;
    if (f->has_pkttype && f->pkttype == 3)
        d->pk_otherhost = 1;
    if (f->has_eth_dst && (d->pk_dst_macs.used == 0 || f->eth_dst != d->pk_last_dst)) {
        uint64_t mac = f->eth_dst;
        if (skmap_get(&d->pk_dst_macs, &mac, sizeof mac, 1) == NULL)
            return -1;
        d->pk_last_dst = mac;
    }
    uint8_t k[24];
    memset(k, 0, sizeof k);
    k[0] = (uint8_t)f->net.app;
    k[1] = (uint8_t)f->net.l3;
    k[2] = (uint8_t)(f->net.l3 == L3_OTHER ? f->net.etype >> 8 : 0);
    k[3] = (uint8_t)(f->net.l3 == L3_OTHER ? f->net.etype : 0);
    k[4] = (uint8_t)f->direction;
    memcpy(k + 8, &f->iface, sizeof(int));
    memcpy(k + 16, &f->ifindex, sizeof(int64_t));
    /* most frames share the last frame's combination: no hashing then */
    size_t at_slot = d->pk_last;
    SKEntry *e;
    if (d->pk_combos.used && at_slot < d->pk_combos.cap && d->pk_combos.slots[at_slot].used
        && memcmp(d->pk_combos.slots[at_slot].key, k, 24) == 0) {
        e = &d->pk_combos.slots[at_slot];
    } else {
        e = skmap_get(&d->pk_combos, k, 24, 1);
        if (e == NULL)
            return -1;
        d->pk_last = (size_t)(e - d->pk_combos.slots);
    }
    e->count++;
    for (int i = 0; i < f->ntunnels; i++) {
        const Tunnel *t = &f->tunnels[i];
        uint8_t g[48];
        memset(g, 0, sizeof g);
        g[0] = (uint8_t)t->kind;
        g[1] = (uint8_t)(t->vni >> 16);
        g[2] = (uint8_t)(t->vni >> 8);
        g[3] = (uint8_t)t->vni;
        int at = 4;
        at += put_addr(g + at, &t->outer_src);
        at += put_addr(g + at, &t->outer_dst);
        g[at++] = (uint8_t)(t->outer_dport >> 8);
        g[at++] = (uint8_t)t->outer_dport;
        g[at++] = (uint8_t)t->inner_l3;
        g[at++] = (uint8_t)(t->inner_l3 == L3_OTHER ? t->inner_etype >> 8 : 0);
        g[at++] = (uint8_t)(t->inner_l3 == L3_OTHER ? t->inner_etype : 0);
        SKEntry *te = skmap_get(&d->tn_groups, g, (size_t)at, 1);
        if (te == NULL)
            return -1;
        te->count++;
    }
    if (d->arp_owner >= 0 && d->arp_owner != d->own_index)
        return 0;                  /* parallel: another worker pairs the ARP (Decoder.own) */
    return dc_fold_arp(d, f);
}

int dc_fold_arp(Decoder *d, const Frame *f)
{
    if (f->arp.present) {
        /* the summary's _ARP_FIELDS (frame, ts, op, sender_mac, sender_ip, target_mac,
         * target_ip, gratuitous, vlan, tunnel_depth, capture_iface, iface_name, direction) and,
         * for encapsulated ARP, the frame's tunnel layers as (depth, vni, outer_src, outer_dst)
         * (diag/decode/summary.py's arp_rule_row) */
        const Arp *a = &f->arp;
        PyObject *op = (a->op == 1 || a->op == 2) ? Py_NewRef(d->s_op[a->op])
                                                  : PyUnicode_FromFormat("%d", a->op);
        if (op == NULL)
            return -1;
        PyObject *layers = PyTuple_New(a->depth ? f->ntunnels : 0);
        for (int i = 0; layers != NULL && a->depth && i < f->ntunnels; i++) {
            const Tunnel *t = &f->tunnels[i];
            /* the outermost layer's addresses are the packet's, as the tunnels table says */
            PyObject *layer = Py_BuildValue(
                "(iLOO)", t->depth, (long long)t->vni,
                text_addr(d->tx, i == 0 ? &f->net.src : &t->outer_src),
                text_addr(d->tx, i == 0 ? &f->net.dst : &t->outer_dst));
            if (layer == NULL)
                Py_CLEAR(layers);
            else
                PyTuple_SET_ITEM(layers, i, layer);
        }
        if (layers == NULL) {
            Py_DECREF(op);
            return -1;
        }
        PyObject *name = d->iface_names && f->iface >= 0
                         && f->iface < PyList_GET_SIZE(d->iface_names)
                         ? PyList_GET_ITEM(d->iface_names, f->iface) : Py_None;
        if (a->depth == 0 && f->nvlan <= 1) {
            /* the common case, as arp_rule_row (segment_and_place) makes it: the row the rule
             * takes, (frame, ts, op, sender_mac, sender_ip, target_mac, target_ip, gratuitous,
             * segment, place, direction, depth) */
            Py_DECREF(layers);
            PyObject *segment = f->nvlan ? Py_BuildValue("(si)", "vlan", (int)f->vlan[0])
                                         : Py_NewRef(Py_None);
            PyObject *place_items[5] = {PyLong_FromLong(f->iface), Py_NewRef(name),
                                        Py_NewRef(d->s_dir[f->direction]), PyLong_FromLong(0),
                                        PyTuple_New(0)};
            PyObject *place = tuple_of(5, place_items);
            PyObject *row_items[12] = {
                PyLong_FromLongLong((long long)f->frame), PyFloat_FromDouble(f->ts), op,
                Py_XNewRef(text_mac(d->tx, a->sha)), Py_XNewRef(text_ipv4(d->tx, a->spa)),
                Py_XNewRef(text_mac(d->tx, a->tha)), Py_XNewRef(text_ipv4(d->tx, a->tpa)),
                Py_NewRef(memcmp(a->spa, a->tpa, 4) == 0 ? Py_True : Py_False), segment, place,
                Py_NewRef(d->s_dir[f->direction]), PyLong_FromLong(0)};
            PyObject *row = tuple_of(12, row_items);        /* op, segment, place: stolen */
            if (row == NULL)
                return -1;
            int rc = PyList_Append(d->arp_rows, row);
            Py_DECREF(row);
            return rc;
        }
        d->arp_raw = 1;
        PyObject *vlan = f->nvlan ? text_vlan(d->tx, f->vlan, f->nvlan) : Py_None;
        PyObject *row = Py_BuildValue("(LdNOOOOOOiiOON)", (long long)f->frame, f->ts, op,
                                      text_mac(d->tx, a->sha), text_ipv4(d->tx, a->spa),
                                      text_mac(d->tx, a->tha), text_ipv4(d->tx, a->tpa),
                                      memcmp(a->spa, a->tpa, 4) == 0 ? Py_True : Py_False,
                                      vlan ? vlan : Py_None, a->depth, f->iface, name,
                                      d->s_dir[f->direction], layers);
        if (row == NULL || PyList_Append(d->arp_rows, row) < 0) {
            Py_XDECREF(row);
            return -1;
        }
        Py_DECREF(row);
    }
    return 0;
}

static SessionFold *session_fold(Decoder *d, PyObject *session)
{
    size_t slot = ((uintptr_t)session >> 4) & 15;
    if (d->session_cache[slot].generation == d->generation
        && d->session_cache[slot].session == session)
        return &d->sfold.v[d->session_cache[slot].index];
    PyObject *idx = PyDict_GetItemWithError(d->sessions, session);
    if (idx != NULL) {
        Py_ssize_t i = PyLong_AsSsize_t(idx);
        d->session_cache[slot].generation = d->generation;
        /* a strong reference: the dict may hold an equal key object, not this one, and a
         * freed object's address can come back as another session's */
        Py_INCREF(session);
        Py_XSETREF(d->session_cache[slot].session, session);
        d->session_cache[slot].index = i;
        return &d->sfold.v[i];
    }
    if (PyErr_Occurred())
        return NULL;
    SessionFold s;
    memset(&s, 0, sizeof s);
    if (VEC_PUSH(d->sfold, s))
        return NULL;
    idx = PyLong_FromSsize_t(d->sfold.n - 1);
    if (idx == NULL || PyDict_SetItem(d->sessions, session, idx) < 0) {
        Py_XDECREF(idx);
        d->sfold.n--;
        return NULL;
    }
    Py_DECREF(idx);
    return &d->sfold.v[d->sfold.n - 1];
}

int dc_fold_message(Decoder *d, PyObject *session, int type, PyObject *type_name, int bad,
                    double ts)
{
    SessionFold *s = session_fold(d, session);
    if (s == NULL)
        return -1;
    if (!s->seen) {
        s->seen = 1;
        s->lo = s->hi = ts;
    } else {
        if (ts < s->lo)
            s->lo = ts;
        if (ts > s->hi)
            s->hi = ts;
    }
    s->bad += bad != 0;
    if (type_name == Py_None)
        return 0;
    if (type >= 1 && type <= 5 && type_name == d->s_types[type]) {
        s->messages[type]++;
        return 0;
    }
    if (s->other_names == NULL && (s->other_names = PyDict_New()) == NULL)
        return -1;
    PyObject *n = PyDict_GetItemWithError(s->other_names, type_name);
    if (n == NULL && PyErr_Occurred())
        return -1;
    PyObject *m = PyLong_FromLongLong((n ? PyLong_AsLongLong(n) : 0) + 1);
    if (m == NULL || PyDict_SetItem(s->other_names, type_name, m) < 0) {
        Py_XDECREF(m);
        return -1;
    }
    Py_DECREF(m);
    return 0;
}

int dc_fold_special(Decoder *d, PyObject *session, PyObject *name, PyObject *row)
{
    PyObject *t = PyTuple_Pack(3, session, name, row);
    if (t == NULL || PyList_Append(d->special, t) < 0) {
        Py_XDECREF(t);
        return -1;
    }
    Py_DECREF(t);
    return 0;
}

/* ---------------------------------------------------------------- routes */

static void free_set(PyObject *capsule)
{
    U64Set *s = PyCapsule_GetPointer(capsule, "diag.keys");
    if (s) {
        u64set_free(s);
        PyMem_Free(s);
    }
}

/* [rows, new keys, head texts or None] of (session, family, action) in this chunk, and the
 * distinct-key set of its store */
static PyObject *route_group_slow(Decoder *d, PyObject *session, PyObject *family,
                                  PyObject *action, U64Set **set, int *kind);

static PyObject *route_group(Decoder *d, PyObject *session, PyObject *family, PyObject *action,
                             U64Set **set, int *kind)
{
    size_t slot = (((uintptr_t)session >> 4) ^ ((uintptr_t)family >> 6)
                   ^ ((uintptr_t)action >> 8)) & 63;
    if (d->group_cache[slot].generation == d->group_generation
        && d->group_cache[slot].session == session && d->group_cache[slot].family == family
        && d->group_cache[slot].action == action) {
        *set = d->group_cache[slot].set;
        *kind = d->group_cache[slot].kind;
        return d->group_cache[slot].group;
    }
    PyObject *g = route_group_slow(d, session, family, action, set, kind);
    if (g != NULL) {
        d->group_cache[slot].generation = d->group_generation;
        /* strong references: route_groups keeps the first equal key's objects, not these
         * (often temporaries), and a freed string's address can come back as another family */
        Py_INCREF(session);
        Py_INCREF(family);
        Py_INCREF(action);
        Py_XSETREF(d->group_cache[slot].session, session);
        Py_XSETREF(d->group_cache[slot].family, family);
        Py_XSETREF(d->group_cache[slot].action, action);
        d->group_cache[slot].group = g;
        d->group_cache[slot].set = *set;
        d->group_cache[slot].kind = *kind;
    }
    return g;
}

static PyObject *route_group_slow(Decoder *d, PyObject *session, PyObject *family,
                                  PyObject *action, U64Set **set, int *kind)
{
    int announce = PyUnicode_Compare(action, d->s_announce) == 0;
    if (PyErr_Occurred())
        return NULL;
    *kind = announce ? 0 : 1;
    PyObject *key = PyTuple_Pack(3, session, family, action);
    if (key == NULL)
        return NULL;
    PyObject *g = PyDict_GetItemWithError(d->route_groups, key);
    if (g == NULL) {
        if (PyErr_Occurred()) {
            Py_DECREF(key);
            return NULL;
        }
        PyObject *head = d->want_heads[*kind] ? PyList_New(0) : Py_NewRef(Py_None);
        g = head ? Py_BuildValue("[iNNO]", 0, PyByteArray_FromStringAndSize(NULL, 0), head,
                                 Py_False) : NULL;
        if (g == NULL || PyDict_SetItem(d->route_groups, key, g) < 0) {
            Py_XDECREF(g);
            Py_DECREF(key);
            return NULL;
        }
        Py_DECREF(g);
    }
    Py_DECREF(key);
    PyObject *skey = PyTuple_Pack(3, session, family, announce ? d->s_announce : d->s_withdraw);
    if (skey == NULL)
        return NULL;
    PyObject *cap = PyDict_GetItemWithError(d->seen_keys, skey);
    if (cap == NULL) {
        if (PyErr_Occurred()) {
            Py_DECREF(skey);
            return NULL;
        }
        U64Set *s = PyMem_Calloc(1, sizeof(U64Set));
        if (s == NULL) {
            Py_DECREF(skey);
            PyErr_NoMemory();
            return NULL;
        }
        cap = PyCapsule_New(s, "diag.keys", free_set);
        /* a session whose keys were released (dc_fold_release) starts a new set: the keys it
         * sends from now on may repeat ones the summary's store holds (the group says so) */
        int renewed = cap == NULL ? -1 : PySet_Contains(d->released, session);
        if (renewed == 1)
            PyList_SetItem(g, 3, Py_NewRef(Py_True));
        if (cap == NULL || renewed < 0 || PyDict_SetItem(d->seen_keys, skey, cap) < 0) {
            if (cap == NULL)
                PyMem_Free(s);
            Py_XDECREF(cap);
            Py_DECREF(skey);
            return NULL;
        }
        Py_DECREF(cap);
    }
    Py_DECREF(skey);
    *set = PyCapsule_GetPointer(cap, "diag.keys");
    return *set ? g : NULL;
}

/* The route-group cache emptied (its entries hold references and set pointers). */
static void forget_groups(Decoder *d)
{
    for (int i = 0; i < 64; i++) {
        d->group_cache[i].generation = 0;
        Py_CLEAR(d->group_cache[i].session);
        Py_CLEAR(d->group_cache[i].family);
        Py_CLEAR(d->group_cache[i].action);
    }
}

/* A session whose streams have all closed: its key sets are dropped (they are the larger part
 * of the memory a long capture of many short sessions keeps). Its later keys, if the same
 * endpoints talk again, go to new sets whose groups are marked ``renewed``. */
int dc_fold_release(Decoder *d, PyObject *session)
{
    if (d->seen_keys == NULL || PyDict_GET_SIZE(d->seen_keys) == 0)
        return 0;
    PyObject *drop = PyList_New(0);
    if (drop == NULL)
        return -1;
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(d->seen_keys, &pos, &key, &value)) {
        int same = PyUnicode_Compare(PyTuple_GET_ITEM(key, 0), session) == 0;
        if (PyErr_Occurred() || (same && PyList_Append(drop, key) < 0)) {
            Py_DECREF(drop);
            return -1;
        }
    }
    if (PyList_GET_SIZE(drop) == 0) {
        Py_DECREF(drop);
        return 0;
    }
    forget_groups(d);          /* the cache holds set pointers: forgotten before a set is freed */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(drop); i++) {
        if (PyDict_DelItem(d->seen_keys, PyList_GET_ITEM(drop, i)) < 0) {
            Py_DECREF(drop);
            return -1;
        }
    }
    Py_DECREF(drop);
    return PySet_Add(d->released, session);
}

static int add_rows(PyObject *g, Py_ssize_t n)
{
    PyObject *rows = PyList_GET_ITEM(g, 0);
    PyObject *m = PyLong_FromSsize_t(PyLong_AsSsize_t(rows) + n);
    if (m == NULL)
        return -1;
    PyList_SET_ITEM(g, 0, m);
    Py_DECREF(rows);
    return 0;
}

/* a key the store has not had yet, appended (native int64) to the group's packed keys */
static int add_key(PyObject *g, U64Set *set, uint64_t key)
{
    int fresh = u64set_add(set, key);
    if (fresh <= 0)
        return fresh;
    PyObject *packed = PyList_GET_ITEM(g, 1);
    Py_ssize_t n = PyByteArray_GET_SIZE(packed);
    if (PyByteArray_Resize(packed, n + 8) < 0)
        return -1;
    int64_t k = (int64_t)key;
    memcpy(PyByteArray_AS_STRING(packed) + n, &k, 8);
    return 0;
}

static int add_head(PyObject *g, PyObject *text)
{
    PyObject *head = PyList_GET_ITEM(g, 2);
    if (head == Py_None || PyList_GET_SIZE(head) >= MAX_SAMPLE)
        return 0;
    return PyList_Append(head, text);
}

int dc_fold_routes_native(Decoder *d, PyObject *session, PyObject *family, PyObject *action,
                          int v6, Span nlri, const int32_t *offs, Py_ssize_t n)
{
    U64Set *set;
    int kind;
    PyObject *g = route_group(d, session, family, action, &set, &kind);
    if (g == NULL || add_rows(g, n))
        return -1;
    /* in batches: every key of the batch first, its set slot prefetched, then the adds (a
     * session's set outgrows the caches: the misses of a batch overlap instead of queueing) */
    enum { BATCH = 16 };
    uint64_t keys[BATCH];
    for (Py_ssize_t at = 0; at < n; at += BATCH) {
        Py_ssize_t m = n - at < BATCH ? n - at : BATCH;
        for (Py_ssize_t j = 0; j < m; j++) {
            Py_ssize_t p = offs[at + j];
            int plen = (int)rd8(nlri, p);
            int nbytes = (plen + 7) >> 3;
            keys[j] = prefix_key(v6, plen, rdp(nlri, p + 1, nbytes), nbytes);
            u64set_prefetch(set, keys[j]);
        }
        for (Py_ssize_t j = 0; j < m; j++) {
            if (add_key(g, set, keys[j]))
                return -1;
            if (PyList_GET_ITEM(g, 2) != Py_None
                && PyList_GET_SIZE(PyList_GET_ITEM(g, 2)) < MAX_SAMPLE) {
                Py_ssize_t p = offs[at + j];
                int plen = (int)rd8(nlri, p);
                int nbytes = (plen + 7) >> 3;
                PyObject *text = text_prefix(d->tx, v6, plen, rdp(nlri, p + 1, nbytes), nbytes);
                if (text == NULL || add_head(g, text))
                    return -1;
            }
        }
    }
    return 0;
}

/* summary.route_text: the prefix; RD:prefix for VPN and EVPN; (raw) for an unsplit NLRI */
static PyObject *route_text(Decoder *d, PyObject *rd, PyObject *prefix)
{
    if (prefix == Py_None)
        return Py_NewRef(d->s_raw);
    if (rd != Py_None)
        return PyUnicode_FromFormat("%S:%S", rd, prefix);
    return Py_NewRef(prefix);
}

int dc_fold_routes_py(Decoder *d, PyObject *session, PyObject *family, PyObject *action,
                      PyObject *rd, PyObject *prefixes)
{
    U64Set *set;
    int kind;
    PyObject *g = route_group(d, session, family, action, &set, &kind);
    if (g == NULL)
        return -1;
    if (PyObject_TypeCheck(prefixes, (PyTypeObject *)d->t_packed) && rd == Py_None) {
        PyObject *data = PyObject_GetAttrString(prefixes, "data");
        PyObject *offs = PyObject_GetAttrString(prefixes, "offsets");
        PyObject *v6o = PyObject_GetAttrString(prefixes, "v6");
        int rc = -1;
        if (data && offs && v6o && PyBytes_Check(data) && PyList_Check(offs)) {
            Span s = {(const uint8_t *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data)};
            int v6 = PyObject_IsTrue(v6o);
            Py_ssize_t n = PyList_GET_SIZE(offs);
            int32_t *pos = PyMem_Malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
            rc = pos ? 0 : -1;
            for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
                Py_ssize_t p = PyLong_AsSsize_t(PyList_GET_ITEM(offs, i));
                if (PyErr_Occurred() || !span_has(s, p, 1)
                    || !span_has(s, p + 1, (rd8(s, p) + 7) >> 3)) {
                    if (!PyErr_Occurred())
                        PyErr_SetString(PyExc_RuntimeError, "diag core: prefix out of range");
                    rc = -1;
                } else {
                    pos[i] = (int32_t)p;
                }
            }
            if (rc == 0)
                rc = dc_fold_routes_native(d, session, family, action, v6, s, pos, n);
            PyMem_Free(pos);
            if (pos == NULL)
                PyErr_NoMemory();
        } else if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_RuntimeError, "diag core: packed prefixes of another shape");
        }
        Py_XDECREF(data);
        Py_XDECREF(offs);
        Py_XDECREF(v6o);
        return rc;
    }
    PyObject *seq = PySequence_Fast(prefixes, "prefixes");
    if (seq == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    int rc = add_rows(g, n);
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *prefix = PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2
                           ? PyTuple_GET_ITEM(pair, 1) : Py_None;
        PyObject *text = route_text(d, rd, prefix);
        PyObject *key = text ? PyObject_CallOneArg(d->h_route_key, text) : NULL;
        rc = -1;
        if (key != NULL) {
            long long k = PyLong_AsLongLong(key);
            if (!(k == -1 && PyErr_Occurred()))
                rc = add_key(g, set, (uint64_t)k);
        }
        if (rc == 0)
            rc = add_head(g, text);
        Py_XDECREF(key);
        Py_XDECREF(text);
    }
    Py_DECREF(seq);
    return rc;
}

/* ---------------------------------------------------------------- hand-over */

static PyObject *pk_combos(Decoder *d)
{
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < d->pk_combos.cap; i++) {
        SKEntry *e = &d->pk_combos.slots[i];
        if (!e->used)
            continue;
        int app = e->key[0], l3 = e->key[1], etype = e->key[2] << 8 | e->key[3];
        int dir = e->key[4], iface;
        int64_t ifindex;
        memcpy(&iface, e->key + 8, sizeof(int));
        memcpy(&ifindex, e->key + 16, sizeof(int64_t));
        PyObject *l3t = l3 == L3_OTHER ? text_etype(d->tx, etype) : d->s_l3[l3];
        PyObject *ifx = ifindex < 0 ? Py_NewRef(Py_None) : PyLong_FromLongLong(ifindex);
        PyObject *t = ifx ? Py_BuildValue("(OOOiNL)", d->s_app[app], l3t, d->s_dir[dir], iface,
                                          ifx, (long long)e->count) : NULL;
        if (t == NULL || PyList_Append(out, t) < 0) {
            Py_XDECREF(t);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(t);
    }
    return out;
}

static PyObject *addr_of(Decoder *d, const uint8_t *k)
{
    Addr a;
    a.fam = k[0];
    memcpy(a.a, k + 1, 16);
    return text_addr(d->tx, &a);
}

static PyObject *tn_groups(Decoder *d)
{
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < d->tn_groups.cap; i++) {
        SKEntry *e = &d->tn_groups.slots[i];
        if (!e->used)
            continue;
        const uint8_t *g = e->key;
        int kind = g[0];
        long vni = (long)g[1] << 16 | g[2] << 8 | g[3];
        PyObject *src = addr_of(d, g + 4), *dst = addr_of(d, g + 21);
        int dport = g[38] << 8 | g[39], l3 = g[40], etype = g[41] << 8 | g[42];
        PyObject *l3t = l3 == L3_OTHER ? text_etype(d->tx, etype) : d->s_l3[l3];
        PyObject *t = (src && dst && l3t)
            ? Py_BuildValue("(OlOOiOL)", d->s_app[kind], vni, src, dst, dport, l3t,
                            (long long)e->count) : NULL;
        if (t == NULL || PyList_Append(out, t) < 0) {
            Py_XDECREF(t);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(t);
    }
    return out;
}

static PyObject *session_folds(Decoder *d)
{
    PyObject *out = PyDict_New();
    if (out == NULL)
        return NULL;
    PyObject *session, *idx;
    Py_ssize_t at = 0;
    while (PyDict_Next(d->sessions, &at, &session, &idx)) {
        SessionFold *s = &d->sfold.v[PyLong_AsSsize_t(idx)];
        PyObject *named = s->other_names ? Py_NewRef(s->other_names) : PyDict_New();
        if (named == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        for (int t = 1; t <= 5; t++) {
            if (!s->messages[t])
                continue;
            PyObject *n = PyLong_FromLongLong(s->messages[t]);
            if (n == NULL || PyDict_SetItem(named, d->s_types[t], n) < 0) {
                Py_XDECREF(n);
                Py_DECREF(named);
                Py_DECREF(out);
                return NULL;
            }
            Py_DECREF(n);
        }
        PyObject *v = s->seen ? Py_BuildValue("(ddLN)", s->lo, s->hi, (long long)s->bad, named)
                              : Py_BuildValue("(OOLN)", Py_None, Py_None, (long long)s->bad,
                                              named);
        if (v == NULL || PyDict_SetItem(out, session, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(v);
    }
    return out;
}

static PyObject *dst_macs(Decoder *d)
{
    PyObject *out = PySet_New(NULL);
    for (size_t i = 0; out != NULL && i < d->pk_dst_macs.cap; i++) {
        SKEntry *e = &d->pk_dst_macs.slots[i];
        uint64_t mac;
        if (!e->used)
            continue;
        memcpy(&mac, e->key, sizeof mac);
        PyObject *text = text_mac(d->tx, mac);
        if (text == NULL || PySet_Add(out, text) < 0)
            Py_CLEAR(out);
    }
    return out;
}

PyObject *dc_fold_take(Decoder *d)
{
    PyObject *combos = pk_combos(d);
    PyObject *groups = combos ? tn_groups(d) : NULL;
    PyObject *sessions = groups ? session_folds(d) : NULL;
    if (sessions == NULL) {
        Py_XDECREF(combos);
        Py_XDECREF(groups);
        return NULL;
    }
    PyObject *macs = dst_macs(d);
    if (macs == NULL) {
        Py_DECREF(combos);
        Py_DECREF(groups);
        Py_DECREF(sessions);
        return NULL;
    }
    PyObject *packets = d->pk_total
        ? Py_BuildValue("(LddNON)", (long long)d->pk_total, d->pk_lo, d->pk_hi, combos,
                        d->pk_otherhost ? Py_True : Py_False, macs)
        : Py_BuildValue("(LOONON)", 0LL, Py_None, Py_None, combos, Py_False, macs);
    /* routes: a dict of route groups per block, in block order */
    if (packets != NULL && PyDict_GET_SIZE(d->route_groups)
        && PyList_Append(d->route_blocks, d->route_groups) < 0)
        Py_CLEAR(packets);
    PyObject *out = packets ? Py_BuildValue("{s:N,s:N,s:O,s:O,s:N,s:O,s:O}", "packets", packets,
                                            "tunnels", groups, "arp", d->arp_rows, "arp_raw",
                                            d->arp_raw ? Py_True : Py_False, "sessions",
                                            sessions, "special", d->special, "routes",
                                            d->route_blocks) : NULL;
    if (out == NULL) {
        if (packets == NULL) {
            Py_DECREF(groups);
            Py_DECREF(sessions);
        }
        return NULL;
    }
    dc_fold_clear(d);
    return PyErr_Occurred() ? NULL : out;
}

int dc_fold_next_block(Decoder *d)
{
    if (d->route_groups == NULL || PyDict_GET_SIZE(d->route_groups) == 0)
        return 0;
    if (PyList_Append(d->route_blocks, d->route_groups) < 0)
        return -1;
    PyObject *fresh = PyDict_New();
    if (fresh == NULL)
        return -1;
    Py_SETREF(d->route_groups, fresh);
    d->group_generation++;
    return 0;
}

void dc_fold_clear(Decoder *d)
{
    d->generation++;
    d->group_generation++;
    forget_groups(d);
    for (int i = 0; i < 16; i++)
        Py_CLEAR(d->session_cache[i].session);
    d->pk_total = 0;
    d->pk_otherhost = 0;
    d->arp_raw = 0;
    skmap_clear(&d->pk_combos);
    skmap_clear(&d->pk_dst_macs);
    skmap_clear(&d->tn_groups);
    for (Py_ssize_t i = 0; i < d->sfold.n; i++)
        Py_CLEAR(d->sfold.v[i].other_names);
    d->sfold.n = 0;
    if (d->sessions)
        PyDict_Clear(d->sessions);
    Py_XSETREF(d->arp_rows, PyList_New(0));
    Py_XSETREF(d->special, PyList_New(0));
    Py_XSETREF(d->route_groups, PyDict_New());
    Py_XSETREF(d->route_blocks, PyList_New(0));
}

void dc_fold_free(Decoder *d)
{
    dc_fold_clear(d);
    skmap_free(&d->pk_combos);
    skmap_free(&d->pk_dst_macs);
    skmap_free(&d->tn_groups);
    VEC_FREE(d->sfold);
    Py_CLEAR(d->arp_rows);
    Py_CLEAR(d->special);
    Py_CLEAR(d->route_groups);
    Py_CLEAR(d->route_blocks);
    Py_CLEAR(d->sessions);
    Py_CLEAR(d->seen_keys);
    Py_CLEAR(d->released);
}
