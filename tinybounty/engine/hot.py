"""Exact fast paths for the tinygrad functions every rewrite rule runs: building a UOp, its dtype, its cached shapes, toposort.

The rules' own work (not the matching) is most of a rewrite: each rule builds UOps through `UOpMetaClass.__call__`
(dtype derivation by a long `match`, SPEC checks, the hash-consing lookup) and reads recursive properties such as
`_shape`, whose first read walks the graph with a gated `toposort`. Ours compute the same values in the same order:
- `uop_call`: the hash-consing lookup with the dtype from a per-op table (constant dtypes, "dtype of the first source",
  "promoted dtype of the sources"), falling back to stock's `dtype_from_uop` for every op the table does not cover,
  and to stock's whole constructor when SPEC checks, metadata or a device Buffer are involved;
- `recursive_property_get`: the same post-order walk as stock's gated toposort, without a gate closure per node;
- `toposort`: stock's walk without rebuilding the CALL/FUNCTION set per node.
`PATCHES` names each (owner, attribute, ours); tinybounty.engine installs and removes them with the loop.
"""
from __future__ import annotations

import weakref
from typing import Any, Callable

from tinygrad.dtype import dtypes, least_upper_dtype
from tinygrad.helpers import DISALLOW_BROADCAST, SPEC
from tinygrad.uop import GroupOp, Ops
from tinygrad.uop.ops import UOp, UOpMetaClass, _broadcast_shape, dtype_from_uop, recursive_property

_FIRST, _PROMO, _STOCK = object(), object(), object()


def _dtype_table() -> dict[Ops, Any]:
  """op -> its dtype when constant, _FIRST (src[0]'s dtype) or _PROMO (sources promoted); ops left out run stock's rule.

  Mirrors dtype_from_uop: every op its `match` names explicitly is either copied here with the same result or left out,
  and only ops it does not name fall through to its Unary / Broadcastable / Movement tail, in that order.
  """
  table: dict[Ops, Any] = {}
  for op in (Ops.STORE, Ops.LINEAR, Ops.SINK, Ops.PROGRAM, Ops.SOURCE, Ops.END, Ops.BARRIER, Ops.GROUP, Ops.IF, Ops.ENDIF,
             Ops.TUPLE, Ops.FUNCTION, Ops.CUSTOM_FUNCTION, Ops.REWRITE_ERROR, Ops.PYLITERAL): table[op] = dtypes.void
  for op in (Ops.CUSTOM, Ops.CUSTOMI, Ops.INS, Ops.NOOP): table[op] = None
  for op in (Ops.LOAD, Ops.UNSHARD, Ops.REDUCE, Ops.AFTER, Ops.RANGE, Ops.CONTIGUOUS, Ops.CONTIGUOUS_BACKWARD, Ops.COPY,
             Ops.STAGE, Ops.DETACH, Ops.MSTACK, Ops.MSELECT, Ops.ALLREDUCE, Ops.SPECIAL): table[op] = _FIRST
  for op in (Ops.CMPLT, Ops.CMPNE, Ops.CMPEQ): table[op] = dtypes.bool
  table[Ops.GETADDR], table[Ops.BINARY] = dtypes.uint64, dtypes.uint8
  named = {*table, Ops.CALL, Ops.INDEX, Ops.SIN, Ops.LOG2, Ops.EXP2, Ops.SQRT, Ops.RECIPROCAL, Ops.WHERE, Ops.STACK, Ops.WMMA,
           Ops.GETTUPLE, Ops.SHL, Ops.SHR, Ops.BUFFER, Ops.PARAM, Ops.CAST, Ops.BITCAST, Ops.CONST}
  for group, kind in ((GroupOp.Unary, _FIRST), (GroupOp.Broadcastable, _PROMO), (GroupOp.Movement, _FIRST)):
    for op in group - named - table.keys(): table[op] = kind
  return table


_DTYPE = _dtype_table()
DTYPE_TABLE = (_DTYPE, _FIRST, _PROMO)  # for the C constructor (loop.c), which answers the same ops the same way


