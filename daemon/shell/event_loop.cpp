#include "daemon/shell/event_loop.hpp"

#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <time.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <system_error>
#include <utility>

namespace failoverd {

namespace {

// The std::function behind one source lives on the heap and is freed by sd-event's destroy
// callback, after any dispatch in progress, so a callback may drop its own source.
template <typename Fn>
struct Box {
    EventLoop* loop;
    const char* kind;
    Fn fn;
};

template <typename B>
void destroy_box(void* userdata) {
    delete static_cast<B*>(userdata);
}

template <typename B, typename... Args>
int call_guarded(void* userdata, Args&&... args) {
    auto* box = static_cast<B*>(userdata);
    try {
        box->fn(std::forward<Args>(args)...);
    } catch (const std::exception& e) {
        box->loop->note_callback_error();
        spdlog::error("ignoring exception in {} callback: {}", box->kind, e.what());
    } catch (...) {
        box->loop->note_callback_error();
        spdlog::error("ignoring unknown exception in {} callback", box->kind);
    }
    return 0;  // a negative return would make sd-event disable the source
}

void check(int r, const char* what) {
    if (r < 0) {
        throw std::system_error(-r, std::generic_category(), what);
    }
}

// Adds the destroy callback right away so the box cannot leak; on failure frees it here.
template <typename B>
EventSource adopt_source(int r, sd_event_source* source, B* box, const char* what) {
    if (r < 0) {
        delete box;
        check(r, what);
    }
    const int d = sd_event_source_set_destroy_callback(source, destroy_box<B>);
    if (d < 0) {
        sd_event_source_disable_unref(source);
        delete box;
        check(d, "sd_event_source_set_destroy_callback");
    }
    return EventSource(source);
}

std::uint64_t to_usec(Instant t) {
    return t.time_since_epoch().count() <= 0 ? 0 : usec_since_epoch(t);
}

Instant monotonic_now() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return Instant{std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)};
}

constexpr std::uint64_t kAccuracyUsec = static_cast<std::uint64_t>(
    std::chrono::duration_cast<std::chrono::microseconds>(EventLoop::kTimerAccuracy).count());

}  // namespace

EventSource& EventSource::operator=(EventSource&& other) noexcept {
    if (this != &other) {
        reset();
        source_ = other.source_;
        other.source_ = nullptr;
    }
    return *this;
}

void EventSource::reset() {
    if (source_ != nullptr) {
        sd_event_source_disable_unref(source_);
        source_ = nullptr;
    }
}

void EventSource::set_enabled(int mode) {
    if (source_ != nullptr) {
        check(sd_event_source_set_enabled(source_, mode), "sd_event_source_set_enabled");
    }
}

bool EventSource::enabled() const {
    int mode = SD_EVENT_OFF;
    return source_ != nullptr && sd_event_source_get_enabled(source_, &mode) > 0 &&
           mode != SD_EVENT_OFF;
}

void EventSource::set_io_events(std::uint32_t events) {
    if (source_ != nullptr) {
        check(sd_event_source_set_io_events(source_, events), "sd_event_source_set_io_events");
    }
}

void EventSource::set_priority(std::int64_t priority) {
    if (source_ != nullptr) {
        check(sd_event_source_set_priority(source_, priority), "sd_event_source_set_priority");
    }
}

Timer::Timer(EventLoop& loop, std::function<void()> callback) : loop_(&loop) {
    using B = Box<std::function<void()>>;
    auto* box = new B{&loop, "timer", std::move(callback)};
    sd_event_source* s = nullptr;
    const int r = sd_event_add_time(
        loop.get(), &s, CLOCK_MONOTONIC, 0, kAccuracyUsec,
        [](sd_event_source*, std::uint64_t, void* userdata) { return call_guarded<B>(userdata); },
        box);
    source_ = adopt_source(r, s, box, "sd_event_add_time");
    source_.set_enabled(SD_EVENT_OFF);
}

void Timer::arm_at(Instant when) {
    if (!source_) {
        return;
    }
    deadline_ = when;
    check(sd_event_source_set_time(source_.get(), to_usec(when)), "sd_event_source_set_time");
    source_.set_enabled(SD_EVENT_ONESHOT);
}

void Timer::arm_after(Duration delay) {
    if (loop_ != nullptr) {
        arm_at(loop_->now() + delay);
    }
}

void Timer::disarm() {
    source_.set_enabled(SD_EVENT_OFF);
}

bool Timer::armed() const {
    return source_.enabled();
}

std::optional<Instant> Timer::deadline() const {
    if (!armed()) {
        return std::nullopt;
    }
    return deadline_;
}

EventLoop::EventLoop() {
    // Child sources need SIGCHLD blocked; so does a signalfd for it.
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    check(-pthread_sigmask(SIG_BLOCK, &mask, nullptr), "pthread_sigmask");
    check(sd_event_new(&event_), "sd_event_new");

    using B = Box<std::function<void()>>;
    auto* box = new B{this, "posted", [this] { run_posted(); }};
    sd_event_source* s = nullptr;
    const int r = sd_event_add_defer(
        event_, &s, [](sd_event_source*, void* userdata) { return call_guarded<B>(userdata); },
        box);
    post_source_ = adopt_source(r, s, box, "sd_event_add_defer");
    post_source_.set_enabled(SD_EVENT_OFF);
}

