package org.longexposure.backend.cpu;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicInteger;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;
import org.longexposure.tensor.DType;

/**
 * General matrix product on the CPU: {@code C = alpha·A·B (+ C when accumulate)}, the workhorse under every linear
 * layer's forward and backward. A is logical (M, K), B logical (K, N), both strided {@link MatrixRef} views of F32,
 * F16 or BF16 data (a transpose is a swap of strides, so {@code x·Wᵀ} needs no copy); C is row-major F32 (M, N)
 * at element offset {@code cOffset} with leading dimension {@code ldc}. Nothing is saved for backward: the caller
 * calls again with transposed views (dX = dY·W, dW = dYᵀ·X).
 *
 * <p>Algorithm: the GotoBLAS/BLIS layering (Goto and van de Geijn, "Anatomy of high-performance matrix
 * multiplication", 2008; Van Zee and van de Geijn, "BLIS", 2015). Loops, outermost first:
 * <ol>
 *   <li>jc over N in panels of NC columns (NC = 8192, fewer when K is large: a packed panel holds at most 4 M
 *       floats). All K rows of the panel are packed at once, converted to F32, as KC-row blocks of NR-wide
 *       strips ({@code bp[pc block][strip][p][0..NR)}), the strips split over the threads; the panel is then
 *       shared read-only;</li>
 *   <li>ic over M in blocks of at most MC = 12·MR rows, one task per block (per block and range of strips when M
 *       is too small to give every thread a block), taken dynamically by the workers, so a worker slowed by
 *       other load on its core takes fewer;</li>
 *   <li>pc over K in blocks of KC = 512: the task packs alpha times its (MC, KC) block of A into MR-high strips
 *       ({@code ap[strip][p][0..MR)}) in the worker's own buffer, about 0.3 MiB, which stays in that core's
 *       L2;</li>
 *   <li>jr over the strips of the B block (one (KC, NR) strip, 64 KiB, is reused by every strip of A, from L1
 *       and L2), ir over the strips of A: the (MR, NR) micro-kernel.</li>
 * </ol>
 * The micro-kernel keeps 2·MR accumulator vectors in registers (MR = 12 with 16-lane vectors: 24 of the 32
 * AVX-512 registers; MR = 6 with narrower vectors, for machines with 16 vector registers) and performs one
 * rank-1 update per k step: two vector loads of B, MR broadcasts of A, 2·MR fused multiply-adds. Packing pads
 * strips with zeros, so the kernel always computes a full tile; tiles that overhang N are written back element
 * by element, full-width tiles with vector loads and stores. The kernel writes its tile to a small array
 * instead of to C: that keeps the kernel small enough for the JIT to hold every accumulator in a register, and
 * costs 2·MR vector stores per KC steps.
 *
 * <p>Two shapes of a LoRA step skip the blocking: N ≤ L (x·Aᵀ, dY·B with rank R), where an NR-wide tile would be
 * mostly padding, takes a dot-product path; M ≤ L with a row-major B (dHᵀ·x), where packing B would cost more
 * than the product, streams B once through a few rows of C kept in L1. Products under about 8 MFLOP per thread
 * use fewer threads, since waking one costs more than it saves.
 *
 * <p>Numerics: F32 products accumulated in F32 with FMA, in k order within a KC block (the short path: in k
 * order; the narrow path: in vector lanes, then reduced); the KC blocks are added to C in order. The result
 * does not depend on the thread count or on MC and NC, only on KC and the path. F16 and BF16 operands are
 * widened exactly.
 */
public final class CpuGemm {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    /** Floats per vector: 16 with AVX-512, 8 with AVX2. */
    private static final int L = S.length();
    /** Micro-tile width: two vectors. */
    private static final int NR = 2 * L;
    /** Micro-tile height: 2·MR + 3 vector registers are live in the kernel (27 of 32, or 15 of 16). */
    private static final int MR = L >= 16 ? 12 : 6;
    static final int DEFAULT_MC = 12 * MR;
    static final int DEFAULT_KC = 512;
    static final int DEFAULT_NC = 8192;
    /** Smallest share of a product worth a thread of its own (about 0.1 ms of kernel time). */
    static final double MIN_FLOPS_PER_WORKER = 8e6;
    /**
     * Transpose while packing with vector gathers: about twice as fast as scalar stores on AVX-512, and left to
     * scalar code where vectors are 128 bits (NEON has no gather; the Vector API would emulate it slowly).
     */
    private static final boolean GATHER = L >= 8;
    /** Rows of B converted together when packing a row-major B. */
    private static final int PB = 8;
    /** Floats of C accumulated at once by the short-M path (32 KiB, to stay in L1). */
    private static final int SHORT_ACC_FLOATS = 8192;
    /** At most this many floats of packed B per panel (16 MiB): bounds NC when K is large. */
    private static final int PANEL_FLOATS = 1 << 22;
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();

    private final CpuThreads threads;
    private final int mcMax;
    private final int kcMax;
    private final int ncMax;
    private final double minFlopsPerWorker;

    public CpuGemm(CpuThreads threads) {
        this(threads, DEFAULT_MC, DEFAULT_KC, DEFAULT_NC, MIN_FLOPS_PER_WORKER);
    }

