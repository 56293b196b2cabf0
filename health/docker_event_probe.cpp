#include "health/docker_event_probe.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <utility>
#include <vector>

#include "health/docker_probe.hpp"

namespace failoverd::health {

namespace {

constexpr std::size_t kReadBytes = 64 * 1024;
// Reads per wake-up: a flood of events cannot starve the loop (the source is level-triggered,
// so the rest is read on the next turn).
constexpr int kReadsPerWakeup = 16;

std::string errno_reason(int err) {
    switch (err) {
        case ENOENT:
            return "no such socket";
        case ECONNREFUSED:
            return "connection refused";
        case EACCES:
        case EPERM:
            return "permission denied";
        case ENOTSOCK:
            return "not a socket";
        case EAGAIN:
            return "engine not accepting connections";
        default:
            return std::strerror(err);
    }
}

using Registry = std::map<std::pair<EventLoop*, std::string>, std::weak_ptr<DockerEventStream>>;

Registry& registry() {
    static Registry streams;
    return streams;
}

}  // namespace

std::shared_ptr<DockerEventStream> DockerEventStream::shared(EventLoop& loop,
                                                             const std::string& socket_path) {
    Registry& streams = registry();
    std::erase_if(streams, [](const auto& kv) { return kv.second.expired(); });
    const auto key = std::make_pair(&loop, socket_path);
    if (auto existing = streams[key].lock()) {
        return existing;
    }
    auto stream = std::make_shared<DockerEventStream>(loop, socket_path);
    streams[key] = stream;
    return stream;
}

DockerEventStream::DockerEventStream(EventLoop& loop, std::string socket_path,
                                     DockerEventStreamOptions options)
    : loop_(loop),
      socket_path_(std::move(socket_path)),
      options_(options),
      rng_(std::hash<std::string>{}(socket_path_) ^
           static_cast<std::uint64_t>(loop.now().time_since_epoch().count())),
      backoff_(options_.backoff) {
    head_timer_ = Timer(loop_, [this] {
        drop("engine sent no response to GET /events within " +
             short_duration(options_.head_timeout));
    });
    retry_timer_ = Timer(loop_, [this] { connect(); });
    // Connect from the loop, so a subscriber added right after construction sees the first up.
    retry_timer_.arm_at(loop_.now());
}

DockerEventStream::~DockerEventStream() {
    close_socket();
}

std::uint64_t DockerEventStream::subscribe(Subscriber subscriber) {
    const std::uint64_t id = next_subscriber_++;
    subscribers_.emplace(id, std::move(subscriber));
    return id;
}

void DockerEventStream::unsubscribe(std::uint64_t id) {
    subscribers_.erase(id);
}

void DockerEventStream::close_socket() {
    io_.reset();
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
    head_timer_.disarm();
}

void DockerEventStream::connect() {
    close_socket();
    decoder_ = DockerEventDecoder();
    out_ = docker_events_request(docker_events_target(kDockerApiVersion));
    out_sent_ = 0;
    ++connects_;

    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket_path_.size() >= sizeof(addr.sun_path)) {
        drop("socket path too long");
        return;
    }
    std::memcpy(addr.sun_path, socket_path_.c_str(), socket_path_.size() + 1);
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
        drop(std::string("socket: ") + std::strerror(errno));
        return;
    }
    // A unix-socket connect completes or fails at once (EAGAIN: the engine's backlog is full).
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 &&
        errno != EINPROGRESS) {
        drop(errno_reason(errno));
        return;
    }
    try {
        io_ = loop_.add_io(fd_, EPOLLIN | EPOLLOUT,
                           [this](std::uint32_t revents) { on_io(revents); });
    } catch (const std::exception& e) {
        drop(e.what());
        return;
    }
    head_timer_.arm_after(options_.head_timeout);
}

