/* The ARP part of the summary (CaptureSummary._arp with the rule of diag/decode/arp.py), for
 * the compiled path: ArpFold(window, max_pending).add(rows) folds ARP rows (frame, ts, op,
 * sender_mac, sender_ip, target_ip, gratuitous) in capture order into the same Python
 * structures the summary keeps (counts, answered, unanswered per target, responders per IP);
 * finish() decides the requests still waiting. arp.py stays the rule: tests run both on random
 * streams of rows and require identical state.
 */
#include "dec.h"

#include <structmember.h>

typedef struct {
    PyObject_HEAD
    double window;
    Py_ssize_t max_pending;
    PyObject *counts;      /* dict name -> int */
    PyObject *pending;     /* dict target ip -> list of (ts, frame, asker) */
    PyObject *unanswered;  /* dict target ip -> {"target_ip", "count", ...} */
    PyObject *responders;  /* dict ip -> {mac: [frames]} */
    long long answered;
    PyObject *s_request, *s_reply, *s_probe_ip;
} ArpFold;

static int count(ArpFold *a, const char *name)
{
    PyObject *v = PyDict_GetItemString(a->counts, name);
    PyObject *n = PyLong_FromLongLong((v ? PyLong_AsLongLong(v) : 0) + 1);
    if (n == NULL)
        return -1;
    int rc = PyDict_SetItemString(a->counts, name, n);
    Py_DECREF(n);
    return rc;
}

static int responder(ArpFold *a, PyObject *ip, PyObject *mac, PyObject *frame)
{
    PyObject *macs = PyDict_GetItemWithError(a->responders, ip);
    if (macs == NULL) {
        if (PyErr_Occurred() || (macs = PyDict_New()) == NULL)
            return -1;
        int rc = PyDict_SetItem(a->responders, ip, macs);
        Py_DECREF(macs);
        if (rc < 0)
            return -1;
    }
    PyObject *frames = PyDict_GetItemWithError(macs, mac);
    if (frames == NULL) {
        if (PyErr_Occurred() || (frames = PyList_New(0)) == NULL)
            return -1;
        int rc = PyDict_SetItem(macs, mac, frames);
        Py_DECREF(frames);
        if (rc < 0)
            return -1;
    }
    if (PyList_GET_SIZE(frames) < 5)
        return PyList_Append(frames, frame);
    return 0;
}

/* CaptureSummary._unanswered */
static int unanswered(ArpFold *a, PyObject *ip, PyObject *ts, PyObject *frame, PyObject *asker)
{
    PyObject *u = PyDict_GetItemWithError(a->unanswered, ip);
    if (u == NULL) {
        if (PyErr_Occurred())
            return -1;
        u = Py_BuildValue("{s:O,s:i,s:O,s:O,s:O,s:N}", "target_ip", ip, "count", 0, "first_ts",
                          ts, "last_ts", ts, "first_frame", frame, "requesters", PyList_New(0));
        if (u == NULL)
            return -1;
        int rc = PyDict_SetItem(a->unanswered, ip, u);
        Py_DECREF(u);
        if (rc < 0)
            return -1;
    }
    PyObject *n = PyLong_FromLongLong(PyLong_AsLongLong(PyDict_GetItemString(u, "count")) + 1);
    if (n == NULL || PyDict_SetItemString(u, "count", n) < 0) {
        Py_XDECREF(n);
        return -1;
    }
    Py_DECREF(n);
    /* min(first_ts, ts), max(last_ts, ts), min(first_frame, frame): Python's min keeps the
     * first of equal values */
    PyObject *first = PyDict_GetItemString(u, "first_ts");
    int lt = PyObject_RichCompareBool(ts, first, Py_LT);
    if (lt < 0 || (lt && PyDict_SetItemString(u, "first_ts", ts) < 0))
        return -1;
    PyObject *last = PyDict_GetItemString(u, "last_ts");
    int gt = PyObject_RichCompareBool(ts, last, Py_GT);
    if (gt < 0 || (gt && PyDict_SetItemString(u, "last_ts", ts) < 0))
        return -1;
    PyObject *ff = PyDict_GetItemString(u, "first_frame");
    lt = PyObject_RichCompareBool(frame, ff, Py_LT);
    if (lt < 0 || (lt && PyDict_SetItemString(u, "first_frame", frame) < 0))
        return -1;
    PyObject *req = PyDict_GetItemString(u, "requesters");
    int has = PySequence_Contains(req, asker);
    if (has < 0)
        return -1;
    if (!has && PyList_GET_SIZE(req) < 10)
        return PyList_Append(req, asker);
    return 0;
}

/* a verdict: answered, or one more unanswered request */
static int verdict(ArpFold *a, int answered, PyObject *target, PyObject *ts, PyObject *frame,
                   PyObject *asker)
{
    if (answered) {
        a->answered++;
        return 0;
    }
    return unanswered(a, target, ts, frame, asker);
}

