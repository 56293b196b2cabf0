#include "daemon/core/advert.hpp"

#include "daemon/core/rng.hpp"

#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <set>
#include <string>
#include <vector>

using namespace failoverd;
using namespace std::chrono_literals;

namespace {

using Bytes = std::vector<std::uint8_t>;

const std::string kKeyText = "0123456789abcdef0123456789abcdef";
const Bytes kKey(kKeyText.begin(), kKeyText.end());

// Computed independently (Python hmac/hashlib) from the layout in advert.hpp.
const Bytes kGoldenMaster = {
    0x46, 0x4f, 0x56, 0x44, 0x02, 0x00, 0x96, 0x00, 0x0f, 0xd9, 0xbc, 0x91, 0x00, 0x00, 0x03,
    0xe8, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x2a, 0x05, 0x77, 0x65, 0x62, 0x2d, 0x31, 0x09, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36,
    0x37, 0x38, 0x39, 0x00, 0x03, 0x77, 0x65, 0x62, 0x01, 0x05, 0x77, 0x65, 0x62, 0x2d, 0x32,
    0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x3c, 0x8c, 0x6b, 0x4a, 0x86, 0xdc, 0x62,
    0x7a, 0xa4, 0xd9, 0xf5, 0x4f, 0xdd, 0xa2, 0xce, 0x68, 0xcf, 0xdd, 0x23, 0x6e, 0x56, 0x8f,
    0xe1, 0xb1, 0x5a, 0x0b, 0x4a, 0xf1, 0x82, 0xdd, 0x93, 0xe7};

const Bytes kGoldenHandover = {
    0x46, 0x4f, 0x56, 0x44, 0x02, 0x00, 0x00, 0x00, 0x0f, 0xd9, 0xbc, 0x91, 0x00, 0x00,
    0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x08, 0x05, 0x77, 0x65, 0x62, 0x2d, 0x31, 0x00, 0x05, 0x77, 0x65,
    0x62, 0x2d, 0x32, 0x03, 0x77, 0x65, 0x62, 0x00, 0x38, 0xef, 0xd0, 0x4e, 0xb9, 0x5b,
    0x07, 0xed, 0x37, 0x7a, 0x7e, 0x79, 0xe6, 0xb5, 0xd6, 0x53, 0x50, 0x4c, 0xd3, 0x3a,
    0xcc, 0x31, 0xe1, 0x63, 0xd7, 0xbf, 0x90, 0xde, 0x2a, 0x6a, 0xcb, 0xa9};

Advert golden_master() {
    Advert a;
    a.instance_id = instance_id_of("web");
    a.instance_name = "web";
    a.state = SenderState::Master;
    a.sender = "web-1";
    a.sender_provider_id = "123456789";
    a.priority = 150;
    a.advert_interval = 1000ms;
    a.boot_epoch = 0x0102030405060708ULL;
    a.sequence = 42;
    a.echoes = {{"web-2", 0x1112131415161718ULL}};
    return a;
}

Advert golden_handover() {
    Advert a;
    a.instance_id = instance_id_of("web");
    a.instance_name = "web";
    a.sender = "web-1";
    a.priority = 0;
    a.advert_interval = 100ms;
    a.boot_epoch = 7;
    a.sequence = 8;
    a.handover_target = "web-2";
    return a;
}

// Re-signs a (possibly tampered) packet body with the test key, independently of the codec.
Bytes signed_body(Bytes body) {
    unsigned char mac[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), kKey.data(), static_cast<int>(kKey.size()), body.data(), body.size(), mac,
         &len);
    body.insert(body.end(), mac, mac + len);
    return body;
}

Bytes body_of(const Bytes& packet) {
    return Bytes(packet.begin(), packet.end() - static_cast<long>(kAdvertMacSize));
}

DropReason drop_of(const std::variant<Advert, DropReason>& result) {
    REQUIRE(std::holds_alternative<DropReason>(result));
    return std::get<DropReason>(result);
}

Advert advert_of(const std::variant<Advert, DropReason>& result) {
    if (const DropReason* d = std::get_if<DropReason>(&result)) {
        FAIL("dropped: " << std::string(to_string(*d)));
    }
    return std::get<Advert>(result);
}

AdvertVerifier verifier(std::string self = "web-2") {
    return AdvertVerifier(kKey, std::move(self), {instance_id_of("web")});
}

