/* The decoder object of the compiled core and what its parts (frames.c, flows.c, bgpmsg.c,
 * fold.c, module.c) share.  See core.h for the contract and the bounds-checking rule. */
#ifndef DIAG_DEC_H
#define DIAG_DEC_H

#include "core.h"

#define MAX_TUNNEL_DEPTH 8
#define MAX_LAYERS (MAX_TUNNEL_DEPTH + 1)

enum { APP_NONE, APP_BGP, APP_VXLAN, APP_GENEVE, APP_ARP, N_APPS };
enum { L3_IPV4, L3_IPV6, L3_ARP, L3_OTHER };   /* L3_OTHER: "0x...." or "llc" from etype */
enum { DIR_NONE, DIR_IN, DIR_OUT };

/* what the reference's _network returns for one level */
typedef struct {
    int l3, etype;
    Addr src, dst;
    int ttl, proto;            /* -1: None */
    int sport, dport;          /* -1: None */
    int app;
    int depth;
} Net;

typedef struct {
    int depth, kind;           /* kind: APP_VXLAN or APP_GENEVE */
    int64_t vni;
    Addr outer_src, outer_dst;
    int outer_sport, outer_dport;
    int has_inner_eth;
    uint64_t inner_eth_src, inner_eth_dst;
    int inner_l3, inner_etype;
    Addr inner_src, inner_dst;
    int inner_proto, inner_sport, inner_dport;
    int flags;
    Span options;              /* GENEVE options (texts made at emission) */
    int is_geneve;
} Tunnel;

typedef struct {
    int present;
    int op;
    uint64_t sha, tha;
    uint8_t spa[4], tpa[4];
    int depth;
} Arp;

/* a TCP segment on a BGP port, fed to the flows once the frame decoded without a bail */
typedef struct {
    int present;
    Addr src, dst;
    int sport, dport;
    uint32_t seq;
    int flags;
    Span payload, options;
    int depth;
} Segment;

/* one frame, decoded */
typedef struct {
    int64_t frame;
    double ts;
    int caplen, wirelen, linktype, iface;
    int direction;
    int has_pkttype, pkttype;
    int has_eth_src, has_eth_dst;
    uint64_t eth_src, eth_dst;
    int nvlan;
    uint16_t vlan[4];
    int64_t ifindex;           /* -1: None */
    Net net;
    int ntunnels;
    Tunnel tunnels[MAX_LAYERS];
    Arp arp;
    Segment seg;
} Frame;

/* ---------------------------------------------------------------- BGP flows (flows.c) */

typedef struct {
    Addr ip;
    int port;
    PyObject *text;            /* the address text (borrowed from the text cache: kept alive) */
} Endpoint;

typedef struct {
    int as4, assumed;
    int naddpath;
    uint32_t addpath[16];      /* afi << 8 | safi */
    int addpath_overflow;      /* more than 16 families: always ask the reference */
    PyObject *py;              /* the reference's Direction */
} Ctx;

typedef struct {
    int64_t frame;
    double ts;
} FrameTs;

typedef struct {
    int64_t offset, frame;
} BufFrame;

typedef struct {
    int started, closed, synced;
    int have_isn;
    uint32_t isn, base_seq, next_seq;
    int64_t expected;
    int has_fin;
    int64_t fin_offset;
    Bytes buf;
    int64_t buf_offset;
    VEC(BufFrame) buf_frames;
    PyObject *py;              /* the reference's BgpStream once this direction needed it */
} Stream;

typedef struct Conn Conn;
struct Conn {
    Endpoint ends[2];          /* ends[0] <= ends[1] as the reference orders (text, port) */
    PyObject *session;
    PyObject *endpoint_text[2];  /* "ip:port" / "[ip]:port", as the summary names senders */
    Stream streams[2];
    int nstreams, order[2];    /* stream creation order (flush order) */
    int has_stream[2];
    PyObject *opens[2];
    Ctx ctx[2];
    int has_ctx[2];
    int carried_data;
    VEC(FrameTs) frame_ts;
    Py_ssize_t prune_at;
};

typedef struct {
    uint8_t key[40];           /* the two endpoints, in a fixed binary order */
    Conn *conn;
    int64_t first_frame;       /* where the key was first seen (parallel event order) */
} ConnSlot;

/* ---------------------------------------------------------------- per-chunk folds (fold.c) */

typedef struct {
    int64_t messages[6];       /* OPEN..ROUTE-REFRESH by type 1-5; [0] unused */
    PyObject *other_names;     /* dict name -> count (UNKNOWN(n), TRUNCATED) */
    int64_t bad;
    double lo, hi;
    int seen;
} SessionFold;

