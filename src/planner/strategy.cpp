// Strategy-list text syntax (a recursive-descent parser with caret errors), printing and the
// validation rules of spec.md §6. Grammar (whitespace allowed between tokens, trailing commas
// accepted as Python's literal_eval does):
//   list := '[' strategy (',' strategy)* ']'     strategy := '[' scheme (',' scheme)* ']'
//   scheme := '(' int ',' int [',' int] ')'      (two ints: (tp, pp), cp = 1; three: (cp, tp, pp))
// Tests: tests/planner/strategy_test.cpp.
#include "planner/strategy.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "core/check.h"

namespace hydraulis::planner {
namespace {

// Most GPUs one scheme or one strategy may use (2^24): far above any cluster, and small enough
// that cp·tp·pp and a strategy's sum stay inside int (regression: a fuzzed list with the scheme
// (2, 262666666, 41) overflowed Scheme::gpus(); tests/reliability/fuzz_regression_test.cpp).
constexpr int64_t kMaxGpus = int64_t{1} << 24;

class StrategyParser {
 public:
  explicit StrategyParser(std::string_view text) : text_(text) {}

  core::StatusOr<std::vector<Strategy>> parse() {
    std::vector<Strategy> out;
    skip_space();
    if (pos_ >= text_.size()) return error("the strategy list is empty; expected '[' to start it");
    if (!consume('[')) return error("expected '[' to start the strategy list");
    skip_space();
    while (true) {
      if (peek() == ']') {
        if (out.empty()) return error("the strategy list holds no strategy; expected '['");
        ++pos_;
        break;
      }
      if (peek() != '[') return error("expected '[' to start a strategy");
      HYD_ASSIGN_OR_RETURN(Strategy strategy, parse_strategy());
      out.push_back(std::move(strategy));
      skip_space();
      if (consume(',')) {
        skip_space();
        continue;
      }
      if (peek() != ']') return error("expected ',' or ']' after a strategy");
    }
    skip_space();
    if (pos_ != text_.size()) return error("unexpected text after the closing ']'");
    return out;
  }

 private:
  core::StatusOr<Strategy> parse_strategy() {
    const size_t start = pos_;
    ++pos_;  // '['
    Strategy strategy;
    int64_t gpus = 0;  // Σ |cp·tp·pp|, bounded so that strategy_gpus() cannot overflow int
    skip_space();
    while (true) {
      if (peek() == ']') {
        if (strategy.empty()) return error("a strategy needs at least one scheme '(tp, pp)'");
        ++pos_;
        return strategy;
      }
      if (peek() != '(') return error("expected '(' to start a scheme");
      HYD_ASSIGN_OR_RETURN(Scheme scheme, parse_scheme());
      gpus += scheme_gpus(scheme);
      if (gpus > kMaxGpus) {
        return error(fmt::format("the strategy uses more than {} GPUs", kMaxGpus), start);
      }
      strategy.push_back(scheme);
      skip_space();
      if (consume(',')) {
        skip_space();
        continue;
      }
      if (peek() != ']') return error("expected ',' or ']' after a scheme");
    }
  }

  // |cp·tp·pp| in int64, or kMaxGpus + 1 once it passes kMaxGpus (degrees are <= 10^9).
  static int64_t scheme_gpus(const Scheme& s) {
    int64_t gpus = 1;
    for (int degree : {s.cp, s.tp, s.pp}) {
      gpus *= degree < 0 ? -int64_t{degree} : int64_t{degree};
      if (gpus > kMaxGpus) return kMaxGpus + 1;
    }
    return gpus;
  }

  core::StatusOr<Scheme> parse_scheme() {
    const size_t start = pos_;
    ++pos_;  // '('
    int values[3] = {0, 0, 0};
    int count = 0;
    while (true) {
      skip_space();
      if (count == 3) return error("expected ')' (a scheme has at most 3 degrees: cp, tp, pp)");
      HYD_ASSIGN_OR_RETURN(values[count], parse_int());
      ++count;
      skip_space();
      if (consume(',')) {
        skip_space();
        if (peek() == ')' && count >= 2) {  // trailing comma
          ++pos_;
          break;
        }
        continue;
      }
      if (peek() != ')') return error("expected ',' or ')' in a scheme");
      ++pos_;
      break;
    }
    if (count < 2) return error("a scheme needs 2 degrees (tp, pp) or 3 (cp, tp, pp)", pos_ - 1);
    const Scheme scheme = count == 2 ? Scheme{1, values[0], values[1]}
                                     : Scheme{values[0], values[1], values[2]};
    if (scheme_gpus(scheme) > kMaxGpus) {
      return error(fmt::format("the scheme uses more than {} GPUs (cp·tp·pp)", kMaxGpus), start);
    }
    return scheme;
  }

  core::StatusOr<int> parse_int() {
    size_t start = pos_;
    bool negative = false;
    if (peek() == '-' || peek() == '+') {
      negative = peek() == '-';
      ++pos_;
    }
    size_t digits_start = pos_;
    int64_t value = 0;
    while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) {
      value = value * 10 + (text_[pos_] - '0');
      if (value > 1'000'000'000) return error("degree is too large", start);
      ++pos_;
    }
    if (pos_ == digits_start) return error("expected an integer degree", start);
    return static_cast<int>(negative ? -value : value);
  }

  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool consume(char c) {
    if (peek() != c) return false;
    ++pos_;
    return true;
  }
  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }

  core::Status error(const std::string& what) const { return error(what, pos_); }

