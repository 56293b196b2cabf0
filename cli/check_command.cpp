#include "cli/check_command.hpp"

#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>
#include <stdexcept>

#include "daemon/config.hpp"
#include "daemon/core/rng.hpp"
#include "daemon/shell/command_line.hpp"
#include "daemon/shell/curl_multi.hpp"
#include "daemon/shell/event_loop.hpp"
#include "health/check_runner.hpp"
#include "health/probe_runner.hpp"

namespace failoverd::cli {

namespace po = boost::program_options;
using health::ProbeResult;
using health::Verdict;

namespace {

// Ad-hoc checks are for CI and a terminal: an engine on a loaded runner may need more than
// the daemon's default of 1 s.
constexpr Duration kAdHocTimeout = std::chrono::seconds(2);
constexpr Duration kAdHocInterval = std::chrono::seconds(2);
// ProbeRunner enforces every timeout; this only guards the command against a runner bug.
constexpr Duration kRoundSlack = std::chrono::seconds(10);

class UsageError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

po::options_description options() {
    po::options_description desc("Options");
    // clang-format off
    desc.add_options()
        ("help,h", "show this help")
        ("config,c", po::value<std::string>()->value_name("FILE"),
         "config file (default /etc/failoverd/failoverd.conf)")
        ("check", po::value<std::vector<std::string>>()->value_name("NAME")->composing(),
         "run only this check (repeatable); default: all")
        ("wait", po::value<std::string>()->value_name("DURATION"),
         "repeat rounds until all checks pass or DURATION (e.g. 300s, 5m) has passed")
        ("interval", po::value<std::string>()->value_name("DURATION"),
         "pause between rounds (default: the shortest interval of the checks)")
        ("timeout", po::value<std::string>()->value_name("DURATION"),
         "per-check timeout; overrides the config (ad-hoc default 2s)")
        ("json", po::bool_switch(), "print one JSON document instead of text")
        ("repeat", po::value<int>()->value_name("N"),
         "run exactly N rounds back to back, whatever the result (benchmarking)")
        ("docker-expect", po::value<int>()->value_name("N"),
         "ad-hoc docker check: exactly N containers running")
        ("docker-min", po::value<int>()->value_name("N"),
         "ad-hoc docker check: at least N containers running")
        ("docker-label", po::value<std::vector<std::string>>()->value_name("K=V")->composing(),
         "select containers by label (repeatable; K alone: label present)")
        ("docker-name", po::value<std::string>()->value_name("REGEX"),
         "select containers whose name matches REGEX (ECMAScript, searched)")
        ("docker-socket", po::value<std::string>()->value_name("PATH"),
         "Engine socket (default: DOCKER_HOST if unix://..., else /var/run/docker.sock)")
        ("docker-ignore-health", po::bool_switch(),
         "do not require Docker healthchecks to report healthy")
        ("http", po::value<std::vector<std::string>>()->value_name("URL")->composing(),
         "ad-hoc check: GET URL answers 200 (repeatable)")
        ("tcp", po::value<std::vector<std::string>>()->value_name("HOST:PORT")->composing(),
         "ad-hoc check: a TCP connection opens (repeatable)")
        ("exec", po::value<std::vector<std::string>>()->value_name("CMD")->composing(),
         "ad-hoc check: CMD exits 0 (repeatable; quoted like a shell, no expansion)");
    // clang-format on
    return desc;
}

Duration duration_option(const po::variables_map& vm, const char* key) {
    const auto text = vm[key].as<std::string>();
    const auto d = parse_duration(text);
    if (!d || *d <= Duration::zero()) {
        throw UsageError(std::string("--") + key + ": '" + text +
                         "' is not a positive duration (e.g. 500ms, 2s, 5m)");
    }
    return *d;
}

std::vector<std::string> strings(const po::variables_map& vm, const char* key) {
    return vm.count(key) ? vm[key].as<std::vector<std::string>>() : std::vector<std::string>{};
}

// "docker" when it is the only one of its kind, else "http-1", "http-2", ...
std::string adhoc_name(const char* kind, std::size_t index, std::size_t count) {
    return count == 1 ? std::string(kind) : std::string(kind) + "-" + std::to_string(index + 1);
}

bool has_adhoc(const po::variables_map& vm) {
    for (const char* key : {"docker-expect", "docker-min", "docker-label", "docker-name",
                            "docker-socket", "http", "tcp", "exec"}) {
        if (vm.count(key)) {
            return true;
        }
    }
    return vm["docker-ignore-health"].as<bool>();
}

std::string default_docker_socket() {
    const char* host = std::getenv("DOCKER_HOST");
    if (host == nullptr || *host == '\0') {
        return "/var/run/docker.sock";
    }
    const std::string value = host;
    const std::string scheme = "unix://";
    if (value.rfind(scheme, 0) != 0) {
        throw UsageError("DOCKER_HOST=" + value +
                         " is not a unix socket; the docker check talks to the Engine over its "
                         "unix socket (use --docker-socket PATH)");
    }
    return value.substr(scheme.size());
}

// Options that stand for config keys are written as [check.NAME] sections and parsed by the
// config layer, so each takes exactly what its key takes, with the same message. Each line
// remembers the option it came from, and the messages name the option instead.
class OptionsAsConfig {
  public:
    void section(const std::string& name, const char* type, const std::string& option) {
        line("[check." + name + "]", option);
        line(std::string("type = ") + type, option);
    }

