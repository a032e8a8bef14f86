"""Run an unmodified PyTorch CUDA training script on another device (the `tiny` tinygrad device, or the CPU).

  python -m tinybounty.runner --device tiny [--data CIFAR_DIR] path/to/main.py [script args...]
  python -m tinybounty.torch_backend.run ...     the same, with the tiny device registered on import

Written for tysam-code/hlb-CIFAR10's main.py, and for any script that uses the same constructs. What it does, exactly:

1. Device strings. While the script runs, a TorchFunctionMode rewrites every device argument that names CUDA
   (`device='cuda'`, `.to('cuda')`, `torch.device('cuda', 0)`, `.cuda()`) to the target device. Nothing else is touched.
2. Timing. `torch.cuda.synchronize()` and `torch.cuda.Event(enable_timing=True)` (record / elapsed_time) are replaced by
   versions that synchronize the target device and read the host clock, so the script's own timings measure the
   target device. `torch.cuda.is_available()` answers True to the script (not to PyTorch's own modules), so code that
   picks 'cuda' only when it is available (gpt-fast's generate.py) asks for it and is redirected. torch.compile with
   the default backend is routed to the `tiny` backend on --device tiny. Not done for --device cuda.
3. Data. If the file the script loads its data cache from does not exist (the `'data_location'` string in the
   script, found by reading its source; or --cache), it is written first, in the script's own format ({'train'|'eval':
   {'images': N x 3 x 32 x 32 fp16, normalized by the train set's per-channel mean and std, 'targets': one-hot fp16}}),
   from the CIFAR-10 python batches in --data, or from a synthetic CIFAR-format set. torchvision's download path is
   never taken. `torch.load` calls without a map_location load onto the target device.
4. torchvision. Where it cannot be imported, a stand-in provides the two names the script imports (`torchvision`
   and `torchvision.transforms` with Compose and ToTensor); anything else of it raises ImportError naming what is missing.
5. Optionally (--host-rng SEED), torch.manual_seed(SEED) is called first, and randperm / rand / randn / randint and
   in-place random_ / uniform_ / normal_ draw from one seeded CPU generator and are moved to the target device, so
   runs on different devices start from the same weights and see identical batches.

The script runs as `__main__`, with sys.argv set to [script, *script args] and its directory first on sys.path.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import importlib
import importlib.util
import os
import pathlib
import runpy
import sys
import tempfile
import time
import types
from typing import Any, Iterator

import numpy as np
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_map

from tinybounty.data import load_cifar, write_cifar_like
from tinybounty.data.files import atomic_write


def _is_cuda(d: Any) -> bool:
  return (isinstance(d, str) and d.split(":")[0] == "cuda") or (isinstance(d, torch.device) and d.type == "cuda")


class RedirectCuda(TorchFunctionMode):
  """Every device argument that names CUDA is rewritten to `device` (`.cuda()` becomes `.to(device)`).

  Also deep-copies tiny tensors by clone(): PyTorch's default __deepcopy__ copies the storage's bytes, and a tiny
  storage keeps its data in tinygrad, not in bytes (copy.deepcopy(model) is how main.py makes its EMA model)."""
  def __init__(self, device: str):
    super().__init__()
    self.device = torch.device(device)

  def __torch_function__(self, func, types, args=(), kwargs=None):
    kwargs = kwargs or {}
    if func is torch.Tensor.__deepcopy__ and args[0].device.type == "tiny": return _deepcopy_by_clone(*args)
    if func is torch.device: return self.device if _is_cuda(args[0] if args else kwargs.get("type")) else func(*args, **kwargs)
    if func is torch.Tensor.cuda: return args[0].to(self.device, **{k: v for k, v in kwargs.items() if k == "non_blocking"})
    args = tuple(self.device if _is_cuda(a) else a for a in args)
    if _is_cuda(kwargs.get("device")): kwargs = {**kwargs, "device": self.device}
    return func(*args, **kwargs)


def _deepcopy_by_clone(t: torch.Tensor, memo: dict) -> torch.Tensor:
  if id(t) not in memo:
    with torch.no_grad(): memo[id(t)] = t.clone().requires_grad_(t.requires_grad)
  return memo[id(t)]


class HostRandom(TorchFunctionMode):
  """randperm / rand / randn / randint (and their _like forms) and in-place random_ / uniform_ / normal_ draw from one
  seeded CPU generator and are moved to the device asked for: the same numbers on every device, in the same order."""
  FACTORIES = {torch.randperm, torch.rand, torch.randn, torch.randint}
  LIKE = {torch.rand_like: torch.rand, torch.randn_like: torch.randn}
  INPLACE = {torch.Tensor.random_, torch.Tensor.uniform_, torch.Tensor.normal_}

  def __init__(self, seed: int):
    super().__init__()
    self.gen = torch.Generator().manual_seed(seed)

  def __torch_function__(self, func, types, args=(), kwargs=None):
    kwargs = dict(kwargs or {})
    if kwargs.get("generator") is not None: return func(*args, **kwargs)
    if func in self.FACTORIES:
      device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
      out = func(*args, **kwargs, generator=self.gen)
      return out.to(device=device, dtype=dtype or out.dtype)
    if func in self.LIKE:
      like = args[0]
      return self.LIKE[func](like.shape, generator=self.gen).to(device=kwargs.get("device", like.device), dtype=kwargs.get("dtype", like.dtype))
    if func in self.INPLACE:
      host = torch.empty(args[0].shape, dtype=args[0].dtype if args[0].dtype.is_floating_point else torch.int64)
      func(host, *args[1:], **kwargs, generator=self.gen)
      with torch.no_grad(): return args[0].copy_(host)
    return func(*args, **kwargs)


class RecordLosses(TorchFunctionMode):
  """Keeps a copy of every tensor `.backward()` is called on: a training script's per-step losses, read after the run,
  and the host clock at each call (`times`: in steady state the intervals are the step time, since the host cannot run
  more than a bounded queue ahead of the device). `bar` (a tqdm) is advanced once per step."""
  def __init__(self, bar: Any = None):
    super().__init__()
    self.tensors: list[torch.Tensor] = []
    self.times: list[float] = []
    self.bar = bar

  def __torch_function__(self, func, types, args=(), kwargs=None):
    if func is torch.Tensor.backward:
      loss = args[0].detach()
      # a copy written now is realized with the step (a write is flushed with it); the loss itself may stay a lazy
      # graph until read, and reading every step's at the end would run every step's forward again
      self.tensors.append(torch.empty_like(loss).copy_(loss))
      self.times.append(time.perf_counter())
      if self.bar is not None: self.bar.update()
    return func(*args, **(kwargs or {}))

  def losses(self) -> list[float]:
    # one read for all steps: a read per loss would schedule and realize each step's graph on its own
    return torch.stack([t.float().sum() for t in self.tensors]).tolist() if self.tensors else []


def synchronize(device: torch.device) -> None:
  """Wait for all work queued on `device`."""
  if device.type == "tiny": torch.tiny.synchronize()
  elif (mod := getattr(torch, device.type, None)) is not None and hasattr(mod, "synchronize"): mod.synchronize()


class HostEvent:
  """torch.cuda.Event's timing interface on another device: record() synchronizes it and reads the host clock."""
  def __init__(self, device: torch.device, enable_timing: bool = False, **_: Any):
    self.device, self.t = device, None

  def record(self, stream: Any = None) -> None:
    synchronize(self.device)
    self.t = time.perf_counter()

  def synchronize(self) -> None: synchronize(self.device)
  def query(self) -> bool: return True

  def elapsed_time(self, end: HostEvent) -> float:
    if self.t is None or end.t is None: raise RuntimeError("elapsed_time: both events must be recorded first")
    return (end.t - self.t) * 1e3


