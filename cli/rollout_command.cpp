#include "cli/rollout_command.hpp"

#include <algorithm>
#include <boost/program_options.hpp>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <sstream>
#include <string_view>

#include "cli/check_command.hpp"
#include "daemon/config.hpp"
#include "daemon/shell/child_process.hpp"
#include "daemon/shell/command_line.hpp"
#include "daemon/shell/event_loop.hpp"

namespace failoverd::cli {

namespace po = boost::program_options;
using nlohmann::json;

bool HostState::masters_any() const {
    return std::any_of(roles.begin(), roles.end(),
                       [](const auto& r) { return r.second == "MASTER"; });
}

bool HostState::is_master(const std::string& instance) const {
    const auto it = roles.find(instance);
    return it != roles.end() && it->second == "MASTER";
}

bool HostState::holds(const std::string& instance) const {
    return std::find(holding.begin(), holding.end(), instance) != holding.end();
}

bool HostState::healthy() const {
    if (!running || !failing.empty()) {
        return false;
    }
    return std::all_of(roles.begin(), roles.end(),
                       [](const auto& r) { return r.second == "MASTER" || r.second == "BACKUP"; });
}

std::string HostState::describe_problems() const {
    if (!running) {
        return "failoverd is not running";
    }
    std::vector<std::string> parts;
    for (const auto& [instance, role] : roles) {
        if (role != "MASTER" && role != "BACKUP") {
            parts.push_back(instance + " is " + role);
        }
    }
    parts.insert(parts.end(), failing.begin(), failing.end());
    std::string out;
    for (const std::string& p : parts) {
        out += (out.empty() ? "" : "; ") + p;
    }
    return out.empty() ? "healthy" : out;
}

namespace {

std::string upper(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return s;
}

// The daemon reports the provider's view per instance; a build or config without a provider
// has nothing to ask, so there mastership is the only evidence.
bool instance_holds_ip(const json& instance) {
    if (const auto p = instance.find("provider"); p != instance.end() && p->is_object()) {
        if (const auto h = p->find("holder_is_self"); h != p->end() && h->is_boolean()) {
            return h->get<bool>();
        }
    }
    return instance.value("role", "") == "MASTER" || instance.value("role", "") == "master";
}

}  // namespace

HostState host_state_of(const std::string& host, const json& document) {
    const json& status = document.contains("status") && document["status"].is_object()
                             ? document["status"]
                             : document;
    HostState s;
    s.host = host;
    s.node = status.value("node", host);
    s.running = status.value("phase", "") == "running";
    if (!status.contains("instances") || !status["instances"].is_array()) {
        return s;
    }
    std::set<std::string> failing;
    for (const json& i : status["instances"]) {
        const std::string name = i.value("name", "");
        s.roles[name] = upper(i.value("role", "?"));
        s.reserved_ips[name] = i.value("reserved_ip", "");
        if (instance_holds_ip(i)) {
            s.holding.push_back(name);
        }
        if (i.contains("checks") && i["checks"].is_array()) {
            for (const json& c : i["checks"]) {
                if (c.value("state", "") != "passing") {
                    failing.insert("check " + c.value("name", "?") + " " + c.value("state", "?") +
                                   ": " + c.value("reason", ""));
                }
            }
        }
    }
    s.failing.assign(failing.begin(), failing.end());
    return s;
}

RolloutPlan plan_rollout(const std::vector<HostState>& hosts) {
    RolloutPlan plan;
    std::set<std::string> seen;
    for (const HostState& h : hosts) {
        if (!seen.insert(h.host).second) {
            plan.error = "host " + h.host + " is given twice";
            return plan;
        }
    }
    if (hosts.size() < 2) {
        plan.error =
            "a rolling update needs at least two hosts (one serves while the other "
            "is updated)";
        return plan;
    }
    for (const HostState& h : hosts) {
        if (!h.masters_any()) {
            plan.order.push_back(h.host);
        }
    }
    if (plan.order.empty()) {
        plan.error = "every host is MASTER of some instance: no Backup to update first";
        return plan;
    }
    for (const HostState& h : hosts) {
        if (!h.masters_any()) {
            continue;
        }
        plan.order.push_back(h.host);
        for (const auto& [instance, role] : h.roles) {
            if (role == "MASTER") {
                plan.handovers[h.host].push_back(instance);
            }
        }
    }
    return plan;
}

std::string substitute_host(const std::string& text, const std::string& host) {
    std::string out;
    std::size_t at = 0;
    while (true) {
        const std::size_t found = text.find("{host}", at);
        if (found == std::string::npos) {
            out.append(text, at);
            return out;
        }
        out.append(text, at, found - at);
        out += host;
        at = found + 6;
    }
}

std::string shell_quote(const std::string& word) {
    const bool plain = !word.empty() && std::all_of(word.begin(), word.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) ||
               std::string_view("-_./:=@%+,").find(c) != std::string_view::npos;
    });
    if (plain) {
        return word;
    }
    std::string out = "'";
    for (const char c : word) {
        if (c == '\'') {
            out += "'\\''";
        } else {
            out += c;
        }
    }
    return out + "'";
}

