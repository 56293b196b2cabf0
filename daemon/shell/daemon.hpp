// Daemon: the imperative shell around Node. On every wake-up it takes `now` from the loop,
// turns what happened (datagram, probe result, provider reply, signal, control request) into
// Inputs, calls Node, executes take_actions() (send adverts, call the provider, run hooks, log
// transitions, STATUS=) and re-arms the one core timer to next_deadline(). Everything runs in
// one sd-event loop; nothing blocks.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "daemon/config.hpp"
#include "daemon/core/node.hpp"
#include "daemon/core/time.hpp"
#include "daemon/shell/control_socket.hpp"
#include "daemon/shell/curl_multi.hpp"
#include "daemon/shell/event_loop.hpp"
#include "daemon/shell/hook_runner.hpp"
#include "daemon/shell/rate_limited_log.hpp"
#include "daemon/shell/systemd_notify.hpp"
#include "daemon/shell/udp_transport.hpp"
#include "health/probe_runner.hpp"
#include "provider/provider.hpp"

namespace failoverd {

struct DaemonOptions {
    // At shutdown, notify_stop and hooks still running get this long before SIGTERM (then
    // SIGKILL after the hook kill grace); the process exits within about bound + grace.
    Duration shutdown_hook_bound = std::chrono::seconds(5);
    HookRunnerOptions hooks;
};

// The NodeSpec for `config`: instances, the checks they track, timing. The provider identity
// (droplet id; the node name for exec; empty for none), key, epoch, maintenance and seed come
// from the caller (the provider, files and the OS, read at start-up or reload).
NodeSpec node_spec_of(const Config& config, const std::string& provider_id,
                      std::vector<std::uint8_t> hmac_key, std::uint64_t boot_epoch,
                      bool maintenance, std::uint64_t seed);

// Start-up and reload: the advert key from auth_key_file. With peers the file must hold at
// least 16 bytes; a single node without a readable key file gets a random one (nobody to talk
// to). Throws std::runtime_error naming the file, never showing the key.
std::vector<std::uint8_t> read_advert_key(const Config& config);

// A boot epoch greater than the one recorded in `state_dir/boot_epoch` and than the wall clock
// in nanoseconds; records it. Peers drop adverts of an older epoch, so a restart must never
// reuse one, even when the wall clock stepped back.
std::uint64_t next_boot_epoch(const std::string& state_dir);

class Daemon {
  public:
    // Start-up: binds the advert socket and the control socket, builds the probes and hooks.
    // Throws std::runtime_error (or ConfigErrors-free std::exception) with an operator message.
    // The provider comes later, in start(): its identity is resolved inside the loop.
    explicit Daemon(Config config, DaemonOptions options = {});
    ~Daemon();
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    // start(), then serves until SIGTERM/SIGINT (then resigns, runs notify_stop and returns 0).
    // Returns 1 when start-up fails inside the loop (the provider identity cannot be resolved).
    int run();

    // With a provider: resolves this node's identity (droplet id, tag peers) and builds the
    // provider; then the first health round; when it is done the Node starts and systemd hears
    // READY=1. The loop must then be run (run() does; tests use loop().run_until()). A start-up
    // failure exits the loop with 1 and leaves start_error() set.
    void start();
    bool ready() const { return phase_ == Phase::Running; }
    const std::optional<std::string>& start_error() const { return start_error_; }
    EventLoop& loop() { return loop_; }

    // The same as the signals, for tests and the control socket. reload() starts reading the
    // file on a thread of its own and returns; the loop applies or rejects it when read.
    void stop(const std::string& why);
    void reload();

    // What `failoverctl status --json` prints.
    nlohmann::json status_json() const;
    // "web: MASTER, db: BACKUP" (STATUS= and the start-up log line).
    std::string status_line() const;

  private:
    enum class Phase { Starting, Running, Stopping };

    // What the log last said about an instance's reconciler, so each change is logged once.
    struct ReconcileSeen {
        std::string holder;
        bool holder_known = false;
        std::string action_id;
        std::string note;
        std::string last_error;
        std::uint64_t moves_logged = 0;       // moves_confirmed at the last "held by this node"
        std::optional<Instant> claimed_term;  // the MASTER term whose claim was logged
    };
    // Per configured peer address: what doctor needs to tell a wrong auth key from silence.
    struct PeerAuth {
        std::uint64_t bad_mac = 0;
        std::uint64_t verified = 0;  // datagrams whose MAC verified with our key
        std::optional<Instant> last_verified;
    };

