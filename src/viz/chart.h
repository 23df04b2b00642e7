// Small plotting library: a Figure is a grid of Charts (panels), each with a title, axis labels,
// linear or log axes with nice ticks, a legend and series drawn as lines, scatter points, bars
// or steps. render_figure() draws the same figure with cairo to P.svg and P.png, both written
// atomically. The data and planner libraries never depend on this. Tests: tests/viz/viz_test.cpp.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace hydraulis::viz {

struct Color {
  double r = 0;  // each in [0, 1]
  double g = 0;
  double b = 0;
};

// The i-th colour of a 10-colour qualitative palette (wraps around).
Color palette_color(size_t index);

enum class SeriesStyle {
  kLine,     // points joined in the given order
  kScatter,  // a filled dot per point (use alpha < 1 for thousands of points)
  kBars,     // a bar per point from the axis baseline (or y_base) to y
  kStep,     // post-step: horizontal from x[i] to x[i+1] at y[i], then vertical (CDFs)
};

enum class AxisScale { kLinear, kLog };

enum class TickFormat {
  kAuto,     // 0.25, 12, 1.5k, 3M, 1e-05
  kBinary,   // multiples of 1024 as k: 1024 -> 1k, 32768 -> 32k (token lengths)
  kPercent,  // 0.25 -> 25%
};

// kOutsideRight puts the legend right of the plot area (the plot gets narrower), for charts
// whose data fill the whole area (stacked shares).
enum class LegendPosition { kNone, kTopRight, kTopLeft, kBottomRight, kBottomLeft, kOutsideRight };

struct Series {
  std::string label;  // legend text; empty leaves the series out of the legend
  SeriesStyle style = SeriesStyle::kLine;
  std::vector<double> x;
  std::vector<double> y;
  // kBars only: when non-empty, bar i spans [x[i], x_end[i]] (histograms); otherwise it is
  // centred on x[i], bar_width × the smallest x spacing wide, and several bar series in one
  // chart are grouped side by side.
  std::vector<double> x_end;
  // kBars only: when non-empty, bar i rises from y_base[i] instead of the axis baseline
  // (stacked bars: pass the running total of the series below).
  std::vector<double> y_base;
  std::optional<Color> color;  // default: palette_color(index of the series in its chart)
  double alpha = 1.0;          // opacity in (0, 1]
  double line_width = 1.6;     // px, lines and steps
  double marker_radius = 2.5;  // px, scatter
  double bar_width = 0.8;      // fraction of the spacing, centred bars
  bool dashed = false;         // lines and steps
};

struct Axis {
  std::string label;
  AxisScale scale = AxisScale::kLinear;
  double log_base = 10;  // 10 or 2: where major ticks sit on a log axis
  TickFormat tick_format = TickFormat::kAuto;
  double min_tick_step = 0;   // linear axes: e.g. 1 keeps ticks on integers (batch indices)
  std::optional<double> min;  // default: from the data (linear axes include 0 for bars)
  std::optional<double> max;
  // Categorical x axis: when non-empty, tick i sits at x = i with this label and the range is
  // [-0.5, n - 0.5]. Use with kBars series whose x are 0, 1, ..., n-1.
  std::vector<std::string> categories;
};

struct Chart {
  std::string title;
  Axis x;
  Axis y;
  std::vector<Series> series;
  LegendPosition legend = LegendPosition::kTopRight;
  bool grid = true;
  // Optional short lines of text drawn in a box in a corner of the plot area.
  std::vector<std::string> notes;
  LegendPosition notes_position = LegendPosition::kTopLeft;  // kNone/kOutsideRight: top left
};

struct Figure {
  std::string title;  // drawn above all panels when non-empty
  std::vector<Chart> panels;
  int columns = 1;           // panels fill rows left to right, `columns` per row
  double panel_width = 560;  // px (SVG points) per panel
  double panel_height = 360;
  double png_scale = 2.0;  // PNG pixels per SVG point
};

// Checks every panel: axis ranges, matching x/y sizes, finite values, positive values on log
// axes (a log axis with a value <= 0 is an InvalidArgument naming the panel, series and point).
core::Status validate_figure(const Figure& figure);

// The figure as SVG text (with <title>/<desc> elements holding the figure and panel titles) or
// as PNG bytes. Both validate first.
core::StatusOr<std::string> render_svg(const Figure& figure);
core::StatusOr<std::string> render_png(const Figure& figure);

// Writes `<path_without_extension>.svg` and `<path_without_extension>.png` atomically.
core::Status render_figure(const Figure& figure, const std::string& path_without_extension);

// Tick positions chosen for an axis spanning [lo, hi] with about `target` ticks (exposed for
// tests): 1/2/5 × 10^k steps on linear axes, powers of the base on log axes.
std::vector<double> axis_ticks(double lo, double hi, AxisScale scale, double log_base, int target);
// A tick label: "0", "0.5", "1.5k", "32k" (kBinary), "25%" (kPercent).
std::string format_tick(double value, TickFormat format, double step);

}  // namespace hydraulis::viz
