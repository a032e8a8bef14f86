/* The rewrite loop of tinybounty.engine in C: tinygrad's unified_rewrite algorithm, the precomputed rule dispatch, the
 * cross-call memo, and the hash-consed UOp constructor, with stock's results in stock's order (see rewrite.py, docs/engine.md).
 *
 * Built on first use by tinybounty/engine/native.py; setup() receives the tinygrad objects it needs (UOp, a few Ops, the
 * hash-consing cache...) so nothing here imports tinygrad. Every UOp field is read at the slot offset its member
 * descriptor reports; a node that is not exactly a UOp raises TypeError.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

static PyTypeObject *uop_type, *dtype_type;
static Py_ssize_t off_op, off_dtype, off_src, off_arg, off_tag;
static PyObject *op_const, *op_cast, *op_bitcast, *op_where, *op_index, *op_param, *bool_dtype, *weakint_dtype, *weakfloat_dtype, *stock_init,
  *dtype_table, *dtype_first, *dtype_promo, *op_buffer, *op_function, *op_call, *opaque_bodies, *addrspace_alu, *bottom_up_gate, *ucache, *dtype_of,
  *void_dtype, *spec, *stock_call, *recursive_get, *s_src_ops, *s_addrspace, *s_value, *s_nm, *s_fxn, *s_issubset, *s_init, *stage_obj[3], *stock_del, *py_toposort;

#define FIELD(u, off) (*(PyObject **)((char *)(u) + (off)))

static int check_uop(PyObject *u) {
  if (Py_TYPE(u) == uop_type && FIELD(u, off_src) != NULL) return 0;
  PyErr_Format(PyExc_TypeError, "tinybounty.engine: expected a UOp in the graph, got %R", u);
  return -1;
}

/* the instance dict of a UOp, created if missing (borrowed) */
static PyObject *uop_dict(PyObject *u) {
  PyObject **dp = _PyObject_GetDictPtr(u);
  if (dp == NULL) { PyErr_SetString(PyExc_TypeError, "tinybounty.engine: UOp without __dict__"); return NULL; }
  if (*dp == NULL && (*dp = PyDict_New()) == NULL) return NULL;
  return *dp;
}

/* a stack of stock's (n, stage, new_n) triples, owning both references */
typedef struct { PyObject *n, *x; long stage; } Frame;  /* (n, stage, new_n) of stock's stack, owning both references */
typedef struct { Frame *f; Py_ssize_t len, cap; } Stack;

static int push(Stack *s, PyObject *n, long stage, PyObject *x) {
  if (s->len == s->cap) {
    Py_ssize_t cap = s->cap ? 2 * s->cap : 256;
    Frame *f = PyMem_Realloc(s->f, cap * sizeof(Frame));
    if (f == NULL) { PyErr_NoMemory(); return -1; }
    s->f = f, s->cap = cap;
  }
  Py_INCREF(n);
  Py_INCREF(x);
  s->f[s->len++] = (Frame){n, x, stage};
  return 0;
}

static void clear(Stack *s) {
  while (s->len) { s->len--; Py_DECREF(s->f[s->len].n); Py_DECREF(s->f[s->len].x); }
  PyMem_Free(s->f);
}

/* ---- hash-consed construction: UOpMetaClass.__call__ for a known dtype, no metadata, no Buffer, SPEC <= 1 ---- */

static int spec_allows_fast_path(void) {
  PyObject *v = PyObject_GetAttr(spec, s_value);
  if (v == NULL) return -1;
  long level = PyLong_AsLong(v);
  Py_DECREF(v);
  if (level == -1 && PyErr_Occurred()) return -1;
  return level <= 1;
}

/* type.__call__(cls, *key): for UOp itself, with object's __new__ and the dataclass __init__ it was set up with, the
 * instance is allocated and its five slots set here, which is all that __init__ does */
static PyObject *new_uop(PyObject *cls, PyObject *key) {
  if (cls != (PyObject *)uop_type || uop_type->tp_new != PyBaseObject_Type.tp_new || _PyType_Lookup(uop_type, s_init) != stock_init)
    return PyType_Type.tp_call(cls, key, NULL);
  PyObject *u = uop_type->tp_alloc(uop_type, 0);
  if (u == NULL) return NULL;
  Py_ssize_t offs[5] = {off_op, off_dtype, off_src, off_arg, off_tag};
  for (int i = 0; i < 5; i++) FIELD(u, offs[i]) = Py_NewRef(PyTuple_GET_ITEM(key, i));
  return u;
}

static PyObject *interned_uop(PyObject *cls, PyObject *op, PyObject *dtype, PyObject *src, PyObject *arg, PyObject *tag) {
  PyObject *key = PyTuple_Pack(5, op, dtype, src, arg, tag);
  if (key == NULL) return NULL;
  PyObject *ref = PyDict_GetItemWithError(ucache, key), *ret;
  if (ref != NULL && (ret = PyWeakref_GetObject(ref)) != Py_None) { Py_INCREF(ret); Py_DECREF(key); return ret; }
  if (PyErr_Occurred() || (ret = new_uop(cls, key)) == NULL) { Py_DECREF(key); return NULL; }
  if ((ref = PyWeakref_NewRef(ret, NULL)) == NULL || PyDict_SetItem(ucache, key, ref) < 0) { Py_XDECREF(ref); Py_DECREF(key); Py_DECREF(ret); return NULL; }
  Py_DECREF(ref);
  Py_DECREF(key);
  return ret;
}

