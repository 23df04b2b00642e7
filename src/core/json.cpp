// JSON parsing with positioned errors and typed field access.
#include "core/json.h"

#include <cmath>
#include <cstdint>

#include "core/file.h"

namespace hydraulis::core {

std::pair<size_t, size_t> line_column(std::string_view text, size_t offset) {
  size_t line = 1;
  size_t column = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return {line, column};
}

StatusOr<Json> parse_json(std::string_view text, const std::string& source) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::parse_error& e) {
    size_t offset = e.byte > 0 ? e.byte - 1 : 0;
    auto [line, column] = line_column(text, offset);
    std::string what = e.what();
    // nlohmann's message: "[json.exception.parse_error.101] parse error at line 1, column 2: ..."
    size_t colon = what.find(": ", what.find("parse error"));
    std::string reason = colon == std::string::npos ? what : what.substr(colon + 2);
    return invalid_argument("{}:{}:{}: malformed JSON: {}", source, line, column, reason);
  } catch (const Json::exception& e) {
    return invalid_argument("{}: malformed JSON: {}", source, e.what());
  }
}

StatusOr<Json> read_json_file(const std::string& path) {
  HYD_ASSIGN_OR_RETURN(std::string text, read_file(path));
  return parse_json(text, path);
}

Status write_json_file(const std::string& path, const Json& value, int indent) {
  std::string text = indent >= 0 ? value.dump(indent) : value.dump();
  text += '\n';
  return write_file_atomic(path, text);
}

StatusOr<const Json*> json_field(const Json& object, std::string_view key,
                                 const std::string& source) {
  if (!object.is_object()) {
    return invalid_argument("{}: expected a JSON object holding '{}', got {}", source, key,
                            object.type_name());
  }
  auto it = object.find(key);
  if (it == object.end()) return invalid_argument("{}: key '{}' missing", source, key);
  return &*it;
}

StatusOr<double> json_number(const Json& object, std::string_view key, const std::string& source) {
  HYD_ASSIGN_OR_RETURN(const Json* field, json_field(object, key, source));
  if (!field->is_number()) {
    return invalid_argument("{}: '{}' must be a number, got {}", source, key, field->dump());
  }
  return field->get<double>();
}

StatusOr<int64_t> json_integer(const Json& object, std::string_view key,
                               const std::string& source) {
  HYD_ASSIGN_OR_RETURN(const Json* field, json_field(object, key, source));
  if (field->is_number_unsigned() && field->get<uint64_t>() > uint64_t{INT64_MAX}) {
    return out_of_range("{}: '{}' is {}, above the largest integer {}", source, key, field->dump(),
                        INT64_MAX);
  }
  if (field->is_number_integer()) return field->get<int64_t>();
  if (field->is_number_float()) {
    // Only doubles in [-2^63, 2^63) convert to int64; casting others (1e36, NaN) is undefined
    // behaviour (regression: tests/reliability/fuzz_regression_test.cpp).
    const double v = field->get<double>();
    if (v >= -0x1p63 && v < 0x1p63 && v == std::trunc(v)) return static_cast<int64_t>(v);
  }
  return invalid_argument("{}: '{}' must be an integer, got {}", source, key, field->dump());
}

StatusOr<std::string> json_string(const Json& object, std::string_view key,
                                  const std::string& source) {
  HYD_ASSIGN_OR_RETURN(const Json* field, json_field(object, key, source));
  if (!field->is_string()) {
    return invalid_argument("{}: '{}' must be a string, got {}", source, key, field->dump());
  }
  return field->get<std::string>();
}

}  // namespace hydraulis::core
