/* BGP over TCP in the compiled core: diag/decode/bgpflow.py and tcpstream.py for the common
 * states, the reference for the rest.
 *
 * Connections are keyed and named exactly as BgpFlows keys and names them (endpoints ordered
 * by their texts, a replaced connection keeps its key's place for the end-of-capture flush).
 * A direction is reassembled here while it is "clean": started by a SYN, in order, synced on a
 * message boundary, every header valid, nothing out of order, no hole; FIN/RST/SYN handled
 * when nothing is left half-received.  The moment a segment would take the stream anywhere
 * else (a gap, a retransmission, out-of-order data, a framing error, a mid-stream start, a FIN
 * with data missing, a flush with a partial message), the direction is handed to the
 * reference's BgpStream, built in the same state (BgpStream.resumed), before that segment is
 * processed: from then on the reference reassembles it and this file handles the events it
 * returns.  Every event the core raises itself is a complete message or a TCP control segment.
 */
#include "dec.h"

#include <arpa/inet.h>

#define RECENT_HALF 100000      /* bgpflow.RECENT_FRAMES // 2 */
#define PRUNE_AT 4096
#define HEADER_LEN 19

enum { F_FIN = 0x01, F_SYN = 0x02, F_RST = 0x04, F_ACK = 0x10 };

/* ---------------------------------------------------------------- endpoints, connections */

static int endpoint_cmp_bin(const Addr *a, int ap, const Addr *b, int bp)
{
    if (a->fam != b->fam)
        return a->fam < b->fam ? -1 : 1;
    int r = memcmp(a->a, b->a, a->fam == 4 ? 4 : 16);
    if (r)
        return r;
    return ap < bp ? -1 : ap > bp;
}

static int same_endpoint(const Endpoint *e, const Addr *a, int port)
{
    return e->port == port && endpoint_cmp_bin(&e->ip, e->port, a, port) == 0;
}

static void conn_key(uint8_t *k, const Addr *a, int ap, const Addr *b, int bp)
{
    memset(k, 0, 40);
    if (endpoint_cmp_bin(a, ap, b, bp) > 0) {
        const Addr *t = a;
        a = b;
        b = t;
        int tp = ap;
        ap = bp;
        bp = tp;
    }
    k[0] = a->fam;
    memcpy(k + 1, a->a, 16);
    k[17] = (uint8_t)(ap >> 8);
    k[18] = (uint8_t)ap;
    k[19] = b->fam;
    memcpy(k + 20, b->a, 16);
    k[36] = (uint8_t)(bp >> 8);
    k[37] = (uint8_t)bp;
}

static PyObject *endpoint_text(PyObject *ip, int port)
{
    if (PyUnicode_FindChar(ip, ':', 0, PyUnicode_GET_LENGTH(ip), 1) >= 0)
        return PyUnicode_FromFormat("[%U]:%d", ip, port);
    return PyUnicode_FromFormat("%U:%d", ip, port);
}

static void ctx_clear(Ctx *c) { Py_CLEAR(c->py); }

static int ctx_from_py(Ctx *c, PyObject *dir)
{
    PyObject *as4 = PyObject_GetAttrString(dir, "as4");
    PyObject *assumed = PyObject_GetAttrString(dir, "assumed");
    PyObject *addpath = PyObject_GetAttrString(dir, "addpath");
    int rc = -1;
    if (as4 == NULL || assumed == NULL || addpath == NULL)
        goto done;
    c->as4 = PyObject_IsTrue(as4);
    c->assumed = PyObject_IsTrue(assumed);
    c->naddpath = 0;
    c->addpath_overflow = 0;
    PyObject *it = PyObject_GetIter(addpath);
    if (it == NULL)
        goto done;
    PyObject *fam;
    while ((fam = PyIter_Next(it)) != NULL) {
        long afi = -1, safi = -1;
        if (PyTuple_Check(fam) && PyTuple_GET_SIZE(fam) == 2) {
            afi = PyLong_AsLong(PyTuple_GET_ITEM(fam, 0));
            safi = PyLong_AsLong(PyTuple_GET_ITEM(fam, 1));
            if (PyErr_Occurred()) {
                PyErr_Clear();
                afi = -1;
            }
        }
        Py_DECREF(fam);
        if (afi < 0 || afi > 0xFFFF || safi < 0 || safi > 0xFF || c->naddpath == 16)
            c->addpath_overflow = 1;
        else
            c->addpath[c->naddpath++] = (uint32_t)(afi << 8 | safi);
    }
    Py_DECREF(it);
    if (PyErr_Occurred())
        goto done;
    Py_INCREF(dir);
    Py_XSETREF(c->py, dir);
    rc = 0;
done:
    Py_XDECREF(as4);
    Py_XDECREF(assumed);
    Py_XDECREF(addpath);
    return rc;
}