@contextlib.contextmanager
def _patched(obj: Any, **attrs: Any) -> Iterator[None]:
  old = {k: getattr(obj, k) for k in attrs}
  for k, v in attrs.items(): setattr(obj, k, v)
  try: yield
  finally:
    for k, v in old.items(): setattr(obj, k, v)


@contextlib.contextmanager
def _modules(mods: dict[str, types.ModuleType]) -> Iterator[None]:
  sys.modules.update(mods)
  try: yield
  finally:
    for name in mods: sys.modules.pop(name, None)


def _load_to(device: torch.device, orig_load):
  @functools.wraps(orig_load)
  def load(f, map_location=None, *args, **kwargs):
    if map_location is not None: return orig_load(f, map_location, *args, **kwargs)
    return tree_map(lambda t: t.to(device) if isinstance(t, torch.Tensor) else t, orig_load(f, "cpu", *args, **kwargs))
  return load


def _available_to_scripts(orig_is_available):
  """torch.cuda.is_available() as the script sees it: True (so it picks 'cuda', which the runner redirects, and its own
  cuda-only paths such as gpt-fast's device_sync run). PyTorch's own callers (dynamo saves the CUDA RNG state when CUDA
  is available) get the real answer."""
  def is_available() -> bool:
    caller = sys._getframe(1).f_globals.get("__name__", "")
    return orig_is_available() if caller == "torch" or caller.startswith("torch.") else True
  return is_available


