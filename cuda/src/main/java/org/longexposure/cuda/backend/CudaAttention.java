package org.longexposure.cuda.backend;

import static org.longexposure.cuda.backend.CudaBackend.ptr;

import java.util.HashMap;
import java.util.Map;
import org.longexposure.backend.AttentionOps;
import org.longexposure.backend.BlockLayout;
import org.longexposure.cuda.DeviceStorage;
import org.longexposure.cuda.driver.CudaFunction;
import org.longexposure.cuda.driver.KernelArgs;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Causal multi-head attention with a key padding mask on the GPU, FlashAttention-2 style ({@code attention.cu}), as
 * {@link AttentionOps} defines it (the CPU twin is {@code FlashAttentionKernel}; torch reference
 * {@code scaled_dot_product_attention(is_causal=True)} plus the padding mask): the (T, T) probabilities are never
 * stored, the forward saves the row log-sum-exp and the backward recomputes P from it.
 *
 * <p>Shapes and dtypes on this backend: q, k, v, out, dQ, dK, dV, dOut (B, T, C) BF16 with C = NH·HS and head h in
 * columns [h·HS, (h+1)·HS); lse (B, NH, T) F32 (saved for backward); keyMask (B, T) I32. HS ∈ {32, 64, 80, 96, 128}
 * (one kernel instance each); scale must be positive. Products run on the tensor cores in bf16 with fp32
 * accumulation and fp32 softmax statistics; P and dS are rounded to bf16 for their products.
 *
 * <p>Every kernel walks a list of 64×64 tiles: a null list is dense causal attention, a {@link BlockLayout} with
 * block size 64 restricts it to the listed tiles ({@link #blockSparseAttentionForward}), with the same kernels,
 * so a full layout gives the dense bits. Grids are (NH, B, blocks): the block index varies slowest, so the longest
 * CTAs start first. Backward: {@code attention_backward_prep} computes {@code D_i = dOut_i·out_i} and the
 * log2-scaled lse into a scratch of 2·B·NH·Tp floats (Tp = T rounded up to 64); then one launch of
 * {@code attention_backward} holds both gradient passes, interleaved longest first: the dK/dV CTAs (one per key
 * block, over the query blocks whose CSR row lists it, found in the CSR itself) and the dQ CTAs (one per query
 * block, over its key list); deterministic, no float atomics, and the short CTAs of one pass fill the SMs around the
 * long ones of the other (the sink column of a sparse layout).
 *
 * <p>Memory: the scratch is one device buffer owned by this object, grown (never shrunk) to the largest call and
 * reused; the kernels' functions are looked up once. Nothing else is kept between calls. All work is queued on
 * the backend's stream; nothing synchronises.
 */
final class CudaAttention implements AttentionOps {
    /** BQ = BK of the kernels, and the only BlockLayout block size they accept. */
    static final int TILE = 64;
    /** The most 64-token blocks a call may have: the backward grid's z is 2·nB ≤ 65535. */
    static final int MAX_BLOCKS = 32767;
    private static final int THREADS = 128;
    private static final int PREP_THREADS = 256;

    private final CudaBackend backend;
    private final Map<String, CudaFunction> functions = new HashMap<>();
    private DeviceStorage scratch;

    CudaAttention(CudaBackend backend) {
        this.backend = backend;
    }

    @Override
    public void attentionForward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, Tensor keyMask, int numHeads,
                                 float scale) {
        Dims d = Dims.of("attentionForward", q, numHeads, scale);
        d.checkForward("attentionForward", out, lse, k, v, keyMask);
        forward(d, out, lse, q, k, v, keyMask, 0L, 0L);
    }

    @Override
    public void attentionBackward(Tensor dQ, Tensor dK, Tensor dV, Tensor dOut, Tensor out, Tensor lse, Tensor q,
                                  Tensor k, Tensor v, Tensor keyMask, int numHeads, float scale) {
        Dims d = Dims.of("attentionBackward", q, numHeads, scale);
        d.checkBackward("attentionBackward", dQ, dK, dV, dOut, out, lse, k, v, keyMask);
        backward(d, dQ, dK, dV, dOut, out, lse, q, k, v, keyMask, null);
    }

    /**
     * {@link org.longexposure.backend.SparseOps#blockSparseAttentionForward}: the tiles of {@code layout} only
     * (block size 64, rowPtr/colIdx I32 device tensors, trusted to be a valid causal layout: ascending key blocks,
     * each ≤ its query block).
     */
    void blockSparseAttentionForward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, Tensor keyMask,
                                     int numHeads, float scale, BlockLayout layout) {
        String op = "blockSparseAttentionForward";
        Dims d = Dims.of(op, q, numHeads, scale);
        d.checkForward(op, out, lse, k, v, keyMask);
        d.checkLayout(op, layout);
        forward(d, out, lse, q, k, v, keyMask, ptr(layout.rowPtr()), ptr(layout.colIdx()));
    }

    /** {@link org.longexposure.backend.SparseOps#blockSparseAttentionBackward}; the layout as in the forward. */
    void blockSparseAttentionBackward(Tensor dQ, Tensor dK, Tensor dV, Tensor dOut, Tensor out, Tensor lse, Tensor q,
                                      Tensor k, Tensor v, Tensor keyMask, int numHeads, float scale,
                                      BlockLayout layout) {
        String op = "blockSparseAttentionBackward";
        Dims d = Dims.of(op, q, numHeads, scale);
        d.checkBackward(op, dQ, dK, dV, dOut, out, lse, k, v, keyMask);
        d.checkLayout(op, layout);
        backward(d, dQ, dK, dV, dOut, out, lse, q, k, v, keyMask, layout);
    }

    private void forward(Dims d, Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, Tensor keyMask, long rowPtr,
                         long colIdx) {
        backend.shadows().wrote(lse);
        if (d.empty()) {
            return;
        }
        CudaFunction f = function("attention_forward_bf16_hs" + d.HS, forwardSmem(d.HS));
        backend.stream().launch(f, d.NH, d.B, d.blocks(), THREADS, 1, 1, forwardSmem(d.HS),
                KernelArgs.of(q, k, v, out, lse, keyMask, rowPtr, colIdx, d.T, d.NH, d.scale));
    }

    private void backward(Dims d, Tensor dQ, Tensor dK, Tensor dV, Tensor dOut, Tensor out, Tensor lse, Tensor q,
                          Tensor k, Tensor v, Tensor keyMask, BlockLayout layout) {
        if (d.empty()) {
            return;
        }
        int nB = d.blocks();
        long statBytes = 4L * d.B * d.NH * nB * TILE;  // one (B, NH, Tp) f32 array
        reserveScratch(2 * statBytes);
        long dPad = scratch.address();
        long lse2Pad = dPad + statBytes;

        long total = (long) d.B * nB * TILE * d.NH;
        int prepBlocks = (int) Math.min((total + PREP_THREADS - 1) / PREP_THREADS,
                32L * backend.context().multiprocessorCount());
        backend.stream().launch(function("attention_backward_prep_bf16_hs" + d.HS, 0), prepBlocks, 1, 1,
                PREP_THREADS, 1, 1, 0, KernelArgs.of(dOut, out, lse, dPad, lse2Pad, d.B, d.T, d.NH));

        long rowPtr = layout == null ? 0L : ptr(layout.rowPtr());
        long colIdx = layout == null ? 0L : ptr(layout.colIdx());
        int smem = backwardSmem(d.HS);
        backend.stream().launch(function("attention_backward_bf16_hs" + d.HS, smem), d.NH, d.B, 2 * nB, THREADS,
                1, 1, smem, KernelArgs.of(q, k, v, dOut, keyMask, lse2Pad, dPad, rowPtr, colIdx, dQ, dK, dV, d.T,
                        d.NH, d.scale));
    }

    /** Q tile, then double-buffered K and V tiles, rows padded to HS + 8 bf16. */
    static int forwardSmem(int hs) {
        return (TILE + 4 * TILE) * (hs + 8) * 2;
    }

    /**
     * The larger of the two passes' needs: dK/dV holds K, V tiles, double-buffered Q and dOut tiles and
     * double-buffered 64-float lse2 and D rows; dQ holds Q and dOut tiles and double-buffered K and V tiles.
     */
    static int backwardSmem(int hs) {
        return 6 * TILE * (hs + 8) * 2 + 4 * TILE * 4;
    }

    private CudaFunction function(String symbol, int smem) {
        return functions.computeIfAbsent(symbol, s -> {
            CudaFunction f = backend.kernels().function("attention", s);
            if (smem > 48 * 1024) {
                f.setMaxDynamicSharedBytes(smem);
            }
            return f;
        });
    }

    /**
     * Makes the scratch hold at least {@code bytes} before any kernel of the call is queued. Growing releases the
     * old buffer through the arena, which first waits for the stream, so queued kernels never lose it.
     */
    private void reserveScratch(long bytes) {
        if (scratch == null || scratch.byteSize() < bytes) {
            if (scratch != null) {
                backend.arena().release(scratch);
                scratch = null;
            }
            scratch = backend.arena().allocateBytes(Math.max(bytes, 1L << 20));
        }
    }

    private static long align(long bytes) {
        return (bytes + 255) & ~255L;
    }

    /** The sizes of one call, from q; every other operand is checked against them. */
    record Dims(int B, int T, int C, int NH, int HS, float scale) {
        static Dims of(String op, Tensor q, int numHeads, float scale) {
            if (q.shape().rank() != 3) {
                throw new IllegalArgumentException(op + " q: expected shape (B, T, C), got " + q.shape());
            }
            int c = q.shape().idim(2);
            if (numHeads < 1 || c % numHeads != 0) {
                throw new IllegalArgumentException(op + " numHeads: expected a positive divisor of C = " + c
                        + ", got " + numHeads);
            }
            int hs = c / numHeads;
            if (hs != 32 && hs != 64 && hs != 80 && hs != 96 && hs != 128) {
                throw new IllegalArgumentException(op + ": head size HS = C / numHeads = " + c + " / " + numHeads
                        + " = " + hs + " is not supported on cuda (expected 32, 64, 80, 96 or 128)");
            }
            if (!(scale > 0f) || Float.isInfinite(scale)) {
                throw new IllegalArgumentException(op + " scale: expected a positive finite value, got " + scale);
            }
            int b = q.shape().idim(0);
            if (numHeads > 65535 || b > 65535) {
                throw new IllegalArgumentException(op + ": B = " + b + " and numHeads = " + numHeads
                        + " must each be at most 65535 (grid dimensions)");
            }
            int t = q.shape().idim(1);
            if ((t + TILE - 1) / TILE > MAX_BLOCKS) {
                throw new IllegalArgumentException(op + ": T = " + t + " gives more than " + MAX_BLOCKS
                        + " blocks of " + TILE + " tokens (the backward grid's z dimension, two CTAs per block, is"
                        + " at most 65535)");
            }
            return new Dims(b, t, c, numHeads, hs, scale);
        }

        boolean empty() {
            return B == 0 || T == 0;
        }

        /** nQB = nKB = ceil(T / 64). */
        int blocks() {
            return (T + TILE - 1) / TILE;
        }

        void checkForward(String op, Tensor out, Tensor lse, Tensor k, Tensor v, Tensor keyMask) {
            requireBTC(op, "out", out);
            requireBTC(op, "k", k);
            requireBTC(op, "v", v);
            lse.requireShape(op + " lse", B, NH, T).requireDType(op + " lse", DType.F32);
            keyMask.requireShape(op + " keyMask", B, T).requireDType(op + " keyMask", DType.I32);
        }

        void checkBackward(String op, Tensor dQ, Tensor dK, Tensor dV, Tensor dOut, Tensor out, Tensor lse, Tensor k,
                           Tensor v, Tensor keyMask) {
            checkForward(op, out, lse, k, v, keyMask);
            requireBTC(op, "dQ", dQ);
            requireBTC(op, "dK", dK);
            requireBTC(op, "dV", dV);
            requireBTC(op, "dOut", dOut);
        }

        /** BF16 (B, T, C), on the device at a 16-byte aligned address (the kernels move 16-byte vectors). */
        void requireBTC(String op, String name, Tensor t) {
            t.requireShape(op + " " + name, B, T, C).requireDType(op + " " + name, DType.BF16);
            if (!t.isHost() && ptr(t) % 16 != 0) {
                throw new IllegalArgumentException(op + " " + name + ": device address " + ptr(t)
                        + " is not 16-byte aligned");
            }
        }

        void checkLayout(String op, BlockLayout layout) {
            if (layout.blockSize() != TILE || layout.numHeads() != NH || layout.seqLen() != T) {
                throw new IllegalArgumentException(op + " layout: expected blockSize " + TILE + ", numHeads " + NH
                        + ", seqLen " + T + ", got blockSize " + layout.blockSize() + ", numHeads "
                        + layout.numHeads() + ", seqLen " + layout.seqLen());
            }
        }
    }
}
