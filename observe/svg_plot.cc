#include "observe/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

namespace tessera::observe {

namespace {

constexpr const char* kFont = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\"";

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", v);
  return buf;
}

// The plot frame shared by both chart kinds.
struct Frame {
  int width = 0, height = 0;
  double left = 78, right = 0, top = 44, bottom = 0;
  double x0() const { return left; }
  double x1() const { return right; }
  double y0() const { return bottom; }  // bottom edge (screen y grows down)
  double y1() const { return top; }
};

Frame MakeFrame(int width, int height, bool legend) {
  Frame f;
  f.width = width;
  f.height = height;
  f.right = width - (legend ? 170.0 : 24.0);
  f.bottom = height - 52.0;
  return f;
}

void Header(std::ostringstream& o, const Frame& f, const std::string& title) {
  o << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    << "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" << f.width << "\" height=\"" << f.height
    << "\" viewBox=\"0 0 " << f.width << " " << f.height << "\">\n"
    << "<title>" << XmlEscape(title) << "</title>\n"
    << "<rect x=\"0\" y=\"0\" width=\"" << f.width << "\" height=\"" << f.height << "\" fill=\"white\"/>\n"
    << "<text class=\"title\" x=\"" << Num((f.x0() + f.x1()) / 2) << "\" y=\"26\" text-anchor=\"middle\" " << kFont
    << " font-size=\"16\" font-weight=\"bold\">" << XmlEscape(title) << "</text>\n";
}

void YLabel(std::ostringstream& o, const Frame& f, const std::string& label) {
  const double cy = (f.y0() + f.y1()) / 2;
  o << "<text class=\"ylabel\" x=\"18\" y=\"" << Num(cy) << "\" text-anchor=\"middle\" " << kFont
    << " font-size=\"13\" transform=\"rotate(-90 18 " << Num(cy) << ")\">" << XmlEscape(label) << "</text>\n";
}

void XLabel(std::ostringstream& o, const Frame& f, const std::string& label) {
  o << "<text class=\"xlabel\" x=\"" << Num((f.x0() + f.x1()) / 2) << "\" y=\"" << f.height - 12
    << "\" text-anchor=\"middle\" " << kFont << " font-size=\"13\">" << XmlEscape(label) << "</text>\n";
}

// Horizontal grid lines and y tick labels for ticks in [lo, hi] mapped onto the frame.
void YAxis(std::ostringstream& o, const Frame& f, const std::vector<double>& ticks, double lo, double hi) {
  for (double t : ticks) {
    const double y = f.y0() - (t - lo) / (hi - lo) * (f.y0() - f.y1());
    o << "<line x1=\"" << Num(f.x0()) << "\" y1=\"" << Num(y) << "\" x2=\"" << Num(f.x1()) << "\" y2=\"" << Num(y)
      << "\" stroke=\"#e3e3e3\" stroke-width=\"1\"/>\n";
    o << "<text class=\"ytick\" x=\"" << Num(f.x0() - 6) << "\" y=\"" << Num(y + 4) << "\" text-anchor=\"end\" "
      << kFont << " font-size=\"11\" fill=\"#333\">" << FormatTick(t) << "</text>\n";
  }
}

void AxesBox(std::ostringstream& o, const Frame& f) {
  o << "<line x1=\"" << Num(f.x0()) << "\" y1=\"" << Num(f.y0()) << "\" x2=\"" << Num(f.x1()) << "\" y2=\""
    << Num(f.y0()) << "\" stroke=\"#222\" stroke-width=\"1.2\"/>\n";
  o << "<line x1=\"" << Num(f.x0()) << "\" y1=\"" << Num(f.y0()) << "\" x2=\"" << Num(f.x0()) << "\" y2=\""
    << Num(f.y1()) << "\" stroke=\"#222\" stroke-width=\"1.2\"/>\n";
}

// A legend entry: a bar swatch (width 0) or a line sample drawn like its series.
struct LegendEntry {
  std::string label;
  std::string color;
  double width = 0;
  double opacity = 1;
};

void Legend(std::ostringstream& o, const Frame& f, const std::vector<LegendEntry>& entries) {
  if (entries.empty()) return;
  double y = f.y1() + 8;
  const double x = f.x1() + 14;
  o << "<g class=\"legend\">\n";
  for (const auto& [label, color, width, opacity] : entries) {
    if (width > 0) {
      o << "<line x1=\"" << Num(x) << "\" y1=\"" << Num(y + 5) << "\" x2=\"" << Num(x + 16) << "\" y2=\"" << Num(y + 5)
        << "\" stroke=\"" << color << "\" stroke-width=\"" << std::max(width, 1.5) << "\" stroke-opacity=\""
        << std::max(opacity, 0.45) << "\"/>\n";
    } else {
      o << "<rect x=\"" << Num(x) << "\" y=\"" << Num(y) << "\" width=\"14\" height=\"10\" fill=\"" << color
        << "\"/>\n";
    }
    // Long labels are cut so they stay inside the picture.
    std::string text = label.size() > 20 ? label.substr(0, 19) + "…" : label;
    o << "<text x=\"" << Num(x + 20) << "\" y=\"" << Num(y + 9) << "\" " << kFont << " font-size=\"12\">"
      << XmlEscape(text) << "</text>\n";
    y += 18;
  }
  o << "</g>\n";
}

bool Finite(double v) { return std::isfinite(v); }

}  // namespace