static void stream_free(Stream *s)
{
    VEC_FREE(s->buf);
    VEC_FREE(s->buf_frames);
    Py_CLEAR(s->py);
}

static void conn_free(Conn *c)
{
    if (c == NULL)
        return;
    Py_XDECREF(c->session);
    for (int i = 0; i < 2; i++) {
        Py_XDECREF(c->ends[i].text);
        Py_XDECREF(c->endpoint_text[i]);
        Py_XDECREF(c->opens[i]);
        ctx_clear(&c->ctx[i]);
        stream_free(&c->streams[i]);
    }
    VEC_FREE(c->frame_ts);
    PyMem_Free(c);
}

void dc_flows_free(Decoder *d)
{
    for (size_t i = 0; i < d->nconns; i++)
        conn_free(d->conns[i].conn);
    PyMem_Free(d->conns);
    d->conns = NULL;
    d->nconns = d->capconns = 0;
    skmap_free(&d->conn_index);
}

static Conn *conn_new(Decoder *d, const Addr *a, int ap, const Addr *b, int bp)
{
    Conn *c = PyMem_Calloc(1, sizeof(Conn));
    if (c == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    PyObject *ta = text_addr(d->tx, a), *tb = text_addr(d->tx, b);
    if (ta == NULL || tb == NULL) {
        PyMem_Free(c);
        return NULL;
    }
    /* the reference keys (a, b) if a <= b else (b, a), comparing (text, port) tuples */
    int cmp = PyUnicode_Compare(ta, tb);
    if (cmp == -1 && PyErr_Occurred()) {
        PyMem_Free(c);
        return NULL;
    }
    int swap = cmp > 0 || (cmp == 0 && ap > bp);
    c->ends[0].ip = swap ? *b : *a;
    c->ends[0].port = swap ? bp : ap;
    c->ends[0].text = Py_NewRef(swap ? tb : ta);
    c->ends[1].ip = swap ? *a : *b;
    c->ends[1].port = swap ? ap : bp;
    c->ends[1].text = Py_NewRef(swap ? ta : tb);
    for (int i = 0; i < 2; i++) {
        c->endpoint_text[i] = endpoint_text(c->ends[i].text, c->ends[i].port);
        if (c->endpoint_text[i] == NULL) {
            conn_free(c);
            return NULL;
        }
    }
    c->session = PyUnicode_FromFormat("%U-%U", c->endpoint_text[0], c->endpoint_text[1]);
    if (c->session == NULL) {
        conn_free(c);
        return NULL;
    }
    c->prune_at = PRUNE_AT;
    return c;
}

/* the index of the sender in c->ends (0 when both ends are the same endpoint) */
static int sender_of(const Conn *c, const Addr *src, int sport)
{
    return same_endpoint(&c->ends[0], src, sport) ? 0 : 1;
}

/* ---------------------------------------------------------------- frame timestamps */

static int frame_ts_add(Conn *c, int64_t frame, double ts)
{
    Py_ssize_t n = c->frame_ts.n;
    if (n && c->frame_ts.v[n - 1].frame == frame) {
        c->frame_ts.v[n - 1].ts = ts;
    } else if (n && c->frame_ts.v[n - 1].frame > frame) {
        /* frames arrive in order; keep the map exact anyway (the parallel path replays) */
        Py_ssize_t lo = 0, hi = n;
        while (lo < hi) {
            Py_ssize_t mid = (lo + hi) / 2;
            if (c->frame_ts.v[mid].frame < frame)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < n && c->frame_ts.v[lo].frame == frame) {
            c->frame_ts.v[lo].ts = ts;
        } else {
            if (VEC_RESERVE(c->frame_ts, n + 1))
                return -1;
            memmove(&c->frame_ts.v[lo + 1], &c->frame_ts.v[lo], (size_t)(n - lo) * sizeof(FrameTs));
            c->frame_ts.v[lo].frame = frame;
            c->frame_ts.v[lo].ts = ts;
            c->frame_ts.n++;
        }
    } else {
        FrameTs e = {frame, ts};
        if (VEC_PUSH(c->frame_ts, e))
            return -1;
    }
    if (c->frame_ts.n > c->prune_at) {
        int64_t horizon = frame - RECENT_HALF;
        Py_ssize_t keep = 0;
        for (Py_ssize_t i = 0; i < c->frame_ts.n; i++)
            if (c->frame_ts.v[i].frame >= horizon)
                c->frame_ts.v[keep++] = c->frame_ts.v[i];
        c->frame_ts.n = keep;
        c->prune_at = keep * 2 > PRUNE_AT ? keep * 2 : PRUNE_AT;
    }
    return 0;
}

static double frame_ts_get(const Conn *c, int64_t frame, double dflt)
{
    Py_ssize_t lo = 0, hi = c->frame_ts.n;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (c->frame_ts.v[mid].frame < frame)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < c->frame_ts.n && c->frame_ts.v[lo].frame == frame)
        return c->frame_ts.v[lo].ts;
    return dflt;
}

