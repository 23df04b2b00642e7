// `hydraulis plan`: placeholder registration until the subcommand is implemented.
#include "apps/hydraulis/commands.h"

namespace hydraulis::apps {

void add_plan_command(CLI::App& root, CommandList& commands) {
  CLI::App* app = root.add_subcommand("plan", "(not implemented yet)");
  commands.push_back({app, [] {
                        return core::Status(core::StatusCode::kUnimplemented,
                                            "'plan' is not implemented yet");
                      }});
}

}  // namespace hydraulis::apps
