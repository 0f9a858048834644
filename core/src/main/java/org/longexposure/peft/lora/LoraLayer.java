package org.longexposure.peft.lora;

import org.longexposure.backend.Backend;
import org.longexposure.backend.Tensors;
import org.longexposure.model.Linear;
import org.longexposure.model.LinearAdapter;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * LoRA around a frozen linear layer, as PEFT's {@code lora.Linear}:
 * {@code y = x·Wᵀ + b + scaling · (dropout(x)·Aᵀ)·Bᵀ} with A (R, K) and B (N, R). ΔW = B·A is never formed: the
 * forward is two rank-R products. Saved for backward: {@code xa = dropout(x)·Aᵀ} (M, R); the dropout mask is
 * regenerated from its seed.
 *
 * <pre>
 * dB += scaling · dYᵀ·xa          dXa = scaling · dY·B   (M, R)
 * dA += dXaᵀ·dropout(x)           dX (+)= dropout'(dXa·A)
 * </pre>
 * The forward writes {@code out = scaling · xa·Bᵀ} (plus the layer's residual when it has one) and the backward
 * with dropout {@code dX (+)= dXa·A} before the frozen layer's products, which accumulate onto them
 * ({@link Linear}). Without dropout the backward is one op with the frozen product included
 * ({@link #backwardWithFrozen}), which adds the LoRA share of dX after the frozen product.
 */
public final class LoraLayer implements LinearAdapter {
    private final Linear base;
    private final int rank;
    private final float scaling;
    private final float dropout;
    private final long seed;
    private final Tensor a;  // (R, K) trainable, F32
    private final Tensor b;  // (N, R) trainable, F32
    private final Tensor dA; // (R, K) F32
    private final Tensor dB; // (N, R) F32
    private Tensor xa;       // (maxRows, R) saved: dropout(x)·Aᵀ, activation dtype
    private Tensor dXa;      // (maxRows, R) scratch, activation dtype
    private Tensor xDrop;    // (maxRows, K) dropout(x), only when dropout > 0, activation dtype
    private long forwardCount;
    private long lastMaskSeed;
    private boolean lastDropped;

    LoraLayer(Linear base, int rank, float scaling, float dropout, long seed, Tensor a, Tensor b, Tensor dA,
              Tensor dB) {
        this.base = base;
        this.rank = rank;
        this.scaling = scaling;
        this.dropout = dropout;
        this.seed = seed;
        this.a = a.requireShape(base.path() + ".lora_A", rank, base.inFeatures());
        this.b = b.requireShape(base.path() + ".lora_B", base.outFeatures(), rank);
        this.dA = dA;
        this.dB = dB;
    }

    public Linear base() {
        return base;
    }

    public float scaling() {
        return scaling;
    }

    /** Number of dropout masks drawn so far (part of the resumable training state). */
    public long forwardCount() {
        return forwardCount;
    }

    public void setForwardCount(long count) {
        this.forwardCount = count;
    }

    /** The dropout seed of this layer's {@code count}-th training forward. */
    static long maskSeed(long layerSeed, long count) {
        return layerSeed * 0x9E3779B97F4A7C15L + count;
    }

    @Override
    public void prepare(Backend be, int maxRows) {
        DType act = be.activationDType();
        xa = be.allocate(act, maxRows, rank);
        dXa = be.allocate(act, maxRows, rank);
        xDrop = dropout > 0f ? be.allocate(act, maxRows, base.inFeatures()) : null;
    }

    @Override
    public void forward(Backend be, Tensor out, Tensor inp, Tensor residual, boolean training) {
        int m = Math.toIntExact(inp.shape().rows());
        Tensor lxa = xa.slice(0, m);
        Tensor x = inp;
        lastDropped = training && dropout > 0f;
        if (lastDropped) {
            lastMaskSeed = maskSeed(seed, forwardCount++);
            x = xDrop.slice(0, m);
            be.activation().dropoutForward(x, inp, dropout, lastMaskSeed);
        }
        be.linear().linearForward(lxa, x, a, null);                  // xa = x·Aᵀ       (M, R)
        be.linear().linearForwardScaledResidual(out, lxa, b, scaling, residual); // y = (residual +) s·xa·Bᵀ
    }

    @Override
    public void backward(Backend be, Tensor dInp, Tensor dOut, Tensor inp, boolean accumulate) {
        int m = Math.toIntExact(inp.shape().rows());
        Tensor lxa = xa.slice(0, m);
        Tensor ldXa = dXa.slice(0, m);
        Tensor x = lastDropped ? xDrop.slice(0, m) : inp;
        be.linear().linearBackwardWeight(dB, null, dOut, lxa, scaling); // dB += s·dYᵀ·xa
        be.linear().linearBackwardInput(ldXa, dOut, b, scaling, false);  // dXa = s·dY·B
        be.linear().linearBackwardWeight(dA, null, ldXa, x, 1f);         // dA += dXaᵀ·x
        if (dInp == null) {
            return;
        }
        if (lastDropped) {
            Tensor tmp = xDrop.slice(0, m); // dropout(x) is no longer needed: reuse it for dX's LoRA share
            be.linear().linearBackwardInput(tmp, ldXa, a, 1f, false);
            if (accumulate) {
                be.activation().dropoutBackward(tmp, tmp, dropout, lastMaskSeed);
                be.activation().accumulate(dInp, tmp);
            } else {
                be.activation().dropoutBackward(dInp, tmp, dropout, lastMaskSeed);
            }
        } else {
            be.linear().linearBackwardInput(dInp, ldXa, a, 1f, accumulate); // dX (+)= dXa·A
        }
    }

    /**
     * Without dropout in the last forward, the whole backward as {@code LinearOps.loraLinearBackward}: the same
     * products as {@link #backward} followed by the frozen input gradient, with the frozen product before the
     * LoRA share of dInp (so a device can run the parameter products beside it).
     */
    @Override
    public boolean backwardWithFrozen(Backend be, Tensor dInp, Tensor dOut, Tensor inp, boolean accumulate,
                                      Tensor weight) {
        if (lastDropped) {
            return false;
        }
        int m = Math.toIntExact(inp.shape().rows());
        be.linear().loraLinearBackward(dInp, dOut, weight, accumulate, dA, dB, dXa.slice(0, m), inp, xa.slice(0, m),
                a, b, scaling);
        return true;
    }

    /** ΔW = scaling·B·A (N, K), formed on the host in float64 from the current A and B. */
    @Override
    public double[] linearDelta(Backend be) {
        int k = base.inFeatures();
        int n = base.outFeatures();
        float[] av = Tensors.toFloats(be, a);   // (R, K)
        float[] bv = Tensors.toFloats(be, b);   // (N, R)
        double[] delta = new double[n * k];
        for (int o = 0; o < n; o++) {
            for (int r = 0; r < rank; r++) {
                double coef = (double) scaling * bv[o * rank + r];
                int ao = r * k;
                int dOff = o * k;
                for (int e = 0; e < k; e++) {
                    delta[dOff + e] += coef * av[ao + e];
                }
            }
        }
        return delta;
    }
}
