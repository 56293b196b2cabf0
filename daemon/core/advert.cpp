#include "daemon/core/advert.hpp"

#include <algorithm>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "daemon/core/assert.hpp"

namespace failoverd {

namespace {

using Mac = std::array<std::uint8_t, kAdvertMacSize>;

Mac compute_mac(std::span<const std::uint8_t> data, std::span<const std::uint8_t> key) {
    Mac mac{};
    unsigned int len = 0;
    // An empty key is legal for HMAC, but OpenSSL wants a non-null pointer.
    static const std::uint8_t kNoKey = 0;
    const void* key_ptr = key.empty() ? &kNoKey : key.data();
    const unsigned char* out = HMAC(EVP_sha256(), key_ptr, static_cast<int>(key.size()),
                                    data.data(), data.size(), mac.data(), &len);
    FAILOVERD_ASSERT(out != nullptr && len == kAdvertMacSize);
    return mac;
}

void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) {
        out.push_back(static_cast<std::uint8_t>(v >> shift));
    }
}

void put_u64(std::vector<std::uint8_t>& out, std::uint64_t v) {
    for (int shift = 56; shift >= 0; shift -= 8) {
        out.push_back(static_cast<std::uint8_t>(v >> shift));
    }
}

void put_string(std::vector<std::uint8_t>& out, std::string_view s) {
    FAILOVERD_ASSERT(s.size() <= kAdvertNameMax);
    out.push_back(static_cast<std::uint8_t>(s.size()));
    out.insert(out.end(), s.begin(), s.end());
}

std::uint32_t get_u32(std::span<const std::uint8_t> b, std::size_t at) {
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < 4; ++i) {
        v = (v << 8) | b[at + i];
    }
    return v;
}

std::uint64_t get_u64(std::span<const std::uint8_t> b, std::size_t at) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < 8; ++i) {
        v = (v << 8) | b[at + i];
    }
    return v;
}

// Names and ids are printable ASCII without spaces (the config allows less): a peer's bytes
// reach logs and status, so nothing else is accepted.
// Printable ASCII without blanks or backslashes: what reaches logs, status and hook
// environments exactly as it is, with nothing a terminal could act on or an escape would alter.
bool printable(std::string_view s) {
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return c > 0x20 && c < 0x7f && c != '\\'; });
}

}  // namespace

std::string_view to_string(DropReason r) {
    switch (r) {
        case DropReason::TooShort:
            return "too-short";
        case DropReason::TooLong:
            return "too-long";
        case DropReason::BadMagic:
            return "bad-magic";
        case DropReason::BadVersion:
            return "bad-version";
        case DropReason::BadLength:
            return "bad-length";
        case DropReason::BadMac:
            return "bad-mac";
        case DropReason::BadField:
            return "bad-field";
        case DropReason::UnknownInstance:
            return "unknown-instance";
        case DropReason::Replay:
            return "replay";
        case DropReason::StaleEpoch:
            return "stale-epoch";
        case DropReason::FromSelf:
            return "from-self";
        case DropReason::TooManySenders:
            return "too-many-senders";
    }
    return "?";
}

std::uint32_t instance_id_of(std::string_view instance_name) {
    std::uint32_t hash = 2166136261u;
    for (unsigned char c : instance_name) {
        hash ^= c;
        hash *= 16777619u;
    }
    return hash;
}

bool Advert::fresh_for(std::string_view node, std::uint64_t epoch) const {
    return std::any_of(echoes.begin(), echoes.end(),
                       [&](const EpochEcho& e) { return e.boot_epoch == epoch && e.node == node; });
}

std::vector<std::uint8_t> encode_advert(const Advert& advert, std::span<const std::uint8_t> key) {
    FAILOVERD_ASSERT(!advert.instance_name.empty() &&
                     advert.instance_id == instance_id_of(advert.instance_name));
    FAILOVERD_ASSERT(advert.echoes.size() <= kAdvertEchoMax);
    std::vector<std::uint8_t> out;
    out.reserve(kAdvertMaxSize);
    out.insert(out.end(), kAdvertMagic.begin(), kAdvertMagic.end());
    out.push_back(kAdvertVersion);
    out.push_back(static_cast<std::uint8_t>(advert.state));
    out.push_back(advert.priority);
    out.push_back(advert.successor && advert.handover_target ? kAdvertFlagSuccessor : 0);
    put_u32(out, advert.instance_id);
    put_u32(out, static_cast<std::uint32_t>(advert.advert_interval.count()));
    put_u64(out, advert.boot_epoch);
    put_u64(out, advert.sequence);
    put_string(out, advert.sender);
    put_string(out, advert.sender_provider_id);
    put_string(out, advert.handover_target.value_or(std::string{}));
    put_string(out, advert.instance_name);
    out.push_back(static_cast<std::uint8_t>(advert.echoes.size()));
    for (const EpochEcho& echo : advert.echoes) {
        FAILOVERD_ASSERT(!echo.node.empty());
        put_string(out, echo.node);
        put_u64(out, echo.boot_epoch);
    }
    const Mac mac = compute_mac(out, key);
    out.insert(out.end(), mac.begin(), mac.end());
    return out;
}

