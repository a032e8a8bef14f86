"""The eager `tiny` device: PyTorch's Python-backend seam (PrivateUse1 renamed "tiny") over the op table (table.py,
filled by the op families that ops.py imports).

Representation (docs/torch_backend.md): a torch tensor on "tiny" is a real PyTorch TensorImpl (sizes, strides,
storage_offset, version counter, autograd views) whose storage has no bytes; the storage's Python object carries a
`TinyStorage`, whose `buf` is a flat tinygrad Tensor of the storage's elements. Views share the torch storage, so they
share `buf`. Reading a tensor builds its strided view of `buf` with movement ops; an in-place op writes its result
back into `buf` through the same layout (strided.py), so every view of that storage sees the write; written storages
are realized in batches (flush()).
"""
from __future__ import annotations

import os
import warnings
import weakref
from typing import Any, Callable

import numpy as np
import torch
from tinygrad import Device, Tensor, dtypes
from tinygrad.uop.ops import UOp
from torch.optim.optimizer import register_optimizer_step_post_hook

from tinybounty.torch_backend import ops, table
from tinybounty.torch_backend.stats import count, on_device, to_host
from tinybounty.torch_backend.strided import gather_read, strided_read, strided_write

BACKEND = "tiny"
_META = torch._C.DispatchKeySet(torch._C.DispatchKey.Meta)


class TinyStorage:
  """The memory behind one torch storage: a tinygrad Tensor, replaced (never mutated) by each write.

  `value` is kept in the shape it was made in, so a tensor that is the whole storage reads back without a reshape;
  `buf` is its flat form (one element per storage element), made on first need. Under capture (capture.py) a storage
  may instead hold a `slot` of the step being recorded (its value is not computed yet), or a `bound` realized buffer
  (the tinygrad Buffer and shape a replay wrote), of which the Tensor is made on first read."""
  __slots__ = ("_value", "_buf", "slot", "bound", "__weakref__")

  def __init__(self, value: Tensor | None) -> None:
    self._value, self._buf, self.slot, self.bound = value, None, -1, None

  @property
  def value(self) -> Tensor:
    if self.slot >= 0: materialize_hook()  # an eager path reads a value the recorded step has not computed yet
    if self._value is None:
      buf, shape = self.bound
      self._value = Tensor(UOp.from_buffer(buf)).reshape(shape)
    return self._value

  @value.setter
  def value(self, value: Tensor) -> None:
    self._value, self.slot, self.bound = value, -1, None

  @property
  def buf(self) -> Tensor:
    if self._buf is None or self.slot >= 0: self._buf = self.value.reshape(-1) if self.value.ndim != 1 else self.value
    return self._buf

  @buf.setter
  def buf(self, flat: Tensor) -> None:
    self.value, self._buf = flat, flat


def materialize_hook() -> None:
  raise RuntimeError("tiny: a storage holds a slot of a recorded step, but no capture is installed")


def _storage(t: torch.Tensor) -> TinyStorage:
  try:
    return t.untyped_storage()._tiny
  except AttributeError:
    raise RuntimeError(f"tiny: tensor of shape {tuple(t.shape)} on {t.device} has no tinygrad storage") from None


def tiny_storage(x: Any) -> TinyStorage | None:
  """The tinygrad storage behind `x` if it is a tiny tensor, else None."""
  return getattr(x.untyped_storage(), "_tiny", None) if isinstance(x, torch.Tensor) else None


def _new(shape: tuple[int, ...], dtype: torch.dtype, buf: Tensor) -> torch.Tensor:
  t = torch._C._acc.create_empty_tensor(shape, dtype)
  t.untyped_storage()._tiny = st = TinyStorage(on_device(table.storable(buf, dtype)))
  made(st)
  return t


def made(st: TinyStorage) -> None:
  """Note a storage made since the last sync: if still alive and lazy there, it is realized with the pending writes."""
  _fresh[_made[0]] = st
  _made[0] += 1


