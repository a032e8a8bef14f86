"""Capture and replay of eager steps on the tiny device: a known step runs its compiled kernels on the current buffers.

Eager dispatch builds a tinygrad graph per op and schedules it at every sync point, although a training step is the
same graph every time. Capture is on by default (`TINY_CAPTURE=0` or `set_enabled(False)` turns it off). Once the
program's steps repeat (the ops between its last two sync points came, in the same order with the same shapes, more
than `TINY_CAPTURE_WARMUP` times: a loop, not a script's few steps, which would not repay a capture's compile), an op
whose output shapes are known from an earlier eager run is only *recorded*: its outputs are placeholder storages (a
`slot` of the step) and the step's running key gets the op's function, the sizes/strides/offset/dtype of each tensor
argument, which earlier storage or which output of this step each argument reads, and its other arguments. Python
floats that the op reads from device memory (scalars.py: a learning rate, a bias correction) are arguments of the step,
not part of the key; only their class (0, 1, -1, 2, 0.5, sign, not finite) is, since an op may branch on those.

At a sync point (flush after an optimizer step, .item(), .cpu(), synchronize) the step ends:
- key seen before: its captured kernels run directly on the current input buffers, the step's scalars and fresh output
  buffers; no tinygrad graph is built, scheduled or lowered (`stats()['replays']`);
- otherwise the recorded ops are run as tinygrad functions, the live outputs (storages still referenced, written
  storages included) realized in one schedule, and that schedule is captured for the key (`captured`, `recaptures`
  with the reason: what differs from the last step).
An eager path that reads a placeholder (an op without a learned shape, a CPU fallback, an op reading device data) first
turns the recorded ops into lazy tinygrad values (`lowered`, with the reason) and the step continues eagerly. Ops that
read device data (nonzero, masked_select), draw from a generator of their own, read a moving slice (device.py) or run
kernels while building are never recorded; draws from the default generator are, their counters step arguments.
A program that never syncs is cut into steps where it writes a storage again after SYNC_AFTER ops (a decoding loop).
"""
from __future__ import annotations

import math
import os
import struct
from collections import OrderedDict
from typing import Any, Callable

import torch
from tinygrad import Tensor
from tinygrad.device import Buffer
from tinygrad.engine.realize import capturing
from tinygrad.helpers import GlobalCounters
from tinygrad.uop.ops import Ops, UOp

from tinybounty.torch_backend import device, materialize, replay, scalars, step, strided
from tinybounty.torch_backend import stats as stats_module
from tinybounty.torch_backend.random import default_generator
from tinybounty.torch_backend.stats import _counts, on_device

MAX_ENTRIES = 1024  # a step recording more ops than this is ended (captured) there
KEEP = 32  # captured steps kept, least recently used dropped
_UNRECORDABLE = "X"

_metas: dict[tuple, Any] = {}  # an op's shape key -> the structure of its outputs, learned from an eager run
_graphs: OrderedDict[tuple, Any] = OrderedDict()  # a step's key -> replay.Graph, or the reason it cannot be captured
_last_key: list = [None]
_seen: OrderedDict[Any, None] = OrderedDict()  # keys of steps ended once, not captured (yet)
SEEN_KEEP = 256


class _NotRecordable(Exception):
  pass


_seg = step.Segment()
_enabled = [os.environ.get("TINY_CAPTURE", "1") != "0"]
# Recording starts once the last segment between sync points (its ops, shapes and order: `_running`) has come more than
# WARMUP times. A capture compiles the step's kernels anew (its cuts differ from the eager path's), which a program of
# a few steps never repays: real programs of 5 steps ran 8-44% slower with capture from the second step.
WARMUP = [int(os.environ.get("TINY_CAPTURE_WARMUP", "8"))]
_running = [0]  # hash of the current segment's ops so far
_repeats: dict[int, int] = {}  # a segment's hash -> times it came
_steady = [False]  # the last segment came more than WARMUP times: ops are recorded
REPEATS_KEEP = 4096
_busy = [False]  # building or lowering: ops dispatched meanwhile run eagerly


