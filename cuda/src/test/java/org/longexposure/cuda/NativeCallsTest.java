package org.longexposure.cuda;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.lang.foreign.SymbolLookup;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** The status check and symbol binding shared by the CUDA library bindings, without a GPU or a CUDA library. */
class NativeCallsTest {
    @Test
    void zeroStatusPassesWithoutBuildingTheMessage() {
        AtomicInteger argsBuilt = new AtomicInteger();
        NativeCalls.check("cuFoo", () -> "n=" + argsBuilt.incrementAndGet(), () -> 0, s -> "NAME " + s);
        assertThat(argsBuilt).hasValue(0);
    }

    @Test
    void nonZeroStatusNamesCallArgumentsAndDescription() {
        assertThatThrownBy(() -> NativeCalls.check("cuMemAlloc_v2", () -> "17 bytes", () -> 2,
                s -> "CUDA_ERROR_" + s + " (text)"))
                .isInstanceOfSatisfying(CudaException.class, e -> {
                    assertThat(e.getMessage()).isEqualTo("cuMemAlloc_v2(17 bytes): CUDA_ERROR_2 (text)");
                    assertThat(e.code()).isEqualTo(2);
                });
    }

    @Test
    void checkedExceptionOfTheDowncallIsWrappedUncheckedOnesPass() {
        IOException cause = new IOException("boom");
        assertThatThrownBy(() -> NativeCalls.check("f", () -> "a", () -> {
            throw cause;
        }, s -> "?")).isInstanceOf(CudaException.class).hasCause(cause).hasMessage("f(a): " + cause);
        IllegalStateException direct = new IllegalStateException("direct");
        assertThatThrownBy(() -> NativeCalls.check("f", () -> "a", () -> {
            throw direct;
        }, s -> "?")).isSameAs(direct);
    }

    @Test
    void missingSymbolNamesTheLibrary() {
        SymbolLookup empty = name -> Optional.empty();
        assertThatThrownBy(() -> NativeCalls.bind(empty, "libx.so.1", "xInit", JAVA_INT))
                .isInstanceOf(CudaException.class).hasMessage("symbol xInit not found in libx.so.1");
    }
}
