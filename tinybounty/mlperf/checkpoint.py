"""Atomic training checkpoints (named tensors plus a JSON state, one safetensors file, written temp -> fsync -> rename), and
the (seed, step) -> batch sampling that makes a resumed run take the same batches as an unbroken one.

tinygrad's RNG state (the per-device seed and counter that dropout draws from) is saved too, so a resumed run draws the
same dropout masks as an unbroken one.
"""
from __future__ import annotations

import json
import os
import pathlib

import numpy as np
from tinygrad import Device, Tensor, dtypes
from tinygrad.nn.state import safe_load, safe_save

_RNG_SEED, _RNG_COUNTER = "rng.seed", "rng.counter"


class CheckpointError(ValueError):
  """A checkpoint that is missing, unreadable, or does not fit the run resuming from it."""


def rng_state() -> dict[str, Tensor]:
  """tinygrad's RNG state on the default device (created now if no random number was drawn yet)."""
  dev = Device.DEFAULT
  Tensor._next_counter(dev, 0)
  return {_RNG_SEED: Tensor._device_seeds[dev], _RNG_COUNTER: Tensor._device_rng_counters[dev]}


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, Tensor], state: dict) -> None:
  """Write `tensors` (and the RNG state) with `state` as JSON metadata; the old file stays intact until the new one is complete."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.tmp")
  safe_save({k: v.contiguous() for k, v in {**tensors, **rng_state()}.items()}, str(tmp), metadata={"state": json.dumps(state)})
  with open(tmp, "rb+") as f: os.fsync(f.fileno())
  os.replace(tmp, path)
  dfd = os.open(path.parent, os.O_RDONLY)
  try: os.fsync(dfd)
  finally: os.close(dfd)


def load_checkpoint(path: str | os.PathLike, tensors: dict[str, Tensor], run: dict | None = None) -> dict:
  """Assign the saved values into `tensors` (same names and shapes), restore the RNG state; returns the JSON state.
  With `run` (the resuming run's settings as JSON), a checkpoint whose state["run"] differs is refused before anything is assigned."""
  state = read_state(path)
  if run is not None and state["run"] != run:
    diff = sorted(k for k in set(state["run"]) | set(run) if state["run"].get(k) != run.get(k))
    raise CheckpointError(f"{path}: written by a different run (differs in {', '.join(diff)})")
  try: saved = safe_load(str(path))
  except (OSError, ValueError, KeyError) as e: raise CheckpointError(f"{path}: not a tinybounty checkpoint ({type(e).__name__}: {e})") from None
  if missing := sorted(set(tensors) - set(saved)): raise CheckpointError(f"{path}: lacks {len(missing)} tensors, e.g. {missing[:3]}")
  for k, t in tensors.items():
    if saved[k].shape != t.shape: raise CheckpointError(f"{path}: {k} has shape {saved[k].shape}, the model's is {t.shape}")
    t.assign(saved[k].to(t.device).cast(t.dtype))
  Tensor.realize(*tensors.values())
  rng = rng_state()
  for k in (_RNG_SEED, _RNG_COUNTER): rng[k].assign(saved[k].to(rng[k].device).cast(dtypes.uint32)).realize()
  return state


def read_state(path: str | os.PathLike) -> dict:
  """A checkpoint's JSON state, without loading its tensors."""
  path = pathlib.Path(path)
  if not path.is_file(): raise CheckpointError(f"{path}: no checkpoint to resume from")
  try:
    with open(path, "rb") as f: return json.loads(json.loads(f.read(int.from_bytes(f.read(8), "little")))["__metadata__"]["state"])
  except (OSError, ValueError, KeyError) as e: raise CheckpointError(f"{path}: not a tinybounty checkpoint ({type(e).__name__}: {e})") from None


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> np.ndarray:
  """The samples of 0-based `step`: a fresh permutation each epoch from (seed, epoch); the last partial batch is dropped."""
  per_epoch = n // batch_size
  if per_epoch == 0: raise ValueError(f"the data has {n} samples, fewer than one batch of {batch_size}")
  epoch, k = divmod(step, per_epoch)
  return np.random.default_rng([seed, epoch]).permutation(n)[k * batch_size:(k + 1) * batch_size]