std::string PaletteColor(size_t i) {
  // Tableau 10: distinguishable and readable on white.
  static const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  return kColors[i % 10];
}

std::vector<double> NiceTicks(double lo, double hi, int target) {
  if (!Finite(lo) || !Finite(hi)) return {0, 1};
  if (hi < lo) std::swap(lo, hi);
  if (hi - lo < 1e-12 * std::max(1.0, std::fabs(hi))) {
    const double pad = lo == 0 ? 1 : std::fabs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  const double step = (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
  std::vector<double> ticks;
  const double first = std::floor(lo / step) * step;
  const double last = std::ceil(hi / step) * step;
  for (double t = first; t <= last + step * 0.5; t += step) {
    ticks.push_back(std::fabs(t) < step * 1e-9 ? 0.0 : t);  // no "-0" from rounding
  }
  return ticks;
}

std::string FormatTick(double v) {
  char buf[32];
  const double a = std::fabs(v);
  if (a == 0) return "0";
  auto trim = [](std::string s) {
    if (s.find('.') != std::string::npos) {
      while (!s.empty() && s.back() == '0') s.pop_back();
      if (!s.empty() && s.back() == '.') s.pop_back();
    }
    return s;
  };
  if (a >= 1e9) return trim((std::snprintf(buf, sizeof(buf), "%.2f", v / 1e9), buf)) + "G";
  if (a >= 1e6) return trim((std::snprintf(buf, sizeof(buf), "%.2f", v / 1e6), buf)) + "M";
  if (a >= 1e3) return trim((std::snprintf(buf, sizeof(buf), "%.2f", v / 1e3), buf)) + "k";
  if (a >= 1e-3) return trim((std::snprintf(buf, sizeof(buf), "%.4f", v), buf));
  std::snprintf(buf, sizeof(buf), "%.0e", v);
  return buf;
}

std::string XmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::string RenderLinePlot(const LinePlot& plot, int width, int height) {
  double xlo = std::numeric_limits<double>::infinity(), xhi = -xlo, ylo = xlo, yhi = -xlo;
  bool legend = false;
  for (const Series& s : plot.series) {
    if (!s.label.empty()) legend = true;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!Finite(s.x[i]) || !Finite(s.y[i])) continue;
      xlo = std::min(xlo, s.x[i]);
      xhi = std::max(xhi, s.x[i]);
      ylo = std::min(ylo, s.y[i]);
      yhi = std::max(yhi, s.y[i]);
    }
  }
  const bool empty = !Finite(xlo);
  if (empty) xlo = 0, xhi = 1, ylo = 0, yhi = 1;
  if (plot.y_from_zero) ylo = std::min(ylo, 0.0), yhi = std::max(yhi, 0.0);
  const Frame f = MakeFrame(width, height, legend);
  const std::vector<double> xt = NiceTicks(xlo, xhi, 8);
  const std::vector<double> yt = NiceTicks(ylo, yhi, 6);
  const double ax0 = xt.front(), ax1 = xt.back(), ay0 = yt.front(), ay1 = yt.back();
  auto sx = [&](double x) { return f.x0() + (x - ax0) / (ax1 - ax0) * (f.x1() - f.x0()); };
  auto sy = [&](double y) { return f.y0() - (y - ay0) / (ay1 - ay0) * (f.y0() - f.y1()); };

  std::ostringstream o;
  Header(o, f, plot.title);
  YAxis(o, f, yt, ay0, ay1);
  for (double t : xt) {
    const double x = sx(t);
    o << "<line x1=\"" << Num(x) << "\" y1=\"" << Num(f.y0()) << "\" x2=\"" << Num(x) << "\" y2=\"" << Num(f.y0() + 5)
      << "\" stroke=\"#222\" stroke-width=\"1\"/>\n";
    o << "<text class=\"xtick\" x=\"" << Num(x) << "\" y=\"" << Num(f.y0() + 18) << "\" text-anchor=\"middle\" "
      << kFont << " font-size=\"11\" fill=\"#333\">" << FormatTick(t) << "</text>\n";
  }
  AxesBox(o, f);
  if (empty) {
    o << "<text x=\"" << Num((f.x0() + f.x1()) / 2) << "\" y=\"" << Num((f.y0() + f.y1()) / 2)
      << "\" text-anchor=\"middle\" " << kFont << " font-size=\"14\" fill=\"#888\">no data</text>\n";
  }
  std::vector<LegendEntry> entries;
  for (size_t k = 0; k < plot.series.size(); ++k) {
    const Series& s = plot.series[k];
    const std::string color = s.color.empty() ? PaletteColor(k) : s.color;
    std::ostringstream pts;
    size_t n = 0;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!Finite(s.x[i]) || !Finite(s.y[i])) continue;
      pts << (n++ ? " " : "") << Num(sx(s.x[i])) << "," << Num(sy(s.y[i]));
    }
    o << "<polyline class=\"series\" data-label=\"" << XmlEscape(s.label) << "\" fill=\"none\" stroke=\"" << color
      << "\" stroke-width=\"" << s.width << "\" stroke-opacity=\"" << s.opacity
      << "\" stroke-linejoin=\"round\" points=\"" << pts.str() << "\"/>\n";
    if (s.markers) {
      for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
        if (!Finite(s.x[i]) || !Finite(s.y[i])) continue;
        o << "<circle cx=\"" << Num(sx(s.x[i])) << "\" cy=\"" << Num(sy(s.y[i])) << "\" r=\"3\" fill=\"" << color
          << "\"/>\n";
      }
    }
    if (!s.label.empty()) entries.push_back({s.label, color, s.width, s.opacity});
  }
  Legend(o, f, entries);
  XLabel(o, f, plot.x_label);
  YLabel(o, f, plot.y_label);
  o << "</svg>\n";
  return o.str();
}

