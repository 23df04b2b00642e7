// Plots the power-cap probe (power_probe.cu's JSON, with the nvidia-smi trace of the same call)
// and the in-step GEMM candidate measurements of bench/train (ctest bench_plot_power_probe renders
// the committed ones into build/bench/kernels/): writes OUT_DIR/power_probe.{svg,png}
// (sustained GEMM rate by operand data, board power and SM clock over the probe, the GEMM on
// fewer SMs, the GEMM beside an AdamW-shaped pass) and OUT_DIR/gemm_candidates.{svg,png}
// (each GEMM's candidates alone at the cap, and what they do to the training step).
// Usage: plot_power_probe PROBE.json CANDIDATES.json OUT_DIR. Docs: bench/train/README.md.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/json.h"
#include "viz/chart.h"

namespace {

using hydraulis::core::Json;
namespace viz = hydraulis::viz;

Json load(const std::string& path) {
  auto json = hydraulis::core::read_json_file(path);
  if (!json.is_ok()) {
    std::fprintf(stderr, "error: %s\n", json.status().to_string().c_str());
    std::exit(1);
  }
  return *json;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double mean(const Json& values) {
  double sum = 0;
  for (const Json& v : values) sum += v.get<double>();
  return values.empty() ? 0 : sum / double(values.size());
}

// A panel with its title, y-axis label and (when min < max) a fixed y range.
viz::Chart panel(const std::string& title, const std::string& y_label, double y_min = 0,
                 double y_max = 0) {
  viz::Chart c;
  c.title = title;
  c.y.label = y_label;
  if (y_min < y_max) {
    c.y.min = y_min;
    c.y.max = y_max;
  }
  return c;
}

std::vector<const Json*> probes(const Json& doc, const std::string& kind) {
  std::vector<const Json*> out;
  for (const Json& p : doc.at("probes")) {
    if (p.at("probe").get<std::string>() == kind) out.push_back(&p);
  }
  return out;
}

viz::Chart fill_chart(const Json& doc) {
  viz::Chart c = panel("gate_up GEMM sustained (m 22016, n 16384, k 4096)", "TFLOP/s", 500, 900);
  c.x.label = "window of 100 GEMMs";
  c.x.min_tick_step = 1;
  for (const Json* p : probes(doc, "fill")) {
    viz::Series s;
    s.label = p->at("operands").get<std::string>() + " operands";
    s.style = viz::SeriesStyle::kLine;
    int i = 1;
    for (const Json& v : p->at("tflops_per_window_of_100")) {
      s.x.push_back(i++);
      s.y.push_back(v.get<double>());
    }
    c.series.push_back(s);
  }
  const Json& smi = doc.at("nvidia_smi");
  auto note = [&](const char* name, const char* key) {
    const Json& phase = smi.at(key);
    return std::string(name) + ": " + std::to_string(int(phase.at("median_power_w").get<double>())) +
           " W, " + std::to_string(int(phase.at("median_sm_clock_mhz").get<double>())) + " MHz";
  };
  c.notes = {note("constant", "fill_constant_phase"), note("random", "fill_random_phase_first_6s"),
             "peak 989 TFLOP/s (1980 MHz)"};
  c.notes_position = viz::LegendPosition::kBottomLeft;
  c.legend = viz::LegendPosition::kTopRight;
  return c;
}

viz::Chart trace_chart(const Json& doc, int column, const std::string& title,
                       const std::string& unit) {
  viz::Chart c = panel(title, unit);
  c.x.label = "seconds (fill, SM targets, AdamW, overlap, candidates)";
  viz::Series s;
  s.style = viz::SeriesStyle::kLine;
  s.line_width = 1.0;
  for (const Json& row : doc.at("nvidia_smi").at("trace").at("samples")) {
    s.x.push_back(row.at(0).get<double>());
    s.y.push_back(row.at(column).get<double>());
  }
  c.series.push_back(s);
  c.legend = viz::LegendPosition::kNone;
  return c;
}

viz::Chart sm_chart(const Json& doc) {
  viz::Chart c = panel("GEMM on fewer SMs, alone and beside an AdamW pass",
                       "fraction of the rate alone on all SMs", 0, 1.3);
  c.x.label = "SMs the GEMM is planned for";
  std::vector<std::pair<int, double>> alone;
  double full = 0;
  for (const Json* p : probes(doc, "sm_target")) {
    std::vector<double> w;
    for (const Json& v : p->at("tflops_per_window_of_60")) w.push_back(v.get<double>());
    const int sms = p->at("sms").get<int>();
    if (sms == 132) full = std::max(full, median(w));
    else alone.push_back({sms, median(w)});
  }
  double pass_alone = 0;
  for (const Json* p : probes(doc, "adamw")) {
    if (p->at("blocks").get<int>() > 100) pass_alone = p->at("gb_per_s").get<double>();
  }
  viz::Series gemm_alone, gemm_shared, pass_shared;
  gemm_alone.label = "GEMM alone";
  gemm_shared.label = "GEMM beside the pass";
  pass_shared.label = "pass on the other SMs";
  gemm_alone.style = gemm_shared.style = pass_shared.style = viz::SeriesStyle::kBars;
  gemm_alone.x.push_back(132);
  gemm_alone.y.push_back(1.0);
  for (auto [sms, rate] : alone) {
    gemm_alone.x.push_back(sms);
    gemm_alone.y.push_back(rate / full);
  }
  for (const Json* p : probes(doc, "overlap")) {
    const int sms = 132 - p->at("reserved_sms").get<int>();
    gemm_shared.x.push_back(sms);
    gemm_shared.y.push_back(p->at("gemm_tflops").get<double>() / full);
    pass_shared.x.push_back(sms);
    pass_shared.y.push_back(p->at("adamw_gb_per_s").get<double>() / pass_alone);
  }
  c.series = {gemm_alone, gemm_shared, pass_shared};
  c.notes = {"132 SMs: " + std::to_string(int(full)) + " TFLOP/s",
             "pass alone: " + std::to_string(int(pass_alone)) + " GB/s"};
  c.legend = viz::LegendPosition::kTopRight;
  return c;
}

viz::Chart candidates_chart(const Json& doc) {
  viz::Chart c =
      panel("Each GEMM of the 7b-4l step alone at the cap: cuBLASLt's first candidate vs its best",
            "TFLOP/s (median of 3 rounds)", 550, 760);
  viz::Series first, best;
  first.label = "first candidate (ours)";
  best.label = "fastest candidate alone";
  first.style = best.style = viz::SeriesStyle::kBars;
  int i = 0;
  for (const Json* p : probes(doc, "candidates")) {
    std::string name = p->at("gemm").get<std::string>();
    const size_t cut = name.find(" (");
    if (cut != std::string::npos) name = name.substr(0, cut);
    const size_t chunk = name.find(" chunk");
    if (chunk != std::string::npos) name = name.substr(0, chunk);
    const size_t plus = name.find(" + residual");
    if (plus != std::string::npos) name = name.substr(0, plus) + "+r";
    c.x.categories.push_back(name);
    std::vector<double> t;
    for (const Json& v : p->at("tflops_by_candidate")) t.push_back(v.get<double>());
    first.x.push_back(i);
    first.y.push_back(t.front());
    best.x.push_back(i);
    best.y.push_back(*std::max_element(t.begin(), t.end()));
    ++i;
  }
  c.series = {first, best};
  c.legend = viz::LegendPosition::kTopRight;
  c.notes = {"y axis starts at 550"};
  return c;
}

viz::Chart step_chart(const Json& cand) {
  viz::Chart c = panel("The 7b-4l training step (one call each, runs alternated)",
                       "step ms (mean of 2 runs)", 170, 195);
  const Json& forced = cand.at("step_ms");
  const Json& tuner = cand.at("in_step_tuner").at("step_ms");
  const Json& first_call = cand.at("first_call_tuner").at("step_ms");
  struct Bar {
    const char* label;
    double ms;
  };
  const std::vector<Bar> bars = {
      {"first (call A)", mean(forced.at("candidate_0"))},
      {"candidate 5 (call A)", mean(forced.at("candidate_5"))},
      {"first (call B)", mean(tuner.at("untuned"))},
      {"in-step tuned (call B)", mean(tuner.at("tuned"))},
      {"first (call C)", mean(first_call.at("untuned"))},
      {"tuned alone (call C)", mean(first_call.at("tuned"))}};
  viz::Series s;
  s.style = viz::SeriesStyle::kBars;
  for (size_t i = 0; i < bars.size(); ++i) {
    c.x.categories.push_back(bars[i].label);
    s.x.push_back(double(i));
    s.y.push_back(bars[i].ms);
  }
  c.series = {s};
  c.legend = viz::LegendPosition::kNone;
  c.notes = {"lower is faster; y axis starts at 170 ms"};
  c.notes_position = viz::LegendPosition::kTopRight;
  return c;
}

// Both figures into OUT_DIR; 1 when one cannot be written.
int plot(const Json& probe, const Json& cand, const std::string& out) {
  viz::Figure power;
  power.title = "700 W cap, " + probe.at("device").get<std::string>() + " (power_probe, git " +
                probe.at("git").get<std::string>() + ")";
  power.columns = 2;
  power.panels = {fill_chart(probe), sm_chart(probe),
                  trace_chart(probe, 1, "Board power (nvidia-smi, every 100 ms)", "W"),
                  trace_chart(probe, 2, "SM clock (nvidia-smi, every 100 ms)", "MHz")};
  viz::Figure candidates;
  candidates.title = "GEMM algorithm choice under the power cap";
  candidates.columns = 1;
  candidates.panel_width = 1500;
  candidates.panels = {candidates_chart(probe), step_chart(cand)};
  for (const auto& [figure, name] : {std::pair{&power, "power_probe"},
                                     std::pair{&candidates, "gemm_candidates"}}) {
    const auto status = viz::render_figure(*figure, out + "/" + name);
    if (!status.is_ok()) {
      std::fprintf(stderr, "error: %s\n", status.to_string().c_str());
      return 1;
    }
    std::printf("wrote %s/%s.svg and .png\n", out.c_str(), name);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: plot_power_probe PROBE.json CANDIDATES.json OUT_DIR\n");
    return 2;
  }
  const Json probe = load(argv[1]);
  const Json cand = load(argv[2]);
  const std::string out = argv[3];
  try {
    return plot(probe, cand, out);
  } catch (const Json::exception& e) {  // a key missing or of the wrong type
    std::fprintf(stderr, "error: %s or %s is not a power_probe / gemm-candidate result: %s\n",
                 argv[1], argv[2], e.what());
    return 1;
  }
}
