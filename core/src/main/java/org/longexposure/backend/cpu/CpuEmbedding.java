package org.longexposure.backend.cpu;

import static org.longexposure.backend.cpu.VecMath.F;
import static org.longexposure.backend.cpu.VecMath.load;
import static org.longexposure.backend.cpu.VecMath.store;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.function.IntConsumer;
import org.longexposure.backend.EmbeddingOps;
import org.longexposure.backend.OpShapes;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Embedding row gathers on the CPU, as {@code torch.nn.Embedding}: {@code out[i] = table[ids[i]]} (or
 * {@code +=}, to add learned positions onto token embeddings). table (V, C) F32, F16 or BF16, converted to F32
 * while copying; ids (N) I32; out (N, C) F32. The backward scatters {@code dTable[ids[i]] += dOut[i]} into an
 * F32 (V, C) gradient. ids may also be (B, T) with out (B, T, C). Twin: {@code testkit.reference.RefEmbedding}.
 *
 * <p>Threads: the forward splits rows (each output row is written by one thread). The backward splits columns
 * into fixed blocks and each block walks the rows in order, so repeated ids never race and every dTable element
 * receives its additions in row order whatever the thread count.
 */
public final class CpuEmbedding implements EmbeddingOps {
    /** Columns per task of the backward scatter: a multiple of every vector length. */
    private static final int COL_BLOCK = 256;
    /** Below this many elements the op runs on the calling thread. */
    private static final long PARALLEL_MIN = 1 << 15;

    private final CpuThreads threads;

    public CpuEmbedding(CpuThreads threads) {
        this.threads = threads;
    }

    @Override
    public void embeddingForward(Tensor out, Tensor ids, Tensor table, boolean accumulate) {
        String op = "embeddingForward";
        CpuChecks.require(op, "out", out, DType.F32);
        CpuChecks.require(op, "ids", ids, DType.I32);
        if (table == null || !(table.dtype() == DType.F32 || table.dtype() == DType.F16
                || table.dtype() == DType.BF16)) {
            throw new IllegalArgumentException(op + ": table must be F32, F16 or BF16, got " + table);
        }
        CpuChecks.require(op, "table", table, table.dtype());
        int v = checkTable(op, "table", table);
        int c = table.shape().idim(1);
        int n = checkIds(op, ids, v);
        OpShapes.embeddingRows(op, "out", out, ids, n, c);
        MemorySegment o = out.host();
        MemorySegment t = table.host();
        MemorySegment id = ids.host();
        DType dt = table.dtype();
        CpuThreads.RangeBody body = (lo, hi) -> {
            for (int i = lo; i < hi; i++) {
                long src = (long) id.getAtIndex(ValueLayout.JAVA_INT_UNALIGNED, i) * c;
                long dst = (long) i * c;
                if (dt == DType.F32) {
                    copyRowF32(o, dst, t, src, c, accumulate);
                } else {
                    copyRowHalf(o, dst, t, src, c, accumulate, dt);
                }
            }
        };
        if ((long) n * c < PARALLEL_MIN) {
            body.run(0, n);
        } else {
            threads.parallelChunks(n, body);
        }
    }

    private static void copyRowF32(MemorySegment o, long dst, MemorySegment t, long src, int c,
                                   boolean accumulate) {
        if (!accumulate) {
            MemorySegment.copy(t, src * Float.BYTES, o, dst * Float.BYTES, (long) c * Float.BYTES);
            return;
        }
        int upper = F.loopBound(c);
        int j = 0;
        for (; j < upper; j += F.length()) {
            store(load(o, dst + j).add(load(t, src + j)), o, dst + j);
        }
        for (; j < c; j++) {
            set(o, dst + j, get(o, dst + j) + get(t, src + j));
        }
    }

    private static void copyRowHalf(MemorySegment o, long dst, MemorySegment t, long src, int c,
                                    boolean accumulate, DType dt) {
        for (int j = 0; j < c; j++) {
            short h = t.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, src + j);
            float val = dt == DType.F16 ? Float.float16ToFloat(h) : Float.intBitsToFloat(h << 16);
            set(o, dst + j, accumulate ? get(o, dst + j) + val : val);
        }
    }

    @Override
    public void embeddingBackward(Tensor dTable, Tensor dOut, Tensor ids) {
        String op = "embeddingBackward";
        CpuChecks.require(op, "dTable", dTable, DType.F32);
        CpuChecks.require(op, "dOut", dOut, DType.F32);
        CpuChecks.require(op, "ids", ids, DType.I32);
        int v = checkTable(op, "dTable", dTable);
        int c = dTable.shape().idim(1);
        int n = checkIds(op, ids, v);
        OpShapes.embeddingRows(op, "dOut", dOut, ids, n, c);
        MemorySegment dt = dTable.host();
        MemorySegment dy = dOut.host();
        MemorySegment id = ids.host();
        int blocks = (c + COL_BLOCK - 1) / COL_BLOCK;
        IntConsumer block = blk -> {
            int c0 = blk * COL_BLOCK;
            int width = Math.min(COL_BLOCK, c - c0);
            int upper = F.loopBound(width);
            for (int i = 0; i < n; i++) {
                long dst = (long) id.getAtIndex(ValueLayout.JAVA_INT_UNALIGNED, i) * c + c0;
                long src = (long) i * c + c0;
                int j = 0;
                for (; j < upper; j += F.length()) {
                    store(load(dt, dst + j).add(load(dy, src + j)), dt, dst + j);
                }
                for (; j < width; j++) {
                    set(dt, dst + j, get(dt, dst + j) + get(dy, src + j));
                }
            }
        };
        if ((long) n * c < PARALLEL_MIN) {
            for (int blk = 0; blk < blocks; blk++) {
                block.accept(blk);
            }
        } else {
            threads.parallelFor(blocks, block);
        }
    }

    /** Fails unless the table is (V, C); returns V. */
    private static int checkTable(String op, String name, Tensor table) {
        OpShapes.embeddingTable(op, name, table);
        return table.shape().idim(0);
    }

    /** Checks every id lies in [0, V); returns N, the number of ids (ids may be (N) or (B, T)). */
    private static int checkIds(String op, Tensor ids, int v) {
        int n = OpShapes.toInt(op, "number of ids", ids.numel());
        MemorySegment id = ids.host();
        for (int i = 0; i < n; i++) {
            int x = id.getAtIndex(ValueLayout.JAVA_INT_UNALIGNED, i);
            if (x < 0 || x >= v) {
                throw new IllegalArgumentException(op + ": ids[" + i + "] = " + x + " is outside the table's "
                        + v + " rows [0, " + v + ")");
            }
        }
        return n;
    }

    private static float get(MemorySegment s, long i) {
        return s.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i);
    }

    private static void set(MemorySegment s, long i, float v) {
        s.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, v);
    }
}
