"""Kernel metadata for tinygrad 0.14.0: every kernel knows which tensor ops (forward or backward) produced it.

0.14.0 records metadata on tensor-level UOps (TRACEMETA, `all_metadata`) but the scheduler's rewrites build new UOps
and never carry it over, so no kernel has any and DEBUG=2 shows bare kernel names. install():
- every graph_rewrite hands a rewritten UOp's metadata to its replacement (RewriteContext.replace remembers both ends),
  so it flows from the tensor graph through rangeify into the kernels, and on into the compiled PROGRAMs;
- each kernel SINK the scheduler makes gets the union of its UOps' metadata (`kernel_metadata(ast)` reads it);
- DEBUG=2 lines name the ops after the kernel name (`sum, relu bw, ...`);
- the schedule cache is emptied, so steps scheduled before install() are scheduled again, with metadata;
- the scheduler's DEBUG>=1 caller lookup no longer uses inspect.stack(), which raised "<module '__main__' from None>
  is a built-in module" whenever the compile worker pool was (re)spawning a worker at that moment (engine/worker.py
  hides __main__.__file__ while it spawns, from another thread);
- pm_schedule is rebuilt around tinygrad's own lower_sink_to_linear, so the two patches above reach it (see
  _lower_sink_to_linear);
- Tensor's TRACEMETA wrappers restore the current op when the op raises: stock's do not, so after any exception inside
  a Tensor method (a bad reshape, a failing realize) every later op of the process was labelled with that method.
uninstall() restores every patched name exactly.
"""
from __future__ import annotations

import sys
from types import SimpleNamespace

from tinygrad.helpers import Metadata
from tinygrad.uop.ops import Ops, PatternMatcher, UOp, UPat, all_metadata

# ops that are shared plumbing, not computation: they never carry or lend an op's name
_PLUMBING = {getattr(Ops, n) for n in ("CONST", "RANGE", "PARAM", "BUFFER", "SINK", "CALL", "NOOP", "UNIQUE", "LUNIQUE", "DEVICE") if hasattr(Ops, n)}

_saved: dict[tuple[object, str], object] = {}


def _inherit(old: UOp, new: UOp, limit: int = 64) -> None:
  """Give `new` (what a rewrite made of `old`) old's metadata, and the UOps the rewrite built fresh under it: multi_pm
  turns MAX(UNSHARD a, UNSHARD b) into UNSHARD(MAX(a, b)), where the MAX is the op. Descent stops at the rewrite's
  inputs (old and two levels of its sources) and at anything already tagged."""
  if old is new or (m := all_metadata.get(old)) is None: return
  inputs = {old, *old.src, *(s for o in old.src for s in o.src)}
  stack, seen = [new], 0
  while stack and seen < limit:
    u, seen = stack.pop(), seen + 1
    if u.op in _PLUMBING or (u is not new and u in inputs): continue
    have = all_metadata.get(u, ())
    if add := tuple(x for x in m if x not in have): all_metadata[u] = have + add
    if not have: stack.extend(u.src)


class _MetadataReplace(dict):
  """RewriteContext.replace that hands each rewritten UOp's metadata to its final replacement (and what was built under it)."""
  def __setitem__(self, old: UOp, new: UOp) -> None:
    _inherit(old, new)
    super().__setitem__(old, new)


def kernel_metadata(ast: UOp) -> tuple[Metadata, ...]:
  """The tensor ops a kernel (its SINK or compiled PROGRAM) was made from, in graph order; () if none are known."""
  return all_metadata.get(ast, ())


def _collect(sink: UOp, plumbing: bool = False) -> tuple[Metadata, ...]:
  """Metadata of a kernel's computing UOps. gradient() tags constants it creates with every backward op that uses them,
  so constants count only for a kernel that computes nothing (it stores a value that folded to a constant)."""
  found: dict[Metadata, None] = {}
  for u in sink.toposort():
    if u.op in _PLUMBING and not plumbing: continue
    for m in all_metadata.get(u, ()): found.setdefault(m, None)
  return tuple(found) if found or plumbing else _collect(sink, plumbing=True)


