#include "daemon/core/node.hpp"

#include <algorithm>
#include <set>
#include <stdexcept>
#include <utility>

#include "daemon/core/assert.hpp"

namespace failoverd {

namespace {

void require(bool ok, const std::string& message) {
    if (!ok) {
        throw std::invalid_argument(message);
    }
}

std::set<std::uint32_t> wire_ids(const NodeSpec& spec) {
    std::set<std::uint32_t> ids;
    for (const auto& i : spec.instances) {
        ids.insert(instance_id_of(i.name));
    }
    return ids;
}

// In [0, 1/16): stable per node, different for different names (see ElectionConfig).
double tie_stagger_for(const std::string& node_name) {
    return static_cast<double>(instance_id_of(node_name) % 1024) / (1024.0 * 16.0);
}

// The backup a resigning master names (docs/election.md, "Fast resign"): the one the election
// would pick among those whose presence notice is current: highest advertised priority, ties
// to the greater name. A presence notice comes every kPresenceEveryAdverts intervals, so one
// missed notice still counts; a node silent for longer may be gone, and naming a dead node
// would make the others wait a full master down interval instead of skew time.
std::optional<std::string> pick_successor(const PeerTable& peers, Instant now) {
    const PeerInfo* best = nullptr;
    for (const auto& [name, peer] : peers.peers()) {
        if (peer.state != SenderState::Backup || peer.priority <= 0 ||
            now - peer.last_heard > (2 * kPresenceEveryAdverts + 1) * peer.advert_interval) {
            continue;
        }
        if (best == nullptr || peer.priority > best->priority ||
            (peer.priority == best->priority && peer.node_name > best->node_name)) {
            best = &peer;
        }
    }
    return best ? std::optional<std::string>(best->node_name) : std::nullopt;
}

// A backup takes over after missing this many adverts (master_down_interval is 3 intervals
// plus its skew): sends that failed fewer times in a row cannot have let one take over.
constexpr std::uint64_t kMissedAdvertsForTakeover = 3;

// A peer has gone missing when a notice it should have sent did not arrive within
// kPeerFreshAdverts intervals of its time: a master advertises every interval, a backup or
// faulted node every kPresenceEveryAdverts. One lost notice is enough: the cost of a false
// alarm is one read of the holder, while a partition just long enough for the peer to take
// over (master_down_interval, under 4 intervals) and claim the IP shows as a silence of only
// a few intervals more.
bool went_missing(const PeerInfo& peer, Instant now) {
    const int every =
        peer.state == SenderState::Master && peer.priority > 0 ? 1 : kPresenceEveryAdverts;
    return now - peer.last_heard > (every + kPeerFreshAdverts) * peer.advert_interval;
}

// Why an advert from a known peer may mean a partition has just healed, from what the peer
// table held before it (empty when it does not): the peer was silent and is heard again, it
// now advertises as master (it took over while it could not hear us), or it stops being
// master (an assign it posted just before may land after our last read). A peer heard for
// the first time is new, not healed; the peer-table change covers it.
std::string heal_reason(const PeerInfo* before, const Advert& advert, Instant now) {
    if (before == nullptr || before->last_heard == Instant{}) {
        return {};
    }
    const bool missing = went_missing(*before, now);
    const bool was_master = before->state == SenderState::Master && before->priority > 0;
    const bool now_master = advert.state == SenderState::Master && advert.priority > 0;
    if (missing) {
        return advert.sender + " heard again after " + format_duration(now - before->last_heard) +
               " of silence" + (now_master ? " (as MASTER)" : "");
    }
    if (now_master && !was_master) {
        return advert.sender + " heard as MASTER (priority " + std::to_string(advert.priority) +
               ")";
    }
    if (was_master && !now_master) {
        return advert.state == SenderState::Master
                   ? advert.sender + " resigned as MASTER"
                   : advert.sender + " stepped down from MASTER (now " +
                         std::string(to_string(advert.state)) + ")";
    }
    return {};
}

ElectionConfig election_config(const NodeSpec& spec, const InstanceSpec& is) {
    ElectionConfig ec;
    ec.instance = is.name;
    ec.node_name = spec.node_name;
    ec.priority = is.priority;
    ec.preempt_mode = is.preempt;
    ec.preempt_delay = is.preempt_delay;
    ec.advertisement_interval = is.advert_interval.value_or(spec.advert_interval);
    ec.tie_stagger = tie_stagger_for(spec.node_name);
    return ec;
}

ReconcilerConfig reconciler_config(const NodeSpec& spec, const InstanceSpec& is) {
    ReconcilerConfig rc;
    rc.instance = is.name;
    rc.ip = is.reserved_ip;
    rc.self_provider_id = spec.provider_id;
    rc.self_name = spec.node_name;
    rc.reconcile_interval = spec.reconcile_interval;
    rc.action_poll_interval = spec.action_poll_interval;
    rc.locked_retry = spec.locked_retry;
    rc.action_deadline = spec.action_deadline;
    rc.backoff = spec.backoff;
    return rc;
}

bool same_reconciler(const NodeSpec& a, const NodeSpec& b, const InstanceSpec& ia,
                     const InstanceSpec& ib) {
    return ia.reserved_ip == ib.reserved_ip && a.reconcile_interval == b.reconcile_interval &&
           a.action_poll_interval == b.action_poll_interval && a.locked_retry == b.locked_retry &&
           a.action_deadline == b.action_deadline;
}

bool same_policy(const health::CheckPolicy& a, const health::CheckPolicy& b) {
    return a.rise == b.rise && a.fall == b.fall && a.weight == b.weight;
}

void validate(const NodeSpec& spec) {
    require(!spec.node_name.empty() && spec.node_name.size() <= kAdvertNameMax,
            "node name must be 1..63 bytes: '" + spec.node_name + "'");
    require(spec.provider_id.size() <= kAdvertNameMax, "provider identity longer than 63 bytes");
    require(spec.hmac_key.size() >= 16, "the advert key must be at least 16 bytes");
    require(!spec.provider_enabled || !spec.provider_id.empty(),
            "a provider is enabled but this node's provider identity (droplet id) is empty");
    std::set<std::string> names;
    std::set<std::uint32_t> ids;
    for (const auto& i : spec.instances) {
        require(!i.name.empty(), "an instance has an empty name");
        require(names.insert(i.name).second, "duplicate instance '" + i.name + "'");
        require(ids.insert(instance_id_of(i.name)).second,
                "instance '" + i.name + "' has the same wire id as another; rename one");
        require(i.priority >= kPriorityMin && i.priority <= kPriorityMax,
                "instance '" + i.name + "': priority must be 1..255");
        const Duration interval = i.advert_interval.value_or(spec.advert_interval);
        require(interval >= kAdvertIntervalMin && interval <= kAdvertIntervalMax,
                "instance '" + i.name + "': advert interval must be 10 ms .. 1 h");
        require(!spec.provider_enabled || !i.reserved_ip.empty(),
                "instance '" + i.name + "': a provider is enabled but reserved_ip is empty");
        for (const auto& c : i.checks) {
            require(spec.checks.contains(c),
                    "instance '" + i.name + "' tracks unknown check '" + c + "'");
        }
    }
}

}  // namespace

Node::Node(NodeSpec spec, Instant now)
    : spec_((validate(spec), std::move(spec))),
      verifier_(spec_.hmac_key, spec_.node_name, wire_ids(spec_)),
      budget_(now, spec_.budget),
      rng_(spec_.seed),
      maintenance_(spec_.maintenance) {
    for (const auto& [name, policy] : spec_.checks) {
        health_.add_check(name, policy);
    }
    for (const auto& [name, result] : spec_.initial_results) {
        health_.record(name, result);
    }
    instances_.reserve(spec_.instances.size());
    for (const auto& is : spec_.instances) {
        instances_.push_back(make_instance(is));
    }
    for (auto& inst : instances_) {
        apply_health(inst, now);
        inst.election.start(now);
        drain(inst, now);
    }
    status_stale_ = true;
}

Node::InstanceState Node::make_instance(const InstanceSpec& is) const {
    return InstanceState(is, Election(election_config(spec_, is)),
                         Reconciler(reconciler_config(spec_, is)));
}

void Node::reconfigure(NodeSpec spec, Instant now) {
    validate(spec);
    require(spec.node_name == spec_.node_name, "the node name cannot change on reload");
    require(spec.provider_id == spec_.provider_id, "the provider identity cannot change on reload");
    require(spec.boot_epoch == spec_.boot_epoch, "the boot epoch cannot change on reload");
    require(spec.provider_enabled == spec_.provider_enabled,
            "the provider cannot be enabled or disabled on reload");
    if (stopped_) {
        return;
    }

    for (const auto& [name, policy] : spec.checks) {
        const health::CheckTracker* tracker = health_.find(name);
        if (tracker == nullptr || !same_policy(tracker->policy(), policy)) {
            health_.add_check(name, policy);
        }
    }
    for (const auto& [name, policy] : spec_.checks) {
        if (!spec.checks.contains(name)) {
            health_.remove_check(name);
        }
    }
    if (spec.hmac_key != spec_.hmac_key) {
        verifier_ = AdvertVerifier(spec.hmac_key, spec.node_name, wire_ids(spec));
    } else {
        verifier_.set_known_instances(wire_ids(spec));
    }

    const NodeSpec old = std::exchange(spec_, std::move(spec));
    for (auto& inst : instances_) {
        const bool stays =
            std::any_of(spec_.instances.begin(), spec_.instances.end(),
                        [&](const InstanceSpec& is) { return is.name == inst.spec.name; });
        if (!stays) {
            inst.election.shutdown(now, pick_successor(inst.peers, now));
            drain(inst, now);
            inst.reconciler.stop();
            // Peers keep its replay window: if it comes back in this boot epoch, its adverts
            // must continue the sequence, not restart below it.
            retired_sequences_[inst.spec.name] = inst.sequence;
        }
    }
    std::vector<InstanceState> kept;
    kept.reserve(spec_.instances.size());
    for (const auto& is : spec_.instances) {
        auto it =
            std::find_if(instances_.begin(), instances_.end(),
                         [&](const InstanceState& inst) { return inst.spec.name == is.name; });
        if (it == instances_.end()) {
            kept.push_back(make_instance(is));
            InstanceState& inst = kept.back();
            if (const auto r = retired_sequences_.find(is.name); r != retired_sequences_.end()) {
                inst.sequence = r->second;
            }
            apply_health(inst, now);
            inst.election.start(now);
            drain(inst, now);
            continue;
        }
        kept.push_back(std::move(*it));
        InstanceState& inst = kept.back();
        if (!same_reconciler(old, spec_, inst.spec, is)) {
            inst.reconciler.stop();
            inst.reconciler = Reconciler(reconciler_config(spec_, is));
            if (spec_.provider_enabled && inst.election.role() == Role::Master) {
                inst.reconciler.start(now);
            }
        }
        inst.spec = is;
        inst.election.reconfigure(election_config(spec_, is), now);
        apply_health(inst, now);
        drain(inst, now);
    }
    instances_ = std::move(kept);
    status_stale_ = true;
}

void Node::handle(const Input& input, Instant now) {
    if (stopped_) {
        return;
    }
    std::visit(
        [&](const auto& in) {
            using T = std::decay_t<decltype(in)>;
            if constexpr (std::is_same_v<T, AdvertReceived>) {
                on_advert(in, now);
            } else if constexpr (std::is_same_v<T, ProbeCompleted>) {
                on_probe(in, now);
            } else if constexpr (std::is_same_v<T, ProviderReplied>) {
                on_provider(in, now);
            } else if constexpr (std::is_same_v<T, AdminHandover>) {
                on_handover(in, now);
            } else if constexpr (std::is_same_v<T, AdminMaintenance>) {
                on_maintenance(in, now);
            } else if constexpr (std::is_same_v<T, AdvertSendResult>) {
                on_send_result(in, now);
            } else {
                static_assert(std::is_same_v<T, Shutdown>);
                on_shutdown(now);
            }
        },
        input);
    status_stale_ = true;
}

void Node::on_deadline(Instant now) {
    if (stopped_) {
        return;
    }
    for (auto& inst : instances_) {
        if (inst.provider_fault_until && now >= *inst.provider_fault_until) {
            inst.provider_fault.reset();
            inst.provider_fault_until.reset();
            apply_health(inst, now);
        }
        inst.election.on_deadline(now);
        drain(inst, now);
    }
    status_stale_ = true;
}

std::optional<Instant> Node::next_deadline() const {
    if (stopped_) {
        return std::nullopt;
    }
    std::optional<Instant> earliest;
    auto consider = [&](const std::optional<Instant>& t) {
        if (t && (!earliest || *t < *earliest)) {
            earliest = t;
        }
    };
    for (const auto& inst : instances_) {
        consider(inst.election.next_deadline());
        consider(inst.reconciler.next_deadline());
        consider(inst.provider_fault_until);
    }
    return earliest;
}

std::vector<Action> Node::take_actions() {
    std::vector<Action> out;
    out.swap(actions_);
    return out;
}

const Election* Node::election(std::string_view instance) const {
    const InstanceState* inst = find(instance);
    return inst ? &inst->election : nullptr;
}

std::optional<Role> Node::role(std::string_view instance) const {
    const InstanceState* inst = find(instance);
    if (!inst) {
        return std::nullopt;
    }
    return inst->election.role();
}

Node::InstanceState* Node::find(std::string_view instance) {
    for (auto& inst : instances_) {
        if (inst.spec.name == instance) {
            return &inst;
        }
    }
    return nullptr;
}

const Node::InstanceState* Node::find(std::string_view instance) const {
    for (const auto& inst : instances_) {
        if (inst.spec.name == instance) {
            return &inst;
        }
    }
    return nullptr;
}

void Node::on_advert(const AdvertReceived& in, Instant now) {
    auto verified = verifier_.verify(in.bytes);
    if (const DropReason* drop = std::get_if<DropReason>(&verified)) {
        ++status_.drops[static_cast<std::size_t>(*drop)];
        if (const auto& unknown = verifier_.last_unknown()) {
            count_foreign(unknown->first, unknown->second);
        }
        return;
    }
    const Advert& advert = std::get<Advert>(verified);
    ++status_.adverts_received;
    InstanceState* inst = nullptr;
    for (auto& candidate : instances_) {
        if (candidate.wire_id == advert.instance_id) {
            inst = &candidate;
        }
    }
    FAILOVERD_ASSERT(inst != nullptr);  // the verifier knows only our instance ids
    ++inst->adverts_received;
    // Learnt from any authentic advert, fresh or not, so that our adverts echo the sender's
    // boot and become fresh for it.
    const bool new_boot = learn_epoch(advert.sender, advert.boot_epoch, now);
    if (!advert.fresh_for(spec_.node_name, spec_.boot_epoch)) {
        // The sender has not heard this boot of ours: a capture replayed from before it, or a
        // live peer that has not heard us yet (it will, from our announce below or our next
        // advert). Either way it must not hold us in Backup, make us yield or name a peer alive.
        ++inst->adverts_not_fresh;
        ++status_.adverts_not_fresh;
    } else {
        const std::string healed = heal_reason(inst->peers.find(advert.sender), advert, now);
        const bool peer_changed = inst->peers.update(advert, in.from, now);
        if (advert.state == SenderState::Master) {
            inst->election.on_advert(
                ReceivedAdvert{advert.sender, advert.priority,
                               std::chrono::duration_cast<Duration>(advert.advert_interval),
                               advert.handover_target, advert.successor},
                now);
        }
        // A peer that became master, resigned or changed priority may change who should hold
        // the IP, and a presence notice from the node we leave the IP with shows whether it
        // still contends for it: a master re-reads the holder now instead of at the reconcile
        // interval. A peer heard again after a silence, or newly as master, may have claimed
        // the IP while the two could not hear each other (and may have stepped down since):
        // that re-read must not be skipped.
        if (inst->election.role() == Role::Master) {
            if (!healed.empty()) {
                recheck_after_heal(*inst, healed, now);
            } else if (peer_changed || (advert.state != SenderState::Master &&
                                        inst->reconciler.yielding_to(advert.sender_provider_id))) {
                inst->reconciler.recheck_soon(now);
            }
        }
        drain(*inst, now);
    }
    if (new_boot) {
        for (auto& each : instances_) {
            each.election.announce(now);
            drain(each, now);
        }
    }
}

bool Node::learn_epoch(const std::string& sender, std::uint64_t boot_epoch, Instant now) {
    auto it = peer_epochs_.find(sender);
    if (it == peer_epochs_.end()) {
        if (peer_epochs_.size() >= kMaxPeerEpochs) {
            return false;
        }
        peer_epochs_.emplace(sender, PeerEpoch{boot_epoch, now});
        return true;
    }
    if (boot_epoch < it->second.boot_epoch) {
        return false;  // an older boot's advert for another instance: nothing to learn
    }
    const bool newer = boot_epoch > it->second.boot_epoch;
    it->second = PeerEpoch{boot_epoch, now};
    return newer;
}

std::vector<EpochEcho> Node::echoes() const {
    std::vector<std::pair<Instant, const std::string*>> heard;
    heard.reserve(peer_epochs_.size());
    for (const auto& [name, peer] : peer_epochs_) {
        heard.emplace_back(peer.heard, &name);
    }
    const std::size_t n = std::min(heard.size(), kAdvertEchoMax);
    std::partial_sort(heard.begin(), heard.begin() + static_cast<std::ptrdiff_t>(n), heard.end(),
                      [](const auto& a, const auto& b) {
                          return a.first != b.first ? a.first > b.first : *a.second < *b.second;
                      });
    std::vector<EpochEcho> out;
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        out.push_back(
            EpochEcho{*heard[i].second, peer_epochs_.find(*heard[i].second)->second.boot_epoch});
    }
    return out;
}

