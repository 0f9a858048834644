package org.longexposure.io.safetensors;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.MalformedInputException;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.longexposure.io.InputFormatException;
import org.longexposure.io.JsonText;
import org.longexposure.tensor.Tensor;

/**
 * The weights of a Hugging Face model folder, in one file or sharded, behind one accessor API. If the folder
 * holds {@code model.safetensors} that file is used; otherwise {@code model.safetensors.index.json}, whose
 * {@code weight_map} maps each tensor name to the shard file holding it (as written by transformers'
 * {@code save_pretrained} with {@code max_shard_size}); each shard is mapped once ({@link SafetensorsFile}).
 * The names are the index's, in its order; tensors a shard holds beyond those are not exposed.
 *
 * <p>Errors ({@link InputFormatException}): neither file present (naming both), an index that is not JSON or
 * has no {@code weight_map} object of strings, a shard name that leaves the folder, a shard that is missing or
 * invalid, or a tensor the index places in a shard that does not hold it.
 */
public final class ShardedCheckpoint implements AutoCloseable {
    /** The single-file weights name. */
    public static final String SINGLE_FILE = "model.safetensors";
    /** The index of a sharded checkpoint. */
    public static final String INDEX_FILE = "model.safetensors.index.json";

    private final Path folder;
    private final Path source; // model.safetensors or the index: the file that lists the names
    private final List<SafetensorsFile> shards; // each opened once, in first-use order
    private final Map<String, SafetensorsFile> byName; // tensor name → its shard, in index (or header) order

    private ShardedCheckpoint(Path folder, Path source, List<SafetensorsFile> shards,
            Map<String, SafetensorsFile> byName) {
        this.folder = folder;
        this.source = source;
        this.shards = List.copyOf(shards);
        this.byName = Collections.unmodifiableMap(byName);
    }

    /** Opens the weights of model folder {@code folder}. */
    public static ShardedCheckpoint open(Path folder) {
        if (!Files.isDirectory(folder)) {
            throw InputFormatException.file(folder, Files.exists(folder) ? "is a file, expected a model folder"
                    : "model folder not found");
        }
        Path single = folder.resolve(SINGLE_FILE);
        Path index = folder.resolve(INDEX_FILE);
        if (Files.exists(single)) {
            SafetensorsFile f = SafetensorsFile.open(single);
            Map<String, SafetensorsFile> byName = new LinkedHashMap<>();
            for (String name : f.names()) {
                byName.put(name, f);
            }
            return new ShardedCheckpoint(folder, single, List.of(f), byName);
        }
        if (!Files.exists(index)) {
            throw InputFormatException.file(folder, "no weights found: looked for " + SINGLE_FILE + " and "
                    + INDEX_FILE);
        }
        return openSharded(folder, index);
    }

    private static ShardedCheckpoint openSharded(Path folder, Path index) {
        Map<String, String> weightMap = readWeightMap(index);
        Map<String, SafetensorsFile> shardByFile = new LinkedHashMap<>();
        Map<String, SafetensorsFile> byName = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, String> e : weightMap.entrySet()) {
                String shardName = e.getValue();
                SafetensorsFile shard = shardByFile.get(shardName);
                if (shard == null) {
                    shard = openShard(folder, index, e.getKey(), shardName);
                    shardByFile.put(shardName, shard);
                }
                if (!shard.contains(e.getKey())) {
                    throw InputFormatException.tensor(shard.path(), e.getKey(), "listed in " + INDEX_FILE
                            + " as stored in this shard, but not found in it");
                }
                byName.put(e.getKey(), shard);
            }
        } catch (RuntimeException | Error ex) {
            shardByFile.values().forEach(SafetensorsFile::close);
            throw ex;
        }
        return new ShardedCheckpoint(folder, index, new ArrayList<>(shardByFile.values()), byName);
    }

    private static SafetensorsFile openShard(Path folder, Path index, String tensor, String shardName) {
        Path base = folder.toAbsolutePath().normalize();
        Path shardPath = base.resolve(shardName).normalize();
        if (shardName.isEmpty() || !shardPath.startsWith(base) || shardPath.equals(base)) {
            throw new InputFormatException(index, "weight_map entry " + InputFormatException.quote(tensor),
                    "shard " + InputFormatException.quote(shardName) + " is not a file inside the model folder");
        }
        Path shown = folder.resolve(shardName);
        if (!Files.exists(shardPath)) {
            throw new InputFormatException(index, "weight_map entry " + InputFormatException.quote(tensor),
                    "shard " + InputFormatException.quote(shardName) + " not found (looked for " + shown + ")");
        }
        return SafetensorsFile.open(shown);
    }

    /** The index's {@code weight_map}: tensor name → shard file name, in file order. */
    private static Map<String, String> readWeightMap(Path index) {
        JsonNode root;
        try {
            root = SafetensorsFormat.HEADER_READER.readTree(Files.readString(index));
        } catch (JacksonException e) {
            throw JsonText.syntaxError(index, "index", e);
        } catch (NoSuchFileException e) {
            throw InputFormatException.file(index, "file not found");
        } catch (AccessDeniedException e) {
            throw InputFormatException.file(index, "permission denied");
        } catch (MalformedInputException e) {
            throw InputFormatException.file(index, "not valid UTF-8 text");
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + index, e);
        }
        JsonNode map = root == null ? null : root.get("weight_map");
        if (map == null || !map.isObject()) {
            throw InputFormatException.field(index, "weight_map", "is "
                    + JsonText.describe(map) + ", expected an object mapping tensor names to shard files");
        }
        Map<String, String> out = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : map.properties()) {
            if (!e.getValue().isTextual()) {
                throw InputFormatException.field(index, "weight_map." + e.getKey(), "is "
                        + JsonText.describe(e.getValue()) + ", expected a shard file name");
            }
            out.put(e.getKey(), e.getValue().textValue());
        }
        return out;
    }

    /** The model folder. */
    public Path path() {
        return folder;
    }

    /** The tensor names, in index order (or header order for a single file). */
    public Set<String> names() {
        return byName.keySet();
    }

    public boolean contains(String name) {
        return byName.containsKey(name);
    }

    /** The header entry of tensor {@code name}; an error naming close names present if there is none. */
    public TensorInfo info(String name) {
        return shardOf(name).info(name);
    }

    /** Tensor {@code name}, zero-copy over its mapped shard, valid until {@link #close}. */
    public Tensor tensor(String name) {
        return shardOf(name).tensor(name);
    }

    /** The file holding tensor {@code name}, for error messages about its contents. */
    public Path fileOf(String name) {
        return shardOf(name).path();
    }

    /** The file that lists the tensor names: {@code model.safetensors} or the index. */
    public Path source() {
        return source;
    }

    /** The opened files: one for a single-file checkpoint, else one per shard named in the index. */
    public List<SafetensorsFile> files() {
        return shards;
    }

    /** Unmaps every shard; tensors obtained from this checkpoint must not be used afterwards. */
    @Override
    public void close() {
        shards.forEach(SafetensorsFile::close);
    }

    private SafetensorsFile shardOf(String name) {
        SafetensorsFile shard = byName.get(name);
        if (shard == null) {
            throw SafetensorsFile.missing(source, name, byName.keySet());
        }
        return shard;
    }

    @Override
    public String toString() {
        return "ShardedCheckpoint[" + folder + ", " + byName.size() + " tensors in " + shards.size() + " files]";
    }
}
