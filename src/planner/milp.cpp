// CBC models for packing and dispatch (see milp.h), through CBC's C interface.
#include "planner/milp.h"

#include <coin/CbcModel.hpp>
#include <coin/CoinPackedMatrix.hpp>
#include <coin/CoinPackedVector.hpp>
#include <coin/OsiClpSolverInterface.hpp>

#include <algorithm>
#include <cmath>
#include <string>

#include "core/check.h"

namespace hydraulis::planner {
namespace {

constexpr double kInfinity = 1e30;  // CBC treats |bound| ≥ 1e30 as infinite

// Collects columns and rows, then solves with CbcModel over Clp: plain branch and bound, silent,
// one thread, time-limited (CBC's C interface goes through CbcMain1, which costs ~3x more on the
// small packing models).
class MilpBuilder {
 public:
  int add_col(double lb, double ub, double obj, bool integer) {
    col_lb_.push_back(lb);
    col_ub_.push_back(ub);
    obj_.push_back(obj);
    integer_.push_back(integer ? 1 : 0);
    return static_cast<int>(obj_.size()) - 1;
  }
  void add_row(const std::vector<int>& cols, const std::vector<double>& coefs, char sense,
               double rhs) {
    rows_.emplace_back(static_cast<int>(cols.size()), cols.data(), coefs.data());
    row_lb_.push_back(sense == 'L' ? -kInfinity : rhs);
    row_ub_.push_back(sense == 'G' ? kInfinity : rhs);
  }

  // Solves; fills feasible/optimal/objective/bound and returns the best solution (empty if none).
  std::vector<double> solve(double time_limit_s, const std::vector<double>& start,
                            MilpResult& result) {
    const int num_cols = static_cast<int>(obj_.size());
    CoinPackedMatrix matrix(false, 0, 0);
    matrix.setDimensions(0, num_cols);
    for (const CoinPackedVector& row : rows_) matrix.appendRow(row);
    OsiClpSolverInterface solver;
    solver.messageHandler()->setLogLevel(0);
    solver.loadProblem(matrix, col_lb_.data(), col_ub_.data(), obj_.data(), row_lb_.data(),
                       row_ub_.data());
    for (int c = 0; c < num_cols; ++c) {
      if (integer_[c]) solver.setInteger(c);
    }
    CbcModel model(solver);
    model.setLogLevel(0);
    model.messageHandler()->setLogLevel(0);
    model.setNumberThreads(1);
    // Wall-clock limit: CBC's default is process CPU time, which runs N times faster when N
    // batches are planned in parallel threads and would starve every solve.
    model.setUseElapsedTime(true);
    model.setMaximumSeconds(std::max(0.01, time_limit_s));
    if (static_cast<int>(start.size()) == num_cols) {
      double objective = 0;
      for (int c = 0; c < num_cols; ++c) objective += obj_[c] * start[c];
      model.setBestSolution(start.data(), num_cols, objective, true);
    }
    model.branchAndBound();
    const double* x = model.bestSolution();
    result.feasible = x != nullptr;
    result.optimal = result.feasible && model.isProvenOptimal();
    result.objective = result.feasible ? model.getObjValue() : 0.0;
    result.bound = model.getBestPossibleObjValue();
    return x ? std::vector<double>(x, x + num_cols) : std::vector<double>{};
  }

