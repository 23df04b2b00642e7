// Tests of the scheme-space fit (planner/space_fit.h) and the profile format (planner/profile.h):
// exact recovery of a known quadratic, the fit of the recorded CPU profiles against an independent
// solver (Cramer's rule on centred lengths in double), the memory regression on a synthetic
// profile, and every bad-input error.
#include "planner/space_fit.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

namespace hydraulis::planner {
namespace {

std::string source_path(const std::string& relative) {
  const char* root = std::getenv("HYD_SOURCE_DIR");
  return (root != nullptr ? std::string(root) + "/" : std::string()) + relative;
}

// Independent least squares: centred x, the 3 × 3 normal equations by Cramer's rule (double).
struct Coefficients {
  double a, b, c;
};
Coefficients cramer_fit(const std::vector<double>& x, const std::vector<double>& y) {
  double m = 0;
  for (double v : x) m += v;
  m /= double(x.size());
  double s[5] = {0, 0, 0, 0, 0}, t[3] = {0, 0, 0};  // s[k] = Σ u^k, t[k] = Σ u^k·y
  for (size_t i = 0; i < x.size(); ++i) {
    const double u = x[i] - m;
    double p = 1;
    for (int k = 0; k < 5; ++k, p *= u) {
      s[k] += p;
      if (k < 3) t[k] += p * y[i];
    }
  }
  // Unknowns (g2, g1, g0) of g2·u² + g1·u + g0; rows: Σ u^{k}·(...) for k = 2, 1, 0.
  const double M[3][3] = {{s[4], s[3], s[2]}, {s[3], s[2], s[1]}, {s[2], s[1], s[0]}};
  const double r[3] = {t[2], t[1], t[0]};
  auto det = [](const double A[3][3]) {
    return A[0][0] * (A[1][1] * A[2][2] - A[1][2] * A[2][1]) -
           A[0][1] * (A[1][0] * A[2][2] - A[1][2] * A[2][0]) +
           A[0][2] * (A[1][0] * A[2][1] - A[1][1] * A[2][0]);
  };
  const double D = det(M);
  double g[3];
  for (int j = 0; j < 3; ++j) {
    double A[3][3];
    for (int i = 0; i < 3; ++i) {
      for (int k = 0; k < 3; ++k) A[i][k] = k == j ? r[i] : M[i][k];
    }
    g[j] = det(A) / D;
  }
  // Back to s: g2·(s − m)² + g1·(s − m) + g0.
  return {g[0], g[1] - 2 * g[0] * m, g[0] * m * m - g[1] * m + g[2]};
}

double r_squared(const std::vector<double>& x, const std::vector<double>& y, Coefficients f) {
  double mean = 0;
  for (double v : y) mean += v;
  mean /= double(y.size());
  double res = 0, tot = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double e = f.a * x[i] * x[i] + f.b * x[i] + f.c - y[i];
    res += e * e;
    tot += (y[i] - mean) * (y[i] - mean);
  }
  return 1 - res / tot;
}

// A one-rank scheme profile whose median times are `ms` at 128, 256, ... and whose peak memory is
// state + slope·s.
SchemeProfile synthetic_scheme(Scheme scheme, const std::vector<double>& ms, double slope = 1000) {
  SchemeProfile s;
  s.scheme = scheme;
  s.micro_batches = scheme.pp;
  for (int r = 0; r < scheme.gpus(); ++r) {
    RankState st;
    st.rank = r;
    st.stage = r / (scheme.cp * scheme.tp);
    st.layers = 4 / scheme.pp;
    st.layer_strategy_bytes = 1'000'000 / (scheme.tp * scheme.pp);
    // The scheme's own optimizer layout also shards over its cp ranks (os_dp = cp).
    st.layer_optimizer_bytes = 2'000'000 / (scheme.tp * scheme.pp * scheme.cp);
    st.other_strategy_bytes = 500'000;
    st.other_optimizer_bytes = 1'000'000;
    s.ranks.push_back(st);
  }
  int64_t len = 128;
  for (double t : ms) {
    ProfilePoint p;
    p.seq_len = len;
    p.step_ms = {t * double(s.slots())};
    for (const RankState& st : s.ranks) {
      p.peak_bytes.push_back(st.total() + 4096 + int64_t(slope * double(len)));
    }
    s.points.push_back(p);
    len *= 2;
  }
  return s;
}

Profile synthetic_profile(std::vector<SchemeProfile> schemes) {
  Profile p;
  p.model = {"tiny", 128, 4, 50304, 4, 2, 384};
  p.device_kind = "cpu";
  p.device_name = "cpu";
  p.device_memory_bytes = 8'000'000'000;
  p.git = "test";
  p.created = "2026-01-01T00:00:00Z";
  p.warmup = 0;
  p.repeats = 1;
  p.min_seq_len = 128;
  p.max_seq_len = 128 << 8;
  p.schemes = std::move(schemes);
  return p;
}

std::vector<double> quadratic_times(double a, double b, double c, int n) {
  std::vector<double> out;
  for (int i = 0; i < n; ++i) {
    const double s = double(int64_t(128) << i);
    out.push_back((a * s + b) * s + c);
  }
  return out;
}

TEST(SpaceFit, RecoversKnownQuadraticExactly) {
  // 7b-like coefficients over 128 .. 65536 (10 lengths).
  const double a = 1.37240947e-06, b = 0.094647781, c = 15.047058823529596;
  std::vector<double> x, y = quadratic_times(a, b, c, 10);
  for (int i = 0; i < 10; ++i) x.push_back(double(int64_t(128) << i));
  for (FitWeighting w : {FitWeighting::kUniform, FitWeighting::kRelative}) {
    auto fit = fit_quadratic(x, y, w);
    ASSERT_TRUE(fit.is_ok()) << fit.status().message();
    EXPECT_NEAR(fit->a, a, 1e-12 * a);
    EXPECT_NEAR(fit->b, b, 1e-12 * b);
    EXPECT_NEAR(fit->c, c, 1e-9 * c);
    EXPECT_NEAR(fit->r_squared, 1.0, 1e-15);
    EXPECT_LT(fit->max_rel_error, 1e-12);
  }
  // Through the whole space fit: the scheme entry carries the same coefficients.
  std::vector<NamedProfile> profiles = {
      {"synthetic.json", synthetic_profile({synthetic_scheme({1, 1, 1}, y)})}};
  auto space = fit_scheme_space(profiles, {});
  ASSERT_TRUE(space.is_ok()) << space.status().message();
  const SchemeCost* cost = space->space.find({1, 1, 1});
  ASSERT_NE(cost, nullptr);
  EXPECT_NEAR(cost->a, a, 1e-12 * a);
  EXPECT_NEAR(cost->c, c, 1e-9 * c);
  EXPECT_TRUE(space->schemes[0].notes.empty());
}

TEST(SpaceFit, PinnedCoefficientsAndNonNegativeRefit) {
  // t = 0.002·s² + 1.5·s − 30 rises over 128..2048 and is positive there, but c < 0: the written
  // fit is the best one with a, b, c >= 0, which here pins c to 0 (checked against the
  // two-coefficient solve by hand: Σ over the points of the normal equations).
  std::vector<double> x, y = quadratic_times(0.002, 1.5, -30, 5);
  for (int i = 0; i < 5; ++i) x.push_back(double(int64_t(128) << i));
  auto nn = fit_quadratic_nonnegative(x, y, FitWeighting::kUniform);
  ASSERT_TRUE(nn.is_ok());
  EXPECT_EQ(nn->c, 0.0);
  double s4 = 0, s3 = 0, s2 = 0, t2 = 0, t1 = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    s4 += std::pow(x[i], 4), s3 += std::pow(x[i], 3), s2 += x[i] * x[i];
    t2 += x[i] * x[i] * y[i], t1 += x[i] * y[i];
  }
  const double det = s4 * s2 - s3 * s3;
  EXPECT_NEAR(nn->a, (t2 * s2 - s3 * t1) / det, 1e-9 * 0.002);
  EXPECT_NEAR(nn->b, (s4 * t1 - s3 * t2) / det, 1e-9 * 1.5);

