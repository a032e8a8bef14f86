"""RDNA4 (gfx1200/gfx1201) WMMA for 8-bit inputs: fp8 e4m3 and e5m2 into float, int8 into int32.

tinygrad 0.14.0 has RDNA4 half and bf16 tensor cores; the gfx12 8-bit forms (v_wmma_f32_16x16x16_fp8_fp8,
_bf8_bf8, v_wmma_i32_16x16x16_iu8) are missing. They are not a dtype swap of the 16-bit ones: in wave32 a lane of an
8-bit A/B operand holds 8 consecutive K (lanes 16-31 the upper 8), where a 16-bit lane holds K 0-3 and 8-11 (lanes 16-31
K 4-7 and 12-15). So the 8-bit entries carry their own swizzle, and the LLVM renderer gets the gfx12 intrinsics, which
take each operand as <2 x i32>. `install()` adds both to the AMD LLVM renderer (DEV=AMD or DEV=NULL:AMDLLVM:gfx1201).
"""
from __future__ import annotations

import ctypes

from tinygrad.codegen.opt.tc import TensorCore
from tinygrad.dtype import dtypes
from tinygrad.uop.ops import Ops, PatternMatcher, UOp, UPat

RDNA4_ARCHS = ("gfx1200", "gfx1201")

# lanes 0-15: M (A) or N (B) rows 0-15 with K 0-7 in the 8 byte slots; lanes 16-31: the same rows with K 8-15
RDNA4_8BIT = [TensorCore(dims=(16, 16, 16), threads=32, elements_per_thread=(8, 8, 8), dtype_in=di, dtype_out=do,
                         opts=("l0", "l0", "l0", "l0", "u1", "u1", "u1", "l1"),
                         swizzle=((("u0", "u1", "u2", "l4", "r3"), ("r0", "r1", "r2"), ("l0", "l1", "l2", "l3")),
                                  (("l0", "l1", "l2", "l3", "r3"), ("r0", "r1", "r2"), ("l4", "u0", "u1", "u2"))))
              for di, do in [(dtypes.fp8e4m3, dtypes.float), (dtypes.fp8e5m2, dtypes.float), (dtypes.int8, dtypes.int32)]]

_EIGHT_BIT = (dtypes.fp8e4m3, dtypes.fp8e5m2, dtypes.int8)
_INTRINSIC = {dtypes.fp8e4m3: "f32.16x16x16.fp8.fp8.v8f32.v2i32", dtypes.fp8e5m2: "f32.16x16x16.bf8.bf8.v8f32.v2i32",
              dtypes.int8: "i32.16x16x16.iu8.v8i32.v2i32"}

# the gfx12 intrinsics take 8 bytes of A and of B as two dwords
pm_pack_8bit = PatternMatcher([
  (UPat(Ops.WMMA, name="x"), lambda x: x.replace(src=(x.src[0].bitcast(dtypes.uint32), x.src[1].bitcast(dtypes.uint32), x.src[2]))
   if x.arg[1] in _EIGHT_BIT and x.src[0].dtype in _EIGHT_BIT and x.src[0].max_numel() == 8 else None),
])


def render_wmma_8bit(ctx, x: UOp) -> str | None:
  """LLVM IR for one gfx12 8-bit WMMA: fp8/bf8 -> <8 x float>, iu8 (both signed, no clamp) -> <8 x i32>."""
  if x.arg[1] not in _EIGHT_BIT: return None
  from tinygrad.renderer.llvmir import ldt
  a, b, c = (f"{ldt(s.dtype, s.max_numel())} {ctx[s]}" for s in x.src)
  args = [a, b, c] if x.arg[1] is not dtypes.int8 else ["i1 true", a, "i1 true", b, c, "i1 false"]
  return f"  {ctx[x]} = call {ldt(x.dtype, x.max_numel())} @llvm.amdgcn.wmma.{_INTRINSIC[x.arg[1]]}({', '.join(args)})"


_saved: dict[str, object] = {}


def _is_rdna4(renderer) -> bool: return renderer.target.arch.split(":")[0] in RDNA4_ARCHS


