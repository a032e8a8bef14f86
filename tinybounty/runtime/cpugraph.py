"""A graph executor for tinygrad's CPU device (clang and LLVM backends): TinyJit replays a batch of kernels in one native call.

Stock tinygrad 0.14.0 gives the CPU device no graph, so every kernel of a jitted step is a separate Python-driven
launch. `install()` gives CPU devices the `CPUGraph` runner: TinyJit's graph split then batches consecutive CPU kernels,
and each batch runs as one call into a generated entry point (see cpugraph_entry) that calls every kernel with its
arguments read from a table. Between replays only the table words of input buffers and symbolic variables are
rewritten, the way the CUDA and HCQ graphs patch theirs.

Calls that stay outside a graph, each run by tinygrad as before (`fallbacks()` counts them in a captured JIT):
  copy          a COPY (CPU<->other devices, disk); tinygrad's graph split only batches programs
  lvp           an LVP (mesa) program, which takes a packed argument struct instead of a C argument list
  symbolic      a kernel whose core_id thread count depends on a variable
  not-cpu       a call on another device, or spanning several devices
  lone          a kernel with no graphable neighbour: tinygrad leaves one-kernel batches ungraphed
  other         any other call (custom functions), or a kernel with a non-integer variable
"""
from __future__ import annotations

import collections
import ctypes
import os
import sys
import time
from typing import Any

from tinygrad.device import Device
from tinygrad.dtype import dtypes
from tinygrad.engine.jit import CapturedJit, GraphRunner, _TinyJit
from tinygrad.engine.realize import get_call_arg_uops, get_graph_runtime
from tinygrad.runtime.ops_cpu import CPUDevice
from tinygrad.uop.ops import Ops, UOp

from tinybounty.runtime.cpugraph_entry import Launch, compile_entry, toolchain

ENV_VAR = "CPUGRAPH"
_MASK = (1 << 64) - 1


def unsupported_reason(call: UOp) -> str | None:
  """Why CPUGraph cannot batch this call (see the module doc for the reasons), or None if it can."""
  if call.src[0].op is Ops.COPY: return "copy"
  if call.src[0].op is not Ops.PROGRAM: return "other"
  devs = {d for b in get_call_arg_uops(call) for d in (b.device if isinstance(b.device, tuple) else (b.device,))}
  if len(devs) != 1 or not next(iter(devs)).startswith("CPU"): return "not-cpu"
  info = call.src[0].arg
  if info.target.renderer == "LVP": return "lvp"
  if not all(isinstance(d, int) for d in info.global_size): return "symbolic"
  if not all(dtypes.is_int(v.dtype) for v in info.vars): return "other"
  return None


def _input_slot(u: UOp) -> int | None:
  """The JIT input slot a kernel argument reads (directly or through a view of it), or None for a buffer the graph owns."""
  while u.op in (Ops.SHRINK, Ops.BITCAST): u = u.src[0]
  return u.arg.slot if u.op is Ops.PARAM else None


def _launch(info: Any) -> Launch:
  """How the native entry calls one kernel: its argument types, its core count and which argument is its core id."""
  core_id = next((len(info.globals) + i for i, v in enumerate(info.vars) if v.expr == "core_id"), None)
  return Launch((None,) * len(info.globals) + tuple(v.dtype for v in info.vars), int(info.global_size[0]), core_id)


def _words(rt: Any, info: Any, addrs: list[int], var_vals: dict[str, int] | None) -> list[int]:
  """One kernel's table words: its function's address, its buffers' addresses, its variables' values (None: zeros,
  patched before each call)."""
  return [rt.addr, *addrs, *(0 if var_vals is None or v.expr == "core_id" else var_vals[v.expr] & _MASK for v in info.vars)]


class CPUGraph(GraphRunner):
  """A batch of CPU kernels replayed through one native entry point; inputs and variables are patched per replay."""

  def __init__(self, linear: UOp, input_uops: tuple[UOp, ...] = ()):
    super().__init__(linear, input_uops)
    assert len(self.calls) == len(self.linear.src), "CPUGraph batches single-device calls only"
    launches: list[Launch] = []
    words: list[int] = []
    self._inputs: dict[int, list[tuple[int, int]]] = collections.defaultdict(list)  # input slot -> [(table index, byte offset)]
    self._vars: dict[str, list[int]] = collections.defaultdict(list)  # variable -> [table index]
    for call, (_, prg, bufs, _), rt in zip(self.linear.src, self.calls, self.runtimes):
      info, arg_uops, base = prg.arg, get_call_arg_uops(call), len(words) + 1
      launches.append(_launch(info))
      words += _words(rt, info, [bufs[g]._buf.va_addr for g in info.globals], None)
      for k, g in enumerate(info.globals):
        if (slot := _input_slot(arg_uops[g])) is not None:
          self._inputs[slot].append((base + k, bufs[g]._buf.va_addr - input_uops[slot].buffer._buf.va_addr))
      for i, v in enumerate(info.vars):
        if v.expr != "core_id": self._vars[v.expr].append(base + len(info.globals) + i)
    self.launches = launches
    self._table = (ctypes.c_uint64 * len(words))(*words)
    self._words, self._table_addr = memoryview(self._table).cast("B").cast("Q"), ctypes.addressof(self._table)
    self.toolchain = toolchain(target := self.calls[0][1].arg.target)
    self._entry = compile_entry(launches, target)

  @staticmethod
  def supports_uop(batch_devs: list[Any], new_call: UOp) -> bool:
    return unsupported_reason(new_call) is None and GraphRunner.supports_uop(batch_devs, new_call)

  def __call__(self, input_uops: tuple[UOp, ...], var_vals: dict[str, int], wait: bool = False) -> float | None:
    st, words = time.perf_counter(), self._words
    for slot, uses in self._inputs.items():
      addr = input_uops[slot].buffer._buf.va_addr
      for idx, off in uses: words[idx] = addr + off
    for name, idxs in self._vars.items():
      val = var_vals[name] & _MASK
      for idx in idxs: words[idx] = val
    self._entry(self._table_addr)
    return time.perf_counter() - st if wait else None


