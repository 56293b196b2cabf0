#include "tests/sim/sim_cluster.hpp"

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <type_traits>

namespace failoverd::sim {

namespace {

constexpr std::size_t kTraceLines = 400;
// A core that keeps asking for on_deadline at the same instant without progress is spinning.
constexpr std::uint64_t kSpinLimit = 10000;

std::string secs(Duration d) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3fs", seconds(d));
    return buf;
}

std::optional<std::int64_t> parse_id(const std::string& s) {
    if (s.empty()) {
        return std::nullopt;
    }
    return std::stoll(s);
}

FakeOp fake_op(ProviderOp op) {
    switch (op) {
        case ProviderOp::ReadHolder:
            return FakeOp::ReadHolder;
        case ProviderOp::Assign:
            return FakeOp::Assign;
        case ProviderOp::ReadAction:
            return FakeOp::ReadAction;
    }
    return FakeOp::ReadHolder;
}

// Droplet ids are int64 above 2^32, like real ones (provider-apis.md §1.2).
std::int64_t droplet_of(NodeId n) {
    return 7'000'000'101LL + n;
}

bool is_pending_event(const FakeReply& r) {
    return r.status == 422 && r.message.find("pending event") != std::string::npos;
}

// What the shell's provider layer makes of one HTTP answer (provider-apis.md §4 taxonomy).
ProviderReplied classify(const CallProvider& call, const FakeReply& r) {
    ProviderReplied out;
    out.instance = call.instance;
    out.request_id = call.request_id;
    out.http_status = r.status;
    out.detail = r.message;
    if (r.lost()) {
        out.outcome = ProviderOutcome::Transient;
        out.detail = "timed out";
        return out;
    }
    if (r.status == 200 || r.status == 201) {
        out.outcome = ProviderOutcome::Ok;
        out.holder = r.holder ? std::to_string(*r.holder) : std::string{};
        out.locked = r.locked;
        if (call.op == ProviderOp::Assign) {
            out.action_id = r.action_id ? std::to_string(r.action_id) : std::string{};
        }
        if (call.op == ProviderOp::ReadAction) {
            switch (r.action_status) {
                case FakeActionStatus::InProgress:
                    out.action_status = ActionStatus::Pending;
                    break;
                case FakeActionStatus::Completed:
                    out.action_status = ActionStatus::Completed;
                    break;
                case FakeActionStatus::Errored:
                    out.action_status = ActionStatus::Errored;
                    break;
            }
        }
        return out;
    }
    if (r.status == 429) {
        out.outcome = ProviderOutcome::RateLimited;
        out.retry_after = r.retry_after;
        return out;
    }
    if (r.status == 404) {
        out.outcome = ProviderOutcome::NotFound;
        return out;
    }
    if (is_pending_event(r)) {
        out.outcome = ProviderOutcome::Locked;
        return out;
    }
    if (r.status >= 500) {
        out.outcome = ProviderOutcome::Transient;
        return out;
    }
    out.outcome = ProviderOutcome::Rejected;
    return out;
}

}  // namespace

SimCluster::SimCluster(SimOptions options)
    : options_(std::move(options)),
      rng_(options_.seed),
      queue_(start_time()),
      network_(options_.nodes),
      provider_(options_.provider, options_.seed ^ 0x5eed5eed5eedULL) {
    if (options_.nodes < 1 || options_.nodes > 26) {
        throw std::invalid_argument("SimCluster: 1..26 nodes");
    }
    network_.set_delay(options_.net_delay_min, options_.net_delay_max);
    key_.assign(32, 0);
    for (auto& b : key_) {
        b = static_cast<std::uint8_t>(rng_.next());
    }
    for (const auto& inst : options_.instances) {
        std::optional<std::int64_t> holder;
        if (inst.initial_holder) {
            holder = droplet_of(*inst.initial_holder);
        }
        provider_.add_ip(inst.ip, holder);
    }
    nodes_.resize(static_cast<std::size_t>(options_.nodes));
    for (int i = 0; i < options_.nodes; ++i) {
        SimNode& n = at(i);
        n.id = i;
        n.name = std::string("node-") + static_cast<char>('a' + i);
        n.droplet = droplet_of(i);
        for (const auto& c : options_.checks) {
            n.health[c.name] = health::Verdict::Pass;
        }
    }
    // Boot every node at start, then start each probe chain at a random phase.
    for (auto& n : nodes_) {
        boot(n);
    }
    for (int i = 0; i < options_.nodes; ++i) {
        for (const auto& c : options_.checks) {
            const auto phase = static_cast<Duration::rep>(
                rng_.below(static_cast<std::uint64_t>(c.interval.count())));
            schedule_probe(i, c, now() + Duration{phase});
        }
    }
}

