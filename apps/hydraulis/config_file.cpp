// Config files: a line parser and CLI11 results for the options not given on the command line.
#include "apps/hydraulis/config_file.h"

#include <sstream>

#include "core/file.h"

namespace hydraulis::apps {

namespace {

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

}  // namespace

core::Status apply_config_file(CLI::App& app, const std::string& path) {
  if (path.empty()) return core::Status::ok();
  HYD_ASSIGN_OR_RETURN(std::string text, core::read_file(path));
  std::istringstream lines(text);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    const std::string body = trim(line);
    if (body.empty() || body[0] == '#') continue;
    const size_t eq = body.find('=');
    if (eq == std::string::npos) {
      return core::invalid_argument("{}:{}: '{}' is not `name = value` (--config)", path, number,
                                    body);
    }
    const std::string name = trim(body.substr(0, eq));
    std::string value = trim(body.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    CLI::Option* option = name.empty() || name == "config" ? nullptr : app.get_option_no_throw("--" + name);
    if (option == nullptr) {
      return core::invalid_argument("{}:{}: '{}' is no option of `hydraulis {}` (see --help; names "
                                    "are the long options without the dashes)",
                                    path, number, name, app.get_name());
    }
    if (option->count() > 0) continue;  // the command line wins
    try {
      option->add_result(value);
      option->run_callback();
    } catch (const CLI::Error& e) {
      return core::invalid_argument("{}:{}: {} = {}: {}", path, number, name, value, e.what());
    }
  }
  return core::Status::ok();
}

}  // namespace hydraulis::apps
