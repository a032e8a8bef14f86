"""The C fast paths the rules call (engine/rules.c): UOp._shape's rule, UOp.shape, UOp.index, UOp.const and UOp._binop
give stock's result (the same hash-consed UOp, an equal shape) or stock's error, on every node of a few models' kernels and
on hypothesis-generated expressions."""
import itertools
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tinygrad import Tensor, dtypes
from tinygrad.codegen import full_rewrite_to_sink
from tinygrad.device import Device
from tinygrad.dtype import Invalid
from tinygrad.helpers import Context
from tinygrad.uop.ops import Ops, UOp

import tinybounty.engine as engine
from tinybounty.engine import native
from tinybounty.engine.dispatch import GUARDS

STOCK = engine.STOCK_OBJECTS


def outcome(fn: Callable[[], Any]) -> Any:
  """fn's result, or the type of what it raised (stock and ours must raise the same kind of error)."""
  try: return fn()
  except Exception as e: return type(e)


def same(a: Any, b: Any) -> bool:
  """UOps identical (hash-consed), tuples element-wise, anything else equal."""
  if isinstance(a, UOp) or isinstance(b, UOp): return a is b
  if isinstance(a, tuple) and isinstance(b, tuple): return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
  return a == b


@pytest.fixture(scope="module")
def nodes() -> list[UOp]:
  """Every node of a few small kernels before and after lowering: movement ops, broadcasts, INDEX, STACK, casts, WHERE..."""
  a, b = Tensor.empty(4, 8), Tensor.empty(8, 3, dtype=dtypes.half)
  img, w = Tensor.empty(2, 3, 6, 6), Tensor.empty(4, 3, 3, 3)
  outs = [((a @ b.float()).relu().exp2().sum(1) + a.max(1).sqrt()).reshape(2, 2).permute(1, 0).pad(((0, 1), (1, 0))),
          img.conv2d(w, padding=1).mean((2, 3)), (Tensor.empty(5, dtype=dtypes.int32) * 3 < 7).where(a[0, :5], 0.5).cumsum()]
  found: dict[UOp, None] = {}
  with engine.enabled(False):
    for call in Tensor.schedule_linear(*outs).src:
      if (ast := call.src[0]).op is not Ops.SINK: continue
      found.update(ast.toposort())
      found.update(full_rewrite_to_sink(ast, Device[Device.DEFAULT].renderer).toposort())
  return list(found)


@pytest.fixture
def c_module():
  """The C module, with the native engine installed for the test."""
  with engine.enabled(True):
    if engine.engine_kind() != "native": pytest.skip(f"C loop unavailable: {engine.native_error()}")
    yield native.bind()[0]


def test_shape_rule_and_property_match_stock(nodes, c_module):
  assert len({u.op for u in nodes}) > 20
  stock_rule, stock_shape = STOCK["shape"], STOCK["shape_property"].fget
  for u in nodes:
    outcome(lambda: u._shape)  # the rule reads its sources' cached shapes, as the recursive property's walk leaves them
    assert same(outcome(lambda: c_module.shape_rule(u)), outcome(lambda: stock_rule(u))), u.op
    assert same(outcome(lambda: c_module.shape_get(u)), outcome(lambda: stock_shape(u))), u.op


def _shape_cases() -> list[Callable[[], UOp]]:
  v = UOp.variable("n", 1, 8)
  one = UOp.const(1.0, dtypes.float)
  full = lambda *shape: one.reshape((1,) * len(shape)).expand(shape)  # noqa: E731
  return [lambda: full(1, 3) + full(2, 1), lambda: full(3) * full(2, 1) + full(1, 1, 1),  # broadcasting ints
          lambda: full(1, 3) + full(2, 2),  # sizes that do not broadcast: stock's IndexError
          lambda: one.reshape((1,)).expand((v,)) + full(1, 1),  # a symbolic size: stock's path
          lambda: UOp(Ops.STACK, dtypes.float, ()), lambda: UOp.stack(one, one), lambda: UOp.stack(full(2, 2), full(2, 2)),
          lambda: UOp(Ops.INDEX, dtypes.float, (full(2, 3, 4), UOp.const(1), UOp.const(2))),
          lambda: UOp(Ops.INDEX, dtypes.float, (full(2, 3), UOp.const(1), UOp.const(2), UOp.const(0), UOp.const(1)))]


