// libcurl's multi interface driven by the EventLoop (socket and timer callbacks as sd-event
// sources). One multi handle, so keep-alive connections are reused across requests.
#pragma once

#include <curl/curl.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/core/time.hpp"
#include "daemon/shell/event_loop.hpp"

namespace failoverd {

struct HttpRequest {
    std::string method = "GET";
    std::string url;
    // Sent as "name: value". Never logged (an Authorization header carries the API token).
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    std::optional<std::string> unix_socket_path;  // Docker: url "http://localhost/..."
    Duration timeout = std::chrono::seconds(10);  // whole transfer; 0 = no limit (streams)
    Duration connect_timeout = std::chrono::seconds(5);
    std::string ca_file;  // empty: the system store
    bool verify_tls = true;
    std::size_t max_body_bytes = 8 * 1024 * 1024;  // more is an error ("response body exceeds")
    // TCP keep-alive probes after this much idle time on the connection (0 = off): a cached
    // connection whose peer or NAT state is gone is found before the next request needs it.
    Duration tcp_keepalive_idle{0};
    // A cached connection idle longer than this is not reused (0 = curl's default, 118 s).
    Duration max_idle_reuse{0};

    // Streaming (Docker /events): when set, body chunks go here as they arrive and are not
    // collected in HttpResponse::body. Return false to abort the transfer (reported as done
    // with error "aborted by receiver").
    std::function<bool(std::string_view)> on_data;

    // Only open the connection (TCP, plus TLS for https), then finish: the TCP probe. Such a
    // connection is always fresh and never reused, so the probe really connects.
    bool connect_only = false;

    // The request goes out at most once. libcurl otherwise re-sends a request on a fresh
    // connection when a reused one dies before any reply byte, which for a POST that the
    // server already applied is a second, unasked-for POST. With this set the body is fed
    // through a read callback that cannot rewind, so such a transfer fails instead (error
    // kLostAfterSending) and the caller decides what to send next.
    bool send_once = false;
};

// HttpResponse::error of a send_once request whose connection closed after the request was
// sent and before any reply: the server may or may not have acted on it.
inline constexpr std::string_view kLostAfterSending =
    "connection closed after the request was sent, before any reply (not re-sent)";

struct HttpResponse {
    long status = 0;                             // 0 when no response arrived
    std::map<std::string, std::string> headers;  // names lower-case; of the final response
    std::string body;
    std::string error;  // empty on success, else curl's reason with detail
    CURLcode curl_code = CURLE_OK;
    int os_errno = 0;        // errno of the failed connect (ECONNREFUSED, ...), 0 if none
    bool timed_out = false;  // the transfer hit timeout or connect_timeout
    Duration total_time{};
    long new_connections = 0;  // connections this transfer opened; 0 when one was reused

    bool ok() const { return error.empty(); }
};

using RequestId = std::uint64_t;

class CurlMulti {
  public:
    explicit CurlMulti(EventLoop& loop);
    // Abandons running transfers without calling their callbacks.
    ~CurlMulti();
    CurlMulti(const CurlMulti&) = delete;
    CurlMulti& operator=(const CurlMulti&) = delete;

    // Starts a transfer. `done` is called exactly once from the loop (never from inside
    // perform()), unless the request is cancelled first. Environment proxies are ignored.
    RequestId perform(HttpRequest request, std::function<void(HttpResponse)> done);

    // Stops a transfer; its `done` is not called. Unknown or finished ids are ignored, so it
    // is safe to call from any callback, including the request's own on_data.
    void cancel(RequestId id);

    std::size_t active() const { return transfers_.size(); }

    // Counters for status output.
    std::uint64_t requests_started() const { return requests_started_; }
    std::uint64_t requests_failed() const { return requests_failed_; }

  private:
    struct Transfer;
    struct Socket;

    static int socket_callback(CURL* easy, curl_socket_t fd, int what, void* userp, void* socketp);
    static int timer_callback(CURLM* multi, long timeout_ms, void* userp);
    static size_t write_callback(char* data, size_t size, size_t count, void* userdata);
    static size_t header_callback(char* data, size_t size, size_t count, void* userdata);
    static size_t read_callback(char* buffer, size_t size, size_t count, void* userdata);
    static int seek_callback(void* userdata, curl_off_t offset, int origin);
    void on_socket_event(curl_socket_t fd, std::uint32_t revents);
    void on_timeout();
    void drive(curl_socket_t fd, int ev_bitmask);
    void collect_finished();
    void finish(RequestId id, CURLcode code);
    void remove_transfer(RequestId id);
    void fail_later(RequestId id, std::string error);

    EventLoop& loop_;
    CURLM* multi_ = nullptr;
    Timer timer_;
    RequestId next_id_ = 1;
    std::map<RequestId, std::unique_ptr<Transfer>> transfers_;
    std::map<curl_socket_t, std::unique_ptr<Socket>> sockets_;
    std::vector<RequestId> cancelled_in_curl_;  // removed once curl has returned
    int in_curl_ = 0;  // depth of curl_multi_socket_action calls on the stack
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // guards posted callbacks
    std::uint64_t requests_started_ = 0;
    std::uint64_t requests_failed_ = 0;
};

}  // namespace failoverd
