"""Bounty 16: Llama 4 Scout on a tinybox.

Criterion. The real target: the 109B-parameter Scout decoding on a tinybox (6 GPUs); the yardstick used here: half of
the read-bandwidth limit (TARGET), which needs hardware absent here. The analogue: Llama 4 from a transformers-written
checkpoint against transformers on the CPU (small config, float32), then the mid-size decode's fraction of this CPU's
read-bandwidth limit: measured with --full, else the newest BENCH record.
- FAIL: logits more than 1e-4 of their scale from transformers', a greedy token different, an unreadable record, or a crash.
- NEEDS-HARDWARE: the analogue matches; the figure is the decode's fraction of the bandwidth limit, measured here (--full)
  or quoted with its date and machine (a record of another machine is labelled so; none: correctness only).
- PASS: not reachable from this check without the target hardware (never claimed from the analogue).
"""
from tinybounty.bounties import decode_measure
from tinybounty.bounties.base import Bounty, Result
from tinybounty.records import Record

BENCH = "llm_decode_llama4_mid"
NEEDS = "a tinybox (6 GPUs) for the 109B-parameter Scout"
RAN = "Llama 4 text (8 experts top-1 + shared, chunked RoPE / NoPE layers) vs transformers Llama4ForCausalLM on the CPU, float32"


def verdict(ran: str, ok: bool, seen: str, here: str, rec: Record | None = None, measured: tuple[float, str] | None = None) -> Result:
  """The status by the criterion above (decode_measure.verdict with this bounty's hardware and record)."""
  return decode_measure.verdict(NEEDS, BENCH, ran, ok, seen, here, rec, measured)


def check(full: bool) -> Result:
  """Reference match on the small config, then the mid-size decode: measured with --full, else quoted."""
  return decode_measure.check("llama4", "LLAMA4_SMALL", RAN, NEEDS, BENCH, full)


BOUNTY = Bounty(16, "Llama 4 Scout on a tinybox", "tinybounty.models.llama4",
                hardware="a tinybox (6 GPUs) in the original", check=check, timeout=600.0)
