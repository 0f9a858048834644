package org.longexposure.bench.ops;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Locale;
import java.util.SplittableRandom;
import org.longexposure.backend.cpu.MatrixRef;
import org.longexposure.tensor.DType;

/**
 * One GEMM benchmark shape: C (M, N) = A (M, K) · B (K, N), A an F32 row-major activation, B one of
 * <ul>
 *   <li>{@code f32}: F32 row-major (K, N);</li>
 *   <li>{@code f32t}: an F32 W (N, K) row-major read transposed (a LoRA factor in {@code x·Aᵀ});</li>
 *   <li>{@code f16t}: a frozen F16 weight W (N, K) row-major read transposed, the forward {@code y = x·Wᵀ};</li>
 *   <li>{@code f16}: an F16 weight W (K, N) row-major, the backward {@code dX = dY·W}.</li>
 * </ul>
 * Written {@code MxNxK:kind}, e.g. {@code 1024x50272x512:f16t} (the OPT LM head at 1024 token rows); no commas, so
 * that JMH's {@code -p shape=...} takes it as one value.
 */
public record GemmShape(int m, int n, int k, String kind) {
    public GemmShape {
        if (!kind.equals("f32") && !kind.equals("f32t") && !kind.equals("f16t") && !kind.equals("f16")) {
            throw new IllegalArgumentException("gemm shape kind '" + kind + "': expected f32, f32t, f16t or f16");
        }
    }

    public static GemmShape parse(String text) {
        String[] kindSplit = text.trim().split(":");
        String[] dims = kindSplit[0].split("x");
        if (kindSplit.length != 2 || dims.length != 3) {
            throw new IllegalArgumentException("gemm shape '" + text
                    + "': expected MxNxK:kind, e.g. 1024x512x512:f16t");
        }
        return new GemmShape(Integer.parseInt(dims[0]), Integer.parseInt(dims[1]), Integer.parseInt(dims[2]),
                kindSplit[1]);
    }

    public double flops() {
        return 2.0 * m * n * k;
    }

    @Override
    public String toString() {
        return String.format(Locale.ROOT, "%dx%dx%d:%s", m, n, k, kind);
    }

    /** A, B and C of this shape in the arena, filled with seeded values in [-1, 1). */
    public Operands allocate(Arena arena, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        MemorySegment a = arena.allocate((long) m * k * Float.BYTES, 64);
        for (long i = 0; i < (long) m * k; i++) {
            a.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) (rnd.nextDouble() * 2 - 1));
        }
        DType bType = kind.startsWith("f32") ? DType.F32 : DType.F16;
        MemorySegment b = arena.allocate((long) k * n * bType.byteSize(), 64);
        for (long i = 0; i < (long) k * n; i++) {
            float v = (float) (rnd.nextDouble() * 2 - 1);
            if (bType == DType.F32) {
                b.setAtIndex(ValueLayout.JAVA_FLOAT, i, v);
            } else {
                b.setAtIndex(ValueLayout.JAVA_SHORT, i, Float.floatToFloat16(v));
            }
        }
        MatrixRef bRef = kind.endsWith("t")
                ? MatrixRef.rowMajor(b, bType, 0, k).transpose()   // W (N, K) seen as (K, N)
                : MatrixRef.rowMajor(b, bType, 0, n);
        MemorySegment c = arena.allocate((long) m * n * Float.BYTES, 64);
        return new Operands(MatrixRef.rowMajor(a, DType.F32, 0, k), bRef, c);
    }

    /** B as an F32 row-major (K, N) array, for the array-based baselines. */
    public static float[] bAsF32(GemmShape s, MatrixRef b) {
        float[] out = new float[s.k * s.n];
        for (int p = 0; p < s.k; p++) {
            for (int j = 0; j < s.n; j++) {
                long e = b.offset() + p * b.rowStride() + j * b.colStride();
                out[p * s.n + j] = b.dtype() == DType.F32
                        ? b.segment().getAtIndex(ValueLayout.JAVA_FLOAT, e)
                        : Float.float16ToFloat(b.segment().getAtIndex(ValueLayout.JAVA_SHORT, e));
            }
        }
        return out;
    }

    /** The operands of one shape. */
    public record Operands(MatrixRef a, MatrixRef b, MemorySegment c) {
    }
}
