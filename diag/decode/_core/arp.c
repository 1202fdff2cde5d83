/* The per-row half of the summary's ARP fold for the compiled path: CaptureSummary._arp's
 * counting and diag/decode/arp.py's ArpPairing (one request per asker, target and segment; its
 * copies at other places within the copy window; answered by a reply from the target to the
 * asker within the reply window; decided when the window has passed, or unanswered at once
 * beyond max_pending), in C.
 *
 * ArpRule(window, copy_window, max_pending, verdict_class, responder_frames).add(rows) takes
 * the summary's ARP rows (frame, ts, op, sender_mac, sender_ip, target_mac, target_ip,
 * gratuitous, segment, place, direction, depth) in capture order and returns (unanswered,
 * responders): the Verdicts (verdict_class, arp.py's) of requests decided unanswered, in the
 * order ArpPairing decides them, and (sender_ip, sender_mac, frame, target_ip, target_mac,
 * direction, is_reply) of each row the summary records a responder for (replies and gratuitous
 * rows); the summary does the rest (its _unanswered, _responder and Vantage.reply) exactly as
 * for its own rows. Rows whose calls would change nothing are left out: a (sender_ip,
 * sender_mac) whose first responder_frames frames (the summary's RESPONDER_FRAMES) were given
 * has frame None, a reply whose (target_ip, target_mac, direction) was given has is_reply False
 * (Vantage.reply is idempotent), and a row left with neither is not listed. finish() returns
 * the Verdicts of the requests still waiting. counts, answered and copies are the
 * summary's. arp.py stays the rule: tests run both on random rows and require the same summary.
 */
#include "dec.h"

#include <math.h>
#include <structmember.h>

typedef struct {
    int64_t frame;
    double ts;
} Copy;

/* A set that is a Python set only from its second member on: a request is seen at one place
 * nearly always, and the two one-member sets made and freed per request cost about a fifth of
 * the rule's time (0.053 -> 0.043 s on the 99,922 ARP rows of the BGP-heavy mix). */
typedef struct {
    PyObject *one;            /* the first member (owned), or NULL */
    PyObject *set;            /* every member (owned) once there are two, else NULL */
} Few;

static int few_contains(const Few *f, PyObject *x)
{
    if (f->set != NULL)
        return PySet_Contains(f->set, x);
    if (f->one == NULL)
        return 0;
    return f->one == x ? 1 : PyObject_RichCompareBool(f->one, x, Py_EQ);
}

static int few_add(Few *f, PyObject *x)
{
    if (f->set != NULL)
        return PySet_Add(f->set, x);
    if (f->one == NULL) {
        f->one = Py_NewRef(x);
        return 0;
    }
    int same = few_contains(f, x);
    if (same != 0)
        return same < 0 ? -1 : 0;
    f->set = PySet_New(NULL);
    if (f->set == NULL || PySet_Add(f->set, f->one) < 0 || PySet_Add(f->set, x) < 0)
        return -1;
    return 0;
}

static PyObject *few_frozenset(const Few *f)
{
    if (f->set != NULL)
        return PyFrozenSet_New(f->set);
    PyObject *members = f->one != NULL ? PyTuple_Pack(1, f->one) : PyTuple_New(0);
    if (members == NULL)
        return NULL;
    PyObject *out = PyFrozenSet_New(members);
    Py_DECREF(members);
    return out;
}

static void few_clear(Few *f)
{
    Py_CLEAR(f->one);
    Py_CLEAR(f->set);
}

typedef struct Req {
    int64_t frame;
    double ts, last;
    PyObject *asker, *target, *mac, *segment;   /* owned */
    Few places, seen;
    VEC(Copy) copies;
    int decided, answered;
    PyObject *key;                              /* (asker, target), owned */
} Req;

typedef VEC(Req *) ReqList;

typedef struct {
    PyObject_HEAD
    double window, copy_window, now;
    Py_ssize_t max_pending, waiting;
    PyObject *verdict;        /* arp.py's Verdict */
    PyObject *open;           /* dict (asker, target) -> capsule of a ReqList */
    Req **order;              /* ring of requests by first sighting */
    Py_ssize_t head, n, cap;
    long long answered, copies;
    long long undecoded, gratuitous, replies, requests, probes, other;
    PyObject *s_request, *s_reply, *s_probe;
    Py_ssize_t responder_frames;  /* the summary keeps this many frames per responder */
    PyObject *responded;      /* dict (sender_ip, sender_mac) -> frames given (<= the above) */
    PyObject *replied;        /* set of (target_ip, target_mac, direction) given */
} ArpRule;

