// Status and StatusOr<T>: the recoverable-error currency of src/ (src/ never exits).
// Messages name the offending value and the fix; apps/ print them and exit non-zero.
// Tests: tests/core/status_test.cpp.
#pragma once

#include <fmt/format.h>

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace hydraulis::core {

enum class StatusCode {
  kOk,
  kInvalidArgument,   // bad option, malformed input file, infeasible request
  kNotFound,          // missing file or key
  kIoError,           // read/write/rename failed
  kDataLoss,          // corrupt or truncated file (bad magic, size, checksum)
  kOutOfRange,        // value outside allowed bounds
  kFailedPrecondition,
  kResourceExhausted,  // out of memory (forecast), disk full
  kUnimplemented,
  kInternal,
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return Status(); }
  bool is_ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "InvalidArgument: <message>"
  std::string to_string() const;
  // Prepends context: "reading x.json: <message>".
  Status with_context(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

template <typename... Args>
Status make_error(StatusCode code, fmt::format_string<Args...> f, Args&&... args) {
  return Status(code, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
Status invalid_argument(fmt::format_string<Args...> f, Args&&... args) {
  return make_error(StatusCode::kInvalidArgument, f, std::forward<Args>(args)...);
}
template <typename... Args>
Status not_found(fmt::format_string<Args...> f, Args&&... args) {
  return make_error(StatusCode::kNotFound, f, std::forward<Args>(args)...);
}
template <typename... Args>
Status io_error(fmt::format_string<Args...> f, Args&&... args) {
  return make_error(StatusCode::kIoError, f, std::forward<Args>(args)...);
}
template <typename... Args>
Status data_loss(fmt::format_string<Args...> f, Args&&... args) {
  return make_error(StatusCode::kDataLoss, f, std::forward<Args>(args)...);
}
template <typename... Args>
Status out_of_range(fmt::format_string<Args...> f, Args&&... args) {
  return make_error(StatusCode::kOutOfRange, f, std::forward<Args>(args)...);
}
template <typename... Args>
Status internal_error(fmt::format_string<Args...> f, Args&&... args) {
  return make_error(StatusCode::kInternal, f, std::forward<Args>(args)...);
}

// A value or an error Status (never an OK status without a value).
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(const T& value) : value_(value) {}         // NOLINT(implicit)
  StatusOr(T&& value) : value_(std::move(value)) {}    // NOLINT(implicit)
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT(implicit)
    if (status_.is_ok()) status_ = Status(StatusCode::kInternal, "StatusOr built from OK status");
  }

  bool is_ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return checked(), *value_; }
  const T& value() const& { return checked(), *value_; }
  T&& value() && { return checked(), std::move(*value_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  void checked() const;
  Status status_;
  std::optional<T> value_;
};

[[noreturn]] void die_on_bad_status_access(const Status& status);

template <typename T>
void StatusOr<T>::checked() const {
  if (!value_.has_value()) die_on_bad_status_access(status_);
}

}  // namespace hydraulis::core

#define HYD_STATUS_CONCAT_INNER(a, b) a##b
#define HYD_STATUS_CONCAT(a, b) HYD_STATUS_CONCAT_INNER(a, b)

// Returns the Status of `expr` from the enclosing function when it is not OK.
#define HYD_RETURN_IF_ERROR(expr)                                      \
  do {                                                                 \
    ::hydraulis::core::Status hyd_status_ = (expr);                    \
    if (!hyd_status_.is_ok()) return hyd_status_;                     \
  } while (0)

// `HYD_ASSIGN_OR_RETURN(auto x, f());` declares x from a StatusOr or returns its error.
#define HYD_ASSIGN_OR_RETURN(lhs, expr) \
  HYD_ASSIGN_OR_RETURN_IMPL(HYD_STATUS_CONCAT(hyd_statusor_, __LINE__), lhs, expr)
#define HYD_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.is_ok()) return tmp.status();          \
  lhs = std::move(tmp).value()
