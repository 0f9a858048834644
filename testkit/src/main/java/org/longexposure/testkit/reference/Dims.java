package org.longexposure.testkit.reference;

/** Length checks shared by the reference ops: a wrong length is a bug in the test, named clearly. */
final class Dims {
    private Dims() {
    }

    static void require(String what, double[] a, long expected) {
        if (a == null) {
            throw new IllegalArgumentException(what + ": null, expected " + expected + " elements");
        }
        if (a.length != expected) {
            throw new IllegalArgumentException(what + ": expected " + expected + " elements, got " + a.length);
        }
    }

    static void require(String what, int[] a, long expected) {
        if (a == null || a.length != expected) {
            throw new IllegalArgumentException(what + ": expected " + expected + " elements, got "
                    + (a == null ? "null" : a.length));
        }
    }

    static void requireOptional(String what, double[] a, long expected) {
        if (a != null) {
            require(what, a, expected);
        }
    }

    static long product(int a, int b) {
        if (a < 0 || b < 0) {
            throw new IllegalArgumentException("negative dimension " + a + " x " + b);
        }
        return (long) a * b;
    }
}
