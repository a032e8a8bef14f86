"""Shared (tied) parameters stay shared when a module moves to or from the tiny device.

`Module._apply` (behind `.to()`, `.float()`, ...) converts each module's parameters one module at a time. Between
devices whose tensors can be shallow-copied into each other (CPU, CUDA) it swaps the data inside the existing
Parameter, so a Parameter that two modules hold (GPT's tied embedding and output weights, transformers'
`tie_word_embeddings`) stays one object. A tiny tensor cannot take a CPU tensor's data that way, so PyTorch makes a new
Parameter for every module that holds it: the tie silently breaks and each copy gets only its own module's gradient
(nanoGPT's tied `wte`/`lm_head` gradient was off by its whole size). `install()` wraps `Module._apply`: after a
top-level conversion involving the tiny device, every module whose parameter was the same object as an earlier module's
gets that module's new Parameter back. `uninstall()` restores PyTorch's method.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

_saved: dict[str, Callable] = {}
_depth = [0]


def _is_tiny(t: Any) -> bool: return isinstance(t, torch.Tensor) and t.device.type == "tiny"


def _apply(self: torch.nn.Module, fn: Callable, recurse: bool = True) -> torch.nn.Module:
  if _depth[0]: return _saved["_apply"](self, fn, recurse)
  before = [(m, k, p) for m in self.modules(remove_duplicate=False) for k, p in m._parameters.items() if p is not None]
  _depth[0] += 1
  try:
    out = _saved["_apply"](self, fn, recurse)
  finally:
    _depth[0] -= 1
  first: dict[int, torch.nn.Parameter] = {}
  for m, k, p in before:
    now = m._parameters.get(k)
    if now is None or now is p or not (_is_tiny(p) or _is_tiny(now)): continue  # converted in place: ties kept by PyTorch
    if id(p) in first: m._parameters[k] = first[id(p)]
    else: first[id(p)] = now
  return out


def install() -> None:
  """Keep tied parameters tied across conversions to and from the tiny device. Idempotent."""
  if _saved: return
  _saved["_apply"] = torch.nn.Module._apply
  torch.nn.Module._apply = _apply


def uninstall() -> None:
  """Restore PyTorch's `Module._apply`."""
  if _saved: torch.nn.Module._apply = _saved.pop("_apply")


def installed() -> bool:
  return bool(_saved)