static void req_free(Req *r)
{
    Py_XDECREF(r->asker);
    Py_XDECREF(r->target);
    Py_XDECREF(r->mac);
    Py_XDECREF(r->segment);
    few_clear(&r->places);
    few_clear(&r->seen);
    Py_XDECREF(r->key);
    VEC_FREE(r->copies);
    PyMem_Free(r);
}

static void list_free(PyObject *capsule)
{
    ReqList *l = PyCapsule_GetPointer(capsule, NULL);
    if (l != NULL) {
        VEC_FREE(*l);
        PyMem_Free(l);
    }
}

/* arp.py's compatible(): equal, or either unknown */
static int compatible(PyObject *a, PyObject *b)
{
    if (a == Py_None || b == Py_None)
        return 1;
    return PyObject_RichCompareBool(a, b, Py_EQ);
}

static int is(PyObject *s, PyObject *interned)
{
    if (s == interned)
        return 1;
    if (!PyUnicode_Check(s))
        return 0;
    return PyUnicode_Compare(s, interned) == 0;
}

/* _Request.decide: the request's own verdict (a Verdict when unanswered) and its copies' */
static int decide(ArpRule *a, Req *r, int answered, PyObject *out)
{
    r->decided = 1;
    r->answered = answered;
    a->copies += r->copies.n;
    if (answered) {
        a->answered++;
        return 0;
    }
    PyObject *seen = few_frozenset(&r->seen);
    if (seen == NULL)
        return -1;
    PyObject *v = PyObject_CallFunction(a->verdict, "LdOOOOOOON", (long long)r->frame, r->ts,
                                        r->asker, r->target, Py_False, Py_None, r->mac,
                                        r->segment, Py_None, seen);
    if (v == NULL)
        return -1;
    int rc = PyList_Append(out, v);
    Py_DECREF(v);
    return rc;
}

