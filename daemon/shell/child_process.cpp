#include "daemon/shell/child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <exception>
#include <map>

extern char** environ;

namespace failoverd {

namespace {

std::string signal_name(int signo) {
    const char* abbrev = sigabbrev_np(signo);
    return abbrev != nullptr ? std::string("SIG") + abbrev : "signal " + std::to_string(signo);
}

// The child's environment: ours with spec.env added or replacing.
std::vector<std::string> build_environment(
    const std::vector<std::pair<std::string, std::string>>& extra) {
    std::map<std::string, std::string> vars;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        const std::string entry(*e);
        const auto eq = entry.find('=');
        if (eq != std::string::npos) {
            vars[entry.substr(0, eq)] = entry.substr(eq + 1);
        }
    }
    for (const auto& [name, value] : extra) {
        vars[name] = value;
    }
    std::vector<std::string> out;
    out.reserve(vars.size());
    for (const auto& [name, value] : vars) {
        out.push_back(name + "=" + value);
    }
    return out;
}

// True while at least one process is in the group (EPERM: one we may not signal).
bool group_exists(pid_t pgid) {
    return kill(-pgid, 0) == 0 || errno == EPERM;
}

// After a command exited leaving processes in its group (already sent SIGTERM): looks every
// 100 ms and stops as soon as the group is empty, so the id is not signalled long after it
// could have been reused; SIGKILL to what is still there at `kill_at`.
void watch_group(EventLoop& loop, pid_t pgid, Instant kill_at, std::string name) {
    const Instant next = std::min(loop.now() + std::chrono::milliseconds(100), kill_at);
    loop.call_at(next, [&loop, pgid, kill_at, name = std::move(name)]() mutable {
        if (!group_exists(pgid)) {
            return;
        }
        if (loop.now() < kill_at) {
            watch_group(loop, pgid, kill_at, std::move(name));
            return;
        }
        if (kill(-pgid, SIGKILL) != 0 && errno != ESRCH) {
            spdlog::warn("{}: kill(-{}, SIGKILL) failed: {}", name, pgid, strerror(errno));
            return;
        }
        spdlog::info("{}: processes it left behind outlived SIGTERM: SIGKILL to process group {}",
                     name, pgid);
    });
}

}  // namespace

std::string ChildExit::describe(Duration timeout) const {
    if (!spawned) {
        return "cannot run: " + spawn_error;
    }
    std::string how;
    if (exit_code) {
        how = "exit " + std::to_string(*exit_code);
    } else if (signal) {
        how = "killed by " + signal_name(*signal);
    } else {
        how = "ended";
    }
    if (timed_out) {
        const std::string after =
            timeout > Duration{0} ? "timed out after " + format_duration(timeout) : "timed out";
        return after + ", " + how;
    }
    return how;
}

ChildProcess::ChildProcess(EventLoop& loop, ChildSpec spec) : loop_(loop), spec_(std::move(spec)) {
    out_.stream = OutputStream::Stdout;
    err_.stream = OutputStream::Stderr;
}

ChildProcess::~ChildProcess() {
    if (running()) {
        signal_group(SIGKILL);
        child_source_.reset();
        loop_.adopt_child(pid_);
    }
    close_pipe(out_);
    close_pipe(err_);
}

