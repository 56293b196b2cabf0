#include "daemon/shell/systemd_notify.hpp"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <cstdlib>
#include <cstring>

namespace failoverd {

namespace {

// One line of STATUS=: newlines would start new assignments.
std::string one_line(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        if (c == '\n' || c == '\r') {
            c = ' ';
        }
    }
    return out;
}

}  // namespace

bool SystemdNotify::available() {
    const char* socket = std::getenv("NOTIFY_SOCKET");
    return socket != nullptr && socket[0] != '\0';
}

void SystemdNotify::send(const std::string& text) {
    if (!available()) {
        return;
    }
    const int r = sd_notify(0, text.c_str());
    if (r > 0) {
        ++sent_;
    } else {
        ++failed_;
        spdlog::warn("ignoring failed sd_notify: {}", r < 0 ? std::strerror(-r) : "no socket");
    }
}

void SystemdNotify::ready(std::string_view status) {
    status_ = one_line(status);
    send("READY=1\nSTATUS=" + status_);
}

void SystemdNotify::status(std::string_view status) {
    std::string line = one_line(status);
    if (line == status_) {
        return;
    }
    status_ = std::move(line);
    send("STATUS=" + status_);
}

void SystemdNotify::reloading(Instant now) {
    send("RELOADING=1\nSTATUS=reloading configuration\nMONOTONIC_USEC=" +
         std::to_string(usec_since_epoch(now)));
    status_ = "reloading configuration";
}

void SystemdNotify::reloaded(std::string_view status) {
    status_ = one_line(status);
    send("READY=1\nSTATUS=" + status_);
}

void SystemdNotify::stopping(std::string_view status) {
    status_ = one_line(status);
    send("STOPPING=1\nSTATUS=" + status_);
}

bool SystemdNotify::enable_watchdog(EventLoop& loop) {
    return loop.enable_watchdog();
}

}  // namespace failoverd