  std::vector<NamedProfile> profiles = {
      {"clamp.json", synthetic_profile({synthetic_scheme({1, 1, 1}, y)})}};
  auto space = fit_scheme_space(profiles, {});
  ASSERT_TRUE(space.is_ok()) << space.status().message();
  ASSERT_EQ(space->schemes[0].notes.size(), 1u);
  EXPECT_NE(space->schemes[0].notes[0].find("c fitted -30"), std::string::npos)
      << space->schemes[0].notes[0];
  EXPECT_EQ(space->space.find({1, 1, 1})->c, 0.0);
}

TEST(SpaceFit, MemoryRegressionFromSyntheticProfile) {
  // Peaks = model state + 4096 + slope·s; A[tp] = slope·cp / (L·H/tp); B = layer bytes per H²
  // element (1e6 + 2e6 bytes over 4 layers of 128²), alpha = 2/3.
  std::vector<double> t = quadratic_times(1e-6, 0.1, 5, 4);
  std::vector<NamedProfile> profiles = {
      {"m.json", synthetic_profile({synthetic_scheme({1, 1, 1}, t, 2048),
                                    synthetic_scheme({1, 2, 1}, t, 1024),
                                    synthetic_scheme({2, 1, 1}, t, 512)})}};
  auto fit = fit_scheme_space(profiles, {});
  ASSERT_TRUE(fit.is_ok()) << fit.status().message();
  const MemoryRegression& m = fit->space.memory();
  EXPECT_NEAR(m.activation_per_tp.at(1), 2048.0 / (4 * 128), 1e-9);  // (1,1,1): 4; (2,1,1): 2
  EXPECT_NEAR(m.activation_per_tp.at(2), 1024.0 / (4 * 64), 1e-9);
  EXPECT_NEAR(m.block_bytes, 3e6 / (4.0 * 128 * 128), 1e-9);
  EXPECT_NEAR(m.alpha, 2.0 / 3.0, 1e-12);
  EXPECT_EQ(m.gap.at("node"), 4096);  // the intercept beyond the model state
  EXPECT_EQ(m.gap.at("gpu1"), 4096);
  EXPECT_EQ(m.safe_bound, 400'000'000);  // 5% of the recorded 8e9 bytes
  EXPECT_EQ(fit->space.cluster().gpu_memory_bound, 8e9);
  EXPECT_EQ(fit->space.model().vocab, 50304);
  // The written JSON loads back through the scheme-space reader.
  auto loaded = SchemeSpace::from_json(fit->space.to_json(), "fitted");
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().message();
  EXPECT_EQ(loaded->schemes().size(), 3u);
  EXPECT_EQ(loaded->find({2, 1, 1})->scheme.cp, 2);
}

