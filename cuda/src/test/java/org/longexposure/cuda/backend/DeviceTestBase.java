package org.longexposure.cuda.backend;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.TestInstance;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.cuda.CudaException;

/**
 * The two backends an op-family device test compares: the CUDA backend on device 0 and the CPU backend as the
 * oracle. Where the CUDA backend cannot be opened (no driver library, no GPU), every test of the class is
 * reported as skipped with the reason, e.g. "no CUDA device: could not load libcuda.so.1: tried …"; any other
 * failure to open fails the tests.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class DeviceTestBase {
    protected CudaBackend gpu;
    protected CpuBackend cpu;
    private String noDevice;

    @BeforeAll
    void openBackends() {
        try {
            gpu = CudaBackend.open(CudaOptions.defaults());
        } catch (CudaException e) {
            noDevice = "no CUDA device: " + e.getMessage();
            System.err.println("SKIPPED " + getClass().getSimpleName() + ": " + noDevice);
        }
        cpu = new CpuBackend(2);
    }

    @BeforeEach
    void requireDevice() {
        Assumptions.assumeTrue(gpu != null, () -> noDevice);
    }

    @AfterAll
    void closeBackends() {
        if (gpu != null) {
            gpu.close();
        }
        if (cpu != null) {
            cpu.close();
        }
    }
}