std::string RenderBarChart(const BarChart& chart, int width, int height) {
  double yhi = 0;
  for (const BarGroup& g : chart.groups) {
    for (double v : g.values) {
      if (Finite(v)) yhi = std::max(yhi, v);
    }
  }
  const bool legend = chart.bar_labels.size() > 1;
  const Frame f = MakeFrame(width, height, legend);
  const std::vector<double> yt = NiceTicks(0, yhi > 0 ? yhi : 1, 6);
  const double ay0 = yt.front(), ay1 = yt.back();
  auto sy = [&](double y) { return f.y0() - (y - ay0) / (ay1 - ay0) * (f.y0() - f.y1()); };

  std::ostringstream o;
  Header(o, f, chart.title);
  YAxis(o, f, yt, ay0, ay1);
  const size_t ng = std::max<size_t>(1, chart.groups.size());
  const size_t nb = std::max<size_t>(1, chart.bar_labels.size());
  const double group_w = (f.x1() - f.x0()) / static_cast<double>(ng);
  const double bar_w = group_w * 0.8 / static_cast<double>(nb);
  for (size_t g = 0; g < chart.groups.size(); ++g) {
    const BarGroup& grp = chart.groups[g];
    const double gx = f.x0() + group_w * static_cast<double>(g) + group_w * 0.1;
    for (size_t b = 0; b < grp.values.size() && b < nb; ++b) {
      const double v = Finite(grp.values[b]) ? grp.values[b] : 0;
      const double top = sy(v);
      o << "<rect class=\"bar\" x=\"" << Num(gx + bar_w * static_cast<double>(b)) << "\" y=\"" << Num(top)
        << "\" width=\"" << Num(bar_w * 0.92) << "\" height=\"" << Num(f.y0() - top) << "\" fill=\""
        << PaletteColor(b) << "\"><title>" << XmlEscape(grp.label) << " " << XmlEscape(chart.bar_labels[b]) << ": "
        << FormatTick(v) << "</title></rect>\n";
      // The value above the bar: the chart is read for its numbers.
      o << "<text class=\"value\" x=\"" << Num(gx + bar_w * (static_cast<double>(b) + 0.46)) << "\" y=\""
        << Num(top - 4) << "\" text-anchor=\"middle\" " << kFont << " font-size=\"10\" fill=\"#333\">" << FormatTick(v)
        << "</text>\n";
    }
    o << "<text class=\"xtick\" x=\"" << Num(gx + group_w * 0.4) << "\" y=\"" << Num(f.y0() + 18)
      << "\" text-anchor=\"middle\" " << kFont << " font-size=\"11\" fill=\"#333\">" << XmlEscape(grp.label)
      << "</text>\n";
  }
  AxesBox(o, f);
  std::vector<LegendEntry> entries;
  if (legend) {
    for (size_t b = 0; b < chart.bar_labels.size(); ++b) entries.push_back({chart.bar_labels[b], PaletteColor(b)});
  }
  Legend(o, f, entries);
  YLabel(o, f, chart.y_label);
  o << "</svg>\n";
  return o.str();
}

}  // namespace tessera::observe
