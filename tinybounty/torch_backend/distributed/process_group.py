"""`TinyProcessGroup`: torch.distributed collectives on tiny tensors, run by gloo on host staging copies.

PyTorch lets a Python `ProcessGroup` subclass serve as a backend (`Backend.register_backend`, as its own threaded and
mock process groups do); c10d's C++ callers (DDP's reducer, `_broadcast_coalesced`, the parameter-shape check) reach
these methods through the pybind trampoline, Python callers (`dist.all_reduce`, FSDP's `all_gather_into_tensor`) by
name. Every collective stages its tiny inputs to the host (staging.py), runs the matching gloo collective, and copies
the outputs back when waited on. CPU tensors go to gloo as they are.

Before each collective the ranks exchange a small signature (collective, dtype, shape) through gloo, so a shape,
dtype or call-order mismatch across ranks raises an error naming every rank's shape instead of corrupting data or
hanging; `TINY_DIST_CHECKS=0` skips that exchange (one small allgather per collective).
"""
from __future__ import annotations

import os
from datetime import timedelta
from typing import Callable, Sequence

import torch
import torch.distributed as dist
from torch._C._distributed_c10d import (
  AllgatherOptions,
  AllreduceOptions,
  AllToAllOptions,
  BarrierOptions,
  BroadcastOptions,
  GatherOptions,
  PrefixStore,
  ProcessGroupGloo,
  ReduceOp,
  ReduceOptions,
  ReduceScatterOptions,
  ScatterOptions,
)

from tinybounty.torch_backend.distributed.staging import TinyWork, check_device, from_host, host_like, to_host
from tinybounty.torch_backend.stats import count

_OPS = ("allreduce", "broadcast", "allgather", "all_gather_single", "reduce_scatter", "reduce_scatter_single", "all_to_all_single",
        "alltoall", "barrier", "reduce", "gather", "scatter", "allreduce_coalesced")
_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64,
           torch.bool)
_MAX_DIMS = 8


def _reduce_op(opts: AllreduceOptions | ReduceOptions | ReduceScatterOptions) -> tuple[ReduceOp.RedOpType, bool]:
  """gloo's reduce op for opts.reduceOp, and whether to divide by the world size afterwards (AVG: gloo has no average)."""
  op = opts.reduceOp
  for kind in (ReduceOp.SUM, ReduceOp.MAX, ReduceOp.MIN, ReduceOp.PRODUCT, ReduceOp.BAND, ReduceOp.BOR, ReduceOp.BXOR):
    if op == kind: return kind, False
  if op == ReduceOp.AVG: return ReduceOp.SUM, True
  raise ValueError(f"tiny process group: reduce op {op.op if hasattr(op, 'op') else op} is not supported (SUM, AVG, MAX, MIN, PRODUCT, "
                   "BAND, BOR, BXOR are)")


def _average(host: torch.Tensor, world: int) -> None:
  if host.is_floating_point(): host.div_(world)
  else: host.copy_(torch.div(host, world, rounding_mode="trunc"))  # NCCL's integer average truncates


