#include "daemon/core/election.hpp"

#include <algorithm>
#include <cstdio>

#include "daemon/core/assert.hpp"

namespace failoverd {

namespace {

std::string priority_comparison(int theirs, char op, int mine) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%d %c %d", theirs, op, mine);
    return buf;
}

}  // namespace

Election::Election(ElectionConfig config)
    : config_(std::move(config)), master_adver_interval_(config_.advertisement_interval) {
    FAILOVERD_ASSERT(config_.advertisement_interval > Duration::zero());
}

int Election::effective_priority() const {
    return std::clamp(config_.priority + priority_delta_, kPriorityMin, kPriorityMax);
}

// RFC 5798 §6.1: Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256.
Duration Election::skew_time() const {
    return master_adver_interval_ * (256 - effective_priority()) / 256;
}

// RFC 5798 §6.1: Master_Down_Interval = (3 * Master_Adver_Interval) + Skew_Time.
Duration Election::master_down_interval() const {
    return 3 * master_adver_interval_ + skew_time();
}

Duration Election::tie_stagger() const {
    const double fraction = std::clamp(config_.tie_stagger, 0.0, 0.25);
    return Duration(
        static_cast<Duration::rep>(static_cast<double>(master_adver_interval_.count()) * fraction));
}

bool Election::outranked_recently(Instant now) const {
    return outranking_master_heard_ && now - *outranking_master_heard_ < master_down_interval();
}

bool Election::outranks_me(int priority, const std::string& sender) const {
    const int mine = effective_priority();
    return priority > mine || (priority == mine && sender > config_.node_name);
}

void Election::start(Instant now) {
    FAILOVERD_ASSERT(role_ == Role::Init && !stopped_);
    if (fault_reason_) {
        change_role(Role::Fault, *fault_reason_, now);
        return;
    }
    become_backup("started: waiting " + format_duration(master_down_interval()) +
                      " (master down interval) for a master",
                  now);
}

void Election::set_health(int priority_delta, std::optional<std::string> fault_reason, Instant now,
                          std::optional<std::string> successor) {
    if (stopped_) {
        return;
    }
    const std::optional<std::string> previous_fault = fault_reason_;
    const int previous_priority = effective_priority();
    priority_delta_ = priority_delta;
    fault_reason_ = std::move(fault_reason);
    if (role_ == Role::Init) {
        return;
    }
    if (fault_reason_ && role_ != Role::Fault) {
        if (role_ == Role::Master) {
            resign(successor);
        }
        change_role(Role::Fault, *fault_reason_, now);
        return;
    }
    if (!fault_reason_ && role_ == Role::Fault) {
        become_backup("fault cleared (was: " + previous_fault.value_or("unknown") + ")", now);
        return;
    }
    if (role_ == Role::Backup && effective_priority() != previous_priority) {
        send_presence(now);  // a resigning master picks its successor on current priorities
    }
}

void Election::resign(const std::optional<std::string>& successor) {
    // With a successor it takes over on receipt; without, a backup takes over after skew time
    // (RFC 5798 §6.4.3).
    const bool named = successor && !successor->empty() && *successor != config_.node_name;
    send_advert(0, named ? successor : std::nullopt, named);
}

void Election::on_advert(const ReceivedAdvert& advert, Instant now) {
    if (stopped_) {
        return;
    }
    switch (role_) {
        case Role::Backup:
            backup_on_advert(advert, now);
            return;
        case Role::Master:
            master_on_advert(advert, now);
            return;
        case Role::Init:
        case Role::Fault:
            // Not contending, but keep "who is master" current for status.
            if (advert.priority > 0) {
                master_name_ = advert.sender;
            } else if (advert.sender == master_name_) {
                master_name_.clear();
            }
            ++adverts_ignored_;
            return;
    }
}