    void key(const std::string& key, const std::string& value, const std::string& option) {
        if (value.find_first_of(std::string("\n\r\0", 3)) != std::string::npos) {
            throw UsageError(option + ": must be one line");
        }
        line(key + " = " + value, option);
    }

    std::vector<CheckConfig> parse() const {
        try {
            return parse_config(text_, "failoverctl check", ConfigScope::Checks).checks;
        } catch (const ConfigErrors& e) {
            std::string message;
            for (const auto& error : e.errors()) {
                message += (message.empty() ? "" : "\nfailoverctl check: ") +
                           option_of(error.line, error.key) + ": " + name_options(error.message);
            }
            throw UsageError(message);
        }
    }

  private:
    void line(const std::string& text, const std::string& option) {
        text_ += text + "\n";
        options_.push_back(option);
    }

    std::string option_of(int line, const std::string& key) const {
        if (line >= 1 && static_cast<std::size_t>(line) <= options_.size()) {
            return options_[static_cast<std::size_t>(line) - 1];
        }
        return key;
    }

    // "cannot be combined with expect at line 3" -> "... with --docker-expect".
    std::string name_options(const std::string& message) const {
        static const std::regex at_line(R"(\b[a-z_]+ at line (\d+))");
        std::string out;
        auto from = message.cbegin();
        for (std::sregex_iterator it(message.begin(), message.end(), at_line), last; it != last;
             ++it) {
            out.append(from, message.cbegin() + it->position());
            out += option_of(std::stoi((*it)[1]), it->str());
            from = message.cbegin() + it->position() + it->length();
        }
        out.append(from, message.cend());
        return out;
    }