static int pair_row(ArpFold *a, PyObject *frame, PyObject *ts, PyObject *op, PyObject *sip,
                    PyObject *tip)
{
    /* ArpPairing.add for a row that is not gratuitous and has a sender IP */
    int is_request = PyUnicode_Check(op) && PyUnicode_Compare(op, a->s_request) == 0;
    int is_reply = !is_request && PyUnicode_Check(op) && PyUnicode_Compare(op, a->s_reply) == 0;
    if (PyErr_Occurred())
        return -1;
    if (is_request) {
        int probe = PyObject_RichCompareBool(sip, a->s_probe_ip, Py_EQ);
        int self = PyObject_RichCompareBool(sip, tip, Py_EQ);
        if (probe < 0 || self < 0)
            return -1;
        if (probe || self)
            return 0;                       /* asks() is false: not paired */
        PyObject *fts = PyNumber_Float(ts), *iframe = PyNumber_Long(frame);
        if (fts == NULL || iframe == NULL) {
            Py_XDECREF(fts);
            Py_XDECREF(iframe);
            return -1;
        }
        PyObject *waiting = PyDict_GetItemWithError(a->pending, tip);
        int rc = 0;
        if (waiting == NULL && !PyErr_Occurred()) {
            waiting = PyList_New(0);
            rc = waiting ? PyDict_SetItem(a->pending, tip, waiting) : -1;
            Py_XDECREF(waiting);
        }
        if (waiting == NULL || rc < 0) {
            Py_DECREF(fts);
            Py_DECREF(iframe);
            return -1;
        }
        if (PyList_GET_SIZE(waiting) < a->max_pending) {
            PyObject *t = PyTuple_Pack(3, fts, iframe, sip);
            rc = t ? PyList_Append(waiting, t) : -1;
            Py_XDECREF(t);
        } else {
            rc = verdict(a, 0, tip, fts, iframe, sip);
        }
        Py_DECREF(fts);
        Py_DECREF(iframe);
        return rc;
    }
    if (is_reply) {
        PyObject *waiting = PyDict_GetItemWithError(a->pending, sip);
        if (waiting == NULL)
            return PyErr_Occurred() ? -1 : 0;
        Py_INCREF(waiting);
        if (PyDict_DelItem(a->pending, sip) < 0) {
            Py_DECREF(waiting);
            return -1;
        }
        double t = PyFloat_AsDouble(ts);
        PyObject *iframe = PyNumber_Long(frame);
        int rc = (t == -1.0 && PyErr_Occurred()) || iframe == NULL ? -1 : 0;
        for (Py_ssize_t i = 0; rc == 0 && i < PyList_GET_SIZE(waiting); i++) {
            PyObject *w = PyList_GET_ITEM(waiting, i);
            double rts = PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(w, 0));
            int answered = 0 <= t - rts && t - rts <= a->window;
            rc = verdict(a, answered, sip, PyTuple_GET_ITEM(w, 0), PyTuple_GET_ITEM(w, 1),
                         PyTuple_GET_ITEM(w, 2));
        }
        Py_XDECREF(iframe);
        Py_DECREF(waiting);
        return rc;
    }
    return 0;
}

static PyObject *ArpFold_add(ArpFold *a, PyObject *rows)
{
    PyObject *seq = PySequence_Fast(rows, "rows");
    if (seq == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *row = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != 7) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "an ARP row of another shape");
            return NULL;
        }
        PyObject *frame = PyTuple_GET_ITEM(row, 0), *ts = PyTuple_GET_ITEM(row, 1);
        PyObject *op = PyTuple_GET_ITEM(row, 2), *smac = PyTuple_GET_ITEM(row, 3);
        PyObject *sip = PyTuple_GET_ITEM(row, 4), *tip = PyTuple_GET_ITEM(row, 5);
        int grat = PyObject_IsTrue(PyTuple_GET_ITEM(row, 6));
        int rc = grat < 0 ? -1 : 0;
        if (rc == 0 && sip == Py_None) {
            rc = count(a, "undecoded");
        } else if (rc == 0 && grat) {
            PyObject *iframe = PyNumber_Long(frame);
            rc = iframe ? count(a, "gratuitous") : -1;
            if (rc == 0)
                rc = responder(a, sip, smac, iframe);
            Py_XDECREF(iframe);
            if (rc == 0) {
                int reply = PyUnicode_Check(op) && PyUnicode_Compare(op, a->s_reply) == 0;
                rc = PyErr_Occurred() ? -1 : count(a, reply ? "replies" : "requests");
            }
        } else if (rc == 0) {
            int is_request = PyUnicode_Check(op) && PyUnicode_Compare(op, a->s_request) == 0;
            int is_reply = !is_request && PyUnicode_Check(op)
                           && PyUnicode_Compare(op, a->s_reply) == 0;
            if (PyErr_Occurred()) {
                rc = -1;
            } else if (is_request) {
                rc = count(a, "requests");
                int probe = rc ? 0 : PyObject_RichCompareBool(sip, a->s_probe_ip, Py_EQ);
                if (probe < 0)
                    rc = -1;
                else if (probe)
                    rc = count(a, "probes");
            } else if (is_reply) {
                PyObject *iframe = PyNumber_Long(frame);
                rc = iframe ? count(a, "replies") : -1;
                if (rc == 0)
                    rc = responder(a, sip, smac, iframe);
                Py_XDECREF(iframe);
            } else {
                rc = count(a, "other");
            }
            if (rc == 0)
                rc = pair_row(a, frame, ts, op, sip, tip);
        }
        if (rc) {
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    Py_RETURN_NONE;
}

