// Who am I: this droplet's id from the metadata service (provider-apis.md §1.7). The service
// may be slow or not yet up at boot, so start-up asks with a short timeout and retries.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "daemon/core/time.hpp"
#include "daemon/shell/curl_multi.hpp"
#include "daemon/shell/event_loop.hpp"

namespace failoverd {

// Per attempt, as go-metadata does.
inline constexpr Duration kMetadataTimeout = std::chrono::seconds(2);

// GETs {metadata_base_url}/metadata/v1/id until it answers a positive decimal id (whitespace
// trimmed), retrying anything else with backoff until `deadline` on the loop clock. `done` is
// called once, from the loop, with the id or with an operator message ("metadata service
// http://169.254.169.254/metadata/v1/id gave no droplet id after 5 attempts: ...").
void fetch_droplet_id(EventLoop& loop, CurlMulti& curl, const std::string& metadata_base_url,
                      Instant deadline,
                      std::function<void(std::optional<std::int64_t>, std::string)> done);

}  // namespace failoverd
