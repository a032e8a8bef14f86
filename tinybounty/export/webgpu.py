"""Export a TinyJit'd tinygrad function to WebGPU: an ES module (model.js) with WGSL kernels, buffer plan and dispatch order,
safetensors weights (sharded) and a demo page.

  from tinybounty.export.webgpu import export_model
  export_model(TinyJit(model.__call__), Tensor.rand(1, 1, 28, 28).realize(), out_dir="web/mnist")

  // in the browser
  import Model from "./web/mnist/model.js";
  const m = await Model.load("./web/mnist/", {onProgress: p => console.log(p.loaded, p.total)});
  const [logits] = await m.run([new Float32Array(784)]);
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import pathlib
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np
from tinygrad import Tensor, dtypes
from tinygrad.codegen import to_program
from tinygrad.dtype import AddrSpace, DType
from tinygrad.engine.jit import _TinyJit
from tinygrad.helpers import Context, Target, round_up
from tinygrad.renderer.wgsl import WGSLRenderer
from tinygrad.uop.ops import Ops, UOp

from tinybounty.export.capture import ExportError, Graph, TensorInput, VarInput, capture, check_inputs, floats_as, warm_up

__all__ = ["export_model", "ExportError", "Export", "WEBGPU_LIMITS", "load_plan"]

HERE = pathlib.Path(__file__).resolve().parent
PLAN_MARK = "export const PLAN = "
# the limits every WebGPU adapter grants (the spec's defaults); pass larger ones to target bigger adapters
WEBGPU_LIMITS = {"maxStorageBufferBindingSize": 134217728, "maxBufferSize": 268435456, "maxStorageBuffersPerShaderStage": 8,
                 "maxUniformBuffersPerShaderStage": 12, "maxComputeWorkgroupsPerDimension": 65535, "maxComputeInvocationsPerWorkgroup": 256,
                 "maxComputeWorkgroupStorageSize": 16384}
DTYPE_NAMES = {dtypes.float32: ("float32", "F32"), dtypes.float16: ("float16", "F16"), dtypes.int32: ("int32", "I32"),
               dtypes.uint32: ("uint32", "U32"), dtypes.int8: ("int8", "I8"), dtypes.uint8: ("uint8", "U8"), dtypes.int16: ("int16", "I16"),
               dtypes.uint16: ("uint16", "U16"), dtypes.bool: ("bool", "BOOL")}
# launch sizes as JSON trees; "/" and "%" truncate like C (CDIV, CMOD), "fdiv" and "fmod" floor
EXPR_OPS = {Ops.ADD: "+", Ops.SUB: "-", Ops.MUL: "*", Ops.CDIV: "/", Ops.CMOD: "%", Ops.FLOORDIV: "fdiv", Ops.FLOORMOD: "fmod", Ops.MAX: "max",
            Ops.CMPLT: "<"}


@dataclass(frozen=True)
class Export:
  """What export_model wrote: the folder, the plan embedded in model.js, and sizes."""
  out_dir: pathlib.Path
  plan: dict
  weight_bytes: int
  kernels: int


def renderer(dtype: DType = dtypes.float32) -> WGSLRenderer:
  """tinygrad's WGSL renderer for a browser target; float16 kernels need the adapter's shader-f16 feature."""
  return WGSLRenderer(Target("WEBGPU", arch="shader-f16" if dtype == dtypes.float16 else ""))


def render_kernel(ast: UOp, ren: WGSLRenderer) -> UOp:
  """Lower one kernel AST to a WGSL PROGRAM, or say which op or dtype WGSL cannot express."""
  name = ast.arg.name if ast.arg is not None else "kernel"
  bad = {u.dtype for u in ast.toposort() if u.dtype in (dtypes.int64, dtypes.uint64, dtypes.float64)}
  if bad: raise ExportError(f"kernel {name!r} uses {', '.join(map(str, bad))}, which WGSL cannot express: cast the model to 32-bit types")
  try:
    return to_program(ast, ren)
  except Exception as e:
    raise ExportError(f"kernel {name!r}: the WebGPU (WGSL) renderer cannot express it: {type(e).__name__}: {e}") from e


def expr(x: Any) -> Any:
  """A launch size as JSON: an int, ["var", name] or [op, a, b]; the runtimes evaluate it with the run's variable values."""
  if isinstance(x, (int, float)): return int(x)
  if x.op is Ops.CONST: return int(x.arg)
  if x.op is Ops.PARAM or x.is_variable: return ["var", x.expr]
  if x.op is Ops.CAST: return expr(x.src[0])
  if x.op in EXPR_OPS and len(x.src) == 2: return [EXPR_OPS[x.op], expr(x.src[0]), expr(x.src[1])]
  raise ExportError(f"a launch size uses {x.op}, which the exported runtime cannot evaluate")


