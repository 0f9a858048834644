package org.longexposure.arch;

import static org.assertj.core.api.Assertions.assertThat;

import com.tngtech.archunit.core.domain.Dependency;
import com.tngtech.archunit.core.domain.JavaClass;
import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The package layering of ARCHITECTURE.md B2: a package may depend only on packages of a lower layer (and on
 * itself); peers of one layer never see each other. Also: only {@code backend.cpu} touches the Vector API, and
 * nothing outside it names a CPU backend class.
 */
class LayeringTest {
    /** Package prefix → layer, most specific first. */
    private static final Map<String, Integer> LAYERS = new LinkedHashMap<>();

    static {
        LAYERS.put("org.longexposure.io.peft", 6);
        LAYERS.put("org.longexposure.backend.cpu", 3);
        LAYERS.put("org.longexposure.io.safetensors", 2);
        LAYERS.put("org.longexposure.io.tokenizer", 2);
        LAYERS.put("org.longexposure.io.config", 2);
        LAYERS.put("org.longexposure.io.data", 2);
        LAYERS.put("org.longexposure.io", 2);
        LAYERS.put("org.longexposure.backend", 2);
        LAYERS.put("org.longexposure.tensor", 1);
        LAYERS.put("org.longexposure.model", 4);
        LAYERS.put("org.longexposure.peft", 5);
        LAYERS.put("org.longexposure.sparsity", 5);
        LAYERS.put("org.longexposure.train", 7);
    }

    private static final JavaClasses CLASSES = new ClassFileImporter()
            .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
            .importPackages("org.longexposure");

    private static String group(String pkg) {
        for (String prefix : LAYERS.keySet()) {
            if (pkg.equals(prefix) || pkg.startsWith(prefix + ".")) {
                return prefix;
            }
        }
        return null;
    }

    @Test
    void packagesDependOnlyOnLowerLayers() {
        List<String> violations = new ArrayList<>();
        for (JavaClass c : CLASSES) {
            String from = group(c.getPackageName());
            if (from == null) {
                continue;
            }
            for (Dependency d : c.getDirectDependenciesFromSelf()) {
                String to = group(d.getTargetClass().getPackageName());
                if (to == null || to.equals(from)) {
                    continue;
                }
                boolean ioRoot = to.equals("org.longexposure.io") && from.startsWith("org.longexposure.io.");
                if (!ioRoot && LAYERS.get(to) >= LAYERS.get(from)) {
                    violations.add(c.getName() + " (" + from + ", layer " + LAYERS.get(from) + ") -> "
                            + d.getTargetClass().getName() + " (layer " + LAYERS.get(to) + ")");
                }
            }
        }
        assertThat(violations).as("layering violations").isEmpty();
    }

    @Test
    void onlyTheCpuBackendUsesTheVectorApiOrNamesCpuClasses() {
        List<String> violations = new ArrayList<>();
        for (JavaClass c : CLASSES) {
            if (c.getPackageName().startsWith("org.longexposure.backend.cpu")) {
                continue;
            }
            for (Dependency d : c.getDirectDependenciesFromSelf()) {
                String target = d.getTargetClass().getPackageName();
                if (target.startsWith("jdk.incubator.vector") || target.startsWith("org.longexposure.backend.cpu")) {
                    violations.add(c.getName() + " -> " + d.getTargetClass().getName());
                }
            }
        }
        assertThat(violations).isEmpty();
    }
}