void Node::count_foreign(const std::string& peer, const std::string& instance) {
    auto key = std::make_pair(peer, instance);
    auto it = foreign_instances_.find(key);
    if (it != foreign_instances_.end()) {
        ++it->second;
    } else if (foreign_instances_.size() < kMaxForeignInstances) {
        foreign_instances_.emplace(std::move(key), 1);
    }
}

void Node::on_probe(const ProbeCompleted& in, Instant now) {
    ++status_.probe_results;
    if (health_.find(in.check) == nullptr) {
        ++status_.probe_results_unknown_check;
        return;
    }
    if (!health_.record(in.check, in.result)) {
        return;
    }
    for (auto& inst : instances_) {
        if (std::find(inst.spec.checks.begin(), inst.spec.checks.end(), in.check) !=
            inst.spec.checks.end()) {
            apply_health(inst, now);
            drain(inst, now);
        }
    }
}

void Node::on_provider(const ProviderReplied& in, Instant now) {
    InstanceState* inst = find(in.instance);
    if (inst == nullptr || !spec_.provider_enabled) {
        ++stale_unrouted_;
        return;
    }
    inst->reconciler.on_reply(in, inst->election.effective_priority(), inst->peers, ctx(), now);
    drain(*inst, now);
}

void Node::on_handover(const AdminHandover& in, Instant now) {
    if (!in.instance.empty()) {
        InstanceState* inst = find(in.instance);
        if (inst == nullptr || !inst->election.handover(in.to_node, now)) {
            ++status_.handovers_ignored;
            return;
        }
        drain(*inst, now);
        return;
    }
    bool any = false;
    for (auto& inst : instances_) {
        if (inst.election.handover(in.to_node, now)) {
            any = true;
            drain(inst, now);
        }
    }
    if (!any) {
        ++status_.handovers_ignored;
    }
}

