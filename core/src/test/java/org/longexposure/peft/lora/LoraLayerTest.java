package org.longexposure.peft.lora;

import static org.longexposure.testkit.Tolerances.Kind.FORWARD;
import static org.longexposure.testkit.Tolerances.Kind.GRAD;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.model.Linear;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;
import org.longexposure.testkit.Rng;
import org.longexposure.testkit.TensorAssert;
import org.longexposure.testkit.reference.RefDropout;
import org.longexposure.testkit.reference.RefLinear;

/**
 * A frozen linear with LoRA plugged in, forward and backward, against the float64 composition
 * {@code y = x·Wᵀ + b + s·(drop(x)·Aᵀ)·Bᵀ} (plus a residual, when the layer's output joins one: the adapter's
 * product carries it, the backward is unchanged): output, input gradient, dA and dB (which accumulate).
 */
class LoraLayerTest {
    @ParameterizedTest
    @CsvSource({"9,13,11,3,0.0,false", "33,40,24,4,0.25,false", "1,7,5,1,0.5,false", "9,13,11,3,0.0,true",
            "33,40,24,4,0.25,true"})
    void forwardAndBackwardMatchTheComposition(int m, int n, int k, int r, float p, boolean withResidual) {
        Rng rng = new Rng(m + 100L * n + 10_000L * k + r);
        float s = 1.7f;
        long layerSeed = 99;
        float[] x = rng.normalFloats(m * k);
        float[] w = rng.normalFloats(n * k);
        float[] bias = rng.normalFloats(n);
        float[] a = rng.normalFloats(r * k);
        float[] b = rng.normalFloats(n * r);
        float[] dY = rng.normalFloats(m * n);
        float[] dAPrior = rng.normalFloats(r * k);
        float[] dBPrior = rng.normalFloats(n * r);
        float[] res = rng.normalFloats(m * n);
        try (CpuBackend be = new CpuBackend(2)) {
            Linear lin = new Linear("layers.0.q_proj", t(be, w, n, k), t(be, bias, n));
            Tensor dA = t(be, dAPrior, r, k);
            Tensor dB = t(be, dBPrior, n, r);
            LoraLayer lora = new LoraLayer(lin, r, s, p, layerSeed, t(be, a, r, k), t(be, b, n, r), dA, dB);
            lin.plug(lora);
            lora.prepare(be, m);
            Tensor xT = t(be, x, m, k);
            Tensor y = be.allocate(DType.F32, m, n);
            if (withResidual) {
                lin.forward(be, y, xT, t(be, res, m, n), true); // y = residual + x·Wᵀ + b + delta
            } else {
                lin.forward(be, y, xT, true);
            }
            Tensor dX = be.allocate(DType.F32, m, k);
            lin.backward(be, dX, t(be, dY, m, n), xT, false);

            // float64 composition
            double[] xd = Rng.toDouble(x);
            double[] xDrop = new double[m * k];
            long maskSeed = LoraLayer.maskSeed(layerSeed, 0);
            if (p > 0) {
                RefDropout.forward(xDrop, xd, p, maskSeed);
            } else {
                xDrop = xd.clone();
            }
            double[] yRef = new double[m * n];
            RefLinear.forward(yRef, xd, Rng.toDouble(w), Rng.toDouble(bias), m, n, k);
            double[] xa = new double[m * r];
            RefLinear.forward(xa, xDrop, Rng.toDouble(a), null, m, r, k);
            RefLinear.forwardAccumulate(yRef, xa, Rng.toDouble(b), s, m, n, r);
            for (int i = 0; withResidual && i < yRef.length; i++) {
                yRef[i] += res[i];
            }
            TensorAssert.assertClose("linear", FORWARD, y.toFloatArray(), yRef, m, n);

            double[] dYd = Rng.toDouble(dY);
            double[] dBRef = Rng.toDouble(dBPrior);
            RefLinear.backwardWeight(dBRef, null, dYd, xa, s, m, n, r);
            double[] dXa = new double[m * r];
            RefLinear.backwardInput(dXa, dYd, Rng.toDouble(b), s, false, m, n, r);
            double[] dARef = Rng.toDouble(dAPrior);
            RefLinear.backwardWeight(dARef, null, dXa, xDrop, 1, m, r, k);
            double[] dXLora = new double[m * k];
            RefLinear.backwardInput(dXLora, dXa, Rng.toDouble(a), 1, false, m, r, k);
            if (p > 0) {
                RefDropout.backward(dXLora, dXLora, p, maskSeed);
            }
            double[] dXRef = new double[m * k];
            RefLinear.backwardInput(dXRef, dYd, Rng.toDouble(w), 1, false, m, n, k);
            for (int i = 0; i < dXRef.length; i++) {
                dXRef[i] += dXLora[i];
            }
            TensorAssert.assertClose("linear", GRAD, dX.toFloatArray(), dXRef, m, k);
            TensorAssert.assertClose("linear", GRAD, dA.toFloatArray(), dARef, r, k);
            TensorAssert.assertClose("linear", GRAD, dB.toFloatArray(), dBRef, n, r);
        }
    }