EventLoop::~EventLoop() {
    adopted_.clear();
    scheduled_.clear();
    post_source_.reset();
    posted_.clear();
    sd_event_unref(event_);
}

Instant EventLoop::now() const {
    std::uint64_t usec = 0;
    check(sd_event_now(event_, CLOCK_MONOTONIC, &usec), "sd_event_now");
    return instant_from_usec(usec);
}

EventSource EventLoop::add_timer(Instant when, std::function<void()> callback) {
    using B = Box<std::function<void()>>;
    auto* box = new B{this, "timer", std::move(callback)};
    sd_event_source* s = nullptr;
    const int r = sd_event_add_time(
        event_, &s, CLOCK_MONOTONIC, to_usec(when), kAccuracyUsec,
        [](sd_event_source*, std::uint64_t, void* userdata) { return call_guarded<B>(userdata); },
        box);
    return adopt_source(r, s, box, "sd_event_add_time");
}

EventSource EventLoop::add_io(int fd, std::uint32_t events,
                              std::function<void(std::uint32_t)> callback) {
    using B = Box<std::function<void(std::uint32_t)>>;
    auto* box = new B{this, "io", std::move(callback)};
    sd_event_source* s = nullptr;
    const int r = sd_event_add_io(
        event_, &s, fd, events,
        [](sd_event_source*, int, std::uint32_t revents, void* userdata) {
            return call_guarded<B>(userdata, revents);
        },
        box);
    return adopt_source(r, s, box, "sd_event_add_io");
}

EventSource EventLoop::add_signal(int signo,
                                  std::function<void(const signalfd_siginfo&)> callback) {
    using B = Box<std::function<void(const signalfd_siginfo&)>>;
    auto* box = new B{this, "signal", std::move(callback)};
    sd_event_source* s = nullptr;
    const int r = sd_event_add_signal(
        event_, &s, signo | SD_EVENT_SIGNAL_PROCMASK,
        [](sd_event_source*, const signalfd_siginfo* info, void* userdata) {
            return call_guarded<B>(userdata, *info);
        },
        box);
    return adopt_source(r, s, box, "sd_event_add_signal");
}

EventSource EventLoop::add_child(pid_t pid, std::function<void(const siginfo_t&)> callback) {
    using B = Box<std::function<void(const siginfo_t&)>>;
    auto* box = new B{this, "child", std::move(callback)};
    sd_event_source* s = nullptr;
    const int r = sd_event_add_child(
        event_, &s, pid, WEXITED,
        [](sd_event_source*, const siginfo_t* info, void* userdata) {
            return call_guarded<B>(userdata, *info);
        },
        box);
    return adopt_source(r, s, box, "sd_event_add_child");
}

void EventLoop::adopt_child(pid_t pid) {
    if (pid <= 0) {
        return;
    }
    adopted_[pid] = add_child(pid, [this, pid](const siginfo_t&) {
        int status = 0;
        waitpid(pid, &status, WNOHANG);
        adopted_.erase(pid);
    });
}

void EventLoop::call_at(Instant when, std::function<void()> callback) {
    const std::uint64_t id = next_scheduled_++;
    // Erasing the source from its own callback is safe: its box lives until dispatch ends.
    scheduled_[id] = add_timer(when, [this, id, callback = std::move(callback)] {
        scheduled_.erase(id);
        callback();
    });
}

void EventLoop::post(std::function<void()> callback) {
    posted_.push_back(std::move(callback));
    post_source_.set_enabled(SD_EVENT_ONESHOT);
}

void EventLoop::run_posted() {
    std::deque<std::function<void()>> batch;
    batch.swap(posted_);
    for (auto& fn : batch) {
        try {
            fn();
        } catch (const std::exception& e) {
            note_callback_error();
            spdlog::error("ignoring exception in posted callback: {}", e.what());
        } catch (...) {
            note_callback_error();
            spdlog::error("ignoring unknown exception in posted callback");
        }
    }
}

int EventLoop::run() {
    return sd_event_loop(event_);
}

void EventLoop::exit(int code) {
    sd_event_exit(event_, code);
}

bool EventLoop::run_until(const std::function<bool()>& done, Duration max_wait) {
    const Instant deadline = monotonic_now() + max_wait;
    while (!done()) {
        const Instant now = monotonic_now();
        if (now >= deadline) {
            return done();
        }
        const auto remaining =
            std::chrono::duration_cast<std::chrono::microseconds>(deadline - now).count() + 1;
        const int r = sd_event_run(event_, static_cast<std::uint64_t>(remaining));
        if (r < 0) {
            if (r != -ESTALE) {
                spdlog::error("sd_event_run failed: {}", std::strerror(-r));
            }
            return done();
        }
    }
    return true;
}

bool EventLoop::enable_watchdog() {
    return sd_event_set_watchdog(event_, 1) > 0;
}

}  // namespace failoverd
