/*
 * Embedding row gathers, as torch.nn.Embedding; CPU twin CpuEmbedding. table (V, C) bf16, ids (N) int32 (checked
 * to lie in [0, V) on the host before the launch), out (N, C) bf16. Forward: out[i] = table[ids[i]] (an exact
 * copy) or, accumulating (learned positions added onto token embeddings), out[i] = bf16(f32(out[i]) +
 * f32(table[ids[i]])). Backward (trainable tables only): dTable (V, C) f32 += the scatter of dOut (N, C) bf16 rows
 * to ids. Nothing is saved.
 *
 * The backward is deterministic without atomics or a sort: each thread owns one column of dTable and walks the
 * N rows in order, so repeated ids add in row order — the same order as the CPU, hence the same f32 bits. The
 * price is parallelism of only C threads with N sequential steps each; trainable embedding tables are not part
 * of LoRA training, so this path is rarely taken.
 */
#include "common.cuh"

/*
 * out[i] (=|+=) table[ids[i]]: out (N, C) bf16, ids (N) int32, table (V, C) bf16. grid = N (one block per output
 * row), any block size (the host uses 128). 16-byte accesses when C % 8 == 0 and both bases are aligned.
 */
extern "C" __global__ void embedding_forward_bf16(bf16* out, const int* ids, const bf16* table, int N, int C,
                                                  int accumulate) {
    long long row = blockIdx.x;
    if (row >= N) {
        return;
    }
    const bf16* src = table + (long long) ids[row] * C;
    bf16* dst = out + row * C;
    if ((C % 8) == 0 && aligned16(table) && aligned16(out)) {
        for (int j = threadIdx.x * 8; j < C; j += blockDim.x * 8) {
            if (accumulate) {
                float a[8];
                float b[8];
                load8(dst + j, a);
                load8(src + j, b);
#pragma unroll
                for (int k = 0; k < 8; k++) {
                    a[k] = __fadd_rn(a[k], b[k]);
                }
                store8(dst + j, a);
            } else {
                *reinterpret_cast<uint4*>(dst + j) = *reinterpret_cast<const uint4*>(src + j);
            }
        }
    } else {
        for (int j = threadIdx.x; j < C; j += blockDim.x) {
            if (accumulate) {
                dst[j] = __float2bfloat16_rn(__fadd_rn(__bfloat162float(dst[j]), __bfloat162float(src[j])));
            } else {
                dst[j] = src[j];
            }
        }
    }
}

/*
 * dTable[ids[i]] += dOut[i] for i = 0 .. N-1 in order: dTable (V, C) f32, dOut (N, C) bf16, ids (N) int32.
 * grid = ceil(C / block), any block size (the host uses 128): thread col owns column col of every table row.
 */
extern "C" __global__ void embedding_backward_f32(float* dTable, const bf16* dOut, const int* ids, int N, int C) {
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= C) {
        return;
    }
    for (long long i = 0; i < N; i++) {
        float* d = dTable + (long long) ids[i] * C + col;
        *d = __fadd_rn(*d, __bfloat162float(dOut[i * C + col]));
    }
}
