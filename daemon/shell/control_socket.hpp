// The control socket: newline-delimited JSON requests and responses over a unix stream socket,
// served inside the loop (non-blocking accept, read and write; size cap and timeout per
// connection), plus the small blocking client failoverctl uses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "daemon/core/time.hpp"
#include "daemon/shell/event_loop.hpp"

namespace failoverd {

inline constexpr const char* kDefaultControlSocket = "/run/failoverd/control.sock";

struct ControlServerOptions {
    std::size_t max_request_bytes = 64 * 1024;  // one request line, newline excluded
    std::size_t max_response_bytes = 4 * 1024 * 1024;
    Duration connection_timeout = std::chrono::seconds(5);  // whole connection, idle or not
    std::size_t max_connections = 16;
};

struct ControlServerCounters {
    std::uint64_t connections = 0;
    std::uint64_t requests = 0;
    std::uint64_t rejected_busy = 0;       // over max_connections
    std::uint64_t rejected_oversized = 0;  // request line over max_request_bytes
    std::uint64_t rejected_malformed = 0;  // not a JSON object
    std::uint64_t timeouts = 0;
    std::uint64_t io_errors = 0;
};

class ControlServer {
  public:
    // Answers one request; runs inside the loop, so it must not block. An exception becomes
    // {"ok": false, "error": what()}.
    using Handler = std::function<nlohmann::json(const nlohmann::json& request)>;

    // Start-up: creates the parent directory (0755) when missing, removes a stale socket left
    // by a dead daemon, binds with mode 0600 and listens. Throws std::runtime_error when another
    // daemon answers on `path`, when `path` is something other than a socket, or on a failure.
    ControlServer(EventLoop& loop, std::string path, Handler handler,
                  ControlServerOptions options = {});
    // Closes every connection and removes the socket file.
    ~ControlServer();
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    const std::string& path() const { return path_; }
    std::size_t open_connections() const { return connections_.size(); }
    const ControlServerCounters& counters() const { return counters_; }

  private:
    struct Connection;

    void on_accept();
    void on_io(Connection& c, std::uint32_t events);
    void process_input(Connection& c);
    void queue_response(Connection& c, const nlohmann::json& response);
    void flush(Connection& c);
    void close_connection(int fd);

    EventLoop& loop_;
    std::string path_;
    Handler handler_;
    ControlServerOptions options_;
    int listen_fd_ = -1;
    EventSource listen_source_;
    std::map<int, std::unique_ptr<Connection>> connections_;
    ControlServerCounters counters_;
};

class ControlError : public std::runtime_error {
  public:
    enum class Kind {
        NotRunning,        // no socket, or nobody listening on it
        PermissionDenied,  // the socket is owner-only
        Timeout,
        Protocol,  // closed early, oversized or malformed response
        Io,
    };
    ControlError(Kind kind, const std::string& message)
        : std::runtime_error(message), kind_(kind) {}
    Kind kind() const { return kind_; }

  private:
    Kind kind_;
};

// Blocking client for failoverctl (never for the daemon): connects, sends `request` as one
// line, waits up to `timeout` in total for one response line and returns it parsed.
// Throws ControlError; kind NotRunning when no daemon listens on `path`.
nlohmann::json control_request(const std::string& path, const nlohmann::json& request,
                               Duration timeout = std::chrono::seconds(5));

}  // namespace failoverd