    /**
     * With explicit cache-block sizes (rounded to the micro-tile) and per-thread minimum of work, so that tests
     * can cross block edges and use every thread on small products.
     */
    CpuGemm(CpuThreads threads, int mc, int kc, int nc, double minFlopsPerWorker) {
        if (mc < 1 || kc < 1 || nc < 1) {
            throw new IllegalArgumentException("gemm block sizes must be >= 1, got mc=" + mc + " kc=" + kc
                    + " nc=" + nc);
        }
        this.threads = threads;
        this.mcMax = roundUp(mc, MR);
        this.kcMax = kc;
        this.ncMax = roundUp(nc, NR);
        this.minFlopsPerWorker = minFlopsPerWorker;
    }

    /**
     * {@code C = alpha·A·B}, or {@code C += alpha·A·B} when {@code accumulate}. C must not overlap A or B. With
     * more than one thread, the segments must be readable (C writable) from the pool's threads (not confined).
     *
     * @param m          rows of A and C
     * @param n          columns of B and C
     * @param k          columns of A, rows of B
     * @param alpha      scale of the product
     * @param a          (M, K) view, F32, F16 or BF16
     * @param b          (K, N) view, F32, F16 or BF16
     * @param c          F32 output
     * @param cOffset    element index of C(0, 0)
     * @param ldc        elements between rows of C, at least n
     * @param accumulate add to C instead of overwriting it
     */
    public void gemm(int m, int n, int k, float alpha, MatrixRef a, MatrixRef b, MemorySegment c, long cOffset,
                     long ldc, boolean accumulate) {
        check(m, n, k, a, b, c, cOffset, ldc);
        if (m == 0 || n == 0) {
            return;
        }
        if (k == 0 || alpha == 0f) {
            if (!accumulate) {
                for (int i = 0; i < m; i++) {
                    c.asSlice((cOffset + i * ldc) * Float.BYTES, (long) n * Float.BYTES).fill((byte) 0);
                }
            }
            return;
        }
        int workers = workersFor(2.0 * m * n * k);
        if (n <= L) {
            gemmNarrow(m, n, k, alpha, a, b, c, cOffset, ldc, accumulate, workers);
            return;
        }
        if (m <= L && b.colStride() == 1) {
            gemmShort(m, n, k, alpha, a, b, c, cOffset, ldc, accumulate, workers);
            return;
        }
        // M blocks: a multiple of the worker count when M allows, each a whole number of MR strips, their strip
        // counts differing by at most one (block b covers strips [mStrips·b/mBlocks, mStrips·(b+1)/mBlocks)).
        int mStrips = ceilDiv(m, MR);
        int mBlocks = Math.min(roundUp(ceilDiv(m, mcMax), workers), mStrips);
        int mc = ceilDiv(mStrips, mBlocks) * MR;
        int kcMaxHere = Math.min(kcMax, k);
        int ncMaxHere = Math.min(Math.min(ncMax, roundUp(n, NR)), Math.max(NR, PANEL_FLOATS / k / NR * NR));
        float[] bp = new float[Math.multiplyExact(k, ncMaxHere)];
        Scratch[] scratch = new Scratch[workers];
        for (int w = 0; w < workers; w++) {
            scratch[w] = new Scratch(mc * kcMaxHere, Math.max(Math.max(NR, MR) * (k + L), PB * (ncMaxHere + L)),
                    Math.max(k, Math.max(ncMaxHere, MR)));
        }
        for (int jc = 0; jc < n; jc += ncMaxHere) {
            Panel panel = new Panel(jc, Math.min(ncMaxHere, n - jc), k, kcMaxHere);
            int strips = ceilDiv(panel.nc, NR);
            // Pack all of B[:, jc .. jc+nc): KC blocks one after the other, each as NR-wide strips.
            int packers = Math.min(workers, strips);
            threads.parallelChunks(packers, (w, unused) -> {
                int lo = (int) ((long) strips * w / packers);
                int hi = (int) ((long) strips * (w + 1) / packers);
                packB(b, n, panel, lo, hi, bp, scratch[w]);
            });
            // Too few M blocks for the workers: split the strips too (each part packs its own copy of A).
            int nParts = mBlocks >= workers ? 1 : Math.min(strips, ceilDiv(workers, mBlocks));
            int tasks = mBlocks * nParts;
            AtomicInteger next = new AtomicInteger();
            threads.parallelChunks(Math.min(workers, tasks), (w, unused) -> {
                Scratch own = scratch[w];
                for (int t = next.getAndIncrement(); t < tasks; t = next.getAndIncrement()) {
                    int block = t / nParts;
                    int part = t % nParts;
                    int ic = (int) ((long) mStrips * block / mBlocks) * MR;
                    int mcHere = Math.min((int) ((long) mStrips * (block + 1) / mBlocks) * MR, m) - ic;
                    int s0 = (int) ((long) strips * part / nParts);
                    int s1 = (int) ((long) strips * (part + 1) / nParts);
                    for (int pc = 0; pc < k; pc += panel.kcMax) {
                        int kc = Math.min(panel.kcMax, k - pc);
                        packA(a, ic, mcHere, pc, kc, alpha, own);
                        macroKernel(own, mcHere, kc, bp, panel, pc, s0, s1, c, cOffset + ic * ldc, ldc,
                                accumulate || pc > 0);
                    }
                }
            });
        }
    }