/* ---------------------------------------------------------------- events */

int dc_event(Decoder *d, PyObject *event)
{
    if (PyList_Append(d->events, event) < 0)
        return -1;
    PyObject *where = Py_BuildValue("(iLL)", d->raise_kind, (long long)d->raise_frame,
                                    (long long)d->nevents++);
    if (where == NULL || PyList_Append(d->raised, where) < 0) {
        Py_XDECREF(where);
        return -1;
    }
    Py_DECREF(where);
    return 0;
}

static PyObject *event_dict(Decoder *d, Conn *c, int sender, int64_t frame, double ts, int depth,
                            PyObject *event, PyObject *detail)
{
    int receiver = 1 - sender;
    if (c->ends[0].port == c->ends[1].port
        && endpoint_cmp_bin(&c->ends[0].ip, 0, &c->ends[1].ip, 0) == 0)
        receiver = sender;
    return Py_BuildValue("{s:L,s:d,s:O,s:i,s:O,s:i,s:O,s:i,s:O,s:O}", "frame", (long long)frame,
                         "ts", ts, "src", c->ends[sender].text, "sport", c->ends[sender].port,
                         "dst", c->ends[receiver].text, "dport", c->ends[receiver].port,
                         "session", c->session, "tunnel_depth", depth, "event", event, "detail",
                         detail);
}

static int control_events(Decoder *d, Conn *c, int sender, int flags, Span options, int64_t frame,
                          double ts, int depth)
{
    if (flags & F_SYN) {
        char detail[64];
        size_t at = 0;
        detail[0] = 0;
        /* bgpflow.tcp_option_kinds, keeping TCP-MD5 (19) and TCP-AO (29) */
        for (Py_ssize_t i = 0; i < options.n;) {
            uint32_t kind = rd8(options, i);
            if (kind == 0)
                break;
            if (kind == 19 || kind == 29) {
                const char *name = kind == 19 ? "tcp-md5" : "tcp-ao";
                if (at + strlen(name) + 2 < sizeof detail)
                    at += (size_t)snprintf(detail + at, sizeof detail - at, at ? ",%s" : "%s", name);
            }
            if (kind == 1) {
                i++;
                continue;
            }
            if (i + 1 >= options.n || rd8(options, i + 1) < 2)
                break;
            i += rd8(options, i + 1);
        }
        PyObject *text = PyUnicode_FromStringAndSize(detail, (Py_ssize_t)at);
        if (text == NULL)
            return -1;
        PyObject *ev = event_dict(d, c, sender, frame, ts, depth,
                                  d->s_event[flags & F_ACK ? 1 : 0], text);
        Py_DECREF(text);
        if (ev == NULL || dc_event(d, ev)) {
            Py_XDECREF(ev);
            return -1;
        }
        Py_DECREF(ev);
    }
    if (flags & F_RST) {
        PyObject *ev = event_dict(d, c, sender, frame, ts, depth, d->s_event[2], d->s_empty);
        if (ev == NULL || dc_event(d, ev)) {
            Py_XDECREF(ev);
            return -1;
        }
        Py_DECREF(ev);
    }
    if (flags & F_FIN) {
        PyObject *ev = event_dict(d, c, sender, frame, ts, depth, d->s_event[3], d->s_empty);
        if (ev == NULL || dc_event(d, ev)) {
            Py_XDECREF(ev);
            return -1;
        }
        Py_DECREF(ev);
    }
    return 0;
}

/* ---------------------------------------------------------------- messages */

static int reference_message(Decoder *d, Conn *c, int sender, PyObject *raw, int64_t last_frame,
                             int64_t first_frame, double when, int depth);

