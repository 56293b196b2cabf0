// The pure half of the Docker event stream: decode the answer to GET /events as it arrives
// (response head, chunked body, newline-delimited JSON), parse the events, and decide which
// checks an event concerns. No I/O and no clock in this file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "daemon/core/time.hpp"
#include "health/docker_verdict.hpp"

namespace failoverd::health {

// A line longer than this without a newline is not an event: the stream is treated as garbage.
inline constexpr std::size_t kMaxEventLineBytes = 1024 * 1024;
inline constexpr std::size_t kMaxResponseHeadBytes = 16 * 1024;

// The container events that can change a docker check's verdict.
inline constexpr const char* kWatchedDockerActions[] = {
    "start", "die", "stop", "kill", "oom", "destroy", "health_status", "pause", "unpause"};

struct DockerEvent {
    std::string type;    // "container"
    std::string action;  // "die", "health_status: unhealthy" (the Engine appends the status)
    std::string id;
    std::string name;                               // Actor.Attributes.name, no leading '/'
    std::map<std::string, std::string> attributes;  // the container's labels are in here too

    // "health_status: unhealthy" -> "health_status"; "die" -> "die".
    std::string_view base_action() const;
};

// One line of the stream; on failure, a reason for operators.
std::variant<DockerEvent, std::string> parse_docker_event(std::string_view line);

bool is_watched_action(std::string_view base_action);

// Events after which the container is not serving: die, kill, stop, oom, destroy, pause and
// health_status: unhealthy. A failing listing right after one confirms the engine's word.
bool event_signals_failure(const DockerEvent& event);

// Whether an event should re-run a check: a watched container event for a container the
// selector matches (by the name and labels the event carries) or one the check has seen
// running. An event without a name concerns every check (conservative).
bool event_concerns(const DockerEvent& event, const DockerSelector& selector,
                    const std::set<std::string>& known_names);

// "1 s", "30 s", "250 ms", else format_duration: for reasons like "polling every 1 s".
std::string short_duration(Duration d);

// "/v1.41/events?filters=..." (escaped), filtered to container events of the watched actions.
std::string docker_events_target(std::string_view api_version);

// The request bytes for GET `target` on a unix socket.
std::string docker_events_request(std::string_view target);

// Incremental decoder of one HTTP/1.1 response carrying newline-delimited JSON: feed it bytes
// in chunks of any size (half an event, several at once) and collect whole events.
class DockerEventDecoder {
  public:
    enum class State { Head, Body, Ended, Failed };

    // Appends complete events to `out`. Returns false once the stream is unusable (error()).
    bool feed(std::string_view bytes, std::vector<DockerEvent>& out);
    // The peer closed the connection: the reason the stream ended, as operators read it.
    std::string closed();

    State state() const { return state_; }
    bool head_complete() const { return state_ != State::Head && status_ != 0; }
    int status() const { return status_; }
    const std::string& error() const { return error_; }
    std::uint64_t events() const { return events_; }

  private:
    enum class Framing { Chunked, Length, UntilClose };
    enum class ChunkState { Size, Data, DataEnd, Trailer };

    bool fail(std::string reason);
    bool parse_head();
    bool body(std::string_view bytes, std::vector<DockerEvent>& out);
    bool lines(std::string_view bytes, std::vector<DockerEvent>& out);

    State state_ = State::Head;
    Framing framing_ = Framing::UntilClose;
    ChunkState chunk_state_ = ChunkState::Size;
    std::string head_;
    std::string chunk_line_;
    std::uint64_t remaining_ = 0;  // of the current chunk, or of a Content-Length body
    std::string line_;
    int status_ = 0;
    std::string error_;
    std::uint64_t events_ = 0;
};

}  // namespace failoverd::health
