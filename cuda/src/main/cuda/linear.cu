// Helpers of the linear layers (CudaLinear); the products themselves run on cuBLASLt.
//
//   convert_f32_to_bf16(out, in, n):   out[i] = bf16(in[i]), round to nearest even (as torch's .to(bfloat16)).
//                                      Turns an F32 weight (a LoRA matrix, R·K elements) into the BF16 operand
//                                      the GEMM reads.  in (n) f32 -> out (n) bf16
//   column_sum_bf16(dBias, dOut, alpha, rows, cols):
//                                      dBias[j] += alpha · Σ_i dOut[i, j]  (fp32 accumulation), the bias gradient
//                                      of y = x·Wᵀ + b.  dOut (M, N) bf16 row-major, dBias (N) f32.
//                                      Block (32, 8) covers 32 columns: thread (x, y) sums rows y, y+8, ... of
//                                      column x (a warp reads 32 consecutive elements of a row: coalesced), then
//                                      the 8 partial sums are added in a fixed order through shared memory, so
//                                      the result is deterministic (no atomics).
#include <cuda_bf16.h>

extern "C" __global__ void convert_f32_to_bf16(__nv_bfloat16* __restrict__ out, const float* __restrict__ in,
                                               long long n) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n;
         i += (long long) gridDim.x * blockDim.x) {
        out[i] = __float2bfloat16_rn(in[i]);
    }
}

extern "C" __global__ void column_sum_bf16(float* __restrict__ dBias, const __nv_bfloat16* __restrict__ dOut,
                                           float alpha, int rows, int cols) {
    __shared__ float partial[8][33];
    int col = blockIdx.x * 32 + threadIdx.x;
    float acc = 0.0f;
    if (col < cols) {
        for (int r = threadIdx.y; r < rows; r += 8) {
            acc += __bfloat162float(dOut[(long long) r * cols + col]);
        }
    }
    partial[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && col < cols) {
        float sum = 0.0f;
        for (int y = 0; y < 8; y++) {
            sum += partial[y][threadIdx.x];
        }
        dBias[col] += alpha * sum;
    }
}
