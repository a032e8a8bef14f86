"""The `tiny` PyTorch device: `import tinybounty.torch_backend`, then `x.to("tiny")` runs on tinygrad (DEV picks the device)."""
from tinybounty.torch_backend.stats import reset_stats, stats

__all__ = ["stats", "reset_stats"]
