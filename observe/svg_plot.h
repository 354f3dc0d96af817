// SVG charts for `tessera report` (observe/report.h): line plots with axes, "nice" ticks,
// axis labels, a title and a legend, and grouped bar charts. Plain SVG 1.1 text, no
// scripts or external fonts, so any browser (and rsvg-convert) shows it.
//
// Each series of a line plot is one <polyline> with exactly one point per finite (x, y)
// pair, in the order given; non-finite values are left out.
//
// Thread safety: values and pure functions.
#pragma once

#include <string>
#include <vector>

namespace tessera::observe {

struct Series {
  std::string label;  // legend text ("" = not in the legend)
  std::vector<double> x;
  std::vector<double> y;  // same length as x
  std::string color;      // "" = the palette's next colour
  double width = 1.5;     // stroke width in px
  double opacity = 1.0;
  bool markers = false;   // a dot at each point (for sparse series such as evals)
};

struct LinePlot {
  std::string title;
  std::string x_label;
  std::string y_label;
  std::vector<Series> series;
  bool y_from_zero = false;  // include 0 in the y range (rates, bytes)
};

struct BarGroup {
  std::string label;            // one group on the x axis
  std::vector<double> values;   // one bar per BarChart::bar_labels entry
};

struct BarChart {
  std::string title;
  std::string y_label;
  std::vector<std::string> bar_labels;  // the legend
  std::vector<BarGroup> groups;
};

// The i-th colour of the palette (cycles).
std::string PaletteColor(size_t i);

// Tick positions covering [lo, hi] with steps of 1, 2 or 5 times a power of ten, about
// `target` of them. lo <= hi; a degenerate range is widened first.
std::vector<double> NiceTicks(double lo, double hi, int target = 6);

// "1.5k", "2M", "0.25", "1e-05": short tick text.
std::string FormatTick(double v);

std::string RenderLinePlot(const LinePlot& plot, int width = 720, int height = 400);
std::string RenderBarChart(const BarChart& chart, int width = 720, int height = 400);

// Escapes &, <, >, " for SVG/HTML text and attributes.
std::string XmlEscape(const std::string& s);

}  // namespace tessera::observe