def enabled() -> bool:
  return _enabled[0]


def set_enabled(on: bool, warmup: int | None = None) -> None:
  """Turn capture on or off (TINY_CAPTURE=0 starts it off); the step recorded so far is ended first. `warmup`: how
  many times a segment between sync points must have come before the next is recorded (0: from its second run)."""
  sync()
  _enabled[0] = on
  if warmup is not None: WARMUP[0] = warmup


def _float_class(x: float) -> Any:
  if not math.isfinite(x) or x in (0.0, 1.0, -1.0, 2.0, 0.5): return struct.pack("<d", x)
  return x > 0


class _Ctx:
  __slots__ = ("seg", "op", "key", "refs", "pos", "scalars")

  def __init__(self, seg: step.Segment, op: tuple) -> None:
    self.seg, self.op, self.key, self.refs, self.pos, self.scalars = seg, op, [], [], 0, []


_PLAIN = (int, bool, str, type(None), torch.dtype, torch.device, torch.memory_format, torch.layout)


def _template(a: Any, ctx: _Ctx) -> Any:
  ctx.pos += 1
  if isinstance(a, torch.Tensor):
    try:
      st = a.untyped_storage()._tiny  # only tiny storages carry one
    except Exception:
      raise _NotRecordable("it reads a tensor of another device") from None
    size, stride, off, dt = tuple(a.shape), a.stride(), a.storage_offset(), a.dtype
    # a moving slice (a batch's rows of a permutation) is copied out by a kernel as it is read: the op runs eagerly,
    # outside the step, or the offset, a new one each step, would key every step apart
    if device.moving_slice(size, stride, off, dt): raise _NotRecordable("it reads a moving slice")
    src = ctx.seg.ref(st)
    ctx.refs.append(src)
    # a small view at a moving offset (x[i] = v in a loop) is read and written through an offset in device memory
    if (ctx.op, ctx.pos) in step.offset_positions and strided.small_view(size):
      ctx.key.append((size, stride, "offset", dt))
      ctx.scalars.append(scalars.Offset(off))
      return step.Ref(src, size, stride, step.Scalar(len(ctx.scalars) - 1, ctx.pos), dt)
    ctx.key.append((size, stride, off, dt))
    return step.Ref(src, size, stride, off, dt)
  if type(a) is float:
    if (ctx.op, ctx.pos) in step.scalar_positions:
      ctx.key.append(("F", _float_class(a)))
      ctx.scalars.append(a)
      return step.Scalar(len(ctx.scalars) - 1, ctx.pos)
    ctx.key.append(struct.pack("<d", a))
    return a
  if isinstance(a, _PLAIN):
    ctx.key.append((type(a), a))
    return a
  if isinstance(a, (list, tuple)):
    ctx.key.append((type(a), len(a)))
    return type(a)(_template(x, ctx) for x in a)
  if isinstance(a, dict):
    ctx.key.append((dict, tuple(a)))
    return {k: _template(v, ctx) for k, v in a.items()}
  raise _NotRecordable(f"it takes a {type(a).__name__}")


def _learn(res: Any, kind: str, extra: Any, kwargs: dict) -> Any:
  """The output structure of an eager run (None where it cannot be recorded)."""
  if kind == "f":
    def shape(r: Any) -> Any:
      if isinstance(r, torch.Tensor):
        if r.device.type != device.BACKEND or r.storage_offset() != 0 or not r.is_contiguous(): raise _NotRecordable
        st = r.untyped_storage()._tiny
        if st.slot >= 0 or st._value is None or tuple(st._value.shape) != tuple(r.shape): raise _NotRecordable
        return ("T", tuple(r.shape), r.dtype)
      if r is None: return ("N",)  # a gradient not asked for (convolution_backward's output_mask)
      if isinstance(r, (list, tuple)): return (type(r), tuple(shape(x) for x in r))
      raise _NotRecordable
    try:
      return shape(res)
    except _NotRecordable:
      return _UNRECORDABLE
  return ("W",)