SimCluster::~SimCluster() = default;

const SimInstanceSpec& SimCluster::instance(const std::string& name) const {
    for (const auto& i : options_.instances) {
        if (i.name == name) {
            return i;
        }
    }
    throw std::invalid_argument("SimCluster: unknown instance " + name);
}

int SimCluster::priority_of(NodeId n, const SimInstanceSpec& inst) const {
    const auto i = static_cast<std::size_t>(n);
    return i < inst.priorities.size() ? inst.priorities[i] : 100;
}

NodeSpec SimCluster::spec_for(const SimNode& n) const {
    NodeSpec s;
    s.node_name = n.name;
    s.provider_id = std::to_string(n.droplet);
    s.boot_epoch = n.boot_epoch;
    s.hmac_key = key_;
    s.advert_interval = options_.advert_interval;
    for (const auto& inst : options_.instances) {
        InstanceSpec is;
        is.name = inst.name;
        is.reserved_ip = inst.ip;
        is.priority = priority_of(n.id, inst);
        is.preempt = inst.preempt;
        is.preempt_delay = inst.preempt_delay;
        is.advert_interval = inst.advert_interval;
        is.checks = inst.checks;
        s.instances.push_back(std::move(is));
    }
    for (const auto& c : options_.checks) {
        s.checks[c.name] = c.policy;
    }
    s.provider_enabled = true;
    s.reconcile_interval = options_.reconcile_interval;
    s.seed = options_.seed * 1000003ULL + static_cast<std::uint64_t>(n.id) * 7919ULL + n.boot_epoch;
    s.maintenance = n.maintenance;
    s.action_poll_interval = options_.action_poll_interval;
    s.locked_retry = options_.locked_retry;
    s.action_deadline = options_.action_deadline;
    s.backoff = options_.backoff;
    return s;
}

void SimCluster::boot(SimNode& n) {
    ++n.boot_epoch;
    ++n.incarnation;
    n.shadow.clear();
    n.roles.clear();
    n.armed.reset();
    ++n.timer_gen;
    for (const auto& inst : options_.instances) {
        n.roles[inst.name] = Role::Init;
    }
    n.node = std::make_unique<Node>(spec_for(n), now());
    after_core_call(n);
}

void SimCluster::trace(const std::string& line) {
    dirty_ = true;  // every fault and operator action is traced
    if (trace_.size() >= kTraceLines) {
        trace_.pop_front();
    }
    trace_.push_back(stamp() + " " + line);
}

std::string SimCluster::stamp() const {
    return "t=" + secs(now() - start_time());
}

void SimCluster::note(const std::string& text) {
    trace("note: " + text);
}

void SimCluster::violation(const std::string& what) {
    if (violations_.size() < 20) {
        violations_.push_back(stamp() + " " + what);
    }
    trace("VIOLATION: " + what);
}

std::string SimCluster::trace_tail(std::size_t lines) const {
    std::string out;
    const std::size_t start = trace_.size() > lines ? trace_.size() - lines : 0;
    for (std::size_t i = start; i < trace_.size(); ++i) {
        out += trace_[i];
        out += '\n';
    }
    return out;
}

bool SimCluster::run_until(Instant until) {
    while (ok() && !queue_.empty() && queue_.next_time() <= until) {
        queue_.run_one();
        check_after_event();
    }
    if (ok() && now() < until) {
        // Jump the clock to `until` with a no-op event so now() reads as asked.
        queue_.at(until, [] {});
        queue_.run_one();
    }
    return ok();
}

