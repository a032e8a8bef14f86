"""The C loop (tinybounty/engine/loop.c): its build, and what it does that the Python loop cannot show (errors, construction)."""
import os
import subprocess
import sys

import pytest
from tinygrad.dtype import dtypes
from tinygrad.helpers import Context
from tinygrad.uop.ops import Ops, PatternMatcher, UOp, UPat, graph_rewrite

import tinybounty.engine as engine
from tinybounty.engine import native

x, y = UOp.variable("x", 0, 10), UOp.variable("y", 0, 10)


def test_build_is_cached_and_named_by_the_source(tmp_path, monkeypatch):
  monkeypatch.setenv("TINYBOUNTY_NATIVE_CACHE", str(tmp_path))
  path = native.module_path()
  assert path.parent == tmp_path and not path.exists()
  native._build(path)
  assert list(tmp_path.iterdir()) == [path]  # the temporary file was renamed, nothing else is left


def test_failed_build_names_the_problem_and_leaves_nothing(tmp_path, monkeypatch):
  monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
  with pytest.raises(native.NativeUnavailable, match="compiling loop.c failed"): native._build(tmp_path / "m.so")
  monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
  with pytest.raises(native.NativeUnavailable, match="no-such-cc is not an executable"): native._build(tmp_path / "m.so")
  assert list(tmp_path.iterdir()) == []


def test_without_the_c_loop_install_warns_and_says_python_runs():
  script = "import warnings, tinybounty.engine as e\nwith warnings.catch_warnings(record=True) as w:\n" \
           "  warnings.simplefilter('always'); e.install()\nprint(e.engine_kind(), '|', e.native_error(), '|', len(w), w[0].message)"
  env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TINYBOUNTY_NATIVE": "0"}
  out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True).stdout
  kind, error, warning = out.split(" | ")
  assert kind == "python" and "TINYBOUNTY_NATIVE=0" in error and warning.startswith("1 tinybounty.engine: the C rewrite loop is unavailable")


def _raise_on_mul(a: UOp):
  if a.op is Ops.MUL: raise ValueError(f"rule failed on {a.op}")
  return None


@pytest.mark.parametrize("bottom_up", [False, True])
def test_rule_exceptions_propagate_and_memoize_nothing(ours, bottom_up):
  pm, g = PatternMatcher([(UPat((Ops.ADD, Ops.MUL), name="a"), _raise_on_mul)]), (x + 1) * y
  with ours():
    with pytest.raises(ValueError, match="rule failed on Ops.MUL"): graph_rewrite(g, pm, bottom_up=bottom_up)
    assert graph_rewrite(x + 1, pm, bottom_up=bottom_up) is x + 1  # the loop is left in a usable state
    with pytest.raises(ValueError, match="rule failed"): graph_rewrite(g, pm, bottom_up=bottom_up)  # not memoized


def test_a_rule_returning_a_non_uop_is_a_clear_error():
  pm = PatternMatcher([(UPat(Ops.ADD), lambda: 3)])
  with engine.enabled(True):
    assert engine.engine_kind() == "native", engine.native_error()
    with pytest.raises(TypeError, match="expected a UOp in the graph, got 3"): graph_rewrite(x + 1, pm)


def _uops() -> list:
  """UOp constructor calls of every form: positional, keywords, defaults, derived dtype, metadata, spec checks."""
  c = UOp.const(3, dtypes.int)
  return [UOp(Ops.ADD, dtypes.int, (c, c)), UOp(Ops.ADD, src=(c, c)), UOp(op=Ops.MUL, src=(c, c), dtype=dtypes.int, tag=1),
          UOp(Ops.SINK), UOp(Ops.CMPLT, src=(c, c)), c.cast(dtypes.float), UOp(Ops.ADD, dtypes.int, (c, c), None, None, None),
          UOp(Ops.NOOP, src=(c,)), x * y, (x + 2).simplify(), UOp(Ops.CONST, arg=3), UOp(Ops.CONST, arg=2.5), UOp(Ops.CONST, arg=True),
          UOp(Ops.WHERE, src=(c < c, c, c)), UOp(Ops.WHERE, src=(c < c, c, c.cast(dtypes.float))), UOp(Ops.INDEX, src=(c, c)),
          UOp(Ops.BITCAST, src=(c,), arg=dtypes.uint32)]


