"""torch.compile(model, backend="tiny"): FX graphs lowered through the op table and replayed under TinyJit.

Dynamo captures the Python code into FX graphs; aot_autograd traces each into functionalized aten graphs, a forward
and (when gradients are needed) a backward, with PyTorch's decompositions for the ops the table (table.py) lacks. Each
graph is lowered by interpreting its nodes with the table's tinygrad implementations, and that function runs under
TinyJit: one JIT per graph and concrete input signature (shapes, dtypes, integer inputs), so after two warm-up calls
a compiled graph is one tinygrad JIT replay. Shapes are static (see install()): a new batch size is one dynamo
recompile and one JIT capture, then replays. A graph whose ops the table lacks runs on the eager tiny device
instead (counted as a fallback, with a warning naming the op), never on the CPU.

  import tinybounty.torch_backend              # registers the device and the "tiny" backend (dynamo.py)
  step = torch.compile(model, backend="tiny")
  tinybounty.torch_backend.compile.compile_stats()   # graphs, breaks, recompiles, jit captures, fallbacks
"""
from __future__ import annotations

import operator
import warnings
import weakref
from collections import Counter
from typing import Any, Callable, Sequence

import torch
import torch.fx
from tinygrad import Device, Tensor, TinyJit
from torch._dynamo.backends.common import aot_autograd
from torch._dynamo.utils import counters as dynamo_counters
from torch._dynamo.utils import guard_failures

from tinybounty.torch_backend import device, table

_stats: Counter = Counter()
_TENSOR = object()  # marks a tensor output among a graph's outputs


def compile_stats() -> dict[str, int]:
  """graphs: FX graphs the backend compiled (forward and backward count apart); breaks: dynamo graph breaks;
  recompiles: dynamo recompilations after a guard failure; jit_captures: TinyJit captures (one per graph and input
  signature); fallbacks: graphs run op by op on the eager tiny device because the table lacks one of their ops."""
  return {"graphs": _stats["graphs"], "breaks": sum(dynamo_counters["graph_break"].values()),
          "recompiles": sum(len(v) for v in guard_failures.values()), "jit_captures": _stats["jit_captures"],
          "fallbacks": _stats["fallbacks"]}


def model_breaks() -> int:
  """Graph breaks other than the deliberate ones PyTorch's Optimizer.step makes around its body (torch._dynamo.graph_break())."""
  return sum(n for reason, n in dynamo_counters["graph_break"].items() if "User-inserted graph break" not in reason)


def reset_compile_stats() -> None:
  """Zero the counters (and dynamo's graph-break and guard-failure records)."""
  _stats.clear()
  dynamo_counters["graph_break"].clear()
  guard_failures.clear()


def _const(v: Any) -> Any:
  if not isinstance(v, torch.Tensor): return v
  return device.unwrap(v) if v.device.type == device.BACKEND else device.from_cpu(v)


def _copy_into(dst: Tensor, src: Tensor) -> Tensor:
  """The value `copy_` gives its destination (the write itself happens after the JIT, into the torch tensor)."""
  src = src.cast(dst.dtype)
  if src.shape == dst.shape: return src
  return src.reshape(dst.shape) if src.numel() == dst.numel() else src.expand(dst.shape)


def _foreach(op: torch._ops.OpOverload) -> Callable:
  """A functional `_foreach_<op>` overload as the table's <op> applied element by element (the optimizers' multi-tensor path)."""
  base = op._schema.name.removeprefix("aten::_foreach_")
  fn = next((f for ov in ("Tensor", "Scalar", "default") if (f := _lookup_or_none(f"{base}.{ov}")) is not None), None)
  if fn is None: table.lookup(op)  # raises, naming the op
  args = op._schema.arguments
  per_elem = [a.name == "scalars" or isinstance(a.type, torch.ListType) for a in args]
  kw_only = {a.name for a in args if a.kwarg_only} | ({"value"} if base in ("addcmul", "addcdiv") else set())
  names = ["value" if a.name == "scalars" else a.name for a in args]

  def impl(*xs: Any, **kwargs: Any) -> list[Tensor]:
    vals = dict(zip(names, xs), **kwargs)
    out = []
    for i in range(len(next(x for x in xs if isinstance(x, (list, tuple))))):
      at = {k: (v[i] if per_elem[names.index(k)] else v) for k, v in vals.items()}
      out.append(fn(*(at[n] for n in names if n in at and n not in kw_only), **{n: at[n] for n in names if n in at and n in kw_only}))
    return out
  return impl


def _lookup_or_none(name: str) -> Callable | None:
  try: return table.lookup(name)
  except NotImplementedError: return None