void DockerEventStream::on_io(std::uint32_t revents) {
    if ((revents & EPOLLOUT) != 0 && out_sent_ < out_.size()) {
        if (!flush()) {
            return;
        }
    }
    if ((revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) {
        read_available();
    }
}

bool DockerEventStream::flush() {
    while (out_sent_ < out_.size()) {
        const ssize_t n =
            ::send(fd_, out_.data() + out_sent_, out_.size() - out_sent_, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return true;
            }
            drop(std::string("sending the request: ") + std::strerror(errno));
            return false;
        }
        out_sent_ += static_cast<std::size_t>(n);
    }
    io_.set_io_events(EPOLLIN);
    return true;
}

void DockerEventStream::read_available() {
    std::vector<DockerEvent> events;
    std::string buffer(kReadBytes, '\0');
    const bool was_up = state_ == State::Up;
    std::string failure;
    for (int i = 0; i < kReadsPerWakeup && failure.empty(); ++i) {
        const ssize_t n = ::read(fd_, buffer.data(), buffer.size());
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                break;
            }
            failure = std::string("reading the event stream: ") + std::strerror(errno);
            break;
        }
        if (n == 0) {
            failure = decoder_.closed();
            break;
        }
        if (!decoder_.feed(std::string_view(buffer.data(), static_cast<std::size_t>(n)), events)) {
            failure = decoder_.error();
        } else if (decoder_.state() == DockerEventDecoder::State::Ended) {
            failure = decoder_.closed();
        }
    }
    if (!was_up && decoder_.head_complete() && decoder_.status() == 200 &&
        decoder_.state() != DockerEventDecoder::State::Failed) {
        came_up();
    }
    // Events that arrived before a failure are still true: deliver them, then drop.
    events_ += events.size();
    if (!events.empty()) {
        backoff_.reset();  // the engine speaks events: a later drop starts again from 100 ms
    }
    const std::weak_ptr<int> alive = alive_;
    for (const DockerEvent& ev : events) {
        std::vector<std::uint64_t> ids;
        for (const auto& [id, s] : subscribers_) {
            ids.push_back(id);
        }
        for (const std::uint64_t id : ids) {
            const auto it = subscribers_.find(id);
            if (it != subscribers_.end() && it->second.on_event) {
                it->second.on_event(ev);
            }
            if (alive.expired()) {
                return;
            }
        }
    }
    if (!failure.empty()) {
        drop(std::move(failure));
    }
}

void DockerEventStream::came_up() {
    head_timer_.disarm();
    state_ = State::Up;
    up_since_ = loop_.now();
    if (ever_up_) {
        ++reconnects_;
    }
    ever_up_ = true;
    log_.log(loop_.now(), spdlog::level::info, "up",
             "docker event stream on " + socket_path_ + " connected");
    // After the head: run every check once, since events may have been missed while down.
    loop_.post([this, alive = std::weak_ptr<int>(alive_)] {
        if (alive.expired() || state_ != State::Up) {
            return;
        }
        std::vector<std::uint64_t> ids;
        for (const auto& [id, s] : subscribers_) {
            ids.push_back(id);
        }
        for (const std::uint64_t id : ids) {
            const auto it = subscribers_.find(id);
            if (it != subscribers_.end() && it->second.on_up) {
                it->second.on_up();
            }
        }
    });
}

void DockerEventStream::drop(std::string reason) {
    const bool was_up = state_ == State::Up;
    const bool first_failure = state_ == State::Connecting;
    close_socket();
    if (was_up && loop_.now() - up_since_ >= options_.backoff.cap) {
        backoff_.reset();
    }
    state_ = State::Down;
    down_reason_ = std::move(reason);
    if (was_up || first_failure) {
        log_.log(loop_.now(), spdlog::level::warn, "down",
                 "docker event stream on " + socket_path_ + " down: " + down_reason_ +
                     "; docker checks poll on their interval until it reconnects");
    }
    retry_timer_.arm_after(backoff_.next_delay(rng_));
}

}  // namespace failoverd::health