def eval_expr(e: Any, var_vals: dict[str, int]) -> int:
  if isinstance(e, int): return e
  if e[0] == "var": return var_vals[e[1]]
  a, b = eval_expr(e[1], var_vals), eval_expr(e[2], var_vals)
  ops = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: int(a / b), "%": lambda: int(math.fmod(a, b)),
         "fdiv": lambda: a // b, "fmod": lambda: a % b, "max": lambda: max(a, b), "<": lambda: int(a < b)}
  return ops[e[0]]()


def dtype_name(dt: DType, what: str) -> str:
  if dt not in DTYPE_NAMES: raise ExportError(f"{what} has dtype {dt}, which WebGPU buffers cannot hold: cast it to a 32-bit type")
  return DTYPE_NAMES[dt][0]


def build_plan(graph: Graph, limits: dict[str, int]) -> dict:
  """The buffer plan and dispatch order of one captured graph, checked against WebGPU `limits`."""
  ids: dict[UOp, int] = {}
  buffers: list[dict] = []
  def buf_id(b: UOp) -> int:
    if b not in ids:
      ids[b] = len(buffers)
      entry = {"bytes": round_up(b.buffer.nbytes, 4), "dtype": dtype_name(b.dtype, f"a buffer of {b.buffer.size} elements")}
      if b in graph.weights: entry["weight"] = graph.weights[b][0]
      if entry["bytes"] > limits["maxStorageBufferBindingSize"]:
        raise ExportError(f"buffer {entry.get('weight', len(buffers))} is {entry['bytes']} bytes, over WebGPU's maxStorageBufferBindingSize "
                          f"({limits['maxStorageBufferBindingSize']}): shrink or split it, or pass larger limits= for adapters that allow it")
      buffers.append(entry)
    return ids[b]
  inputs = [buf_id(x.buf) if isinstance(x, TensorInput) else None for x in graph.inputs]
  var_names = {x.name for x in graph.inputs if isinstance(x, VarInput)}
  var_max = {x.name: x.vmax for x in graph.inputs if isinstance(x, VarInput)}
  shaders: dict[str, int] = {}
  kernels, requires = [], {k: 0 for k in ("maxStorageBuffersPerShaderStage", "maxUniformBuffersPerShaderStage", "maxComputeWorkgroupsPerDimension",
                                           "maxComputeInvocationsPerWorkgroup", "maxComputeWorkgroupStorageSize")}
  for prg, args in graph.kernels:
    info, name = prg.arg, prg.arg.function_name
    if missing := [v.expr for v in info.vars if v.expr not in var_names]:
      raise ExportError(f"kernel {name!r} uses variable(s) {missing} that are not inputs: pass them as bound Variables")
    grid = [expr(g) for g in info.global_size]
    need = {"maxStorageBuffersPerShaderStage": len(info.globals), "maxUniformBuffersPerShaderStage": 1 + len(info.vars),
            "maxComputeWorkgroupsPerDimension": max(eval_expr(g, var_max) for g in grid),
            "maxComputeInvocationsPerWorkgroup": int(np.prod([int(x) for x in info.local_size or (1,)])),
            "maxComputeWorkgroupStorageSize": sum(u.max_numel() * u.dtype.itemsize for u in prg.src[1].src
                                                  if u.op is Ops.BUFFER and u.addrspace == AddrSpace.LOCAL)}
    for k, v in need.items():
      if v > limits[k]: raise ExportError(f"kernel {name!r} needs {k} = {v}, over WebGPU's limit {limits[k]} (limits= targets bigger adapters)")
      requires[k] = max(requires[k], v)
    src = prg.src[2].arg
    kernels.append({"name": f"k{len(kernels)}_{name}", "entry": name, "shader": shaders.setdefault(src, len(shaders)),
                    "bufs": [buf_id(args[i]) for i in info.globals], "vars": [v.expr for v in info.vars], "grid": grid})
  outputs = [buf_id(o.buf) for o in graph.outputs]
  requires["maxStorageBufferBindingSize"] = requires["maxBufferSize"] = max(b["bytes"] for b in buffers)
  buffers, remap = share_scratch(buffers, kernels, pinned={i for i in inputs + outputs if i is not None})
  for k in kernels: k["bufs"] = [remap[b] for b in k["bufs"]]
  inputs, outputs = [None if i is None else remap[i] for i in inputs], [remap[o] for o in outputs]
  return {"buffers": buffers, "shaders": list(shaders), "kernels": kernels, "inputs": inputs, "outputs": outputs, "requires": requires,
          "input_dtypes": [dtype_name(x.dtype, x.name) if isinstance(x, TensorInput) else "int32" for x in graph.inputs],
          "output_dtypes": [dtype_name(o.dtype, f"output {i}") for i, o in enumerate(graph.outputs)]}