def dispatch(kind: str, fn: Callable, eager: Callable, args: tuple, kwargs: dict, extra: Any = None) -> Any:
  """device.dispatch_hook: record the op if its outputs are known and the step is being captured, else run it eagerly
  (learning its outputs for the next time)."""
  if not _enabled[0] or _busy[0]: return eager(*args, **kwargs)
  _eager_op[0] = fn
  try:
    return _dispatch(kind, fn, eager, args, kwargs, extra)
  finally:
    _eager_op[0] = None


_eager_op: list = [None]
_why = ["outputs not known yet"]  # why the op in _eager_op runs eagerly


def _targets(kind: str, args: tuple, kwargs: dict, extra: Any) -> list:
  """The tensors a write op writes: in place ("i"), a foreach list in place ("I"), its out= arguments ("o")."""
  return [args[0]] if kind == "i" else list(args[0]) if kind == "I" else [kwargs[n] for n in extra] if kind == "o" else []


def _rewrites(seg: step.Segment, kind: str, args: tuple, kwargs: dict, extra: Any) -> bool:
  """Whether a write targets a storage this step already wrote."""
  return any((st := device.tiny_storage(t)) is not None and st.slot in seg.written for t in _targets(kind, args, kwargs, extra))


def _dispatch(kind: str, fn: Callable, eager: Callable, args: tuple, kwargs: dict, extra: Any) -> Any:
  # a program that never syncs (gpt-fast's decoding loop) is cut into steps where it writes a storage again after
  # SYNC_AFTER ops (its KV cache, the next token), as device.py's eager rule cuts its graphs: each token then replays
  if len(_seg.entries) >= device.SYNC_AFTER and _rewrites(_seg, kind, args, kwargs, extra): sync()
  seg = _seg
  op = (kind, fn, extra)
  ctx = _Ctx(seg, op)
  n_inputs = len(seg.inputs)
  try:
    targs, tkwargs = _template(args, ctx), _template(kwargs, ctx)
  except _NotRecordable as e:
    seg.forget_inputs(n_inputs)
    _why[0] = str(e)
    return eager(*args, **kwargs)
  shape_key = (op, tuple(ctx.key))
  _running[0] = hash((_running[0], shape_key))
  if kind == "e": meta: Any = ("E",)
  elif (meta := _metas.get(shape_key)) is None:
    seg.forget_inputs(n_inputs)
    _why[0] = "outputs not known yet"
    if kind == "o":
      outs = [kwargs[n] for n in extra]
      before = [tuple(o.shape) for o in outs]
    marks = (_counts["d2h"], _counts["size_syncs"], GlobalCounters.kernel_count, default_generator.seed, default_generator.offset)
    # the floats this eager run reads from device memory are step arguments from now on: a float that changes every
    # step (a foreach op's list of bias corrections) would otherwise key every step apart and never be recorded
    scalars.requests = requests = []
    try:
      res = eager(*args, **kwargs)
    finally:
      scalars.requests = None
    materialize.learn_scalars(op, targs, tkwargs, ctx.scalars, requests)
    learned = _learn(res, kind, extra, kwargs)
    if kind == "o" and any(tuple(o.shape) != b for o, b in zip(outs, before)): learned = _UNRECORDABLE
    # an op that read device data or ran kernels depends on more than its arguments; one that drew random words from
    # the default generator (and did nothing else) is recorded with its draw: ("R", words, what it makes)
    after = (_counts["d2h"], _counts["size_syncs"], GlobalCounters.kernel_count, default_generator.seed, default_generator.offset)
    if after != marks:
      drew = after[:4] == marks[:4] and learned is not _UNRECORDABLE
      learned = ("R", after[4] - marks[4], learned) if drew else _UNRECORDABLE
    _metas[shape_key] = learned
    return res
  if meta is _UNRECORDABLE:
    seg.forget_inputs(n_inputs)
    _why[0] = "its first run read device data, ran kernels or made a view"
    return eager(*args, **kwargs)
  if not _steady[0] and WARMUP[0]:
    seg.forget_inputs(n_inputs)
    _why[0] = "the program's steps do not repeat yet"
    return eager(*args, **kwargs)
  draw = None
  if meta[0] == "R":  # its words are drawn now, as eagerly: the counter an argument of the step, the seed in its key
    _, words, meta = meta
    draw = (default_generator.seed, default_generator.offset)
    default_generator.offset += words
    ctx.refs.append(("seed", draw[0]))
  if ctx.scalars:
    base = len(seg.scalars)
    for s in step.walk_scalars(targs, tkwargs): s.index += base
    seg.scalars.extend(ctx.scalars)
  if kind == "f":
    outs_slots: list[int] = []
    res = _placeholders(meta, seg, outs_slots)
  elif kind == "e":
    extent, dtype = args
    t = torch._C._acc.create_empty_tensor((extent,), dtype)
    t.untyped_storage()._tiny = st = device.TinyStorage(None)
    outs_slots, res = [seg.new_slot(st, False)], t
  else:  # a write; a foreach list's targets are distinct storages (foreach.py)
    outs = _targets(kind, args, kwargs, extra)
    outs_slots = [seg.new_slot(device._storage(o), True) for o in outs]
    res = None if kind == "I" else outs[0] if len(outs) == 1 else tuple(outs)
  if draw is not None: seg.draws[len(seg.entries)] = draw
  seg.entries.append((kind, fn, extra, targs, tkwargs, outs_slots, op))
  refs = tuple(ctx.refs)
  seg.keys.append((shape_key, refs))
  seg.h = hash((seg.h, shape_key, refs))
  if len(seg.entries) >= MAX_ENTRIES: sync()
  return res