// RFC 5798 §6.4.2, Backup: "If an ADVERTISEMENT is received".
void Election::backup_on_advert(const ReceivedAdvert& advert, Instant now) {
    if (advert.priority == 0) {
        ++adverts_accepted_;
        if (advert.sender == master_name_) {
            master_name_.clear();
        }
        preempt_at_.reset();
        if (advert.handover_target && *advert.handover_target != config_.node_name) {
            // Hand-over to someone else: give the target the full down interval. After an
            // operator's hand-over, do not preempt it once it is master either; a successor
            // picked on a resign gets no such favour (a higher backup preempts it as usual).
            handover_to_other_ = *advert.handover_target;
            resigned_by_.reset();
            if (!advert.successor) {
                yield_to_ = *advert.handover_target;
                yield_target_heard_.reset();
            }
            master_down_timer_ = now + master_down_interval() + tie_stagger();
            last_heard_ = now;
            return;
        }
        if (advert.handover_target) {
            // Named: no skew wait. The others are holding back for us, so nobody contends.
            become_master(advert.successor
                              ? "master " + advert.sender +
                                    " resigned (priority 0) and named this node its successor"
                              : "hand-over from " + advert.sender + " to this node",
                          now, /*named=*/true);
            return;
        }
        handover_to_other_.reset();
        resigned_by_ = advert.sender;
        master_down_timer_ = now + skew_time() + tie_stagger();
        return;
    }
    const int mine = effective_priority();
    // After a hand-over: hold back from preempting the target, and from preempting anyone else
    // while the target is still heard as master (another master is then a passing tie).
    const bool yielding =
        yield_to_ && (yield_to_->empty() || *yield_to_ == advert.sender ||
                      (yield_target_heard_ && now - *yield_target_heard_ < master_down_interval()));
    if (yield_to_ && *yield_to_ == advert.sender) {
        yield_target_heard_ = now;
    }
    if (advert.priority < mine && config_.preempt_mode && !yielding) {
        if (outranked_recently(now)) {
            // Two masters (a heal): one that outranks us is alive and will win; preempting the
            // lower one would only make a third master and move the IP once more.
            ++adverts_ignored_;
            preempt_at_.reset();
            return;
        }
        if (config_.preempt_delay <= Duration::zero()) {
            // Discard without touching the down timer: an ignored advert must not extend it.
            ++adverts_ignored_;
            return;
        }
        // keepalived: while a preempt delay runs, the lower master's adverts are accepted.
        if (!preempt_at_) {
            preempt_at_ = now + config_.preempt_delay;
            preempted_master_ = advert.sender;
            preempted_priority_ = advert.priority;
        }
    } else {
        preempt_at_.reset();
    }
    ++adverts_accepted_;
    if (advert.priority >= mine) {
        outranking_master_heard_ = now;
    }
    master_name_ = advert.sender;
    master_adver_interval_ = advert.advert_interval;
    master_down_timer_ = now + master_down_interval() + tie_stagger();
    last_heard_ = now;
    heard_any_ = true;
    resigned_by_.reset();
    handover_to_other_.reset();
}

// RFC 5798 §6.4.3, Master: "If an ADVERTISEMENT is received".
void Election::master_on_advert(const ReceivedAdvert& advert, Instant now) {
    if (advert.priority == 0) {
        // Someone resigned while we are master: answer at once so its backups hear us.
        ++adverts_accepted_;
        send_advert(effective_priority());
        adver_timer_ = now + config_.advertisement_interval;
        return;
    }
    if (!outranks_me(advert.priority, advert.sender)) {
        ++adverts_ignored_;
        return;
    }
    ++adverts_accepted_;
    const int mine = effective_priority();
    std::string reason = advert.priority > mine
                             ? "higher priority advert from " + advert.sender + " (" +
                                   priority_comparison(advert.priority, '>', mine) + ")"
                             : "equal priority advert from " + advert.sender + " (" +
                                   priority_comparison(advert.priority, '=', mine) + ", " +
                                   advert.sender + " > " + config_.node_name + ")";
    master_adver_interval_ = advert.advert_interval;
    adver_timer_.reset();
    outranking_master_heard_ = now;
    change_role(Role::Backup, std::move(reason), now);
    master_name_ = advert.sender;
    master_down_timer_ = now + master_down_interval() + tie_stagger();
    last_heard_ = now;
    heard_any_ = true;
}

void Election::announce(Instant now) {
    if (stopped_) {
        return;
    }
    if (role_ == Role::Master) {
        send_advert(effective_priority());
    } else if (role_ == Role::Backup || role_ == Role::Fault) {
        send_presence(now);
    }
}

void Election::on_deadline(Instant now) {
    if (stopped_) {
        return;
    }
    switch (role_) {
        case Role::Backup:
            backup_on_deadline(now);
            break;
        case Role::Master:
            master_on_deadline(now);
            break;
        case Role::Fault:
        case Role::Init:
            break;
    }
    if (role_ == Role::Backup || role_ == Role::Fault) {
        presence_on_deadline(now);
    }
}

void Election::backup_on_deadline(Instant now) {
    if (preempt_at_ && now >= *preempt_at_ && outranked_recently(now)) {
        preempt_at_.reset();
    }
    if (preempt_at_ && now >= *preempt_at_) {
        become_master("preempt_delay " + format_duration(config_.preempt_delay) +
                          " elapsed: preempting " + preempted_master_ + " (" +
                          priority_comparison(effective_priority(), '>', preempted_priority_) + ")",
                      now);
        return;
    }
    if (!master_down_timer_ || now < *master_down_timer_) {
        return;
    }
    std::string reason;
    if (resigned_by_) {
        reason = "master " + *resigned_by_ + " resigned (priority 0): took over after skew time " +
                 format_duration(skew_time());
    } else if (handover_to_other_) {
        reason = "master down interval expired (hand-over to " + *handover_to_other_ +
                 " not taken up within " + format_duration(now - last_heard_) + ")";
    } else if (!heard_any_) {
        reason = "master down interval expired (no advert since start for " +
                 format_duration(now - last_heard_) + ")";
    } else {
        reason = "master down interval expired (no advert from " +
                 (master_name_.empty() ? std::string("the master") : master_name_) + " for " +
                 format_duration(now - last_heard_) + ")";
    }
    become_master(std::move(reason), now);
}

