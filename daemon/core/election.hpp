// Election: one VRRP-style instance (one reserved IP), RFC 5798 timers and names.
// Rule 1: no I/O and no clock; every input carries `now`. Rule 2: every role change goes
// through change_role(), which records a RoleChange with a reason that has numbers in it.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "daemon/core/advert.hpp"
#include "daemon/core/time.hpp"

namespace failoverd {

// RFC 5798 §6.4: Initialize, Backup, Master; plus Fault (keepalived) for a failing node.
// After Shutdown an election is back in Init ("stopped").
enum class Role { Init, Backup, Master, Fault };

constexpr std::string_view to_string(Role r) {
    switch (r) {
        case Role::Init:
            return "INIT";
        case Role::Backup:
            return "BACKUP";
        case Role::Master:
            return "MASTER";
        case Role::Fault:
            return "FAULT";
    }
    return "?";
}

inline constexpr int kPriorityMin = 1;    // effective priority never drops below this
inline constexpr int kPriorityMax = 255;  // RFC 5798 address owner; config allows 1..254
// Backups and faulted nodes announce themselves every this many advertisement intervals.
inline constexpr int kPresenceEveryAdverts = 5;

struct ElectionConfig {
    std::string instance;
    std::string node_name;  // stable identity: ties break on it (greater name wins)
    int priority = 100;     // configured priority, 1..254
    bool preempt_mode = true;
    Duration preempt_delay{0};
    Duration advertisement_interval = std::chrono::seconds(1);
    // Fraction of master_adver_interval added to every down-timer arming (0 = pure RFC 5798).
    // Backups of equal priority have equal skew and would otherwise take over at the same
    // instant, both claiming the IP before the tie is broken; a per-node stagger (Node derives
    // it from the node name, < 1/16) lets one go first and the other hear it.
    double tie_stagger = 0.0;
};

// A verified Master-state advert from a peer, as the election sees it.
struct ReceivedAdvert {
    std::string sender;
    int priority = 0;
    Duration advert_interval = std::chrono::seconds(1);
    std::optional<std::string> handover_target;
    // handover_target is the successor a master picked when it resigned (fault or stop), not
    // an operator's choice: the other backups let it go first but do not yield to it after.
    bool successor = false;
};

// Outputs, drained by the owner (Node) with take_events().
struct AdvertToSend {
    SenderState state = SenderState::Master;
    int priority = 0;
    std::optional<std::string> handover_target;
    bool successor = false;  // see ReceivedAdvert::successor
};
struct RoleChange {
    Role from = Role::Init;
    Role to = Role::Init;
    std::string reason;
    // To Master because the old master named this node (successor or hand-over): the other
    // backups hold back, so nobody contends and the IP can be claimed without a read first.
    bool named = false;
};
using ElectionEvent = std::variant<AdvertToSend, RoleChange>;

class Election {
  public:
    explicit Election(ElectionConfig config);

    // Call once, after the first set_health(). Init -> Backup (down timer armed), or Init ->
    // Fault when a fault reason is set. Emits RoleChange and a presence advert.
    void start(Instant now);

    // Call whenever the instance's health or any other fault cause changes. `fault_reason`
    // set: the instance must be in Fault (a Master resigns with a priority-0 advert first).
    // `priority_delta` (<= 0 usually) adjusts the configured priority. `successor`: when a
    // Master resigns here, the backup its priority-0 advert names (fast resign: that backup
    // takes over on receipt instead of after skew_time); empty keeps RFC 5798's resign. A
    // Backup whose effective priority changes announces it at once (presence), so a master
    // picks its successor on current priorities. May emit RoleChange, AdvertToSend.
    void set_health(int priority_delta, std::optional<std::string> fault_reason, Instant now,
                    std::optional<std::string> successor = std::nullopt);

    // Call for every verified Master-state advert for this instance from another node. May
    // emit RoleChange and AdvertToSend (a master answers a priority-0 advert at once).
    void on_advert(const ReceivedAdvert& advert, Instant now);

    // A new boot of a peer was heard: say where we stand at once (a Master advert at the
    // current priority, or a presence notice), so our next advert that peer reads echoes its
    // boot and counts as fresh there. Timers keep their cadence. May emit AdvertToSend.
    void announce(Instant now);

    // Call when now >= next_deadline(); spurious calls do nothing. May emit RoleChange and
    // AdvertToSend.
    void on_deadline(Instant now);

