package org.longexposure.cuda.backend;

import java.nio.file.Path;
import java.util.List;

/**
 * How to open the CUDA backend. The cli fills it from its options and environment (--cuda-lib-path /
 * LONGEXPOSURE_CUDA_LIB_PATH, CUDA_HOME); nothing here reads the environment.
 *
 * @param deviceOrdinal  which GPU (0-based, as the driver numbers them)
 * @param libDirs        folders searched for libcuda/libnvrtc/libcublasLt after the loader's own search path
 * @param kernelCacheDir folder for NVRTC-compiled kernels on GPUs without prebuilt cubins, or null (no disk cache)
 * @param cudaHomes      toolkit folders searched for the CUDA headers NVRTC needs (cuda_bf16.h)
 * @param gemmAutotune   time cuBLASLt's candidate algorithms once per GEMM shape and keep the fastest; false (the
 *                       default) keeps the heuristic's first choice. Autotuning picks by timing, so two processes
 *                       may pick different algorithms for a shape and round differently: runs with the same seed
 *                       then end at slightly different losses. The heuristic's choice depends only on the shape,
 *                       the alignment, the library and the GPU, so runs repeat bit for bit; autotuning gained nothing
 *                       measurable on the OPT steps (cuda/notes/step.md).
 * @param sparseMlpGemmRows the sparse MLP's path rule: token blocks of at least this many rows (min(tokenBlock, N))
 *                       gather their listed weights and run cuBLASLt, smaller ones run the direct tensor-core
 *                       kernels where those support the layout (see CudaSparse; default
 *                       {@link #DEFAULT_SPARSE_MLP_GEMM_ROWS}, the measured crossover); 0 always gathers,
 *                       {@link Integer#MAX_VALUE} always runs the direct kernels where they apply (benchmarks, tests)
 */
public record CudaOptions(int deviceOrdinal, List<Path> libDirs, Path kernelCacheDir, List<Path> cudaHomes,
                          boolean gemmAutotune, int sparseMlpGemmRows) {
    /** Token-block rows from which gather + cuBLASLt beats the direct kernels (H200; cuda/notes/sparse-mlp.md). */
    public static final int DEFAULT_SPARSE_MLP_GEMM_ROWS = 256;

    public CudaOptions {
        libDirs = List.copyOf(libDirs);
        cudaHomes = List.copyOf(cudaHomes);
        if (sparseMlpGemmRows < 0) {
            throw new IllegalArgumentException("sparseMlpGemmRows must be >= 0, got " + sparseMlpGemmRows);
        }
    }

    /** With the default sparse MLP path rule. */
    public CudaOptions(int deviceOrdinal, List<Path> libDirs, Path kernelCacheDir, List<Path> cudaHomes,
                       boolean gemmAutotune) {
        this(deviceOrdinal, libDirs, kernelCacheDir, cudaHomes, gemmAutotune, DEFAULT_SPARSE_MLP_GEMM_ROWS);
    }

    /** With GEMM autotuning off (reproducible runs). */
    public CudaOptions(int deviceOrdinal, List<Path> libDirs, Path kernelCacheDir, List<Path> cudaHomes) {
        this(deviceOrdinal, libDirs, kernelCacheDir, cudaHomes, false);
    }

    /** Device 0, libraries from the loader path only, no kernel cache. */
    public static CudaOptions defaults() {
        return new CudaOptions(0, List.of(), null, List.of());
    }

    public CudaOptions withDevice(int ordinal) {
        return new CudaOptions(ordinal, libDirs, kernelCacheDir, cudaHomes, gemmAutotune, sparseMlpGemmRows);
    }

    public CudaOptions withSparseMlpGemmRows(int rows) {
        return new CudaOptions(deviceOrdinal, libDirs, kernelCacheDir, cudaHomes, gemmAutotune, rows);
    }
}