/* ArpPairing.finish: every request still waiting is unanswered (targets in insertion order) */
static PyObject *ArpFold_finish(ArpFold *a, PyObject *Py_UNUSED(ignored))
{
    PyObject *target, *waiting;
    Py_ssize_t at = 0;
    while (PyDict_Next(a->pending, &at, &target, &waiting)) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(waiting); i++) {
            PyObject *w = PyList_GET_ITEM(waiting, i);
            if (verdict(a, 0, target, PyTuple_GET_ITEM(w, 0), PyTuple_GET_ITEM(w, 1),
                        PyTuple_GET_ITEM(w, 2)))
                return NULL;
        }
    }
    PyDict_Clear(a->pending);
    Py_RETURN_NONE;
}

static PyObject *ArpFold_answered(ArpFold *a, void *Py_UNUSED(closure))
{
    return PyLong_FromLongLong(a->answered);
}

static int ArpFold_init(ArpFold *a, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"window", "max_pending", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "dn", kwlist, &a->window, &a->max_pending))
        return -1;
    Py_XSETREF(a->counts, PyDict_New());
    Py_XSETREF(a->pending, PyDict_New());
    Py_XSETREF(a->unanswered, PyDict_New());
    Py_XSETREF(a->responders, PyDict_New());
    Py_XSETREF(a->s_request, PyUnicode_InternFromString("request"));
    Py_XSETREF(a->s_reply, PyUnicode_InternFromString("reply"));
    Py_XSETREF(a->s_probe_ip, PyUnicode_InternFromString("0.0.0.0"));
    a->answered = 0;
    return PyErr_Occurred() ? -1 : 0;
}

static void ArpFold_dealloc(ArpFold *a)
{
    PyObject_GC_UnTrack(a);
    Py_CLEAR(a->counts);
    Py_CLEAR(a->pending);
    Py_CLEAR(a->unanswered);
    Py_CLEAR(a->responders);
    Py_CLEAR(a->s_request);
    Py_CLEAR(a->s_reply);
    Py_CLEAR(a->s_probe_ip);
    PyTypeObject *tp = Py_TYPE(a);
    tp->tp_free((PyObject *)a);
    Py_DECREF(tp);
}

static int ArpFold_traverse(ArpFold *a, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(a));
    Py_VISIT(a->counts);
    Py_VISIT(a->pending);
    Py_VISIT(a->unanswered);
    Py_VISIT(a->responders);
    return 0;
}

static PyMethodDef ArpFold_methods[] = {
    {"add", (PyCFunction)ArpFold_add, METH_O, "Fold ARP rows, in capture order."},
    {"finish", (PyCFunction)ArpFold_finish, METH_NOARGS, "End of capture."},
    {NULL, NULL, 0, NULL}};

static PyMemberDef ArpFold_members[] = {
    {"counts", T_OBJECT, offsetof(ArpFold, counts), READONLY, "name -> count"},
    {"unanswered", T_OBJECT, offsetof(ArpFold, unanswered), READONLY, "target -> record"},
    {"responders", T_OBJECT, offsetof(ArpFold, responders), READONLY, "ip -> mac -> frames"},
    {NULL, 0, 0, 0, NULL}};

static PyGetSetDef ArpFold_getset[] = {
    {"answered", (getter)ArpFold_answered, NULL, "requests answered", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyType_Slot ArpFold_slots[] = {
    {Py_tp_dealloc, ArpFold_dealloc}, {Py_tp_traverse, ArpFold_traverse},
    {Py_tp_init, ArpFold_init}, {Py_tp_new, PyType_GenericNew},
    {Py_tp_methods, ArpFold_methods}, {Py_tp_members, ArpFold_members},
    {Py_tp_getset, ArpFold_getset},
    {Py_tp_doc, "The summary's ARP fold (see diag/decode/arp.py for the rule)."}, {0, NULL}};

PyType_Spec dc_arp_fold_spec = {"diag.decode._core.ArpFold", sizeof(ArpFold), 0,
                                Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, ArpFold_slots};
