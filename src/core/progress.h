// ProgressLine: "what: 41.2% 12.3 MB / 29.9 MB, 8.1 MB/s, ETA 2.2s" on stderr for long work.
// On a terminal it redraws one line (\r); otherwise it prints a line at most every
// `min_interval_s` seconds, so CI logs stay short. Thread-safe: update() may be called by workers.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>

namespace hydraulis::core {

enum class ProgressUnit { kBytes, kItems };

class ProgressLine {
 public:
  // total == 0 means unknown (no percentage or ETA).
  ProgressLine(std::string what, uint64_t total, ProgressUnit unit, double min_interval_s = 2.0);
  ~ProgressLine();
  void add(uint64_t amount);   // progress += amount
  void set(uint64_t done);     // progress = done
  void finish();               // prints the final line with the average rate
  // The line as it would print now (for tests).
  std::string render(uint64_t done, double elapsed_s) const;

 private:
  void maybe_print(bool force);
  std::string what_;
  uint64_t total_;
  ProgressUnit unit_;
  double min_interval_s_;
  bool tty_;
  bool finished_ = false;
  std::atomic<uint64_t> done_{0};
  std::mutex mutex_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_print_;
};

// "12.3 MB", "1.2 GB", "512 B".
std::string format_bytes(double bytes);
// "1.2k", "3.4M".
std::string format_count(double count);
// "2.2s", "3m05s", "1h02m".
std::string format_duration(double seconds);

}  // namespace hydraulis::core
