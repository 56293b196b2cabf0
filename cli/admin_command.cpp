#include "cli/admin_command.hpp"

#include <boost/program_options.hpp>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "cli/check_command.hpp"
#include "cli/status_command.hpp"
#include "daemon/config.hpp"
#include "daemon/shell/command_line.hpp"

namespace failoverd::cli {

namespace po = boost::program_options;
using nlohmann::json;

namespace {

void add_socket_options(po::options_description& desc) {
    // clang-format off
    desc.add_options()
        ("help,h", "show this help")
        ("socket,s", po::value<std::string>()->value_name("PATH"),
         "control socket (default: [node] control_socket of the config, else "
         "/run/failoverd/control.sock)")
        ("config,c", po::value<std::string>()->value_name("FILE"),
         "config file to read control_socket from (default /etc/failoverd/failoverd.conf)");
    // clang-format on
}

po::options_description handover_options() {
    po::options_description desc("Options");
    add_socket_options(desc);
    desc.add_options()("to", po::value<std::string>()->value_name("NODE"),
                       "hand over to this node (default: whichever backup wins)");
    return desc;
}

po::options_description maintenance_options() {
    po::options_description desc("Options");
    add_socket_options(desc);
    return desc;
}

std::optional<std::string> optional_string(const po::variables_map& vm, const char* key) {
    if (vm.count(key) == 0) {
        return std::nullopt;
    }
    return vm[key].as<std::string>();
}

// Parses, resolves the socket, sends the request `build` makes and, once the daemon accepted
// it, prints what `done` says (nothing is sent or printed after --help).
int run(const char* name, const std::vector<std::string>& args, const po::options_description& desc,
        const std::string& usage, const char* positional, int max_positional, std::ostream& out,
        std::ostream& err,
        const std::function<std::optional<json>(const po::variables_map&, std::string&)>& build,
        const std::function<std::string()>& done) {
    po::options_description all = desc;
    all.add_options()(positional, po::value<std::vector<std::string>>());
    po::positional_options_description pos;
    pos.add(positional, max_positional);
    po::variables_map vm;
    try {
        parse_command_line(args, all, vm, &pos);
    } catch (const po::error& e) {
        err << "failoverctl " << name << ": " << e.what() << "\n" << usage;
        return kExitUsage;
    }
    if (vm.count("help")) {
        out << usage;
        return kExitOk;
    }
    std::string problem;
    const auto request = build(vm, problem);
    if (!request) {
        err << "failoverctl " << name << ": " << problem << "\n" << usage;
        return kExitUsage;
    }
    std::string socket;
    try {
        socket = control_socket_path(optional_string(vm, "socket"), optional_string(vm, "config"));
    } catch (const ConfigErrors& e) {
        for (const auto& error : e.errors()) {
            err << error.to_string() << "\n";
        }
        return kExitUsage;
    }
    int exit_code = kExitOk;
    const auto answer = ask_daemon(socket, *request, err, exit_code);
    if (!answer) {
        return exit_code;
    }
    if (!answer->value("ok", false)) {
        err << "failoverctl " << name << ": " << answer->value("error", std::string("refused"))
            << "\n";
        return kExitFailed;
    }
    out << done() << "\n";
    return kExitOk;
}

std::vector<std::string> positionals(const po::variables_map& vm, const char* key) {
    return vm.count(key) ? vm[key].as<std::vector<std::string>>() : std::vector<std::string>{};
}

}  // namespace

std::string handover_usage() {
    std::ostringstream out;
    out << "Usage: failoverctl handover INSTANCE [--to NODE] [--socket PATH | --config FILE]\n\n"
           "The master of INSTANCE on this node resigns (priority-0 advert) in favour of NODE,\n"
           "or of whichever backup wins, and does not take it back by preemption.\n\n"
        << handover_options();
    return out.str();
}

int handover_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    return run(
        "handover", args, handover_options(), handover_usage(), "instance", 2, out, err,
        [](const po::variables_map& vm, std::string& problem) -> std::optional<json> {
            const auto words = positionals(vm, "instance");
            if (words.size() != 1) {
                problem = "give exactly one INSTANCE";
                return std::nullopt;
            }
            json request{{"command", "handover"}, {"instance", words[0]}};
            if (vm.count("to")) {
                request["to"] = vm["to"].as<std::string>();
            }
            return request;
        },
        [] { return std::string("handover requested"); });
}

std::string maintenance_usage() {
    std::ostringstream out;
    out << "Usage: failoverctl maintenance on|off [--socket PATH | --config FILE]\n\n"
           "on: this node stops competing for every instance (FAULT, reason \"maintenance\"),\n"
           "a master hands over at once; off: it competes again. Survives a daemon restart.\n\n"
        << maintenance_options();
    return out.str();
}

int maintenance_command(const std::vector<std::string>& args, std::ostream& out,
                        std::ostream& err) {
    bool on = false;
    return run(
        "maintenance", args, maintenance_options(), maintenance_usage(), "state", 2, out, err,
        [&on](const po::variables_map& vm, std::string& problem) -> std::optional<json> {
            const auto words = positionals(vm, "state");
            if (words.size() != 1 || (words[0] != "on" && words[0] != "off")) {
                problem = "give on or off";
                return std::nullopt;
            }
            on = words[0] == "on";
            return json{{"command", "maintenance"}, {"on", on}};
        },
        [&on] { return std::string("maintenance ") + (on ? "on" : "off"); });
}

}  // namespace failoverd::cli
