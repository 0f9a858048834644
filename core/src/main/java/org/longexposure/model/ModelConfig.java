package org.longexposure.model;

import org.longexposure.backend.Activation;

/**
 * The interpreted architecture of a decoder-only model (our view of an HF {@code config.json}), immutable.
 *
 * @param modelType         HF {@code model_type}, e.g. {@code opt}
 * @param vocabSize         V
 * @param hiddenSize        C
 * @param numLayers         L
 * @param numHeads          NH (HS = C / NH)
 * @param ffnDim            H
 * @param maxPositions      learned positions available (before the offset)
 * @param positionOffset    added to position ids before the lookup (OPT: 2)
 * @param wordEmbedProjDim  P, the token-embedding width; project_in/project_out exist when P != C
 * @param preLayerNorm      pre-LN blocks (OPT {@code do_layer_norm_before})
 * @param finalLayerNorm    a LayerNorm after the last block
 * @param enableBias        linear layers have biases
 * @param activation        the FFN non-linearity
 * @param layerNormEps      eps of every LayerNorm
 * @param layerNormAffine   LayerNorms have weight and bias
 * @param tieWordEmbeddings the LM head is the token embedding
 * @param padTokenId        pad id, or -1
 * @param bosTokenId        bos id, or -1
 * @param eosTokenId        eos id, or -1
 */
public record ModelConfig(String modelType, int vocabSize, int hiddenSize, int numLayers, int numHeads,
                          int ffnDim, int maxPositions, int positionOffset, int wordEmbedProjDim,
                          boolean preLayerNorm, boolean finalLayerNorm, boolean enableBias, Activation activation,
                          float layerNormEps, boolean layerNormAffine, boolean tieWordEmbeddings, int padTokenId,
                          int bosTokenId, int eosTokenId) {

    public int headSize() {
        return hiddenSize / numHeads;
    }

    public boolean hasEmbedProjection() {
        return wordEmbedProjDim != hiddenSize;
    }
}
