package org.longexposure.cli;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.style.markers.SeriesMarkers;

/** Writes the training loss curve (and validation points, if any) as a PNG, atomically. */
final class LossPlot {
    private LossPlot() {
    }

    static void write(Path png, List<Integer> steps, List<Double> losses, List<Integer> validSteps,
                      List<Double> validLosses) throws IOException {
        XYChart chart = new XYChartBuilder().width(800).height(500).title("Fine-tuning loss")
                .xAxisTitle("optimizer step").yAxisTitle("loss (mean over predicted tokens)").build();
        chart.getStyler().setMarkerSize(4);
        chart.addSeries("train", steps, losses).setMarker(SeriesMarkers.NONE);
        if (!validSteps.isEmpty()) {
            chart.addSeries("validation", validSteps, validLosses).setMarker(SeriesMarkers.CIRCLE);
        }
        Path tmp = png.resolveSibling(png.getFileName() + ".tmp.png");
        BitmapEncoder.saveBitmap(chart, tmp.toString(), BitmapEncoder.BitmapFormat.PNG);
        Files.move(tmp, png, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }
}
