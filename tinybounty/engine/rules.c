/* The fast paths the rules call most, in C: UOp._shape's rule, UOp.shape, UOp.index, UOp.const and the binary-operator
 * helper UOp._binop (ElementwiseMixin's, which `a + b`, `a * 3`, `a < b`... all go through). Included by loop.c.
 *
 * Each answers only the cases it can answer exactly as stock does, from what it reads without running Python (the
 * node's fields, sources' cached `_shape`, exact ints and bools), and hands every other case, with the original
 * arguments, to stock's function, which also raises stock's errors. The conditions of each case are next to it.
 */

static PyObject *shape_kind, *py_shape_of, *disallow_broadcast, *s_shape, *op_stack, *int_dtypes, *lub_cache, *least_upper,
  *movement_or_detach, *invalid, *stock_index, *stock_const, *stock_binop, *stock_shape_fget, *empty_tuple, *s_src, *shape_nm, *op_add, *op_mul, *op_floormod;

enum { SHAPE_SCALAR = 1, SHAPE_PASSTHROUGH, SHAPE_ELEMENTWISE, SHAPE_UNARY, SHAPE_INDEX, SHAPE_STACK };

/* the cached _shape of a source, kept in its __dict__ under the recursive property's nm (borrowed; NULL without an
 * error: not computed yet) */
static PyObject *cached_shape(PyObject *u) {
  PyObject **dp = _PyObject_GetDictPtr(u);
  return dp != NULL && *dp != NULL ? PyDict_GetItemWithError(*dp, shape_nm) : NULL;
}

/* _broadcast_shape of shapes made of exact ints that differ, (new ref), NULL without an error where stock must answer
 * (a symbolic size, or sizes that do not broadcast: stock raises its IndexError) */
static PyObject *broadcast_ints(PyObject *const *shapes, Py_ssize_t n) {
  Py_ssize_t ndim = 0;
  for (Py_ssize_t i = 0; i < n; i++) {
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(shapes[i]); j++)
      if (!PyLong_CheckExact(PyTuple_GET_ITEM(shapes[i], j))) return NULL;
    if (PyTuple_GET_SIZE(shapes[i]) > ndim) ndim = PyTuple_GET_SIZE(shapes[i]);
  }
  PyObject *ret = PyTuple_New(ndim), *one = NULL;
  if (ret == NULL || (one = PyLong_FromLong(1)) == NULL) { Py_XDECREF(ret); return NULL; }
  for (Py_ssize_t d = 0; d < ndim; d++) {
    PyObject *size = NULL;  /* stock: the sizes of this right-aligned dim other than 1, deduplicated; one or none allowed */
    for (Py_ssize_t i = 0; i < n; i++) {
      Py_ssize_t pad = ndim - PyTuple_GET_SIZE(shapes[i]);
      if (d < pad) continue;
      PyObject *s = PyTuple_GET_ITEM(shapes[i], d - pad);
      int is_one = PyObject_RichCompareBool(s, one, Py_EQ), same;
      if (is_one < 0) goto fail;
      if (is_one) continue;
      if (size == NULL) { size = s; continue; }
      if ((same = PyObject_RichCompareBool(s, size, Py_EQ)) < 0) goto fail;
      if (!same) goto fail;
    }
    PyTuple_SET_ITEM(ret, d, Py_NewRef(size != NULL ? size : one));
  }
  Py_DECREF(one);
  return ret;
fail:
  Py_DECREF(one);
  Py_DECREF(ret);
  return NULL;
}

/* UOp._shape's rule for one node whose sources are computed (the recursive property's walk is post-order): scalar,
 * pass-through, unary and elementwise ops (hot.shape_of's cases), INDEX and non-empty STACK here; the rest hot.shape_of */