/* hot.dtype_of(op, src, arg) (new ref): the per-op table's constant, first-source or promoted dtype, else the Python function */
static PyObject *derive_dtype(PyObject *op, PyObject *src, PyObject *arg) {
  PyObject *kind = PyDict_GetItemWithError(dtype_table, op), *d0;
  Py_ssize_t n = PyTuple_CheckExact(src) ? PyTuple_GET_SIZE(src) : 0;
  if (kind != NULL && kind != dtype_first && kind != dtype_promo) return Py_NewRef(kind);
  if (kind == NULL && !PyErr_Occurred()) {  /* the common cases of ops the table leaves to stock's rules */
    PyObject *s0 = n > 0 && Py_TYPE(PyTuple_GET_ITEM(src, 0)) == uop_type ? PyTuple_GET_ITEM(src, 0) : NULL;
    if (op == op_const && PyBool_Check(arg)) return Py_NewRef(bool_dtype);
    if (op == op_const && PyLong_CheckExact(arg)) return Py_NewRef(weakint_dtype);
    if (op == op_const && PyFloat_CheckExact(arg)) return Py_NewRef(weakfloat_dtype);
    if ((op == op_cast || op == op_bitcast) && PyObject_TypeCheck(arg, dtype_type)) return Py_NewRef(arg);
    if (op == op_index && s0 != NULL && FIELD(s0, off_op) != op_param && FIELD(s0, off_dtype) != NULL) return Py_NewRef(FIELD(s0, off_dtype));
    if (op == op_where && n >= 2 && s0 != NULL && FIELD(s0, off_dtype) == bool_dtype) {
      PyObject *s1 = PyTuple_GET_ITEM(src, 1), *d1 = Py_TYPE(s1) == uop_type ? FIELD(s1, off_dtype) : NULL;
      for (Py_ssize_t i = 2; i < n && d1 != NULL; i++)
        if (Py_TYPE(PyTuple_GET_ITEM(src, i)) != uop_type || FIELD(PyTuple_GET_ITEM(src, i), off_dtype) != d1) d1 = NULL;
      if (d1 != NULL) return Py_NewRef(d1);
    }
  }
  if (kind != NULL && n > 0 && Py_TYPE(PyTuple_GET_ITEM(src, 0)) == uop_type && (d0 = FIELD(PyTuple_GET_ITEM(src, 0), off_dtype)) != NULL) {
    int same = 1;
    for (Py_ssize_t i = 1; kind == dtype_promo && i < n && same; i++)
      same = Py_TYPE(PyTuple_GET_ITEM(src, i)) == uop_type && FIELD(PyTuple_GET_ITEM(src, i), off_dtype) == d0;
    if (same) return Py_NewRef(d0);
  }
  if (PyErr_Occurred()) return NULL;
  PyObject *args[3] = {op, src, arg};
  return PyObject_Vectorcall(dtype_of, args, 3, NULL);  /* promotion, ops the table leaves to stock, and every error */
}

static const char *const call_names[] = {"op", "dtype", "src", "arg", "tag", "metadata", "_buffer"};

/* UOpMetaClass.__call__(cls, op, dtype=None, src=(), arg=None, tag=None, metadata=None, _buffer=None) */
static PyObject *uop_call(PyObject *cls, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  PyObject *a[7] = {NULL, Py_None, NULL, Py_None, Py_None, Py_None, Py_None};
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  int stock = nargs > 7;
  for (Py_ssize_t i = 0; i < nargs && !stock; i++) a[i] = args[i];
  for (Py_ssize_t k = 0; k < nkw && !stock; k++) {
    int found = 0;
    for (int i = 0; i < 7 && !found; i++)
      if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, k), call_names[i]) == 0) {
        found = 1;
        if (i < nargs) stock = 1; else a[i] = args[nargs + k];
      }
    if (!found) stock = 1;
  }
  int fast = stock || a[0] == NULL || a[5] != Py_None || a[6] != Py_None ? 0 : spec_allows_fast_path();
  if (fast < 0) return NULL;
  if (!fast) {  /* stock's constructor, and its errors */
    Py_ssize_t total = nargs + nkw;
    PyObject **full = PyMem_Malloc((total + 1) * sizeof(PyObject *)), *ret;
    if (full == NULL) return PyErr_NoMemory();
    full[0] = cls;
    for (Py_ssize_t i = 0; i < total; i++) full[i + 1] = args[i];
    ret = PyObject_Vectorcall(stock_call, full, nargs + 1, kwnames);
    PyMem_Free(full);
    return ret;
  }
  PyObject *src = a[2], *dtype = a[1], *ret;
  if (src == NULL) { if ((src = PyTuple_New(0)) == NULL) return NULL; }
  else Py_INCREF(src);
  if (dtype == Py_None) {
    if ((dtype = derive_dtype(a[0], src, a[3])) == NULL) { Py_DECREF(src); return NULL; }
    int truthy = PyObject_IsTrue(dtype);
    if (truthy < 0) { Py_DECREF(dtype); Py_DECREF(src); return NULL; }
    if (!truthy) { Py_DECREF(dtype); dtype = void_dtype; Py_INCREF(dtype); }
  } else Py_INCREF(dtype);
  ret = interned_uop(cls, a[0], dtype, src, a[3], a[4]);
  Py_DECREF(dtype);
  Py_DECREF(src);
  return ret;
}

#include "rules.c"

/* ---- recursive_property.__get__: the value cached in x.__dict__, else computed for every uncached node under x ---- */

/* a post-order walk's step: n again as a stage-1 frame (emitted once its sources are), then its sources from `first` on,
 * the first on top of the stack */
static int push_node_and_sources(Stack *s, PyObject *n, Py_ssize_t first) {
  PyObject *src = FIELD(n, off_src);
  if (push(s, n, 1, n) < 0) return -1;
  for (Py_ssize_t i = PyTuple_GET_SIZE(src) - 1; i >= first; i--)
    if (push(s, PyTuple_GET_ITEM(src, i), 0, PyTuple_GET_ITEM(src, i)) < 0) return -1;
  return 0;
}

/* the post-order walk of both toposorts: the nodes under root, sources before users, as dict keys. open(n) says whether
 * n is walked (1: its sources from *first on, then n itself; 0: neither), -1 on error */
typedef int (*OpenFn)(PyObject *n, void *ctx, Py_ssize_t *first);
static PyObject *post_order(PyObject *root, OpenFn open, void *ctx) {
  PyObject *order = PyDict_New();
  Stack s = {NULL, 0, 0};
  if (order == NULL || push(&s, root, 0, root) < 0) goto error;
  while (s.len) {
    Frame f = s.f[--s.len];
    Py_ssize_t first = 0;
    int in = PyDict_Contains(order, f.n);
    if (in == 0 && f.stage) in = PyDict_SetItem(order, f.n, Py_None);
    else if (in == 0 && (in = check_uop(f.n)) == 0 && (in = open(f.n, ctx, &first)) > 0) in = push_node_and_sources(&s, f.n, first);
    Py_DECREF(f.n);
    Py_DECREF(f.x);
    if (in < 0) goto error;
  }
  clear(&s);
  return order;
error:
  clear(&s);
  Py_XDECREF(order);
  return NULL;
}

/* recursive_property's walk (stock's gated toposort): only nodes without nm (ctx) in their __dict__ */
static int open_uncached(PyObject *n, void *nm, Py_ssize_t *first) {
  PyObject **dp = _PyObject_GetDictPtr(n);
  int cached = dp != NULL && *dp != NULL ? PyDict_Contains(*dp, (PyObject *)nm) : 0;
  return cached < 0 ? -1 : !cached;
}

