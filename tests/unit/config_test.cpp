#include "daemon/config.hpp"

#include <doctest/doctest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

using namespace failoverd;
using namespace std::chrono_literals;

namespace {

// A private directory for config files, secrets and hooks; removed with everything in it.
class TempDir {
  public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "failoverd-config-XXXXXX");
        REQUIRE(mkdtemp(pattern.data()) != nullptr);
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    std::string path(const std::string& name) const { return path_ + "/" + name; }

    std::string write(const std::string& name, const std::string& text, mode_t mode) const {
        const std::string file = path(name);
        std::filesystem::create_directories(std::filesystem::path(file).parent_path());
        std::ofstream(file) << text;
        REQUIRE(chmod(file.c_str(), mode) == 0);
        return file;
    }

  private:
    std::string path_;
};

std::vector<std::string> errors_of(const std::string& text, const std::string& path,
                                   ConfigScope scope = ConfigScope::Daemon) {
    try {
        parse_config(text, path, scope);
    } catch (const ConfigErrors& e) {
        std::vector<std::string> out;
        for (const auto& error : e.errors()) {
            out.push_back(error.to_string());
        }
        return out;
    }
    return {};
}

using Lines = std::vector<std::string>;

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// Sets or clears an environment variable for one test, and puts it back.
class ScopedEnv {
  public:
    ScopedEnv(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) {
            old_ = old;
        }
        if (value != nullptr) {
            setenv(name, value, 1);
        } else {
            unsetenv(name);
        }
    }
    ~ScopedEnv() {
        if (old_) {
            setenv(name_, old_->c_str(), 1);
        } else {
            unsetenv(name_);
        }
    }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

  private:
    const char* name_;
    std::optional<std::string> old_;
};

const char* const kInstance = "[instance.web]\nreserved_ip = 203.0.113.10\n";

}  // namespace

TEST_CASE("config: parse_duration accepts units and rejects garbage") {
    struct Row {
        const char* text;
        std::optional<Duration> expected;
    };
    const Row rows[] = {
        {"500ms", 500ms},
        {"2s", 2s},
        {"1.5s", 1500ms},
        {"5m", 5min},
        {"1h", 1h},
        {"1m30s", 90s},
        {"2", 2s},
        {"0.25", 250ms},
        {"0", 0s},
        {"40.95s", 40950ms},
        {"0.001s", 1ms},
        {"", std::nullopt},
        {"-1s", std::nullopt},
        {"1.s", std::nullopt},
        {".5s", std::nullopt},
        {"2x", std::nullopt},
        {"2 s", std::nullopt},
        {" 2s", std::nullopt},
        {"1s2", std::nullopt},
        {"ms", std::nullopt},
        {"1e3", std::nullopt},
        {"nan", std::nullopt},
        {"9999999999999h", std::nullopt},
        {"3000000h", std::nullopt},
    };
    for (const auto& row : rows) {
        CAPTURE(row.text);
        CHECK(parse_duration(row.text) == row.expected);
    }
}

TEST_CASE("config: parse_endpoint takes host:port and [v6]:port") {
    struct Row {
        const char* text;
        const char* host;  // nullptr: rejected
        std::uint16_t port;
    };
    const Row rows[] = {
        {"10.0.0.2:5405", "10.0.0.2", 5405},
        {"0.0.0.0:1", "0.0.0.0", 1},
        {"[::]:5405", "::", 5405},
        {"[fd00::2]:65535", "fd00::2", 65535},
        {"db.internal:5432", "db.internal", 5432},
        {"localhost:80", "localhost", 80},
        {"10.0.0.2", nullptr, 0},
        {"10.0.0.2:", nullptr, 0},
        {"10.0.0.2:0", nullptr, 0},
        {"10.0.0.2:65536", nullptr, 0},
        {"10.0.0.2:54x", nullptr, 0},
        {"10.0.0.300:80", nullptr, 0},
        {"fd00::2:5405", nullptr, 0},
        {"[fd00::zz]:5405", nullptr, 0},
        {"[fd00::2]5405", nullptr, 0},
        {":5405", nullptr, 0},
        {"bad host:80", nullptr, 0},
    };
    for (const auto& row : rows) {
        CAPTURE(row.text);
        const auto parsed = parse_endpoint(row.text);
        if (row.host == nullptr) {
            CHECK_FALSE(parsed.has_value());
        } else {
            REQUIRE(parsed.has_value());
            CHECK(parsed->host == row.host);
            CHECK(parsed->port == row.port);
            CHECK(parsed->to_string() == row.text);
        }
    }
}

TEST_CASE("config: split_command splits like sh without expanding") {
    using Argv = std::vector<std::string>;
    struct Row {
        const char* text;
        std::optional<Argv> expected;
    };
    const Row rows[] = {
        {"/bin/true", Argv{"/bin/true"}},
        {"  a   b\tc  ", Argv{"a", "b", "c"}},
        {"sh -c 'echo $HOME | wc -l'", Argv{"sh", "-c", "echo $HOME | wc -l"}},
        {R"(a "b \"c\" \\ \n" d)", Argv{"a", R"(b "c" \ \n)", "d"}},
        {R"(a\ b c\'d)", Argv{"a b", "c'd"}},
        {"check.sh # not a comment", Argv{"check.sh", "#", "not", "a", "comment"}},
        {"a''b \"\"", Argv{"ab", ""}},
        {"", Argv{}},
        {"'unterminated", std::nullopt},
        {"\"unterminated", std::nullopt},
        {"trailing\\", std::nullopt},
    };
    for (const auto& row : rows) {
        CAPTURE(row.text);
        CHECK(split_command(row.text) == row.expected);
    }
}

TEST_CASE("config: an error reads FILE:LINE: key: message") {
    CHECK(ConfigError{"f.conf", 3, "priority", "bad"}.to_string() == "f.conf:3: priority: bad");
    CHECK(ConfigError{"f.conf", 0, "", "cannot read"}.to_string() == "f.conf: cannot read");
    const ConfigErrors all({{"a", 1, "k", "x"}, {"a", 2, "j", "y"}});
    CHECK(std::string(all.what()) == "a:1: k: x\na:2: j: y");
}

