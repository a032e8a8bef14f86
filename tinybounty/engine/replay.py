"""Process replay: every kernel's rendered source and the schedule of a model corpus, stock engine vs ours, byte for byte.

  python -m tinybounty.engine.replay                       # the CI corpus: small sizes, clang + CUDA + AMD renderers
  python -m tinybounty.engine.replay --size full --targets clang --workloads resnet50_fwd

For each target (a tinygrad DEV, one subprocess each since DEV is process-wide) and each workload, the capture is taken
twice in one process, first with stock tinygrad, then with our engine installed (the C loop unless it cannot be built:
each row says which ran), from freshly built tensors and with
tinygrad's schedule cache cleared: the schedule (ordered kernel names, each with its buffers numbered by first use,
dtype and size) and each kernel's source as the target's renderer writes it. Any difference fails the run.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

TARGETS = {"clang": "CPU", "cuda": "NULL:CUDA:sm_90", "amd": "NULL:AMDLLVM:gfx1201"}
CORPUS = ("resnet50_fwd", "resnet18_train_step", "gpt2_fwd", "gpt2_train_step", "gpt2_decode", "bert_fwd", "llama_decode", "mnist_train_step")


@dataclass(frozen=True)
class Kernel:
  """One scheduled call: its name, its rendered source ("" if not a kernel), and its buffers as (number by first use, dtype, size)."""
  name: str
  source: str
  buffers: tuple[tuple[int, str, int], ...]


def render(ast, renderer) -> tuple[str, str]:
  """(name, source) of one kernel AST as tinygrad lowers and renders it, without compiling."""
  from tinygrad.codegen import do_linearize, full_rewrite_to_sink
  from tinygrad.renderer.isa import ISARenderer
  from tinygrad.uop.ops import Ops, ProgramInfo, UOp
  if isinstance(renderer, ISARenderer): raise NotImplementedError(f"replay renders source; {type(renderer).__name__} emits machine code")
  sink = full_rewrite_to_sink(ast, renderer, optimize=ast.tag is None)
  info = ProgramInfo.from_sink(sink, renderer.target)
  prg = do_linearize(renderer, UOp(Ops.PROGRAM, src=(sink,), arg=info), sink)
  return info.name, renderer.render(list(prg.src[-1].src))


def capture(workload: str, size: str) -> list[Kernel]:
  """Build a workload afresh, schedule it and render every kernel with whatever engine is installed now."""
  from tinygrad import Device, Tensor
  from tinygrad.schedule import schedule_cache
  from tinygrad.uop.ops import Ops

  from tinybounty.models.workloads import WORKLOADS
  outs = WORKLOADS[workload].build(size)
  schedule_cache.clear()
  linear, _ = Tensor.linear_with_vars(*outs)
  renderer, numbers, rendered, kernels = Device[Device.DEFAULT].renderer, {}, {}, []
  for call in linear.src:
    bufs = tuple((numbers.setdefault(b, len(numbers)), str(b.dtype), b.max_numel()) for b in call.src[1:] if not b.is_bound_var)
    if (ast := call.src[0]) not in rendered: rendered[ast] = render(ast, renderer) if ast.op is Ops.SINK else (f"{ast.op.name} {ast.arg}", "")
    kernels.append(Kernel(*rendered[ast], bufs))
  return kernels


def first_difference(stock: list[Kernel], ours: list[Kernel]) -> str | None:
  """A line describing the first difference between two captures, or None if they are identical."""
  if len(stock) != len(ours): return f"{len(stock)} calls with stock, {len(ours)} with ours"
  for i, (a, b) in enumerate(zip(stock, ours)):
    for field in ("name", "source", "buffers"):
      if getattr(a, field) != getattr(b, field): return f"call {i} ({a.name}): different {field}"
  return None


def replay_here(workloads: list[str], size: str) -> list[dict]:
  """Compare stock and ours for each workload on this process's DEV; one result dict per workload."""
  import tinybounty.engine as engine
  results = []
  for w in workloads:
    caps, st, kind = {}, time.process_time(), None
    for on in (False, True):
      gc.collect()
      with engine.enabled(on):
        caps[on] = capture(w, size)
        kind = engine.engine_kind() if on else None
    diff = first_difference(caps[False], caps[True])
    results.append({"workload": w, "kernels": sum(k.source != "" for k in caps[True]), "calls": len(caps[True]), "identical": diff is None,
                    "difference": diff, "seconds": round(time.process_time() - st, 1), "engine": kind})
  return results


def target_env(dev: str) -> dict[str, str]:
  """The environment of a replay subprocess for one DEV (NVRTC from PyPI's nvidia-cuda-nvrtc-cu12 where CUDA needs it)."""
  env = {**os.environ, "DEV": dev}
  env.pop("TINYBOUNTY_ENGINE", None)
  if "CUDA" in dev and "NVRTC_PATH" not in env:
    try:
      import nvidia.cuda_nvrtc as nvrtc
      lib = os.path.join(next(iter(nvrtc.__path__)), "lib", "libnvrtc.so.12")
      if os.path.exists(lib): env["NVRTC_PATH"] = lib
    except ImportError:
      pass
  return env


def replay(targets: list[str], workloads: list[str], size: str) -> dict[str, list[dict]]:
  """Run the replay of each target in its own subprocess; {target: [result per workload]}."""
  unknown = [t for t in targets if t not in TARGETS] + [w for w in workloads if w not in CORPUS]
  if unknown: raise ValueError(f"unknown targets or workloads {unknown}; targets: {list(TARGETS)}, workloads: {list(CORPUS)}")
  out = {}
  for t in targets:
    cmd = [sys.executable, "-m", "tinybounty.engine.replay", "--worker", "--size", size, "--workloads", *workloads]
    proc = subprocess.run(cmd, env=target_env(TARGETS[t]), capture_output=True, text=True)
    if proc.returncode != 0: raise RuntimeError(f"replay on {t} ({TARGETS[t]}) crashed:\n{proc.stderr[-3000:]}")
    out[t] = json.loads(proc.stdout.strip().splitlines()[-1])
  return out


def main(argv: list[str] | None = None) -> int:
  ap = argparse.ArgumentParser(prog="python -m tinybounty.engine.replay", description=__doc__.split("\n")[0])
  ap.add_argument("--size", choices=("small", "full"), default="small")
  ap.add_argument("--targets", nargs="+", default=list(TARGETS), help=f"renderers: {', '.join(TARGETS)}")
  ap.add_argument("--workloads", nargs="+", default=list(CORPUS))
  ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  args = ap.parse_args(argv)
  if args.worker:
    print(json.dumps(replay_here(args.workloads, args.size)))
    return 0
  from tqdm import tqdm
  ok, results = True, {}
  for t in tqdm(args.targets, desc="replay", unit="target"): results.update(replay([t], args.workloads, args.size))
  for t, rows in results.items():
    for r in rows:
      ok &= r["identical"]
      verdict = "identical" if r["identical"] else f"DIFFERS: {r['difference']}"
      print(f"{t:6s} {r['workload']:18s} {r['calls']:4d} calls {r['kernels']:4d} kernels {r['seconds']:6.1f} s  ours: {r['engine']} loop  {verdict}")
  print("replay: byte-identical" if ok else "replay: FAILED, stock and ours differ")
  return 0 if ok else 1


if __name__ == "__main__":
  sys.exit(main())
