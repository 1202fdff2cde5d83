/* diag.decode._core: the compiled decode core (see core.h for the contract, and
 * diag/decode/core.py, which is the only Python that talks to it).
 *
 *   Decoder(bgp_ports, vxlan_ports, geneve_ports, hooks, tables, fold)
 *     .decode(buf, first_frame, offsets, caplens, wirelens, ts, ifaces, linktypes, flags,
 *             iface_names[, shadow])   one block of records (columns as int64/double
 *                                buffers); with ``shadow``, another worker's block: only the
 *                                BGP segments of this decoder's connections (frames.c)
 *     .segment(src, sport, dst, dport, seq, flags, payload, frame, ts, depth, options)
 *                                a BGP segment met by the reference (a bailed frame)
 *     .own(index, count[, arp[, reader]])  parallel: reassemble only worker ``index``'s
 *                                connections (worker ``arp`` also folds the ARP frames of every
 *                                block; worker ``reader`` also reads the file for all)
 *     .finish(last_frame, last_ts)   end of capture: every connection flushed
 *     .take()                    this chunk: tables, stream events, folds
 *     .set_heads(announce, withdraw), .append_rows(table, rows)
 *     .stats()                   what went to the reference, connections reassembled here,
 *                                and in parallel every worker's load (the same in every worker)
 *     .probe(frame, linktype)    tests: (skippable in another worker's block, what the walk
 *                                acts on: None, "reference", "arp" or "segment")
 *   scan_pcap(buf, pos, max_packets, big_endian, unit) and scan_pcapng(buf, pos, max_packets,
 *     big_endian, interfaces): the record walk of diag/decode/capture.py for plain records.
 */
#include "dec.h"

#include <arpa/inet.h>

#define MAX_RECORD (16 << 20)
#define SCAN_AHEAD 4096      /* bytes prefetched ahead of the record walk */

/* The record walks (scan_pcap, scan_pcapng): each record's position is read from the one before
 * it, a chain of dependent loads; the lines up to SCAN_AHEAD bytes past ``pos`` are prefetched,
 * one hint a line (``*hinted``: the first line not hinted yet), so the walk does not wait on
 * memory. */
static inline void scan_prefetch(Span buf, Py_ssize_t pos, Py_ssize_t *hinted)
{
    for (Py_ssize_t ahead = pos + SCAN_AHEAD; *hinted < ahead && *hinted < buf.n; *hinted += 64)
        __builtin_prefetch(buf.p + *hinted, 0, 3);
}

static const char *const PACKET_NAMES[] = {
    "frame", "ts", "caplen", "wirelen", "linktype", "capture_iface", "iface_name", "ifindex",
    "direction", "pkttype", "eth_src", "eth_dst", "vlan", "l3", "src", "dst", "ttl", "ip_proto",
    "fragment", "sport", "dport", "app", "tunnel_depth", "malformed"};
static const char PACKET_KINDS[] = "ifiiiioiooooooooiibiioio";

static const char *const TUNNEL_NAMES[] = {
    "frame", "ts", "depth", "type", "vni", "outer_src", "outer_dst", "outer_sport", "outer_dport",
    "inner_eth_src", "inner_eth_dst", "inner_l3", "inner_src", "inner_dst", "inner_proto",
    "inner_sport", "inner_dport", "flags", "geneve_options", "malformed"};
static const char TUNNEL_KINDS[] = "ifioiooiioooooiiiioo";

static const char *const ARP_NAMES[] = {
    "frame", "ts", "capture_iface", "iface_name", "direction", "tunnel_depth", "op",
    "sender_mac", "sender_ip", "target_mac", "target_ip", "gratuitous", "vlan", "malformed"};
static const char ARP_KINDS[] = "ifiooioooooboo";

#define ATTRIBUTE_NAMES                                                                          \
    "next_hop", "next_hop_link_local", "origin", "as_path", "as_path_str", "as4_path",           \
        "as4_path_str", "med", "local_pref", "atomic_aggregate", "aggregator", "as4_aggregator", \
        "communities", "large_communities", "ext_communities", "originator_id", "cluster_list",  \
        "unknown_attributes", "effective_as_path", "effective_as_path_str", "as_path_note",      \
        "prefix_sid", "link_state", "pmsi_tunnel"
#define ATTRIBUTE_KINDS "oooooooiiboooooooooooooo"

static const char *const MESSAGE_NAMES[] = {
    "frame", "first_frame", "ts", "src", "sport", "dst", "dport", "session", "tunnel_depth",
    "type", "type_name", "length", "malformed", "open_version", "open_my_as", "open_hold_time",
    "open_bgp_id", "open_capabilities", "open_fqdn", "open_software_version", "notify_code",
    "notify_subcode", "notify_name", "notify_subname", "notify_text", "notify_cause",
    "notify_data", "refresh_afi", "refresh_safi", "refresh_subtype", "refresh_subtype_name",
    "n_withdrawn", "n_announced", "eor", "ctx_note", ATTRIBUTE_NAMES};
static const char MESSAGE_KINDS[] = "iifoioioi" "ioio" "iiiooooiiooooo" "ooio" "iioo"
                                    ATTRIBUTE_KINDS;

static const char *const ROUTE_NAMES[] = {
    "frame", "ts", "src", "sport", "dst", "dport", "session", "action", "afi", "safi", "prefix",
    "nlri_raw", "path_id", "rd", "labels", "evpn_type", "esi", "ethernet_tag", "mac", "evpn_ip",
    "gateway_ip", "vnis", ATTRIBUTE_NAMES};
static const char ROUTE_KINDS[] = "ifoioioooooo" "i" "ooioioooo" ATTRIBUTE_KINDS;

/* ---------------------------------------------------------------- helpers */

static int get_buffer(PyObject *o, Py_buffer *view, const char *what, Py_ssize_t itemsize)
{
    if (PyObject_GetBuffer(o, view, PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (itemsize && view->len % itemsize) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_ValueError, "%s: not a buffer of %zd-byte items", what, itemsize);
        return -1;
    }
    return 0;
}

