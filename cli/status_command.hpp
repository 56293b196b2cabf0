// `failoverctl status`: asks the running daemon over its control socket and prints the
// answer as text or JSON. Also the shared plumbing of the commands that talk to the daemon.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace failoverd::cli {

// The daemon is not running (no socket, or nobody listening on it).
inline constexpr int kExitNotRunning = 3;

// Where the control socket is: `socket` when given; else [node] control_socket of `config`
// (or of the default config file when it loads); else /run/failoverd/control.sock.
std::string control_socket_path(const std::optional<std::string>& socket,
                                const std::optional<std::string>& config);

// One request to the daemon. On failure prints why to `err` and sets `exit_code`
// (kExitNotRunning when no daemon listens, 1 otherwise).
std::optional<nlohmann::json> ask_daemon(const std::string& socket, const nlohmann::json& request,
                                         std::ostream& err, int& exit_code);

// `args` are the words after "status". Exit 0, 1 on a failed request, 2 on usage errors,
// 3 when the daemon is not running.
int status_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
std::string status_usage();

// The text report of a status document (the "status" member of the daemon's answer).
void print_status(const nlohmann::json& status, std::ostream& out);

}  // namespace failoverd::cli
