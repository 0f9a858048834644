package org.longexposure.io;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

class InputFormatExceptionTest {
    @Test
    void rendersFileSubjectAndProblemOnOneLine() {
        Path p = Path.of("model.safetensors");
        InputFormatException e = InputFormatException.tensor(p, "model.decoder.layers.0.fc1.weight",
                "data offsets [100, 900) run past the end of the data section (512 bytes)");
        assertThat(e.getMessage()).isEqualTo("model.safetensors: tensor 'model.decoder.layers.0.fc1.weight': "
                + "data offsets [100, 900) run past the end of the data section (512 bytes)");
        assertThat(e.path()).contains(p);
        assertThat(e.subject()).contains("tensor 'model.decoder.layers.0.fc1.weight'");
        assertThat(e.problem()).startsWith("data offsets");
    }

    @Test
    void leavesOutWhatIsAbsent() {
        assertThat(InputFormatException.file(null, "bad").getMessage()).isEqualTo("bad");
        assertThat(InputFormatException.field(null, "a.b", "bad").getMessage()).isEqualTo("field 'a.b': bad");
        assertThat(InputFormatException.file(Path.of("c.json"), "bad").getMessage()).isEqualTo("c.json: bad");
    }

    @Test
    void quotesEscapeControlCharactersAndCutLongText() {
        assertThat(InputFormatException.quote("a\nb\u0000")).isEqualTo("'a\\u000ab\\u0000'");
        String quoted = InputFormatException.quote("x".repeat(500));
        assertThat(quoted).hasSize(120 + 3).endsWith("x…'");
        assertThat(InputFormatException.file(Path.of("f"), "line\nbreak").getMessage()).isEqualTo(
                "f: line\\u000abreak");
    }

    @Test
    void editDistanceMatchesTextbookExamples() {
        assertThat(NameSuggestions.distance("kitten", "sitting")).isEqualTo(3);
        assertThat(NameSuggestions.distance("flaw", "lawn")).isEqualTo(2);
        assertThat(NameSuggestions.distance("", "abc")).isEqualTo(3);
        assertThat(NameSuggestions.distance("same", "same")).isZero();
    }

    @Test
    void suggestsClosestNamesFirstKeepingOrderOnTies() {
        List<String> names = List.of("lm_head.weight", "layers.0.fc2.weight", "layers.0.fc1.weight",
                "layers.1.fc1.weight");
        assertThat(NameSuggestions.closest("layers.0.fc1.bias", names, 3))
                .containsExactly("layers.0.fc1.weight", "layers.0.fc2.weight", "layers.1.fc1.weight");
        assertThat(NameSuggestions.closest("x", List.of(), 3)).isEmpty();
    }
}
