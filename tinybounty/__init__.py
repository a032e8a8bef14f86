"""tinybounty: tinygrad's bounty list as working, measured software on top of tinygrad 0.14.0."""
import os

__version__ = "0.1.0"

if os.environ.get("TINYBOUNTY_ENGINE", "0") not in ("", "0"):
  import tinybounty.engine  # noqa: F401  (installs the fast rewrite engine in every process that imports tinybounty)
