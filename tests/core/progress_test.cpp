// Progress line text: percentage, amounts, rate and ETA from fixed inputs.
#include "core/progress.h"

#include <gtest/gtest.h>

namespace hydraulis::core {
namespace {

TEST(Progress, RendersRateAndEta) {
  ProgressLine bytes("prepare", 30'000'000, ProgressUnit::kBytes);
  // 10 MB in 2 s -> 5 MB/s, 20 MB left -> 4 s.
  EXPECT_EQ(bytes.render(10'000'000, 2.0), "prepare:  33.3% 10.0 MB / 30.0 MB, 5.0 MB/s, ETA 4.0s");
  ProgressLine items("plan", 0, ProgressUnit::kItems);
  EXPECT_EQ(items.render(1500, 3.0), "plan: 1.5k, 500/s, 3.0s");
  EXPECT_EQ(format_duration(125), "2m05s");
  EXPECT_EQ(format_duration(3720), "1h02m");
}

}  // namespace
}  // namespace hydraulis::core
