"""tinygrad's NV backend (its own driver-level runtime) on Hopper.

Stock 0.14.0 picks its GPU classes from lists that skip Hopper (`StopIteration` while choosing the compute class on an
H100) and only knows the Ampere/Ada QMD (version 3) and the Blackwell one (version 5). Hopper's HOPPER_COMPUTE_A takes
QMD version 4.0, whose layout is the one the 580 headers ship as NVCEC0_QMDV04_01. `install()` teaches the backend both;
the class and architecture selection are plain functions so they can be checked on mocked device info for every chip.
"""
from __future__ import annotations

from dataclasses import dataclass

# NVIDIA class ids (open-gpu-kernel-modules, src/common/sdk/nvidia/inc/class): the hardware's names, not tinygrad's.
TURING_USERMODE_A, HOPPER_USERMODE_A = 0xC461, 0xC661
AMPERE_CHANNEL_GPFIFO_A, HOPPER_CHANNEL_GPFIFO_A, BLACKWELL_CHANNEL_GPFIFO_A = 0xC56F, 0xC86F, 0xC96F
AMPERE_COMPUTE_A, AMPERE_COMPUTE_B, ADA_COMPUTE_A, HOPPER_COMPUTE_A = 0xC6C0, 0xC7C0, 0xC9C0, 0xCBC0
BLACKWELL_COMPUTE_A, BLACKWELL_COMPUTE_B = 0xCDC0, 0xCEC0
AMPERE_DMA_COPY_A, AMPERE_DMA_COPY_B, HOPPER_DMA_COPY_A, BLACKWELL_DMA_COPY_A, BLACKWELL_DMA_COPY_B = 0xC6B5, 0xC7B5, 0xC8B5, 0xC9B5, 0xCAB5

# newest first: a chip lists its own classes, and the first one it lists wins
USERMODE_CLASSES = (HOPPER_USERMODE_A, TURING_USERMODE_A)
GPFIFO_CLASSES = (BLACKWELL_CHANNEL_GPFIFO_A, HOPPER_CHANNEL_GPFIFO_A, AMPERE_CHANNEL_GPFIFO_A)
COMPUTE_CLASSES = (BLACKWELL_COMPUTE_B, BLACKWELL_COMPUTE_A, HOPPER_COMPUTE_A, ADA_COMPUTE_A, AMPERE_COMPUTE_B, AMPERE_COMPUTE_A)
DMA_CLASSES = (BLACKWELL_DMA_COPY_B, BLACKWELL_DMA_COPY_A, HOPPER_DMA_COPY_A, AMPERE_DMA_COPY_B, AMPERE_DMA_COPY_A)


@dataclass(frozen=True)
class GpuClasses:
  """The classes the NV backend allocates on one GPU."""
  usermode: int
  gpfifo: int
  compute: int
  dma: int


def _first(kind: str, wanted: tuple[int, ...], available: set[int]) -> int:
  for c in wanted:
    if c in available: return c
  raise RuntimeError(f"NV: this GPU lists no supported {kind} class (knows {', '.join(hex(c) for c in wanted)}; "
                     f"the GPU lists {', '.join(hex(c) for c in sorted(available)) or 'none'})")


def select_classes(available: set[int]) -> GpuClasses:
  """The newest usermode, GPFIFO, compute and copy classes a GPU lists; a clear error naming what is missing."""
  return GpuClasses(_first("usermode", USERMODE_CLASSES, available), _first("GPFIFO channel", GPFIFO_CLASSES, available),
                    _first("compute", COMPUTE_CLASSES, available), _first("DMA copy", DMA_CLASSES, available))


def qmd_version(compute_class: int) -> int:
  """The QMD major version a compute class takes: 3 for Ampere and Ada, 4 for Hopper, 5 for Blackwell."""
  if compute_class >= BLACKWELL_COMPUTE_A: return 5
  if compute_class >= HOPPER_COMPUTE_A: return 4
  if compute_class >= AMPERE_COMPUTE_A: return 3
  raise ValueError(f"NV: compute class {compute_class:#x} is older than Ampere (0xc6c0), which the NV backend needs")


def arch_from_sm_version(sm_version: int) -> str:
  """The sm_XY name of the GR info's SM version (0x809 -> sm_89, 0x900 -> sm_90, 0xa04 -> sm_120 as 0.14.0 maps it)."""
  if sm_version == 0xa04: return "sm_120"  # the RTX 5090 reports 0xa04 for sm_120; 0.14.0 special-cases it the same way
  major, minor = (sm_version >> 8) & 0xff, sm_version & 0xff
  return f"sm_{major}{minor >> 4 if minor > 0xf else minor}"