static ReqList *bucket(ArpRule *a, PyObject *key, int create)
{
    PyObject *capsule = PyDict_GetItemWithError(a->open, key);
    if (capsule != NULL)
        return PyCapsule_GetPointer(capsule, NULL);
    if (PyErr_Occurred() || !create)
        return NULL;
    ReqList *l = PyMem_Calloc(1, sizeof(ReqList));
    if (l == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    capsule = PyCapsule_New(l, NULL, list_free);
    if (capsule == NULL) {
        PyMem_Free(l);
        return NULL;
    }
    int rc = PyDict_SetItem(a->open, key, capsule);
    Py_DECREF(capsule);
    return rc < 0 ? NULL : l;
}

/* ArpPairing._expire */
static int expire(ArpRule *a, PyObject *out)
{
    double limit = a->now - a->window - a->copy_window;
    while (a->n && a->order[a->head]->ts < limit) {
        Req *r = a->order[a->head];
        a->head = (a->head + 1) % a->cap;
        a->n--;
        if (!r->decided) {
            a->waiting--;
            if (decide(a, r, 0, out) < 0)
                return -1;
        }
        ReqList *l = bucket(a, r->key, 0);
        if (l == NULL && PyErr_Occurred())
            return -1;
        if (l != NULL) {
            for (Py_ssize_t i = 0; i < l->n; i++) {
                if (l->v[i] == r) {
                    memmove(l->v + i, l->v + i + 1, (size_t)(l->n - i - 1) * sizeof(Req *));
                    l->n--;
                    break;
                }
            }
            if (l->n == 0 && PyDict_DelItem(a->open, r->key) < 0)
                return -1;
        }
        req_free(r);
    }
    return 0;
}

static int push_order(ArpRule *a, Req *r)
{
    if (a->n == a->cap) {
        Py_ssize_t cap = a->cap ? a->cap * 2 : 1024;
        Req **ring = PyMem_Malloc((size_t)cap * sizeof(Req *));
        if (ring == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < a->n; i++)
            ring[i] = a->order[(a->head + i) % a->cap];
        PyMem_Free(a->order);
        a->order = ring;
        a->head = 0;
        a->cap = cap;
    }
    a->order[(a->head + a->n) % a->cap] = r;
    a->n++;
    return 0;
}

/* ArpPairing._request */
static int request(ArpRule *a, PyObject *frame_o, double ts, PyObject *sip, PyObject *tip,
                   PyObject *smac, PyObject *segment, PyObject *place, PyObject *seen_item,
                   PyObject *out)
{
    int64_t frame = PyLong_AsLongLong(frame_o);
    if (frame == -1 && PyErr_Occurred())
        return -1;
    PyObject *key = PyTuple_Pack(2, sip, tip);
    if (key == NULL)
        return -1;
    ReqList *l = bucket(a, key, 1);
    if (l == NULL) {
        Py_DECREF(key);
        return -1;
    }
    for (Py_ssize_t i = l->n - 1; i >= 0; i--) {
        Req *r = l->v[i];
        if (ts - r->last > a->copy_window)
            break;
        int ok = compatible(r->segment, segment);
        if (ok < 0)
            goto fail;
        if (!ok)
            continue;
        int there = few_contains(&r->places, place);
        if (there < 0)
            goto fail;
        if (there)
            continue;
        if (few_add(&r->places, place) < 0 || few_add(&r->seen, seen_item) < 0)
            goto fail;
        if (ts > r->last)
            r->last = ts;
        if (r->segment == Py_None)
            Py_SETREF(r->segment, Py_NewRef(segment));
        Py_DECREF(key);
        if (r->decided) {          /* a late copy of a request already decided */
            a->copies++;
            return 0;
        }
        Copy c = {frame, ts};
        return VEC_PUSH(r->copies, c) < 0 ? (PyErr_NoMemory(), -1) : 0;
    }
    Req *r = PyMem_Calloc(1, sizeof(Req));
    if (r == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    r->frame = frame;
    r->ts = r->last = ts;
    r->asker = Py_NewRef(sip);
    r->target = Py_NewRef(tip);
    r->mac = Py_NewRef(smac);
    r->segment = Py_NewRef(segment);
    r->key = key;                  /* the reference moves to the request */
    if (few_add(&r->places, place) < 0 || few_add(&r->seen, seen_item) < 0) {
        req_free(r);
        return -1;
    }
    if (a->waiting >= a->max_pending) {
        int rc = decide(a, r, 0, out);
        req_free(r);
        return rc;
    }
    if (VEC_PUSH(*l, r) < 0) {
        req_free(r);
        PyErr_NoMemory();
        return -1;
    }
    if (push_order(a, r) < 0) {
        l->n--;
        req_free(r);
        return -1;
    }
    a->waiting++;
    return 0;
fail:
    Py_DECREF(key);
    return -1;
}

/* ArpPairing._reply */
static int reply(ArpRule *a, double ts, PyObject *sip, PyObject *tip, PyObject *segment,
                 PyObject *out)
{
    PyObject *key = PyTuple_Pack(2, tip, sip);
    if (key == NULL)
        return -1;
    ReqList *l = bucket(a, key, 0);
    Py_DECREF(key);
    if (l == NULL)
        return PyErr_Occurred() ? -1 : 0;
    for (Py_ssize_t i = 0; i < l->n; i++) {
        Req *r = l->v[i];
        if (r->decided)
            continue;
        int ok = compatible(r->segment, segment);
        if (ok < 0)
            return -1;
        if (!ok)
            continue;
        double dt = ts - r->ts;
        if (0 <= dt && dt <= a->window) {
            a->waiting--;
            if (decide(a, r, 1, out) < 0)
                return -1;
        } else if (dt > a->window) {
            a->waiting--;
            if (decide(a, r, 0, out) < 0)
                return -1;
        }
    }
    return 0;
}

static int responder_row(ArpRule *a, PyObject *list, PyObject *sip, PyObject *smac,
                         PyObject *frame, PyObject *tip, PyObject *tmac, PyObject *direction,
                         int is_reply)
{
    PyObject *pair = PyTuple_Pack(2, sip, smac);
    if (pair == NULL)
        return -1;
    PyObject *given = PyDict_GetItemWithError(a->responded, pair);
    long n = given == NULL ? 0 : PyLong_AsLong(given);
    if ((given == NULL && PyErr_Occurred()) || n < 0) {
        Py_DECREF(pair);
        return -1;
    }
    int responder = n < a->responder_frames;
    if (responder) {
        PyObject *v = PyLong_FromLong(n + 1);
        int rc = v == NULL ? -1 : PyDict_SetItem(a->responded, pair, v);
        Py_XDECREF(v);
        if (rc < 0) {
            Py_DECREF(pair);
            return -1;
        }
    }
    Py_DECREF(pair);
    if (is_reply) {
        PyObject *key = PyTuple_Pack(3, tip, tmac, direction);
        int seen = key == NULL ? -1 : PySet_Contains(a->replied, key);
        if (seen == 0 && PySet_Add(a->replied, key) < 0)
            seen = -1;
        Py_XDECREF(key);
        if (seen < 0)
            return -1;
        is_reply = !seen;
    }
    if (!responder && !is_reply)
        return 0;
    PyObject *t = Py_BuildValue("(OOOOOOO)", sip, smac, responder ? frame : Py_None, tip, tmac,
                                direction, is_reply ? Py_True : Py_False);
    if (t == NULL)
        return -1;
    int rc = PyList_Append(list, t);
    Py_DECREF(t);
    return rc;
}

/* CaptureSummary._arp, row by row */
static PyObject *ArpRule_add(ArpRule *a, PyObject *rows)
{
    PyObject *seq = PySequence_Fast(rows, "rows: a list");
    if (seq == NULL)
        return NULL;
    PyObject *out = PyList_New(0), *responders = PyList_New(0);
    if (out == NULL || responders == NULL)
        goto fail;
    for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(seq); k++) {
        PyObject *row = PySequence_Fast_GET_ITEM(seq, k);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != 12) {
            PyErr_SetString(PyExc_TypeError, "an ARP row: a tuple of 12");
            goto fail;
        }
        PyObject **f = &PyTuple_GET_ITEM(row, 0);
        PyObject *frame = f[0], *op = f[2], *smac = f[3], *sip = f[4], *tmac = f[5],
                 *tip = f[6], *segment = f[8], *place = f[9], *direction = f[10],
                 *depth = f[11];
        if (sip == Py_None) {
            a->undecoded++;
            continue;
        }
        int grat = PyObject_IsTrue(f[7]);
        if (grat < 0)
            goto fail;
        int is_request = is(op, a->s_request), is_reply = is(op, a->s_reply);
        if (grat) {
            a->gratuitous++;
            if (responder_row(a, responders, sip, smac, frame, tip, tmac, direction, 0) < 0)
                goto fail;
            if (is_reply)
                a->replies++;
            else
                a->requests++;
            continue;
        }
        int probe = 0;
        if (is_request) {
            a->requests++;
            if (is(sip, a->s_probe)) {
                a->probes++;
                probe = 1;
            }
        } else if (is_reply) {
            a->replies++;
            if (responder_row(a, responders, sip, smac, frame, tip, tmac, direction, 1) < 0)
                goto fail;
        } else {
            a->other++;
        }
        /* ArpPairing.add */
        double ts = PyFloat_AsDouble(f[1]);
        if (ts == -1.0 && PyErr_Occurred())
            goto fail;
        if (ts > a->now)
            a->now = ts;
        if (expire(a, out) < 0)
            goto fail;
        if (is_request && !probe) {
            int same = PyObject_RichCompareBool(sip, tip, Py_EQ);
            if (same < 0)
                goto fail;
            if (!same) {
                PyObject *seen_item = PyTuple_Pack(2, direction, depth);
                if (seen_item == NULL)
                    goto fail;
                int rc = request(a, frame, ts, sip, tip, smac, segment, place, seen_item, out);
                Py_DECREF(seen_item);
                if (rc < 0)
                    goto fail;
            }
        } else if (is_reply && tip != Py_None) {
            if (reply(a, ts, sip, tip, segment, out) < 0)
                goto fail;
        }
    }
    Py_DECREF(seq);
    return Py_BuildValue("(NN)", out, responders);
fail:
    Py_DECREF(seq);
    Py_XDECREF(out);
    Py_XDECREF(responders);
    return NULL;
}

