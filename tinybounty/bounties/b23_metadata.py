"""Bounty 23: metadata in data-parallel ResNet fix.

Criterion. With tinybounty.validate.metadata installed, every kernel of a training step carries the metadata (the ops it
came from) when the step is data-parallel over several devices, as it does on one device; the bounty sets no speed
target (the scheduling overhead is in bench/, not here). The check schedules an SGD step on the CPU and sharded over
CPU:0 and CPU:1 (--full: ResNet-18; short: a conv/BatchNorm/linear net).
- PASS: every kernel of both schedules tagged, and both name the same ops and the same forward ops (a backward op folded
  into its input may lose its "bw" tag on one side only: shown, not failed).
- FAIL: a kernel without metadata, the two schedules naming different ops, or a crash.
"""
from tinybounty.bounties.base import Bounty, Result, Status


def verdict(what: str, devices: tuple[str, ...], single: list, sharded: list) -> Result:
  """The status by the criterion above from the kernels' metadata of the one-device and the sharded schedule (a list per
  kernel of (name, backward) tags)."""
  kernels = single + sharded
  tagged = sum(bool(k) for k in kernels)
  tags = [{(name, bw) for k in ks for name, bw in k} for ks in (single, sharded)]
  forward, names = [{n for n, bw in t if not bw} for t in tags], [{n for n, _ in t} for t in tags]
  # a backward op folded into its input (a double negation, a zero gradient) can lose its "bw" tag on one side only
  same = forward[0] == forward[1] and names[0] == names[1]
  odd = sorted(f"{n}{' bw' if bw else ''}" for n, bw in tags[0] ^ tags[1])
  return Result(Status.PASS if tagged == len(kernels) and same else Status.FAIL,
                ran=f"{what} SGD step scheduled on CPU and data-parallel on {', '.join(devices)}, metadata installed",
                figure=tagged, unit="kernels with metadata", baseline=f"{len(kernels)} kernels (stock 0.14.0: 0)",
                detail=f"single and sharded name the same {len(names[0])} ops ({len(forward[0])} forward): {same}"
                       + (f"; backward tag on one side only: {', '.join(odd)}" if odd else ""))


def check(full: bool) -> Result:
  from tinybounty.validate import metadata
  devices = ("CPU:0", "CPU:1")
  metadata.install()
  try:
    build = metadata.resnet_train_step if full else metadata.small_train_step
    single, sharded = metadata.step_kernels(build()), metadata.step_kernels(build(devices))
  finally:
    metadata.uninstall()
  as_tags = lambda ks: [[(m.name, m.backward) for m in k] for k in ks]  # noqa: E731
  return verdict("ResNet-18" if full else "a conv/BatchNorm/linear net", devices, as_tags(single), as_tags(sharded))


BOUNTY = Bounty(23, "metadata in data-parallel ResNet fix", "tinybounty.validate.metadata",
                hardware="CPU (two CPU devices)", check=check)
