// `failoverctl doctor`: the pre-flight a person runs after installing. One line per item (ok,
// FAIL or skip, what was found, and for a failure how to fix it): the config, the API token
// file, the token at the API and its scopes, the droplet id and region, each reserved IP,
// peers from the tag and (through the running daemon) each peer's auth key, Docker sockets,
// hooks and commands. It may block (plain curl_easy with short timeouts); it changes nothing.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace failoverd::cli {

// `args` are the words after "doctor". Exit 0 when nothing failed, 1 when an item failed,
// 2 on usage errors.
int doctor_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
std::string doctor_usage();

}  // namespace failoverd::cli
