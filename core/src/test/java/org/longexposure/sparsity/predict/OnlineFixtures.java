package org.longexposure.sparsity.predict;

import java.nio.file.Path;
import java.util.SplittableRandom;
import org.longexposure.io.data.Batch;

/** The tiny pre-LN OPT test model and seeded padded micro-batches for it, shared by the online-sparsity tests. */
final class OnlineFixtures {
    private OnlineFixtures() {
    }

    /** The fixture model's folder (test resources, fixtures/opt-preln/model). */
    static Path model() throws Exception {
        return Path.of(OnlineFixtures.class.getResource("/fixtures/opt-preln/meta.json").toURI()).getParent()
                .resolve("model");
    }

    /** B sequences of T random ids in [3, vocab); sequence b has its last 3·b positions padded (id 1, mask 0). */
    static Batch batch(SplittableRandom rng, int b, int t, int vocab) {
        int[] ids = new int[b * t];
        int[] mask = new int[b * t];
        for (int i = 0; i < ids.length; i++) {
            boolean real = i % t < t - 3 * (i / t);
            ids[i] = real ? 3 + rng.nextInt(vocab - 3) : 1;
            mask[i] = real ? 1 : 0;
        }
        return new Batch(b, t, ids, mask, ids.clone());
    }
}