namespace {

struct Options {
    std::vector<std::string> hosts;
    std::string deploy;
    std::string via = "ssh {host}";
    std::string remote_failoverctl = "failoverctl";
    std::optional<std::string> remote_config;
    Duration check_wait = std::chrono::seconds(300);
    Duration handover_wait = std::chrono::seconds(60);
    Duration deploy_timeout = std::chrono::minutes(30);
    Duration status_timeout = std::chrono::seconds(30);
    bool dry_run = false;
    bool json = false;
    bool failback = false;
};

po::options_description rollout_options() {
    po::options_description desc("Options");
    // clang-format off
    desc.add_options()
        ("help,h", "show this help")
        ("host", po::value<std::vector<std::string>>()->value_name("HOST")->composing(),
         "a host of the group (repeat; at least two); replaces {host} in --via and --deploy")
        ("deploy", po::value<std::string>()->value_name("CMD"),
         "command run locally with /bin/sh for each host, e.g. 'ssh {host} ./deploy.sh'")
        ("via", po::value<std::string>()->value_name("PREFIX"),
         "how to run failoverctl on a host (default 'ssh {host}')")
        ("check-wait", po::value<std::string>()->value_name("DURATION"),
         "how long a host may take after its deploy to pass its checks (default 300s)")
        ("handover-wait", po::value<std::string>()->value_name("DURATION"),
         "how long a hand-over may take until the new master holds the IP (default 60s)")
        ("deploy-timeout", po::value<std::string>()->value_name("DURATION"),
         "limit for one deploy command (default 30m)")
        ("remote-failoverctl", po::value<std::string>()->value_name("PATH"),
         "failoverctl on the hosts (default: failoverctl from PATH)")
        ("remote-config", po::value<std::string>()->value_name("FILE"),
         "config file on the hosts, {host} replaced (default: /etc/failoverd/failoverd.conf)")
        ("failback", po::bool_switch(), "at the end, hand the instances back to their first masters")
        ("dry-run", po::bool_switch(), "ask every host for its state, print the plan, change nothing")
        ("json", po::bool_switch(), "print a final JSON report on stdout (progress goes to stderr)");
    // clang-format on
    return desc;
}

Duration duration_of(const po::variables_map& vm, const char* key, Duration fallback) {
    if (vm.count(key) == 0) {
        return fallback;
    }
    const std::string text = vm[key].as<std::string>();
    const auto d = parse_duration(text);
    if (!d || *d <= Duration::zero()) {
        throw po::error(std::string("--") + key + ": '" + text +
                        "' is not a duration (e.g. 300s, 5m)");
    }
    return *d;
}

struct CommandResult {
    ChildExit exit;
    std::string output;      // stdout, or both streams when merged
    std::string error_tail;  // last stderr lines
    bool ok() const { return exit.success(); }
};

double seconds_of(Duration d) {
    return seconds(d);
}

// The loop's now() is the time of its last wake-up; between steps nothing wakes it.
Instant clock() {
    return Instant{
        std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now().time_since_epoch())};
}

std::string format_seconds(double s) {
    std::ostringstream o;
    o.setf(std::ios::fixed);
    o.precision(1);
    o << s << " s";
    return o.str();
}

// `check --wait` prints every round, separated by "-- round N failed; ..." lines: the last
// round is what the gate failed on.
std::string last_round(const std::string& output) {
    std::string text = output;
    while (!text.empty() && text.back() == '\n') {
        text.pop_back();
    }
    const std::size_t marker = text.rfind("\n-- ");
    if (marker == std::string::npos) {
        return text;
    }
    const std::size_t next = text.find('\n', marker + 1);
    return next == std::string::npos ? text : text.substr(next + 1);
}

