#include "tests/sim/fake_provider.hpp"

#include <algorithm>

namespace failoverd::sim {

const char* to_string(FakeOp op) {
    switch (op) {
        case FakeOp::ReadHolder:
            return "read-holder";
        case FakeOp::Assign:
            return "assign";
        case FakeOp::ReadAction:
            return "read-action";
    }
    return "?";
}

const char* to_string(FakeActionStatus s) {
    switch (s) {
        case FakeActionStatus::InProgress:
            return "in-progress";
        case FakeActionStatus::Completed:
            return "completed";
        case FakeActionStatus::Errored:
            return "errored";
    }
    return "?";
}

FakeProvider::FakeProvider(FakeProviderOptions options, std::uint64_t seed)
    : options_(options), rng_(seed) {}

void FakeProvider::add_ip(const std::string& ip, std::optional<std::int64_t> holder) {
    ips_[ip].holder = holder;
}

void FakeProvider::set_droplet_busy(std::int64_t droplet, Instant until) {
    busy_until_[droplet] = until;
}

Duration FakeProvider::one_way_latency() {
    const auto span =
        static_cast<std::uint64_t>((options_.latency_max - options_.latency_min).count());
    return options_.latency_min + Duration{static_cast<Duration::rep>(rng_.below(span + 1))};
}

std::optional<std::int64_t> FakeProvider::holder(const std::string& ip) const {
    const auto it = ips_.find(ip);
    return it == ips_.end() ? std::nullopt : it->second.holder;
}

bool FakeProvider::locked(const std::string& ip) const {
    const auto it = ips_.find(ip);
    return it != ips_.end() && it->second.pending.has_value();
}

int FakeProvider::moves_since(const std::string& ip, Instant since) const {
    int n = 0;
    for (const auto& h : history_) {
        if (h.ip == ip && h.at >= since) {
            ++n;
        }
    }
    return n;
}

FakeReply FakeProvider::read_holder(const IpState& s) const {
    FakeReply r;
    r.status = 200;
    r.locked = s.pending.has_value();
    r.holder = (r.locked && options_.holder_null_while_pending) ? std::nullopt : s.holder;
    return r;
}

bool FakeProvider::holds_other_ip(std::int64_t droplet, const std::string& except) const {
    for (const auto& [ip, s] : ips_) {
        if (ip != except && s.holder == droplet) {
            return true;
        }
    }
    return false;
}

// DigitalOcean: a rolling hour per token plus a 250/min burst limit whose 429 carries
// retry-after (provider-apis.md §1.5). Only requests that get through are logged.
bool FakeProvider::rate_limit(std::int64_t caller, Instant now, FakeReply& reply) {
    Token& t = tokens_[caller];
    while (!t.minute.empty() && now - t.minute.front() >= std::chrono::minutes(1)) {
        t.minute.pop_front();
    }
    while (!t.hour.empty() && now - t.hour.front() >= std::chrono::hours(1)) {
        t.hour.pop_front();
    }
    if (static_cast<int>(t.hour.size()) >= options_.limit_per_hour) {
        reply.status = 429;
        reply.message = "too_many_requests";
        return true;
    }
    if (static_cast<int>(t.minute.size()) >= options_.limit_per_minute) {
        reply.status = 429;
        reply.message = "too_many_requests";
        const Duration wait = t.minute.front() + std::chrono::minutes(1) - now;
        reply.retry_after = std::chrono::ceil<std::chrono::seconds>(wait);
        return true;
    }
    t.minute.push_back(now);
    t.hour.push_back(now);
    return false;
}

FakeReply FakeProvider::receive(const FakeRequest& req, Instant now,
                                std::optional<FakeAccepted>& accepted) {
    ++counters_.requests;
    accepted.reset();
    FakeReply reply;
    bool lose_reply = false;
    if (faults_.lost > 0 && rng_.chance(faults_.lost)) {
        ++counters_.lost;
        if (rng_.chance(0.5)) {
            reply.status = 0;
            return reply;
        }
        lose_reply = true;
    }
    if (rate_limit(req.caller, now, reply)) {
        ++counters_.rate_limited;
        return reply;
    }
    if (faults_.server_error > 0 && rng_.chance(faults_.server_error)) {
        ++counters_.server_errors;
        reply.status = rng_.chance(0.5) ? 500 : 503;
        reply.message = "server_error";
        return reply;
    }
    if (faults_.rate_limited > 0 && rng_.chance(faults_.rate_limited)) {
        ++counters_.rate_limited;
        reply.status = 429;
        reply.message = "too_many_requests";
        reply.retry_after = faults_.retry_after;
        return reply;
    }
    const auto it = ips_.find(req.ip);
    if (it == ips_.end()) {
        reply.status = 404;
        reply.message = "not_found";
        return reply;
    }
    IpState& s = it->second;
    switch (req.op) {
        case FakeOp::ReadHolder:
            reply = read_holder(s);
            break;
        case FakeOp::ReadAction: {
            const auto a = actions_.find(req.action_id);
            if (a == actions_.end()) {
                reply.status = 404;
                reply.message = "not_found";
            } else {
                reply.status = 200;
                reply.action_id = a->first;
                reply.action_status = a->second;
            }
            break;
        }
        case FakeOp::Assign: {
            const auto busy = busy_until_.find(req.target);
            if (s.pending) {
                ++counters_.rejected_pending;
                reply.status = 422;
                reply.message = "The floating IP already has a pending event.";
            } else if (busy != busy_until_.end() && now < busy->second) {
                ++counters_.rejected_pending;
                reply.status = 422;
                reply.message = "Droplet already has a pending event.";
            } else if (s.holder == req.target ||
                       (options_.one_ip_per_droplet && holds_other_ip(req.target, req.ip))) {
                ++counters_.rejected_holder;
                reply.status = 422;
                reply.message = "Droplet already has a reserved IP assigned.";
            } else {
                ++counters_.assigns_accepted;
                const std::int64_t id = next_action_id_++;
                s.pending = Action{id, req.target, FakeActionStatus::InProgress};
                actions_[id] = FakeActionStatus::InProgress;
                const auto span =
                    static_cast<std::uint64_t>((options_.action_max - options_.action_min).count());
                accepted = FakeAccepted{
                    id, now + options_.action_min +
                            Duration{static_cast<Duration::rep>(rng_.below(span + 1))}};
                reply.status = 201;
                reply.action_id = id;
                reply.action_status = FakeActionStatus::InProgress;
                reply.locked = true;
                reply.holder = s.holder;
            }
            break;
        }
    }
    if (lose_reply) {
        reply = FakeReply{};
        reply.status = 0;
    }
    return reply;
}

void FakeProvider::complete(const std::string& ip, std::int64_t action_id, Instant now) {
    const auto it = ips_.find(ip);
    if (it == ips_.end() || !it->second.pending || it->second.pending->id != action_id) {
        return;
    }
    IpState& s = it->second;
    const std::int64_t target = s.pending->target;
    s.pending.reset();
    if (faults_.action_errored > 0 && rng_.chance(faults_.action_errored)) {
        ++counters_.errored_actions;
        actions_[action_id] = FakeActionStatus::Errored;
        return;
    }
    actions_[action_id] = FakeActionStatus::Completed;
    if (s.holder != target) {
        history_.push_back(HolderChange{now, ip, s.holder, target, action_id});
        s.holder = target;
    }
}

}  // namespace failoverd::sim
