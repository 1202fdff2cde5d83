/* One captured frame -> the rows of the reference's diag/decode/frames.py, for the shapes the
 * core decodes itself: link layers (Ethernet with 802.1Q/QinQ tags, Linux SLL/SLL2, raw IP,
 * NULL/LOOP, Cisco HDLC), IPv4 (options allowed) and IPv6 (extension headers walked), TCP, UDP,
 * ICMP echo and friends, SCTP/DCCP ports, VXLAN and GENEVE nested up to MAX_TUNNEL_DEPTH, ARP,
 * and TCP segments on BGP ports (handed to flows.c).
 *
 * A frame "bails" to the reference (PacketDecoder.packet, one frame) when it is anything else:
 * a fragment at any depth (reassembly is the reference's), LLDP, an ICMP error (the quoted
 * packet), a malformed or truncated header of any kind (the reference words the reason). The
 * bail decision is always made before anything of the frame is emitted, and the one BGP segment
 * a frame may carry is fed last, so a bailed frame leaves no trace here.
 */
#include "dec.h"

enum { OK = 0, BAIL = 1, ERR = -1 };

#define NEED(cond) do { if (!(cond)) return BAIL; } while (0)

/* an address with every byte set (keys and hashes read all 16) */
static void addr_set(Addr *a, int fam, const uint8_t *p)
{
    memset(a, 0, sizeof *a);
    a->fam = (uint8_t)fam;
    memcpy(a->a, p, fam == 4 ? 4 : 16);
}

static const uint16_t IPV6_EXT[] = {0, 43, 60, 135, 139, 140};

static int is_vlan_tpid(uint32_t t) { return t == 0x8100 || t == 0x88A8 || t == 0x9100 || t == 0x9200; }

static int is_ipv6_ext(uint32_t nh)
{
    for (size_t i = 0; i < sizeof IPV6_EXT / sizeof IPV6_EXT[0]; i++)
        if (IPV6_EXT[i] == nh)
            return 1;
    return 0;
}

/* layers.ethernet: Ethernet II at data[start:end] with up to 4 VLAN tags */
static int ethernet_at(Span data, Py_ssize_t start, Py_ssize_t end, Py_ssize_t *off, int *etype,
                       uint64_t *src, uint64_t *dst, int *ntags, uint16_t *tags)
{
    NEED(end >= start + 14 && span_has(data, start, 14));
    *dst = rd48(data, start);
    *src = rd48(data, start + 6);
    uint32_t et = rd16(data, start + 12);
    Py_ssize_t at = start + 14;
    int n = 0;
    while (is_vlan_tpid(et)) {
        NEED(n < 4);                                      /* too many VLAN tags */
        NEED(end >= at + 4 && span_has(data, at, 4));     /* VLAN tag truncated */
        tags[n++] = (uint16_t)(rd16(data, at) & 0x0FFF);
        et = rd16(data, at + 2);
        at += 4;
    }
    *ntags = n;
    *off = at;
    *etype = (int)et;
    return OK;
}