// Runs the rollout, one step at a time; every subprocess has a timeout, every wait a deadline.
class Rollout {
  public:
    Rollout(Options options, std::ostream& progress)
        : options_(std::move(options)),
          progress_(progress),
          github_(std::getenv("GITHUB_ACTIONS") != nullptr &&
                  std::string(std::getenv("GITHUB_ACTIONS")) == "true"),
          started_(clock()) {}

    int run();
    json report() const { return report_; }

  private:
    CommandResult run_shell(const std::string& command, Duration timeout, bool stream);
    std::string remote(const std::string& host, const std::vector<std::string>& words) const;
    std::optional<HostState> query(const std::string& host, std::string& error);
    bool deploy(const std::string& host);
    bool gate(const std::string& host);
    bool hand_over(const std::string& from, const std::string& instance,
                   const std::vector<std::string>& candidates, std::string& to_host);
    bool wait_until(const std::function<bool(std::string&)>& condition, Duration max_wait,
                    std::string& last);
    void line(const std::string& text);
    void group_begin(const std::string& title);
    void group_end();
    bool fail(const std::string& host, const std::string& message);
    double elapsed() { return seconds_of(clock() - started_); }
    void record(const std::string& host, const std::string& step, bool ok, double seconds,
                const std::string& detail);

    Options options_;
    std::ostream& progress_;
    bool github_ = false;
    EventLoop loop_;
    Instant started_;
    std::map<std::string, HostState> states_;
    json report_ = json{{"ok", false}, {"steps", json::array()}};
};

void Rollout::line(const std::string& text) {
    progress_ << "["
              << std::string(7 - std::min<std::size_t>(7, format_seconds(elapsed()).size()), ' ')
              << format_seconds(elapsed()) << "] " << text << "\n"
              << std::flush;
}

void Rollout::group_begin(const std::string& title) {
    if (github_) {
        progress_ << "::group::" << title << "\n";
    }
    line(title);
}

void Rollout::group_end() {
    if (github_) {
        progress_ << "::endgroup::\n" << std::flush;
    }
}

bool Rollout::fail(const std::string& host, const std::string& message) {
    group_end();
    const std::string text = "rollout stopped at " + host + ": " + message;
    if (github_) {
        // Annotations are one line; newlines must be escaped as %0A.
        std::string escaped;
        for (const char c : text) {
            escaped += c == '\n' ? std::string("%0A") : std::string(1, c);
        }
        progress_ << "::error::" << escaped << "\n";
    }
    line("FAILED: " + text);
    report_["failed_host"] = host;
    report_["error"] = message;
    return false;
}

void Rollout::record(const std::string& host, const std::string& step, bool ok, double seconds,
                     const std::string& detail) {
    report_["steps"].push_back({{"host", host},
                                {"step", step},
                                {"ok", ok},
                                {"seconds", seconds},
                                {"at_seconds", elapsed()},
                                {"detail", detail}});
}

CommandResult Rollout::run_shell(const std::string& command, Duration timeout, bool stream) {
    ChildSpec spec;
    spec.argv = {"/bin/sh", "-c", command};
    spec.timeout = timeout;
    CommandResult result;
    std::deque<std::string> tail;
    spec.on_line = [&](OutputStream s, std::string_view text) {
        if (stream) {
            progress_ << "    | " << text << "\n" << std::flush;
        }
        if (s == OutputStream::Stdout) {
            result.output.append(text);
            result.output += '\n';
        } else {
            tail.emplace_back(text);
            if (tail.size() > 20) {
                tail.pop_front();
            }
        }
    };
    ChildProcess child(loop_, spec);
    bool done = false;
    child.start([&](const ChildExit& e) {
        result.exit = e;
        done = true;
    });
    // The child's own timeout ends it; the extra margin covers the kill grace.
    loop_.run_until([&] { return done; }, timeout + std::chrono::seconds(10));
    for (const std::string& t : tail) {
        result.error_tail += (result.error_tail.empty() ? "" : "\n") + t;
    }
    if (!done) {
        result.exit.spawned = true;
        result.exit.timed_out = true;
    }
    return result;
}