static PyObject *recursive_property_get(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs < 1 || nargs > 2) { PyErr_SetString(PyExc_TypeError, "__get__ takes 1 or 2 arguments"); return NULL; }
  PyObject *x = args[0], **sdp = _PyObject_GetDictPtr(self), *nm, *fxn, *order, *node, *v;
  if (x == Py_None || Py_TYPE(x) != uop_type || sdp == NULL || *sdp == NULL || (nm = PyDict_GetItemWithError(*sdp, s_nm)) == NULL ||
      (fxn = PyDict_GetItemWithError(*sdp, s_fxn)) == NULL) {
    if (PyErr_Occurred()) return NULL;
    PyObject *full[3] = {self, x, nargs > 1 ? args[1] : Py_None};
    return PyObject_Vectorcall(recursive_get, full, 3, NULL);
  }
  PyObject *d = uop_dict(x);
  if (d == NULL) return NULL;
  if ((v = PyDict_GetItemWithError(d, nm)) != NULL) return Py_NewRef(v);
  if (PyErr_Occurred() || (order = post_order(x, open_uncached, nm)) == NULL) return NULL;
  Py_INCREF(fxn);  /* a rule may replace self.fxn while we run it */
  Py_ssize_t pos = 0;
  int err = 0;
  while (!err && PyDict_Next(order, &pos, &node, &v)) {
    PyObject *val = PyObject_CallOneArg(fxn, node), *nd;
    err = val == NULL || (nd = uop_dict(node)) == NULL || PyDict_SetItem(nd, nm, val) < 0;
    Py_XDECREF(val);
  }
  Py_DECREF(fxn);
  Py_DECREF(order);
  if (err) return NULL;
  if ((v = PyDict_GetItemWithError(d, nm)) == NULL && !PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, nm);
  return Py_XNewRef(v);
}

/* ---- UOp.toposort(gate=None, enter_calls=True): sources before users, gated nodes unexpanded, CALL/FUNCTION bodies
 * skipped unless enter_calls; anything but those two arguments goes to the Python version (and its errors) ---- */

typedef struct { PyObject *gate; int enter_calls; } Gated;

/* UOp.toposort's walk: nodes the gate opens; CALL/FUNCTION bodies (their first source) skipped unless enter_calls */
static int open_gated(PyObject *n, void *ctx, Py_ssize_t *first) {
  Gated *t = ctx;
  PyObject *g, *op = FIELD(n, off_op);
  int open = 1;
  if (t->gate != Py_None) {
    open = (g = PyObject_CallOneArg(t->gate, n)) == NULL ? -1 : PyObject_IsTrue(g);
    Py_XDECREF(g);
  }
  *first = open > 0 && !t->enter_calls && (op == op_call || op == op_function);
  return open;
}

static PyObject *toposort(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  PyObject *a[2] = {Py_None, Py_True};
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  int fallback = nargs > 2 || check_uop(self) < 0;
  for (Py_ssize_t i = 0; i < nargs && !fallback; i++) a[i] = args[i];
  for (Py_ssize_t k = 0; k < nkw && !fallback; k++) {
    int i = PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, k), "gate") == 0 ? 0 :
            PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, k), "enter_calls") == 0 ? 1 : -1;
    if (i < 0 || i < nargs) fallback = 1; else a[i] = args[nargs + k];
  }
  if (fallback) {
    PyErr_Clear();
    PyObject **full = PyMem_Malloc((nargs + nkw + 1) * sizeof(PyObject *)), *ret;
    if (full == NULL) return PyErr_NoMemory();
    full[0] = self;
    for (Py_ssize_t i = 0; i < nargs + nkw; i++) full[i + 1] = args[i];
    ret = PyObject_Vectorcall(py_toposort, full, nargs + 1, kwnames);
    PyMem_Free(full);
    return ret;
  }
  Gated t = {a[0], PyObject_IsTrue(a[1])};
  return t.enter_calls < 0 ? NULL : post_order(self, open_gated, &t);
}

/* ---- UOp.__del__: drop the hash-consing entry (stock's __del__ for BUFFERs, which may hold a device Buffer) ---- */

static PyObject *uop_del(PyObject *self, PyObject *unused) {
  PyObject *key;
  if (Py_TYPE(self) != uop_type || FIELD(self, off_op) == op_buffer) return PyObject_CallOneArg(stock_del, self);
  Py_ssize_t offs[5] = {off_op, off_dtype, off_src, off_arg, off_tag};
  for (int i = 0; i < 5; i++)
    if (FIELD(self, offs[i]) == NULL) Py_RETURN_NONE;  /* partially constructed: stock's AttributeError, ignored */
  if ((key = PyTuple_Pack(5, FIELD(self, off_op), FIELD(self, off_dtype), FIELD(self, off_src), FIELD(self, off_arg), FIELD(self, off_tag))) == NULL) return NULL;
  int err = PyDict_DelItem(ucache, key);
  Py_DECREF(key);
  if (err < 0) {
    if (!PyErr_ExceptionMatches(PyExc_KeyError)) return NULL;
    PyErr_Clear();
  }
  Py_RETURN_NONE;
}

/* ---- dispatch: PatternMatcher.rewrite through a table of the rules that can match, by op and source ops ---- */

typedef struct { PyObject *pdict, *table, *guarded, *fn; } Matcher;  /* fn: a plain callable (a tracking matcher), else the rest */

static int matcher_from(PyObject *o, Matcher *m) {
  m->pdict = m->table = m->guarded = m->fn = NULL;
  if (o == Py_None) return 0;
  if (PyTuple_CheckExact(o) && PyTuple_GET_SIZE(o) == 3 && PyDict_CheckExact(PyTuple_GET_ITEM(o, 0)) && PyDict_CheckExact(PyTuple_GET_ITEM(o, 1)) &&
      PyDict_CheckExact(PyTuple_GET_ITEM(o, 2))) {
    m->pdict = PyTuple_GET_ITEM(o, 0), m->table = PyTuple_GET_ITEM(o, 1), m->guarded = PyTuple_GET_ITEM(o, 2);
    return 0;
  }
  if (!PyCallable_Check(o)) { PyErr_SetString(PyExc_TypeError, "matcher: expected (pdict, table, guarded) or a callable"); return -1; }
  m->fn = o;
  return 0;
}