static int set_ports(uint8_t *set, PyObject *ports)
{
    memset(set, 0, 8192);
    PyObject *it = PyObject_GetIter(ports);
    if (it == NULL)
        return -1;
    PyObject *p;
    while ((p = PyIter_Next(it)) != NULL) {
        long v = PyLong_AsLong(p);
        Py_DECREF(p);
        if (v == -1 && PyErr_Occurred())
            break;
        if (v < 0 || v > 65535) {
            PyErr_Format(PyExc_ValueError, "port %ld out of range", v);
            break;
        }
        set[v >> 3] |= (uint8_t)(1 << (v & 7));
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

static PyObject *intern(const char *s)
{
    return PyUnicode_InternFromString(s);
}

static int addr_from_text(PyObject *text, Addr *a)
{
    const char *s = PyUnicode_AsUTF8(text);
    if (s == NULL)
        return -1;
    memset(a, 0, sizeof *a);
    if (inet_pton(AF_INET, s, a->a) == 1) {
        a->fam = 4;
        return 0;
    }
    if (inet_pton(AF_INET6, s, a->a) == 1) {
        a->fam = 6;
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "not an IP address: %R", text);
    return -1;
}

/* ---------------------------------------------------------------- the type */

static void Decoder_dealloc(Decoder *d)
{
    PyObject_GC_UnTrack(d);
    dc_flows_free(d);
    dc_fold_free(d);
    table_free(&d->packets);
    table_free(&d->tunnels);
    table_free(&d->arp);
    table_free(&d->messages);
    table_free(&d->routes);
    col_clear(&d->route_counts);
    col_clear(&d->route_prefix);
    col_clear(&d->route_path_id);
    VEC_FREE(d->pending);
    for (int i = 0; i < 4; i++) {
        PyMem_Free(d->nlri[i].pos);
        PyMem_Free(d->nlri[i].ids);
    }
    Py_CLEAR(d->events);
    Py_CLEAR(d->raised);
    skmap_free(&d->owners);
    Py_CLEAR(d->as_paths);
    skmap_free(&d->short_paths);
    skmap_free(&d->short_communities);
    Py_CLEAR(d->communities);
    Py_CLEAR(d->iface_names);
    Py_CLEAR(d->default_ctx.py);
    PyObject **strings[] = {d->s_app, d->s_l3, d->s_dir, d->s_op, d->s_types, d->s_afi,
                            d->s_safi, d->s_origin, d->s_event};
    int counts[] = {N_APPS, 3, 3, 3, 6, 3, 3, 3, 7};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        for (int j = 0; j < counts[i]; j++)
            Py_CLEAR(strings[i][j]);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            Py_CLEAR(d->s_family[i][j]);
    Py_CLEAR(d->s_announce);
    Py_CLEAR(d->s_withdraw);
    Py_CLEAR(d->s_empty);
    Py_CLEAR(d->s_raw);
    Py_CLEAR(d->s_ipv4_unicast);
    Py_CLEAR(d->well_known);
    texts_free(d->tx);
    d->tx = NULL;
    Py_CLEAR(d->hooks);
    PyTypeObject *tp = Py_TYPE(d);
    tp->tp_free((PyObject *)d);
    Py_DECREF(tp);
}

static int Decoder_traverse(Decoder *d, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(d));
    Py_VISIT(d->hooks);
    Py_VISIT(d->events);
    return 0;
}

static PyObject *hook(PyObject *hooks, const char *name)
{
    PyObject *v = PyDict_GetItemString(hooks, name);
    if (v == NULL)
        PyErr_Format(PyExc_KeyError, "diag core: hook %s missing", name);
    return v;
}

static int Decoder_init(Decoder *d, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"bgp_ports", "vxlan_ports", "geneve_ports", "hooks", "tables",
                             "fold", NULL};
    PyObject *bgp, *vxlan, *geneve, *hooks;
    int tables = 1, fold = 1;
    if (d->tx != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Decoder is initialised once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOO!|pp", kwlist, &bgp, &vxlan, &geneve,
                                     &PyDict_Type, &hooks, &tables, &fold))
        return -1;
    if (set_ports(d->bgp_ports, bgp) || set_ports(d->vxlan_ports, vxlan)
        || set_ports(d->geneve_ports, geneve))
        return -1;
    d->tables = tables;
    d->fold = fold;
    d->arp_owner = -1;
    d->reader = -1;
    d->hooks = Py_NewRef(hooks);
    struct { PyObject **slot; const char *name; } hk[] = {
        {&d->h_fallback, "fallback"}, {&d->h_decode_message, "decode_message"},
        {&d->h_negotiate, "negotiate"}, {&d->h_stream, "stream"},
        {&d->h_gap_text, "gap_text"}, {&d->h_resync_text, "resync_text"},
        {&d->h_route_key, "route_key"}, {&d->h_default_ctx, "default_ctx"},
        {&d->h_object_array, "object_array"},
        {&d->t_message, "Message"}, {&d->t_gap, "Gap"}, {&d->t_framing_error, "FramingError"},
        {&d->t_resync, "Resync"}, {&d->t_packed, "PackedPrefixes"}};
    for (size_t i = 0; i < sizeof hk / sizeof hk[0]; i++)
        if ((*hk[i].slot = hook(hooks, hk[i].name)) == NULL)
            return -1;
    PyObject *ipv6_str = hook(hooks, "ipv6_str"), *well_known = hook(hooks, "well_known");
    PyObject *columns = hook(hooks, "columns");
    if (ipv6_str == NULL || well_known == NULL || columns == NULL)
        return -1;
    d->well_known = Py_NewRef(well_known);
    d->tx = texts_new(ipv6_str);
    if (d->tx == NULL)
        return -1;
    if (table_init(&d->packets, "packets", PACKET_NAMES, PACKET_KINDS)
        || table_init(&d->tunnels, "tunnels", TUNNEL_NAMES, TUNNEL_KINDS)
        || table_init(&d->arp, "arp", ARP_NAMES, ARP_KINDS)
        || table_init(&d->messages, "bgp_messages", MESSAGE_NAMES, MESSAGE_KINDS)
        || table_init(&d->routes, "bgp_routes", ROUTE_NAMES, ROUTE_KINDS))
        return -1;
    Table *tabs[] = {&d->packets, &d->tunnels, &d->arp, &d->messages, &d->routes};
    for (size_t i = 0; i < 5; i++) {
        PyObject *cols = PyDict_GetItemString(columns, tabs[i]->name);
        if (cols == NULL) {
            PyErr_Format(PyExc_KeyError, "diag core: columns of %s missing", tabs[i]->name);
            return -1;
        }
        if (table_check(tabs[i], cols))
            return -1;
    }
    d->route_counts.kind = K_I64;
    d->route_prefix.kind = K_OBJ;
    d->route_path_id.kind = K_I64;
    /* constant texts */
    const char *apps[N_APPS] = {"", "bgp", "vxlan", "geneve", "arp"};
    for (int i = 0; i < N_APPS; i++)
        d->s_app[i] = intern(apps[i]);
    const char *l3[3] = {"ipv4", "ipv6", "arp"};
    for (int i = 0; i < 3; i++)
        d->s_l3[i] = intern(l3[i]);
    d->s_dir[0] = Py_NewRef(Py_None);
    d->s_dir[1] = intern("in");
    d->s_dir[2] = intern("out");
    d->s_op[0] = Py_NewRef(Py_None);
    d->s_op[1] = intern("request");
    d->s_op[2] = intern("reply");
    const char *types[6] = {"", "OPEN", "UPDATE", "NOTIFICATION", "KEEPALIVE", "ROUTE-REFRESH"};
    for (int i = 0; i < 6; i++)
        d->s_types[i] = intern(types[i]);
    d->s_announce = intern("announce");
    d->s_withdraw = intern("withdraw");
    d->s_afi[0] = d->s_safi[0] = NULL;
    d->s_afi[1] = intern("ipv4");
    d->s_afi[2] = intern("ipv6");
    d->s_safi[1] = intern("unicast");
    d->s_safi[2] = intern("multicast");
    for (int a = 1; a <= 2; a++)
        for (int s = 1; s <= 2; s++)
            d->s_family[a][s] = PyUnicode_FromFormat("%U/%U", d->s_afi[a], d->s_safi[s]);
    const char *origins[3] = {"IGP", "EGP", "INCOMPLETE"};
    for (int i = 0; i < 3; i++)
        d->s_origin[i] = intern(origins[i]);
    const char *events[7] = {"syn", "syn-ack", "rst", "fin", "gap", "resync", "framing-error"};
    for (int i = 0; i < 7; i++)
        d->s_event[i] = intern(events[i]);
    d->s_empty = intern("");
    d->s_raw = intern("(raw)");
    d->s_ipv4_unicast = intern("ipv4/unicast");
    d->events = PyList_New(0);
    d->raised = PyList_New(0);
    d->as_paths = PyDict_New();
    d->communities = PyDict_New();
    d->sessions = PyDict_New();
    d->seen_keys = PyDict_New();
    d->released = PySet_New(NULL);
    d->iface_names = PyList_New(0);
    d->want_heads[0] = d->want_heads[1] = 1;
    if (PyErr_Occurred())
        return -1;
    dc_fold_clear(d);
    d->pk_combos.limit = d->tn_groups.limit = 0;
    d->short_paths.limit = d->short_communities.limit = 16384;
    d->default_ctx.as4 = 1;
    d->default_ctx.assumed = 1;
    d->default_ctx.py = Py_NewRef(d->h_default_ctx);
    return PyErr_Occurred() ? -1 : 0;
}