def wrap(x: Tensor) -> torch.Tensor:
  """A new tiny torch tensor (own storage) holding the tinygrad tensor `x`."""
  return _new(tuple(x.shape), table.to_torch_dtype(x.dtype), x)


def unwrap(t: torch.Tensor) -> Tensor:
  """The tinygrad value of a tiny torch tensor, read through its strides."""
  return read(_storage(t), tuple(t.shape), t.stride(), t.storage_offset(), t.dtype)


def read(st: TinyStorage, size: tuple[int, ...], stride: tuple[int, ...], off: int, dtype: torch.dtype,
         offset_on_device: bool = False) -> Tensor:
  """The view (size, stride, storage offset, dtype) of a storage's value, with movement ops only; `offset_on_device`:
  a gather at positions from an offset in device memory (a captured step's small view at a moving offset)."""
  contiguous = _is_contiguous(size, stride)
  if not offset_on_device and st.value.shape == size and st.value.dtype == table.TORCH_TO_TINY.get(dtype) and off == 0 and contiguous: return st.value
  buf = st.buf
  if (want := table.to_tiny_dtype(dtype)) != buf.dtype:
    if want.itemsize != buf.dtype.itemsize: raise NotImplementedError(f"tiny: viewing {buf.dtype} storage as {dtype}")
    buf = buf.bitcast(want)
  n = prod_(size)
  if n == 0: return Tensor.empty(*size, dtype=want)
  if offset_on_device: return gather_read(buf, size, stride, off)
  if contiguous:
    if off == 0 and n == buf.shape[0]: return buf.reshape(size)
    if moving_slice(size, stride, off, dtype): return _moving_slice(buf, off, n)
    return buf.shrink(((off, off + n),)).reshape(size)
  return strided_read(buf, size, stride, off)


def prod_(size: tuple[int, ...]) -> int:
  n = 1
  for s in size: n *= s
  return n


def _is_contiguous(size: tuple[int, ...], stride: tuple[int, ...]) -> bool:
  """PyTorch's is_contiguous: dims of size 1 may have any stride; an empty tensor is contiguous."""
  expected = 1
  for n, s in zip(reversed(size), reversed(stride)):
    if n == 0: return True
    if n != 1:
      if s != expected: return False
      expected *= n
  return True


def moving_slice(size: tuple[int, ...], stride: tuple[int, ...], off: int, dtype: torch.dtype) -> bool:
  """Whether a view is read as a moving slice (below): 1-d, contiguous, integer, at an offset."""
  return len(size) == 1 and off > 0 and _is_contiguous(size, stride) and dtypes.is_int(table.to_tiny_dtype(dtype))


def _moving_slice(buf: Tensor, offset: int, n: int) -> Tensor:
  """buf[offset:offset+n] of a 1-d integer view, copied out now by a kernel that takes the offset as an argument. A loop
  over such slices (a training loop's batch of a random permutation, perm[i*bs:(i+1)*bs]) would otherwise put a new
  constant into every step's graph: a schedule of the whole step and new kernels each step. The copy is realized here
  so the variable never reaches a later graph, where another binding of it could meet this one."""
  if (hit := _moving_slices.get(key := (buf.uop, offset, n))) is not None: return hit  # a batch's index is read twice
  start = UOp.variable("tiny_slice_offset", 0, buf.shape[0] - n).bind(offset)
  _moving_slices.clear()
  _moving_slices[key] = out = buf.shrink(((start, start + n),)).contiguous().realize()
  return out


_moving_slices: dict[tuple, Tensor] = {}  # the last one: keeps its source's UOp alive, never more than one


