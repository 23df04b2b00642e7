// Context-parallel plans: the worked example, cp = 1 degeneration, random length lists against the
// brute-force checker, load balance, and the checker catching broken plans.
#include "parallel/cp_plan.h"

#include <gtest/gtest.h>

#include <random>

namespace hydraulis::parallel {
namespace {

using V = std::vector<int32_t>;

CpPlan plan_of(const std::vector<int64_t>& lens, int cp) {
  auto plan = make_cp_plan(lens, cp);
  EXPECT_TRUE(plan.is_ok()) << plan.status().message();
  return std::move(plan).value();
}

TEST(CpPlan, OneSequenceOfTenOnTwoRanks) {
  // Chunks of 10 over 4: [0, 2) [2, 5) [5, 7) [7, 10); rank 0 owns 0 and 3, rank 1 owns 1 and 2
  // (touching, so one segment).
  std::vector<int64_t> lens{10};
  CpPlan plan = plan_of(lens, 2);
  EXPECT_EQ(plan.max_local_rows, 5);
  const CpRankPlan& r0 = plan.ranks[0];
  EXPECT_EQ(r0.local_rows, (V{0, 1, 7, 8, 9}));
  EXPECT_EQ(r0.positions, (V{0, 1, 7, 8, 9}));
  EXPECT_EQ(r0.segment_sequence, (V{0, 0}));
  EXPECT_EQ(r0.cu_seqlens_q, (V{0, 2, 5}));
  EXPECT_EQ(r0.cu_seqlens_k, (V{0, 2, 12}));
  // Gathered buffer: rank 0's rows at 0..4 (positions 0 1 7 8 9), rank 1's at 5..9 (2..6).
  EXPECT_EQ(r0.kv_rows, (V{0, 1, 0, 1, 5, 6, 7, 8, 9, 2, 3, 4}));
  const CpRankPlan& r1 = plan.ranks[1];
  EXPECT_EQ(r1.local_rows, (V{2, 3, 4, 5, 6}));
  EXPECT_EQ(r1.cu_seqlens_q, (V{0, 5}));
  EXPECT_EQ(r1.cu_seqlens_k, (V{0, 7}));
  EXPECT_EQ(r1.kv_rows, (V{0, 1, 5, 6, 7, 8, 9}));
  EXPECT_TRUE(check_cp_plan(plan, lens).is_ok());
}

TEST(CpPlan, TwoSequencesRowsAreOffsetByCu) {
  std::vector<int64_t> lens{4, 6};  // sequence 1 is packed rows 4..9
  CpPlan plan = plan_of(lens, 2);
  // Sequence 0 chunks [0,1) [1,2) [2,3) [3,4); sequence 1: [0,1) [1,3) [3,4) [4,6).
  EXPECT_EQ(plan.ranks[0].local_rows, (V{0, 3, 4, 8, 9}));
  EXPECT_EQ(plan.ranks[0].positions, (V{0, 3, 0, 4, 5}));
  EXPECT_EQ(plan.ranks[0].segment_sequence, (V{0, 0, 1, 1}));
  EXPECT_EQ(plan.ranks[1].local_rows, (V{1, 2, 5, 6, 7}));
  EXPECT_EQ(plan.ranks[1].segment_sequence, (V{0, 1}));
  EXPECT_TRUE(check_cp_plan(plan, lens).is_ok());
}

TEST(CpPlan, CpOneIsPlainVarlen) {
  std::vector<int64_t> lens{5, 1, 3};
  CpPlan plan = plan_of(lens, 1);
  const CpRankPlan& r = plan.ranks[0];
  EXPECT_EQ(r.local_rows, (V{0, 1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(r.positions, (V{0, 1, 2, 3, 4, 0, 0, 1, 2}));
  EXPECT_EQ(r.cu_seqlens_q, (V{0, 5, 6, 9}));
  EXPECT_EQ(r.cu_seqlens_k, (V{0, 5, 6, 9}));
  EXPECT_EQ(r.kv_rows, r.local_rows);
  EXPECT_TRUE(check_cp_plan(plan, lens).is_ok());
}

TEST(CpPlan, ShortSequencesLeaveRanksEmpty) {
  // cp 3, 6 chunks. One position: only chunk 5 is non-empty (rank 0). Two positions (rows 1, 2):
  // chunk 2 = [0, 1) (rank 2) and chunk 5 = [1, 2) (rank 0). Rank 1 owns nothing.
  std::vector<int64_t> lens{1, 0, 2};
  CpPlan plan = plan_of(lens, 3);
  EXPECT_EQ(plan.ranks[0].local_rows, (V{0, 2}));
  // Gathered rows: rank q local i is 2q + i; sequence 2 position 0 is rank 2 local 0 = row 4.
  EXPECT_EQ(plan.ranks[0].kv_rows, (V{0, 4, 1}));
  EXPECT_EQ(plan.ranks[1].num_rows(), 0);
  EXPECT_EQ(plan.ranks[1].cu_seqlens_q, (V{0}));
  EXPECT_EQ(plan.ranks[2].local_rows, (V{1}));
  EXPECT_EQ(plan.max_local_rows, 2);
  EXPECT_TRUE(check_cp_plan(plan, lens).is_ok());
  CpPlan empty = plan_of({}, 4);
  EXPECT_EQ(empty.max_local_rows, 0);
  EXPECT_TRUE(check_cp_plan(empty, {}).is_ok());
}

TEST(CpPlan, RandomLengthListsPassTheBruteForce) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    const int cp = 1 + trial % 4;
    std::vector<int64_t> lens(1 + rng() % 6);
    for (int64_t& n : lens) n = (rng() % 3 == 0) ? rng() % (2 * cp + 1) : rng() % 60;
    CpPlan plan = plan_of(lens, cp);
    core::Status st = check_cp_plan(plan, lens);
    ASSERT_TRUE(st.is_ok()) << "cp " << cp << ": " << st.message();
    // Balance: per sequence a rank owns two chunks of ⌊n/2cp⌋ or ⌈n/2cp⌉ positions.
    int64_t lo = 0, hi = 0;
    for (int64_t n : lens) {
      lo += 2 * (n / (2 * cp));
      hi += 2 * ((n + 2 * cp - 1) / (2 * cp));
    }
    for (const CpRankPlan& r : plan.ranks) {
      EXPECT_GE(r.num_rows(), lo);
      EXPECT_LE(r.num_rows(), hi);
      // Segments: at most two per sequence, exactly one per sequence for cp = 1 or rank cp − 1.
      EXPECT_LE(r.num_segments(), 2 * static_cast<int64_t>(lens.size()));
    }
    if (cp == 1) {
      int64_t non_empty = 0;
      for (int64_t n : lens) non_empty += n > 0;
      EXPECT_EQ(plan.ranks[0].num_segments(), non_empty);
      EXPECT_EQ(plan.ranks[0].kv_rows, plan.ranks[0].local_rows);
    }
  }
}

TEST(CpPlan, CheckerCatchesBrokenPlans) {
  std::vector<int64_t> lens{10, 7};
  CpPlan good = plan_of(lens, 2);
  CpPlan bad = good;
  bad.ranks[0].kv_rows[1] = bad.ranks[0].kv_rows[0];  // a key repeated, one missing
  EXPECT_FALSE(check_cp_plan(bad, lens).is_ok());
  bad = good;
  bad.ranks[1].local_rows[0] = bad.ranks[0].local_rows[0];  // row owned twice
  EXPECT_FALSE(check_cp_plan(bad, lens).is_ok());
  bad = good;
  bad.ranks[0].cu_seqlens_k[1] += 1;  // one key too many: a future token is visible
  EXPECT_FALSE(check_cp_plan(bad, lens).is_ok());
  bad = good;
  bad.ranks[1].positions[2] += 1;
  EXPECT_FALSE(check_cp_plan(bad, lens).is_ok());
  bad = good;
  bad.max_local_rows += 1;  // gathered rows no longer line up
  EXPECT_FALSE(check_cp_plan(bad, lens).is_ok());
  EXPECT_FALSE(check_cp_plan(good, std::vector<int64_t>{10, 6}).is_ok());
}

TEST(CpPlan, Errors) {
  EXPECT_FALSE(make_cp_plan(std::vector<int64_t>{4}, 0).is_ok());
  auto negative = make_cp_plan(std::vector<int64_t>{4, -1}, 2);
  ASSERT_FALSE(negative.is_ok());
  EXPECT_NE(negative.status().message().find("sequence 1 has length -1"), std::string::npos);
}

}  // namespace
}  // namespace hydraulis::parallel
