package org.longexposure.peft;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.longexposure.model.Linear;

/** PEFT's target_modules semantics: suffix names, full paths, one regex; no-match is an error with candidates. */
class TargetModulesTest {
    private static List<Linear> opt(int layers) {
        List<Linear> all = new ArrayList<>();
        for (int i = 0; i < layers; i++) {
            for (String m : List.of("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
                    "fc1", "fc2")) {
                all.add(new Linear("model.decoder.layers." + i + "." + m, null, null));
            }
        }
        return all;
    }

    private static List<String> paths(List<Linear> l) {
        return l.stream().map(Linear::path).toList();
    }

    @Test
    void suffixesSelectEveryLayerInModelOrder() {
        List<Linear> got = TargetModules.resolve(List.of("v_proj", "q_proj"), opt(2));
        assertThat(paths(got)).containsExactly("model.decoder.layers.0.self_attn.q_proj",
                "model.decoder.layers.0.self_attn.v_proj", "model.decoder.layers.1.self_attn.q_proj",
                "model.decoder.layers.1.self_attn.v_proj");
    }

    @Test
    void dottedSuffixAndFullPathAreNotRegexes() {
        assertThat(paths(TargetModules.resolve(List.of("self_attn.out_proj"), opt(2)))).hasSize(2);
        assertThat(paths(TargetModules.resolve(List.of("model.decoder.layers.1.fc2"), opt(2))))
                .containsExactly("model.decoder.layers.1.fc2");
        // "fc1" must not match "fc12"-like names, only whole components
        assertThat(TargetModules.matches("c1", "model.decoder.layers.0.fc1")).isFalse();
    }

    @Test
    void aRegexMustMatchTheWholePath() {
        List<Linear> got = TargetModules.resolve(List.of(".*layers\\.1\\..*(q|v)_proj"), opt(3));
        assertThat(paths(got)).containsExactly("model.decoder.layers.1.self_attn.q_proj",
                "model.decoder.layers.1.self_attn.v_proj");
    }

    @Test
    void anEntryMatchingNothingListsCandidates() {
        assertThatThrownBy(() -> TargetModules.resolve(List.of("q_proj", "c_attn"), opt(1)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("'c_attn' matches no linear layer")
                .hasMessageContaining("q_proj").hasMessageContaining("fc2")
                .hasMessageContaining("model.decoder.layers.0.self_attn.q_proj");
        assertThatThrownBy(() -> TargetModules.resolve(List.of("(unclosed"), opt(1)))
                .hasMessageContaining("not a valid regular expression");
    }
}
