package org.longexposure.cuda.blas;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.longexposure.cuda.Gpu;
import org.longexposure.cuda.backend.CudaBackend;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * {@link CublasGemm} against a float64 product of the same bf16 inputs, on awkward shapes, every transpose pair,
 * padded leading dimensions, a 2-byte-aligned operand, both output dtypes, bias and ReLU epilogues, alpha/beta.
 *
 * <p>Bound per element: {@code |got - ref| <= r·(|ref| + |alpha·Σ a·b| + |beta·c| + |bias|) + 1e-4·Σ_l |a_il·b_lj|}.
 * The last term covers fp32 accumulation (at most about K·2^-24 of the absolute sum: < 2e-5 here for K ≤ 200).
 * The first covers rounding to D's dtype: r = 2^-8 (half an ulp of bf16's 8-bit significand, relative) for bf16,
 * 1e-6 for f32, applied to each intermediate the epilogue may round on its own (product, + C, + bias): on an
 * H200, cuBLASLt's bf16 epilogue with bias and beta = 1 was seen 1.4 ulp away from the exactly rounded result,
 * more than one final rounding explains. A transposed or mis-strided operand, a dropped bias or a wrong
 * alpha/beta breaks the bound by orders of magnitude. Strided batches: each item against its own float64 product
 * under the same bound, the gaps between items left untouched.
 */
@Tag("gpu")
class CublasGemmDeviceTest {
    private static CudaBackend be;

    @BeforeAll
    static void open() {
        be = Gpu.openOrSkip();
    }

    @AfterAll
    static void close() {
        if (be != null) {
            be.close();
        }
    }

    @Test
    void matchesTheFloat64ProductOnAwkwardShapes() {
        int[][] shapes = {{37, 53, 71}, {1, 129, 200}, {130, 7, 33}, {257, 300, 95}, {64, 64, 64}};
        SplittableRandom rnd = new SplittableRandom(21);
        int c = 0;
        for (int[] s : shapes) {
            for (int t = 0; t < 4; t++, c++) {
                boolean transA = (t & 1) != 0;
                boolean transB = (t & 2) != 0;
                DType dType = c % 2 == 0 ? DType.BF16 : DType.F32;
                boolean bias = c % 3 != 0;
                boolean relu = c % 4 >= 2;
                float alpha = c % 5 == 0 ? 0.75f : 1f;
                float beta = c % 3 == 2 ? 1f : 0f;
                int pad = c % 3 == 1 ? 3 : 0;
                boolean misalignA = c % 7 == 3;
                check(rnd, s[0], s[1], s[2], transA, transB, pad, misalignA, alpha, beta, dType, bias, dType, relu);
            }
        }
    }

    @Test
    void plansAreCachedPerProblem() {
        SplittableRandom rnd = new SplittableRandom(2);
        int before = be.gemm().planCount();
        check(rnd, 19, 23, 29, false, true, 0, false, 1f, 0f, DType.F32, false, DType.F32, false);
        check(rnd, 19, 23, 29, false, true, 0, false, 1f, 0f, DType.F32, false, DType.F32, false);
        assertThat(be.gemm().planCount()).isEqualTo(before + 1);
        check(rnd, 19, 23, 30, false, true, 0, false, 1f, 0f, DType.F32, false, DType.F32, false);
        assertThat(be.gemm().planCount()).isEqualTo(before + 2);
    }

    /**
     * A strided batch of three (the sparse MLP's layout: A rows of consecutive token blocks, B and the bias one per
     * item, D rows), with the bias + ReLU epilogue and a bias per item, then with one shared bias and no ReLU.
     */
    @Test
    void stridedBatchesMatchEachItemsProduct() {
        SplittableRandom rnd = new SplittableRandom(5);
        int batch = 3;
        int m = 37;
        int n = 53;
        int k = 72;
        long strideA = (long) m * k;
        long strideB = (long) n * k + 8;
        long strideD = (long) m * n + 16;
        long strideBias = 64;
        float[] a = Gpu.randomBf16(rnd, (int) (batch * strideA), 1f);
        float[] b = Gpu.randomBf16(rnd, (int) (batch * strideB), 1f);
        float[] bias = Gpu.randomBf16(rnd, (int) (batch * strideBias), 1f);
        float[] d0 = Gpu.randomBf16(rnd, (int) (batch * strideD), 1f);
        Tensor da = Gpu.upload(be, DType.BF16, a, a.length);
        Tensor db = Gpu.upload(be, DType.BF16, b, b.length);
        Tensor dbias = Gpu.upload(be, DType.BF16, bias, bias.length);
        for (boolean perItem : new boolean[] {true, false}) {
            Tensor dd = Gpu.upload(be, DType.BF16, d0, d0.length);
            be.gemm().matmulStridedBatched(false, true, m, n, k, 1f, CudaBackend.ptr(da), k, strideA,
                    CudaBackend.ptr(db), k, strideB, 0f, CudaBackend.ptr(dd), n, strideD, batch, DType.BF16,
                    CudaBackend.ptr(dbias), perItem ? strideBias : 0, DType.BF16, perItem, be.stream());
            float[] got = Gpu.download(be, dd);
            for (int t = 0; t < batch; t++) {
                for (int i = 0; i < m; i++) {
                    for (int j = 0; j < n; j++) {
                        double sum = 0;
                        double abs = 0;
                        for (int l = 0; l < k; l++) {
                            double x = a[(int) (t * strideA) + i * k + l];
                            double y = b[(int) (t * strideB) + j * k + l];
                            sum += x * y;
                            abs += Math.abs(x * y);
                        }
                        double b0 = bias[(int) ((perItem ? t * strideBias : 0) + j)];
                        double ref = perItem ? Math.max(0, sum + b0) : sum + b0;
                        double tol = 0x1p-8 * (Math.abs(ref) + Math.abs(sum) + Math.abs(b0))
                                + 1e-4 * (abs + Math.abs(b0));
                        assertThat((double) got[(int) (t * strideD) + i * n + j])
                                .as("item %d D[%d,%d], bias per item %s", t, i, j, perItem)
                                .isCloseTo(ref, org.assertj.core.data.Offset.offset(tol));
                    }
                }
                for (long g = t * strideD + (long) m * n; g < (t + 1) * strideD; g++) {
                    assertThat(got[(int) g]).as("gap element %d untouched", g).isEqualTo(d0[(int) g]);
                }
            }
        }
    }

