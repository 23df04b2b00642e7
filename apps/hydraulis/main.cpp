// Entry point of the `hydraulis` binary: parses the command line with CLI11, runs the chosen
// subcommand and turns its Status into an error paragraph and a non-zero exit code.
#include <cstdio>
#include <exception>

#include "apps/hydraulis/commands.h"

namespace {

constexpr const char* kDescription =
    "Hydraulis: heterogeneous-strategy LLM training for long-tailed sequence lengths.\n"
    "Workflow: data prepare -> analyze -> profile -> build-space -> propose -> plan/simulate -> "
    "train -> report -> export.";

int run_chosen(const hydraulis::apps::CommandList& commands, CLI::App& root) {
  for (const auto& command : commands) {
    if (!command.app->parsed()) continue;
    hydraulis::core::Status status = command.run();
    if (!status.is_ok()) {
      std::fprintf(stderr, "hydraulis %s: error: %s\n", command.app->get_name().c_str(),
                   status.message().c_str());
      return 1;
    }
    return 0;
  }
  std::fprintf(stderr, "%s", root.help().c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App root(kDescription, "hydraulis");
  root.require_subcommand(1);
  root.set_help_all_flag("--help-all", "Print help for every subcommand");
  hydraulis::apps::CommandList commands;
  hydraulis::apps::add_data_command(root, commands);
  hydraulis::apps::add_analyze_command(root, commands);
  hydraulis::apps::add_propose_command(root, commands);
  hydraulis::apps::add_plan_command(root, commands);
  hydraulis::apps::add_simulate_command(root, commands);
  hydraulis::apps::add_train_command(root, commands);
  hydraulis::apps::add_export_command(root, commands);
  hydraulis::apps::add_profile_command(root, commands);
  hydraulis::apps::add_build_space_command(root, commands);
  hydraulis::apps::add_report_command(root, commands);
  try {
    root.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return root.exit(e);
  }
  try {
    return run_chosen(commands, root);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hydraulis: error: %s\n", e.what());
    return 1;
  }
}
