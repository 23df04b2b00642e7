// JSON helpers over nlohmann::json that turn parse and schema errors into Status messages naming
// the file, line, column and key (never an exception escaping src/). Tests: tests/core/json_test.cpp.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

#include "core/status.h"

namespace hydraulis::core {

using Json = nlohmann::json;

// Parses `text`; `source` names it in errors ("plan.json"). Errors give line:column.
StatusOr<Json> parse_json(std::string_view text, const std::string& source);
StatusOr<Json> read_json_file(const std::string& path);
// Writes `value` (pretty-printed with `indent`, or compact when indent < 0) atomically.
Status write_json_file(const std::string& path, const Json& value, int indent = 2);

// Line and column (1-based) of byte `offset` in `text`.
std::pair<size_t, size_t> line_column(std::string_view text, size_t offset);

// Typed field access with errors "<source>: key 'x' missing" / "... must be a number, got "abc"".
StatusOr<const Json*> json_field(const Json& object, std::string_view key, const std::string& source);
StatusOr<double> json_number(const Json& object, std::string_view key, const std::string& source);
StatusOr<int64_t> json_integer(const Json& object, std::string_view key, const std::string& source);
StatusOr<std::string> json_string(const Json& object, std::string_view key,
                                  const std::string& source);

}  // namespace hydraulis::core