/* ArpPairing.finish */
static PyObject *ArpRule_finish(ArpRule *a, PyObject *Py_UNUSED(ignored))
{
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    while (a->n) {
        Req *r = a->order[a->head];
        a->head = (a->head + 1) % a->cap;
        a->n--;
        if (!r->decided) {
            a->waiting--;
            if (decide(a, r, 0, out) < 0) {
                Py_DECREF(out);
                return NULL;
            }
        }
        req_free(r);
    }
    PyDict_Clear(a->open);
    return out;
}

static PyObject *ArpRule_counts(ArpRule *a, void *Py_UNUSED(closure))
{
    /* the keys CaptureSummary's Counter would hold (those counted at least once) */
    PyObject *d = PyDict_New();
    const char *names[] = {"undecoded", "gratuitous", "replies", "requests", "probes", "other"};
    long long values[] = {a->undecoded, a->gratuitous, a->replies, a->requests, a->probes,
                          a->other};
    for (int i = 0; d != NULL && i < 6; i++) {
        if (!values[i])
            continue;
        PyObject *v = PyLong_FromLongLong(values[i]);
        if (v == NULL || PyDict_SetItemString(d, names[i], v) < 0)
            Py_CLEAR(d);
        Py_XDECREF(v);
    }
    return d;
}

