// C[M,N] = A[M,K] @ B[K,N], row-major 16-bit A and B, fp32 accumulation, 16-bit C. sm_80+ (Ampere, Ada, Hopper).
// 128x128x32 block tile, 4 warps of 64x64, a 3-stage cp.async pipeline through XOR-swizzled shared memory, ldmatrix
// (.trans for B) into mma.sync m16n8k16. Filled in by gemm.py: NAME, M, N, K, DT (f16 or bf16).
#define BM 128
#define BN 128
#define BK 32
#define ST 3

__device__ __forceinline__ unsigned smem_u32(const void* p) {
  unsigned r; asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(r) : "l"(p)); return r;
}

// A tile: 128 rows of 4 16-byte chunks, chunk ^= (row/2)%4; B tile: 32 rows of 16 chunks, chunk ^= row%8. Both let the
// 8 rows one ldmatrix reads hit 8 different 16-byte bank groups.
__device__ __forceinline__ int a_off(int r, int ch) { return r * BK + ((ch ^ ((r >> 1) & 3)) << 3); }
__device__ __forceinline__ int b_off(int k, int ch) { return k * BN + ((ch ^ (k & 7)) << 3); }

__device__ __forceinline__ void load_tile(unsigned short* sA, unsigned short* sB, const unsigned short* A, const unsigned short* B,
                                          int bm, int bn, int k0, int tid) {
  #pragma unroll
  for (int i = 0; i < 4; i++) {
    int c = tid + i * 128;
    int ar = c >> 2, ac = c & 3, br = c >> 4, bc = c & 15;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(smem_u32(sA + a_off(ar, ac))), "l"(A + (size_t)(bm + ar) * K + k0 + ac * 8));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(smem_u32(sB + b_off(br, bc))), "l"(B + (size_t)(k0 + br) * N + bn + bc * 8));
  }
}

extern "C" __global__ void __launch_bounds__(128) NAME(unsigned* __restrict__ C, const unsigned short* __restrict__ A,
                                                      const unsigned short* __restrict__ B) {
  __shared__ __align__(128) unsigned short sA[ST][BM * BK];
  __shared__ __align__(128) unsigned short sB[ST][BK * BN];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = (warp >> 1) * 64, wn = (warp & 1) * 64, bm = blockIdx.y * BM, bn = blockIdx.x * BN, KT = K / BK;
  // this lane's ldmatrix addresses for the first mma tile of the first K step; the others are a constant add or XOR away
  const unsigned a_ld = smem_u32(sA[0] + a_off(wm + (lane & 15), lane >> 4));
  const unsigned b_ld = smem_u32(sB[0] + b_off(lane & 15, (wn >> 3) + (lane >> 4)));
  float acc[4][8][4];
  #pragma unroll
  for (int mi = 0; mi < 4; mi++)
    #pragma unroll
    for (int ni = 0; ni < 8; ni++)
      #pragma unroll
      for (int j = 0; j < 4; j++) acc[mi][ni][j] = 0.f;

  #pragma unroll
  for (int s = 0; s < ST - 1; s++) {
    if (s < KT) load_tile(sA[s], sB[s], A, B, bm, bn, s * BK, tid);
    asm volatile("cp.async.commit_group;\n");
  }
  for (int kt = 0; kt < KT; kt++) {
    asm volatile("cp.async.wait_group %0;\n" :: "n"(ST - 2));
    __syncthreads();  // tile kt is in; every warp is done with the slot the next load overwrites
    const int nk = kt + ST - 1;
    if (nk < KT) load_tile(sA[nk % ST], sB[nk % ST], A, B, bm, bn, nk * BK, tid);
    asm volatile("cp.async.commit_group;\n");
    const unsigned stage = (kt % ST) * (BM * BK * 2);  // both tiles are 8 KB a stage
    #pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      unsigned af[4][4], bf[8][2];
      #pragma unroll
      for (int mi = 0; mi < 4; mi++)  // 16 rows down keeps the swizzle; the next 16 K are chunk+2, i.e. byte offset ^ 32
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(af[mi][0]), "=r"(af[mi][1]), "=r"(af[mi][2]), "=r"(af[mi][3])
                     : "r"((a_ld + stage + mi * 16 * BK * 2) ^ (kk ? 32 : 0)));
      #pragma unroll
      for (int ni = 0; ni < 8; ni += 2)  // 16 K rows down keeps the swizzle; n8 tile ni is byte offset ^ (ni * 16)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(bf[ni][0]), "=r"(bf[ni][1]), "=r"(bf[ni + 1][0]), "=r"(bf[ni + 1][1])
                     : "r"((b_ld + stage + kk * BN * 2) ^ (ni * 16)));
      #pragma unroll
      for (int mi = 0; mi < 4; mi++)
        #pragma unroll
        for (int ni = 0; ni < 8; ni++)
          asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.DT.DT.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                       : "+f"(acc[mi][ni][0]), "+f"(acc[mi][ni][1]), "+f"(acc[mi][ni][2]), "+f"(acc[mi][ni][3])
                       : "r"(af[mi][0]), "r"(af[mi][1]), "r"(af[mi][2]), "r"(af[mi][3]), "r"(bf[ni][0]), "r"(bf[ni][1]));
    }
  }
  #pragma unroll
  for (int mi = 0; mi < 4; mi++)
    #pragma unroll
    for (int ni = 0; ni < 8; ni++) {
      const int r = bm + wm + mi * 16 + (lane >> 2), c = bn + wn + ni * 8 + (lane & 3) * 2;
      unsigned lo, hi;  // cvt packs its first operand into the upper half
      asm("cvt.rn.DTx2.f32 %0, %1, %2;\n" : "=r"(lo) : "f"(acc[mi][ni][1]), "f"(acc[mi][ni][0]));
      asm("cvt.rn.DTx2.f32 %0, %1, %2;\n" : "=r"(hi) : "f"(acc[mi][ni][3]), "f"(acc[mi][ni][2]));
      C[((size_t)r * N + c) >> 1] = lo;
      C[((size_t)(r + 8) * N + c) >> 1] = hi;
    }
}