def _empty_permuted(size: Sequence[int], physical_layout: Sequence[int], **kwargs: Any) -> Tensor:
  """In a functional graph the physical layout is not observable: a plain empty of `size` (eager keeps PyTorch's own
  empty_permuted, whose strides are)."""
  return table.lookup("empty.memory_format")(size, **kwargs)


def _target(node: torch.fx.Node) -> Callable:
  if node.target is torch.ops.aten.empty_permuted.default: return _empty_permuted
  if node.target is torch.ops.aten.copy_.default and node.args[0].op == "placeholder": return _copy_into
  if isinstance(node.target, torch._ops.OpOverload) and node.target._schema.name.startswith("aten::_foreach_"): return _foreach(node.target)
  if isinstance(node.target, torch._ops.OpOverload): return table.lookup(node.target)
  if node.target is operator.getitem or getattr(node.target, "__module__", None) in ("_operator", "math", "builtins"): return node.target
  if isinstance(node.target, torch._ops.OpOverloadPacket): return table.lookup(node.target.default)
  raise NotImplementedError(f"tiny: cannot lower FX call to {node.target}")


class TinyGraph:
  """One functionalized aten FX graph, run as tinygrad under TinyJit (one JIT per input signature)."""
  def __init__(self, gm: torch.fx.GraphModule):
    self.gm, self.nodes = gm, list(gm.graph.nodes)
    self.fns = {n: _target(n) for n in self.nodes if n.op == "call_function"}  # NotImplementedError if an op is missing
    self.consts = {n: _const(getattr(gm, n.target)) for n in self.nodes if n.op == "get_attr"}
    self.jits: dict[tuple, TinyJit] = {}
    self.extras: dict[tuple, list] = {}  # per signature: the graph's non-tensor outputs (sizes), which the JIT cannot return
    self.specs: dict[tuple, list] = {}  # per signature: (shape, dtype) of each output slot
    self.first: dict[tuple, list] = {}  # per signature: its first call's input buffers
    # inputs the JITs hold instead of taking them as arguments (tinygrad's per-argument work is most of a replay's host
    # time): index -> tensor; None until the second call decides, {} once a held input came with another buffer
    self.hold: dict[int, Tensor] | None = None
    # input mutations aot_autograd left in the graph (BatchNorm running stats, optimizer state): copy_(placeholder, value)
    placeholders = [n for n in self.nodes if n.op == "placeholder"]
    self.copies = [n for n in self.nodes if self.fns.get(n) is _copy_into]
    self.mutated = [placeholders.index(n.args[0]) for n in self.copies]

  def interpret(self, *args: Any) -> tuple[list[Any], list[Tensor]]:
    """Evaluate the graph on tinygrad Tensors and Python numbers: its outputs, and the new values of mutated inputs."""
    env: dict[torch.fx.Node, Any] = {}
    placeholders = iter(args)
    for n in self.nodes:
      if n.op == "placeholder": env[n] = next(placeholders)
      elif n.op == "get_attr": env[n] = self.consts[n]
      elif n.op == "call_function":
        args_, kwargs_ = torch.fx.node.map_arg(n.args, env.__getitem__), torch.fx.node.map_arg(n.kwargs, env.__getitem__)
        try: env[n] = self.fns[n](*args_, **kwargs_)
        except Exception as e:
          shapes = [tuple(a.shape) if isinstance(a, Tensor) else a for a in args_]
          raise type(e)(f"tiny compile: {n.format_node()} with args {shapes}: {e}") from e
      elif n.op == "output": return list(torch.fx.node.map_arg(n.args[0], env.__getitem__)), [env[c] for c in self.copies]
    raise RuntimeError("FX graph has no output node")

  def _outputs(self, key: tuple, inputs: list[Any]) -> tuple[list[Tensor], list[Tensor]]:
    """Interpret the graph: its tensor outputs (non-tensor ones kept in self.extras) and its mutated inputs' new values."""
    bases = {t.uop.base for t in inputs if isinstance(t, Tensor)}
    outs, mutations = self.interpret(*inputs)
    self.extras[key] = [_TENSOR if isinstance(o, Tensor) else o for o in outs]
    # an output that is (a view of) an input gets its own buffer: the caller may keep it while the input changes
    return [o.clone() if o.uop.base in bases else o for o in outs if isinstance(o, Tensor)], mutations

  def _results(self, key: tuple, in_place: tuple[bool, ...], inputs: list[Any]) -> tuple[list[Tensor], list[Tensor]]:
    """The values the caller receives (tensor outputs, then the new values of mutated inputs not written in place) and
    the in-place mutations, assigned into their inputs."""
    outs, mutations = self._outputs(key, inputs)
    written = [inputs[i].assign(v) for i, v, here in zip(self.mutated, mutations, in_place) if here]
    return [*outs, *(v for v, here in zip(mutations, in_place) if not here)], written

  def _jitted(self, key: tuple, in_place: tuple[bool, ...], xs: list[Any]) -> list[Tensor]:
    """The JIT'd function: writes every result into a buffer the caller passed (`xs` ends with one slot per output and
    per mutated input not written in place), and each in-place mutation into its input, so a replay returns nothing the
    JIT owns: its own output buffers would be overwritten by the next replay."""
    n_slots = len(self.specs[key])
    values, written = self._results(key, in_place, xs[:len(xs) - n_slots])
    return [*(s.assign(v) for s, v in zip(xs[len(xs) - n_slots:], values)), *written]

  def __call__(self, args: list[Any]) -> list[Any]:
    held, given = self._held(args), list(args)
    inputs = _inputs([None if i in held else a for i, a in enumerate(args)])
    for i, x in held.items(): inputs[i] = x
    targets = [args[i] for i in self.mutated]
    in_place = tuple(i in held or _owns(t, inputs[i]) for t, i in zip(targets, self.mutated))
    args.clear()  # boxed calling convention: let the caller's references go
    key = (tuple((tuple(a.shape), a.dtype) if isinstance(a, Tensor) else a for a in inputs), in_place)
    if (spec := self.specs.get(key)) is None:  # this signature's first call runs unjitted and tells the outputs' shapes
      if self.hold is None:  # weak: never keeps a first call's activations alive
        self.first[key] = [weakref.ref(x.uop) if isinstance(x, Tensor) else None for x in inputs]
      values, written = self._results(key, in_place, inputs)
      self.specs[key] = [(v.shape, v.dtype) for v in values]
      if values or written: Tensor.realize(*values, *written)
    else:
      if self.hold is None:  # the second call: hold the inputs that kept their buffer (parameters, caches written in place)
        held = self.hold = {i: x for i, (t, x, u) in enumerate(zip(given, inputs, self.first.pop(key)))
                            if isinstance(x, Tensor) and u is not None and x.uop is u() and _owns(t, x)}
      values = [_empty(shape, dtype) for shape, dtype in spec]
      jkey = (key, tuple(held))
      if (jit := self.jits.get(jkey)) is None:
        # bound as defaults: the closure must not keep this call's inputs (activations) alive for the JIT's lifetime
        def fxn(*xs: Any, key: tuple = key, in_place: tuple = in_place, fx: dict = dict(held), n: int = len(inputs)) -> list[Tensor]:
          it = iter(xs)
          merged = [fx[i] if i in fx else next(it) for i in range(n)]
          return self._jitted(key, in_place, [*merged, *it])
        jit = self.jits[jkey] = TinyJit(fxn)
        jit.cnt = 1  # the unjitted first call already ran: capture now
        _stats["jit_captures"] += 1
      jit(*(x for i, x in enumerate(inputs) if i not in held), *values)
    n_out = sum(e is _TENSOR for e in self.extras[key])
    for t, value in zip((t for t, here in zip(targets, in_place) if not here), values[n_out:]): _store(t, value)
    fresh = iter(values[:n_out])
    given.clear()
    return [device.wrap(next(fresh)) if e is _TENSOR else e for e in self.extras[key]]

  def _held(self, args: list[Any]) -> dict[int, Tensor]:
    """The held inputs, if every one is still its storage's whole, unchanged buffer (an identity check per input, no
    tinygrad work); else none, from now on: a storage given a new buffer (an eager optimizer's step) unholds the graph."""
    if not self.hold: return {}
    for i, x in self.hold.items():
      a = args[i]  # the same buffer, whether or not through the same torch storage (a constant made again, hash-consed)
      if not ((st := device.tiny_storage(a)) is not None
              and st._value is not None and st._value.uop is x.uop and st.slot < 0 and a.storage_offset() == 0 and tuple(a.shape) == x.shape
              and a.is_contiguous()):
        self.hold = {}
        return {}
    return self.hold