bool SimCluster::run_until(const std::function<bool()>& done, Duration limit) {
    const Instant until = now() + limit;
    if (done()) {
        return true;
    }
    while (ok() && !queue_.empty() && queue_.next_time() <= until) {
        queue_.run_one();
        check_after_event();
        if (ok() && done()) {
            return true;
        }
    }
    if (ok() && now() < until) {
        queue_.at(until, [] {});
        queue_.run_one();
    }
    return false;
}

void SimCluster::deliver(NodeId id, std::uint64_t incarnation, const Input& input) {
    SimNode& n = at(id);
    if (!n.node || n.incarnation != incarnation) {
        return;
    }
    if (!std::holds_alternative<AdvertReceived>(input)) {
        dirty_ = true;
    }
    if (const auto* probe = std::get_if<ProbeCompleted>(&input)) {
        if (const SimCheckSpec* spec = check_spec(probe->check)) {
            n.shadow[probe->check].record(probe->result.passed(), spec->policy);
        }
    }
    n.node->handle(input, now());
    after_core_call(n);
}

void SimCluster::fire_deadline(NodeId id, std::uint64_t gen) {
    SimNode& n = at(id);
    if (!n.node || n.timer_gen != gen) {
        ++counters_.stale_wakes;
        return;
    }
    ++counters_.deadline_calls;
    n.armed.reset();
    if (n.last_deadline_call == now()) {
        if (++n.deadline_calls_at_same_instant > kSpinLimit) {
            violation(n.name + ": core spins: next_deadline() stays at " + stamp() + " after " +
                      std::to_string(kSpinLimit) + " on_deadline calls");
            return;
        }
    } else {
        n.last_deadline_call = now();
        n.deadline_calls_at_same_instant = 0;
    }
    n.node->on_deadline(now());
    after_core_call(n);
}

void SimCluster::after_core_call(SimNode& n) {
    std::vector<Action> actions = n.node->take_actions();
    execute(n, actions);
    if (n.node) {
        check_not_master_when_unhealthy(n);
        rearm(n);
    }
}

void SimCluster::rearm(SimNode& n) {
    const std::optional<Instant> d = n.node->next_deadline();
    if (!d) {
        n.armed.reset();
        ++n.timer_gen;
        return;
    }
    if (n.armed && *n.armed == *d) {
        return;
    }
    n.armed = *d;
    const std::uint64_t gen = ++n.timer_gen;
    const NodeId id = n.id;
    queue_.at(*d, [this, id, gen] { fire_deadline(id, gen); });
}

void SimCluster::execute(SimNode& n, std::vector<Action>& actions) {
    for (auto& action : actions) {
        if (auto* send = std::get_if<SendAdvert>(&action)) {
            send_advert(n, *send);
        } else if (auto* call = std::get_if<CallProvider>(&action)) {
            const auto role = n.roles.find(call->instance);
            if (call->op == ProviderOp::Assign &&
                (role == n.roles.end() || role->second != Role::Master)) {
                violation(
                    n.name + " [" + call->instance + "] issued Assign while " +
                    std::string(to_string(role == n.roles.end() ? Role::Init : role->second)));
            }
            call_provider(n, *call);
        } else if (auto* t = std::get_if<Transitioned>(&action)) {
            const auto known = n.roles.find(t->instance);
            if (known != n.roles.end() && known->second != t->from) {
                violation(n.name + " [" + t->instance + "] transition from " +
                          std::string(to_string(t->from)) + " but the last one reached " +
                          std::string(to_string(known->second)));
            }
            n.roles[t->instance] = t->to;
            dirty_ = true;
            transitions_.push_back(
                TraceTransition{now(), n.id, t->instance, t->from, t->to, t->reason});
            trace(n.name + " [" + t->instance + "] " + std::string(to_string(t->from)) + " -> " +
                  std::string(to_string(t->to)) + ": " + t->reason);
            if (steady_ && (t->from == Role::Master || t->to == Role::Master)) {
                violation(n.name + " [" + t->instance + "] changed mastership while steady (" +
                          std::string(to_string(t->from)) + " -> " + std::string(to_string(t->to)) +
                          ": " + t->reason + ")");
            }
        }
    }
}

void SimCluster::inject(NodeId to, NodeId as, const std::vector<std::uint8_t>& bytes) {
    ++counters_.adverts_delivered;
    deliver(to, at(to).incarnation, Input{AdvertReceived{bytes, at(as).name + ":5405"}});
}

