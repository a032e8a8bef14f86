"""Precomputed dispatch for PatternMatcher.rewrite: the rules that can match, by op and by the set of source ops.

Stock `PatternMatcher.rewrite` walks every rule registered for the node's op and skips those whose early-reject set
(ops that must appear among the sources) is not a subset of the node's source ops. Both inputs are hashable, so the
surviving rules, in stock's order, are computed once per (op, source ops) and reused; the rules are then tried exactly
as stock tries them. A rule's compiled matcher is read from its entry on every call, since tinygrad compiles lazily.
The table, {op: {source ops: rules}}, is built by the Python dispatcher and, separately, by the C loop (loop.c reads
`matcher_arg`), whose table may also hold guarded entries: a rule whose function has a C guard (rules.c) is kept as
(entry, guard id), and its matcher is not called for a node where the guard shows the function returns None.
"""
from __future__ import annotations

import weakref
from typing import Any, Callable

from tinygrad.uop.ops import PatternMatcher, TrackedPatternMatcher, UOp
from tinygrad.uop.symbolic import fold_add_divmod_recombine

_tables: weakref.WeakKeyDictionary[PatternMatcher, dict] = weakref.WeakKeyDictionary()
_native: weakref.WeakKeyDictionary[PatternMatcher, tuple] = weakref.WeakKeyDictionary()
GUARDS: dict[Callable, int] = {fold_add_divmod_recombine: 1}  # rule function -> its guard's id in rules.c's `guards`


def table_of(pm: PatternMatcher) -> dict:
  """The dispatch table of pm, {op: {frozenset of source ops: entries of pm.pdict[op] that can match}}."""
  if (table := _tables.get(pm)) is None: table = _tables[pm] = {}
  return table


def guarded(pm: PatternMatcher) -> dict:
  """{UPat: guard id} for pm's rules whose function has a C guard; a UPat that pm pairs with more than one function is left out."""
  count: dict[Any, int] = {}
  for p, _ in pm.patterns: count[p] = count.get(p, 0) + 1
  return {p: GUARDS[fxn] for p, fxn in pm.patterns if count[p] == 1 and fxn in GUARDS}


def matcher_arg(pm: PatternMatcher | None) -> Any:
  """What the C loop takes for a matcher: None, (pdict, its C table, guarded(pm)), or pm.rewrite for a tracking matcher
  (it records every try)."""
  if pm is None: return None
  if isinstance(pm, TrackedPatternMatcher): return pm.rewrite
  if (arg := _native.get(pm)) is None: arg = _native[pm] = (pm.pdict, {}, guarded(pm))
  return arg


def dispatcher(pm: PatternMatcher) -> Callable[[UOp, Any], UOp | None]:
  """A function with PatternMatcher.rewrite's result for every (uop, ctx), sharing one dispatch table per matcher."""
  if isinstance(pm, TrackedPatternMatcher): return pm.rewrite
  table, pdict = table_of(pm), pm.pdict

  def rewrite(uop: UOp, ctx=None) -> UOp | None:
    if not (pats := pdict.get(op := uop.op)): return None
    d = uop.__dict__
    if (ler := d.get("_src_ops")) is None: d["_src_ops"] = ler = frozenset(u.op for u in uop.src)
    elif type(ler) is not frozenset: d["_src_ops"] = ler = frozenset(ler)
    if (by_ops := table.get(op)) is None: by_ops = table[op] = {}
    if (entries := by_ops.get(ler)) is None: entries = by_ops[ler] = tuple(e for e in pats if e[2].issubset(ler))
    for e in entries:
      if (ret := e[1](uop, ctx)) is not None and ret is not uop: return ret
    return None
  return rewrite
