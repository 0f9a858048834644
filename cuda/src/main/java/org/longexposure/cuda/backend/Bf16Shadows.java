package org.longexposure.cuda.backend;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.longexposure.cuda.DeviceStorage;
import org.longexposure.cuda.driver.CudaFunction;
import org.longexposure.cuda.driver.KernelArgs;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Storage;
import org.longexposure.tensor.Tensor;

/**
 * BF16 copies ("shadows") of F32 device tensors that cuBLASLt reads as bf16 operands: the trainable LoRA matrices
 * (A (R, K), B (N, R)) and the F32 biases of frozen layers (N). cuBLASLt takes only bf16 operands here and a bias
 * of the output's dtype, so an F32 tensor must be rounded (nearest even, {@code convert_f32_to_bf16}) before a GEMM
 * reads it. Rounding on every call cost one small launch per product (334 per OPT-1.3B LoRA step); a shadow is
 * rounded once and reused until the F32 value changes.
 *
 * <p>Validity: a shadow is keyed by its F32 tensor's address, element count and storage object. Every op of this
 * backend that can write an F32 tensor reports it through {@link #wrote(Tensor)} (Backend.write, fillUniform, the
 * optimizer ops, the F32 forms of the pointwise ops, every F32 gradient or statistics output), which marks each
 * shadow whose F32 bytes overlap the written ones stale; the next GEMM that reads it rounds it again. The multi-
 * tensor AdamW writes the shadows of the parameters it updates in the same kernel ({@link #refreshedByKernel}),
 * so in a training step the LoRA matrices are rounded once per optimizer step, inside the optimizer's own pass.
 *
 * <p>Memory: R·K + N·R bf16 elements per LoRA layer and N per bias, allocated on first use from the arena and kept
 * for the backend's lifetime (a tensor freed and re-allocated gets a new storage object, hence a new shadow).
 * All work is queued on the backend's one stream, so a shadow is always rounded after the writes that precede it.
 */
final class Bf16Shadows {
    private static final int CONVERT_BLOCK = 256;

    private final CudaBackend backend;
    private final Map<Key, Shadow> byTensor = new HashMap<>();
    private final List<Shadow> all = new ArrayList<>();
    private long conversions;

    Bf16Shadows(CudaBackend backend) {
        this.backend = backend;
    }

    private record Key(long address, long numel) {
    }

    private static final class Shadow {
        final Storage owner;
        final long address;
        final long bytes;
        final Tensor copy;
        boolean valid;

        Shadow(Storage owner, long address, long bytes, Tensor copy) {
            this.owner = owner;
            this.address = address;
            this.bytes = bytes;
            this.copy = copy;
        }
    }

    /** Device address of F32 {@code t}'s bf16 copy, rounding it first (queued) when it is missing or stale. */
    long of(Tensor t) {
        t.requireDType("bf16 shadow source", DType.F32);
        long n = t.numel();
        if (n == 0) {
            return CudaBackend.ptr(t); // nothing to read
        }
        Shadow s = lookup(t, true);
        if (!s.valid) {
            CudaFunction f = backend.kernels().function("linear", "convert_f32_to_bf16");
            int blocks = (int) Math.min((n + CONVERT_BLOCK - 1) / CONVERT_BLOCK,
                    32L * backend.context().multiprocessorCount());
            backend.stream().launch(f, blocks, 1, 1, CONVERT_BLOCK, 1, 1, 0, KernelArgs.of(s.copy, t, n));
            conversions++;
            s.valid = true;
        }
        return CudaBackend.ptr(s.copy);
    }

    /**
     * For a kernel that writes F32 {@code t} and also stores bf16 of every written value into the returned
     * address: every shadow overlapping t is marked stale, then t's own shadow (if it has one) valid. Returns 0
     * when t has no shadow (the kernel then writes none).
     */
    long refreshedByKernel(Tensor t) {
        wrote(t);
        Shadow s = lookup(t, false);
        if (s == null) {
            return 0;
        }
        s.valid = true;
        return CudaBackend.ptr(s.copy);
    }

    /** Marks stale every shadow whose F32 bytes overlap {@code t}'s; a no-op for tensors of other dtypes. */
    void wrote(Tensor t) {
        if (t == null || all.isEmpty() || t.dtype() != DType.F32 || !(t.storage() instanceof DeviceStorage)) {
            return;
        }
        wroteBytes(CudaBackend.ptr(t), t.byteSize());
    }

    /** Marks stale every shadow overlapping device bytes [address, address + bytes), whatever their dtype. */
    void wroteBytes(long address, long bytes) {
        long end = address + bytes;
        for (Shadow s : all) {
            if (s.valid && s.address < end && address < s.address + s.bytes) {
                s.valid = false;
            }
        }
    }

    /** Number of rounding launches queued so far (tests, diagnostics). */
    long conversions() {
        return conversions;
    }

    private Shadow lookup(Tensor t, boolean create) {
        Key key = new Key(CudaBackend.ptr(t), t.numel());
        Shadow s = byTensor.get(key);
        if (s != null && s.owner != t.storage()) {
            // the address was freed and handed to another allocation: the old shadow describes nothing now
            all.remove(s);
            byTensor.remove(key);
            backend.arena().release((DeviceStorage) s.copy.storage());
            s = null;
        }
        if (s == null && create) {
            s = new Shadow(t.storage(), key.address(), t.byteSize(), backend.arena().allocate(DType.BF16, t.numel()));
            byTensor.put(key, s);
            all.add(s);
        }
        return s;
    }
}