std::string Rollout::remote(const std::string& host, const std::vector<std::string>& words) const {
    std::string out = substitute_host(options_.via, host);
    out += (out.empty() ? "" : " ") + shell_quote(options_.remote_failoverctl);
    for (const std::string& w : words) {
        out += " " + shell_quote(w);
    }
    return out;
}

std::optional<HostState> Rollout::query(const std::string& host, std::string& error) {
    std::vector<std::string> words{"status", "--json"};
    if (options_.remote_config) {
        words.insert(words.end(), {"--config", substitute_host(*options_.remote_config, host)});
    }
    const CommandResult r = run_shell(remote(host, words), options_.status_timeout, false);
    if (r.exit.exit_code == 3) {
        HostState s;
        s.host = host;
        s.node = host;
        error = "failoverd is not running";
        return s;
    }
    if (!r.ok()) {
        error = "status " + r.exit.describe(options_.status_timeout) +
                (r.error_tail.empty() ? "" : ": " + r.error_tail);
        return std::nullopt;
    }
    try {
        HostState s = host_state_of(host, json::parse(r.output));
        states_[host] = s;
        return s;
    } catch (const json::exception& e) {
        error = std::string("status output is not JSON: ") + e.what();
        return std::nullopt;
    }
}

bool Rollout::wait_until(const std::function<bool(std::string&)>& condition, Duration max_wait,
                         std::string& last) {
    const Instant deadline = clock() + max_wait;
    while (true) {
        if (condition(last)) {
            return true;
        }
        if (clock() >= deadline) {
            return false;
        }
        // Poll again after a second, or at the deadline; the loop sleeps in between.
        const Instant next = std::min(deadline, clock() + std::chrono::seconds(1));
        loop_.run_until([&] { return clock() >= next; },
                        next - clock() + std::chrono::milliseconds(5));
    }
}

bool Rollout::deploy(const std::string& host) {
    const std::string command = substitute_host(options_.deploy, host);
    line("deploy " + host + ": " + command);
    const Instant t0 = clock();
    const CommandResult r = run_shell(command, options_.deploy_timeout, true);
    const double took = seconds_of(clock() - t0);
    record(host, "deploy", r.ok(), took, r.exit.describe(options_.deploy_timeout));
    if (!r.ok()) {
        return fail(host, "deploy " + r.exit.describe(options_.deploy_timeout) + " after " +
                              format_seconds(took));
    }
    line("deploy " + host + ": ok (" + format_seconds(took) + ")");
    return true;
}

bool Rollout::gate(const std::string& host) {
    const Instant t0 = clock();
    const Duration wait = options_.check_wait;
    std::vector<std::string> words{"check", "--wait",
                                   std::to_string(static_cast<long long>(seconds_of(wait))) + "s"};
    if (options_.remote_config) {
        words.insert(words.end(), {"--config", substitute_host(*options_.remote_config, host)});
    }
    line("gate " + host + ": checks (up to " + format_seconds(seconds_of(wait)) + ")");
    const CommandResult checks =
        run_shell(remote(host, words), wait + std::chrono::seconds(30), false);
    double took = seconds_of(clock() - t0);
    if (!checks.ok()) {
        std::string report = last_round(checks.output);
        record(host, "checks", false, took, report);
        return fail(host, "checks did not pass within " + format_seconds(seconds_of(wait)) + " (" +
                              checks.exit.describe() + "):\n" +
                              (report.empty() ? checks.error_tail : report));
    }
    record(host, "checks", true, took, "");
    line("gate " + host + ": checks pass (" + format_seconds(took) + ")");

    const Duration left = std::max<Duration>(wait - (clock() - t0), std::chrono::seconds(30));
    std::string last;
    const bool back = wait_until(
        [&](std::string& why) {
            std::string error;
            const auto s = query(host, error);
            if (!s || !s->running) {
                why = s ? "failoverd not running" : error;
                return false;
            }
            why = s->describe_problems();
            return s->healthy();
        },
        left, last);
    took = seconds_of(clock() - t0);
    record(host, "daemon", back, took, last);
    if (!back) {
        return fail(host, "the daemon is not back healthy: " + last);
    }
    const HostState& s = states_[host];
    std::string roles;
    for (const auto& [instance, role] : s.roles) {
        roles += (roles.empty() ? "" : ", ") + instance + " " + role;
    }
    line("gate " + host + ": daemon healthy (" + roles + ", " + format_seconds(took) + ")");
    return true;
}

