// `hydraulis analyze`: placeholder registration until the subcommand is implemented.
#include "apps/hydraulis/commands.h"

namespace hydraulis::apps {

void add_analyze_command(CLI::App& root, CommandList& commands) {
  CLI::App* app = root.add_subcommand("analyze", "(not implemented yet)");
  commands.push_back({app, [] {
                        return core::Status(core::StatusCode::kUnimplemented,
                                            "'analyze' is not implemented yet");
                      }});
}

}  // namespace hydraulis::apps