def _init(self, target) -> None:
  _saved["__init__"](self, target)
  if not _is_rdna4(self): return
  self.tensor_cores = [*self.tensor_cores, *RDNA4_8BIT]
  self.string_rewrite = PatternMatcher([(UPat(Ops.WMMA, name="x"), render_wmma_8bit)]) + self.string_rewrite
  self.extra_matcher = self.extra_matcher + pm_pack_8bit


def _supported_dtypes(self):
  # gfx12 converts fp8 in hardware (v_cvt_f32_fp8, v_cvt_pk_fp8_f32): the renderer's fp8 casts lower to those
  return _saved["supported_dtypes"](self) | (set(dtypes.fp8_ocp) if _is_rdna4(self) else set())


def _forget_rdna4_renderers() -> None:
  """Drop cached gfx12 LLVM renderers and their compiled programs, so the next use sees the current install state."""
  from tinygrad.codegen import to_program_cache
  from tinygrad.device import Device
  from tinygrad.renderer.llvmir import AMDLLVMRenderer
  for name in Device._opened_devices:
    cache = Device[name].cached_renderer
    for t in [t for t, r in cache.items() if isinstance(r, AMDLLVMRenderer) and _is_rdna4(r)]: del cache[t]
  for key in [k for k in to_program_cache if k[1] is AMDLLVMRenderer and k[2].arch.split(":")[0] in RDNA4_ARCHS]: del to_program_cache[key]


def installed() -> bool:
  return bool(_saved)


def install() -> None:
  """Add the gfx12 8-bit WMMA tensor cores and fp8 to tinygrad's AMD LLVM renderer. Idempotent."""
  if _saved: return
  from tinygrad.renderer.llvmir import AMDLLVMRenderer
  _saved.update(__init__=AMDLLVMRenderer.__init__, supported_dtypes=AMDLLVMRenderer.supported_dtypes)
  AMDLLVMRenderer.__init__, AMDLLVMRenderer.supported_dtypes = _init, _supported_dtypes
  _forget_rdna4_renderers()


def uninstall() -> None:
  """Restore stock 0.14.0: the renderer class, and no gfx12 renderer or program made while installed survives."""
  if not _saved: return
  from tinygrad.renderer.llvmir import AMDLLVMRenderer
  AMDLLVMRenderer.__init__, AMDLLVMRenderer.supported_dtypes = _saved["__init__"], _saved["supported_dtypes"]
  _saved.clear()
  _forget_rdna4_renderers()


def disassemble(lib: bytes, arch: str = "gfx1201") -> list[str]:
  """The instructions of an AMDGPU code object's .text, through libLLVM's disassembler (no llvm-objdump needed)."""
  from tinygrad.runtime.autogen import llvm
  from tinygrad.runtime.support.elf import elf_loader
  _, sections, _ = elf_loader(lib)
  text = next(s for s in sections if s.name == ".text").content
  for init in ("LLVMInitializeAMDGPUTargetInfo", "LLVMInitializeAMDGPUTargetMC", "LLVMInitializeAMDGPUDisassembler"): getattr(llvm, init)()
  dc = llvm.LLVMCreateDisasmCPU(b"amdgcn-amd-amdhsa", arch.encode(), None, 0, ctypes.cast(None, llvm.LLVMOpInfoCallback),
                                ctypes.cast(None, llvm.LLVMSymbolLookupCallback))
  if not dc: raise RuntimeError(f"libLLVM has no AMDGPU disassembler for {arch}")
  try:
    buf, out, pc = (ctypes.c_uint8 * len(text)).from_buffer_copy(text), [], 0
    line = ctypes.create_string_buffer(256)
    while pc < len(text):
      n = llvm.LLVMDisasmInstruction(dc, ctypes.cast(ctypes.byref(buf, pc), ctypes.POINTER(ctypes.c_uint8)), len(text) - pc, pc, line, 256)
      if n == 0: raise RuntimeError(f"undecodable instruction at .text+{pc:#x}")
      out.append(line.value.decode().strip())
      pc += n
    return out
  finally:
    llvm.LLVMDisasmDispose(dc)