def share_scratch(buffers: list[dict], kernels: list[dict], pinned: set[int]) -> tuple[list[dict], list[int]]:
  """Let intermediates whose lifetimes (first to last dispatch) do not overlap share one GPU buffer, sized for the largest.

  Inputs, outputs and weights (which hold state across runs) keep their own. Every intermediate is written before it is read
  in each run (a read-before-write buffer is a weight), so sharing never changes what a kernel reads. Returns the new buffer
  list and the old -> new index map."""
  first: dict[int, int] = {}
  last: dict[int, int] = {}
  for i, k in enumerate(kernels):
    for b in k["bufs"]: first.setdefault(b, i); last[b] = i
  out, remap, slots = [], [0] * len(buffers), []  # slots: [new index, last dispatch that uses it]
  for b in sorted(range(len(buffers)), key=lambda b: (first.get(b, -1), b)):
    if b in pinned or "weight" in buffers[b] or b not in first:
      remap[b] = len(out)
      out.append(buffers[b])
      continue
    free = [s for s in slots if s[1] < first[b]]
    fits = [s for s in free if out[s[0]]["bytes"] >= buffers[b]["bytes"]]
    if slot := min(fits, key=lambda s: out[s[0]]["bytes"], default=None) or max(free, key=lambda s: out[s[0]]["bytes"], default=None):
      out[slot[0]] = {**out[slot[0]], "bytes": max(out[slot[0]]["bytes"], buffers[b]["bytes"])}
    else:
      slots.append(slot := [len(out), 0])
      out.append({"bytes": buffers[b]["bytes"], "dtype": buffers[b]["dtype"]})
    remap[b], slot[1] = slot[0], last[b]
  return out, remap


def _weights(graph: Graph) -> dict[str, np.ndarray]:
  out: dict[str, np.ndarray] = {}
  for name, arr in graph.weights.values():
    if name in out: raise ExportError(f"two buffers share the weight name {name!r}")
    out[name] = arr
  return out


def _merge_f16(w32: dict[str, np.ndarray], w16: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """One set of stored weights for both plans: the f16 plan's (float16 where it is half); the f32 plan upcasts them at load."""
  if w32.keys() != w16.keys():
    raise ExportError(f"the float16 and float32 graphs read different weights: {sorted(w32.keys() ^ w16.keys())}")
  for k in w32:
    if w32[k].shape != w16[k].shape: raise ExportError(f"weight {k!r} has shape {w32[k].shape} in float32 but {w16[k].shape} in float16")
  return w16


def write_safetensors(path: pathlib.Path, tensors: dict[str, np.ndarray]):
  header, offset = {}, 0
  for k, a in tensors.items():
    header[k] = {"dtype": dict(DTYPE_NAMES.values())[a.dtype.name], "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
    offset += a.nbytes
  raw = json.dumps(header, separators=(",", ":")).encode()
  raw += b" " * (-len(raw) % 8)
  with open(path, "wb") as f:
    f.write(len(raw).to_bytes(8, "little") + raw)
    for a in tensors.values(): f.write(np.ascontiguousarray(a).tobytes())


def read_safetensors(path: pathlib.Path) -> dict[str, np.ndarray]:
  raw = path.read_bytes()
  n = int.from_bytes(raw[:8], "little")
  names = {st: np_name for np_name, st in DTYPE_NAMES.values()}
  return {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], dtype=names[v["dtype"]]).reshape(v["shape"])
          for k, v in json.loads(raw[8:8 + n]).items() if k != "__metadata__"}


def shard(tensors: dict[str, np.ndarray], shard_bytes: int) -> list[dict[str, np.ndarray]]:
  """Pack weights in order into shards of at most shard_bytes (a larger single weight gets a shard of its own)."""
  shards: list[dict[str, np.ndarray]] = [{}]
  for k, a in tensors.items():
    if shards[-1] and sum(x.nbytes for x in shards[-1].values()) + a.nbytes > shard_bytes: shards.append({})
    shards[-1][k] = a
  return shards


