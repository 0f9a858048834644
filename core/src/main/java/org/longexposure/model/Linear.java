package org.longexposure.model;

import org.longexposure.backend.Backend;
import org.longexposure.backend.Tensors;
import org.longexposure.tensor.Tensor;

/**
 * A frozen linear layer {@code y = x·Wᵀ + b} (HF {@code nn.Linear}, W (N, K)) with a socket for one PEFT
 * {@link LinearAdapter}. Identified by its Hugging Face module path (e.g.
 * {@code model.decoder.layers.3.self_attn.q_proj}), which is what PEFT's {@code target_modules} match against.
 *
 * <p>Order with an adapter: the adapter runs first and writes its delta into the output (forward) or its share
 * into the input gradient (backward); the frozen product then accumulates on top. Written the other way round
 * (frozen product, then {@code out += delta}) the delta would cost a second read and write of the whole (M, N)
 * output; this way the frozen GEMM adds onto the delta while it writes its own result (beta = 1 on a device),
 * one pass over the output instead of two. An adapter may instead take the whole backward
 * ({@link LinearAdapter#backwardWithFrozen}): LoRA without dropout does, as one backend op whose parameter products
 * a device runs beside the frozen product (its share of dInp then lands after the frozen product).
 */
public final class Linear {
    private final String path;
    private final Tensor weight; // (N, K) frozen, F32/F16/BF16
    private final Tensor bias;   // (N) F32 or null
    private LinearAdapter adapter;

    public Linear(String path, Tensor weight, Tensor bias) {
        this.path = path;
        this.weight = weight;
        this.bias = bias;
    }

    public String path() {
        return path;
    }

    public Tensor weight() {
        return weight;
    }

    public Tensor bias() {
        return bias;
    }

    public int inFeatures() {
        return weight.shape().idim(1);
    }

    public int outFeatures() {
        return weight.shape().idim(0);
    }

    public LinearAdapter adapter() {
        return adapter;
    }

    /** Plugs a PEFT adapter into this layer; a layer holds at most one. */
    public void plug(LinearAdapter a) {
        if (adapter != null) {
            throw new IllegalStateException(path + " already has an adapter");
        }
        adapter = a;
    }

    /** {@code out = inp·Wᵀ + b (+ adapter delta)}; out (M, N), inp (M, K). */
    public void forward(Backend be, Tensor out, Tensor inp, boolean training) {
        forward(be, out, inp, null, training);
    }

    /**
     * {@code out = residual + inp·Wᵀ + b (+ adapter delta)}: a layer whose output joins a residual stream (OPT's
     * out_proj and fc2). Without an adapter one product with the residual read in its epilogue; with one, the
     * adapter's last product reads the residual ({@code out = residual + delta}) and the frozen product accumulates
     * on top, so the order (adapter first) and the pass count (one per product) stay as without a residual.
     *
     * @param residual (M, N) not overlapping out, or null (then this is {@link #forward(Backend, Tensor, Tensor,
     *                 boolean)})
     */
    public void forward(Backend be, Tensor out, Tensor inp, Tensor residual, boolean training) {
        if (adapter == null) {
            be.linear().linearForwardResidual(out, inp, weight, bias, residual);
            return;
        }
        adapter.forward(be, out, inp, residual, training);       // out  = residual + delta(inp)
        be.linear().linearForward(out, inp, weight, bias, true); // out += inp·Wᵀ + b
    }

    /**
     * dInp {@code =} (or {@code +=} when {@code accumulate}) {@code dOut·W} plus the adapter's share; adapter
     * parameter gradients {@code +=}. With {@code dInp == null} only the adapter's parameter gradients are computed.
     */
    public void backward(Backend be, Tensor dInp, Tensor dOut, Tensor inp, boolean accumulate) {
        if (adapter == null) {
            if (dInp != null) {
                be.linear().linearBackwardInput(dInp, dOut, weight, 1f, accumulate);
            }
            return;
        }
        if (dInp != null && adapter.backwardWithFrozen(be, dInp, dOut, inp, accumulate, weight)) {
            return;
        }
        adapter.backward(be, dInp, dOut, inp, accumulate); // dInp (+)= the adapter's share; its grads +=
        if (dInp != null) {
            be.linear().linearBackwardInput(dInp, dOut, weight, 1f, true); // dInp += dOut·W
        }
    }

    /**
     * The layer's current map {@code x ↦ x·W_effᵀ + b} as one (K+1, N) float64 matrix, row-major: rows 0..K−1 hold
     * {@code W_effᵀ} ({@code W + ΔW} of a linear adapter, see {@link LinearAdapter#linearDelta}), row K the bias (0
     * without one). {@code null} when the plugged adapter's delta is not linear. Reads the weights back from the
     * backend (one synchronising copy each).
     */
    public double[] affineMap(Backend be) {
        int k = inFeatures();
        int n = outFeatures();
        double[] delta = null;
        if (adapter != null) {
            delta = adapter.linearDelta(be);
            if (delta == null) {
                return null;
            }
        }
        float[] w = Tensors.toFloats(be, weight);   // (N, K)
        double[] map = new double[(k + 1) * n];
        for (int o0 = 0; o0 < n; o0 += 32) {        // transposed in 32 × 32 tiles (both sides cache-resident)
            for (int e0 = 0; e0 < k; e0 += 32) {
                for (int o = o0; o < Math.min(o0 + 32, n); o++) {
                    for (int e = e0; e < Math.min(e0 + 32, k); e++) {
                        map[e * n + o] = w[o * k + e] + (delta == null ? 0 : delta[o * k + e]);
                    }
                }
            }
        }
        if (bias != null) {
            float[] bv = Tensors.toFloats(be, bias);
            for (int o = 0; o < n; o++) {
                map[k * n + o] = bv[o];
            }
        }
        return map;
    }
}