@pytest.mark.parametrize("case", range(len(_shape_cases())))
@pytest.mark.parametrize("disallow", [0, 1])
def test_shape_edge_cases_match_stock(c_module, case, disallow):
  u = _shape_cases()[case]()
  for s in u.src: outcome(lambda: s._shape)
  with Context(DISALLOW_BROADCAST=disallow):  # the rule itself, on a node whose sources' shapes are cached
    assert same(outcome(lambda: c_module.shape_rule(u)), outcome(lambda: STOCK["shape"](u)))


_CONSTS = [0, 1, -3, 2**70, True, False, 2.5, -0.0, float("nan"), Invalid, (1, 2), None]
_DTYPES = [None, dtypes.weakint, dtypes.int32, dtypes.uint8, dtypes.int64, dtypes.bool, dtypes.float32, dtypes.half, dtypes.weakfloat]


def test_const_matches_stock(c_module):
  with engine.enabled(False): stock = [outcome(lambda: UOp.const(b, d)) for b, d in itertools.product(_CONSTS, _DTYPES)]
  ours = [outcome(lambda: UOp.const(b, d)) for b, d in itertools.product(_CONSTS, _DTYPES)]
  assert all(same(a, b) for a, b in zip(ours, stock))
  assert UOp.__dict__["const"] is not STOCK["const"]  # ours ran


def _index_calls(nodes: list[UOp]) -> list[Callable[[], Any]]:
  stack = UOp.stack(*[UOp.const(i, dtypes.int32) for i in range(3)])
  picks = [stack, *nodes[::7]]
  args = [(), (0,), (1, None), (-1,), (5,), (True,), (UOp.const(2),), (UOp.variable("i", 0, 2),), (0, 1), ("x",), (2.0,)]
  calls = [lambda u=u, a=a: u.index(*a) for u, a in itertools.product(picks, args)]
  return calls + [lambda u=u: u.index(UOp.const(0), arg="tag") for u in picks] + [lambda u=u: u.index(0, src=()) for u in picks[:2]]


def test_index_matches_stock(nodes, c_module):
  with engine.enabled(False): stock = [outcome(c) for c in _index_calls(nodes)]
  ours = [outcome(c) for c in _index_calls(nodes)]
  assert all(same(a, b) for a, b in zip(ours, stock))


_OPS: list[Callable[[Any, Any], Any]] = [lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a < b, lambda a, b: a != b, lambda a, b: a - b,
                                         lambda a, b: a // b, lambda a, b: a % b, lambda a, b: a.maximum(b), lambda a, b: a & b,
                                         lambda a, b: a | b, lambda a, b: a ^ b, lambda a, b: a << b, lambda a, b: b + a, lambda a, b: b * a]


def test_binary_operators_match_stock_on_kernel_nodes(nodes, c_module):
  picks = [u for u in nodes if u.dtype is not dtypes.void][::5]
  others = [*picks[::4], 3, True, 0, 2.5]
  calls = [lambda f=f, a=a, b=b: f(a, b) for f, a, b in itertools.product(_OPS, picks, others)]
  with engine.enabled(False): stock = [outcome(c) for c in calls]
  ours = [outcome(c) for c in calls]
  assert sum(isinstance(s, UOp) for s in stock) > 500
  assert all(same(a, b) for a, b in zip(ours, stock))