def write(t: torch.Tensor, value: Tensor, uniform: bool = False) -> torch.Tensor:
  """Write `value` (broadcast to t's shape) into t's storage through t's layout; every view of it sees the write.
  `uniform`: the same value everywhere (fill_, zero_), allowed through broadcast dims as on the CPU."""
  st = _storage(t)
  if id(st) in _pending and _made[0] >= SYNC_AFTER: flush(sync=True)
  write_into(st, value, tuple(t.shape), t.stride(), t.storage_offset(), t.dtype, uniform)
  _pending[id(st)] = st
  _pending_writes[0] += 1
  if _pending_writes[0] >= FLUSH_AT: flush()
  return t


def write_into(st: TinyStorage, value: Tensor, size: tuple[int, ...], stride: tuple[int, ...], off: int, dtype: torch.dtype,
               uniform: bool = False) -> None:
  """Replace st's value by its old value with `value` written through the view (size, stride, offset, dtype)."""
  if table.to_tiny_dtype(dtype) != st.buf.dtype: raise NotImplementedError(f"tiny: writing {dtype} into {st.buf.dtype} storage")
  value = on_device(value.cast(st.buf.dtype))
  if tuple(value.shape) != size: value = value.expand(size) if len(size) else value.reshape(())
  if _is_contiguous(size, stride) and off == 0 and prod_(size) == st.buf.shape[0]: st.value, st._buf = value.contiguous(), None
  else: st.buf = strided_write(st.buf, value, size, stride, off, uniform).contiguous()


# Writes are realized in batches, not one by one: a training step's in-place updates (optimizer, running stats,
# gradient accumulation) then schedule together. Every view reads a storage's current value, realized or not, so
# batching changes no result. Flushed when FLUSH_AT writes are pending, after every optimizer step, and on synchronize.
# Writes are counted, not storages: a KV cache written once per token into the same few storages would otherwise
# grow one unrealized chain of writes, recomputed by every read of it (one more kernel per layer and token).
FLUSH_AT = 256
# A program that never reads back (gpt-fast's decoding loop feeds each token to the next step on the device) would
# grow one lazy graph over all its steps, and scheduling is superlinear in a graph's size. A second write into a
# storage whose first write is still pending (a KV cache, one step later), after SYNC_AFTER results were made since
# the last sync, is a sync point: what is alive is realized. It cuts every step at the same place, so each step's
# kernels are the same and compile once.
SYNC_AFTER = int(os.environ.get("TINY_SYNC_AFTER", "200"))
_pending: dict[int, TinyStorage] = {}
_pending_writes = [0]


# Storages made since the last sync point. A lazy result that Python keeps alive (a model's rotary table or mask, a KV
# cache) would otherwise be recomputed inside every later schedule that reads it: at a sync point, every such storage
# still alive is realized with the pending writes (weakly held: the temporaries of a forward pass are gone by then), in
# the order they were made: a set's order (by address) would give each step's schedule another order of the same
# outputs, so tinygrad's schedule cache would miss every step (gpt-fast's decoding: 4.5 s of scheduling per token).
_fresh: weakref.WeakValueDictionary[int, TinyStorage] = weakref.WeakValueDictionary()  # made-since-sync count -> storage
_made = [0]  # storages made since the last sync


def flush(sync: bool = False) -> None:
  """Realize every storage written since the last flush, in one schedule (and end the recorded step: capture.py);
  `sync` (a host read, synchronize()): also every storage made since the last sync that is still alive and unrealized."""
  sync_hook()
  values = [st.value for st in _pending.values()]
  if sync:
    # empty: nothing to realize
    values += [st.value for st in list(_fresh.values()) if id(st) not in _pending and st.value.numel() and not st.value.uop.is_realized]
    _fresh.clear()
    _made[0] = 0
  if not values: return
  _pending.clear()
  _pending_writes[0] = 0
  Tensor.realize(*values)


def _is_tiny(a: Any) -> bool:
  return isinstance(a, torch.Tensor) and a.device.type == BACKEND