static int handle_message(Decoder *d, Conn *c, int sender, Span raw, PyObject *raw_obj,
                          int64_t last_frame, int64_t first_frame, double ts, int depth)
{
    double when = frame_ts_get(c, last_frame, ts);
    int rc = dc_message(d, c, sender, raw, last_frame, first_frame, when, depth);
    if (rc)
        return rc < 0 ? -1 : 0;
    d->messages_bailed++;
    PyObject *obj = raw_obj ? Py_NewRef(raw_obj)
                            : PyBytes_FromStringAndSize((const char *)raw.p, raw.n);
    if (obj == NULL)
        return -1;
    rc = reference_message(d, c, sender, obj, last_frame, first_frame, when, depth);
    Py_DECREF(obj);
    return rc;
}

static int reference_message(Decoder *d, Conn *c, int sender, PyObject *raw, int64_t last_frame,
                             int64_t first_frame, double when, int depth)
{
    PyObject *ctx = c->has_ctx[sender] ? c->ctx[sender].py : d->default_ctx.py;
    PyObject *decoded = PyObject_CallFunctionObjArgs(d->h_decode_message, raw, ctx, NULL);
    if (decoded == NULL)
        return -1;
    PyObject *open = PyObject_GetAttrString(decoded, "open");
    if (open == NULL) {
        Py_DECREF(decoded);
        return -1;
    }
    if (open != Py_None) {
        Py_XSETREF(c->opens[sender], Py_NewRef(open));
        int receiver = 1 - sender;
        int ends[2][2] = {{sender, receiver}, {receiver, sender}};
        for (int k = 0; k < 2; k++) {
            int end = ends[k][0], other = ends[k][1];
            PyObject *dir = PyObject_CallFunctionObjArgs(
                d->h_negotiate, c->opens[end] ? c->opens[end] : Py_None,
                c->opens[other] ? c->opens[other] : Py_None, NULL);
            if (dir == NULL || ctx_from_py(&c->ctx[end], dir)) {
                Py_XDECREF(dir);
                Py_DECREF(open);
                Py_DECREF(decoded);
                return -1;
            }
            Py_DECREF(dir);
            c->has_ctx[end] = 1;
        }
    }
    Py_DECREF(open);
    int rc = dc_emit_reference(d, c, sender, decoded, last_frame, first_frame, when, depth);
    Py_DECREF(decoded);
    return rc;
}

/* ---------------------------------------------------------------- native reassembly */

static int marker_at(Span s, Py_ssize_t pos)
{
    const uint8_t *p = rdp(s, pos, 16);
    for (int i = 0; i < 16; i++)
        if (p[i] != 0xFF)
            return 0;
    return 1;
}

/* byte i of the stream made of the buffered bytes then the payload */
static inline uint32_t vbyte(const Stream *st, Span pay, Py_ssize_t i)
{
    if (i < st->buf.n)
        return st->buf.v[i];
    return rd8(pay, i - st->buf.n);
}

/* Can this payload be framed here (every header it completes valid)? ``leftover``: the bytes
 * that will wait for the next segment. */
static int plan(const Stream *st, Span pay, Py_ssize_t *leftover)
{
    Py_ssize_t total = st->buf.n + pay.n, p = 0;
    while (total - p >= HEADER_LEN) {
        for (int i = 0; i < 16; i++)
            if (vbyte(st, pay, p + i) != 0xFF)
                return 0;
        Py_ssize_t length = (Py_ssize_t)(vbyte(st, pay, p + 16) << 8 | vbyte(st, pay, p + 17));
        if (length < HEADER_LEN)
            return 0;
        if (p + length > total)
            break;
        p += length;
    }
    *leftover = total - p;
    return 1;
}

static int buffer_bytes(Stream *st, Span data, Py_ssize_t start, Py_ssize_t stop, int64_t base,
                        int64_t frame)
{
    if (st->buf.n == 0) {
        st->buf_offset = base + start;
        st->buf_frames.n = 0;
    }
    if (st->buf_frames.n == 0 || st->buf_frames.v[st->buf_frames.n - 1].frame != frame) {
        BufFrame bf = {base + start, frame};
        if (VEC_PUSH(st->buf_frames, bf))
            return -1;
    }
    if (stop > start)
        return bytes_add(&st->buf, rdp(data, start, stop - start), stop - start);
    return 0;
}

