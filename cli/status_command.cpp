#include "cli/status_command.hpp"

#include <boost/program_options.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

#include "cli/check_command.hpp"
#include "daemon/config.hpp"
#include "daemon/shell/command_line.hpp"
#include "daemon/shell/control_socket.hpp"

namespace failoverd::cli {

namespace po = boost::program_options;
using nlohmann::json;

namespace {

constexpr Duration kRequestTimeout = std::chrono::seconds(5);

po::options_description options() {
    po::options_description desc("Options");
    // clang-format off
    desc.add_options()
        ("help,h", "show this help")
        ("json", po::bool_switch(), "print the daemon's status document as JSON")
        ("socket,s", po::value<std::string>()->value_name("PATH"),
         "control socket (default: [node] control_socket of the config, else "
         "/run/failoverd/control.sock)")
        ("config,c", po::value<std::string>()->value_name("FILE"),
         "config file to read control_socket from (default /etc/failoverd/failoverd.conf)");
    // clang-format on
    return desc;
}

std::optional<std::string> optional_string(const po::variables_map& vm, const char* key) {
    if (vm.count(key) == 0) {
        return std::nullopt;
    }
    return vm[key].as<std::string>();
}

std::string ago(const json& seconds) {
    if (!seconds.is_number()) {
        return "never";
    }
    const double s = seconds.get<double>();
    char buf[64];
    if (s < 1.0) {
        std::snprintf(buf, sizeof buf, "%.0f ms ago", s * 1000.0);
    } else if (s < 120.0) {
        std::snprintf(buf, sizeof buf, "%.1f s ago", s);
    } else if (s < 7200.0) {
        std::snprintf(buf, sizeof buf, "%.0f min ago", s / 60.0);
    } else {
        std::snprintf(buf, sizeof buf, "%.1f h ago", s / 3600.0);
    }
    return buf;
}

std::string uptime(double s) {
    const auto total = static_cast<long>(s);
    std::ostringstream out;
    if (total >= 86400) {
        out << total / 86400 << "d ";
    }
    if (total >= 3600) {
        out << (total % 86400) / 3600 << "h ";
    }
    if (total >= 60) {
        out << (total % 3600) / 60 << "m ";
    }
    out << total % 60 << "s";
    return out.str();
}

std::string text(const json& j, const char* key, const std::string& fallback = "") {
    const auto it = j.find(key);
    if (it == j.end() || !it->is_string()) {
        return fallback;
    }
    return it->get<std::string>();
}

std::uint64_t number(const json& j, const char* key) {
    const auto it = j.find(key);
    return it != j.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
}

// "  IP holder: droplet 3000000001 (node-a, this node); settled, read 3.2 s ago"
void print_holder(const json& p, std::ostream& out) {
    out << "  IP holder: ";
    if (!p.contains("holder") || !p["holder"].is_string()) {
        // Read, but the reply did not name a holder (a DigitalOcean token without droplet:read).
        const bool read = p.contains("last_read_s_ago") && p["last_read_s_ago"].is_number();
        out << (read ? "unknown (the provider's reply does not say)" : "not read yet");
    } else if (p["holder"].get<std::string>().empty()) {
        out << "nobody (unassigned)";
    } else {
        out << p["holder"].get<std::string>();
        const std::string node = text(p, "holder_node");
        if (!node.empty() || p.value("holder_is_self", false)) {
            out << " (" << node << (p.value("holder_is_self", false) ? ", this node" : "") << ")";
        }
    }
    if (p.value("holder_locked", false)) {
        out << ", locked by a pending action";
    }
    out << "; " << text(p, "phase", "?");
    if (p.contains("last_read_s_ago") && p["last_read_s_ago"].is_number()) {
        out << ", read " << ago(p["last_read_s_ago"]);
    }
    if (!text(p, "action_id").empty()) {
        out << ", action " << text(p, "action_id");
    }
    out << "; moves " << number(p, "moves_confirmed") << ", calls " << number(p, "calls")
        << ", failures " << number(p, "failures") << "\n";
    if (!text(p, "note").empty()) {
        out << "  provider note: " << text(p, "note") << "\n";
    }
    if (!text(p, "last_error").empty()) {
        out << "  provider error: " << text(p, "last_error") << "\n";
    }
}

}  // namespace

std::string control_socket_path(const std::optional<std::string>& socket,
                                const std::optional<std::string>& config) {
    if (socket) {
        return *socket;
    }
    const std::string path = config.value_or(kDefaultConfigPath);
    if (config || std::filesystem::exists(path)) {
        try {
            return load_config(path, ConfigScope::Checks).node.control_socket;
        } catch (const std::exception&) {
            if (config) {
                throw;  // asked for explicitly: its errors matter
            }
        }
    }
    return kDefaultControlSocket;
}

std::optional<json> ask_daemon(const std::string& socket, const json& request, std::ostream& err,
                               int& exit_code) {
    try {
        json answer = control_request(socket, request, kRequestTimeout);
        if (!answer.is_object()) {
            err << "failoverctl: unexpected answer from failoverd\n";
            exit_code = kExitFailed;
            return std::nullopt;
        }
        return answer;
    } catch (const ControlError& e) {
        err << "failoverctl: " << e.what() << "\n";
        exit_code = e.kind() == ControlError::Kind::NotRunning ? kExitNotRunning : kExitFailed;
        return std::nullopt;
    }
}

std::string status_usage() {
    std::ostringstream out;
    out << "Usage: failoverctl status [--json] [--socket PATH | --config FILE]\n\n"
           "Shows each instance's role, priority, master, last transition, checks and\n"
           "counters as the running failoverd sees them. Exit 3 when it is not running.\n\n"
        << options();
    return out.str();
}

int status_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    po::variables_map vm;
    try {
        parse_command_line(args, options(), vm);
    } catch (const po::error& e) {
        err << "failoverctl status: " << e.what() << "\n" << status_usage();
        return kExitUsage;
    }
    if (vm.count("help")) {
        out << status_usage();
        return kExitOk;
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
    const auto answer = ask_daemon(socket, {{"command", "status"}}, err, exit_code);
    if (!answer) {
        return exit_code;
    }
    if (!answer->value("ok", false) || !answer->contains("status")) {
        err << "failoverctl status: " << text(*answer, "error", "failed") << "\n";
        return kExitFailed;
    }
    if (vm["json"].as<bool>()) {
        out << (*answer)["status"].dump(2) << "\n";
    } else {
        print_status((*answer)["status"], out);
    }
    return kExitOk;
}

void print_status(const json& s, std::ostream& out) {
    const json empty = json::object();
    out << "node " << text(s, "node", "?") << ": " << text(s, "phase", "?") << ", up "
        << uptime(s.value("uptime_seconds", 0.0)) << ", pid " << s.value("pid", 0L)
        << ", maintenance " << (s.value("maintenance", false) ? "ON" : "off") << "\n";
    for (const json& i : s.value("instances", json::array())) {
        out << "\ninstance " << text(i, "name") << ": " << text(i, "role");
        out << ", priority " << i.value("priority", 0) << " (configured "
            << i.value("configured_priority", 0) << ")";
        const std::string master = text(i, "master");
        out << ", master " << (master.empty() ? "none known" : master);
        if (!text(i, "reserved_ip").empty()) {
            out << ", reserved IP " << text(i, "reserved_ip");
        }
        out << "\n";
        if (i.contains("fault_reason") && i["fault_reason"].is_string()) {
            out << "  fault: " << i["fault_reason"].get<std::string>() << "\n";
        }
        const json& t = i.contains("last_transition") ? i["last_transition"] : empty;
        if (t.is_object()) {
            out << "  last transition " << ago(t["seconds_ago"]) << ": " << text(t, "from")
                << " -> " << text(t, "to") << ": " << text(t, "reason") << "\n";
        }
        out << "  health: " << text(i, "health") << "\n";
        if (i.contains("provider") && i["provider"].is_object()) {
            print_holder(i["provider"], out);
        }
        for (const json& c : i.value("checks", json::array())) {
            out << "  check " << text(c, "name") << ": " << text(c, "state");
            if (!text(c, "reason").empty()) {
                out << " (" << text(c, "reason") << ")";
            }
            if (c.value("weight", 0) != 0) {
                out << ", weight " << c.value("weight", 0);
            }
            out << "\n";
        }
        for (const json& p : i.value("peers", json::array())) {
            out << "  peer " << text(p, "node") << ": " << text(p, "state") << ", priority "
                << p.value("priority", 0) << ", heard " << ago(p["seconds_since_heard"]) << "\n";
        }
        const json& a = i.contains("adverts") ? i["adverts"] : empty;
        const json& h = i.contains("hooks") ? i["hooks"] : empty;
        out << "  adverts sent " << number(a, "sent") << ", received " << number(a, "received")
            << ", ignored " << number(a, "ignored");
        if (number(a, "not_fresh") != 0) {
            out << ", not fresh " << number(a, "not_fresh");
        }
        out << "; hooks run " << number(h, "runs") << ", failed " << number(h, "failures")
            << ", timed out " << number(h, "timeouts");
        if (number(h, "dropped") != 0) {
            out << ", dropped " << number(h, "dropped");
        }
        if (number(h, "queued") != 0) {
            out << ", queued " << number(h, "queued");
        }
        out << "\n";
    }
    const json& a = s.contains("adverts") ? s["adverts"] : empty;
    out << "\nadverts: sent " << number(a, "sent") << ", received " << number(a, "received")
        << ", not fresh " << number(a, "not_fresh") << ", dropped " << number(a, "dropped_total");
    if (a.contains("dropped") && a["dropped"].is_object()) {
        std::string reasons;
        for (const auto& [reason, count] : a["dropped"].items()) {
            if (count.is_number() && count.get<std::uint64_t>() != 0) {
                reasons += (reasons.empty() ? "" : ", ") + reason + " " +
                           std::to_string(count.get<std::uint64_t>());
            }
        }
        if (!reasons.empty()) {
            out << " (" << reasons << ")";
        }
    }
    out << "\n";
    std::string mine;
    for (const json& i : s.value("instances", json::array())) {
        mine += (mine.empty() ? "" : ", ") + text(i, "name");
    }
    for (const json& f : a.value("unknown_instances", json::array())) {
        out << "  " << text(f, "peer") << " advertises instance '" << text(f, "instance")
            << "', not configured here (this node: " << (mine.empty() ? "none" : mine)
            << "): " << number(f, "adverts") << " adverts dropped\n";
    }
    const json& tr = s.contains("transport") ? s["transport"] : empty;
    out << "transport: listening on " << text(tr, "listen") << ", send errors "
        << number(tr, "send_errors") << ", receive errors " << number(tr, "receive_errors")
        << ", from unknown sources " << number(tr, "dropped_unknown_source") << "\n";
    std::map<std::string, json> auth;
    for (const json& p : s.value("peers", json::array())) {
        auth[text(p, "address")] = p;
    }
    for (const json& p : tr.value("peers", json::array())) {
        out << "  peer " << text(p, "configured") << " (" << text(p, "address") << "): sent "
            << number(p, "sent") << ", send errors " << number(p, "send_errors") << ", received "
            << number(p, "received") << ", heard " << ago(p["seconds_since_heard"]);
        const auto a = auth.find(text(p, "address"));
        if (a != auth.end()) {
            out << ", verified " << ago(a->second["last_verified_s_ago"]);
            if (number(a->second, "bad_mac") != 0) {
                out << ", bad MAC " << number(a->second, "bad_mac");
            }
        }
        out << "\n";
    }
    const json& pr = s.contains("provider") ? s["provider"] : empty;
    if (pr.is_object() && text(pr, "type", "none") != "none") {
        out << "provider: " << text(pr, "type") << ", this node is "
            << (text(pr, "type") == "digitalocean" ? "droplet " : "")
            << text(pr, "identity", "(not resolved)") << ", calls " << number(pr, "calls")
            << ", failures " << number(pr, "failures");
        if (!text(pr, "peers_from_tag").empty()) {
            out << "; peers from tag " << text(pr, "peers_from_tag") << ": "
                << pr.value("tag_peers", json::array()).size();
            const json& d = pr.contains("discovery") ? pr["discovery"] : empty;
            if (!text(d, "last_error").empty()) {
                out << " (last discovery failed: " << text(d, "last_error") << ")";
            }
        }
        out << "\n";
    }
    const json& ctl = s.contains("control") ? s["control"] : empty;
    const std::uint64_t refused = number(ctl, "rejected_busy") + number(ctl, "rejected_per_uid");
    const std::uint64_t evicted = number(ctl, "evicted_idle") + number(ctl, "evicted_not_reading") +
                                  number(ctl, "evicted_served");
    const std::uint64_t timed_out = number(ctl, "timeouts") +
                                    number(ctl, "first_request_timeouts") +
                                    number(ctl, "closed_not_reading");
    if (refused + evicted + timed_out != 0) {
        out << "control socket: " << number(ctl, "open") << " open, refused " << refused
            << ", evicted " << evicted << ", timed out " << timed_out << " (not reading "
            << number(ctl, "closed_not_reading") << ")\n";
    }
    const json& r = s.contains("reloads") ? s["reloads"] : empty;
    if (number(r, "total") != 0) {
        out << "reloads: " << number(r, "total") << ", rejected " << number(r, "failed");
        if (r.contains("last_error") && r["last_error"].is_string()) {
            out << " (last: " << r["last_error"].get<std::string>() << ")";
        }
        out << "\n";
    }
}

}  // namespace failoverd::cli
