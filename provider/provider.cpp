#include "provider/provider.hpp"

#include <stdexcept>
#include <utility>

#include "provider/digitalocean_api.hpp"
#include "provider/digitalocean_provider.hpp"
#include "provider/droplet_metadata.hpp"
#include "provider/exec_provider.hpp"
#include "provider/tag_peers.hpp"

namespace failoverd {

namespace {

using IdentityDone = std::function<void(std::optional<ProviderIdentity>, std::string)>;

void answer_later(EventLoop& loop, IdentityDone done, std::optional<ProviderIdentity> identity,
                  std::string error) {
    loop.post(
        [done = std::move(done), identity = std::move(identity),
         error = std::move(error)]() mutable { done(std::move(identity), std::move(error)); });
}

// Second step for DigitalOcean: the droplet id is known; discover peers if asked to.
void with_droplet_id(const Config& config, EventLoop& loop, CurlMulti& curl, Instant deadline,
                     std::int64_t id, IdentityDone done) {
    ProviderIdentity identity;
    identity.provider_id = std::to_string(id);
    const std::string& tag = config.cluster.peers_from_tag;
    if (tag.empty()) {
        done(std::move(identity), "");
        return;
    }
    std::string token;
    try {
        token = read_token_file(config.provider.token_file);
    } catch (const std::exception& e) {
        done(std::nullopt, e.what());
        return;
    }
    discover_tag_peers(loop, curl, config.provider, token, tag, id, config.node.listen.port,
                       deadline,
                       [identity = std::move(identity), done = std::move(done)](
                           std::optional<std::vector<Endpoint>> peers, std::string error) mutable {
                           if (!peers) {
                               done(std::nullopt, std::move(error));
                               return;
                           }
                           identity.tag_peers = std::move(*peers);
                           done(std::move(identity), "");
                       });
}

}  // namespace

void resolve_provider_identity(const Config& config, EventLoop& loop, CurlMulti& curl,
                               Duration deadline, IdentityDone done) {
    switch (config.provider.type) {
        case ProviderType::None:
            answer_later(loop, std::move(done), ProviderIdentity{}, "");
            return;
        case ProviderType::Exec:
            answer_later(loop, std::move(done), ProviderIdentity{config.node.name, {}}, "");
            return;
        case ProviderType::DigitalOcean:
            break;
    }
    const Instant until = loop.now() + deadline;
    // The caller's Config need not outlive the look-up.
    auto copy = std::make_shared<const Config>(config);
    const std::string& configured = config.provider.droplet_id;
    if (configured != "auto") {
        const auto id = digitalocean::parse_id(configured);
        if (!id) {
            answer_later(loop, std::move(done), std::nullopt,
                         "droplet_id '" + configured + "' is not a positive decimal number");
            return;
        }
        // Through the loop, so `done` is never called from inside this function.
        loop.post([copy, &loop, &curl, until, id = *id, done = std::move(done)]() mutable {
            with_droplet_id(*copy, loop, curl, until, id, std::move(done));
        });
        return;
    }
    fetch_droplet_id(loop, curl, config.provider.metadata_base_url, until,
                     [copy, &loop, &curl, until, done = std::move(done)](
                         std::optional<std::int64_t> id, std::string error) mutable {
                         if (!id) {
                             done(std::nullopt, std::move(error));
                             return;
                         }
                         with_droplet_id(*copy, loop, curl, until, *id, std::move(done));
                     });
}

std::unique_ptr<Provider> make_provider(const Config& config, EventLoop& loop, CurlMulti& curl,
                                        const std::string& provider_id) {
    switch (config.provider.type) {
        case ProviderType::None:
            return nullptr;
        case ProviderType::DigitalOcean:
            return std::make_unique<DigitalOceanProvider>(loop, curl, config.provider, provider_id);
        case ProviderType::Exec:
            return std::make_unique<ExecProvider>(
                loop, config.provider, provider_id.empty() ? config.node.name : provider_id);
    }
    throw std::invalid_argument("unknown provider type");
}

void add_outcome_counts(nlohmann::json& out,
                        const std::map<ProviderOutcome, std::uint64_t>& outcomes) {
    std::uint64_t failures = 0;
    nlohmann::json counts = nlohmann::json::object();
    for (const auto& [outcome, n] : outcomes) {
        counts[std::string(to_string(outcome))] = n;
        if (outcome != ProviderOutcome::Ok) {
            failures += n;
        }
    }
    out["failures"] = failures;
    out["outcomes"] = std::move(counts);
}

}  // namespace failoverd