TEST_CASE("config: unknown key, with the closest known key suggested") {
    TempDir dir;
    const auto file = dir.path("failoverd.conf");
    CHECK(errors_of("[node]\nlisten = 10.0.0.1:5405\nnmae = web-1\n", file) ==
          Lines{file +
                ":3: nmae: unknown key in [node]; did you mean name? (allowed: name, listen, "
                "control_socket, state_dir)"});
    CHECK(errors_of("[check.w]\ntype = http\nurl = http://a/\nexpected_status = 200\n", file) ==
          Lines{file +
                ":4: expected_status: unknown key in [check.w]; did you mean expect_status? "
                "(allowed: type, interval, timeout, rise, fall, weight, socket, label, name, "
                "expect, min, require_healthy, events, url, expect_status, body_contains, "
                "tls_verify, target, command)"});
    CHECK(errors_of("[cluster]\nwhatever = 1\n", file) ==
          Lines{file + ":2: whatever: unknown key in [cluster] (allowed: peer, peers_from_tag, "
                       "auth_key_file, advert_interval)"});
}

TEST_CASE("config: unknown section") {
    TempDir dir;
    const auto file = dir.path("failoverd.conf");
    const std::string allowed =
        " (allowed: [node], [cluster], [provider], [check.NAME], [instance.NAME])";
    CHECK(errors_of("[provder]\ntype = none\n", file) ==
          Lines{file + ":1: [provder]: unknown section; did you mean [provider]?" + allowed});
    CHECK(errors_of("\n[checks.web]\ntype = tcp\n", file) ==
          Lines{file + ":2: [checks.web]: unknown section; did you mean [check.web]?" + allowed});
    CHECK(errors_of("[instance]\n", file) ==
          Lines{file + ":1: [instance]: unknown section; it needs a name: [instance.NAME]" +
                allowed});
    CHECK(errors_of("[global]\n", file) == Lines{file + ":1: [global]: unknown section" + allowed});
    CHECK(errors_of("[check.a b]\n", file) ==
          Lines{file + ":1: [check.a b]: 'a b' is not a valid check name (allowed: 1..64 letters, "
                       "digits, '-' or '_')"});
}

TEST_CASE("config: bad duration") {
    TempDir dir;
    const auto file = dir.path("failoverd.conf");
    CHECK(errors_of("[check.c]\ntype = tcp\ntarget = 127.0.0.1:80\ninterval = 2 seconds\n", file) ==
          Lines{file + ":4: interval: not a duration: '2 seconds' (allowed: "
                       "100ms..1h)"});
    CHECK(errors_of("[cluster]\nadvert_interval = -1s\n", file) ==
          Lines{file +
                ":2: advert_interval: not a duration: '-1s' (allowed: 10ms..40.95s in steps of "
                "10ms)"});
    CHECK(errors_of("[cluster]\nadvert_interval = 41s\n", file) ==
          Lines{file +
                ":2: advert_interval: 41s is out of range (allowed: 10ms..40.95s in steps of "
                "10ms)"});
    CHECK(errors_of("[cluster]\nadvert_interval = 15ms\n", file) ==
          Lines{file +
                ":2: advert_interval: 15ms is out of range (allowed: 10ms..40.95s in steps of "
                "10ms)"});
}

TEST_CASE("config: out-of-range priority and other numbers") {
    TempDir dir;
    const auto file = dir.path("failoverd.conf");
    CHECK(errors_of(std::string(kInstance) + "priority = 255\n", file) ==
          Lines{file + ":3: priority: 255 is out of range (allowed: 1..254)"});
    CHECK(errors_of(std::string(kInstance) + "priority = 0\n", file) ==
          Lines{file + ":3: priority: 0 is out of range (allowed: 1..254)"});
    CHECK(errors_of(std::string(kInstance) + "priority = high\n", file) ==
          Lines{file + ":3: priority: not a whole number: 'high' (allowed: 1..254)"});
    CHECK(errors_of(std::string(kInstance) + "priority =\n", file) ==
          Lines{file + ":3: priority: missing value (allowed: 1..254)"});
    CHECK(errors_of("[check.c]\ntype = tcp\ntarget = a:1\nweight = 5\nrise = 0\n", file) ==
          Lines{file + ":4: weight: 5 is out of range (allowed: -253..0)",
                file + ":5: rise: 0 is out of range (allowed: 1..100)"});
}

TEST_CASE("config: an instance naming an unknown check") {
    TempDir dir;
    const auto file = dir.path("failoverd.conf");
    const std::string text = std::string(kInstance) +
                             "checks = containers, contaners\n"
                             "[check.containers]\ntype = docker\nexpect = 10\n";
    CHECK(errors_of(text, file) ==
          Lines{file + ":3: checks: unknown check 'contaners'; did you mean containers? (allowed: "
                       "containers)"});
    CHECK(errors_of(std::string(kInstance) + "checks = web\n", file) ==
          Lines{file + ":3: checks: unknown check 'web' (allowed: no [check.NAME] section is "
                       "defined)"});
}

TEST_CASE("config: the same reserved IP in two instances") {
    TempDir dir;
    const auto file = dir.path("failoverd.conf");
    const std::string text =
        "[instance.a]\nreserved_ip = 203.0.113.10\n\n[instance.b]\npriority = 50\n"
        "reserved_ip = 203.0.113.10\n";
    CHECK(errors_of(text, file) ==
          Lines{file + ":6: reserved_ip: 203.0.113.10 is already used by [instance.a] at line 2 "
                       "(allowed: each reserved IP in one instance)"});
}

