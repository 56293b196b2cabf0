// libFuzzer target for the advert decoder and verifier: no input may crash, hang or leak, and
// anything accepted must re-encode to the very same bytes. The first input byte picks a mode:
// odd = the rest is a packet body that gets a valid MAC appended, so the fuzzer also reaches
// the field checks behind the MAC; even = the rest is a raw datagram.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "daemon/core/advert.hpp"

namespace {

const std::vector<std::uint8_t>& key() {
    static const std::vector<std::uint8_t> k(32, 0x42);
    return k;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    std::vector<std::uint8_t> packet(data + 1, data + size);
    if ((data[0] & 1) != 0) {
        unsigned char mac[32];
        unsigned int len = 0;
        HMAC(EVP_sha256(), key().data(), static_cast<int>(key().size()), packet.data(),
             packet.size(), mac, &len);
        packet.insert(packet.end(), mac, mac + len);
    }
    const std::span<const std::uint8_t> bytes(packet);
    auto decoded = failoverd::decode_advert(bytes, key());
    if (const auto* advert = std::get_if<failoverd::Advert>(&decoded)) {
        if (failoverd::encode_advert(*advert, key()) !=
            std::vector<std::uint8_t>(bytes.begin(), bytes.end())) {
            std::abort();
        }
    }
    // Also through the stateful verifier, twice: the second time must never be accepted.
    static failoverd::AdvertVerifier verifier(key(), "self", {failoverd::instance_id_of("web")});
    auto first = verifier.verify(bytes);
    auto second = verifier.verify(bytes);
    if (std::holds_alternative<failoverd::Advert>(first) &&
        std::holds_alternative<failoverd::Advert>(second)) {
        std::abort();
    }
    return 0;
}