def from_cpu(t: torch.Tensor) -> Tensor:
  """A tinygrad tensor on the default device with a CPU tensor's contents (host to device)."""
  shape, t = tuple(t.shape), t.detach().contiguous().reshape(-1)  # never 0-dim: tinygrad makes a numpy scalar a constant
  bf16 = t.dtype == torch.bfloat16
  host, dtype = (t.view(torch.int16).numpy(), dtypes.bfloat16) if bf16 else (t.numpy(), table.to_tiny_dtype(t.dtype))
  if (x := _written(host, dtype)) is not None: return x.reshape(shape)
  x = Tensor(host).bitcast(dtypes.bfloat16) if bf16 else Tensor(host, dtype=dtype)
  return x.reshape(shape).contiguous().realize()  # copy now: the host tensor may change after .to()


def _written(host: np.ndarray, dtype: Any) -> Tensor | None:
  """A new device buffer holding `host`'s bytes, copied in by the device's allocator (None where it has no host copy-in).
  `Tensor(array).realize()` schedules that copy through tinygrad's whole pipeline: 3.2 ms on the CPU against 0.23 ms,
  on every `.to("tiny")` and every CPU scalar (an optimizer's step count) a compiled graph reads."""
  if not host.size or host.nbytes != host.size * dtype.itemsize: return None
  u = UOp.new_buffer(Device.DEFAULT, host.size, dtype)
  buf = u.buffer.allocate()
  if not hasattr(buf.allocator, "_copyin"): return None
  buf.allocator._copyin(buf._buf, memoryview(np.ascontiguousarray(host)).cast("B"))
  return Tensor(u)


def to_cpu(x: Tensor, dtype: torch.dtype) -> torch.Tensor:
  """A CPU torch tensor with a tinygrad tensor's contents (one counted device-to-host transfer)."""
  flush(sync=True)  # a sync point, as .item() is
  if x.dtype == dtypes.bfloat16:
    return torch.from_numpy(np.ascontiguousarray(to_host(x.bitcast(dtypes.int16).contiguous()))).reshape(tuple(x.shape)).view(torch.bfloat16)
  host = np.ascontiguousarray(to_host(x.contiguous()))
  # tinygrad's uint64 arrives as numpy's ulonglong, which torch.from_numpy refuses; the canonical dtype is the same bytes
  return torch.from_numpy(host.view(np.dtype(host.dtype.str))).reshape(tuple(x.shape)).to(dtype)


def _unwrap_args(a: Any) -> Any:
  if isinstance(a, torch.Tensor):
    if a.device.type == BACKEND: return unwrap(a)
    if a.device.type == "cpu" and a.ndim == 0: return from_cpu(a)
    raise RuntimeError(f"tiny: expected all tensors on {BACKEND}, got one on {a.device} of shape {tuple(a.shape)}")
  if isinstance(a, (list, tuple)): return type(a)(_unwrap_args(x) for x in a)
  if isinstance(a, dict): return {k: _unwrap_args(v) for k, v in a.items()}
  return a


def _wrap_results(r: Any) -> Any:
  if isinstance(r, Tensor): return wrap(r)
  if isinstance(r, (list, tuple)): return type(r)(_wrap_results(x) for x in r)
  return r


def _set_like(dst: torch.Tensor, src: torch.Tensor) -> None:
  """Make `dst` (an out= tensor of another shape) alias `src`'s storage and shape, like resize_ then copy_."""
  with torch.no_grad(): dst.data = src


def _assign_out(out: torch.Tensor, value: Tensor) -> None:
  if tuple(out.shape) != tuple(value.shape): _set_like(out, wrap(value.cast(table.to_tiny_dtype(out.dtype))))
  else: write(out, value)


# ***** hooks of the step capture (capture.py installs them; these defaults run every op eagerly) *****

def sync_hook() -> None:
  """Called at every sync point (flush, .item(), .cpu()) before reading device memory."""


def dispatch_hook(kind: str, fn: Callable, eager: Callable, args: tuple, kwargs: dict, extra: Any = None) -> Any:
  """Runs one op; capture.py's version records it instead when the step is known."""
  return eager(*args, **kwargs)