/* one NLRI field, walked: entry positions (the length octet) and ADD-PATH ids */
typedef struct {
    int v6, addpath;
    Span data;                 /* the whole message */
    Py_ssize_t n, cap;
    int32_t *pos;
    uint32_t *ids;
} Nlri;

typedef struct Decoder Decoder;

#define ABI 2                   /* what diag/decode/core.py's CORE_ABI must be: raised when a
                                   * method's arguments change (2: own() takes the reader) */
#define MAX_OWNERS 64           /* parallel.py's --workers limit */
#define ARP_LOAD 200            /* an ARP row paired ~ this many BGP segment bytes (measured: the
                                   * two workers' CPU on the BGP-heavy mix within 3 %; 160 before
                                   * the ARP worker tallied the unanswered requests itself) */

#define READ_LOAD_DIV 26        /* a byte of records the reading worker (the parent, which reads for
                                   * all and decodes as worker 0) reads ~ 1/26 of a BGP segment byte
                                   * (measured on the BGP-heavy mix, 2 workers: 20-32 within the
                                   * noise, 12 and 40 slower; docs/performance.md) */

/* ---------------------------------------------------------------- the decoder */

struct Decoder {
    PyObject_HEAD
    uint8_t bgp_ports[8192], vxlan_ports[8192], geneve_ports[8192];
    int tables, fold;          /* what to produce */
    Texts *tx;
    PyObject *hooks;           /* the reference's functions (see core.py) */
    PyObject *iface_names;     /* list: capture_iface -> name or None */
    /* hooks, borrowed from the hooks object (kept alive by it) */
    PyObject *h_fallback, *h_decode_message, *h_negotiate, *h_stream, *h_gap_text,
        *h_resync_text, *h_route_key, *h_default_ctx, *h_object_array;
    PyObject *t_message, *t_gap, *t_framing_error, *t_resync, *t_packed;
    /* constant strings */
    PyObject *s_app[N_APPS], *s_l3[3], *s_dir[3], *s_op[3], *s_types[6], *s_announce,
        *s_withdraw, *s_afi[3], *s_safi[3], *s_family[3][3], *s_origin[3], *s_event[7],
        *s_empty, *s_raw, *s_ipv4_unicast;
    PyObject *well_known;      /* dict community value -> name */
    /* tables */
    Table packets, tunnels, arp, messages, routes;
    Col route_counts, route_prefix, route_path_id;
    PrefixTexts pending;       /* route_prefix rows whose texts are made at take */
    PyObject *events;          /* list of dicts (stream_events), this chunk */
    /* parallel (dc_deliver): this decoder reassembles the connections worker ``own_index`` of
     * ``own_count`` owns; each connection goes, when first seen, to the worker with the least
     * load so far (own_load: segment bytes, ARP rows, bytes read; every worker sees every
     * segment and block: the same choice everywhere) */
    int own_index, own_count;  /* own_count <= 1: every connection is this decoder's */
    /* the worker that pairs every block's ARP (-1: none): it folds the ARP of other workers'
     * blocks too, and each of its ARP rows counts as ARP_LOAD segment bytes of its load */
    int arp_owner;
    /* the worker that reads the file for all (-1: none): each block's record bytes count as
     * 1 / READ_LOAD_DIV of its load */
    int reader;
    SKMap owners;              /* connection key -> owner + 1 (count field) */
    uint64_t own_load[MAX_OWNERS];
    /* flows */
    ConnSlot *conns;
    size_t nconns, capconns;
    SKMap conn_index;          /* key -> index + 1 in conns (count field) */
    Ctx default_ctx;
    PyObject *as_paths, *communities;   /* attribute caches: dict bytes -> value */
    Nlri nlri[4];              /* withdrawn, announced, MP_UNREACH, MP_REACH of one UPDATE */
    /* folds of this chunk */
    int64_t pk_total;
    double pk_lo, pk_hi;
    SKMap pk_combos;           /* (app, l3, etype, direction, iface, ifindex) -> count */
    size_t pk_last;            /* the slot of the last combination counted */
    int pk_otherhost;          /* a frame of another host's (pkttype otherhost) was seen */
    SKMap pk_dst_macs;         /* the distinct destination MACs (for the ARP rule's Vantage) */
    uint64_t pk_last_dst;      /* the last one added (most frames repeat it) */
    SKMap tn_groups;           /* tunnel group key -> count */
    PyObject *arp_rows;        /* the rule's rows; or _ARP_FIELDS + the frame's tunnel layers */
    int arp_raw;               /* some of arp_rows are the latter (summary.arp_rule_row's input) */
    PyObject *sessions;        /* dict session -> index into sfold */
    VEC(SessionFold) sfold;
    PyObject *special;         /* list of (session, name, dict) */
    PyObject *route_groups;    /* dict (session, family, action) -> [rows, keys list, head]: of
                                * the block being decoded (a chunk of several blocks folds its
                                * routes block by block, as chunks of one block each would) */
    PyObject *route_blocks;    /* list: the route_groups of this chunk's earlier blocks */
    PyObject *seen_keys;       /* dict (session, family, kind) -> capsule of U64Set */
    PyObject *released;        /* set of the sessions whose key sets were dropped */
    int want_heads[2];         /* the summary's samples still take texts (announce, withdraw) */
    uint64_t generation;       /* this chunk's number: the caches below hold for one chunk */
    uint64_t group_generation; /* this block's number: group_cache holds for one block */
    struct {
        uint64_t generation;   /* group_generation */
        PyObject *session, *family, *action;   /* strong: held while cached */
        PyObject *group;           /* borrowed: route_groups keeps it for the generation */
        U64Set *set;
        int kind;
    } group_cache[64];
    struct {
        uint64_t generation;
        PyObject *session;         /* strong: held while cached */
        Py_ssize_t index;
    } session_cache[16];
    SKMap short_paths, short_communities;  /* attribute values of short encodings */
    /* where events are raised (parallel ordering): 0 segment / 1 flush, and the frame */
    int raise_kind;
    int64_t raise_frame;
    PyObject *raised;          /* list of (kind, frame, n) per event, this chunk */
    int64_t nevents;
    /* end of capture */
    int64_t last_frame;
    double last_ts;
    int64_t frames_bailed, messages_bailed, streams_delegated;
};

