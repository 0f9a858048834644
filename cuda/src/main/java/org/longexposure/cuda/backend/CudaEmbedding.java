package org.longexposure.cuda.backend;

import org.longexposure.backend.EmbeddingOps;
import org.longexposure.backend.OpShapes;
import org.longexposure.cuda.driver.CudaStream;
import org.longexposure.cuda.driver.KernelArgs;
import org.longexposure.cuda.kernels.KernelLibrary;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Embedding row gathers on the GPU, as {@code torch.nn.Embedding} (kernels in {@code embedding.cu}; CPU twin
 * {@link org.longexposure.backend.cpu.CpuEmbedding}): table (V, C) BF16 (frozen tables are uploaded as BF16),
 * ids (N) or (B, T) I32, out (N, C) or (B, T, C) BF16. The forward copies rows exactly, or adds them in fp32 and
 * rounds once when accumulating; the backward adds dOut (BF16) rows into an F32 dTable (V, C) in row order per
 * column — deterministic, the same f32 bits as the CPU, but only C-way parallel (trainable tables are rare).
 *
 * <p>The ids live on the device, so they are not range-checked here: the caller (the model) checks them on the
 * host before uploading. An out-of-range id reads or writes outside the table.
 */
public final class CudaEmbedding implements EmbeddingOps {
    private static final int FORWARD_THREADS = 128;
    private static final int BACKWARD_THREADS = 128;

    private final CudaStream stream;
    private final KernelLibrary kernels;
    private final Bf16Shadows shadows;

    public CudaEmbedding(CudaBackend backend) {
        this.shadows = backend.shadows();
        this.stream = backend.stream();
        this.kernels = backend.kernels();
    }

    @Override
    public void embeddingForward(Tensor out, Tensor ids, Tensor table, boolean accumulate) {
        String op = "embeddingForward";
        OpChecks.require(op, "out", out, DType.BF16);
        OpChecks.require(op, "ids", ids, DType.I32);
        OpChecks.require(op, "table", table, DType.BF16);
        int c = checkTable(op, "table", table);
        int n = OpShapes.toInt(op, "number of ids", ids.numel());
        OpShapes.embeddingRows(op, "out", out, ids, n, c);
        if (n == 0 || c == 0) {
            return;
        }
        stream.launch(kernels.function("embedding", "embedding_forward_bf16"), n, 1, 1, FORWARD_THREADS, 1, 1, 0,
                KernelArgs.of(out, ids, table, n, c, accumulate ? 1 : 0));
    }

    @Override
    public void embeddingBackward(Tensor dTable, Tensor dOut, Tensor ids) {
        String op = "embeddingBackward";
        OpChecks.require(op, "dTable", dTable, DType.F32);
        OpChecks.require(op, "dOut", dOut, DType.BF16);
        OpChecks.require(op, "ids", ids, DType.I32);
        int c = checkTable(op, "dTable", dTable);
        int n = OpShapes.toInt(op, "number of ids", ids.numel());
        OpShapes.embeddingRows(op, "dOut", dOut, ids, n, c);
        shadows.wrote(dTable);
        if (n == 0 || c == 0) {
            return;
        }
        stream.launch(kernels.function("embedding", "embedding_backward_f32"),
                (c + BACKWARD_THREADS - 1) / BACKWARD_THREADS, 1, 1, BACKWARD_THREADS, 1, 1, 0,
                KernelArgs.of(dTable, dOut, ids, n, c));
    }

    /** Fails unless the table is (V, C); returns C. */
    private static int checkTable(String op, String name, Tensor table) {
        OpShapes.embeddingTable(op, name, table);
        return OpShapes.toInt(op, "C", table.shape().dim(1));
    }
}