bool Rollout::hand_over(const std::string& from, const std::string& instance,
                        const std::vector<std::string>& candidates, std::string& to_host) {
    const Instant t0 = clock();
    // Re-read the candidates now: never hand over to a host whose checks fail. A healthy
    // candidate that is already MASTER took the instance by preemption (a higher priority back
    // from its update): that is the outcome asked for, and only the IP remains to wait for.
    std::string rejected;
    std::optional<HostState> target;
    bool taken = false;
    for (const std::string& host : candidates) {
        std::string error;
        const auto s = query(host, error);
        if (s && s->healthy() && s->roles.count(instance) &&
            (s->roles.at(instance) == "BACKUP" || s->is_master(instance))) {
            target = s;
            taken = s->is_master(instance);
            break;
        }
        rejected +=
            (rejected.empty() ? "" : "; ") + host + ": " +
            (s ? (s->healthy() ? instance + " is " +
                                     (s->roles.count(instance) ? s->roles.at(instance)
                                                               : std::string("not configured"))
                               : s->describe_problems())
               : error);
    }
    if (!target) {
        record(from, "handover " + instance, false, 0, rejected);
        return fail(from, "no updated, healthy Backup for " + instance + " (" + rejected + ")");
    }
    to_host = target->host;
    const std::string new_host = target->host;
    const std::string preempted = "handover " + instance + ": " + new_host + " took " + instance +
                                  " over on its own (preemption) before " + from +
                                  " handed it over";
    if (taken) {
        line(preempted);
    } else {
        line("handover " + instance + ": " + from + " -> " + new_host + " (node " + target->node +
             ")");
        std::vector<std::string> words{"handover", instance, "--to", target->node};
        if (options_.remote_config) {
            words.insert(words.end(), {"--config", substitute_host(*options_.remote_config, from)});
        }
        const CommandResult r = run_shell(remote(from, words), options_.status_timeout, false);
        if (!r.ok()) {
            // The same preemption can land between our read and the request: the old master
            // then refuses as BACKUP.
            std::string error;
            const auto now = query(new_host, error);
            if (!now || !now->is_master(instance)) {
                record(from, "handover " + instance, false, seconds_of(clock() - t0), r.error_tail);
                return fail(from, "handover of " + instance + " refused: " + r.exit.describe() +
                                      (r.error_tail.empty() ? "" : ": " + r.error_tail));
            }
            line(preempted);
        }
    }
    std::string last;
    const bool moved = wait_until(
        [&](std::string& why) {
            std::string error;
            const auto s = query(new_host, error);
            if (!s) {
                why = error;
                return false;
            }
            if (!s->is_master(instance)) {
                why = new_host + " is " +
                      (s->roles.count(instance) ? s->roles.at(instance) : std::string("?"));
                return false;
            }
            if (!s->holds(instance)) {
                why = new_host + " is MASTER, waiting for the provider to move the IP";
                return false;
            }
            return true;
        },
        options_.handover_wait, last);
    const double took = seconds_of(clock() - t0);
    record(from, "handover " + instance, moved, took, moved ? "to " + new_host : last);
    if (!moved) {
        return fail(from, "the IP of " + instance + " did not reach " + new_host + " within " +
                              format_seconds(seconds_of(options_.handover_wait)) + ": " + last);
    }
    line("handover " + instance + ": " + new_host + " is MASTER and holds " +
         states_[new_host].reserved_ips[instance] + " (" + format_seconds(took) + ")");
    return true;
}