def _placeholders(meta: Any, seg: step.Segment, slots: list[int]) -> Any:
  if meta[0] == "T":
    t = torch._C._acc.create_empty_tensor(meta[1], meta[2])
    t.untyped_storage()._tiny = st = device.TinyStorage(None)
    slots.append(seg.new_slot(st, False))
    return t
  if meta[0] == "N": return None
  return meta[0](_placeholders(m, seg, slots) for m in meta[1])


def _live(seg: step.Segment) -> list[tuple[int, device.TinyStorage]]:
  live = []
  for k, w in enumerate(seg.owners):
    if w is not None and (st := w()) is not None and st.slot == k: live.append((k, st))
  return live


def lower(reason: str | None = None) -> None:
  """device.materialize_hook: give every recorded output its lazy tinygrad value; the step goes on eagerly."""
  global _seg
  if reason is None:
    reason = f"{step.op_name(_eager_op[0])} ran eagerly ({_why[0]})" if _eager_op[0] is not None else "an eager path read a value of the step"
  seg, _seg = _seg, step.Segment()
  if not seg.entries: return
  _counts["reason: " + f"lowered: {reason}"] += 1
  _counts["lowered"] += 1
  _busy[0] = True
  try:
    vals, _, _ = materialize.lazy_values(seg)
  finally:
    _busy[0] = False
  for k, st in _live(seg):
    st._value, st.slot, st._buf = vals[k], -1, None
    # realized at the next flush or sync with everything else, as an eager op's result is: a host read of one
    # gradient would otherwise schedule (and compute) the forward it shares with the others once per gradient
    if k in seg.written: device._pending[id(st)] = st
    else: device.made(st)


def sync() -> None:
  """device.sync_hook: end the recorded step; replay its captured kernels if the step is known, else build and capture."""
  global _seg
  if h := _running[0]:
    _running[0] = 0
    if len(_repeats) >= REPEATS_KEEP: _repeats.clear()
    _repeats[h] = n = _repeats.get(h, 0) + 1
    _steady[0] = n > WARMUP[0]
  seg = _seg
  if not seg.entries: return
  _seg = step.Segment()
  _busy[0] = True
  try:
    _end(seg)
  finally:
    _busy[0] = False


