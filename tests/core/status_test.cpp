// Status/StatusOr semantics and the propagation macros; HYD_CHECK aborts with its message.
#include "core/check.h"
#include "core/status.h"

#include <gtest/gtest.h>

namespace hydraulis::core {
namespace {

StatusOr<int> parse_positive(int v) {
  if (v <= 0) return invalid_argument("value {} must be positive", v);
  return v;
}

StatusOr<int> doubled(int v) {
  HYD_ASSIGN_OR_RETURN(int x, parse_positive(v));
  return 2 * x;
}

Status check_both(int a, int b) {
  HYD_RETURN_IF_ERROR(parse_positive(a).status());
  HYD_RETURN_IF_ERROR(parse_positive(b).status());
  return Status::ok();
}

TEST(Status, PropagatesErrorsAndValues) {
  EXPECT_EQ(doubled(21).value(), 42);
  StatusOr<int> bad = doubled(-3);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "value -3 must be positive");
  EXPECT_EQ(bad.status().to_string(), "InvalidArgument: value -3 must be positive");
  EXPECT_TRUE(check_both(1, 2).is_ok());
  EXPECT_EQ(check_both(1, 0).message(), "value 0 must be positive");
  EXPECT_EQ(check_both(1, 0).with_context("reading x.json").message(),
            "reading x.json: value 0 must be positive");
}

TEST(StatusDeathTest, CheckPrintsConditionAndValues) {
  int n = 7;
  EXPECT_DEATH(HYD_CHECK(n < 5, "n = {}", n), "check failed: n < 5.*n = 7");
  EXPECT_DEATH((void)parse_positive(0).value(), "value 0 must be positive");
}

}  // namespace
}  // namespace hydraulis::core