/* tcpstream._consume for a planned payload: whole messages sliced, a partial one buffered */
static int consume(Decoder *d, Conn *c, int sender, Stream *st, Span data, int64_t base,
                   int64_t frame, double ts, int depth)
{
    Py_ssize_t n = data.n, pos = 0;
    while (pos < n) {
        if (st->buf.n) {
            if (st->buf.n < HEADER_LEN) {
                Py_ssize_t take = HEADER_LEN - st->buf.n;
                if (take > n - pos)
                    take = n - pos;
                if (buffer_bytes(st, data, pos, pos + take, base, frame))
                    return -1;
                pos += take;
                if (st->buf.n < HEADER_LEN)
                    continue;
            }
            Py_ssize_t length = (Py_ssize_t)st->buf.v[16] << 8 | st->buf.v[17];
            Py_ssize_t take = length - st->buf.n;
            if (take > n - pos)
                take = n - pos;
            if (buffer_bytes(st, data, pos, pos + take, base, frame))
                return -1;
            pos += take;
            if (st->buf.n == length) {
                int64_t first = st->buf_frames.v[0].frame;
                Span msg = {st->buf.v, st->buf.n};
                /* the buffer is reused only after the message is handled */
                if (handle_message(d, c, sender, msg, NULL, frame, first, ts, depth))
                    return -1;
                st->buf.n = 0;
                st->buf_frames.n = 0;
            }
            continue;
        }
        while (n - pos >= HEADER_LEN && marker_at(data, pos)) {
            Py_ssize_t length = (Py_ssize_t)rd16(data, pos + 16);
            if (length < HEADER_LEN || pos + length > n)
                break;
            if (handle_message(d, c, sender, subspan(data, pos, length), NULL, frame, frame, ts,
                               depth))
                return -1;
            pos += length;
        }
        if (pos >= n)
            break;
        if (buffer_bytes(st, data, pos, n, base, frame))
            return -1;
        pos = n;
    }
    return 0;
}

static void advance(Stream *st, Py_ssize_t n)
{
    st->expected += n;
    st->next_seq = (uint32_t)(st->next_seq + (uint32_t)n);
}

static int64_t offset_of(const Stream *st, uint32_t seq)
{
    uint32_t diff = seq - st->next_seq;
    int64_t d = diff >= 0x80000000u ? (int64_t)diff - ((int64_t)1 << 32) : (int64_t)diff;
    return st->expected + d;
}

/* hand this direction to the reference's BgpStream, in the state reached here */
static int delegate(Decoder *d, Stream *st)
{
    PyObject *frames = PyList_New(st->buf_frames.n);
    if (frames == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < st->buf_frames.n; i++) {
        PyObject *t = Py_BuildValue("(LL)", (long long)st->buf_frames.v[i].offset,
                                    (long long)st->buf_frames.v[i].frame);
        if (t == NULL) {
            Py_DECREF(frames);
            return -1;
        }
        PyList_SET_ITEM(frames, i, t);
    }
    PyObject *buf = PyByteArray_FromStringAndSize((const char *)st->buf.v, st->buf.n);
    if (buf == NULL) {
        Py_DECREF(frames);
        return -1;
    }
    PyObject *isn = st->have_isn ? PyLong_FromUnsignedLong(st->isn) : Py_NewRef(Py_None);
    PyObject *py = PyObject_CallFunction(d->h_stream, "iiiNkLkNLN", st->started, st->closed,
                                         st->synced, isn, (unsigned long)st->base_seq,
                                         (long long)st->expected, (unsigned long)st->next_seq,
                                         buf, (long long)st->buf_offset, frames);
    if (py == NULL)
        return -1;
    st->py = py;
    d->streams_delegated++;
    return 0;
}

static int handle_py_events(Decoder *d, Conn *c, int sender, PyObject *events, double ts,
                            int depth);

static int py_segment(Decoder *d, Conn *c, int sender, Stream *st, uint32_t seq, Span payload,
                      PyObject *payload_obj, int64_t frame, double ts, int depth, int flags)
{
    PyObject *pay = payload_obj ? Py_NewRef(payload_obj)
                                : PyBytes_FromStringAndSize((const char *)payload.p, payload.n);
    if (pay == NULL)
        return -1;
    PyObject *events = PyObject_CallMethod(st->py, "segment", "kNLiii", (unsigned long)seq, pay,
                                           (long long)frame, (flags & F_SYN) != 0,
                                           (flags & F_FIN) != 0, (flags & F_RST) != 0);
    if (events == NULL)
        return -1;
    int rc = handle_py_events(d, c, sender, events, ts, depth);
    Py_DECREF(events);
    return rc;
}