static int link_header(Frame *f, Span data, Py_ssize_t *off, int *etype)
{
    f->has_eth_src = f->has_eth_dst = 0;
    f->nvlan = 0;
    f->ifindex = -1;
    f->has_pkttype = 0;
    switch (f->linktype) {
    case 1:
        if (ethernet_at(data, 0, data.n, off, etype, &f->eth_src, &f->eth_dst, &f->nvlan,
                        f->vlan))
            return BAIL;
        f->has_eth_src = f->has_eth_dst = 1;
        return OK;
    case 276: {                                            /* SLL2 */
        NEED(data.n >= 20);
        *etype = (int)rd16(data, 0);
        f->ifindex = rd32(data, 4);
        uint32_t hatype = rd16(data, 8), halen = rd8(data, 11);
        f->has_pkttype = 1;
        f->pkttype = (int)rd8(data, 10);
        if (hatype == 1 && halen == 6) {
            f->has_eth_src = 1;
            f->eth_src = rd48(data, 12);
        }
        *off = 20;
        return OK;
    }
    case 113: {                                            /* SLL */
        NEED(data.n >= 16);
        f->has_pkttype = 1;
        f->pkttype = (int)rd16(data, 0);
        uint32_t hatype = rd16(data, 2), halen = rd16(data, 4);
        if (hatype == 1 && halen == 6) {
            f->has_eth_src = 1;
            f->eth_src = rd48(data, 6);
        }
        *etype = (int)rd16(data, 14);
        *off = 16;
        return OK;
    }
    case 101: case 12: case 14: {                          /* raw IP */
        NEED(data.n >= 1);
        uint32_t v = rd8(data, 0) >> 4;
        *etype = v == 4 ? 0x0800 : v == 6 ? 0x86DD : 0;
        *off = 0;
        return OK;
    }
    case 228: *etype = 0x0800; *off = 0; return OK;
    case 229: *etype = 0x86DD; *off = 0; return OK;
    case 0: case 108: {                                    /* NULL (host order), LOOP */
        NEED(data.n >= 4);
        uint32_t fam;
        if (f->linktype == 0) {
            fam = rd8(data, 0) | rd8(data, 1) << 8 | rd8(data, 2) << 16 | rd8(data, 3) << 24;
            if (fam > 0xFFFF)
                fam = rd32(data, 0);
        } else {
            fam = rd32(data, 0);
        }
        *etype = fam == 2 ? 0x0800
                 : (fam == 10 || fam == 24 || fam == 28 || fam == 30) ? 0x86DD : 0;
        *off = 4;
        return OK;
    }
    case 104:                                              /* Cisco HDLC */
        NEED(data.n >= 4);
        *etype = (int)rd16(data, 2);
        *off = 4;
        return OK;
    default:
        return BAIL;
    }
}

static int network(Decoder *d, Frame *f, Span data, int etype, Py_ssize_t off, Py_ssize_t end,
                   int depth, Net *out);

static int tunnel(Decoder *d, Frame *f, Span data, int kind, Py_ssize_t off, Py_ssize_t end,
                  int depth, const Net *outer, int *deepest)
{
    int layer = depth + 1;
    NEED(f->ntunnels < MAX_LAYERS);
    Tunnel *t = &f->tunnels[f->ntunnels++];      /* the outer layer's row comes first */
    t->depth = layer;
    t->kind = kind;
    t->outer_src = outer->src;
    t->outer_dst = outer->dst;
    t->outer_sport = outer->sport;
    t->outer_dport = outer->dport;
    t->is_geneve = kind == APP_GENEVE;
    t->options.p = NULL;
    t->options.n = 0;
    Py_ssize_t inner_off;
    int inner_etype = -1;                        /* -1: an Ethernet frame follows */
    NEED(end - off >= 8 && span_has(data, off, 8));
    if (kind == APP_VXLAN) {
        t->flags = (int)rd8(data, off);
        t->vni = rd32(data, off + 4) >> 8;
        inner_off = off + 8;
    } else {
        uint32_t ver_optlen = rd8(data, off);
        t->flags = (int)rd8(data, off + 1);
        uint32_t proto = rd16(data, off + 2);
        NEED((ver_optlen >> 6) == 0);
        t->vni = rd32(data, off + 4) >> 8;
        Py_ssize_t opt_end = off + 8 + (Py_ssize_t)(ver_optlen & 0x3F) * 4;
        NEED(opt_end <= end && opt_end <= data.n);
        for (Py_ssize_t pos = off + 8; pos + 4 <= opt_end;) {
            Py_ssize_t len = (Py_ssize_t)(rd8(data, pos + 3) & 0x1F) * 4;
            NEED(pos + 4 + len <= opt_end);
            pos += 4 + len;
        }
        t->options = subspan(data, off + 8, opt_end - (off + 8));
        inner_off = opt_end;
        inner_etype = proto == 0x6558 ? -1 : (int)proto;
    }
    NEED(layer <= MAX_TUNNEL_DEPTH);
    Py_ssize_t i_off;
    int i_etype;
    if (inner_etype < 0) {
        int ntags;
        uint16_t tags[4];
        if (ethernet_at(data, inner_off, end, &i_off, &i_etype, &t->inner_eth_src,
                        &t->inner_eth_dst, &ntags, tags))
            return BAIL;
        t->has_inner_eth = 1;
    } else {
        i_off = inner_off;
        i_etype = inner_etype;
        t->has_inner_eth = 0;
    }
    Net inner;
    int rc = network(d, f, data, i_etype, i_off, end, layer, &inner);
    if (rc)
        return rc;
    t->inner_l3 = inner.l3;
    t->inner_etype = inner.etype;
    t->inner_src = inner.src;
    t->inner_dst = inner.dst;
    t->inner_proto = inner.proto;
    t->inner_sport = inner.sport;
    t->inner_dport = inner.dport;
    *deepest = inner.depth;
    return OK;
}

