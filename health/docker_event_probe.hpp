// The Docker event stream: GET /events on the Engine's unix socket, kept open and read inside
// the event loop, so a docker check re-runs the moment a watched container changes state.
// A plain non-blocking socket rather than curl: the stream must tell "connected, headers
// received, idle" from "connected, no answer" (an engine that hangs), which curl's callbacks
// do not expose. The decoding is pure (health/docker_event_verdict.hpp).
//
// One stream per socket path, shared by every docker check on it: the checks of a reload's
// old and new ProbeRunner share it too, so a reload does not drop the stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "daemon/core/backoff.hpp"
#include "daemon/core/rng.hpp"
#include "daemon/core/time.hpp"
#include "daemon/shell/event_loop.hpp"
#include "daemon/shell/rate_limited_log.hpp"
#include "health/docker_event_verdict.hpp"

namespace failoverd::health {

struct DockerEventStreamOptions {
    // A connection that has not completed its response head by then is an engine that hangs.
    Duration head_timeout = std::chrono::seconds(5);
    BackoffPolicy backoff{std::chrono::milliseconds(100), 2.0, std::chrono::seconds(5), 0.5,
                          std::chrono::seconds(5)};
};

class DockerEventStream {
  public:
    enum class State { Connecting, Up, Down };

    struct Subscriber {
        std::function<void(const DockerEvent&)> on_event;
        // The stream (re)connected: events may have been missed, so re-run the check.
        std::function<void()> on_up;
    };

    // The stream for `socket_path` on `loop`, created (and connecting) on first use and closed
    // when the last holder lets go. Every holder must be gone before the loop is.
    static std::shared_ptr<DockerEventStream> shared(EventLoop& loop,
                                                     const std::string& socket_path);

    DockerEventStream(EventLoop& loop, std::string socket_path,
                      DockerEventStreamOptions options = {});
    ~DockerEventStream();
    DockerEventStream(const DockerEventStream&) = delete;
    DockerEventStream& operator=(const DockerEventStream&) = delete;

    // Subscribers are called from the loop, never from inside subscribe().
    std::uint64_t subscribe(Subscriber subscriber);
    void unsubscribe(std::uint64_t id);

    State state() const { return state_; }
    bool connected() const { return state_ == State::Up; }
    const std::string& socket_path() const { return socket_path_; }
    // Why the stream is down (or last went down); empty if it never did.
    const std::string& down_reason() const { return down_reason_; }
    // Times the stream came up again after having been up before.
    std::uint64_t reconnects() const { return reconnects_; }
    std::uint64_t events_received() const { return events_; }
    std::uint64_t connects() const { return connects_; }

  private:
    void connect();
    void on_io(std::uint32_t revents);
    bool flush();
    void read_available();
    void came_up();
    void drop(std::string reason);
    void close_socket();

    EventLoop& loop_;
    std::string socket_path_;
    DockerEventStreamOptions options_;
    Rng rng_;
    Backoff backoff_;
    RateLimitedLog log_;
    State state_ = State::Connecting;
    int fd_ = -1;
    EventSource io_;
    Timer head_timer_;
    Timer retry_timer_;
    std::string out_;
    std::size_t out_sent_ = 0;
    DockerEventDecoder decoder_;
    Instant up_since_{};
    bool ever_up_ = false;
    std::string down_reason_;
    std::uint64_t reconnects_ = 0;
    std::uint64_t events_ = 0;
    std::uint64_t connects_ = 0;
    std::uint64_t next_subscriber_ = 1;
    std::map<std::uint64_t, Subscriber> subscribers_;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // guards posted callbacks
};

}  // namespace failoverd::health
