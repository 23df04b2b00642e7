// `hydraulis propose`: placeholder registration until the subcommand is implemented.
#include "apps/hydraulis/commands.h"

namespace hydraulis::apps {

void add_propose_command(CLI::App& root, CommandList& commands) {
  CLI::App* app = root.add_subcommand("propose", "(not implemented yet)");
  commands.push_back({app, [] {
                        return core::Status(core::StatusCode::kUnimplemented,
                                            "'propose' is not implemented yet");
                      }});
}

}  // namespace hydraulis::apps