# QMD 4.0 (Hopper) fields under the 3.0 names the NV backend writes; the 580 headers carry the layout as NVCEC0_QMDV04_01
QMD4_PREFIX = "NVCEC0_QMDV04_01"
QMD4_RENAMES = {"register_count_v": "register_count", **{f"release{i}_enable": f"release_enable_{i}" for i in range(3)},
                **{f"dependent_qmd0_{f}": f"dependent_qmd_{f}_0" for f in ("action", "prefetch", "enable")}}
QMD4_DROPPED = {"sm_global_caching_enable"}  # gone in 4.0
QMD4_TYPE_GRID_CTA = 2

_saved: dict[str, object] = {}


def _hopper_qmd_class():
  """A QMD that speaks version 4.0 on Hopper and is the stock QMD everywhere else."""
  from tinygrad.runtime.autogen import nv_580
  class QMD(_saved["QMD"]):  # type: ignore[misc, valid-type]
    def __init__(self, dev, view=None, **kwargs):
      if qmd_version(dev.iface.compute_class) != 4: return super().__init__(dev, view, **kwargs)
      self.ver, self.sz, self.pref = 4, 0x60, QMD4_PREFIX
      if QMD4_PREFIX not in QMD.fields:
        g = nv_580.__dict__  # the 4.0 layout is a hardware fact: take it from the 580 headers whatever driver loaded
        QMD.fields[QMD4_PREFIX] = {**{k[len(QMD4_PREFIX)+1:]: v for k, v in g.items() if k.startswith(QMD4_PREFIX) and isinstance(v, tuple)},
                                   **{k[len(QMD4_PREFIX)+1:] + f"_{i}": v(i) for k, v in g.items() for i in range(8)
                                      if k.startswith(QMD4_PREFIX) and callable(v)}}
      self.mv = memoryview(bytearray(self.sz * 4)) if view is None else view
      if kwargs: self.write(qmd_type=QMD4_TYPE_GRID_CTA, qmd_minor_version=0, **kwargs)

    def _name(self, k: str) -> str: return QMD4_RENAMES.get(k, k) if self.ver == 4 else k
    def write(self, **kwargs):
      if self.ver == 4:
        kwargs = {self._name(k): (4 if k == "qmd_major_version" else v) for k, v in kwargs.items() if k not in QMD4_DROPPED}
      return super().write(**kwargs)
    def read(self, k, val=0): return super().read(self._name(k), val)
    def field_offset(self, k): return super().field_offset(self._name(k))
  return QMD


def _setup_usermode(self):
  """NVKIface.setup_usermode with class selection that knows Hopper."""
  from tinygrad.helpers import mv_address
  from tinygrad.runtime import ops_nv
  from tinygrad.runtime.support.hcq import MMIOInterface
  g = ops_nv.nv_gpu
  n = self.rm_control(self.dev.nvdevice, g.NV0080_CTRL_CMD_GPU_GET_CLASSLIST, g.NV0080_CTRL_GPU_GET_CLASSLIST_PARAMS(numClasses=0)).numClasses
  classlist = memoryview(bytearray(n * 4)).cast("I")
  info = self.rm_control(self.dev.nvdevice, g.NV0080_CTRL_CMD_GPU_GET_CLASSLIST,
                         g.NV0080_CTRL_GPU_GET_CLASSLIST_PARAMS(numClasses=n, classList=mv_address(classlist)))
  self.nvclasses = {classlist[i] for i in range(info.numClasses)}
  cls = select_classes(self.nvclasses)
  self.usermode_class, self.gpfifo_class, self.compute_class, self.dma_class = cls.usermode, cls.gpfifo, cls.compute, cls.dma
  self.viddec_class = next((c for c in [g.NVCFB0_VIDEO_DECODER, g.NVC9B0_VIDEO_DECODER] if c in self.nvclasses), None)
  usermode = self.rm_alloc(self.dev.subdevice, self.usermode_class)
  return usermode, MMIOInterface(self._gpu_map_to_cpu(usermode, mmio_sz := 0x10000), mmio_sz, fmt="I")


def installed() -> bool:
  return bool(_saved)


def install() -> None:
  """Let DEV=NV start on Hopper: class selection that knows HOPPER_*, and QMD 4.0 for HOPPER_COMPUTE_A. Idempotent."""
  if _saved: return
  from tinygrad.runtime import ops_nv
  _saved.update(QMD=ops_nv.QMD, setup_usermode=ops_nv.NVKIface.setup_usermode)
  ops_nv.QMD = _hopper_qmd_class()
  ops_nv.NVKIface.setup_usermode = _setup_usermode


def uninstall() -> None:
  """Restore stock 0.14.0 exactly (devices opened meanwhile keep the classes they chose)."""
  if not _saved: return
  from tinygrad.runtime import ops_nv
  ops_nv.QMD, ops_nv.NVKIface.setup_usermode = _saved["QMD"], _saved["setup_usermode"]
  _saved.clear()
