// C[M,N] = (A[M,K] @ Bt[N,K]^T) * scale_a * scale_b: fp8 A and Bt (both K-contiguous, like torch._scaled_mm's column-major
// b), fp32 accumulation, OUT output. sm_89+ (Ada, Hopper). The sm80 half kernel's structure at 64 fp8 per K step:
// 128x128x64 block tile, 4 warps of 64x64, 3-stage cp.async through XOR-swizzled shared memory, ldmatrix (b16 pairs =
// 4 fp8 along K, exactly the m16n8k32 fragment) into mma.sync m16n8k32 FMT. Filled in by gemm.py: NAME, M, N, K, FMT, OUT.
#define BM 128
#define BN 128
#define BK 64
#define ST 3

__device__ __forceinline__ unsigned smem_u32(const void* p) {
  unsigned r; asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(r) : "l"(p)); return r;
}

// both tiles: 128 rows of 4 16-byte chunks along K, chunk ^= (row/2)%4 so the 8 rows an ldmatrix reads hit 8 bank groups
__device__ __forceinline__ int off(int r, int ch) { return r * BK + ((ch ^ ((r >> 1) & 3)) << 4); }

__device__ __forceinline__ void load_tile(unsigned char* sA, unsigned char* sB, const unsigned char* A, const unsigned char* Bt,
                                          int bm, int bn, int k0, int tid) {
  #pragma unroll
  for (int i = 0; i < 4; i++) {
    int c = tid + i * 128, r = c >> 2, ch = c & 3;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(smem_u32(sA + off(r, ch))), "l"(A + (size_t)(bm + r) * K + k0 + ch * 16));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(smem_u32(sB + off(r, ch))), "l"(Bt + (size_t)(bn + r) * K + k0 + ch * 16));
  }
}

__device__ __forceinline__ void store2(OUT_T* C, size_t i, float x, float y) { STORE2 }

extern "C" __global__ void __launch_bounds__(128) NAME(OUT_T* __restrict__ C, const unsigned char* __restrict__ A,
                                                      const unsigned char* __restrict__ Bt, const float* __restrict__ scale_a,
                                                      const float* __restrict__ scale_b) {
  __shared__ __align__(128) unsigned char sA[ST][BM * BK];
  __shared__ __align__(128) unsigned char sB[ST][BN * BK];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = (warp >> 1) * 64, wn = (warp & 1) * 64, bm = blockIdx.y * BM, bn = blockIdx.x * BN, KT = K / BK;
  float acc[4][8][4];
  #pragma unroll
  for (int mi = 0; mi < 4; mi++)
    #pragma unroll
    for (int ni = 0; ni < 8; ni++)
      #pragma unroll
      for (int j = 0; j < 4; j++) acc[mi][ni][j] = 0.f;

  #pragma unroll
  for (int s = 0; s < ST - 1; s++) {
    if (s < KT) load_tile(sA[s], sB[s], A, Bt, bm, bn, s * BK, tid);
    asm volatile("cp.async.commit_group;\n");
  }
  for (int kt = 0; kt < KT; kt++) {
    asm volatile("cp.async.wait_group %0;\n" :: "n"(ST - 2));
    __syncthreads();
    const int nk = kt + ST - 1;
    if (nk < KT) load_tile(sA[nk % ST], sB[nk % ST], A, Bt, bm, bn, nk * BK, tid);
    asm volatile("cp.async.commit_group;\n");
    const unsigned char *a_s = sA[kt % ST], *b_s = sB[kt % ST];
    #pragma unroll
    for (int kk = 0; kk < BK; kk += 32) {
      unsigned af[4][4], bf[8][2];
      #pragma unroll
      for (int mi = 0; mi < 4; mi++)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(af[mi][0]), "=r"(af[mi][1]), "=r"(af[mi][2]), "=r"(af[mi][3])
                     : "r"(smem_u32(a_s + off(wm + mi * 16 + (lane & 15), (kk >> 4) + (lane >> 4)))));
      #pragma unroll
      for (int ni = 0; ni < 8; ni += 2)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(bf[ni][0]), "=r"(bf[ni][1]), "=r"(bf[ni + 1][0]), "=r"(bf[ni + 1][1])
                     : "r"(smem_u32(b_s + off(wn + ni * 8 + (lane & 7) + ((lane >> 4) << 3), (kk >> 4) + ((lane >> 3) & 1)))));
      #pragma unroll
      for (int mi = 0; mi < 4; mi++)
        #pragma unroll
        for (int ni = 0; ni < 8; ni++)
          asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.FMT.FMT.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                       : "+f"(acc[mi][ni][0]), "+f"(acc[mi][ni][1]), "+f"(acc[mi][ni][2]), "+f"(acc[mi][ni][3])
                       : "r"(af[mi][0]), "r"(af[mi][1]), "r"(af[mi][2]), "r"(af[mi][3]), "r"(bf[ni][0]), "r"(bf[ni][1]));
    }
  }
  const float s = scale_a[0] * scale_b[0];
  #pragma unroll
  for (int mi = 0; mi < 4; mi++)
    #pragma unroll
    for (int ni = 0; ni < 8; ni++) {
      const int r = bm + wm + mi * 16 + (lane >> 2), c = bn + wn + ni * 8 + (lane & 3) * 2;
      store2(C, (size_t)r * N + c, acc[mi][ni][0] * s, acc[mi][ni][1] * s);
      store2(C, (size_t)(r + 8) * N + c, acc[mi][ni][2] * s, acc[mi][ni][3] * s);
    }
}
