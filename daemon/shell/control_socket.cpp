#include "daemon/shell/control_socket.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

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

}  // namespace

struct ControlServer::Connection {
    int fd = -1;
    EventSource io;
    EventSource timeout;
    std::string in;
    std::string out;
    std::size_t out_offset = 0;
    bool close_after_flush = false;
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

void ControlServer::on_accept() {
    for (;;) {
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
        if (connections_.size() >= options_.max_connections) {
            ++counters_.rejected_busy;
            const std::string busy = error_response("busy: too many control connections").dump();
            const std::string line = busy + "\n";
            [[maybe_unused]] const ssize_t n =
                send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            close(fd);
            continue;
        }
        ++counters_.connections;
        auto c = std::make_unique<Connection>();
        c->fd = fd;
        c->io = loop_.add_io(fd, EPOLLIN, [this, fd](std::uint32_t events) {
            const auto it = connections_.find(fd);
            if (it != connections_.end()) {
                on_io(*it->second, events);
            }
        });
        c->timeout = loop_.add_timer(loop_.now() + options_.connection_timeout, [this, fd] {
            ++counters_.timeouts;
            spdlog::debug("closing control connection: no complete request within {}",
                          format_duration(options_.connection_timeout));
            close_connection(fd);
        });
        connections_.emplace(fd, std::move(c));
    }
}

void ControlServer::on_io(Connection& c, std::uint32_t events) {
    const int fd = c.fd;
    if ((events & EPOLLIN) != 0 && !c.close_after_flush) {
        char buf[4096];
        for (;;) {
            const ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n > 0) {
                c.in.append(buf, static_cast<std::size_t>(n));
                if (c.in.size() > options_.max_request_bytes + 1) {
                    break;  // process_input rejects it; stop reading more
                }
                continue;
            }
            if (n == 0) {
                c.close_after_flush = true;
                break;
            }
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                ++counters_.io_errors;
                close_connection(fd);
                return;
            }
            break;
        }
        process_input(c);
    }
    if ((events & (EPOLLERR | EPOLLHUP)) != 0 && c.out.size() == c.out_offset) {
        close_connection(fd);
        return;
    }
    flush(c);
}

void ControlServer::process_input(Connection& c) {
    std::size_t start = 0;
    for (;;) {
        const std::size_t nl = c.in.find('\n', start);
        if (nl == std::string::npos) {
            break;
        }
        const std::string_view line(c.in.data() + start, nl - start);
        start = nl + 1;
        if (line.size() > options_.max_request_bytes) {
            ++counters_.rejected_oversized;
            queue_response(
                c, error_response("request exceeds " + std::to_string(options_.max_request_bytes) +
                                  " bytes"));
            c.close_after_flush = true;
            c.in.clear();
            return;
        }
        if (line.find_first_not_of(" \t\r") == std::string_view::npos) {
            continue;
        }
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
    if (c.in.size() > options_.max_request_bytes) {
        ++counters_.rejected_oversized;
        queue_response(c, error_response("request exceeds " +
                                         std::to_string(options_.max_request_bytes) + " bytes"));
        c.close_after_flush = true;
        c.in.clear();
    }
}

void ControlServer::queue_response(Connection& c, const nlohmann::json& response) {
    std::string text = response.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (text.size() > options_.max_response_bytes) {
        text = error_response("response exceeds " + std::to_string(options_.max_response_bytes) +
                              " bytes")
                   .dump();
    }
    c.out += text;
    c.out += '\n';
}

void ControlServer::flush(Connection& c) {
    const int fd = c.fd;
    while (c.out_offset < c.out.size()) {
        const ssize_t n =
            send(fd, c.out.data() + c.out_offset, c.out.size() - c.out_offset, MSG_NOSIGNAL);
        if (n > 0) {
            c.out_offset += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c.io.set_io_events(EPOLLIN | EPOLLOUT);
            return;
        }
        ++counters_.io_errors;
        close_connection(fd);
        return;
    }
    c.out.clear();
    c.out_offset = 0;
    if (c.close_after_flush) {
        close_connection(fd);
        return;
    }
    c.io.set_io_events(EPOLLIN);
}

void ControlServer::close_connection(int fd) {
    const auto it = connections_.find(fd);
    if (it == connections_.end()) {
        return;
    }
    it->second->io.reset();
    it->second->timeout.reset();
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
    while (sent < line.size()) {
        wait_for(POLLOUT);
        const ssize_t n =
            send(fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            sent += static_cast<std::size_t>(n);
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
            throw ControlError(Kind::Protocol, "failoverd closed the connection without answering");
        } else if (errno != EAGAIN && errno != EINTR) {
            throw ControlError(Kind::Io, std::string("recv: ") + std::strerror(errno));
        }
    }
}

}  // namespace failoverd