    /** Threads worth waking for a product of this many flops: each gets at least minFlopsPerWorker. */
    private int workersFor(double flops) {
        return (int) Math.max(1, Math.min(threads.size(), flops / Math.max(minFlopsPerWorker, 1)));
    }

    /**
     * The packed B panel: columns [jc, jc + nc) of B, all K rows, in KC blocks; block pc holds
     * ceil(nc / NR) strips of (kc, NR) floats, so strip s of block pc starts at {@code pc·ncPadded + s·kc·NR}.
     */
    private record Panel(int jc, int nc, int k, int kcMax, int ncPadded) {
        Panel(int jc, int nc, int k, int kcMax) {
            this(jc, nc, k, kcMax, roundUp(nc, NR));
        }

        int stripOffset(int pc, int s) {
            return pc * ncPadded + s * Math.min(kcMax, k - pc) * NR;
        }
    }

    /** One worker's buffers: its packed A block, the kernel's output tile, and a row of converted operand. */
    private static final class Scratch {
        final float[] ap;
        final float[] tile = new float[MR * NR];
        final float[] run;
        final short[] raw;

        Scratch(int apSize, int runSize, int rawSize) {
            ap = new float[apSize];
            run = new float[runSize];
            raw = new short[rawSize];
        }
    }

    // --- narrow products: N ≤ L (a LoRA rank), where an NR-wide tile would be mostly padding

