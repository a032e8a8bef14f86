"""NV backend class, QMD and architecture selection on mocked device info: Ampere, Ada, Hopper, Blackwell."""
import ctypes
from types import SimpleNamespace

import pytest
from tinygrad.runtime import ops_nv

from tinybounty.runtime import nv

# Class lists as RM reports them (NV0080_CTRL_CMD_GPU_GET_CLASSLIST). H100: the whole list read off an H100 80GB HBM3
# (driver 580.159.04); the others are mocks: each chip's own engine classes plus the older ones it keeps listing.
H100 = {0x0, 0x1, 0x100, 0x101, 0x2, 0x20, 0x2080, 0x2081, 0x2082, 0x208f, 0x30f1, 0x3e, 0x3f, 0x4, 0x40, 0x402c, 0x41, 0x42, 0x5, 0x50, 0x503b,
        0x503c, 0x5080, 0x50a0, 0x60, 0x70, 0x71, 0x76, 0x78, 0x79, 0x7d, 0x7e, 0x80, 0x81, 0x82, 0x83, 0x83de, 0x844c, 0x90, 0x900e, 0x9010,
        0x902d, 0x9067, 0x906f, 0x9074, 0x9096, 0x90cc, 0x90cd, 0x90ce, 0x90e6, 0x90e7, 0x90f1, 0x92, 0xa06c, 0xa080, 0xa081, 0xa084, 0xa0bc,
        0xa0bd, 0xa140, 0xb1, 0xb1cc, 0xb2cc, 0xb8b0, 0xb8d1, 0xb8fa, 0xc076, 0xc2, 0xc361, 0xc365, 0xc369, 0xc36f, 0xc461, 0xc46f, 0xc561,
        0xc56f, 0xc574, 0xc637, 0xc638, 0xc639, 0xc640, 0xc661, 0xc763, 0xc863, 0xc86f, 0xc8b5, 0xcb33, 0xcb97, 0xcba2, 0xcbc0, 0xcbca, 0xda,
        0xdb, 0xde, 0xe0, 0xf, 0xf1, 0xf3, 0xf8, 0xf9, 0xfb, 0xfd, 0xfe}
GA102 = {0xc361, 0xc461, 0xc561, 0xc36f, 0xc46f, 0xc56f, 0xc6b5, 0xc7b5, 0xc6c0, 0xc7c0, 0xc797}
AD102 = {0xc361, 0xc461, 0xc561, 0xc36f, 0xc46f, 0xc56f, 0xc6b5, 0xc7b5, 0xc9c0, 0xc997}
GB202 = {0xc361, 0xc461, 0xc561, 0xc661, 0xc56f, 0xc86f, 0xc96f, 0xc9b5, 0xcab5, 0xcec0, 0xce97}
CHIPS = {  # classes, the (usermode, gpfifo, compute, dma) to pick, QMD major version, SM version, arch
  "ampere": (GA102, (nv.TURING_USERMODE_A, nv.AMPERE_CHANNEL_GPFIFO_A, nv.AMPERE_COMPUTE_B, nv.AMPERE_DMA_COPY_B), 3, 0x806, "sm_86"),
  "ada": (AD102, (nv.TURING_USERMODE_A, nv.AMPERE_CHANNEL_GPFIFO_A, nv.ADA_COMPUTE_A, nv.AMPERE_DMA_COPY_B), 3, 0x809, "sm_89"),
  "hopper": (H100, (nv.HOPPER_USERMODE_A, nv.HOPPER_CHANNEL_GPFIFO_A, nv.HOPPER_COMPUTE_A, nv.HOPPER_DMA_COPY_A), 4, 0x900, "sm_90"),
  "blackwell": (GB202, (nv.HOPPER_USERMODE_A, nv.BLACKWELL_CHANNEL_GPFIFO_A, nv.BLACKWELL_COMPUTE_B, nv.BLACKWELL_DMA_COPY_B), 5, 0xa04, "sm_120"),
}


class FakeIface:
  """Just enough of NVKIface for setup_usermode: RM answers with a fixed class list and records allocations."""
  def __init__(self, classes):
    self.classes, self.allocs, self.mmio = sorted(classes), [], (ctypes.c_uint32 * 0x4000)()
    self.dev = SimpleNamespace(nvdevice=1, subdevice=2)
  def rm_control(self, obj, cmd, params):
    params.numClasses = len(self.classes)
    if params.classList: ctypes.memmove(params.classList, (ctypes.c_uint32 * len(self.classes))(*self.classes), 4 * len(self.classes))
    return params
  def rm_alloc(self, parent, cls): self.allocs.append(cls); return 0xcafe
  def _gpu_map_to_cpu(self, obj, size): return ctypes.addressof(self.mmio)


@pytest.fixture
def installed():
  nv.install()
  yield
  nv.uninstall()


@pytest.mark.parametrize("chip", CHIPS)
def test_select_classes(chip):
  classes, want, qmd, _, _ = CHIPS[chip]
  got = nv.select_classes(classes)
  assert (got.usermode, got.gpfifo, got.compute, got.dma) == want
  assert nv.qmd_version(got.compute) == qmd


