#include "provider/droplet_metadata.hpp"

#include <memory>
#include <utility>

#include "provider/digitalocean_api.hpp"
#include "provider/startup_retry.hpp"

namespace failoverd {

namespace {

std::string trimmed(const std::string& text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) {
        return {};
    }
    return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

class MetadataIdFetch : public std::enable_shared_from_this<MetadataIdFetch> {
  public:
    MetadataIdFetch(EventLoop& loop, CurlMulti& curl, std::string url, Instant deadline,
                    std::function<void(std::optional<std::int64_t>, std::string)> done)
        : curl_(curl), url_(std::move(url)), retry_(loop, deadline), done_(std::move(done)) {}

    void attempt() {
        retry_.count_attempt();
        HttpRequest request;
        request.url = url_;
        request.timeout = retry_.remaining(kMetadataTimeout);
        request.connect_timeout = request.timeout;
        curl_.perform(std::move(request),
                      [self = shared_from_this()](HttpResponse r) { self->on_response(r); });
    }

  private:
    void on_response(const HttpResponse& r) {
        std::string error;
        if (!r.ok()) {
            error = r.error;
        } else if (r.status != 200) {
            error = "HTTP " + std::to_string(r.status);
        } else if (const auto id = digitalocean::parse_id(trimmed(r.body))) {
            done_(*id, "");
            return;
        } else {
            error = "answered '" + trimmed(r.body).substr(0, 40) + "', not a droplet id";
        }
        if (retry_.retry([self = shared_from_this()] { self->attempt(); })) {
            return;
        }
        done_(std::nullopt, "metadata service " + url_ + " gave no droplet id after " +
                                std::to_string(retry_.attempts()) + " attempt(s): " + error);
    }

    CurlMulti& curl_;
    std::string url_;
    StartupRetry retry_;
    std::function<void(std::optional<std::int64_t>, std::string)> done_;
};

}  // namespace

void fetch_droplet_id(EventLoop& loop, CurlMulti& curl, const std::string& metadata_base_url,
                      Instant deadline,
                      std::function<void(std::optional<std::int64_t>, std::string)> done) {
    std::string base = metadata_base_url;
    while (!base.empty() && base.back() == '/') {
        base.pop_back();
    }
    auto fetch = std::make_shared<MetadataIdFetch>(loop, curl, base + "/metadata/v1/id", deadline,
                                                   std::move(done));
    fetch->attempt();
}

}  // namespace failoverd
