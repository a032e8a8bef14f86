"""Bounty 14: WebGPU export_model."""
from tinybounty.bounties.base import Bounty, Result, not_built


def check(full: bool) -> Result:
  return not_built("the WebGPU exporter")


BOUNTY = Bounty(14, "WebGPU export_model", "tinybounty.export.webgpu",
                hardware="a browser with WebGPU (headless chromium here)", check=check)
