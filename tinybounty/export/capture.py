"""Capture a TinyJit'd function as a device-independent graph: kernel ASTs, the buffers they touch, inputs, outputs and weights.

The capture runs the function as TinyJit does (a plain first call, then a captured one), but records the scheduled kernel ASTs
before they are compiled for the capture device, so any renderer (here WGSL) can lower them. Every buffer the graph reads before
writing it must be an input or a realized weight: its bytes are snapshotted and saved with the export.
"""
from __future__ import annotations

import contextlib
import types
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from tinygrad import Tensor, dtypes
from tinygrad.dtype import DType
from tinygrad.engine.jit import _TinyJit
from tinygrad.engine.realize import capturing, get_call_arg_uops, run_linear
from tinygrad.helpers import prod
from tinygrad.nn.state import get_state_dict
from tinygrad.uop.ops import Ops, UOp
from tqdm import tqdm


class ExportError(Exception):
  """An export that cannot be done correctly: the message names the kernel, buffer or input at fault."""


@dataclass(frozen=True)
class VarInput:
  name: str
  vmin: int
  vmax: int


@dataclass(frozen=True)
class TensorInput:
  name: str
  buf: UOp
  shape: tuple[int, ...]
  dtype: DType


@dataclass(frozen=True)
class Output:
  buf: UOp
  shape: tuple[int, ...]
  dtype: DType


@dataclass
class Graph:
  """One captured call: kernels in dispatch order (rendered PROGRAM, buffer args), inputs, outputs and weight snapshots."""
  kernels: list[tuple[UOp, tuple[UOp, ...]]]
  inputs: list[TensorInput | VarInput]
  outputs: list[Output]
  weights: dict[UOp, tuple[str, np.ndarray]] = field(default_factory=dict)  # buffer -> (name, bytes as an array)


class _Recorder:
  """Stands in for TinyJit on tinygrad's capture stack: collects the scheduled linears instead of running them."""
  def __init__(self): self.linears: list[tuple[UOp, dict[str, int]]] = []
  def add_linear(self, linear: UOp, var_vals: dict[str, int]): self.linears.append((linear, var_vals))


def find_state(fxn) -> dict[str, Tensor]:
  """The tensors a function can reach: its bound object, closure cells, default arguments and the globals it names."""
  roots: dict[str, object] = {}
  if (owner := getattr(fxn, "__self__", None)) is not None: roots[""] = owner
  fxn = getattr(fxn, "__func__", fxn)
  code = getattr(fxn, "__code__", None)
  if code is not None:
    for name, cell in zip(code.co_freevars, fxn.__closure__ or ()):
      with contextlib.suppress(ValueError): roots[name] = cell.cell_contents
    roots.update({n: fxn.__globals__[n] for n in code.co_names if n in fxn.__globals__})
    for i, d in enumerate(fxn.__defaults__ or ()): roots[f"default{i}"] = d
  if callable(fxn) and not isinstance(fxn, types.FunctionType) and hasattr(fxn, "__dict__"): roots[""] = fxn  # a callable model object
  state: dict[str, Tensor] = {}
  for name, obj in roots.items():
    if isinstance(obj, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type)): continue
    for k, t in get_state_dict(obj, prefix=f"{name}." if name else "").items(): state.setdefault(k, t)
  return state


def check_inputs(example_inputs: tuple) -> list[Tensor | UOp]:
  for i, x in enumerate(example_inputs):
    if isinstance(x, Tensor):
      if not x.uop.is_realized and not x.uop.base.is_realized:
        raise ExportError(f"input {i} is not realized: call .realize() on it first (its computation would be baked into the graph)")
      if x.uop.base.op is not Ops.BUFFER or x.uop.base.buffer.size != prod(x.shape):
        raise ExportError(f"input {i} is a view of a larger buffer: pass a contiguous tensor (x.contiguous().realize())")
    elif not (isinstance(x, UOp) and x.is_bound_var):
      raise ExportError(f"input {i} is a {type(x).__name__}: inputs are realized Tensors or bound Variables (Variable('pos', 0, 63).bind(0))")
  return list(example_inputs)


def _outputs(ret) -> list[Tensor]:
  outs = [ret] if isinstance(ret, Tensor) else list(ret) if isinstance(ret, (tuple, list)) else None
  if not outs or not all(isinstance(t, Tensor) for t in outs):
    raise ExportError(f"the function must return a Tensor or a tuple of Tensors, not {type(ret).__name__}")
  return outs


def warm_up(jit: _TinyJit, example_inputs: tuple) -> dict[str, Tensor]:
  """Realize the function's weights, then make the plain first call TinyJit makes (lazily created state, a KV cache, is realized
  here rather than baked into the graph). Returns the function's state, found after that call."""
  if not isinstance(jit, _TinyJit):
    raise ExportError(f"export_model needs a TinyJit-wrapped function (TinyJit(model.__call__) or @TinyJit), got {type(jit).__name__}")
  inputs = check_inputs(example_inputs)
  _realize(find_state(jit.fxn).values())
  _realize(_outputs(jit.fxn(*inputs)))
  _realize((state := find_state(jit.fxn)).values())
  return state


