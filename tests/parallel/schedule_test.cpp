// 1F1B table: exact tables, the dependency checker on every (pp, m) and on broken tables, peaks.
#include "parallel/schedule.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace hydraulis::parallel {
namespace {

TEST(OneFOneB, ThreeStagesFourMicroBatches) {
  PipeSchedule table = one_f_one_b(3, 4);
  EXPECT_EQ(format_schedule(table),
            "stage 0: F0 F1 F2 B0 F3 B1 B2 B3\n"
            "stage 1: F0 F1 B0 F2 B1 F3 B2 B3\n"
            "stage 2: F0 B0 F1 B1 F2 B2 F3 B3\n");
  auto ticks = schedule_ticks(table, 3, 4);
  ASSERT_TRUE(ticks.is_ok()) << ticks.status().message();
  // Unit-time rounds: the last stage's B0 runs right after its F0 at round 3, and the whole step
  // takes 2·(m + pp − 1) = 12 rounds.
  EXPECT_EQ((*ticks)[2], (std::vector<int>{2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ((*ticks)[0], (std::vector<int>{0, 1, 2, 5, 6, 7, 9, 11}));
  EXPECT_EQ(peak_in_flight(table), (std::vector<int>{3, 2, 1}));
}

TEST(OneFOneB, FewerMicroBatchesThanStages) {
  PipeSchedule table = one_f_one_b(4, 2);
  EXPECT_EQ(format_schedule(table),
            "stage 0: F0 F1 B0 B1\n"
            "stage 1: F0 F1 B0 B1\n"
            "stage 2: F0 F1 B0 B1\n"
            "stage 3: F0 B0 F1 B1\n");
  EXPECT_EQ(peak_in_flight(table), (std::vector<int>{2, 2, 2, 1}));
  EXPECT_EQ(format_schedule(one_f_one_b(2, 0)), "stage 0:\nstage 1:\n");
}

TEST(OneFOneB, ValidForEveryDepthAndCount) {
  for (int pp = 1; pp <= 8; ++pp) {
    for (int m = 0; m <= 12; ++m) {
      PipeSchedule table = one_f_one_b(pp, m);
      auto ticks = schedule_ticks(table, pp, m);
      ASSERT_TRUE(ticks.is_ok()) << "pp " << pp << " m " << m << ": " << ticks.status().message();
      std::vector<int> peaks = peak_in_flight(table);
      for (int s = 0; s < pp; ++s) {
        EXPECT_EQ(table[static_cast<size_t>(s)].size(), 2u * static_cast<size_t>(m));
        EXPECT_EQ(peaks[static_cast<size_t>(s)], std::min(pp - s, m)) << pp << " " << m;
      }
      // With unit ops and no bubbles beyond the fill/drain, the step is 2·(m + pp − 1) rounds.
      if (m > 0) {
        int last = 0;
        for (const auto& t : *ticks) last = std::max(last, t.back());
        EXPECT_EQ(last + 1, 2 * (m + pp - 1)) << "pp " << pp << " m " << m;
      }
    }
  }
}

TEST(ValidateSchedule, FindsDeadlock) {
  // Stage 0 waits for B0 from stage 1 before sending F1, stage 1 wants F1 first: a cycle.
  PipeSchedule table = {
      {{PipeOp::kForward, 0},
       {PipeOp::kBackward, 0},
       {PipeOp::kForward, 1},
       {PipeOp::kBackward, 1}},
      {{PipeOp::kForward, 0},
       {PipeOp::kForward, 1},
       {PipeOp::kBackward, 0},
       {PipeOp::kBackward, 1}},
  };
  core::Status st = validate_schedule(table, 2, 2);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("deadlock"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("stage 0 waits at B0"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("stage 1 waits at F1"), std::string::npos) << st.message();
  // Backward before its own forward on the last stage.
  PipeSchedule early = {{{PipeOp::kBackward, 0}, {PipeOp::kForward, 0}}};
  EXPECT_FALSE(validate_schedule(early, 1, 1).is_ok());
}

TEST(ValidateSchedule, FindsMissingAndDuplicatedOps) {
  PipeSchedule table = one_f_one_b(3, 4);
  table[1][3] = {PipeOp::kForward, 1};  // F2 replaced by a second F1
  core::Status dup = validate_schedule(table, 3, 4);
  ASSERT_FALSE(dup.is_ok());
  EXPECT_EQ(dup.message(), "stage 1 runs F1 twice");
  table = one_f_one_b(3, 4);
  table[2].pop_back();
  core::Status missing = validate_schedule(table, 3, 4);
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.message(), "stage 2 never runs B3");
  EXPECT_FALSE(validate_schedule(one_f_one_b(3, 4), 2, 4).is_ok());
  EXPECT_FALSE(validate_schedule(one_f_one_b(3, 4), 3, 3).is_ok());
}

}  // namespace
}  // namespace hydraulis::parallel