void SimCluster::send_advert(SimNode& n, const SendAdvert& a) {
    n.sent.push_back(a.bytes);
    if (n.sent.size() > kCapturedAdverts) {
        n.sent.pop_front();
    }
    for (auto& peer : nodes_) {
        if (peer.id == n.id) {
            continue;
        }
        const Delivery d = network_.route(n.id, peer.id, now(), rng_);
        for (int i = 0; i < d.count; ++i) {
            const NodeId to = peer.id;
            // The peer's incarnation is read on arrival: a restarted node gets datagrams that
            // were in flight, as a real socket would.
            Input in{AdvertReceived{a.bytes, n.name + ":5405"}};
            queue_.at(d.at[static_cast<std::size_t>(i)], [this, to, in = std::move(in)] {
                ++counters_.adverts_delivered;
                deliver(to, at(to).incarnation, in);
            });
        }
    }
}

void SimCluster::count_call(SimNode& n) {
    ++counters_.provider_calls;
    ++n.calls;
    n.calls_minute.push_back(now());
    n.calls_hour.push_back(now());
    while (now() - n.calls_minute.front() >= std::chrono::minutes(1)) {
        n.calls_minute.pop_front();
    }
    while (now() - n.calls_hour.front() >= std::chrono::hours(1)) {
        n.calls_hour.pop_front();
    }
    n.max_minute = std::max(n.max_minute, static_cast<int>(n.calls_minute.size()));
    n.max_hour = std::max(n.max_hour, static_cast<int>(n.calls_hour.size()));
    const auto& opt = options_.provider;
    if (static_cast<int>(n.calls_minute.size()) > opt.limit_per_minute) {
        violation(n.name + " made " + std::to_string(n.calls_minute.size()) +
                  " provider calls in a minute (budget " + std::to_string(opt.limit_per_minute) +
                  ")");
    }
    if (static_cast<int>(n.calls_hour.size()) > opt.limit_per_hour) {
        violation(n.name + " made " + std::to_string(n.calls_hour.size()) +
                  " provider calls in an hour (budget " + std::to_string(opt.limit_per_hour) + ")");
    }
}

void SimCluster::call_provider(SimNode& n, const CallProvider& c) {
    if (c.op == ProviderOp::Assign) {
        ++n.assigns;
    }
    FakeRequest req;
    req.ip = c.ip;
    req.op = fake_op(c.op);
    req.caller = n.droplet;
    req.target = n.droplet;
    if (c.op == ProviderOp::ReadAction) {
        req.action_id = parse_id(c.action_id).value_or(0);
    }
    trace(n.name + " [" + c.instance + "] calls " + std::string(to_string(c.op)) + " #" +
          std::to_string(c.request_id) + (c.action_id.empty() ? "" : " action " + c.action_id));
    provider_round_trip(n.id, n.incarnation, c, req, now(), false);
}

