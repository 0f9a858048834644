/**
 * Hugging Face {@code config.json}, read leniently into a typed view
 * ({@link org.longexposure.io.config.HfConfig}); interpreting its fields is the model layer's job.
 */
package org.longexposure.io.config;