/* ---------------------------------------------------------------- methods */

static PyObject *Decoder_decode(Decoder *d, PyObject *args)
{
    PyObject *bufo, *names, *cols[7], *shadow = Py_None;
    long long first;
    if (!PyArg_ParseTuple(args, "OLOOOOOOOO!|O", &bufo, &first, &cols[0], &cols[1], &cols[2],
                          &cols[3], &cols[4], &cols[5], &cols[6], &PyList_Type, &names,
                          &shadow))
        return NULL;
    if (shadow != Py_None && !PyCallable_Check(shadow)) {
        PyErr_SetString(PyExc_TypeError, "shadow must be callable or None");
        return NULL;
    }
    Py_buffer buf, v[7];
    static const char *const what[7] = {"offsets", "caplens", "wirelens", "ts", "ifaces",
                                        "linktypes", "flags"};
    if (get_buffer(bufo, &buf, "buf", 0))
        return NULL;
    int got = 0, rc = -1;
    for (; got < 7; got++)
        if (get_buffer(cols[got], &v[got], what[got], 8))
            goto done;
    Py_ssize_t count = v[0].len / 8;
    for (int i = 1; i < 7; i++) {
        if (v[i].len / 8 != count) {
            PyErr_SetString(PyExc_ValueError, "record columns of different lengths");
            goto done;
        }
    }
    Py_XSETREF(d->iface_names, Py_NewRef(names));
    dc_charge_read(d, count, v[0].buf, v[1].buf);
    if (d->fold && dc_fold_next_block(d))
        goto done;
    Span s = {buf.buf, buf.len};
    rc = dc_decode_block(d, s, first, count, v[0].buf, v[1].buf, v[2].buf, v[3].buf, v[4].buf,
                         v[5].buf, v[6].buf, shadow == Py_None ? NULL : shadow);
done:
    for (int i = 0; i < got; i++)
        PyBuffer_Release(&v[i]);
    PyBuffer_Release(&buf);
    if (rc)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Decoder_segment(Decoder *d, PyObject *args)
{
    PyObject *src, *dst, *payload, *options = NULL;
    int sport, dport, flags, depth;
    unsigned long long seq;
    long long frame;
    double ts;
    if (!PyArg_ParseTuple(args, "UiUiKiSLdi|S", &src, &sport, &dst, &dport, &seq, &flags,
                          &payload, &frame, &ts, &depth, &options))
        return NULL;
    Addr a, b;
    if (addr_from_text(src, &a) || addr_from_text(dst, &b))
        return NULL;
    Span pay = {(const uint8_t *)PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload)};
    Span opt = {(const uint8_t *)"", 0};
    if (options) {
        opt.p = (const uint8_t *)PyBytes_AS_STRING(options);
        opt.n = PyBytes_GET_SIZE(options);
    }
    if (dc_deliver(d, &a, sport, &b, dport, (uint32_t)seq, flags, pay, frame, ts, depth, opt,
                   payload))
        return NULL;
    Py_RETURN_NONE;
}

/* tests: (skippable, effect) of one frame in another worker's block - dc_skippable's answer
 * and what the walk acts on (None, "reference", "arp", "segment") */
static PyObject *Decoder_probe(Decoder *d, PyObject *args)
{
    Py_buffer raw;
    int linktype;
    if (!PyArg_ParseTuple(args, "y*i", &raw, &linktype))
        return NULL;
    Span s = {raw.buf, raw.len};
    int skip = dc_skippable(d, s, linktype);
    int effect = dc_walk_effect(d, s, linktype);
    PyBuffer_Release(&raw);
    if (effect < 0)
        return NULL;
    static const char *const names[4] = {NULL, "reference", "arp", "segment"};
    if (names[effect] == NULL)
        return Py_BuildValue("(OO)", skip ? Py_True : Py_False, Py_None);
    return Py_BuildValue("(Os)", skip ? Py_True : Py_False, names[effect]);
}