// One HTTP exchange: the request reaches the API after one latency, the answer comes back
// after another, or never (then the shell's request timeout answers Transient).
void SimCluster::provider_round_trip(NodeId id, std::uint64_t incarnation, CallProvider call,
                                     FakeRequest req, Instant sent_at, bool fold_step) {
    count_call(at(id));
    const Instant arrive = now() + provider_.one_way_latency();
    ++provider_in_flight_;
    queue_.at(arrive, [this, id, incarnation, call, req, sent_at, fold_step] {
        --provider_in_flight_;
        std::optional<FakeAccepted> accepted;
        const FakeReply reply = provider_.receive(req, now(), accepted);
        dirty_ = true;
        if (accepted) {
            const std::string ip = req.ip;
            const std::int64_t action_id = accepted->action_id;
            queue_.at(accepted->completes_at, [this, ip, action_id] {
                const auto before = provider_.holder(ip);
                provider_.complete(ip, action_id, now());
                dirty_ = true;
                const auto after = provider_.holder(ip);
                if (before != after) {
                    trace("provider: " + ip + " moved from " +
                          (before ? std::to_string(*before) : std::string("nobody")) + " to " +
                          (after ? std::to_string(*after) : std::string("nobody")));
                }
            });
        }
        if (reply.lost()) {
            const Instant timeout_at = sent_at + options_.request_timeout;
            queue_.at(timeout_at, [this, id, incarnation, call, reply] {
                deliver(id, incarnation, Input{classify(call, reply)});
            });
            return;
        }
        if (!fold_step && options_.fold_holder_422 && call.op == ProviderOp::Assign &&
            reply.status == 422 && !is_pending_event(reply)) {
            // The provider layer reads the holder and reports success when it is us.
            FakeRequest read = req;
            read.op = FakeOp::ReadHolder;
            const Instant back = now() + provider_.one_way_latency();
            queue_.at(back, [this, id, incarnation, call, read, sent_at] {
                if (!at(id).node || at(id).incarnation != incarnation) {
                    return;
                }
                provider_round_trip(id, incarnation, call, read, sent_at, true);
            });
            return;
        }
        ProviderReplied out = classify(call, reply);
        if (fold_step) {
            // This answers the folded GET: Ok (already done) when we hold it, else the 422.
            const bool mine = reply.status == 200 && reply.holder == req.caller;
            if (mine) {
                out = ProviderReplied{};
                out.instance = call.instance;
                out.request_id = call.request_id;
                out.outcome = ProviderOutcome::Ok;
                out.http_status = 422;
                out.detail = "already assigned to this droplet";
            } else if (reply.status == 200) {
                out.outcome = ProviderOutcome::Rejected;
                out.http_status = 422;
                out.detail = "Droplet already has a reserved IP assigned.";
                out.holder.clear();
            }
        }
        const Instant back = now() + provider_.one_way_latency();
        const Instant deadline = sent_at + options_.request_timeout;
        if (back > deadline) {
            out = ProviderReplied{};
            out.instance = call.instance;
            out.request_id = call.request_id;
            out.outcome = ProviderOutcome::Transient;
            out.detail = "timed out";
        }
        queue_.at(std::min(back, deadline), [this, id, incarnation, out = std::move(out)] {
            SimNode& n = at(id);
            if (n.node && n.incarnation == incarnation) {
                trace(n.name + " [" + out.instance + "] reply #" + std::to_string(out.request_id) +
                      " " + std::string(to_string(out.outcome)) +
                      (out.http_status ? " HTTP " + std::to_string(out.http_status) : "") +
                      (out.holder.empty() ? "" : " holder " + out.holder) +
                      (out.locked ? " locked" : "") +
                      (out.action_id.empty() ? "" : " action " + out.action_id));
            }
            deliver(id, incarnation, Input{out});
        });
    });
}

void SimCluster::schedule_probe(NodeId id, const SimCheckSpec& check, Instant when) {
    queue_.at(when, [this, id, &check] {
        SimNode& n = at(id);
        if (n.node) {
            ++counters_.probes;
            health::ProbeResult r;
            const auto p = n.pattern.find(check.name);
            if (p != n.pattern.end() && !p->second.empty()) {
                std::size_t& pos = n.pattern_pos[check.name];
                n.health[check.name] = p->second[pos % p->second.size()];
                ++pos;
            }
            r.verdict = n.health[check.name];
            r.reason = n.health_reason[check.name];
            if (r.reason.empty()) {
                r.reason = r.passed() ? "scripted pass" : "scripted failure";
            }
            r.latency = std::chrono::milliseconds(3);
            deliver(id, n.incarnation, Input{ProbeCompleted{check.name, r}});
        }
        schedule_probe(id, check, now() + check.interval);
    });
}

void SimCluster::cut(NodeId a, NodeId b) {
    network_.cut(a, b);
    trace("fault: cut " + name(a) + " - " + name(b));
}

void SimCluster::isolate(NodeId n) {
    network_.isolate(n);
    trace("fault: isolate " + name(n));
}

void SimCluster::partition(const std::vector<NodeId>& left, const std::vector<NodeId>& right) {
    network_.partition(left, right);
    std::string l;
    std::string r;
    for (NodeId n : left) {
        l += name(n) + " ";
    }
    for (NodeId n : right) {
        r += name(n) + " ";
    }
    trace("fault: partition { " + l + "} | { " + r + "}");
}

