"""MLPerf BERT pretraining step throughput on the CPU: tinygrad (TinyJit step) vs transformers' BertForPreTraining with our
PyTorch LAMB, eager and under torch.compile (inductor), in one process, same model shape, weights and batches.

  PYTHONPATH=. DEV=CPU python bench/mlperf_step.py [--steps 12] [--batch-size 8] [--seq-len 64] [--skip inductor]

The first WARMUP steps (compilation, JIT capture, dynamo tracing) are excluded; the rest give min and median step
time (each step ends with the loss read on the host). Sequences/s = batch / step time. RetinaNet is not built yet.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from tinygrad import Context

from tinybounty.data.bert_shards import load_shards, stdlib_text, vocab_size_of, write_shards
from tinybounty.mlperf.bert_reference import hf_batch, hf_from_tiny, hf_named_params
from tinybounty.mlperf.bert_train import BertRun, BertTrainer
from tinybounty.mlperf.lamb import LambConfig, lr_at
from tinybounty.mlperf.torch_lamb import TorchLamb
from tinybounty.models.bert_pretrain import BertPretrainConfig, decayed

WARMUP = 3


def torch_steps(trainer: BertTrainer, steps: int, compiled: bool) -> tuple[list[float], list[float]]:
  hf = hf_from_tiny(trainer.model)
  opt = TorchLamb(hf_named_params(hf), trainer.run.lamb, decay=decayed)
  fwd = torch.compile(hf) if compiled else hf
  times, losses = [], []
  for step in range(steps):
    b = hf_batch(trainer.batch(step))
    t0 = time.perf_counter()
    hf.zero_grad()
    loss = fwd(**b).loss
    loss.backward()
    opt.step(lr_at(trainer.run.lamb, step))
    losses.append(loss.item())
    times.append(time.perf_counter() - t0)
  return times, losses


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--steps", type=int, default=12)
  p.add_argument("--batch-size", type=int, default=8)
  p.add_argument("--seq-len", type=int, default=64)
  p.add_argument("--skip", nargs="*", default=[], help="leave out: inductor")
  a = p.parse_args()
  d = tempfile.mkdtemp(prefix="bench_bert_")
  write_shards(stdlib_text(), d, seq_len=a.seq_len, max_pred=max(2, a.seq_len * 15 // 100), n_shards=1)
  cfg = BertPretrainConfig(dim=128, n_layers=2, n_heads=4, hidden_dim=512, vocab_size=vocab_size_of(d), max_seq_len=a.seq_len, dropout=0.0)
  run = BertRun(steps=a.steps, batch_size=a.batch_size, model=cfg, lamb=LambConfig(lr=1e-2, warmup_steps=2, total_steps=a.steps))
  results: dict[str, tuple[list[float], list[float]]] = {}
  trainer = BertTrainer(run, load_shards(d))
  results["torch eager"] = torch_steps(trainer, a.steps, compiled=False)
  if "inductor" not in a.skip:
    try: results["torch.compile"] = torch_steps(trainer, a.steps, compiled=True)
    except Exception as e: print(f"torch.compile failed on this machine: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
  times, losses = [], []
  with Context(NOOPT=0):
    for _ in range(a.steps):
      t0 = time.perf_counter()
      losses.append(trainer.train_step()["loss"])
      times.append(time.perf_counter() - t0)
  results["tinygrad"] = (times, losses)
  base = statistics.median(results["torch eager"][0][WARMUP:])
  for name, (t, l) in results.items():
    t = t[WARMUP:]
    print(f"{name:14s} step min {min(t) * 1e3:8.1f} ms  median {statistics.median(t) * 1e3:8.1f} ms  "
          f"{a.batch_size / statistics.median(t):8.1f} seq/s  x{base / statistics.median(t):.2f} of torch eager  last loss {l[-1]:.4f}")


if __name__ == "__main__": main()