def _compile_on_tiny(orig_compile):
  """torch.compile with the default backend (inductor) routed to the `tiny` backend: inductor's `mode` and `options`
  are dropped (CUDA graphs are what tiny's TinyJit replay does anyway), and `dynamic=True` becomes static shapes
  (tiny's backend compiles one graph per input shape; see torch_backend/compile.py)."""
  @functools.wraps(orig_compile)
  def compile_(model=None, *, backend="inductor", mode=None, options=None, dynamic=None, **kwargs):
    if backend == "inductor":
      importlib.import_module("tinybounty.torch_backend.compile")  # registers the "tiny" backend
      backend, mode, options, dynamic = "tiny", None, None, False
    if model is None: return lambda fn: orig_compile(fn, backend=backend, mode=mode, options=options, dynamic=dynamic, **kwargs)
    return orig_compile(model, backend=backend, mode=mode, options=options, dynamic=dynamic, **kwargs)
  return compile_


def torchvision_standin() -> dict[str, types.ModuleType]:
  """Modules `torchvision` and `torchvision.transforms` with just Compose and ToTensor; any other name raises ImportError."""
  def missing(mod: str):
    def getattr_(name: str):
      if name.startswith("__"): raise AttributeError(name)
      raise ImportError(f"torchvision is not installed; the tinybounty stand-in has no {mod}.{name} (the runner writes the data cache instead)")
    return getattr_

  tv, tr = types.ModuleType("torchvision"), types.ModuleType("torchvision.transforms")
  tr.Compose = lambda fns: (lambda x: functools.reduce(lambda acc, fn: fn(acc), fns, x))
  tr.ToTensor = lambda: (lambda img: torch.from_numpy(np.asarray(img, np.float32) / 255).permute(2, 0, 1))
  tr.__getattr__, tv.__getattr__ = missing("torchvision.transforms"), missing("torchvision")
  tv.transforms, tv.__version__ = tr, "0.0-tinybounty-standin"
  return {"torchvision": tv, "torchvision.transforms": tr}


def find_data_location(script: str | os.PathLike) -> str | None:
  """The string value of the first dict entry 'data_location' in the script's source, or None."""
  for node in ast.walk(ast.parse(pathlib.Path(script).read_text())):
    if isinstance(node, ast.Dict):
      for k, v in zip(node.keys, node.values):
        if isinstance(k, ast.Constant) and k.value == "data_location" and isinstance(v, ast.Constant) and isinstance(v.value, str): return v.value
  return None


