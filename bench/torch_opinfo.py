"""Coverage of the tiny device on PyTorch's OpInfo database: sample inputs on tiny vs CPU, forward and backward.

  PYTHONPATH=. DEV=CPU python bench/torch_opinfo.py [--dtype float32] [--samples 3] [--ops add,mul] [--out docs/torch_opinfo.md]

An op passes forward when every one of its first N float sample inputs gives outputs equal to the CPU's under
torch.testing.assert_close defaults; backward when the gradients of sum(outputs) w.r.t. every input that requires grad
match too. "error" means the tiny device raised (typically NotImplementedError naming the missing aten op); "fail" means
it ran but differs. CPU fallback is off. Prints a benchmarks.md row.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections import Counter

os.environ.pop("TINY_CPU_FALLBACK", None)
import torch  # noqa: E402
from torch.testing._internal.common_methods_invocations import op_db  # noqa: E402
from torch.utils._pytree import tree_flatten, tree_map  # noqa: E402
from tqdm import tqdm  # noqa: E402

import tinybounty.torch_backend  # noqa: E402,F401
from tinybounty.hardware import machine  # noqa: E402
from tinybounty.records import format_row  # noqa: E402


class OpTimeout(Exception):
  pass


def _alarm(*_):
  raise OpTimeout("timed out")


def _to(x, device):
  if not isinstance(x, torch.Tensor): return x
  y = x.detach().to(device)
  return y.requires_grad_(x.requires_grad) if y.is_floating_point() else y


def _run(op, sample, device):
  inp, args, kwargs = (tree_map(lambda t: _to(t, device), v) for v in (sample.input, sample.args, sample.kwargs))
  out = op(inp, *args, **kwargs)
  leaves = [t for t in tree_flatten((inp, args, kwargs))[0] if isinstance(t, torch.Tensor) and t.requires_grad]
  return out, leaves


def _cpu(x):
  return x.detach().cpu() if isinstance(x, torch.Tensor) else x


def _key(op) -> str:
  return op.name + (f".{op.variant_test_name}" if op.variant_test_name else "")


def check_op(op, dtype, n_samples):
  """('pass'|'fail'|'error'|'skip', same for backward, message)."""
  samples = list(op.sample_inputs("cpu", dtype, requires_grad=op.supports_autograd))[:n_samples]
  if not samples: return "skip", "skip", "no samples"
  fwd, bwd, msg = "pass", "pass" if op.supports_autograd else "skip", ""
  for s in samples:
    try:
      ref, ref_leaves = _run(op, s, "cpu")
    except Exception:
      continue
    try:
      out, leaves = _run(op, s, "tiny")
      torch.testing.assert_close(tree_map(_cpu, out), tree_map(_cpu, ref), equal_nan=True)
    except AssertionError as e:
      return "fail", "skip" if bwd == "skip" else "fail", str(e).splitlines()[0][:160]
    except Exception as e:
      return "error", "skip" if bwd == "skip" else "error", f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
    if bwd == "skip" or not ref_leaves: continue
    try:
      outs = [t for t in tree_flatten(ref)[0] if isinstance(t, torch.Tensor) and t.requires_grad]
      if not outs: continue
      ref_g = torch.autograd.grad(sum(o.sum() for o in outs), ref_leaves, allow_unused=True)
      touts = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor) and t.requires_grad]
      g = torch.autograd.grad(sum(o.sum() for o in touts), leaves, allow_unused=True)
      torch.testing.assert_close(tree_map(_cpu, list(g)), list(ref_g), equal_nan=True)
    except AssertionError as e:
      bwd, msg = "fail", "backward: " + str(e).splitlines()[0][:160]
    except Exception as e:
      bwd, msg = "error", f"backward: {type(e).__name__}: {str(e).splitlines()[0][:160]}"
  return fwd, bwd, msg


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--dtype", default="float32")
  ap.add_argument("--samples", type=int, default=3)
  ap.add_argument("--ops", default="", help="comma-separated op names or name.variant keys (default: all)")
  ap.add_argument("--timeout", type=int, default=120, help="seconds per op")
  ap.add_argument("--out", default="", help="write the per-op list here (markdown)")
  ap.add_argument("--shard", default="0/1", help="i/n: run every n-th op starting at i (to split over processes)")
  ap.add_argument("--deadline", type=float, default=0, help="seconds; ops not reached by then count as 'not run'")
  ap.add_argument("--json", default="", help="dump raw results here")
  ap.add_argument("--merge", default="", help="comma-separated --json dumps to combine instead of running")
  a = ap.parse_args()
  dtype = getattr(torch, a.dtype)
  wanted = set(a.ops.split(",")) if a.ops else None
  i, n = (int(v) for v in a.shard.split("/"))
  todo = [op for op in op_db if dtype in op.supported_dtypes("cpu") and (wanted is None or op.name in wanted or _key(op) in wanted)][i::n]
  results, t0 = {}, time.perf_counter()
  if a.merge:
    todo = []
    for path in a.merge.split(","):
      with open(path) as fh: results.update({k: tuple(v) for k, v in json.load(fh).items()})
  signal.signal(signal.SIGALRM, _alarm)
  for op in tqdm(todo, desc=f"op_db {a.dtype}", file=sys.stderr):
    key = _key(op)
    if a.deadline and time.perf_counter() - t0 > a.deadline:
      results[key] = ("not run", "not run", "deadline")
      continue
    signal.alarm(a.timeout)
    try:
      results[key] = check_op(op, dtype, a.samples)
    except OpTimeout:
      results[key] = ("error", "error" if op.supports_autograd else "skip", "timed out")
    except Exception as e:
      results[key] = ("error", "error", f"{type(e).__name__}: {str(e)[:120]}")
    finally:
      signal.alarm(0)
  if a.json:
    with open(a.json, "w") as fh: json.dump(results, fh)
  fwd, bwd = Counter(r[0] for r in results.values()), Counter(r[1] for r in results.values())
  nf, nb = sum(fwd[k] for k in ("pass", "fail", "error", "not run")), sum(bwd[k] for k in ("pass", "fail", "error", "not run"))
  print(f"{a.dtype}: forward {fwd['pass']}/{nf} pass ({fwd['fail']} fail, {fwd['error']} error); "
        f"backward {bwd['pass']}/{nb} pass ({bwd['fail']} fail, {bwd['error']} error); {fwd['not run']} ops not run; "
        f"{time.perf_counter() - t0:.0f} s")
  cmd = "PYTHONPATH=. DEV=" + os.environ.get("DEV", "CPU") + " python bench/torch_opinfo.py " + " ".join(sys.argv[1:])
  print(format_row("torch_opinfo", machine(), cmd, f"{a.dtype} fwd {fwd['pass']}/{nf}, bwd {bwd['pass']}/{nb} ops pass",
                   "upstream C++ tiny backend (torch 2.13, float32, 3 samples): fwd 414/672, bwd 335/520"))
  if a.out:
    lines = [f"# OpInfo coverage of the tiny device ({a.dtype}, {a.samples} samples per op)", "",
             f"Forward {fwd['pass']}/{nf} pass, backward {bwd['pass']}/{nb} pass. Command: `{cmd}`", "",
             "| op | forward | backward | note |", "|---|---|---|---|"]
    lines += [f"| {k} | {f} | {b} | {m.replace('|', '/')} |" for k, (f, b, m) in sorted(results.items())]
    tmp = a.out + ".tmp"
    with open(tmp, "w") as fh: fh.write("\n".join(lines) + "\n")
    os.replace(tmp, a.out)


if __name__ == "__main__":
  main()
