#include "daemon/shell/daemon.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <syslog.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>

#include "daemon/shell/logging.hpp"
#include "health/check_runner.hpp"
#include "health/docker_probe.hpp"

namespace failoverd {

namespace {

namespace fs = std::filesystem;

constexpr const char* kMaintenanceFile = "maintenance";
constexpr const char* kBootEpochFile = "boot_epoch";
// Start-up waits this long for the metadata service and the tag's droplet list (retries are
// the provider's); a reload's re-discovery gets the same.
constexpr Duration kIdentityDeadline = std::chrono::seconds(60);
// Repeated provider failures of one kind: one log line per instance per period.
constexpr Duration kProviderLogPeriod = std::chrono::minutes(1);

std::uint64_t random_u64() {
    std::uint64_t value = 0;
    if (getrandom(&value, sizeof value, 0) != static_cast<ssize_t>(sizeof value)) {
        throw std::runtime_error(std::string("getrandom: ") + std::strerror(errno));
    }
    return value;
}

std::uint64_t realtime_ns() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

// Writes `text` to `path` through a temporary file, fsync and rename, so a crash leaves the
// old or the new content.
bool write_file_atomically(const fs::path& path, const std::string& text, std::string& error) {
    const fs::path tmp = path.string() + ".tmp";
    const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        error = "cannot write " + tmp.string() + ": " + std::strerror(errno);
        return false;
    }
    const bool ok =
        write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
    const int e = errno;
    close(fd);
    if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
        error = "cannot write " + path.string() + ": " + std::strerror(ok ? errno : e);
        unlink(tmp.c_str());
        return false;
    }
    return true;
}

void ensure_state_dir(const std::string& dir) {
    std::error_code ec;
    if (!fs::exists(dir, ec)) {
        fs::create_directories(dir, ec);
        if (ec) {
            throw std::runtime_error("cannot create state_dir " + dir + ": " + ec.message());
        }
        chmod(dir.c_str(), 0700);
    }
}

double seconds_between(Instant later, Instant earlier) {
    return seconds(later - earlier);
}

double milliseconds_of(Duration d) {
    return std::chrono::duration<double, std::milli>(d).count();
}

std::string hook_role(Role role) {
    // A transition to Init comes from Shutdown (or a removed instance): hooks know it as STOP,
    // keepalived's word. As an old role, Init stays INIT (the start).
    return role == Role::Init ? "STOP" : std::string(to_string(role));
}

std::string describe_signal(int signo) {
    const char* name = sigabbrev_np(signo);
    return name != nullptr ? std::string("SIG") + name : std::to_string(signo);
}

bool same_endpoint(const Endpoint& a, const Endpoint& b) {
    return a.host == b.host && a.port == b.port;
}

// Settings a reload cannot change in place: the daemon's identity, sockets and provider.
std::vector<std::string> fixed_changes(const Config& now, const Config& next) {
    const ProviderConfig& p = now.provider;
    const ProviderConfig& q = next.provider;
    std::vector<std::string> out;
    if (now.node.name != next.node.name) {
        out.emplace_back("[node] name");
    }
    if (!same_endpoint(now.node.listen, next.node.listen)) {
        out.emplace_back("[node] listen");
    }
    if (now.node.control_socket != next.node.control_socket) {
        out.emplace_back("[node] control_socket");
    }
    if (now.node.state_dir != next.node.state_dir) {
        out.emplace_back("[node] state_dir");
    }
    if (p.type != q.type) {
        out.emplace_back("[provider] type");
    }
    if (p.token_file != q.token_file) {
        out.emplace_back("[provider] token_file");
    }
    if (p.droplet_id != q.droplet_id) {
        out.emplace_back("[provider] droplet_id");
    }
    if (p.api_base_url != q.api_base_url || p.metadata_base_url != q.metadata_base_url ||
        p.ca_file != q.ca_file) {
        out.emplace_back("[provider] api_base_url, metadata_base_url or ca_file");
    }
    if (p.exec_command != q.exec_command || p.request_timeout != q.request_timeout) {
        out.emplace_back("[provider] command or request_timeout");
    }
    return out;
}

std::string join_endpoints(const std::vector<Endpoint>& endpoints) {
    std::string out;
    for (const Endpoint& e : endpoints) {
        out += (out.empty() ? "" : ", ") + e.to_string();
    }
    return out.empty() ? "none" : out;
}

bool same_endpoints(const std::vector<Endpoint>& a, const std::vector<Endpoint>& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(), same_endpoint);
}

// A note or error without its changing tail ("... reading again in 1.73 s"), so a retry that
// only waits a different time is not a change worth a log line.
std::string stem(const std::string& text) {
    return text.substr(0, text.find(" in "));
}

// A datagram dropped for one of these reasons had a MAC that verified with our key.
bool verified_before_drop(DropReason r) {
    switch (r) {
        case DropReason::BadField:
        case DropReason::UnknownInstance:
        case DropReason::Replay:
        case DropReason::StaleEpoch:
        case DropReason::FromSelf:
        case DropReason::TooManySenders:
            return true;
        default:
            return false;
    }
}

// A docker check's event stream in `failoverctl status`.
nlohmann::json docker_events_json(const health::DockerProbe& probe) {
    const health::DockerEventStream* stream = probe.event_stream();
    if (stream == nullptr) {
        return "off";
    }
    using State = health::DockerEventStream::State;
    const char* state = stream->state() == State::Up     ? "connected"
                        : stream->state() == State::Down ? "down"
                                                         : "connecting";
    nlohmann::json j = {{"stream", state},
                        {"socket", stream->socket_path()},
                        {"reconnects", stream->reconnects()},
                        {"received", stream->events_received()},
                        {"matched", probe.events_matched()},
                        {"runs", probe.event_runs()}};
    j["error"] = stream->down_reason().empty() ? nlohmann::json(nullptr)
                                               : nlohmann::json(stream->down_reason());
    return j;
}

}  // namespace

