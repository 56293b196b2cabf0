// failoverd entry: command line, configuration, then the daemon loop.
#include <spdlog/common.h>

#include <boost/program_options.hpp>
#include <iostream>
#include <string>
#include <vector>

#include "daemon/config.hpp"
#include "daemon/shell/command_line.hpp"
#include "daemon/shell/daemon.hpp"

namespace {

namespace po = boost::program_options;

constexpr int kExitUsage = 2;
constexpr int kExitConfig = 2;

int start_daemon(const failoverd::Config& config, const std::string& log_level) {
    return failoverd::run_daemon(config, log_level);
}

bool valid_log_level(const std::string& level) {
    return spdlog::level::from_str(level) != spdlog::level::off || level == "off";
}

}  // namespace

int main(int argc, char** argv) {
    po::options_description options("Usage: failoverd [OPTIONS]\n\nOptions");
    options.add_options()  //
        ("config", po::value<std::string>()->default_value(failoverd::kDefaultConfigPath),
         "configuration file")  //
        ("check-config",
         "validate the configuration, print a one-line summary and exit "
         "(0 valid, 2 not; every problem is printed as FILE:LINE: key: ...)")  //
        ("log-level", po::value<std::string>()->default_value("info"),
         "trace, debug, info, warn, error, critical or off")    //
        ("version,V", "print the version and commit and exit")  //
        ("help,h", "print this help and exit");

    po::variables_map args;
    try {
        failoverd::parse_command_line(std::vector<std::string>(argv + 1, argv + argc), options,
                                      args);
    } catch (const po::error& e) {
        std::cerr << "failoverd: " << e.what() << "\nTry 'failoverd --help'.\n";
        return kExitUsage;
    }
    if (args.count("help") != 0) {
        std::cout << options << '\n';
        return 0;
    }
    if (args.count("version") != 0) {
        std::cout << "failoverd " << FAILOVERD_VERSION << " (commit " << FAILOVERD_COMMIT << ")\n";
        return 0;
    }
    const auto log_level = args["log-level"].as<std::string>();
    if (!valid_log_level(log_level)) {
        std::cerr << "failoverd: --log-level: unknown level '" << log_level
                  << "' (allowed: trace, debug, info, warn, error, critical, off)\n";
        return kExitUsage;
    }

    failoverd::Config config;
    try {
        config = failoverd::load_config(args["config"].as<std::string>());
    } catch (const failoverd::ConfigErrors& e) {
        for (const auto& line : e.report()) {
            std::cerr << line << '\n';
        }
        return kExitConfig;
    }
    if (args.count("check-config") != 0) {
        std::cout << failoverd::escape_text(config.summary(), 4096) << '\n';
        return 0;
    }
    return start_daemon(config, log_level);
}