static PyObject *ArpRule_answered(ArpRule *a, void *Py_UNUSED(closure))
{
    return PyLong_FromLongLong(a->answered);
}

static PyObject *ArpRule_copies(ArpRule *a, void *Py_UNUSED(closure))
{
    return PyLong_FromLongLong(a->copies);
}

static int ArpRule_init(ArpRule *a, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"window", "copy_window", "max_pending", "verdict",
                             "responder_frames", NULL};
    PyObject *verdict;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "ddnOn", kwlist, &a->window, &a->copy_window,
                                     &a->max_pending, &verdict, &a->responder_frames))
        return -1;
    if (a->open != NULL) {
        PyErr_SetString(PyExc_TypeError, "ArpRule: initialised once");
        return -1;
    }
    a->verdict = Py_NewRef(verdict);
    a->open = PyDict_New();
    a->responded = PyDict_New();
    a->replied = PySet_New(NULL);
    a->s_request = PyUnicode_InternFromString("request");
    a->s_reply = PyUnicode_InternFromString("reply");
    a->s_probe = PyUnicode_InternFromString("0.0.0.0");
    a->now = -INFINITY;
    return PyErr_Occurred() ? -1 : 0;
}

static void ArpRule_dealloc(ArpRule *a)
{
    PyObject_GC_UnTrack(a);
    while (a->n) {
        req_free(a->order[a->head]);
        a->head = (a->head + 1) % a->cap;
        a->n--;
    }
    PyMem_Free(a->order);
    Py_CLEAR(a->open);
    Py_CLEAR(a->responded);
    Py_CLEAR(a->replied);
    Py_CLEAR(a->verdict);
    Py_CLEAR(a->s_request);
    Py_CLEAR(a->s_reply);
    Py_CLEAR(a->s_probe);
    PyTypeObject *tp = Py_TYPE(a);
    tp->tp_free((PyObject *)a);
    Py_DECREF(tp);
}

static int ArpRule_traverse(ArpRule *a, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(a));
    Py_VISIT(a->verdict);
    Py_VISIT(a->open);
    Py_VISIT(a->responded);
    Py_VISIT(a->replied);
    return 0;
}

static PyMethodDef ArpRule_methods[] = {
    {"add", (PyCFunction)ArpRule_add, METH_O, "ARP rows, in capture order."},
    {"finish", (PyCFunction)ArpRule_finish, METH_NOARGS, "End of capture: the waiting ones."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef ArpRule_getset[] = {
    {"counts", (getter)ArpRule_counts, NULL, "name -> count, as the summary counts", NULL},
    {"answered", (getter)ArpRule_answered, NULL, "requests answered", NULL},
    {"copies", (getter)ArpRule_copies, NULL, "copies of requests", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyType_Slot ArpRule_slots[] = {
    {Py_tp_dealloc, ArpRule_dealloc}, {Py_tp_traverse, ArpRule_traverse},
    {Py_tp_init, ArpRule_init}, {Py_tp_new, PyType_GenericNew},
    {Py_tp_methods, ArpRule_methods}, {Py_tp_getset, ArpRule_getset},
    {Py_tp_doc, "The summary's ARP pairing (diag/decode/arp.py is the rule)."}, {0, NULL}};

PyType_Spec dc_arp_rule_spec = {"diag.decode._core.ArpRule", sizeof(ArpRule), 0,
                                Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, ArpRule_slots};
