package org.longexposure.peft;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.longexposure.backend.Backend;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * The trainable parameters of a run, each with its gradient and AdamW moments (F32, allocated once). Frozen
 * weights are not here and never get any of these buffers. Names are the PEFT on-disk keys
 * ({@code base_model.model.<module path>.lora_A.weight}).
 */
public final class TrainableParams {
    /** One trainable tensor with its gradient and optimizer state, all of the same shape. */
    public record Param(String name, Tensor value, Tensor grad, Tensor m, Tensor v) {
    }

    private final List<Param> params = new ArrayList<>();

    /** Registers {@code value} and allocates its gradient and moments on {@code backend}. */
    public Param add(Backend backend, String name, Tensor value) {
        for (Param p : params) {
            if (p.name.equals(name)) {
                throw new IllegalArgumentException("duplicate trainable parameter " + name);
            }
        }
        long[] dims = value.shape().dims();
        Param p = new Param(name, value, backend.allocate(DType.F32, dims), backend.allocate(DType.F32, dims),
                backend.allocate(DType.F32, dims));
        params.add(p);
        return p;
    }

    public List<Param> all() {
        return Collections.unmodifiableList(params);
    }

    public Param get(String name) {
        for (Param p : params) {
            if (p.name.equals(name)) {
                return p;
            }
        }
        throw new IllegalArgumentException("no trainable parameter named " + name);
    }

    /** Total number of trainable scalars. */
    public long count() {
        return params.stream().mapToLong(p -> p.value.numel()).sum();
    }

    public void zeroGrad(Backend backend) {
        backend.optim().zero(params.stream().map(p -> p.grad).toList());
    }
}
