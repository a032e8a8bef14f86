"""A recorded step of capture.py: its ops' arguments (tensor views, float and offset arguments), its segment of ops and
outputs, and what capture has learned about ops' arguments (which floats and offsets they read from device memory)."""
from __future__ import annotations

import struct
import weakref
from typing import Any, Callable

import torch
from tinygrad import Tensor

from tinybounty.torch_backend import device, scalars

scalar_positions: set[tuple] = set()  # (op key, argument position) of floats the op reads from device memory
offset_positions: set[tuple] = set()  # (op key, argument position) of small views whose storage offset it reads so


class Ref:
  """A tensor argument of a recorded op: which value it reads (("s", slot) of this step, ("i", input)) and its view;
  its offset a Scalar where it is an argument of the step (a small view at a moving offset)."""
  __slots__ = ("src", "size", "stride", "off", "dtype")

  def __init__(self, src: tuple, size: tuple, stride: tuple, off: int | Scalar, dtype: torch.dtype) -> None:
    self.src, self.size, self.stride, self.off, self.dtype = src, size, stride, off, dtype


class Scalar:
  """A float argument, or a view's storage offset (scalars.Offset), read from device memory: its index in the step's
  scalars."""
  __slots__ = ("index", "position")

  def __init__(self, index: int, position: int) -> None:
    self.index, self.position = index, position


class Segment:
  """The ops recorded since the last sync point."""
  def __init__(self) -> None:
    self.entries: list[tuple] = []  # (kind, fn, extra, args template, kwargs template, output slots, op key)
    self.keys: list[tuple] = []  # per op: (shape key, the refs of its tensor arguments)
    self.h = 0  # running hash of keys
    self.inputs: list[Any] = []  # values read from storages written before this step: Tensor, or (buffer UOp, shape)
    self.input_storages: list[Any] = []  # weakrefs to the storages they were read from
    self.input_ids: dict[int, int] = {}
    self.scalars: list[float] = []  # the step arguments: floats, and offsets (scalars.Offset)
    self.owners: list[Any] = []  # slot -> weakref to the storage holding it (None once that storage moved on)
    self.written: set[int] = set()  # slots made by writes (in-place, copy_, out=)
    self.constant_scalars: list[Tensor] = []  # device scalars read as constants of the step (set while building)
    self.draws: dict[int, tuple[int, int]] = {}  # entry -> (seed, offset) of the random words it draws
    self.handed: list[tuple[int, list]] = []  # entry -> its draws' (offset, key, counter) tensors (set while building)

  def ref(self, st: device.TinyStorage) -> tuple:
    if st.slot >= 0: return ("s", st.slot)
    snap = st.bound if st.bound is not None else st._value
    if (j := self.input_ids.get(id(snap))) is None:
      j = self.input_ids[id(snap)] = len(self.inputs)
      self.inputs.append(snap)
      self.input_storages.append(weakref.ref(st))
    return ("i", j)

  def forget_inputs(self, n: int) -> None:
    """Drop the inputs an op added before it turned out to run eagerly."""
    for snap in self.inputs[n:]: del self.input_ids[id(snap)]
    del self.inputs[n:], self.input_storages[n:]

  def new_slot(self, st: device.TinyStorage, write: bool) -> int:
    k = len(self.owners)
    self.owners.append(weakref.ref(st))
    if st.slot >= 0: self.owners[st.slot] = None
    if write: self.written.add(k)
    st.slot, st._value, st._buf, st.bound = k, None, None, None
    return k


def walk_scalars(*trees: Any) -> list[Scalar]:
  """Every step argument in an op's argument templates: its floats and its views' offsets."""
  out: list[Scalar] = []
  def walk(a: Any) -> None:
    if isinstance(a, Scalar): out.append(a)
    elif isinstance(a, Ref) and isinstance(a.off, Scalar): out.append(a.off)
    elif isinstance(a, (list, tuple)):
      for x in a: walk(x)
    elif isinstance(a, dict):
      for x in a.values(): walk(x)
  for t in trees: walk(t)
  return out


def bits(v: float) -> tuple:
  """A scalar of the step as a dict key: offsets apart from floats, floats by bit pattern (-0.0 and NaNs their own)."""
  return (type(v) is scalars.Offset, struct.pack("<d", float(v)))


def op_name(fn: Callable) -> str:
  return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
