// `failoverctl handover INSTANCE [--to NODE]` and `failoverctl maintenance on|off`: operator
// commands sent to the running daemon over its control socket.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace failoverd::cli {

// Exit 0 when the daemon acted, 1 when it refused (not master, ...), 2 on usage errors,
// 3 when the daemon is not running.
int handover_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
std::string handover_usage();

int maintenance_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
std::string maintenance_usage();

}  // namespace failoverd::cli
