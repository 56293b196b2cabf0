// Peers from a droplet tag (`peers_from_tag`): the tagged droplets' private IPv4 addresses
// (public when a droplet has none), this droplet excluded, listed through the API.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "daemon/config.hpp"
#include "daemon/core/time.hpp"
#include "daemon/shell/curl_multi.hpp"
#include "daemon/shell/event_loop.hpp"
#include "provider/digitalocean_api.hpp"

namespace failoverd {

// The pure part: endpoints for `droplets` on `port`, without `self_id`, in listing order;
// droplets with no IPv4 address are skipped.
std::vector<Endpoint> tag_peer_endpoints(const std::vector<digitalocean::Droplet>& droplets,
                                         std::int64_t self_id, std::uint16_t port);

// Lists every page of droplets tagged `tag` through the API (config.api_base_url, `token`).
// Transient failures (5xx, timeouts, 429) are retried with backoff until `deadline`; 401/403,
// 404 and other 4xx fail at once, as does a tag no droplet carries. `done` is called once,
// from the loop, with the peers or with an operator message. Never shows the token.
void discover_tag_peers(
    EventLoop& loop, CurlMulti& curl, const ProviderConfig& config, const std::string& token,
    const std::string& tag, std::int64_t self_id, std::uint16_t port, Instant deadline,
    std::function<void(std::optional<std::vector<Endpoint>>, std::string)> done);

}  // namespace failoverd