TEST_CASE("config: a secret file readable by group or others") {
    TempDir dir;
    const auto file = dir.path("failoverd.conf");
    const auto key = dir.write("auth.key", "0123456789abcdef", 0644);
    const std::string text = "[cluster]\npeer = 10.0.0.2:5405\nauth_key_file = auth.key\n";
    CHECK(errors_of(text, file) ==
          Lines{file + ":3: auth_key_file: " + key +
                " has mode 0644, open to group or others; chmod 600 it (allowed: a regular "
                "file with mode 0600 or stricter)"});

    REQUIRE(chmod(key.c_str(), 0640) == 0);
    CHECK(errors_of(text, file).size() == 1);
    REQUIRE(chmod(key.c_str(), 0600) == 0);
    CHECK(errors_of(text, file).empty());
    REQUIRE(chmod(key.c_str(), 0400) == 0);
    CHECK(errors_of(text, file).empty());

    SUBCASE("not checked without peers") {
        REQUIRE(chmod(key.c_str(), 0644) == 0);
        CHECK(errors_of("[cluster]\nauth_key_file = auth.key\n", file).empty());
    }
    SUBCASE("the default path, reported at the section line") {
        CHECK(errors_of("\n[cluster]\npeer = 10.0.0.2:5405\n", file) ==
              Lines{file + ":2: auth_key_file: /etc/failoverd/auth.key does not exist (allowed: a "
                           "regular file with mode 0600 or stricter)"});
    }
    SUBCASE("empty, or a directory") {
        dir.write("empty.key", "", 0600);
        CHECK(errors_of("[cluster]\npeer = 10.0.0.2:5405\nauth_key_file = empty.key\n", file) ==
              Lines{file + ":3: auth_key_file: " + dir.path("empty.key") +
                    " is empty (allowed: a regular file with mode 0600 or stricter)"});
        std::filesystem::create_directory(dir.path("keys"));
        CHECK(errors_of("[cluster]\npeer = 10.0.0.2:5405\nauth_key_file = keys\n", file) ==
              Lines{file + ":3: auth_key_file: " + dir.path("keys") +
                    " is not a regular file (allowed: a regular file with mode 0600 or "
                    "stricter)"});
    }
}

TEST_CASE("config: a token file is checked only for the digitalocean provider") {
    TempDir dir;
    const auto file = dir.path("failoverd.conf");
    const auto token = dir.write("do-token", "dop_v1_secret", 0604);
    const ScopedEnv no_credentials("CREDENTIALS_DIRECTORY", nullptr);
    const auto errors = errors_of("[provider]\ntype = digitalocean\ntoken_file = do-token\n", file);
    CHECK(errors == Lines{file + ":3: token_file: " + token +
                          " has mode 0604, open to group or others; chmod 600 it (allowed: a "
                          "regular file with mode 0600 or stricter)"});
    CHECK(errors.front().find("dop_v1_secret") == std::string::npos);
    CHECK(errors_of("[provider]\ntype = digitalocean\n", file) ==
          Lines{file +
                ":1: token_file: missing in [provider], required for type = digitalocean unless "
                "systemd passes LoadCredential=do-token:PATH (allowed: a regular file with mode "
                "0600 or stricter)"});

    SUBCASE("systemd's credential stands in for token_file") {
        dir.write("credentials/do-token", "dop_v1_secret", 0400);
        const ScopedEnv credentials("CREDENTIALS_DIRECTORY", dir.path("credentials").c_str());
        const auto config = parse_config("[provider]\ntype = digitalocean\n", file);
        CHECK(config.provider.token_file == dir.path("credentials/do-token"));
    }
    SUBCASE("checks scope does not need the token") {
        CHECK(errors_of("[provider]\ntype = digitalocean\n", file, ConfigScope::Checks).empty());
    }
}

TEST_CASE("config: a hook whose program is missing") {
    TempDir dir;
    const auto file = dir.path("failoverd.conf");
    const std::string allowed = " (allowed: a command line whose program is an executable file)";
    CHECK(errors_of(std::string(kInstance) + "notify_master = master.sh\n", file) ==
          Lines{file + ":3: notify_master: 'master.sh' is not in PATH" + allowed});
    CHECK(errors_of(std::string(kInstance) + "notify_backup = ./hooks/backup.sh arg\n", file) ==
          Lines{file + ":3: notify_backup: " + dir.path("hooks/backup.sh") + " does not exist" +
                allowed});
    CHECK(errors_of(std::string(kInstance) + "notify = /nonexistent/notify\n", file) ==
          Lines{file + ":3: notify: /nonexistent/notify does not exist" + allowed});
    CHECK(errors_of(std::string(kInstance) + "notify_stop = /nonexistent/stop\n", file,
                    ConfigScope::Checks)
              .empty());
}

TEST_CASE("config: a hook that is not executable") {
    TempDir dir;
    const auto file = dir.path("failoverd.conf");
    const auto script = dir.write("master.sh", "#!/bin/sh\nexit 0\n", 0644);
    CHECK(errors_of(std::string(kInstance) + "notify_master = master.sh\n", file) ==
          Lines{file + ":3: notify_master: 'master.sh' is not in PATH (allowed: a command line "
                       "whose program is an executable file)"});
    CHECK(errors_of(std::string(kInstance) + "notify_master = ./master.sh --now\n", file) ==
          Lines{file + ":3: notify_master: " + script +
                " is not executable, mode 0644 (allowed: a command line whose program is an "
                "executable file)"});
    std::filesystem::create_directory(dir.path("hooks"));
    CHECK(errors_of(std::string(kInstance) + "notify_fault = hooks\n", file) ==
          Lines{file + ":3: notify_fault: 'hooks' is not in PATH (allowed: a command line whose "
                       "program is an executable file)"});
    CHECK(errors_of(std::string(kInstance) + "notify_fault = ./hooks\n", file) ==
          Lines{file + ":3: notify_fault: " + dir.path("hooks") +
                " is not a regular file (allowed: a command line whose program is an executable "
                "file)"});
    REQUIRE(chmod(script.c_str(), 0755) == 0);
    const auto config =
        parse_config(std::string(kInstance) + "notify_master = ./master.sh --now\n", file);
    CHECK(config.instances.at(0).notify_master == std::vector<std::string>{script, "--now"});
}

