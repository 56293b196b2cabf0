#include "daemon/shell/control_socket.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

namespace failoverd {

namespace {

sockaddr_un unix_address(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
        throw std::runtime_error("control socket path '" + path + "' must be 1 to " +
                                 std::to_string(sizeof(addr.sun_path) - 1) + " bytes long");
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    return addr;
}

// True when something accepts connections on `path`.
bool socket_answers(const std::string& path) {
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return false;
    }
    const sockaddr_un addr = unix_address(path);
    const int r = connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    // EAGAIN: a listener whose backlog is full is still alive.
    const bool answers = r == 0 || errno == EAGAIN;
    close(fd);
    return answers;
}

nlohmann::json error_response(const std::string& message) {
    return {{"ok", false}, {"error", message}};
}

// Below SD_EVENT_PRIORITY_NORMAL, where adverts, the UDP socket and every timer run: sd-event
// dispatches one source per iteration, the most important pending one first.
constexpr std::int64_t kControlPriority = SD_EVENT_PRIORITY_NORMAL + 10;
constexpr int kAcceptsPerTurn = 8;
constexpr std::size_t kReadChunk = 4096;
constexpr uid_t kUnknownUid = static_cast<uid_t>(-1);

}  // namespace

struct ControlServer::Connection {
    int fd = -1;
    uid_t uid = kUnknownUid;
    EventSource io;
    Timer deadline;
    std::optional<Instant> armed_for;
    std::uint32_t events = EPOLLIN;
    std::string in;
    std::string out;
    std::size_t out_offset = 0;
    bool eof = false;  // the client shut down its side: answer what is complete, then close
    bool close_after_flush = false;
    Instant opened{};
    Instant last_activity{};
    // Since when the connection waits for its socket to become writable (the kernel reports
    // that only once the client has read most of what is queued), unset while it does not wait.
    std::optional<Instant> stalled_since;
    std::uint64_t requests = 0;

    bool output_pending() const { return out_offset < out.size(); }
    bool has_request() const { return in.find('\n') != std::string::npos; }
};

ControlServer::ControlServer(EventLoop& loop, std::string path, Handler handler,
                             ControlServerOptions options)
    : loop_(loop), path_(std::move(path)), handler_(std::move(handler)), options_(options) {
    const sockaddr_un addr = unix_address(path_);
    const std::filesystem::path parent = std::filesystem::path(path_).parent_path();
    if (!parent.empty() && !std::filesystem::exists(parent)) {
        std::error_code ec;
        std::filesystem::create_directories(parent, ec);
        if (ec) {
            throw std::runtime_error("cannot create directory " + parent.string() +
                                     " for the control socket: " + ec.message());
        }
        chmod(parent.c_str(), 0755);
    }
    struct stat st {};
    if (lstat(path_.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            throw std::runtime_error("control socket path " + path_ +
                                     " exists and is not a socket");
        }
        if (socket_answers(path_)) {
            throw std::runtime_error("another failoverd is already serving " + path_);
        }
        unlink(path_.c_str());  // stale, left by a daemon that died
    }
    listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (listen_fd_ < 0) {
        throw std::system_error(errno, std::generic_category(), "control socket");
    }
    // Owner and group (operators in the daemon's group may run failoverctl status, handover and
    // rollout) from the first moment: umask at bind, not a chmod afterwards.
    const mode_t old_mask = umask(0117);
    const int b = bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    const int bind_errno = errno;
    umask(old_mask);
    if (b != 0 || listen(listen_fd_, 16) != 0) {
        const int e = b != 0 ? bind_errno : errno;
        close(listen_fd_);
        listen_fd_ = -1;
        throw std::system_error(e, std::generic_category(), "cannot listen on " + path_);
    }
    listen_source_ = loop_.add_io(listen_fd_, EPOLLIN, [this](std::uint32_t) { on_accept(); });
    listen_source_.set_priority(kControlPriority);
}

ControlServer::~ControlServer() {
    listen_source_.reset();
    while (!connections_.empty()) {
        close_connection(connections_.begin()->first);
    }
    if (listen_fd_ >= 0) {
        close(listen_fd_);
        unlink(path_.c_str());
    }
}

std::size_t ControlServer::buffered_bytes() const {
    std::size_t total = 0;
    for (const auto& [fd, c] : connections_) {
        total += c->in.size() + (c->out.size() - c->out_offset);
    }
    return total;
}

bool ControlServer::is_reserve_uid(uid_t uid) const {
    return std::find(options_.reserve_uids.begin(), options_.reserve_uids.end(), uid) !=
           options_.reserve_uids.end();
}

