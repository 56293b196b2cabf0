// tests/fakes/fake_do_api.py (the fake DigitalOcean API and metadata service) as a child of the
// test, on 127.0.0.1 with kernel-chosen ports, in a fresh temporary directory that also holds
// its setup, holder log, request log and output. Independent of any EventLoop: start-up waits
// for the ready file, control calls are blocking curl_easy requests (fine in tests), and the
// destructor stops the process. Usable from any integration test.
#pragma once

#include <curl/curl.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace failoverd::testing {

// Tokens of default_fake_do_setup(): all scopes, and read-only (no reserved_ip:update).
inline constexpr const char* kFakeGoodToken = "dop_v1_good_0123456789abcdef";
inline constexpr const char* kFakeReadOnlyToken = "dop_v1_readonly_0123456789abcdef";
inline constexpr const char* kFakeIp = "203.0.113.10";
inline constexpr std::int64_t kFakeDroplet1 = 3000000001;
inline constexpr std::int64_t kFakeDroplet2 = 3000000002;
inline constexpr std::int64_t kFakeDroplet3 = 3000000003;

// Three droplets in nyc3 tagged "failoverd" (n1 10.77.0.1, n2 10.77.0.2, n3 untagged and without
// a private address), one unassigned reserved IP, fast actions (50-100 ms).
inline nlohmann::json default_fake_do_setup() {
    using nlohmann::json;
    return json{
        {"tokens",
         {{kFakeGoodToken, {{"name", "ci"}, {"scopes", json::array({"*"})}}},
          {kFakeReadOnlyToken,
           {{"name", "ro"},
            {"scopes", json::array({"reserved_ip:read", "droplet:read", "account:read"})}}}}},
        {"droplets", json::array({{{"id", kFakeDroplet1},
                                   {"name", "n1"},
                                   {"region", "nyc3"},
                                   {"private_ip", "10.77.0.1"},
                                   {"public_ip", "198.51.100.1"},
                                   {"tags", json::array({"failoverd"})}},
                                  {{"id", kFakeDroplet2},
                                   {"name", "n2"},
                                   {"region", "nyc3"},
                                   {"private_ip", "10.77.0.2"},
                                   {"public_ip", "198.51.100.2"},
                                   {"tags", json::array({"failoverd"})}},
                                  {{"id", kFakeDroplet3},
                                   {"name", "n3"},
                                   {"region", "nyc3"},
                                   {"private_ip", "10.77.0.3"},
                                   {"public_ip", "198.51.100.3"},
                                   {"tags", json::array({"other"})}}})},
        {"reserved_ips",
         json::array({{{"ip", kFakeIp}, {"region", "nyc3"}, {"droplet_id", nullptr}}})},
        {"options", {{"action_delay", json::array({0.05, 0.1})}}}};
}

struct FakeDoApiOptions {
    bool metadata = true;       // also start the metadata listener
    bool manual_clock = false;  // --manual-clock: time moves only through clock_advance()
    // The API port serves HTTPS with a certificate from a throwaway CA (tests/fakes/
    // make_test_ca.sh, for 127.0.0.1); clients trust ca_file(). Metadata stays plain HTTP.
    bool tls = false;
    std::vector<std::string> extra_args;
    std::chrono::seconds start_deadline{60};
};

class FakeDoApi {
  public:
    explicit FakeDoApi(const nlohmann::json& setup = default_fake_do_setup(),
                       FakeDoApiOptions options = {}) {
        char tmpl[] = "/tmp/failoverd-fake-do-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir_ = tmpl;
        {
            std::ofstream out(dir_ + "/setup.json");
            out << setup.dump(2);
        }
        std::vector<std::string> args = {
            "/usr/bin/python3", std::string(FAILOVERD_FAKES_DIR) + "/fake_do_api.py",
            "--setup",          dir_ + "/setup.json",
            "--listen",         "127.0.0.1:0",
            "--holder-log",     holder_log_path(),
            "--request-log",    request_log_path(),
            "--ready-file",     dir_ + "/ready.json"};
        if (options.metadata) {
            args.insert(args.end(), {"--metadata-listen", "127.0.0.1:0"});
        }
        if (options.manual_clock) {
            args.emplace_back("--manual-clock");
        }
        if (options.tls) {
            make_test_ca();
            args.insert(args.end(), {"--tls-cert", dir_ + "/tls/server.pem", "--tls-key",
                                     dir_ + "/tls/server.key"});
            tls_ = true;
        }
        args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
        spawn(args);
        wait_ready(options.start_deadline);
    }

    ~FakeDoApi() {
        stop();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }

    FakeDoApi(const FakeDoApi&) = delete;
    FakeDoApi& operator=(const FakeDoApi&) = delete;