    std::string text_;
    std::vector<std::string> options_;
};

struct RoundOptions {
    std::optional<Duration> interval;
    std::optional<Duration> timeout;
};

// --interval and --timeout take what a check's interval and timeout keys take (timeout at most
// interval when both are given): the config layer judges them on a section that is parsed and
// never run.
RoundOptions round_options(const po::variables_map& vm) {
    if (!vm.count("interval") && !vm.count("timeout")) {
        return {};
    }
    OptionsAsConfig as_config;
    as_config.section("options", "tcp", "--interval");
    as_config.key("target", "127.0.0.1:9", "--interval");
    as_config.key("interval", vm.count("interval") ? vm["interval"].as<std::string>() : "1h",
                  "--interval");
    if (vm.count("timeout")) {
        as_config.key("timeout", vm["timeout"].as<std::string>(), "--timeout");
    }
    const auto parsed = as_config.parse().front();
    RoundOptions out;
    if (vm.count("interval")) {
        out.interval = parsed.interval;
    }
    if (vm.count("timeout")) {
        out.timeout = parsed.timeout;
    }
    return out;
}

std::vector<CheckConfig> adhoc_checks(const po::variables_map& vm, const RoundOptions& round) {
    OptionsAsConfig as_config;
    const bool docker = vm.count("docker-expect") || vm.count("docker-min") ||
                        vm.count("docker-label") || vm.count("docker-name") ||
                        vm.count("docker-socket") || vm["docker-ignore-health"].as<bool>();
    if (docker) {
        as_config.section("docker", "docker", "--docker-expect");
        if (vm.count("docker-expect")) {
            as_config.key("expect", std::to_string(vm["docker-expect"].as<int>()),
                          "--docker-expect");
        }
        if (vm.count("docker-min")) {
            as_config.key("min", std::to_string(vm["docker-min"].as<int>()), "--docker-min");
        } else if (!vm.count("docker-expect")) {
            // Neither: at least one running, which min = 1 passes the same way.
            as_config.key("min", "1", "--docker-min");
        }
        for (const auto& label : strings(vm, "docker-label")) {
            as_config.key("label", label, "--docker-label");
        }
        if (vm.count("docker-name")) {
            as_config.key("name", vm["docker-name"].as<std::string>(), "--docker-name");
        }
        as_config.key("socket",
                      vm.count("docker-socket") ? vm["docker-socket"].as<std::string>()
                                                : default_docker_socket(),
                      "--docker-socket");
        as_config.key("require_healthy", vm["docker-ignore-health"].as<bool>() ? "false" : "true",
                      "--docker-ignore-health");
    }
    const auto urls = strings(vm, "http");
    for (std::size_t i = 0; i < urls.size(); ++i) {
        as_config.section(adhoc_name("http", i, urls.size()), "http", "--http");
        as_config.key("url", urls[i], "--http");
    }
    const auto targets = strings(vm, "tcp");
    for (std::size_t i = 0; i < targets.size(); ++i) {
        as_config.section(adhoc_name("tcp", i, targets.size()), "tcp", "--tcp");
        as_config.key("target", targets[i], "--tcp");
    }
    const auto commands = strings(vm, "exec");
    for (std::size_t i = 0; i < commands.size(); ++i) {
        as_config.section(adhoc_name("exec", i, commands.size()), "exec", "--exec");
        as_config.key("command", commands[i], "--exec");
    }

    auto checks = as_config.parse();
    for (auto& c : checks) {
        if (c.type == CheckType::Docker && !vm.count("docker-min")) {
            c.min.reset();
        }
        c.timeout =
            round.timeout.value_or(std::min(kAdHocTimeout, round.interval.value_or(kAdHocTimeout)));
        c.interval = round.interval.value_or(std::max(kAdHocInterval, c.timeout));
        c.rise = 1;
        c.fall = 1;
    }
    return checks;
}

std::vector<CheckConfig> select_checks(std::vector<CheckConfig> all,
                                       const std::vector<std::string>& names,
                                       const std::string& where) {
    if (names.empty()) {
        return all;
    }
    std::vector<CheckConfig> out;
    for (const auto& name : names) {
        const auto it = std::find_if(all.begin(), all.end(),
                                     [&](const CheckConfig& c) { return c.name == name; });
        if (it == all.end()) {
            std::string known;
            for (const auto& c : all) {
                known += (known.empty() ? "" : ", ") + c.name;
            }
            throw UsageError("--check: no check named '" + name + "' in " + where +
                             " (known: " + (known.empty() ? "none" : known) + ")");
        }
        if (std::none_of(out.begin(), out.end(),
                         [&](const CheckConfig& c) { return c.name == name; })) {
            out.push_back(*it);
        }
    }
    return out;
}

struct CheckOutcome {
    std::string name;
    CheckType type;
    ProbeResult result;
};

double milliseconds(Duration d) {
    return std::round(std::chrono::duration<double, std::milli>(d).count() * 1000.0) / 1000.0;
}

std::string latency_text(Duration d) {
    std::ostringstream s;
    s.setf(std::ios::fixed);
    s.precision(1);
    s << std::chrono::duration<double, std::milli>(d).count() << " ms";
    return s.str();
}

void print_round(std::ostream& out, const std::vector<CheckOutcome>& outcomes) {
    std::size_t width = 0;
    for (const auto& o : outcomes) {
        width = std::max(width, o.name.size());
    }
    for (const auto& o : outcomes) {
        out << o.name << std::string(width - o.name.size() + 2, ' ')
            << (o.result.passed() ? "PASS" : "FAIL") << "  " << o.result.reason << "  ("
            << latency_text(o.result.latency) << ")\n";
    }
    out.flush();
}

std::string plural(std::size_t n, const char* word) {
    return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

}  // namespace

std::string check_usage() {
    std::ostringstream s;
    s << "Usage: failoverctl check [--config FILE] [--check NAME]... [--wait DURATION]\n"
         "                         [--interval DURATION] [--timeout DURATION] [--json]\n"
         "       failoverctl check --docker-expect N [--docker-min N] [--docker-label K=V]...\n"
         "                         [--docker-name REGEX] [--docker-socket PATH]\n"
         "                         [--http URL]... [--tcp HOST:PORT]... [--exec 'CMD']...\n"
         "\n"
         "Runs the health checks of the config file (or the ad-hoc ones given as flags; then no\n"
         "config file is read) once, all at the same time, and prints one line per check: name,\n"
         "PASS or FAIL, reason, latency. With --wait, repeats rounds until every check passes in\n"
         "the same round or the wait runs out. Each round gives each check one verdict under its\n"
         "configured timeout; rise and fall are not applied (they are the daemon's).\n"
         "\n"
         "Exit status: 0 all checks passed, 1 a check failed or --wait ran out, 2 usage or\n"
         "config error.\n\n"
      << options();
    return s.str();
}

int check_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    po::variables_map vm;
    try {
        parse_command_line(args, options(), vm);
    } catch (const po::error& e) {
        err << "failoverctl check: " << e.what() << "\nTry 'failoverctl check --help'.\n";
        return kExitUsage;
    }
    if (vm.count("help")) {
        out << check_usage();
        return kExitOk;
    }

