// Keeps failoverd_core pure: no clock, socket, file, logging, sleeping or OS randomness.
// TigerBeetle's tidy.zig is the model: a plain scan of the sources, run as a test.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Ban {
    const char* pattern;
    const char* why;
    std::regex compiled{pattern};  // compiled once: the scan runs every ban on every line
};

const std::vector<Ban>& bans() {
    static const std::vector<Ban> list = {
        {R"(\b(steady_clock|system_clock|high_resolution_clock|utc_clock)\b)", "reads a clock"},
        {R"(\b(clock_gettime|gettimeofday|std::time|sd_event_now)\s*\()", "reads a clock"},
        {R"(::now\s*\()", "reads a clock"},
        {R"(#\s*include\s*<(sys/socket\.h|netinet/[a-z_]+\.h|arpa/inet\.h|unistd\.h|fstream|iostream|thread|random|curl/curl\.h|systemd/[a-z-]+\.h|spdlog/[a-z_/]+\.h)>)",
         "includes an I/O, thread, clock or randomness header"},
        {R"(\b(spdlog|syslog|std::cout|std::cerr|std::clog)\b)", "logs"},
        {R"(\b(socket|sendto|recvfrom|connect|bind|fopen|open|popen|system|fork|execv[pe]?)\s*\()",
         "does I/O"},
        {R"(\b(rand|srand|random|getrandom|arc4random|RAND_bytes)\s*\()", "draws randomness"},
        {R"(\bstd::random_device\b)", "draws randomness"},
        {R"(\b(sleep|usleep|nanosleep|sleep_for|sleep_until)\s*\()", "sleeps"},
        {R"(\b(curl_[a-z_]+|sd_event_[a-z_]+)\s*\()", "does I/O"},
    };
    return list;
}

// Comments and string literals may mention banned names ("never reads a clock").
std::string strip_comments_and_strings(const std::string& line) {
    std::string out;
    bool in_string = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
        const char c = line[i];
        if (!in_string && c == '/' && i + 1 < line.size() && line[i + 1] == '/') {
            break;
        }
        if (c == '"' && (i == 0 || line[i - 1] != '\\')) {
            in_string = !in_string;
            out += '"';
            continue;
        }
        if (!in_string) {
            out += c;
        }
    }
    return out;
}

std::vector<std::string> violations_in(const std::string& name, const std::string& text) {
    std::vector<std::string> found;
    std::istringstream in(text);
    std::string line;
    int number = 0;
    bool in_block_comment = false;
    while (std::getline(in, line)) {
        ++number;
        if (in_block_comment) {
            const auto end = line.find("*/");
            if (end == std::string::npos) {
                continue;
            }
            line = line.substr(end + 2);
            in_block_comment = false;
        }
        for (auto start = line.find("/*"); start != std::string::npos; start = line.find("/*")) {
            const auto end = line.find("*/", start + 2);
            if (end == std::string::npos) {
                line = line.substr(0, start);
                in_block_comment = true;
                break;
            }
            line.erase(start, end + 2 - start);
        }
        const std::string code =
            line.rfind("#", 0) == 0 || line.find("#include") != std::string::npos
                ? line
                : strip_comments_and_strings(line);
        for (const auto& ban : bans()) {
            if (std::regex_search(code, ban.compiled)) {
                found.push_back(name + ":" + std::to_string(number) + ": " + ban.why + ": " + line);
            }
        }
    }
    return found;
}

std::vector<std::string> core_files() {
    std::ifstream list(FAILOVERD_CORE_FILE_LIST);
    std::vector<std::string> files;
    std::string line;
    while (std::getline(list, line)) {
        if (!line.empty()) {
            files.push_back(line);
        }
    }
    return files;
}

}  // namespace

TEST_CASE("tidy: the scanner catches each kind of banned call") {
    CHECK(violations_in("x", "auto t = std::chrono::steady_clock::now();").size() >= 1);
    CHECK(violations_in("x", "#include <sys/socket.h>").size() == 1);
    CHECK(violations_in("x", "spdlog::info(\"hi\");").size() == 1);
    CHECK(violations_in("x", "int r = rand();").size() == 1);
    CHECK(violations_in("x", "std::random_device rd;").size() == 1);
    CHECK(violations_in("x", "std::this_thread::sleep_for(d);").size() == 1);
    CHECK(violations_in("x", "int fd = socket(AF_INET, SOCK_DGRAM, 0);").size() == 1);
    CHECK(violations_in("x", "FILE* f = fopen(path, \"r\");").size() == 1);
}

TEST_CASE("tidy: comments and strings may name banned things") {
    CHECK(violations_in("x", "// never reads steady_clock::now()").empty());
    CHECK(violations_in("x", "/* no sleep() here */").empty());
    CHECK(violations_in("x", "reason = \"connect() refused\";").empty());
    CHECK(violations_in("x", "Instant deadline = now + interval;").empty());
}

TEST_CASE("tidy: failoverd_core has no clock, socket, logging or randomness") {
    const auto files = core_files();
    REQUIRE_MESSAGE(files.size() >= 4, "the core file list is missing or nearly empty");
    std::vector<std::string> all;
    for (const auto& path : files) {
        std::ifstream in(path);
        REQUIRE_MESSAGE(in.good(), "cannot read " << path);
        std::stringstream text;
        text << in.rdbuf();
        for (auto& v : violations_in(path, text.str())) {
            all.push_back(std::move(v));
        }
    }
    for (const auto& v : all) {
        MESSAGE(v);
    }
    CHECK(all.empty());
}
