// tests/fakes/fake_docker_engine.py as a child process of the test, driven by the test's
// EventLoop, with its socket and state file in a fresh temporary directory. Shared by the
// docker probe and docker event tests: the fake stands in for the faults a real dockerd will
// not produce on demand (hang, garbage JSON, 500, a stream that breaks).
#pragma once

#include <doctest/doctest.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "daemon/shell/child_process.hpp"
#include "daemon/shell/event_loop.hpp"

namespace failoverd::testing {

// Debian's python3 (a build dependency) starts in a fraction of the time of a pyenv shim.
inline std::string test_python() {
    return ::access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

inline bool is_socket(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

class FakeDockerEngine {
  public:
    // The machine running the tests may be loaded: a generous deadline, never a sleep.
    static constexpr Duration kStartDeadline = std::chrono::seconds(30);

    FakeDockerEngine(EventLoop& loop, const std::string& state_json) : loop_(loop) {
        char tmpl[] = "/tmp/failoverd-docker-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir_ = tmpl;
        socket_ = dir_ + "/docker.sock";
        state_ = dir_ + "/state.json";
        set_state(state_json);

        // Wait for the socket by inotify: the fake renames it into place once it listens.
        const int watch = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        REQUIRE(watch >= 0);
        REQUIRE(::inotify_add_watch(watch, dir_.c_str(), IN_MOVED_TO | IN_CREATE) >= 0);
        EventSource source = loop_.add_io(watch, EPOLLIN, [watch](std::uint32_t) {
            char buf[4096];
            while (::read(watch, buf, sizeof buf) > 0) {
            }
        });

        ChildSpec spec;
        spec.argv = {test_python(), std::string(FAILOVERD_FAKES_DIR) + "/fake_docker_engine.py",
                     socket_, "--state", state_};
        spec.on_line = [this](OutputStream, std::string_view line) {
            output_.append(line).append("\n");
        };
        child_ = std::make_unique<ChildProcess>(loop_, std::move(spec));
        child_->start([this](const ChildExit& exit) {
            exited_ = true;
            exit_ = exit.describe();
        });
        const bool up =
            loop_.run_until([this] { return exited_ || is_socket(socket_); }, kStartDeadline);
        source.reset();
        ::close(watch);
        REQUIRE_MESSAGE(!exited_, "fake engine exited early: " << exit_ << "\n" << output_);
        REQUIRE_MESSAGE(up, "fake engine socket did not appear at " << socket_);
    }

    FakeDockerEngine(EventLoop& loop, const nlohmann::json& state)
        : FakeDockerEngine(loop, state.dump()) {}

    FakeDockerEngine(const FakeDockerEngine&) = delete;
    FakeDockerEngine& operator=(const FakeDockerEngine&) = delete;

    ~FakeDockerEngine() {
        if (child_ && !exited_) {
            child_->terminate();
            loop_.run_until([this] { return exited_; }, kStartDeadline);
        }
        child_.reset();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }

    // Written to a temporary name and renamed, so the fake never reads half a file.
    void set_state(const std::string& json) {
        const std::string tmp = state_ + ".tmp";
        {
            std::ofstream out(tmp);
            out << json;
        }
        std::filesystem::rename(tmp, state_);
    }

    void set_state(const nlohmann::json& state) { set_state(state.dump()); }

    const std::string& socket() const { return socket_; }
    const std::string& dir() const { return dir_; }

  private:
    EventLoop& loop_;
    std::string dir_;
    std::string socket_;
    std::string state_;
    std::unique_ptr<ChildProcess> child_;
    bool exited_ = false;
    std::string exit_;
    std::string output_;
};

}  // namespace failoverd::testing