    struct ReloadRead;
    // Runs on the reading thread: only its arguments, never the daemon.
    static void read_for_reload(const std::shared_ptr<ReloadRead>& read, const std::string& path);
    void on_reload_read();
    void on_reload_deadline();
    void apply_reload(Config next, std::vector<std::uint8_t> key);
    void reject_reload(const std::string& why);

    void on_identity(std::optional<ProviderIdentity> identity, const std::string& error);
    void start_health_round();
    void fail_start(const std::string& why);
    void start_node();
    // Executes the core's actions and re-arms its timer; then logs provider changes and
    // updates STATUS=, unless `only_if_acted` and the core asked for nothing.
    void after_input(bool only_if_acted = false);
    void execute(const Action& action);
    void on_provider_reply(ProviderReplied reply);
    void log_provider_changes();
    void discover_tag_peers();
    void forget_peers_not_configured();
    std::vector<Endpoint> all_peers(const Config& config) const;
    void on_datagram(std::span<const std::uint8_t> bytes, std::size_t peer,
                     const SocketAddress& from);
    void on_probe_result(const std::string& check, const health::ProbeResult& result);
    void on_core_timer();
    nlohmann::json on_control(const nlohmann::json& request);
    nlohmann::json handover(const nlohmann::json& request);
    nlohmann::json maintenance(const nlohmann::json& request);
    bool set_maintenance_flag(bool on, std::string& error);
    void log_transition(const Transitioned& t);
    void add_probes(const Config& config, health::ProbeRunner& runner);
    void configure_hooks(const Config& config);
    void finish_stop();
    nlohmann::json provider_json(const InstanceStatus& i, Instant now) const;
    std::string holder_name(const std::string& holder, const InstanceStatus& i) const;

    Config config_;
    DaemonOptions options_;
    Instant started_at_{};
    std::uint64_t boot_epoch_ = 0;
    std::uint64_t seed_ = 0;
    std::vector<std::uint8_t> key_;
    Phase phase_ = Phase::Starting;
    bool exiting_ = false;

    // Destroyed in reverse: everything that holds loop sources goes before the loop.
    EventLoop loop_;
    SystemdNotify notify_;
    std::vector<EventSource> signals_;
    CurlMulti curl_;
    std::unique_ptr<Provider> provider_;  // nullptr for type = none, and until start() made it
    ProviderIdentity identity_;
    std::unique_ptr<UdpTransport> transport_;
    std::unique_ptr<HookRunner> hooks_;
    std::unique_ptr<health::ProbeRunner> probes_;
    std::unique_ptr<Node> node_;
    std::vector<ProbeCompleted> first_round_;
    Timer core_timer_;
    Timer stop_timer_;  // hooks get shutdown_hook_bound, then SIGTERM ...
    Timer exit_timer_;  // ... and the kill grace, then the process exits regardless
    std::unique_ptr<ControlServer> control_;
    RateLimitedLog drop_log_;
    std::uint64_t datagrams_before_start_ = 0;
    std::uint64_t provider_calls_refused_ = 0;
    std::uint64_t provider_replies_after_stop_ = 0;
    std::optional<std::string> start_error_;
    std::map<std::string, std::string> instance_ips_;  // also of instances a reload removes
    std::map<std::string, ReconcileSeen> reconcile_seen_;
    std::set<std::string> sends_failing_;  // instances whose last advert failed to some peer
    RateLimitedLog provider_log_;
    std::map<std::string, PeerAuth> peer_auth_;  // key: resolved peer address
    std::uint64_t discovery_generation_ = 0;
    std::uint64_t discoveries_ = 0;
    std::uint64_t discoveries_failed_ = 0;
    std::optional<std::string> last_discovery_error_;
    std::optional<Instant> last_discovery_at_;
    std::uint64_t reloads_ = 0;
    std::uint64_t reloads_failed_ = 0;
    std::optional<std::string> last_reload_error_;
    std::shared_ptr<ReloadRead> reload_read_;  // the read in progress (or abandoned, still stuck)
    EventSource reload_source_;
    Timer reload_deadline_;
};

// failoverd's main loop: logging set-up, Daemon, run. Returns the process exit code
// (0 after a clean stop, 1 when start-up failed).
int run_daemon(const Config& config, const std::string& log_level);

}  // namespace failoverd