@pytest.mark.parametrize("chip", CHIPS)
def test_arch_from_sm_version(chip):
  _, _, _, sm_version, arch = CHIPS[chip]
  assert nv.arch_from_sm_version(sm_version) == arch


@pytest.mark.parametrize("chip", CHIPS)
def test_installed_setup_usermode_allocates_the_chosen_class(installed, chip):
  classes, want, _, _, _ = CHIPS[chip]
  iface = FakeIface(classes)
  ops_nv.NVKIface.setup_usermode(iface)
  assert (iface.usermode_class, iface.gpfifo_class, iface.compute_class, iface.dma_class) == want
  assert iface.allocs == [want[0]]


@pytest.mark.parametrize("chip", ["ampere", "ada", "blackwell"])
def test_same_choice_as_stock_where_stock_works(chip):
  stock, ours = FakeIface(CHIPS[chip][0]), FakeIface(CHIPS[chip][0])
  ops_nv.NVKIface.setup_usermode(stock)
  nv.install()
  try: ops_nv.NVKIface.setup_usermode(ours)
  finally: nv.uninstall()
  assert [stock.usermode_class, stock.gpfifo_class, stock.compute_class, stock.dma_class] == \
         [ours.usermode_class, ours.gpfifo_class, ours.compute_class, ours.dma_class]


def test_stock_fails_on_hopper_and_uninstall_restores_it(installed):
  nv.uninstall()
  with pytest.raises(StopIteration): ops_nv.NVKIface.setup_usermode(FakeIface(H100))  # the error the issue reports


def test_missing_class_is_a_clear_error():
  with pytest.raises(RuntimeError, match="no supported compute class"): nv.select_classes(H100 - {nv.HOPPER_COMPUTE_A})
  with pytest.raises(ValueError, match="older than Ampere"): nv.qmd_version(0xc5c0)  # TURING_COMPUTE_A


def hopper_program_qmd():
  """The QMD NVProgram writes for a kernel, on a mocked Hopper device: the 3.0-style field names 0.14.0 uses."""
  dev = SimpleNamespace(iface=SimpleNamespace(compute_class=nv.HOPPER_COMPUTE_A))
  prog = 0x7fff_1234_5600
  q = ops_nv.QMD(dev, qmd_major_version=3, sm_global_caching_enable=1, program_address_upper=prog >> 32, program_address_lower=prog & 0xffffffff,
                 shared_memory_size=1024, register_count_v=40, shader_local_memory_high_size=0, qmd_group_id=0x3f, invalidate_texture_header_cache=1,
                 invalidate_texture_sampler_cache=1, invalidate_texture_data_cache=1, invalidate_shader_data_cache=1, api_visible_call_limit=1,
                 sampler_index=1, barrier_count=1, cwd_membar_type=1, constant_buffer_invalidate_0=1, min_sm_config_shared_mem_size=9,
                 target_sm_config_shared_mem_size=9, max_sm_config_shared_mem_size=0x1a, program_prefetch_size=3, sass_version=0x90,
                 program_prefetch_addr_upper_shifted=prog >> 40, program_prefetch_addr_lower_shifted=(prog >> 8) & 0xffffffff)
  q.set_constant_buf_addr(0, 0x1_0000_0040)
  q.write(constant_buffer_size_shifted4_0=0x30, constant_buffer_valid_0=1, release0_enable=1)
  return q, int.from_bytes(bytes(q.mv), "little")


def test_hopper_qmd_is_version_4_layout(installed):
  q, bits = hopper_program_qmd()
  def field(hi, lo): return (bits >> lo) & ((1 << (hi - lo + 1)) - 1)
  # QMD V04_00 bit positions (Hopper, HOPPER_COMPUTE_A): 384 bytes
  assert len(q.mv) == 384 and q.ver == 4
  assert field(583, 580) == 4 and field(579, 576) == 0 and field(25, 23) == nv.QMD4_TYPE_GRID_CTA
  assert field(1208, 1200) == 40 and field(601, 584) == 1024
  assert field(1247, 1216) | field(1272, 1248) << 32 == 0x7fff_1234_5600
  assert field(1567, 1536) == 0x1_0000_0040 >> 6 and field(1599, 1587) == 0x30 and field(416, 416) == 1
  assert field(320, 320) == 1 and q.read("release0_enable") == 1 and q.read("release1_enable") == 0
  assert field(613, 608) == field(625, 620) == 9 and field(619, 614) == 0x1a
  assert q.field_offset("grid_width") == 1024 // 8 and q.field_offset("release_semaphore0_addr_lower") == 640 // 8


@pytest.mark.parametrize("compute_class,ver", [(nv.AMPERE_COMPUTE_B, 3), (nv.BLACKWELL_COMPUTE_B, 5)])
def test_other_chips_keep_the_stock_qmd(installed, compute_class, ver):
  q = ops_nv.QMD(SimpleNamespace(iface=SimpleNamespace(compute_class=compute_class)), qmd_major_version=ver)
  assert q.ver == ver and q.read("qmd_major_version") == ver
