"""Hugging Face checkpoint directories: config.json, safetensors (one file or shards listed in model.safetensors.index.json),
HF key names, bf16/fp16/fp32, read lazily from disk; tokenizers from a local tokenizer.json.

Every tensor is a view of a disk-backed tinygrad Tensor (the file is mapped, never read whole into memory); a weight is read
once, straight into its device buffer, when the model is loaded, so a checkpoint never sits in host memory twice.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from tinygrad import Tensor, dtypes
from tinygrad.dtype import DType
from tinygrad.helpers import tqdm
from tinygrad.nn.state import get_state_dict, safe_load

INDEX_FILE, SINGLE_FILE = "model.safetensors.index.json", "model.safetensors"


class CheckpointError(ValueError):
  """A checkpoint directory that cannot be loaded: the message names the file, key or shape at fault."""


class Checkpoint:
  """A Hugging Face checkpoint directory opened lazily: `config`, `architecture`, `keys()`, `tensor(key)` (a disk Tensor)."""
  def __init__(self, path: str | Path, widen_bf16: bool = True):
    self.path, self.widen_bf16 = Path(path), widen_bf16
    if not self.path.is_dir(): raise FileNotFoundError(f"checkpoint directory {self.path} does not exist")
    if not (cfg_file := self.path / "config.json").is_file(): raise FileNotFoundError(f"{cfg_file} is missing (every HF checkpoint has one)")
    self.config: dict[str, Any] = json.loads(cfg_file.read_text())
    self._files: dict[str, dict[str, Tensor]] = {}
    if (index := self.path / INDEX_FILE).is_file():
      self.weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
    elif (self.path / SINGLE_FILE).is_file():
      self.weight_map = {k: SINGLE_FILE for k in self._file(SINGLE_FILE)}
    else:
      raise FileNotFoundError(f"{self.path} has neither {INDEX_FILE} nor {SINGLE_FILE}")
    for shard in sorted(set(self.weight_map.values())):
      if not (self.path / shard).is_file(): raise FileNotFoundError(f"shard {self.path / shard} listed in {INDEX_FILE} is missing")

  @property
  def architecture(self) -> str:
    archs = self.config.get("architectures") or []
    if not archs: raise CheckpointError(f"{self.path / 'config.json'} names no architecture ('architectures' is empty)")
    return archs[0]

  def _file(self, name: str) -> dict[str, Tensor]:
    if name not in self._files: self._files[name] = safe_load(self.path / name)
    return self._files[name]

  def keys(self) -> list[str]:
    return list(self.weight_map)

  def __contains__(self, key: str) -> bool:
    return key in self.weight_map

  def tensor(self, key: str) -> Tensor:
    """The stored tensor `key`, a lazy view of the file on disk, in its stored dtype."""
    if key not in self.weight_map: raise CheckpointError(f"{self.path} has no tensor {key!r}")
    t = self._file(self.weight_map[key]).get(key)
    if t is None: raise CheckpointError(f"{self.weight_map[key]} does not hold {key!r}, though {INDEX_FILE} says it does")
    return t

  def to(self, key: str, device: str) -> Tensor:
    """The stored tensor `key` copied to `device`, lazily; bf16 arrives as float32 unless the checkpoint was opened with
    widen_bf16=False (exactly: a bf16 is the top half of a float32, shifted in by bits, since fp16 cannot hold bf16's range;
    a bf16 model on a GPU keeps bf16 to read half the bytes)."""
    t = self.tensor(key)
    if t.dtype != dtypes.bfloat16 or not self.widen_bf16: return t.to(device)
    return (t.bitcast(dtypes.uint16).to(device).cast(dtypes.uint32) << 16).bitcast(dtypes.float32)

  def nbytes(self) -> int:
    """Bytes of all stored tensors."""
    return sum((self.path / f).stat().st_size for f in set(self.weight_map.values()))


Source = Callable[[str], Tensor]  # device -> the weight on it, lazily (built from disk views of the checkpoint)


def load_weights(model: Any, sources: dict[str, Source], device: str, dtype: DType | None = None, desc: str = "loading") -> int:
  """Replace every tensor of `model`'s state dict by its source from the checkpoint, read from disk once onto `device`,
  kept in the stored dtype (bf16 as float32, unless the checkpoint keeps bf16) unless `dtype` is given.

  `sources[name](device)` builds the lazy tensor for the model tensor `name` on `device` (a stored tensor copied from
  disk, or a stack / transpose of several). Its shape must equal the model's: a mismatch is a CheckpointError naming the key and both shapes. Returns
  the bytes placed on the device.
  """
  state = {k: v for k, v in get_state_dict(model).items() if v.is_param}  # tables marked is_param_(False) are built, not loaded
  if missing := sorted(set(state) - set(sources)): raise CheckpointError(f"no checkpoint source for model tensors {missing[:5]}")
  total = 0
  for name, param in tqdm(list(state.items()), desc=desc):
    src = sources[name](device)
    if tuple(src.shape) != tuple(param.shape):
      raise CheckpointError(f"{name}: checkpoint shape {tuple(src.shape)} does not match the shape {tuple(param.shape)} the config implies")
    t = src.cast(dtype if dtype is not None and dtypes.is_float(src.dtype) else src.dtype).contiguous().realize()
    param.replace(t)
    total += t.nbytes()
  return total


def direct(ckpt: Checkpoint, key: str) -> Source:
  """A source that is one stored tensor."""
  return lambda device: ckpt.to(key, device)


def stacked(ckpt: Checkpoint, keys: list[str]) -> Source:
  """A source that stacks several stored tensors on a new leading axis (per-expert weights into one (E, ...) tensor)."""
  return lambda device: Tensor.stack(*[ckpt.to(k, device) for k in keys])


def config_get(cfg: dict[str, Any], *names: str, default: Any = None, required: bool = True) -> Any:
  """The first of `names` present in a config.json dict; a CheckpointError if none is and no default is given."""
  for n in names:
    if n in cfg and cfg[n] is not None: return cfg[n]
  if default is None and required: raise CheckpointError(f"config.json lacks {' / '.join(names)}")
  return default


def rope_parameters(cfg: dict[str, Any], default_theta: float) -> dict[str, Any]:
  """RoPE settings from either config layout: transformers 5's `rope_parameters`, or 4's `rope_theta` + `rope_scaling`."""
  params = dict(cfg.get("rope_parameters") or {})
  if not params:
    params = dict(cfg.get("rope_scaling") or {})
    params["rope_theta"] = cfg.get("rope_theta", default_theta)
  params.setdefault("rope_theta", default_theta)
  params["rope_type"] = params.get("rope_type", params.get("type", "default"))
  return params


def load_tokenizer(path: str | Path):
  """The `tokenizers.Tokenizer` of a checkpoint directory's tokenizer.json, or of the one beside a checkpoint file (GGUF)."""
  from tokenizers import Tokenizer
  path = Path(path)
  file = (path.parent if path.is_file() or path.suffix == ".gguf" else path) / "tokenizer.json"
  if not file.is_file():
    why = " (the tokenizer inside a GGUF file is not read)" if path.suffix == ".gguf" else ""
    raise FileNotFoundError(f"{file} is missing: pass token ids, or put the model's tokenizer.json there{why}")
  return Tokenizer.from_file(str(file))
