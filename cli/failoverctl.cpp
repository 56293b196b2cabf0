// failoverctl: the operator's and CI's command. Dispatches subcommands; each lives in
// cli/<name>_command.cpp.
#include <boost/program_options.hpp>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "cli/admin_command.hpp"
#include "cli/check_command.hpp"
#include "cli/doctor_command.hpp"
#include "cli/rollout_command.hpp"
#include "cli/status_command.hpp"
#include "daemon/shell/logging.hpp"

namespace {

namespace po = boost::program_options;
using failoverd::cli::kExitUsage;

const char* const kUsage =
    "Usage: failoverctl [-h|--help] [-V|--version] COMMAND [ARGS...]\n"
    "\n"
    "Commands:\n"
    "  check    run health checks once or until they pass (failoverctl check --help)\n"
    "  status   show the running daemon's roles, checks and counters (exit 3: not running)\n"
    "  handover INSTANCE [--to NODE]   the master of INSTANCE resigns in favour of a peer\n"
    "  maintenance on|off   stop (or resume) competing for every instance\n"
    "  doctor   pre-flight: config, API token and scopes, droplet, reserved IPs, peers,\n"
    "           Docker, hooks; one line per item, exit 1 if any fails\n"
    "  rollout  --host H1 --host H2 --deploy CMD   rolling update: backups first, each gated\n"
    "           on its checks, the master after handing over (failoverctl rollout --help)\n";

int usage_error(const std::string& message) {
    std::cerr << "failoverctl: " << message << "\n" << kUsage;
    return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
    // Global options come before the command; everything after it belongs to the command.
    int command_index = 1;
    while (command_index < argc && argv[command_index][0] == '-') {
        ++command_index;
    }
    po::options_description global("Options");
    global.add_options()("help,h", "show this help")("version,V", "print the version and commit");
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(command_index, argv).options(global).run(), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        return usage_error(e.what());
    }
    if (vm.count("version")) {
        std::cout << "failoverctl " << FAILOVERD_VERSION << " (commit " << FAILOVERD_COMMIT
                  << ")\n";
        return 0;
    }
    if (vm.count("help")) {
        std::cout << kUsage;
        return 0;
    }
    if (command_index >= argc) {
        return usage_error("no command given");
    }
    const std::string command = argv[command_index];
    const std::vector<std::string> args(argv + command_index + 1, argv + argc);

    try {
        // Library warnings go to stderr so stdout stays a clean report (or JSON document).
        failoverd::setup_logging("warn", failoverd::LogTarget::Stderr);
        if (command == "check") {
            return failoverd::cli::check_command(args, std::cout, std::cerr);
        }
        if (command == "status") {
            return failoverd::cli::status_command(args, std::cout, std::cerr);
        }
        if (command == "handover") {
            return failoverd::cli::handover_command(args, std::cout, std::cerr);
        }
        if (command == "rollout") {
            return failoverd::cli::rollout_command(args, std::cout, std::cerr);
        }
        if (command == "doctor") {
            return failoverd::cli::doctor_command(args, std::cout, std::cerr);
        }
        if (command == "maintenance") {
            return failoverd::cli::maintenance_command(args, std::cout, std::cerr);
        }
    } catch (const std::exception& e) {
        std::cerr << "failoverctl " << command << ": " << e.what() << "\n";
        return kExitUsage;
    }
    return usage_error("unknown command '" + command + "'");
}