/* frozenset of the ops of u's sources, cached in u.__dict__['_src_ops'] where stock caches its set (borrowed) */
static PyObject *src_ops(PyObject *u) {
  PyObject *d = uop_dict(u), *ler, *src = FIELD(u, off_src);
  if (d == NULL) return NULL;
  if ((ler = PyDict_GetItemWithError(d, s_src_ops)) != NULL && PyFrozenSet_CheckExact(ler)) return ler;
  if (PyErr_Occurred()) return NULL;
  if (ler != NULL) ler = PyFrozenSet_New(ler);
  else if ((ler = PyFrozenSet_New(NULL)) != NULL) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(src); i++)
      if (check_uop(PyTuple_GET_ITEM(src, i)) < 0 || PySet_Add(ler, FIELD(PyTuple_GET_ITEM(src, i), off_op)) < 0) { Py_DECREF(ler); return NULL; }
  }
  if (ler == NULL || PyDict_SetItem(d, s_src_ops, ler) < 0) { Py_XDECREF(ler); return NULL; }
  Py_DECREF(ler);
  return ler;
}

/* stock's order of the rules for op whose early-reject set is within ler, computed once per (op, ler) (borrowed) */
static PyObject *candidates(Matcher *m, PyObject *op, PyObject *pats, PyObject *ler) {
  PyObject *by_ops = PyDict_GetItemWithError(m->table, op), *entries;
  if (by_ops == NULL) {
    if (PyErr_Occurred() || (by_ops = PyDict_New()) == NULL) return NULL;
    if (PyDict_SetItem(m->table, op, by_ops) < 0) { Py_DECREF(by_ops); return NULL; }
    Py_DECREF(by_ops);
  }
  if ((entries = PyDict_GetItemWithError(by_ops, ler)) != NULL || PyErr_Occurred()) return entries;
  PyObject *kept = PyList_New(0);
  if (kept == NULL) return NULL;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pats); i++) {
    PyObject *e = PyList_GET_ITEM(pats, i);
    if (!PyList_CheckExact(e) || PyList_GET_SIZE(e) < 3) { PyErr_SetString(PyExc_TypeError, "pdict entries must be [pat, match, early_reject]"); goto error; }
    PyObject *ok = PyObject_CallMethodOneArg(PyList_GET_ITEM(e, 2), s_issubset, ler), *gid, *item;
    int keep = ok == NULL ? -1 : PyObject_IsTrue(ok);
    Py_XDECREF(ok);
    if (keep <= 0) { if (keep < 0) goto error; continue; }
    /* an entry whose rule has a C guard (dispatch.py's guarded: {UPat: guard id}) is kept as (entry, guard id) */
    if ((gid = PyDict_GetItemWithError(m->guarded, PyList_GET_ITEM(e, 0))) == NULL && PyErr_Occurred()) goto error;
    item = gid != NULL ? PyTuple_Pack(2, e, gid) : Py_NewRef(e);
    if (item == NULL || PyList_Append(kept, item) < 0) { Py_XDECREF(item); goto error; }
    Py_DECREF(item);
  }
  entries = PyList_AsTuple(kept);
  Py_DECREF(kept);
  if (entries == NULL || PyDict_SetItem(by_ops, ler, entries) < 0) { Py_XDECREF(entries); return NULL; }
  Py_DECREF(entries);
  return entries;
error:
  Py_DECREF(kept);
  return NULL;
}

/* PatternMatcher.rewrite(u, ctx): a new reference to the first rule's result other than None and u, else to None */
static PyObject *match(Matcher *m, PyObject *u, PyObject *ctx) {
  PyObject *args[2] = {u, ctx};
  if (m->fn != NULL) return PyObject_Vectorcall(m->fn, args, 2, NULL);
  PyObject *op = FIELD(u, off_op), *pats = PyDict_GetItemWithError(m->pdict, op), *ler, *entries;
  if (pats == NULL || !PyList_CheckExact(pats) || PyList_GET_SIZE(pats) == 0) {
    if (PyErr_Occurred()) return NULL;
    Py_RETURN_NONE;
  }
  if ((ler = src_ops(u)) == NULL || (entries = candidates(m, op, pats, ler)) == NULL) return NULL;
  Py_INCREF(entries);  /* a rule may rewrite the table (a matcher built inside a rule): keep ours alive */
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(entries); i++) {
    PyObject *e = PyTuple_GET_ITEM(entries, i);
    Guard guard = guard_of(e);
    if (guard != NULL) {
      if (guard(u)) continue;  /* the rule's function returns None here */
      e = PyTuple_GET_ITEM(e, 0);
    }
    PyObject *ret = PyObject_Vectorcall(PyList_GET_ITEM(e, 1), args, 2, NULL);  /* read each time: rules compile lazily */
    if (ret == NULL) { Py_DECREF(entries); return NULL; }
    if (ret != Py_None && ret != u) { Py_DECREF(entries); return ret; }
    Py_DECREF(ret);
  }
  Py_DECREF(entries);
  Py_RETURN_NONE;
}

static PyObject *py_match(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
  Matcher m;
  if (nargs != 3) { PyErr_SetString(PyExc_TypeError, "match(matcher, uop, ctx)"); return NULL; }
  if (matcher_from(args[0], &m) < 0 || check_uop(args[1]) < 0) return NULL;
  if (m.pdict == NULL && m.fn == NULL) Py_RETURN_NONE;
  return match(&m, args[1], args[2]);
}

/* ---- the loop ---- */

/* stock's `if n in waitlist: stack.extend(waitlist.pop(n))` */
static int release(Stack *s, PyObject *waitlist, PyObject *n) {
  if (PyDict_GET_SIZE(waitlist) == 0) return 0;
  PyObject *waiting = PyDict_GetItemWithError(waitlist, n);
  if (waiting == NULL) return PyErr_Occurred() ? -1 : 0;
  Py_INCREF(waiting);
  int err = PyDict_DelItem(waitlist, n);
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(waiting) && !err; i++) {
    PyObject *t = PyList_GET_ITEM(waiting, i);
    err = push(s, PyTuple_GET_ITEM(t, 0), PyLong_AsLong(PyTuple_GET_ITEM(t, 1)), PyTuple_GET_ITEM(t, 2));
  }
  Py_DECREF(waiting);
  return err;
}

/* stock's `waitlist.setdefault(key, []).append((n, stage, x))` */
static int wait_on(PyObject *waitlist, PyObject *key, PyObject *n, long stage, PyObject *x) {
  PyObject *waiting = PyDict_GetItemWithError(waitlist, key), *t;
  if (waiting == NULL) {
    if (PyErr_Occurred() || (waiting = PyList_New(0)) == NULL) return -1;
    int err = PyDict_SetItem(waitlist, key, waiting);
    Py_DECREF(waiting);
    if (err < 0) return -1;
  }
  if ((t = PyTuple_Pack(3, n, stage_obj[stage], x)) == NULL) return -1;
  int err = PyList_Append(waiting, t);
  Py_DECREF(t);
  return err;
}

