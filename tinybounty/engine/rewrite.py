"""The fast graph rewrite: tinygrad's unified_rewrite with a tighter loop and a memo of results across calls.

tinygrad's `RewriteContext.unified_rewrite` computes, for every node n under the root, replace[n] = F(n): the fixed point
of bottom-up rules (bpm), then F of each source, then the top-down rules (pm) on the rebuilt node, then F of what they
returned. With no ctx, F depends only on n (UOps are hash-consed), the two matchers, enter_calls and tinygrad's global
ContextVars, so a result computed once holds for every later graph_rewrite with the same matchers: `.simplify()`,
`substitute` and the 25 codegen passes rewrite the same index expressions again and again. We memoize F in each
UOp's __dict__ under a token for (pm, bpm, enter_calls, ContextVar values); the entry dies with the UOp.

A call adds to the memo only if nothing in it reads state outside the graph: no ctx, no BUFFER with a device Buffer
(whose realized state can change between calls; a Variable is an ALU BUFFER with none), and no CALL/FUNCTION body
pinned to itself (stock pins it for the rest of the call, an order-dependent effect: from that pin on the call neither
reads nor writes the memo). Calls with a ctx run the same loop without the memo, calling rules in exactly stock's
order, so rules with side effects on ctx see the same calls; unless no rule of either matcher takes ctx (tinygrad hands
ctx only to a rule function with a `ctx` parameter), as in codegen's `devectorize2` pass, which gets the renderer: F is
then the same with or without it, and memoized under the same token.

`unified_rewrite` is the loop in Python; `native_unified_rewrite(loop)` runs the same algorithm in C (loop.c), and
`native_walk_rewrite(loop)` stock's walk_rewrite.
"""
from __future__ import annotations

import inspect
import operator
import weakref
from typing import Callable

from tinygrad.dtype import AddrSpace
from tinygrad.helpers import ContextVar
from tinygrad.uop.ops import REWRITE_STACK_LIMIT, BottomUpGate, Ops, PatternMatcher, RewriteContext, UOp

from tinybounty.engine.dispatch import dispatcher, matcher_arg
from tinybounty.engine.hot import rebuild_dtype

_MISS = object()
_OPAQUE_BODIES = UOp._OPAQUE_CALL_BODIES
_value = operator.attrgetter("value")
_tokens: dict[tuple, object] = {}
MAX_TOKENS = 1024


def _settings() -> tuple:
  """tinygrad's global settings now: every ContextVar's value (DEV's list of Targets as a tuple)."""
  return tuple(tuple(v) if type(v) is list else v for v in map(_value, ContextVar._cache.values()))


def memo_token(pm, bpm, enter_calls: bool, settings: tuple | None = None) -> object | None:
  """The __dict__ key under which F for these matchers and the current settings is memoized (None: a setting is unhashable)."""
  key = (pm, bpm, enter_calls, _settings() if settings is None else settings)
  try:
    if (tok := _tokens.get(key)) is None:
      if len(_tokens) >= MAX_TOKENS: _tokens.clear()  # matchers built per call would otherwise stay alive here
      tok = _tokens[key] = object()
  except TypeError:
    return None
  return tok


_ctx_free: weakref.WeakKeyDictionary[PatternMatcher, bool] = weakref.WeakKeyDictionary()


def ignores_ctx(pm: PatternMatcher | None) -> bool:
  """Whether no rule of `pm` is handed the rewrite's ctx: tinygrad passes it only to rule functions with a `ctx` parameter."""
  if pm is None: return True
  if (free := _ctx_free.get(pm)) is None:
    free = _ctx_free[pm] = not any("ctx" in inspect.signature(fxn).parameters for _, fxn in pm.patterns)
  return free


def _memoizable(rc: RewriteContext) -> bool:
  return rc.ctx is None or (ignores_ctx(rc.pm) and ignores_ctx(rc.bpm))


def clear_memo() -> None:
  """Forget every memoized rewrite: entries already on live UOps become unreachable (new tokens are issued)."""
  _tokens.clear()


