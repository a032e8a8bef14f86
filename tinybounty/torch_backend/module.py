"""`torch.tiny`: the device module PyTorch users and PyTorch's test tooling expect of an accelerator."""
from __future__ import annotations

import torch
from tinygrad import Device

from tinybounty.torch_backend.device import flush
from tinybounty.torch_backend.random import default_generator


class TinyModule:
  """What `torch.tiny` offers: availability, device count, synchronize and the device's random state."""
  @staticmethod
  def is_available() -> bool: return True

  @staticmethod
  def is_initialized() -> bool: return True

  @staticmethod
  def _is_in_bad_fork() -> bool: return False

  @staticmethod
  def _lazy_init() -> None: pass

  @staticmethod
  def device_count() -> int: return 1

  @staticmethod
  def current_device() -> int: return 0

  @staticmethod
  def set_device(device: int | str | torch.device) -> None:
    if torch.device(device).index not in (None, 0): raise ValueError(f"tiny: only device 0 exists, got {device}")

  @staticmethod
  def get_device_name(device: int | None = None) -> str: return f"tinygrad {Device.DEFAULT}"

  @staticmethod
  def synchronize(device: int | None = None) -> None:
    """Realize every pending write and every live unrealized result, then wait for every kernel queued on the tinygrad device."""
    flush(sync=True)
    Device[Device.DEFAULT].synchronize()

  @staticmethod
  def manual_seed(seed: int) -> None: default_generator.manual_seed(seed)

  manual_seed_all = manual_seed

  @staticmethod
  def seed() -> None: default_generator.manual_seed(torch.seed())

  seed_all = seed

  @staticmethod
  def initial_seed() -> int: return default_generator.seed

  @staticmethod
  def get_rng_state(device: int | str = "tiny") -> torch.Tensor: return default_generator.get_state()

  @staticmethod
  def set_rng_state(new_state: torch.Tensor, device: int | str = "tiny") -> None: default_generator.set_state(new_state)

  @staticmethod
  def get_rng_state_all() -> list[torch.Tensor]: return [default_generator.get_state()]

  @staticmethod
  def set_rng_state_all(new_states: list[torch.Tensor]) -> None: default_generator.set_state(new_states[0])

  @staticmethod
  def get_amp_supported_dtype() -> list[torch.dtype]: return [torch.float16, torch.bfloat16]
