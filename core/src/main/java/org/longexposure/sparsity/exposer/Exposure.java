package org.longexposure.sparsity.exposer;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.List;

/**
 * The result of one {@link Exposer} pass: immutable (arrays are copied in and out). {@link #toJson()} gives the
 * report's object, keys in snake_case.
 *
 * @param config       the profiling constants
 * @param microBatches number of micro-batches profiled
 * @param realTokens   number of real (unpadded) tokens over all micro-batches
 * @param layers       one entry per decoder layer, in order
 */
public record Exposure(Exposer.Config config, int microBatches, long realTokens, List<Layer> layers) {
    public Exposure {
        layers = List.copyOf(layers);
    }

    /**
     * One layer's measures (see {@link Exposer} for the definitions).
     *
     * @param layer              layer index
     * @param tokenSparsity      mean per-token fraction of exact zeros in the FFN hidden state
     * @param unionSparsity      per micro-batch: fraction of neurons zero for every real token
     * @param blockSparsityExact per micro-batch: fraction of BN-neuron blocks zero under the union
     * @param blockSparsityNear  per micro-batch: fraction of blocks whose union activity is below the near-zero cut
     * @param heads              per head: tile map and tile density
     */
    public record Layer(int layer, double tokenSparsity, double[] unionSparsity, double[] blockSparsityExact,
                        double[] blockSparsityNear, List<Head> heads) {
        public Layer {
            unionSparsity = unionSparsity.clone();
            blockSparsityExact = blockSparsityExact.clone();
            blockSparsityNear = blockSparsityNear.clone();
            heads = List.copyOf(heads);
        }

        @Override
        public double[] unionSparsity() {
            return unionSparsity.clone();
        }

        @Override
        public double[] blockSparsityExact() {
            return blockSparsityExact.clone();
        }

        @Override
        public double[] blockSparsityNear() {
            return blockSparsityNear.clone();
        }

        public double meanUnionSparsity() {
            return mean(unionSparsity);
        }

        public double meanBlockSparsityExact() {
            return mean(blockSparsityExact);
        }

        public double meanBlockSparsityNear() {
            return mean(blockSparsityNear);
        }

        /** Tile density averaged over heads. */
        public double meanTileDensity() {
            double s = 0;
            for (Head h : heads) {
                s += h.tileDensity();
            }
            return s / heads.size();
        }
    }

    /**
     * One head's attention tiles.
     *
     * @param head        head index
     * @param tileDensity mean over micro-batches of the fraction of causal tiles needed for the coverage
     * @param tileMass    (nQB, nQB) mass of tile (qb, kb) over all micro-batches, each row normalised to sum to 1
     *                    (rows without a real query are all 0; non-causal tiles kb > qb are 0)
     */
    public record Head(int head, double tileDensity, double[][] tileMass) {
        public Head {
            tileMass = deepCopy(tileMass);
        }

        @Override
        public double[][] tileMass() {
            return deepCopy(tileMass);
        }
    }

    /** The report as a JSON object: config, counts and per-layer numbers with per-head tile densities and maps. */
    public ObjectNode toJson() {
        ObjectMapper json = new ObjectMapper();
        ObjectNode root = json.createObjectNode();
        ObjectNode c = root.putObject("config");
        c.put("neuron_block", config.neuronBlock());
        c.put("attn_block", config.attnBlock());
        c.put("near_zero", config.nearZero());
        c.put("coverage", config.coverage());
        root.put("micro_batches", microBatches);
        root.put("real_tokens", realTokens);
        ArrayNode ls = root.putArray("layers");
        for (Layer l : layers) {
            ObjectNode o = ls.addObject();
            o.put("layer", l.layer());
            o.put("token_sparsity", l.tokenSparsity());
            o.put("union_sparsity", l.meanUnionSparsity());
            o.put("block_sparsity_exact", l.meanBlockSparsityExact());
            o.put("block_sparsity_near_zero", l.meanBlockSparsityNear());
            o.put("tile_density", l.meanTileDensity());
            array(o.putArray("union_sparsity_per_batch"), l.unionSparsity);
            array(o.putArray("block_sparsity_exact_per_batch"), l.blockSparsityExact);
            array(o.putArray("block_sparsity_near_zero_per_batch"), l.blockSparsityNear);
            ArrayNode hs = o.putArray("heads");
            for (Head h : l.heads()) {
                ObjectNode ho = hs.addObject();
                ho.put("head", h.head());
                ho.put("tile_density", h.tileDensity());
                ArrayNode rows = ho.putArray("tile_mass");
                for (double[] row : h.tileMass) {
                    array(rows.addArray(), row);
                }
            }
        }
        return root;
    }

    private static void array(ArrayNode a, double[] x) {
        for (double v : x) {
            a.add(v);
        }
    }

    private static double mean(double[] x) {
        double s = 0;
        for (double v : x) {
            s += v;
        }
        return x.length == 0 ? 0 : s / x.length;
    }

    private static double[][] deepCopy(double[][] x) {
        double[][] y = new double[x.length][];
        for (int i = 0; i < x.length; i++) {
            y[i] = x[i].clone();
        }
        return y;
    }
}