    const bool json = vm["json"].as<bool>();
    std::vector<CheckConfig> checks;
    std::optional<Duration> wait;
    std::optional<Duration> interval;
    int repeat = 0;
    try {
        if (vm.count("wait")) {
            wait = duration_option(vm, "wait");
        }
        const RoundOptions round = round_options(vm);
        interval = round.interval;
        if (vm.count("repeat")) {
            repeat = vm["repeat"].as<int>();
            if (repeat < 1) {
                throw UsageError("--repeat: must be 1 or more");
            }
            if (wait) {
                throw UsageError("--repeat and --wait cannot be combined");
            }
        }
        const auto names = strings(vm, "check");
        if (has_adhoc(vm)) {
            if (vm.count("config")) {
                throw UsageError(
                    "--config cannot be combined with ad-hoc checks (--docker-*, "
                    "--http, --tcp, --exec)");
            }
            checks = select_checks(adhoc_checks(vm, round), names, "the ad-hoc checks");
        } else {
            const std::string path =
                vm.count("config") ? vm["config"].as<std::string>() : kDefaultConfigPath;
            Config config;
            try {
                config = load_config(path, ConfigScope::Checks);
            } catch (const ConfigErrors& e) {
                const std::string text = e.what();
                err << text << (text.empty() || text.back() != '\n' ? "\n" : "");
                return kExitUsage;
            }
            if (config.checks.empty()) {
                throw UsageError(path + " has no [check.NAME] sections");
            }
            checks = select_checks(config.checks, names, path);
            if (round.timeout) {
                for (auto& c : checks) {
                    c.timeout = *round.timeout;
                }
            }
        }
    } catch (const std::exception& e) {
        err << "failoverctl check: " << e.what() << "\n";
        return kExitUsage;
    }

    Duration pause = interval.value_or(Duration::max());
    Duration longest_timeout{};
    for (const auto& c : checks) {
        if (!interval) {
            pause = std::min(pause, c.interval);
        }
        longest_timeout = std::max(longest_timeout, c.timeout);
    }

