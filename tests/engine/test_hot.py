"""The fast paths under the rules (tinybounty.engine.hot): the same UOps, dtypes, shapes, bases and toposorts as stock's."""
import pytest
from tinygrad import Tensor, dtypes
from tinygrad.codegen import full_rewrite_to_sink
from tinygrad.device import Device
from tinygrad.uop.ops import Ops, UOp, dtype_from_uop

import tinybounty.engine as engine
from tinybounty.engine.hot import ABSENT, PATCHES, STOCK, base, dtype_of, shape_of


@pytest.mark.parametrize("native_loop", [True, False], ids=["native", "python"])
def test_uninstall_restores_every_patched_attribute(native_loop):
  engine.install(native_loop)
  patched = engine.patches("native" if native_loop else "python")
  assert PATCHES.keys() <= patched.keys() and all(owner.__dict__[attr] is ours for owner, attr, ours in patched.values())
  engine.install(not native_loop)  # switching engines leaves nothing of the other behind
  engine.uninstall()
  assert all(owner.__dict__.get(attr, ABSENT) is engine.STOCK_OBJECTS[name] for name, (owner, attr, _) in engine.patches("native").items())
  assert "_binop" not in UOp.__dict__  # an inherited method we shadow while installed is inherited again
  assert all(owner.__dict__[attr] is STOCK[name] for name, (owner, attr, _) in PATCHES.items())


@pytest.fixture(scope="module")
def lowered() -> list[UOp]:
  """Every node of a small model's kernels, before and after lowering (ALU, INDEX, LOAD, STORE, casts, movement ops...)."""
  a, b = Tensor.empty(4, 8), Tensor.empty(8, 3, dtype=dtypes.half)
  out = ((a @ b.float()).relu().exp2().sum(1) + a.max(1).sqrt()).reshape(2, 2).permute(1, 0).pad(((0, 1), (1, 0)))
  nodes: dict[UOp, None] = {}
  with engine.enabled(False):
    for call in out.schedule_linear().src:
      if (ast := call.src[0]).op is not Ops.SINK: continue
      nodes.update(ast.toposort())
      nodes.update(full_rewrite_to_sink(ast, Device[Device.DEFAULT].renderer).toposort())
  return list(nodes)


def test_dtype_of_matches_dtype_from_uop(lowered):
  assert len({u.op for u in lowered}) > 15
  for u in lowered: assert dtype_of(u.op, u.src, u.arg) is dtype_from_uop(u.op, u.src, u.arg), u.op
  for op in Ops:  # ops stock derives from an empty source list fail the same way, or give the same dtype
    try: want = dtype_from_uop(op, (), None)
    except Exception as e: want = type(e)
    try: got = dtype_of(op, (), None)
    except Exception as e: got = type(e)
    assert got is want, op


def test_shape_and_base_match_stock(lowered):
  stock_shape = STOCK["shape"]
  for u in lowered:
    try: want = stock_shape(u)
    except Exception as e: want = type(e)
    try: got = shape_of(u)
    except Exception as e: got = type(e)
    assert got == want, u.op
    assert base(u) is STOCK["base"].fget(u)


def test_toposort_and_uop_construction_match_stock(both, lowered):
  sink = UOp.sink(*lowered[-5:])
  gate = lambda u: u.op is not Ops.INDEX  # noqa: E731
  stock, ours = both(lambda: [list(sink.toposort()), list(sink.toposort(gate)), list(sink.toposort(enter_calls=False))])
  assert all(len(a) == len(b) and all(x is y for x, y in zip(a, b)) for a, b in zip(stock, ours))
  stock, ours = both(lambda: [UOp(u.op, None if u.op is not Ops.CONST else u.dtype, u.src, u.arg, u.tag) for u in lowered])
  assert all(a is b for a, b in zip(stock, ours))
