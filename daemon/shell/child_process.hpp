// Child processes inside the loop: posix_spawn into a new session (so the process group is
// the pid and a kill reaches grandchildren), output as lines through non-blocking pipes,
// timeout as SIGTERM to the group then SIGKILL after a grace period. When the command itself
// exits, whatever it left running in its group gets SIGTERM, then SIGKILL after the grace
// period (ProcessCleanup::None leaves them alone). Never a blocking wait.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/config.hpp"
#include "daemon/core/time.hpp"
#include "daemon/shell/event_loop.hpp"

namespace failoverd {

enum class OutputStream { Stdout, Stderr };

constexpr std::string_view to_string(OutputStream s) {
    return s == OutputStream::Stdout ? "stdout" : "stderr";
}

struct ChildSpec {
    std::string name;               // for log lines ("[web] hook notify_master"); empty: argv[0]
    std::vector<std::string> argv;  // argv[0] is looked up in PATH when it has no '/'
    std::vector<std::pair<std::string, std::string>> env;  // added to (or replacing) ours
    std::string working_directory;                         // empty: ours
    Duration timeout{0};                                   // 0: no limit
    Duration kill_grace = std::chrono::seconds(2);         // SIGTERM -> SIGKILL
    std::size_t max_line_bytes = 4096;                     // longer lines are cut
    std::size_t max_output_bytes = 1024 * 1024;            // per process; the rest is dropped
    // ProcessGroup: signals go to the whole group, and the group is cleaned up when the
    // command exits. None: only the command's own process is ever signalled.
    ProcessCleanup cleanup = ProcessCleanup::ProcessGroup;

    // One call per line without its newline; an unterminated last line is delivered at exit.
    std::function<void(OutputStream, std::string_view)> on_line;
};

struct ChildExit {
    bool spawned = false;
    std::string spawn_error;               // why posix_spawn failed ("No such file or directory")
    std::optional<int> exit_code;          // exited normally
    std::optional<int> signal;             // killed by this signal
    bool timed_out = false;                // the timeout fired (SIGTERM sent to the group)
    bool killed = false;                   // escalated to SIGKILL
    Duration runtime{};                    // on the loop clock
    std::size_t output_bytes_dropped = 0;  // past max_output_bytes, read and discarded
    std::size_t output_lines_dropped = 0;  // lines that start in those bytes
    // The command exited leaving processes in its group: they got SIGTERM (and get SIGKILL
    // after kill_grace if any is still there).
    bool left_processes = false;

    bool success() const { return exit_code == 0; }
    // "exit 0", "exit 3", "killed by SIGTERM", "timed out after 1.00 s, killed by SIGKILL",
    // "cannot run: No such file or directory".
    std::string describe(Duration timeout = Duration{0}) const;
};

class ChildProcess {
  public:
    ChildProcess(EventLoop& loop, ChildSpec spec);
    // Still running: SIGKILL to the group (to the process only with ProcessCleanup::None),
    // the zombie is reaped by the loop, no callback.
    ~ChildProcess();
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    // Spawns once. `done` is called exactly once from the loop (never from inside start()),
    // after the child exited and its pending output was delivered; also when spawning failed.
    // `done` may destroy this object.
    void start(std::function<void(const ChildExit&)> done);

    // SIGTERM to the group (the process with ProcessCleanup::None) now, SIGKILL after
    // kill_grace; `done` still follows.
    void terminate();

    bool running() const { return pid_ > 0 && !exited_; }
    pid_t pid() const { return pid_; }

  private:
    struct Pipe {
        int fd = -1;
        OutputStream stream = OutputStream::Stdout;
        EventSource source;
        std::string partial;
        bool cutting = false;       // dropping the rest of an over-long line
        bool at_line_start = true;  // the last byte read was a newline (or none was read)
    };

    void on_readable(Pipe& pipe);
    void drain(Pipe& pipe);
    void close_pipe(Pipe& pipe);
    void take_bytes(Pipe& pipe, std::string_view bytes);
    void emit_line(Pipe& pipe, std::string_view line);
    void on_exit(const siginfo_t& info);
    void on_timeout();
    void on_grace_expired();
    void signal_group(int signo);
    void clean_up_group();
    void finish();

    EventLoop& loop_;
    ChildSpec spec_;
    std::function<void(const ChildExit&)> done_;
    pid_t pid_ = -1;
    bool started_ = false;
    bool exited_ = false;
    bool term_sent_ = false;
    Instant started_at_{};
    Pipe out_;
    Pipe err_;
    EventSource child_source_;
    Timer timeout_timer_;
    Timer kill_timer_;
    std::size_t output_bytes_ = 0;
    ChildExit result_;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // guards posted callbacks
};

}  // namespace failoverd
