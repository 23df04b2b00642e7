// JSON errors name source, line and column; typed accessors name the key and the bad value.
#include "core/json.h"

#include <gtest/gtest.h>

namespace hydraulis::core {
namespace {

TEST(Json, ParseErrorsArePositioned) {
  auto bad = parse_json("{\n  \"a\": 1,\n  \"b\": [1, 2,, 3]\n}", "cfg.json");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().message().rfind("cfg.json:3:14: malformed JSON", 0), 0u)
      << bad.status().message();
}

TEST(Json, TypedFields) {
  Json j = parse_json(R"({"n": 3, "x": 2.5, "s": "hi", "f": 4.0})", "t").value();
  EXPECT_EQ(json_integer(j, "n", "t").value(), 3);
  EXPECT_EQ(json_integer(j, "f", "t").value(), 4);
  EXPECT_DOUBLE_EQ(json_number(j, "x", "t").value(), 2.5);
  EXPECT_EQ(json_string(j, "s", "t").value(), "hi");
  EXPECT_EQ(json_integer(j, "x", "t").status().message(), "t: 'x' must be an integer, got 2.5");
  EXPECT_EQ(json_number(j, "s", "t").status().message(), "t: 's' must be a number, got \"hi\"");
  EXPECT_EQ(json_number(j, "zz", "t").status().message(), "t: key 'zz' missing");
  EXPECT_EQ(line_column("ab\ncd", 4), (std::pair<size_t, size_t>{2, 2}));
}

}  // namespace
}  // namespace hydraulis::core