static inline int port_in(const uint8_t *set, int port)
{
    return port >= 0 && port < 65536 && (set[port >> 3] >> (port & 7) & 1);
}

/* frames.c */
int dc_decode_block(Decoder *d, Span buf, int64_t first_frame, Py_ssize_t count,
                    const int64_t *offsets, const int64_t *caplens, const int64_t *wirelens,
                    const double *ts, const int64_t *ifaces, const int64_t *linktypes,
                    const int64_t *flags, PyObject *shadow);
int dc_skippable(const Decoder *d, Span data, int linktype);   /* see frames.c */
int dc_walk_effect(Decoder *d, Span data, int linktype);
/* flows.c */
int dc_segment(Decoder *d, const Addr *src, int sport, const Addr *dst, int dport, uint32_t seq,
               int flags, Span payload, int64_t frame, double ts, int depth, Span options,
               PyObject *payload_obj);
int dc_flush(Decoder *d, int64_t frame, double ts);
int dc_flush_each(Decoder *d, int64_t frame, double ts);
void dc_flows_free(Decoder *d);
int dc_fold_release(Decoder *d, PyObject *session);
void dc_charge_read(Decoder *d, Py_ssize_t count, const int64_t *offsets,
                    const int64_t *caplens);
int dc_deliver(Decoder *d, const Addr *src, int sport, const Addr *dst, int dport,
               uint32_t seq, int flags, Span payload, int64_t frame, double ts, int depth,
               Span options, PyObject *payload_obj);
/* bgpmsg.c: 1 decoded, 0 ask the reference, -1 error */
int dc_message(Decoder *d, Conn *c, int sender, Span raw, int64_t last_frame,
               int64_t first_frame, double when, int depth);
int dc_emit_reference(Decoder *d, Conn *c, int sender, PyObject *decoded, int64_t last_frame,
                      int64_t first_frame, double when, int depth);
int dc_framing_error_row(Decoder *d, Conn *c, int sender, int64_t frame, double when, int depth,
                         PyObject *reason);
/* fold.c */
int dc_fold_packet(Decoder *d, const Frame *f);
int dc_fold_arp(Decoder *d, const Frame *f);    /* the ARP part of dc_fold_packet */
int dc_fold_message(Decoder *d, PyObject *session, int type, PyObject *type_name, int bad,
                    double ts);
int dc_fold_special(Decoder *d, PyObject *session, PyObject *name, PyObject *row);
int dc_fold_routes_native(Decoder *d, PyObject *session, PyObject *family, PyObject *action,
                          int v6, Span nlri, const int32_t *offs, Py_ssize_t n);
int dc_fold_routes_py(Decoder *d, PyObject *session, PyObject *family, PyObject *action,
                      PyObject *rd, PyObject *prefixes);
PyObject *dc_fold_take(Decoder *d);
int dc_fold_next_block(Decoder *d);    /* a block begins: route groups start anew */
void dc_fold_clear(Decoder *d);
void dc_fold_free(Decoder *d);
int dc_event(Decoder *d, PyObject *event);

#endif
