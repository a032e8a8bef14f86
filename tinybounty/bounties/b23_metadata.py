"""Bounty 23: metadata in data-parallel ResNet fix."""
from tinybounty.bounties.base import Bounty, Result, Status


def check(full: bool) -> Result:
  from tinybounty.validate import metadata
  devices = ("CPU:0", "CPU:1")
  metadata.install()
  try:
    build = metadata.resnet_train_step if full else metadata.small_train_step
    single, sharded = metadata.step_kernels(build()), metadata.step_kernels(build(devices))
  finally:
    metadata.uninstall()
  kernels = single + sharded
  tagged = sum(bool(k) for k in kernels)
  tags = [{(m.name, m.backward) for k in ks for m in k} for ks in (single, sharded)]
  forward, names = [{n for n, bw in t if not bw} for t in tags], [{n for n, _ in t} for t in tags]
  # a backward op folded into its input (a double negation, a zero gradient) can lose its "bw" tag on one side only
  same = forward[0] == forward[1] and names[0] == names[1]
  odd = sorted(f"{n}{' bw' if bw else ''}" for n, bw in tags[0] ^ tags[1])
  what = "ResNet-18" if full else "a conv/BatchNorm/linear net"
  return Result(Status.PASS if tagged == len(kernels) and same else Status.FAIL,
                ran=f"{what} SGD step scheduled on CPU and data-parallel on {', '.join(devices)}, metadata installed",
                figure=tagged, unit="kernels with metadata", baseline=f"{len(kernels)} kernels (stock 0.14.0: 0)",
                detail=f"single and sharded name the same {len(names[0])} ops ({len(forward[0])} forward): {same}"
                       + (f"; backward tag on one side only: {', '.join(odd)}" if odd else ""))


BOUNTY = Bounty(23, "metadata in data-parallel ResNet fix", "tinybounty.validate.metadata",
                hardware="CPU (two CPU devices)", check=check)
