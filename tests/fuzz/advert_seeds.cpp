// Writes a small seed corpus of valid, signed adverts (same key as advert_fuzz.cpp) into the
// directory given as argv[1]. Built and run by scripts/fuzz.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "daemon/core/advert.hpp"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const std::vector<std::uint8_t> key(32, 0x42);
    std::vector<failoverd::Advert> seeds;
    failoverd::Advert a;
    a.instance_id = failoverd::instance_id_of("web");
    a.instance_name = "web";
    a.echoes = {{"web-2", 7}};
    a.sender = "web-1";
    a.sender_provider_id = "123456789";
    a.priority = 150;
    a.boot_epoch = 1;
    a.sequence = 1;
    seeds.push_back(a);
    a.state = failoverd::SenderState::Backup;
    a.sequence = 2;
    seeds.push_back(a);
    a.state = failoverd::SenderState::Master;
    a.priority = 0;
    a.handover_target = "web-2";
    a.sequence = 3;
    seeds.push_back(a);
    a.sender = std::string(63, 'n');
    a.sender_provider_id = std::string(63, '9');
    a.handover_target = std::string(63, 't');
    a.advert_interval = std::chrono::milliseconds(10);
    a.instance_name = std::string(63, 'i');
    a.instance_id = failoverd::instance_id_of(a.instance_name);
    a.echoes.clear();
    for (std::size_t i = 0; i < failoverd::kAdvertEchoMax; ++i) {
        a.echoes.push_back({std::string(62, 'e') + static_cast<char>('a' + i), i + 1});
    }
    seeds.push_back(a);
    for (std::size_t i = 0; i < seeds.size(); ++i) {
        const auto packet = failoverd::encode_advert(seeds[i], key);
        // Mode byte (see advert_fuzz.cpp): 0 = raw datagram, 1 = body to be signed.
        std::vector<std::uint8_t> raw{0};
        raw.insert(raw.end(), packet.begin(), packet.end());
        std::vector<std::uint8_t> body{1};
        body.insert(body.end(), packet.begin(), packet.end() - failoverd::kAdvertMacSize);
        for (const auto* bytes : {&raw, &body}) {
            const std::string path = std::string(argv[1]) + "/seed-" + std::to_string(i) +
                                     (bytes == &raw ? "-raw" : "-body");
            std::FILE* f = std::fopen(path.c_str(), "wb");
            if (f == nullptr || std::fwrite(bytes->data(), 1, bytes->size(), f) != bytes->size()) {
                std::perror(path.c_str());
                return 1;
            }
            std::fclose(f);
        }
    }
    return 0;
}
