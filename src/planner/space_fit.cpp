// Least-squares fits of the profiled times and memory, and the scheme space built from them.
#include "planner/space_fit.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "core/check.h"

namespace hydraulis::planner {
namespace {

using core::StatusOr;
using Real = long double;

// Solves the n × n system M·z = r (n <= 3) by Gaussian elimination with partial pivoting.
// False when M is singular to working precision.
bool solve(std::array<std::array<Real, 3>, 3> m, std::array<Real, 3> r, int n,
           std::array<Real, 3>& z) {
  for (int col = 0; col < n; ++col) {
    int pivot = col;
    for (int row = col + 1; row < n; ++row) {
      if (std::fabs(m[size_t(row)][size_t(col)]) > std::fabs(m[size_t(pivot)][size_t(col)])) {
        pivot = row;
      }
    }
    if (std::fabs(m[size_t(pivot)][size_t(col)]) < 1e-30L) return false;
    std::swap(m[size_t(col)], m[size_t(pivot)]);
    std::swap(r[size_t(col)], r[size_t(pivot)]);
    for (int row = col + 1; row < n; ++row) {
      const Real f = m[size_t(row)][size_t(col)] / m[size_t(col)][size_t(col)];
      for (int k = col; k < n; ++k) m[size_t(row)][size_t(k)] -= f * m[size_t(col)][size_t(k)];
      r[size_t(row)] -= f * r[size_t(col)];
    }
  }
  for (int row = n - 1; row >= 0; --row) {
    Real v = r[size_t(row)];
    for (int k = row + 1; k < n; ++k) v -= m[size_t(row)][size_t(k)] * z[size_t(k)];
    z[size_t(row)] = v / m[size_t(row)][size_t(row)];
  }
  return true;
}

void score(QuadraticFit& fit, std::span<const double> x, std::span<const double> y) {
  Real mean = 0;
  for (double v : y) mean += v;
  mean /= Real(y.size());
  Real ss_res = 0, ss_tot = 0;
  fit.max_rel_error = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const Real e = Real(fit.eval(x[i])) - Real(y[i]);
    ss_res += e * e;
    ss_tot += (Real(y[i]) - mean) * (Real(y[i]) - mean);
    const double rel = y[i] != 0 ? double(std::fabs(e) / std::fabs(Real(y[i]))) : 0.0;
    if (rel > fit.max_rel_error) {
      fit.max_rel_error = rel;
      fit.max_rel_error_x = x[i];
    }
  }
  fit.r_squared = ss_tot > 0 ? double(1 - ss_res / ss_tot) : (ss_res == 0 ? 1.0 : 0.0);
}

Real weighted_sse(const QuadraticFit& fit, std::span<const double> x, std::span<const double> y,
                  FitWeighting weighting) {
  Real s = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    Real e = Real(fit.eval(x[i])) - Real(y[i]);
    if (weighting == FitWeighting::kRelative) e /= Real(y[i]);
    s += e * e;
  }
  return s;
}

std::string join_lengths(const std::vector<double>& lengths) {
  std::string out;
  for (double s : lengths) out += fmt::format("{}{}", out.empty() ? "" : ", ", int64_t(s));
  return out;
}

// The scheme's profile, checked: enough lengths, times rising (within the tolerance).
core::Status check_points(const SchemeProfile& s, const std::string& source,
                          const SpaceFitOptions& options, std::vector<double>& lengths,
                          std::vector<double>& medians) {
  for (const ProfilePoint& p : s.points) {
    lengths.push_back(double(p.seq_len));
    medians.push_back(s.median_ms(p));
  }
  if (lengths.size() < 3) {
    return core::invalid_argument(
        "{}: scheme {} has {} profiled length{} ({}); the quadratic a·s² + b·s + c needs at least "
        "3: re-run `hydraulis profile` with a larger --max-seq-len or a smaller --min-seq-len{}",
        source, s.scheme.to_string(), lengths.size(), lengths.size() == 1 ? "" : "s",
        lengths.empty() ? "none" : join_lengths(lengths),
        s.stopped_at > 0
            ? fmt::format(" (profiling stopped at {}: {}; a scheme with more tp or pp fits longer "
                          "sequences)",
                          s.stopped_at, s.stop_reason)
            : "");
  }
  for (size_t i = 1; i < medians.size(); ++i) {
    if (medians[i] < medians[i - 1] * (1 - options.monotone_tolerance)) {
      return core::invalid_argument(
          "{}: scheme {}: the median time per micro-batch falls from {:.4g} ms at {} tokens to "
          "{:.4g} ms at {} tokens ({:.1f}%, more than the {:.0f}% noise tolerance); times must "
          "rise with the length: re-profile on an idle machine with more --repeats, or drop the "
          "short lengths with --min-seq-len (or raise --monotone-tolerance)",
          source, s.scheme.to_string(), medians[i - 1], int64_t(lengths[i - 1]), medians[i],
          int64_t(lengths[i]), 100 * (medians[i] / medians[i - 1] - 1),
          100 * options.monotone_tolerance);
    }
  }
  return core::Status::ok();
}