def dtype_of(op: Ops, src: tuple[UOp, ...], arg: Any) -> Any:
  """dtype_from_uop(op, src, arg), with the common ops answered from a table (DTypes are interned: `==` is `is`)."""
  if (kind := _DTYPE.get(op, _STOCK)) is _FIRST: return src[0].dtype
  if kind is _PROMO:
    d0 = src[0].dtype
    for x in src:
      if x.dtype is not d0: return least_upper_dtype(*[x.dtype for x in src])
    return d0
  if kind is _STOCK: return dtype_from_uop(op, src, arg)
  return kind


def rebuild_dtype(n: UOp, new_src: tuple[UOp, ...]) -> Any:
  """tinygrad's _rebuild_dtype: n's dtype unless a source's dtype changed, then the dtype derived for the new sources."""
  for a, b in zip(n.src, new_src):
    if a.dtype is not b.dtype: return dtype_of(n.op, new_src, n.arg) or n.dtype
  return n.dtype


_ucache, _ucache_get, _new = UOpMetaClass.ucache, UOpMetaClass.ucache.get, type.__call__
_STOCK_CALL = UOpMetaClass.__call__


def uop_call(cls, op: Ops, dtype=None, src: tuple[UOp, ...] = (), arg: Any = None, tag: Any = None, metadata=None, _buffer=None) -> UOp:
  """UOpMetaClass.__call__: the hash-consed UOp for these fields (stock's constructor for SPEC > 1, metadata or a Buffer)."""
  if metadata is not None or _buffer is not None or SPEC.value > 1: return _STOCK_CALL(cls, op, dtype, src, arg, tag, metadata, _buffer)
  if dtype is None: dtype = dtype_of(op, src, arg) or dtypes.void
  if (wret := _ucache_get(key := (op, dtype, src, arg, tag))) is not None and (ret := wret()) is not None: return ret
  _ucache[key] = weakref.ref(created := _new(cls, op, dtype, src, arg, tag))
  return created


def recursive_property_get(self: recursive_property, x: UOp | None, owner=None) -> Any:
  """recursive_property.__get__: compute the property for every uncached node under x, sources first, as stock does."""
  if x is None: return self
  nm = self.nm
  if nm in (d := x.__dict__): return d[nm]
  cache: dict[UOp, None] = {}
  stack: list[tuple[UOp, bool]] = [(x, False)]
  push, pop = stack.append, stack.pop
  while stack:
    node, visited = pop()
    if node in cache: continue
    if visited: cache[node] = None
    elif nm not in node.__dict__:
      push((node, True))
      for s in reversed(node.src): push((s, False))
  fxn = self.fxn
  for node in cache: node.__dict__[nm] = fxn(node)
  return d[nm]


SHAPE_PROP: recursive_property = UOp.__dict__["_shape"]
_STOCK_SHAPE = SHAPE_PROP.fxn
# ops that UOp._shape's `match` names: only the others reach its Unary / Broadcastable tail
_SHAPE_NAMED = {Ops.IF, Ops.BARRIER, Ops.SINK, Ops.REWRITE_ERROR, Ops.ENDIF, Ops.GROUP, Ops.LINEAR, Ops.PROGRAM, Ops.SOURCE, Ops.TUPLE,
                Ops.FUNCTION, Ops.CALL, Ops.INS, Ops.RESHAPE, Ops.NOOP, Ops.GETTUPLE, Ops.INDEX, Ops.STACK, Ops.CONST, Ops.GETADDR,
                Ops.RANGE, Ops.SPECIAL, Ops.BINARY, Ops.BUFFER, Ops.CUSTOM, Ops.CUSTOMI, Ops.CUSTOM_FUNCTION, Ops.PYLITERAL, Ops.STAGE,
                Ops.PARAM, Ops.WMMA, Ops.MSTACK, Ops.MSELECT, Ops.DETACH, Ops.CONTIGUOUS, Ops.CONTIGUOUS_BACKWARD, Ops.AFTER, Ops.LOAD,
                Ops.COPY, Ops.ALLREDUCE, Ops.STORE, Ops.END, Ops.BITCAST, Ops.UNSHARD}