 private:
  std::vector<double> col_lb_, col_ub_, obj_;
  std::vector<char> integer_;
  std::vector<CoinPackedVector> rows_;
  std::vector<double> row_lb_, row_ub_;
};

// Index of the largest entry of x[begin..end) (a binary row of a solution).
int argmax_binary(const double* x, const std::vector<int>& cols) {
  int best = -1;
  double best_value = 0.5;
  for (size_t k = 0; k < cols.size(); ++k) {
    if (cols[k] >= 0 && x[cols[k]] > best_value) {
      best_value = x[cols[k]];
      best = static_cast<int>(k);
    }
  }
  return best;
}

}  // namespace

MilpResult solve_pack_milp(std::span<const int64_t> tokens, std::span<const double> costs,
                           int64_t cap, int num_bins, double time_limit_s) {
  HYD_CHECK(tokens.size() == costs.size() && num_bins > 0, "{} tokens, {} costs, {} bins",
            tokens.size(), costs.size(), num_bins);
  const int n = static_cast<int>(tokens.size());
  MilpResult result;
  MilpBuilder model;
  std::vector<std::vector<int>> o(n, std::vector<int>(num_bins));
  for (int i = 0; i < n; ++i) {
    for (int k = 0; k < num_bins; ++k) o[i][k] = model.add_col(0, 1, 0, true);
  }
  double total_cost = 0;
  for (double c : costs) total_cost += c;
  const int z = model.add_col(0, total_cost, 1.0, false);
  for (int i = 0; i < n; ++i) {
    model.add_row(o[i], std::vector<double>(num_bins, 1.0), 'E', 1.0);
  }
  for (int k = 0; k < num_bins; ++k) {
    std::vector<int> cols;
    std::vector<double> tok;
    std::vector<double> cst;
    for (int i = 0; i < n; ++i) {
      cols.push_back(o[i][k]);
      tok.push_back(static_cast<double>(tokens[i]));
      cst.push_back(costs[i]);
    }
    model.add_row(cols, tok, 'L', static_cast<double>(cap));
    cols.push_back(z);
    cst.push_back(-1.0);
    model.add_row(cols, cst, 'L', 0.0);
  }
  std::vector<double> x = model.solve(time_limit_s, {}, result);
  if (x.empty()) return result;
  result.choice.assign(n, -1);
  for (int i = 0; i < n; ++i) {
    result.choice[i] = argmax_binary(x.data(), o[i]);
    if (result.choice[i] < 0) {
      result.feasible = false;
      break;
    }
  }
  return result;
}

MilpResult solve_dispatch_milp(std::span<const int64_t> lengths,
                               std::span<const PipelineModel> pipelines,
                               std::span<const int> start, double time_limit_s) {
  const int n = static_cast<int>(lengths.size());
  const int p = static_cast<int>(pipelines.size());
  MilpResult result;
  MilpBuilder model;
  // m[i][j] = column index, -1 where the pipeline cannot hold the sequence.
  std::vector<std::vector<int>> m(n, std::vector<int>(p, -1));
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < p; ++j) {
      if (lengths[i] <= pipelines[j].max_tokens) m[i][j] = model.add_col(0, 1, 0, true);
    }
  }
  std::vector<int> y(p);
  for (int j = 0; j < p; ++j) y[j] = model.add_col(0, kInfinity, 0, false);
  const int z = model.add_col(0, kInfinity, 1.0, false);
  for (int i = 0; i < n; ++i) {
    std::vector<int> cols;
    for (int j = 0; j < p; ++j) {
      if (m[i][j] >= 0) cols.push_back(m[i][j]);
    }
    model.add_row(cols, std::vector<double>(cols.size(), 1.0), 'E', 1.0);
  }
  for (int j = 0; j < p; ++j) {
    std::vector<int> total_cols;
    std::vector<double> total_coefs;
    for (int i = 0; i < n; ++i) {
      if (m[i][j] < 0) continue;
      double w = pipelines[j].sequence_ms(lengths[i]);
      total_cols.push_back(m[i][j]);
      total_coefs.push_back(w);
      if (pipelines[j].pp() > 1) {
        // Y_j ≥ w·m[i][j]; only the longest sequence matters, but every row keeps it exact.
        model.add_row({y[j], m[i][j]}, {1.0, -w}, 'G', 0.0);
      }
    }
    total_cols.push_back(y[j]);
    total_coefs.push_back(static_cast<double>(pipelines[j].pp() - 1));
    total_cols.push_back(z);
    total_coefs.push_back(-1.0);
    model.add_row(total_cols, total_coefs, 'L', 0.0);
  }
  std::vector<double> initial;
  if (static_cast<int>(start.size()) == n) {
    // MIP start: the given assignment, with Y and Z set to its values.
    initial.assign(z + 1, 0.0);
    std::vector<double> total(p, 0.0);
    std::vector<double> longest(p, 0.0);
    for (int i = 0; i < n; ++i) {
      int j = start[i];
      HYD_CHECK(j >= 0 && j < p && m[i][j] >= 0, "MIP start puts sequence {} on pipeline {}", i, j);
      initial[m[i][j]] = 1.0;
      double w = pipelines[j].sequence_ms(lengths[i]);
      total[j] += w;
      longest[j] = std::max(longest[j], w);
    }
    double zmax = 0;
    for (int j = 0; j < p; ++j) {
      double yj = pipelines[j].pp() > 1 ? longest[j] : 0.0;
      initial[y[j]] = yj;
      zmax = std::max(zmax, total[j] + (pipelines[j].pp() - 1) * yj);
    }
    initial[z] = zmax;
  }
  std::vector<double> x = model.solve(time_limit_s, initial, result);
  if (x.empty()) return result;
  result.choice.assign(n, -1);
  for (int i = 0; i < n; ++i) {
    result.choice[i] = argmax_binary(x.data(), m[i]);
    if (result.choice[i] < 0) {
      result.feasible = false;
      break;
    }
  }
  return result;
}

}  // namespace hydraulis::planner
