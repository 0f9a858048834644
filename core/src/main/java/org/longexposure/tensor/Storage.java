package org.longexposure.tensor;

/**
 * Where a tensor's bytes live. {@link HostStorage} is host memory; device storage lives in the backend module
 * that owns the device. Not sealed: without JPMS a sealed interface would force all kinds into this package.
 */
public interface Storage {
    /** Size of the storage in bytes. */
    long byteSize();
}