NodeSpec node_spec_of(const Config& config, const std::string& provider_id,
                      std::vector<std::uint8_t> hmac_key, std::uint64_t boot_epoch,
                      bool maintenance, std::uint64_t seed) {
    NodeSpec spec;
    spec.node_name = config.node.name;
    spec.provider_id = provider_id;
    spec.boot_epoch = boot_epoch;
    spec.hmac_key = std::move(hmac_key);
    spec.advert_interval = config.cluster.advert_interval;
    spec.provider_enabled = config.provider.type != ProviderType::None;
    spec.reconcile_interval = config.provider.reconcile_interval;
    spec.seed = seed;
    spec.maintenance = maintenance;
    for (const InstanceConfig& i : config.instances) {
        InstanceSpec is;
        is.name = i.name;
        is.reserved_ip = i.reserved_ip;
        is.priority = i.priority;
        is.preempt = i.preempt;
        is.preempt_delay = i.preempt_delay;
        is.advert_interval = i.advert_interval;
        is.checks = i.checks;
        for (const std::string& name : i.checks) {
            if (const CheckConfig* c = config.find_check(name)) {
                spec.checks[name] = health::CheckPolicy{c->rise, c->fall, c->weight};
            }
        }
        spec.instances.push_back(std::move(is));
    }
    return spec;
}

