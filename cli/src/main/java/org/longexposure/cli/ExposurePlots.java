package org.longexposure.cli;

import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import javax.imageio.ImageIO;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.HeatMapChart;
import org.knowm.xchart.HeatMapChartBuilder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.style.markers.SeriesMarkers;
import org.longexposure.sparsity.exposer.Exposure;

/**
 * The Exposer's pictures, written atomically: {@code sparsity.png} (per layer: per-token ReLU sparsity, union
 * sparsity and block sparsity, exact and near zero) and one {@code attention-layer<l>.png} per layer (one heat map
 * per head of the row-normalised tile mass, query block on the vertical axis, key block on the horizontal one, the
 * head's tile density in its title).
 */
final class ExposurePlots {
    private static final int TILE_SIZE = 420;

    private ExposurePlots() {
    }

    static void sparsity(Path png, Exposure ex) throws IOException {
        XYChart chart = new XYChartBuilder().width(800).height(500).title("MLP sparsity per layer (" + ex.realTokens()
                + " real tokens, " + ex.microBatches() + " micro-batches)").xAxisTitle("layer")
                .yAxisTitle("fraction").build();
        chart.getStyler().setYAxisMin(0.0).setYAxisMax(1.0).setMarkerSize(6);
        List<Integer> x = new ArrayList<>();
        List<Double> token = new ArrayList<>();
        List<Double> union = new ArrayList<>();
        List<Double> exact = new ArrayList<>();
        List<Double> near = new ArrayList<>();
        for (Exposure.Layer l : ex.layers()) {
            x.add(l.layer());
            token.add(l.tokenSparsity());
            union.add(l.meanUnionSparsity());
            exact.add(l.meanBlockSparsityExact());
            near.add(l.meanBlockSparsityNear());
        }
        chart.addSeries("per-token ReLU sparsity", x, token).setMarker(SeriesMarkers.CIRCLE);
        chart.addSeries("union (shadowy) sparsity", x, union).setMarker(SeriesMarkers.SQUARE);
        chart.addSeries("block sparsity, exact zero (BN " + ex.config().neuronBlock() + ")", x, exact)
                .setMarker(SeriesMarkers.DIAMOND);
        chart.addSeries(String.format(Locale.ROOT, "block sparsity, < %.0f%% of layer max",
                100 * ex.config().nearZero()), x, near).setMarker(SeriesMarkers.TRIANGLE_UP);
        Path tmp = png.resolveSibling(png.getFileName() + ".tmp.png");
        BitmapEncoder.saveBitmap(chart, tmp.toString(), BitmapEncoder.BitmapFormat.PNG);
        Files.move(tmp, png, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    static void attention(Path png, Exposure.Layer layer, int attnBlock) throws IOException {
        int nh = layer.heads().size();
        int cols = (int) Math.ceil(Math.sqrt(nh));
        int rows = (nh + cols - 1) / cols;
        BufferedImage all = new BufferedImage(cols * TILE_SIZE, rows * TILE_SIZE, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = all.createGraphics();
        g.setColor(Color.WHITE);
        g.fillRect(0, 0, all.getWidth(), all.getHeight());
        for (Exposure.Head head : layer.heads()) {
            double[][] mass = head.tileMass();
            int n = mass.length;
            HeatMapChart chart = new HeatMapChartBuilder().width(TILE_SIZE).height(TILE_SIZE)
                    .title(String.format(Locale.ROOT, "layer %d head %d: tile density %.3f", layer.layer(),
                            head.head(), head.tileDensity()))
                    .xAxisTitle("key block (" + attnBlock + " tokens)").yAxisTitle("query block").build();
            chart.getStyler().setMin(0).setMax(1).setShowValue(n <= 6).setHeatMapValueDecimalPattern("0.00")
                    .setPlotContentSize(1.0);
            List<Integer> idx = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                idx.add(i);
            }
            List<Number[]> cells = new ArrayList<>();
            for (int qb = 0; qb < n; qb++) {
                for (int kb = 0; kb <= qb; kb++) {
                    cells.add(new Number[] {kb, qb, mass[qb][kb]});
                }
            }
            chart.addSeries("row-normalised mass", idx, idx, cells);
            BufferedImage img = BitmapEncoder.getBufferedImage(chart);
            g.drawImage(img, (head.head() % cols) * TILE_SIZE, (head.head() / cols) * TILE_SIZE, null);
        }
        g.dispose();
        Path tmp = png.resolveSibling(png.getFileName() + ".tmp.png");
        ImageIO.write(all, "png", tmp.toFile());
        Files.move(tmp, png, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }
}
