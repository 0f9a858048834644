// Helpers of the step profiler (org.longexposure.cuda.backend.ProfilingBackend), never used by training.
//
//   profile_hold_ns(ns):   grid 1, block 1: spins on the global timer until ns nanoseconds have passed since it
//                          started. Queued ahead of a stretch of work, it holds the stream while the host queues
//                          that work, so that the events around each op then time the GPU alone, not the host's
//                          launches.

extern "C" __global__ void profile_hold_ns(long long ns) {
    unsigned long long start;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
    unsigned long long now = start;
    while ((long long) (now - start) < ns) {
        __nanosleep(1000);
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    }
}