Bytes with_seq(std::uint64_t epoch, std::uint64_t seq, std::string sender = "web-1") {
    Advert a = golden_master();
    a.boot_epoch = epoch;
    a.sequence = seq;
    a.sender = std::move(sender);
    return encode_advert(a, kKey);
}

}  // namespace

TEST_CASE("Advert: instance ids are 32-bit FNV-1a of the name") {
    CHECK(instance_id_of("") == 0x811c9dc5u);
    CHECK(instance_id_of("a") == 0xe40c292cu);
    CHECK(instance_id_of("web") == 0x0fd9bc91u);
}

TEST_CASE("Advert: encoding matches the golden bytes") {
    CHECK(encode_advert(golden_master(), kKey) == kGoldenMaster);
    CHECK(encode_advert(golden_handover(), kKey) == kGoldenHandover);
}

TEST_CASE("Advert: golden bytes decode to the same fields") {
    CHECK(advert_of(decode_advert(kGoldenMaster, kKey)) == golden_master());
    const Advert h = advert_of(decode_advert(kGoldenHandover, kKey));
    CHECK(h == golden_handover());
    CHECK(h.handover_target == std::optional<std::string>("web-2"));
    CHECK(h.sender_provider_id.empty());
}

TEST_CASE("Advert: the largest advert round-trips at exactly the maximum size") {
    Advert a = golden_master();
    a.state = SenderState::Backup;
    a.sender = std::string(63, 'n');
    a.sender_provider_id = std::string(63, '9');
    a.priority = 0;
    a.handover_target = std::string(63, 't');
    a.advert_interval = kAdvertIntervalMin;
    a.instance_name = std::string(63, 'i');
    a.instance_id = instance_id_of(a.instance_name);
    a.echoes.clear();
    for (std::size_t i = 0; i < kAdvertEchoMax; ++i) {
        a.echoes.push_back({std::string(62, 'e') + static_cast<char>('a' + i), ~std::uint64_t{i}});
    }
    const Bytes bytes = encode_advert(a, kKey);
    CHECK(bytes.size() == kAdvertMaxSize);
    CHECK(decode_advert(bytes, kKey) == std::variant<Advert, DropReason>(DropReason::BadField));
    a.state = SenderState::Master;
    const Bytes master = encode_advert(a, kKey);
    CHECK(advert_of(decode_advert(master, kKey)) == a);
}

TEST_CASE("Advert: TooShort for anything below the minimum size") {
    CHECK(drop_of(decode_advert(Bytes{}, kKey)) == DropReason::TooShort);
    CHECK(drop_of(decode_advert(Bytes(kAdvertMinSize - 1, 0), kKey)) == DropReason::TooShort);
}

TEST_CASE("Advert: TooLong for anything above the maximum size") {
    Bytes big = kGoldenMaster;
    big.resize(kAdvertMaxSize + 1, 0);
    CHECK(drop_of(decode_advert(big, kKey)) == DropReason::TooLong);
    CHECK(drop_of(decode_advert(Bytes(65536, 0x41), kKey)) == DropReason::TooLong);
}

TEST_CASE("Advert: BadMagic and BadVersion are checked before anything else") {
    Bytes p = kGoldenMaster;
    p[0] = 'X';
    CHECK(drop_of(decode_advert(p, kKey)) == DropReason::BadMagic);
    p = kGoldenMaster;
    p[4] = 3;
    CHECK(drop_of(decode_advert(p, kKey)) == DropReason::BadVersion);
    // Version 1 (no instance name, no echoes), correctly signed: another wire version.
    const Bytes v1 = {0x46, 0x4f, 0x56, 0x44, 0x01, 0x00, 0x96, 0x00, 0x0f, 0xd9, 0xbc, 0x91,
                      0x00, 0x00, 0x03, 0xe8, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
                      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, 0x05, 0x77, 0x65, 0x62,
                      0x2d, 0x31, 0x09, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39,
                      0x00, 0xe1, 0xdb, 0xd9, 0x2c, 0xe9, 0x55, 0xf8, 0x31, 0x01, 0xe9, 0xd2,
                      0x30, 0x2b, 0x13, 0x26, 0x41, 0x14, 0xad, 0x1e, 0xf5, 0x09, 0x68, 0x23,
                      0xd1, 0x20, 0x4a, 0x3f, 0x2c, 0xc3, 0x81, 0xec, 0x86};
    CHECK(drop_of(decode_advert(v1, kKey)) == DropReason::BadVersion);
    auto v = verifier();
    CHECK(drop_of(v.verify(v1)) == DropReason::BadVersion);
}