static PyObject *shape_rule(PyObject *mod, PyObject *u) {
  if (Py_TYPE(u) != uop_type) return PyObject_CallOneArg(py_shape_of, u);
  PyObject *kind = PyDict_GetItemWithError(shape_kind, FIELD(u, off_op)), *src = FIELD(u, off_src), *s0, *ret;
  if (kind == NULL) return PyErr_Occurred() ? NULL : PyObject_CallOneArg(py_shape_of, u);
  long k = PyLong_AsLong(kind);
  Py_ssize_t n = PyTuple_GET_SIZE(src);
  if (k == SHAPE_SCALAR) return PyTuple_New(0);
  if (n == 0 || (s0 = cached_shape(PyTuple_GET_ITEM(src, 0))) == NULL) return PyErr_Occurred() ? NULL : PyObject_CallOneArg(py_shape_of, u);
  if (k == SHAPE_PASSTHROUGH || (k == SHAPE_UNARY && n == 1)) return Py_NewRef(s0);
  if (k == SHAPE_STACK && PyTuple_CheckExact(s0)) {  /* (len(src),) + src[0].shape */
    if ((ret = PyTuple_New(1 + PyTuple_GET_SIZE(s0))) == NULL) return NULL;
    PyObject *len = PyLong_FromSsize_t(n);
    if (len == NULL) { Py_DECREF(ret); return NULL; }
    PyTuple_SET_ITEM(ret, 0, len);
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(s0); i++) PyTuple_SET_ITEM(ret, i + 1, Py_NewRef(PyTuple_GET_ITEM(s0, i)));
    return ret;
  }
  if (k == SHAPE_INDEX || k == SHAPE_ELEMENTWISE) {
    PyObject *shapes[16];
    int ok = n <= 16;
    for (Py_ssize_t i = 0; i < n && ok; i++) ok = (shapes[i] = cached_shape(PyTuple_GET_ITEM(src, i))) != NULL && PyTuple_CheckExact(shapes[i]);
    if (PyErr_Occurred()) return NULL;
    if (ok && k == SHAPE_INDEX) {  /* the indices' shapes, then src[0]'s shape without as many leading dims as indices */
      Py_ssize_t total = 0, skip = n - 1, rest = PyTuple_GET_SIZE(s0) > skip ? PyTuple_GET_SIZE(s0) - skip : 0, at = 0;
      for (Py_ssize_t i = 1; i < n; i++) total += PyTuple_GET_SIZE(shapes[i]);
      if ((ret = PyTuple_New(total + rest)) == NULL) return NULL;
      for (Py_ssize_t i = 1; i < n; i++)
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(shapes[i]); j++) PyTuple_SET_ITEM(ret, at++, Py_NewRef(PyTuple_GET_ITEM(shapes[i], j)));
      for (Py_ssize_t j = 0; j < rest; j++) PyTuple_SET_ITEM(ret, at++, Py_NewRef(PyTuple_GET_ITEM(s0, skip + j)));
      return ret;
    }
    if (ok) {  /* all_same(shapes) (tuple ==, as stock compares) gives shapes[0] whatever DISALLOW_BROADCAST says */
      int same = 1;
      for (Py_ssize_t i = 1; i < n && same > 0; i++) same = PyObject_RichCompareBool(shapes[i], shapes[0], Py_EQ);
      if (same < 0) return NULL;
      if (same) return Py_NewRef(shapes[0]);
      PyObject *dis = PyObject_GetAttr(disallow_broadcast, s_value);
      int strict = dis == NULL ? -1 : PyObject_IsTrue(dis);
      Py_XDECREF(dis);
      if (strict < 0) return NULL;
      if (!strict && (ret = broadcast_ints(shapes, n)) != NULL) return ret;
      if (PyErr_Occurred()) return NULL;
    }
  }
  return PyObject_CallOneArg(py_shape_of, u);
}

/* UOp.shape: the cached _shape when it is there and not None; else the property through the descriptor, and stock's
 * error for None */
