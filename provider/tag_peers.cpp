#include "provider/tag_peers.hpp"

#include <memory>
#include <utility>

#include "provider/digitalocean_provider.hpp"
#include "provider/startup_retry.hpp"

namespace failoverd {

namespace {

// A runaway pagination (a fake or proxy that always says "next") must end.
constexpr int kMaxPages = 50;

class TagPeerDiscovery : public std::enable_shared_from_this<TagPeerDiscovery> {
  public:
    using Done = std::function<void(std::optional<std::vector<Endpoint>>, std::string)>;

    TagPeerDiscovery(EventLoop& loop, CurlMulti& curl, const ProviderConfig& config,
                     std::string token, std::string tag, std::int64_t self_id, std::uint16_t port,
                     Instant deadline, Done done)
        : curl_(curl),
          config_(config),
          token_(std::move(token)),
          tag_(std::move(tag)),
          self_id_(self_id),
          port_(port),
          retry_(loop, deadline),
          done_(std::move(done)) {}

    void fetch_page() {
        retry_.count_attempt();
        ProviderConfig per_attempt = config_;
        per_attempt.request_timeout = retry_.remaining(config_.request_timeout);
        curl_.perform(make_http_request(config_.api_base_url,
                                        digitalocean::tagged_droplets_request(tag_, page_), token_,
                                        per_attempt),
                      [self = shared_from_this()](HttpResponse r) { self->on_response(r); });
    }

  private:
    void on_response(const HttpResponse& r) {
        const digitalocean::ApiResponse api = to_api_response(r);
        const digitalocean::Classified c = digitalocean::classify_status(api, wall_clock_epoch_s());
        const std::string what =
            "listing droplets tagged '" + tag_ + "' at " + config_.api_base_url;
        switch (c.outcome) {
            case ProviderOutcome::Ok:
                break;
            case ProviderOutcome::Unauthorized:
                fail(what + ": the API refused the token (" + c.detail +
                     "); it needs droplet:read and tag:read");
                return;
            case ProviderOutcome::NotFound:
            case ProviderOutcome::Rejected:
                fail(what + ": " + c.detail);
                return;
            case ProviderOutcome::Locked:
            case ProviderOutcome::RateLimited:
            case ProviderOutcome::Transient:
                again(what + ": " + c.detail);
                return;
        }
        const auto page = digitalocean::parse_droplets(api.body, page_);
        if (!page) {
            again(what + ": unreadable droplet list (HTTP " + std::to_string(c.http_status) + ")");
            return;
        }
        droplets_.insert(droplets_.end(), page->droplets.begin(), page->droplets.end());
        if (page->has_next && page_ < kMaxPages) {
            ++page_;
            fetch_page();
            return;
        }
        if (droplets_.empty()) {
            fail(what + ": no droplet carries the tag");
            return;
        }
        done_(tag_peer_endpoints(droplets_, self_id_, port_), "");
    }

    void again(const std::string& error) {
        if (retry_.retry([self = shared_from_this()] { self->fetch_page(); })) {
            return;
        }
        fail(error + " (gave up after " + std::to_string(retry_.attempts()) + " attempt(s))");
    }

    void fail(const std::string& error) { done_(std::nullopt, redact(error, token_)); }

    CurlMulti& curl_;
    ProviderConfig config_;
    std::string token_;
    std::string tag_;
    std::int64_t self_id_;
    std::uint16_t port_;
    StartupRetry retry_;
    Done done_;
    int page_ = 1;
    std::vector<digitalocean::Droplet> droplets_;
};

}  // namespace

std::vector<Endpoint> tag_peer_endpoints(const std::vector<digitalocean::Droplet>& droplets,
                                         std::int64_t self_id, std::uint16_t port) {
    std::vector<Endpoint> out;
    for (const auto& d : droplets) {
        if (d.id == self_id) {
            continue;
        }
        const std::string& address = d.private_ipv4.empty() ? d.public_ipv4 : d.private_ipv4;
        if (address.empty()) {
            continue;
        }
        const bool seen = std::any_of(out.begin(), out.end(),
                                      [&](const Endpoint& e) { return e.host == address; });
        if (!seen) {
            out.push_back(Endpoint{address, port, 0});
        }
    }
    return out;
}

void discover_tag_peers(
    EventLoop& loop, CurlMulti& curl, const ProviderConfig& config, const std::string& token,
    const std::string& tag, std::int64_t self_id, std::uint16_t port, Instant deadline,
    std::function<void(std::optional<std::vector<Endpoint>>, std::string)> done) {
    auto discovery = std::make_shared<TagPeerDiscovery>(loop, curl, config, token, tag, self_id,
                                                        port, deadline, std::move(done));
    discovery->fetch_page();
}

}  // namespace failoverd
