// Cairo renderer of viz::Figure: layout of the panel grid, axis ranges and ticks, series, legend
// and notes, drawn once per output surface (SVG stream, PNG image). Outputs go through
// core::write_file_atomic. Tests: tests/viz/viz_test.cpp.
#include "viz/chart.h"

#include <cairo-svg.h>
#include <cairo.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "core/file.h"

namespace hydraulis::viz {

namespace {

constexpr const char* kFontFamily = "DejaVu Sans";
constexpr double kTitleFont = 14.0;
constexpr double kLabelFont = 12.0;
constexpr double kTickFont = 10.5;
constexpr double kLegendFont = 10.5;
constexpr double kFigureTitleFont = 16.0;

// A resolved axis range in data units; log axes keep lo > 0.
struct Range {
  double lo = 0;
  double hi = 1;
};

// The pixel rectangle of a panel's plot area and the two axis ranges.
struct Frame {
  double left = 0, top = 0, width = 0, height = 0;
  Range xr, yr;
  const Axis* xa = nullptr;
  const Axis* ya = nullptr;

  double map(double v, const Range& r, const Axis& a) const {
    if (a.scale == AxisScale::kLog) {
      return (std::log(v) - std::log(r.lo)) / (std::log(r.hi) - std::log(r.lo));
    }
    return (v - r.lo) / (r.hi - r.lo);
  }
  double px(double x) const { return left + map(x, xr, *xa) * width; }
  double py(double y) const { return top + height - map(y, yr, *ya) * height; }
};

void set_color(cairo_t* cr, const Color& c, double alpha = 1.0) {
  cairo_set_source_rgba(cr, c.r, c.g, c.b, alpha);
}

void set_font(cairo_t* cr, double size, bool bold = false) {
  cairo_select_font_face(cr, kFontFamily, CAIRO_FONT_SLANT_NORMAL,
                         bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
}

double text_width(cairo_t* cr, const std::string& text) {
  cairo_text_extents_t ext;
  cairo_text_extents(cr, text.c_str(), &ext);
  return ext.x_advance;
}

// Draws `text` with its anchor at (x, y): ax 0/0.5/1 = left/centre/right, ay 0/0.5/1 =
// top/middle/bottom of the font's ascent+descent box.
void draw_text(cairo_t* cr, const std::string& text, double x, double y, double ax, double ay) {
  cairo_font_extents_t fe;
  cairo_font_extents(cr, &fe);
  double w = text_width(cr, text);
  double h = fe.ascent + fe.descent;
  cairo_move_to(cr, x - ax * w, y - ay * h + fe.ascent);
  cairo_show_text(cr, text.c_str());
}

std::string strip_zeros(std::string s) {
  if (s.find('.') == std::string::npos) return s;
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

// Decimals that show a step of `step` exactly enough (step 0.25 -> 2, step 5 -> 0).
int decimals_for(double step) {
  if (!(step > 0)) return 3;
  int d = static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
  return std::clamp(d, 0, 6);
}

std::string format_auto(double v, double step) {
  double a = std::fabs(v);
  if (a >= 1e6) {
    return strip_zeros(fmt::format("{:.{}f}", v / 1e6, std::max(decimals_for(step / 1e6), 1))) +
           "M";
  }
  if (a >= 1e3) {
    return strip_zeros(fmt::format("{:.{}f}", v / 1e3, std::max(decimals_for(step / 1e3), 1))) +
           "k";
  }
  if (a < 1e-3) return fmt::format("{:.0e}", v);
  return strip_zeros(fmt::format("{:.{}f}", v, std::max(decimals_for(step), 0)));
}

// Range of the data on one axis (x uses x and x_end, y uses y); nullopt when there is no data.
std::optional<Range> data_range(const Chart& chart, bool x_axis) {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -lo;
  for (const Series& s : chart.series) {
    const auto& values = x_axis ? s.x : s.y;
    for (double v : values) lo = std::min(lo, v), hi = std::max(hi, v);
    if (!x_axis) {
      for (double v : s.y_base) lo = std::min(lo, v), hi = std::max(hi, v);
    }
    if (x_axis) {
      for (double v : s.x_end) lo = std::min(lo, v), hi = std::max(hi, v);
    }
  }
  if (!(lo <= hi)) return std::nullopt;
  return Range{lo, hi};
}

bool has_bars(const Chart& chart) {
  for (const Series& s : chart.series) {
    if (s.style == SeriesStyle::kBars && !s.x.empty()) return true;
  }
  return false;
}

// Smallest spacing between the x values of centred bars (0 when there are none), in data units.
double centred_bar_gap(const Chart& chart) {
  double gap = 0;
  for (const Series& s : chart.series) {
    if (s.style != SeriesStyle::kBars || !s.x_end.empty() || s.x.empty()) continue;
    std::vector<double> xs = s.x;
    std::sort(xs.begin(), xs.end());
    double g = 1.0;  // a single bar: one unit wide
    bool found = false;
    for (size_t k = 1; k < xs.size(); ++k) {
      double d = xs[k] - xs[k - 1];
      if (d > 1e-12 && (!found || d < g)) g = d, found = true;
    }
    gap = gap == 0 ? g : std::min(gap, g);
  }
  return gap;
}

Range resolve_range(const Chart& chart, const Axis& axis, bool x_axis) {
  if (x_axis && !axis.categories.empty()) {
    return Range{axis.min.value_or(-0.5),
                 axis.max.value_or(static_cast<double>(axis.categories.size()) - 0.5)};
  }
  std::optional<Range> data = data_range(chart, x_axis);
  bool log = axis.scale == AxisScale::kLog;
  Range r = data.value_or(log ? Range{1, 10} : Range{0, 1});
  bool zero_base = !x_axis && !log && has_bars(chart);
  if (zero_base) r.lo = std::min(r.lo, 0.0), r.hi = std::max(r.hi, 0.0);
  if (log) {
    double llo = std::log(r.lo), lhi = std::log(r.hi);
    if (lhi - llo < 1e-12) llo -= std::log(axis.log_base), lhi += std::log(axis.log_base);
    double pad = 0.04 * (lhi - llo);
    r = Range{std::exp(llo - pad), std::exp(lhi + pad)};
  } else {
    if (x_axis) {  // centred bars stick out half a spacing on either side
      double gap = centred_bar_gap(chart);
      if (gap > 0) r.lo -= 0.5 * gap, r.hi += 0.5 * gap;
    }
    if (r.hi - r.lo < 1e-12) {
      double d = std::max(std::fabs(r.lo) * 0.1, 1.0);
      r.lo -= d, r.hi += d;
    }
    double pad = 0.04 * (r.hi - r.lo);
    bool keep_zero_lo = zero_base && r.lo == 0.0;
    if (!keep_zero_lo) r.lo -= pad;
    r.hi += pad;
  }
  if (axis.min) r.lo = *axis.min;
  if (axis.max) r.hi = *axis.max;
  return r;
}

struct Tick {
  double value;
  std::string label;
};

std::vector<Tick> make_ticks(const Axis& axis, const Range& r, int target) {
  std::vector<Tick> ticks;
  if (!axis.categories.empty()) {
    for (size_t i = 0; i < axis.categories.size(); ++i) {
      double v = static_cast<double>(i);
      if (v >= r.lo && v <= r.hi) ticks.push_back({v, axis.categories[i]});
    }
    return ticks;
  }
  std::vector<double> values = axis_ticks(r.lo, r.hi, axis.scale, axis.log_base, target);
  if (axis.scale == AxisScale::kLinear && axis.min_tick_step > 0 && values.size() >= 2 &&
      values[1] - values[0] < axis.min_tick_step) {
    values = axis_ticks(r.lo, r.hi, axis.scale, axis.log_base,
                        std::max(1, static_cast<int>((r.hi - r.lo) / axis.min_tick_step)));
  }
  double step = values.size() >= 2 ? values[1] - values[0] : (r.hi - r.lo);
  for (double v : values) {
    double tick_step = axis.scale == AxisScale::kLog ? std::fabs(v) : step;
    ticks.push_back({v, format_tick(v, axis.tick_format, tick_step)});
  }
  return ticks;
}

// --- drawing -------------------------------------------------------------------------------

// Where centred bars go: each non-stacked bar series gets its own slot of the group width,
// stacked ones (with y_base) share one slot; the group is bar_width × the smallest x spacing.
struct BarLayout {
  std::vector<size_t> slot;  // per series
  size_t slots = 0;
  double min_gap = 0;  // px
  double base_px = 0;  // the y baseline of unstacked bars
};

BarLayout bar_layout(const Frame& f, const Chart& chart) {
  BarLayout layout;
  layout.slot.assign(chart.series.size(), 0);
  std::vector<size_t> stacked;
  layout.min_gap = f.width * 0.5;
  for (size_t i = 0; i < chart.series.size(); ++i) {
    const Series& s = chart.series[i];
    if (s.style != SeriesStyle::kBars || !s.x_end.empty() || s.x.empty()) continue;
    if (s.y_base.empty()) {
      layout.slot[i] = layout.slots++;
    } else {
      stacked.push_back(i);
    }
    std::vector<double> p;
    for (double x : s.x) p.push_back(f.px(x));
    std::sort(p.begin(), p.end());
    for (size_t k = 1; k < p.size(); ++k) {
      if (p[k] - p[k - 1] > 1e-9) layout.min_gap = std::min(layout.min_gap, p[k] - p[k - 1]);
    }
  }
  for (size_t i : stacked) layout.slot[i] = layout.slots;
  if (!stacked.empty()) ++layout.slots;
  if (!chart.x.categories.empty()) {
    layout.min_gap =
        std::min(layout.min_gap, f.width / static_cast<double>(chart.x.categories.size()));
  }
  layout.base_px = f.top + f.height;
  if (chart.y.scale == AxisScale::kLinear && f.yr.lo <= 0 && f.yr.hi >= 0) {
    layout.base_px = f.py(0);
  }
  return layout;
}

void draw_bars(cairo_t* cr, const Frame& f, const Series& s, size_t index,
               const BarLayout& layout) {
  double slot = 0, offset = 0;
  if (s.x_end.empty()) {
    double group = s.bar_width * layout.min_gap;
    slot = group / static_cast<double>(std::max<size_t>(layout.slots, 1));
    offset = -group / 2 + static_cast<double>(layout.slot[index]) * slot;
  }
  for (size_t k = 0; k < s.x.size(); ++k) {
    double x0 = s.x_end.empty() ? f.px(s.x[k]) + offset : f.px(s.x[k]);
    double x1 = s.x_end.empty() ? x0 + slot : f.px(s.x_end[k]);
    double y1 = f.py(s.y[k]);
    double y0 = s.y_base.empty() ? layout.base_px : f.py(s.y_base[k]);
    cairo_rectangle(cr, std::min(x0, x1), std::min(y1, y0), std::fabs(x1 - x0), std::fabs(y0 - y1));
  }
  cairo_fill_preserve(cr);
  set_color(cr, Color{1, 1, 1}, 0.8);  // thin white outline separates neighbouring bars
  cairo_set_line_width(cr, 0.6);
  cairo_stroke(cr);
}

void draw_series(cairo_t* cr, const Frame& f, const Chart& chart) {
  BarLayout layout = bar_layout(f, chart);
  for (size_t i = 0; i < chart.series.size(); ++i) {
    const Series& s = chart.series[i];
    size_t n = s.x.size();
    if (n == 0) continue;
    cairo_set_line_width(cr, s.line_width);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    double dash[] = {6.0, 4.0};
    cairo_set_dash(cr, dash, s.dashed ? 2 : 0, 0);
    set_color(cr, s.color.value_or(palette_color(i)), s.alpha);
    switch (s.style) {
      case SeriesStyle::kLine:
        cairo_move_to(cr, f.px(s.x[0]), f.py(s.y[0]));
        for (size_t k = 1; k < n; ++k) cairo_line_to(cr, f.px(s.x[k]), f.py(s.y[k]));
        if (n == 1) {
          cairo_arc(cr, f.px(s.x[0]), f.py(s.y[0]), s.line_width, 0, 2 * std::numbers::pi);
        }
        cairo_stroke(cr);
        break;
      case SeriesStyle::kStep:
        cairo_move_to(cr, f.px(s.x[0]), f.py(s.y[0]));
        for (size_t k = 1; k < n; ++k) {
          cairo_line_to(cr, f.px(s.x[k]), f.py(s.y[k - 1]));
          cairo_line_to(cr, f.px(s.x[k]), f.py(s.y[k]));
        }
        cairo_stroke(cr);
        break;
      case SeriesStyle::kScatter:
        for (size_t k = 0; k < n; ++k) {
          cairo_new_sub_path(cr);
          cairo_arc(cr, f.px(s.x[k]), f.py(s.y[k]), s.marker_radius, 0, 2 * std::numbers::pi);
        }
        cairo_fill(cr);
        break;
      case SeriesStyle::kBars:
        draw_bars(cr, f, s, i, layout);
        break;
    }
  }
  cairo_set_dash(cr, nullptr, 0, 0);
}

constexpr double kLegendRow = kLegendFont * 1.45;
constexpr double kLegendSwatch = 18;
constexpr double kLegendPad = 6;

std::vector<size_t> legend_entries(const Chart& chart) {
  std::vector<size_t> entries;
  if (chart.legend == LegendPosition::kNone) return entries;
  for (size_t i = 0; i < chart.series.size(); ++i) {
    if (!chart.series[i].label.empty()) entries.push_back(i);
  }
  return entries;
}

// Width of the legend box (0 without entries).
double legend_width(cairo_t* cr, const Chart& chart) {
  std::vector<size_t> entries = legend_entries(chart);
  if (entries.empty()) return 0;
  set_font(cr, kLegendFont);
  double w = 0;
  for (size_t i : entries) w = std::max(w, text_width(cr, chart.series[i].label));
  return kLegendPad * 2 + kLegendSwatch + 6 + w;
}

void draw_legend(cairo_t* cr, const Frame& f, const Chart& chart) {
  std::vector<size_t> entries = legend_entries(chart);
  if (entries.empty()) return;
  double row = kLegendRow, swatch = kLegendSwatch, pad = kLegendPad;
  double box_w = legend_width(cr, chart);
  double box_h = pad * 2 + row * static_cast<double>(entries.size());
  bool right =
      chart.legend == LegendPosition::kTopRight || chart.legend == LegendPosition::kBottomRight;
  bool top = chart.legend == LegendPosition::kTopRight ||
             chart.legend == LegendPosition::kTopLeft ||
             chart.legend == LegendPosition::kOutsideRight;
  double x = right ? f.left + f.width - box_w - 8 : f.left + 8;
  if (chart.legend == LegendPosition::kOutsideRight) x = f.left + f.width + 10;
  double y = top ? f.top + (chart.legend == LegendPosition::kOutsideRight ? 0 : 8)
                 : f.top + f.height - box_h - 8;
  set_font(cr, kLegendFont);
  cairo_rectangle(cr, x, y, box_w, box_h);
  set_color(cr, Color{1, 1, 1}, 0.88);
  cairo_fill_preserve(cr);
  set_color(cr, Color{0.7, 0.7, 0.7});
  cairo_set_line_width(cr, 0.8);
  cairo_stroke(cr);
  for (size_t e = 0; e < entries.size(); ++e) {
    const Series& s = chart.series[entries[e]];
    Color color = s.color.value_or(palette_color(entries[e]));
    double cy = y + pad + row * (static_cast<double>(e) + 0.5);
    double sx = x + pad;
    set_color(cr, color, std::max(s.alpha, 0.85));
    if (s.style == SeriesStyle::kScatter) {
      cairo_arc(cr, sx + swatch / 2, cy, std::max(s.marker_radius, 3.0), 0, 2 * std::numbers::pi);
      cairo_fill(cr);
    } else if (s.style == SeriesStyle::kBars) {
      cairo_rectangle(cr, sx + 2, cy - 5, swatch - 4, 10);
      cairo_fill(cr);
    } else {
      double dash[] = {5.0, 3.0};
      cairo_set_dash(cr, dash, s.dashed ? 2 : 0, 0);
      cairo_set_line_width(cr, std::max(s.line_width, 1.5));
      cairo_move_to(cr, sx, cy);
      cairo_line_to(cr, sx + swatch, cy);
      cairo_stroke(cr);
      cairo_set_dash(cr, nullptr, 0, 0);
    }
    set_color(cr, Color{0.1, 0.1, 0.1});
    draw_text(cr, s.label, sx + swatch + 6, cy, 0, 0.5);
  }
}

void draw_notes(cairo_t* cr, const Frame& f, const Chart& chart) {
  if (chart.notes.empty()) return;
  set_font(cr, kLegendFont);
  double row = kLegendFont * 1.4, pad = 6, w = 0;
  for (const auto& line : chart.notes) w = std::max(w, text_width(cr, line));
  double box_w = w + 2 * pad;
  double box_h = pad * 2 + row * static_cast<double>(chart.notes.size());
  LegendPosition where = chart.notes_position;
  bool right = where == LegendPosition::kTopRight || where == LegendPosition::kBottomRight;
  bool bottom = where == LegendPosition::kBottomLeft || where == LegendPosition::kBottomRight;
  double x = right ? f.left + f.width - box_w - 8 : f.left + 8;
  double y = bottom ? f.top + f.height - box_h - 8 : f.top + 8;
  cairo_rectangle(cr, x, y, box_w, box_h);
  set_color(cr, Color{1, 1, 1}, 0.88);
  cairo_fill_preserve(cr);
  set_color(cr, Color{0.7, 0.7, 0.7});
  cairo_set_line_width(cr, 0.8);
  cairo_stroke(cr);
  set_color(cr, Color{0.1, 0.1, 0.1});
  for (size_t i = 0; i < chart.notes.size(); ++i) {
    draw_text(cr, chart.notes[i], x + pad, y + pad + row * (static_cast<double>(i) + 0.5), 0, 0.5);
  }
}

void draw_background_and_grid(cairo_t* cr, const Frame& f, const Chart& chart,
                              const std::vector<Tick>& xt, const std::vector<Tick>& yt) {
  // Plot background and grid.
  cairo_rectangle(cr, f.left, f.top, f.width, f.height);
  set_color(cr, Color{0.975, 0.975, 0.98});
  cairo_fill(cr);
  cairo_set_line_width(cr, 0.7);
  if (chart.grid) {
    set_color(cr, Color{0.86, 0.86, 0.88});
    for (const Tick& t : yt) {
      double y = std::round(f.py(t.value)) + 0.5;
      cairo_move_to(cr, f.left, y);
      cairo_line_to(cr, f.left + f.width, y);
    }
    if (chart.x.categories.empty()) {
      for (const Tick& t : xt) {
        double x = std::round(f.px(t.value)) + 0.5;
        cairo_move_to(cr, x, f.top);
        cairo_line_to(cr, x, f.top + f.height);
      }
    }
    cairo_stroke(cr);
  }
}

// The plot frame, tick marks and tick labels (x labels thinned when they would overlap).
void draw_frame_and_ticks(cairo_t* cr, const Frame& f, const std::vector<Tick>& xt,
                          const std::vector<Tick>& yt) {
  set_color(cr, Color{0.25, 0.25, 0.25});
  cairo_set_line_width(cr, 1.0);
  cairo_rectangle(cr, f.left, f.top, f.width, f.height);
  cairo_stroke(cr);
  set_font(cr, kTickFont);
  for (const Tick& t : yt) {
    double y = f.py(t.value);
    cairo_move_to(cr, f.left - 4, y);
    cairo_line_to(cr, f.left, y);
    cairo_stroke(cr);
    draw_text(cr, t.label, f.left - 7, y, 1, 0.5);
  }
  double widest = 0;
  for (const Tick& t : xt) widest = std::max(widest, text_width(cr, t.label));
  size_t every = 1;
  if (!xt.empty()) {
    double room = f.width / static_cast<double>(xt.size());
    every = static_cast<size_t>(std::ceil((widest + 8) / std::max(room, 1.0)));
    every = std::max<size_t>(every, 1);
  }
  for (size_t i = 0; i < xt.size(); ++i) {
    double x = f.px(xt[i].value);
    cairo_move_to(cr, x, f.top + f.height);
    cairo_line_to(cr, x, f.top + f.height + 4);
    cairo_stroke(cr);
    if (i % every == 0) draw_text(cr, xt[i].label, x, f.top + f.height + 6, 0.5, 0);
  }
}

void draw_panel(cairo_t* cr, const Chart& chart, double ox, double oy, double pw, double ph) {
  Frame f;
  f.xa = &chart.x;
  f.ya = &chart.y;
  f.xr = resolve_range(chart, chart.x, true);
  f.yr = resolve_range(chart, chart.y, false);

  double top_margin = chart.title.empty() ? 14 : 34;
  double bottom_margin = chart.x.label.empty() ? 30 : 50;
  double plot_h = ph - top_margin - bottom_margin;
  std::vector<Tick> yt = make_ticks(chart.y, f.yr, std::max(3, static_cast<int>(plot_h / 45)));
  set_font(cr, kTickFont);
  double ytick_w = 0;
  for (const Tick& t : yt) ytick_w = std::max(ytick_w, text_width(cr, t.label));
  double left_margin = 12 + (chart.y.label.empty() ? 0 : kLabelFont + 8) + ytick_w + 8;
  double right_margin = 18;
  if (chart.legend == LegendPosition::kOutsideRight) right_margin += legend_width(cr, chart) + 4;
  f.left = ox + left_margin;
  f.top = oy + top_margin;
  f.width = pw - left_margin - right_margin;
  f.height = plot_h;
  std::vector<Tick> xt = make_ticks(chart.x, f.xr, std::max(3, static_cast<int>(f.width / 80)));

  draw_background_and_grid(cr, f, chart, xt, yt);

  cairo_save(cr);
  cairo_rectangle(cr, f.left, f.top, f.width, f.height);
  cairo_clip(cr);
  draw_series(cr, f, chart);
  cairo_restore(cr);

  draw_frame_and_ticks(cr, f, xt, yt);

  // Titles and axis labels.
  set_color(cr, Color{0.1, 0.1, 0.1});
  if (!chart.title.empty()) {
    set_font(cr, kTitleFont, true);
    draw_text(cr, chart.title, f.left + f.width / 2, oy + 10, 0.5, 0);
  }
  set_font(cr, kLabelFont);
  if (!chart.x.label.empty()) {
    draw_text(cr, chart.x.label, f.left + f.width / 2, oy + ph - 8, 0.5, 1);
  }
  if (!chart.y.label.empty()) {
    cairo_save(cr);
    cairo_translate(cr, ox + 10, f.top + f.height / 2);
    cairo_rotate(cr, -std::numbers::pi / 2);
    draw_text(cr, chart.y.label, 0, 0, 0.5, 0);
    cairo_restore(cr);
  }
  draw_notes(cr, f, chart);
  draw_legend(cr, f, chart);
}

struct Size {
  double width, height, header;
};

Size figure_size(const Figure& figure) {
  int columns = std::max(1, figure.columns);
  int panels = static_cast<int>(figure.panels.size());
  int rows = std::max(1, (panels + columns - 1) / columns);
  int used_columns = std::max(1, std::min(columns, panels));
  double header = figure.title.empty() ? 0 : 34;
  return Size{used_columns * figure.panel_width, header + rows * figure.panel_height, header};
}

void draw_figure(cairo_t* cr, const Figure& figure) {
  Size size = figure_size(figure);
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  if (!figure.title.empty()) {
    set_color(cr, Color{0.05, 0.05, 0.05});
    set_font(cr, kFigureTitleFont, true);
    draw_text(cr, figure.title, size.width / 2, 10, 0.5, 0);
  }
  int columns = std::max(1, figure.columns);
  for (size_t i = 0; i < figure.panels.size(); ++i) {
    int row = static_cast<int>(i) / columns;
    int col = static_cast<int>(i) % columns;
    draw_panel(cr, figure.panels[i], col * figure.panel_width,
               size.header + row * figure.panel_height, figure.panel_width, figure.panel_height);
  }
}

cairo_status_t append_to_string(void* closure, const unsigned char* data, unsigned int length) {
  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
  return CAIRO_STATUS_SUCCESS;
}

std::string xml_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

core::Status check_axis_values(const std::vector<double>& values, const Axis& axis,
                               const std::string& where, const char* name) {
  for (size_t k = 0; k < values.size(); ++k) {
    double v = values[k];
    if (!std::isfinite(v)) {
      return core::invalid_argument("{}: {}[{}] = {} is not a finite number", where, name, k, v);
    }
    if (axis.scale == AxisScale::kLog && v <= 0) {
      return core::invalid_argument(
          "{}: {}[{}] = {} cannot be drawn on a log axis (values must be > 0); drop the point or "
          "use a linear axis",
          where, name, k, v);
    }
  }
  return core::Status::ok();
}

core::Status check_axis(const Axis& axis, const std::string& where) {
  if (axis.scale == AxisScale::kLog && axis.log_base != 10 && axis.log_base != 2) {
    return core::invalid_argument("{}: log_base must be 10 or 2, got {}", where, axis.log_base);
  }
  for (const auto& bound : {axis.min, axis.max}) {
    if (bound && (!std::isfinite(*bound) || (axis.scale == AxisScale::kLog && *bound <= 0))) {
      return core::invalid_argument(
          "{}: axis bound {} is not valid{}", where, *bound,
          axis.scale == AxisScale::kLog ? " for a log axis (must be > 0)" : "");
    }
  }
  if (axis.min && axis.max && !(*axis.min < *axis.max)) {
    return core::invalid_argument("{}: axis min {} must be below max {}", where, *axis.min,
                                  *axis.max);
  }
  return core::Status::ok();
}

}  // namespace

Color palette_color(size_t index) {
  static const Color kPalette[] = {
      {0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173}, {0.839, 0.153, 0.157},
      {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294}, {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498},
      {0.737, 0.741, 0.133}, {0.090, 0.745, 0.812}};
  return kPalette[index % 10];
}

std::vector<double> axis_ticks(double lo, double hi, AxisScale scale, double log_base, int target) {
  std::vector<double> ticks;
  if (!(hi > lo) || target < 1) return ticks;
  if (scale == AxisScale::kLog && lo > 0) {
    double lb = std::log(log_base);
    int k0 = static_cast<int>(std::ceil(std::log(lo) / lb - 1e-9));
    int k1 = static_cast<int>(std::floor(std::log(hi) / lb + 1e-9));
    int count = k1 - k0 + 1;
    if (count >= 2) {
      int every = std::max(1, static_cast<int>(std::ceil(count / (1.5 * target))));
      for (int k = k0; k <= k1; ++k) {
        if ((k - k0) % every == 0) ticks.push_back(std::pow(log_base, k));
      }
      if (log_base == 10 && count <= 2) {  // few decades: add 2× and 5× marks
        std::vector<double> more;
        for (int k = k0 - 1; k <= k1; ++k) {
          for (double m : {2.0, 5.0}) {
            double v = m * std::pow(10.0, k);
            if (v >= lo && v <= hi) more.push_back(v);
          }
        }
        ticks.insert(ticks.end(), more.begin(), more.end());
        std::sort(ticks.begin(), ticks.end());
      }
      return ticks;
    }
    // Less than one full power in range: linear ticks read better.
  }
  double raw = (hi - lo) / target;
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double norm = raw / mag;
  double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  double first = std::ceil(lo / step - 1e-9) * step;
  for (double v = first; v <= hi + step * 1e-9; v += step) {
    double snapped = std::fabs(v) < step * 1e-9 ? 0.0 : v;
    if (scale == AxisScale::kLog && snapped <= 0) continue;
    ticks.push_back(snapped);
  }
  return ticks;
}

std::string format_tick(double value, TickFormat format, double step) {
  if (std::fabs(value) < std::fabs(step) * 1e-9) value = 0;
  if (value == 0) return "0";
  switch (format) {
    case TickFormat::kPercent:
      return strip_zeros(fmt::format("{:.{}f}", value * 100, decimals_for(step * 100))) + "%";
    case TickFormat::kBinary: {
      double a = std::fabs(value);
      if (a >= 1048576 && std::fmod(a, 1048576) == 0) return fmt::format("{}M", value / 1048576);
      if (a >= 1024 && std::fmod(a, 1024) == 0) return fmt::format("{}k", value / 1024);
      if (a >= 1024) return strip_zeros(fmt::format("{:.1f}", value / 1024)) + "k";
      return format_auto(value, step);
    }
    case TickFormat::kAuto:
      break;
  }
  return format_auto(value, step);
}

core::Status validate_figure(const Figure& figure) {
  if (figure.panels.empty())
    return core::invalid_argument("figure '{}' has no panels", figure.title);
  if (figure.columns < 1)
    return core::invalid_argument("figure columns must be >= 1, got {}", figure.columns);
  if (!(figure.panel_width >= 100 && figure.panel_height >= 80 && figure.png_scale > 0 &&
        figure.panel_width * figure.png_scale <= 8000 &&
        figure.panel_height * figure.png_scale <= 8000)) {
    return core::invalid_argument("figure panel size {}x{} (png scale {}) out of range",
                                  figure.panel_width, figure.panel_height, figure.png_scale);
  }
  for (size_t p = 0; p < figure.panels.size(); ++p) {
    const Chart& chart = figure.panels[p];
    std::string panel = fmt::format("panel {} '{}'", p, chart.title);
    HYD_RETURN_IF_ERROR(check_axis(chart.x, panel + " x axis"));
    HYD_RETURN_IF_ERROR(check_axis(chart.y, panel + " y axis"));
    for (const Series& s : chart.series) {
      std::string where = fmt::format("{} series '{}'", panel, s.label);
      if (s.x.size() != s.y.size()) {
        return core::invalid_argument("{}: {} x values but {} y values", where, s.x.size(),
                                      s.y.size());
      }
      if (!s.x_end.empty() && s.x_end.size() != s.x.size()) {
        return core::invalid_argument("{}: {} x_end values for {} points", where, s.x_end.size(),
                                      s.x.size());
      }
      if (!(s.alpha > 0 && s.alpha <= 1)) {
        return core::invalid_argument("{}: alpha {} must be in (0, 1]", where, s.alpha);
      }
      HYD_RETURN_IF_ERROR(check_axis_values(s.x, chart.x, where, "x"));
      HYD_RETURN_IF_ERROR(check_axis_values(s.x_end, chart.x, where, "x_end"));
      if (!s.y_base.empty() && s.y_base.size() != s.y.size()) {
        return core::invalid_argument("{}: {} y_base values for {} points", where, s.y_base.size(),
                                      s.y.size());
      }
      HYD_RETURN_IF_ERROR(check_axis_values(s.y, chart.y, where, "y"));
      HYD_RETURN_IF_ERROR(check_axis_values(s.y_base, chart.y, where, "y_base"));
    }
  }
  return core::Status::ok();
}

core::StatusOr<std::string> render_svg(const Figure& figure) {
  HYD_RETURN_IF_ERROR(validate_figure(figure));
  Size size = figure_size(figure);
  std::string svg;
  cairo_surface_t* surface =
      cairo_svg_surface_create_for_stream(append_to_string, &svg, size.width, size.height);
  cairo_t* cr = cairo_create(surface);
  draw_figure(cr, figure);
  cairo_status_t status = cairo_status(cr);
  cairo_destroy(cr);
  cairo_surface_finish(surface);
  if (status == CAIRO_STATUS_SUCCESS) status = cairo_surface_status(surface);
  cairo_surface_destroy(surface);
  if (status != CAIRO_STATUS_SUCCESS) {
    return core::internal_error("cairo SVG rendering failed: {}", cairo_status_to_string(status));
  }
  // Cairo draws text as glyph outlines; add the titles as text for search and accessibility.
  size_t open = svg.find("<svg");
  size_t end = open == std::string::npos ? open : svg.find('>', open);
  if (end != std::string::npos) {
    std::string desc;
    for (const Chart& chart : figure.panels) {
      if (chart.title.empty()) continue;
      if (!desc.empty()) desc += "; ";
      desc += chart.title;
    }
    std::string meta =
        "\n<title>" + xml_escape(figure.title) + "</title>\n<desc>" + xml_escape(desc) + "</desc>";
    svg.insert(end + 1, meta);
  }
  return svg;
}

core::StatusOr<std::string> render_png(const Figure& figure) {
  HYD_RETURN_IF_ERROR(validate_figure(figure));
  Size size = figure_size(figure);
  int w = static_cast<int>(std::ceil(size.width * figure.png_scale));
  int h = static_cast<int>(std::ceil(size.height * figure.png_scale));
  cairo_surface_t* surface = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, w, h);
  cairo_t* cr = cairo_create(surface);
  cairo_scale(cr, figure.png_scale, figure.png_scale);
  draw_figure(cr, figure);
  cairo_status_t status = cairo_status(cr);
  cairo_destroy(cr);
  std::string png;
  if (status == CAIRO_STATUS_SUCCESS) {
    cairo_surface_flush(surface);
    status = cairo_surface_write_to_png_stream(surface, append_to_string, &png);
  }
  cairo_surface_destroy(surface);
  if (status != CAIRO_STATUS_SUCCESS) {
    return core::internal_error("cairo PNG rendering failed: {}", cairo_status_to_string(status));
  }
  return png;
}

core::Status render_figure(const Figure& figure, const std::string& path_without_extension) {
  HYD_ASSIGN_OR_RETURN(std::string svg, render_svg(figure));
  HYD_ASSIGN_OR_RETURN(std::string png, render_png(figure));
  HYD_RETURN_IF_ERROR(core::write_file_atomic(path_without_extension + ".svg", svg));
  HYD_RETURN_IF_ERROR(core::write_file_atomic(path_without_extension + ".png", png));
  return core::Status::ok();
}

}  // namespace hydraulis::viz
