// Tests of the viz plotting library: tick choice and labels, validation (log axes reject
// values <= 0), and a rendered two-panel figure whose PNG header and SVG text are checked.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "core/file.h"
#include "viz/chart.h"

namespace hydraulis::viz {
namespace {

uint32_t read_be32(const std::string& bytes, size_t offset) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(bytes[offset + i]);
  return v;
}

Figure sample_figure() {
  Figure figure;
  figure.title = "Length & cost <demo>";
  figure.columns = 2;
  figure.panel_width = 400;
  figure.panel_height = 300;
  figure.png_scale = 1.5;

  Chart hist;
  hist.title = "Histogram panel";
  hist.x.label = "tokens";
  hist.x.scale = AxisScale::kLog;
  hist.x.log_base = 2;
  hist.x.tick_format = TickFormat::kBinary;
  hist.y.label = "sequences";
  Series bars;
  bars.label = "count";
  bars.style = SeriesStyle::kBars;
  bars.x = {64, 128, 256, 512};
  bars.x_end = {128, 256, 512, 1024};
  bars.y = {3, 10, 7, 1};
  hist.series.push_back(bars);
  Series cdf;
  cdf.label = "cdf";
  cdf.style = SeriesStyle::kStep;
  cdf.x = {64, 128, 256, 512, 1024};
  cdf.y = {0, 3, 10, 7, 1};
  hist.series.push_back(cdf);
  figure.panels.push_back(hist);

  Chart scatter;
  scatter.title = "Scatter panel";
  scatter.x.label = "batch";
  scatter.y.label = "length";
  scatter.y.scale = AxisScale::kLog;
  Series points;
  points.label = "sequence";
  points.style = SeriesStyle::kScatter;
  points.alpha = 0.3;
  for (int i = 0; i < 2000; ++i) {
    points.x.push_back(i % 100);
    points.y.push_back(1 + (i * 37) % 5000);
  }
  scatter.series.push_back(points);
  Series line;
  line.label = "max";
  line.style = SeriesStyle::kLine;
  line.x = {0, 50, 99};
  line.y = {5000, 4000, 4990};
  scatter.series.push_back(line);
  scatter.notes = {"note line"};
  figure.panels.push_back(scatter);

  Chart categories;
  categories.title = "Categorical panel";
  categories.x.categories = {"0-1k", "1k-2k", "2k-4k"};
  categories.y.tick_format = TickFormat::kPercent;
  Series a, b;
  a.label = "sequences";
  a.style = b.style = SeriesStyle::kBars;
  a.x = b.x = {0, 1, 2};
  a.y = {0.7, 0.2, 0.1};
  b.label = "tokens";
  b.y = {0.3, 0.3, 0.4};
  categories.series = {a, b};
  figure.panels.push_back(categories);
  return figure;
}

TEST(VizTicks, LinearNiceSteps) {
  std::vector<double> t = axis_ticks(0, 10, AxisScale::kLinear, 10, 5);
  // range 10 / 5 = 2 -> step 2: 0, 2, 4, 6, 8, 10.
  ASSERT_EQ(t.size(), 6u);
  EXPECT_DOUBLE_EQ(t[0], 0);
  EXPECT_DOUBLE_EQ(t[5], 10);
  t = axis_ticks(0.13, 0.91, AxisScale::kLinear, 10, 4);
  // raw step 0.195 -> 0.2: 0.2, 0.4, 0.6, 0.8.
  ASSERT_EQ(t.size(), 4u);
  EXPECT_NEAR(t[0], 0.2, 1e-12);
  EXPECT_NEAR(t[3], 0.8, 1e-12);
}

TEST(VizTicks, LogPowers) {
  std::vector<double> t = axis_ticks(0.5, 20000, AxisScale::kLog, 10, 8);
  // powers of ten inside [0.5, 20000]: 1, 10, 100, 1000, 10000.
  ASSERT_EQ(t.size(), 5u);
  EXPECT_DOUBLE_EQ(t[0], 1);
  EXPECT_DOUBLE_EQ(t[4], 10000);
  t = axis_ticks(60, 1100, AxisScale::kLog, 2, 8);
  // powers of two inside [60, 1100]: 64, 128, 256, 512, 1024.
  ASSERT_EQ(t.size(), 5u);
  EXPECT_DOUBLE_EQ(t[0], 64);
  EXPECT_DOUBLE_EQ(t[4], 1024);
}

TEST(VizTicks, Labels) {
  EXPECT_EQ(format_tick(0, TickFormat::kAuto, 1), "0");
  EXPECT_EQ(format_tick(0.25, TickFormat::kAuto, 0.05), "0.25");
  EXPECT_EQ(format_tick(1500, TickFormat::kAuto, 500), "1.5k");
  EXPECT_EQ(format_tick(3e6, TickFormat::kAuto, 1e6), "3M");
  EXPECT_EQ(format_tick(32768, TickFormat::kBinary, 32768), "32k");
  EXPECT_EQ(format_tick(512, TickFormat::kBinary, 512), "512");
  EXPECT_EQ(format_tick(0.25, TickFormat::kPercent, 0.05), "25%");
}

TEST(VizValidate, LogAxisRejectsNonPositive) {
  Figure figure = sample_figure();
  figure.panels[1].series[0].y[7] = 0;
  core::Status status = validate_figure(figure);
  ASSERT_FALSE(status.is_ok());
  EXPECT_NE(status.message().find("log axis"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("y[7] = 0"), std::string::npos) << status.message();
  EXPECT_FALSE(render_svg(figure).is_ok());

  figure = sample_figure();
  figure.panels[0].series[0].x[0] = -1;
  EXPECT_FALSE(validate_figure(figure).is_ok());

  figure = sample_figure();
  figure.panels[0].series[0].y.pop_back();  // size mismatch
  EXPECT_FALSE(validate_figure(figure).is_ok());

  figure = sample_figure();
  figure.panels[2].series[0].y[1] = std::nan("");
  EXPECT_FALSE(validate_figure(figure).is_ok());
}

TEST(VizRender, WritesSvgAndPng) {
  Figure figure = sample_figure();
  ASSERT_TRUE(validate_figure(figure).is_ok());
  std::filesystem::path dir = std::filesystem::path(testing::TempDir()) / "hyd_viz_test";
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(core::make_directories(dir.string()).is_ok());
  std::string prefix = (dir / "figure").string();
  core::Status status = render_figure(figure, prefix);
  ASSERT_TRUE(status.is_ok()) << status.to_string();

  auto png = core::read_file(prefix + ".png");
  ASSERT_TRUE(png.is_ok());
  ASSERT_GT(png->size(), 24u);
  EXPECT_EQ(png->substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(png->substr(12, 4), "IHDR");
  // 3 panels in 2 columns -> 2 rows: 800 x (34 title + 600) points, × 1.5.
  EXPECT_EQ(read_be32(*png, 16), 1200u);
  EXPECT_EQ(read_be32(*png, 20), 951u);

  auto svg = core::read_file(prefix + ".svg");
  ASSERT_TRUE(svg.is_ok());
  EXPECT_EQ(svg->rfind("<?xml", 0), 0u);
  EXPECT_NE(svg->find("<svg"), std::string::npos);
  EXPECT_NE(svg->find("</svg>"), std::string::npos);
  EXPECT_NE(svg->find("width=\"800"), std::string::npos);
  EXPECT_NE(svg->find("<title>Length &amp; cost &lt;demo&gt;</title>"), std::string::npos);
  EXPECT_NE(svg->find("Scatter panel"), std::string::npos);
  size_t opens = 0, closes = 0;
  for (char c : *svg) opens += c == '<', closes += c == '>';
  EXPECT_EQ(opens, closes);
  // No temp files left behind.
  size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    files += entry.is_regular_file();
  EXPECT_EQ(files, 2u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace hydraulis::viz