    /** cuBLASLt 13 has no f32 bias for a bf16 output; CublasGemm refuses the combination up front. */
    @Test
    void biasMustHaveTheOutputDtype() {
        Tensor a = be.allocate(DType.BF16, 8, 8);
        Tensor bias = be.allocate(DType.F32, 8);
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> be.gemm().matmul(false, false, 8, 8, 8, 1f,
                        CudaBackend.ptr(a), 8, CudaBackend.ptr(a), 8, 0f, CudaBackend.ptr(a), 8, DType.BF16,
                        CudaBackend.ptr(bias), DType.F32, false, be.stream()))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("bias dtype f32")
                .hasMessageContaining("output dtype bf16");
    }

    private static void check(SplittableRandom rnd, int m, int n, int k, boolean transA, boolean transB, int pad,
                              boolean misalignA, float alpha, float beta, DType dType, boolean withBias,
                              DType biasType, boolean relu) {
        int lda = (transA ? m : k) + pad;
        int ldb = (transB ? k : n) + pad;
        int ldd = n + pad;
        int aRows = transA ? k : m;
        int bRows = transB ? n : k;
        int shift = misalignA ? 1 : 0;
        float[] a = Gpu.randomBf16(rnd, aRows * lda + shift, 1f);
        float[] b = Gpu.randomBf16(rnd, bRows * ldb, 1f);
        float[] d0 = Gpu.randomBf16(rnd, m * ldd, 1f);
        float[] bias = Gpu.randomBf16(rnd, n, 1f);
        Tensor da = Gpu.upload(be, DType.BF16, a, a.length);
        Tensor db = Gpu.upload(be, DType.BF16, b, b.length);
        Tensor dd = Gpu.upload(be, dType, d0, d0.length);
        Tensor dbias = Gpu.upload(be, biasType, bias, n);
        be.gemm().matmul(transA, transB, m, n, k, alpha, CudaBackend.ptr(da) + 2L * shift, lda, CudaBackend.ptr(db),
                ldb, beta, CudaBackend.ptr(dd), ldd, dType, withBias ? CudaBackend.ptr(dbias) : 0, biasType, relu,
                be.stream());
        float[] got = Gpu.download(be, dd);
        double r = dType == DType.BF16 ? 0x1p-8 : 1e-6;
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double sum = 0;
                double abs = 0;
                for (int l = 0; l < k; l++) {
                    double x = transA ? a[shift + l * lda + i] : a[shift + i * lda + l];
                    double y = transB ? b[j * ldb + l] : b[l * ldb + j];
                    sum += x * y;
                    abs += Math.abs(x * y);
                }
                double ref = alpha * sum + beta * d0[i * ldd + j] + (withBias ? bias[j] : 0);
                if (relu) {
                    ref = Math.max(0, ref);
                }
                double c = beta * d0[i * ldd + j];
                double b0 = withBias ? bias[j] : 0;
                double tol = r * (Math.abs(ref) + Math.abs(alpha * sum) + Math.abs(c) + Math.abs(b0))
                        + 1e-4 * (abs + Math.abs(c) + Math.abs(b0));
                assertThat((double) got[i * ldd + j]).as("D[%d,%d] of m=%d n=%d k=%d transA=%s transB=%s D %s "
                                + "bias=%s relu=%s alpha=%s beta=%s pad=%d misalignA=%s", i, j, m, n, k, transA,
                        transB, dType, withBias, relu, alpha, beta, pad, misalignA)
                        .isCloseTo(ref, org.assertj.core.data.Offset.offset(tol));
            }
            for (int j = n; j < ldd; j++) {
                assertThat(got[i * ldd + j]).as("padding D[%d,%d] untouched", i, j).isEqualTo(d0[i * ldd + j]);
            }
        }
    }
}