  // "expected ')' at column 17" + the text (a window of it when long) + a caret line.
  core::Status error(const std::string& what, size_t at) const {
    constexpr size_t kWindow = 60;
    size_t begin = at > kWindow ? at - kWindow : 0;
    size_t end = std::min(text_.size(), at + kWindow);
    std::string shown(text_.substr(begin, end - begin));
    for (char& c : shown) {
      if (c == '\n' || c == '\t' || c == '\r') c = ' ';
    }
    std::string prefix = begin > 0 ? "..." : "";
    std::string suffix = end < text_.size() ? "..." : "";
    std::string found = at < text_.size() ? fmt::format("'{}'", text_[at]) : "end of text";
    return core::invalid_argument("strategy list: {} at column {} (found {})\n  {}{}{}\n  {}^",
                                  what, at + 1, found, prefix, shown, suffix,
                                  std::string(prefix.size() + (at - begin), ' '));
  }

  std::string_view text_;
  size_t pos_ = 0;
};

std::string compact_scheme(const Scheme& s) {
  return fmt::format("({},{},{})", s.cp, s.tp, s.pp);
}

}  // namespace

core::StatusOr<std::vector<Strategy>> parse_strategy_list(std::string_view text) {
  return StrategyParser(text).parse();
}

std::string format_strategy(const Strategy& strategy) {
  std::string out = "[";
  for (size_t i = 0; i < strategy.size(); ++i) {
    if (i > 0) out += ", ";
    out += strategy[i].to_string();
  }
  return out + "]";
}

std::string format_strategy_list(const std::vector<Strategy>& strategies) {
  std::string out = "[";
  for (size_t i = 0; i < strategies.size(); ++i) {
    if (i > 0) out += ", ";
    out += format_strategy(strategies[i]);
  }
  return out + "]";
}

std::string summarize_strategy(const Strategy& strategy) {
  std::string out;
  size_t i = 0;
  while (i < strategy.size()) {
    size_t j = i;
    while (j < strategy.size() && strategy[j] == strategy[i]) ++j;
    if (!out.empty()) out += "+";
    out += fmt::format("{}x{}", j - i, compact_scheme(strategy[i]));
    i = j;
  }
  return out.empty() ? "(empty)" : out;
}

int strategy_gpus(const Strategy& strategy) {
  int total = 0;
  for (const Scheme& s : strategy) total += s.gpus();
  return total;
}

core::Status validate_strategy_list(const std::vector<Strategy>& strategies,
                                    const SchemeSpace& space, int num_gpus) {
  if (num_gpus <= 0) return core::invalid_argument("--num-gpus must be positive, got {}", num_gpus);
  if (strategies.empty()) {
    return core::invalid_argument("the strategy list is empty; give at least one strategy");
  }
  for (size_t i = 0; i < strategies.size(); ++i) {
    const Strategy& strategy = strategies[i];
    if (strategy.empty()) {
      return core::invalid_argument("strategy {} has no pipeline; give at least one scheme", i);
    }
    for (size_t j = 0; j < strategy.size(); ++j) {
      const Scheme& s = strategy[j];
      if (s.cp <= 0 || s.tp <= 0 || s.pp <= 0) {
        return core::invalid_argument(
            "strategy {}, pipeline {}: scheme {} has a non-positive degree; cp, tp and pp must "
            "be >= 1",
            i, j, s.to_string());
      }
      if (space.find(s) == nullptr) {
        std::string known;
        for (const SchemeCost& c : space.schemes()) {
          if (!known.empty()) known += ' ';
          known += compact_scheme(c.scheme);
        }
        return core::invalid_argument(
            "strategy {}, pipeline {}: scheme (cp, tp, pp) = {} is not in the scheme space; use "
            "a profiled scheme: {}",
            i, j, s.to_string(), known);
      }
    }
    int64_t gpus = 0;
    for (const Scheme& s : strategy) gpus += s.gpus();
    if (gpus != num_gpus) {
      return core::invalid_argument(
          "strategy {} ({}) uses {} GPUs; every strategy must use exactly {} GPUs (--num-gpus)", i,
          summarize_strategy(strategy), gpus, num_gpus);
    }
  }
  const Strategy& first = strategies[0];
  for (size_t j = 1; j < first.size(); ++j) {
    if (first[j] != first[0]) {
      return core::invalid_argument(
          "strategy 0 must be homogeneous (it defines the optimizer layout), but pipeline 0 is {} "
          "and pipeline {} is {}; put a homogeneous strategy first",
          first[0].to_string(), j, first[j].to_string());
    }
  }
  OptimizerLayout layout = optimizer_layout(strategies);
  for (size_t i = 0; i < strategies.size(); ++i) {
    for (size_t j = 0; j < strategies[i].size(); ++j) {
      auto tokens = max_tokens(space, strategies[i][j], layout);
      if (!tokens.is_ok()) {
        return tokens.status().with_context(
            fmt::format("strategy {}, pipeline {} under optimizer layout (dp {}, tp {}, pp {})", i,
                        j, layout.dp, layout.tp, layout.pp));
      }
    }
  }
  return core::Status::ok();
}

OptimizerLayout optimizer_layout(const std::vector<Strategy>& strategies) {
  HYD_CHECK(!strategies.empty() && !strategies[0].empty(), "empty strategy list");
  const Scheme& s = strategies[0][0];
  int n = strategy_gpus(strategies[0]);
  HYD_CHECK(s.tp > 0 && s.pp > 0, "scheme {}", s.to_string());
  return OptimizerLayout{n / (s.tp * s.pp), s.tp, s.pp};
}

}  // namespace hydraulis::planner