static int done(Stack *s, PyObject *replace, PyObject *waitlist, PyObject *n, PyObject *v) {
  return PyDict_SetItem(replace, n, v) < 0 ? -1 : release(s, waitlist, n);
}

/* the memo entry of n under tok (borrowed; NULL: none) */
static PyObject *memo_get(PyObject *n, PyObject *tok) {
  PyObject **dp = _PyObject_GetDictPtr(n);
  return dp == NULL || *dp == NULL ? NULL : PyDict_GetItemWithError(*dp, tok);
}

/* a Variable is an ALU BUFFER: any other BUFFER may have a device Buffer whose realized state rules can read */
static int buffer_is_state(PyObject *u) {
  PyObject *space = PyObject_GetAttr(FIELD(u, off_arg), s_addrspace);
  if (space == NULL) {
    if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return -1;
    PyErr_Clear();
    return 1;
  }
  Py_DECREF(space);
  return space != addrspace_alu;
}

/* the bottom-up fixed point of n: 0 with *out (new ref) the last node, 1 if a rule raised BottomUpGate, -1 on error */
static int bottom_up(Matcher *bpm, PyObject *bpm_cache, PyObject *ctx, PyObject *n, PyObject **out) {
  PyObject *test = n, *seen = NULL, *nxt;
  Py_INCREF(test);
  for (;;) {
    if (seen != NULL) {
      int in = PySet_Contains(seen, test);
      if (in != 0) {
        if (in > 0) PyErr_SetString(PyExc_RuntimeError, "infinite loop in fixed_point_rewrite");
        goto error;
      }
      if (PySet_Add(seen, test) < 0) goto error;
    }
    if ((nxt = PyDict_GetItemWithError(bpm_cache, test)) != NULL) Py_INCREF(nxt);
    else if (PyErr_Occurred() || check_uop(test) < 0) goto error;
    else if ((nxt = match(bpm, test, ctx)) == NULL) {
      if (!PyErr_ExceptionMatches(bottom_up_gate)) goto error;
      PyErr_Clear();
      Py_XDECREF(seen);
      *out = test;
      return 1;
    } else if (PyDict_SetItem(bpm_cache, test, nxt) < 0) { Py_DECREF(nxt); goto error; }
    if (nxt == Py_None) { Py_DECREF(nxt); Py_XDECREF(seen); *out = test; return 0; }
    if (seen == NULL && ((seen = PySet_New(NULL)) == NULL || PySet_Add(seen, test) < 0)) { Py_DECREF(nxt); goto error; }
    Py_DECREF(test);
    test = nxt;
  }
error:
  Py_DECREF(test);
  Py_XDECREF(seen);
  return -1;
}

/* n rebuilt on new_src: stock's _rebuild_dtype then UOp(...) (new ref) */
static PyObject *rebuild(PyObject *n, PyObject *new_src) {
  PyObject *src = FIELD(n, off_src), *dtype = FIELD(n, off_dtype), *ret;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(src); i++)
    if (FIELD(PyTuple_GET_ITEM(src, i), off_dtype) != FIELD(PyTuple_GET_ITEM(new_src, i), off_dtype)) { dtype = NULL; break; }
  if (dtype != NULL) Py_INCREF(dtype);
  else {
    if ((dtype = derive_dtype(FIELD(n, off_op), new_src, FIELD(n, off_arg))) == NULL) return NULL;
    int truthy = PyObject_IsTrue(dtype);
    if (truthy < 0) { Py_DECREF(dtype); return NULL; }
    if (!truthy) { Py_DECREF(dtype); dtype = FIELD(n, off_dtype); Py_INCREF(dtype); }
  }
  int fast = spec_allows_fast_path();
  if (fast < 0) ret = NULL;
  else if (fast) ret = interned_uop((PyObject *)uop_type, FIELD(n, off_op), dtype, new_src, FIELD(n, off_arg), FIELD(n, off_tag));
  else {
    PyObject *args[5] = {FIELD(n, off_op), dtype, new_src, FIELD(n, off_arg), FIELD(n, off_tag)};
    ret = PyObject_Vectorcall((PyObject *)uop_type, args, 5, NULL);
  }
  Py_DECREF(dtype);
  return ret;
}

/* write F(k) = replace[k] (None when k itself) into every k's __dict__ under tok */
static int memo_write(PyObject *replace, PyObject *tok) {
  Py_ssize_t pos = 0;
  PyObject *k, *v, *d;
  while (PyDict_Next(replace, &pos, &k, &v))
    if ((d = uop_dict(k)) == NULL || PyDict_SetItem(d, tok, v == k ? Py_None : v) < 0) return -1;
  return 0;
}

/* rewrite(root, replace, bpm_cache, pm, bpm, ctx, enter_calls, limit, tok) -> replace[root]
 * pm, bpm: None, (pdict, table) or a callable; tok: the memo token or None */