// The recorded profiles (tests/planner/data, `hydraulis profile` on the 2-core dev box, see
// docs/profiling.md): the fit equals the independent solver's, and its quality is what the docs
// table says.
struct Quality {
  Scheme scheme;
  double r_squared, max_rel_error;
  int64_t at;
};
TEST(SpaceFit, RecordedCpuProfilesMatchIndependentSolver) {
  std::vector<NamedProfile> profiles;
  for (const char* name : {"profile_tiny_cpu_1rank.json", "profile_tiny_cpu_2ranks.json"}) {
    const std::string path = source_path(std::string("tests/planner/data/") + name);
    auto p = Profile::load(path);
    ASSERT_TRUE(p.is_ok()) << p.status().message();
    // Round trip of the format.
    auto again = Profile::from_json(p->to_json(), path);
    ASSERT_TRUE(again.is_ok()) << again.status().message();
    EXPECT_EQ(again->schemes.size(), p->schemes.size());
    profiles.push_back({path, std::move(p).value()});
  }
  auto fit = fit_scheme_space(profiles, {});
  ASSERT_TRUE(fit.is_ok()) << fit.status().message();
  ASSERT_EQ(fit->schemes.size(), 4u);
  for (const SchemeFitReport& r : fit->schemes) {
    const Coefficients ref = cramer_fit(r.lengths, r.median_ms);
    SCOPED_TRACE(r.scheme.to_string());
    EXPECT_NEAR(r.unconstrained.a, ref.a, 1e-6 * std::fabs(ref.a) + 1e-15);
    EXPECT_NEAR(r.unconstrained.b, ref.b, 1e-6 * std::fabs(ref.b) + 1e-12);
    EXPECT_NEAR(r.unconstrained.c, ref.c, 1e-6 * std::fabs(ref.c) + 1e-9);
    EXPECT_NEAR(r.unconstrained.r_squared, r_squared(r.lengths, r.median_ms, ref), 1e-9);
    // The medians are the medians of step_ms / slots (independently recomputed here).
    EXPECT_EQ(r.lengths.front(), 128);
    EXPECT_EQ(r.lengths.size(), 5u);
  }
  // The written fits (docs/profiling.md's table); (2, 1, 1) is the non-negative refit.
  const Quality expected[] = {{{1, 1, 1}, 0.998958, 0.6098, 128},
                              {{1, 2, 1}, 0.996998, 0.4441, 128},
                              {{1, 1, 2}, 0.999823, 0.1252, 128},
                              {{2, 1, 1}, 0.895495, 0.4515, 256}};
  for (size_t i = 0; i < 4; ++i) {
    const SchemeFitReport& r = fit->schemes[i];
    SCOPED_TRACE(r.scheme.to_string());
    EXPECT_EQ(r.scheme, expected[i].scheme);
    EXPECT_NEAR(r.time.r_squared, expected[i].r_squared, 1e-6);
    EXPECT_NEAR(r.time.max_rel_error, expected[i].max_rel_error, 1e-4);
    EXPECT_EQ(int64_t(r.time.max_rel_error_x), expected[i].at);
  }
  // (2, 1, 1): plain least squares gives a < 0 and c < 0 with the cost still rising, so a and c
  // are pinned to 0 and b is the one-coefficient fit Σ s·t / Σ s².
  const SchemeFitReport& cp2 = fit->schemes[3];
  ASSERT_EQ(cp2.notes.size(), 2u);
  EXPECT_LT(cp2.unconstrained.a, 0);
  EXPECT_LT(cp2.unconstrained.c, 0);
  EXPECT_EQ(cp2.time.a, 0);
  EXPECT_GT(cp2.time.c, 0);
  // Memory: the tiny model's 196,864 parameters per layer at 8 B (strategy) + 16 B (optimizer)
  // over 128² give B = 288.375 on tp 1; a tp 2 rank also holds both norm weights whole in the
  // strategy layout (98,560 parameters, 98,432 optimizer-layout elements): 288.469, the largest.
  // alpha: 16/24 on tp 1 and 98,432·16 / (98,560·8 + 98,432·16) on tp 2 ranks, pooled by bytes.
  const MemoryRegression& m = fit->space.memory();
  EXPECT_NEAR(m.block_bytes, (98560.0 * 8 + 98432.0 * 16) / (128.0 * 128 / 2), 1e-9);
  const double tp1 = 196864.0 * 24, tp2 = 98560.0 * 8 + 98432.0 * 16;
  // Layer bytes of all ranks: (1,1,1) one rank of 4 layers; (1,2,1) two tp 2 ranks of 4 layers;
  // (1,1,2) two ranks of 2 layers; (2,1,1) two ranks of 4 layers (optimizer ×cp undone).
  const double opt = 4 * 196864.0 * 16 + 2 * 4 * 98432.0 * 16 + 2 * 2 * 196864.0 * 16 +
                     2 * 4 * 196864.0 * 16;
  const double all = 4 * tp1 + 2 * 4 * tp2 + 2 * 2 * tp1 + 2 * 4 * tp1;
  EXPECT_NEAR(m.alpha, opt / all, 1e-12);
  EXPECT_EQ(fit->space.model().hidden, 128);
  EXPECT_EQ(fit->space.memory().activation_per_tp.size(), 2u);
}