void SimCluster::drop(NodeId a, NodeId b, double p) {
    network_.drop(a, b, p);
    trace("fault: drop " + name(a) + " -> " + name(b) + " " + std::to_string(int(p * 100)) + "%");
}

void SimCluster::recover() {
    network_.recover();
    trace("network recovered");
}

void SimCluster::set_provider_faults(const ProviderFaults& f) {
    provider_.set_faults(f);
    char buf[192];
    std::snprintf(
        buf, sizeof buf, "provider faults: 5xx %.0f%%, 429 %.0f%% (retry-after %s), lost %.0f%%",
        f.server_error * 100, f.rate_limited * 100, secs(f.retry_after).c_str(), f.lost * 100);
    trace(buf);
}

void SimCluster::crash(NodeId id) {
    SimNode& n = at(id);
    if (!n.node) {
        return;
    }
    n.node.reset();
    ++n.incarnation;
    ++n.timer_gen;
    n.armed.reset();
    trace("fault: crash " + n.name);
}

void SimCluster::restart(NodeId id) {
    SimNode& n = at(id);
    if (n.node) {
        return;
    }
    trace("restart " + n.name + " (boot epoch " + std::to_string(n.boot_epoch + 1) + ")");
    boot(n);
}

void SimCluster::stop(NodeId id) {
    SimNode& n = at(id);
    if (!n.node) {
        return;
    }
    trace("stop " + n.name + " (graceful)");
    n.node->handle(Input{Shutdown{}}, now());
    after_core_call(n);
    n.node.reset();
    ++n.incarnation;
    ++n.timer_gen;
    n.armed.reset();
}

void SimCluster::set_health(NodeId id, const std::string& check, health::Verdict v,
                            const std::string& reason) {
    SimNode& n = at(id);
    if (n.health[check] != v || n.pattern.count(check) != 0) {
        trace("health: " + n.name + " " + check + " -> " + std::string(health::to_string(v)) +
              (reason.empty() ? "" : " (" + reason + ")"));
    }
    n.pattern.erase(check);
    n.health[check] = v;
    n.health_reason[check] = reason;
}

void SimCluster::set_health_pattern(NodeId id, const std::string& check,
                                    std::vector<health::Verdict> pattern) {
    SimNode& n = at(id);
    std::string text;
    for (auto v : pattern) {
        text += std::string(health::to_string(v)) + " ";
    }
    trace("health: " + n.name + " " + check + " cycles " + text);
    n.pattern[check] = std::move(pattern);
    n.pattern_pos[check] = 0;
}

void SimCluster::set_all_health(health::Verdict v) {
    for (auto& n : nodes_) {
        n.pattern.clear();
        n.health_reason.clear();
        for (auto& [check, verdict] : n.health) {
            if (verdict != v) {
                trace("health: " + n.name + " " + check + " -> " +
                      std::string(health::to_string(v)));
            }
            verdict = v;
        }
    }
}

void SimCluster::handover(NodeId id, const std::string& inst, std::optional<NodeId> to) {
    SimNode& n = at(id);
    if (!n.node) {
        return;
    }
    trace("admin: hand-over " + n.name + " [" + inst + "] to " + (to ? name(*to) : "any"));
    AdminHandover h{inst, to ? std::optional<std::string>(name(*to)) : std::nullopt};
    deliver(id, n.incarnation, Input{h});
}

void SimCluster::maintenance(NodeId id, bool on) {
    SimNode& n = at(id);
    n.maintenance = on;
    if (!n.node) {
        return;
    }
    trace(std::string("admin: maintenance ") + (on ? "on " : "off ") + n.name);
    deliver(id, n.incarnation, Input{AdminMaintenance{on}});
}

std::optional<Role> SimCluster::role(NodeId id, const std::string& inst) const {
    const SimNode& n = at(id);
    if (!n.node) {
        return std::nullopt;
    }
    const auto it = n.roles.find(inst);
    return it == n.roles.end() ? std::nullopt : std::optional<Role>(it->second);
}

std::vector<NodeId> SimCluster::masters(const std::string& inst) const {
    std::vector<NodeId> out;
    for (const auto& n : nodes_) {
        if (role(n.id, inst) == Role::Master) {
            out.push_back(n.id);
        }
    }
    return out;
}