# ***** kernels derived from the table *****

def functional_kernel(fn: Callable) -> Callable:
  def eager(*args: Any, **kwargs: Any) -> Any: return _wrap_results(fn(*_unwrap_args(args), **_unwrap_args(kwargs)))
  def kernel(*args: Any, **kwargs: Any) -> Any: return dispatch_hook("f", fn, eager, args, kwargs)
  return kernel


def inplace_kernel(fn: Callable, uniform: bool = False) -> Callable:
  def eager(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    return write(self, fn(unwrap(self), *_unwrap_args(args), **_unwrap_args(kwargs)), uniform)
  def kernel(*args: Any, **kwargs: Any) -> torch.Tensor: return dispatch_hook("i", fn, eager, args, kwargs, uniform)
  return kernel


def out_kernel(fn: Callable, out_names: list[str]) -> Callable:
  def kernel(*args: Any, **kwargs: Any) -> Any: return dispatch_hook("o", fn, eager, args, kwargs, tuple(out_names))
  def eager(*args: Any, **kwargs: Any) -> Any:
    outs = [kwargs.pop(n) for n in out_names]
    res = fn(*_unwrap_args(args), **_unwrap_args(kwargs))
    res = res if isinstance(res, (tuple, list)) else (res,)
    for o, r in zip(outs, res): _assign_out(o, r)
    return outs[0] if len(outs) == 1 else tuple(outs)
  return kernel


# ***** kernels the device itself provides: views, copies, allocation, scalars *****

def _meta_view(op: torch._ops.OpOverload) -> Callable:
  return lambda *args, **kwargs: op.redispatch(_META, *args, **kwargs)


def _empty_base(extent: int, dtype: torch.dtype) -> torch.Tensor:
  return _new((extent,), dtype, Tensor.empty(extent, dtype=table.to_tiny_dtype(dtype)))


def _empty_strided(size: list[int], stride: list[int], *, dtype: torch.dtype | None = None, **_: Any) -> torch.Tensor:
  dtype = dtype or torch.get_default_dtype()
  extent = 1 + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else 0
  base = dispatch_hook("e", _empty_base, _empty_base, (extent, dtype), {})
  return torch.ops.aten.as_strided.default.redispatch(_META, base, size, stride, 0)


def _empty(size: list[int], *, dtype: torch.dtype | None = None, **_: Any) -> torch.Tensor:
  return _empty_strided(size, torch._prims_common.make_contiguous_strides_for(size), dtype=dtype)


def _cast_to(dst: Tensor, src: Tensor) -> Tensor: return src.cast(dst.dtype)


def _copy(dst: torch.Tensor, src: torch.Tensor, non_blocking: bool = False) -> torch.Tensor:
  if _is_tiny(dst) and _is_tiny(src): return dispatch_hook("i", _cast_to, _copy_eager, (dst, src), {})
  return _copy_eager(dst, src)


def _copy_eager(dst: torch.Tensor, src: torch.Tensor, non_blocking: bool = False) -> torch.Tensor:
  if _is_tiny(dst):
    value = unwrap(src) if _is_tiny(src) else from_cpu(src)
    return write(dst, value.cast(table.to_tiny_dtype(dst.dtype)))
  if dst.device.type != "cpu": raise NotImplementedError(f"tiny: copy from {src.device} to {dst.device}")
  sync_hook()
  with torch.no_grad(): dst.copy_(to_cpu(unwrap(src).cast(table.to_tiny_dtype(dst.dtype)), dst.dtype))
  return dst


def _to_copy(self: torch.Tensor, *, dtype: torch.dtype | None = None, device: Any = None, **_: Any) -> torch.Tensor:
  dtype = dtype or self.dtype
  to_host_ = device is not None and torch.device(device).type == "cpu"
  if _is_tiny(self) and not to_host_:
    return dispatch_hook("f", _cast_fns[dtype], lambda x: wrap(unwrap(x).cast(table.to_tiny_dtype(dtype))), (self,), {})
  if to_host_: sync_hook()
  value = unwrap(self) if _is_tiny(self) else from_cpu(self)
  if to_host_: return to_cpu(value.cast(table.to_tiny_dtype(dtype)), dtype)
  return wrap(value.cast(table.to_tiny_dtype(dtype)))


class _CastFns(dict):
  """One cast function per torch dtype (a stable identity for capture's per-op keys)."""
  def __missing__(self, dtype: torch.dtype) -> Callable:
    fn = self[dtype] = lambda x: x.cast(table.to_tiny_dtype(dtype))
    return fn


_cast_fns = _CastFns()


def _resize(self: torch.Tensor, size: list[int], memory_format: Any = None) -> torch.Tensor:
  if tuple(self.shape) == tuple(size): return self
  n = int(np.prod(size)) if size else 1
  flat = unwrap(self).reshape(-1)
  flat = flat[:n] if flat.shape[0] >= n else flat.pad(((0, n - flat.shape[0]),))
  _set_like(self, _new(tuple(size), self.dtype, flat))
  return self


def _as_strided_(self: torch.Tensor, size: list[int], stride: list[int], storage_offset: int | None = None) -> torch.Tensor:
  """In-place restride (t_, transpose_, squeeze_ ...): same storage, new metadata."""
  _set_like(self, torch.ops.aten.as_strided.default.redispatch(_META, self, size, stride, storage_offset))
  return self


def _set_storage(self: torch.Tensor, source: torch.UntypedStorage, storage_offset: int = 0, size: list[int] | None = None,
                 stride: list[int] | None = None) -> torch.Tensor:
  """`self` as a view of a tiny storage's elements read as `self.dtype` (torch.load's `set_` onto a storage record,
  whose buffer holds bytes). The view gets its own torch storage over the same tinygrad buffer: torch.load reloads a
  record per tensor anyway (it caches records by data pointer, and tiny storages have none)."""
  if (st := getattr(source, "_tiny", None)) is None: raise RuntimeError(f"tiny: set_ needs a storage on {BACKEND}, got one on {source.device}")
  buf, want = st.buf, table.to_tiny_dtype(self.dtype)
  if buf.dtype != want: buf = buf.cast(want) if want == dtypes.bool else buf.bitcast(want)
  size = list(size) if size is not None else [buf.shape[0]]
  stride = list(stride) if stride is not None else torch._prims_common.make_contiguous_strides_for(size)
  _set_like(self, torch.ops.aten.as_strided.default.redispatch(_META, _new(tuple(buf.shape), self.dtype, buf), size, stride, storage_offset))
  return self


def _equal(self: torch.Tensor, other: torch.Tensor) -> bool:
  """torch.equal returns a Python bool: one counted read of a single flag."""
  if self.shape != other.shape: return False
  sync_hook()
  return bool(to_host(ops.lookup("eq.Tensor")(unwrap(self), unwrap(other)).all()).item())


def _local_scalar_dense(self: torch.Tensor) -> Any:
  flush(sync=True)  # a host read is a sync point: what is pending or alive is realized now, not recomputed by each later read
  return to_host(unwrap(self)).item()


DEVICE_KERNELS: dict[str, Callable] = {
  "empty.memory_format": _empty,
  "empty_strided": _empty_strided, "copy_": _copy, "_copy_from": lambda src, dst, non_blocking=False: _copy(dst, src),
  "_copy_from_and_resize": lambda src, dst: _copy(_resize(dst, list(src.shape)), src), "_to_copy": _to_copy,
  "resize_": _resize, "_local_scalar_dense": _local_scalar_dense, "as_strided_": _as_strided_, "equal": _equal,
  "set_.source_Storage": _set_storage, "set_.source_Storage_storage_offset": _set_storage,
  **{name: _meta_view(getattr(torch.ops.aten, name.split(".")[0]).__getattr__(name.split(".")[1] if "." in name else "default"))
     for name in ("view", "view.dtype", "as_strided", "_reshape_alias", "unfold")},
}
# in-place ops whose functional twin has another name
INPLACE_OF = {"normal_.default": "normal_functional.default", "bernoulli_.float": "bernoulli.p", "bernoulli_.Tensor": "bernoulli.Tensor"}


# ***** registration *****

_lib = torch.library.Library("aten", "IMPL")
_fallback_lib = torch.library.Library("_", "IMPL")
registered: set[str] = set()


def _schema_args(op: torch._ops.OpOverload) -> list[torch.Argument]:
  return list(op._schema.arguments)


def _has_kernel(op: torch._ops.OpOverload, key: str) -> bool | None:
  """Whether `op` has a kernel for `key`; None when the dispatcher does not know the overload at all."""
  try:
    return torch._C._dispatch_has_kernel_for_dispatch_key(op._schema.name + (f".{op._overloadname}" if op._overloadname != "default" else ""), key)
  except RuntimeError:
    return None


def _is_view(op: torch._ops.OpOverload) -> bool:
  return any(r.alias_info is not None and not r.alias_info.is_write for r in op._schema.returns)


def _impl(name: str, kernel: Callable) -> None:
  name = name.removesuffix(".default")
  if name in registered: return
  _lib.impl(name, kernel, "PrivateUse1")
  registered.add(name)


def _overload(name: str) -> torch._ops.OpOverload | None:
  op, ov = name.split(".", 1) if "." in name else (name, "default")
  packet = getattr(torch.ops.aten, op, None)
  return getattr(packet, ov, None) if packet is not None and ov in packet.overloads() else None


def _out_args(op: torch._ops.OpOverload) -> list[str]:
  return [a.name for a in _schema_args(op) if a.alias_info is not None and a.alias_info.is_write and a.kwarg_only]


def _out_overloads(op_name: str, fn_args: dict[str, bool]) -> list[tuple[str, list[str]]]:
  """(overload name, out arg names) of `op_name`'s out= overloads whose inputs the functional signature covers."""
  packet, found = getattr(torch.ops.aten, op_name), []
  for ov in packet.overloads():
    args = _schema_args(getattr(packet, ov))
    outs = _out_args(getattr(packet, ov))
    ins = [a.name for a in args if a.name not in outs]
    if outs and set(ins) <= set(fn_args) and all(has_default or n in ins for n, has_default in fn_args.items()):
      found.append((f"{op_name}.{ov}", outs))
  return found


def _register_table(torch_kernels: dict[str, Callable]) -> None:
  for name, kernel in {**DEVICE_KERNELS, **torch_kernels}.items(): _impl(name, kernel)
  for name in ops.names():
    op = _overload(name)
    # views alias storage (the device's own kernels); CompositeImplicitAutograd ops must keep decomposing above
    # autograd, or a backend kernel would cut them off from their gradient
    if op is None or _is_view(op) or _has_kernel(op, "CompositeImplicitAutograd") is not False: continue
    fn = ops.lookup(name)
    _impl(name, functional_kernel(fn))
    base, ov = name.split(".", 1)
    if _overload(f"{base}_.{ov}") is not None: _impl(f"{base}_.{ov}", inplace_kernel(fn, uniform=base in ("fill", "zero")))
    params = {a.name: a.has_default_value() or a.kwarg_only and a.type.kind() == "OptionalType" for a in _schema_args(op)}
    for out_name, outs in _out_overloads(base, params): _impl(out_name, out_kernel(fn, outs))
  for inplace, functional in INPLACE_OF.items(): _impl(inplace, inplace_kernel(ops.lookup(functional)))


def _has_composite(op: torch._ops.OpOverload) -> bool:
  # CompositeExplicitAutogradNonFunctional kernels call the out= overload, which we rather decompose
  return any(_has_kernel(op, k) is not False for k in ("CompositeImplicitAutograd", "CompositeExplicitAutograd"))


def _register_decompositions() -> None:
  """PyTorch's own decompositions for ops the table lacks: they re-enter the dispatcher with ops we implement."""
  from torch._decomp import decomposition_table
  for op, decomp in decomposition_table.items():
    # no out= overloads: an out= decomposition calls the functional op, whose kernel may call out= again
    if not isinstance(op, torch._ops.OpOverload) or op.namespace != "aten" or _out_args(op): continue
    name = op._schema.name.removeprefix("aten::") + ("." + op._overloadname if op._overloadname != "default" else "")
    if name in registered or _has_composite(op) or _is_view(op): continue
    _impl(name, _guarded(op, decomp))


_active: set = set()


def _guarded(op: torch._ops.OpOverload, decomp: Callable) -> Callable:
  """A decomposition that comes back to its own op (through a prim) is a missing kernel, not a recursion."""
  def kernel(*args: Any, **kwargs: Any) -> Any:
    if op in _active: raise NotImplementedError(f"tiny: {op._schema.name} (overload '{op._overloadname}') is not implemented on the tinygrad device")
    _active.add(op)
    try:
      return decomp(*args, **kwargs)
    finally:
      _active.discard(op)
  return kernel


# ***** unsupported ops: a clear error, or an opt-in counted CPU fallback *****

_warned: set[str] = set()


def _to_cpu_args(a: Any) -> Any:
  if _is_tiny(a): return to_cpu(unwrap(a), a.dtype)
  if isinstance(a, (list, tuple)): return type(a)(_to_cpu_args(x) for x in a)
  if isinstance(a, dict): return {k: _to_cpu_args(v) for k, v in a.items()}
  if isinstance(a, torch.device) and a.type == BACKEND: return torch.device("cpu")
  return a


def _fallback(op: torch._ops.OpOverload, *args: Any, **kwargs: Any) -> Any:
  name = f"aten::{op._schema.name.removeprefix('aten::')}"
  if os.environ.get("TINY_CPU_FALLBACK", "0") != "1":
    raise NotImplementedError(f"tiny: {name} (overload '{op._overloadname}') is not implemented on the tinygrad device "
                              "(set TINY_CPU_FALLBACK=1 to run it on the CPU, counted in stats()['fallbacks'])")
  if name not in _warned:
    _warned.add(name)
    warnings.warn(f"tiny: {name}.{op._overloadname} runs on the CPU (TINY_CPU_FALLBACK=1)", stacklevel=2)
  count("fallbacks")
  cargs, ckwargs = _to_cpu_args(args), _to_cpu_args(kwargs)
  res = op(*cargs, **ckwargs)
  mutated = {}
  for orig, c in zip(list(args) + list(kwargs.values()), list(cargs) + list(ckwargs.values())):
    if _is_tiny(orig) and isinstance(c, torch.Tensor) and op._schema.is_mutable:
      _assign_out(orig, from_cpu(c))
      mutated[id(c)] = orig
  def back(r: Any) -> Any:
    if not isinstance(r, torch.Tensor) or r.device.type != "cpu": return r
    return mutated[id(r)] if id(r) in mutated else wrap(from_cpu(r))
  return torch.utils._pytree.tree_map(back, res)


def install_kernels(torch_kernels: dict[str, Callable], autograd_kernels: dict[str, Callable] | None = None) -> None:
  """Every kernel of the op table, `torch_kernels` (kernels.py: written with torch ops on tiny tensors, which import this
  module, hence passed in) and PyTorch's decompositions on PrivateUse1, the CPU fallback's guard, and a flush after each
  optimizer step. Called once by the package's `register()`."""
  register_optimizer_step_post_hook(lambda *_: flush())
  for name, kernel in (autograd_kernels or {}).items(): _lib.impl(name, kernel, "AutogradPrivateUse1")
  _register_table(torch_kernels)
  _register_decompositions()
  _fallback_lib.fallback(_fallback, "PrivateUse1")
