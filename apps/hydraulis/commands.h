// The `hydraulis` CLI: each subcommand lives in its own cmd_<name>.cpp and registers itself here.
// Only apps/ print errors and exit; commands return a Status (the contract is in design.md).
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

#include "core/status.h"

namespace hydraulis::apps {

// A registered subcommand: its CLI11 node and the action run when it was chosen.
struct Command {
  CLI::App* app = nullptr;
  std::function<core::Status()> run;
};

using CommandList = std::vector<Command>;

void add_data_command(CLI::App& root, CommandList& commands);
void add_analyze_command(CLI::App& root, CommandList& commands);
void add_propose_command(CLI::App& root, CommandList& commands);
void add_plan_command(CLI::App& root, CommandList& commands);
void add_simulate_command(CLI::App& root, CommandList& commands);
void add_train_command(CLI::App& root, CommandList& commands);
void add_export_command(CLI::App& root, CommandList& commands);
void add_profile_command(CLI::App& root, CommandList& commands);
void add_build_space_command(CLI::App& root, CommandList& commands);
void add_report_command(CLI::App& root, CommandList& commands);

}  // namespace hydraulis::apps