def _empty(shape: tuple[int, ...], dtype: Any) -> Tensor:
  """A new allocated buffer, without scheduling anything (a JIT output slot)."""
  t = Tensor.empty(*shape, dtype=dtype, device=Device.DEFAULT)
  t.uop.base.buffer.ensure_allocated()
  return t


def _owns(t: torch.Tensor, x: Tensor) -> bool:
  """Whether the JIT input `x` made for the torch tensor `t` is t's whole storage buffer itself (so writing it is writing t)."""
  if t.device.type != device.BACKEND: return False
  st = device._storage(t)
  return st.bound is None and st.slot < 0 and st.value.uop is x.uop and x.uop.is_realized and x.uop.base.buffer.size == x.numel()


def _store(t: torch.Tensor, value: Tensor) -> None:
  """Give a mutated input its new value: a whole contiguous storage takes the (already fresh) buffer, a view is written through."""
  if t.device.type == "cpu":
    with torch.no_grad(): t.copy_(device.to_cpu(value, t.dtype).reshape(t.shape))
    return
  st = device._storage(t)
  if t.is_contiguous() and t.storage_offset() == 0 and t.numel() == st.buf.numel() and value.dtype == st.buf.dtype: st.buf = value.reshape(-1)
  else: device.write(t, value)


def _inputs(args: Sequence[Any]) -> list[Any]:
  """JIT inputs: each tiny torch tensor as its own realized contiguous tinygrad buffer; Python numbers as they are."""
  out: list[Any] = []
  for a in args:
    if a is None:  # held by the JIT (TinyGraph._held)
      out.append(a)
      continue
    if isinstance(a, torch.SymInt): a = int(a)
    if isinstance(a, torch.Tensor):
      if a.device.type == "cpu" and a.ndim == 0: a = device.from_cpu(a)  # a CPU scalar (an optimizer's step count), as in eager
      elif a.device.type != device.BACKEND: raise RuntimeError(f"tiny compile: an input is on {a.device}; move model and data with .to('tiny')")
      else: a = device.unwrap(a)
      a = a.contiguous() if a.uop.device is not None else a.clone(device=Device.DEFAULT)  # a constant has no device until placed
    out.append(a)
  if pending := [x for x in out if isinstance(x, Tensor) and not x.uop.is_realized]: Tensor.realize(*pending)
  seen: set = set()
  for i, x in enumerate(out):  # the JIT needs distinct buffers: a second view of one storage gets its own copy
    if isinstance(x, Tensor):
      if x.uop.base in seen: out[i] = x = x.clone().realize()
      seen.add(x.uop.base)
  return out