    /**
     * The layer's map read from its parameters ({@link Linear#affineMap}: W + s·B·A, then the bias row) against the
     * float64 composition applied to inputs (no dropout, as in an evaluation forward); without an adapter it is W
     * and b alone.
     */
    @ParameterizedTest
    @CsvSource({"6,13,11,3", "5,8,9,1"})
    void affineMapIsTheLayersMap(int m, int n, int k, int r) {
        Rng rng = new Rng(7L * n + k + 1000L * r);
        float s = 0.8f;
        float[] x = rng.normalFloats(m * k);
        float[] w = rng.normalFloats(n * k);
        float[] bias = rng.normalFloats(n);
        float[] a = rng.normalFloats(r * k);
        float[] b = rng.normalFloats(n * r);
        try (CpuBackend be = new CpuBackend(2)) {
            Linear plain = new Linear("layers.0.k_proj", t(be, w, n, k), null);
            assertMapApplies(plain.affineMap(be), x, m, n, k, Rng.toDouble(w), null, null, null, 0, 0);
            Linear lin = new Linear("layers.0.q_proj", t(be, w, n, k), t(be, bias, n));
            lin.plug(new LoraLayer(lin, r, s, 0.3f, 5, t(be, a, r, k), t(be, b, n, r), be.allocate(DType.F32, r, k),
                    be.allocate(DType.F32, n, r)));
            assertMapApplies(lin.affineMap(be), x, m, n, k, Rng.toDouble(w), Rng.toDouble(bias), Rng.toDouble(a),
                    Rng.toDouble(b), s, r);
        }
    }

    private static void assertMapApplies(double[] map, float[] x, int m, int n, int k, double[] w, double[] bias,
                                         double[] a, double[] b, float s, int r) {
        double[] xd = Rng.toDouble(x);
        double[] yRef = new double[m * n];
        RefLinear.forward(yRef, xd, w, bias, m, n, k);
        if (a != null) {
            double[] xa = new double[m * r];
            RefLinear.forward(xa, xd, a, null, m, r, k);
            RefLinear.forwardAccumulate(yRef, xa, b, s, m, n, r);
        }
        float[] y = new float[m * n];
        for (int i = 0; i < m; i++) {
            for (int o = 0; o < n; o++) {
                double v = map[k * n + o];
                for (int e = 0; e < k; e++) {
                    v += xd[i * k + e] * map[e * n + o];
                }
                y[i * n + o] = (float) v;
            }
        }
        TensorAssert.assertClose("linear", FORWARD, y, yRef, m, n);
    }

    private static Tensor t(CpuBackend be, float[] v, long... dims) {
        return be.allocate(DType.F32, dims).copyFrom(v);
    }
}
