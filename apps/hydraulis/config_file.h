// `--config FILE` of the subcommands: options read from a file of `name = value` lines (names as
// the long options without dashes, `#` comments, values optionally in double quotes, flags as
// true/false), applied to the options the command line did not give. CLI11 2.1's own config
// support ignores subcommands, hence this. Docs: docs/training.md ("Config file").
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "core/status.h"

namespace hydraulis::apps {

// Errors name the file, the line and the value: an unreadable file, a line without `=`, an
// unknown option, a value the option refuses.
core::Status apply_config_file(CLI::App& app, const std::string& path);

}  // namespace hydraulis::apps