// A second recorded 2-rank run on the loaded box: its (2, 1, 1) medians jump 5× from 1024 to 2048
// tokens, and the least-squares quadratic falls at 128 tokens, which build-space refuses.
TEST(SpaceFitErrors, RecordedNoisyProfileIsRefused) {
  const std::string path = source_path("tests/planner/data/profile_tiny_cpu_2ranks_noisy.json");
  auto p = Profile::load(path);
  ASSERT_TRUE(p.is_ok()) << p.status().message();
  std::vector<NamedProfile> profiles = {{"noisy.json", std::move(p).value()}};
  auto fit = fit_scheme_space(profiles, {});
  ASSERT_FALSE(fit.is_ok());
  EXPECT_NE(fit.status().message().find("noisy.json: scheme (2, 1, 1): the fitted time "
                                        "0.00180249·s² + -0.899796·s + 442.403 ms is not rising"),
            std::string::npos)
      << fit.status().message();
  // Relative weighting fits it (the short lengths dominate).
  SpaceFitOptions relative;
  relative.weighting = FitWeighting::kRelative;
  EXPECT_TRUE(fit_scheme_space(profiles, relative).is_ok());
}

TEST(SpaceFitErrors, TooFewLengths) {
  std::vector<NamedProfile> profiles = {
      {"short.json", synthetic_profile({synthetic_scheme({1, 2, 1}, {10, 20})})}};
  auto fit = fit_scheme_space(profiles, {});
  ASSERT_FALSE(fit.is_ok());
  const std::string& m = fit.status().message();
  EXPECT_NE(m.find("short.json: scheme (1, 2, 1) has 2 profiled lengths (128, 256)"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("--max-seq-len"), std::string::npos) << m;
}

TEST(SpaceFitErrors, NonMonotoneTimes) {
  std::vector<NamedProfile> profiles = {
      {"noisy.json", synthetic_profile({synthetic_scheme({1, 1, 2}, {10, 20, 15, 40})})}};
  auto fit = fit_scheme_space(profiles, {});
  ASSERT_FALSE(fit.is_ok());
  const std::string& m = fit.status().message();
  EXPECT_NE(m.find("noisy.json: scheme (1, 1, 2): the median time per micro-batch falls from 20 "
                   "ms at 256 tokens to 15 ms at 512 tokens (-25.0%"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("--repeats"), std::string::npos);
  // A dip inside the tolerance is noise and fits.
  profiles[0].profile.schemes[0] = synthetic_scheme({1, 1, 2}, {10, 20, 19.5, 40});
  EXPECT_TRUE(fit_scheme_space(profiles, {}).is_ok());
}

TEST(SpaceFitErrors, NegativeCoefficientsMakingCostNonMonotone) {
  // Rising medians whose least-squares quadratic has a < 0 and falls before 2048.
  std::vector<NamedProfile> profiles = {
      {"bent.json", synthetic_profile({synthetic_scheme({1, 1, 1}, {1, 100, 180, 200, 201})})}};
  auto fit = fit_scheme_space(profiles, {});
  ASSERT_FALSE(fit.is_ok());
  const std::string& m = fit.status().message();
  EXPECT_NE(m.find("bent.json: scheme (1, 1, 1): the fitted time -"), std::string::npos) << m;
  EXPECT_NE(m.find("is not rising and positive over the profiled lengths 128..2048"),
            std::string::npos)
      << m;
}

TEST(SpaceFitErrors, MixedModelsAndDuplicateSchemes) {
  std::vector<double> t = quadratic_times(1e-6, 0.1, 5, 4);
  Profile other = synthetic_profile({synthetic_scheme({1, 2, 1}, t)});
  other.model = {"125m", 768, 12, 50304, 12, 12, 2048};
  std::vector<NamedProfile> profiles = {
      {"a.json", synthetic_profile({synthetic_scheme({1, 1, 1}, t)})}, {"b.json", other}};
  auto fit = fit_scheme_space(profiles, {});
  ASSERT_FALSE(fit.is_ok());
  EXPECT_NE(fit.status().message().find("b.json profiles model '125m' (H 768, L 12, V 50304) but "
                                        "a.json profiles 'tiny' (H 128, L 4, V 50304)"),
            std::string::npos)
      << fit.status().message();

  profiles[1] = {"c.json", synthetic_profile({synthetic_scheme({1, 1, 1}, t)})};
  fit = fit_scheme_space(profiles, {});
  ASSERT_FALSE(fit.is_ok());
  EXPECT_NE(fit.status().message().find("scheme (1, 1, 1) is profiled in both a.json and c.json"),
            std::string::npos)
      << fit.status().message();
}

TEST(SpaceFitErrors, ProfileFormat) {
  core::Json j = synthetic_profile({synthetic_scheme({1, 1, 1}, {1, 2, 3})}).to_json();
  j["format"] = "something-else";
  auto p = Profile::from_json(j, "x.json");
  ASSERT_FALSE(p.is_ok());
  EXPECT_NE(p.status().message().find("x.json: 'format' is \"something-else\""), std::string::npos);
  j = synthetic_profile({synthetic_scheme({1, 2, 1}, {1, 2, 3})}).to_json();
  j["schemes"][0]["points"][1]["peak_bytes"] = core::Json::array({1});
  p = Profile::from_json(j, "x.json");
  ASSERT_FALSE(p.is_ok());
  EXPECT_NE(p.status().message().find("'schemes[0].points[1].peak_bytes' has 1 entries; the "
                                      "scheme has 2 ranks"),
            std::string::npos)
      << p.status().message();
}

TEST(SpaceFit, SchemeThatFitsNoLengthIsSkipped) {
  std::vector<double> t = quadratic_times(1e-6, 0.1, 5, 4);
  SchemeProfile none = synthetic_scheme({1, 1, 2}, {});
  none.stopped_at = 128;
  none.stop_reason = "forecast 90 GB";
  std::vector<NamedProfile> profiles = {
      {"a.json", synthetic_profile({synthetic_scheme({1, 1, 1}, t), none})}};
  auto fit = fit_scheme_space(profiles, {});
  ASSERT_TRUE(fit.is_ok()) << fit.status().message();
  EXPECT_EQ(fit->space.schemes().size(), 1u);
  ASSERT_EQ(fit->skipped.size(), 1u);
  EXPECT_NE(fit->skipped[0].find("(1, 1, 2) (a.json): does not fit at 128 tokens"),
            std::string::npos);
}

}  // namespace
}  // namespace hydraulis::planner