def _input_buf(x: Any) -> Buffer | None:
  if isinstance(x, tuple): return x[0]
  u = replay.input_uop(x)
  return None if u is None else u.buffer


class _Key:
  """A step's key with its hash computed once (the key is a long tuple: Python's tuples do not cache their hash)."""
  __slots__ = ("parts", "h")

  def __init__(self, parts: tuple, h: int) -> None:
    self.parts, self.h = parts, h

  def __hash__(self) -> int: return self.h
  def __eq__(self, other: object) -> bool: return isinstance(other, _Key) and self.h == other.h and self.parts == other.parts


def _end(seg: step.Segment) -> None:
  live = _live(seg)
  if not live: return  # every value the step made is gone: nothing to compute
  in_bufs = [_input_buf(x) for x in seg.inputs]
  if lazy := [j for j, u in enumerate(in_bufs) if u is None and seg.inputs[j].numel()]:
    values = [seg.inputs[j].clone() for j in lazy]
    Tensor.realize(*values)
    for j, v in zip(lazy, values):
      # the storage keeps the realized copy, so the next step reads a buffer too
      if (st := seg.input_storages[j]()) is not None and st.slot < 0 and st._value is seg.inputs[j]:
        st._value, st._buf = v.reshape(st._value.shape), None
      seg.inputs[j], in_bufs[j] = v, _input_buf(v)
    _counts["reason: " + "inputs realized first: lazy values read by the step"] += 1
  for j, x in enumerate(seg.inputs):
    # a realized input keeps its buffer at hand: the next step's key and replay read it without tinygrad's UOps
    if isinstance(x, Tensor) and in_bufs[j] is not None and (st := seg.input_storages[j]()) is not None and st.slot < 0 and st._value is x \
       and st.bound is None:
      st.bound = (in_bufs[j], tuple(x.shape))
  # an empty input has no buffer (tinygrad allocates none, not even when realized): _build runs such a step uncaptured
  in_sig = tuple((x.dtype, 0, _shape_of(x)) if b is None else (b.dtype, b.size, _shape_of(x)) for b, x in zip(in_bufs, seg.inputs))
  first: dict[tuple, int] = {}
  equal = tuple(first.setdefault(step.bits(v), i) for i, v in enumerate(seg.scalars))
  live_slots = tuple(k for k, _ in live)
  key = _Key((tuple(seg.keys), in_sig, live_slots, equal), hash((seg.h, in_sig, live_slots, equal)))
  graph = _graphs.get(key)
  if isinstance(graph, replay.Graph):
    _graphs.move_to_end(key)
    _counts["replays"] += 1
    _replay(graph, seg, in_bufs, live)
    return
  in_uops = [replay.input_uop(x) for x in seg.inputs]
  last, _last_key[0] = _last_key[0], key
  ks = GlobalCounters.kernel_count
  vals, scalar_reads, reason = materialize.lazy_values(seg)
  outs = [_fresh(vals[k]) for k, _ in live]
  if reason is None and GlobalCounters.kernel_count != ks: reason = "kernels ran while the step was built"
  if reason is None and capturing: reason = "inside a TinyJit capture"
  if reason is None and isinstance(graph, str): reason = graph
  if reason is None and key not in _seen:
    # a step seen once is realized as it is and captured only if it comes again: one-off steps (a prefill, a program's
    # last partial step, a test's single step) never pay for a capture they would not replay
    _seen[key] = None
    if len(_seen) > SEEN_KEEP: _seen.popitem(last=False)
    Tensor.realize(*outs)
    for (k, st), o in zip(live, outs): st._value, st.slot, st._buf = o, -1, None
    return
  if reason is None:
    try:
      _capture(key, seg, in_uops, scalar_reads, outs, live, last)
      return
    except replay.NotCapturable as e:
      reason = str(e)
      _graphs[key] = reason
  _counts["reason: " + f"not captured: {reason}"] += 1
  _counts["uncaptured"] += 1
  Tensor.realize(*outs)
  for (k, st), o in zip(live, outs): st._value, st.slot, st._buf = o, -1, None