static int transport(Decoder *d, Frame *f, Span data, Net *out, Py_ssize_t l4, Py_ssize_t ip_end,
                     int truncated, int depth)
{
    int proto = out->proto;
    if (proto == 6) {
        NEED(ip_end - l4 >= 20 && span_has(data, l4, 20));       /* TCP header truncated */
        int sport = (int)rd16(data, l4), dport = (int)rd16(data, l4 + 2);
        out->sport = sport;
        out->dport = dport;
        if (port_in(d->bgp_ports, sport) || port_in(d->bgp_ports, dport)) {
            Py_ssize_t hlen = (Py_ssize_t)(rd8(data, l4 + 12) >> 4) * 4;
            NEED(hlen >= 20 && l4 + hlen <= ip_end);
            NEED(!truncated);
            Segment *s = &f->seg;
            s->present = 1;
            s->src = out->src;
            s->dst = out->dst;
            s->sport = sport;
            s->dport = dport;
            s->seq = rd32(data, l4 + 4);
            s->flags = (int)rd8(data, l4 + 13);
            s->payload = subspan(data, l4 + hlen, ip_end - (l4 + hlen));
            if (s->flags & 0x02)
                s->options = subspan(data, l4 + 20, hlen - 20);
            else
                s->options = subspan(data, l4, 0);
            s->depth = depth;
            out->app = APP_BGP;
        }
        return OK;
    }
    if (proto == 17) {
        NEED(ip_end - l4 >= 8 && span_has(data, l4, 8));         /* UDP header truncated */
        int sport = (int)rd16(data, l4), dport = (int)rd16(data, l4 + 2);
        out->sport = sport;
        out->dport = dport;
        int kind = port_in(d->vxlan_ports, dport) ? APP_VXLAN
                   : port_in(d->geneve_ports, dport) ? APP_GENEVE
                   : port_in(d->vxlan_ports, sport) ? APP_VXLAN
                   : port_in(d->geneve_ports, sport) ? APP_GENEVE : APP_NONE;
        if (kind == APP_NONE)
            return OK;
        int deepest = depth;
        int rc = tunnel(d, f, data, kind, l4 + 8, ip_end, depth, out, &deepest);
        if (rc)
            return rc;
        out->app = kind;
        out->depth = deepest;
        return OK;
    }
    if ((proto == 1 && out->l3 == L3_IPV4) || (proto == 58 && out->l3 == L3_IPV6)) {
        if (ip_end - l4 >= 8) {
            NEED(span_has(data, l4, 1));
            uint32_t type = rd8(data, l4);
            if (proto == 1)
                NEED(!(type == 3 || type == 4 || type == 5 || type == 11 || type == 12));
            else
                NEED(!(type >= 1 && type <= 4));          /* an ICMP error: the reference's */
        }
        return OK;
    }
    if (proto == 132 || proto == 33) {
        if (ip_end - l4 >= 4) {
            NEED(span_has(data, l4, 4));
            out->sport = (int)rd16(data, l4);
            out->dport = (int)rd16(data, l4 + 2);
        }
    }
    return OK;
}

static int arp(Decoder *d, Frame *f, Span data, Py_ssize_t off, Py_ssize_t end, int depth,
               Net *out)
{
    (void)d;
    NEED(end - off >= 8 && span_has(data, off, 8));             /* ARP header truncated */
    uint32_t ptype = rd16(data, off + 2), hlen = rd8(data, off + 4), plen = rd8(data, off + 5);
    uint32_t op = rd16(data, off + 6);
    Py_ssize_t body = off + 8;
    NEED(end - body >= 2 * (Py_ssize_t)(hlen + plen));           /* ARP addresses truncated */
    NEED(ptype == 0x0800 && plen == 4 && hlen == 6);              /* other ARP: reference */
    NEED(span_has(data, body, 20));
    Arp *a = &f->arp;
    a->present = 1;
    a->op = (int)op;
    a->sha = rd48(data, body);
    memcpy(a->spa, rdp(data, body + 6, 4), 4);
    a->tha = rd48(data, body + 10);
    memcpy(a->tpa, rdp(data, body + 16, 4), 4);
    a->depth = depth;
    out->l3 = L3_ARP;
    addr_set(&out->src, 4, a->spa);
    addr_set(&out->dst, 4, a->tpa);
    out->app = APP_ARP;
    return OK;
}

