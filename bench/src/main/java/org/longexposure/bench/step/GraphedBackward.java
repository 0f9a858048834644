package org.longexposure.bench.step;

import java.util.List;
import org.longexposure.cuda.driver.CudaGraph;
import org.longexposure.cuda.driver.CudaStream;
import org.longexposure.io.data.Batch;
import org.longexposure.model.CausalLm;
import org.longexposure.model.ForwardState;
import org.longexposure.model.Linear;
import org.longexposure.model.ModelConfig;
import org.longexposure.model.SparsityPlan;

/**
 * A measurement of what CUDA graphs would save in the backward pass ({@code CudaStepBench --graph-backward on}):
 * the model as it is, except that once {@linkplain #arm() armed} its next backward is captured into a graph on the
 * backend's stream and every backward from then on is that graph, replayed with one launch. The replay is the same
 * kernels with the same arguments, which holds in the benchmark (one batch shape, the same state, loss scale 1, no
 * LoRA dropout, layouts rebuilt in place on the device every step), not in general: this is not a training mode.
 * The losses of a graphed run equal a plain run's bit for bit when the replay is faithful.
 */
final class GraphedBackward implements CausalLm {
    private final CausalLm model;
    private final CudaStream stream;
    private boolean armed;
    private CudaGraph graph;
    private float capturedScale;

    GraphedBackward(CausalLm model, CudaStream stream) {
        this.model = model;
        this.stream = stream;
    }

    /** The next backward is captured and replayed from then on. */
    void arm() {
        armed = true;
    }

    @Override
    public void backward(ForwardState state, float lossScale) {
        if (graph == null && armed) {
            graph = stream.capture(() -> model.backward(state, lossScale));
            capturedScale = lossScale;
        }
        if (graph == null) {
            model.backward(state, lossScale);
            return;
        }
        if (lossScale != capturedScale) {
            throw new IllegalStateException("the backward graph was captured with loss scale " + capturedScale
                    + ", not " + lossScale);
        }
        stream.launch(graph);
    }

    @Override
    public ModelConfig config() {
        return model.config();
    }

    @Override
    public List<Linear> linears() {
        return model.linears();
    }

    @Override
    public ForwardState allocate(int batchSize, int seqLen) {
        return model.allocate(batchSize, seqLen);
    }

    @Override
    public void forward(ForwardState state, Batch batch, boolean training) {
        model.forward(state, batch, training);
    }

    @Override
    public double forwardLoss(ForwardState state, Batch batch, float labelSmoothing, boolean training) {
        return model.forwardLoss(state, batch, labelSmoothing, training);
    }

    @Override
    public void sparsity(SparsityPlan plan) {
        model.sparsity(plan);
    }

    @Override
    public Linear queryProjection(int layer) {
        return model.queryProjection(layer);
    }

    @Override
    public Linear keyProjection(int layer) {
        return model.keyProjection(layer);
    }

    /** Releases the graph; the model itself stays open (its owner closes it). */
    @Override
    public void close() {
        if (graph != null) {
            graph.close();
            graph = null;
        }
    }
}
