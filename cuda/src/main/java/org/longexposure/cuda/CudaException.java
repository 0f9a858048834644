package org.longexposure.cuda;

/**
 * A failed call into the CUDA driver, NVRTC or cuBLASLt, or a CUDA library that could not be found. The message
 * names the call, the arguments worth knowing and the library's own error name and text, e.g.
 * {@code cuMemAlloc_v2(1073741824 bytes): CUDA_ERROR_OUT_OF_MEMORY (out of memory)}.
 */
public final class CudaException extends RuntimeException {
    private final int code;

    /** An error without a library result code (lookup failures, empty heuristics). */
    public CudaException(String message) {
        super(message);
        this.code = 0;
    }

    /** An error carrying the library's numeric result code. */
    public CudaException(String message, int code) {
        super(message);
        this.code = code;
    }

    public CudaException(String message, Throwable cause) {
        super(message, cause);
        this.code = 0;
    }

    /** The library's result code (CUresult, nvrtcResult or cublasStatus_t), or 0 when there is none. */
    public int code() {
        return code;
    }
}