int Rollout::run() {
    group_begin("plan: asking " + std::to_string(options_.hosts.size()) + " hosts for their state");
    std::vector<HostState> states;
    for (const std::string& host : options_.hosts) {
        std::string error;
        const auto s = query(host, error);
        if (!s || !s->running) {
            fail(host, "cannot read its state: " + (error.empty() ? "not running" : error));
            return kExitFailed;
        }
        std::string roles;
        for (const auto& [instance, role] : s->roles) {
            roles += (roles.empty() ? "" : ", ") + instance + " " + role;
        }
        line("  " + host + " (node " + s->node + "): " + roles +
             (s->healthy() ? "" : "; " + s->describe_problems()));
        states.push_back(*s);
    }
    const RolloutPlan plan = plan_rollout(states);
    if (plan.error) {
        fail(options_.hosts.front(), *plan.error);
        return kExitFailed;
    }
    std::string order;
    for (const std::string& h : plan.order) {
        order += (order.empty() ? "" : ", then ") + h;
        if (plan.handovers.count(h)) {
            order += " (after handing over";
            for (const std::string& i : plan.handovers.at(h)) {
                order += " " + i;
            }
            order += ")";
        }
    }
    line("plan: update " + order + (options_.failback ? ", then fail back" : ""));
    report_["plan"] = plan.order;
    group_end();
    if (options_.dry_run) {
        line("dry run: nothing changed");
        report_["ok"] = true;
        return kExitOk;
    }

    std::vector<std::string> updated;
    std::map<std::string, std::string> original_master;  // instance -> host
    for (const std::string& host : plan.order) {
        group_begin("update " + host);
        if (plan.handovers.count(host)) {
            for (const std::string& instance : plan.handovers.at(host)) {
                std::string to;
                if (!hand_over(host, instance, updated, to)) {
                    return kExitFailed;
                }
                original_master[instance] = host;
            }
        }
        if (!deploy(host) || !gate(host)) {
            return kExitFailed;
        }
        updated.push_back(host);
        group_end();
    }
    if (options_.failback) {
        group_begin("fail back");
        for (const auto& [instance, home] : original_master) {
            std::string current;
            for (const std::string& h : updated) {
                std::string error;
                const auto s = query(h, error);
                if (s && s->is_master(instance)) {
                    current = h;
                }
            }
            if (current.empty() || current == home) {
                line("fail back " + instance + ": already on " + home);
                continue;
            }
            std::string to;
            if (!hand_over(current, instance, {home}, to)) {
                return kExitFailed;
            }
        }
        group_end();
    }
    report_["ok"] = true;
    report_["updated"] = updated;
    report_["elapsed_seconds"] = elapsed();
    line("rollout done: " + std::to_string(updated.size()) + " hosts updated");
    return kExitOk;
}

}  // namespace

std::string rollout_usage() {
    std::ostringstream o;
    o << "Usage: failoverctl rollout --host H1 --host H2 [...] --deploy 'CMD' [options]\n"
         "\n"
         "Updates an HA group without moving the IP to an unhealthy node: Backups first, one at\n"
         "a time, each gated on `failoverctl check --wait` and its daemon being healthy; then\n"
         "each Master hands its instances to an updated, healthy Backup and is updated last.\n"
         "Stops at the first failed step, before the next host is touched.\n\n"
      << rollout_options();
    return o.str();
}

int rollout_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    po::variables_map vm;
    Options options;
    try {
        parse_command_line(args, rollout_options(), vm);
        if (vm.count("help")) {
            out << rollout_usage();
            return kExitOk;
        }
        if (vm.count("host") == 0 || vm.count("deploy") == 0) {
            throw po::error("--host (at least two) and --deploy are required");
        }
        options.hosts = vm["host"].as<std::vector<std::string>>();
        options.deploy = vm["deploy"].as<std::string>();
        if (vm.count("via")) {
            options.via = vm["via"].as<std::string>();
        }
        if (vm.count("remote-failoverctl")) {
            options.remote_failoverctl = vm["remote-failoverctl"].as<std::string>();
        }
        if (vm.count("remote-config")) {
            options.remote_config = vm["remote-config"].as<std::string>();
        }
        options.check_wait = duration_of(vm, "check-wait", options.check_wait);
        options.handover_wait = duration_of(vm, "handover-wait", options.handover_wait);
        options.deploy_timeout = duration_of(vm, "deploy-timeout", options.deploy_timeout);
        options.dry_run = vm["dry-run"].as<bool>();
        options.json = vm["json"].as<bool>();
        options.failback = vm["failback"].as<bool>();
    } catch (const po::error& e) {
        err << "failoverctl rollout: " << e.what() << "\n" << rollout_usage();
        return kExitUsage;
    }
    // With --json, stdout carries only the report.
    Rollout rollout(options, options.json ? err : out);
    const int code = rollout.run();
    if (options.json) {
        out << rollout.report().dump(2) << "\n";
    }
    return code;
}

}  // namespace failoverd::cli
