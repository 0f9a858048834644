/**
 * Tensors: dumb data with a dtype and a shape. No math lives here.
 *
 * <p>Shape-letter legend used in every comment and name across the project (rule C4):
 * <ul>
 *   <li>{@code B} batch (sequences in a micro-batch), {@code T} sequence length, {@code N} = B·T rows</li>
 *   <li>{@code C} model width (hidden size), {@code P} OPT's word_embed_proj_dim</li>
 *   <li>{@code NH} attention heads, {@code KVH} key/value heads, {@code HS} head size (C / NH)</li>
 *   <li>{@code H} FFN hidden size (ffn_dim), {@code V} vocabulary size, {@code L} layers</li>
 *   <li>{@code R} LoRA rank, {@code BQ}/{@code BK} attention block sizes, {@code BN} neuron block size</li>
 *   <li>{@code M}, {@code K} (and {@code N} inside GEMM code) are the generic matrix-product dimensions</li>
 * </ul>
 * Gradient buffers are named {@code dFoo}; per-layer views {@code lFoo}.
 */
package org.longexposure.tensor;