/* parallel: this decoder reassembles only the connections of worker ``index`` of ``count``
 * (dc_deliver); every worker walks every block, so each makes the same choice of owners.
 * ``arp_owner`` (-1: none) folds the ARP frames of every block, its own and the others'; the
 * other workers fold none (their blocks' ARP is paired there). In another worker's block, a
 * frame that cannot hold a BGP segment, ARP or a frame for the reference is skipped by a
 * header check (dc_skippable in frames.c) instead of walked. */
static PyObject *Decoder_own(Decoder *d, PyObject *args)
{
    int index, count, arp_owner = -1, reader = -1;
    if (!PyArg_ParseTuple(args, "ii|ii", &index, &count, &arp_owner, &reader))
        return NULL;
    if (count < 1 || count > MAX_OWNERS || index < 0 || index >= count) {
        PyErr_Format(PyExc_ValueError, "worker %d of %d (at most %d workers)", index, count,
                     MAX_OWNERS);
        return NULL;
    }
    if (arp_owner < -1 || arp_owner >= count) {
        PyErr_Format(PyExc_ValueError, "ARP worker %d of %d", arp_owner, count);
        return NULL;
    }
    if (reader < -1 || reader >= count) {
        PyErr_Format(PyExc_ValueError, "reading worker %d of %d", reader, count);
        return NULL;
    }
    if (d->owners.used || d->nconns) {
        PyErr_SetString(PyExc_RuntimeError, "ownership is set before the first segment");
        return NULL;
    }
    d->own_index = index;
    d->own_count = count;
    d->arp_owner = arp_owner;
    d->reader = reader;
    memset(d->own_load, 0, sizeof d->own_load);
    Py_RETURN_NONE;
}

