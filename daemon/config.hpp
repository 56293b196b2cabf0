// The configuration model and its loader. Loading collects every problem before failing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/core/text_escape.hpp"
#include "daemon/core/time.hpp"

namespace failoverd {

inline constexpr const char* kDefaultConfigPath = "/etc/failoverd/failoverd.conf";

// A config larger than this is refused before it is parsed (the shipped example is 3 KiB).
inline constexpr std::size_t kMaxConfigBytes = 1024 * 1024;
// At most this many problems are kept; ConfigErrors::total() still counts all of them.
inline constexpr std::size_t kMaxConfigErrorsKept = 200;
// At most this many are printed by --check-config or logged by a reload, then "... and N more".
inline constexpr std::size_t kMaxConfigErrorsShown = 20;

// One problem in a config file: "FILE:LINE: key: message (allowed: ...)".
struct ConfigError {
    std::string file;
    int line = 0;  // 0 when the problem is about the file as a whole
    std::string key;
    std::string message;

    std::string to_string() const;  // escaped with escape_text, so safe to print or log
};

// Thrown by load_config with every problem found; what() is all of them, one per line.
class ConfigErrors : public std::runtime_error {
  public:
    // `total`: how many were found, when more than the kept `errors` (0: errors.size()).
    explicit ConfigErrors(std::vector<ConfigError> errors, std::size_t total = 0);
    const std::vector<ConfigError>& errors() const { return errors_; }
    std::size_t total() const { return total_; }

    // The first `limit` errors, one per line, then "... and N more errors" when there are more.
    std::vector<std::string> report(std::size_t limit = kMaxConfigErrorsShown) const;

  private:
    std::vector<ConfigError> errors_;
    std::size_t total_ = 0;
};

struct Endpoint {
    std::string host;  // IPv4 or IPv6 literal (no brackets) or a name
    std::uint16_t port = 0;
    int line = 0;

    std::string to_string() const;  // "10.0.0.2:5405", "[fd00::2]:5405"
};

struct NodeConfig {
    std::string name;                  // default: the host name
    Endpoint listen{"0.0.0.0", 5405};  // where adverts arrive
    std::string control_socket = "/run/failoverd/control.sock";
    std::string state_dir = "/var/lib/failoverd";  // maintenance flag survives restarts here
};

struct ClusterConfig {
    std::vector<Endpoint> peers;
    std::string peers_from_tag;  // DigitalOcean droplet tag; peers discovered through the API
    std::string auth_key_file = "/etc/failoverd/auth.key";
    Duration advert_interval = std::chrono::seconds(1);
};

enum class ProviderType { None, DigitalOcean, Exec };
std::string to_string(ProviderType t);  // "none", "digitalocean", "exec"

struct ProviderConfig {
    ProviderType type = ProviderType::None;
    std::string token_file;  // set from $CREDENTIALS_DIRECTORY/do-token when not configured
    std::string droplet_id = "auto";
    std::string api_base_url = "https://api.digitalocean.com";
    std::string metadata_base_url = "http://169.254.169.254";
    std::string ca_file;                    // empty: the system store
    std::vector<std::string> exec_command;  // type = exec; argv like CheckConfig::command
    Duration request_timeout = std::chrono::seconds(10);
    Duration reconcile_interval = std::chrono::seconds(30);
};

enum class CheckType { Docker, Http, Tcp, Exec };
std::string to_string(CheckType t);  // "docker", "http", "tcp", "exec"

struct CheckConfig {
    std::string name;
    CheckType type = CheckType::Exec;
    int line = 0;  // where [check.NAME] starts
    Duration interval = std::chrono::seconds(2);
    Duration timeout = std::chrono::seconds(1);  // never longer than interval
    int rise = 2;
    int fall = 2;
    int weight = 0;  // 0: failing puts the instance in FAULT; < 0: lowers priority by that much