std::optional<NodeId> SimCluster::master(const std::string& inst) const {
    const auto m = masters(inst);
    return m.size() == 1 ? std::optional<NodeId>(m[0]) : std::nullopt;
}

std::vector<NodeId> SimCluster::backups(const std::string& inst) const {
    std::vector<NodeId> out;
    for (const auto& n : nodes_) {
        if (role(n.id, inst) == Role::Backup) {
            out.push_back(n.id);
        }
    }
    return out;
}

std::optional<NodeId> SimCluster::holder(const std::string& inst) const {
    const auto h = provider_.holder(instance(inst).ip);
    if (!h) {
        return std::nullopt;
    }
    for (const auto& n : nodes_) {
        if (n.droplet == *h) {
            return n.id;
        }
    }
    return std::nullopt;
}

std::optional<NodeId> SimCluster::highest(const std::string& inst) const {
    std::optional<NodeId> best;
    int best_priority = 0;
    for (const auto& n : nodes_) {
        if (!n.node) {
            continue;
        }
        const Election* e = n.node->election(inst);
        if (e == nullptr || e->fault_reason() || e->role() == Role::Fault ||
            e->role() == Role::Init) {
            continue;
        }
        const int p = e->effective_priority();
        if (!best || p > best_priority || (p == best_priority && n.name > name(*best))) {
            best = n.id;
            best_priority = p;
        }
    }
    return best;
}

void SimCluster::ShadowCheck::record(bool passed, const health::CheckPolicy& p) {
    passes_in_a_row = passed ? passes_in_a_row + 1 : 0;
    failures_in_a_row = passed ? 0 : failures_in_a_row + 1;
    if (state == State::Unknown) {
        state = passed ? State::Passing : State::Failing;
    } else if (state == State::Failing && passes_in_a_row >= p.rise) {
        state = State::Passing;
    } else if (state == State::Passing && failures_in_a_row >= p.fall) {
        state = State::Failing;
    }
}

const SimCheckSpec* SimCluster::check_spec(const std::string& name) const {
    for (const auto& c : options_.checks) {
        if (c.name == name) {
            return &c;
        }
    }
    return nullptr;
}

bool SimCluster::healthy(const SimNode& n, const SimInstanceSpec& inst, std::string* why) const {
    if (n.maintenance) {
        *why = "in maintenance";
        return false;
    }
    for (const auto& check : inst.checks) {
        const SimCheckSpec* spec = check_spec(check);
        if (spec == nullptr || spec->policy.weight != 0) {
            continue;
        }
        const auto s = n.shadow.find(check);
        if (s == n.shadow.end() || s->second.state == ShadowCheck::State::Unknown) {
            *why = "no result yet of check " + check;
            return false;
        }
        if (s->second.state == ShadowCheck::State::Failing) {
            *why = "check " + check + " failing (" + std::to_string(s->second.failures_in_a_row) +
                   " failures, " + std::to_string(s->second.passes_in_a_row) +
                   " passes in a row; rise " + std::to_string(spec->policy.rise) + ", fall " +
                   std::to_string(spec->policy.fall) + ")";
            return false;
        }
    }
    return true;
}

// A node must not be Master while a weight-0 check of the instance is failing or has no result
// yet, or while in maintenance.
void SimCluster::check_not_master_when_unhealthy(const SimNode& n) {
    for (const auto& inst : options_.instances) {
        const auto r = n.roles.find(inst.name);
        std::string why;
        if (r != n.roles.end() && r->second == Role::Master && !healthy(n, inst, &why)) {
            violation(n.name + " [" + inst.name + "] is MASTER while " + why);
        }
    }
}

void SimCluster::set_steady(bool on) {
    steady_ = on;
    trace(on ? "steady: converged invariants on" : "steady: off");
    if (on) {
        check_converged();
    }
}

