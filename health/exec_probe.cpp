#include "health/exec_probe.hpp"

#include <algorithm>
#include <utility>

#include "daemon/core/text_escape.hpp"

namespace failoverd::health {

namespace {

constexpr std::size_t kReasonLineBytes = 200;

ProbeResult make(Verdict verdict, std::string reason) {
    ProbeResult r;
    r.verdict = verdict;
    r.reason = std::move(reason);
    return r;
}

}  // namespace

ExecProbeParams ExecProbeParams::from_config(const CheckConfig& check) {
    ExecProbeParams p;
    p.command = check.command;
    p.timeout = check.timeout;
    return p;
}

ProbeResult exec_verdict(const ExecProbeParams& params, const ChildExit& exit,
                         const std::string& first_line) {
    if (!exit.spawned) {
        return make(Verdict::Error, "cannot run " + exit.spawn_error);
    }
    const std::string detail = first_line.empty() ? "" : ": " + first_line;
    if (exit.timed_out) {
        return make(Verdict::TimedOut, exit.describe(params.timeout) + detail);
    }
    return make(exit.success() ? Verdict::Pass : Verdict::Fail, exit.describe() + detail);
}

ExecProbe::ExecProbe(EventLoop& loop, ExecProbeParams params)
    : loop_(loop), params_(std::move(params)) {}

ExecProbe::~ExecProbe() = default;

void ExecProbe::start(std::function<void(ProbeResult)> done) {
    cancel();
    const std::uint64_t run = ++run_;
    first_stdout_.clear();
    first_stderr_.clear();
    ChildSpec spec;
    spec.argv = params_.command;
    spec.timeout = params_.timeout;
    spec.kill_grace = params_.kill_grace;
    spec.max_line_bytes = kReasonLineBytes;
    spec.on_line = [this, run](OutputStream stream, std::string_view line) {
        std::string& first = stream == OutputStream::Stdout ? first_stdout_ : first_stderr_;
        if (run == run_ && first.empty() && line.find_first_not_of(" \t") != line.npos) {
            first = escape_text(line);
        }
    };
    child_ = std::make_unique<ChildProcess>(loop_, std::move(spec));
    ChildProcess* child = child_.get();
    child->start([this, run, child, done = std::move(done)](const ChildExit& exit) {
        std::unique_ptr<ChildProcess> finished = take_child(child);
        if (run != run_) {
            return;  // cancelled
        }
        const std::string& line = first_stdout_.empty() ? first_stderr_ : first_stdout_;
        done(exec_verdict(params_, exit, line));
    });
}

void ExecProbe::cancel() {
    ++run_;
    if (child_) {
        child_->terminate();
        stopping_.push_back(std::move(child_));
    }
}

std::unique_ptr<ChildProcess> ExecProbe::take_child(ChildProcess* child) {
    if (child_.get() == child) {
        return std::move(child_);
    }
    const auto it = std::find_if(stopping_.begin(), stopping_.end(),
                                 [child](const auto& c) { return c.get() == child; });
    if (it == stopping_.end()) {
        return nullptr;
    }
    std::unique_ptr<ChildProcess> out = std::move(*it);
    stopping_.erase(it);
    return out;
}

}  // namespace failoverd::health
