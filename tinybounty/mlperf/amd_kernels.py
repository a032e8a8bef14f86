"""The BERT training step's kernels compiled for AMD GPUs without a card, and each kernel's resource use.

tinygrad's NULL device renders and compiles for any target and runs nothing: `DEV=NULL:AMDLLVM:gfx942` goes through
the LLVM AMDGPU backend (tinygrad's LLVM IR -> libLLVM), `DEV=NULL:HIP:gfx942` through HIP source -> AMD's comgr.
Resources come from the code object itself: the AMDGPU metadata note (msgpack, NT_AMDGPU_METADATA) gives VGPRs,
SGPRs, spills, LDS and scratch per kernel; the instruction count is the length of libLLVM's disassembly of .text.

  python -m tinybounty.mlperf.amd_kernels --arch gfx942 gfx1100 --config large --md table.md
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

from tinygrad import Context, Device, Tensor, dtypes
from tinygrad.codegen import to_program
from tinygrad.nn.state import get_state_dict
from tinygrad.uop.ops import Ops

from tinybounty.mlperf.lamb import Lamb, LambConfig
from tinybounty.models.bert_pretrain import BertForPretraining, BertPretrainConfig, decayed

RESOURCE_KEYS = {"vgpr": ".vgpr_count", "agpr": ".agpr_count", "sgpr": ".sgpr_count", "vgpr_spill": ".vgpr_spill_count",
                 "sgpr_spill": ".sgpr_spill_count", "lds": ".group_segment_fixed_size", "scratch": ".private_segment_fixed_size"}


@dataclasses.dataclass
class KernelResources:
  name: str
  vgpr: int
  agpr: int
  sgpr: int
  vgpr_spill: int
  sgpr_spill: int
  lds: int
  scratch: int
  instructions: int


def step_asts(cfg: BertPretrainConfig, batch: int, seq: int, preds: int, dtype=dtypes.half) -> list:
  """The distinct kernel ASTs of one whole training step (forward, backward, LAMB) on the current default device."""
  model = BertForPretraining(cfg, dtype)
  params = get_state_dict(model)
  for p in params.values(): p.replace(Tensor.empty(*p.shape, dtype=p.dtype))  # weights as plain buffers: no init kernels
  opt = Lamb(params, LambConfig(), decay=decayed)
  ints = lambda *shape: Tensor.empty(*shape, dtype=dtypes.int32)
  loss = model.loss(ints(batch, seq), ints(batch, seq), ints(batch, seq), ints(batch, preds), ints(batch, preds), ints(batch))[0]
  scale = Tensor.empty(1)
  grads = (loss * scale[0]).gradient(*opt.params)
  outs, _, _ = opt.step([g / scale[0] for g in grads], Tensor.empty(1)[0])
  calls = [u for u in Tensor.schedule_linear(loss, *outs).toposort() if u.op is Ops.CALL]
  return list({c.src[0].key: c.src[0] for c in calls if c.src[0].op is Ops.SINK}.values())


def code_object_resources(lib: bytes, arch: str) -> KernelResources:
  """Resource use of the one kernel in an AMDGPU code object, from its metadata note and disassembly."""
  import msgpack
  from tinygrad.runtime.support.elf import elf_loader

  from tinybounty.runtime.rdna4 import disassemble
  _, sections, _ = elf_loader(lib)
  note = next(s for s in sections if s.name == ".note").content
  meta, off = None, 0
  while off + 12 <= len(note):  # ELF notes: namesz, descsz, type, name (4-aligned), desc (4-aligned)
    namesz, descsz, ntype = (int.from_bytes(note[off + 4*i:off + 4*i + 4], "little") for i in range(3))
    name_end = off + 12 + (namesz + 3) // 4 * 4
    if ntype == 32: meta = msgpack.unpackb(bytes(note[name_end:name_end + descsz]))  # NT_AMDGPU_METADATA
    off = name_end + (descsz + 3) // 4 * 4
  if meta is None: raise RuntimeError("code object has no NT_AMDGPU_METADATA note")
  k = meta["amdhsa.kernels"][0]
  return KernelResources(k[".name"], **{f: int(k.get(key, 0)) for f, key in RESOURCE_KEYS.items()}, instructions=len(disassemble(lib, arch)))


def compile_step(arch: str, backend: str, cfg: BertPretrainConfig, batch: int, seq: int, preds: int,
                 limit: int | None = None) -> list[tuple[str, KernelResources | str]]:
  """(kernel name, resources or compile error) of each distinct kernel of the step (the first `limit`); backend AMDLLVM or HIP (comgr)."""
  out = []
  with Context(DEV=f"NULL:{backend}:{arch}"):
    try: asts = step_asts(cfg, batch, seq, preds)
    except Exception as e:  # the backend cannot even build the optimizer state (its compiler refuses the target): one row says why
      return [("(whole step)", f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")]
    ren = Device["NULL"].renderer
    for ast in asts[:limit]:
      try:
        prg = to_program(ast, ren)
        name = prg.arg.name if hasattr(prg.arg, "name") else str(prg.arg)
        lib = next(s.arg for s in prg.src if s.op is Ops.BINARY)
        out.append((name, code_object_resources(lib, arch)))
      except Exception as e:  # a table row per kernel: a compiler's refusal is a result, reported with its message
        out.append((str(ast.arg.name if hasattr(ast.arg, "name") else "?"), f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"))
  return out


def summary(rows: list[tuple[str, KernelResources | str]]) -> dict:
  ok = [r for _, r in rows if isinstance(r, KernelResources)]
  s = lambda f: sum(getattr(r, f) for r in ok)
  return {"kernels": len(rows), "compiled": len(ok), "max_vgpr": max((r.vgpr for r in ok), default=0),
          "max_sgpr": max((r.sgpr for r in ok), default=0),
          "spilling": sum(1 for r in ok if r.vgpr_spill or r.sgpr_spill), "max_lds": max((r.lds for r in ok), default=0),
          "instructions": s("instructions")}


def short_name(name: str, width: int = 40) -> str:
  """A kernel name without terminal colours, cut to `width` (the global-norm reduction's name lists every gradient's size)."""
  from tinygrad.helpers import ansistrip
  name = ansistrip(name)
  return name if len(name) <= width else f"{name[:width]}...({len(name)} chars)"


def markdown(results: dict[tuple[str, str], list]) -> str:
  """One table: kernel rows in the first result's order, a column group per (arch, backend)."""
  keys = sorted(results, key=lambda k: -len(results[k]))  # the fullest result gives the kernel rows
  head = "| kernel | " + " | ".join(f"{a} {b} vgpr/sgpr/lds/spill/instr" for a, b in keys) + " |"
  lines = [head, "|---|" + "---|" * len(keys)]
  cell = lambda r: (f"{r.vgpr}/{r.sgpr}/{r.lds}/{r.vgpr_spill + r.sgpr_spill}/{r.instructions}" if isinstance(r, KernelResources) else "not compiled")
  for i, (name, _) in enumerate(results[keys[0]]):
    lines.append(f"| {i} `{short_name(name)}` | " + " | ".join(cell(results[k][i][1]) if i < len(results[k]) else "-" for k in keys) + " |")
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
  ap = argparse.ArgumentParser(description="Compile the BERT training step for AMD targets on the NULL device and tabulate kernel resources.")
  ap.add_argument("--arch", nargs="+", default=["gfx942", "gfx1100"])
  ap.add_argument("--backend", nargs="+", default=["AMDLLVM"], help="AMDLLVM (LLVM AMDGPU backend) and/or HIP (HIP source via comgr)")
  ap.add_argument("--config", choices=("tiny", "large"), default="tiny")
  ap.add_argument("--batch", type=int, default=2)
  ap.add_argument("--seq", type=int, default=128)
  ap.add_argument("--preds", type=int, default=20)
  ap.add_argument("--md", help="write the markdown table here")
  a = ap.parse_args(argv)
  cfg = BertPretrainConfig.large() if a.config == "large" else BertPretrainConfig.tiny().with_(max_seq_len=max(64, a.seq))
  results = {}
  for be in a.backend:
    for arch in a.arch:
      results[(arch, be)] = rows = compile_step(arch, be, cfg, a.batch, a.seq, a.preds)
      print(arch, be, summary(rows), flush=True)
      for name, r in rows:
        if not isinstance(r, KernelResources): print(f"  {name}: {r}", file=sys.stderr)
      if a.md:  # after every target, so a long run leaves what it finished
        with open(a.md, "w") as f: f.write(markdown(results) + "\n")
  return 0


if __name__ == "__main__": raise SystemExit(main())
