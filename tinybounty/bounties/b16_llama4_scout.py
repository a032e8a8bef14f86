"""Bounty 16: Llama 4 Scout on a tinybox."""
from tinybounty.bounties.base import Bounty, Result, Status, from_ratio, needs_hardware

TARGET = 0.5  # same yardstick as bounty 12: half of the bandwidth limit
BENCH = "llm_decode_llama4_mid"


def check(full: bool) -> Result:
  """Llama 4 text model from a transformers-written checkpoint matches transformers (small config with chunked RoPE and NoPE
  layers, routed + shared experts; CPU); then the mid-size decode's fraction of the CPU's read-bandwidth limit, quoted
  from docs/benchmarks.md or measured with --full. The real target (109B parameters sharded over 6 GPUs) needs a tinybox."""
  from tinybounty import records
  from tinybounty.models import decode_bench as db
  ok, seen = db.reference_match("llama4", db.LLAMA4_SMALL)
  ran = "Llama 4 text (8 experts top-1 + shared, chunked RoPE / NoPE layers) vs transformers Llama4ForCausalLM on the CPU, float32"
  if not ok: return Result(Status.FAIL, ran=ran, detail=seen)
  if full:
    from pathlib import Path
    m = db.measure_mid("llama4", Path("/tmp/tinybounty_llama4_mid"), steps=12)
    frac, fig, src = m.fraction, m.figure(), "measured now (no transformers run)"
  elif (rec := records.latest(BENCH)) is not None:
    frac, fig, src = float(rec.figure.split("% of the read-bandwidth")[0].rsplit(" ", 1)[-1]) / 100, rec.figure, f"quoted from {rec.date}"
  else:
    return Result(Status.PARTIAL, ran=ran, detail=f"{seen}; no {BENCH} record in docs/benchmarks.md yet")
  analogue = from_ratio(f"{ran}; {seen}; mid-size decode {src}", frac, TARGET, "of bandwidth limit", "CPU read bandwidth, same run",
                        detail=f"{fig}; target {TARGET:.0%} of the limit")
  return needs_hardware("a tinybox (6 GPUs) for the 109B-parameter Scout", analogue)


BOUNTY = Bounty(16, "Llama 4 Scout on a tinybox", "tinybounty.models.llama4",
                hardware="a tinybox (6 GPUs) in the original", check=check, timeout=600.0)