static PyObject *shape_get(PyObject *mod, PyObject *u) {
  PyObject *v = Py_TYPE(u) == uop_type ? cached_shape(u) : NULL;
  if (v != NULL && v != Py_None) return Py_NewRef(v);
  if (PyErr_Occurred() || (v = PyObject_GetAttr(u, s_shape)) == NULL) return NULL;
  if (v != Py_None) return v;
  Py_DECREF(v);
  return PyObject_CallOneArg(stock_shape_fget, u);  /* raises "shape requested, but ... doesn't have a shape" */
}

/* fn(self, *args, **kw) for a method's fallback to stock's function */
static PyObject *call_with_self(PyObject *fn, PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  Py_ssize_t total = nargs + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0);
  PyObject **full = PyMem_Malloc((total + 1) * sizeof(PyObject *)), *ret;
  if (full == NULL) return PyErr_NoMemory();
  full[0] = self;
  for (Py_ssize_t i = 0; i < total; i++) full[i + 1] = args[i];
  ret = PyObject_Vectorcall(fn, full, nargs + 1, kwnames);
  PyMem_Free(full);
  return ret;
}

/* UOp(op, None, src, arg) through the installed constructor (uop_call), with derived dtype (new ref) */
static PyObject *make_uop(PyObject *op, PyObject *dtype, PyObject *src, PyObject *arg) {
  PyObject *a[4] = {op, dtype, src, arg};
  return uop_call((PyObject *)uop_type, a, 4, NULL);
}

/* UOp.const(b, dtype=None) for an exact int or bool and no dtype, or an int dtype with an exact int, or the bool dtype
 * with an exact bool: dtype.const(b) is b itself there (int(b), bool(b)); everything else (floats, Invalid, tuples,
 * UOps) is stock's */
static PyObject *const_fast(PyObject *b, PyObject *dtype) {
  int is_int = PyLong_CheckExact(b), is_bool = PyBool_Check(b);
  if (dtype == Py_None && (is_int || is_bool)) dtype = is_bool ? bool_dtype : weakint_dtype;
  else if (dtype == bool_dtype ? !is_bool : !(is_int && PySequence_Contains(int_dtypes, dtype) == 1)) return NULL;
  return make_uop(op_const, dtype, empty_tuple, b);
}

static PyObject *uop_const(PyObject *mod, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  if (kwnames == NULL && (nargs == 1 || nargs == 2)) {
    PyObject *ret = const_fast(args[0], nargs == 2 ? args[1] : Py_None);
    if (ret != NULL || PyErr_Occurred()) return ret;
  }
  return PyObject_Vectorcall(stock_const, args, nargs, kwnames);
}

/* UOp.index(self, *srcs, **kwargs): ints become CONSTs, Nones are dropped, a STACK indexed by one CONST is that
 * source, else UOp(Ops.INDEX, src=(self, *srcs), **kwargs); anything but UOps, ints, bools and None is stock's */
