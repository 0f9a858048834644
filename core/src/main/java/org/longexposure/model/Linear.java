package org.longexposure.model;

import org.longexposure.backend.Backend;
import org.longexposure.tensor.Tensor;

/**
 * A frozen linear layer {@code y = x·Wᵀ + b} (HF {@code nn.Linear}, W (N, K)) with a socket for one PEFT
 * {@link LinearAdapter}. Identified by its Hugging Face module path (e.g.
 * {@code model.decoder.layers.3.self_attn.q_proj}), which is what PEFT's {@code target_modules} match against.
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
        be.linear().linearForward(out, inp, weight, bias);
        if (adapter != null) {
            adapter.forward(be, out, inp, training);
        }
    }

    /**
     * dInp {@code =} (or {@code +=} when {@code accumulate}) {@code dOut·W} plus the adapter's share; adapter
     * parameter gradients {@code +=}. With {@code dInp == null} only the adapter's parameter gradients are computed.
     */
    public void backward(Backend be, Tensor dInp, Tensor dOut, Tensor inp, boolean accumulate) {
        if (dInp != null) {
            be.linear().linearBackwardInput(dInp, dOut, weight, 1f, accumulate);
        }
        if (adapter != null) {
            adapter.backward(be, dInp, dOut, inp);
        }
    }
}