    EventLoop loop;
    CurlMulti curl(loop);
    std::map<std::string, ProbeResult> results;
    health::ProbeRunner runner(
        loop, Rng(static_cast<std::uint64_t>(::getpid())),
        [&results](const std::string& name, const ProbeResult& r) { results[name] = r; });
    try {
        for (const auto& c : checks) {
            runner.add(c.name, health::make_probe(c, loop, curl), health::schedule_of(c));
        }
    } catch (const std::invalid_argument& e) {
        err << "failoverctl check: " << e.what() << "\n";
        return kExitUsage;
    }

    const Instant started = loop.now();
    const std::optional<Instant> deadline =
        wait ? std::optional<Instant>(started + *wait) : std::nullopt;
    std::vector<CheckOutcome> outcomes;
    int rounds = 0;
    bool all_ok = false;
    bool wait_ran_out = false;
    for (;;) {
        ++rounds;
        results.clear();
        bool round_done = false;
        runner.run_once_all([&round_done] { round_done = true; });
        const bool finished =
            loop.run_until([&round_done] { return round_done; }, longest_timeout + kRoundSlack);

        outcomes.clear();
        all_ok = true;
        for (const auto& c : checks) {
            const auto it = results.find(c.name);
            ProbeResult r = it != results.end()
                                ? it->second
                                : ProbeResult{Verdict::Error, "no result (internal error)", {}};
            all_ok = all_ok && r.passed();
            outcomes.push_back(CheckOutcome{c.name, c.type, std::move(r)});
        }
        if (!json) {
            print_round(out, outcomes);
        }
        if (!finished) {
            // ProbeRunner enforces every timeout, so this is a bug; do not start another round
            // on top of the unfinished one.
            all_ok = false;
            break;
        }

        if (repeat > 0) {
            if (rounds < repeat) {
                continue;
            }
            break;
        }
        if (all_ok || !deadline) {
            break;
        }
        const Duration left = *deadline - loop.now();
        if (left <= Duration::zero()) {
            wait_ran_out = true;
            break;
        }
        const Duration sleep_for = std::min(pause, left);
        if (!json) {
            out << "-- round " << rounds << " failed; next in " << format_duration(sleep_for)
                << " (" << format_duration(left) << " of --wait left)\n";
            out.flush();
        }
        bool fired = false;
        Timer timer(loop, [&fired] { fired = true; });
        timer.arm_after(sleep_for);
        loop.run_until([&fired] { return fired; }, sleep_for + kRoundSlack);
    }
    const Duration elapsed = loop.now() - started;

    std::size_t failed = 0;
    for (const auto& o : outcomes) {
        failed += o.result.passed() ? 0 : 1;
    }
    if (json) {
        nlohmann::ordered_json doc;
        doc["ok"] = all_ok;
        doc["elapsed_ms"] = milliseconds(elapsed);
        doc["rounds"] = rounds;
        doc["checks"] = nlohmann::ordered_json::array();
        for (const auto& o : outcomes) {
            doc["checks"].push_back({{"name", o.name},
                                     {"type", to_string(o.type)},
                                     {"ok", o.result.passed()},
                                     {"verdict", std::string(to_string(o.result.verdict))},
                                     {"reason", o.result.reason},
                                     {"latency_ms", milliseconds(o.result.latency)}});
        }
        out << doc.dump(2) << "\n";
    } else {
        const std::string when = " (" + plural(static_cast<std::size_t>(rounds), "round") + ", " +
                                 format_duration(elapsed) + ")";
        if (all_ok) {
            out << "OK: " << plural(outcomes.size(), "check") << " passed" << when << "\n";
        } else {
            out << "FAIL: " << failed << " of " << plural(outcomes.size(), "check") << " failed"
                << (wait_ran_out ? " and --wait ran out" : "") << when << "\n";
        }
    }
    out.flush();
    return all_ok ? kExitOk : kExitFailed;
}

}  // namespace failoverd::cli
