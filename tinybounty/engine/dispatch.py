"""Precomputed dispatch for PatternMatcher.rewrite: the rules that can match, by op and by the set of source ops.

Stock `PatternMatcher.rewrite` walks every rule registered for the node's op and skips those whose early-reject set
(ops that must appear among the sources) is not a subset of the node's source ops. Both inputs are hashable, so the
surviving rules, in stock's order, are computed once per (op, source ops) and reused; the rules are then tried exactly
as stock tries them. A rule's compiled matcher is read from its entry on every call, since tinygrad compiles lazily.
"""
from __future__ import annotations

import weakref
from typing import Any, Callable

from tinygrad.uop.ops import PatternMatcher, TrackedPatternMatcher, UOp

_tables: weakref.WeakKeyDictionary[PatternMatcher, dict] = weakref.WeakKeyDictionary()


def dispatcher(pm: PatternMatcher) -> Callable[[UOp, Any], UOp | None]:
  """A function with PatternMatcher.rewrite's result for every (uop, ctx), sharing one dispatch table per matcher."""
  if isinstance(pm, TrackedPatternMatcher): return pm.rewrite  # it records every rule it tries
  if (table := _tables.get(pm)) is None: table = _tables[pm] = {}
  pdict = pm.pdict

  def rewrite(uop: UOp, ctx=None) -> UOp | None:
    if uop.op not in pdict: return None
    d = uop.__dict__
    if (ler := d.get("_src_ops")) is None: d["_src_ops"] = ler = frozenset(u.op for u in uop.src)
    elif type(ler) is not frozenset: d["_src_ops"] = ler = frozenset(ler)
    if (entries := table.get(key := (uop.op, ler))) is None:
      entries = table[key] = tuple(e for e in pdict[uop.op] if e[2].issubset(ler))
    for e in entries:
      if (ret := e[1](uop, ctx)) is not None and ret is not uop: return ret
    return None
  return rewrite