TEST_CASE("Advert: BadLength when the string lengths do not add up") {
    Bytes p = kGoldenMaster;
    p[32] = 6;  // sender name claims one byte more
    CHECK(drop_of(decode_advert(p, kKey)) == DropReason::BadLength);
    p = kGoldenMaster;
    p[32] = 64;  // longer than any name may be
    CHECK(drop_of(decode_advert(p, kKey)) == DropReason::BadLength);
    // Offsets in the golden master: instance name length at 49, echo count at 53, the echo's
    // name length at 54.
    p = signed_body(body_of(kGoldenMaster));
    CHECK(p[53] == 1);
    Bytes body_echo = body_of(kGoldenMaster);
    body_echo[53] = 2;  // claims a second echo that is not there
    CHECK(drop_of(decode_advert(signed_body(body_echo), kKey)) == DropReason::BadLength);
    body_echo = body_of(kGoldenMaster);
    body_echo[53] = static_cast<std::uint8_t>(kAdvertEchoMax + 1);
    CHECK(drop_of(decode_advert(signed_body(body_echo), kKey)) == DropReason::BadLength);
    body_echo = body_of(kGoldenMaster);
    body_echo[54] = 6;  // the echo's name runs into its epoch
    CHECK(drop_of(decode_advert(signed_body(body_echo), kKey)) == DropReason::BadLength);
    // A correctly signed packet with a stray byte between the strings and the MAC.
    Bytes body = body_of(kGoldenMaster);
    body.push_back(0);
    CHECK(drop_of(decode_advert(signed_body(body), kKey)) == DropReason::BadLength);
}

TEST_CASE("Advert: BadMac for a tampered field, a tampered MAC or another key") {
    Bytes p = kGoldenMaster;
    p[6] = 255;  // priority raised by an attacker
    CHECK(drop_of(decode_advert(p, kKey)) == DropReason::BadMac);
    p = kGoldenMaster;
    p.back() ^= 0x01;
    CHECK(drop_of(decode_advert(p, kKey)) == DropReason::BadMac);
    const Bytes other(32, 0x55);
    CHECK(drop_of(decode_advert(kGoldenMaster, other)) == DropReason::BadMac);
}

TEST_CASE("Advert: BadField for authenticated but out-of-range fields") {
    struct Row {
        const char* what;
        std::size_t offset;
        Bytes value;
    };
    const Row rows[] = {
        {"unknown sender state", 5, {3}},
        {"successor flag without a target", 7, {1}},
        {"unknown flag bit", 7, {2}},
        {"interval of 0 ms", 12, {0, 0, 0, 0}},
        {"interval of 9 ms", 12, {0, 0, 0, 9}},
        {"interval above one hour", 12, {0x00, 0x36, 0xee, 0x81}},
    };
    for (const auto& row : rows) {
        CAPTURE(row.what);
        Bytes body = body_of(kGoldenMaster);
        std::copy(row.value.begin(), row.value.end(), body.begin() + static_cast<long>(row.offset));
        CHECK(drop_of(decode_advert(signed_body(body), kKey)) == DropReason::BadField);
    }
    Advert a = golden_master();
    a.handover_target = "web-2";  // a hand-over target on a non-resign advert
    CHECK(drop_of(decode_advert(encode_advert(a, kKey), kKey)) == DropReason::BadField);
    a = golden_master();
    a.sender = "";
    CHECK(drop_of(decode_advert(encode_advert(a, kKey), kKey)) == DropReason::BadField);
    // The instance name must hash to the instance id in the header.
    Bytes body = body_of(kGoldenMaster);
    body[50] = 'x';  // "xeb"
    CHECK(drop_of(decode_advert(signed_body(body), kKey)) == DropReason::BadField);
    // An echo with an empty node name: the bytes shift, so re-encode by hand.
    body = body_of(kGoldenMaster);
    body.resize(54);
    body.push_back(0);
    for (int i = 0; i < 8; ++i) {
        body.push_back(0x11);
    }
    CHECK(drop_of(decode_advert(signed_body(body), kKey)) == DropReason::BadField);
    // Names reach logs and status: control characters and spaces are refused.
    for (const char bad : {'\x1b', ' ', '\x7f'}) {
        body = body_of(kGoldenMaster);
        body[51] = static_cast<std::uint8_t>(bad);  // in the instance name
        CHECK(drop_of(decode_advert(signed_body(body), kKey)) == DropReason::BadField);
        body = body_of(kGoldenMaster);
        body[34] = static_cast<std::uint8_t>(bad);  // in the sender's name
        CHECK(drop_of(decode_advert(signed_body(body), kKey)) == DropReason::BadField);
    }
}