def _realize(ts): return Tensor.realize(*ts) if ts else None


def capture(jit: _TinyJit, example_inputs: tuple, state: dict[str, Tensor], render: Callable[[UOp], UOp]) -> Graph:
  """Capture one call of `jit`'s function, lowering each kernel AST with `render` (SINK -> PROGRAM). Call `warm_up` first.

  What the graph reads before writing is snapshotted as weights; then the captured call runs, so the function's state stays right."""
  inputs = check_inputs(example_inputs)
  rec = _Recorder()
  capturing.append(rec)
  try:
    outs = [t.contiguous() for t in _outputs(jit.fxn(*inputs))]
    Tensor.realize(*outs)
  finally:
    capturing.clear()
  calls = [c for linear, _ in rec.linears for c in linear.src]
  try:
    return _graph(calls, inputs, outs, state, render)
  finally:  # what the captured call does, done (snapshots taken), as TinyJit does after capturing: the caller's tensors stay right
    if calls: run_linear(UOp(Ops.LINEAR, src=tuple(calls)), {k: v for _, vv in rec.linears for k, v in vv.items()})


def _graph(calls: list[UOp], inputs: list, outs: list[Tensor], state: dict[str, Tensor], render: Callable[[UOp], UOp]) -> Graph:
  for c in calls:
    if c.src[0].op is Ops.COPY: raise ExportError("the graph copies between devices: put the model and the inputs on one device")
    if c.src[0].op is not Ops.SINK: raise ExportError(f"the graph has a {c.src[0].op} call that WebGPU cannot run")
    if any(u.op is Ops.THREEFRY for u in c.src[0].toposort()):
      raise ExportError(f"kernel {c.src[0].arg.name!r} generates random numbers: a random tensor (an unrealized weight?) is computed inside "
                        "the graph; realize the model's weights before export")
  lowered = [(render(c.src[0]), get_call_arg_uops(c)) for c in tqdm(calls, desc="lowering kernels", leave=False, disable=len(calls) < 8)]
  graph = Graph(lowered, [], [Output(t.uop.base, t.shape, t.dtype) for t in outs])
  for i, x in enumerate(inputs):
    if isinstance(x, Tensor): graph.inputs.append(TensorInput(f"input{i}", x.uop.base, x.shape, x.dtype))
    else: graph.inputs.append(VarInput((v := x.unbind()[0]).expr, int(v.vmin), int(v.vmax)))
  _snapshot_weights(graph, state)
  return graph


def _snapshot_weights(graph: Graph, state: dict[str, Tensor]):
  """Save what the graph reads before writing it (it must be realized) and the buffers it updates that held data before the call
  (state such as a KV cache, found or not). What is left are the call's own intermediates, fresh buffers."""
  named = {t.uop.base: (k, t.shape) for k, t in state.items() if t.uop.base.op is Ops.BUFFER}
  inputs = {x.buf for x in graph.inputs if isinstance(x, TensorInput)}
  def save(b: UOp):
    name, shape = named.get(b, (f"buffer{len(graph.weights)}", (b.buffer.size,)))
    graph.weights[b] = (name, b.buffer.numpy().reshape(shape if prod(shape) == b.buffer.size else (b.buffer.size,)).copy())
  written: set[UOp] = set()
  for prg, args in graph.kernels:
    name = prg.arg.function_name
    for b in args:
      if b.op is not Ops.BUFFER: raise ExportError(f"kernel {name!r} takes a {b.op} argument, not a plain buffer")
    for b in (args[i] for i in prg.arg.ins):
      if b in inputs or b in written or b in graph.weights: continue
      if not b.buffer.is_initialized():
        raise ExportError(f"kernel {name!r} reads a {b.dtype} buffer of {b.buffer.size} elements that is neither an input nor a "
                          "realized weight (a tensor created inside the function and never realized?)")
      save(b)
    written |= {args[i] for i in prg.arg.outs}
  for b in written - graph.weights.keys() - inputs:  # state the graph updates (a KV cache): it held data before this call
    if b.buffer.is_initialized(): save(b)


@contextlib.contextmanager
def floats_as(state: dict[str, Tensor], dtype: DType):
  """Temporarily give every float32 state tensor `dtype` (values rounded), restoring the originals afterwards."""
  saved = {k: t.uop for k, t in state.items()}
  try:
    for t in state.values():
      if t.dtype == dtypes.float32: t.replace(t.cast(dtype).contiguous().realize())
    yield
  finally:
    for k, t in state.items(): t.uop = saved[k]
