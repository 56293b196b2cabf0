// The control socket: newline-delimited JSON requests and responses over a unix stream socket,
// served inside the loop (non-blocking accept, read and write; backpressure, size caps, fair
// slots and timeouts per connection), plus the small blocking client failoverctl uses.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "daemon/core/time.hpp"
#include "daemon/shell/event_loop.hpp"

namespace failoverd {

inline constexpr const char* kDefaultControlSocket = "/run/failoverd/control.sock";

struct ControlServerOptions {
    std::size_t max_request_bytes = 64 * 1024;  // one request line, newline excluded
    std::size_t max_response_bytes = 4 * 1024 * 1024;
    // Replies waiting for a client to read them: nothing more is read from or answered to a
    // connection while any reply is unsent, and one turn stops answering once this much waits
    // (so one connection holds at most this plus one response).
    std::size_t max_output_bytes = 256 * 1024;
    // Requests answered for one connection per loop turn; the rest wait in its input buffer
    // (and the socket) for a later turn, after the loop has served everything else.
    std::size_t max_requests_per_turn = 4;
    Duration connection_timeout = std::chrono::seconds(5);  // whole connection, idle or not
    Duration first_request_timeout = std::chrono::seconds(2);
    Duration write_stall_timeout = std::chrono::seconds(2);  // waiting for the client to read
    // Open to every uid that can reach the socket.
    std::size_t max_connections = 16;
    // More slots only for reserve_uids, so an operator always gets one.
    std::size_t reserved_connections = 4;
    // Each uid outside reserve_uids holds at most this many.
    std::size_t max_connections_per_uid = 8;
    std::vector<uid_t> reserve_uids = {0, ::geteuid()};
};

struct ControlServerCounters {
    std::uint64_t connections = 0;
    std::uint64_t requests = 0;
    std::uint64_t rejected_busy = 0;           // full, nothing to evict
    std::uint64_t rejected_per_uid = 0;        // the uid holds max_connections_per_uid already
    std::uint64_t rejected_oversized = 0;      // request line over max_request_bytes
    std::uint64_t rejected_malformed = 0;      // not a JSON object
    std::uint64_t evicted_idle = 0;            // closed for a newcomer: nothing sent or pending
    std::uint64_t evicted_not_reading = 0;     // closed for a newcomer: replies left unread
    std::uint64_t evicted_served = 0;          // closed for a reserve newcomer: answered before
    std::uint64_t timeouts = 0;                // connection_timeout
    std::uint64_t first_request_timeouts = 0;  // no complete request in first_request_timeout
    std::uint64_t closed_not_reading = 0;      // write_stall_timeout
    std::uint64_t turn_limits = 0;  // a turn stopped at max_requests_per_turn with more queued
    std::uint64_t io_errors = 0;
};

class ControlServer {
  public:
    // Answers one request; runs inside the loop, so it must not block. An exception becomes
    // {"ok": false, "error": what()}.
    using Handler = std::function<nlohmann::json(const nlohmann::json& request)>;

    // Start-up: creates the parent directory (0755) when missing, removes a stale socket left
    // by a dead daemon, binds with mode 0660 and listens. Throws std::runtime_error when another
    // daemon answers on `path`, when `path` is something other than a socket, or on a failure.
    // Its sources run below the loop's default priority: adverts, the UDP socket and timers
    // are always dispatched first.
    ControlServer(EventLoop& loop, std::string path, Handler handler,
                  ControlServerOptions options = {});
    // Closes every connection and removes the socket file.
    ~ControlServer();
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    const std::string& path() const { return path_; }
    std::size_t open_connections() const { return connections_.size(); }
    // Bytes held in the connections' input and output buffers.
    std::size_t buffered_bytes() const;
    const ControlServerCounters& counters() const { return counters_; }

  private:
    struct Connection;

    void on_accept();
    bool make_room(uid_t uid, bool reserve);
    Connection* pick_victim(std::optional<uid_t> uid, bool include_served);
    void on_io(Connection& c, std::uint32_t events);
    void on_deadline(Connection& c);
    bool read_some(Connection& c);
    bool process_input(Connection& c);
    void queue_response(Connection& c, const nlohmann::json& response);
    bool flush(Connection& c);
    void update(Connection& c);
    bool is_reserve_uid(uid_t uid) const;
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
