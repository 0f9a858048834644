/**
 * The test oracle's toolbox, independent of the engine: float64 reference ops ({@code reference}), the one
 * tolerance check used everywhere ({@link org.longexposure.testkit.TensorAssert} with rows from
 * {@link org.longexposure.testkit.Tolerances}), central-difference gradient checks
 * ({@link org.longexposure.testkit.GradCheck}) and seeded random fills ({@link org.longexposure.testkit.Rng}).
 * Plain {@code double[]} arrays with explicit dims; no threads, no Vector API, written for obviousness.
 */
package org.longexposure.testkit;