def _fresh(v: Tensor) -> Tensor:
  """`v` as a whole buffer of its own once realized (a view of a realized buffer is copied)."""
  v = on_device(v)
  base = v.uop.base
  return v.clone() if base.op is Ops.BUFFER and base.is_realized else v.contiguous()


def _shape_of(x: Any) -> tuple:
  return tuple(x.shape) if isinstance(x, Tensor) else tuple(x[1])


def _capture(key: tuple, seg: step.Segment, in_uops: list[UOp], scalar_reads: list, outs: list[Tensor], live: list, last: Any) -> None:
  graph = replay.capture(seg, in_uops, scalar_reads, outs)
  for (k, st), o in zip(live, outs): st._value, st.slot, st._buf = o, -1, None
  _graphs[key] = graph
  if len(_graphs) > KEEP: _graphs.popitem(last=False)
  _counts["captured"] += 1
  if last is not None:
    _counts["recaptures"] += 1
    _counts["reason: " + f"recaptured: {_difference(key, last)}"] += 1


def _replay(graph: replay.Graph, seg: step.Segment, in_bufs: list[Buffer], live: list) -> None:
  params = graph.run(seg, in_bufs)
  for (k, st), spec in zip(live, graph.out_specs):
    st.slot, st._buf = -1, None
    if spec[0] == "const": st._value, st.bound = spec[1], None
    else: st._value, st.bound = None, (params[spec[1]], spec[2])


def _difference(key: tuple, last: tuple) -> str:
  """What makes this step's key differ from the last captured one, in words."""
  ops, in_sig, live, equal = key.parts
  lops, lin_sig, llive, lequal = last.parts
  for i, (a, b) in enumerate(zip(ops, lops)):
    if a != b:
      name = step.op_name(a[0][0][1])
      if a[0][0] != b[0][0]: return f"op {i} is {name}, was {step.op_name(b[0][0][1])}"
      if a[0] != b[0]: return f"op {i} ({name}): sizes, strides, dtypes or arguments changed"
      return f"op {i} ({name}) reads other storages"
  if len(ops) != len(lops): return f"{len(ops)} ops, were {len(lops)}"
  if in_sig != lin_sig: return "the inputs' shapes or dtypes changed"
  if live != llive: return "other outputs are still referenced"
  if equal != lequal: return "other float arguments are equal"
  return "evicted"


def stats() -> dict[str, Any]:
  """Captured steps, replays, recaptures, lowered and uncaptured steps, and the reasons; none while capture is off and
  has counted nothing (so the device's own counters read as before)."""
  keys = ("captured", "replays", "recaptures", "lowered", "uncaptured")
  if not enabled() and not any(_counts.get(k, 0) for k in keys): return {}
  return {"captured": _counts["captured"], "replays": _counts["replays"], "recaptures": _counts["recaptures"],
          "lowered": _counts["lowered"], "uncaptured": _counts["uncaptured"],
          "capture_reasons": {k.removeprefix("reason: "): v for k, v in _counts.items() if k.startswith("reason: ")}}


def reset() -> None:
  """Forget every captured step and learned op (tests)."""
  sync()
  _graphs.clear()
  _seen.clear()
  _metas.clear()
  _repeats.clear()
  _running[0], _steady[0] = 0, False
  step.scalar_positions.clear()
  step.offset_positions.clear()
  _last_key[0] = None


_installed: dict[str, Any] = {}


def install() -> None:
  """Route the device's dispatch, sync points and placeholder reads through capture. Reversible: uninstall()."""
  if _installed: return
  _installed.update(dispatch_hook=device.dispatch_hook, sync_hook=device.sync_hook, materialize_hook=device.materialize_hook)
  device.dispatch_hook, device.sync_hook, device.materialize_hook = dispatch, sync, lower
  stats_module.providers.append(stats)


def uninstall() -> None:
  if not _installed: return
  sync()
  for name, fn in _installed.items(): setattr(device, name, fn)
  stats_module.providers.remove(stats)
  _installed.clear()