class TinyProcessGroup(dist.ProcessGroup):
  """A process group whose collectives accept tiny (and CPU) tensors; gloo carries the bytes (TCP between hosts)."""

  def __init__(self, store: dist.Store, rank: int, size: int, timeout: timedelta) -> None:
    super().__init__(rank, size)
    self._rank, self._size = rank, size
    self._gloo = ProcessGroupGloo(PrefixStore("tiny_gloo/", store), rank, size, timeout)
    self.check_shapes = os.environ.get("TINY_DIST_CHECKS", "1") != "0"

  def getBackendName(self) -> str:
    return "tiny"

  # the base class keeps a group's name and description in its C++ backends, and this group registers none
  def setGroupName(self, name: str) -> None:
    self._group_name = name

  def getGroupName(self) -> str:
    return getattr(self, "_group_name", "")

  def setGroupDesc(self, desc: str) -> None:
    self._group_desc = desc

  def getGroupDesc(self) -> str:
    return getattr(self, "_group_desc", "")

  def rank(self) -> int:
    return self._rank

  def size(self) -> int:
    return self._size

  # ***** helpers *****

  def _agree(self, op: str, tensors: Sequence[torch.Tensor], shapes: bool = True) -> None:
    """Raise on every rank when the ranks did not call the same collective on tensors of the same dtype and shape."""
    if not self.check_shapes or self._size == 1: return
    t = tensors[0] if tensors else None
    sig = [_OPS.index(op), _DTYPES.index(t.dtype) if t is not None and t.dtype in _DTYPES else -1, len(tensors)]
    dims = list(t.shape) if t is not None and shapes else []
    sig += [len(dims)] + (dims + [-1] * _MAX_DIMS)[:_MAX_DIMS] if len(dims) <= _MAX_DIMS else [-2, t.numel()] + [-1] * (_MAX_DIMS - 1)
    mine = torch.tensor(sig, dtype=torch.int64)
    everyone = [torch.empty_like(mine) for _ in range(self._size)]
    self._gloo.allgather([everyone], [mine], AllgatherOptions()).wait()
    if all(torch.equal(e, everyone[0]) for e in everyone): return
    def describe(s: torch.Tensor) -> str:
      s = s.tolist()
      dtype = _DTYPES[s[1]] if s[1] >= 0 else "?"
      shape = tuple(s[4:4 + s[3]]) if s[3] >= 0 else f"numel {s[4]}"
      return f"{_OPS[s[0]]}(dtype={dtype}, shape={shape}, tensors={s[2]})"
    per_rank = "; ".join(f"rank {r}: {describe(e)}" for r, e in enumerate(everyone))
    raise RuntimeError(f"tiny process group: ranks disagree on collective #{op}: {per_rank}. Every rank must call the same collectives, "
                       "in the same order, on tensors of the same shape and dtype")

  def _work(self, inner: dist.Work | None, result: list[torch.Tensor], finish: Callable[[], None] | None = None) -> TinyWork:
    count("collectives")
    return TinyWork(inner, finish, result)

  def _copy_back(self, pairs: list[tuple[torch.Tensor, torch.Tensor]], world_average: bool = False) -> Callable[[], None]:
    def finish() -> None:
      for t, host in pairs:
        if world_average: _average(host, self._size)
        from_host(t, host)
    return finish

  # ***** collectives *****

  def allreduce(self, tensors: list[torch.Tensor], opts: AllreduceOptions = AllreduceOptions()) -> TinyWork:
    for i, t in enumerate(tensors): check_device(t, f"all_reduce tensor {i}")
    self._agree("allreduce", tensors)
    op, average = _reduce_op(opts)
    hosts = [to_host(t) for t in tensors]
    inner = self._gloo.allreduce(hosts, _allreduce_options(op))
    return self._work(inner, list(tensors), self._copy_back(list(zip(tensors, hosts)), average))

  def allreduce_coalesced(self, tensors: list[torch.Tensor], opts: AllreduceOptions = AllreduceOptions()) -> TinyWork:
    """One allreduce of the tensors flattened into a single host buffer (they must share a dtype, as gloo requires)."""
    for i, t in enumerate(tensors): check_device(t, f"all_reduce_coalesced tensor {i}")
    if len({t.dtype for t in tensors}) > 1: raise ValueError("tiny process group: all_reduce_coalesced needs tensors of one dtype")
    self._agree("allreduce_coalesced", [torch.empty(sum(t.numel() for t in tensors), dtype=tensors[0].dtype)])
    op, average = _reduce_op(opts)
    flat = torch.cat([to_host(t).reshape(-1) for t in tensors])
    inner = self._gloo.allreduce([flat], _allreduce_options(op))
    def finish() -> None:
      if average: _average(flat, self._size)
      for t, part in zip(tensors, flat.split([t.numel() for t in tensors])): from_host(t, part.reshape(t.shape))
    return self._work(inner, list(tensors), finish)

  def broadcast(self, tensors: list[torch.Tensor], opts: BroadcastOptions = BroadcastOptions()) -> TinyWork:
    for i, t in enumerate(tensors): check_device(t, f"broadcast tensor {i}")
    self._agree("broadcast", tensors)
    root = opts.rootRank == self._rank
    hosts = [to_host(t) if root else host_like(t) for t in tensors]
    inner = self._gloo.broadcast(hosts, opts)
    return self._work(inner, list(tensors), None if root else self._copy_back(list(zip(tensors, hosts))))

  def allgather(self, output_tensors: list[list[torch.Tensor]], input_tensors: list[torch.Tensor],
                opts: AllgatherOptions = AllgatherOptions()) -> TinyWork:
    for i, t in enumerate(input_tensors): check_device(t, f"all_gather input {i}")
    for outs in output_tensors:
      if len(outs) != self._size:
        raise ValueError(f"tiny process group: all_gather needs {self._size} output tensors (the world size), got {len(outs)}")
      for i, t in enumerate(outs):
        check_device(t, f"all_gather output {i}")
        if t.shape != input_tensors[0].shape: raise ValueError(f"tiny process group: all_gather output {i} has shape {tuple(t.shape)}, "
                                                              f"the input {tuple(input_tensors[0].shape)}")
    self._agree("allgather", input_tensors)
    hosts_in = [to_host(t) for t in input_tensors]
    hosts_out = [[host_like(t) for t in outs] for outs in output_tensors]
    inner = self._gloo.allgather(hosts_out, hosts_in, opts)
    pairs = [(t, h) for outs, hs in zip(output_tensors, hosts_out) for t, h in zip(outs, hs)]
    return self._work(inner, [t for outs in output_tensors for t in outs], self._copy_back(pairs))

  def all_gather_single(self, output: torch.Tensor, input: torch.Tensor, opts: AllgatherOptions = AllgatherOptions()) -> TinyWork:
    check_device(input, "all_gather_into_tensor input")
    check_device(output, "all_gather_into_tensor output")
    if output.numel() != input.numel() * self._size:
      raise ValueError(f"tiny process group: all_gather_into_tensor output has {output.numel()} elements, needs world size "
                       f"{self._size} x input's {input.numel()}")
    self._agree("all_gather_single", [input])
    host_out = host_like(output)
    inner = self._gloo._allgather_base(host_out, to_host(input), opts)
    return self._work(inner, [output], self._copy_back([(output, host_out)]))

  _allgather_base = all_gather_single

  def all_gather_single_coalesced(self, outputs: list[torch.Tensor], inputs: list[torch.Tensor],
                                  opts: AllgatherOptions = AllgatherOptions()) -> TinyWork:
    works = [self.all_gather_single(o, i, opts) for o, i in zip(outputs, inputs)]
    return self._work(None, list(outputs), lambda: [w.wait() for w in works] and None)

  def reduce_scatter(self, outputs: list[torch.Tensor], input_lists: list[list[torch.Tensor]],
                     opts: ReduceScatterOptions = ReduceScatterOptions()) -> TinyWork:
    for i, t in enumerate(outputs): check_device(t, f"reduce_scatter output {i}")
    for ins in input_lists:
      if len(ins) != self._size: raise ValueError(f"tiny process group: reduce_scatter needs {self._size} inputs (the world size), got {len(ins)}")
      for i, t in enumerate(ins): check_device(t, f"reduce_scatter input {i}")
    self._agree("reduce_scatter", outputs)
    op, average = _reduce_op(opts)
    hosts_out = [host_like(t) for t in outputs]
    inner = self._gloo.reduce_scatter(hosts_out, [[to_host(t) for t in ins] for ins in input_lists], _reduce_scatter_options(op))
    return self._work(inner, list(outputs), self._copy_back(list(zip(outputs, hosts_out)), average))

  def reduce_scatter_single(self, output: torch.Tensor, input: torch.Tensor, opts: ReduceScatterOptions = ReduceScatterOptions()) -> TinyWork:
    check_device(input, "reduce_scatter_tensor input")
    check_device(output, "reduce_scatter_tensor output")
    if input.numel() != output.numel() * self._size:
      raise ValueError(f"tiny process group: reduce_scatter_tensor input has {input.numel()} elements, needs world size "
                       f"{self._size} x output's {output.numel()}")
    self._agree("reduce_scatter_single", [output])
    op, average = _reduce_op(opts)
    host_out = host_like(output)
    inner = self._gloo._reduce_scatter_base(host_out, to_host(input), _reduce_scatter_options(op))
    return self._work(inner, [output], self._copy_back([(output, host_out)], average))

  _reduce_scatter_base = reduce_scatter_single

  def reduce_scatter_single_coalesced(self, outputs: list[torch.Tensor], inputs: list[torch.Tensor],
                                      opts: ReduceScatterOptions = ReduceScatterOptions()) -> TinyWork:
    works = [self.reduce_scatter_single(o, i, opts) for o, i in zip(outputs, inputs)]
    return self._work(None, list(outputs), lambda: [w.wait() for w in works] and None)

  def all_to_all_single(self, output: torch.Tensor, input: torch.Tensor, output_split_sizes: list[int], input_split_sizes: list[int],
                        opts: AllToAllOptions = AllToAllOptions()) -> TinyWork:
    check_device(input, "all_to_all_single input")
    check_device(output, "all_to_all_single output")
    self._agree("all_to_all_single", [input], shapes=False)  # split sizes legitimately differ between ranks
    host_out = host_like(output)
    inner = self._gloo.alltoall_base(host_out, to_host(input), list(output_split_sizes), list(input_split_sizes), opts)
    return self._work(inner, [output], self._copy_back([(output, host_out)]))

  alltoall_base = all_to_all_single

  def alltoall(self, outputs: list[torch.Tensor], inputs: list[torch.Tensor], opts: AllToAllOptions = AllToAllOptions()) -> TinyWork:
    """all_to_all on lists: input i goes to rank i, output j comes from rank j; run as one all_to_all_single of flat buffers."""
    if len(outputs) != self._size or len(inputs) != self._size:
      raise ValueError(f"tiny process group: all_to_all needs {self._size} inputs and outputs (the world size), got {len(inputs)} and {len(outputs)}")
    for i, t in enumerate(inputs): check_device(t, f"all_to_all input {i}")
    for i, t in enumerate(outputs): check_device(t, f"all_to_all output {i}")
    self._agree("alltoall", inputs, shapes=False)
    flat_in = torch.cat([to_host(t).reshape(-1) for t in inputs])
    flat_out = torch.empty(sum(t.numel() for t in outputs), dtype=outputs[0].dtype)
    inner = self._gloo.alltoall_base(flat_out, flat_in, [t.numel() for t in outputs], [t.numel() for t in inputs], opts)
    def finish() -> None:
      for t, part in zip(outputs, flat_out.split([t.numel() for t in outputs])): from_host(t, part.reshape(t.shape))
    return self._work(inner, list(outputs), finish)

  def barrier(self, opts: BarrierOptions = BarrierOptions()) -> TinyWork:
    self._agree("barrier", [])
    return self._work(self._gloo.barrier(BarrierOptions()), [])

  def reduce(self, tensors: list[torch.Tensor], opts: ReduceOptions = ReduceOptions()) -> TinyWork:
    for i, t in enumerate(tensors): check_device(t, f"reduce tensor {i}")
    self._agree("reduce", tensors)
    op, average = _reduce_op(opts)
    hosts = [to_host(t) for t in tensors]
    gloo_opts = ReduceOptions()
    gloo_opts.reduceOp, gloo_opts.rootRank, gloo_opts.rootTensor = op, opts.rootRank, opts.rootTensor
    inner = self._gloo.reduce(hosts, gloo_opts)
    root = opts.rootRank == self._rank
    return self._work(inner, list(tensors), self._copy_back(list(zip(tensors, hosts)), average) if root else None)

  def gather(self, output_lists: list[list[torch.Tensor]], inputs: list[torch.Tensor], opts: GatherOptions = GatherOptions()) -> TinyWork:
    for i, t in enumerate(inputs): check_device(t, f"gather input {i}")
    self._agree("gather", inputs)
    hosts_out = [[host_like(t) for t in outs] for outs in output_lists]
    inner = self._gloo.gather(hosts_out, [to_host(t) for t in inputs], opts)
    pairs = [(t, h) for outs, hs in zip(output_lists, hosts_out) for t, h in zip(outs, hs)]
    return self._work(inner, [t for outs in output_lists for t in outs], self._copy_back(pairs))

  def scatter(self, outputs: list[torch.Tensor], input_lists: list[list[torch.Tensor]], opts: ScatterOptions = ScatterOptions()) -> TinyWork:
    for i, t in enumerate(outputs): check_device(t, f"scatter output {i}")
    self._agree("scatter", outputs)
    hosts_out = [host_like(t) for t in outputs]
    inner = self._gloo.scatter(hosts_out, [[to_host(t) for t in ins] for ins in input_lists], opts)
    return self._work(inner, list(outputs), self._copy_back(list(zip(outputs, hosts_out))))

  def send(self, tensors: list[torch.Tensor], dst: int, tag: int = 0) -> TinyWork:
    for i, t in enumerate(tensors): check_device(t, f"send tensor {i}")
    hosts = [to_host(t) for t in tensors]
    return self._work(self._gloo.send(hosts, dst, tag), list(hosts))  # the work keeps the host buffers alive until sent

  def recv(self, tensors: list[torch.Tensor], src: int, tag: int = 0) -> TinyWork:
    for i, t in enumerate(tensors): check_device(t, f"recv tensor {i}")
    hosts = [host_like(t) for t in tensors]
    return self._work(self._gloo.recv(hosts, src, tag), list(tensors), self._copy_back(list(zip(tensors, hosts))))

  def recv_anysource(self, tensors: list[torch.Tensor], tag: int = 0) -> TinyWork:
    for i, t in enumerate(tensors): check_device(t, f"recv tensor {i}")
    hosts = [host_like(t) for t in tensors]
    return self._work(self._gloo.recv_anysource(hosts, tag), list(tensors), self._copy_back(list(zip(tensors, hosts))))


def _allreduce_options(op: ReduceOp.RedOpType) -> AllreduceOptions:
  opts = AllreduceOptions()
  opts.reduceOp = op
  return opts


def _reduce_scatter_options(op: ReduceOp.RedOpType) -> ReduceScatterOptions:
  opts = ReduceScatterOptions()
  opts.reduceOp = op
  return opts


def create(store: dist.Store, rank: int, size: int, timeout: timedelta) -> TinyProcessGroup:
  """The creator `Backend.register_backend` calls for a group on the "tiny" backend."""
  return TinyProcessGroup(store, rank, size, timeout)