def unified_rewrite(self: RewriteContext, root: UOp) -> UOp:
  """Drop-in for RewriteContext.unified_rewrite: same result, same rule calls for ctx rewrites, memoized F otherwise."""
  tok = memo_token(self.pm, self.bpm, self.enter_calls) if _memoizable(self) else None
  replace, waitlist = self.replace, {}
  pm_rewrite = dispatcher(self.pm) if self.pm is not None else None
  bpm, bpm_cache, bpm_rewrite = self.bpm, self.bpm_cache, dispatcher(self.bpm) if self.bpm is not None else None
  ctx, enter_calls, limit = self.ctx, self.enter_calls, REWRITE_STACK_LIMIT.value
  pure = tok is not None
  stack: list[tuple[UOp, int, UOp]] = [(root, 0, root)]
  on_stack = {root}
  push, pop = stack.append, stack.pop
  while stack:
    if len(stack) > limit: raise RuntimeError("infinite loop in graph_rewrite (stack too big)")
    n, stage, new_n = pop()
    if n in replace: continue
    if stage == 0:
      if tok is not None and (hit := n.__dict__.get(tok, _MISS)) is not _MISS:
        replace[n] = n if hit is None else hit
        if n in waitlist: stack.extend(waitlist.pop(n))
        continue
      if bpm is not None:
        test_n: UOp | None = n
        seen = set()
        try:
          while test_n is not None:
            if test_n in seen: raise RuntimeError("infinite loop in fixed_point_rewrite")
            seen.add(test_n)
            if (nxt := bpm_cache.get(test_n, _MISS)) is _MISS: nxt = bpm_cache[test_n] = bpm_rewrite(test_n, ctx)
            new_n, test_n = test_n, nxt
        except BottomUpGate:
          replace[n] = test_n
          if n in waitlist: stack.extend(waitlist.pop(n))
          continue
      push((n, 1, new_n))
      op = new_n.op
      if op is Ops.BUFFER and getattr(new_n.arg, "addrspace", None) is not AddrSpace.ALU: pure = False  # a Variable's is ALU
      if not enter_calls and (op is Ops.FUNCTION or (op is Ops.CALL and new_n.src[0].op in _OPAQUE_BODIES)):
        replace[new_n.src[0]] = new_n.src[0]
        tok, pure = None, False
      mark = len(stack)
      for x in reversed(new_n.src):
        if x in on_stack: continue
        push((x, 0, x))
        on_stack.add(x)
      if len(stack) != mark: continue
      pop()  # no source pushed: (n, 1, new_n) is next, as in stock's next iteration; run it now
      stage = 1
    if stage == 1:
      tmp = []
      for x in new_n.src:
        if (rx := replace.get(x, _MISS)) is _MISS:
          waitlist.setdefault(x, []).append((n, 1, new_n))
          break
        tmp.append(rx)
      else:
        if (new_src := tuple(tmp)) == new_n.src:
          if pm_rewrite is None or (new_src_n := pm_rewrite(new_n, ctx)) is None:
            replace[n] = new_n
            if n in waitlist: stack.extend(waitlist.pop(n))
            continue
        else:
          new_src_n = UOp(new_n.op, rebuild_dtype(new_n, new_src), new_src, new_n.arg, new_n.tag)
        push((n, 2, new_src_n))
        push((new_src_n, 0, new_src_n))
    elif stage == 2:
      if (replaced_new_n := replace.get(new_n, _MISS)) is _MISS:
        waitlist.setdefault(new_n, []).append((n, 2, new_n))
      else:
        replace[n] = replaced_new_n
        if n in waitlist: stack.extend(waitlist.pop(n))
  if pure:
    for k, v in replace.items(): k.__dict__[tok] = None if v is k else v
  return replace[root]


def native_unified_rewrite(loop) -> Callable[[RewriteContext, UOp], UOp]:
  """unified_rewrite with the loop, dispatch and memo in C (loop: the module native.bind() returns)."""
  rewrite, settings, cvars = loop.rewrite, loop.settings, ContextVar._cache

  def unified_rewrite_native(self: RewriteContext, root: UOp) -> UOp:
    tok = memo_token(self.pm, self.bpm, self.enter_calls, settings(cvars)) if _memoizable(self) else None
    return rewrite(root, self.replace, self.bpm_cache, matcher_arg(self.pm), matcher_arg(self.bpm), self.ctx, self.enter_calls,
                   REWRITE_STACK_LIMIT.value, tok)
  return unified_rewrite_native


def native_simplify(loop) -> Callable[..., UOp]:
  """UOp.simplify answered from the memo when the rewrite it runs (symbolic, no ctx, TRACK_MATCH_STATS=0) is already
  memoized for this node: stock's graph_rewrite would return that entry, after entering a Context, a RewriteContext and
  our loop. Misses, tracked calls and tracking settings run stock's simplify."""
  from tinygrad.uop.ops import TRACK_MATCH_STATS
  from tinygrad.uop.symbolic import symbolic
  settings, cvars, stock = loop.settings, ContextVar._cache, UOp.__dict__["simplify"]

  def simplify(self: UOp, tracked: bool = False) -> UOp:
    op = self.op
    if op is Ops.CONST: return self
    if op is not Ops.SINK and not tracked and TRACK_MATCH_STATS.value == 0:
      # with TRACK_MATCH_STATS already 0, stock's Context(TRACK_MATCH_STATS=0) leaves every setting as it is now
      tok = memo_token(symbolic, None, False, settings(cvars))
      if tok is not None and (hit := self.__dict__.get(tok, _MISS)) is not _MISS: return self if hit is None else hit
    return stock(self, tracked)
  return simplify


def native_walk_rewrite(loop) -> Callable[[RewriteContext, UOp], UOp]:
  """RewriteContext.walk_rewrite (graph_rewrite(walk=True)) with its loop in C: stock's single pass, no memo."""
  walk = loop.walk

  def walk_rewrite_native(self: RewriteContext, root: UOp) -> UOp:
    return walk(root, self.replace, self.bpm_cache, matcher_arg(self.pm), matcher_arg(self.bpm), self.ctx, self.enter_calls)
  return walk_rewrite_native