std::vector<std::uint8_t> read_advert_key(const Config& config) {
    const std::string& path = config.cluster.auth_key_file;
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        if (config.cluster.peers.empty() && config.cluster.peers_from_tag.empty()) {
            std::vector<std::uint8_t> key(32);
            if (getrandom(key.data(), key.size(), 0) != static_cast<ssize_t>(key.size())) {
                throw std::runtime_error(std::string("getrandom: ") + std::strerror(errno));
            }
            return key;
        }
        throw std::runtime_error("cannot read auth_key_file " + path + ": " + std::strerror(errno));
    }
    std::vector<std::uint8_t> key((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
    if (key.size() < 16) {
        throw std::runtime_error("auth_key_file " + path + " holds " + std::to_string(key.size()) +
                                 " bytes; at least 16 are needed (head -c 32 /dev/urandom)");
    }
    return key;
}

std::uint64_t next_boot_epoch(const std::string& state_dir) {
    const fs::path file = fs::path(state_dir) / kBootEpochFile;
    std::uint64_t last = 0;
    {
        std::ifstream in(file);
        in >> last;
    }
    const std::uint64_t epoch = std::max(realtime_ns(), last + 1);
    std::string error;
    if (!write_file_atomically(file, std::to_string(epoch) + "\n", error)) {
        spdlog::warn("ignoring: {}; the boot epoch follows the wall clock only", error);
    }
    return epoch;
}

Daemon::Daemon(Config config, DaemonOptions options)
    : config_(std::move(config)),
      options_(options),
      curl_(loop_),
      drop_log_(),
      provider_log_(kProviderLogPeriod) {
    started_at_ = loop_.now();
    ensure_state_dir(config_.node.state_dir);
    boot_epoch_ = next_boot_epoch(config_.node.state_dir);
    seed_ = random_u64();
    key_ = read_advert_key(config_);

    for (const int signo : {SIGTERM, SIGINT}) {
        signals_.push_back(loop_.add_signal(signo, [this](const signalfd_siginfo& info) {
            stop("received " + describe_signal(static_cast<int>(info.ssi_signo)));
        }));
    }
    signals_.push_back(loop_.add_signal(SIGHUP, [this](const signalfd_siginfo&) { reload(); }));

    transport_ = std::make_unique<UdpTransport>(
        loop_, config_.node.listen,
        [this](std::span<const std::uint8_t> bytes, std::size_t peer, const SocketAddress& from) {
            on_datagram(bytes, peer, from);
        });
    transport_->set_peers(config_.cluster.peers);  // tag peers join once they are known
    for (const InstanceConfig& i : config_.instances) {
        instance_ips_[i.name] = i.reserved_ip;
    }

    options_.hooks.kill_grace = std::min(options_.hooks.kill_grace, options_.shutdown_hook_bound);
    hooks_ = std::make_unique<HookRunner>(loop_, config_.node.name, options_.hooks);
    configure_hooks(config_);

    probes_ = std::make_unique<health::ProbeRunner>(
        loop_, Rng(seed_ ^ 0x5eed), [this](const std::string& name, const health::ProbeResult& r) {
            on_probe_result(name, r);
        });
    add_probes(config_, *probes_);

    core_timer_ = Timer(loop_, [this] { on_core_timer(); });
    stop_timer_ = Timer(loop_, [this] {
        spdlog::warn("hooks still running {} after the stop: terminating them",
                     format_duration(options_.shutdown_hook_bound));
        hooks_->terminate_all();
        exit_timer_.arm_after(options_.hooks.kill_grace + std::chrono::milliseconds(500));
    });
    exit_timer_ = Timer(loop_, [this] { finish_stop(); });

    control_ = std::make_unique<ControlServer>(
        loop_, config_.node.control_socket,
        [this](const nlohmann::json& request) { return on_control(request); });
}

Daemon::~Daemon() = default;

void Daemon::configure_hooks(const Config& config) {
    for (const InstanceConfig& i : config.instances) {
        hooks_->configure(i.name, HookCommands::from(i), i.reserved_ip);
    }
    for (const InstanceConfig& old : config_.instances) {
        if (config.find_instance(old.name) == nullptr) {
            hooks_->remove(old.name);
        }
    }
}

void Daemon::add_probes(const Config& config, health::ProbeRunner& runner) {
    for (const InstanceConfig& i : config.instances) {
        for (const std::string& name : i.checks) {
            const CheckConfig* check = config.find_check(name);
            if (check == nullptr || runner.contains(name)) {
                continue;
            }
            try {
                auto probe = health::make_probe(*check, loop_, curl_);
                if (auto* docker = dynamic_cast<health::DockerProbe*>(probe.get());
                    docker != nullptr && check->docker_events) {
                    // The runner owns the probe, so the probe never outlives this callback.
                    docker->watch_events(loop_, [&runner, name] { runner.run_now(name); });
                }
                runner.add(name, std::move(probe), health::schedule_of(*check));
            } catch (const std::exception& e) {
                throw std::runtime_error("check " + name + ": " + e.what());
            }
        }
    }
}

int Daemon::run() {
    start();
    const int r = loop_.run();
    if (r < 0) {
        spdlog::critical("event loop failed: {}", std::strerror(-r));
        return 1;
    }
    return r;
}

void Daemon::start() {
    const bool watchdog = notify_.enable_watchdog(loop_);
    spdlog::info("failoverd {} starting as node {}: {}{}", FAILOVERD_VERSION, config_.node.name,
                 config_.summary(), watchdog ? "; systemd watchdog on" : "");
    if (config_.provider.type == ProviderType::None) {
        start_health_round();
        return;
    }
    const ProviderConfig& p = config_.provider;
    if (p.type == ProviderType::DigitalOcean && p.droplet_id == "auto") {
        notify_.status("starting: resolving droplet id from " + p.metadata_base_url);
    } else if (!config_.cluster.peers_from_tag.empty()) {
        notify_.status("starting: discovering peers from tag " + config_.cluster.peers_from_tag);
    } else {
        notify_.status("starting: provider " + to_string(p.type));
    }
    ++discoveries_;
    resolve_provider_identity(config_, loop_, curl_, kIdentityDeadline,
                              [this](std::optional<ProviderIdentity> identity, std::string error) {
                                  on_identity(std::move(identity), error);
                              });
}

void Daemon::fail_start(const std::string& why) {
    spdlog::critical("cannot start: {}", why);
    start_error_ = why;
    notify_.status("failed: " + why);
    exiting_ = true;
    loop_.exit(1);
}

void Daemon::on_identity(std::optional<ProviderIdentity> identity, const std::string& error) {
    if (phase_ != Phase::Starting || exiting_) {
        return;  // stopped while resolving
    }
    const Instant now = loop_.now();
    last_discovery_at_ = now;
    if (!identity) {
        ++discoveries_failed_;
        last_discovery_error_ = error;
        fail_start(error);
        return;
    }
    identity_ = std::move(*identity);
    if (config_.provider.type == ProviderType::Exec && identity_.provider_id.empty()) {
        identity_.provider_id = config_.node.name;  // exec: the node is known by its name
    }
    try {
        if (!config_.cluster.peers_from_tag.empty()) {
            transport_->set_peers(all_peers(config_));
        }
        provider_ = make_provider(config_, loop_, curl_, identity_.provider_id);
    } catch (const std::exception& e) {
        fail_start(e.what());
        return;
    }
    if (provider_ == nullptr) {
        fail_start("provider " + to_string(config_.provider.type) + " could not be created");
        return;
    }
    spdlog::info("provider {}: this node is {} {} (resolved in {})",
                 to_string(config_.provider.type),
                 config_.provider.type == ProviderType::DigitalOcean ? "droplet" : "node",
                 identity_.provider_id, format_duration(now - started_at_));
    if (!config_.cluster.peers_from_tag.empty()) {
        spdlog::info("peers from tag {}: {}", config_.cluster.peers_from_tag,
                     join_endpoints(identity_.tag_peers));
    }
    start_health_round();
}

void Daemon::start_health_round() {
    notify_.status("starting: first health round");
    if (probes_->size() == 0) {
        loop_.post([this] { start_node(); });
    } else {
        probes_->run_once_all([this] { start_node(); });
    }
}

void Daemon::start_node() {
    if (phase_ != Phase::Starting) {
        return;
    }
    const Instant now = loop_.now();
    const bool maintenance = fs::exists(fs::path(config_.node.state_dir) / kMaintenanceFile);
    NodeSpec spec =
        node_spec_of(config_, identity_.provider_id, key_, boot_epoch_, maintenance, seed_);
    for (const ProbeCompleted& first : first_round_) {
        spec.initial_results[first.check] = first.result;
    }
    first_round_.clear();
    node_ = std::make_unique<Node>(std::move(spec), now);
    phase_ = Phase::Running;
    after_input();
    probes_->start();
    notify_.ready(status_line());
    spdlog::info("failoverd ready: listening on {}, {} peer(s), control socket {}{}: {}",
                 transport_->local_address().to_string(), transport_->peers().size(),
                 config_.node.control_socket, maintenance ? ", in maintenance" : "", status_line());
}

std::vector<Endpoint> Daemon::all_peers(const Config& config) const {
    std::vector<Endpoint> out = config.cluster.peers;
    for (const Endpoint& e : identity_.tag_peers) {
        const bool listed = std::any_of(out.begin(), out.end(),
                                        [&](const Endpoint& s) { return same_endpoint(s, e); });
        if (!listed) {
            out.push_back(e);
        }
    }
    return out;
}

void Daemon::after_input(bool only_if_acted) {
    if (!node_) {
        return;
    }
    const std::vector<Action> actions = node_->take_actions();
    for (const Action& action : actions) {
        execute(action);
    }
    if (const auto deadline = node_->next_deadline()) {
        core_timer_.arm_at(*deadline);
    } else {
        core_timer_.disarm();
    }
    // The work below rebuilds the status, O(instances). An advert that changes nothing (the
    // steady state: one per instance and interval) asks for no action and needs none of it.
    if (actions.empty() && only_if_acted) {
        return;
    }
    if (provider_) {
        log_provider_changes();
    }
    if (phase_ == Phase::Running) {
        notify_.status(status_line());
    }
}

void Daemon::log_provider_changes() {
    const Instant now = loop_.now();
    const std::string& self = identity_.provider_id;
    for (const InstanceStatus& i : node_->status().instances) {
        if (!i.provider_enabled) {
            continue;
        }
        const ReconcilerStatus& r = i.provider;
        ReconcileSeen& seen = reconcile_seen_[i.name];
        const std::string what = "[" + i.name + "] reserved IP " + i.reserved_ip;

        if (r.holder_known && (!seen.holder_known || r.observed_holder != seen.holder)) {
            if (!self.empty() && r.observed_holder == self) {
                // The first time in a mastership term: how long the failover took here.
                std::string after;
                if (i.role == Role::Master && i.last_transition &&
                    i.last_transition->to == Role::Master &&
                    seen.claimed_term != i.last_transition->at) {
                    seen.claimed_term = i.last_transition->at;
                    after = ", " + format_duration(now - i.last_transition->at) +
                            " after becoming MASTER";
                }
                const bool moved = r.moves_confirmed > seen.moves_logged;
                seen.moves_logged = r.moves_confirmed;
                spdlog::info(
                    "{} {} held by this node ({} {}){}", what, moved ? "now" : "already",
                    config_.provider.type == ProviderType::DigitalOcean ? "droplet" : "node", self,
                    after);
            } else if (seen.holder_known && seen.holder == self && i.role == Role::Master) {
                spdlog::warn("{} moved away from this node to {}", what,
                             holder_name(r.observed_holder, i));
            } else {
                spdlog::info("{} is held by {}", what, holder_name(r.observed_holder, i));
            }
        }
        if (!r.note.empty() && stem(r.note) != seen.note) {
            const bool holder_unknown = r.last_read_at && !r.holder_known;
            spdlog::log(r.phase == ReconcilePhase::Yielding || holder_unknown ? spdlog::level::warn
                                                                              : spdlog::level::info,
                        "{}: {}", what, r.note);
        }
        if (!r.action_id.empty() && r.action_id != seen.action_id) {
            spdlog::info("{}: assign requested (action {})", what, r.action_id);
        }
        // Failed calls are logged by the provider itself (rate-limited, with the request id);
        // what the core concludes on its own, an action that errored, is logged here.
        if (r.last_error != seen.last_error && r.last_error.rfind("action ", 0) == 0) {
            provider_log_.log(now, spdlog::level::warn, i.name + ":action-errored",
                              what + ": " + r.last_error);
        }
        seen.holder = r.observed_holder;
        seen.holder_known = r.holder_known;
        seen.action_id = r.action_id;
        seen.note = stem(r.note);
        seen.last_error = r.last_error;
    }
}

std::string Daemon::holder_name(const std::string& holder, const InstanceStatus& i) const {
    if (holder.empty()) {
        return "nobody";
    }
    const char* kind =
        config_.provider.type == ProviderType::DigitalOcean ? "droplet " : "provider id ";
    if (holder == identity_.provider_id) {
        return kind + holder + " (this node)";
    }
    for (const PeerInfo& p : i.peers) {
        if (p.provider_id == holder) {
            return kind + holder + " (" + p.node_name + ")";
        }
    }
    return kind + holder;
}

void Daemon::execute(const Action& action) {
    if (const auto* send = std::get_if<SendAdvert>(&action)) {
        const std::size_t peers = transport_->peers().size();
        const std::size_t failed = peers - transport_->send_to_all(send->bytes);
        // The core hears of every send that failed and of the first clean one after them (a
        // master that could not send may have lost its IP meanwhile); clean sends after clean
        // ones are the steady state and go unreported.
        const bool was_failing = sends_failing_.contains(send->instance);
        if (failed > 0 || was_failing) {
            if (failed > 0) {
                sends_failing_.insert(send->instance);
            } else {
                sends_failing_.erase(send->instance);
            }
            AdvertSendResult result{send->instance, peers, failed};
            loop_.post([this, result] {
                if (node_) {
                    node_->handle(result, loop_.now());
                    after_input(true);
                }
            });
        }
    } else if (const auto* notice = std::get_if<LogNotice>(&action)) {
        const auto ip = instance_ips_.find(notice->instance);
        spdlog::info("[{}] reserved IP {}: {}", notice->instance,
                     ip == instance_ips_.end() ? "?" : ip->second, notice->text);
    } else if (const auto* hook = std::get_if<RunHook>(&action)) {
        hooks_->on_transition(HookEvent{hook->instance, hook_role(hook->to),
                                        std::string(to_string(hook->from)), hook->reason});
    } else if (const auto* t = std::get_if<Transitioned>(&action)) {
        log_transition(*t);
        if (provider_) {
            const auto ip = instance_ips_.find(t->instance);
            provider_->on_role(t->instance, ip == instance_ips_.end() ? "" : ip->second, t->to);
        }
    } else if (const auto* call = std::get_if<CallProvider>(&action)) {
        if (provider_) {
            provider_->call(*call,
                            [this](ProviderReplied reply) { on_provider_reply(std::move(reply)); });
            return;
        }
        // Without a provider the Node is built with it disabled, so this does not happen; if
        // it does, answer as a refusal rather than pretend a cloud moved anything.
        ++provider_calls_refused_;
        spdlog::error("[{}] provider call {} refused: no provider is configured", call->instance,
                      to_string(call->op));
        ProviderReplied reply;
        reply.instance = call->instance;
        reply.request_id = call->request_id;
        reply.outcome = ProviderOutcome::Rejected;
        reply.detail = "no provider is configured";
        loop_.post([this, reply] {
            if (node_) {
                node_->handle(reply, loop_.now());
                after_input();
            }
        });
    }
}

void Daemon::on_provider_reply(ProviderReplied reply) {
    if (!node_ || phase_ != Phase::Running) {
        ++provider_replies_after_stop_;
        return;
    }
    node_->handle(reply, loop_.now());
    after_input();
}

void Daemon::log_transition(const Transitioned& t) {
    const std::string line = "[" + t.instance + "] " + std::string(to_string(t.from)) + " -> " +
                             std::string(to_string(t.to)) + ": " + t.reason;
    if (started_by_systemd() && spdlog::default_logger()->should_log(spdlog::level::info)) {
        // Journal fields let `journalctl FAILOVERD_INSTANCE=web` pick one instance's history.
        sd_journal_send("MESSAGE=%s", line.c_str(), "PRIORITY=%d", LOG_NOTICE,
                        "SYSLOG_IDENTIFIER=failoverd", "FAILOVERD_INSTANCE=%s", t.instance.c_str(),
                        "FAILOVERD_ROLE=%s", std::string(to_string(t.to)).c_str(),
                        "FAILOVERD_OLD_ROLE=%s", std::string(to_string(t.from)).c_str(), nullptr);
        return;
    }
    spdlog::info("{}", line);
}

void Daemon::on_datagram(std::span<const std::uint8_t> bytes, std::size_t peer,
                         const SocketAddress& from) {
    if (!node_ || phase_ == Phase::Starting) {
        ++datagrams_before_start_;
        return;
    }
    const Instant now = loop_.now();
    const auto before = node_->drop_counts();
    const std::uint64_t accepted_before = node_->adverts_accepted();
    const std::uint64_t not_fresh_before = node_->adverts_not_fresh();
    node_->handle(
        AdvertReceived{std::vector<std::uint8_t>(bytes.begin(), bytes.end()), from.to_string()},
        now);
    bool verified = node_->adverts_accepted() != accepted_before;
    bool bad_mac = false;
    const auto& after = node_->drop_counts();
    for (std::size_t i = 0; i < kDropReasonCount; ++i) {
        if (after[i] != before[i]) {
            const auto reason = static_cast<DropReason>(i);
            verified = verified || verified_before_drop(reason);
            bad_mac = bad_mac || reason == DropReason::BadMac;
            std::string text(to_string(reason));
            if (const auto& unknown = node_->last_unknown_instance();
                reason == DropReason::UnknownInstance && unknown) {
                text += ": " + unknown->first + " advertises instance '" + unknown->second +
                        "', not configured here (instance names must match on every node)";
            }
            drop_log_.log(now, spdlog::level::warn, "drop:" + std::string(to_string(reason)),
                          "dropping advert from " + from.to_string() + ": " + text);
        }
    }
    if (node_->adverts_not_fresh() != not_fresh_before) {
        drop_log_.log(now, spdlog::level::info, "not-fresh",
                      "ignoring advert from " + from.to_string() +
                          ": it does not echo this boot (a replay, or a peer that has not "
                          "heard this node yet)");
    }
    if (peer < transport_->peers().size()) {
        PeerAuth& auth = peer_auth_[transport_->peers()[peer].address.to_string()];
        if (bad_mac) {
            ++auth.bad_mac;
        }
        if (verified) {
            ++auth.verified;
            auth.last_verified = now;
        }
    }
    after_input(true);
}

void Daemon::on_probe_result(const std::string& check, const health::ProbeResult& result) {
    if (phase_ == Phase::Starting) {
        first_round_.push_back(ProbeCompleted{check, result});
        return;
    }
    if (!node_ || phase_ == Phase::Stopping) {
        return;
    }
    node_->handle(ProbeCompleted{check, result}, loop_.now());
    after_input();
}

void Daemon::on_core_timer() {
    if (!node_) {
        return;
    }
    node_->on_deadline(loop_.now());
    after_input();
}

void Daemon::stop(const std::string& why) {
    if (phase_ == Phase::Stopping) {
        spdlog::warn("{} while stopping: exiting now", why);
        finish_stop();
        return;
    }
    spdlog::info("{}: resigning every instance and stopping", why);
    phase_ = Phase::Stopping;
    ++discovery_generation_;
    probes_->stop();
    if (node_) {
        node_->handle(Shutdown{}, loop_.now());
        after_input();
    }
    if (provider_) {
        provider_->cancel_all();  // the IP stays where it is; the new master claims it
    }
    notify_.stopping("stopping");
    hooks_->set_on_idle([this] { loop_.post([this] { finish_stop(); }); });
    if (hooks_->idle()) {
        loop_.post([this] { finish_stop(); });
    } else {
        stop_timer_.arm_after(options_.shutdown_hook_bound);
    }
}

void Daemon::finish_stop() {
    if (exiting_) {
        return;
    }
    exiting_ = true;
    if (provider_) {
        provider_->cancel_all();
    }
    spdlog::info("failoverd stopped");
    loop_.exit(0);
}

// A reload reads the file (and the auth key) on a thread of its own: even with O_NONBLOCK
// and a size cap, a read on a hung network mount blocks, and the parse of a large file takes
// time the adverts and the watchdog cannot give. The thread touches nothing of the daemon:
// it gets the path, fills this record and signals `done`; the loop takes the result from
// there. If the daemon is gone first, the thread alone owns the record and frees it.
struct Daemon::ReloadRead {
    ReloadRead() : done(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
    ~ReloadRead() {
        if (done >= 0) {
            close(done);
        }
    }
    ReloadRead(const ReloadRead&) = delete;
    ReloadRead& operator=(const ReloadRead&) = delete;

    const int done;
    std::mutex mutex;
    bool abandoned = false;           // loop only: the deadline passed, the result is not wanted
    std::optional<Config> config;     // read and valid
    std::vector<std::uint8_t> key;    // with config
    std::vector<std::string> errors;  // ConfigErrors::report(): escaped and bounded
    std::string error;                // why not, in one line
};

namespace {

// A read that takes longer is given up (the daemon keeps its configuration); a stuck thread
// is left to finish, and no new read starts until it has.
constexpr Duration kReloadReadDeadline = std::chrono::seconds(10);

}  // namespace

void Daemon::reload() {
    if (phase_ != Phase::Running) {
        spdlog::warn("ignoring reload request while {}",
                     phase_ == Phase::Starting ? "starting" : "stopping");
        return;
    }
    if (reload_read_) {
        spdlog::warn("ignoring reload request: the previous read of {} has not finished",
                     escape_text(config_.path));
        return;
    }
    notify_.reloading(loop_.now());
    spdlog::info("reloading configuration from {}", escape_text(config_.path));
    auto read = std::make_shared<ReloadRead>();
    try {
        if (read->done < 0) {
            throw std::system_error(errno, std::generic_category(), "eventfd");
        }
        reload_source_ =
            loop_.add_io(read->done, EPOLLIN, [this](std::uint32_t) { on_reload_read(); });
        std::thread(read_for_reload, read, config_.path).detach();
    } catch (const std::exception& e) {
        reload_source_.reset();
        reject_reload(std::string("cannot start reading the configuration: ") + e.what());
        return;
    }
    reload_read_ = std::move(read);
    if (!reload_deadline_) {
        reload_deadline_ = Timer(loop_, [this] { on_reload_deadline(); });
    }
    reload_deadline_.arm_after(kReloadReadDeadline);
}

void Daemon::read_for_reload(const std::shared_ptr<ReloadRead>& read, const std::string& path) {
    std::optional<Config> config;
    std::vector<std::uint8_t> key;
    std::vector<std::string> errors;
    std::string error;
    try {
        config = load_config(path);
        key = read_advert_key(*config);
    } catch (const ConfigErrors& e) {
        config.reset();
        errors = e.report();
        error = std::to_string(e.total()) + " configuration error(s), the first: " +
                (e.errors().empty() ? std::string("?") : e.errors().front().to_string());
    } catch (const std::exception& e) {
        config.reset();
        error = escape_text(e.what());
    }
    {
        const std::lock_guard lock(read->mutex);
        read->config = std::move(config);
        read->key = std::move(key);
        read->errors = std::move(errors);
        read->error = std::move(error);
    }
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto written = write(read->done, &one, sizeof one);
}

void Daemon::on_reload_deadline() {
    if (!reload_read_ || reload_read_->abandoned) {
        return;
    }
    reload_read_->abandoned = true;
    reject_reload("reading " + escape_text(config_.path) + " did not finish within " +
                  format_duration(kReloadReadDeadline) + " (a hung mount?)");
}

void Daemon::on_reload_read() {
    // `done` is written once, after `finished` was set.
    std::shared_ptr<ReloadRead> read = std::move(reload_read_);
    reload_source_.reset();
    reload_deadline_.disarm();
    if (!read) {
        return;
    }
    std::optional<Config> config;
    std::vector<std::uint8_t> key;
    std::vector<std::string> errors;
    std::string error;
    {
        const std::lock_guard lock(read->mutex);
        config = std::move(read->config);
        key = std::move(read->key);
        errors = std::move(read->errors);
        error = std::move(read->error);
    }
    if (read->abandoned) {
        spdlog::info("the abandoned read of {} finished; send SIGHUP again to apply it",
                     escape_text(config_.path));
        return;
    }
    if (phase_ != Phase::Running) {
        return;
    }
    if (!config) {
        for (const std::string& line : errors) {
            spdlog::error("{}", line);
        }
        reject_reload(error);
        return;
    }
    apply_reload(std::move(*config), std::move(key));
}

void Daemon::reject_reload(const std::string& why) {
    ++reloads_;
    ++reloads_failed_;
    last_reload_error_ = why;
    spdlog::error("reload rejected: {}; still running on the previous configuration", why);
    notify_.reloaded(status_line());
}

void Daemon::apply_reload(Config next, std::vector<std::uint8_t> key) {
    const Instant now = loop_.now();
    auto reject = [this](const std::string& why) { reject_reload(why); };
    if (const auto fixed = fixed_changes(config_, next); !fixed.empty()) {
        std::string list;
        for (const auto& f : fixed) {
            list += (list.empty() ? "" : ", ") + f;
        }
        reject(list + " cannot change on reload; restart failoverd to apply");
        return;
    }

    std::unique_ptr<health::ProbeRunner> probes;
    NodeSpec spec;
    try {
        spec = node_spec_of(next, identity_.provider_id, key, boot_epoch_,
                            node_->status().maintenance, seed_);
        Node validate(spec, now);  // throws on what Node would refuse; changes nothing here
        probes = std::make_unique<health::ProbeRunner>(
            loop_, Rng(seed_ ^ (reloads_ + 1)),
            [this](const std::string& name, const health::ProbeResult& r) {
                on_probe_result(name, r);
            });
        add_probes(next, *probes);
        // Tag peers stay until the re-discovery below answers, unless the tag itself changed.
        std::vector<Endpoint> peers = next.cluster.peers;
        if (next.cluster.peers_from_tag == config_.cluster.peers_from_tag) {
            peers = all_peers(next);
        }
        transport_->set_peers(peers);  // the last step that can fail; atomic
        key_ = std::move(key);
    } catch (const std::exception& e) {
        reject(e.what());
        return;
    }

    if (next.cluster.peers_from_tag != config_.cluster.peers_from_tag) {
        identity_.tag_peers.clear();
    }
    ++reloads_;
    forget_peers_not_configured();
    probes_->stop();
    probes_ = std::move(probes);
    for (const InstanceConfig& i : next.instances) {
        instance_ips_[i.name] = i.reserved_ip;
    }
    node_->reconfigure(std::move(spec), now);
    configure_hooks(next);
    config_ = std::move(next);
    last_reload_error_.reset();
    after_input();
    std::erase_if(instance_ips_,
                  [&](const auto& kv) { return config_.find_instance(kv.first) == nullptr; });
    std::erase_if(reconcile_seen_,
                  [&](const auto& kv) { return config_.find_instance(kv.first) == nullptr; });
    probes_->start();
    notify_.reloaded(status_line());
    spdlog::info("configuration reloaded: {}; {}", escape_text(config_.summary(), 4096),
                 status_line());
    if (!config_.cluster.peers_from_tag.empty()) {
        discover_tag_peers();
    }
}

void Daemon::forget_peers_not_configured() {
    std::erase_if(peer_auth_, [&](const auto& kv) {
        return std::none_of(transport_->peers().begin(), transport_->peers().end(),
                            [&](const UdpPeer& p) { return p.address.to_string() == kv.first; });
    });
}

void Daemon::discover_tag_peers() {
    const std::uint64_t generation = ++discovery_generation_;
    ++discoveries_;
    spdlog::info("discovering peers from tag {}", config_.cluster.peers_from_tag);
    resolve_provider_identity(
        config_, loop_, curl_, kIdentityDeadline,
        [this, generation](std::optional<ProviderIdentity> found, std::string error) {
            if (generation != discovery_generation_ || phase_ != Phase::Running) {
                return;  // a newer reload asked again, or stopping
            }
            last_discovery_at_ = loop_.now();
            if (!found) {
                ++discoveries_failed_;
                last_discovery_error_ = error;
                spdlog::error("peer discovery from tag {} failed: {}; keeping {} peer(s)",
                              config_.cluster.peers_from_tag, error, transport_->peers().size());
                return;
            }
            if (found->provider_id != identity_.provider_id) {
                spdlog::warn(
                    "ignoring: the provider now reports this node as {} (running as {}); "
                    "a new identity needs a restart",
                    found->provider_id, identity_.provider_id);
            }
            std::vector<Endpoint> old = identity_.tag_peers;
            identity_.tag_peers = std::move(found->tag_peers);
            try {
                transport_->set_peers(all_peers(config_));
            } catch (const std::exception& e) {
                identity_.tag_peers = std::move(old);
                ++discoveries_failed_;
                last_discovery_error_ = e.what();
                spdlog::error("peer discovery from tag {}: {}; keeping {} peer(s)",
                              config_.cluster.peers_from_tag, e.what(), transport_->peers().size());
                return;
            }
            forget_peers_not_configured();
            last_discovery_error_.reset();
            if (!same_endpoints(old, identity_.tag_peers)) {
                spdlog::info("peers from tag {}: {} (were {})", config_.cluster.peers_from_tag,
                             join_endpoints(identity_.tag_peers), join_endpoints(old));
            }
        });
}

std::string Daemon::status_line() const {
    if (!node_) {
        return "starting";
    }
    std::string out;
    for (const InstanceStatus& i : node_->status().instances) {
        out += (out.empty() ? "" : ", ") + i.name + ": " + std::string(to_string(i.role));
    }
    if (out.empty()) {
        out = "no instances";
    }
    if (node_->status().maintenance) {
        out += " (maintenance)";
    }
    return out;
}

nlohmann::json Daemon::on_control(const nlohmann::json& request) {
    const std::string command = request.value("command", "");
    if (command == "status") {
        return {{"ok", true}, {"status", status_json()}};
    }
    if (command == "handover") {
        return handover(request);
    }
    if (command == "maintenance") {
        return maintenance(request);
    }
    return {
        {"ok", false},
        {"error", "unknown command '" + command + "' (allowed: status, handover, maintenance)"}};
}

nlohmann::json Daemon::handover(const nlohmann::json& request) {
    if (phase_ != Phase::Running) {
        return {{"ok", false}, {"error", "failoverd is not running yet or stopping"}};
    }
    AdminHandover input;
    input.instance = request.value("instance", "");
    if (request.contains("to") && request["to"].is_string()) {
        input.to_node = request["to"].get<std::string>();
    }
    if (!input.instance.empty()) {
        const auto role = node_->role(input.instance);
        if (!role) {
            return {{"ok", false}, {"error", "no instance '" + input.instance + "'"}};
        }
        if (*role != Role::Master) {
            return {{"ok", false},
                    {"error", input.instance + " is " + std::string(to_string(*role)) +
                                  " on this node; only its master can hand over"}};
        }
    }
    if (input.to_node && *input.to_node == config_.node.name) {
        return {{"ok", false}, {"error", "cannot hand over to this node itself"}};
    }
    const std::uint64_t ignored = node_->status().handovers_ignored;
    node_->handle(input, loop_.now());
    after_input();
    if (node_->status().handovers_ignored != ignored) {
        return {{"ok", false}, {"error", "this node is master of no instance to hand over"}};
    }
    spdlog::info("hand-over of {} requested{}",
                 input.instance.empty() ? "every instance" : input.instance,
                 input.to_node ? " to " + *input.to_node : "");
    return {{"ok", true}, {"status", status_json()}};
}

bool Daemon::set_maintenance_flag(bool on, std::string& error) {
    const fs::path file = fs::path(config_.node.state_dir) / kMaintenanceFile;
    if (on) {
        return write_file_atomically(file, "on\n", error);
    }
    if (unlink(file.c_str()) != 0 && errno != ENOENT) {
        error = "cannot remove " + file.string() + ": " + std::strerror(errno);
        return false;
    }
    return true;
}

nlohmann::json Daemon::maintenance(const nlohmann::json& request) {
    if (phase_ != Phase::Running) {
        return {{"ok", false}, {"error", "failoverd is not running yet or stopping"}};
    }
    if (!request.contains("on") || !request["on"].is_boolean()) {
        return {{"ok", false}, {"error", "maintenance needs \"on\": true or false"}};
    }
    const bool on = request["on"].get<bool>();
    std::string error;
    // The flag goes to disk first, so what the operator asked for survives a restart.
    if (!set_maintenance_flag(on, error)) {
        return {{"ok", false}, {"error", error}};
    }
    if (node_->status().maintenance != on) {
        spdlog::info("maintenance {} requested", on ? "on" : "off");
        node_->handle(AdminMaintenance{on}, loop_.now());
        after_input();
    }
    return {{"ok", true}, {"status", status_json()}};
}

nlohmann::json Daemon::status_json() const {
    using nlohmann::json;
    const Instant now = loop_.now();
    const double wall_now =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    json out;
    out["node"] = config_.node.name;
    out["version"] = FAILOVERD_VERSION;
    out["pid"] = static_cast<long>(getpid());
    out["config"] = config_.path;
    out["uptime_seconds"] = seconds_between(now, started_at_);
    out["phase"] = phase_ == Phase::Starting  ? "starting"
                   : phase_ == Phase::Running ? "running"
                                              : "stopping";
    out["boot_epoch"] = boot_epoch_;
    out["instances"] = json::array();
    if (node_) {
        const NodeStatus& s = node_->status();
        out["maintenance"] = s.maintenance;
        for (const InstanceStatus& i : s.instances) {
            json ij;
            ij["name"] = i.name;
            ij["reserved_ip"] = i.reserved_ip;
            ij["role"] = to_string(i.role);
            ij["priority"] = i.effective_priority;
            ij["configured_priority"] = i.configured_priority;
            ij["preempt"] = i.preempt;
            ij["master"] = i.master;
            ij["fault_reason"] = i.fault_reason ? json(*i.fault_reason) : json(nullptr);
            ij["health"] = i.health_reason;
            ij["yielding_to"] = i.yielding_to ? json(*i.yielding_to) : json(nullptr);
            ij["advert_interval_ms"] = milliseconds_of(i.advertisement_interval);
            ij["master_adver_interval_ms"] = milliseconds_of(i.master_adver_interval);
            ij["master_down_interval_ms"] = milliseconds_of(i.master_down_interval);
            if (i.last_transition) {
                const double ago = seconds_between(now, i.last_transition->at);
                ij["last_transition"] = {{"from", to_string(i.last_transition->from)},
                                         {"to", to_string(i.last_transition->to)},
                                         {"reason", i.last_transition->reason},
                                         {"seconds_ago", ago},
                                         {"unix_time", wall_now - ago}};
            } else {
                ij["last_transition"] = nullptr;
            }
            ij["transitions"] = i.transitions;
            ij["checks"] = json::array();
            for (const CheckStatus& c : i.checks) {
                json cj = {{"name", c.name},
                           {"state", health::to_string(c.state)},
                           {"reason", c.last_reason},
                           {"weight", c.weight},
                           {"successes_in_a_row", c.successes_in_a_row},
                           {"failures_in_a_row", c.failures_in_a_row}};
                if (const auto* docker =
                        dynamic_cast<const health::DockerProbe*>(probes_->probe(c.name))) {
                    cj["events"] = docker_events_json(*docker);
                }
                ij["checks"].push_back(std::move(cj));
            }
            ij["peers"] = json::array();
            for (const PeerInfo& p : i.peers) {
                ij["peers"].push_back(
                    {{"node", p.node_name},
                     {"provider_id", p.provider_id},
                     {"state", to_string(p.state)},
                     {"priority", p.priority},
                     {"from", p.from},
                     {"seconds_since_heard", seconds_between(now, p.last_heard)}});
            }
            ij["provider"] = i.provider_enabled ? provider_json(i, now) : json(nullptr);
            ij["adverts"] = {{"sent", i.adverts_sent},
                             {"received", i.adverts_received},
                             {"ignored", i.adverts_ignored},
                             {"not_fresh", i.adverts_not_fresh}};
            const HookCounters h = hooks_->counters(i.name);
            ij["hooks"] = {{"runs", h.runs},
                           {"failures", h.failures},
                           {"timeouts", h.timeouts},
                           {"dropped", h.dropped},
                           {"output_lines_not_logged", h.output_lines_not_logged},
                           {"queued", hooks_->queued(i.name)}};
            out["instances"].push_back(std::move(ij));
        }
        json drops = json::object();
        for (std::size_t r = 0; r < kDropReasonCount; ++r) {
            drops[std::string(to_string(static_cast<DropReason>(r)))] = s.drops[r];
        }
        json foreign = json::array();
        for (const ForeignInstance& f : s.foreign_instances) {
            foreign.push_back({{"peer", f.peer}, {"instance", f.instance}, {"adverts", f.adverts}});
        }
        out["adverts"] = {{"sent", s.adverts_sent},           {"received", s.adverts_received},
                          {"not_fresh", s.adverts_not_fresh}, {"dropped", drops},
                          {"dropped_total", s.drops_total()}, {"unknown_instances", foreign}};
    } else {
        out["maintenance"] = fs::exists(fs::path(config_.node.state_dir) / kMaintenanceFile);
    }
    const UdpCounters& u = transport_->counters();
    json peers = json::array();
    json auth = json::array();
    for (const UdpPeer& p : transport_->peers()) {
        const bool from_tag =
            std::any_of(identity_.tag_peers.begin(), identity_.tag_peers.end(),
                        [&](const Endpoint& e) { return same_endpoint(e, p.endpoint); }) &&
            std::none_of(config_.cluster.peers.begin(), config_.cluster.peers.end(),
                         [&](const Endpoint& e) { return same_endpoint(e, p.endpoint); });
        const auto a = peer_auth_.find(p.address.to_string());
        const PeerAuth none;
        const PeerAuth& pa = a == peer_auth_.end() ? none : a->second;
        auth.push_back(
            {{"address", p.address.to_string()},
             {"configured", p.endpoint.to_string()},
             {"source", from_tag ? "tag" : "config"},
             {"received", p.received},
             {"verified", pa.verified},
             {"bad_mac", pa.bad_mac},
             {"last_verified_s_ago",
              pa.last_verified ? json(seconds_between(now, *pa.last_verified)) : json(nullptr)},
             {"last_received_s_ago",
              p.last_received ? json(seconds_between(now, *p.last_received)) : json(nullptr)}});
        json pj{{"address", p.address.to_string()},
                {"configured", p.endpoint.to_string()},
                {"sent", p.sent},
                {"send_errors", p.send_errors},
                {"received", p.received}};
        pj["seconds_since_heard"] =
            p.last_received ? json(seconds_between(now, *p.last_received)) : json(nullptr);
        peers.push_back(std::move(pj));
    }
    out["transport"] = {{"listen", transport_->local_address().to_string()},
                        {"sent", u.sent},
                        {"send_errors", u.send_errors},
                        {"received", u.received},
                        {"receive_errors", u.receive_errors},
                        {"dropped_unknown_source", u.dropped_unknown_source},
                        {"dropped_oversized", u.dropped_truncated},
                        {"dropped_before_start", datagrams_before_start_},
                        {"peers", std::move(peers)}};
    const HookCounters& h = hooks_->counters();
    out["hooks"] = {{"runs", h.runs},
                    {"failures", h.failures},
                    {"timeouts", h.timeouts},
                    {"dropped", h.dropped},
                    {"output_lines_not_logged", h.output_lines_not_logged}};
    if (control_) {
        const ControlServerCounters& c = control_->counters();
        out["control"] = {{"open", control_->open_connections()},
                          {"connections", c.connections},
                          {"requests", c.requests},
                          {"rejected_busy", c.rejected_busy},
                          {"rejected_per_uid", c.rejected_per_uid},
                          {"rejected_oversized", c.rejected_oversized},
                          {"rejected_malformed", c.rejected_malformed},
                          {"evicted_idle", c.evicted_idle},
                          {"evicted_not_reading", c.evicted_not_reading},
                          {"evicted_served", c.evicted_served},
                          {"timeouts", c.timeouts},
                          {"first_request_timeouts", c.first_request_timeouts},
                          {"closed_not_reading", c.closed_not_reading},
                          {"turn_limits", c.turn_limits},
                          {"io_errors", c.io_errors}};
    }
    out["reloads"] = {
        {"total", reloads_},
        {"failed", reloads_failed_},
        {"last_error", last_reload_error_ ? json(*last_reload_error_) : json(nullptr)}};
    out["peers"] = std::move(auth);
    json tag_peers = json::array();
    for (const Endpoint& e : identity_.tag_peers) {
        tag_peers.push_back(e.to_string());
    }
    json provider{
        {"type", to_string(config_.provider.type)},
        {"identity", identity_.provider_id.empty() ? json(nullptr) : json(identity_.provider_id)},
        {"peers_from_tag", config_.cluster.peers_from_tag.empty()
                               ? json(nullptr)
                               : json(config_.cluster.peers_from_tag)},
        {"tag_peers", std::move(tag_peers)},
        {"discovery",
         {{"runs", discoveries_},
          {"failed", discoveries_failed_},
          {"last_error", last_discovery_error_ ? json(*last_discovery_error_) : json(nullptr)},
          {"last_s_ago",
           last_discovery_at_ ? json(seconds_between(now, *last_discovery_at_)) : json(nullptr)}}},
        {"calls_refused", provider_calls_refused_},
        {"replies_after_stop", provider_replies_after_stop_},
        {"client", provider_ ? provider_->status() : json(nullptr)}};
    if (node_) {
        const NodeStatus& s = node_->status();
        provider["calls"] = s.provider_calls;
        provider["failures"] = s.provider_failures;
        provider["stale_replies"] = s.provider_stale_replies;
        provider["budget_deferrals"] = s.provider_budget_deferrals;
    }
    out["provider"] = std::move(provider);
    out["loop_callback_errors"] = loop_.callback_errors();
    out["log_lines_suppressed"] = drop_log_.suppressed_total();
    return out;
}

nlohmann::json Daemon::provider_json(const InstanceStatus& i, Instant now) const {
    using nlohmann::json;
    const ReconcilerStatus& r = i.provider;
    const bool is_self = r.holder_known && !identity_.provider_id.empty() &&
                         r.observed_holder == identity_.provider_id;
    json holder_node = nullptr;
    if (is_self) {
        holder_node = config_.node.name;
    } else if (r.holder_known) {
        for (const PeerInfo& p : i.peers) {
            if (!r.observed_holder.empty() && p.provider_id == r.observed_holder) {
                holder_node = p.node_name;
            }
        }
    }
    return {{"phase", to_string(r.phase)},
            {"holder", r.holder_known ? json(r.observed_holder) : json(nullptr)},
            {"holder_is_self", is_self},
            {"holder_node", holder_node},
            {"holder_locked", r.holder_locked},
            {"last_read_s_ago",
             r.last_read_at ? json(seconds_between(now, *r.last_read_at)) : json(nullptr)},
            {"action_id", r.action_id.empty() ? json(nullptr) : json(r.action_id)},
            {"note", r.note},
            {"last_error", r.last_error.empty() ? json(nullptr) : json(r.last_error)},
            {"next_call_in_s",
             r.next_call_at ? json(std::max(0.0, seconds(*r.next_call_at - now))) : json(nullptr)},
            {"calls", r.calls},
            {"failures", r.failures},
            {"assigns", r.assigns},
            {"moves_confirmed", r.moves_confirmed},
            {"stale_replies", r.stale_replies},
            {"budget_deferrals", r.budget_deferrals}};
}

int run_daemon(const Config& config, const std::string& log_level) {
    setup_logging(log_level);
    try {
        Daemon daemon(config);
        return daemon.run();
    } catch (const std::exception& e) {
        spdlog::critical("cannot start: {}", e.what());
        return 1;
    }
}

}  // namespace failoverd