def _write(out: pathlib.Path, plan: dict, weights: dict[str, np.ndarray], shard_bytes: int, example: list):
  digest = hashlib.sha256()
  for k, a in weights.items(): digest.update(k.encode() + np.ascontiguousarray(a).tobytes())
  tag, parts = digest.hexdigest()[:12], shard(weights, shard_bytes)
  plan["weights"] = {"files": []}
  for i, part in enumerate(parts):
    path = f"weights-{tag}-{i + 1:05d}-of-{len(parts):05d}.safetensors"  # content-addressed: a re-export never hits a stale cache entry
    write_safetensors(out / path, part)
    plan["weights"]["files"].append({"path": path, "bytes": (out / path).stat().st_size})
  shutil.copy(HERE / "runtime.js", out / "runtime.js")
  (out / "model.js").write_text(
    "// generated by tinybounty.export.webgpu.export_model: the WGSL kernels, buffer plan and dispatch order of one tinygrad graph\n"
    'import { Model as Runtime } from "./runtime.js";\n'
    f"{PLAN_MARK}{json.dumps(plan, separators=(',', ':'))};\n"
    "export default class Model {\n"
    "  // url: the folder holding the weight files (default: this module's folder); opts: {onProgress, precision: 'auto'|'f16'|'f32'}\n"
    "  static load(url = new URL('.', import.meta.url), opts = {}) { return Runtime.load(PLAN, url, opts); }\n"
    "}\n")
  (out / "index.html").write_text((HERE / "demo.html").read_text().replace("__EXAMPLE__", json.dumps(example)))


def load_plan(out_dir: str | os.PathLike) -> dict:
  """The plan embedded in an export's model.js (what the browser runs)."""
  for line in (pathlib.Path(out_dir) / "model.js").read_text().splitlines():
    if line.startswith(PLAN_MARK): return json.loads(line[len(PLAN_MARK):].rstrip(";"))
  raise ExportError(f"{out_dir}/model.js has no plan: not an export of this version")


def _example(inputs: list, limit: int = 1 << 16) -> list:
  """The example inputs, for the demo page (large tensors are left as zeros)."""
  return [x.numpy().flatten().tolist() if isinstance(x, Tensor) and x.numel() <= limit else None if isinstance(x, Tensor) else x.unbind()[1]
          for x in inputs]


def export_model(fn: _TinyJit, *example_inputs: Tensor | UOp, out_dir: str | os.PathLike, dtype: str = "float32",
                 shard_bytes: int = 64 << 20, limits: dict[str, int] | None = None) -> Export:
  """Export a TinyJit'd function to `out_dir` (written to a temp folder, then renamed into place).

  example_inputs: realized Tensors and bound Variables (Variable("pos", 0, 127).bind(0)) in call order; symbolic Variables stay
  symbolic in the export. dtype="float16" also captures a float16 graph (float32 weights and inputs cast to half) for adapters with
  shader-f16; weights are stored in float16 and upcast at load by the float32 fallback. The function is called twice as TinyJit
  does (a plain first call, then a captured one); state it mutates (a KV cache) is saved as it is before the captured call.
  """
  if dtype not in ("float32", "float16"): raise ExportError(f"dtype must be 'float32' or 'float16', got {dtype!r}")
  limits = {**WEBGPU_LIMITS, **(limits or {})}
  # the scheduler splits kernels that would bind more buffers; its cache would hand back schedules made without that limit
  with Context(MAX_KERNEL_BUFFERS=limits["maxStorageBuffersPerShaderStage"], SCACHE=0):
    return _export(fn, example_inputs, pathlib.Path(out_dir), dtype, shard_bytes, limits)


def _export(fn: _TinyJit, example_inputs: tuple, out: pathlib.Path, dtype: str, shard_bytes: int, limits: dict[str, int]) -> Export:
  state = warm_up(fn, example_inputs)
  g32 = capture(fn, example_inputs, state, lambda ast: render_kernel(ast, renderer()))
  plan: dict[str, Any] = {"format": "tinybounty-webgpu/1", "plans": {"f32": build_plan(g32, limits)}, "inputs": [
    {"name": x.name, "kind": "tensor", "shape": list(x.shape)} if isinstance(x, TensorInput) else
    {"name": x.name, "kind": "var", "min": x.vmin, "max": x.vmax} for x in g32.inputs],
    "outputs": [{"name": f"output{i}", "shape": list(o.shape)} for i, o in enumerate(g32.outputs)]}
  weights = _weights(g32)
  if dtype == "float16":
    with floats_as(state, dtypes.float16):
      inputs16 = tuple(x.cast(dtypes.float16).contiguous().realize() if isinstance(x, Tensor) and x.dtype == dtypes.float32 else x
                       for x in check_inputs(example_inputs))
      g16 = capture(fn, inputs16, state, lambda ast: render_kernel(ast, renderer(dtypes.float16)))
      plan["plans"]["f16"] = build_plan(g16, limits)
      weights = _merge_f16(weights, _weights(g16))
  out.parent.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
  try:
    _write(tmp, plan, weights, shard_bytes, _example(list(example_inputs)))
    old = out.with_name(f".{out.name}.old") if out.exists() else None
    if old:
      shutil.rmtree(old, ignore_errors=True)
      os.replace(out, old)
    os.replace(tmp, out)
    if old: shutil.rmtree(old)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return Export(out, plan, sum(f["bytes"] for f in plan["weights"]["files"]), len(plan["plans"]["f32"]["kernels"]))
