"""Greedy generation for the KV-cache decoders (OLMoE, Llama 4): one prefill, then a TinyJit'd decode step compiled once
and reused at every position through a bound `start_pos` variable; `load_causal_lm` picks the model by config.json."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from tinygrad import Device, Tensor, TinyJit, UOp, dtypes
from tinygrad.device import Buffer
from tinygrad.dtype import DType, _to_np_dtype

from tinybounty.models.hf_checkpoint import Checkpoint

ARCHITECTURES = {"OlmoeForCausalLM": "tinybounty.models.olmoe:load_olmoe", "Llama4ForCausalLM": "tinybounty.models.llama4:load_llama4"}


def load_causal_lm(path: str, device: str | None = None, dtype: DType | None = None, max_context: int = 1024, q8: str = "dequantize") -> Any:
  """The model of a checkpoint directory, by its config.json's architecture, or of a GGUF file (a `.gguf` path or any
  file), by its general.architecture (`q8`: its Q8_0 weights "dequantize"d at load or run "native"ly); a ValueError names
  an unsupported one."""
  import importlib
  if path.endswith(".gguf") or Path(path).is_file():
    from tinybounty.models.gguf_llama import load_gguf
    return load_gguf(path, device=device, dtype=dtype, max_context=max_context, q8=q8)
  arch = Checkpoint(path).architecture
  if arch not in ARCHITECTURES: raise ValueError(f"unknown architecture {arch!r} in {path}/config.json (supported: {', '.join(ARCHITECTURES)})")
  module, fn = ARCHITECTURES[arch].split(":")
  return getattr(importlib.import_module(module), fn)(path, device=device, dtype=dtype, max_context=max_context)


@dataclass
class GenerationStats:
  """Timings of one generate call: prefill seconds and each decode step's seconds (tok/s counts batch rows)."""
  prompt_tokens: int = 0
  prefill_s: float = 0.0
  step_s: list[float] = field(default_factory=list)
  batch: int = 1

  @property
  def steps(self) -> int:
    return len(self.step_s)

  @property
  def decode_tok_s(self) -> float:
    """Over the steps after the JIT's capture (its first two calls compile), or all steps if there are no others."""
    timed = self.step_s[2:] or self.step_s
    return len(timed) * self.batch / sum(timed) if timed else float("nan")


def _write(t: Tensor, a: np.ndarray) -> None:
  """Copy a host array into a realized tensor's own buffer (same dtype and size), after the device's pending work."""
  buf = t.uop.buffer.ensure_allocated()
  Device[buf.device].synchronize()  # the previous step may still read it
  buf.allocator._copyin(buf._buf, memoryview(a).cast("B"))


def _read(t: Tensor) -> np.ndarray:
  """A realized tensor's buffer as a new host array, copied once the device is done."""
  buf = t.uop.buffer
  if not isinstance(buf, Buffer) or buf.offset or buf.size != t.numel(): return t.numpy()  # a view or multi-device: tinygrad copies
  out = np.empty(t.shape, _to_np_dtype(t.dtype))
  Device[buf.device].synchronize()
  buf.allocator._copyout(memoryview(out).cast("B"), buf._buf)
  return out


class Generator:
  """Prefill + JIT'd decode over a model taking (tokens, start_pos) and owning its KV caches (`reset_cache()`).

  `matvec` installs models.matvec (process-wide, reversible with its `uninstall()`): on GPUs a decode step's bf16
  matrix-vector products get tinygrad's matvec schedule, which its heuristic gives only to products of two plain loads.
  """
  def __init__(self, model: Any, matvec: bool = True):
    if matvec:
      from tinybounty.models import matvec as mv
      mv.install()
    self.model = model
    self.max_context = model.cfg.max_context
    self._step, self._next = TinyJit(self._decode), TinyJit(self._decode_next)
    self._tok: dict[int, Tensor] = {}  # next_tokens' input buffer per batch size (the JIT reads it in place)

  def _decode(self, tok: Tensor, start_pos: UOp) -> Tensor:
    return self.model(tok, start_pos)[:, -1, :].float().realize()

  def _decode_next(self, tok: Tensor, start_pos: UOp) -> Tensor:
    # the argmax inside the JIT: outside, tinygrad would schedule it anew every step (half a step's time on an H100)
    return self.model(tok, start_pos)[:, -1, :].float().argmax(-1).cast(dtypes.int32).realize()

  def prefill(self, tokens: Tensor) -> Tensor:
    """Reset the caches and run the prompt (B, T): the (B, T, vocab) logits."""
    self.model.reset_cache()
    self._step.reset()
    self._next.reset()
    return self.model(tokens, 0).float().realize()

  def _pos(self, pos: int) -> UOp:
    if not 1 <= pos < self.max_context: raise ValueError(f"position {pos} is outside the cache (max_context {self.max_context})")
    return UOp.variable("start_pos", 1, self.max_context - 1).bind(pos)

  def decode(self, tok: Tensor, pos: int) -> Tensor:
    """One cached step of (B, 1) tokens at position `pos`: (B, vocab) logits (a buffer the next step overwrites)."""
    return self._step(tok.contiguous().realize(), self._pos(pos))

  def next_tokens(self, tok: np.ndarray, pos: int) -> np.ndarray:
    """One cached greedy step of (B,) tokens at position `pos`: the (B,) int32 next tokens (argmax in the JIT'd step).

    The tokens go in and out through the buffers' allocator, not `Tensor(array)` / `.numpy()`: those schedule a copy
    each (3.4 ms and 0.45 ms on the CPU), as much host time as an H100 spends on the whole step's kernels."""
    tok = np.ascontiguousarray(tok, dtype=np.int32).reshape(-1, 1)
    if (held := self._tok.get(tok.shape[0])) is None: held = self._tok[tok.shape[0]] = Tensor.empty(*tok.shape, dtype=dtypes.int32).realize()
    _write(held, tok)
    return _read(self._next(held, self._pos(pos)))

  def greedy(self, prompt: list[list[int]], max_new_tokens: int, stats: GenerationStats | None = None) -> Iterator[np.ndarray]:
    """Yield (B,) greedy tokens one step at a time after the prompt (B rows of equal length)."""
    tokens = np.asarray(prompt, dtype=np.int32)
    B, T = tokens.shape
    if T + max_new_tokens > self.max_context:
      raise ValueError(f"{T} prompt + {max_new_tokens} new tokens exceed max_context {self.max_context}")
    stats = stats if stats is not None else GenerationStats()
    stats.prompt_tokens, stats.batch = T, B
    t0 = time.perf_counter()
    nxt = self.prefill(Tensor(tokens, dtype=dtypes.int32))[:, -1, :].argmax(-1).numpy().astype(np.int32)
    stats.prefill_s = time.perf_counter() - t0
    for i in range(max_new_tokens):
      yield nxt
      if i == max_new_tokens - 1: break
      t0 = time.perf_counter()
      nxt = self.next_tokens(nxt, T + i)
      stats.step_s.append(time.perf_counter() - t0)