static PyObject *Decoder_finish(Decoder *d, PyObject *args)
{
    long long frame;
    double ts;
    if (!PyArg_ParseTuple(args, "Ld", &frame, &ts))
        return NULL;
    if (dc_flush(d, frame, ts))
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Decoder_take(Decoder *d, PyObject *Py_UNUSED(ignored))
{
    PyObject *out = PyDict_New();
    if (out == NULL)
        return NULL;
    if (d->tables) {
        if (prefix_texts_fill(d->tx, &d->pending, &d->route_prefix) < 0) {
            Py_DECREF(out);
            return NULL;
        }
        PyObject *t = PyDict_New();
        Table *tabs[] = {&d->packets, &d->tunnels, &d->arp, &d->messages, &d->routes};
        for (int i = 0; t && i < 5; i++) {
            PyObject *cols = table_take(tabs[i], d->h_object_array);
            if (cols == NULL || PyDict_SetItemString(t, tabs[i]->name, cols) < 0) {
                Py_XDECREF(cols);
                Py_CLEAR(t);
                break;
            }
            Py_DECREF(cols);
        }
        struct { Col *c; const char *name; char kind; } extra[] = {
            {&d->route_counts, "route_counts", K_I64}, {&d->route_prefix, "route_prefix", K_OBJ},
            {&d->route_path_id, "route_path_id", K_I64}};
        for (int i = 0; t && i < 3; i++) {
            PyObject *col = col_take(extra[i].c, d->h_object_array);
            extra[i].c->kind = extra[i].kind;
            if (col == NULL || PyDict_SetItemString(t, extra[i].name, col) < 0) {
                Py_XDECREF(col);
                Py_CLEAR(t);
            }
            Py_XDECREF(col);
        }
        if (t == NULL || PyDict_SetItemString(out, "tables", t) < 0) {
            Py_XDECREF(t);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(t);
    }
    if (d->fold) {
        PyObject *f = dc_fold_take(d);
        if (f == NULL || PyDict_SetItemString(out, "fold", f) < 0) {
            Py_XDECREF(f);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(f);
    }
    if (PyDict_SetItemString(out, "stream_events", d->events) < 0
        || PyDict_SetItemString(out, "raised", d->raised) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    Py_XSETREF(d->events, PyList_New(0));
    Py_XSETREF(d->raised, PyList_New(0));
    texts_release(d->tx);
    if (d->events == NULL || d->raised == NULL) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

static PyObject *Decoder_set_heads(Decoder *d, PyObject *args)
{
    int a, w;
    if (!PyArg_ParseTuple(args, "pp", &a, &w))
        return NULL;
    d->want_heads[0] = a;
    d->want_heads[1] = w;
    Py_RETURN_NONE;
}

static PyObject *Decoder_append_rows(Decoder *d, PyObject *args)
{
    const char *name;
    PyObject *rows;
    if (!PyArg_ParseTuple(args, "sO", &name, &rows))
        return NULL;
    Table *t = strcmp(name, "packets") == 0 ? &d->packets
               : strcmp(name, "tunnels") == 0 ? &d->tunnels
               : strcmp(name, "arp") == 0 ? &d->arp : NULL;
    if (t == NULL) {
        PyErr_Format(PyExc_ValueError, "no table %s here", name);
        return NULL;
    }
    if (!d->tables)
        Py_RETURN_NONE;
    PyObject *seq = PySequence_Fast(rows, "rows");
    if (seq == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        if (table_py_row(t, PySequence_Fast_GET_ITEM(seq, i))) {
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    Py_RETURN_NONE;
}

static PyObject *Decoder_stats(Decoder *d, PyObject *Py_UNUSED(ignored))
{
    PyObject *loads = PyTuple_New(d->own_count > 1 ? d->own_count : 0);
    if (loads == NULL)
        return NULL;
    for (int w = 0; w < d->own_count && d->own_count > 1; w++) {
        PyObject *n = PyLong_FromUnsignedLongLong(d->own_load[w]);
        if (n == NULL) {
            Py_DECREF(loads);
            return NULL;
        }
        PyTuple_SET_ITEM(loads, w, n);
    }
    return Py_BuildValue("{s:L,s:L,s:L,s:n,s:N}", "frames_to_reference",
                         (long long)d->frames_bailed, "messages_to_reference",
                         (long long)d->messages_bailed, "streams_to_reference",
                         (long long)d->streams_delegated, "connections", (Py_ssize_t)d->nconns,
                         "loads", loads);
}

static PyMethodDef Decoder_methods[] = {
    {"decode", (PyCFunction)Decoder_decode, METH_VARARGS, "Decode one block of records."},
    {"segment", (PyCFunction)Decoder_segment, METH_VARARGS, "A BGP segment from the reference."},
    {"own", (PyCFunction)Decoder_own, METH_VARARGS, "Parallel: the connections owned."},
    {"probe", (PyCFunction)Decoder_probe, METH_VARARGS,
     "Tests: (skippable in another worker's block, what the walk acts on)."},
    {"finish", (PyCFunction)Decoder_finish, METH_VARARGS, "End of capture: flush every flow."},
    {"take", (PyCFunction)Decoder_take, METH_NOARGS, "This chunk's output."},
    {"set_heads", (PyCFunction)Decoder_set_heads, METH_VARARGS, "Prefix sample wanted."},
    {"append_rows", (PyCFunction)Decoder_append_rows, METH_VARARGS, "Reference rows appended."},
    {"stats", (PyCFunction)Decoder_stats, METH_NOARGS,
     "What went to the reference; connections reassembled here; the owners' loads."},
    {NULL, NULL, 0, NULL}};

static PyType_Slot Decoder_slots[] = {
    {Py_tp_dealloc, Decoder_dealloc},
    {Py_tp_traverse, Decoder_traverse},
    {Py_tp_init, Decoder_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_methods, Decoder_methods},
    {Py_tp_doc, "The compiled decode core (see diag/decode/core.py)."},
    {0, NULL}};

static PyType_Spec Decoder_spec = {"diag.decode._core.Decoder", sizeof(Decoder), 0,
                                   Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, Decoder_slots};

/* ---------------------------------------------------------------- record scanners */

typedef struct {
    VEC(int64_t) off, cap, wire, iface, lt, flags;
    VEC(double) ts, unit;
    VEC(uint64_t) stamp;
} Records;

static void records_free(Records *r)
{
    VEC_FREE(r->off);
    VEC_FREE(r->cap);
    VEC_FREE(r->wire);
    VEC_FREE(r->iface);
    VEC_FREE(r->lt);
    VEC_FREE(r->flags);
    VEC_FREE(r->ts);
    VEC_FREE(r->unit);
    VEC_FREE(r->stamp);
}

static int records_add(Records *r, int64_t off, int64_t cap, int64_t wire, double ts,
                       int64_t iface, int64_t lt, int64_t flags)
{
    if (VEC_PUSH(r->off, off) || VEC_PUSH(r->cap, cap) || VEC_PUSH(r->wire, wire)
        || VEC_PUSH(r->ts, ts) || VEC_PUSH(r->iface, iface) || VEC_PUSH(r->lt, lt)
        || VEC_PUSH(r->flags, flags))
        return -1;
    return 0;
}

/* "y#" makes None of a NULL pointer: an empty column is b"" */
#define B(p) ((p) ? (const char *)(p) : "")

static PyObject *records_out(Records *r, Py_ssize_t pos)
{
    return Py_BuildValue("(ny#y#y#y#y#y#y#)", pos, B(r->off.v), r->off.n * 8,
                         B(r->cap.v), r->cap.n * 8, B(r->wire.v),
                         r->wire.n * 8, B(r->ts.v), r->ts.n * 8,
                         B(r->iface.v), r->iface.n * 8, B(r->lt.v),
                         r->lt.n * 8, B(r->flags.v), r->flags.n * 8);
}

static inline uint32_t rd32o(Span s, Py_ssize_t off, int big)
{
    uint32_t v = rd32(s, off);
    return big ? v : __builtin_bswap32(v);
}

static inline uint32_t rd16o(Span s, Py_ssize_t off, int big)
{
    uint32_t v = rd16(s, off);
    return big ? v : (uint32_t)__builtin_bswap16((uint16_t)v);
}

/* capture._pcap_blocks' record walk: stops at the end of the buffer, after max_packets, at an
 * incomplete record, or at a captured length past MAX_RECORD (the caller words the damage).
 * Returns (pos, offsets, caplens, wirelens, ts, ifaces, linktypes, flags), the columns as
 * bytearrays of int64 (ts: double). */
static PyObject *scan_pcap(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *bufo;
    Py_ssize_t pos, max;
    int big, linktype;
    double unit;
    if (!PyArg_ParseTuple(args, "Onnpdi", &bufo, &pos, &max, &big, &unit, &linktype))
        return NULL;
    Py_buffer view;
    if (get_buffer(bufo, &view, "buf", 0))
        return NULL;
    Span buf = {view.buf, view.len};
    /* the records counted first, then the columns made to measure: columns for the most records
     * the buffer could hold (one per 16 bytes: 14 MB for a 4 MiB block), cut to size after the
     * walk, were given back to the system and faulted in again for every block (3,100 of the
     * 13,200 page faults of a 1M-packet decode) */
    Py_ssize_t count = 0, hinted = pos > 0 ? pos : 0;
    for (Py_ssize_t at = pos; at >= 0 && at + 16 <= buf.n && count < max; count++) {
        scan_prefetch(buf, at, &hinted);
        uint32_t caplen = rd32o(buf, at + 8, big);
        if (caplen > MAX_RECORD || at + 16 + (Py_ssize_t)caplen > buf.n)
            break;
        at += 16 + (Py_ssize_t)caplen;
    }
    PyObject *cols[7] = {0};
    for (int i = 0; i < 7; i++) {
        cols[i] = PyByteArray_FromStringAndSize(NULL, count * 8);
        if (cols[i] == NULL) {
            for (int j = 0; j < i; j++)
                Py_DECREF(cols[j]);
            PyBuffer_Release(&view);
            return NULL;
        }
    }
    int64_t *off = (int64_t *)PyByteArray_AS_STRING(cols[0]);
    int64_t *cap = (int64_t *)PyByteArray_AS_STRING(cols[1]);
    int64_t *wire = (int64_t *)PyByteArray_AS_STRING(cols[2]);
    double *ts = (double *)PyByteArray_AS_STRING(cols[3]);
    int64_t *ifc = (int64_t *)PyByteArray_AS_STRING(cols[4]);
    int64_t *lt = (int64_t *)PyByteArray_AS_STRING(cols[5]);
    int64_t *fl = (int64_t *)PyByteArray_AS_STRING(cols[6]);
    for (Py_ssize_t i = 0; i < count; i++) {          /* the records counted above, filled */
        uint32_t caplen = rd32o(buf, pos + 8, big);
        off[i] = pos + 16;
        cap[i] = caplen;
        wire[i] = rd32o(buf, pos + 12, big);
        ts[i] = (double)rd32o(buf, pos, big) + (double)rd32o(buf, pos + 4, big) * unit;
        ifc[i] = 0;
        lt[i] = linktype;
        fl[i] = 0;
        pos += 16 + (Py_ssize_t)caplen;
    }
    PyBuffer_Release(&view);
    PyObject *out = PyTuple_New(8);
    if (out == NULL) {
        for (int i = 0; i < 7; i++)
            Py_DECREF(cols[i]);
        return NULL;
    }
    PyTuple_SET_ITEM(out, 0, PyLong_FromSsize_t(pos));
    for (int i = 0; i < 7; i++)
        PyTuple_SET_ITEM(out, i + 1, cols[i]);
    if (PyTuple_GET_ITEM(out, 0) == NULL) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

/* the EPB walk of capture._pcapng_blocks: consecutive Enhanced Packet Blocks whose interface is
 * declared and whose lengths are sound; stops before any other block (or a damaged one), which
 * the caller handles as before. interfaces: ((capture_iface, linktype, ts_unit), ...) */
static PyObject *scan_pcapng(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *bufo, *ifaces;
    Py_ssize_t pos, max;
    int big;
    if (!PyArg_ParseTuple(args, "OnnpO!", &bufo, &pos, &max, &big, &PyTuple_Type, &ifaces))
        return NULL;
    Py_ssize_t nif = PyTuple_GET_SIZE(ifaces);
    int64_t *if_id = PyMem_Calloc((size_t)(nif ? nif : 1), sizeof(int64_t));
    int64_t *if_lt = PyMem_Calloc((size_t)(nif ? nif : 1), sizeof(int64_t));
    double *if_unit = PyMem_Calloc((size_t)(nif ? nif : 1), sizeof(double));
    if (if_id == NULL || if_lt == NULL || if_unit == NULL) {
        PyMem_Free(if_id);
        PyMem_Free(if_lt);
        PyMem_Free(if_unit);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < nif; i++) {
        PyObject *t = PyTuple_GET_ITEM(ifaces, i);
        long long id, lt;
        double unit;
        if (!PyArg_ParseTuple(t, "LLd", &id, &lt, &unit)) {
            PyMem_Free(if_id);
            PyMem_Free(if_lt);
            PyMem_Free(if_unit);
            return NULL;
        }
        if_id[i] = id;
        if_lt[i] = lt;
        if_unit[i] = unit;
    }
    Py_buffer view;
    if (get_buffer(bufo, &view, "buf", 0)) {
        PyMem_Free(if_id);
        PyMem_Free(if_lt);
        PyMem_Free(if_unit);
        return NULL;
    }
    Span buf = {view.buf, view.len};
    Records r;
    memset(&r, 0, sizeof r);
    Py_ssize_t count = 0;
    int err = 0;
    Py_ssize_t hinted = pos > 0 ? pos : 0;
    while (pos >= 0 && pos + 12 <= buf.n && count < max) {
        scan_prefetch(buf, pos, &hinted);
        uint32_t btype = rd32o(buf, pos, big), blen = rd32o(buf, pos + 4, big);
        if (btype != 6 || blen < 12 || blen % 4 || blen > MAX_RECORD
            || pos + (Py_ssize_t)blen > buf.n)
            break;
        Py_ssize_t body = pos + 8, body_end = pos + blen - 4;
        if (body_end - body < 20)
            break;
        uint32_t iface = rd32o(buf, body, big);
        uint64_t stamp = (uint64_t)rd32o(buf, body + 4, big) << 32 | rd32o(buf, body + 8, big);
        uint32_t caplen = rd32o(buf, body + 12, big), wirelen = rd32o(buf, body + 16, big);
        Py_ssize_t data = body + 20;
        if (data + (Py_ssize_t)caplen > body_end || (Py_ssize_t)iface >= nif)
            break;
        /* epb_flags: the first option 2 of 4 bytes (capture._epb_flags) */
        uint32_t flags = 0;
        Py_ssize_t opt = data + (((Py_ssize_t)caplen + 3) & ~(Py_ssize_t)3);
        while (opt + 4 <= body_end) {
            uint32_t code = rd16o(buf, opt, big), len = rd16o(buf, opt + 2, big);
            if (code == 0 || opt + 4 + (Py_ssize_t)len > body_end)
                break;
            if (code == 2 && len == 4) {
                flags = rd32o(buf, opt + 4, big);
                break;
            }
            opt += 4 + (((Py_ssize_t)len + 3) & ~(Py_ssize_t)3);
        }
        /* the "ts" column holds the raw stamp here and "wire2" the unit: pcapng_ts combines */
        if (records_add(&r, data, caplen, wirelen, 0.0, if_id[iface], if_lt[iface], flags)
            || VEC_PUSH(r.stamp, stamp) || VEC_PUSH(r.unit, if_unit[iface])) {
            err = 1;
            break;
        }
        pos += blen;
        count++;
    }
    /* pcapng: offsets, caplens, wirelens, stamps, units, ifaces, linktypes, flags */
    PyObject *out = err ? NULL : Py_BuildValue(
        "(ny#y#y#y#y#y#y#y#)", pos, B(r.off.v), r.off.n * 8, B(r.cap.v),
        r.cap.n * 8, B(r.wire.v), r.wire.n * 8, B(r.stamp.v), r.stamp.n * 8,
        B(r.unit.v), r.unit.n * 8, B(r.iface.v), r.iface.n * 8,
        B(r.lt.v), r.lt.n * 8, B(r.flags.v), r.flags.n * 8);
    records_free(&r);
    PyBuffer_Release(&view);
    PyMem_Free(if_id);
    PyMem_Free(if_lt);
    PyMem_Free(if_unit);
    return out;
}

/* capture._block's timestamps: secs + fracs * units, element by element, as float64 */
static PyObject *pcapng_ts(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *a, *b, *c;
    if (!PyArg_ParseTuple(args, "OOO", &a, &b, &c))
        return NULL;
    Py_buffer secs, fracs, units;
    if (get_buffer(a, &secs, "secs", 8))
        return NULL;
    if (get_buffer(b, &fracs, "fracs", 8)) {
        PyBuffer_Release(&secs);
        return NULL;
    }
    if (get_buffer(c, &units, "units", 8)) {
        PyBuffer_Release(&fracs);
        PyBuffer_Release(&secs);
        return NULL;
    }
    PyObject *out = NULL;
    Py_ssize_t n = secs.len / 8;
    if (fracs.len / 8 != n || units.len / 8 != n) {
        PyErr_SetString(PyExc_ValueError, "columns of different lengths");
    } else {
        out = PyByteArray_FromStringAndSize(NULL, n * 8);
        if (out) {
            double *ts = (double *)PyByteArray_AS_STRING(out);
            const int64_t *s = secs.buf;
            const uint64_t *f = fracs.buf;
            const double *u = units.buf;
            for (Py_ssize_t i = 0; i < n; i++)
                ts[i] = (double)s[i] + (double)f[i] * u[i];
        }
    }
    PyBuffer_Release(&units);
    PyBuffer_Release(&fracs);
    PyBuffer_Release(&secs);
    return out;
}

/* --- runs: a summary store's prefix keys, sorted and delta-coded (diag/decode/summary.py) ---
 * A run is a LEB128 count, then each key (as unsigned 64 bits, ascending) as the LEB128 of
 * its difference from the one before (the first from 0). Prefix keys (diag.decode.nlri) hold
 * an address and a length, so sorted neighbours differ in their low bits: ~2-3.5 bytes a key
 * instead of 8. */

static uint8_t *leb_put(uint8_t *out, uint64_t v)
{
    while (v >= 0x80) {
        *out++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *out++ = (uint8_t)v;
    return out;
}

/* the next LEB128 value of [*pos, end), or -1 if it runs past the end or past 64 bits */
static int leb_get(const uint8_t **pos, const uint8_t *end, uint64_t *v)
{
    uint64_t out = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*pos >= end)
            return -1;
        uint8_t byte = *(*pos)++;
        if (shift == 63 && byte > 1)
            return -1;
        out |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80)) {
            *v = out;
            return 0;
        }
    }
    return -1;
}

/* keys[0..n) sorted ascending (LSD radix by bytes; a byte all keys share is skipped) */
static int radix_sort_u64(uint64_t *keys, size_t n)
{
    if (n < 2)
        return 0;
    uint64_t *tmp = PyMem_Malloc(n * sizeof *tmp);
    if (tmp == NULL)
        return -1;
    uint64_t *src = keys, *dst = tmp;
    for (int shift = 0; shift < 64; shift += 8) {
        size_t count[256] = {0};
        for (size_t i = 0; i < n; i++)
            count[(src[i] >> shift) & 0xFF]++;
        if (count[(src[0] >> shift) & 0xFF] == n)
            continue;                       /* every key has this byte: order unchanged */
        size_t at = 0;
        for (int b = 0; b < 256; b++) {
            size_t c = count[b];
            count[b] = at;
            at += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[count[(src[i] >> shift) & 0xFF]++] = src[i];
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != keys)
        memcpy(keys, src, n * sizeof *keys);
    PyMem_Free(tmp);
    return 0;
}

/* pack_run(buffer of int64 keys) -> bytes: the keys as one run (sorted; repeats kept) */
static PyObject *pack_run(PyObject *mod, PyObject *arg)
{
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
        return NULL;
    if (b.len % 8) {
        PyBuffer_Release(&b);
        PyErr_SetString(PyExc_ValueError, "pack_run: a buffer of int64 keys");
        return NULL;
    }
    size_t n = (size_t)b.len / 8;
    uint64_t *keys = PyMem_Malloc((n ? n : 1) * sizeof *keys);
    if (keys == NULL) {
        PyBuffer_Release(&b);
        return PyErr_NoMemory();
    }
    memcpy(keys, b.buf, n * 8);
    PyBuffer_Release(&b);
    if (radix_sort_u64(keys, n) < 0) {
        PyMem_Free(keys);
        return PyErr_NoMemory();
    }
    /* at most 10 bytes a value: the count and n differences */
    uint8_t *buf = PyMem_Malloc(10 * (n + 1));
    if (buf == NULL) {
        PyMem_Free(keys);
        return PyErr_NoMemory();
    }
    uint8_t *out = leb_put(buf, n);
    uint64_t last = 0;
    for (size_t i = 0; i < n; i++) {
        out = leb_put(out, keys[i] - last);
        last = keys[i];
    }
    PyMem_Free(keys);
    PyObject *res = PyBytes_FromStringAndSize((const char *)buf, out - buf);
    PyMem_Free(buf);
    return res;
}

/* calls each(key, ctx) for the keys of one run; -1 with ValueError set if it is not one */
static int run_keys(PyObject *run, int (*each)(uint64_t, void *), void *ctx)
{
    Py_buffer b;
    if (PyObject_GetBuffer(run, &b, PyBUF_SIMPLE) < 0)
        return -1;
    const uint8_t *pos = b.buf, *end = pos + b.len;
    uint64_t n, key = 0;
    int rc = leb_get(&pos, end, &n);
    for (uint64_t i = 0; rc == 0 && i < n; i++) {
        uint64_t d;
        rc = leb_get(&pos, end, &d);
        if (rc == 0) {
            key += d;
            rc = each(key, ctx) < 0 ? -2 : 0;
        }
    }
    if (rc == 0 && pos != end)
        rc = -1;
    PyBuffer_Release(&b);
    if (rc == -1)
        PyErr_SetString(PyExc_ValueError, "not a run of packed keys");
    else if (rc == -2 && !PyErr_Occurred())
        PyErr_NoMemory();
    return rc < 0 ? -1 : 0;
}

struct out_keys {
    uint8_t *buf;
    size_t used, cap;
};

static int put_key(uint64_t key, void *ctx)
{
    struct out_keys *o = ctx;
    if (o->used + 8 > o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 4096;
        uint8_t *buf = PyMem_Realloc(o->buf, cap);
        if (buf == NULL)
            return -1;
        o->buf = buf;
        o->cap = cap;
    }
    memcpy(o->buf + o->used, &key, 8);
    o->used += 8;
    return 0;
}

/* unpack_run(run) -> bytes: its keys as native-endian int64, ascending as unsigned */
static PyObject *unpack_run(PyObject *mod, PyObject *arg)
{
    struct out_keys o = {NULL, 0, 0};
    if (run_keys(arg, put_key, &o) < 0) {
        PyMem_Free(o.buf);
        return NULL;
    }
    PyObject *res = PyBytes_FromStringAndSize((const char *)o.buf, (Py_ssize_t)o.used);
    PyMem_Free(o.buf);
    return res;
}

static int set_key(uint64_t key, void *ctx)
{
    return u64set_add(ctx, key) < 0 ? -1 : 0;
}

/* count_distinct(buffer of int64 keys[, runs]) -> how many distinct keys the buffer and the
 * runs hold together (the summary's distinct prefixes across sessions: numpy's unique sorts
 * or hashes into a new array; a set of 64-bit keys is faster) */
static PyObject *count_distinct(PyObject *mod, PyObject *args)
{
    PyObject *raw, *runs = NULL;
    if (!PyArg_ParseTuple(args, "O|O:count_distinct", &raw, &runs))
        return NULL;
    Py_buffer b;
    if (PyObject_GetBuffer(raw, &b, PyBUF_SIMPLE) < 0)
        return NULL;
    if (b.len % 8) {
        PyBuffer_Release(&b);
        PyErr_SetString(PyExc_ValueError, "count_distinct: a buffer of int64 keys");
        return NULL;
    }
    U64Set set = {0};
    const uint8_t *p = b.buf;
    Py_ssize_t n = b.len / 8;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t k;
        memcpy(&k, p + 8 * i, 8);
        if (u64set_add(&set, k) < 0) {
            u64set_free(&set);
            PyBuffer_Release(&b);
            return PyErr_NoMemory();
        }
    }
    PyBuffer_Release(&b);
    if (runs != NULL) {
        PyObject *seq = PySequence_Fast(runs, "count_distinct: runs are a list of bytes");
        if (seq == NULL) {
            u64set_free(&set);
            return NULL;
        }
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++)
            if (run_keys(PySequence_Fast_GET_ITEM(seq, i), set_key, &set) < 0) {
                Py_DECREF(seq);
                u64set_free(&set);
                return NULL;
            }
        Py_DECREF(seq);
    }
    size_t count = u64set_len(&set);
    u64set_free(&set);
    return PyLong_FromSize_t(count);
}

/* a buffer of Python object pointers (a numpy object array) and its length, or -1 */
static Py_ssize_t object_buffer(PyObject *arr, Py_buffer *view, int writable)
{
    if (PyObject_GetBuffer(arr, view, (writable ? PyBUF_WRITABLE : 0) | PyBUF_FORMAT
                                          | PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (view->format == NULL || strcmp(view->format, "O") != 0
        || view->len % (Py_ssize_t)sizeof(PyObject *)) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "expand: an object array");
        return -1;
    }
    return view->len / (Py_ssize_t)sizeof(PyObject *);
}

/* expand(values, counts, out): the rows of out, in order, are values[0] counts[0] times,
 * values[1] counts[1] times ... (numpy.repeat of an object array into out, an object array of
 * sum(counts) rows made by numpy.empty): a group's reference count raised once per group rather
 * than element by element through numpy's generic copy */
static PyObject *expand(PyObject *mod, PyObject *args)
{
    PyObject *values, *counts, *out;
    if (!PyArg_ParseTuple(args, "OOO", &values, &counts, &out))
        return NULL;
    Py_buffer vv, cv, ov;
    Py_ssize_t groups = object_buffer(values, &vv, 0);
    if (groups < 0)
        return NULL;
    if (PyObject_GetBuffer(counts, &cv, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&vv);
        return NULL;
    }
    Py_ssize_t rows = object_buffer(out, &ov, 1);
    if (rows < 0) {
        PyBuffer_Release(&vv);
        PyBuffer_Release(&cv);
        return NULL;
    }
    const char *bad = NULL;
    if (cv.len != groups * 8)
        bad = "expand: one count per value";
    else if (rows && groups && (const char *)vv.buf < (const char *)ov.buf + ov.len
             && (const char *)ov.buf < (const char *)vv.buf + vv.len)
        bad = "expand: values and out share memory";
    Py_ssize_t total = 0;
    for (Py_ssize_t g = 0; bad == NULL && g < groups; g++) {
        int64_t c;
        memcpy(&c, (const uint8_t *)cv.buf + 8 * g, 8);
        if (c < 0 || c > rows - total)
            bad = "expand: counts do not fit the output";
        else
            total += (Py_ssize_t)c;
    }
    if (bad == NULL && total != rows)
        bad = "expand: counts do not fill the output";
    if (bad == NULL) {
        PyObject **src = vv.buf, **dst = ov.buf;
        Py_ssize_t k = 0, nones = 0;     /* the Nones numpy.empty put in out, let go at once */
        for (Py_ssize_t g = 0; g < groups; g++) {
            int64_t c;
            memcpy(&c, (const uint8_t *)cv.buf + 8 * g, 8);
            if (c == 0)
                continue;
            PyObject *o = src[g] ? src[g] : Py_None;   /* held by values meanwhile */
            for (int64_t j = 0; j < c; j++, k++) {
                PyObject *old = dst[k];
                if (old == Py_None)
                    nones++;
                else
                    Py_XDECREF(old);
                dst[k] = o;
            }
            Py_SET_REFCNT(o, Py_REFCNT(o) + (Py_ssize_t)c);
        }
        Py_SET_REFCNT(Py_None, Py_REFCNT(Py_None) - nones);
    }
    PyBuffer_Release(&vv);
    PyBuffer_Release(&cv);
    PyBuffer_Release(&ov);
    if (bad) {
        PyErr_SetString(PyExc_ValueError, bad);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"count_distinct", count_distinct, METH_VARARGS,
     "Distinct int64 keys in a buffer and a list of runs."},
    {"pack_run", pack_run, METH_O, "int64 keys as a run: sorted, delta-coded."},
    {"unpack_run", unpack_run, METH_O, "A run's keys as int64, ascending as unsigned."},
    {"expand", expand, METH_VARARGS, "numpy.repeat of an object array, into an object array."},
    {"pcapng_ts", pcapng_ts, METH_VARARGS, "pcapng timestamps from stamps and units."},
    {"scan_pcap", scan_pcap, METH_VARARGS, "pcap records from a buffer position."},
    {"scan_pcapng", scan_pcapng, METH_VARARGS, "pcapng Enhanced Packet Blocks from a position."},
    {NULL, NULL, 0, NULL}};

extern PyType_Spec dc_arp_rule_spec;

static int module_exec(PyObject *m)
{
    if (dc_owned_init(m) < 0)
        return -1;
    PyObject *type = PyType_FromModuleAndSpec(m, &Decoder_spec, NULL);
    if (type == NULL)
        return -1;
    if (PyModule_AddObject(m, "Decoder", type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    PyObject *arp = PyType_FromModuleAndSpec(m, &dc_arp_rule_spec, NULL);
    if (arp == NULL || PyModule_AddObject(m, "ArpRule", arp) < 0) {
        Py_XDECREF(arp);
        return -1;
    }
#ifdef DIAG_CORE_CHECKED
    if (PyModule_AddIntConstant(m, "CHECKED", 1) < 0)
        return -1;
#else
    if (PyModule_AddIntConstant(m, "CHECKED", 0) < 0)
        return -1;
#endif
    if (PyModule_AddIntConstant(m, "READ_LOAD_DIV", READ_LOAD_DIV) < 0)
        return -1;
    return PyModule_AddIntConstant(m, "ABI", ABI);
}

static PyModuleDef_Slot module_slots[] = {{Py_mod_exec, module_exec}, {0, NULL}};

static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "diag.decode._core",
                                        "The compiled decode core of diag (see core.py).", 0,
                                        module_methods, module_slots, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__core(void) { return PyModuleDef_Init(&module_def); }