bool SimCluster::check_converged(bool record) {
    for (const auto& inst : options_.instances) {
        const auto m = masters(inst.name);
        std::string why;
        if (m.size() != 1) {
            why = "[" + inst.name + "] " + std::to_string(m.size()) + " masters";
            for (NodeId id : m) {
                why += " " + name(id);
            }
        } else {
            const SimNode& master = at(m[0]);
            const auto h = provider_.holder(inst.ip);
            std::string unhealthy;
            if (!healthy(master, inst, &unhealthy)) {
                why = "[" + inst.name + "] master " + master.name + " is " + unhealthy;
            } else if (provider_.locked(inst.ip)) {
                why = "[" + inst.name + "] IP still locked by a pending action";
            } else if (h != master.droplet) {
                why = "[" + inst.name + "] IP held by " +
                      (h ? std::to_string(*h) : std::string("nobody")) + ", master is " +
                      master.name + " (" + std::to_string(master.droplet) + ")";
            } else if (inst.preempt) {
                // With preempt a Backup of higher priority must have taken over, unless it
                // yields after an operator hand-over. An equal priority does not preempt
                // (RFC 5798 §6.4.2); the tie-break on identity is between two Masters only.
                const int master_priority = master.node->election(inst.name)->effective_priority();
                for (const auto& other : nodes_) {
                    const Election* e = other.node ? other.node->election(inst.name) : nullptr;
                    if (e == nullptr || e->role() != Role::Backup ||
                        e->effective_priority() <= master_priority) {
                        continue;
                    }
                    const auto& yield = e->yielding_to();
                    if (!yield || (!yield->empty() && *yield != master.name)) {
                        why = "[" + inst.name + "] master is " + master.name + " but " +
                              other.name + " outranks it (priority " +
                              std::to_string(e->effective_priority()) + " > " +
                              std::to_string(master_priority) + ", preempt on)";
                        break;
                    }
                }
            }
        }
        if (!why.empty()) {
            if (record) {
                violation("not converged: " + why);
            }
            return false;
        }
    }
    return true;
}

bool SimCluster::settled() {
    if (provider_in_flight_ != 0) {
        return false;
    }
    for (const auto& n : nodes_) {
        if (!n.node) {
            return false;
        }
        // A check still rising (or with no result yet) will change a priority or clear a Fault.
        for (const auto& c : options_.checks) {
            const auto s = n.shadow.find(c.name);
            if (s == n.shadow.end() || s->second.state != ShadowCheck::State::Passing ||
                n.health.at(c.name) != health::Verdict::Pass) {
                return false;
            }
        }
        for (const auto& [inst, role] : n.roles) {
            if (role != Role::Master && role != Role::Backup) {
                return false;
            }
        }
    }
    return check_converged(false);
}

void SimCluster::check_after_event() {
    if (steady_ && ok() && dirty_) {
        dirty_ = false;
        check_converged();
    }
}

std::optional<TraceTransition> SimCluster::first_transition(const std::string& inst, Role to,
                                                            Instant since) const {
    for (const auto& t : transitions_) {
        if (t.instance == inst && t.to == to && t.at >= since) {
            return t;
        }
    }
    return std::nullopt;
}

std::optional<HolderChange> SimCluster::first_move(const std::string& inst, Instant since) const {
    const std::string& ip = instance(inst).ip;
    for (const auto& h : provider_.history()) {
        if (h.ip == ip && h.at >= since) {
            return h;
        }
    }
    return std::nullopt;
}

int SimCluster::moves_since(const std::string& inst, Instant since) const {
    return provider_.moves_since(instance(inst).ip, since);
}

std::uint64_t SimCluster::provider_calls(NodeId n) const {
    return at(n).calls;
}

std::uint64_t SimCluster::assigns(NodeId n) const {
    return at(n).assigns;
}

int SimCluster::max_calls_per_minute(NodeId n) const {
    return at(n).max_minute;
}

int SimCluster::max_calls_per_hour(NodeId n) const {
    return at(n).max_hour;
}

Duration SimCluster::advert_interval(const std::string& inst) const {
    return instance(inst).advert_interval.value_or(options_.advert_interval);
}

Duration SimCluster::worst_master_down_interval(const std::string& inst) const {
    const Duration a = advert_interval(inst);
    return 3 * a + a * 255 / 256 + a / 16;
}

Duration SimCluster::max_check_interval() const {
    Duration m{0};
    for (const auto& c : options_.checks) {
        m = std::max(m, c.interval);
    }
    return m;
}

}  // namespace failoverd::sim
