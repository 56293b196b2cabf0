// `failoverctl check`: run the configured (or ad-hoc) health checks once, or until they all pass
// within --wait. One round runs every selected check concurrently in one sd-event loop.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace failoverd::cli {

// Exit codes of failoverctl.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;  // a check failed, or --wait ran out
inline constexpr int kExitUsage = 2;   // bad arguments or a config error

// `args` are the words after "check". The report goes to `out` (text, or one JSON document with
// --json); usage and config errors go to `err`. Returns the exit code.
int check_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// The --help text.
std::string check_usage();

}  // namespace failoverd::cli
