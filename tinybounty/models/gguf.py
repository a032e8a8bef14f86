"""GGUF files (llama.cpp's one-file checkpoints), read lazily: the header (magic "GGUF", version, tensor and key-value
counts), typed metadata (numbers, bools, strings, arrays of them), tensor infos (name, dims, ggml type, offset) and the
data section at `general.alignment` (default 32), written from the format's specification.

The file is mapped, never read whole: `tensor(name)` materializes one tensor as a numpy array (a view of the mapping for
F32/F16 and the integer types; BF16 and the block-quantized types Q8_0, Q4_0, Q4_1, Q4_K, Q6_K dequantized to float32,
vectorized), and `to(name, device)` copies one tensor to a tinygrad device (plain float types straight from the file
through tinygrad's disk device). Every fault is a `GGUFError` naming the file and the problem.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tinybounty.models.hf_checkpoint import CheckpointError

MAGIC, VERSIONS, DEFAULT_ALIGNMENT = b"GGUF", (2, 3), 32


class GGUFError(CheckpointError):
  """A GGUF file that cannot be read: the message names the file and what is wrong."""


# ---- dequantization of ggml's block types: (n_blocks * block_bytes,) uint8 -> (n_blocks * block_elems,) float32 ----

def _f16(b: np.ndarray, lo: int) -> np.ndarray:
  """The float16 at byte `lo` of every block (rows of `b`) as a (n, 1) float32 column."""
  return np.ascontiguousarray(b[:, lo:lo+2]).view(np.float16).astype(np.float32)


def _nibbles(qs: np.ndarray) -> np.ndarray:
  """(n, k) packed bytes -> (n, 2k): the low nibbles of all k bytes, then their high nibbles (ggml's order in a block)."""
  return np.concatenate([qs & 0x0F, qs >> 4], axis=1)


def dequant_q8_0(raw: np.ndarray) -> np.ndarray:
  """Q8_0: blocks of 32 as (f16 scale d, 32 x int8 q); x = d*q."""
  b = raw.reshape(-1, 34)
  return (_f16(b, 0) * b[:, 2:].view(np.int8).astype(np.float32)).reshape(-1)


def dequant_q4_0(raw: np.ndarray) -> np.ndarray:
  """Q4_0: blocks of 32 as (f16 d, 16 bytes of 4-bit q); x = d*(q - 8), element j in byte j's low nibble, j+16 in its high."""
  b = raw.reshape(-1, 18)
  return (_f16(b, 0) * (_nibbles(b[:, 2:]).astype(np.float32) - 8)).reshape(-1)


def dequant_q4_1(raw: np.ndarray) -> np.ndarray:
  """Q4_1: blocks of 32 as (f16 d, f16 m, 16 bytes of 4-bit q); x = d*q + m."""
  b = raw.reshape(-1, 20)
  return (_f16(b, 0) * _nibbles(b[:, 4:]).astype(np.float32) + _f16(b, 2)).reshape(-1)


def _k_scales(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Q4_K's 12 bytes of eight 6-bit (scale, min) pairs -> (n, 8) scales and (n, 8) mins: pairs 0-3 in the low 6 bits of bytes
  0-3 (scales) and 4-7 (mins); pairs 4-7 take their low 4 bits from bytes 8-11 (scale low nibble, min high nibble) and their
  top 2 bits from the top bits of bytes 0-3 (scales) and 4-7 (mins)."""
  lo, mid, hi = s[:, 0:4], s[:, 4:8], s[:, 8:12]
  sc = np.concatenate([lo & 63, (hi & 0x0F) | ((lo >> 6) << 4)], axis=1)
  mn = np.concatenate([mid & 63, (hi >> 4) | ((mid >> 6) << 4)], axis=1)
  return sc.astype(np.float32), mn.astype(np.float32)


def dequant_q4_k(raw: np.ndarray) -> np.ndarray:
  """Q4_K: super-blocks of 256 as (f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of 4-bit q); 8 sub-blocks of 32,
  x = d*scale*q - dmin*min. Each 32-byte chunk of q holds two sub-blocks: the low nibbles, then the high nibbles."""
  b = raw.reshape(-1, 144)
  sc, mn = _k_scales(b[:, 4:16])
  q = b[:, 16:].reshape(-1, 4, 32)
  q = np.stack([q & 0x0F, q >> 4], axis=2).reshape(-1, 8, 32).astype(np.float32)  # (n, sub-block, 32)
  return ((_f16(b, 0) * sc)[:, :, None] * q - (_f16(b, 2) * mn)[:, :, None]).reshape(-1)


def dequant_q6_k(raw: np.ndarray) -> np.ndarray:
  """Q6_K: super-blocks of 256 as (128 bytes low 4 bits, 64 bytes high 2 bits, 16 x int8 scales, f16 d); x = d*scale*(q - 32),
  a scale per 16 elements. Each half of 128 elements uses 64 low-bit bytes and 32 high-bit bytes: its 4 groups of 32 are
  the low nibbles of bytes 0-31, of bytes 32-63, the high nibbles of bytes 0-31, of 32-63, with high-bit pairs 0, 2, 4, 6."""
  b = raw.reshape(-1, 210)
  ql, qh = b[:, :128].reshape(-1, 2, 2, 32), b[:, 128:192].reshape(-1, 2, 1, 32)
  low = np.stack([ql[:, :, 0] & 0x0F, ql[:, :, 1] & 0x0F, ql[:, :, 0] >> 4, ql[:, :, 1] >> 4], axis=2)  # (n, half, group, 32)
  high = (qh >> np.array([0, 2, 4, 6], dtype=np.uint8)[None, None, :, None]) & 3
  q = (low | (high << 4)).astype(np.float32) - 32
  scale = b[:, 192:208].view(np.int8).astype(np.float32).reshape(-1, 2, 4, 2, 1) * _f16(b, 208)[:, :, None, None, None]
  return (q.reshape(-1, 2, 4, 2, 16) * scale).reshape(-1)


def _bf16(raw: np.ndarray) -> np.ndarray:
  """BF16 is the top half of a float32."""
  return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)


@dataclass(frozen=True)
class GGMLType:
  """A ggml tensor type: `block` elements in `nbytes` bytes; `dtype` for a plain numpy type, else `dequant` to float32."""
  name: str
  block: int
  nbytes: int
  dtype: Any = None
  dequant: Callable[[np.ndarray], np.ndarray] | None = None


TYPES = {0: GGMLType("F32", 1, 4, np.float32), 1: GGMLType("F16", 1, 2, np.float16), 2: GGMLType("Q4_0", 32, 18, dequant=dequant_q4_0),
         3: GGMLType("Q4_1", 32, 20, dequant=dequant_q4_1), 8: GGMLType("Q8_0", 32, 34, dequant=dequant_q8_0),
         12: GGMLType("Q4_K", 256, 144, dequant=dequant_q4_k), 14: GGMLType("Q6_K", 256, 210, dequant=dequant_q6_k),
         24: GGMLType("I8", 1, 1, np.int8), 25: GGMLType("I16", 1, 2, np.int16), 26: GGMLType("I32", 1, 4, np.int32),
         27: GGMLType("I64", 1, 8, np.int64), 28: GGMLType("F64", 1, 8, np.float64), 30: GGMLType("BF16", 1, 2, dequant=_bf16)}
# ggml types this reader does not decode, by name for the error message
UNSUPPORTED = {6: "Q5_0", 7: "Q5_1", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 13: "Q5_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS",
               19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 29: "IQ1_M", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4"}

# ---- the header ----

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_NP = {0: np.uint8, 1: np.int8, 2: np.uint16, 3: np.int16, 4: np.uint32, 5: np.int32, 6: np.float32, 7: np.bool_, 10: np.uint64,
       11: np.int64, 12: np.float64}
STRING, ARRAY = 8, 9


@dataclass(frozen=True)
class TensorInfo:
  """Where one tensor lies: numpy `shape` (GGUF lists dims innermost first, so this is them reversed), type, absolute offset."""
  name: str
  shape: tuple[int, ...]
  type_id: int
  offset: int

  @property
  def numel(self) -> int:
    return int(np.prod(self.shape, dtype=np.int64))

  @property
  def type_name(self) -> str:
    return TYPES[self.type_id].name if self.type_id in TYPES else UNSUPPORTED.get(self.type_id, f"unknown ggml type {self.type_id}")

  @property
  def nbytes(self) -> int | None:
    """Bytes in the file, or None for a type this reader does not know."""
    t = TYPES.get(self.type_id)
    return None if t is None else self.numel // t.block * t.nbytes


class _Cursor:
  """Reads little-endian values from the mapped header; running off the end is a GGUFError (a truncated file)."""
  def __init__(self, buf: np.ndarray, path: Path):
    self.buf, self.pos, self.path = buf, 0, path

  def take(self, n: int, what: str) -> np.ndarray:
    if n < 0 or self.pos + n > len(self.buf):
      raise GGUFError(f"{self.path}: truncated file: {what} needs bytes {self.pos}..{self.pos + n} but the file has {len(self.buf)}")
    out = self.buf[self.pos:self.pos + n]
    self.pos += n
    return out

  def scalar(self, fmt: str, what: str) -> Any:
    return struct.unpack(fmt, self.take(struct.calcsize(fmt), what).tobytes())[0]

  def string(self, what: str) -> str:
    return self.take(self.scalar("<Q", what), what).tobytes().decode("utf-8", errors="replace")

  def value(self, vtype: int, what: str) -> Any:
    if vtype in _SCALARS: return self.scalar(_SCALARS[vtype], what)
    if vtype == STRING: return self.string(what)
    if vtype == ARRAY:
      etype, n = self.scalar("<I", what), self.scalar("<Q", what)
      if etype in _NP: return np.array(self.take(n * np.dtype(_NP[etype]).itemsize, what).view(_NP[etype]))
      return [self.value(etype, what) for _ in range(n)]
    raise GGUFError(f"{self.path}: {what} has unknown metadata value type {vtype}")


class GGUFFile:
  """A GGUF file opened lazily: `metadata` (key -> value), `tensors` (name -> TensorInfo), `architecture`, `tensor(name)`,
  `to(name, device)`."""
  def __init__(self, path: str | Path):
    self.path = Path(path)
    if not self.path.is_file(): raise FileNotFoundError(f"GGUF file {self.path} does not exist")
    size = self.path.stat().st_size
    if size < 4 or (head := self.path.open("rb").read(4)) != MAGIC:
      raise GGUFError(f"{self.path} is not a GGUF file (it starts with {head if size >= 4 else b''!r}, not {MAGIC!r})")
    self._map, self._disk = np.memmap(self.path, dtype=np.uint8, mode="r"), None
    cur = _Cursor(self._map, self.path)
    cur.take(4, "the magic")
    self.version = cur.scalar("<I", "the version")
    if self.version not in VERSIONS:
      swapped = struct.unpack("<I", struct.pack(">I", self.version))[0]
      why = " (a big-endian file: only little-endian GGUF is read)" if swapped in VERSIONS else ""
      raise GGUFError(f"{self.path}: unsupported GGUF version {self.version}{why}; this reader reads versions {', '.join(map(str, VERSIONS))}")
    n_tensors, n_kv = cur.scalar("<Q", "the tensor count"), cur.scalar("<Q", "the metadata count")
    self.metadata: dict[str, Any] = {}
    for i in range(n_kv):
      key = cur.string(f"metadata key {i}")
      self.metadata[key] = cur.value(cur.scalar("<I", f"the type of {key!r}"), f"metadata {key!r}")
    infos = []
    for i in range(n_tensors):
      name = cur.string(f"tensor info {i}")
      n_dims = cur.scalar("<I", f"tensor {name!r}")
      dims = cur.take(8 * n_dims, f"tensor {name!r}").view(np.uint64)
      infos.append((name, tuple(int(d) for d in dims[::-1]), cur.scalar("<I", f"tensor {name!r}"), cur.scalar("<Q", f"tensor {name!r}")))
    self.alignment = int(self.metadata.get("general.alignment", DEFAULT_ALIGNMENT))
    if self.alignment <= 0: raise GGUFError(f"{self.path}: general.alignment is {self.alignment}")
    self.data_offset = -(-cur.pos // self.alignment) * self.alignment
    self.tensors: dict[str, TensorInfo] = {}
    for name, shape, type_id, off in infos:
      info = self.tensors[name] = TensorInfo(name, shape, type_id, self.data_offset + off)
      if (nb := info.nbytes) is not None and info.offset + nb > size:
        raise GGUFError(f"{self.path}: truncated file: tensor {name!r} ({info.type_name} {shape}) ends at byte {info.offset + nb}, "
                        f"the file has {size}")
      if type_id in TYPES and info.numel % TYPES[type_id].block:
        raise GGUFError(f"{self.path}: tensor {name!r} has {info.numel} elements, not a multiple of {info.type_name}'s block {TYPES[type_id].block}")

  @property
  def architecture(self) -> str:
    if "general.architecture" not in self.metadata: raise GGUFError(f"{self.path} names no architecture (no general.architecture)")
    return str(self.metadata["general.architecture"])

  def get(self, key: str, default: Any = None) -> Any:
    """A metadata value; a GGUFError naming the key if it is absent and no default is given."""
    if key in self.metadata: return self.metadata[key]
    if default is None: raise GGUFError(f"{self.path}: metadata {key!r} is missing")
    return default

  def info(self, name: str) -> TensorInfo:
    if name not in self.tensors: raise GGUFError(f"{self.path} has no tensor {name!r}")
    return self.tensors[name]

  def __contains__(self, name: str) -> bool:
    return name in self.tensors

  def _type(self, info: TensorInfo) -> GGMLType:
    if info.type_id not in TYPES:
      raise GGUFError(f"{self.path}: tensor {info.name!r} has type {info.type_name}, which this reader cannot decode "
                      f"(supported: {', '.join(t.name for t in TYPES.values())})")
    return TYPES[info.type_id]

  def raw(self, name: str) -> np.ndarray:
    """The stored bytes of tensor `name` (a view of the mapping)."""
    info = self.info(name)
    self._type(info)
    return self._map[info.offset:info.offset + info.nbytes]

  def tensor(self, name: str) -> np.ndarray:
    """Tensor `name` in numpy: plain types as stored (a view of the file), BF16 and quantized types dequantized to float32."""
    info, t = self.info(name), self._type(self.info(name))
    raw = self.raw(name)
    return (raw.view(t.dtype) if t.dequant is None else t.dequant(raw)).reshape(info.shape)

  def q8_0_values(self, name: str) -> np.ndarray:
    """A Q8_0 tensor's int8 values as stored, shaped as the tensor (out, in)."""
    info, b = self._q8_0_blocks(name)
    return np.ascontiguousarray(b[:, 2:]).view(np.int8).reshape(info.shape)

  def q8_0_scales(self, name: str) -> np.ndarray:
    """A Q8_0 tensor's per-block scales as float32, (out, in // 32)."""
    info, b = self._q8_0_blocks(name)
    return _f16(b, 0).reshape(*info.shape[:-1], -1)

  def _q8_0_blocks(self, name: str) -> tuple[TensorInfo, np.ndarray]:
    info = self.info(name)
    if info.type_name != "Q8_0": raise GGUFError(f"{self.path}: tensor {name!r} is {info.type_name}, not Q8_0")
    return info, self.raw(name).reshape(-1, 34)  # 34-byte blocks: a float16 scale, then 32 int8 values

  def to(self, name: str, device: str):
    """Tensor `name` as a lazy tinygrad Tensor on `device`: F32/F16 and integer types copied from the file by tinygrad's disk
    device (no host copy), the others dequantized on the host one tensor at a time."""
    from tinygrad import Tensor
    from tinygrad.dtype import _from_np_dtype
    info, t = self.info(name), self._type(self.info(name))
    if t.dequant is not None: return Tensor(self.tensor(name), device=device)
    if self._disk is None: self._disk = Tensor(self.path)  # uint8 view of the whole file on tinygrad's disk device
    return self._disk[info.offset:info.offset + info.nbytes].bitcast(_from_np_dtype(np.dtype(t.dtype))).reshape(info.shape).to(device)

  def nbytes(self) -> int:
    return self.path.stat().st_size
