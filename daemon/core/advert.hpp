// The advert wire format: encode, decode, HMAC-SHA256 sign and verify, replay protection.
// No I/O here: bytes in, bytes or a DropReason out. Layout and reasoning: docs/election.md.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace failoverd {

// Wire layout, version 1 (integers big-endian):
//   0  4  magic "FOVD"
//   4  1  version (1)
//   5  1  sender state (SenderState)
//   6  1  priority (0 = resign)
//   7  1  flags: bit 0 = the hand-over target is a successor (AdvertFlag), others 0
//   8  4  instance id (FNV-1a 32 of the instance name)
//  12  4  advert interval in milliseconds
//  16  8  boot epoch
//  24  8  sequence within the boot epoch
//  32  1+n  sender node name (1..63 bytes)
//   .  1+m  sender provider identity (0..63 bytes; droplet id, may be empty)
//   .  1+t  hand-over target node name (0..63 bytes; 0 = none)
//   . 32    HMAC-SHA256 over every byte before it
inline constexpr std::array<std::uint8_t, 4> kAdvertMagic = {'F', 'O', 'V', 'D'};
inline constexpr std::uint8_t kAdvertVersion = 1;
inline constexpr std::size_t kAdvertHeaderSize = 32;
inline constexpr std::size_t kAdvertMacSize = 32;
inline constexpr std::size_t kAdvertNameMax = 63;
inline constexpr std::size_t kAdvertMinSize = kAdvertHeaderSize + 3 + kAdvertMacSize;
inline constexpr std::size_t kAdvertMaxSize =
    kAdvertHeaderSize + 3 + 3 * kAdvertNameMax + kAdvertMacSize;
// Interval bounds a decoder accepts (RFC 5798 allows 10 ms .. 40.95 s; we allow a bit more).
inline constexpr std::chrono::milliseconds kAdvertIntervalMin{10};
inline constexpr std::chrono::milliseconds kAdvertIntervalMax{3'600'000};
// Flag bit: the hand-over target was picked by a master resigning on a fault or a stop (the
// best backup it knew), not named by an operator. Receivers defer to it but do not yield.
inline constexpr std::uint8_t kAdvertFlagSuccessor = 0x01;

// What the sender was when it sent the advert. Only Master adverts take part in the election
// (RFC 5798: only a master advertises); Backup and Fault ones are low-rate presence notices
// that keep every node's peer table current for the partition rule (docs/election.md).
enum class SenderState : std::uint8_t { Master = 0, Backup = 1, Fault = 2 };

constexpr std::string_view to_string(SenderState s) {
    switch (s) {
        case SenderState::Master:
            return "master";
        case SenderState::Backup:
            return "backup";
        case SenderState::Fault:
            return "fault";
    }
    return "?";
}

struct Advert {
    std::uint32_t instance_id = 0;
    SenderState state = SenderState::Master;
    std::string sender;              // node name, 1..63 bytes
    std::string sender_provider_id;  // droplet id, 0..63 bytes
    std::uint8_t priority = 0;       // effective priority; 0 = resign (RFC 5798 §6.4.3)
    std::chrono::milliseconds advert_interval{1000};
    std::uint64_t boot_epoch = 0;
    std::uint64_t sequence = 0;
    std::optional<std::string> handover_target;  // hand-over to this node (priority 0 only)
    bool successor = false;  // handover_target was picked by a resigning master (flag bit 0)

    bool operator==(const Advert&) const = default;
};

// Every way an incoming datagram can be rejected; the shell counts each.
enum class DropReason {
    TooShort,         // shorter than the smallest possible advert
    TooLong,          // longer than the largest possible advert
    BadMagic,         // not ours at all
    BadVersion,       // a version this build does not speak
    BadLength,        // the length fields do not add up to the datagram size
    BadMac,           // wrong key or tampered
    BadField,         // authenticated but a field is out of range (interval, name, state), or
                      // a name is not plain text (control bytes, invalid UTF-8; see escape_text)
    UnknownInstance,  // instance id not configured here (names must match across nodes)
    Replay,           // sequence not newer than the last accepted from that sender epoch
    StaleEpoch,       // boot epoch older than one already seen from that sender
    FromSelf,         // our own node name: a loop or a peer configured with our name
    TooManySenders,   // replay table full; a new sender is refused rather than evicting one
};
inline constexpr std::size_t kDropReasonCount = 12;

std::string_view to_string(DropReason r);

// 32-bit FNV-1a: the instance id on the wire. Instance names must match across nodes.
std::uint32_t instance_id_of(std::string_view instance_name);

// Serialises and signs. Names longer than 63 bytes are a programming error (config limits them).
std::vector<std::uint8_t> encode_advert(const Advert& advert, std::span<const std::uint8_t> key);

// Stateless parse + MAC check (no replay, instance or self checks).
std::variant<Advert, DropReason> decode_advert(std::span<const std::uint8_t> bytes,
                                               std::span<const std::uint8_t> key);

// Decode plus the stateful checks: known instance, not from self, epoch not older than the
// newest seen from the same (sender, instance), and a sequence not seen before within a
// sliding window (RFC 4303 §3.4.3 style), so a datagram overtaken by a later one in the network
// still counts. State changes only on acceptance.
class AdvertVerifier {
  public:
    // Bounds the replay table; each key holder and instance takes one entry.
    static constexpr std::size_t kMaxSenders = 4096;
    // Sequences this far below the highest accepted one are still accepted once.
    static constexpr std::uint64_t kReplayWindow = 64;

    AdvertVerifier(std::vector<std::uint8_t> key, std::string self_name,
                   std::set<std::uint32_t> known_instances);

    std::variant<Advert, DropReason> verify(std::span<const std::uint8_t> bytes);

    // Configuration reload: the instances to accept from now on. The replay table is kept, so
    // an advert captured before the reload is still a replay after it.
    void set_known_instances(std::set<std::uint32_t> known_instances) {
        known_instances_ = std::move(known_instances);
    }

    std::size_t senders_tracked() const { return last_accepted_.size(); }

  private:
    struct Seen {
        std::uint64_t boot_epoch = 0;
        std::uint64_t highest = 0;  // highest sequence accepted in this epoch
        std::uint64_t window = 0;   // bit i set: sequence highest - i was accepted
    };

    std::vector<std::uint8_t> key_;
    std::string self_name_;
    std::set<std::uint32_t> known_instances_;
    std::map<std::pair<std::string, std::uint32_t>, Seen> last_accepted_;
};

}  // namespace failoverd