// The time fit of one scheme: plain least squares; if a coefficient is negative the cost must
// still rise over the profiled range (else an error), and the written fit is the non-negative one.
core::Status fit_time(const SchemeProfile& s, const std::string& source,
                      const SpaceFitOptions& options, SchemeFitReport& report) {
  HYD_ASSIGN_OR_RETURN(report.unconstrained,
                       fit_quadratic(report.lengths, report.median_ms, options.weighting));
  const QuadraticFit& u = report.unconstrained;
  report.time = u;
  if (u.a >= 0 && u.b >= 0 && u.c >= 0) return core::Status::ok();
  const double lo = report.lengths.front(), hi = report.lengths.back();
  const bool rising = 2 * u.a * lo + u.b > 0 && 2 * u.a * hi + u.b > 0 && u.eval(lo) > 0;
  if (!rising) {
    return core::invalid_argument(
        "{}: scheme {}: the fitted time {:.6g}·s² + {:.6g}·s + {:.6g} ms is not rising and "
        "positive over the profiled lengths {}..{} (slope {:.4g} ms/token at {}, {:.4g} at {}): "
        "the measurements are too noisy for a quadratic; re-profile with more --repeats and a "
        "larger --max-seq-len on an idle machine",
        source, s.scheme.to_string(), u.a, u.b, u.c, int64_t(lo), int64_t(hi), 2 * u.a * lo + u.b,
        int64_t(lo), 2 * u.a * hi + u.b, int64_t(hi));
  }
  HYD_ASSIGN_OR_RETURN(report.time,
                       fit_quadratic_nonnegative(report.lengths, report.median_ms,
                                                 options.weighting));
  const char* names[] = {"a", "b", "c"};
  const double values[] = {u.a, u.b, u.c};
  for (int i = 0; i < 3; ++i) {
    if (values[i] < 0) {
      report.notes.push_back(fmt::format(
          "{} fitted {:.4g} < 0 (the schema needs a, b, c >= 0): refitted with a, b, c >= 0", names[i],
          values[i]));
    }
  }
  return core::Status::ok();
}

// Smallest multiple of 128 where the per-micro-batch constant c is at most 10% of a·s² + b·s.
int64_t utilization_length(const QuadraticFit& f, int64_t longest) {
  double s = 0;
  if (f.c <= 0) return 128;
  if (f.a > 0) {
    s = (-f.b + std::sqrt(f.b * f.b + 40 * f.a * f.c)) / (2 * f.a);
  } else if (f.b > 0) {
    s = 10 * f.c / f.b;
  } else {
    s = double(longest);
  }
  const int64_t aligned = (int64_t(std::ceil(s)) + 127) / 128 * 128;
  return std::clamp<int64_t>(aligned, 128, std::max<int64_t>(128, longest));
}

// Profiles fitted together describe one model on one kind of device.
core::Status check_compatible(const NamedProfile& np, const NamedProfile& first) {
  const Profile& p = np.profile;
  if (!(p.model == first.profile.model)) {
    return core::invalid_argument(
        "{} profiles model '{}' (H {}, L {}, V {}) but {} profiles '{}' (H {}, L {}, V {}): a "
        "scheme space describes one model; build one space per model",
        np.source, p.model.name, p.model.hidden, p.model.layers, p.model.vocab, first.source,
        first.profile.model.name, first.profile.model.hidden, first.profile.model.layers,
        first.profile.model.vocab);
  }
  if (p.device_kind != first.profile.device_kind) {
    return core::invalid_argument(
        "{} was measured on {} ({}) but {} on {} ({}): mix profiles of one kind of device only",
        np.source, p.device_kind, p.device_name, first.source, first.profile.device_kind,
        first.profile.device_name);
  }
  return core::Status::ok();
}

// What the memory regression collects over the schemes.
struct RegressionSums {
  std::map<int, double> activation;    // A[tp]: the largest over the schemes with that tp
  std::map<std::string, double> gap;   // the largest intercept residual per GPU-count key
  double block_bytes = 0;              // B: the largest over the ranks
  double layer_optimizer = 0, layer_total = 0;  // Σ over the ranks, for alpha
  std::map<int, int64_t> utilization;  // utilization_seqlen by tp
};

