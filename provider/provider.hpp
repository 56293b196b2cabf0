// Provider: performs the core's CallProviders against a cloud, asynchronously inside the
// EventLoop (curl multi or child processes), and answers each with one ProviderReplied.
// Classification of HTTP answers is pure and lives in the *_api files; this is the I/O side.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "daemon/config.hpp"
#include "daemon/core/action.hpp"
#include "daemon/core/election.hpp"
#include "daemon/core/input.hpp"
#include "daemon/shell/curl_multi.hpp"
#include "daemon/shell/event_loop.hpp"

namespace failoverd {

class Provider {
  public:
    using Done = std::function<void(ProviderReplied)>;

    virtual ~Provider() = default;

    // Starts `call`. `done` is called exactly once from the loop (never inline), with the
    // call's instance and request_id, within the configured request timeout (a call that
    // times out is answered Transient). Not called after cancel_all() or destruction.
    virtual void call(const CallProvider& call, Done done) = 0;

    // The election changed the role of `instance` (whose reserved IP is `ip`). DigitalOcean
    // ignores it; the exec provider forgets what it assigned and tells its command.
    virtual void on_role(const std::string& instance, const std::string& ip, Role role) {
        (void)instance;
        (void)ip;
        (void)role;
    }

    // Abandons everything in flight (stop, reload with a new provider); no callbacks follow.
    virtual void cancel_all() = 0;

    // This node's identity at the provider (the droplet id), as the core's provider_id.
    virtual const std::string& identity() const = 0;

    // For `failoverctl status --json`: type, calls, failures by outcome, the last error with
    // its HTTP status and request id, the rate-limit headers last seen. Never the token.
    virtual nlohmann::json status() const = 0;
};

// Sets out["outcomes"] (replies by outcome) and out["failures"] (every outcome but Ok), for
// the providers' status().
void add_outcome_counts(nlohmann::json& out,
                        const std::map<ProviderOutcome, std::uint64_t>& outcomes);

// What start-up learns before the Node exists: the droplet id (`droplet_id = auto` asks the
// metadata service, with retries) and, with `peers_from_tag`, the peers' private addresses.
struct ProviderIdentity {
    std::string provider_id;          // empty for type = none
    std::vector<Endpoint> tag_peers;  // discovered peers (self excluded), port = node.listen
};

// Resolves the identity asynchronously inside the loop. `done` gets the identity, or an
// operator message ("metadata service http://169.254.169.254 unreachable after 5 attempts:
// ...") when start-up cannot go on. Start-up retries transient failures with backoff for up
// to `deadline`; a 401/403 or a missing tag fails at once.
void resolve_provider_identity(
    const Config& config, EventLoop& loop, CurlMulti& curl, Duration deadline,
    std::function<void(std::optional<ProviderIdentity>, std::string)> done);

// The provider for config.provider.type (nullptr for type = none). Reads the token file at
// start-up (throws std::runtime_error naming the file, never showing the token).
std::unique_ptr<Provider> make_provider(const Config& config, EventLoop& loop, CurlMulti& curl,
                                        const std::string& provider_id);

}  // namespace failoverd