void Node::on_maintenance(const AdminMaintenance& in, Instant now) {
    maintenance_ = in.on;
    for (auto& inst : instances_) {
        apply_health(inst, now);
        drain(inst, now);
    }
}

void Node::on_send_result(const AdvertSendResult& in, Instant now) {
    InstanceState* inst = find(in.instance);
    if (inst == nullptr) {
        return;
    }
    if (in.failed > 0) {
        if (inst->failed_sends++ == 0) {
            inst->sends_failing_since = now;
        }
        return;
    }
    const std::uint64_t failed = std::exchange(inst->failed_sends, 0);
    // Peers that missed this many adverts may have taken over and moved the IP meanwhile.
    if (failed >= kMissedAdvertsForTakeover && inst->election.role() == Role::Master) {
        recheck_after_heal(*inst,
                           "adverts could not be sent to every peer for " +
                               format_duration(now - inst->sends_failing_since) + " (" +
                               std::to_string(failed) + " in a row), now sent again",
                           now);
        drain(*inst, now);
    }
}

void Node::recheck_after_heal(InstanceState& inst, const std::string& reason, Instant now) {
    if (!spec_.provider_enabled) {
        return;
    }
    std::string text = inst.reconciler.recheck_after_heal(reason, now);
    if (!text.empty()) {
        actions_.push_back(LogNotice{inst.spec.name, std::move(text)});
    }
}