static PyObject *rewrite(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs != 9) { PyErr_SetString(PyExc_TypeError, "rewrite takes 9 arguments"); return NULL; }
  PyObject *root = args[0], *replace = args[1], *bpm_cache = args[2], *ctx = args[5], *tok = args[8] == Py_None ? NULL : args[8];
  int enter_calls = PyObject_IsTrue(args[6]), pure = tok != NULL;
  Py_ssize_t limit = PyLong_AsSsize_t(args[7]);
  Matcher pm, bpm;
  if (enter_calls < 0 || (limit == -1 && PyErr_Occurred()) || matcher_from(args[3], &pm) < 0 || matcher_from(args[4], &bpm) < 0) return NULL;
  if (!PyDict_CheckExact(replace) || !PyDict_CheckExact(bpm_cache)) { PyErr_SetString(PyExc_TypeError, "replace and bpm_cache must be dicts"); return NULL; }
  int has_pm = pm.pdict != NULL || pm.fn != NULL, has_bpm = bpm.pdict != NULL || bpm.fn != NULL;
  PyObject *on_stack = PySet_New(NULL), *waitlist = PyDict_New(), *ret = NULL, *n, *x, *r;
  Stack s = {NULL, 0, 0};
  if (on_stack == NULL || waitlist == NULL || PySet_Add(on_stack, root) < 0 || push(&s, root, 0, root) < 0) goto out;
  while (s.len) {
    if (s.len > limit) { PyErr_SetString(PyExc_RuntimeError, "infinite loop in graph_rewrite (stack too big)"); goto out; }
    Frame f = s.f[--s.len];
    n = f.n, x = f.x;  /* x is stock's new_n */
    int seen = PyDict_Contains(replace, n);
    if (seen != 0) { Py_DECREF(n); Py_DECREF(x); if (seen < 0) goto out; continue; }
    if (f.stage == 0) {
      if (check_uop(n) < 0) goto frame_error;
      if (tok != NULL && (r = memo_get(n, tok)) != NULL) {
        if (done(&s, replace, waitlist, n, r == Py_None ? n : r) < 0) goto frame_error;
        Py_DECREF(n); Py_DECREF(x);
        continue;
      }
      if (PyErr_Occurred()) goto frame_error;
      if (has_bpm) {
        PyObject *last;
        int gate = bottom_up(&bpm, bpm_cache, ctx, n, &last);
        if (gate < 0) goto frame_error;
        Py_DECREF(x);
        x = last;
        if (gate) {
          if (done(&s, replace, waitlist, n, x) < 0) goto frame_error;
          Py_DECREF(n); Py_DECREF(x);
          continue;
        }
      }
      if (check_uop(x) < 0 || push(&s, n, 1, x) < 0) goto frame_error;
      PyObject *op = FIELD(x, off_op), *src = FIELD(x, off_src);
      if (op == op_buffer && pure) {
        int state = buffer_is_state(x);
        if (state < 0) goto frame_error;
        if (state) pure = 0;
      }
      if (!enter_calls && (op == op_function || op == op_call) && PyTuple_GET_SIZE(src) > 0) {
        PyObject *body = PyTuple_GET_ITEM(src, 0);
        int opaque = op == op_function;
        if (check_uop(body) < 0 || (!opaque && (opaque = PySet_Contains(opaque_bodies, FIELD(body, off_op))) < 0)) goto frame_error;
        if (opaque) {  /* stock pins the body for the rest of the call: from here on the call neither reads nor writes the memo */
          if (PyDict_SetItem(replace, body, body) < 0) goto frame_error;
          tok = NULL, pure = 0;
        }
      }
      Py_ssize_t mark = s.len;
      for (Py_ssize_t i = PyTuple_GET_SIZE(src) - 1; i >= 0; i--) {
        PyObject *c = PyTuple_GET_ITEM(src, i);
        int in = PySet_Contains(on_stack, c);
        if (in < 0 || (!in && (push(&s, c, 0, c) < 0 || PySet_Add(on_stack, c) < 0))) goto frame_error;
      }
      Py_DECREF(n); Py_DECREF(x);
      if (s.len != mark) continue;
      /* no source pushed: (n, 1, x) is on top, as in stock's next iteration; take it now */
      f = s.f[--s.len];
      n = f.n, x = f.x, f.stage = 1;
    }
    if (f.stage == 1) {
      PyObject *src = FIELD(x, off_src), *new_src = PyTuple_New(PyTuple_GET_SIZE(src)), *next;
      int changed = 0;
      if (new_src == NULL) goto frame_error;
      for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(src); i++) {
        PyObject *c = PyTuple_GET_ITEM(src, i), *rc = PyDict_GetItemWithError(replace, c);
        if (rc == NULL) {
          Py_DECREF(new_src);
          if (PyErr_Occurred() || wait_on(waitlist, c, n, 1, x) < 0) goto frame_error;
          new_src = NULL;
          break;
        }
        Py_INCREF(rc);
        PyTuple_SET_ITEM(new_src, i, rc);
        changed |= rc != c;
      }
      if (new_src == NULL) { Py_DECREF(n); Py_DECREF(x); continue; }
      if (!changed) {
        Py_DECREF(new_src);
        if (!has_pm) { next = Py_None; Py_INCREF(next); }
        else if ((next = match(&pm, x, ctx)) == NULL) goto frame_error;
        if (next == Py_None) {
          Py_DECREF(next);
          if (done(&s, replace, waitlist, n, x) < 0) goto frame_error;
          Py_DECREF(n); Py_DECREF(x);
          continue;
        }
      } else {
        next = rebuild(x, new_src);
        Py_DECREF(new_src);
        if (next == NULL) goto frame_error;
      }
      int err = push(&s, n, 2, next) < 0 || push(&s, next, 0, next) < 0;
      Py_DECREF(next);
      if (err) goto frame_error;
      Py_DECREF(n); Py_DECREF(x);
    } else if (f.stage == 2) {
      if ((r = PyDict_GetItemWithError(replace, x)) == NULL) {
        if (PyErr_Occurred() || wait_on(waitlist, x, n, 2, x) < 0) goto frame_error;
      } else if (done(&s, replace, waitlist, n, r) < 0) goto frame_error;
      Py_DECREF(n); Py_DECREF(x);
    }
    continue;
  frame_error:
    Py_DECREF(n); Py_DECREF(x);
    goto out;
  }
  if ((ret = PyDict_GetItemWithError(replace, root)) == NULL) {
    if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, root);
  } else if (pure && memo_write(replace, tok) < 0) ret = NULL;
  else Py_INCREF(ret);
out:
  clear(&s);
  Py_XDECREF(on_stack);
  Py_XDECREF(waitlist);
  return ret;
}

/* walk(root, replace, bpm_cache, pm, bpm, ctx, enter_calls) -> RewriteContext.walk_rewrite: one pass, bpm's result
 * taken as is (its sources not visited), else the sources first, the rebuilt node, and pm's result as is */