std::variant<Advert, DropReason> decode_advert(std::span<const std::uint8_t> bytes,
                                               std::span<const std::uint8_t> key) {
    if (bytes.size() < kAdvertMinSize) {
        return DropReason::TooShort;
    }
    if (bytes.size() > kAdvertMaxSize) {
        return DropReason::TooLong;
    }
    if (!std::equal(kAdvertMagic.begin(), kAdvertMagic.end(), bytes.begin())) {
        return DropReason::BadMagic;
    }
    if (bytes[4] != kAdvertVersion) {
        return DropReason::BadVersion;
    }
    // Walk the length-prefixed strings and the echoes; all must fit exactly before the MAC.
    const std::size_t body_end = bytes.size() - kAdvertMacSize;
    std::size_t at = kAdvertHeaderSize;
    auto take_string = [&](std::string& s) {
        if (at >= body_end) {
            return false;
        }
        const std::size_t len = bytes[at++];
        if (len > kAdvertNameMax || len > body_end - at) {
            return false;
        }
        s.assign(reinterpret_cast<const char*>(bytes.data() + at), len);
        at += len;
        return true;
    };
    std::array<std::string, 4> strings;
    for (auto& s : strings) {
        if (!take_string(s)) {
            return DropReason::BadLength;
        }
    }
    if (at >= body_end) {
        return DropReason::BadLength;
    }
    const std::size_t echo_count = bytes[at++];
    if (echo_count > kAdvertEchoMax) {
        return DropReason::BadLength;
    }
    std::vector<EpochEcho> echoes(echo_count);
    for (EpochEcho& echo : echoes) {
        if (!take_string(echo.node) || body_end - at < 8) {
            return DropReason::BadLength;
        }
        echo.boot_epoch = get_u64(bytes, at);
        at += 8;
    }
    if (at != body_end) {
        return DropReason::BadLength;
    }
    const Mac mac = compute_mac(bytes.first(body_end), key);
    if (CRYPTO_memcmp(mac.data(), bytes.data() + body_end, kAdvertMacSize) != 0) {
        return DropReason::BadMac;
    }

    Advert a;
    const std::uint8_t state = bytes[5];
    const std::uint8_t flags = bytes[7];
    if (state > static_cast<std::uint8_t>(SenderState::Fault) ||
        (flags & ~kAdvertFlagSuccessor) != 0) {
        return DropReason::BadField;
    }
    a.state = static_cast<SenderState>(state);
    a.priority = bytes[6];
    a.instance_id = get_u32(bytes, 8);
    a.advert_interval = std::chrono::milliseconds(get_u32(bytes, 12));
    a.boot_epoch = get_u64(bytes, 16);
    a.sequence = get_u64(bytes, 24);
    a.sender = std::move(strings[0]);
    a.sender_provider_id = std::move(strings[1]);
    if (!strings[2].empty()) {
        a.handover_target = std::move(strings[2]);
    }
    a.successor = (flags & kAdvertFlagSuccessor) != 0;
    a.instance_name = std::move(strings[3]);
    a.echoes = std::move(echoes);
    const bool echo_unnamed = std::any_of(a.echoes.begin(), a.echoes.end(),
                                          [](const EpochEcho& e) { return e.node.empty(); });
    const bool unprintable = !printable(a.sender) || !printable(a.sender_provider_id) ||
                             !printable(a.instance_name) ||
                             !printable(a.handover_target.value_or(std::string{})) ||
                             std::any_of(a.echoes.begin(), a.echoes.end(),
                                         [](const EpochEcho& e) { return !printable(e.node); });
    if (a.sender.empty() || a.instance_name.empty() || echo_unnamed || unprintable ||
        a.instance_id != instance_id_of(a.instance_name) ||
        a.advert_interval < kAdvertIntervalMin || a.advert_interval > kAdvertIntervalMax ||
        (a.handover_target && (a.priority != 0 || a.state != SenderState::Master)) ||
        (a.successor && !a.handover_target)) {
        return DropReason::BadField;
    }
    return a;
}

AdvertVerifier::AdvertVerifier(std::vector<std::uint8_t> key, std::string self_name,
                               std::set<std::uint32_t> known_instances)
    : key_(std::move(key)),
      self_name_(std::move(self_name)),
      known_instances_(std::move(known_instances)) {}

std::variant<Advert, DropReason> AdvertVerifier::verify(std::span<const std::uint8_t> bytes) {
    last_unknown_.reset();
    auto decoded = decode_advert(bytes, key_);
    if (std::holds_alternative<DropReason>(decoded)) {
        return decoded;
    }
    const Advert& a = std::get<Advert>(decoded);
    if (!known_instances_.contains(a.instance_id)) {
        last_unknown_.emplace(a.sender, a.instance_name);
        return DropReason::UnknownInstance;
    }
    if (a.sender == self_name_) {
        return DropReason::FromSelf;
    }
    auto key = std::make_pair(a.sender, a.instance_id);
    auto it = last_accepted_.find(key);
    if (it == last_accepted_.end()) {
        if (last_accepted_.size() >= kMaxSenders) {
            return DropReason::TooManySenders;
        }
        last_accepted_.emplace(std::move(key), Seen{a.boot_epoch, a.sequence, 1});
        return decoded;
    }
    Seen& seen = it->second;
    if (a.boot_epoch < seen.boot_epoch) {
        return DropReason::StaleEpoch;
    }
    if (a.boot_epoch > seen.boot_epoch) {
        seen = Seen{a.boot_epoch, a.sequence, 1};  // the sender restarted
        return decoded;
    }
    if (a.sequence > seen.highest) {
        const std::uint64_t shift = a.sequence - seen.highest;
        seen.window = shift >= kReplayWindow ? 1 : (seen.window << shift) | 1;
        seen.highest = a.sequence;
        return decoded;
    }
    const std::uint64_t age = seen.highest - a.sequence;
    if (age >= kReplayWindow || (seen.window & (std::uint64_t{1} << age)) != 0) {
        return DropReason::Replay;
    }
    seen.window |= std::uint64_t{1} << age;
    return decoded;
}

}  // namespace failoverd
