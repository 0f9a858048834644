package org.longexposure.bench.step;

import org.longexposure.model.CausalLm;
import org.longexposure.model.Linear;
import org.longexposure.model.ModelConfig;

/**
 * The useful floating-point operations of one LoRA training step (forward, loss, backward, optimizer) of a
 * decoder-only model on N = B·T tokens, counted analytically: matrix products only (2 FLOPs per multiply-add);
 * LayerNorm, activations, softmax statistics, cross-entropy and AdamW are memory-bound and left out.
 *
 * <pre>
 * frozen   = Σ over the model's frozen linears (q, k, v, out, fc1, fc2 per layer; project_in/out) of K·Nout,
 *            plus the LM head V·P
 * forward  = 2·N·frozen                                     every frozen product once
 * backward = 2·N·frozen                                     input gradients dX = dY·W only: frozen weights get no
 *                                                           gradient
 * attnFwd  = L · 2·2·B·NH·T²·HS / 2                         QKᵀ and P·V, causal: half of the T² scores
 * attnBwd  = 2.5 · attnFwd                                  dV, dP, dQ, dK and the recomputed QKᵀ: 5 products
 *                                                           for the forward's 2
 * loraFwd  = 2·N·R·Σ(K + Nout) = 2·N·(trainable parameters)  x·Aᵀ then (x·Aᵀ)·Bᵀ
 * loraBwd  = 2·loraFwd                                      dB, d(xAᵀ), dA, and dX's share
 * total    = forward + backward + attnFwd + attnBwd + loraFwd + loraBwd
 * </pre>
 * The same count is used for the Hugging Face baseline (same model, same shapes), so the two steps' TFLOP/s are
 * comparable as "useful work per second".
 *
 * @param forwardFrozen  2·N·frozen
 * @param backwardInput  2·N·frozen
 * @param attentionFwd   attnFwd
 * @param attentionBwd   attnBwd
 * @param loraFwd        loraFwd
 * @param loraBwd        loraBwd
 */
public record StepFlops(double forwardFrozen, double backwardInput, double attentionFwd, double attentionBwd,
                        double loraFwd, double loraBwd) {

    /** Counts the step of {@code model} (its frozen linears and config) on (B, T) with {@code trainable} LoRA
     * parameters in total. */
    public static StepFlops of(CausalLm model, int batch, int seq, long trainable) {
        ModelConfig cfg = model.config();
        double n = (double) batch * seq;
        double frozen = (double) cfg.vocabSize() * cfg.wordEmbedProjDim();
        for (Linear lin : model.linears()) {
            frozen += (double) lin.inFeatures() * lin.outFeatures();
        }
        double attn = cfg.numLayers() * 2.0 * 2.0 * batch * cfg.numHeads() * (double) seq * seq * cfg.headSize()
                / 2.0;
        double lora = 2.0 * n * trainable;
        return new StepFlops(2 * n * frozen, 2 * n * frozen, attn, 2.5 * attn, lora, 2 * lora);
    }

    public double total() {
        return forwardFrozen + backwardInput + attentionFwd + attentionBwd + loraFwd + loraBwd;
    }
}