static PyObject *walk(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs != 7) { PyErr_SetString(PyExc_TypeError, "walk takes 7 arguments"); return NULL; }
  PyObject *root = args[0], *replace = args[1], *bpm_cache = args[2], *ctx = args[5], *r;
  int enter_calls = PyObject_IsTrue(args[6]);
  Matcher pm, bpm;
  if (enter_calls < 0 || matcher_from(args[3], &pm) < 0 || matcher_from(args[4], &bpm) < 0) return NULL;
  if (!PyDict_CheckExact(replace) || !PyDict_CheckExact(bpm_cache)) { PyErr_SetString(PyExc_TypeError, "replace and bpm_cache must be dicts"); return NULL; }
  int has_pm = pm.pdict != NULL || pm.fn != NULL, has_bpm = bpm.pdict != NULL || bpm.fn != NULL, err = 0;
  Stack s = {NULL, 0, 0};
  if (push(&s, root, 0, root) < 0) return NULL;
  while (s.len && !err) {
    Frame f = s.f[--s.len];
    PyObject *n = f.n, *src;
    if ((err = PyDict_Contains(replace, n)) != 0 || (err = check_uop(n)) < 0) { err = err < 0; goto next; }
    src = FIELD(n, off_src);
    if (!f.stage) {
      if (has_bpm) {  /* stock's cached_bpm_rewrite */
        if ((r = PyDict_GetItemWithError(bpm_cache, n)) != NULL) Py_INCREF(r);
        else if (PyErr_Occurred() || (r = match(&bpm, n, ctx)) == NULL || PyDict_SetItem(bpm_cache, n, r) < 0) { Py_XDECREF(r); err = 1; goto next; }
        if (r != Py_None) { err = PyDict_SetItem(replace, n, r) < 0; Py_DECREF(r); goto next; }
        Py_DECREF(r);
      }
      if ((err = push(&s, n, 1, n) < 0)) goto next;
      PyObject *op = FIELD(n, off_op);
      if (!enter_calls && (op == op_function || op == op_call) && PyTuple_GET_SIZE(src) > 0) {
        PyObject *body = PyTuple_GET_ITEM(src, 0);
        int opaque = op == op_function;
        if ((err = check_uop(body) < 0 || (!opaque && (opaque = PySet_Contains(opaque_bodies, FIELD(body, off_op))) < 0))) goto next;
        if (opaque && (err = PyDict_SetItem(replace, body, body) < 0)) goto next;
      }
      for (Py_ssize_t i = PyTuple_GET_SIZE(src) - 1; i >= 0 && !err; i--) {
        PyObject *c = PyTuple_GET_ITEM(src, i);
        int in = PyDict_Contains(replace, c);
        err = in < 0 || (!in && push(&s, c, 0, c) < 0);
      }
    } else {
      PyObject *new_src = PyTuple_New(PyTuple_GET_SIZE(src)), *new_n;
      int changed = 0;
      for (Py_ssize_t i = 0; new_src != NULL && i < PyTuple_GET_SIZE(src); i++) {
        PyObject *c = PyTuple_GET_ITEM(src, i), *rc = PyDict_GetItemWithError(replace, c);
        if (rc == NULL && PyErr_Occurred()) Py_CLEAR(new_src);
        else {
          PyTuple_SET_ITEM(new_src, i, Py_NewRef(rc != NULL ? rc : c));
          changed |= rc != NULL && rc != c;
        }
      }
      if (new_src == NULL) { err = 1; goto next; }
      new_n = changed ? rebuild(n, new_src) : Py_NewRef(n);
      Py_DECREF(new_src);
      if (new_n == NULL) { err = 1; goto next; }
      if (has_pm) {
        if ((r = match(&pm, new_n, ctx)) == NULL) { Py_DECREF(new_n); err = 1; goto next; }
        if (r != Py_None) Py_SETREF(new_n, r);
        else Py_DECREF(r);
      }
      err = PyDict_SetItem(replace, n, new_n) < 0;
      Py_DECREF(new_n);
    }
  next:
    Py_DECREF(f.n);
    Py_DECREF(f.x);
  }
  clear(&s);
  if (err) return NULL;
  if ((r = PyDict_GetItemWithError(replace, root)) == NULL && PyErr_Occurred()) return NULL;
  return Py_NewRef(r != NULL ? r : root);
}

/* tinygrad's global settings now: every ContextVar's value in ContextVar._cache's order, lists as tuples */
static PyObject *settings(PyObject *mod, PyObject *cache) {
  if (!PyDict_CheckExact(cache)) { PyErr_SetString(PyExc_TypeError, "settings: expected ContextVar._cache"); return NULL; }
  PyObject *out = PyTuple_New(PyDict_GET_SIZE(cache)), *k, *var;
  Py_ssize_t pos = 0, i = 0;
  while (out != NULL && PyDict_Next(cache, &pos, &k, &var)) {
    PyObject *v = PyObject_GetAttr(var, s_value);
    if (v != NULL && PyList_CheckExact(v)) Py_SETREF(v, PyList_AsTuple(v));
    if (v == NULL || i >= PyTuple_GET_SIZE(out)) { Py_XDECREF(v); Py_CLEAR(out); break; }
    PyTuple_SET_ITEM(out, i++, v);
  }
  return out;
}

/* ---- setup ---- */

static int member_offset(PyObject *cls, const char *name, Py_ssize_t *off) {
  PyObject *d = PyObject_GetAttrString(cls, name);
  if (d == NULL) return -1;
  int ok = Py_IS_TYPE(d, &PyMemberDescr_Type) && ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX;
  if (ok) *off = ((PyMemberDescrObject *)d)->d_member->offset;
  else PyErr_Format(PyExc_TypeError, "UOp.%s is not a slot", name);
  Py_DECREF(d);
  return ok ? 0 : -1;
}

static PyMethodDef uop_call_def = {"__call__", (PyCFunction)(void (*)(void))uop_call, METH_FASTCALL | METH_KEYWORDS,
                                   "UOpMetaClass.__call__: the hash-consed UOp (tinybounty.engine's C fast path)"};
static PyMethodDef uop_del_def = {"__del__", (PyCFunction)uop_del, METH_NOARGS, "UOp.__del__: drop the hash-consing entry (tinybounty.engine)"};
static PyMethodDef toposort_def = {"toposort", (PyCFunction)(void (*)(void))toposort, METH_FASTCALL | METH_KEYWORDS,
                                   "UOp.toposort(gate=None, enter_calls=True) (tinybounty.engine)"};
static PyMethodDef index_def = {"index", (PyCFunction)(void (*)(void))uop_index, METH_FASTCALL | METH_KEYWORDS,
                                 "UOp.index(*srcs, **kwargs) (tinybounty.engine)"};
static PyMethodDef binop_def = {"_binop", (PyCFunction)(void (*)(void))uop_binop, METH_FASTCALL | METH_KEYWORDS,
                                 "ElementwiseMixin._binop(op, x, reverse) for UOps (tinybounty.engine)"};
static PyMethodDef recursive_get_def = {"__get__", (PyCFunction)(void (*)(void))recursive_property_get, METH_FASTCALL,
                                        "recursive_property.__get__: the cached value, else the walk (tinybounty.engine)"};

