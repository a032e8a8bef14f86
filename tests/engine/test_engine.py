"""The engine on hand-built UOp graphs: same results as stock tinygrad, same rule calls where a ctx can see them."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tinygrad.dtype import dtypes
from tinygrad.helpers import Context, ContextVar
from tinygrad.uop.ops import BottomUpGate, Ops, PatternMatcher, RewriteContext, UOp, UPat, graph_rewrite
from tinygrad.uop.symbolic import sym, symbolic

import tinybounty.engine as engine

STOCK = RewriteContext.unified_rewrite
x, y, z = (UOp.variable(n, 0, 10) for n in "xyz")


def C(v: int) -> UOp: return UOp.const(v, dtypes.weakint)


def test_install_uninstall_restores_stock():
  engine.uninstall()
  assert RewriteContext.unified_rewrite is STOCK and not engine.installed()
  engine.install(); engine.install()
  assert RewriteContext.unified_rewrite is not STOCK and engine.installed()
  engine.uninstall()
  assert RewriteContext.unified_rewrite is STOCK and not engine.installed()


def test_enabled_restores_previous_state():
  engine.install()
  with engine.enabled(False): assert not engine.installed()
  assert engine.installed()
  engine.uninstall()


# commutative sources (a list tries every order), allow_any_len, a custom early-reject set, and rules returning None
pm_shapes = PatternMatcher([
  (UPat(Ops.ADD, src=[UPat(Ops.CONST, arg=0), UPat.var("a")]), lambda a: a),
  (UPat(Ops.MUL, src=[UPat.cvar("c"), UPat.var("a")]), lambda c, a: a if c.arg == 1 else None),
  (UPat(Ops.SINK, src=(UPat.var("first"),), allow_any_len=True, name="s"), lambda s, first: s.replace(src=s.src[1:]) if len(s.src) > 2 else None),
  (UPat(Ops.MAX, name="m", custom_early_reject={Ops.CONST}), lambda m: m.src[0] if m.src[0] is m.src[1] else None),
  (UPat(Ops.MAX, name="m"), lambda m: None),
])


@pytest.mark.parametrize("build", [
  lambda: (C(0) + x) * 1 + (1 * (y + 0)),
  lambda: UOp.sink(x + 0, y * 1, z, x.maximum(x)),
  lambda: UOp.sink(x.maximum(x), x.maximum(C(3)), (x.maximum(x) + 0) * 1),
], ids=["commutative", "any_len_sink", "early_reject"])
@pytest.mark.parametrize("bottom_up", [False, True])
@pytest.mark.parametrize("walk", [False, True])
def test_hand_built_graphs_match_stock(both, build, bottom_up, walk):
  stock, ours = both(lambda: graph_rewrite(build(), pm_shapes, bottom_up=bottom_up, walk=walk))
  assert ours is stock
  assert stock is not build()  # the rules did something


def test_custom_early_reject_is_respected(both):
  # MAX(x, x) has no CONST source: the custom early-reject set {CONST} must keep the first rule from running
  g = x.maximum(x)
  stock, ours = both(lambda: graph_rewrite(g, pm_shapes))
  assert ours is stock is g


def _record(ctx: list, a: UOp):
  ctx.append(a)
  return None


pm_record = PatternMatcher([(UPat(tuple(Ops), name="a"), _record)])


def test_ctx_rules_called_in_stock_order(both):
  g = UOp.sink((x + y) * (x + y), (x * 2).maximum(y), z)
  def calls():
    seen: list = []
    graph_rewrite(g, pm_record, ctx=seen)
    graph_rewrite(g, pm_record, ctx=seen, bottom_up=True)
    graph_rewrite(g, pm_record, ctx=seen, walk=True)
    graph_rewrite(g, pm_record, ctx=seen, bottom_up=True, walk=True)
    return seen
  stock, ours = both(calls)
  assert ours == stock and len(stock) > 10


SETTING = ContextVar._cache.get("TB_TEST_SETTING") or ContextVar("TB_TEST_SETTING", 0)
calls: list[UOp] = []


def _z_from_setting(a: UOp):
  calls.append(a)
  return UOp.const(SETTING.value, a.dtype) if a.arg.name == "z" else None


def _count_buffer(b: UOp):
  calls.append(b)
  return None


def test_memo_skips_rules_without_ctx_and_follows_settings(ours):
  pm, g = PatternMatcher([(UPat(Ops.BUFFER, name="a"), _z_from_setting)]), (x + z) * y
  calls.clear()
  with ours():
    first = graph_rewrite(g, pm)
    n = len(calls)
    assert graph_rewrite(g, pm) is first and len(calls) == n  # memoized: no rule ran the second time
    with Context(TB_TEST_SETTING=7): seven = graph_rewrite(g, pm)
  with engine.enabled(False):
    with Context(TB_TEST_SETTING=7): assert graph_rewrite(g, pm) is seven
    assert graph_rewrite(g, pm) is first
  assert seven is not first and n > 0


def _count_add(a: UOp):
  calls.append(a)
  return None


def _count_add_with_ctx(ctx: list, a: UOp):
  calls.append(a)
  return None


@pytest.mark.parametrize("takes_ctx", [False, True])
def test_a_ctx_rewrite_is_memoized_when_no_rule_takes_the_ctx(ours, takes_ctx):
  """tinygrad hands ctx only to rule functions with a `ctx` parameter: a matcher with none (codegen's devectorize2, given
  the renderer) gives the same result with any ctx, so its rewrites are memoized; one with such a rule is never."""
  from tinybounty.engine.rewrite import ignores_ctx
  pm, g = PatternMatcher([(UPat(Ops.ADD, name="a"), _count_add_with_ctx if takes_ctx else _count_add)]), (x + y) * (y + z)
  assert ignores_ctx(pm) is not takes_ctx
  calls.clear()
  with ours():
    first = graph_rewrite(g, pm, ctx=[])
    n = len(calls)
    assert graph_rewrite(g, pm, ctx=["another"]) is first
  assert n == 2 and len(calls) == (4 if takes_ctx else 2)
  with engine.enabled(False): assert graph_rewrite(g, pm, ctx=[]) is first


def test_device_buffer_graphs_are_not_memoized(ours):
  pm, g = PatternMatcher([(UPat(Ops.BUFFER, name="b"), _count_buffer)]), UOp.new_buffer("CPU", 16, dtypes.float32).reshape((4, 4))
  calls.clear()
  with ours():
    graph_rewrite(g, pm); graph_rewrite(g, pm)
  assert len(calls) == 2


def _gate(a: UOp):
  if a.op is Ops.MUL: raise BottomUpGate()
  return None


def test_bottom_up_gate_matches_stock(both):
  pm = PatternMatcher([(UPat((Ops.MUL, Ops.ADD), name="a"), _gate), (UPat(Ops.CONST, arg=0), lambda: C(5))])
  g = UOp.sink(x * 0, x + 0)
  stock, ours = both(lambda: graph_rewrite(g, pm, bottom_up=True))
  assert ours is stock


@pytest.mark.parametrize("bottom_up", [False, True])
def test_infinite_loop_raises_like_stock(ours, bottom_up):
  pm = PatternMatcher([(UPat(Ops.ADD, name="a"), lambda a: a.src[1] + a.src[0])])
  for on in (engine.enabled(False), ours()):
    with on, pytest.raises(RuntimeError, match="infinite loop"):
      with Context(REWRITE_STACK_LIMIT=1000): graph_rewrite(x + y, pm, bottom_up=bottom_up)


exprs = st.recursive(st.sampled_from([x, y, z]) | st.integers(-8, 8).map(lambda c: C(c)),
                     lambda kids: st.tuples(st.sampled_from(["+", "*", "//", "%", "max", "<"]), kids, kids).map(lambda t: _alu(*t)), max_leaves=12)


def _alu(op: str, a: UOp, b: UOp) -> UOp:
  if op in ("//", "%") and (b.op is not Ops.CONST or b.arg <= 0): op = "+"
  if op == "<": return (a < b).where(a, b)
  return {"+": a.__add__, "*": a.__mul__, "//": a.__floordiv__, "%": a.__mod__, "max": a.maximum}[op](b)


@pytest.mark.parametrize("native_loop", [True, False], ids=["native", "python"])
@settings(max_examples=60, deadline=None)
@given(e=exprs)
def test_symbolic_simplification_matches_stock(native_loop, e):
  with engine.enabled(False): stock = (graph_rewrite(e, sym), graph_rewrite(e, symbolic), e.simplify())
  with engine.enabled(True, native_loop): ours = (graph_rewrite(e, sym), graph_rewrite(e, symbolic), e.simplify())
  assert all(a is b for a, b in zip(stock, ours))


def test_scripts_run_with_the_engine(tmp_path):
  import os
  import subprocess
  import sys
  script = tmp_path / "s.py"
  script.write_text("import sys, tinybounty.engine as e\nprint(e.installed(), sys.argv[1:])\n")
  env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
  run = lambda *cmd, **kw: subprocess.run([sys.executable, *cmd], capture_output=True, text=True, env={**env, **kw}).stdout.strip()
  assert run("-m", "tinybounty.engine", str(script), "a") == "True ['a']"
  assert run(str(script)) == "False []"
  assert run(str(script), TINYBOUNTY_ENGINE="1") == "True []"
