// Progress line rendering: rate over the whole run, ETA = (total - done) / rate.
#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

namespace hydraulis::core {

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (bytes >= 1000.0 && u < 4) {
    bytes /= 1000.0;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} {}", bytes, units[u]) : fmt::format("{:.1f} {}", bytes, units[u]);
}

std::string format_count(double count) {
  if (count >= 1e9) return fmt::format("{:.2f}G", count / 1e9);
  if (count >= 1e6) return fmt::format("{:.2f}M", count / 1e6);
  if (count >= 1e3) return fmt::format("{:.1f}k", count / 1e3);
  return fmt::format("{:.0f}", count);
}

std::string format_duration(double seconds) {
  if (seconds < 60) return fmt::format("{:.1f}s", seconds);
  auto s = static_cast<long>(seconds);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
}

ProgressLine::ProgressLine(std::string what, uint64_t total, ProgressUnit unit,
                           double min_interval_s)
    : what_(std::move(what)),
      total_(total),
      unit_(unit),
      min_interval_s_(min_interval_s),
      tty_(::isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

ProgressLine::~ProgressLine() {
  if (!finished_ && tty_) std::fputc('\n', stderr);
}

void ProgressLine::add(uint64_t amount) {
  done_.fetch_add(amount);
  maybe_print(false);
}

void ProgressLine::set(uint64_t done) {
  done_.store(done);
  maybe_print(false);
}

std::string ProgressLine::render(uint64_t done, double elapsed_s) const {
  auto amount = [&](double v) {
    return unit_ == ProgressUnit::kBytes ? format_bytes(v) : format_count(v);
  };
  double rate = elapsed_s > 0 ? static_cast<double>(done) / elapsed_s : 0.0;
  std::string rate_text = unit_ == ProgressUnit::kBytes ? format_bytes(rate) + "/s"
                                                        : format_count(rate) + "/s";
  if (total_ == 0) {
    return fmt::format("{}: {}, {}, {}", what_, amount(static_cast<double>(done)), rate_text,
                       format_duration(elapsed_s));
  }
  double fraction = static_cast<double>(done) / static_cast<double>(total_);
  std::string eta = rate > 0 ? format_duration(static_cast<double>(total_ - std::min(done, total_)) / rate)
                             : "?";
  return fmt::format("{}: {:5.1f}% {} / {}, {}, ETA {}", what_, 100.0 * fraction,
                     amount(static_cast<double>(done)), amount(static_cast<double>(total_)),
                     rate_text, eta);
}

void ProgressLine::maybe_print(bool force) {
  auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mutex_);
  double since = std::chrono::duration<double>(now - last_print_).count();
  double interval = tty_ ? 0.2 : min_interval_s_;
  if (!force && since < interval) return;
  last_print_ = now;
  double elapsed = std::chrono::duration<double>(now - start_).count();
  std::string line = render(done_.load(), elapsed);
  if (tty_) {
    std::fprintf(stderr, "\r%s\033[K", line.c_str());
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
}

void ProgressLine::finish() {
  if (finished_) return;
  auto now = std::chrono::steady_clock::now();
  double elapsed = std::chrono::duration<double>(now - start_).count();
  std::string line = render(done_.load(), elapsed);
  std::fprintf(stderr, tty_ ? "\r%s\033[K\n" : "%s\n", line.c_str());
  finished_ = true;
}

}  // namespace hydraulis::core