def _tag_kernels(tsink: UOp) -> UOp:
  for call in tsink.toposort():
    if call.op is Ops.CALL and call.src[0].op is Ops.SINK and (m := _collect(call.src[0])): all_metadata[call.src[0]] = m
  return tsink


def _caller_frames() -> list[SimpleNamespace]:
  """What schedule's caller lookup reads from inspect.stack() (filename, lineno), from the frames alone; this file's
  own wrappers (between tinygrad's frames) are left out so the user's line is still the one reported."""
  f, out = sys._getframe(1), []
  while f is not None:
    if f.f_code.co_filename != __file__: out.append(SimpleNamespace(filename=f.f_code.co_filename, lineno=f.f_lineno))
    f = f.f_back
  return out


def _lower_sink_to_linear(function: UOp) -> UOp | None:
  """pm_schedule's callback, calling tinygrad's own through its module: a compiled pattern snapshots its callback's
  globals, so the stock pm_schedule would keep calling the unpatched get_kernel_graph and inspect after install()."""
  import tinygrad.schedule as schedule
  return schedule.lower_sink_to_linear(function)


def _exception_safe(fn):
  """Tensor's TRACEMETA wrapper for `fn`, restoring the current op on the way out even when fn raises."""
  import functools

  import tinygrad.tensor as tensor
  from tinygrad.helpers import TRACEMETA, TracingKey, cpu_profile
  @functools.wraps(fn)
  def _wrapper(*args, **kwargs):
    if TRACEMETA < 1 or tensor._METADATA.get() is not None: return fn(*args, **kwargs)
    token = tensor._METADATA.set(Metadata(name=fn.__name__))
    try:
      with cpu_profile(TracingKey(fn.__name__), "USER"): return fn(*args, **kwargs)
    finally:
      tensor._METADATA.set(token)
  return _wrapper


def _patch(owner: object, name: str, value: object) -> None:
  _saved.setdefault((owner, name), getattr(owner, name))
  setattr(owner, name, value)


def installed() -> bool: return bool(_saved)


def install() -> None:
  """Attach tensor-op metadata to kernels and show it in DEBUG=2; fix the scheduler's inspect.stack() crash."""
  if installed(): return
  import tinygrad.engine.realize as realize
  import tinygrad.schedule as schedule
  import tinygrad.uop.ops as ops

  ctx_t = ops.RewriteContext
  orig_init, orig_pm, orig_bpm = ctx_t.__init__, ctx_t.pm_rewrite, ctx_t.cached_bpm_rewrite
  orig_graph, orig_name = schedule.get_kernel_graph, realize.get_call_name

  def init(self, *args, **kwargs):
    orig_init(self, *args, **kwargs)
    self.replace = _MetadataReplace()

  def pm_rewrite(self, x: UOp) -> UOp | None:
    if (ret := orig_pm(self, x)) is not None: _inherit(x, ret)
    return ret

  def cached_bpm_rewrite(self, x: UOp) -> UOp | None:
    if (ret := orig_bpm(self, x)) is not None: _inherit(x, ret)
    return ret

  def get_kernel_graph(sink: UOp) -> UOp: return _tag_kernels(orig_graph(sink))

  def get_call_name(call: UOp, *args, **kwargs) -> str:
    name = orig_name(call, *args, **kwargs)
    return f"{name} {', '.join(map(str, m))}" if (m := kernel_metadata(call.src[0])) else name

  _patch(ctx_t, "__init__", init)
  _patch(ctx_t, "pm_rewrite", pm_rewrite)
  _patch(ctx_t, "cached_bpm_rewrite", cached_bpm_rewrite)
  _patch(schedule, "get_kernel_graph", get_kernel_graph)
  _patch(realize, "get_call_name", get_call_name)
  _patch(schedule, "inspect", SimpleNamespace(stack=_caller_frames))
  _patch(schedule, "pm_schedule", PatternMatcher([(UPat(Ops.SINK, name="function"), _lower_sink_to_linear)]))
  schedule.schedule_cache.clear()  # schedules made before install() hold kernels without metadata
  from tinygrad import Tensor
  from tinygrad.tensor import _METADATA, _metadata_wrapper
  stock_wrapper = _metadata_wrapper(lambda: None).__code__
  for name, fn in list(vars(Tensor).items()):
    if getattr(fn, "__code__", None) is stock_wrapper: _patch(Tensor, name, _exception_safe(fn.__wrapped__))
  _METADATA.set(None)  # not inside any Tensor method now: a value here is one a stock wrapper left behind when its op raised


