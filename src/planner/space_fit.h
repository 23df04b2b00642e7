// Scheme-space fit (`hydraulis build-space`): from profiles (planner/profile.h) to the scheme-space
// JSON of spec.md §3 — per scheme time(s) = a·s² + b·s + c by least squares over the profiled
// lengths, and the memory regression (A per tp from the fitted activation slope, B and alpha from
// the measured model-state bytes, gap from the fitted intercepts; docs/profiling.md says which is
// fitted and which derived). Pure: no device, no files except through the callers.
// Tests: tests/planner/space_fit_test.cpp.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "planner/profile.h"
#include "planner/scheme_space.h"

namespace hydraulis::planner {

enum class FitWeighting {
  kUniform,   // minimise Σ (f(s) − t)² (the original's least squares)
  kRelative,  // minimise Σ ((f(s) − t) / t)²: short sequences count as much as long ones
};

// y ≈ a·x² + b·x + c.
struct QuadraticFit {
  double a = 0, b = 0, c = 0;
  double r_squared = 0;      // 1 − SS_res / SS_tot (unweighted, over the points given)
  double max_rel_error = 0;  // max |f(x) − y| / y
  double max_rel_error_x = 0;
  double eval(double x) const { return (a * x + b) * x + c; }
};

// Weighted least squares on the scaled basis (1, x/k, (x/k)²), k = max x, normal equations solved
// in long double with partial pivoting. fixed_zero[i] pins coefficient i (0: a, 1: b, 2: c) to 0.
// Errors: fewer points than free coefficients, all x equal, a non-positive y with kRelative.
core::StatusOr<QuadraticFit> fit_quadratic(std::span<const double> x, std::span<const double> y,
                                           FitWeighting weighting,
                                           std::array<bool, 3> fixed_zero = {});

// The least-squares fit with a, b, c >= 0 (the best over the faces of the orthant; exact for 3
// unknowns).
core::StatusOr<QuadraticFit> fit_quadratic_nonnegative(std::span<const double> x,
                                                       std::span<const double> y,
                                                       FitWeighting weighting);

// y ≈ slope·x + intercept (ordinary least squares).
struct LineFit {
  double slope = 0, intercept = 0;
};
core::StatusOr<LineFit> fit_line(std::span<const double> x, std::span<const double> y);

struct SpaceFitOptions {
  double gpu_memory_bound = 0;  // bytes; 0: the profiles' device memory
  double safe_bound = -1;       // bytes; < 0: 5% of the bound
  double gap = -1;              // bytes for every gap key; < 0: measured (fitted intercepts)
  int gpus_per_node = 8;
  double hetero_dp_ms = 0;      // comm_cost.hetero_dp
  FitWeighting weighting = FitWeighting::kUniform;
  // A median time may fall by at most this share from one length to the next (noise).
  double monotone_tolerance = 0.05;
};

struct NamedProfile {
  std::string source;  // file name, for the messages
  Profile profile;
};

// What was fitted for one scheme, for the report and tests.
struct SchemeFitReport {
  Scheme scheme;
  std::string source;
  std::vector<double> lengths, median_ms;  // the points fitted
  QuadraticFit unconstrained;              // the plain least-squares fit
  QuadraticFit time;                       // what was written (a, b, c >= 0)
  LineFit memory;                          // max peak bytes over the ranks vs length
  double model_state_bytes = 0;            // max over the ranks
  std::vector<std::string> notes;          // e.g. a clamped coefficient
};

struct SpaceFit {
  SchemeSpace space;
  std::vector<SchemeFitReport> schemes;  // in the space's order
  std::vector<std::string> skipped;      // schemes that fit no profiled length (not in the space)
};

// Merges the profiles (same model and device kind; a scheme in one profile only) and fits. Errors
// name the file, the scheme, the value and the fix.
core::StatusOr<SpaceFit> fit_scheme_space(std::span<const NamedProfile> profiles,
                                          const SpaceFitOptions& options);

// One line per scheme: coefficients, R², max relative error, memory slope; then the regression.
std::string format_fit_report(const SpaceFit& fit);

}  // namespace hydraulis::planner