TEST_CASE("config: hook_cleanup is process-group by default, or none") {
    TempDir dir;
    const auto file = dir.path("failoverd.conf");
    CHECK(parse_config(kInstance, file).instances.at(0).hook_cleanup ==
          ProcessCleanup::ProcessGroup);
    CHECK(parse_config(std::string(kInstance) + "hook_cleanup = none\n", file)
              .instances.at(0)
              .hook_cleanup == ProcessCleanup::None);
    CHECK(parse_config(std::string(kInstance) + "hook_cleanup = process-group\n", file)
              .instances.at(0)
              .hook_cleanup == ProcessCleanup::ProcessGroup);
    CHECK(errors_of(std::string(kInstance) + "hook_cleanup = process_group\n", file) ==
          Lines{file + ":3: hook_cleanup: 'process_group' is not a hook cleanup; did you mean "
                       "process-group? (allowed: process-group, none)"});
}

TEST_CASE("config: a key that does not belong to the check's type") {
    TempDir dir;
    const auto file = dir.path("failoverd.conf");
    CHECK(errors_of("[check.c]\ntype = docker\nexpect = 10\nurl = http://localhost/\n", file) ==
          Lines{file +
                ":4: url: not valid for type = docker (allowed: type, interval, timeout, rise, "
                "fall, weight, socket, label, name, expect, min, require_healthy, events)"});
    CHECK(errors_of("[check.c]\ncommand = /bin/true\ntype = tcp\ntarget = a:1\n", file) ==
          Lines{file +
                ":2: command: not valid for type = tcp (allowed: type, interval, timeout, rise, "
                "fall, weight, target)"});
    CHECK(errors_of("[provider]\ntoken_file = /x\n", file) ==
          Lines{file + ":2: token_file: not valid for type = none (allowed: type, request_timeout, "
                       "reconcile_interval)"});
}

TEST_CASE("config: a required key is missing, reported at the section's line") {
    TempDir dir;
    const auto file = dir.path("failoverd.conf");
    CHECK(errors_of("\n[check.web]\ntype = http\ninterval = 5s\n", file) ==
          Lines{file +
                ":2: url: missing in [check.web], required for type = http (allowed: an http:// "
                "or https:// URL)"});
    CHECK(errors_of("[check.web]\ninterval = 5s\n", file) ==
          Lines{file + ":1: type: missing in [check.web] (allowed: docker, http, tcp, exec)"});
    CHECK(errors_of("[check.c]\ntype = docker\n", file) ==
          Lines{file +
                ":1: expect: missing in [check.c], a docker check needs expect or min (allowed: "
                "1..10000)"});
    CHECK(errors_of("[check.c]\ntype = tcp\n", file) ==
          Lines{file +
                ":1: target: missing in [check.c], required for type = tcp (allowed: HOST:PORT "
                "or [IPv6]:PORT)"});
    CHECK(errors_of("[check.c]\ntype = exec\n", file) ==
          Lines{file +
                ":1: command: missing in [check.c], required for type = exec (allowed: a command "
                "line whose program is an executable file)"});
    CHECK(errors_of("[instance.a]\npriority = 100\n", file) ==
          Lines{file + ":1: reserved_ip: missing in [instance.a] (allowed: an IPv4 address such as "
                       "203.0.113.10)"});
    CHECK(errors_of("[provider]\ntype = exec\n", file, ConfigScope::Checks) ==
          Lines{file + ":1: command: missing in [provider], required for type = exec (allowed: a "
                       "command line whose program is an executable file)"});
}

TEST_CASE("config: several errors are collected and sorted by line") {
    TempDir dir;
    const auto file = dir.path("failoverd.conf");
    const std::string text =
        "[node]\n"                       // 1
        "listen = 10.0.0.1\n"            // 2
        "[instance.web]\n"               // 3
        "reserved_ip = 203.0.113.300\n"  // 4
        "priority = 300\n"               // 5
        "priority = 100\n"               // 6
        "checks = nope\n"                // 7
        "preempt = maybe\n"              // 8
        "junk\n"                         // 9
        "[check.c]\n"                    // 10
        "type = dockr\n"                 // 11
        "[check.d]\n"                    // 12
        "type = docker\n"                // 13
        "expect = 3\n"                   // 14
        "min = 2\n"                      // 15
        "timeout = 3s\n"                 // 16
        "name = ([a-z]\n";               // 17
    CHECK(errors_of(text, file) ==
          Lines{
              file + ":2: listen: not an address:port: '10.0.0.1' (allowed: IPv4:PORT or "
                     "[IPv6]:PORT, an address of this host)",
              file + ":4: reserved_ip: '203.0.113.300' is not an IPv4 address (allowed: an "
                     "IPv4 address such as 203.0.113.10)",
              file + ":5: priority: 300 is out of range (allowed: 1..254)",
              file + ":6: priority: repeated key, first set at line 5 (allowed: once per "
                     "section)",
              file + ":7: checks: unknown check 'nope' (allowed: c, d)",
              file + ":8: preempt: not a boolean: 'maybe' (allowed: yes, no, true, false, on, "
                     "off, 1, 0)",
              file + ":9: 'junk': expected 'key = value' (allowed: [section], key = value, # "
                     "comment)",
              file + ":11: type: 'dockr' is not a check type; did you mean docker? (allowed: "
                     "docker, http, tcp, exec)",
              file + ":15: min: cannot be combined with expect at line 14 (allowed: expect = N "
                     "for exactly N running, or min = N for at least N)",
              file + ":16: timeout: 3s is longer than the default interval 2.00 s (allowed: "
                     "10ms..1h and at most interval)",
              file + ":17: name: '([a-z]' is not a valid regular expression: " +
                  [] {
                      try {
                          std::regex bad("([a-z]");
                      } catch (const std::regex_error& e) {
                          return std::string(e.what());
                      }
                      return std::string();
                  }() +
                  " (allowed: an ECMAScript regular expression matched against names)",
          });
}