// Fits one scheme's time and memory line and adds its share to the regression.
StatusOr<SchemeFitReport> fit_one_scheme(const SchemeProfile& s, const std::string& source,
                                         const SpaceFitOptions& options, double H, double L,
                                         RegressionSums& acc) {
  SchemeFitReport report;
  report.scheme = s.scheme;
  report.source = source;
  HYD_RETURN_IF_ERROR(check_points(s, source, options, report.lengths, report.median_ms));
  HYD_RETURN_IF_ERROR(fit_time(s, source, options, report));

  // Memory: the binding rank's peak against the length (fitted), model state (measured).
  // The line goes through the longest half of the lengths (at least 2): there the memory
  // bound binds, and per-micro-batch buffers capped by a chunk size (the LM head's logits
  // chunk) have stopped growing.
  const size_t n = s.points.size(), from = n - std::max<size_t>(2, (n + 1) / 2);
  std::vector<double> long_lengths, peaks;
  for (size_t i = from; i < n; ++i) {
    long_lengths.push_back(double(s.points[i].seq_len));
    peaks.push_back(double(s.points[i].max_peak_bytes()));
  }
  HYD_ASSIGN_OR_RETURN(report.memory, fit_line(long_lengths, peaks));
  if (!(report.memory.slope > 0)) {
    return core::invalid_argument(
        "{}: scheme {}: the peak memory does not grow with the length (fitted slope {:.4g} "
        "bytes per token over {}..{}): the profile's peak_bytes are not per-length peaks; "
        "re-run `hydraulis profile`",
        source, s.scheme.to_string(), report.memory.slope, int64_t(long_lengths.front()),
        int64_t(long_lengths.back()));
  }
  // activation(S) = L·(S/cp · H/tp)·A[tp]  →  A = slope·cp / (L·H/tp).
  const double a_tp = report.memory.slope * s.scheme.cp / (L * H / s.scheme.tp);
  acc.activation[s.scheme.tp] = std::max(acc.activation[s.scheme.tp], a_tp);
  int64_t context = 0;
  for (const RankState& r : s.ranks) {
    report.model_state_bytes = std::max(report.model_state_bytes, double(r.total()));
    context = std::max(context, r.context_bytes);
    if (r.layers > 0) {
      // The scheme's own optimizer layout shards over os_dp = cp (cp ranks count as data
      // parallel, docs/planner.md §3): undo it so B·alpha is the unsharded optimizer state.
      const double optimizer = double(r.layer_optimizer_bytes) * s.scheme.cp;
      const double state = double(r.layer_strategy_bytes) + optimizer;
      const double per_block = double(r.layers) * H * H / s.scheme.tp;
      acc.block_bytes = std::max(acc.block_bytes, state / per_block);
      acc.layer_optimizer += optimizer;
      acc.layer_total += state;
    }
  }
  // The intercept beyond the model state is memory a micro-batch of any length needs.
  const double residual =
      std::max(0.0, report.memory.intercept - report.model_state_bytes) + double(context);
  const int g = s.scheme.gpus();
  for (const auto& [key, limit] : {std::pair<const char*, int>{"gpu1", 1}, {"gpu2", 2},
                                   {"gpu4", 4}, {"node", 1 << 30}}) {
    if (g <= limit) acc.gap[key] = std::max(acc.gap[key], residual);
  }
  acc.utilization[s.scheme.tp] =
      std::max(acc.utilization[s.scheme.tp],
               utilization_length(report.time, int64_t(report.lengths.back())));
  return report;
}

}  // namespace