class KernelBatch:
  """CPU kernels called in order through one native entry, outside TinyJit (the tiny device's captured steps).

  `calls` holds per kernel (runtime, its ProgramInfo, its buffers in argument order with None where a parameter goes,
  [(argument position, parameter index)], variable values). Calling the batch with the parameters' buffers patches
  their table words and runs every kernel, as `runtime(*buffers, vals=...)` one by one would.
  """
  def __init__(self, calls: list[tuple[Any, Any, list[Any], list[tuple[int, int]], dict[str, int]]]) -> None:
    launches: list[Launch] = []
    words: list[int] = []
    self._params: list[tuple[int, int]] = []  # (table index, parameter index)
    for rt, info, bufs, params, var_vals in calls:
      base, at = len(words) + 1, dict(params)
      launches.append(_launch(info))
      words += _words(rt, info, [0 if bufs[g] is None else bufs[g]._buf.va_addr for g in info.globals], var_vals)
      self._params += [(base + k, at[g]) for k, g in enumerate(info.globals) if g in at]
    self._table = (ctypes.c_uint64 * len(words))(*words)
    self._words, self._table_addr = memoryview(self._table).cast("B").cast("Q"), ctypes.addressof(self._table)
    self._entry = compile_entry(launches, calls[0][1].target)

  def __call__(self, params: list[Any]) -> None:
    words = self._words
    for idx, p in self._params: words[idx] = params[p]._buf.va_addr
    self._entry(self._table_addr)


def batchable(call: UOp) -> bool:
  """Whether KernelBatch can run this call (CPUGRAPH=0 in the environment: never)."""
  return os.environ.get(ENV_VAR, "1") != "0" and unsupported_reason(call) is None


def _captured_calls(jit: _TinyJit | CapturedJit) -> tuple[UOp, ...]:
  captured = jit.captured if isinstance(jit, _TinyJit) else jit
  if captured is None: raise ValueError("the JIT has not captured yet: call it at least twice first")
  return captured.linear.src


def _is_graph(call: UOp) -> bool: return call.src[0].op is Ops.CUSTOM_FUNCTION and call.src[0].arg == "graph"


def graphs(jit: _TinyJit | CapturedJit) -> list[GraphRunner]:
  """The graph runners of a captured JIT that have run at least once (CPUGraph for CPU batches)."""
  return [r for call in _captured_calls(jit) if _is_graph(call) and (r := get_graph_runtime(call.src[0])) is not None]


def fallbacks(jit: _TinyJit | CapturedJit) -> collections.Counter[str]:
  """What a captured JIT runs: `graphs` batches holding `graphed` kernels, and a count per reason of the calls left outside."""
  counts: collections.Counter[str] = collections.Counter()
  for call in _captured_calls(jit):
    if _is_graph(call): counts.update(graphs=1, graphed=len(call.src[0].src[0].src))
    else: counts[unsupported_reason(call) or "lone"] += 1
  return counts


_stock_init: Any = None


def _cpu_devices() -> list[CPUDevice]:
  return [d for name in sorted(Device._opened_devices) if isinstance(d := Device[name], CPUDevice)]


def installed() -> bool:
  """Whether install() is in effect."""
  return _stock_init is not None


def install() -> bool:
  """Give tinygrad's CPU devices the CPUGraph runner: TinyJits captured from now on replay their CPU kernels in batches.

  `CPUGRAPH=0` in the environment turns this into a no-op (to compare with stock TinyJit without editing code).
  Returns whether CPUGraph is installed. Reversed by uninstall().
  """
  global _stock_init
  if os.environ.get(ENV_VAR, "1") == "0" or installed(): return installed()
  if sys.platform == "win32": raise NotImplementedError("CPUGraph renders the SysV/AAPCS calling convention; Windows' ms_abi is not supported")
  _stock_init = stock = CPUDevice.__init__

  def init(self: CPUDevice, *args: Any, **kwargs: Any) -> None:
    stock(self, *args, **kwargs)
    self.graph = CPUGraph
  CPUDevice.__init__ = init  # type: ignore[method-assign]
  for dev in _cpu_devices(): dev.graph = CPUGraph
  return True


def uninstall() -> None:
  """Restore stock behaviour: CPU devices have no graph again. JITs captured while installed keep their graphs."""
  global _stock_init
  if not installed(): return
  CPUDevice.__init__, _stock_init = _stock_init, None  # type: ignore[method-assign]
  for dev in _cpu_devices():
    if dev.graph is CPUGraph: dev.graph = None