void Node::on_shutdown(Instant now) {
    for (auto& inst : instances_) {
        inst.election.shutdown(now, pick_successor(inst.peers, now));
        drain(inst, now);
        inst.reconciler.stop();
    }
    stopped_ = true;
}

void Node::apply_health(InstanceState& inst, Instant now) {
    const health::InstanceHealth h = health_.evaluate(inst.spec.checks);
    std::optional<std::string> fault;
    if (maintenance_) {
        fault = "maintenance";
    } else if (inst.provider_fault) {
        fault = inst.provider_fault;
    } else if (h.fault) {
        fault = h.reason;
    }
    std::optional<std::string> successor;
    if (fault && inst.election.role() == Role::Master) {
        successor = pick_successor(inst.peers, now);
    }
    inst.election.set_health(h.priority_delta, std::move(fault), now, std::move(successor));
}

void Node::drain(InstanceState& inst, Instant now) {
    // Election events may start or stop the reconciler, whose refusal may fault the election:
    // loop until both are quiet. Each pass either ends or changes the role, so it terminates.
    for (int pass = 0;; ++pass) {
        FAILOVERD_ASSERT(pass < 16);
        for (auto& event : inst.election.take_events()) {
            if (auto* out = std::get_if<AdvertToSend>(&event)) {
                Advert advert;
                advert.instance_id = inst.wire_id;
                advert.instance_name = inst.spec.name;
                advert.echoes = echoes();
                advert.state = out->state;
                advert.sender = spec_.node_name;
                advert.sender_provider_id = spec_.provider_id;
                advert.priority = static_cast<std::uint8_t>(std::clamp(out->priority, 0, 255));
                advert.advert_interval = std::chrono::duration_cast<std::chrono::milliseconds>(
                    inst.election.advertisement_interval());
                advert.boot_epoch = spec_.boot_epoch;
                advert.sequence = ++inst.sequence;
                advert.handover_target = out->handover_target;
                advert.successor = out->successor;
                actions_.push_back(
                    SendAdvert{inst.spec.name, encode_advert(advert, spec_.hmac_key)});
                ++inst.adverts_sent;
                ++status_.adverts_sent;
            } else {
                auto& change = std::get<RoleChange>(event);
                inst.last_transition = TransitionRecord{change.from, change.to, change.reason, now};
                ++inst.transitions;
                if (spec_.provider_enabled) {
                    if (change.to == Role::Master) {
                        inst.reconciler.start(now, /*assign_first=*/change.named);
                    } else if (change.from == Role::Master) {
                        inst.reconciler.stop();
                    }
                }
                actions_.push_back(
                    Transitioned{inst.spec.name, change.from, change.to, change.reason});
                actions_.push_back(RunHook{inst.spec.name, change.from, change.to, change.reason});
            }
        }
        if (spec_.provider_enabled && inst.reconciler.active()) {
            inst.reconciler.on_deadline(ctx(), now);
        }
        for (auto& call : inst.reconciler.take_calls()) {
            actions_.push_back(std::move(call));
        }
        std::optional<std::string> refused = inst.reconciler.take_fault();
        if (!refused) {
            return;
        }
        inst.provider_fault = std::move(refused);
        inst.provider_fault_until = now + spec_.provider_fault_hold;
        apply_health(inst, now);
    }
}

