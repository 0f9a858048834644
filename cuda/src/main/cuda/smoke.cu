// Smallest kernels of the module, used by the device smoke tests to prove the whole pipeline (build-time nvcc or
// NVRTC, module load, argument marshalling, launch, copies) on a real GPU.
//
//   fill_f32(out, value, n):           out[i] = value                          out (n) f32
//   axpy_f32(y, x, alpha, n):          y[i] = alpha·x[i] + y[i]                x, y (n) f32
//   scale_rows_f64(out, in, factor, extra, rows, cols, ld):
//                                      out[r·ld+c] = factor[r]·in[r·ld+c] + extra   in, out (rows, ld) f64,
//                                      factor (rows) f64; grid.y = rows (exercises double, int and long long
//                                      arguments in one signature)

extern "C" __global__ void fill_f32(float* __restrict__ out, float value, long long n) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n;
         i += (long long) gridDim.x * blockDim.x) {
        out[i] = value;
    }
}

extern "C" __global__ void axpy_f32(float* __restrict__ y, const float* __restrict__ x, float alpha, long long n) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n;
         i += (long long) gridDim.x * blockDim.x) {
        y[i] = fmaf(alpha, x[i], y[i]);
    }
}

extern "C" __global__ void scale_rows_f64(double* __restrict__ out, const double* __restrict__ in,
                                          const double* __restrict__ factor, double extra, int rows, int cols,
                                          long long ld) {
    int r = blockIdx.y;
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += gridDim.x * blockDim.x) {
        if (r < rows) {
            out[r * ld + c] = factor[r] * in[r * ld + c] + extra;
        }
    }
}