void ChildProcess::start(std::function<void(const ChildExit&)> done) {
    if (started_) {
        throw std::logic_error("ChildProcess::start called twice");
    }
    started_ = true;
    done_ = std::move(done);
    started_at_ = loop_.now();

    auto fail_later = [this](std::string why) {
        result_.spawned = false;
        result_.spawn_error = std::move(why);
        loop_.post([this, alive = std::weak_ptr<int>(alive_)] {
            if (!alive.expired()) {
                finish();
            }
        });
    };
    if (spec_.argv.empty()) {
        fail_later("empty command");
        return;
    }

    int out_pipe[2] = {-1, -1};
    int err_pipe[2] = {-1, -1};
    if (pipe2(out_pipe, O_CLOEXEC) != 0) {
        fail_later(std::string("pipe: ") + strerror(errno));
        return;
    }
    if (pipe2(err_pipe, O_CLOEXEC) != 0) {
        const int saved = errno;
        close(out_pipe[0]);
        close(out_pipe[1]);
        fail_later(std::string("pipe: ") + strerror(saved));
        return;
    }
    fcntl(out_pipe[0], F_SETFL, O_NONBLOCK);
    fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
    // Our sockets must not leak into checks and hooks.
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    if (!spec_.working_directory.empty()) {
        posix_spawn_file_actions_addchdir_np(&actions, spec_.working_directory.c_str());
    }

    // A new session makes the child a process group leader, so a kill of -pid reaches
    // everything it started. The loop blocks SIGCHLD (and maybe more): give the child a clean
    // mask and default dispositions.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t empty;
    sigemptyset(&empty);
    sigset_t all;
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr,
                             POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    std::vector<char*> argv;
    for (auto& a : spec_.argv) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    std::vector<std::string> env = build_environment(spec_.env);
    std::vector<char*> envp;
    for (auto& e : env) {
        envp.push_back(e.data());
    }
    envp.push_back(nullptr);

    pid_t pid = -1;
    const int rc =
        posix_spawnp(&pid, spec_.argv[0].c_str(), &actions, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close(out_pipe[1]);
    close(err_pipe[1]);
    if (rc != 0) {
        close(out_pipe[0]);
        close(err_pipe[0]);
        fail_later(spec_.argv[0] + ": " + strerror(rc));
        return;
    }
    pid_ = pid;
    result_.spawned = true;
    out_.fd = out_pipe[0];
    err_.fd = err_pipe[0];
    child_source_ = loop_.add_child(pid_, [this](const siginfo_t& info) { on_exit(info); });
    out_.source = loop_.add_io(out_.fd, EPOLLIN, [this](std::uint32_t) { on_readable(out_); });
    err_.source = loop_.add_io(err_.fd, EPOLLIN, [this](std::uint32_t) { on_readable(err_); });
    if (spec_.timeout > Duration{0}) {
        timeout_timer_ = Timer(loop_, [this] { on_timeout(); });
        timeout_timer_.arm_at(started_at_ + spec_.timeout);
    }
}

void ChildProcess::terminate() {
    if (!running() || term_sent_) {
        return;
    }
    term_sent_ = true;
    timeout_timer_.disarm();
    signal_group(SIGTERM);
    kill_timer_ = Timer(loop_, [this] { on_grace_expired(); });
    kill_timer_.arm_after(spec_.kill_grace);
}

void ChildProcess::on_timeout() {
    result_.timed_out = true;
    terminate();
}

void ChildProcess::on_grace_expired() {
    if (running()) {
        result_.killed = true;
        signal_group(SIGKILL);
    }
}

void ChildProcess::signal_group(int signo) {
    if (pid_ <= 0) {
        return;
    }
    const pid_t target = spec_.cleanup == ProcessCleanup::ProcessGroup ? -pid_ : pid_;
    if (kill(target, signo) != 0 && errno != ESRCH) {
        spdlog::warn("kill({}, {}) failed: {}", target, signal_name(signo), strerror(errno));
    }
}

void ChildProcess::clean_up_group() {
    // Called while the command is a zombie, whose pid keeps the group id from being reused.
    if (kill(-pid_, SIGTERM) != 0) {
        return;
    }
    int status = 0;
    waitpid(pid_, &status, WNOHANG);
    if (!group_exists(pid_)) {
        return;  // it was alone
    }
    result_.left_processes = true;
    std::string name = spec_.name.empty() ? spec_.argv.front() : spec_.name;
    watch_group(loop_, pid_, loop_.now() + spec_.kill_grace, std::move(name));
}

void ChildProcess::on_readable(Pipe& pipe) {
    drain(pipe);
}

void ChildProcess::drain(Pipe& pipe) {
    // Bounded, so a grandchild that keeps writing cannot hold the loop.
    char buf[16384];
    std::size_t budget = 4 * (spec_.max_output_bytes + sizeof buf);
    while (pipe.fd >= 0 && budget > 0) {
        const ssize_t n = read(pipe.fd, buf, sizeof buf);
        if (n > 0) {
            take_bytes(pipe, std::string_view(buf, static_cast<std::size_t>(n)));
            budget -= std::min(budget, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        close_pipe(pipe);  // EOF or a read error
        return;
    }
}

void ChildProcess::close_pipe(Pipe& pipe) {
    pipe.source.reset();
    if (pipe.fd >= 0) {
        close(pipe.fd);
        pipe.fd = -1;
    }
}

void ChildProcess::take_bytes(Pipe& pipe, std::string_view bytes) {
    if (output_bytes_ + bytes.size() > spec_.max_output_bytes) {
        const std::size_t room =
            spec_.max_output_bytes > output_bytes_ ? spec_.max_output_bytes - output_bytes_ : 0;
        const std::string_view dropped = bytes.substr(room);
        bytes = bytes.substr(0, room);
        if (!bytes.empty()) {
            pipe.at_line_start = bytes.back() == '\n';
        }
        // Lines that start in the dropped bytes; one already begun was (or will be) delivered.
        result_.output_bytes_dropped += dropped.size();
        result_.output_lines_dropped +=
            (pipe.at_line_start ? 1 : 0) +
            static_cast<std::size_t>(std::count(dropped.begin(), dropped.end() - 1, '\n'));
        pipe.at_line_start = dropped.back() == '\n';
    } else if (!bytes.empty()) {
        pipe.at_line_start = bytes.back() == '\n';
    }
    output_bytes_ += bytes.size();
    while (!bytes.empty()) {
        const auto nl = bytes.find('\n');
        const std::string_view segment = bytes.substr(0, nl);
        if (!pipe.cutting) {
            const std::size_t room = spec_.max_line_bytes - pipe.partial.size();
            pipe.partial.append(segment.substr(0, room));
            if (segment.size() > room) {
                emit_line(pipe, pipe.partial);
                pipe.partial.clear();
                pipe.cutting = true;
            } else if (nl != std::string_view::npos) {
                emit_line(pipe, pipe.partial);
                pipe.partial.clear();
            }
        }
        if (nl == std::string_view::npos) {
            return;
        }
        pipe.cutting = false;
        bytes.remove_prefix(nl + 1);
    }
}

void ChildProcess::emit_line(Pipe& pipe, std::string_view line) {
    if (!line.empty() && line.back() == '\r') {
        line.remove_suffix(1);
    }
    if (!spec_.on_line) {
        return;
    }
    try {
        spec_.on_line(pipe.stream, line);
    } catch (const std::exception& e) {
        loop_.note_callback_error();
        spdlog::error("ignoring exception in output line callback: {}", e.what());
    } catch (...) {
        loop_.note_callback_error();
        spdlog::error("ignoring unknown exception in output line callback");
    }
}

void ChildProcess::on_exit(const siginfo_t& info) {
    exited_ = true;
    if (info.si_code == CLD_EXITED) {
        result_.exit_code = info.si_status;
    } else {
        result_.signal = info.si_status;
    }
    // Still a zombie here, so the group id cannot have been reused yet: after a timeout or
    // terminate(), whatever the command left behind goes too; after a normal exit it gets
    // SIGTERM first.
    if (spec_.cleanup == ProcessCleanup::ProcessGroup) {
        if (term_sent_) {
            signal_group(SIGKILL);
        } else {
            clean_up_group();
        }
    }
    int status = 0;
    waitpid(pid_, &status, WNOHANG);
    for (Pipe* pipe : {&out_, &err_}) {
        drain(*pipe);
        if (!pipe->partial.empty() && !pipe->cutting) {
            emit_line(*pipe, pipe->partial);
        }
        pipe->partial.clear();
        close_pipe(*pipe);
    }
    finish();
}

void ChildProcess::finish() {
    timeout_timer_.disarm();
    kill_timer_.disarm();
    child_source_.reset();
    result_.runtime = loop_.now() - started_at_;
    auto done = std::move(done_);
    done_ = nullptr;
    const ChildExit result = result_;
    if (done) {
        done(result);  // may destroy this object: nothing after it touches members
    }
}

}  // namespace failoverd
