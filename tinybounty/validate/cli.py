"""`tinybounty validate`: z3 index validation of a model's whole schedule, or of the out-of-bounds corpus."""
from __future__ import annotations

import argparse
import json
import os
import sys

from tinybounty.validate.targets import TARGETS

# the model corpus: every one must validate clean (forward, backward and optimizer step where it trains)
MODEL_CORPUS = ("resnet18_train_step", "gpt2_train_step", "gpt2_decode", "bert_fwd", "mnist_train_step")


def validate_workload(name: str, size: str = "small", targets: tuple[str, ...] = TARGETS, run: bool = True, progress: bool = False):
  """Build one of tinybounty.models' workloads and validate its whole schedule."""
  from tinygrad.helpers import Context

  from tinybounty.models.workloads import WORKLOADS
  from tinybounty.validate.schedule import validate
  if name not in WORKLOADS: raise KeyError(f"no workload {name!r}; known: {', '.join(sorted(WORKLOADS))}")
  with Context(TRAINING=1):
    outs = WORKLOADS[name].build(size)
    return validate(outs, name=f"{name} ({size})", targets=targets, run=run, progress=progress)


def _write_json(path: str, data: object) -> None:
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f: json.dump(data, f, indent=1)
  os.replace(tmp, path)


def _run_corpus(targets: tuple[str, ...], json_path: str | None) -> int:
  from tinybounty.validate.corpus import run_corpus
  found = run_corpus(targets)
  for (case, target), rep in found.items():
    first = rep.failures[0] if rep.failures else None
    where = f"[{first.expr}] of {first.buffer_size}: {first.counterexample}" if first else ""
    print(f"{'CAUGHT' if first else 'MISSED'} {case:26s} {target:5s} {where}")
  if json_path: _write_json(json_path, {f"{c}/{t}": len(r.failures) for (c, t), r in found.items()})
  return 0 if all(r.failures for r in found.values()) else 1


def _run_models(args: argparse.Namespace, targets: tuple[str, ...]) -> int:
  reports = []
  for name in MODEL_CORPUS if args.model == "all" else (args.model,):
    reports.append(rep := validate_workload(name, args.size, targets, run=not args.no_run, progress=True))
    print(rep.summary())
  if args.json: _write_json(args.json, [r.to_json() for r in reports])
  return 0 if all(r.ok for r in reports) else 1


def cmd_validate(args: argparse.Namespace) -> int:
  targets = tuple(t.strip() for t in args.targets.split(",") if t.strip())
  if bad := [t for t in targets if t not in TARGETS and not t.startswith("NULL:")]:
    print(f"tinybounty validate: unknown target(s) {', '.join(bad)}; use {', '.join(TARGETS)}", file=sys.stderr)
    return 2
  try:
    return _run_corpus(targets, args.json) if args.corpus else _run_models(args, targets)
  except (KeyError, RuntimeError, ImportError) as e:
    print(f"tinybounty validate: {e.args[0] if e.args else e}", file=sys.stderr)
    return 2


def add_parser(subparsers) -> None:
  """Register `tinybounty validate` with the main command line."""
  p = subparsers.add_parser("validate", help="prove every memory access of a model's kernels in bounds (z3)",
                            description="Schedule a model's forward, backward and optimizer step, lower every kernel for each "
                                        "target renderer and prove each LOAD/STORE address in bounds with z3.")
  p.add_argument("model", nargs="?", default="all", help=f"a tinybounty.models workload, or 'all' for {', '.join(MODEL_CORPUS)}")
  p.add_argument("--size", choices=("small", "full"), default="small", help="workload size (full: ResNet-18 batch 64, GPT-2 small)")
  p.add_argument("--targets", default=",".join(TARGETS), help="comma-separated renderers: CPU, CUDA, AMD (GPU ones render only)")
  p.add_argument("--corpus", action="store_true", help="run the out-of-bounds corpus instead: every case must be caught")
  p.add_argument("--no-run", action="store_true", help="only validate; do not run the schedule on the CPU afterwards")
  p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
  p.set_defaults(func=cmd_validate)