TEST_CASE("Advert: echoes round-trip and say for which boot an advert is fresh") {
    Advert a = golden_master();
    a.echoes = {{"web-2", 5}, {"web-3", 9}};
    const Advert back = advert_of(decode_advert(encode_advert(a, kKey), kKey));
    CHECK(back.echoes == a.echoes);
    CHECK(back.instance_name == "web");
    CHECK(back.fresh_for("web-2", 5));
    CHECK(back.fresh_for("web-3", 9));
    CHECK_FALSE(back.fresh_for("web-2", 4));  // a boot before the one it heard
    CHECK_FALSE(back.fresh_for("web-2", 6));  // a boot it has not heard yet
    CHECK_FALSE(back.fresh_for("web-4", 5));
    a.echoes.clear();
    CHECK_FALSE(advert_of(decode_advert(encode_advert(a, kKey), kKey)).fresh_for("web-2", 5));
}

TEST_CASE("Advert: BadField for a name that could not be echoed as it is") {
    for (const char* name : {"web\x1b[2J", "web\xff", "we\\b", "web\n2", "web\xc2\x9b"}) {
        CAPTURE(name);
        Advert a = golden_master();
        a.sender = name;
        CHECK(drop_of(decode_advert(encode_advert(a, kKey), kKey)) == DropReason::BadField);
        a = golden_master();
        a.sender_provider_id = name;
        CHECK(drop_of(decode_advert(encode_advert(a, kKey), kKey)) == DropReason::BadField);
        a = golden_master();
        a.priority = 0;
        a.handover_target = name;
        CHECK(drop_of(decode_advert(encode_advert(a, kKey), kKey)) == DropReason::BadField);
    }
    Advert a = golden_master();
    a.sender = "n\xc5\x93ud-1";  // printable UTF-8 too: names on the wire are printable ASCII
    CHECK(drop_of(decode_advert(encode_advert(a, kKey), kKey)) == DropReason::BadField);
    a.sender = "node_1.example-2";
    CHECK(advert_of(decode_advert(encode_advert(a, kKey), kKey)) == a);
}

TEST_CASE("Advert: the successor flag travels with a resign that names a target") {
    Advert a = golden_master();
    a.priority = 0;
    a.handover_target = "web-2";
    a.successor = true;
    const Bytes bytes = encode_advert(a, kKey);
    CHECK(bytes[7] == kAdvertFlagSuccessor);
    const Advert back = advert_of(decode_advert(bytes, kKey));
    CHECK(back.successor);
    CHECK(back == a);
    a.successor = false;  // an operator hand-over: no flag
    CHECK(encode_advert(a, kKey)[7] == 0);
    CHECK_FALSE(advert_of(decode_advert(encode_advert(a, kKey), kKey)).successor);
}

TEST_CASE("Advert: UnknownInstance when the instance is not configured here") {
    AdvertVerifier v(kKey, "web-2", {instance_id_of("db")});
    CHECK(drop_of(v.verify(kGoldenMaster)) == DropReason::UnknownInstance);
    // Which peer and which instance name, for status and doctor.
    REQUIRE(v.last_unknown().has_value());
    CHECK(v.last_unknown()->first == "web-1");
    CHECK(v.last_unknown()->second == "web");
    CHECK(drop_of(v.verify(Bytes{1, 2, 3})) == DropReason::TooShort);
    CHECK_FALSE(v.last_unknown().has_value());
}

TEST_CASE("Advert: FromSelf for an advert carrying our own node name") {
    auto v = verifier("web-1");
    CHECK(drop_of(v.verify(kGoldenMaster)) == DropReason::FromSelf);
}