static PyObject *uop_index(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0, m = 1;
  PyObject *src = NULL, *ret = NULL;
  int stock = Py_TYPE(self) != uop_type;
  for (Py_ssize_t k = 0; k < nkw && !stock; k++) stock = PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, k), "src") == 0;
  for (Py_ssize_t i = 0; i < nargs && !stock; i++)
    stock = !(args[i] == Py_None || Py_TYPE(args[i]) == uop_type || PyLong_CheckExact(args[i]) || PyBool_Check(args[i]));
  if (stock) return call_with_self(stock_index, self, args, nargs, kwnames);
  if ((src = PyTuple_New(nargs + 1)) == NULL) return NULL;
  PyTuple_SET_ITEM(src, 0, Py_NewRef(self));
  for (Py_ssize_t i = 0; i < nargs; i++) {
    PyObject *x = args[i];
    if (x == Py_None) continue;
    if (Py_TYPE(x) == uop_type) x = Py_NewRef(x);
    else if ((x = const_fast(x, Py_None)) == NULL) goto done;
    PyTuple_SET_ITEM(src, m++, x);
  }
  if (_PyTuple_Resize(&src, m) < 0) return NULL;
  if (m == 2 && FIELD(self, off_op) == op_stack && FIELD(PyTuple_GET_ITEM(src, 1), off_op) == op_const) {
    PyObject *i = FIELD(PyTuple_GET_ITEM(src, 1), off_arg), *ssrc = FIELD(self, off_src);
    if (PyLong_CheckExact(i)) {  /* self.src[val]: an int in range here; stock raises for the rest */
      Py_ssize_t at = PyLong_AsSsize_t(i);
      if (at == -1 && PyErr_Occurred()) PyErr_Clear();
      else {
        if (at < 0) at += PyTuple_GET_SIZE(ssrc);
        if (at >= 0 && at < PyTuple_GET_SIZE(ssrc)) { ret = Py_NewRef(PyTuple_GET_ITEM(ssrc, at)); goto done; }
      }
    }
    Py_DECREF(src);
    return call_with_self(stock_index, self, args, nargs, kwnames);
  }
  {
    PyObject **full = PyMem_Malloc((2 + nkw) * sizeof(PyObject *)), *names = PyTuple_New(1 + nkw);
    if (full == NULL || names == NULL) { PyMem_Free(full); Py_XDECREF(names); PyErr_NoMemory(); goto done; }
    full[0] = op_index, full[1] = src;
    PyTuple_SET_ITEM(names, 0, Py_NewRef(s_src));
    for (Py_ssize_t k = 0; k < nkw; k++) { full[2 + k] = args[nargs + k]; PyTuple_SET_ITEM(names, 1 + k, Py_NewRef(PyTuple_GET_ITEM(kwnames, k))); }
    ret = uop_call((PyObject *)uop_type, full, 1, names);
    PyMem_Free(full);
    Py_DECREF(names);
  }
done:
  Py_XDECREF(src);
  return ret;
}

/* stock's promote(t) where it is t itself (borrowed t; NULL: stock must answer): t's base is t (not a movement op or
 * DETACH), and either t has out's dtype and is not a weak CONST (cast to its own dtype is t; an Invalid CONST is
 * returned as is), or t is a weakint CONST of an exact int with no tag and out is an int dtype (const_like rebuilds t) */
static PyObject *promoted(PyObject *t, PyObject *out) {
  PyObject *op = FIELD(t, off_op), *dt = FIELD(t, off_dtype);
  int mv = PySet_Contains(movement_or_detach, op);
  if (mv != 0) return NULL;
  int is_const = op == op_const, weak = dt == weakint_dtype || dt == weakfloat_dtype;
  if (is_const && FIELD(t, off_arg) == invalid) return t;
  if (dt == out && !(weak && is_const)) return t;
  if (is_const && dt == weakint_dtype && PyLong_CheckExact(FIELD(t, off_arg)) && FIELD(t, off_tag) == Py_None &&
      PyTuple_GET_SIZE(FIELD(t, off_src)) == 0 && PySequence_Contains(int_dtypes, out) == 1) return t;
  return NULL;
}

/* ElementwiseMixin._binop(self, op, x, reverse) on UOps: both sides already of the promoted dtype, then
 * UOp(op, src=(lhs, rhs)); least_upper_dtype is read through a cache of its (pure, functools.cache'd) results */