void Election::master_on_deadline(Instant now) {
    if (!adver_timer_ || now < *adver_timer_) {
        return;
    }
    send_advert(effective_priority());
    // Keep the cadence; after a long stall restart it from now rather than burst.
    const Instant next = *adver_timer_ + config_.advertisement_interval;
    adver_timer_ = next > now ? next : now + config_.advertisement_interval;
}

void Election::presence_on_deadline(Instant now) {
    if (presence_timer_ && now >= *presence_timer_) {
        send_presence(now);
    }
}

bool Election::handover(const std::optional<std::string>& to_node, Instant now) {
    if (stopped_ || role_ != Role::Master || (to_node && *to_node == config_.node_name)) {
        return false;
    }
    send_advert(0, to_node);
    yield_to_ = to_node.value_or(std::string{});
    yield_target_heard_.reset();
    become_backup(to_node ? "hand-over to " + *to_node + " requested"
                          : std::string("hand-over requested (to any backup)"),
                  now);
    return true;
}

void Election::reconfigure(ElectionConfig config, Instant now) {
    FAILOVERD_ASSERT(config.instance == config_.instance);
    FAILOVERD_ASSERT(config.node_name == config_.node_name);
    FAILOVERD_ASSERT(config.advertisement_interval > Duration::zero());
    const int old_priority = effective_priority();
    const Duration old_interval = config_.advertisement_interval;
    config_ = std::move(config);
    if (stopped_) {
        return;
    }
    if (!heard_any_ && role_ != Role::Master) {
        // No master heard yet: our own interval stands in for the one a master would teach.
        master_adver_interval_ = config_.advertisement_interval;
    }
    if (!config_.preempt_mode) {
        preempt_at_.reset();
    }
    if (role_ == Role::Master) {
        master_adver_interval_ = config_.advertisement_interval;
        if (effective_priority() != old_priority ||
            config_.advertisement_interval != old_interval) {
            send_advert(effective_priority());
            adver_timer_ = now + config_.advertisement_interval;
        }
    }
}

void Election::shutdown(Instant now, std::optional<std::string> successor) {
    if (stopped_) {
        return;
    }
    if (role_ == Role::Master) {
        resign(successor);
    }
    if (role_ != Role::Init) {
        change_role(Role::Init, "shutdown", now);
    }
    stopped_ = true;
    adver_timer_.reset();
    master_down_timer_.reset();
    presence_timer_.reset();
    preempt_at_.reset();
}

std::optional<Instant> Election::next_deadline() const {
    std::optional<Instant> earliest;
    auto consider = [&](const std::optional<Instant>& t) {
        if (t && (!earliest || *t < *earliest)) {
            earliest = t;
        }
    };
    if (stopped_) {
        return std::nullopt;
    }
    switch (role_) {
        case Role::Master:
            consider(adver_timer_);
            break;
        case Role::Backup:
            consider(master_down_timer_);
            consider(preempt_at_);
            consider(presence_timer_);
            break;
        case Role::Fault:
            consider(presence_timer_);
            break;
        case Role::Init:
            break;
    }
    return earliest;
}

std::vector<ElectionEvent> Election::take_events() {
    std::vector<ElectionEvent> out;
    out.swap(events_);
    return out;
}

void Election::become_master(std::string reason, Instant now, bool named) {
    change_role(Role::Master, std::move(reason), now, named);
}

void Election::become_backup(std::string reason, Instant now) {
    master_adver_interval_ = config_.advertisement_interval;
    change_role(Role::Backup, std::move(reason), now);
    master_name_.clear();
    master_down_timer_ = now + master_down_interval() + tie_stagger();
    last_heard_ = now;
    heard_any_ = false;
}

void Election::change_role(Role to, std::string reason, Instant now, bool named) {
    FAILOVERD_ASSERT(!reason.empty());
    FAILOVERD_ASSERT(to != role_);
    const Role from = role_;
    role_ = to;
    events_.emplace_back(std::in_place_type<RoleChange>, from, to, std::move(reason), named);
    adver_timer_.reset();
    master_down_timer_.reset();
    presence_timer_.reset();
    preempt_at_.reset();
    resigned_by_.reset();
    handover_to_other_.reset();
    switch (to) {
        case Role::Master:
            // RFC 5798 §6.4.1/§6.4.2: send an advert at once, then every interval.
            master_name_ = config_.node_name;
            yield_to_.reset();
            send_advert(effective_priority());
            adver_timer_ = now + config_.advertisement_interval;
            break;
        case Role::Backup:
        case Role::Fault:
            if (master_name_ == config_.node_name) {
                master_name_.clear();
            }
            send_presence(now);
            break;
        case Role::Init:
            break;
    }
}

void Election::send_advert(int priority, std::optional<std::string> target, bool successor) {
    events_.emplace_back(std::in_place_type<AdvertToSend>, SenderState::Master, priority,
                         std::move(target), successor);
}

void Election::send_presence(Instant now) {
    const bool backup = role_ == Role::Backup;
    events_.emplace_back(std::in_place_type<AdvertToSend>,
                         backup ? SenderState::Backup : SenderState::Fault,
                         backup ? effective_priority() : 0, std::nullopt, false);
    presence_timer_ = now + kPresenceEveryAdverts * config_.advertisement_interval;
}

}  // namespace failoverd