def test_uop_construction_is_stocks(both):
  stock, ours = both(_uops)
  assert all(a is b for a, b in zip(stock, ours))
  with Context(SPEC=2):
    stock, ours = both(_uops)
    assert all(a is b for a, b in zip(stock, ours))
  for on in (False, True):
    with engine.enabled(on), pytest.raises(TypeError): UOp(Ops.ADD, nonsense=1)
    with engine.enabled(on), pytest.raises(RuntimeError, match="where cond must be bool"): UOp(Ops.WHERE, src=(c := UOp.const(3, dtypes.int), c, c))


def test_recursive_properties_are_stocks(both):
  build = lambda: [(u._shape, u.key, u.vmin, u.vmax) for u in ((x + y) * 2 + (x < y).where(x, y), UOp.const(1.0, dtypes.float).reshape((1,)))]  # noqa: E731
  stock, ours = both(build)
  assert stock == ours


@pytest.mark.parametrize("call_op", [Ops.CALL, Ops.FUNCTION])
@pytest.mark.parametrize("enter_calls", [False, True])
def test_call_bodies_are_left_alone_like_stock(both, call_op, enter_calls):
  pm = PatternMatcher([(UPat(Ops.ADD, src=(UPat.var("a"), UPat(Ops.CONST, arg=0))), lambda a: a)])
  def build():
    call = UOp(call_op, dtypes.void, (UOp.sink(x + 0), y + 0))
    g = UOp.sink(call, x + 0)
    return graph_rewrite(g, pm, enter_calls=enter_calls), list(g.toposort(enter_calls=enter_calls)), list(g.toposort())
  stock, ours = both(build)
  assert stock[0] is ours[0] and all(a is b for a, b in zip(stock[1], ours[1], strict=True)) and stock[2] == ours[2]
  assert len(stock[1]) < len(stock[2]) or enter_calls


def _fresh_graph(name: str) -> tuple[UOp, UOp]:
  v = UOp.variable(name, 0, 10)
  return v, UOp.sink((v + 0) * 1 + (v * 2).maximum(v), (v + 0).simplify() + 3)


@pytest.mark.parametrize("mode", ["top_down", "bottom_up", "walk", "raises"])
def test_no_references_leak(ours, kind, mode):
  import gc
  import weakref
  add0 = (UPat(Ops.ADD, src=(UPat.var("a"), UPat(Ops.CONST, arg=0))), lambda a: a)
  pm = PatternMatcher([add0, (UPat(Ops.MAX, name="m"), lambda m: _raise_on_mul(m.src[0]))] if mode == "raises" else [add0])
  with ours():
    v, g = _fresh_graph(f"leak_{mode}_{kind}")
    try: out = graph_rewrite(g, pm, bottom_up=mode == "bottom_up", walk=mode == "walk")
    except ValueError: out = g
    # every node built from the fresh variable must die with the graph (shared leaves such as STACK() live on)
    refs = [weakref.ref(u) for u in {**g.toposort(), **out.toposort()} if v in u.toposort()]
    del v, g, out
    gc.collect()
  assert refs and all(r() is None for r in refs), [r() for r in refs if r() is not None][:3]


def test_tracking_matchers_count_every_try_like_stock(both):
  from tinygrad.uop.ops import TrackedPatternMatcher, match_stats
  pm = TrackedPatternMatcher([(UPat(Ops.ADD, src=(UPat.var("a"), UPat(Ops.CONST, arg=0))), lambda a: a)])
  def run():
    v = UOp.variable("tracked", 0, 10)
    match_stats.pop(pm.patterns[0][0], None)
    out = graph_rewrite(UOp.sink((v + 0) * 2, v + 0), pm)
    return out, match_stats[pm.patterns[0][0]][:2]  # (matches, tries)
  stock, ours = both(run)
  assert stock == ours and stock[1][0] == 1
