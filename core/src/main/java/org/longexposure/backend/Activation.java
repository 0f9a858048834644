package org.longexposure.backend;

import java.util.Arrays;
import java.util.Locale;

/** Pointwise non-linearities, named as Hugging Face's {@code ACT2FN} names them. */
public enum Activation {
    /** max(0, x). */
    RELU("relu"),
    /** Exact GELU: x·Φ(x) with the error function ({@code torch.nn.functional.gelu}). */
    GELU("gelu"),
    /** Tanh-approximated GELU (GPT-2's {@code gelu_new}). */
    GELU_TANH("gelu_new");

    private final String hfName;

    Activation(String hfName) {
        this.hfName = hfName;
    }

    public String hfName() {
        return hfName;
    }

    /** The activation HF calls {@code name}, or an error listing the supported names. */
    public static Activation fromHf(String name) {
        String n = name.toLowerCase(Locale.ROOT);
        if (n.equals("gelu_pytorch_tanh")) {
            return GELU_TANH;
        }
        for (Activation a : values()) {
            if (a.hfName.equals(n)) {
                return a;
            }
        }
        throw new IllegalArgumentException("unsupported activation_function '" + name + "'; supported: "
                + Arrays.stream(values()).map(Activation::hfName).toList() + " and gelu_pytorch_tanh");
    }
}