def uninstall() -> None:
  """Put back every name install() replaced."""
  for (owner, name), value in _saved.items(): setattr(owner, name, value)
  _saved.clear()


def step_kernels(outputs: list) -> list[tuple[Metadata, ...]]:
  """Schedule `outputs` (tensors) and return each kernel's metadata, in schedule order (copies are not kernels)."""
  from tinygrad import Tensor
  linear, _ = Tensor.linear_with_vars(*outputs)
  return [kernel_metadata(c.src[0]) for c in linear.src if c.op is Ops.CALL and c.src[0].op is Ops.SINK]


def resnet_train_step(devices: tuple[str, ...] | None = None, batch: int = 2, seed: int = 0) -> list:
  """ResNet-18 (width 8, 10 classes, 32x32 images) SGD step; with `devices`, data-parallel: weights replicated on
  every device, the batch sharded along its first axis. Returns the loss and the updated tensors, unrealized."""
  from tinygrad import Tensor
  from tinygrad.helpers import Context
  from tinygrad.nn.optim import SGD
  from tinygrad.nn.state import get_parameters

  from tinybounty.models.resnet import ResNet
  Tensor.manual_seed(seed)
  model = ResNet(18, 10, 8)
  params = get_parameters(model)
  x, y = Tensor.randn(batch, 3, 32, 32), Tensor.randint(batch, high=10)
  Tensor.realize(*params, x, y)
  if devices:
    for p in params: p.to_(devices)
    x, y = x.shard(devices, axis=0), y.shard(devices, axis=0)
    Tensor.realize(*params, x, y)
  opt = SGD([p for p in params if p.is_param], lr=0.01)
  with Context(TRAINING=1):
    opt.zero_grad()
    loss = model(x).sparse_categorical_crossentropy(y)
    loss.backward()
    return [loss, *opt.schedule_step()]


def small_train_step(devices: tuple[str, ...] | None = None, seed: int = 0) -> list:
  """A conv -> BatchNorm -> relu -> linear SGD step on 4 images of 3x8x8, data-parallel over `devices` if given: the
  quick stand-in for resnet_train_step (same ops, a fraction of the kernels)."""
  from tinygrad import Tensor, nn
  from tinygrad.helpers import Context
  from tinygrad.nn.state import get_parameters
  Tensor.manual_seed(seed)
  conv, bn, lin = nn.Conv2d(3, 4, 3), nn.BatchNorm(4), nn.Linear(4 * 6 * 6, 10)
  params = get_parameters([conv, bn, lin])
  x, y = Tensor.rand(4, 3, 8, 8), Tensor([1, 2, 3, 4])
  Tensor.realize(*params, x, y)
  if devices:
    for p in params: p.to_(devices)
    x, y = x.shard(devices, axis=0), y.shard(devices, axis=0)
    Tensor.realize(*params, x, y)
  with Context(TRAINING=1):
    opt = nn.optim.SGD([p for p in params if p.is_param], lr=0.1)
    opt.zero_grad()
    loss = lin(bn(conv(x)).relu().flatten(1)).sparse_categorical_crossentropy(y)
    loss.backward()
    return [loss, *opt.schedule_step()]