_SCALAR = frozenset({Ops.CONST, Ops.GETADDR, Ops.RANGE, Ops.SPECIAL})
_PASSTHROUGH = frozenset({Ops.MSTACK, Ops.MSELECT, Ops.DETACH, Ops.CONTIGUOUS, Ops.CONTIGUOUS_BACKWARD, Ops.AFTER, Ops.LOAD, Ops.COPY,
                          Ops.ALLREDUCE, Ops.STORE, Ops.END})
_UNARY_TAIL = frozenset((GroupOp.Unary | {Ops.CAST}) - _SHAPE_NAMED - GroupOp.Movement - {Ops.REDUCE})
_ELEMENTWISE_TAIL = frozenset(GroupOp.Broadcastable - _SHAPE_NAMED - GroupOp.Movement - {Ops.REDUCE} - _UNARY_TAIL)


def shape_of(u: UOp) -> Any:
  """UOp._shape's rule for one node (sources already computed): scalar, pass-through, unary and elementwise ops inline, the rest stock's."""
  op = u.op
  if op in _SCALAR: return ()
  if op in _PASSTHROUGH: return u.src[0]._shape
  if op in _ELEMENTWISE_TAIL and not DISALLOW_BROADCAST.value:
    shapes = [x._shape for x in u.src]
    if shapes and None not in shapes: return _broadcast_shape(*shapes)
  elif op in _UNARY_TAIL and len(u.src) == 1: return u.src[0]._shape
  return _STOCK_SHAPE(u)  # and its errors


# for the C rule (rules.c): what shape_of answers inline, by op, plus INDEX and STACK, whose cases in UOp._shape always return
SHAPE_KIND = {**{op: 1 for op in _SCALAR}, **{op: 2 for op in _PASSTHROUGH}, **{op: 3 for op in _ELEMENTWISE_TAIL}, **{op: 4 for op in _UNARY_TAIL},
              Ops.INDEX: 5, Ops.STACK: 6}


MOVEMENT_OR_DETACH = _MOVEMENT_OR_DETACH = frozenset(GroupOp.Movement | {Ops.DETACH})


def base(self: UOp) -> UOp:
  """UOp.base: the first node under movement ops and DETACH."""
  while self.op in _MOVEMENT_OR_DETACH: self = self.src[0]
  return self


_CALLS = frozenset({Ops.CALL, Ops.FUNCTION})


def toposort(self: UOp, gate: Callable | None = None, enter_calls: bool = True) -> dict[UOp, None]:
  """UOp.toposort: sources before users, gated nodes left unexpanded, CALL/FUNCTION bodies skipped unless enter_calls."""
  cache: dict[UOp, None] = {}
  stack: list[tuple[UOp, bool]] = [(self, False)]
  push, pop = stack.append, stack.pop
  while stack:
    node, visited = pop()
    if node in cache: continue
    if visited: cache[node] = None
    elif gate is None or gate(node):
      push((node, True))
      for s in reversed(node.src if enter_calls or node.op not in _CALLS else node.src[1:]): push((s, False))
  return cache


PATCHES: dict[str, tuple[Any, str, Any]] = {
  "uop_call": (UOpMetaClass, "__call__", uop_call),
  "recursive_property": (recursive_property, "__get__", recursive_property_get),
  "toposort": (UOp, "toposort", toposort),
  "shape": (SHAPE_PROP, "fxn", shape_of),
  "base": (UOp, "base", property(base)),
}
STOCK: dict[str, Any] = {name: owner.__dict__[attr] for name, (owner, attr, _) in PATCHES.items()}
ABSENT = object()  # stock's value of an attribute the class does not define itself (it inherits it): restored by deleting ours


def put(owner: Any, attr: str, value: Any) -> None:
  """Set owner.attr to value, or remove owner's own attr when value is ABSENT."""
  if value is not ABSENT: setattr(owner, attr, value)
  elif attr in owner.__dict__: delattr(owner, attr)