void ControlServer::on_accept() {
    for (int accepted = 0; accepted < kAcceptsPerTurn; ++accepted) {
        const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                ++counters_.io_errors;
                spdlog::warn("ignoring control socket accept error: {}", std::strerror(errno));
            }
            return;
        }
        uid_t uid = kUnknownUid;
        ucred cred{};
        socklen_t len = sizeof cred;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
            uid = cred.uid;
        }
        const bool reserve = uid != kUnknownUid && is_reserve_uid(uid);
        if (!make_room(uid, reserve)) {
            const std::string line =
                error_response("busy: too many control connections").dump() + "\n";
            [[maybe_unused]] const ssize_t n =
                send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            close(fd);
            continue;
        }
        ++counters_.connections;
        auto c = std::make_unique<Connection>();
        c->fd = fd;
        c->uid = uid;
        c->opened = loop_.now();
        c->last_activity = c->opened;
        c->io = loop_.add_io(fd, EPOLLIN, [this, fd](std::uint32_t events) {
            const auto it = connections_.find(fd);
            if (it != connections_.end()) {
                on_io(*it->second, events);
            }
        });
        c->io.set_priority(kControlPriority);
        c->deadline = Timer(loop_, [this, fd] {
            const auto it = connections_.find(fd);
            if (it != connections_.end()) {
                on_deadline(*it->second);
            }
        });
        Connection& ref = *c;
        connections_.emplace(fd, std::move(c));
        update(ref);
    }
}

// Frees a slot for a newcomer when its uid or the server is at its limit: the connection idle
// the longest, else the one whose client has left replies unread the longest, else (for a
// reserve uid only) the oldest one already answered. False: the newcomer is refused.
bool ControlServer::make_room(uid_t uid, bool reserve) {
    if (!reserve) {
        const auto held = static_cast<std::size_t>(
            std::count_if(connections_.begin(), connections_.end(),
                          [uid](const auto& entry) { return entry.second->uid == uid; }));
        if (held >= options_.max_connections_per_uid) {
            Connection* victim = pick_victim(uid, false);
            if (victim == nullptr) {
                ++counters_.rejected_per_uid;
                spdlog::debug("refusing a control connection: uid {} holds {} already", uid, held);
                return false;
            }
            close_connection(victim->fd);
        }
    }
    const std::size_t limit =
        options_.max_connections + (reserve ? options_.reserved_connections : 0);
    if (connections_.size() < limit) {
        return true;
    }
    Connection* victim = pick_victim(std::nullopt, reserve);
    if (victim == nullptr) {
        ++counters_.rejected_busy;
        spdlog::debug("refusing a control connection: {} open, all in use", connections_.size());
        return false;
    }
    close_connection(victim->fd);
    return true;
}

ControlServer::Connection* ControlServer::pick_victim(std::optional<uid_t> uid,
                                                      bool include_served) {
    Connection* idle = nullptr;
    Connection* stalled = nullptr;
    Connection* served = nullptr;
    for (const auto& [fd, owned] : connections_) {
        Connection* c = owned.get();
        if (uid && c->uid != *uid) {
            continue;
        }
        if (c->stalled_since) {
            if (stalled == nullptr || c->stalled_since < stalled->stalled_since) {
                stalled = c;
            }
            continue;
        }
        int unread = 0;
        if (c->in.empty() && !c->eof && ioctl(c->fd, FIONREAD, &unread) == 0 && unread == 0) {
            if (idle == nullptr || c->last_activity < idle->last_activity) {
                idle = c;
            }
            continue;
        }
        if (c->requests > 0 && (served == nullptr || c->opened < served->opened)) {
            served = c;
        }
    }
    if (idle != nullptr) {
        ++counters_.evicted_idle;
        spdlog::debug("closing the idle control connection of uid {} for a newcomer", idle->uid);
        return idle;
    }
    if (stalled != nullptr) {
        ++counters_.evicted_not_reading;
        spdlog::debug(
            "closing the control connection of uid {} for a newcomer: its replies go "
            "unread",
            stalled->uid);
        return stalled;
    }
    if (include_served && served != nullptr) {
        ++counters_.evicted_served;
        spdlog::debug(
            "closing the control connection of uid {} for a reserve newcomer: {} "
            "requests answered",
            served->uid, served->requests);
        return served;
    }
    return nullptr;
}

void ControlServer::on_io(Connection& c, std::uint32_t events) {
    if ((events & (EPOLLERR | EPOLLHUP)) != 0) {
        close_connection(c.fd);  // the client is gone: nobody to answer
        return;
    }
    if ((events & EPOLLOUT) != 0) {
        c.stalled_since.reset();  // the client has made room
    }
    if (c.output_pending() && !flush(c)) {
        return;
    }
    if (!c.output_pending() && !c.close_after_flush) {
        if (!process_input(c) || !flush(c)) {
            return;
        }
    }
    update(c);
}