void Node::refresh_status() const {
    status_.node_name = spec_.node_name;
    status_.provider_id = spec_.provider_id;
    status_.boot_epoch = spec_.boot_epoch;
    status_.maintenance = maintenance_;
    status_.stopped = stopped_;
    status_.provider_calls = 0;
    status_.provider_failures = 0;
    status_.provider_budget_deferrals = 0;
    std::uint64_t stale = 0;
    status_.instances.resize(instances_.size());
    for (std::size_t i = 0; i < instances_.size(); ++i) {
        const InstanceState& inst = instances_[i];
        const Election& e = inst.election;
        InstanceStatus& s = status_.instances[i];
        s.name = inst.spec.name;
        s.reserved_ip = inst.spec.reserved_ip;
        s.role = e.role();
        s.configured_priority = e.configured_priority();
        s.effective_priority = e.effective_priority();
        s.preempt = inst.spec.preempt;
        s.master = e.master_name();
        s.fault_reason = e.fault_reason();
        s.health_reason = health_.evaluate(inst.spec.checks).reason;
        s.yielding_to = e.yielding_to();
        s.advertisement_interval = e.advertisement_interval();
        s.master_adver_interval = e.master_adver_interval();
        s.master_down_interval = e.master_down_interval();
        s.last_transition = inst.last_transition;
        s.transitions = inst.transitions;
        s.checks.clear();
        for (const auto& name : inst.spec.checks) {
            const health::CheckTracker* t = health_.find(name);
            if (t == nullptr) {
                continue;
            }
            s.checks.push_back(CheckStatus{name, t->state(), t->policy().weight,
                                           t->successes_in_a_row(), t->failures_in_a_row(),
                                           t->last_result().reason});
        }
        s.peers.clear();
        for (const auto& [name, peer] : inst.peers.peers()) {
            s.peers.push_back(peer);
        }
        s.adverts_sent = inst.adverts_sent;
        s.adverts_received = inst.adverts_received;
        s.adverts_ignored = e.adverts_ignored();
        s.adverts_not_fresh = inst.adverts_not_fresh;
        s.provider_enabled = spec_.provider_enabled;
        s.provider = inst.reconciler.status();
        status_.provider_calls += s.provider.calls;
        status_.provider_failures += s.provider.failures;
        status_.provider_budget_deferrals += s.provider.budget_deferrals;
        stale += s.provider.stale_replies;
    }
    status_.provider_stale_replies = stale + stale_unrouted_;
    status_.foreign_instances.clear();
    for (const auto& [key, count] : foreign_instances_) {
        status_.foreign_instances.push_back(ForeignInstance{key.first, key.second, count});
    }
    status_stale_ = false;
}

}  // namespace failoverd
