/**
 * Float64 reference twins of the engine's op families: {@code RefLinear}, {@code RefLayerNorm},
 * {@code RefActivation}, {@code RefEmbedding}, {@code RefCrossEntropy}, {@code RefAdamW}, {@code RefGradClip}.
 * Each is a set of static forward/backward methods over row-major {@code double[]} arrays with explicit dims,
 * following the argument order of the engine's interfaces (outputs, saved, inputs, weights, then scalars and
 * dims). Plain loops, written for obviousness; every backward is proven against central differences by the
 * tests next to this package.
 */
package org.longexposure.testkit.reference;
