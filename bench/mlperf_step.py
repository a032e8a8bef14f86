"""MLPerf BERT pretraining step throughput: tinygrad (TinyJit step) vs transformers' BertForPreTraining with our PyTorch LAMB,
eager and under torch.compile (inductor), same model shape, initial weights and batches.

  PYTHONPATH=. DEV=CPU python bench/mlperf_step.py [--steps 12] [--batch-size 8] [--seq-len 64] [--skip inductor]
  DEV=CUDA python bench/mlperf_step.py --device cuda --size large --dtype bf16 --batch-size 32 --json out/bert.json

--size small is a 2 x 128 model on generated shards; --size large is MLPerf's BERT-large (24 x 1024, 16 heads, 4096,
vocab 30522) at sequence length 512 with 76 masked-LM predictions. --dtype sets the compute precision of both sides:
PyTorch runs torch.autocast, tinygrad its trainer's mixed precision (float32 master weights, matmuls in the dtype,
LayerNorm/softmax/losses in float32); float16 uses a static loss scale of 2^16 on both. Dropout is off on both sides
(the step-0 losses must agree). The tinygrad side runs on DEV's device; --device picks PyTorch's.

Each part runs in its own process, one after another: "init" draws the weights with tinygrad on DEV's device and saves
them; "torch eager", "tinygrad" and "torch.compile" each start from those weights. Separate processes keep tinygrad's
CUDA context and allocator away from PyTorch's, and a part that crashes, or passes its time limit, is reported while the
others still run. The first --warmup steps (compilation, JIT capture, dynamo tracing) are excluded; the rest give min and
median step time, each step ending on the host (loss read; torch.cuda.synchronize on CUDA). Sequences/s = batch / step
time. Results go to --json after every part.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from tinybounty.data.bert_shards import FIELDS, build_samples, stdlib_text
from tinybounty.mlperf.bert_train import BertRun
from tinybounty.mlperf.checkpoint import batch_indices
from tinybounty.mlperf.lamb import LambConfig, lr_at
from tinybounty.models.bert_pretrain import BertPretrainConfig, decayed

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
FP16_SCALE = 2.0**16  # LossScaler's initial scale; static here (a bench of a few steps)
# run in this order, after "init"; the float32 forward of batch 0 (tinygrad's side of the exact step-0 check) last
PARTS = {"eager": "torch eager", "tinygrad": "tinygrad", "inductor": "torch.compile", "fp32": "tinygrad fp32 forward"}


def model_config(size: str, seq_len: int, vocab: int) -> BertPretrainConfig:
  """small: 2 x 128 on the shards' own vocabulary; large: MLPerf's BERT-large (vocab 30522, or the shards' if larger). Dropout off."""
  if size == "small": return BertPretrainConfig(dim=128, n_layers=2, n_heads=4, hidden_dim=512, vocab_size=vocab, max_seq_len=seq_len, dropout=0.0)
  large = BertPretrainConfig.large()
  return large.with_(vocab_size=max(large.vocab_size, vocab), max_seq_len=max(large.max_seq_len, seq_len), dropout=0.0)


def param_count(cfg: BertPretrainConfig) -> int:
  """Parameters of BertForPretraining(cfg), the decoder tied to the word embeddings."""
  d, h, L, V, T = cfg.dim, cfg.hidden_dim, cfg.n_layers, cfg.vocab_size, cfg.max_seq_len
  layer = 4 * (d * d + d) + 2 * d + (d * h + h) + (h * d + d) + 2 * d
  embeddings = (V + T + cfg.type_vocab_size) * d + 2 * d
  return embeddings + L * layer + (d * d + d) + (d * d + d + 2 * d + V) + (2 * d + 2)


class Setup:
  """What every part shares: arguments, samples, model config, run settings; built the same way in each process."""
  def __init__(self, a: argparse.Namespace, work: pathlib.Path):
    self.a, self.work = a, work
    # the samples write_shards would store, kept in a plain .npz (no h5py needed where the bench runs)
    if not (data := work / "samples.npz").is_file():
      vocab, arr = build_samples(stdlib_text(), seq_len=a.seq_len, max_pred=a.max_pred)
      np.savez(tmp := work / "samples.tmp.npz", vocab_size=len(vocab), **arr)
      os.replace(tmp, data)
    with np.load(data) as z: self.data, vocab_size = {k: z[k].astype(np.int32) for k in FIELDS}, int(z["vocab_size"])
    self.cfg = model_config(a.size, a.seq_len, vocab_size)
    lamb = LambConfig(lr=1e-2 if a.size == "small" else 4e-4, warmup_steps=2, total_steps=a.steps)
    self.run = BertRun(steps=a.steps, batch_size=a.batch_size, dtype=DTYPES[a.dtype], model=self.cfg, lamb=lamb)
    self.weights = work / "init.npz"

  def batch(self, step: int) -> dict[str, np.ndarray]:
    """BertTrainer.batch(step) without a trainer (no tinygrad device in the PyTorch processes)."""
    idx = batch_indices(len(self.data["input_ids"]), self.run.batch_size, self.run.seed, step)
    return {k: self.data[k][idx] for k in FIELDS}


def init_part(s: Setup, out: dict) -> None:
  """Draw the initial weights as the trainer does (seeded, on tinygrad's device) and save them for the other parts."""
  from tinygrad import Device, Tensor
  from tinygrad.nn.state import get_state_dict

  from tinybounty.models.bert_pretrain import BertForPretraining
  Tensor.manual_seed(s.run.seed)
  state = {k: v.numpy() for k, v in get_state_dict(BertForPretraining(s.cfg)).items()}
  tmp = s.weights.with_name("init.tmp.npz")
  np.savez(tmp, **state)
  os.replace(tmp, s.weights)
  out.update(tinygrad_device=Device.DEFAULT, tensors=len(state), params=int(sum(v.size for v in state.values())))


def torch_part(s: Setup, out: dict, compiled: bool) -> None:
  """a.steps steps of transformers' BERT + our PyTorch LAMB from the saved weights; step times, losses and (eager, below float32)
  the float32 loss of batch 0 before any update."""
  import torch

  from tinybounty.mlperf.bert_reference import hf_batch, hf_from_state, hf_named_params
  from tinybounty.mlperf.torch_lamb import TorchLamb
  a, device = s.a, torch.device(s.a.device)
  sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
  torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[a.dtype]
  with np.load(s.weights) as z: hf = hf_from_state(s.cfg, dict(z), device=str(device), attn=a.attn)
  opt = TorchLamb(hf_named_params(hf), s.run.lamb, decay=decayed)
  fwd = torch.compile(hf) if compiled else hf
  scale = FP16_SCALE if a.dtype == "fp16" else 1.0
  out.update(torch=torch.__version__, times=[], losses=[])
  if device.type == "cuda": out["gpu"] = torch.cuda.get_device_name(device)
  if not compiled and a.dtype != "fp32" and a.fp32_check:
    with torch.no_grad(): out["fp32_loss0"] = hf(**{k: v.to(device) for k, v in hf_batch(s.batch(0)).items()}).loss.item()
  name = PARTS["inductor" if compiled else "eager"]
  for step in range(a.steps):
    b = hf_batch(s.batch(step))
    sync()
    t0 = time.perf_counter()
    b = {k: v.to(device) for k, v in b.items()}
    hf.zero_grad(set_to_none=True)
    with torch.autocast(device_type=device.type, dtype=torch_dtype, enabled=a.dtype != "fp32"):
      loss = fwd(**b).loss
    (loss * scale).backward()
    opt.step(lr_at(s.run.lamb, step), inv_scale=1.0 / scale)
    out["losses"].append(loss.item())
    sync()
    out["times"].append(time.perf_counter() - t0)
    progress(out, f"{name} step {step}: {out['times'][-1] * 1e3:.1f} ms, loss {out['losses'][-1]:.5f}")
  if device.type == "cuda": out["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30


def load_initial(s: Setup, params: dict) -> None:
  """Assign the saved initial weights to tinygrad parameters (by name) and realize them."""
  from tinygrad import Tensor
  with np.load(s.weights) as z:
    if diff := sorted(set(z.files) ^ set(params)): raise RuntimeError(f"saved weights differ from the trainer's in {diff}")
    for k, p in params.items(): p.assign(Tensor(z[k], device=p.device))
  Tensor.realize(*params.values())


def tinygrad_part(s: Setup, out: dict) -> None:
  """a.steps jitted training steps of our trainer from the saved weights."""
  from tinygrad import Context, Device, GlobalCounters

  from tinybounty.mlperf.bert_train import BertTrainer
  trainer = BertTrainer(s.run, s.data)
  load_initial(s, trainer.params)
  out.update(tinygrad_device=Device.DEFAULT, times=[], losses=[])
  print("  tinygrad step 0 schedules and compiles the whole step (BERT-large: ~5000 kernels, minutes); step 1 captures the JIT", flush=True)
  with Context(NOOPT=0):
    for step in range(s.a.steps):
      t0 = time.perf_counter()
      out["losses"].append(trainer.train_step()["loss"])  # ends with the step's stats read on the host
      out["times"].append(time.perf_counter() - t0)
      progress(out, f"tinygrad step {step}: {out['times'][-1] * 1e3:.1f} ms, loss {out['losses'][-1]:.5f}")
    out["mem_used_gib"] = GlobalCounters.mem_used / 2**30


def fp32_part(s: Setup, out: dict) -> None:
  """The float32 loss of batch 0 with the initial weights (our model's forward, not jitted), the exact step-0 check below fp32."""
  from tinygrad import Context, Device, Tensor, dtypes
  from tinygrad.nn.state import get_state_dict

  from tinybounty.models.bert_pretrain import BertForPretraining
  model, b, t0 = BertForPretraining(s.cfg, dtypes.float), s.batch(0), time.perf_counter()
  load_initial(s, get_state_dict(model))
  with Context(NOOPT=0): out.update(tinygrad_device=Device.DEFAULT, fp32_loss0=model.loss(*[Tensor(b[k]) for k in FIELDS])[0].item())
  progress(out, f"tinygrad float32 forward of batch 0 with the initial weights: loss {out['fp32_loss0']:.6f} ({time.perf_counter() - t0:.0f} s)")


PROGRESS: list[pathlib.Path] = []  # the part's result file, rewritten after every step (a part killed at its time limit keeps its steps)


def progress(out: dict, line: str) -> None:
  print("  " + line, flush=True)
  for path in PROGRESS: write_json(path, out)


def first_line(e: BaseException) -> str: return str(e).strip().splitlines()[0][:300] if str(e).strip() else ""


def write_json(path: str | os.PathLike | None, obj: dict) -> None:
  """Atomically (temp file, fsync, rename), so an interrupted run leaves the previous complete file."""
  if not path: return
  p = pathlib.Path(path)
  p.parent.mkdir(parents=True, exist_ok=True)
  tmp = p.with_name(f".{p.name}.tmp")
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=1)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, p)