static void stream_start(Stream *st, uint32_t base_seq, int synced)
{
    st->started = 1;
    st->base_seq = base_seq;
    st->expected = 0;
    st->next_seq = base_seq;
    st->synced = synced;
}

static void stream_reset(Stream *st)
{
    st->started = st->closed = st->synced = 0;
    st->base_seq = st->next_seq = 0;
    st->expected = 0;
    st->has_fin = 0;
    st->buf.n = 0;
    st->buf_offset = 0;
    st->buf_frames.n = 0;
}

/* One segment of one direction: natively while the stream stays clean, else the reference. */
static int stream_segment(Decoder *d, Conn *c, int sender, uint32_t seq, Span payload,
                          PyObject *payload_obj, int64_t frame, double ts, int depth, int flags)
{
    Stream *st = &c->streams[sender];
    if (st->py)
        return py_segment(d, c, sender, st, seq, payload, payload_obj, frame, ts, depth, flags);
    int syn = flags & F_SYN, fin = flags & F_FIN, rst = flags & F_RST;
    Py_ssize_t n = payload.n, leftover = st->buf.n;
    /* the fast path of BgpStream.segment */
    if (!syn && !fin && !rst && n && seq == st->next_seq && st->synced && st->buf.n == 0
        && !st->has_fin && st->started && !st->closed) {
        if (!plan(st, payload, &leftover))
            goto reference;
        int64_t base = st->expected;
        if (consume(d, c, sender, st, payload, base, frame, ts, depth))
            return -1;
        advance(st, n);
        return 0;
    }
    /* the general path, for what stays clean */
    uint32_t s = seq;
    int restart = 0;
    if (syn) {
        if (!st->have_isn || s != st->isn) {
            if (st->started && st->buf.n)
                goto reference;           /* finishing leaves a partial message: a gap */
            restart = 1;
        }
        s += 1;
    }
    if (!restart && st->closed)
        return 0;
    if (!restart && !st->started) {
        if (!n)
            return 0;
        goto reference;                   /* a mid-stream start: resynchronisation */
    }
    {
        /* what the stream will look like once the new connection (if any) started */
        Stream probe = *st;
        if (restart) {
            probe.started = 1;
            probe.closed = 0;
            probe.synced = 1;
            probe.expected = 0;
            probe.next_seq = s;
            probe.buf.n = 0;
        }
        int64_t off = offset_of(&probe, s);
        leftover = probe.buf.n;
        if (n) {
            if (off != probe.expected || !plan(&probe, payload, &leftover))
                goto reference;
        }
        if ((fin || rst) && leftover)
            goto reference;               /* finishing inside a message: a gap */
        if (fin && !n && off > probe.expected)
            goto reference;               /* a FIN after data not seen yet */
    }
    if (restart) {
        stream_reset(st);
        st->have_isn = 1;
        st->isn = seq;
        stream_start(st, s, 1);
    }
    if (n) {
        int64_t base = st->expected;
        if (consume(d, c, sender, st, payload, base, frame, ts, depth))
            return -1;
        advance(st, n);
    }
    if (rst || fin) {
        /* BgpStream._finish with nothing buffered: no event */
        st->synced = 0;
        st->closed = 1;
    }
    return 0;
reference:
    if (delegate(d, st))
        return -1;
    return py_segment(d, c, sender, st, seq, payload, payload_obj, frame, ts, depth, flags);
}

static int stream_closed(Stream *st, int *closed)
{
    if (!st->py) {
        *closed = st->closed;
        return 0;
    }
    PyObject *v = PyObject_GetAttrString(st->py, "closed");
    if (v == NULL)
        return -1;
    *closed = PyObject_IsTrue(v);
    Py_DECREF(v);
    return *closed < 0 ? -1 : 0;
}

static int stream_flush(Decoder *d, Conn *c, int sender, int64_t frame, double ts)
{
    Stream *st = &c->streams[sender];
    if (!st->py) {
        if (!st->started || st->closed)
            return 0;
        if (st->buf.n == 0) {
            st->synced = 0;               /* _finish with nothing buffered: no event */
            return 0;
        }
        if (delegate(d, st))
            return -1;
    }
    PyObject *events = PyObject_CallMethod(st->py, "flush", "L", (long long)frame);
    if (events == NULL)
        return -1;
    int rc = handle_py_events(d, c, sender, events, ts, 0);
    Py_DECREF(events);
    return rc;
}