TEST_CASE("config: repeated keys and sections") {
    TempDir dir;
    const auto file = dir.path("failoverd.conf");
    CHECK(errors_of("[node]\nname = a\n[cluster]\n[node]\nname = b\nname = c\n", file) ==
          Lines{file + ":4: [node]: repeated section, first at line 1 (allowed: once per file)",
                file + ":6: name: repeated key, first set at line 5 (allowed: once per section)"});
    CHECK(errors_of("[check.a]\ntype = tcp\ntarget = a:1\n[check.a]\ntype = tcp\n", file) ==
          Lines{file + ":4: [check.a]: repeated section, first at line 1 (allowed: once per "
                       "file)"});
    CHECK(errors_of("[cluster]\npeer = 10.0.0.2:5405\npeer = 10.0.0.2:5405\n", file,
                    ConfigScope::Checks) ==
          Lines{file +
                ":3: peer: 10.0.0.2:5405 is listed twice, first at line 2 (allowed: IPv4:PORT or "
                "[IPv6]:PORT, one peer per line)"});
    CHECK(errors_of("name = x\n", file) ==
          Lines{file + ":1: name: key outside any section (allowed: after a [section] header)"});
}

TEST_CASE("config: comments: a full line, or from a # or ; after a blank; \\# keeps one") {
    TempDir dir;
    const auto file = dir.path("failoverd.conf");
    const std::string text =
        "\xEF\xBB\xBF# comment\r\n"
        "  ; another\r\n"
        "[check.web]   # the web check\r\n"
        "type = http\t; http\r\n"
        "url = http://127.0.0.1/x;y#z  # fragment and ';' kept: no blank before them\r\n"
        "body_contains = a \\# b \\; c # but not this\r\n"
        "[check.script]\n"
        "  type=exec  \n"
        "command = /bin/echo ' \\#' \\# done # a comment\n"
        "[check.docker]\n"
        "type = docker\n"
        "label = com.docker.compose.project=minitwit  # our stack\n"
        "expect = 1 # one\n";
    const auto config = parse_config(text, file);
    REQUIRE(config.checks.size() == 3);
    CHECK(config.checks[0].url == "http://127.0.0.1/x;y#z");
    CHECK(config.checks[0].body_contains == "a # b ; c");
    CHECK(config.checks[1].command == std::vector<std::string>{"/bin/echo", " #", "#", "done"});
    CHECK(config.checks[2].docker_labels ==
          std::vector<std::string>{"com.docker.compose.project=minitwit"});
    CHECK(config.checks[2].expect == 1);

    // A comment never hides silently inside quotes: the quote is left open and reported.
    const auto errors = errors_of("[check.x]\ntype = exec\ncommand = sh -c 'echo a # b'\n", file);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].find(":3: command: not a command line (unbalanced quote") != std::string::npos);
    CHECK(errors_of("[instance.web]\nreserved_ip = # none yet\n", file) ==
          Lines{file + ":2: reserved_ip: missing value (allowed: an IPv4 address such as "
                       "203.0.113.10)"});
}

TEST_CASE("config: booleans and the check timeout default") {
    TempDir dir;
    const auto file = dir.path("failoverd.conf");
    for (const char* yes : {"yes", "true", "on", "1", "YES", "True"}) {
        CAPTURE(yes);
        const auto config = parse_config(std::string(kInstance) +
                                             "preempt = no\n[check.c]\ntype = docker\n"
                                             "min = 1\nrequire_healthy = " +
                                             yes + "\n",
                                         file);
        CHECK(config.checks.at(0).require_healthy);
        CHECK_FALSE(config.instances.at(0).preempt);
    }
    for (const char* no : {"no", "false", "off", "0"}) {
        CAPTURE(no);
        const auto config = parse_config(
            std::string("[check.c]\ntype = docker\nmin = 1\nrequire_healthy = ") + no + "\n", file);
        CHECK_FALSE(config.checks.at(0).require_healthy);
    }
    const auto config =
        parse_config("[check.fast]\ntype = tcp\ntarget = a:1\ninterval = 500ms\n", file);
    CHECK(config.checks.at(0).timeout == 500ms);
    CHECK(parse_config("[check.c]\ntype = tcp\ntarget = a:1\ninterval = 2s\ntimeout = 2s\n", file)
              .checks.at(0)
              .timeout == 2s);
}

TEST_CASE("config: cross-section rules") {
    TempDir dir;
    const auto file = dir.path("failoverd.conf");
    CHECK(errors_of("[cluster]\npeers_from_tag = web\n", file, ConfigScope::Checks) ==
          Lines{file +
                ":2: peers_from_tag: needs [provider] type = digitalocean, which lists the "
                "tagged droplets (allowed: a DigitalOcean tag: up to 255 letters, digits, ':', "
                "'-' or '_')"});
    CHECK(errors_of("[node]\nlisten = example.com:5405\ncontrol_socket = /" +
                        std::string(120, 'x') + "\n",
                    file) ==
          Lines{file + ":2: listen: 'example.com' is not an IP address (allowed: IPv4:PORT or "
                       "[IPv6]:PORT, an address of this host)",
                file + ":3: control_socket: /" + std::string(120, 'x') +
                    " is 121 bytes long (allowed: a unix socket path of at most 107 bytes)"});
    CHECK(errors_of("[provider]\ntype = exec\ncommand = 'unbalanced\n", file) ==
          Lines{file +
                ":3: command: not a command line (unbalanced quote or trailing backslash): "
                "''unbalanced' (allowed: a command line whose program is an executable file)"});
}

TEST_CASE("config: a valid file and its summary") {
    TempDir dir;
    const auto file = dir.path("failoverd.conf");
    CHECK(parse_config("[node]\n", file).summary().find(file + ": OK: node ") == 0);
    const auto config = parse_config(
        "[node]\nname = web-1\n[check.a]\ntype = tcp\ntarget = a:1\n"
        "[check.b]\ntype = docker\nexpect = 10\n"
        "[instance.one]\nreserved_ip = 203.0.113.10\n[instance.two]\nreserved_ip = 203.0.113.11\n",
        file);
    CHECK(config.summary() ==
          file +
              ": OK: node web-1, 0 peers, 2 instances (203.0.113.10, 203.0.113.11), 2 checks, "
              "provider none");
    CHECK(config.find_check("b")->expect == 10);
    CHECK(config.find_check("c") == nullptr);
    CHECK(config.find_instance("two")->reserved_ip == "203.0.113.11");
    CHECK(config.find_instance("three") == nullptr);
}

