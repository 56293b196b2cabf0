// Cold versus warm DigitalOcean API requests through failoverd's own HTTP stack (CurlMulti on
// the EventLoop, the provider's request options), against tests/fakes/fake_do_api.py on
// loopback, over HTTP and over HTTPS with a test CA. A cold request opens a new connection
// (TCP, plus the TLS handshake for https; a fresh CurlMulti has no connection, session or DNS
// cache); a warm one reuses the connection the previous request left open, as the provider
// does after its keep-warm read. Prints a markdown table; docs/benchmarks.md has the numbers.
//
// Usage: provider_latency [--requests N] [--fakes DIR]   (N >= 50 by default)
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "daemon/config.hpp"
#include "daemon/shell/curl_multi.hpp"
#include "daemon/shell/event_loop.hpp"
#include "provider/digitalocean_api.hpp"
#include "provider/digitalocean_provider.hpp"

extern char** environ;

namespace {

using namespace failoverd;
using Clock = std::chrono::steady_clock;

constexpr const char* kToken = "dop_v1_bench_0123456789abcdef";
constexpr const char* kIp = "203.0.113.10";

// The fake as a child process, in its own process group; stopped by the destructor.
class Fake {
  public:
    Fake(const std::string& fakes_dir, const std::string& dir, bool tls) : dir_(dir), tls_(tls) {
        using nlohmann::json;
        std::filesystem::create_directories(dir);
        {
            std::ofstream setup(dir + "/setup.json");
            setup << json{{"tokens", {{kToken, {{"name", "bench"}, {"scopes", {"*"}}}}}},
                          {"droplets", json::array({{{"id", 3000000001LL},
                                                     {"name", "n1"},
                                                     {"region", "nyc3"},
                                                     {"private_ip", "10.77.0.1"},
                                                     {"public_ip", "198.51.100.1"},
                                                     {"tags", json::array({"failoverd"})}}})},
                          {"reserved_ips",
                           json::array(
                               {{{"ip", kIp}, {"region", "nyc3"}, {"droplet_id", 3000000001LL}}})},
                          // Thousands of requests in a minute: lift DigitalOcean's limits.
                          {"options", {{"burst_limit", 1000000}, {"hourly_limit", 1000000}}}}
                         .dump();
        }
        std::vector<std::string> args = {"/usr/bin/python3", fakes_dir + "/fake_do_api.py",
                                         "--setup",          dir + "/setup.json",
                                         "--listen",         "127.0.0.1:0",
                                         "--ready-file",     dir + "/ready.json"};
        if (tls) {
            const std::string ca = "/bin/bash '" + fakes_dir + "/make_test_ca.sh' '" + dir +
                                   "/tls' 127.0.0.1 localhost";
            if (std::system(ca.c_str()) != 0) {
                throw std::runtime_error("make_test_ca.sh failed");
            }
            args.insert(args.end(), {"--tls-cert", dir + "/tls/server.pem", "--tls-key",
                                     dir + "/tls/server.key"});
        }
        std::vector<char*> argv;
        for (auto& a : args) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 1, (dir + "/fake.log").c_str(),
                                         O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_adddup2(&actions, 1, 2);
        posix_spawnattr_t attr;
        posix_spawnattr_init(&attr);
        sigset_t empty;
        sigemptyset(&empty);
        posix_spawnattr_setsigmask(&attr, &empty);
        posix_spawnattr_setpgroup(&attr, 0);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
        const int rc = ::posix_spawn(&pid_, argv[0], &actions, &attr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        posix_spawnattr_destroy(&attr);
        if (rc != 0) {
            throw std::runtime_error("cannot start the fake");
        }
        const auto until = Clock::now() + std::chrono::seconds(60);
        while (Clock::now() < until) {
            std::ifstream ready(dir + "/ready.json");
            if (ready) {
                port_ = nlohmann::json::parse(ready).at("api_port").get<int>();
                return;
            }
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                throw std::runtime_error("the fake exited; see " + dir + "/fake.log");
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        throw std::runtime_error("the fake did not start within 60 s");
    }
    ~Fake() {
        if (pid_ > 0) {
            ::kill(-pid_, SIGTERM);
            int status = 0;
            ::waitpid(pid_, &status, 0);
        }
    }
    Fake(const Fake&) = delete;
    Fake& operator=(const Fake&) = delete;

    std::string url(const std::string& host = "127.0.0.1") const {
        return (tls_ ? "https://" : "http://") + host + ":" + std::to_string(port_);
    }
    std::string ca_file() const { return tls_ ? dir_ + "/tls/ca.pem" : std::string(); }

  private:
    std::string dir_;
    bool tls_ = false;
    pid_t pid_ = -1;
    int port_ = 0;
};

struct Sample {
    double ms = 0;  // perform() to the completion callback, on the loop
    long new_connections = 0;
};

// One read-holder request as the provider builds it; waits for it on the loop.
Sample request(EventLoop& loop, CurlMulti& curl, const std::string& base,
               const ProviderConfig& config) {
    HttpRequest r = make_http_request(base, digitalocean::read_holder_request(kIp), kToken, config);
    std::optional<HttpResponse> response;
    const auto start = Clock::now();
    curl.perform(std::move(r), [&](HttpResponse resp) { response = std::move(resp); });
    if (!loop.run_until([&] { return response.has_value(); }, std::chrono::seconds(30)) ||
        !response->ok() || response->status != 200) {
        throw std::runtime_error(
            "request failed: " +
            (response ? response->error + " HTTP " + std::to_string(response->status)
                      : std::string("no answer")));
    }
    const auto end = Clock::now();
    return Sample{std::chrono::duration<double, std::milli>(end - start).count(),
                  response->new_connections};
}

double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    const std::size_t i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

struct Row {
    std::string what;
    std::vector<double> ms;
    long connections = 0;
};

void print(const Row& r) {
    std::printf("| %s | %zu | %.2f | %.2f | %.2f | %ld |\n", r.what.c_str(), r.ms.size(),
                percentile(r.ms, 0.5), percentile(r.ms, 0.95),
                *std::max_element(r.ms.begin(), r.ms.end()), r.connections);
    std::fflush(stdout);
}

Row measure(const std::string& what, const std::string& base, const ProviderConfig& config, int n,
            bool warm) {
    EventLoop loop;
    Row row{what, {}, 0};
    if (warm) {
        CurlMulti curl(loop);
        request(loop, curl, base, config);  // opens the connection (the keep-warm read)
        for (int i = 0; i < n; ++i) {
            const Sample s = request(loop, curl, base, config);
            row.ms.push_back(s.ms);
            row.connections += s.new_connections;
        }
        return row;
    }
    for (int i = 0; i < n; ++i) {
        CurlMulti curl(loop);  // no cached connection, TLS session or DNS entry
        const Sample s = request(loop, curl, base, config);
        row.ms.push_back(s.ms);
        row.connections += s.new_connections;
    }
    return row;
}

}  // namespace

int main(int argc, char** argv) {
    int n = 50;
    std::string fakes = FAILOVERD_FAKES_DIR;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--requests" && i + 1 < argc) {
            n = std::max(1, std::atoi(argv[++i]));
        } else if (a == "--fakes" && i + 1 < argc) {
            fakes = argv[++i];
        } else {
            std::fprintf(stderr, "usage: %s [--requests N] [--fakes DIR]\n", argv[0]);
            return 2;
        }
    }
    char tmpl[] = "/tmp/failoverd-bench-latency-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
        std::perror("mkdtemp");
        return 1;
    }
    const std::string dir = tmpl;
    int rc = 0;
    try {
        Fake http(fakes, dir + "/http", false);
        Fake https(fakes, dir + "/https", true);
        ProviderConfig plain;
        plain.request_timeout = std::chrono::seconds(10);
        ProviderConfig tls = plain;
        tls.ca_file = https.ca_file();

        std::printf(
            "GET /v2/reserved_ips/%s through CurlMulti against fake_do_api.py on "
            "loopback, %d requests per row (ms, perform() to callback)\n\n",
            kIp, n);
        std::printf("| request | n | median | p95 | max | new connections |\n");
        std::printf("|---|---|---|---|---|---|\n");
        print(measure("HTTP, cold (new TCP connection)", http.url(), plain, n, false));
        print(measure("HTTP, warm (reused connection)", http.url(), plain, n, true));
        print(measure("HTTPS, cold (TCP + TLS 1.3 handshake)", https.url(), tls, n, false));
        print(measure("HTTPS, cold, host name `localhost` (+ resolve)", https.url("localhost"), tls,
                      n, false));
        print(measure("HTTPS, warm (reused connection)", https.url(), tls, n, true));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "provider_latency: %s\n", e.what());
        rc = 1;
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    return rc;
}
