package org.longexposure.peft;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;
import org.longexposure.model.Linear;

/**
 * Resolves PEFT {@code target_modules} against HF module paths, as PEFT does: a list entry matches a module whose
 * path equals it or ends with {@code "." + entry}; a single entry containing regex metacharacters is a regular
 * expression that must match the whole path ({@code re.fullmatch}). Every entry must match at least one module,
 * otherwise the error lists candidate paths.
 */
public final class TargetModules {
    private static final Pattern REGEX_HINT = Pattern.compile("[\\\\^$.*+?()\\[\\]{}|]");

    private TargetModules() {
    }

    /** The linears of {@code candidates} selected by {@code targets}, in model order. */
    public static List<Linear> resolve(List<String> targets, List<Linear> candidates) {
        List<Linear> selected = new ArrayList<>();
        for (String target : targets) {
            List<Linear> hits = candidates.stream().filter(l -> matches(target, l.path())).toList();
            if (hits.isEmpty()) {
                throw new IllegalArgumentException("target_modules entry '" + target
                        + "' matches no linear layer; candidates are module names such as "
                        + suffixes(candidates) + " or full paths such as " + candidates.getFirst().path());
            }
            for (Linear l : hits) {
                if (!selected.contains(l)) {
                    selected.add(l);
                }
            }
        }
        List<Linear> ordered = new ArrayList<>(candidates);
        ordered.retainAll(selected);
        return List.copyOf(ordered);
    }

    static boolean matches(String target, String path) {
        Pattern regex = regexOf(target);
        return regex != null ? regex.matcher(path).matches() : path.equals(target) || path.endsWith("." + target);
    }

    /**
     * Checks that {@code target} can be matched against module paths, i.e. that an entry read as a regular
     * expression compiles, so that a bad entry is reported where it is read rather than when a model is adapted.
     *
     * @throws IllegalArgumentException naming the entry and what is wrong with it
     */
    public static void check(String target) {
        regexOf(target);
    }

    /** The regular expression {@code target} stands for, or null when it is a plain module name or path. */
    private static Pattern regexOf(String target) {
        if (!REGEX_HINT.matcher(target).find() || isPlainDottedPath(target)) {
            return null;
        }
        try {
            return Pattern.compile(target);
        } catch (PatternSyntaxException e) {
            throw new IllegalArgumentException("target_modules entry '" + target
                    + "' is not a valid regular expression: " + e.getDescription());
        }
    }

    /** A dotted module path like {@code self_attn.q_proj} is a suffix, not a regex. */
    private static boolean isPlainDottedPath(String s) {
        return s.matches("[A-Za-z0-9_]+(\\.[A-Za-z0-9_]+)*");
    }

    private static List<String> suffixes(List<Linear> candidates) {
        return candidates.stream().map(l -> l.path().substring(l.path().lastIndexOf('.') + 1)).distinct().toList();
    }
}
