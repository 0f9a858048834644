package org.longexposure.backend.cpu;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Deterministic float math shared by the CPU kernels, each in a vector form and a scalar form that perform the
 * same IEEE operations in the same order, so a lane and a scalar tail give the same bits for the same input.
 *
 * <p>Why not the Vector API's own {@code EXP} or {@code reduceLanes(ADD)}: both may give different bits in
 * interpreted and in compiled code (the compiled transcendental comes from a vector math library, and the
 * compiled floating-point reduction may add lanes in a tree), so results could change between two calls of the
 * same op; here every float result is a fixed sequence of correctly rounded operations.
 *
 * <p>{@code exp(x) = 2^k · e^r} with {@code k = rint(x·log2 e)} and {@code r = x − k·ln 2} (ln 2 split in a
 * high part exact in few bits and a low part, Cody and Waite), {@code e^r} by its Taylor polynomial to degree 7
 * on |r| ≤ ln2/2 (truncation below 6e-9 relative, under half an ulp), {@code 2^k} built from its exponent bits.
 * The argument is clamped to [−87.3, 88]: results below e^−87.3 (near the smallest normal float) flush to 0,
 * results above saturate at e^88 ≈ 1.65e38 instead of overflowing. Error about 2 ulp.
 */
final class VecMath {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final ByteOrder ORDER = ByteOrder.nativeOrder();

    private static final float LOG2E = 1.44269504088896341f;
    private static final float LN2_HI = 0.693359375f;
    private static final float LN2_LO = -2.12194440e-4f;
    /** 1.5·2^23: adding and subtracting it rounds a float of magnitude below 2^22 to the nearest integer. */
    private static final float ROUND = 12582912f;
    private static final float EXP_LO = -87.3f;
    private static final float EXP_HI = 88.0f;
    private static final float C2 = 1f / 2;
    private static final float C3 = 1f / 6;
    private static final float C4 = 1f / 24;
    private static final float C5 = 1f / 120;
    private static final float C6 = 1f / 720;
    private static final float C7 = 1f / 5040;

    private VecMath() {
    }

    /** e^x per lane; see the class comment for range and accuracy. */
    static FloatVector exp(FloatVector x) {
        FloatVector xc = x.max(EXP_LO).min(EXP_HI);
        FloatVector k = xc.mul(LOG2E).add(ROUND).sub(ROUND);
        FloatVector r = k.fma(FloatVector.broadcast(F, -LN2_HI), xc);
        r = k.fma(FloatVector.broadcast(F, -LN2_LO), r);
        FloatVector p = r.fma(C7, C6);
        p = p.fma(r, FloatVector.broadcast(F, C5));
        p = p.fma(r, FloatVector.broadcast(F, C4));
        p = p.fma(r, FloatVector.broadcast(F, C3));
        p = p.fma(r, FloatVector.broadcast(F, C2));
        p = p.fma(r, FloatVector.broadcast(F, 1f));
        p = p.fma(r, FloatVector.broadcast(F, 1f));
        IntVector bits = ((IntVector) k.convert(VectorOperators.F2I, 0)).add(127).lanewise(VectorOperators.LSHL, 23);
        FloatVector y = p.mul(bits.reinterpretAsFloats());
        VectorMask<Float> under = x.compare(VectorOperators.LT, EXP_LO);
        return y.blend(0f, under);
    }

    /** e^x, bit-identical to a lane of {@link #exp(FloatVector)}. */
    static float exp(float x) {
        float xc = Math.min(Math.max(x, EXP_LO), EXP_HI);
        float k = (xc * LOG2E + ROUND) - ROUND;
        float r = Math.fma(k, -LN2_HI, xc);
        r = Math.fma(k, -LN2_LO, r);
        float p = Math.fma(r, C7, C6);
        p = Math.fma(p, r, C5);
        p = Math.fma(p, r, C4);
        p = Math.fma(p, r, C3);
        p = Math.fma(p, r, C2);
        p = Math.fma(p, r, 1f);
        p = Math.fma(p, r, 1f);
        float y = p * Float.intBitsToFloat(((int) k + 127) << 23);
        return x < EXP_LO ? 0f : y;
    }

    /** s + the lanes of v added one by one in lane order, in double ({@code buf} has v's length). */
    static double addLanes(double s, FloatVector v, float[] buf) {
        v.intoArray(buf, 0);
        for (float f : buf) {
            s += f;
        }
        return s;
    }

    /** Loads F.length() floats starting at float index {@code i} of {@code seg}. */
    static FloatVector load(MemorySegment seg, long i) {
        return FloatVector.fromMemorySegment(F, seg, i * Float.BYTES, ORDER);
    }

    /** Stores v at float index {@code i} of {@code seg}. */
    static void store(FloatVector v, MemorySegment seg, long i) {
        v.intoMemorySegment(seg, i * Float.BYTES, ORDER);
    }
}