static int flush_connection(Decoder *d, Conn *c, int64_t frame, double ts)
{
    for (int i = 0; i < c->nstreams; i++)
        if (stream_flush(d, c, c->order[i], frame, ts))
            return -1;
    return 0;
}

/* ---------------------------------------------------------------- the reference's events */

static int handle_py_events(Decoder *d, Conn *c, int sender, PyObject *events, double ts,
                            int depth)
{
    PyObject *seq = PySequence_Fast(events, "events");
    if (seq == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *ev = PySequence_Fast_GET_ITEM(seq, i);
        PyTypeObject *type = Py_TYPE(ev);
        PyObject *frame_obj = NULL;
        int rc = -1;
        if ((PyObject *)type == d->t_message) {
            PyObject *raw = PyObject_GetAttrString(ev, "raw");
            PyObject *first = PyObject_GetAttrString(ev, "first_frame");
            PyObject *last = PyObject_GetAttrString(ev, "last_frame");
            if (raw && first && last && PyBytes_Check(raw)) {
                Span s = {(const uint8_t *)PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw)};
                rc = handle_message(d, c, sender, s, raw, PyLong_AsLongLong(last),
                                    PyLong_AsLongLong(first), ts, depth);
                if (PyErr_Occurred())
                    rc = -1;
            }
            Py_XDECREF(raw);
            Py_XDECREF(first);
            Py_XDECREF(last);
        } else {
            frame_obj = PyObject_GetAttrString(ev, "frame");
            if (frame_obj == NULL)
                goto fail;
            long long frame = PyLong_AsLongLong(frame_obj);
            Py_DECREF(frame_obj);
            if (frame == -1 && PyErr_Occurred())
                goto fail;
            double when = frame_ts_get(c, frame, ts);
            PyObject *kind, *detail;
            if ((PyObject *)type == d->t_gap) {
                kind = d->s_event[4];
                detail = PyObject_CallOneArg(d->h_gap_text, ev);
            } else if ((PyObject *)type == d->t_resync) {
                kind = NULL;
                detail = PyObject_CallOneArg(d->h_resync_text, ev);
            } else if ((PyObject *)type == d->t_framing_error) {
                kind = NULL;
                detail = PyObject_GetAttrString(ev, "reason");
            } else {
                PyErr_Format(PyExc_RuntimeError, "unknown stream event %R", ev);
                goto fail;
            }
            if (detail == NULL)
                goto fail;
            PyObject *name = Py_NewRef(kind ? kind
                                       : d->s_event[(PyObject *)type == d->t_resync ? 5 : 6]);
            PyObject *row = event_dict(d, c, sender, frame, when, depth, name, detail);
            Py_DECREF(name);
            rc = row == NULL ? -1 : dc_event(d, row);
            Py_XDECREF(row);
            if (rc == 0 && (PyObject *)type == d->t_framing_error)
                rc = dc_framing_error_row(d, c, sender, frame, when, depth, detail);
            Py_DECREF(detail);
        }
        if (rc) {
        fail:
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    return 0;
}

/* ---------------------------------------------------------------- BgpFlows.segment */

static int conn_slot(Decoder *d, const uint8_t *key, int64_t frame, size_t *slot, int *fresh)
{
    SKEntry *e = skmap_get(&d->conn_index, key, 38, 1);
    if (e == NULL)
        return -1;
    if (e->count) {
        *slot = (size_t)e->count - 1;
        *fresh = 0;
        return 0;
    }
    if (d->nconns == d->capconns) {
        Py_ssize_t cap = (Py_ssize_t)d->capconns;
        if (dc_grow((void **)&d->conns, &cap, (Py_ssize_t)d->nconns + 1, sizeof(ConnSlot)))
            return -1;
        d->capconns = (size_t)cap;
    }
    ConnSlot *s = &d->conns[d->nconns];
    memset(s, 0, sizeof(*s));
    memcpy(s->key, key, 38);
    s->first_frame = frame;
    e->count = (int64_t)++d->nconns;
    *slot = d->nconns - 1;
    *fresh = 1;
    return 0;
}

int dc_segment(Decoder *d, const Addr *src, int sport, const Addr *dst, int dport, uint32_t seq,
               int flags, Span payload, int64_t frame, double ts, int depth, Span options,
               PyObject *payload_obj)
{
    uint8_t key[40];
    conn_key(key, src, sport, dst, dport);
    size_t slot;
    int fresh;
    if (conn_slot(d, key, frame, &slot, &fresh))
        return -1;
    d->raise_kind = 0;
    d->raise_frame = frame;
    Conn *c = d->conns[slot].conn;
    int syn = flags & F_SYN;
    if (c != NULL && syn && !(flags & F_ACK) && c->carried_data) {
        /* _same_syn: a retransmitted SYN of a connection whose SYN carried data */
        int who = sender_of(c, src, sport);
        int same = 0;
        if (c->has_stream[who]) {
            Stream *st = &c->streams[who];
            if (st->py) {
                PyObject *isn = PyObject_GetAttrString(st->py, "isn");
                if (isn == NULL)
                    return -1;
                same = isn != Py_None && PyLong_AsUnsignedLongMask(isn) == seq;
                Py_DECREF(isn);
            } else {
                same = st->have_isn && st->isn == seq;
            }
        }
        if (!same) {
            if (flush_connection(d, c, frame, ts))
                return -1;
            conn_free(c);
            c = d->conns[slot].conn = NULL;
        }
    }
    if (c == NULL) {
        c = conn_new(d, src, sport, dst, dport);
        if (c == NULL)
            return -1;
        d->conns[slot].conn = c;
    }
    int sender = sender_of(c, src, sport);
    if (!c->has_stream[sender]) {
        c->has_stream[sender] = 1;
        c->order[c->nstreams++] = sender;
    }
    if (payload.n) {
        c->carried_data = 1;
        if (frame_ts_add(c, frame, ts))
            return -1;
    }
    if (flags & (F_SYN | F_RST | F_FIN))
        if (control_events(d, c, sender, flags, options, frame, ts, depth))
            return -1;
    if (stream_segment(d, c, sender, seq, payload, payload_obj, frame, ts, depth, flags))
        return -1;
    if (flags & (F_FIN | F_RST) && c->frame_ts.n) {
        int all = 1;
        for (int i = 0; i < c->nstreams && all; i++) {
            int closed;
            if (stream_closed(&c->streams[c->order[i]], &closed))
                return -1;
            all = closed;
        }
        if (all) {
            c->frame_ts.n = 0;
            c->prune_at = PRUNE_AT;
            if (d->fold && dc_fold_release(d, c->session))
                return -1;
        }
    }
    return 0;
}

int dc_flush(Decoder *d, int64_t frame, double ts)
{
    for (size_t i = 0; i < d->nconns; i++) {
        Conn *c = d->conns[i].conn;
        if (c == NULL)
            continue;
        d->raise_kind = 1;
        d->raise_frame = d->conns[i].first_frame;
        if (flush_connection(d, c, frame, ts))
            return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- ownership (parallel) */

/* A block of ``count`` records about to be walked: its record bytes count towards the load of
 * the worker that read it for all (Decoder.reader), so that connections go to the others first.
 * Every worker walks every block, so every worker's ledger is the same. */
void dc_charge_read(Decoder *d, Py_ssize_t count, const int64_t *offsets, const int64_t *caplens)
{
    if (d->own_count <= 1 || d->reader < 0 || count <= 0)
        return;
    int64_t start = offsets[0], end = offsets[count - 1] + caplens[count - 1];
    if (end > start)
        d->own_load[d->reader] += (uint64_t)(end - start) / READ_LOAD_DIV;
}

/* A segment met in the capture: reassembled here when this decoder owns its connection (see
 * Decoder.own_index in dec.h); every segment counts towards its owner's load. */
int dc_deliver(Decoder *d, const Addr *src, int sport, const Addr *dst, int dport,
               uint32_t seq, int flags, Span payload, int64_t frame, double ts, int depth,
               Span options, PyObject *payload_obj)
{
    if (d->own_count > 1) {
        uint8_t key[40];
        conn_key(key, src, sport, dst, dport);
        SKEntry *e = skmap_get(&d->owners, key, 38, 1);
        if (e == NULL)
            return -1;
        if (e->count == 0) {
            int least = 0;
            for (int w = 1; w < d->own_count; w++)
                if (d->own_load[w] < d->own_load[least])
                    least = w;
            e->count = least + 1;
        }
        int owner = (int)e->count - 1;
        d->own_load[owner] += (uint64_t)payload.n + 64;
        if (owner != d->own_index)
            return 0;
    }
    return dc_segment(d, src, sport, dst, dport, seq, flags, payload, frame, ts, depth, options,
                      payload_obj);
}