/* the tinygrad objects the C code uses, by the name native.bind() gives them */
static struct { const char *name; PyObject **into; } bound[] = {
  {"UOp", (PyObject **)&uop_type}, {"ucache", &ucache}, {"SPEC", &spec}, {"BottomUpGate", &bottom_up_gate}, {"ALU", &addrspace_alu},
  {"opaque_bodies", &opaque_bodies}, {"BUFFER", &op_buffer}, {"FUNCTION", &op_function}, {"CALL", &op_call}, {"CONST", &op_const},
  {"CAST", &op_cast}, {"BITCAST", &op_bitcast}, {"WHERE", &op_where}, {"INDEX", &op_index}, {"PARAM", &op_param},
  {"DType", (PyObject **)&dtype_type}, {"void", &void_dtype}, {"bool", &bool_dtype}, {"weakint", &weakint_dtype},
  {"weakfloat", &weakfloat_dtype}, {"dtype_table", &dtype_table}, {"FIRST", &dtype_first}, {"PROMO", &dtype_promo},
  {"dtype_of", &dtype_of}, {"stock_call", &stock_call}, {"stock_init", &stock_init}, {"stock_del", &stock_del},
  {"toposort", &py_toposort}, {"recursive_get", &recursive_get},
  {"shape_kind", &shape_kind}, {"shape_of", &py_shape_of}, {"DISALLOW_BROADCAST", &disallow_broadcast}, {"STACK", &op_stack},
  {"int_dtypes", &int_dtypes}, {"least_upper_dtype", &least_upper}, {"movement_or_detach", &movement_or_detach}, {"Invalid", &invalid},
  {"stock_index", &stock_index}, {"stock_const", &stock_const}, {"stock_binop", &stock_binop}, {"stock_shape_fget", &stock_shape_fget},
  {"shape_nm", &shape_nm},
  {"ADD", &op_add}, {"MUL", &op_mul}, {"FLOORMOD", &op_floormod},
};

/* setup(objects: {name: object}, UOpMetaClass, recursive_property): bind them (kept for the life of the process) and
 * return the (UOpMetaClass.__call__, recursive_property.__get__, UOp.__del__, UOp.toposort) descriptors */
static PyObject *setup(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs != 3 || !PyDict_CheckExact(args[0]) || !PyType_Check(args[1]) || !PyType_Check(args[2])) {
    PyErr_SetString(PyExc_TypeError, "setup(objects, UOpMetaClass, recursive_property)");
    return NULL;
  }
  for (size_t i = 0; i < sizeof(bound) / sizeof(bound[0]); i++) {
    PyObject *o = PyDict_GetItemString(args[0], bound[i].name);
    if (o == NULL) return PyErr_Format(PyExc_KeyError, "setup: missing %s", bound[i].name);
    Py_XSETREF(*bound[i].into, Py_NewRef(o));
  }
  if (!PyType_Check(uop_type) || !PyType_Check(dtype_type) || !PyDict_CheckExact(ucache) || !PyDict_CheckExact(dtype_table) ||
      !PyDict_CheckExact(shape_kind) || !PyTuple_CheckExact(int_dtypes) || !PyAnySet_CheckExact(movement_or_detach)) {
    PyErr_SetString(PyExc_TypeError, "setup: UOp and DType must be types, ucache, dtype_table and shape_kind dicts, int_dtypes a tuple, "
                    "movement_or_detach a set");
    return NULL;
  }
  PyObject *u = (PyObject *)uop_type;
  if (member_offset(u, "op", &off_op) < 0 || member_offset(u, "dtype", &off_dtype) < 0 || member_offset(u, "src", &off_src) < 0 ||
      member_offset(u, "arg", &off_arg) < 0 || member_offset(u, "tag", &off_tag) < 0) return NULL;
  PyObject *call = PyDescr_NewMethod((PyTypeObject *)args[1], &uop_call_def);
  PyObject *get = PyDescr_NewMethod((PyTypeObject *)args[2], &recursive_get_def);
  PyObject *del = PyDescr_NewMethod(uop_type, &uop_del_def);
  PyObject *topo = PyDescr_NewMethod(uop_type, &toposort_def);
  PyObject *index = PyDescr_NewMethod(uop_type, &index_def), *binop = PyDescr_NewMethod(uop_type, &binop_def);
  Py_XSETREF(lub_cache, PyDict_New());
  if (call == NULL || get == NULL || del == NULL || topo == NULL || index == NULL || binop == NULL || lub_cache == NULL) {
    Py_XDECREF(call); Py_XDECREF(get); Py_XDECREF(del); Py_XDECREF(topo); Py_XDECREF(index); Py_XDECREF(binop);
    return NULL;
  }
  return Py_BuildValue("(NNNNNN)", call, get, del, topo, index, binop);
}

static PyMethodDef methods[] = {
  {"setup", (PyCFunction)(void (*)(void))setup, METH_FASTCALL, "bind the tinygrad objects the loop uses"},
  {"rewrite", (PyCFunction)(void (*)(void))rewrite, METH_FASTCALL, "unified_rewrite's loop: returns replace[root]"},
  {"walk", (PyCFunction)(void (*)(void))walk, METH_FASTCALL, "RewriteContext.walk_rewrite's loop: returns replace.get(root, root)"},
  {"match", (PyCFunction)(void (*)(void))py_match, METH_FASTCALL, "PatternMatcher.rewrite(uop, ctx) through the dispatch table"},
  {"settings", (PyCFunction)settings, METH_O, "every ContextVar's value, lists as tuples (the memo's key)"},
  {"guard", (PyCFunction)(void (*)(void))py_guard, METH_FASTCALL, "guard(id, uop): whether a rule guard shows its function returns None"},
  {"shape_rule", (PyCFunction)shape_rule, METH_O, "UOp._shape's rule for one node (tinybounty.engine)"},
  {"shape_get", (PyCFunction)shape_get, METH_O, "UOp.shape (tinybounty.engine)"},
  {"const", (PyCFunction)(void (*)(void))uop_const, METH_FASTCALL | METH_KEYWORDS, "UOp.const(b, dtype=None) (tinybounty.engine)"},
  {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_loop", "tinybounty.engine's rewrite loop in C", -1, methods};

PyMODINIT_FUNC PyInit__loop(void) {
  const char *names[] = {"_src_ops", "addrspace", "value", "nm", "fxn", "issubset", "__init__", "_shape", "src"};
  PyObject **into[] = {&s_src_ops, &s_addrspace, &s_value, &s_nm, &s_fxn, &s_issubset, &s_init, &s_shape, &s_src};
  if ((empty_tuple = PyTuple_New(0)) == NULL) return NULL;
  for (int i = 0; i < 9; i++)
    if ((*into[i] = PyUnicode_InternFromString(names[i])) == NULL) return NULL;
  for (long i = 0; i < 3; i++)
    if ((stage_obj[i] = PyLong_FromLong(i)) == NULL) return NULL;
  return PyModule_Create(&module);
}
