"""Bounty 10: BERT MLPerf on the AMD LLVM path.

Criterion. The real target is the MLPerf BERT training step on AMD MI300X GPUs (gfx942) compiled through LLVM instead of
comgr, training correctly at comgr's speed or better. The analogue here: tiny BERT pretraining (MLM + NSP) in tinygrad
vs transformers' BertForPreTraining in float64 with the same weights, then 3 LAMB steps on the CPU (--full also compiles
the whole step for gfx942 and gfx1100 through LLVM on the NULL device).
- FAIL: the step-0 loss or the worst gradient more than TOL of its scale from transformers', a LAMB step not taken, a
  kernel LLVM does not compile (--full), or a crash.
- NEEDS-HARDWARE: all of that right (no MI300X can be timed here; the figure is the gradient error). BERT-large steps on an
  H200 (GPU_BENCHES), where recorded, are quoted beside it and change no status.
- PASS: not reachable from this check: it does not time MI300X steps (never claimed from the analogue).
"""
from __future__ import annotations

from tinybounty.bounties.base import Bounty, Result, Status, needs_hardware, with_records

TOL = 1e-4  # of each gradient's scale, as the issue asks
# BERT-large steps on an H200 (tinygrad against eager; torch.compile's own call): quoted, never counted
GPU_BENCHES = ("mlperf_step (BERT large, bf16)", "mlperf_step (BERT large, bf16, torch.compile)")


def _cpu_analogue(full: bool) -> Result:
  import tempfile

  from tinygrad import Context

  from tinybounty.data.bert_shards import load_shards, stdlib_text, vocab_size_of, write_shards
  from tinybounty.mlperf.bert_reference import step0_errors
  from tinybounty.mlperf.bert_train import BertRun, BertTrainer
  from tinybounty.mlperf.lamb import LambConfig
  from tinybounty.models.bert_pretrain import BertPretrainConfig
  with tempfile.TemporaryDirectory() as d, Context(NOOPT=1):
    write_shards(stdlib_text()[:12000], d, seq_len=32, max_pred=5, n_shards=1, dupe=2)
    cfg = BertPretrainConfig.tiny(vocab_size_of(d)).with_(dropout=0.0)
    trainer = BertTrainer(BertRun(steps=3, batch_size=4, model=cfg, lamb=LambConfig(lr=3e-2, warmup_steps=1, total_steps=3)), load_shards(d))
    loss_err, grad_err = step0_errors(trainer.model, trainer.batch(0))
    steps = [trainer.train_step() for _ in range(3)]
  taken, uncompiled = all(s["taken"] for s in steps), []
  losses = ", ".join(f"{s['loss']:.4f}" for s in steps)
  detail = f"step-0 loss off by {loss_err:.2e} (relative); 3 LAMB steps, losses {losses}"
  if full:
    from tinybounty.mlperf.amd_kernels import compile_step, summary
    for arch in ("gfx942", "gfx1100"):
      s = summary(compile_step(arch, "AMDLLVM", cfg, 2, 32, 5))
      if s["compiled"] != s["kernels"]: uncompiled.append(arch)
      detail += f"; {arch} via LLVM: {s['compiled']}/{s['kernels']} kernels compiled, {s['spilling']} spill, max {s['max_vgpr']} VGPRs"
  ran = ("tiny BERT pretraining (MLM + NSP) in tinygrad vs transformers' BertForPreTraining (float64) with the same weights on "
         "a generated MLPerf HDF5 shard; 3 LAMB steps on the CPU" + ("; whole step compiled for gfx942/gfx1100 on NULL:AMDLLVM" if full else ""))
  return verdict(ran, loss_err, grad_err, taken, uncompiled, detail)


def verdict(ran: str, loss_err: float, grad_err: float, taken: bool, uncompiled: list[str], detail: str = "") -> Result:
  """The status by the criterion above from the analogue's errors, whether every LAMB step was taken and the archs LLVM failed."""
  ok = loss_err <= TOL and grad_err <= TOL and taken and not uncompiled
  detail += ("" if taken else "; a LAMB step was not taken") + (f"; LLVM failed kernels for {uncompiled}" if uncompiled else "")
  analogue = Result(Status.PASS if ok else Status.FAIL, figure=grad_err, unit=f"worst gradient error / scale vs transformers (<= {TOL:g})",
                    ran=ran, baseline="transformers BertForPreTraining, float64", detail=detail)
  return needs_hardware("AMD MI300X GPUs (gfx942) to time BERT steps through the LLVM path against comgr", analogue)


def check(full: bool) -> Result:
  return with_records(_cpu_analogue(full), GPU_BENCHES)


BOUNTY = Bounty(10, "BERT MLPerf on the AMD LLVM path", "tinybounty.mlperf.bert_train",
                hardware="AMD MI300X GPUs (tinybox) for the MLPerf run", check=check, timeout=600.0)