    std::string api_url() const {
        return (tls_ ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(api_port_);
    }
    // The test CA that signed the API's certificate (empty without FakeDoApiOptions::tls).
    std::string ca_file() const { return tls_ ? dir_ + "/tls/ca.pem" : std::string(); }
    // Base of the metadata service; the fake picks the droplet by source address, which is
    // always 127.0.0.1 here, so tests use metadata_url_for(droplet) instead.
    std::string metadata_url() const {
        return metadata_port_ == 0 ? std::string()
                                   : "http://127.0.0.1:" + std::to_string(metadata_port_);
    }
    // A metadata base URL that answers as `droplet` ({base}/metadata/v1/id works under it).
    std::string metadata_url_for(std::int64_t droplet) const {
        return metadata_url() + "/droplet/" + std::to_string(droplet);
    }
    int api_port() const { return api_port_; }
    int metadata_port() const { return metadata_port_; }
    pid_t pid() const { return pid_; }
    const std::string& dir() const { return dir_; }
    std::string holder_log_path() const { return dir_ + "/holders.jsonl"; }
    std::string request_log_path() const { return dir_ + "/requests.jsonl"; }
    std::string output_path() const { return dir_ + "/fake.log"; }

    // Writes `token` to a file in the fake's directory with `mode`; returns its path.
    std::string write_token_file(const std::string& name, const std::string& token,
                                 mode_t mode = 0600) const {
        const std::string path = dir_ + "/" + name;
        {
            std::ofstream out(path);
            out << token << "\n";
        }
        REQUIRE(::chmod(path.c_str(), mode) == 0);
        return path;
    }

    // A control route; fails the test unless it answers 200. Returns the JSON answer.
    nlohmann::json control(const std::string& method, const std::string& path,
                           const nlohmann::json& body = nlohmann::json::object()) const {
        long status = 0;
        const std::string text = easy(method, path, method == "GET" ? "" : body.dump(), &status);
        REQUIRE_MESSAGE(status == 200, "fake control " << method << " " << path << " -> " << status
                                                       << ": " << text);
        auto j = nlohmann::json::parse(text, nullptr, false);
        REQUIRE_MESSAGE(!j.is_discarded(), "fake control answer is not JSON: " << text);
        return j;
    }

    nlohmann::json post_options(const nlohmann::json& options) const {
        return control("POST", "/_fake/options", options);
    }
    // {"route": "assign"|"read_ip"|"read_action"|"droplets"|"account"|"any", "kind": "500"|
    //  "502"|"503"|"504"|"429"|"hang"|"drop"|"commit_then_drop"|"truncate", "count": N, ...}
    nlohmann::json post_fault(const nlohmann::json& fault) const {
        return control("POST", "/_fake/faults", fault);
    }
    nlohmann::json clear_faults() const { return control("POST", "/_fake/clear"); }
    nlohmann::json clock_advance(double seconds) const {
        return control("POST", "/_fake/clock", {{"advance", seconds}});
    }
    nlohmann::json droplet_busy(std::int64_t droplet, double seconds) const {
        return control("POST", "/_fake/droplet_busy",
                       {{"droplet_id", droplet}, {"seconds", seconds}});
    }
    nlohmann::json set_holder(const std::string& ip, std::optional<std::int64_t> droplet) const {
        return control(
            "POST", "/_fake/set_holder",
            {{"ip", ip}, {"droplet_id", droplet ? nlohmann::json(*droplet) : nlohmann::json()}});
    }
    nlohmann::json set_tokens(const nlohmann::json& tokens) const {
        return control("POST", "/_fake/tokens", {{"tokens", tokens}});
    }
    nlohmann::json reset() const { return control("POST", "/_fake/reset"); }
    nlohmann::json state() const { return control("GET", "/_fake/state"); }

    // The holder of `ip` by the fake's state: droplet id, or nullopt when unassigned.
    std::optional<std::int64_t> holder(const std::string& ip = kFakeIp) const {
        const auto s = state().at("reserved_ips").at(ip);
        if (s.at("droplet_id").is_null()) {
            return std::nullopt;
        }
        return s.at("droplet_id").get<std::int64_t>();
    }

    std::vector<nlohmann::json> holder_log() const { return read_lines(holder_log_path()); }
    std::vector<nlohmann::json> request_log() const { return read_lines(request_log_path()); }
    std::string output() const { return read_file(output_path()); }

    // SIGTERM, then SIGKILL if it has not exited within 10 s. Idempotent.
    void stop() {
        if (pid_ <= 0) {
            return;
        }
        ::kill(pid_, SIGTERM);
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (std::chrono::steady_clock::now() < until) {
            if (reap(WNOHANG)) {
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        ::kill(-pid_, SIGKILL);
        reap(0);
    }

  private:
    void make_test_ca() const {
        const std::string command = "/bin/bash '" + std::string(FAILOVERD_FAKES_DIR) +
                                    "/make_test_ca.sh' '" + dir_ + "/tls' 127.0.0.1 localhost >'" +
                                    dir_ + "/make_test_ca.log' 2>&1";
        const int rc = std::system(command.c_str());
        std::ifstream log(dir_ + "/make_test_ca.log");
        std::stringstream text;
        text << log.rdbuf();
        REQUIRE_MESSAGE(rc == 0, "make_test_ca.sh failed:\n" << text.str());
    }

    void spawn(const std::vector<std::string>& args) {
        std::vector<char*> argv;
        for (const auto& a : args) {
            argv.push_back(const_cast<char*>(a.c_str()));
        }
        argv.push_back(nullptr);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&actions, 1, output_path().c_str(),
                                         O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_adddup2(&actions, 1, 2);
        posix_spawnattr_t attr;
        posix_spawnattr_init(&attr);
        // The test's EventLoop blocks SIGCHLD (and a daemon test may block SIGTERM): the fake
        // must get default dispositions and an empty mask, in its own process group.
        sigset_t empty;
        sigemptyset(&empty);
        posix_spawnattr_setsigmask(&attr, &empty);
        sigset_t defaults;
        sigemptyset(&defaults);
        sigaddset(&defaults, SIGTERM);
        sigaddset(&defaults, SIGINT);
        sigaddset(&defaults, SIGPIPE);
        sigaddset(&defaults, SIGCHLD);
        posix_spawnattr_setsigdefault(&attr, &defaults);
        posix_spawnattr_setpgroup(&attr, 0);
        posix_spawnattr_setflags(
            &attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
        const int rc = ::posix_spawn(&pid_, argv[0], &actions, &attr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        posix_spawnattr_destroy(&attr);
        REQUIRE_MESSAGE(rc == 0, "cannot start fake_do_api.py: " << std::strerror(rc));
    }

    void wait_ready(std::chrono::seconds deadline) {
        const std::string ready = dir_ + "/ready.json";
        const auto until = std::chrono::steady_clock::now() + deadline;
        while (std::chrono::steady_clock::now() < until) {
            std::ifstream in(ready);
            if (in) {
                const auto j = nlohmann::json::parse(in, nullptr, false);
                REQUIRE_MESSAGE(!j.is_discarded(), "unreadable ready file " << ready);
                api_port_ = j.at("api_port").get<int>();
                metadata_port_ =
                    j.at("metadata_port").is_null() ? 0 : j.at("metadata_port").get<int>();
                return;
            }
            if (reap(WNOHANG)) {
                FAIL("fake_do_api.py exited before it was ready:\n" << output());
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        FAIL("fake_do_api.py not ready within " << deadline.count() << " s:\n" << output());
    }

    // True when the process is gone (and reaped).
    bool reap(int flags) {
        int status = 0;
        const pid_t r = ::waitpid(pid_, &status, flags);
        if (r == pid_ || (r < 0 && errno == ECHILD)) {
            pid_ = -1;
            return true;
        }
        return false;
    }

    static size_t collect(char* data, size_t size, size_t count, void* userdata) {
        static_cast<std::string*>(userdata)->append(data, size * count);
        return size * count;
    }

    std::string easy(const std::string& method, const std::string& path, const std::string& body,
                     long* status) const {
        CURL* curl = curl_easy_init();
        REQUIRE(curl != nullptr);
        std::string response;
        const std::string url = api_url() + path;
        curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
        curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
        curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        const std::string ca = ca_file();
        if (!ca.empty()) {
            curl_easy_setopt(curl, CURLOPT_CAINFO, ca.c_str());
        }
        if (method != "GET") {
            curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
            curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
        }
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
        const CURLcode code = curl_easy_perform(curl);
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
        curl_slist_free_all(headers);
        curl_easy_cleanup(curl);
        REQUIRE_MESSAGE(code == CURLE_OK, "fake control " << method << " " << path << ": "
                                                          << curl_easy_strerror(code));
        return response;
    }

    static std::string read_file(const std::string& path) {
        std::ifstream in(path);
        std::stringstream text;
        text << in.rdbuf();
        return text.str();
    }

    static std::vector<nlohmann::json> read_lines(const std::string& path) {
        std::vector<nlohmann::json> out;
        std::ifstream in(path);
        std::string line;
        // Only complete lines: the fake may be half-way through writing the last one.
        while (std::getline(in, line)) {
            if (in.eof() || line.empty()) {
                break;
            }
            auto j = nlohmann::json::parse(line, nullptr, false);
            if (!j.is_discarded()) {
                out.push_back(std::move(j));
            }
        }
        return out;
    }

    std::string dir_;
    pid_t pid_ = -1;
    int api_port_ = 0;
    bool tls_ = false;
    int metadata_port_ = 0;
};

}  // namespace failoverd::testing