TEST_CASE("Advert: Replay for a sequence already accepted or older than the window") {
    auto v = verifier();
    CHECK(advert_of(v.verify(with_seq(5, 100))).sequence == 100);
    CHECK(drop_of(v.verify(with_seq(5, 100))) == DropReason::Replay);
    CHECK(advert_of(v.verify(with_seq(5, 101))).sequence == 101);
    // Reordered in the network: an unseen sequence inside the window is accepted once.
    CHECK(advert_of(v.verify(with_seq(5, 99))).sequence == 99);
    CHECK(drop_of(v.verify(with_seq(5, 99))) == DropReason::Replay);
    CHECK(advert_of(v.verify(with_seq(5, 101 - AdvertVerifier::kReplayWindow + 1))).sequence ==
          101 - AdvertVerifier::kReplayWindow + 1);
    CHECK(drop_of(v.verify(with_seq(5, 101 - AdvertVerifier::kReplayWindow))) ==
          DropReason::Replay);
    // A jump ahead by more than the window forgets everything behind it.
    CHECK(std::holds_alternative<Advert>(v.verify(with_seq(5, 1000))));
    CHECK(std::holds_alternative<Advert>(v.verify(with_seq(5, 990))));
    CHECK(drop_of(v.verify(with_seq(5, 1000 - AdvertVerifier::kReplayWindow))) ==
          DropReason::Replay);
}

TEST_CASE("Advert: the replay window matches a straightforward model on random traffic") {
    auto v = verifier();
    std::set<std::uint64_t> accepted;
    std::uint64_t highest = 0;
    Rng rng(11);
    for (int i = 0; i < 3000; ++i) {
        const std::uint64_t seq = 1 + rng.below(400) + static_cast<std::uint64_t>(i) / 4;
        const bool expect = !accepted.contains(seq) &&
                            (accepted.empty() || seq + AdvertVerifier::kReplayWindow > highest);
        const auto result = v.verify(with_seq(5, seq));
        CAPTURE(seq);
        CHECK(std::holds_alternative<Advert>(result) == expect);
        if (expect) {
            accepted.insert(seq);
            highest = std::max(highest, seq);
        }
    }
}

TEST_CASE("Advert: StaleEpoch for an epoch older than one already seen") {
    auto v = verifier();
    CHECK(advert_of(v.verify(with_seq(8, 100))).boot_epoch == 8);
    CHECK(drop_of(v.verify(with_seq(7, 1000))) == DropReason::StaleEpoch);
    // A restart (newer epoch) starts its sequence again.
    CHECK(advert_of(v.verify(with_seq(9, 1))).sequence == 1);
    CHECK(drop_of(v.verify(with_seq(8, 101))) == DropReason::StaleEpoch);
}

TEST_CASE("Advert: replay state is per sender and instance, and drops do not advance it") {
    auto v = verifier();
    CHECK(std::holds_alternative<Advert>(v.verify(with_seq(1, 5, "web-1"))));
    CHECK(std::holds_alternative<Advert>(v.verify(with_seq(1, 5, "web-3"))));
    Bytes forged = with_seq(1, 50, "web-1");
    forged.back() ^= 0xff;
    CHECK(drop_of(v.verify(forged)) == DropReason::BadMac);
    CHECK(std::holds_alternative<Advert>(v.verify(with_seq(1, 6, "web-1"))));
    CHECK(v.senders_tracked() == 2);
}

TEST_CASE("Advert: TooManySenders once the replay table is full") {
    auto v = verifier();
    for (std::size_t i = 0; i < AdvertVerifier::kMaxSenders; ++i) {
        REQUIRE(std::holds_alternative<Advert>(v.verify(with_seq(1, 1, "n" + std::to_string(i)))));
    }
    CHECK(drop_of(v.verify(with_seq(1, 1, "one-too-many"))) == DropReason::TooManySenders);
    CHECK(std::holds_alternative<Advert>(v.verify(with_seq(1, 2, "n0"))));
}

TEST_CASE("Advert: every truncation of a valid advert is rejected") {
    for (std::size_t n = 0; n < kGoldenMaster.size(); ++n) {
        CAPTURE(n);
        const Bytes prefix(kGoldenMaster.begin(), kGoldenMaster.begin() + static_cast<long>(n));
        CHECK(std::holds_alternative<DropReason>(decode_advert(prefix, kKey)));
    }
}

TEST_CASE("Advert: every drop reason has its own name") {
    std::set<std::string_view> names;
    for (std::size_t i = 0; i < kDropReasonCount; ++i) {
        const auto name = to_string(static_cast<DropReason>(i));
        CHECK(name != "?");
        names.insert(name);
    }
    CHECK(names.size() == kDropReasonCount);
}
