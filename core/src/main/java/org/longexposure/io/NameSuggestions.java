package org.longexposure.io;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.List;

/**
 * "Did you mean" for error messages: the names of a collection closest to a wanted one by edit distance
 * (Levenshtein: insertions, deletions and substitutions each cost 1). Ties keep the collection's order.
 */
public final class NameSuggestions {
    private NameSuggestions() {
    }

    /** Up to {@code max} names from {@code present}, closest to {@code wanted} first. */
    public static List<String> closest(String wanted, Collection<String> present, int max) {
        record Scored(String name, int distance, int order) {
        }
        List<Scored> scored = new ArrayList<>(present.size());
        int order = 0;
        for (String name : present) {
            scored.add(new Scored(name, distance(wanted, name), order++));
        }
        scored.sort(Comparator.comparingInt(Scored::distance).thenComparingInt(Scored::order));
        return scored.stream().limit(max).map(Scored::name).toList();
    }

    /** Levenshtein distance between {@code a} and {@code b}, with two rolling rows of length |b|+1. */
    public static int distance(String a, String b) {
        int[] prev = new int[b.length() + 1];
        int[] cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) {
            prev[j] = j;
        }
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                int subst = prev[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1);
                cur[j] = Math.min(subst, Math.min(prev[j], cur[j - 1]) + 1);
            }
            int[] t = prev;
            prev = cur;
            cur = t;
        }
        return prev[b.length()];
    }
}