TEST_CASE("config: load_config reports a file it cannot read") {
    TempDir dir;
    const auto file = dir.path("absent.conf");
    try {
        load_config(file);
        FAIL("no error");
    } catch (const ConfigErrors& e) {
        REQUIRE(e.errors().size() == 1);
        CHECK(e.errors()[0].to_string() == file + ": cannot read: No such file or directory");
    }
}

TEST_CASE("config: the full fixture round-trips into the model") {
    TempDir dir;
    const auto file = dir.write(
        "failoverd.conf", read_file(std::string(FAILOVERD_FIXTURES) + "/config/full.conf"), 0644);
    dir.write("auth.key", "0123456789abcdef0123456789abcdef", 0600);
    dir.write("do-token", "dop_v1_secret", 0600);
    dir.write("hooks/ca.pem", "-----BEGIN CERTIFICATE-----\n", 0644);
    dir.write("hooks/check.sh", "#!/bin/sh\nexit 0\n", 0755);
    dir.write("hooks/master.sh", "#!/bin/sh\nexit 0\n", 0755);
    const ScopedEnv no_credentials("CREDENTIALS_DIRECTORY", nullptr);

    const Config config = load_config(file);
    CHECK(config.path == file);
    CHECK(config.node.name == "web-1");
    CHECK(config.node.listen.host == "::");
    CHECK(config.node.listen.port == 5406);
    CHECK(config.node.listen.line == 5);
    CHECK(config.node.control_socket == dir.path("run/control.sock"));
    CHECK(config.node.state_dir == "/var/lib/failoverd-test");

    REQUIRE(config.cluster.peers.size() == 2);
    CHECK(config.cluster.peers[0].to_string() == "10.114.0.5:5405");
    CHECK(config.cluster.peers[0].line == 10);
    CHECK(config.cluster.peers[1].to_string() == "[fd00::5]:5405");
    CHECK(config.cluster.peers[1].line == 11);
    CHECK(config.cluster.peers_from_tag == "failoverd:web");
    CHECK(config.cluster.auth_key_file == dir.path("auth.key"));
    CHECK(config.cluster.advert_interval == 250ms);

    CHECK(config.provider.type == ProviderType::DigitalOcean);
    CHECK(config.provider.token_file == dir.path("do-token"));
    CHECK(config.provider.droplet_id == "123456789");
    CHECK(config.provider.api_base_url == "http://127.0.0.1:8080");
    CHECK(config.provider.metadata_base_url == "http://127.0.0.1:8081");
    CHECK(config.provider.ca_file == dir.path("hooks/ca.pem"));
    CHECK(config.provider.request_timeout == 2500ms);
    CHECK(config.provider.reconcile_interval == 90s);

    REQUIRE(config.checks.size() == 4);
    const auto& docker = config.checks[0];
    CHECK(docker.name == "containers");
    CHECK(docker.type == CheckType::Docker);
    CHECK(docker.line == 26);
    CHECK(docker.interval == 5s);
    CHECK(docker.timeout == 3s);
    CHECK(docker.rise == 3);
    CHECK(docker.fall == 1);
    CHECK(docker.weight == -50);
    CHECK(docker.docker_socket == dir.path("docker.sock"));
    CHECK(docker.docker_labels ==
          std::vector<std::string>{"com.docker.compose.project=minitwit", "tier"});
    CHECK(docker.docker_name_pattern == "^minitwit-(web|api)-[0-9]+$");
    CHECK_FALSE(docker.expect.has_value());
    CHECK(docker.min == 8);
    CHECK_FALSE(docker.require_healthy);

    const auto& http = config.checks[1];
    CHECK(http.type == CheckType::Http);
    CHECK(http.interval == 500ms);
    CHECK(http.timeout == 500ms);
    CHECK(http.url == "https://127.0.0.1:8443/health?full=1#section");
    CHECK(http.expected_status == std::vector<int>{200, 204, 301});
    CHECK(http.body_contains == "\"status\": \"ok\" # not a comment");
    CHECK_FALSE(http.tls_verify);

    const auto& tcp = config.checks[2];
    CHECK(tcp.type == CheckType::Tcp);
    CHECK(tcp.target.to_string() == "db.internal:5432");
    CHECK(tcp.interval == 2s);
    CHECK(tcp.timeout == 1s);
    CHECK(tcp.rise == 2);
    CHECK(tcp.fall == 2);
    CHECK(tcp.weight == 0);
    CHECK(tcp.expected_status == std::vector<int>{200});

    const auto& exec = config.checks[3];
    CHECK(exec.type == CheckType::Exec);
    CHECK(exec.command == std::vector<std::string>{dir.path("hooks/check.sh"), "--label",
                                                   "two words", "a \"quoted\" arg", "#", "kept"});

    // One instance: a DigitalOcean droplet holds one reserved IPv4.
    REQUIRE(config.instances.size() == 1);
    const auto& web = config.instances[0];
    CHECK(web.name == "minitwit");
    CHECK(web.line == 56);
    CHECK(web.reserved_ip == "203.0.113.10");
    CHECK(web.priority == 254);
    CHECK_FALSE(web.preempt);
    CHECK(web.preempt_delay == 1500ms);
    CHECK(web.effective_advert_interval(config.cluster) == 2s);
    CHECK(web.checks == std::vector<std::string>{"containers", "web", "db"});
    CHECK(web.notify_master ==
          std::vector<std::string>{dir.path("hooks/master.sh"), "--instance", "minitwit"});
    CHECK(web.notify_backup == std::vector<std::string>{"/bin/true"});
    CHECK(web.notify_fault == std::vector<std::string>{"true"});
    CHECK(web.notify_stop == std::vector<std::string>{dir.path("hooks/master.sh"), "stop"});
    CHECK(web.notify ==
          std::vector<std::string>{"sh", "-c", "logger -t failoverd \"$*\"", "failoverd"});
    CHECK(config.summary() == file +
                                  ": OK: node web-1, 2 peers + tag failoverd:web, 1 instance "
                                  "(203.0.113.10), 4 checks, provider digitalocean");
}