    /**
     * The same product for N ≤ L: every element of C is a dot product along K of a row of A and a column of B.
     * B, (K, N) and small, is transposed once into {@code bt} (N, K); each row of A is converted into a
     * contiguous F32 row; the dot products run along K with vector FMAs (two partial sums per column, four
     * columns at a time) and one lane reduction each. Rows of C are split over the threads.
     */
    private void gemmNarrow(int m, int n, int k, float alpha, MatrixRef a, MatrixRef b, MemorySegment c,
                            long cOffset, long ldc, boolean accumulate, int workers) {
        float[] bt = new float[n * k];
        short[] raw = new short[k];
        for (int j = 0; j < n; j++) {
            readLine(b, b.offset() + j * b.colStride(), b.rowStride(), k, bt, j * k, raw);
        }
        int chunks = Math.min(workers, m);
        threads.parallelChunks(chunks, (w, unused) -> {
            int lo = (int) ((long) m * w / chunks);
            int hi = (int) ((long) m * (w + 1) / chunks);
            float[] row = new float[k];
            short[] rowRaw = new short[k];
            float[] dots = new float[n];
            for (int i = lo; i < hi; i++) {
                readLine(a, a.offset() + i * a.rowStride(), a.colStride(), k, row, 0, rowRaw);
                int j = 0;
                for (; j + 4 <= n; j += 4) {
                    dot4(row, bt, j * k, k, dots, j);
                }
                for (; j < n; j++) {
                    dots[j] = dot1(row, bt, j * k, k);
                }
                long o = cOffset + i * ldc;
                for (j = 0; j < n; j++) {
                    float x = alpha * dots[j];
                    if (accumulate) {
                        x += c.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, o + j);
                    }
                    c.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, o + j, x);
                }
            }
        });
    }

    // --- short products: M ≤ L rows (a LoRA rank) and a row-major B, where packing B would cost more than using it

    /**
     * The same product for M ≤ L and B with contiguous rows (the LoRA gradient dHᵀ·x): each row of C is
     * accumulated as alpha·Σ_p A[i, p]·B[p, :], streaming B once, row by row, converted into {@code brow}, while
     * the M rows of a column chunk of C stay in L1 in {@code acc}. Column chunks are split over the threads.
     */
    private void gemmShort(int m, int n, int k, float alpha, MatrixRef a, MatrixRef b, MemorySegment c,
                           long cOffset, long ldc, boolean accumulate, int workers) {
        float[] at = new float[m * k];
        short[] raw = new short[k];
        for (int i = 0; i < m; i++) {
            readLine(a, a.offset() + i * a.rowStride(), a.colStride(), k, at, i * k, raw);
        }
        int width = Math.max(L, SHORT_ACC_FLOATS / m / L * L);
        int chunks = ceilDiv(n, width);
        int parts = Math.min(workers, chunks);
        threads.parallelChunks(parts, (w, unused) -> {
            float[] acc = new float[m * width];
            float[] brow = new float[width];
            short[] browRaw = new short[width];
            for (int chunk = chunks * w / parts; chunk < chunks * (w + 1) / parts; chunk++) {
                int j0 = chunk * width;
                int cols = Math.min(width, n - j0);
                int cv = cols - cols % L;
                Arrays.fill(acc, 0f);
                for (int p = 0; p < k; p++) {
                    readRun(b, b.offset() + p * b.rowStride() + j0, cols, brow, 0, browRaw);
                    for (int i = 0; i < m; i++) {
                        float x = at[i * k + p];
                        FloatVector xv = FloatVector.broadcast(S, x);
                        int o = i * width;
                        int j = 0;
                        for (; j < cv; j += L) {
                            xv.fma(FloatVector.fromArray(S, brow, j), FloatVector.fromArray(S, acc, o + j))
                                    .intoArray(acc, o + j);
                        }
                        for (; j < cols; j++) {
                            acc[o + j] += x * brow[j];
                        }
                    }
                }
                for (int i = 0; i < m; i++) {
                    long row = cOffset + i * ldc + j0;
                    for (int j = 0; j < cols; j++) {
                        float x = alpha * acc[i * width + j];
                        if (accumulate) {
                            x += c.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, row + j);
                        }
                        c.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, row + j, x);
                    }
                }
            }
        });
    }

    /** dots[j0 + q] = row · bt[o + q·k .. + k) for q in [0, 4). */
    private static void dot4(float[] row, float[] bt, int o, int k, float[] dots, int j0) {
        int o1 = o + k;
        int o2 = o1 + k;
        int o3 = o2 + k;
        FloatVector s0 = FloatVector.zero(S);
        FloatVector s1 = FloatVector.zero(S);
        FloatVector s2 = FloatVector.zero(S);
        FloatVector s3 = FloatVector.zero(S);
        FloatVector t0 = FloatVector.zero(S);
        FloatVector t1 = FloatVector.zero(S);
        FloatVector t2 = FloatVector.zero(S);
        FloatVector t3 = FloatVector.zero(S);
        int kv = k - k % NR;   // a plain counted loop: the JIT then drops the per-load bounds checks
        int p = 0;
        for (; p < kv; p += NR) {
            FloatVector x = FloatVector.fromArray(S, row, p);
            FloatVector y = FloatVector.fromArray(S, row, p + L);
            s0 = x.fma(FloatVector.fromArray(S, bt, o + p), s0);
            s1 = x.fma(FloatVector.fromArray(S, bt, o1 + p), s1);
            s2 = x.fma(FloatVector.fromArray(S, bt, o2 + p), s2);
            s3 = x.fma(FloatVector.fromArray(S, bt, o3 + p), s3);
            t0 = y.fma(FloatVector.fromArray(S, bt, o + p + L), t0);
            t1 = y.fma(FloatVector.fromArray(S, bt, o1 + p + L), t1);
            t2 = y.fma(FloatVector.fromArray(S, bt, o2 + p + L), t2);
            t3 = y.fma(FloatVector.fromArray(S, bt, o3 + p + L), t3);
        }
        float d0 = sumLanes(s0.add(t0));
        float d1 = sumLanes(s1.add(t1));
        float d2 = sumLanes(s2.add(t2));
        float d3 = sumLanes(s3.add(t3));
        for (; p < k; p++) {
            d0 += row[p] * bt[o + p];
            d1 += row[p] * bt[o1 + p];
            d2 += row[p] * bt[o2 + p];
            d3 += row[p] * bt[o3 + p];
        }
        dots[j0] = d0;
        dots[j0 + 1] = d1;
        dots[j0 + 2] = d2;
        dots[j0 + 3] = d3;
    }

    /**
     * The lanes of v added one by one in lane order: unlike {@code reduceLanes(ADD)}, whose association may
     * differ between interpreted and compiled code, this gives the same bits whenever it runs.
     */
    private static float sumLanes(FloatVector v) {
        float d = 0f;
        for (int i = 0; i < L; i++) {
            d += v.lane(i);
        }
        return d;
    }

    /** row · bt[o .. o + k). */
    private static float dot1(float[] row, float[] bt, int o, int k) {
        FloatVector s = FloatVector.zero(S);
        FloatVector t = FloatVector.zero(S);
        int kv = k - k % NR;
        int p = 0;
        for (; p < kv; p += NR) {
            s = FloatVector.fromArray(S, row, p).fma(FloatVector.fromArray(S, bt, o + p), s);
            t = FloatVector.fromArray(S, row, p + L).fma(FloatVector.fromArray(S, bt, o + p + L), t);
        }
        float d = sumLanes(s.add(t));
        for (; p < k; p++) {
            d += row[p] * bt[o + p];
        }
        return d;
    }

    // --- macro-kernel: strips [s0, s1) of the packed B panel times the packed A block, into C rows from cRow

    private static void macroKernel(Scratch own, int mcHere, int kc, float[] bp, Panel panel, int pc, int s0,
                                    int s1, MemorySegment c, long cRow, long ldc, boolean add) {
        float[] tile = own.tile;
        for (int s = s0; s < s1; s++) {
            int j = s * NR;
            int nrHere = Math.min(NR, panel.nc - j);
            int bo = panel.stripOffset(pc, s);
            for (int i = 0; i < mcHere; i += MR) {
                int mrHere = Math.min(MR, mcHere - i);
                if (MR == 12) {
                    kernel12(kc, own.ap, i * kc, bp, bo, tile);
                } else {
                    kernel6(kc, own.ap, i * kc, bp, bo, tile);
                }
                long c0 = cRow + i * ldc + panel.jc + j;
                if (nrHere == NR) {
                    storeFullWidth(tile, mrHere, c, c0, ldc, add);
                } else {
                    storeEdge(tile, mrHere, nrHere, c, c0, ldc, add);
                }
            }
        }
    }

    /** Rows [0, rows) of the tile, all NR columns, to C at element c0: vector loads and stores. */
    private static void storeFullWidth(float[] tile, int rows, MemorySegment c, long c0, long ldc, boolean add) {
        for (int r = 0; r < rows; r++) {
            long o = (c0 + r * ldc) * Float.BYTES;
            FloatVector x0 = FloatVector.fromArray(S, tile, r * NR);
            FloatVector x1 = FloatVector.fromArray(S, tile, r * NR + L);
            if (add) {
                x0 = x0.add(FloatVector.fromMemorySegment(S, c, o, ORDER));
                x1 = x1.add(FloatVector.fromMemorySegment(S, c, o + (long) L * Float.BYTES, ORDER));
            }
            x0.intoMemorySegment(c, o, ORDER);
            x1.intoMemorySegment(c, o + (long) L * Float.BYTES, ORDER);
        }
    }

    /** The (rows, cols) corner of the tile to C at element c0, element by element (tiles overhanging N). */
    private static void storeEdge(float[] tile, int rows, int cols, MemorySegment c, long c0, long ldc,
                                  boolean add) {
        for (int r = 0; r < rows; r++) {
            long o = c0 + r * ldc;
            for (int q = 0; q < cols; q++) {
                float x = tile[r * NR + q];
                if (add) {
                    x += c.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, o + q);
                }
                c.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, o + q, x);
            }
        }
    }

    // --- packing: strided F32/F16/BF16 views to contiguous F32 strips, zero-padded to full strips

    /**
     * Packs alpha·A[i0 .. i0+rows, p0 .. p0+kc) into MR-high strips: {@code ap[strip·MR·kc + p·MR + r]}, zero in
     * rows beyond the block. Reads along whichever of A's dimensions is contiguous. For a row-major A (the usual
     * activation) with {@link #GATHER}, the strip's MR rows are converted side by side into {@code run} (lines
     * padded by L floats, as in {@link #packB}), then each step p gathers its MR values in vectors of L lanes;
     * without, each converted row is stored with stride MR.
     */
    private static void packA(MatrixRef a, int i0, int rows, int p0, int kc, float alpha, Scratch own) {
        float[] ap = own.ap;
        float[] run = own.run;
        int line = kc + L;
        int[] lanes = new int[roundUp(MR, L)];
        for (int r = 0; r < MR; r++) {
            lanes[r] = r * line;
        }
        VectorMask<Float> last = S.indexInRange(0, MR - (lanes.length - L));
        for (int i = 0; i < rows; i += MR) {
            int mrHere = Math.min(MR, rows - i);
            int base = i * kc;
            if (GATHER && a.colStride() == 1) {
                for (int r = 0; r < MR; r++) {
                    if (r < mrHere) {
                        readRun(a, a.offset() + (i0 + i + r) * a.rowStride() + p0, kc, run, r * line, own.raw);
                    } else {
                        Arrays.fill(run, r * line, r * line + kc, 0f);
                    }
                }
                for (int p = 0; p < kc; p++) {
                    int o = base + p * MR;
                    int v = 0;
                    for (; v + L < lanes.length; v += L) {
                        FloatVector.fromArray(S, run, p, lanes, v).mul(alpha).intoArray(ap, o + v);
                    }
                    FloatVector.fromArray(S, run, p, lanes, v).mul(alpha).intoArray(ap, o + v, last);
                }
                continue;
            }
            if (a.colStride() == 1) {
                for (int r = 0; r < mrHere; r++) {
                    readRun(a, a.offset() + (i0 + i + r) * a.rowStride() + p0, kc, run, 0, own.raw);
                    for (int p = 0; p < kc; p++) {
                        ap[base + p * MR + r] = alpha * run[p];
                    }
                }
            } else if (a.rowStride() == 1) {
                for (int p = 0; p < kc; p++) {
                    int o = base + p * MR;
                    readRun(a, a.offset() + (p0 + p) * a.colStride() + i0 + i, mrHere, ap, o, own.raw);
                    for (int r = 0; r < mrHere; r++) {
                        ap[o + r] *= alpha;
                    }
                }
            } else {
                for (int r = 0; r < mrHere; r++) {
                    long e = a.offset() + (i0 + i + r) * a.rowStride() + p0 * a.colStride();
                    for (int p = 0; p < kc; p++) {
                        ap[base + p * MR + r] = alpha * read(a, e + p * a.colStride());
                    }
                }
            }
            for (int r = mrHere; r < MR; r++) {
                for (int p = 0; p < kc; p++) {
                    ap[base + p * MR + r] = 0f;
                }
            }
        }
    }

    /**
     * Packs strips [s0, s1) of the panel, all K rows: strip s of KC block pc holds B[pc + p, jc + s·NR + q] at
     * {@code bp[panel.stripOffset(pc, s) + p·NR + q]}, zero beyond column N. Reads along whichever of B's
     * dimensions is contiguous, converting with one bulk copy per line into {@code run}, then moves whole vectors:
     * <ul>
     *   <li>rows contiguous (dX = dY·W): PB rows at a time; each strip then receives PB·NR consecutive floats;</li>
     *   <li>columns contiguous (y = x·Wᵀ): the strip's NR columns side by side, then one gather of L columns per
     *       vector of a strip row (scalar stores without {@link #GATHER}).</li>
     * </ul>
     * Lines in {@code run} are padded by L floats so that the rows or columns read together do not all map to
     * the same L1 cache set (their natural strides are multiples of 2 KiB).
     */
    private static void packB(MatrixRef b, int n, Panel panel, int s0, int s1, float[] bp, Scratch own) {
        int k = panel.k;
        int j0 = panel.jc + s0 * NR;
        int width = Math.min(n, panel.jc + s1 * NR) - j0;
        float[] run = own.run;
        if (b.colStride() == 1 || b.rowStride() != 1) {
            int line = width + L;
            int[] rowBase = new int[PB];
            int[] rowStep = new int[PB];
            for (int p0 = 0; p0 < k; p0 += PB) {
                int pb = Math.min(PB, k - p0);
                for (int r = 0; r < pb; r++) {
                    int p = p0 + r;
                    int pc = p - p % panel.kcMax;
                    readLine(b, b.offset() + p * b.rowStride() + j0 * b.colStride(), b.colStride(), width, run,
                            r * line, own.raw);
                    rowBase[r] = panel.stripOffset(pc, 0) + (p - pc) * NR;
                    rowStep[r] = Math.min(panel.kcMax, k - pc) * NR;
                }
                for (int s = s0; s < s1; s++) {
                    int q0 = (s - s0) * NR;
                    int cols = Math.min(NR, width - q0);
                    for (int r = 0; r < pb; r++) {
                        int dst = rowBase[r] + s * rowStep[r];
                        int src = r * line + q0;
                        if (cols == NR) {
                            FloatVector.fromArray(S, run, src).intoArray(bp, dst);
                            FloatVector.fromArray(S, run, src + L).intoArray(bp, dst + L);
                        } else {
                            System.arraycopy(run, src, bp, dst, cols);
                            Arrays.fill(bp, dst + cols, dst + NR, 0f);
                        }
                    }
                }
            }
        } else {
            int line = k + L;
            int[] lanes = new int[L];
            for (int i = 0; i < L; i++) {
                lanes[i] = i * line;
            }
            for (int s = s0; s < s1; s++) {
                int cols = Math.min(NR, width - (s - s0) * NR);
                for (int q = 0; q < NR; q++) {
                    if (q < cols) {
                        readRun(b, b.offset() + (long) (panel.jc + s * NR + q) * b.colStride(), k, run, q * line,
                                own.raw);
                    } else {
                        Arrays.fill(run, q * line, q * line + k, 0f);
                    }
                }
                for (int pc = 0; pc < k; pc += panel.kcMax) {
                    int base = panel.stripOffset(pc, s);
                    int kc = Math.min(panel.kcMax, k - pc);
                    if (GATHER) {
                        for (int p = 0; p < kc; p++) {
                            FloatVector.fromArray(S, run, pc + p, lanes, 0).intoArray(bp, base + p * NR);
                            FloatVector.fromArray(S, run, pc + p + L * line, lanes, 0)
                                    .intoArray(bp, base + p * NR + L);
                        }
                    } else {
                        for (int q = 0; q < NR; q++) {
                            for (int p = 0; p < kc; p++) {
                                bp[base + p * NR + q] = run[q * line + pc + p];
                            }
                        }
                    }
                }
            }
        }
    }

    /** Copies len elements of m, from element index e in steps of stride, into dst[off ..) as F32. */
    private static void readLine(MatrixRef m, long e, long stride, int len, float[] dst, int off, short[] raw) {
        if (stride == 1) {
            readRun(m, e, len, dst, off, raw);
        } else {
            for (int t = 0; t < len; t++) {
                dst[off + t] = read(m, e + t * stride);
            }
        }
    }

    /** Copies len contiguous elements of m from element index e into dst[off ..) as F32. */
    private static void readRun(MatrixRef m, long e, int len, float[] dst, int off, short[] raw) {
        switch (m.dtype()) {
            case F32 -> MemorySegment.copy(m.segment(), ValueLayout.JAVA_FLOAT_UNALIGNED, e * Float.BYTES, dst, off,
                    len);
            case F16 -> {
                MemorySegment.copy(m.segment(), ValueLayout.JAVA_SHORT_UNALIGNED, e * Short.BYTES, raw, 0, len);
                for (int i = 0; i < len; i++) {
                    dst[off + i] = Float.float16ToFloat(raw[i]);
                }
            }
            case BF16 -> {
                MemorySegment.copy(m.segment(), ValueLayout.JAVA_SHORT_UNALIGNED, e * Short.BYTES, raw, 0, len);
                for (int i = 0; i < len; i++) {
                    dst[off + i] = Float.intBitsToFloat(raw[i] << 16);
                }
            }
            default -> throw new IllegalStateException("unchecked gemm dtype " + m.dtype());
        }
    }

    /** Element e of m as F32 (the path for views with no contiguous dimension). */
    private static float read(MatrixRef m, long e) {
        MemorySegment s = m.segment();
        return switch (m.dtype()) {
            case F32 -> s.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, e);
            case F16 -> Float.float16ToFloat(s.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, e));
            case BF16 -> Float.intBitsToFloat(s.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, e) << 16);
            default -> throw new IllegalStateException("unchecked gemm dtype " + m.dtype());
        };
    }

    // --- argument checks

    private static void check(int m, int n, int k, MatrixRef a, MatrixRef b, MemorySegment c, long cOffset,
                              long ldc) {
        if (m < 0 || n < 0 || k < 0) {
            throw new IllegalArgumentException("gemm sizes must be >= 0, got (M, N, K) = (" + m + ", " + n + ", "
                    + k + ")");
        }
        if (ldc < n) {
            throw new IllegalArgumentException("gemm ldc " + ldc + " is less than N " + n);
        }
        if (cOffset < 0) {
            throw new IllegalArgumentException("gemm cOffset must be >= 0, got " + cOffset);
        }
        if (m > 0 && n > 0) {
            long end = (cOffset + (m - 1) * ldc + n) * Float.BYTES;
            if (end > c.byteSize()) {
                throw new IllegalArgumentException("gemm C (" + m + ", " + n + ") with ldc " + ldc + " at offset "
                        + cOffset + " needs " + end + " bytes, segment has " + c.byteSize());
            }
        }
        checkOperand("A", a, m, k);
        checkOperand("B", b, k, n);
    }

    private static void checkOperand(String name, MatrixRef r, int rows, int cols) {
        DType d = r.dtype();
        if (d != DType.F32 && d != DType.F16 && d != DType.BF16) {
            throw new IllegalArgumentException("gemm operand " + name + " has dtype " + d
                    + "; supported: f32, f16, bf16");
        }
        if (rows == 0 || cols == 0) {
            return;
        }
        long lo = r.offset();
        long hi = r.offset();
        long dr = (rows - 1) * r.rowStride();
        long dc = (cols - 1) * r.colStride();
        lo += Math.min(dr, 0) + Math.min(dc, 0);
        hi += Math.max(dr, 0) + Math.max(dc, 0);
        long elements = r.segment().byteSize() / d.byteSize();
        if (lo < 0 || hi >= elements) {
            throw new IllegalArgumentException("gemm operand " + name + " (" + rows + ", " + cols + ") at offset "
                    + r.offset() + " with strides (" + r.rowStride() + ", " + r.colStride() + ") reaches elements ["
                    + lo + ", " + hi + "], segment holds " + elements);
        }
    }

    private static int ceilDiv(int x, int y) {
        return (x + y - 1) / y;
    }

    private static int roundUp(int x, int y) {
        return ceilDiv(x, y) * y;
    }

    // --- micro-kernels

    /**
     * The (12, NR) micro-kernel: 24 accumulator vectors live in registers while the kc rank-1 updates
     * stream through one packed A strip (12 floats per step, broadcast) and one packed B strip (2 vectors per
     * step); the finished tile goes to {@code tile} row-major with row length NR.
     */
    private static void kernel12(int kc, float[] ap, int ao, float[] bp, int bo, float[] tile) {
        FloatVector c0a = FloatVector.zero(S), c0b = FloatVector.zero(S);
        FloatVector c1a = FloatVector.zero(S), c1b = FloatVector.zero(S);
        FloatVector c2a = FloatVector.zero(S), c2b = FloatVector.zero(S);
        FloatVector c3a = FloatVector.zero(S), c3b = FloatVector.zero(S);
        FloatVector c4a = FloatVector.zero(S), c4b = FloatVector.zero(S);
        FloatVector c5a = FloatVector.zero(S), c5b = FloatVector.zero(S);
        FloatVector c6a = FloatVector.zero(S), c6b = FloatVector.zero(S);
        FloatVector c7a = FloatVector.zero(S), c7b = FloatVector.zero(S);
        FloatVector c8a = FloatVector.zero(S), c8b = FloatVector.zero(S);
        FloatVector c9a = FloatVector.zero(S), c9b = FloatVector.zero(S);
        FloatVector c10a = FloatVector.zero(S), c10b = FloatVector.zero(S);
        FloatVector c11a = FloatVector.zero(S), c11b = FloatVector.zero(S);
        for (int p = 0; p < kc; p++) {
            int ai = ao + p * 12;
            int bi = bo + p * NR;
            FloatVector b0 = FloatVector.fromArray(S, bp, bi);
            FloatVector b1 = FloatVector.fromArray(S, bp, bi + L);
            FloatVector a0 = FloatVector.broadcast(S, ap[ai + 0]);
            c0a = a0.fma(b0, c0a);
            c0b = a0.fma(b1, c0b);
            FloatVector a1 = FloatVector.broadcast(S, ap[ai + 1]);
            c1a = a1.fma(b0, c1a);
            c1b = a1.fma(b1, c1b);
            FloatVector a2 = FloatVector.broadcast(S, ap[ai + 2]);
            c2a = a2.fma(b0, c2a);
            c2b = a2.fma(b1, c2b);
            FloatVector a3 = FloatVector.broadcast(S, ap[ai + 3]);
            c3a = a3.fma(b0, c3a);
            c3b = a3.fma(b1, c3b);
            FloatVector a4 = FloatVector.broadcast(S, ap[ai + 4]);
            c4a = a4.fma(b0, c4a);
            c4b = a4.fma(b1, c4b);
            FloatVector a5 = FloatVector.broadcast(S, ap[ai + 5]);
            c5a = a5.fma(b0, c5a);
            c5b = a5.fma(b1, c5b);
            FloatVector a6 = FloatVector.broadcast(S, ap[ai + 6]);
            c6a = a6.fma(b0, c6a);
            c6b = a6.fma(b1, c6b);
            FloatVector a7 = FloatVector.broadcast(S, ap[ai + 7]);
            c7a = a7.fma(b0, c7a);
            c7b = a7.fma(b1, c7b);
            FloatVector a8 = FloatVector.broadcast(S, ap[ai + 8]);
            c8a = a8.fma(b0, c8a);
            c8b = a8.fma(b1, c8b);
            FloatVector a9 = FloatVector.broadcast(S, ap[ai + 9]);
            c9a = a9.fma(b0, c9a);
            c9b = a9.fma(b1, c9b);
            FloatVector a10 = FloatVector.broadcast(S, ap[ai + 10]);
            c10a = a10.fma(b0, c10a);
            c10b = a10.fma(b1, c10b);
            FloatVector a11 = FloatVector.broadcast(S, ap[ai + 11]);
            c11a = a11.fma(b0, c11a);
            c11b = a11.fma(b1, c11b);
        }
        c0a.intoArray(tile, 0);
        c0b.intoArray(tile, 0 + L);
        c1a.intoArray(tile, 1 * NR);
        c1b.intoArray(tile, 1 * NR + L);
        c2a.intoArray(tile, 2 * NR);
        c2b.intoArray(tile, 2 * NR + L);
        c3a.intoArray(tile, 3 * NR);
        c3b.intoArray(tile, 3 * NR + L);
        c4a.intoArray(tile, 4 * NR);
        c4b.intoArray(tile, 4 * NR + L);
        c5a.intoArray(tile, 5 * NR);
        c5b.intoArray(tile, 5 * NR + L);
        c6a.intoArray(tile, 6 * NR);
        c6b.intoArray(tile, 6 * NR + L);
        c7a.intoArray(tile, 7 * NR);
        c7b.intoArray(tile, 7 * NR + L);
        c8a.intoArray(tile, 8 * NR);
        c8b.intoArray(tile, 8 * NR + L);
        c9a.intoArray(tile, 9 * NR);
        c9b.intoArray(tile, 9 * NR + L);
        c10a.intoArray(tile, 10 * NR);
        c10b.intoArray(tile, 10 * NR + L);
        c11a.intoArray(tile, 11 * NR);
        c11b.intoArray(tile, 11 * NR + L);
    }

    /**
     * The (6, NR) micro-kernel: 12 accumulator vectors live in registers while the kc rank-1 updates
     * stream through one packed A strip (6 floats per step, broadcast) and one packed B strip (2 vectors per
     * step); the finished tile goes to {@code tile} row-major with row length NR.
     */
    private static void kernel6(int kc, float[] ap, int ao, float[] bp, int bo, float[] tile) {
        FloatVector c0a = FloatVector.zero(S), c0b = FloatVector.zero(S);
        FloatVector c1a = FloatVector.zero(S), c1b = FloatVector.zero(S);
        FloatVector c2a = FloatVector.zero(S), c2b = FloatVector.zero(S);
        FloatVector c3a = FloatVector.zero(S), c3b = FloatVector.zero(S);
        FloatVector c4a = FloatVector.zero(S), c4b = FloatVector.zero(S);
        FloatVector c5a = FloatVector.zero(S), c5b = FloatVector.zero(S);
        for (int p = 0; p < kc; p++) {
            int ai = ao + p * 6;
            int bi = bo + p * NR;
            FloatVector b0 = FloatVector.fromArray(S, bp, bi);
            FloatVector b1 = FloatVector.fromArray(S, bp, bi + L);
            FloatVector a0 = FloatVector.broadcast(S, ap[ai + 0]);
            c0a = a0.fma(b0, c0a);
            c0b = a0.fma(b1, c0b);
            FloatVector a1 = FloatVector.broadcast(S, ap[ai + 1]);
            c1a = a1.fma(b0, c1a);
            c1b = a1.fma(b1, c1b);
            FloatVector a2 = FloatVector.broadcast(S, ap[ai + 2]);
            c2a = a2.fma(b0, c2a);
            c2b = a2.fma(b1, c2b);
            FloatVector a3 = FloatVector.broadcast(S, ap[ai + 3]);
            c3a = a3.fma(b0, c3a);
            c3b = a3.fma(b1, c3b);
            FloatVector a4 = FloatVector.broadcast(S, ap[ai + 4]);
            c4a = a4.fma(b0, c4a);
            c4b = a4.fma(b1, c4b);
            FloatVector a5 = FloatVector.broadcast(S, ap[ai + 5]);
            c5a = a5.fma(b0, c5a);
            c5b = a5.fma(b1, c5b);
        }
        c0a.intoArray(tile, 0);
        c0b.intoArray(tile, 0 + L);
        c1a.intoArray(tile, 1 * NR);
        c1b.intoArray(tile, 1 * NR + L);
        c2a.intoArray(tile, 2 * NR);
        c2b.intoArray(tile, 2 * NR + L);
        c3a.intoArray(tile, 3 * NR);
        c3b.intoArray(tile, 3 * NR + L);
        c4a.intoArray(tile, 4 * NR);
        c4b.intoArray(tile, 4 * NR + L);
        c5a.intoArray(tile, 5 * NR);
        c5b.intoArray(tile, 5 * NR + L);
    }
}