def child(a: argparse.Namespace) -> None:
  """One part in this process: its result (with its error and what it measured before, if it failed) goes to WORK/PART.json."""
  die_with_parent()
  work = pathlib.Path(a.work)
  out: dict = {}
  PROGRESS.append(work / f"{a.part}.json")
  try:
    s = Setup(a, work)
    if a.part == "init": init_part(s, out)
    elif a.part == "tinygrad": tinygrad_part(s, out)
    elif a.part == "fp32": fp32_part(s, out)
    else: torch_part(s, out, compiled=a.part == "inductor")
  except Exception as e:
    import traceback
    traceback.print_exc(limit=6)
    out["error"] = f"{type(e).__name__}: {first_line(e)}"
  write_json(work / f"{a.part}.json", out)


def die_with_parent() -> None:
  """Have Linux kill this process when the bench's main process ends (it runs in a session of its own, so a timeout or ^C given
  to the main process would not reach it)."""
  if sys.platform != "linux": return
  import ctypes
  ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
  if os.getppid() == 1: os._exit(1)  # the parent ended before the line above


def run_part(part: str, argv: list[str], work: pathlib.Path, timeout: float | None) -> dict:
  """Run one part in a child process (its own session, so a timeout kills it with the compile workers it started)."""
  t0 = time.perf_counter()
  proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), *argv, "--part", part, "--work", str(work)], start_new_session=True)
  try: rc = proc.wait(timeout=timeout)
  except subprocess.TimeoutExpired:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    rc = None
  try: r = json.loads((work / f"{part}.json").read_text())
  except (OSError, ValueError): r = {}
  if rc is None: r["error"] = f"killed at its time limit of {timeout:.0f} s" + (f", after {len(r['times'])} steps" if r.get("times") else "")
  elif rc != 0 and "error" not in r: r["error"] = f"the process exited with status {rc}" + ("" if r else " and wrote no result")
  r["wall_s"] = time.perf_counter() - t0
  return r