StatusOr<QuadraticFit> fit_quadratic(std::span<const double> x, std::span<const double> y,
                                     FitWeighting weighting, std::array<bool, 3> fixed_zero) {
  if (x.size() != y.size()) {
    return core::invalid_argument("fit_quadratic: {} lengths but {} times", x.size(), y.size());
  }
  std::vector<int> free;  // coefficient indices: 0 a (x²), 1 b (x), 2 c (1)
  for (int i = 0; i < 3; ++i) {
    if (!fixed_zero[size_t(i)]) free.push_back(i);
  }
  const int n = int(free.size());
  if (int(x.size()) < n) {
    return core::invalid_argument("a fit with {} free coefficients needs >= {} points, got {}", n,
                                  n, x.size());
  }
  Real k = 0;
  for (double v : x) k = std::max(k, std::fabs(Real(v)));
  if (k == 0) k = 1;
  std::array<std::array<Real, 3>, 3> m{};
  std::array<Real, 3> r{};
  for (size_t i = 0; i < x.size(); ++i) {
    Real w = 1;
    if (weighting == FitWeighting::kRelative) {
      if (!(y[i] > 0)) {
        return core::invalid_argument("relative weighting needs positive times, got {} at {}", y[i],
                                      x[i]);
      }
      w = 1 / (Real(y[i]) * Real(y[i]));
    }
    const Real u = Real(x[i]) / k;
    const Real basis[3] = {u * u, u, 1};
    for (int p = 0; p < n; ++p) {
      for (int q = 0; q < n; ++q) {
        m[size_t(p)][size_t(q)] += w * basis[free[size_t(p)]] * basis[free[size_t(q)]];
      }
      r[size_t(p)] += w * basis[free[size_t(p)]] * Real(y[i]);
    }
  }
  std::array<Real, 3> z{};
  if (n > 0 && !solve(m, r, n, z)) {
    return core::invalid_argument(
        "the fit is singular: the {} points have fewer than {} distinct lengths", x.size(), n);
  }
  Real coef[3] = {0, 0, 0};  // in the scaled basis
  for (int p = 0; p < n; ++p) coef[free[size_t(p)]] = z[size_t(p)];
  QuadraticFit fit;
  fit.a = double(coef[0] / (k * k));
  fit.b = double(coef[1] / k);
  fit.c = double(coef[2]);
  score(fit, x, y);
  return fit;
}

StatusOr<QuadraticFit> fit_quadratic_nonnegative(std::span<const double> x,
                                                 std::span<const double> y,
                                                 FitWeighting weighting) {
  bool found = false;
  QuadraticFit best;
  Real best_sse = 0;
  // Every face of the orthant: mask bit i set = coefficient i pinned to 0 (mask 7 = all zero).
  for (int mask = 0; mask < 8; ++mask) {
    const std::array<bool, 3> fixed = {(mask & 1) != 0, (mask & 2) != 0, (mask & 4) != 0};
    auto fit = fit_quadratic(x, y, weighting, fixed);
    if (!fit.is_ok()) continue;
    if (fit->a < 0 || fit->b < 0 || fit->c < 0) continue;
    const Real sse = weighted_sse(*fit, x, y, weighting);
    if (!found || sse < best_sse) {
      found = true;
      best = *fit;
      best_sse = sse;
    }
  }
  HYD_CHECK(found, "the all-zero fit is always feasible");
  return best;
}

StatusOr<LineFit> fit_line(std::span<const double> x, std::span<const double> y) {
  if (x.size() != y.size() || x.size() < 2) {
    return core::invalid_argument("a line needs >= 2 points, got {}", std::min(x.size(), y.size()));
  }
  Real mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    mx += x[i];
    my += y[i];
  }
  mx /= Real(x.size());
  my /= Real(x.size());
  Real sxx = 0, sxy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxx += (x[i] - mx) * (x[i] - mx);
    sxy += (x[i] - mx) * (y[i] - my);
  }
  if (sxx == 0) return core::invalid_argument("a line needs >= 2 distinct lengths");
  LineFit f;
  f.slope = double(sxy / sxx);
  f.intercept = double(my - sxy / sxx * mx);
  return f;
}