static int network(Decoder *d, Frame *f, Span data, int etype, Py_ssize_t off, Py_ssize_t end,
                   int depth, Net *out)
{
    out->etype = etype;
    memset(&out->src, 0, sizeof(Addr));
    memset(&out->dst, 0, sizeof(Addr));
    out->ttl = out->proto = out->sport = out->dport = -1;
    out->app = APP_NONE;
    out->depth = depth;
    if (etype == 0x0800) {
        NEED(end - off >= 20 && span_has(data, off, 20));      /* IPv4 header truncated */
        uint32_t vihl = rd8(data, off);
        NEED((vihl >> 4) == 4);
        Py_ssize_t ihl = (Py_ssize_t)(vihl & 15) * 4;
        Py_ssize_t total = rd16(data, off + 2);
        NEED(ihl >= 20 && total >= ihl);
        NEED((rd16(data, off + 6) & 0x3FFF) == 0);              /* a fragment: reassembly */
        out->l3 = L3_IPV4;
        out->ttl = (int)rd8(data, off + 8);
        out->proto = (int)rd8(data, off + 9);
        addr_set(&out->src, 4, rdp(data, off + 12, 4));
        addr_set(&out->dst, 4, rdp(data, off + 16, 4));
        Py_ssize_t ip_end = off + total;
        int truncated = ip_end > end;
        if (truncated)
            ip_end = end;
        return transport(d, f, data, out, off + ihl, ip_end, truncated, depth);
    }
    if (etype == 0x86DD) {
        NEED(end - off >= 40 && span_has(data, off, 40));      /* IPv6 header truncated */
        NEED((rd8(data, off) >> 4) == 6);
        Py_ssize_t plen = rd16(data, off + 4);
        uint32_t nh = rd8(data, off + 6);
        out->l3 = L3_IPV6;
        out->ttl = (int)rd8(data, off + 7);
        addr_set(&out->src, 6, rdp(data, off + 8, 16));
        addr_set(&out->dst, 6, rdp(data, off + 24, 16));
        Py_ssize_t p = off + 40;
        Py_ssize_t ip_end = plen ? p + plen : end;
        int truncated = ip_end > end;
        if (truncated)
            ip_end = end;
        int walked = 0;
        for (;;) {
            NEED(walked < 12);                 /* the reference walks at most 12 headers */
            if (is_ipv6_ext(nh)) {
                NEED(p + 2 <= ip_end && span_has(data, p, 2));
                Py_ssize_t next = p + ((Py_ssize_t)rd8(data, p + 1) + 1) * 8;
                nh = rd8(data, p);
                p = next;
            } else if (nh == 44) {
                return BAIL;                                    /* a fragment header */
            } else if (nh == 51) {
                NEED(p + 2 <= ip_end && span_has(data, p, 2));
                Py_ssize_t next = p + ((Py_ssize_t)rd8(data, p + 1) + 2) * 4;
                nh = rd8(data, p);
                p = next;
            } else {
                break;
            }
            walked++;
        }
        NEED(p <= ip_end);
        out->proto = (int)nh;
        return transport(d, f, data, out, p, ip_end, truncated, depth);
    }
    if (etype == 0x0806)
        return arp(d, f, data, off, end, depth, out);
    NEED(etype != 0x88CC);                                      /* LLDP: the reference's */
    out->l3 = L3_OTHER;
    return OK;
}

/* ---------------------------------------------------------------- emission */

static PyObject *opt_int(Decoder *d, int64_t v) { return v < 0 ? Py_NewRef(Py_None) : text_int(d->tx, v); }

static PyObject *l3_text(Decoder *d, int l3, int etype)
{
    if (l3 == L3_OTHER)
        return text_etype(d->tx, etype);
    return d->s_l3[l3];
}

static PyObject *iface_name(Decoder *d, int iface)
{
    if (d->iface_names && iface >= 0 && iface < PyList_GET_SIZE(d->iface_names))
        return PyList_GET_ITEM(d->iface_names, iface);
    return Py_None;
}

