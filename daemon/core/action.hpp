// What the core asks the shell (or the simulator) to do. The core never does any of it itself.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "daemon/core/election.hpp"

namespace failoverd {

// Send `bytes` (a signed advert) once to every configured peer. Best effort: a lost datagram
// is what the protocol's timers are for.
struct SendAdvert {
    std::string instance;
    std::vector<std::uint8_t> bytes;
};

enum class ProviderOp {
    ReadHolder,  // who holds `ip` now (and is an action pending on it)
    Assign,      // assign `ip` to this node's provider identity
    ReadAction,  // status of action `action_id` on `ip`
};

constexpr std::string_view to_string(ProviderOp op) {
    switch (op) {
        case ProviderOp::ReadHolder:
            return "read-holder";
        case ProviderOp::Assign:
            return "assign";
        case ProviderOp::ReadAction:
            return "read-action";
    }
    return "?";
}

// Start one asynchronous provider call. The shell must answer every call with exactly one
// ProviderReplied carrying the same instance and request_id; a call that gets no answer within
// the shell's request timeout is answered with ProviderOutcome::Transient.
struct CallProvider {
    std::string instance;
    std::uint64_t request_id = 0;
    ProviderOp op = ProviderOp::ReadHolder;
    std::string ip;
    std::string action_id;  // ReadAction only
};

// Run the instance's notify hooks for this change (notify_master/_backup/_fault, or
// notify_stop when `to` is Init after Shutdown, then the generic `notify`).
struct RunHook {
    std::string instance;
    Role from = Role::Init;
    Role to = Role::Init;
    std::string reason;
};

// A role change, for the log line "[instance] FROM -> TO: reason" and STATUS=.
struct Transitioned {
    std::string instance;
    Role from = Role::Init;
    Role to = Role::Init;
    std::string reason;
};

// A line for the operator's log, at info, about the instance: why the core acts when nothing
// else logs it ("web-2 heard again after 3.40 s of silence: re-reading the holder").
struct LogNotice {
    std::string instance;
    std::string text;
};

using Action = std::variant<SendAdvert, CallProvider, RunHook, Transitioned, LogNotice>;

}  // namespace failoverd