def cifar_cache(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> dict:
  """hlb-CIFAR10's data cache from uint8 CIFAR arrays: images normalized by the train set's per-channel std and mean, fp16;
  targets one-hot fp16 (as main.py builds it after ToTensor)."""
  train, test = torch.from_numpy(x_train).float() / 255, torch.from_numpy(x_test).float() / 255
  std, mean = torch.std_mean(train, dim=(0, 2, 3))
  norm = lambda x: ((x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)).half()
  onehot = lambda y: torch.nn.functional.one_hot(torch.from_numpy(y).long(), 10).half()
  return {"train": {"images": norm(train), "targets": onehot(y_train)}, "eval": {"images": norm(test), "targets": onehot(y_test)}}


def write_data_cache(path: str | os.PathLike, data_dir: str | os.PathLike | None = None, n_train: int = 50000, n_test: int = 10000) -> pathlib.Path:
  """Write the data cache from CIFAR-10 python batches in `data_dir`, or from a synthetic CIFAR-format set of the given size."""
  if data_dir is not None: arrays = load_cifar(data_dir)
  else:
    with tempfile.TemporaryDirectory() as d: arrays = load_cifar(write_cifar_like(d, n_train, n_test))
  with atomic_write(path) as f: torch.save(cifar_cache(*arrays), f)
  return pathlib.Path(path)


@contextlib.contextmanager
def on_device(device: str, host_rng: int | None = None) -> Iterator[None]:
  """Run code written for CUDA on `device`: points 1, 2, 4 and 5 of this module's description, undone on exit."""
  dev = torch.device(device)
  with contextlib.ExitStack() as stack:
    if importlib.util.find_spec("torchvision") is None: stack.enter_context(_modules(torchvision_standin()))
    stack.enter_context(_patched(torch, load=_load_to(dev, torch.load)))
    if dev.type != "cuda":
      stack.enter_context(_patched(torch.cuda, synchronize=lambda device=None: synchronize(dev),
                                   Event=functools.partial(HostEvent, dev), is_available=_available_to_scripts(torch.cuda.is_available)))
      if dev.type == "tiny": stack.enter_context(_patched(torch, compile=_compile_on_tiny(torch.compile)))
      stack.enter_context(RedirectCuda(device))
    if host_rng is not None:
      torch.manual_seed(host_rng)  # the CPU-side initialisation of the model, too
      stack.enter_context(HostRandom(host_rng))
    yield


def run_script(script: str | os.PathLike, device: str, argv: list[str] | None = None, data: str | None = None,
               cache: str | None = None, host_rng: int | None = None, run_name: str = "__main__") -> dict[str, Any]:
  """Run `script` on `device` as described in this module's docstring; returns (a copy of) the script's globals."""
  script = pathlib.Path(script).resolve()
  if cache is None: cache = find_data_location(script)
  if cache is not None and not os.path.exists(cache):
    print(f"tinybounty run: writing the data cache {cache} from {data or 'a synthetic CIFAR-format set'}", file=sys.stderr)
    write_data_cache(cache, data)
  with _patched(sys, argv=[str(script), *(argv or [])], path=[str(script.parent), *sys.path]), on_device(device, host_rng):
    return runpy.run_path(str(script), run_name=run_name)


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(prog="python -m tinybounty.runner", description="Run an unmodified PyTorch CUDA script on another device.")
  p.add_argument("--device", default="tiny", help="target torch device (default tiny: tinygrad, with DEV selecting its backend)")
  p.add_argument("--data", help="directory of CIFAR-10 python batches for the data cache (default: synthetic CIFAR-format data)")
  p.add_argument("--cache", help="data cache path (default: the script's 'data_location')")
  p.add_argument("--host-rng", type=int, metavar="SEED", help="draw random numbers from one seeded CPU generator (identical batches on every device)")
  p.add_argument("script")
  p.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the script")
  a = p.parse_args(argv)
  if a.device.startswith("tiny"): importlib.import_module("tinybounty.torch_backend")  # registers the tiny device
  run_script(a.script, a.device, a.args, a.data, a.cache, a.host_rng)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