StatusOr<SpaceFit> fit_scheme_space(std::span<const NamedProfile> profiles,
                                    const SpaceFitOptions& options) {
  if (profiles.empty()) return core::invalid_argument("no profile given: pass --profile F.json");
  const NamedProfile& first = profiles.front();
  std::map<Scheme, std::string> seen;
  SpaceFit out;
  const double H = double(first.profile.model.hidden), L = double(first.profile.model.layers);
  RegressionSums acc;
  int64_t device_memory = 0;
  for (const NamedProfile& np : profiles) {
    const Profile& p = np.profile;
    HYD_RETURN_IF_ERROR(check_compatible(np, first));
    device_memory = device_memory == 0 ? p.device_memory_bytes
                                       : std::min(device_memory, p.device_memory_bytes);
    if (p.schemes.empty()) {
      return core::invalid_argument(
          "{} holds no profiled scheme: re-run `hydraulis profile` (every scheme it tried was "
          "skipped or ran out of memory at its first length)",
          np.source);
    }
    for (const SchemeProfile& s : p.schemes) {
      auto [it, inserted] = seen.emplace(s.scheme, np.source);
      if (!inserted) {
        return core::invalid_argument(
            "scheme {} is profiled in both {} and {}: pass only one profile of each scheme",
            s.scheme.to_string(), it->second, np.source);
      }
      if (s.points.empty() && s.stopped_at > 0) {
        out.skipped.push_back(fmt::format("{} ({}): does not fit at {} tokens: {}",
                                          s.scheme.to_string(), np.source, s.stopped_at,
                                          s.stop_reason));
        continue;
      }
      HYD_ASSIGN_OR_RETURN(SchemeFitReport report,
                           fit_one_scheme(s, np.source, options, H, L, acc));
      out.space.add_scheme({s.scheme, report.time.a, report.time.b, report.time.c});
      out.schemes.push_back(std::move(report));
    }
  }
  if (out.schemes.empty()) {
    return core::invalid_argument(
        "no scheme of {} ran a single length (every one is over the memory forecast at its "
        "first length): profile with a smaller --min-seq-len, a smaller model or more ranks",
        first.source);
  }
  if (!(acc.block_bytes > 0) || !(acc.layer_total > 0)) {
    return core::invalid_argument(
        "{}: no rank reports decoder-layer state bytes, so B cannot be derived: re-run "
        "`hydraulis profile`",
        first.source);
  }
  MemoryRegression memory;
  memory.activation_per_tp = acc.activation;
  memory.block_bytes = acc.block_bytes;
  memory.alpha = acc.layer_optimizer / acc.layer_total;
  std::map<std::string, double>& gap = acc.gap;
  if (options.gap >= 0) {
    for (const char* key : {"gpu1", "gpu2", "gpu4", "node"}) gap[key] = options.gap;
  }
  for (const char* key : {"gpu1", "gpu2", "gpu4"}) {
    if (!gap.contains(key)) gap[key] = gap["node"];
  }
  for (auto& [key, v] : gap) v = std::round(v);
  memory.gap = gap;
  const double bound =
      options.gpu_memory_bound > 0 ? options.gpu_memory_bound : double(device_memory);
  if (!(bound > 0)) {
    return core::invalid_argument(
        "{} records no device memory: pass --gpu-memory-bound BYTES (usable bytes per GPU)",
        first.source);
  }
  memory.safe_bound = std::floor(options.safe_bound >= 0 ? options.safe_bound : 0.05 * bound);
  out.space.set_memory(memory);
  out.space.set_model({first.profile.model.hidden, first.profile.model.layers,
                       first.profile.model.vocab});
  ClusterConfig cluster;
  cluster.gpus_per_node = options.gpus_per_node;
  cluster.gpu_memory_bound = std::floor(bound);
  cluster.utilization_seqlen = acc.utilization;
  out.space.set_cluster(cluster);
  out.space.set_hetero_dp_comm_ms(options.hetero_dp_ms);
  // The written space must load back (schema rules of scheme_space.cpp).
  HYD_RETURN_IF_ERROR(SchemeSpace::from_json(out.space.to_json(), "the fitted scheme space").status());
  return out;
}

std::string format_fit_report(const SpaceFit& fit) {
  std::string out = fmt::format("{:<12} {:>7} {:>12} {:>12} {:>10} {:>10} {:>13}  {}\n", "scheme",
                                "lengths", "a (ms/tok²)", "b (ms/tok)", "c (ms)", "R²",
                                "max rel err", "A (B/elem)");
  for (const SchemeFitReport& r : fit.schemes) {
    const double a_tp = fit.space.memory().activation_per_tp.at(r.scheme.tp);
    out += fmt::format("{:<12} {:>7} {:>12.4e} {:>12.4e} {:>10.4f} {:>10.6f} {:>8.2f}% @{:<5}  {:.2f}"
                       "  ({})\n",
                       r.scheme.to_string(), r.lengths.size(), r.time.a, r.time.b, r.time.c,
                       r.time.r_squared, 100 * r.time.max_rel_error,
                       int64_t(r.time.max_rel_error_x), a_tp, r.source);
    for (const std::string& note : r.notes) out += fmt::format("    note: {}\n", note);
  }
  const MemoryRegression& m = fit.space.memory();
  out += fmt::format("memory regression: B {:.2f} bytes per H² element, alpha {:.4f}, gap.node {}, "
                     "safe_bound {}, gpu_memory_bound {}\n",
                     m.block_bytes, m.alpha, m.gap.at("node"), m.safe_bound,
                     fit.space.cluster().gpu_memory_bound);
  for (const std::string& skipped : fit.skipped) out += fmt::format("skipped {}\n", skipped);
  return out;
}

}  // namespace hydraulis::planner