    // Operator hand-over. Only a Master acts on it: it sends a priority-0 advert naming
    // `to_node` (or nobody), becomes Backup and holds back from preempting the new master.
    // The named node takes over as soon as it receives the advert.
    // Returns false (and does nothing) when not Master or when `to_node` is this node.
    bool handover(const std::optional<std::string>& to_node, Instant now);

    // Configuration reload: new priority, preempt mode, preempt delay or advertisement
    // interval (instance and node name must not change). Keeps the role and the master it
    // knows, so a reload alone never drops mastership; the values apply from `now`. A Master
    // advertises at once when its priority or interval changed (a backup that now outranks it
    // preempts as usual); turning preempt off cancels a pending preempt. May emit AdvertToSend.
    void reconfigure(ElectionConfig config, Instant now);

    // Daemon stop: a Master resigns (priority-0 advert, naming `successor` as in set_health);
    // every role goes to Init ("shutdown"). After this the election ignores every input and
    // has no deadline.
    void shutdown(Instant now, std::optional<std::string> successor = std::nullopt);

    std::optional<Instant> next_deadline() const;
    std::vector<ElectionEvent> take_events();

    Role role() const { return role_; }
    bool stopped() const { return stopped_; }
    const ElectionConfig& config() const { return config_; }
    int configured_priority() const { return config_.priority; }
    int effective_priority() const;
    const std::optional<std::string>& fault_reason() const { return fault_reason_; }
    // The node currently believed to be Master (this node's name when Master; empty if none).
    const std::string& master_name() const { return master_name_; }
    // Set after a hand-over: this node does not preempt that node ("" = anyone).
    const std::optional<std::string>& yielding_to() const { return yield_to_; }
    std::optional<Instant> preempt_at() const { return preempt_at_; }
    std::optional<Instant> master_down_timer() const { return master_down_timer_; }
    std::optional<Instant> adver_timer() const { return adver_timer_; }
    std::optional<Instant> presence_timer() const { return presence_timer_; }

    // RFC 5798 §6.1 timers, computed with the effective priority.
    Duration advertisement_interval() const { return config_.advertisement_interval; }
    Duration master_adver_interval() const { return master_adver_interval_; }
    Duration skew_time() const;
    Duration master_down_interval() const;
    Duration tie_stagger() const;

    std::uint64_t adverts_accepted() const { return adverts_accepted_; }
    std::uint64_t adverts_ignored() const { return adverts_ignored_; }

  private:
    void change_role(Role to, std::string reason, Instant now, bool named = false);
    void become_master(std::string reason, Instant now, bool named = false);
    void become_backup(std::string reason, Instant now);
    void send_advert(int priority, std::optional<std::string> target = std::nullopt,
                     bool successor = false);
    // A Master leaving the role on purpose: priority 0, naming `successor` if there is one.
    void resign(const std::optional<std::string>& successor);
    void send_presence(Instant now);

    void backup_on_advert(const ReceivedAdvert& advert, Instant now);
    void master_on_advert(const ReceivedAdvert& advert, Instant now);
    void backup_on_deadline(Instant now);
    void master_on_deadline(Instant now);
    void presence_on_deadline(Instant now);

    bool outranks_me(int priority, const std::string& sender) const;
    // A master with priority >= ours was heard within master_down_interval.
    bool outranked_recently(Instant now) const;

    ElectionConfig config_;
    Role role_ = Role::Init;
    bool stopped_ = false;
    int priority_delta_ = 0;
    std::optional<std::string> fault_reason_;
    std::string master_name_;
    Duration master_adver_interval_;
    std::optional<Instant> adver_timer_;        // Master: next advert
    std::optional<Instant> master_down_timer_;  // Backup: take over at this time
    std::optional<Instant> presence_timer_;     // Backup/Fault: next presence notice
    std::optional<Instant> preempt_at_;         // Backup: preempt a lower master at this time
    std::optional<std::string> yield_to_;
    std::optional<Instant> yield_target_heard_;  // last advert from the hand-over target
    std::optional<Instant> outranking_master_heard_;
    std::optional<std::string> resigned_by_;        // a priority-0 advert armed skew time
    std::optional<std::string> handover_to_other_;  // a hand-over named another node
    std::string preempted_master_;
    int preempted_priority_ = 0;
    Instant last_heard_{};  // last accepted advert, or when the down timer was first armed
    bool heard_any_ = false;
    std::uint64_t adverts_accepted_ = 0;
    std::uint64_t adverts_ignored_ = 0;
    std::vector<ElectionEvent> events_;
};

}  // namespace failoverd
