/**
 * The safetensors format (Hugging Face {@code safetensors}): a memory-mapped, validating reader
 * ({@link org.longexposure.io.safetensors.SafetensorsFile}), model folders with one file or an index and
 * shards ({@link org.longexposure.io.safetensors.ShardedCheckpoint}), and an atomic writer
 * ({@link org.longexposure.io.safetensors.SafetensorsWriter}). Tensors read are zero-copy host views of the
 * mapped file.
 */
package org.longexposure.io.safetensors;