// One read per turn, and only once the buffered requests are answered: a client cannot make
// the loop read (or hold) more than about one request line ahead.
bool ControlServer::read_some(Connection& c) {
    char buf[kReadChunk];
    for (;;) {
        const ssize_t n = recv(c.fd, buf, sizeof buf, 0);
        if (n > 0) {
            c.in.append(buf, static_cast<std::size_t>(n));
            c.last_activity = loop_.now();
            return true;
        }
        if (n == 0) {
            c.eof = true;
            return true;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return true;
        }
        ++counters_.io_errors;
        close_connection(c.fd);
        return false;
    }
}

bool ControlServer::process_input(Connection& c) {
    std::size_t start = 0;
    std::size_t answered = 0;
    bool read_this_turn = false;
    const auto oversized = [&] {
        ++counters_.rejected_oversized;
        queue_response(c, error_response("request exceeds " +
                                         std::to_string(options_.max_request_bytes) + " bytes"));
        c.close_after_flush = true;
        c.in.clear();
        start = 0;
    };
    while (c.out.size() - c.out_offset < options_.max_output_bytes) {
        const std::size_t nl = c.in.find('\n', start);
        if (nl == std::string::npos) {
            if (c.in.size() - start > options_.max_request_bytes) {
                oversized();
                return true;
            }
            if (read_this_turn || c.eof) {
                break;
            }
            c.in.erase(0, start);
            start = 0;
            read_this_turn = true;
            if (!read_some(c)) {
                return false;
            }
            continue;
        }
        if (answered == options_.max_requests_per_turn) {
            ++counters_.turn_limits;
            break;
        }
        const std::string_view line(c.in.data() + start, nl - start);
        start = nl + 1;
        if (line.size() > options_.max_request_bytes) {
            oversized();
            return true;
        }
        if (line.find_first_not_of(" \t\r") == std::string_view::npos) {
            continue;
        }
        ++answered;
        ++c.requests;
        ++counters_.requests;
        nlohmann::json request = nlohmann::json::parse(line, nullptr, false);
        if (request.is_discarded() || !request.is_object()) {
            ++counters_.rejected_malformed;
            queue_response(c, error_response("request is not a JSON object"));
            continue;
        }
        nlohmann::json response;
        try {
            response = handler_(request);
        } catch (const std::exception& e) {
            response = error_response(e.what());
        }
        queue_response(c, response);
    }
    c.in.erase(0, start);
    return true;
}

void ControlServer::queue_response(Connection& c, const nlohmann::json& response) {
    std::string text = response.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (text.size() > options_.max_response_bytes) {
        text = error_response("response exceeds " + std::to_string(options_.max_response_bytes) +
                              " bytes")
                   .dump();
    }
    if (c.out_offset == c.out.size()) {
        c.out.clear();
        c.out_offset = 0;
    }
    c.out += text;
    c.out += '\n';
}