def _eager(gm: torch.fx.GraphModule) -> Callable:
  """Run the FX graph op by op on the eager tiny device (its ops dispatch to the same table, or PyTorch decompositions)."""
  def run(args: list[Any]) -> Any:
    out = gm(*args)
    args.clear()
    return out
  run._boxed_call = True
  return run


def _compile_graph(gm: torch.fx.GraphModule, example_inputs: Sequence[Any]) -> Callable:
  _stats["graphs"] += 1
  try: graph = TinyGraph(gm)
  except NotImplementedError as e:
    _stats["fallbacks"] += 1
    warnings.warn(f"tiny compile: graph runs eagerly on the tiny device: {e}", stacklevel=2)
    return _eager(gm)
  graph._boxed_call = True
  return graph


def _decompositions() -> dict:
  """PyTorch's decompositions of the aten ops the table lacks (so aot_autograd hands us only table ops where it can)."""
  from torch._decomp import decomposition_table
  have = set(table.names())
  return {op: fn for op, fn in decomposition_table.items()
          if isinstance(op, torch._ops.OpOverload) and op.namespace == "aten" and table.canonical_name(op) not in have}


def tiny(gm: torch.fx.GraphModule, example_inputs: Sequence[Any]) -> Callable:
  """The "tiny" torch.compile backend (aot_autograd: forward and backward both lowered)."""
  return aot_autograd(fw_compiler=_compile_graph, bw_compiler=_compile_graph, decompositions=_decompositions(),
                      keep_inference_input_mutations=True)(gm, example_inputs)


_saved_config: dict[str, Any] = {}


def install() -> None:
  """Compile with static shapes: a new input shape is one more dynamo compilation (bounded by its recompile limit) and one
  JIT capture, then replays. Dynamo's automatic dynamic shapes would trace symbolic sizes through the tiny device's
  meta views, which need concrete sizes. Done on import; `uninstall()` restores dynamo's setting."""
  if not _saved_config: _saved_config["automatic_dynamic_shapes"] = torch._dynamo.config.automatic_dynamic_shapes
  torch._dynamo.config.automatic_dynamic_shapes = False


def uninstall() -> None:
  """Restore dynamo's own shape setting (the "tiny" backend stays registered)."""
  if _saved_config: torch._dynamo.config.automatic_dynamic_shapes = _saved_config.pop("automatic_dynamic_shapes")


install()
