"""The check both MoE decoders share (bounties 12 and 16): a reference match against transformers on the small config,
then the mid-size decode's fraction of the CPU's read-bandwidth limit, measured (--full) or quoted from a record."""
from __future__ import annotations

import re

from tinybounty.bounties.base import Result, Status, from_ratio, needs_hardware, quoted, same_machine
from tinybounty.records import Record

TARGET = 0.5  # half of the bandwidth limit: bounty 12's 76.9 tok/s on an M3 Max (400 GB/s over the 2.6 GB a token reads)


def verdict(needs: str, bench: str, ran: str, ok: bool, seen: str, here: str, rec: Record | None = None,
            measured: tuple[float, str] | None = None) -> Result:
  """The status from the reference match, and the decode fraction `measured` here (fraction, figure) or else the newest
  `bench` record; the real target needs `needs`."""
  if not ok: return Result(Status.FAIL, ran=ran, detail=seen)
  if measured is not None:
    frac, fig = measured
    return needs_hardware(needs, from_ratio(f"{ran}; {seen}; mid-size decode measured now (no transformers run)", frac, TARGET,
                                            "of bandwidth limit", "CPU read bandwidth, same run", detail=f"{fig}; target {TARGET:.0%} of the limit"))
  if rec is None: return needs_hardware(needs, Result(Status.PASS, ran=ran, detail=f"{seen}; no {bench} record: decode speed unshown"))
  if (m := re.search(r"([\d.]+)% of the read-bandwidth", rec.figure)) is None:
    return Result(Status.FAIL, ran=ran, detail=f"cannot read the bandwidth fraction of {quoted(rec)}")
  where = "this machine" if same_machine(rec.machine, here) else "another machine"
  analogue = from_ratio(f"{ran}; {seen}; mid-size decode quoted ({where})", float(m.group(1)) / 100, TARGET,
                        f"of bandwidth limit (quoted, {where})", "the recorded machine's CPU read bandwidth",
                        detail=f"{quoted(rec)}; target {TARGET:.0%} of the limit")
  return needs_hardware(needs, analogue)


def check(arch: str, small: str, ran: str, needs: str, bench: str, full: bool) -> Result:
  """Reference match on decode_bench's `small` config of `arch`, then the mid-size decode: measured with --full, else quoted."""
  from tinybounty import records
  from tinybounty.hardware import machine
  from tinybounty.models import decode_bench as db
  ok, seen = db.reference_match(arch, getattr(db, small))
  if full and ok:
    from pathlib import Path
    m = db.measure_mid(arch, Path(f"/tmp/tinybounty_{arch}_mid"), steps=12)
    return verdict(needs, bench, ran, ok, seen, machine(), measured=(m.fraction, m.figure()))
  return verdict(needs, bench, ran, ok, seen, machine(), records.latest(bench))