bool ControlServer::flush(Connection& c) {
    bool progress = false;
    while (c.output_pending()) {
        const ssize_t n =
            send(c.fd, c.out.data() + c.out_offset, c.out.size() - c.out_offset, MSG_NOSIGNAL);
        if (n > 0) {
            c.out_offset += static_cast<std::size_t>(n);
            progress = true;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        ++counters_.io_errors;
        close_connection(c.fd);
        return false;
    }
    if (progress) {
        c.last_activity = loop_.now();
    }
    if (!c.output_pending()) {
        c.out.clear();
        c.out_offset = 0;
    }
    return true;
}

// Chooses what wakes the connection next: EPOLLOUT while a reply waits (no reading meanwhile)
// or while complete requests wait for a later turn (a writable socket is ready at once, one
// whose client does not read never is), else EPOLLIN; and arms its earliest deadline.
void ControlServer::update(Connection& c) {
    std::uint32_t events = EPOLLIN;
    if (c.output_pending()) {
        events = EPOLLOUT;
    } else if (c.close_after_flush || (c.eof && !c.has_request())) {
        close_connection(c.fd);
        return;
    } else if (c.has_request()) {
        events = EPOLLOUT;
    }
    if (events != c.events) {
        c.io.set_io_events(events);
        c.events = events;
    }
    if (events == EPOLLIN) {
        c.stalled_since.reset();
    } else if (!c.stalled_since) {
        c.stalled_since = loop_.now();
    }
    Instant when = c.opened + options_.connection_timeout;
    if (c.requests == 0) {
        when = std::min(when, c.opened + options_.first_request_timeout);
    }
    if (c.stalled_since) {
        when = std::min(when, *c.stalled_since + options_.write_stall_timeout);
    }
    if (c.armed_for != when) {
        c.deadline.arm_at(when);
        c.armed_for = when;
    }
}

void ControlServer::on_deadline(Connection& c) {
    const Instant now = loop_.now();
    if (c.stalled_since && now >= *c.stalled_since + options_.write_stall_timeout) {
        ++counters_.closed_not_reading;
        spdlog::debug(
            "closing a control connection of uid {}: its replies unread for {} ({} "
            "requests answered)",
            c.uid, format_duration(options_.write_stall_timeout), c.requests);
    } else if (c.requests == 0 && now >= c.opened + options_.first_request_timeout) {
        ++counters_.first_request_timeouts;
        spdlog::debug("closing a control connection of uid {}: no complete request within {}",
                      c.uid, format_duration(options_.first_request_timeout));
    } else if (now >= c.opened + options_.connection_timeout) {
        ++counters_.timeouts;
        spdlog::debug("closing a control connection of uid {}: open for {}", c.uid,
                      format_duration(options_.connection_timeout));
    } else {
        c.armed_for.reset();
        update(c);
        return;
    }
    close_connection(c.fd);
}

void ControlServer::close_connection(int fd) {
    const auto it = connections_.find(fd);
    if (it == connections_.end()) {
        return;
    }
    it->second->io.reset();
    it->second->deadline = Timer();
    close(fd);
    connections_.erase(it);
}

nlohmann::json control_request(const std::string& path, const nlohmann::json& request,
                               Duration timeout) {
    using Kind = ControlError::Kind;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    sockaddr_un addr{};
    try {
        addr = unix_address(path);
    } catch (const std::exception& e) {
        throw ControlError(Kind::Io, e.what());
    }
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        throw ControlError(Kind::Io, std::string("socket: ") + std::strerror(errno));
    }
    struct Closer {
        int fd;
        ~Closer() { close(fd); }
    } closer{fd};
    const auto usec = std::chrono::duration_cast<std::chrono::microseconds>(timeout).count();
    timeval tv{static_cast<time_t>(usec / 1000000), static_cast<suseconds_t>(usec % 1000000)};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);  // bounds a connect to a full backlog
    if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        const int e = errno;
        const std::string why = "cannot connect to " + path + ": " + std::strerror(e);
        if (e == ENOENT || e == ECONNREFUSED || e == ENOTDIR) {
            throw ControlError(Kind::NotRunning, "failoverd is not running (" + why + ")");
        }
        if (e == EACCES || e == EPERM) {
            throw ControlError(Kind::PermissionDenied, why);
        }
        if (e == EAGAIN || e == EINPROGRESS) {
            throw ControlError(Kind::Timeout, why);
        }
        throw ControlError(Kind::Io, why);
    }

    auto wait_for = [&](short events) {
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                throw ControlError(Kind::Timeout, "no answer from failoverd on " + path +
                                                      " within " + format_duration(timeout));
            }
            pollfd p{fd, events, 0};
            const int r = poll(&p, 1, static_cast<int>(left.count()) + 1);
            if (r > 0) {
                return;
            }
            if (r < 0 && errno != EINTR) {
                throw ControlError(Kind::Io, std::string("poll: ") + std::strerror(errno));
            }
        }
    };

    const std::string line = request.dump() + "\n";
    std::size_t sent = 0;
    // A daemon that refuses the connection (busy) answers and closes at once, possibly before
    // the request is sent: its answer is still there to read, and says more than EPIPE.
    std::string send_error;
    while (sent < line.size()) {
        wait_for(POLLOUT);
        const ssize_t n =
            send(fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            sent += static_cast<std::size_t>(n);
        } else if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            send_error = std::string("send: ") + std::strerror(errno);
            break;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            throw ControlError(Kind::Io, std::string("send: ") + std::strerror(errno));
        }
    }

    constexpr std::size_t kMaxResponse = 16 * 1024 * 1024;
    std::string response;
    for (;;) {
        const std::size_t nl = response.find('\n');
        if (nl != std::string::npos) {
            nlohmann::json parsed = nlohmann::json::parse(response.substr(0, nl), nullptr, false);
            if (parsed.is_discarded()) {
                throw ControlError(Kind::Protocol, "malformed response from failoverd");
            }
            return parsed;
        }
        if (response.size() > kMaxResponse) {
            throw ControlError(Kind::Protocol, "response from failoverd is too large");
        }
        wait_for(POLLIN);
        char buf[8192];
        const ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            response.append(buf, static_cast<std::size_t>(n));
        } else if (n == 0) {
            if (!send_error.empty()) {
                throw ControlError(Kind::Io, send_error);
            }
            throw ControlError(Kind::Protocol, "failoverd closed the connection without answering");
        } else if (errno != EAGAIN && errno != EINTR) {
            throw ControlError(Kind::Io, send_error.empty()
                                             ? std::string("recv: ") + std::strerror(errno)
                                             : send_error);
        }
    }
}

}  // namespace failoverd
