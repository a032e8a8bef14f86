// C[M,N] = (A[M,K] @ Bt[N,K]^T) * scale_a * scale_b on Hopper (sm_90a) with wgmma: fp8 A and Bt (both K-contiguous, the
// only operand order fp8 wgmma takes), fp32 accumulation, OUT output. 128xBN block tile, two warpgroups of 64xBN, K in steps
// of 64, ST stages of cp.async into shared memory laid out as wgmma's 64-byte-swizzled K-major form (row r, 16-byte chunk c
// at r*64 + (c ^ (r/2)%4)*16: the same XOR the sm89 kernel uses for ldmatrix), read straight from shared memory by
// m64nWNk32 wgmmas, 2 per stage and WN columns. 48 KB static shared memory and <= 128 registers: two CTAs per SM, so one
// CTA's loads and barrier overlap the other's math. PROMOTE (1, 2) sums that many k32 steps in their own registers, then adds
// them in fp32; 0 accumulates in the wgmmas throughout.
// Filled in by gemm.py: NAME, M, N, K, BN, WN, ST, MINB, PROMOTE, FMT, OUT_T, STORE2 and the wgmma operand lists.
#define BM 128
#define BK 64
#define THREADS 256

__device__ __forceinline__ unsigned smem_u32(const void* p) {
  unsigned r; asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(r) : "l"(p)); return r;
}

__device__ __forceinline__ int off(int r, int ch) { return r * BK + ((ch ^ ((r >> 1) & 3)) << 4); }

__device__ __forceinline__ void load_tile(unsigned char* sA, unsigned char* sB, const unsigned char* A, const unsigned char* Bt,
                                          int bm, int bn, int k0, int tid) {
  #pragma unroll
  for (int i = 0; i < BM * 4 / THREADS; i++) {
    int c = tid + i * THREADS, r = c >> 2, ch = c & 3;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(smem_u32(sA + off(r, ch))), "l"(A + (size_t)(bm + r) * K + k0 + ch * 16));
  }
  #pragma unroll
  for (int i = 0; i < BN * 4 / THREADS; i++) {
    int c = tid + i * THREADS, r = c >> 2, ch = c & 3;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(smem_u32(sB + off(r, ch))), "l"(Bt + (size_t)(bn + r) * K + k0 + ch * 16));
  }
}

// shared-memory matrix descriptor: start address / 16, leading offset 1 (unused when swizzled K-major), stride 512 bytes
// between 8-row groups (8 rows of 64 bytes), swizzle mode 2 (64 bytes)
__device__ __forceinline__ unsigned long long desc(unsigned addr) {
  return (unsigned long long)((addr & 0x3FFFF) >> 4) | (1ull << 16) | ((unsigned long long)(512 >> 4) << 32) | (2ull << 62);
}

// d (+)= A(64x32) @ B(32xWN) for one warpgroup; scale_d 0 overwrites d
__device__ __forceinline__ void wgmma(float* d, unsigned long long da, unsigned long long db, int scale_d) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %PRED_N, 0;\n"
               "wgmma.mma_async.sync.aligned.m64nWN_Sk32.f32.FMT.FMT {ACC_REGS}, %DA_N, %DB_N, p, 1, 1;\n}\n"
               : ACC_OPERANDS : "l"(da), "l"(db), "r"(scale_d));
}

__device__ __forceinline__ void store2(OUT_T* C, size_t i, float x, float y) { STORE2 }

extern "C" __global__ void __launch_bounds__(THREADS, MINB) NAME(OUT_T* __restrict__ C, const unsigned char* __restrict__ A,
                                                                 const unsigned char* __restrict__ Bt, const float* __restrict__ scale_a,
                                                                 const float* __restrict__ scale_b) {
  __shared__ __align__(1024) unsigned char sA[ST][BM * BK];
  __shared__ __align__(1024) unsigned char sB[ST][BN * BK];
  const int tid = threadIdx.x, lane = tid & 31, warp = (tid >> 5) & 3, wg = tid >> 7;
  const int bm = blockIdx.y * BM, bn = blockIdx.x * BN, KT = K / BK;
  float acc[BN / 2];
#if PROMOTE
  float part[WN / 2];
#endif
  #pragma unroll
  for (int i = 0; i < BN / 2; i++) acc[i] = 0.f;

  #pragma unroll
  for (int s = 0; s < ST - 1; s++) {
    if (s < KT) load_tile(sA[s], sB[s], A, Bt, bm, bn, s * BK, tid);
    asm volatile("cp.async.commit_group;\n");
  }
  for (int kt = 0; kt < KT; kt++) {
    // stage kt landed (this thread's copies), visible to wgmma's async proxy; every warpgroup is done with the stage loaded next
    asm volatile("cp.async.wait_group %0;\n" :: "n"(ST - 2));
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();
    const int nk = kt + ST - 1;
    if (nk < KT) load_tile(sA[nk % ST], sB[nk % ST], A, Bt, bm, bn, nk * BK, tid);
    asm volatile("cp.async.commit_group;\n");
    const unsigned a0 = smem_u32(sA[kt % ST] + wg * 64 * BK), b0 = smem_u32(sB[kt % ST]);
#if PROMOTE
    // fp8 wgmma keeps fewer bits than fp32 while it accumulates: sum each PROMOTE k32 steps apart, add them in fp32
    #pragma unroll
    for (int h = 0; h < BN / WN; h++)
      #pragma unroll
      for (int kk = 0; kk < 2; kk += PROMOTE) {
        asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
        #pragma unroll
        for (int j = 0; j < PROMOTE; j++) wgmma(part, desc(a0 + (kk + j) * 32), desc(b0 + h * WN * BK + (kk + j) * 32), j);
        asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
        asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
        #pragma unroll
        for (int i = 0; i < WN / 2; i++) acc[h * WN / 2 + i] += part[i];
      }
#else
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
    #pragma unroll
    for (int h = 0; h < BN / WN; h++) {
      wgmma(acc + h * WN / 2, desc(a0), desc(b0 + h * WN * BK), 1);
      wgmma(acc + h * WN / 2, desc(a0 + 32), desc(b0 + h * WN * BK + 32), 1);
    }
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
#endif
  }
  const float s = scale_a[0] * scale_b[0];
  const int r = bm + wg * 64 + warp * 16 + (lane >> 2);
  #pragma unroll
  for (int j = 0; j < BN / 8; j++) {
    const int c = bn + j * 8 + (lane & 3) * 2;
    store2(C, (size_t)r * N + c, acc[j * 4] * s, acc[j * 4 + 1] * s);
    store2(C, (size_t)(r + 8) * N + c, acc[j * 4 + 2] * s, acc[j * 4 + 3] * s);
  }
}