def summarize(r: dict, batch: int, warmup: int) -> None:
  t = r["times"][warmup:]
  r.update(step_ms_min=min(t) * 1e3, step_ms_median=statistics.median(t) * 1e3, seq_per_s_best=batch / min(t),
           seq_per_s_median=batch / statistics.median(t), loss0=r["losses"][0])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--device", default="cpu", help="PyTorch's device: cpu or cuda (tinygrad uses DEV's)")
  p.add_argument("--size", choices=("small", "large"), default="small")
  p.add_argument("--dtype", choices=tuple(DTYPES), default="fp32", help="compute precision of both sides (master weights stay float32)")
  p.add_argument("--steps", type=int, help="steps per part, warmup included (default 12 on the CPU, 8 on CUDA)")
  p.add_argument("--warmup", type=int, default=3, help="first steps left out of the timing (tinygrad's JIT captures on its 2nd call)")
  p.add_argument("--batch-size", type=int, help="default 8 (small) or 32 (large)")
  p.add_argument("--seq-len", type=int, help="default 64 (small) or 512 (large)")
  p.add_argument("--max-pred", type=int, help="masked-LM predictions per sequence; default 15%% of seq-len (small) or 76 (large)")
  p.add_argument("--attn", choices=("eager", "sdpa"), default="eager", help="transformers' attention (eager: the same math as ours)")
  p.add_argument("--no-fp32-check", dest="fp32_check", action="store_false",
                 help="below fp32, leave out the float32 forward of batch 0 on both sides (the exact step-0 loss comparison)")
  p.add_argument("--skip", nargs="*", default=[], choices=tuple(PARTS), help="parts to leave out (fp32: tinygrad's float32 forward)")
  p.add_argument("--budget-s", type=float, help="wall-clock limit for all parts together: a part still running then is killed and the "
                 "later ones are not started (default 230 on CUDA, none on the CPU)")
  p.add_argument("--json", help="also write the results to this JSON file (rewritten after every part)")
  p.add_argument("--config-only", action="store_true", help="print the model config and parameter count, and stop")
  p.add_argument("--part", choices=("init", *PARTS), help=argparse.SUPPRESS)  # internal: run one part in this process
  p.add_argument("--work", help=argparse.SUPPRESS)
  a = p.parse_args(argv)
  large, cuda = a.size == "large", a.device.startswith("cuda")
  a.seq_len = a.seq_len or (512 if large else 64)
  a.max_pred = a.max_pred or (76 if large else max(2, a.seq_len * 15 // 100))
  a.batch_size = a.batch_size or (32 if large else 8)
  a.steps = a.steps or (8 if cuda else 12)
  if a.budget_s is None: a.budget_s = 230.0 if cuda else 0.0
  if a.steps <= a.warmup: p.error(f"--steps {a.steps} leaves no timed step after --warmup {a.warmup}")
  if a.device not in ("cpu", "cuda") and not a.device.startswith("cuda:"): p.error(f"--device must be cpu or cuda, not {a.device!r}")
  if a.part and not a.work: p.error("--part needs --work")
  return a


def main(argv: list[str] | None = None) -> None:
  argv = sys.argv[1:] if argv is None else argv
  a = parse_args(argv)
  if a.part: return child(a)
  t_start = time.perf_counter()
  work = pathlib.Path(tempfile.mkdtemp(prefix="bench_bert_"))
  s = Setup(a, work)
  print(f"config {s.cfg}: {param_count(s.cfg) / 1e6:.1f}M parameters; batch {a.batch_size} x {a.seq_len} tokens, {a.max_pred} predictions, "
        f"{a.dtype}; PyTorch on {a.device}, tinygrad on DEV={os.environ.get('DEV', '(default)')}; work files in {work}", flush=True)
  try:
    if not a.config_only: run_all(a, argv, s, work, t_start)
  finally:
    shutil.rmtree(work, ignore_errors=True)


def run_all(a: argparse.Namespace, argv: list[str], s: Setup, work: pathlib.Path, t_start: float) -> None:
  from tinybounty.hardware import machine
  result: dict = {"args": {k: v for k, v in vars(a).items() if k not in ("part", "work")}, "config": vars(s.cfg), "params": param_count(s.cfg),
                  "machine": machine(), "tinygrad_device": os.environ.get("DEV", "(default)"), "parts": {}}
  for part in ("init", *PARTS):
    name = PARTS.get(part, "init")
    if part in a.skip or (part == "fp32" and (a.dtype == "fp32" or not a.fp32_check)): continue
    left = a.budget_s - (time.perf_counter() - t_start) if a.budget_s else None
    if left is not None and left < 5:
      print(f"{name}: NOT STARTED, the --budget-s of {a.budget_s:.0f} s is spent", flush=True)
      result["parts"][name] = {"error": f"not started: the budget of {a.budget_s:.0f} s was spent"}
      continue
    print(f"== {name} ({time.perf_counter() - t_start:.0f} s so far)", flush=True)
    r = run_part(part, argv, work, left)
    if "times" in r and len(r["times"]) > a.warmup: summarize(r, a.batch_size, a.warmup)
    if "error" in r: print(f"{name} FAILED: {r['error']}", flush=True)
    result["parts"][name] = r
    write_json(a.json, result)
    if part == "init" and "error" in r:
      print("no initial weights: the other parts cannot start", flush=True)
      break
  report(result, a)
  write_json(a.json, result)


def report(result: dict, a: argparse.Namespace) -> None:
  """Print the table, ratios, step-0 loss differences and docs/benchmarks.md rows; store ratios, differences and rows in `result`."""
  from tinybounty.records import bench_command, format_row
  parts = {n: r for n, r in result["parts"].items() if n != "init"}
  ok = {n: r for n, r in parts.items() if "seq_per_s_median" in r}
  print(f"\n{a.size} BERT ({result['params'] / 1e6:.0f}M parameters), batch {a.batch_size} x {a.seq_len}, {a.max_pred} predictions, "
        f"{a.dtype}, {a.steps - a.warmup} timed steps after {a.warmup} warmup; PyTorch on {a.device}, "
        f"tinygrad on {result['tinygrad_device']}; {result['machine']}")
  for n, r in parts.items():
    if n == "tinygrad fp32 forward" and "error" not in r: continue
    if n not in ok:
      print(f"{n:14s} {r.get('error', 'no timed steps')}")
      continue
    print(f"{n:14s} step min {r['step_ms_min']:9.1f} ms  median {r['step_ms_median']:9.1f} ms  {r['seq_per_s_median']:8.1f} seq/s median "
          f"({r['seq_per_s_best']:.1f} best)  step-0 loss {r['loss0']:.6f}  last {r['losses'][-1]:.5f}  process wall {r['wall_s']:.0f} s"
          + "".join(f"  {k} {r[k]:.1f}" for k in ("peak_mem_gib", "mem_used_gib") if k in r))
  pairs = (("tinygrad", "torch eager"), ("tinygrad", "torch.compile"), ("torch.compile", "torch eager"))
  ratios = {f"{x} / {y}": ok[x]["seq_per_s_median"] / ok[y]["seq_per_s_median"] for x, y in pairs if x in ok and y in ok}
  for k, v in ratios.items(): print(f"sequences/s {k}: x{v:.3f} (medians)")
  diffs, tg, tg32 = {}, parts.get("tinygrad", {}), parts.get("tinygrad fp32 forward", {})
  for n in ("torch eager", "torch.compile"):
    if tg.get("losses") and parts.get(n, {}).get("losses"):
      ref = parts[n]["losses"][0]
      diffs[f"{n}, {a.dtype}"] = abs(tg["losses"][0] - ref) / abs(ref)
  if "fp32_loss0" in tg32 and "fp32_loss0" in parts.get("torch eager", {}):
    ref = parts["torch eager"]["fp32_loss0"]
    diffs["torch eager, fp32 forward"] = abs(tg32["fp32_loss0"] - ref) / abs(ref)
  for k, v in diffs.items(): print(f"step-0 loss |tinygrad - torch| / |torch| vs {k}: {v:.3e}")
  result.update(ratios_seq_per_s_median=ratios, step0_loss_rel_diff=diffs)
  command = f"DEV={result['tinygrad_device']} " + bench_command("bench/mlperf_step.py")
  rows, shape = [], f"batch {a.batch_size} x {a.seq_len}"
  if "tinygrad" in ok:
    base = ", ".join(f"x{v:.2f} {k.split(' / ')[1]}" for k, v in ratios.items() if k.startswith("tinygrad /"))
    loss = "; ".join(f"step-0 loss rel diff {v:.1e} vs {k}" for k, v in diffs.items())
    rows.append(format_row(f"mlperf_step (BERT {a.size}, {a.dtype})", result["machine"], command,
                           f"tinygrad {ok['tinygrad']['seq_per_s_median']:.1f} seq/s median, {shape} ({base}); {loss}",
                           "transformers BertForPreTraining + our PyTorch LAMB, same initial weights and batches"))
  for n in ("torch eager", "torch.compile"):
    if n in ok:
      rows.append(format_row(f"mlperf_step (BERT {a.size}, {a.dtype}, {n})", result["machine"], command,
                             f"{n} {ok[n]['seq_per_s_median']:.1f} seq/s median, {shape}", f"PyTorch {ok[n].get('torch', '')} on {a.device}"))
  result["rows"] = rows
  print("\ndocs/benchmarks.md rows:")
  for row in rows: print(row)


if __name__ == "__main__": main()