TEST_CASE("config: the shipped example passes") {
    const std::string path = std::string(FAILOVERD_SOURCE_DIR) + "/etc/failoverd.conf";
    const Config config = load_config(path);
    REQUIRE(config.checks.size() == 1);
    CHECK(config.checks[0].name == "containers");
    CHECK(config.checks[0].type == CheckType::Docker);
    CHECK(config.checks[0].expect == 10);
    REQUIRE(config.instances.size() == 1);
    CHECK(config.instances[0].reserved_ip == "203.0.113.10");
    CHECK(config.instances[0].checks == std::vector<std::string>{"containers"});
    CHECK(config.provider.type == ProviderType::None);
}

TEST_CASE("config: escape_text makes control bytes and invalid UTF-8 visible, and cuts") {
    CHECK(escape_text("plain text, café") == "plain text, café");
    CHECK(escape_text("\x1b]0;title\x07\x1b[2J") == "\\x1b]0;title\\x07\\x1b[2J");
    CHECK(escape_text(std::string("a\0b", 3)) == "a\\x00b");
    CHECK(escape_text("tab\tnl\ncr\r\x7f") == "tab\\x09nl\\x0acr\\x0d\\x7f");
    CHECK(escape_text("\xff\xfe ok \xc3") == "\\xff\\xfe ok \\xc3");
    CHECK(escape_text("\xc2\x9b"
                      "31m") == "\\u009b31m");  // C1 CSI
    CHECK(escape_text("\xe2\x80\xae"
                      "txt") == "\\u202etxt");       // right-to-left override
    CHECK(escape_text("\xc0\xaf") == "\\xc0\\xaf");  // overlong '/'
    CHECK(escape_text(std::string(100, 'x'), 10) == std::string(10, 'x') + "...");
    CHECK(ConfigError{"f\x1b.conf", 2, "k\x01", "v\xff"}.to_string() ==
          "f\\x1b.conf:2: k\\x01: v\\xff");
}

TEST_CASE("config: errors are kept up to a bound and reported with a count of the rest") {
    TempDir dir;
    const auto file = dir.path("failoverd.conf");
    std::string text = "[node]\n";
    for (int i = 0; i < 1000; ++i) {
        text += "bogus" + std::to_string(i) + " = 1\n";
    }
    try {
        parse_config(text, file);
        FAIL("no error");
    } catch (const ConfigErrors& e) {
        CHECK(e.total() == 1000);
        CHECK(e.errors().size() == kMaxConfigErrorsKept);
        const auto report = e.report();
        REQUIRE(report.size() == kMaxConfigErrorsShown + 1);
        CHECK(report.back() == "... and 980 more errors");
    }
    const ConfigErrors one({{"a", 1, "k", "x"}});
    CHECK(one.report() == Lines{"a:1: k: x"});
}

TEST_CASE("config: a NUL byte, a very long line, an empty file") {
    TempDir dir;
    const auto file = dir.path("failoverd.conf");
    CHECK(errors_of(std::string("[instance.web]\nreserved_ip = 203.0.113.10\0 junk\n", 47), file) ==
          Lines{file + ":2: reserved_ip: a NUL byte in the value, at byte 13 (allowed: text "
                       "without NUL bytes)"});
    const auto long_line = errors_of("[node]\nname = " + std::string(5000, 'a') + "\n", file);
    REQUIRE(long_line.size() == 1);
    CHECK(long_line[0].find(":2: 'name = aaaa") != std::string::npos);
    CHECK(long_line[0].find("the line is 5007 bytes long, over 4096") != std::string::npos);
    for (const char* empty : {"", "\n\n", "# only a comment\n; another\n"}) {
        CHECK(errors_of(empty, file) ==
              Lines{file + ": holds no settings (allowed: [node], [cluster], [provider], "
                           "[check.NAME] and [instance.NAME] sections; see failoverd.conf(5))"});
    }
}

TEST_CASE("config: load_config refuses what is not a small regular file, without blocking") {
    TempDir dir;
    const auto error_of = [](const std::string& path) -> std::string {
        try {
            load_config(path);
        } catch (const ConfigErrors& e) {
            REQUIRE(e.errors().size() == 1);
            return e.errors()[0].to_string();
        }
        return "";
    };
    const std::string allowed = " (allowed: a regular file of at most 1048576 bytes)";
    const auto fifo = dir.path("fifo.conf");
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    CHECK(error_of(fifo) == fifo + ": is a FIFO, not a regular file" + allowed);
    CHECK(error_of("/dev/null") ==
          "/dev/null: is a character device, not a regular file" + allowed);
    std::filesystem::create_directory(dir.path("conf.d"));
    CHECK(error_of(dir.path("conf.d")) ==
          dir.path("conf.d") + ": is a directory, not a regular file" + allowed);
    const auto big = dir.write("big.conf", std::string(kMaxConfigBytes + 1, '#'), 0644);
    CHECK(error_of(big) == big + ": is 1048577 bytes, over the limit of 1048576" + allowed);
    const auto empty = dir.write("empty.conf", "", 0644);
    CHECK(error_of(empty) == empty +
                                 ": holds no settings (allowed: [node], [cluster], "
                                 "[provider], [check.NAME] and [instance.NAME] sections; "
                                 "see failoverd.conf(5))");
}

