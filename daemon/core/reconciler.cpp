#include "daemon/core/reconciler.hpp"

#include <algorithm>

#include "daemon/core/assert.hpp"

namespace failoverd {

namespace {

// A second master or a changed peer may ask for a re-read; at most one such per this gap.
constexpr Duration kRecheckMinGap = std::chrono::seconds(1);

std::string http_text(const ProviderReplied& reply) {
    // The provider's detail usually starts with the status already ("HTTP 401 Unauthorized: ...").
    if (reply.detail.rfind("HTTP ", 0) == 0) {
        return reply.detail;
    }
    std::string text = reply.http_status > 0 ? "HTTP " + std::to_string(reply.http_status)
                                             : std::string("no HTTP status");
    if (!reply.detail.empty()) {
        text += ": " + reply.detail;
    }
    return text;
}

}  // namespace

bool PeerTable::update(const Advert& advert, const std::string& from, Instant now) {
    auto it = peers_.find(advert.sender);
    if (it == peers_.end()) {
        if (peers_.size() >= kMaxPeers) {
            return false;
        }
        it = peers_.emplace(advert.sender, PeerInfo{}).first;
        it->second.node_name = advert.sender;
    }
    PeerInfo& p = it->second;
    const bool changed = p.provider_id != advert.sender_provider_id ||
                         p.priority != advert.priority || p.state != advert.state ||
                         p.last_heard == Instant{};
    p.provider_id = advert.sender_provider_id;
    p.priority = advert.priority;
    p.state = advert.state;
    p.last_heard = now;
    p.from = from;
    p.advert_interval = std::chrono::duration_cast<Duration>(advert.advert_interval);
    return changed;
}

const PeerInfo* PeerTable::find_by_provider_id(std::string_view provider_id) const {
    if (provider_id.empty()) {
        return nullptr;
    }
    for (const auto& [name, info] : peers_) {
        if (info.provider_id == provider_id) {
            return &info;
        }
    }
    return nullptr;
}

const PeerInfo* PeerTable::find(std::string_view node_name) const {
    auto it = peers_.find(node_name);
    return it == peers_.end() ? nullptr : &it->second;
}

Reconciler::Reconciler(ReconcilerConfig config)
    : config_(std::move(config)),
      backoff_(config_.backoff),
      claim_backoff_(config_.claim_backoff) {}

void Reconciler::reset_backoff() {
    backoff_.reset();
    claim_backoff_.reset();
}

void Reconciler::start(Instant now, bool assign_first) {
    active_ = true;
    claimed_ = false;
    in_flight_.reset();
    action_started_.reset();
    pending_rejection_.reset();
    assign_unknown_since_.reset();
    holds_ip_ = false;
    last_recheck_.reset();
    heal_reread_ = false;
    reset_backoff();
    status_.note.clear();
    status_.action_id.clear();
    next_routine_ = false;
    // Assign first: the first claim of a term assigns whoever holds the IP (the partition
    // rule), so a read first would only delay the POST by a round trip. If we hold it already
    // the provider answers 422, which is read as "re-read the holder"; a pending action is 422
    // "pending event" (Locked), a lost answer Transient: both re-read before posting again.
    if (assign_first) {
        status_.note = "claiming the IP (assign first, then verify)";
        schedule(Step::Assign, now, ReconcilePhase::Assigning);
        return;
    }
    schedule(Step::ReadHolder, now, ReconcilePhase::Checking);
}

void Reconciler::stop() {
    active_ = false;
    in_flight_.reset();
    heal_reread_ = false;
    next_step_.reset();
    action_started_.reset();
    pending_rejection_.reset();
    assign_unknown_since_.reset();
    holds_ip_ = false;
    status_.next_call_at.reset();
    if (status_.phase != ReconcilePhase::Refused) {
        status_.phase = ReconcilePhase::Idle;
    }
    status_.note.clear();
}

void Reconciler::recheck_soon(Instant now) {
    if (!active_ || in_flight_ || !next_step_ || *next_step_ != Step::ReadHolder) {
        return;
    }
    if (status_.phase != ReconcilePhase::Settled && status_.phase != ReconcilePhase::Yielding) {
        return;  // already acting, or waiting out a backoff that must not be cut short
    }
    // Rate-limited by skipping, not by postponing: a re-read is only useful right after what
    // triggered it (a presence notice is "current" for a couple of advert intervals).
    if (last_recheck_ && now - *last_recheck_ < kRecheckMinGap) {
        return;
    }
    if (now < next_at_) {
        last_recheck_ = now;
        next_routine_ = false;
        schedule(Step::ReadHolder, now, status_.phase);
    }
}

std::string Reconciler::recheck_after_heal(const std::string& reason, Instant now) {
    if (!active_) {
        return {};
    }
    if (in_flight_) {
        if (in_flight_->step != Step::ReadHolder) {
            return {};  // an assign or action poll in flight ends with a verify read
        }
        // Its answer may predate the heal: on_holder reads once more instead of settling.
        heal_reread_ = true;
        return reason + ": re-reading the holder";
    }
    if (!next_step_ || *next_step_ != Step::ReadHolder) {
        return {};  // an assign or action poll is next; a verify read follows it
    }
    if (status_.phase != ReconcilePhase::Settled && status_.phase != ReconcilePhase::Yielding) {
        // Waiting out a backoff, a lock or the budget: the read it ends with comes after the
        // heal, and a provider's retry-after must not be cut short.
        return reason + ": re-reading the holder when the wait ends";
    }
    const Instant at = recheck_at(now);
    if (at < next_at_) {
        last_recheck_ = at;
        next_routine_ = false;
        schedule(Step::ReadHolder, at, status_.phase);
    }
    return reason + ": re-reading the holder";
}

Instant Reconciler::recheck_at(Instant now) const {
    return last_recheck_ ? std::max(now, *last_recheck_ + kRecheckMinGap) : now;
}

void Reconciler::schedule_next_read(ReconcilerContext ctx, Instant now, ReconcilePhase phase) {
    if (heal_reread_) {
        heal_reread_ = false;
        const Instant at = recheck_at(now);
        last_recheck_ = at;
        next_routine_ = false;
        schedule(Step::ReadHolder, at, phase);
        return;
    }
    next_routine_ = true;
    schedule(Step::ReadHolder, now + jittered_reconcile_interval(ctx.rng), phase);
}

void Reconciler::schedule(Step step, Instant at, ReconcilePhase phase) {
    next_step_ = step;
    next_at_ = at;
    status_.phase = phase;
    status_.next_call_at = at;
}

CallPriority Reconciler::priority_of(Step step) const {
    // Periodic re-reads of a settled or yielded IP can wait; claiming and verifying cannot.
    return step == Step::ReadHolder && next_routine_ ? CallPriority::Routine : CallPriority::Urgent;
}

void Reconciler::on_deadline(ReconcilerContext ctx, Instant now) {
    if (!active_ || in_flight_ || !next_step_ || now < next_at_) {
        return;
    }
    const CallPriority priority = priority_of(*next_step_);
    if (!ctx.budget.try_take(priority, now)) {
        ++status_.budget_deferrals;
        next_at_ =
            std::max(ctx.budget.available_at(priority, now), now + std::chrono::milliseconds(1));
        status_.next_call_at = next_at_;
        return;
    }
    issue(*next_step_, ctx, now);
}

void Reconciler::issue(Step step, ReconcilerContext ctx, Instant now) {
    FAILOVERD_ASSERT(active_);  // a node that is not Master never calls the provider here
    const std::uint64_t id = ctx.ids.next();
    in_flight_ = InFlight{id, step, now};
    if (step == Step::ReadHolder) {
        heal_reread_ = false;  // this read leaves after any heal noticed so far
    }
    next_step_.reset();
    status_.next_call_at.reset();
    ++status_.calls;
    CallProvider call{config_.instance, id, ProviderOp::ReadHolder, config_.ip, {}};
    switch (step) {
        case Step::ReadHolder:
            call.op = ProviderOp::ReadHolder;
            status_.phase = ReconcilePhase::Checking;
            break;
        case Step::Assign:
            call.op = ProviderOp::Assign;
            status_.phase = ReconcilePhase::Assigning;
            ++status_.assigns;
            break;
        case Step::ReadAction:
            call.op = ProviderOp::ReadAction;
            call.action_id = status_.action_id;
            status_.phase = ReconcilePhase::PollingAction;
            break;
    }
    calls_.push_back(std::move(call));
}

void Reconciler::on_reply(const ProviderReplied& reply, int my_priority, const PeerTable& peers,
                          ReconcilerContext ctx, Instant now) {
    process_reply(reply, my_priority, peers, ctx, now);
    on_deadline(ctx, now);  // a follow-up due now (assign, verify) goes out at once
}

void Reconciler::process_reply(const ProviderReplied& reply, int my_priority,
                               const PeerTable& peers, ReconcilerContext ctx, Instant now) {
    if (!in_flight_ || reply.request_id != in_flight_->id) {
        ++status_.stale_replies;
        return;
    }
    const Step step = in_flight_->step;
    const Instant sent_at = in_flight_->sent_at;
    in_flight_.reset();
    next_routine_ = false;
    if (reply.outcome != ProviderOutcome::Ok) {
        ++status_.failures;
    }
    switch (reply.outcome) {
        case ProviderOutcome::Ok:
            status_.last_error.clear();
            switch (step) {
                case Step::ReadHolder:
                    on_holder(reply, my_priority, peers, ctx, sent_at, now);
                    return;
                case Step::Assign:
                    on_assign(reply, now);
                    return;
                case Step::ReadAction:
                    on_action(reply, ctx, now);
                    return;
            }
            return;
        case ProviderOutcome::Unauthorized:
            refuse("provider rejected the token (" + http_text(reply) + ")");
            return;
        case ProviderOutcome::NotFound:
            if (step == Step::ReadAction) {
                // BYOIP or eventual consistency: the action id may never be readable.
                status_.note = "action " + status_.action_id + " not found: reading the holder";
                action_started_.reset();
                schedule(Step::ReadHolder, now, ReconcilePhase::Waiting);
                return;
            }
            if (step == Step::Assign) {
                pending_rejection_ = "provider refused the assignment (" + http_text(reply) + ")";
                schedule(Step::ReadHolder, now, ReconcilePhase::Waiting);
                return;
            }
            refuse("provider does not know reserved IP " + config_.ip + " (" + http_text(reply) +
                   ")");
            return;
        case ProviderOutcome::Rejected:
            if (step == Step::Assign) {
                // Assigning to the current holder is a 422 too: re-read before giving up.
                pending_rejection_ = "provider refused the assignment (" + http_text(reply) + ")";
                schedule(Step::ReadHolder, now, ReconcilePhase::Waiting);
                return;
            }
            refuse("provider refused the request (" + http_text(reply) + ")");
            return;
        case ProviderOutcome::Locked:
            // A pending event on the IP may be our own earlier POST: read before posting again.
            on_failure(reply, step == Step::ReadAction ? Step::ReadAction : Step::ReadHolder, ctx,
                       now, std::max(config_.locked_retry, reply.retry_after.value_or(Duration{})));
            return;
        case ProviderOutcome::RateLimited:
            // Nothing was done: retry the same call once the provider lets us.
            on_failure(reply, step, ctx, now, reply.retry_after);
            return;
        case ProviderOutcome::Transient:
            if (step == Step::Assign) {
                on_assign_unknown(reply, ctx, sent_at, now);
                return;
            }
            on_failure(reply, step, ctx, now, std::nullopt);
            return;
    }
}

void Reconciler::on_failure(const ProviderReplied& reply, Step retry, ReconcilerContext ctx,
                            Instant now, std::optional<Duration> floor) {
    Duration delay{};
    if (reply.outcome == ProviderOutcome::RateLimited && reply.retry_after) {
        // The provider said when: retry then, not later (and the backoff does not grow).
        delay = std::clamp(*reply.retry_after, Duration::zero(), pacing().policy().retry_after_max);
    } else {
        delay = pacing().next_delay(ctx.rng, floor);
    }
    status_.last_error = std::string(to_string(reply.outcome)) + " (" + http_text(reply) +
                         "): retrying in " + format_duration(delay);
    if (retry == Step::ReadAction && action_started_ &&
        now - *action_started_ >= config_.action_deadline) {
        action_started_.reset();
        retry = Step::ReadHolder;
    }
    schedule(retry, now + delay, ReconcilePhase::Waiting);
}

// A POST whose answer was lost may have been applied: only reads follow until one shows
// whether it was (the holder is us, or an action is pending) or not (then a new POST may go).
void Reconciler::on_assign_unknown(const ProviderReplied& reply, ReconcilerContext ctx,
                                   Instant sent_at, Instant now) {
    if (!assign_unknown_since_) {
        assign_unknown_since_ = sent_at;
    }
    const Duration delay = pacing().next_delay(ctx.rng);
    status_.note = "assign: " +
                   (reply.http_status == 0 ? "reply lost (" + reply.detail + ")"
                                           : "outcome unknown (" + http_text(reply) + ")") +
                   "; reading the holder before any new POST";
    status_.last_error = std::string(to_string(reply.outcome)) + " (" + http_text(reply) +
                         "): reading the holder in " + format_duration(delay);
    schedule(Step::ReadHolder, now + delay, ReconcilePhase::Waiting);
}

void Reconciler::on_holder(const ProviderReplied& reply, int my_priority, const PeerTable& peers,
                           ReconcilerContext ctx, Instant sent_at, Instant now) {
    status_.last_read_at = now;
    status_.holder_locked = reply.locked;
    if (!reply.holder_known) {
        // Neither "nobody" nor "us": assigning could take the IP from a live master, settling
        // could leave it nowhere. Keep reading; only a reply that names the holder decides.
        status_.observed_holder.clear();
        status_.holder_known = false;
        status_.note =
            "holder unknown: the provider's reply does not say who holds the IP (a "
            "DigitalOcean token needs droplet:read): not assigning, reading again in " +
            format_duration(config_.reconcile_interval);
        next_routine_ = true;
        schedule(Step::ReadHolder, now + config_.reconcile_interval, ReconcilePhase::Waiting);
        return;
    }
    reset_backoff();
    const bool was_holder = status_.holder_known && status_.observed_holder == reply.holder;
    status_.observed_holder = reply.holder;
    status_.holder_known = true;
    const std::string& holder = reply.holder;

    holds_ip_ = holder == config_.self_provider_id;
    if (holder == config_.self_provider_id) {
        claimed_ = true;
        pending_rejection_.reset();
        action_started_.reset();
        status_.note.clear();
        if (assign_unknown_since_) {
            assign_unknown_since_.reset();
            if (!was_holder) {
                ++status_.moves_confirmed;
            }
            status_.note =
                "holder is this droplet: IP confirmed (the assign whose reply was "
                "lost was applied)";
        }
        if (reply.locked) {
            // Ours now, but an action is pending on the IP and may move it: look again soon.
            schedule(Step::ReadHolder, now + config_.action_poll_interval, ReconcilePhase::Settled);
        } else {
            schedule_next_read(ctx, now, ReconcilePhase::Settled);
        }
        return;
    }
    if (pending_rejection_) {
        refuse(*pending_rejection_);
        return;
    }
    const std::string shown = holder.empty() ? std::string("nobody") : holder;
    std::string unknown_outcome;  // what the read says about an assign whose reply was lost
    if (assign_unknown_since_) {
        if (reply.locked && now - *assign_unknown_since_ < config_.action_deadline) {
            // Most likely our own assign, in progress: look again as often as an action poll.
            status_.note = "IP locked by a pending action (holder " + shown +
                           "), likely the assign whose reply was lost: reading again in " +
                           format_duration(config_.action_poll_interval);
            schedule(Step::ReadHolder, now + config_.action_poll_interval, ReconcilePhase::Waiting);
            return;
        }
        assign_unknown_since_.reset();
        if (!reply.locked) {
            unknown_outcome = "the assign whose reply was lost was not applied (holder " + shown +
                              ", no action pending); ";
        }
    }
    if (reply.locked) {
        // Posting now would get 422 (pending event); wait for the lock to clear.
        const Duration delay = pacing().next_delay(ctx.rng, config_.locked_retry);
        status_.note = "IP locked by a pending action (holder " + shown + "): reading again in " +
                       format_duration(delay);
        schedule(Step::ReadHolder, now + delay, ReconcilePhase::Waiting);
        return;
    }
    // The partition rule (docs/election.md). The first claim of a term always assigns.
    if (claimed_ && !holder.empty()) {
        const PeerInfo* peer = peers.find_by_provider_id(holder);
        std::string yield = partition_verdict(peer, holder, my_priority, sent_at);
        if (!yield.empty()) {
            status_.note = unknown_outcome + yield;
            schedule_next_read(ctx, now, ReconcilePhase::Yielding);
            return;
        }
        const bool current =
            peer->last_heard + kPeerFreshAdverts * peer->advert_interval >= sent_at;
        std::string why;
        if (current && (peer->state != SenderState::Master || peer->priority == 0)) {
            why = std::string(peer->state == SenderState::Backup ? "a backup now"
                                                                 : "not contending") +
                  ", heard " + format_duration(now - peer->last_heard) + " ago";
        } else if (peer->priority == my_priority) {
            why = "priority " + std::to_string(peer->priority) + " = " +
                  std::to_string(my_priority) + ", " + peer->node_name + " < " + config_.self_name;
        } else {
            why =
                "priority " + std::to_string(peer->priority) + " < " + std::to_string(my_priority);
        }
        status_.note =
            unknown_outcome + "IP moved to " + peer->node_name + " (" + why + "): reclaiming";
    } else {
        status_.note = unknown_outcome + "claiming the IP from " + shown;
    }
    schedule(Step::Assign, now, ReconcilePhase::Assigning);
}

// Empty when the IP may be reclaimed from `holder`; otherwise why not (for status).
std::string Reconciler::partition_verdict(const PeerInfo* peer, const std::string& holder,
                                          int my_priority, Instant sent_at) const {
    if (peer == nullptr) {
        return "IP held by droplet " + holder + ", not a peer heard from: not reclaiming";
    }
    // Heard shortly before our read: its state is current. A backup or a faulted or resigned
    // node holding the IP is not contending for it (the IP stayed behind after a heal).
    const bool current = peer->last_heard + kPeerFreshAdverts * peer->advert_interval >= sent_at;
    if (current && (peer->state != SenderState::Master || peer->priority == 0)) {
        return {};
    }
    // Not heard lately: it may be a master on the far side of a partition. Judge it by the
    // last priority it advertised; if that was 0 we cannot judge it and leave the IP alone.
    if (peer->priority == 0) {
        return "IP held by " + peer->node_name +
               " (silent since it resigned or faulted): " + "not reclaiming";
    }
    if (peer->priority > my_priority ||
        (peer->priority == my_priority && peer->node_name > config_.self_name)) {
        return "IP held by " + peer->node_name + " (priority " + std::to_string(peer->priority) +
               (peer->priority > my_priority ? " > " : " = ") + std::to_string(my_priority) +
               "): not reclaiming";
    }
    return {};
}

void Reconciler::on_assign(const ProviderReplied& reply, Instant now) {
    reset_backoff();
    if (reply.action_id.empty()) {
        schedule(Step::ReadHolder, now, ReconcilePhase::Checking);
        return;
    }
    status_.action_id = reply.action_id;
    if (reply.action_status == ActionStatus::Completed) {
        // The 201 itself says the move is done (DigitalOcean's own example): verify at once.
        claimed_ = true;
        ++status_.moves_confirmed;
        action_started_.reset();
        schedule(Step::ReadHolder, now, ReconcilePhase::Checking);
        return;
    }
    action_started_ = now;
    schedule(Step::ReadAction, now + config_.action_poll_interval, ReconcilePhase::PollingAction);
}

void Reconciler::on_action(const ProviderReplied& reply, ReconcilerContext ctx, Instant now) {
    reset_backoff();
    switch (reply.action_status) {
        case ActionStatus::Pending:
            if (action_started_ && now - *action_started_ >= config_.action_deadline) {
                status_.note = "action " + status_.action_id + " still pending after " +
                               format_duration(now - *action_started_) + ": reading the holder";
                action_started_.reset();
                schedule(Step::ReadHolder, now, ReconcilePhase::Waiting);
                return;
            }
            schedule(Step::ReadAction, now + config_.action_poll_interval,
                     ReconcilePhase::PollingAction);
            return;
        case ActionStatus::Completed:
            claimed_ = true;
            ++status_.moves_confirmed;
            action_started_.reset();
            schedule(Step::ReadHolder, now, ReconcilePhase::Checking);  // verify
            return;
        case ActionStatus::Errored: {
            // The move may still have happened: read the holder after a backoff.
            ++status_.failures;
            action_started_.reset();
            const Duration delay = pacing().next_delay(ctx.rng);
            status_.last_error = "action " + status_.action_id +
                                 " errored: reading the holder in " + format_duration(delay);
            schedule(Step::ReadHolder, now + delay, ReconcilePhase::Waiting);
            return;
        }
    }
}

void Reconciler::refuse(std::string reason) {
    fault_ = reason;
    status_.last_error = std::move(reason);
    status_.phase = ReconcilePhase::Refused;
    status_.next_call_at.reset();
    next_step_.reset();
    pending_rejection_.reset();
}

Duration Reconciler::jittered_reconcile_interval(Rng& rng) const {
    // +-10 %, so instances and nodes that started together do not read in lock-step.
    const double factor = 0.9 + 0.2 * rng.unit();
    return Duration(static_cast<Duration::rep>(
        static_cast<double>(config_.reconcile_interval.count()) * factor));
}

std::optional<Instant> Reconciler::next_deadline() const {
    if (!active_ || in_flight_ || !next_step_) {
        return std::nullopt;
    }
    return next_at_;
}

std::vector<CallProvider> Reconciler::take_calls() {
    std::vector<CallProvider> out;
    out.swap(calls_);
    return out;
}

std::optional<std::string> Reconciler::take_fault() {
    std::optional<std::string> out;
    out.swap(fault_);
    return out;
}

}  // namespace failoverd