static PyObject *uop_binop(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  PyObject *y, *pair, *out, *lhs, *rhs, *src, *ret;
  if (kwnames != NULL || nargs != 3 || Py_TYPE(self) != uop_type || !PyBool_Check(args[2])) goto stock;
  y = args[1];
  if (Py_TYPE(y) == uop_type) Py_INCREF(y);
  else if (!(PyLong_CheckExact(y) || PyBool_Check(y)) || (y = const_fast(y, Py_None)) == NULL) {
    if (PyErr_Occurred()) return NULL;
    goto stock;
  }
  lhs = args[2] == Py_True ? y : self, rhs = args[2] == Py_True ? self : y;
  if ((pair = PyTuple_Pack(2, FIELD(lhs, off_dtype), FIELD(rhs, off_dtype))) == NULL) { Py_DECREF(y); return NULL; }
  if ((out = PyDict_GetItemWithError(lub_cache, pair)) != NULL) Py_INCREF(out);
  else if (!PyErr_Occurred() && (out = PyObject_Call(least_upper, pair, NULL)) != NULL && PyDict_SetItem(lub_cache, pair, out) < 0) Py_CLEAR(out);
  Py_DECREF(pair);
  if (out == NULL) { Py_DECREF(y); PyErr_Clear(); goto stock; }  /* stock raises it again, from its own call */
  lhs = promoted(lhs, out), rhs = lhs == NULL ? NULL : promoted(rhs, out);
  Py_DECREF(out);
  if (lhs == NULL || rhs == NULL) { Py_DECREF(y); if (PyErr_Occurred()) return NULL; goto stock; }
  src = PyTuple_Pack(2, lhs, rhs);
  Py_DECREF(y);
  if (src == NULL) return NULL;
  ret = make_uop(args[0], Py_None, src, Py_None);
  Py_DECREF(src);
  return ret;
stock:
  return call_with_self(stock_binop, self, args, nargs, kwnames);
}

/* ---- guards: C tests that say a rule's function returns None for a node, so the dispatch does not call its matcher
 * (matching a UPat has no effect but its result). A guard answers 1 (the rule returns None) only where that follows
 * from the function's own code; 0 means "run the rule". dispatch.py names the guarded functions. ---- */

/* symbolic's fold_add_divmod_recombine(x): for each term u of x.split_uop(ADD), mod = u.pop_const(MUL)[0] (u.src[0]
 * when u is a MUL by a CONST, else u); it returns None unless some mod is a FLOORMOD by a CONST */
static int divmod_term(PyObject *u) {
  PyObject *op = FIELD(u, off_op), *src = FIELD(u, off_src);
  if (op == op_add) {  /* split_uop recurses into every ADD source, in order */
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(src); i++) {
      PyObject *s = PyTuple_GET_ITEM(src, i);
      if (Py_TYPE(s) != uop_type || divmod_term(s)) return 1;
    }
    return 0;
  }
  if (op == op_mul) {
    if (PyTuple_GET_SIZE(src) < 2 || Py_TYPE(PyTuple_GET_ITEM(src, 1)) != uop_type) return 1;  /* stock's path (and error) */
    if (FIELD(PyTuple_GET_ITEM(src, 1), off_op) == op_const) u = PyTuple_GET_ITEM(src, 0), op = FIELD(u, off_op), src = FIELD(u, off_src);
  }
  if (op != op_floormod) return 0;
  return PyTuple_GET_SIZE(src) < 2 || Py_TYPE(PyTuple_GET_ITEM(src, 1)) != uop_type || FIELD(PyTuple_GET_ITEM(src, 1), off_op) == op_const;
}

static int no_divmod_recombine(PyObject *x) { return !divmod_term(x); }

typedef int (*Guard)(PyObject *u);
static const Guard guards[] = {NULL, no_divmod_recombine};

/* the guard of a candidate entry: candidates() stores a guarded entry as (entry, guard id) (NULL: unguarded) */
static Guard guard_of(PyObject *item) {
  if (!PyTuple_CheckExact(item)) return NULL;
  long id = PyLong_AsLong(PyTuple_GET_ITEM(item, 1));
  return id > 0 && id < (long)(sizeof(guards) / sizeof(guards[0])) ? guards[id] : NULL;
}

/* guard(id, u) -> True when guard `id` shows its rule's function returns None for u (for the tests) */
static PyObject *py_guard(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
  long id = nargs == 2 ? PyLong_AsLong(args[0]) : -1;
  if (id == -1 && PyErr_Occurred()) return NULL;
  if (id <= 0 || id >= (long)(sizeof(guards) / sizeof(guards[0])) || Py_TYPE(args[1]) != uop_type) {
    PyErr_SetString(PyExc_ValueError, "guard(id, uop): unknown guard id or not a UOp");
    return NULL;
  }
  return PyBool_FromLong(guards[id](args[1]));
}