_LEAVES = [lambda: UOp.variable("a", 0, 9), lambda: UOp.variable("b", -4, 4, dtypes.int32), lambda: UOp.const(3, dtypes.int32),
           lambda: UOp.const(1.5, dtypes.float32), lambda: UOp.const(True), lambda: UOp.const(Invalid, dtypes.weakint),
           lambda: UOp.range(4, 0), lambda: UOp.const(2, dtypes.float32).reshape((1,)).expand((3,)), lambda: UOp.const(5).cast(dtypes.uint8)]
recipes = st.recursive(st.sampled_from([f"leaf{i}" for i in range(len(_LEAVES))]) | st.integers(-3, 3) | st.booleans(),
                       lambda kids: st.tuples(st.sampled_from(range(len(_OPS))), kids, kids), max_leaves=10)


def _build(r: Any) -> Any:
  if isinstance(r, tuple): return _OPS[r[0]](_build(r[1]), _build(r[2]))
  return _LEAVES[int(r[4:])]() if isinstance(r, str) else r  # a leaf UOp, or a Python int / bool operand


@settings(max_examples=150, deadline=None)
@given(r=recipes)
def test_generated_expressions_match_stock(r):
  with engine.enabled(False): stock = outcome(lambda: _build(r))
  with engine.enabled(True): ours = outcome(lambda: _build(r))
  assert same(ours, stock)


_DIVMOD = [lambda: UOp.variable("a", 0, 99), lambda: UOp.variable("b", 0, 7), lambda: UOp.range(16, 1)]
divmod_recipes = st.recursive(st.sampled_from([f"leaf{i}" for i in range(len(_DIVMOD))]) | st.integers(1, 8),
                              lambda kids: st.tuples(st.sampled_from(["+", "*", "//", "%"]), kids, kids), max_leaves=8)


def _divmod_build(r: Any) -> Any:
  if isinstance(r, str): return _DIVMOD[int(r[4:])]()
  if not isinstance(r, tuple): return UOp.const(r)
  a, b = _divmod_build(r[1]), _divmod_build(r[2])
  if r[0] in ("//", "%") and b.op is not Ops.CONST: r = ("+", *r[1:])
  return {"+": a.__add__, "*": a.__mul__, "//": a.__floordiv__, "%": a.__mod__}[r[0]](b)


@pytest.mark.parametrize("fxn", list(GUARDS), ids=lambda f: f.__name__)
def test_rule_guards_only_skip_rules_that_return_none(nodes, c_module, fxn):
  a, b = UOp.variable("a", 0, 99), UOp.variable("b", 0, 7)
  hand = [(a % 4) * 3 + (a // 4) * 12, (a % 4) + (a // 4) * 4 + b, ((a + 1) % 8) * 2 + ((a + 1) // 8) % 3 * 16, a % 4 + b]
  cases = [u for u in [*nodes, *hand, *(_divmod_build(r) for r in _examples(divmod_recipes, 300))] if u.op is Ops.ADD]
  skipped = [u for u in cases if c_module.guard(GUARDS[fxn], u)]
  assert len(skipped) > 50 and any(fxn(u) is not None for u in cases)  # the guard is tried on both kinds of node
  assert all(fxn(u) is None for u in skipped)


def _examples(strategy: Any, n: int) -> list[Any]:
  """n draws of a hypothesis strategy, reproducible (a fixed seed)."""
  out: list[Any] = []

  @settings(max_examples=n, deadline=None, database=None, derandomize=True)
  @given(strategy)
  def draw(x: Any) -> None: out.append(x)
  draw()
  return out


def test_simplify_from_the_memo_matches_stock(nodes, c_module):
  picks = [u for u in nodes if u.dtype in (dtypes.weakint, dtypes.int32, dtypes.bool)]
  with engine.enabled(False): stock = [outcome(u.simplify) for u in picks]
  first, again = [outcome(u.simplify) for u in picks], [outcome(u.simplify) for u in picks]  # the second round reads the memo
  assert len(picks) > 100 and all(same(a, b) for a, b in zip(first, stock)) and all(same(a, b) for a, b in zip(again, stock))
  assert UOp.__dict__["simplify"] is not STOCK["simplify"]