static PyObject *geneve_options(Decoder *d, Span opts)
{
    (void)d;
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t pos = 0; pos + 4 <= opts.n;) {
        uint32_t cls = rd16(opts, pos), typ = rd8(opts, pos + 2);
        Py_ssize_t len = (Py_ssize_t)(rd8(opts, pos + 3) & 0x1F) * 4;
        if (!span_has(opts, pos + 4, len))
            break;                                   /* checked before: cannot happen */
        char hex[2 * 124 + 1];
        const uint8_t *v = rdp(opts, pos + 4, len);
        for (Py_ssize_t i = 0; i < len; i++)
            snprintf(hex + 2 * i, 3, "%02x", v[i]);
        hex[2 * len] = 0;
        PyObject *s = PyUnicode_FromFormat("class=0x%04x type=0x%02x data=%s", cls, typ, hex);
        if (s == NULL || PyList_Append(list, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(s);
        pos += 4 + len;
    }
    return list;
}

#define TRY(x) do { if ((x) < 0) return ERR; } while (0)

static int emit_tables(Decoder *d, const Frame *f)
{
    Texts *tx = d->tx;
    Col *c = d->packets.cols;
    const Net *n = &f->net;
    PyObject *name = iface_name(d, f->iface);
    TRY(col_i64(&c[0], f->frame));
    TRY(col_f64(&c[1], f->ts));
    TRY(col_i64(&c[2], f->caplen));
    TRY(col_i64(&c[3], f->wirelen));
    TRY(col_i64(&c[4], f->linktype));
    TRY(col_i64(&c[5], f->iface));
    TRY(col_obj(&c[6], name));
    TRY(f->ifindex < 0 ? col_none(&c[7]) : col_i64(&c[7], f->ifindex));
    TRY(col_obj(&c[8], d->s_dir[f->direction]));
    TRY(col_obj(&c[9], f->has_pkttype ? text_pkttype(tx, f->pkttype) : NULL));
    TRY(col_obj(&c[10], f->has_eth_src ? text_mac(tx, f->eth_src) : NULL));
    TRY(col_obj(&c[11], f->has_eth_dst ? text_mac(tx, f->eth_dst) : NULL));
    TRY(col_obj(&c[12], f->nvlan ? text_vlan(tx, f->vlan, f->nvlan) : NULL));
    TRY(col_obj(&c[13], l3_text(d, n->l3, n->etype)));
    PyObject *src = text_addr(tx, &n->src);
    TRY(col_obj(&c[14], src));
    PyObject *dst = text_addr(tx, &n->dst);
    TRY(col_obj(&c[15], dst));
    TRY(n->ttl < 0 ? col_none(&c[16]) : col_i64(&c[16], n->ttl));
    TRY(n->proto < 0 ? col_none(&c[17]) : col_i64(&c[17], n->proto));
    TRY(col_bool(&c[18], 0));
    TRY(n->sport < 0 ? col_none(&c[19]) : col_i64(&c[19], n->sport));
    TRY(n->dport < 0 ? col_none(&c[20]) : col_i64(&c[20], n->dport));
    TRY(col_obj(&c[21], d->s_app[n->app]));
    TRY(col_i64(&c[22], n->depth));
    TRY(col_none(&c[23]));
    for (int i = 0; i < f->ntunnels; i++) {
        const Tunnel *t = &f->tunnels[i];
        Col *k = d->tunnels.cols;
        TRY(col_i64(&k[0], f->frame));
        TRY(col_f64(&k[1], f->ts));
        TRY(col_i64(&k[2], t->depth));
        TRY(col_obj(&k[3], d->s_app[t->kind]));
        TRY(col_i64(&k[4], t->vni));
        /* the outermost layer's addresses are the packet's (texts valid until the chunk ends) */
        TRY(col_obj(&k[5], i == 0 ? src : text_addr(tx, &t->outer_src)));
        TRY(col_obj(&k[6], i == 0 ? dst : text_addr(tx, &t->outer_dst)));
        TRY(col_i64(&k[7], t->outer_sport));
        TRY(col_i64(&k[8], t->outer_dport));
        TRY(col_obj(&k[9], t->has_inner_eth ? text_mac(tx, t->inner_eth_src) : NULL));
        TRY(col_obj(&k[10], t->has_inner_eth ? text_mac(tx, t->inner_eth_dst) : NULL));
        TRY(col_obj(&k[11], l3_text(d, t->inner_l3, t->inner_etype)));
        TRY(col_obj(&k[12], text_addr(tx, &t->inner_src)));
        TRY(col_obj(&k[13], text_addr(tx, &t->inner_dst)));
        TRY(t->inner_proto < 0 ? col_none(&k[14]) : col_i64(&k[14], t->inner_proto));
        TRY(t->inner_sport < 0 ? col_none(&k[15]) : col_i64(&k[15], t->inner_sport));
        TRY(t->inner_dport < 0 ? col_none(&k[16]) : col_i64(&k[16], t->inner_dport));
        TRY(col_i64(&k[17], t->flags));
        if (t->is_geneve)
            TRY(col_obj_steal(&k[18], geneve_options(d, t->options)));
        else
            TRY(col_none(&k[18]));
        TRY(col_none(&k[19]));
    }
    if (f->arp.present) {
        const Arp *a = &f->arp;
        Col *k = d->arp.cols;
        TRY(col_i64(&k[0], f->frame));
        TRY(col_f64(&k[1], f->ts));
        TRY(col_i64(&k[2], f->iface));
        TRY(col_obj(&k[3], name));
        TRY(col_obj(&k[4], d->s_dir[f->direction]));
        TRY(col_i64(&k[5], a->depth));
        if (a->op == 1 || a->op == 2)
            TRY(col_obj(&k[6], d->s_op[a->op]));
        else
            TRY(col_obj_steal(&k[6], PyUnicode_FromFormat("%d", a->op)));
        TRY(col_obj(&k[7], text_mac(tx, a->sha)));
        TRY(col_obj(&k[8], text_ipv4(tx, a->spa)));
        TRY(col_obj(&k[9], text_mac(tx, a->tha)));
        TRY(col_obj(&k[10], text_ipv4(tx, a->tpa)));
        TRY(col_bool(&k[11], memcmp(a->spa, a->tpa, 4) == 0));
        TRY(col_obj(&k[12], f->nvlan ? text_vlan(tx, f->vlan, f->nvlan) : NULL));
        TRY(col_none(&k[13]));
    }
    return OK;
}

/* ---------------------------------------------------------------- one frame */

static int decode_frame(Decoder *d, Frame *f, Span data)
{
    f->ntunnels = 0;
    f->arp.present = 0;
    f->seg.present = 0;
    int fl = (int)(f->direction & 3);
    f->direction = fl == 1 ? DIR_IN : fl == 2 ? DIR_OUT : DIR_NONE;
    Py_ssize_t off;
    int etype;
    if (link_header(f, data, &off, &etype))
        return BAIL;
    if (f->has_pkttype && f->direction == DIR_NONE)
        f->direction = f->pkttype == 4 ? DIR_OUT : DIR_IN;
    return network(d, f, data, etype, off, data.n, 0, &f->net);
}

static int fallback(Decoder *d, const Frame *f, Span data, int64_t flags)
{
    d->frames_bailed++;
    PyObject *raw = PyBytes_FromStringAndSize((const char *)data.p, data.n);
    if (raw == NULL)
        return ERR;
    PyObject *rows = PyObject_CallFunction(d->h_fallback, "LdiiNiL", (long long)f->frame, f->ts,
                                           f->iface, f->linktype, raw, f->wirelen,
                                           (long long)flags);
    if (rows == NULL)
        return ERR;
    if (d->tables && rows != Py_None) {
        static const char *const names[3] = {"packets", "tunnels", "arp"};
        Table *tables[3] = {&d->packets, &d->tunnels, &d->arp};
        for (int i = 0; i < 3; i++) {
            PyObject *list = PyDict_GetItemString(rows, names[i]);
            if (list == NULL)
                continue;
            PyObject *seq = PySequence_Fast(list, "rows");
            if (seq == NULL) {
                Py_DECREF(rows);
                return ERR;
            }
            for (Py_ssize_t j = 0; j < PySequence_Fast_GET_SIZE(seq); j++) {
                PyObject *row = PySequence_Fast_GET_ITEM(seq, j);
                if (row == Py_None)
                    continue;
                if (table_py_row(tables[i], row)) {
                    Py_DECREF(seq);
                    Py_DECREF(rows);
                    return ERR;
                }
            }
            Py_DECREF(seq);
        }
    }
    Py_DECREF(rows);
    return OK;
}

/* A frame the reference decodes, in a block another worker folds: only its BGP segments
 * matter here (they come back through the reference's flows to dc_deliver); its rows are the
 * shadow's to drop. */
static int shadow_frame(PyObject *shadow, const Frame *f, Span data, int64_t flags)
{
    PyObject *raw = PyBytes_FromStringAndSize((const char *)data.p, data.n);
    if (raw == NULL)
        return ERR;
    PyObject *r = PyObject_CallFunction(shadow, "LdiiNiL", (long long)f->frame, f->ts, f->iface,
                                        f->linktype, raw, f->wirelen, (long long)flags);
    Py_XDECREF(r);
    return r == NULL ? ERR : OK;
}

/* ---------------------------------------------------------------- another worker's frames */

/* In a block another worker folds, the walk acts on three kinds of frame only: one holding a
 * BGP segment (dc_deliver), ARP (the ARP worker's fold, every worker's count of its load) and
 * one the reference decodes (the shadow: IP fragments, BGP in odd shapes). dc_skippable says
 * a frame is none of them - 1 only when decode_frame would certainly walk it to OK with no
 * segment and no ARP - without walking it: past the link header (link_header, as the walk),
 * the common shapes (IPv4, IPv6 without extension headers; TCP, UDP, ICMP; one VXLAN layer)
 * whole and untruncated. Anything else is walked (0). Each test below is the one decode_frame
 * makes at the same place, or a stricter one; tests/decode/test_core_skip.py checks the
 * answer against decode_frame's on drawn and damaged frames. */
static int skip_l3(const Decoder *d, Span data, int etype, Py_ssize_t off, Py_ssize_t end,
                   int depth);

static int skip_l4(const Decoder *d, Span data, int proto, int v6, Py_ssize_t l4,
                   Py_ssize_t ip_end, int depth)
{
    if (proto == 6) {
        if (ip_end - l4 < 20 || !span_has(data, l4, 20))
            return 0;
        return !port_in(d->bgp_ports, (int)rd16(data, l4))
               && !port_in(d->bgp_ports, (int)rd16(data, l4 + 2));
    }
    if (proto == 17) {
        if (ip_end - l4 < 8 || !span_has(data, l4, 8))
            return 0;
        int sport = (int)rd16(data, l4), dport = (int)rd16(data, l4 + 2);
        int kind = port_in(d->vxlan_ports, dport) ? APP_VXLAN
                   : port_in(d->geneve_ports, dport) ? APP_GENEVE
                   : port_in(d->vxlan_ports, sport) ? APP_VXLAN
                   : port_in(d->geneve_ports, sport) ? APP_GENEVE : APP_NONE;
        if (kind == APP_NONE)
            return 1;
        if (kind != APP_VXLAN || depth > 0)
            return 0;
        Py_ssize_t eth = l4 + 16;                    /* the VXLAN header, then Ethernet */
        if (ip_end - eth < 14 || !span_has(data, l4 + 8, 22))
            return 0;
        uint32_t etype = rd16(data, eth + 12);
        if (is_vlan_tpid(etype))
            return 0;
        return skip_l3(d, data, (int)etype, eth + 14, ip_end, depth + 1);
    }
    if ((proto == 1 && !v6) || (proto == 58 && v6)) {
        if (ip_end - l4 >= 8) {
            if (!span_has(data, l4, 1))
                return 0;
            uint32_t type = rd8(data, l4);
            if (proto == 1 ? (type == 3 || type == 4 || type == 5 || type == 11 || type == 12)
                           : (type >= 1 && type <= 4))
                return 0;                            /* an ICMP error: the reference's */
        }
        return 1;
    }
    return 1;                                        /* transport() takes any other as it is */
}

static int skip_l3(const Decoder *d, Span data, int etype, Py_ssize_t off, Py_ssize_t end,
                   int depth)
{
    if (etype == 0x0800) {
        if (end - off < 20 || !span_has(data, off, 20))
            return 0;
        uint32_t vihl = rd8(data, off);
        Py_ssize_t ihl = (Py_ssize_t)(vihl & 15) * 4, total = rd16(data, off + 2);
        if ((vihl >> 4) != 4 || ihl < 20 || total < ihl || total > end - off
            || (rd16(data, off + 6) & 0x3FFF))
            return 0;                                /* odd, truncated or a fragment */
        return skip_l4(d, data, (int)rd8(data, off + 9), 0, off + ihl, off + total, depth);
    }
    if (etype == 0x86DD) {
        if (end - off < 40 || !span_has(data, off, 40) || (rd8(data, off) >> 4) != 6)
            return 0;
        Py_ssize_t plen = rd16(data, off + 4);
        uint32_t nh = rd8(data, off + 6);
        if (plen == 0 || plen > end - off - 40 || is_ipv6_ext(nh) || nh == 44 || nh == 51)
            return 0;
        return skip_l4(d, data, (int)nh, 1, off + 40, off + 40 + plen, depth);
    }
    return etype != 0x0806 && etype != 0x88CC;        /* ARP; LLDP is the reference's */
}

int dc_skippable(const Decoder *d, Span data, int linktype)
{
    if (linktype == 1 && data.n >= 14 && !is_vlan_tpid(rd16(data, 12)))
        return skip_l3(d, data, (int)rd16(data, 12), 14, data.n, 0);   /* untagged Ethernet */
    Frame f;                                 /* link_header's scratch: it reads the link type */
    f.linktype = linktype;
    Py_ssize_t off;
    int etype;
    if (link_header(&f, data, &off, &etype) != OK)
        return 0;
    return skip_l3(d, data, etype, off, data.n, 0);
}

/* What walking ``data`` in another worker's block acts on (for the tests of dc_skippable):
 * 0 nothing, 1 the reference (a bail), 2 ARP, 3 a BGP segment; -1 an error. */
int dc_walk_effect(Decoder *d, Span data, int linktype)
{
    Frame f;
    memset(&f, 0, sizeof f);
    f.caplen = f.wirelen = (int)data.n;
    f.linktype = linktype;
    int rc = decode_frame(d, &f, data);
    if (rc == ERR)
        return -1;
    return rc == BAIL ? 1 : f.arp.present ? 2 : f.seg.present ? 3 : 0;
}

/* One block of records. With ``shadow`` (a callable), the block is another worker's to fold:
 * its frames are walked only for the BGP segments of the connections this decoder owns (the
 * frames the reference would decode go to ``shadow``); nothing is folded or tabled. */
#define FRAME_AHEAD 4        /* frames whose headers are prefetched ahead of the walk */

int dc_decode_block(Decoder *d, Span buf, int64_t first_frame, Py_ssize_t count,
                    const int64_t *offsets, const int64_t *caplens, const int64_t *wirelens,
                    const double *ts, const int64_t *ifaces, const int64_t *linktypes,
                    const int64_t *flags, PyObject *shadow)
{
    Frame f;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!span_has(buf, offsets[i], caplens[i])) {
            PyErr_Format(PyExc_ValueError, "record %zd lies outside its block", i);
            return ERR;
        }
        if (i + FRAME_AHEAD < count && span_has(buf, offsets[i + FRAME_AHEAD], 128)) {
            /* the headers of a frame a few ahead: their first touch would wait on memory */
            __builtin_prefetch(buf.p + offsets[i + FRAME_AHEAD], 0, 3);
            __builtin_prefetch(buf.p + offsets[i + FRAME_AHEAD] + 64, 0, 3);
        }
        Span data = subspan(buf, offsets[i], caplens[i]);
        if (shadow != NULL && dc_skippable(d, data, (int)linktypes[i]))
            continue;                        /* another worker's frame that cannot matter here */
        f.frame = first_frame + i;
        f.ts = ts[i];
        f.caplen = (int)caplens[i];
        f.wirelen = (int)wirelens[i];
        f.linktype = (int)linktypes[i];
        f.iface = (int)ifaces[i];
        f.direction = (int)(flags[i] & 3);
        int rc = decode_frame(d, &f, data);
        if (rc == BAIL) {
            if (shadow ? shadow_frame(shadow, &f, data, flags[i])
                       : fallback(d, &f, data, flags[i]))
                return ERR;
            continue;
        }
        if (shadow == NULL) {
            if (d->tables && emit_tables(d, &f))
                return ERR;
            if (d->fold && dc_fold_packet(d, &f))
                return ERR;
        } else if (d->fold && d->arp_owner == d->own_index && dc_fold_arp(d, &f)) {
            return ERR;
        }
        if (f.arp.present && d->arp_owner >= 0)
            d->own_load[d->arp_owner] += ARP_LOAD;
        if (f.seg.present) {
            Segment *s = &f.seg;
            if (dc_deliver(d, &s->src, s->sport, &s->dst, s->dport, s->seq, s->flags,
                           s->payload, f.frame, f.ts, s->depth, s->options, NULL))
                return ERR;
        }
    }
    return OK;
}

