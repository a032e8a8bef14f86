"""Run an export's WGSL kernels in Python through tinygrad's own WEBGPU device (Dawn, from the dawn-python package).

The second check of an export: the same plan and weight files the browser loads, dispatched by tinygrad's WebGPU runtime.
Dawn needs a Vulkan driver to compute: on a machine without a GPU that is Mesa's lavapipe (Debian's mesa-vulkan-drivers);
without one Dawn falls back to its Null backend, which runs nothing (webgpu_device refuses it).
"""
from __future__ import annotations

import functools
import os
import pathlib

import numpy as np

from tinybounty.export.webgpu import ExportError, eval_expr, load_plan, read_safetensors


def dawn_library() -> str | None:
  """libwebgpu_dawn from the dawn-python package (tinygrad finds it through WEBGPU_PATH)."""
  try:
    import pydawn
  except ImportError:
    return None
  libs = sorted((pathlib.Path(pydawn.__file__).parent / "lib").glob("libwebgpu_dawn*.so"))
  return str(next((p for p in libs if os.uname().machine in p.name), libs[0])) if libs else None


@functools.cache
def webgpu_device():
  """tinygrad's WEBGPU device on Dawn; raises with the fix when dawn-python is missing."""
  if "WEBGPU_PATH" not in os.environ:
    if (lib := dawn_library()) is None: raise RuntimeError("no Dawn WebGPU library: pip install dawn-python (the 'web' extra)")
    os.environ["WEBGPU_PATH"] = lib
  from tinygrad import Device
  dev, probe = Device["WEBGPU"], np.arange(4, dtype=np.int32)
  buf, back = dev.allocator.alloc(16), np.zeros(4, np.int32)
  dev.allocator._copyin(buf, memoryview(probe.view(np.uint8)))
  dev.allocator._copyout(memoryview(back.view(np.uint8)), buf)
  dev.allocator._free(buf, None)
  if not np.array_equal(probe, back):
    raise RuntimeError("Dawn computes nothing here (its Null backend: no Vulkan driver): install Debian's mesa-vulkan-drivers (lavapipe)")
  return dev


def run_export(out_dir: str | os.PathLike, *steps: list, precision: str = "auto") -> tuple[str, list[list[np.ndarray]]]:
  """Run export `out_dir` once per step (inputs in exported order: numpy arrays and ints). Returns (precision used, outputs per step)."""
  dev, plan = webgpu_device(), load_plan(out_dir)  # first: it points tinygrad at Dawn before ops_webgpu loads it
  from tinygrad.device import TinyELF
  from tinygrad.helpers import Target
  from tinygrad.runtime.ops_webgpu import WebGPUProgram
  has_f16 = "shader-f16" in (dev.arch or "")
  if precision == "auto": precision = "f16" if has_f16 and "f16" in plan["plans"] else "f32"
  if precision == "f16" and not has_f16: raise ExportError("precision 'f16' needs shader-f16, which this Dawn adapter lacks")
  p = plan["plans"][precision]
  weights = {k: v for f in plan["weights"]["files"] for k, v in read_safetensors(pathlib.Path(out_dir) / f["path"]).items()}
  bufs = [dev.allocator.alloc(max(b["bytes"], 4)) for b in p["buffers"]]
  for buf, b in zip(bufs, p["buffers"]):
    if "weight" in b: dev.allocator._copyin(buf, memoryview(np.ascontiguousarray(weights[b["weight"]].astype(b["dtype"])).view(np.uint8).flatten()))
  progs = [WebGPUProgram(dev, TinyELF(p["shaders"][k["shader"]].encode(), k["entry"], Target("WEBGPU"), ())) for k in p["kernels"]]
  results = []
  for step in steps:
    var_vals = {}
    for i, (spec, x) in enumerate(zip(plan["inputs"], step)):
      if spec["kind"] == "var": var_vals[spec["name"]] = int(x)
      elif p["inputs"][i] is not None:
        data = np.ascontiguousarray(np.asarray(x, dtype=p["input_dtypes"][i]).flatten()).view(np.uint8)
        dev.allocator._copyin(bufs[p["inputs"][i]], memoryview(np.pad(data, (0, -len(data) % 4))))
    for prg, k in zip(progs, p["kernels"]):
      grid = tuple(eval_expr(g, var_vals) for g in k["grid"])
      if 0 not in grid: prg(*[bufs[b] for b in k["bufs"]], global_size=grid, vals=tuple(var_vals[v] for v in k["vars"]))
    outs = []
    for b, dt, spec in zip(p["outputs"], p["output_dtypes"], plan["outputs"]):
      raw = np.empty(p["buffers"][b]["bytes"], np.uint8)
      dev.allocator._copyout(memoryview(raw), bufs[b])
      n = int(np.prod(spec["shape"]))
      outs.append(raw.view(dt)[:n].reshape(spec["shape"]).astype(np.float32 if dt == "float16" else dt))
    results.append(outs)
  for buf in bufs: dev.allocator._free(buf, None)
  return precision, results