TEST_CASE("config: an auth key shorter than 16 bytes, read as the daemon reads it") {
    TempDir dir;
    const auto file = dir.path("failoverd.conf");
    const auto key = dir.write("auth.key", "s3cret!\n", 0600);
    const std::string expected =
        file + ":3: auth_key_file: " + key +
        " holds 8 bytes, too short for the advert key; keepalived's auth_pass (at most 8 "
        "characters) cannot be reused here: make a new key with head -c 32 /dev/urandom > " +
        key +
        " and copy it to every node (allowed: a regular file with mode 0600 or stricter, "
        "at least 16 bytes)";
    CHECK(errors_of("[cluster]\npeer = 10.0.0.2:5405\nauth_key_file = auth.key\n", file) ==
          Lines{expected});
    // Without peers the daemon still reads the key when the file is there.
    CHECK(errors_of("[cluster]\n\nauth_key_file = auth.key\n", file) == Lines{expected});
    CHECK(errors_of("[cluster]\n\nauth_key_file = auth.key\n", file, ConfigScope::Checks).empty());
    dir.write("auth.key", "0123456789abcdef", 0600);
    CHECK(errors_of("[cluster]\npeer = 10.0.0.2:5405\nauth_key_file = auth.key\n", file).empty());
    CHECK(errors_of("[cluster]\nauth_key_file = absent.key\n", file).empty());
}

TEST_CASE("config: peers that cannot be another node") {
    TempDir dir;
    const auto file = dir.path("failoverd.conf");
    dir.write("auth.key", "0123456789abcdef", 0600);
    const auto errors = [&](const std::string& listen, const std::string& peer) {
        return errors_of("[node]\nlisten = " + listen + "\n[cluster]\nauth_key_file = auth.key\n" +
                             "peer = " + peer + "\n[instance.web]\nreserved_ip = 203.0.113.10\n",
                         file);
    };
    const auto one = [&](const std::string& listen, const std::string& peer,
                         const std::string& fragment) {
        CAPTURE(listen);
        CAPTURE(peer);
        const auto e = errors(listen, peer);
        REQUIRE(e.size() == 1);
        CHECK(e[0].find(":5: peer: ") != std::string::npos);
        CHECK(e[0].find(fragment) != std::string::npos);
    };
    one("10.0.0.1:5405", "10.0.0.1:5405", "is this node's own listen address");
    one("10.0.0.1:5405", "[fd00::2]:5405", "is IPv6 but [node] listen 10.0.0.1:5405 is IPv4");
    one("[fd00::1]:5405", "10.0.0.2:5405", "is IPv4 but [node] listen [fd00::1]:5405 is IPv6");
    one("10.0.0.1:5405", "224.0.0.18:5405", "is a multicast address");
    one("[fd00::1]:5405", "[ff02::12]:5405", "is a multicast address");
    one("10.0.0.1:5405", "255.255.255.255:5405", "is the broadcast address");
    one("10.0.0.1:5405", "127.0.0.1:5406", "is a loopback address");
    one("[fd00::1]:5405", "[::1]:5406", "is a loopback address");
    one("10.0.0.1:5405", "0.0.0.0:5405", "is in 0.0.0.0/8");
    one("10.0.0.1:5405", "240.0.0.1:5405", "is in the reserved block 240.0.0.0/4");
    one("10.0.0.1:5405", "203.0.113.10:5405", "is the reserved IP of [instance.web]");
    CHECK(errors("[::]:5405", "10.0.0.2:5405").empty());
    CHECK(errors("0.0.0.0:5405", "10.0.0.2:5405").empty());
    CHECK(errors("127.0.0.1:5405", "127.0.0.1:5406").empty());  // two daemons on one host
    CHECK(errors_of("[instance.web]\nreserved_ip = 224.0.0.1\n", file).size() == 1);
}

TEST_CASE("config: what cannot work as a command, a docker socket or a second DO instance") {
    TempDir dir;
    const auto file = dir.path("failoverd.conf");
    const auto first = [&](const std::string& text) {
        const auto e = errors_of(text, file);
        return e.empty() ? std::string() : e[0];
    };
    CHECK(first("[check.c]\ntype = exec\ncommand = docker ps -q | wc -l\n")
              .find(":3: command: '|' is a shell operator, but commands run without a shell; "
                    "write sh -c '...' to use one") != std::string::npos);
    CHECK(first("[check.c]\ntype = exec\ncommand = /bin/true >/dev/null\n")
              .find("'>/dev/null' is a shell operator") != std::string::npos);
    CHECK(first("[instance.web]\nreserved_ip = 203.0.113.10\nnotify_master = /bin/true && x\n")
              .find(":3: notify_master: '&&' is a shell operator") != std::string::npos);
    CHECK(first("[provider]\ntype = exec\ncommand = /bin/true 2>&1\n")
              .find(":3: command: '2>&1' is a shell operator") != std::string::npos);
    CHECK(errors_of("[check.c]\ntype = exec\ncommand = sh -c 'docker ps -q | wc -l'\n", file)
              .empty());
    CHECK(errors_of("[check.c]\ntype = exec\ncommand = /bin/echo '|' \"&&\" \\>\n", file).empty());
    CHECK(shell_operator_word("find . -exec rm {} ;") == std::nullopt);

    CHECK(first("[check.d]\ntype = docker\nexpect = 1\nsocket = tcp://10.0.0.5:2375\n")
              .find(":4: socket: 'tcp://10.0.0.5:2375': only a local unix socket is supported") !=
          std::string::npos);
    const auto config = parse_config(
        "[check.d]\ntype = docker\nexpect = 1\nsocket = unix:///run/docker.sock\n", file);
    CHECK(config.checks[0].docker_socket == "/run/docker.sock");

    ScopedEnv credentials("CREDENTIALS_DIRECTORY", nullptr);
    dir.write("token", "dop_v1_x", 0600);
    const auto e = errors_of(
        "[provider]\ntype = digitalocean\ntoken_file = token\n"
        "[instance.a]\nreserved_ip = 203.0.113.10\n[instance.b]\nreserved_ip = 203.0.113.11\n",
        file);
    REQUIRE(e.size() == 1);
    CHECK(e[0].find(":6: [instance.b]: a second instance, but a DigitalOcean droplet holds one "
                    "reserved IPv4 at a time and [instance.a] at line 4 already uses it") !=
          std::string::npos);
}