    // docker
    std::string docker_socket = "/var/run/docker.sock";
    std::vector<std::string> docker_labels;  // "key" or "key=value"
    std::string docker_name_pattern;         // ECMAScript regex on the name, no leading '/'
    std::optional<int> expect;               // exactly this many running
    std::optional<int> min;                  // at least this many running
    bool require_healthy = true;             // where a container has a healthcheck
    bool docker_events = true;  // re-run on the engine's container events, not only on interval

    // http
    std::string url;
    std::vector<int> expected_status{200};
    std::string body_contains;
    bool tls_verify = true;

    // tcp
    Endpoint target;

    // exec
    // argv, split like a shell would (quotes honoured, no expansion). argv[0] is an absolute
    // path or a bare name to look up in PATH (execvp); it was checked to be executable.
    std::vector<std::string> command;
};

// What is left of a hook's process group when the hook exits: ProcessGroup sends it SIGTERM
// (SIGKILL after a grace period); None leaves it running, for hooks that start a long-running
// program on purpose.
enum class ProcessCleanup { ProcessGroup, None };
constexpr std::string_view to_string(ProcessCleanup c) {
    return c == ProcessCleanup::ProcessGroup ? "process-group" : "none";
}

struct InstanceConfig {
    std::string name;
    int line = 0;
    std::string reserved_ip;
    int priority = 100;  // 1..254, as VRRP
    bool preempt = true;
    Duration preempt_delay{0};
    std::optional<Duration> advert_interval;  // overrides [cluster] advert_interval
    std::vector<std::string> checks;
    // Hooks as argv (empty: none), same rules as CheckConfig::command.
    std::vector<std::string> notify_master;
    std::vector<std::string> notify_backup;
    std::vector<std::string> notify_fault;
    std::vector<std::string> notify_stop;
    std::vector<std::string> notify;  // generic: called with instance, new role, old role, reason
    ProcessCleanup hook_cleanup = ProcessCleanup::ProcessGroup;

    Duration effective_advert_interval(const ClusterConfig& c) const {
        return advert_interval.value_or(c.advert_interval);
    }
};

struct Config {
    std::string path;
    NodeConfig node;
    ClusterConfig cluster;
    ProviderConfig provider;
    std::vector<CheckConfig> checks;
    std::vector<InstanceConfig> instances;

    const CheckConfig* find_check(const std::string& name) const;
    const InstanceConfig* find_instance(const std::string& name) const;
    std::string summary() const;  // one line for --check-config
};

// What the caller will run. Daemon validates everything; Checks skips the files only the daemon
// uses (auth key, API token, hooks), so `failoverctl check` works for a user who cannot see
// $CREDENTIALS_DIRECTORY. Syntax, ranges and unknown keys are checked in both.
enum class ConfigScope { Daemon, Checks };

// Parses and validates; throws ConfigErrors listing every problem, sorted by line.
// Relative paths in the file resolve against the file's directory. The file is opened without
// blocking (O_NONBLOCK): a FIFO, a device, a directory or an empty file is refused, and so is
// one larger than kMaxConfigBytes, read no further than that.
Config load_config(const std::string& path, ConfigScope scope = ConfigScope::Daemon);

// Same, from text already in memory (tests); `path` is used in messages and to resolve files.
Config parse_config(const std::string& text, const std::string& path,
                    ConfigScope scope = ConfigScope::Daemon);

// "500ms", "2s", "1.5s", "5m", "1h"; a bare number is seconds. nullopt when malformed.
std::optional<Duration> parse_duration(const std::string& text);

// "host:port", "[v6]:port"; port 1..65535, host an IP literal or a DNS name; nullopt when
// malformed.
std::optional<Endpoint> parse_endpoint(const std::string& text);

// Splits a command line into argv honouring single and double quotes and backslashes, as
// sh would, without expansion; '#' is an ordinary character. nullopt on an unterminated quote
// or a trailing backslash.
std::optional<std::vector<std::string>> split_command(const std::string& text);

// The first unquoted word of a command line that only a shell understands ("|", "&&", ">",
// "2>&1", "$(...)", ...): failoverd runs commands without a shell, so such a word would reach
// the program as an argument. nullopt when there is none.
std::optional<std::string> shell_operator_word(const std::string& text);

}  // namespace failoverd
