// Loads failoverd.conf. Our reader numbers the lines; Boost.Program_options declares each
// section's keys and types each value, one line at a time; the rules below check ranges and
// cross-key constraints with those line numbers. Every problem is collected, then thrown.
#include "daemon/config.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <type_traits>

#include "daemon/config_reader.hpp"

namespace failoverd {

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace {

using namespace std::chrono_literals;

// Boost types each value into one of these; the validate() overloads below are found by
// argument-dependent lookup and reject malformed text before any setter runs.
struct DurationValue {
    Duration value{};
};
struct EndpointValue {
    Endpoint value;
};
struct CommandValue {
    std::vector<std::string> argv;
};

void validate(boost::any& v, const std::vector<std::string>& tokens, DurationValue*, int) {
    const std::string& text = po::validators::get_single_string(tokens);
    const auto parsed = parse_duration(text);
    if (!parsed) {
        throw po::invalid_option_value(text);
    }
    v = DurationValue{*parsed};
}

void validate(boost::any& v, const std::vector<std::string>& tokens, EndpointValue*, int) {
    const std::string& text = po::validators::get_single_string(tokens);
    const auto parsed = parse_endpoint(text);
    if (!parsed) {
        throw po::invalid_option_value(text);
    }
    v = EndpointValue{*parsed};
}

void validate(boost::any& v, const std::vector<std::string>& tokens, CommandValue*, int) {
    const std::string& text = po::validators::get_single_string(tokens);
    const auto parsed = split_command(text);
    if (!parsed) {
        throw po::invalid_option_value(text);
    }
    v = CommandValue{*parsed};
}

// How a value Boost could not convert is described, by the type it was asked for.
template <class T>
const char* malformed_noun() {
    if constexpr (std::is_same_v<T, int>) {
        return "not a whole number";
    } else if constexpr (std::is_same_v<T, bool>) {
        return "not a boolean";
    } else if constexpr (std::is_same_v<T, DurationValue>) {
        return "not a duration";
    } else if constexpr (std::is_same_v<T, EndpointValue>) {
        return "not an address:port";
    } else if constexpr (std::is_same_v<T, CommandValue>) {
        return "not a command line (unbalanced quote or trailing backslash)";
    } else {
        return "not valid";
    }
}

constexpr const char* kBoolAllowed = "yes, no, true, false, on, off, 1, 0";
constexpr const char* kCommandAllowed = "a command line whose program is an executable file";
constexpr const char* kSecretAllowed = "a regular file with mode 0600 or stricter";
constexpr const char* kAdvertAllowed = "10ms..40.95s in steps of 10ms";
constexpr std::size_t kUnixPathMax = 107;  // sizeof(sockaddr_un::sun_path) - 1

std::string join(const std::vector<std::string>& items, const char* separator = ", ") {
    std::string out;
    for (const auto& item : items) {
        out += (out.empty() ? "" : separator) + item;
    }
    return out;
}

std::string trim(const std::string& s) {
    const auto first = s.find_first_not_of(" \t");
    if (first == std::string::npos) {
        return {};
    }
    return s.substr(first, s.find_last_not_of(" \t") - first + 1);
}

std::vector<std::string> split_list(const std::string& text) {
    std::vector<std::string> out;
    std::stringstream in(text);
    std::string item;
    while (std::getline(in, item, ',')) {
        out.push_back(trim(item));
    }
    if (!text.empty() && text.back() == ',') {
        out.emplace_back();
    }
    return out;
}

// Edits between two words, a swap of neighbours counting as one ("nmae" is one from "name").
std::size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
    for (std::size_t i = 0; i <= a.size(); ++i) {
        d[i][0] = i;
    }
    for (std::size_t j = 0; j <= b.size(); ++j) {
        d[0][j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); ++i) {
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
            }
        }
    }
    return d[a.size()][b.size()];
}

// The nearest candidate, for "did you mean ...": one edit per three letters, at most two.
std::optional<std::string> closest(const std::string& word,
                                   const std::vector<std::string>& candidates) {
    const std::size_t limit = std::min<std::size_t>(2, std::max<std::size_t>(1, word.size() / 3));
    std::optional<std::string> best;
    std::size_t best_distance = limit + 1;
    for (const auto& c : candidates) {
        const auto d = edit_distance(word, c);
        if (d < best_distance) {
            best = c;
            best_distance = d;
        }
    }
    return best;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
    const auto best = closest(word, candidates);
    return best ? "; did you mean " + *best + "?" : "";
}

std::string octal_mode(mode_t mode) {
    char buffer[8];
    std::snprintf(buffer, sizeof buffer, "%04o", static_cast<unsigned>(mode & 07777));
    return buffer;
}

bool is_ip_literal(const std::string& host) {
    in_addr v4{};
    in6_addr v6{};
    return inet_pton(AF_INET, host.c_str(), &v4) == 1 ||
           inet_pton(AF_INET6, host.c_str(), &v6) == 1;
}

bool is_http_url(const std::string& url) {
    std::string rest;
    for (const char* scheme : {"http://", "https://"}) {
        if (url.rfind(scheme, 0) == 0) {
            rest = url.substr(std::strlen(scheme));
        }
    }
    const auto host_end = rest.find_first_of("/?#");
    const bool has_space = url.find_first_of(" \t") != std::string::npos;
    return !rest.empty() && host_end != 0 && !has_space;
}

bool is_name(const std::string& s, std::size_t max, const char* extra) {
    if (s.empty() || s.size() > max) {
        return false;
    }
    return std::all_of(s.begin(), s.end(), [extra](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || std::strchr(extra, c) != nullptr;
    });
}

// Why the program of a command cannot be run, or nullopt when it can.
std::optional<std::string> program_problem(const std::string& program) {
    const auto executable = [](const std::string& p, struct stat& st) {
        return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111) != 0 &&
               access(p.c_str(), X_OK) == 0;
    };
    struct stat st {};
    if (program.find('/') == std::string::npos) {
        const char* env = std::getenv("PATH");
        std::stringstream dirs(env != nullptr ? env : "/usr/local/bin:/usr/bin:/bin");
        std::string dir;
        while (std::getline(dirs, dir, ':')) {
            if (executable((dir.empty() ? "." : dir) + "/" + program, st)) {
                return std::nullopt;
            }
        }
        return "'" + program + "' is not in PATH";
    }
    if (stat(program.c_str(), &st) != 0) {
        return errno == ENOENT ? program + " does not exist"
                               : program + ": " + std::strerror(errno);
    }
    if (!S_ISREG(st.st_mode)) {
        return program + " is not a regular file";
    }
    if (!executable(program, st)) {
        return program + " is not executable, mode " + octal_mode(st.st_mode);
    }
    return std::nullopt;
}

// Why a file holding a secret is unsafe or unusable; never reads the content.
std::optional<std::string> secret_problem(const std::string& file) {
    struct stat st {};
    if (stat(file.c_str(), &st) != 0) {
        return errno == ENOENT ? file + " does not exist" : file + ": " + std::strerror(errno);
    }
    if (!S_ISREG(st.st_mode)) {
        return file + " is not a regular file";
    }
    if ((st.st_mode & 077) != 0) {
        return file + " has mode " + octal_mode(st.st_mode) +
               ", open to group or others; chmod 600 it";
    }
    if (access(file.c_str(), R_OK) != 0) {
        return file + " cannot be read: " + std::strerror(errno);
    }
    if (st.st_size == 0) {
        return file + " is empty";
    }
    return std::nullopt;
}

const char* file_kind(mode_t mode) {
    switch (mode & S_IFMT) {
        case S_IFDIR:
            return "a directory";
        case S_IFIFO:
            return "a FIFO";
        case S_IFCHR:
            return "a character device";
        case S_IFBLK:
            return "a block device";
        case S_IFSOCK:
            return "a socket";
        default:
            return "not a regular file";
    }
}

// Reads a regular file of at most `max` bytes into `text`. O_NONBLOCK makes the open of a
// FIFO return at once (then fstat refuses it) instead of waiting for a writer; the read stops
// at max + 1 bytes whatever the file claims. On failure `error` says why, without the content.
bool read_regular_file(const std::string& path, std::size_t max, std::string& text,
                       std::string& error) {
    const int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        error = std::string("cannot read: ") + std::strerror(errno);
        return false;
    }
    struct Closer {
        int fd;
        ~Closer() { close(fd); }
    } const closer{fd};
    struct stat st {};
    if (fstat(fd, &st) != 0) {
        error = std::string("cannot read: ") + std::strerror(errno);
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        error = std::string("is ") + file_kind(st.st_mode) + ", not a regular file";
        return false;
    }
    const auto too_big = [&](std::uint64_t size) {
        error = "is " + std::to_string(size) + " bytes, over the limit of " + std::to_string(max);
        return false;
    };
    if (static_cast<std::uint64_t>(st.st_size) > max) {
        return too_big(static_cast<std::uint64_t>(st.st_size));
    }
    text.clear();
    char buffer[65536];
    while (text.size() <= max) {
        const ssize_t n = read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            error = std::string("cannot read: ") + std::strerror(errno);
            return false;
        }
        if (n == 0) {
            return true;
        }
        text.append(buffer, static_cast<std::size_t>(n));
    }
    return too_big(text.size());
}

// The advert key is every byte of the file, as the daemon reads it (HMAC-SHA256).
constexpr std::size_t kMinAuthKeyBytes = 16;

// Why an address cannot be a peer's, or nullopt. Loopback works only between daemons that
// listen on loopback themselves (tests on one host).
std::optional<std::string> peer_address_problem(const std::string& host, bool listen_loopback) {
    in_addr v4{};
    in6_addr v6{};
    if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
        const std::uint32_t a = ntohl(v4.s_addr);
        if ((a >> 24) == 0) {
            return "is in 0.0.0.0/8, which is not a host's address";
        }
        if ((a >> 24) == 127 && !listen_loopback) {
            return "is a loopback address: adverts sent there never leave this host";
        }
        if ((a >> 28) == 0xe) {
            return "is a multicast address; adverts go to each peer by unicast";
        }
        if (a == 0xffffffffU) {
            return "is the broadcast address; adverts go to each peer by unicast";
        }
        if ((a >> 28) == 0xf) {
            return "is in the reserved block 240.0.0.0/4";
        }
        return std::nullopt;
    }
    if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
        if (IN6_IS_ADDR_UNSPECIFIED(&v6)) {
            return "is the unspecified address ::, not a host's address";
        }
        if (IN6_IS_ADDR_LOOPBACK(&v6) && !listen_loopback) {
            return "is a loopback address: adverts sent there never leave this host";
        }
        if (IN6_IS_ADDR_MULTICAST(&v6)) {
            return "is a multicast address; adverts go to each peer by unicast";
        }
        if (IN6_IS_ADDR_V4MAPPED(&v6)) {
            return "is an IPv4-mapped address; write the IPv4 address itself";
        }
    }
    return std::nullopt;
}

bool is_loopback(const std::string& host) {
    in_addr v4{};
    in6_addr v6{};
    if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
        return (ntohl(v4.s_addr) >> 24) == 127;
    }
    return inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

bool is_v6(const std::string& host) {
    return host.find(':') != std::string::npos;
}

// Keeps the first kMaxConfigErrorsKept problems and counts the rest, so a file of garbage
// costs bounded memory and output.
struct Sink {
    std::string file;
    std::vector<ConfigError> errors;
    std::size_t total = 0;

    void add(int line, std::string key, std::string message) {
        ++total;
        if (errors.size() < kMaxConfigErrorsKept) {
            errors.push_back({file, line, std::move(key), std::move(message)});
        }
    }
};

// One "key = value" line being applied: where it is, and what its key allows.
struct Entry {
    Sink& sink;
    int line;
    const std::string& key;
    const std::string& raw;
    std::string allowed;

    void fail(const std::string& what) const {
        sink.add(line, key, what + " (allowed: " + allowed + ")");
    }
    void out_of_range() const { fail(raw + " is out of range"); }
};

// A command whose words hold a shell operator is refused: it would reach the program as an
// argument and the command would always fail.
bool shell_free(const Entry& e) {
    if (const auto op = shell_operator_word(e.raw)) {
        e.fail("'" + *op +
               "' is a shell operator, but commands run without a shell; write sh -c '...' "
               "to use one");
        return false;
    }
    return true;
}

// What the file said in one section: its header line, where each key was first set and
// its text, for the cross-key rules that run after the whole file is read.
struct SectionState {
    SectionState() = default;
    explicit SectionState(std::string l, int at = 0) : label(std::move(l)), line(at) {}

    std::string label;  // "[check.web]"
    int line = 0;
    std::map<std::string, int> key_lines;
    std::map<std::string, std::string> raw;
    bool type_valid = false;

    bool has(const std::string& key) const { return key_lines.count(key) != 0; }
    int line_of(const std::string& key) const {
        const auto it = key_lines.find(key);
        return it == key_lines.end() ? line : it->second;
    }
};

// The keys of one kind of section, declared to Boost with their types; the description of
// each Boost option is the "allowed" text of its messages.
template <class Target>
class Schema {
  public:
    explicit Schema(const std::string& caption) : desc_(caption) {}

    template <class T, class F>
    Schema& key(const char* name, const char* allowed, F set, bool repeatable = false) {
        desc_.add_options()(name, po::value<T>(), allowed);
        names_.emplace_back(name);
        setters_[name] = [set](Target& t, const boost::any& v, const Entry& e) {
            set(t, boost::any_cast<const T&>(v), e);
        };
        nouns_[name] = malformed_noun<T>();
        if (repeatable) {
            repeatable_.insert(name);
        }
        return *this;
    }

    const std::vector<std::string>& names() const { return names_; }

    std::string allowed(const std::string& key) const {
        return desc_.find(key, false).description();
    }

    void apply(Target& target, SectionState& state, const ConfigLine& l, Sink& sink) const {
        const po::option_description* option = desc_.find_nothrow(l.name, false);
        if (option == nullptr) {
            sink.add(l.line, l.name,
                     "unknown key in " + state.label + did_you_mean(l.name, names_) +
                         " (allowed: " + join(names_) + ")");
            return;
        }
        const auto [first, inserted] = state.key_lines.emplace(l.name, l.line);
        if (!inserted && repeatable_.count(l.name) == 0) {
            sink.add(l.line, l.name,
                     "repeated key, first set at line " + std::to_string(first->second) +
                         " (allowed: once per section)");
            return;
        }
        state.raw.emplace(l.name, l.value);
        const Entry entry{sink, l.line, l.name, l.value, option->description()};
        if (l.value.empty()) {
            entry.fail("missing value");
            return;
        }
        if (const auto nul = l.value.find('\0'); nul != std::string::npos) {
            sink.add(l.line, l.name,
                     "a NUL byte in the value, at byte " + std::to_string(nul + 1) +
                         " (allowed: text without NUL bytes)");
            return;
        }
        po::parsed_options parsed(&desc_);
        po::option one(l.name, {l.value});
        one.original_tokens = {l.name, l.value};
        parsed.options.push_back(std::move(one));
        po::variables_map typed;
        try {
            po::store(parsed, typed);
        } catch (const po::error&) {
            entry.fail(std::string(nouns_.at(l.name)) + ": '" + l.value + "'");
            return;
        }
        setters_.at(l.name)(target, typed[l.name].value(), entry);
    }

  private:
    po::options_description desc_;
    std::vector<std::string> names_;
    std::map<std::string, std::function<void(Target&, const boost::any&, const Entry&)>> setters_;
    std::map<std::string, const char*> nouns_;
    std::set<std::string> repeatable_;
};

bool in_range(Duration d, Duration low, Duration high) {
    return d >= low && d <= high;
}

void set_advert_interval(Duration& out, Duration d, const Entry& e) {
    // VRRPv3 carries the interval in centiseconds in 12 bits (RFC 5798 §5.2.7).
    if (!in_range(d, 10ms, 40950ms) || d % 10ms != Duration::zero()) {
        e.out_of_range();
        return;
    }
    out = d;
}

const std::vector<std::string> kCheckCommonKeys = {"type", "interval", "timeout",
                                                   "rise", "fall",     "weight"};

std::vector<std::string> check_type_keys(CheckType t) {
    switch (t) {
        case CheckType::Docker:
            return {"socket", "label", "name", "expect", "min", "require_healthy", "events"};
        case CheckType::Http:
            return {"url", "expect_status", "body_contains", "tls_verify"};
        case CheckType::Tcp:
            return {"target"};
        case CheckType::Exec:
            return {"command"};
    }
    return {};
}

std::vector<std::string> provider_type_keys(ProviderType t) {
    std::vector<std::string> keys = {"type", "request_timeout", "reconcile_interval"};
    if (t == ProviderType::DigitalOcean) {
        keys.insert(keys.end(),
                    {"token_file", "droplet_id", "api_base_url", "metadata_base_url", "ca_file"});
    } else if (t == ProviderType::Exec) {
        keys.emplace_back("command");
    }
    return keys;
}

class Loader {
  public:
    Loader(const std::string& path, ConfigScope scope);
    Config load(const std::string& text);

  private:
    void start_section(const ConfigLine& l);
    void finish_node();
    void finish_cluster();
    void finish_provider();
    void finish_checks();
    void finish_instances();

    std::string resolve(const std::string& p) const;
    void resolve_program(std::vector<std::string>& argv) const;
    void check_program(const std::vector<std::string>& argv, const SectionState& state,
                       const std::string& key);
    void check_secret(const std::string& file, const SectionState& state, const std::string& key);
    void check_auth_key(bool has_peers);
    void missing(const SectionState& state, const std::string& key, const std::string& why,
                 const std::string& allowed);

    void build_node_schema();
    void build_cluster_schema();
    void build_provider_schema();
    void build_check_schema();
    void build_instance_schema();

    Sink sink_;
    ConfigScope scope_;
    fs::path base_dir_;
    Config config_;

    Schema<NodeConfig> node_schema_{"[node]"};
    Schema<ClusterConfig> cluster_schema_{"[cluster]"};
    Schema<ProviderConfig> provider_schema_{"[provider]"};
    Schema<CheckConfig> check_schema_{"[check.NAME]"};
    Schema<InstanceConfig> instance_schema_{"[instance.NAME]"};

    SectionState node_state_{"[node]"};
    SectionState cluster_state_{"[cluster]"};
    SectionState provider_state_{"[provider]"};
    std::vector<SectionState> check_states_;
    std::vector<SectionState> instance_states_;

    // A repeated section is still read for syntax, into these, and then dropped.
    NodeConfig spare_node_;
    ClusterConfig spare_cluster_;
    ProviderConfig spare_provider_;
    CheckConfig spare_check_;
    InstanceConfig spare_instance_;
    SectionState spare_state_;

    std::function<void(const ConfigLine&)> current_;
};

Loader::Loader(const std::string& path, ConfigScope scope) : sink_{path, {}}, scope_(scope) {
    config_.path = path;
    std::error_code ec;
    const fs::path parent = fs::path(path).parent_path();
    base_dir_ = parent.empty() ? fs::current_path(ec) : fs::absolute(parent, ec);
    build_node_schema();
    build_cluster_schema();
    build_provider_schema();
    build_check_schema();
    build_instance_schema();
}

std::string Loader::resolve(const std::string& p) const {
    const fs::path path(p);
    return path.is_absolute() ? p : (base_dir_ / path).lexically_normal().string();
}

void Loader::resolve_program(std::vector<std::string>& argv) const {
    if (!argv.empty() && argv[0].find('/') != std::string::npos) {
        argv[0] = resolve(argv[0]);
    }
}

void Loader::build_node_schema() {
    node_schema_
        .key<std::string>("name", "1..64 letters, digits, '.', '-' or '_'",
                          [](NodeConfig& n, const std::string& v, const Entry& e) {
                              if (!is_name(v, 64, ".-_")) {
                                  e.fail("'" + v + "' is not a valid node name");
                                  return;
                              }
                              n.name = v;
                          })
        .key<EndpointValue>("listen", "IPv4:PORT or [IPv6]:PORT, an address of this host",
                            [](NodeConfig& n, const EndpointValue& v, const Entry& e) {
                                if (!is_ip_literal(v.value.host)) {
                                    e.fail("'" + v.value.host + "' is not an IP address");
                                    return;
                                }
                                n.listen = v.value;
                                n.listen.line = e.line;
                            })
        .key<std::string>(
            "control_socket", "a unix socket path of at most 107 bytes",
            [this](NodeConfig& n, const std::string& v, const Entry& e) {
                const std::string path = resolve(v);
                if (path.size() > kUnixPathMax) {
                    e.fail(path + " is " + std::to_string(path.size()) + " bytes long");
                    return;
                }
                n.control_socket = path;
            })
        .key<std::string>("state_dir", "a directory path",
                          [this](NodeConfig& n, const std::string& v, const Entry&) {
                              n.state_dir = resolve(v);
                          });
}

void Loader::build_cluster_schema() {
    cluster_schema_
        .key<EndpointValue>(
            "peer", "IPv4:PORT or [IPv6]:PORT, one peer per line",
            [](ClusterConfig& c, const EndpointValue& v, const Entry& e) {
                if (!is_ip_literal(v.value.host)) {
                    e.fail("'" + v.value.host + "' is not an IP address");
                    return;
                }
                for (const auto& p : c.peers) {
                    if (p.host == v.value.host && p.port == v.value.port) {
                        e.fail(p.to_string() + " is listed twice, first at line " +
                               std::to_string(p.line));
                        return;
                    }
                }
                c.peers.push_back(v.value);
                c.peers.back().line = e.line;
            },
            true)
        .key<std::string>("peers_from_tag",
                          "a DigitalOcean tag: up to 255 letters, digits, ':', '-' or '_'",
                          [](ClusterConfig& c, const std::string& v, const Entry& e) {
                              if (!is_name(v, 255, ":-_")) {
                                  e.fail("'" + v + "' is not a DigitalOcean tag");
                                  return;
                              }
                              c.peers_from_tag = v;
                          })
        .key<std::string>("auth_key_file", kSecretAllowed,
                          [this](ClusterConfig& c, const std::string& v, const Entry&) {
                              c.auth_key_file = resolve(v);
                          })
        .key<DurationValue>("advert_interval", kAdvertAllowed,
                            [](ClusterConfig& c, const DurationValue& v, const Entry& e) {
                                set_advert_interval(c.advert_interval, v.value, e);
                            });
}

void Loader::build_provider_schema() {
    const auto url_key = [](std::string ProviderConfig::*field) {
        return [field](ProviderConfig& p, const std::string& v, const Entry& e) {
            if (!is_http_url(v)) {
                e.fail("'" + v + "' is not an http or https URL");
                return;
            }
            p.*field = v.back() == '/' ? v.substr(0, v.size() - 1) : v;
        };
    };
    provider_schema_
        .key<std::string>("type", "none, digitalocean, exec",
                          [this](ProviderConfig& p, const std::string& v, const Entry& e) {
                              static const std::map<std::string, ProviderType> types = {
                                  {"none", ProviderType::None},
                                  {"digitalocean", ProviderType::DigitalOcean},
                                  {"exec", ProviderType::Exec}};
                              const auto it = types.find(v);
                              if (it == types.end()) {
                                  e.fail("'" + v + "' is not a provider type" +
                                         did_you_mean(v, {"none", "digitalocean", "exec"}));
                                  return;
                              }
                              p.type = it->second;
                              if (&p == &config_.provider) {
                                  provider_state_.type_valid = true;
                              }
                          })
        .key<std::string>("token_file", kSecretAllowed,
                          [this](ProviderConfig& p, const std::string& v, const Entry&) {
                              p.token_file = resolve(v);
                          })
        .key<std::string>("droplet_id", "auto or the droplet's numeric id",
                          [](ProviderConfig& p, const std::string& v, const Entry& e) {
                              const bool digits =
                                  v.size() <= 18 &&
                                  v.find_first_not_of("0123456789") == std::string::npos;
                              if (v != "auto" && (!digits || std::stoll(v) == 0)) {
                                  e.fail("'" + v + "' is not a droplet id");
                                  return;
                              }
                              p.droplet_id = v;
                          })
        .key<std::string>("api_base_url", "an http:// or https:// URL",
                          url_key(&ProviderConfig::api_base_url))
        .key<std::string>("metadata_base_url", "an http:// or https:// URL",
                          url_key(&ProviderConfig::metadata_base_url))
        .key<std::string>("ca_file", "a readable file of PEM certificates",
                          [this](ProviderConfig& p, const std::string& v, const Entry&) {
                              p.ca_file = resolve(v);
                          })
        .key<CommandValue>("command", kCommandAllowed,
                           [this](ProviderConfig& p, const CommandValue& v, const Entry& e) {
                               if (v.argv.empty()) {
                                   e.fail("empty command");
                                   return;
                               }
                               if (!shell_free(e)) {
                                   return;
                               }
                               p.exec_command = v.argv;
                               resolve_program(p.exec_command);
                           })
        .key<DurationValue>("request_timeout", "100ms..5m",
                            [](ProviderConfig& p, const DurationValue& v, const Entry& e) {
                                if (!in_range(v.value, 100ms, 5min)) {
                                    e.out_of_range();
                                    return;
                                }
                                p.request_timeout = v.value;
                            })
        .key<DurationValue>("reconcile_interval", "1s..1h",
                            [](ProviderConfig& p, const DurationValue& v, const Entry& e) {
                                if (!in_range(v.value, 1s, 1h)) {
                                    e.out_of_range();
                                    return;
                                }
                                p.reconcile_interval = v.value;
                            });
}

void Loader::build_check_schema() {
    const auto int_key = [](int CheckConfig::*field, int low, int high) {
        return [field, low, high](CheckConfig& c, int v, const Entry& e) {
            if (v < low || v > high) {
                e.out_of_range();
                return;
            }
            c.*field = v;
        };
    };
    const auto count_key = [](std::optional<int> CheckConfig::*field) {
        return [field](CheckConfig& c, int v, const Entry& e) {
            if (v < 1 || v > 10000) {
                e.out_of_range();
                return;
            }
            c.*field = v;
        };
    };
    check_schema_
        .key<std::string>("type", "docker, http, tcp, exec",
                          [this](CheckConfig& c, const std::string& v, const Entry& e) {
                              static const std::map<std::string, CheckType> types = {
                                  {"docker", CheckType::Docker},
                                  {"http", CheckType::Http},
                                  {"tcp", CheckType::Tcp},
                                  {"exec", CheckType::Exec}};
                              const auto it = types.find(v);
                              if (it == types.end()) {
                                  e.fail("'" + v + "' is not a check type" +
                                         did_you_mean(v, {"docker", "http", "tcp", "exec"}));
                                  return;
                              }
                              c.type = it->second;
                              if (!config_.checks.empty() && &c == &config_.checks.back()) {
                                  check_states_.back().type_valid = true;
                              }
                          })
        .key<DurationValue>("interval", "100ms..1h",
                            [](CheckConfig& c, const DurationValue& v, const Entry& e) {
                                if (!in_range(v.value, 100ms, 1h)) {
                                    e.out_of_range();
                                    return;
                                }
                                c.interval = v.value;
                            })
        .key<DurationValue>("timeout", "10ms..1h and at most interval",
                            [](CheckConfig& c, const DurationValue& v, const Entry& e) {
                                if (!in_range(v.value, 10ms, 1h)) {
                                    e.out_of_range();
                                    return;
                                }
                                c.timeout = v.value;
                            })
        .key<int>("rise", "1..100", int_key(&CheckConfig::rise, 1, 100))
        .key<int>("fall", "1..100", int_key(&CheckConfig::fall, 1, 100))
        .key<int>("weight", "-253..0", int_key(&CheckConfig::weight, -253, 0))
        .key<std::string>(
            "socket", "a unix socket path of at most 107 bytes, or unix://PATH",
            [this](CheckConfig& c, const std::string& v, const Entry& e) {
                std::string local = v;
                if (local.rfind("unix://", 0) == 0) {
                    local = local.substr(std::strlen("unix://"));
                } else if (const auto scheme = local.find("://"); scheme != std::string::npos) {
                    e.fail("'" + v +
                           "': only a local unix socket is supported; a TCP or TLS engine "
                           "is not (run failoverd on the engine's host, or forward its "
                           "socket there with ssh -L)");
                    return;
                }
                if (local.empty()) {
                    e.fail("'" + v + "' names no socket path");
                    return;
                }
                const std::string path = resolve(local);
                if (path.size() > kUnixPathMax) {
                    e.fail(path + " is " + std::to_string(path.size()) + " bytes long");
                    return;
                }
                c.docker_socket = path;
            })
        .key<std::string>(
            "label", "KEY or KEY=VALUE, one label per line",
            [](CheckConfig& c, const std::string& v, const Entry& e) {
                const auto eq = v.find('=');
                const std::string key = trim(v.substr(0, eq));
                if (key.empty() || key.find_first_of(" \t") != std::string::npos) {
                    e.fail("'" + v + "' is not a label filter");
                    return;
                }
                c.docker_labels.push_back(
                    eq == std::string::npos ? key : key + "=" + trim(v.substr(eq + 1)));
            },
            true)
        .key<std::string>(
            "name", "an ECMAScript regular expression matched against names",
            [](CheckConfig& c, const std::string& v, const Entry& e) {
                try {
                    std::regex compiled(v, std::regex::ECMAScript);
                } catch (const std::regex_error& error) {
                    e.fail("'" + v + "' is not a valid regular expression: " + error.what());
                    return;
                }
                c.docker_name_pattern = v;
            })
        .key<int>("expect", "1..10000", count_key(&CheckConfig::expect))
        .key<int>("min", "1..10000", count_key(&CheckConfig::min))
        .key<bool>("require_healthy", kBoolAllowed,
                   [](CheckConfig& c, bool v, const Entry&) { c.require_healthy = v; })
        .key<bool>("events", kBoolAllowed,
                   [](CheckConfig& c, bool v, const Entry&) { c.docker_events = v; })
        .key<std::string>("url", "an http:// or https:// URL",
                          [](CheckConfig& c, const std::string& v, const Entry& e) {
                              if (!is_http_url(v)) {
                                  e.fail("'" + v + "' is not an http or https URL");
                                  return;
                              }
                              c.url = v;
                          })
        .key<std::string>("expect_status", "comma-separated HTTP status codes 100..599",
                          [](CheckConfig& c, const std::string& v, const Entry& e) {
                              std::vector<int> codes;
                              for (const auto& item : split_list(v)) {
                                  const bool digits =
                                      item.size() == 3 &&
                                      item.find_first_not_of("0123456789") == std::string::npos;
                                  if (!digits || std::stoi(item) < 100 || std::stoi(item) > 599) {
                                      e.fail("'" + item + "' is not an HTTP status code");
                                      return;
                                  }
                                  codes.push_back(std::stoi(item));
                              }
                              c.expected_status = codes;
                          })
        .key<std::string>(
            "body_contains", "any text",
            [](CheckConfig& c, const std::string& v, const Entry&) { c.body_contains = v; })
        .key<bool>("tls_verify", kBoolAllowed,
                   [](CheckConfig& c, bool v, const Entry&) { c.tls_verify = v; })
        .key<EndpointValue>("target", "HOST:PORT or [IPv6]:PORT",
                            [](CheckConfig& c, const EndpointValue& v, const Entry& e) {
                                c.target = v.value;
                                c.target.line = e.line;
                            })
        .key<CommandValue>("command", kCommandAllowed,
                           [this](CheckConfig& c, const CommandValue& v, const Entry& e) {
                               if (v.argv.empty()) {
                                   e.fail("empty command");
                                   return;
                               }
                               if (!shell_free(e)) {
                                   return;
                               }
                               c.command = v.argv;
                               resolve_program(c.command);
                           });
}

void Loader::build_instance_schema() {
    const auto hook_key = [this](std::vector<std::string> InstanceConfig::*field) {
        return [this, field](InstanceConfig& i, const CommandValue& v, const Entry& e) {
            if (v.argv.empty()) {
                e.fail("empty command");
                return;
            }
            if (!shell_free(e)) {
                return;
            }
            i.*field = v.argv;
            resolve_program(i.*field);
        };
    };
    instance_schema_
        .key<std::string>("reserved_ip", "an IPv4 address such as 203.0.113.10",
                          [](InstanceConfig& i, const std::string& v, const Entry& e) {
                              in_addr addr{};
                              if (inet_pton(AF_INET, v.c_str(), &addr) != 1 || addr.s_addr == 0) {
                                  e.fail("'" + v + "' is not an IPv4 address");
                                  return;
                              }
                              const std::uint32_t a = ntohl(addr.s_addr);
                              if ((a >> 24) == 0 || (a >> 24) == 127 || (a >> 28) >= 0xe) {
                                  e.fail(v +
                                         " is a loopback, multicast, broadcast or reserved "
                                         "address, which no provider can assign");
                                  return;
                              }
                              i.reserved_ip = v;
                          })
        .key<int>("priority", "1..254",
                  [](InstanceConfig& i, int v, const Entry& e) {
                      if (v < 1 || v > 254) {
                          e.out_of_range();
                          return;
                      }
                      i.priority = v;
                  })
        .key<bool>("preempt", kBoolAllowed,
                   [](InstanceConfig& i, bool v, const Entry&) { i.preempt = v; })
        .key<DurationValue>("preempt_delay", "0s..1h",
                            [](InstanceConfig& i, const DurationValue& v, const Entry& e) {
                                if (!in_range(v.value, 0s, 1h)) {
                                    e.out_of_range();
                                    return;
                                }
                                i.preempt_delay = v.value;
                            })
        .key<DurationValue>("advert_interval", kAdvertAllowed,
                            [](InstanceConfig& i, const DurationValue& v, const Entry& e) {
                                Duration d{};
                                const auto errors_before = e.sink.errors.size();
                                set_advert_interval(d, v.value, e);
                                if (e.sink.errors.size() == errors_before) {
                                    i.advert_interval = d;
                                }
                            })
        .key<std::string>("checks", "comma-separated names of [check.NAME] sections",
                          [](InstanceConfig& i, const std::string& v, const Entry& e) {
                              std::vector<std::string> names;
                              for (const auto& name : split_list(v)) {
                                  if (name.empty()) {
                                      e.fail("empty name in the list");
                                      return;
                                  }
                                  if (std::find(names.begin(), names.end(), name) != names.end()) {
                                      e.fail("'" + name + "' is listed twice");
                                      return;
                                  }
                                  names.push_back(name);
                              }
                              i.checks = names;
                          })
        .key<CommandValue>("notify_master", kCommandAllowed,
                           hook_key(&InstanceConfig::notify_master))
        .key<CommandValue>("notify_backup", kCommandAllowed,
                           hook_key(&InstanceConfig::notify_backup))
        .key<CommandValue>("notify_fault", kCommandAllowed, hook_key(&InstanceConfig::notify_fault))
        .key<CommandValue>("notify_stop", kCommandAllowed, hook_key(&InstanceConfig::notify_stop))
        .key<CommandValue>("notify", kCommandAllowed, hook_key(&InstanceConfig::notify))
        .key<std::string>("hook_cleanup", "process-group, none",
                          [](InstanceConfig& i, const std::string& v, const Entry& e) {
                              if (v == "process-group") {
                                  i.hook_cleanup = ProcessCleanup::ProcessGroup;
                              } else if (v == "none") {
                                  i.hook_cleanup = ProcessCleanup::None;
                              } else {
                                  e.fail("'" + v + "' is not a hook cleanup" +
                                         did_you_mean(v, {"process-group", "none"}));
                              }
                          });
}

void Loader::start_section(const ConfigLine& l) {
    static const char* const kAllowed =
        " (allowed: [node], [cluster], [provider], [check.NAME], [instance.NAME])";
    static const char* const kNameAllowed = "1..64 letters, digits, '-' or '_'";
    const std::string label = "[" + l.name + "]";
    current_ = [](const ConfigLine&) {};  // entries of a bad section are not reported again

    const auto fixed = [&](auto& schema, auto& target, auto& spare, SectionState& state) {
        if (state.line != 0) {
            sink_.add(l.line, label,
                      "repeated section, first at line " + std::to_string(state.line) +
                          " (allowed: once per file)");
            spare_state_ = SectionState{label, l.line};
            current_ = [this, &schema, &spare](const ConfigLine& e) {
                schema.apply(spare, spare_state_, e, sink_);
            };
            return;
        }
        state.line = l.line;
        current_ = [this, &schema, &target, &state](const ConfigLine& e) {
            schema.apply(target, state, e, sink_);
        };
    };
    const auto named = [&](const std::string& kind, auto& schema, auto& list, auto& states,
                           auto& spare) {
        const std::string name = l.name.substr(kind.size() + 1);
        if (!is_name(name, 64, "-_")) {
            sink_.add(
                l.line, label,
                "'" + name + "' is not a valid " + kind + " name (allowed: " + kNameAllowed + ")");
            return;
        }
        for (std::size_t i = 0; i < list.size(); ++i) {
            if (list[i].name == name) {
                sink_.add(l.line, label,
                          "repeated section, first at line " + std::to_string(states[i].line) +
                              " (allowed: once per file)");
                spare_state_ = SectionState{label, l.line};
                current_ = [this, &schema, &spare](const ConfigLine& e) {
                    schema.apply(spare, spare_state_, e, sink_);
                };
                return;
            }
        }
        list.emplace_back();
        list.back().name = name;
        list.back().line = l.line;
        states.push_back(SectionState{label, l.line});
        const std::size_t index = list.size() - 1;
        current_ = [this, &schema, &list, &states, index](const ConfigLine& e) {
            schema.apply(list[index], states[index], e, sink_);
        };
    };

    if (l.name == "node") {
        fixed(node_schema_, config_.node, spare_node_, node_state_);
    } else if (l.name == "cluster") {
        fixed(cluster_schema_, config_.cluster, spare_cluster_, cluster_state_);
    } else if (l.name == "provider") {
        fixed(provider_schema_, config_.provider, spare_provider_, provider_state_);
    } else if (l.name.rfind("check.", 0) == 0) {
        named("check", check_schema_, config_.checks, check_states_, spare_check_);
    } else if (l.name.rfind("instance.", 0) == 0) {
        named("instance", instance_schema_, config_.instances, instance_states_, spare_instance_);
    } else {
        std::string hint;
        const auto dot = l.name.find('.');
        if (l.name == "check" || l.name == "instance") {
            hint = "; it needs a name: [" + l.name + ".NAME]";
        } else if (dot != std::string::npos) {
            if (const auto kind = closest(l.name.substr(0, dot), {"check", "instance"})) {
                hint = "; did you mean [" + *kind + l.name.substr(dot) + "]?";
            }
        } else if (const auto section = closest(l.name, {"node", "cluster", "provider"})) {
            hint = "; did you mean [" + *section + "]?";
        }
        sink_.add(l.line, label, "unknown section" + hint + kAllowed);
    }
}

void Loader::missing(const SectionState& state, const std::string& key, const std::string& why,
                     const std::string& allowed) {
    sink_.add(state.line, key,
              "missing in " + state.label + (why.empty() ? "" : ", " + why) +
                  " (allowed: " + allowed + ")");
}

void Loader::check_program(const std::vector<std::string>& argv, const SectionState& state,
                           const std::string& key) {
    if (argv.empty()) {
        return;
    }
    if (const auto problem = program_problem(argv[0])) {
        sink_.add(state.line_of(key), key, *problem + " (allowed: " + kCommandAllowed + ")");
    }
}

void Loader::check_secret(const std::string& file, const SectionState& state,
                          const std::string& key) {
    if (const auto problem = secret_problem(file)) {
        sink_.add(state.line_of(key), key, *problem + " (allowed: " + kSecretAllowed + ")");
    }
}

void Loader::finish_node() {
    if (!config_.node.name.empty()) {
        return;
    }
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') {
        sink_.add(
            node_state_.line, "name",
            "the host name is unavailable; set it (allowed: " + node_schema_.allowed("name") + ")");
        return;
    }
    config_.node.name = host;
}

void Loader::finish_cluster() {
    const auto& cluster = config_.cluster;
    if (!cluster.peers_from_tag.empty() && config_.provider.type != ProviderType::DigitalOcean) {
        sink_.add(cluster_state_.line_of("peers_from_tag"), "peers_from_tag",
                  "needs [provider] type = digitalocean, which lists the tagged droplets "
                  "(allowed: " +
                      cluster_schema_.allowed("peers_from_tag") + ")");
    }
    const bool has_peers = !cluster.peers.empty() || !cluster.peers_from_tag.empty();
    if (scope_ == ConfigScope::Daemon) {
        check_auth_key(has_peers);
    }
    const Endpoint& listen = config_.node.listen;
    const bool listen_v6 = is_v6(listen.host);
    const bool dual_stack = listen.host == "::";
    const auto peer_error = [&](const Endpoint& p, const std::string& why) {
        sink_.add(p.line, "peer",
                  p.to_string() + " " + why + " (allowed: " + cluster_schema_.allowed("peer") +
                      ", another node's address)");
    };
    for (const Endpoint& p : cluster.peers) {
        if (p.host == listen.host && p.port == listen.port) {
            peer_error(p, "is this node's own listen address (see [node] listen)");
        } else if (const auto problem = peer_address_problem(p.host, is_loopback(listen.host))) {
            peer_error(p, *problem);
        } else if (is_v6(p.host) != listen_v6 && !dual_stack) {
            peer_error(p, std::string("is IPv") + (listen_v6 ? "4" : "6") + " but [node] listen " +
                              listen.to_string() + " is IPv" + (listen_v6 ? "6" : "4") +
                              "; listen = [::]:PORT takes both");
        } else {
            for (const auto& instance : config_.instances) {
                if (instance.reserved_ip == p.host) {
                    peer_error(p, "is the reserved IP of [instance." + instance.name +
                                      "], which moves between nodes; a peer is the other "
                                      "node's own (private) address");
                    break;
                }
            }
        }
    }
}

void Loader::check_auth_key(bool has_peers) {
    const std::string& file = config_.cluster.auth_key_file;
    const auto fail = [&](const std::string& problem) {
        sink_.add(cluster_state_.line_of("auth_key_file"), "auth_key_file",
                  problem + " (allowed: " + kSecretAllowed + ", at least " +
                      std::to_string(kMinAuthKeyBytes) + " bytes)");
    };
    if (has_peers) {
        if (const auto problem = secret_problem(file)) {
            sink_.add(cluster_state_.line_of("auth_key_file"), "auth_key_file",
                      *problem + " (allowed: " + kSecretAllowed + ")");
            return;
        }
    } else {
        // A single node runs on a random key when the file is absent, but reads the file
        // when it is there, and then refuses a short one.
        struct stat st {};
        if (stat(file.c_str(), &st) != 0 || access(file.c_str(), R_OK) != 0) {
            return;
        }
        if (!S_ISREG(st.st_mode)) {
            fail(file + " is " + file_kind(st.st_mode) + ", not a regular file");
            return;
        }
    }
    std::string key;
    std::string error;
    if (!read_regular_file(file, kMaxConfigBytes, key, error)) {
        fail(file + " " + error);
        return;
    }
    if (key.size() < kMinAuthKeyBytes) {
        fail(file + " holds " + std::to_string(key.size()) +
             " bytes, too short for the advert "
             "key; keepalived's auth_pass (at most 8 characters) cannot be reused here: make a "
             "new key with head -c 32 /dev/urandom > " +
             file + " and copy it to every node");
    }
}

void Loader::finish_provider() {
    auto& provider = config_.provider;
    const auto& state = provider_state_;
    if (state.has("type") && !state.type_valid) {
        return;
    }
    const auto keys = provider_type_keys(provider.type);
    for (const auto& [key, line] : state.key_lines) {
        if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
            sink_.add(line, key,
                      "not valid for type = " + to_string(provider.type) +
                          " (allowed: " + join(keys) + ")");
        }
    }
    if (provider.type == ProviderType::Exec) {
        if (!state.has("command")) {
            missing(state, "command", "required for type = exec", kCommandAllowed);
        } else if (scope_ == ConfigScope::Daemon) {
            check_program(provider.exec_command, state, "command");
        }
    }
    if (provider.type != ProviderType::DigitalOcean || scope_ != ConfigScope::Daemon) {
        return;
    }
    if (state.has("token_file")) {
        check_secret(provider.token_file, state, "token_file");
    } else {
        // systemd's LoadCredential= puts the token in a private directory it owns.
        const char* credentials = std::getenv("CREDENTIALS_DIRECTORY");
        const std::string candidate =
            credentials != nullptr ? std::string(credentials) + "/do-token" : "";
        struct stat st {};
        if (!candidate.empty() && stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
            provider.token_file = candidate;
        } else {
            missing(state, "token_file",
                    "required for type = digitalocean unless systemd passes "
                    "LoadCredential=do-token:PATH",
                    kSecretAllowed);
        }
    }
    if (state.has("ca_file")) {
        std::ifstream in(provider.ca_file);
        if (!in) {
            sink_.add(state.line_of("ca_file"), "ca_file",
                      provider.ca_file +
                          " cannot be read (allowed: " + provider_schema_.allowed("ca_file") + ")");
        }
    }
}

void Loader::finish_checks() {
    for (std::size_t i = 0; i < config_.checks.size(); ++i) {
        auto& check = config_.checks[i];
        const auto& state = check_states_[i];
        if (!state.has("type")) {
            missing(state, "type", "", check_schema_.allowed("type"));
            continue;
        }
        if (!state.type_valid) {
            continue;
        }
        auto keys = kCheckCommonKeys;
        const auto own = check_type_keys(check.type);
        keys.insert(keys.end(), own.begin(), own.end());
        for (const auto& [key, line] : state.key_lines) {
            if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
                sink_.add(line, key,
                          "not valid for type = " + to_string(check.type) +
                              " (allowed: " + join(keys) + ")");
            }
        }
        const std::string required = "required for type = " + to_string(check.type);
        switch (check.type) {
            case CheckType::Docker:
                if (state.has("expect") && state.has("min")) {
                    const bool min_later = state.line_of("min") > state.line_of("expect");
                    const std::string later = min_later ? "min" : "expect";
                    const std::string earlier = min_later ? "expect" : "min";
                    sink_.add(state.line_of(later), later,
                              "cannot be combined with " + earlier + " at line " +
                                  std::to_string(state.line_of(earlier)) +
                                  " (allowed: expect = N for exactly N running, or min = N for "
                                  "at least N)");
                } else if (!state.has("expect") && !state.has("min")) {
                    missing(state, "expect", "a docker check needs expect or min",
                            check_schema_.allowed("expect"));
                }
                break;
            case CheckType::Http:
                if (!state.has("url")) {
                    missing(state, "url", required, check_schema_.allowed("url"));
                }
                break;
            case CheckType::Tcp:
                if (!state.has("target")) {
                    missing(state, "target", required, check_schema_.allowed("target"));
                }
                break;
            case CheckType::Exec:
                if (!state.has("command")) {
                    missing(state, "command", required, kCommandAllowed);
                } else {
                    check_program(check.command, state, "command");
                }
                break;
        }
        if (!state.has("timeout")) {
            check.timeout = std::min(check.timeout, check.interval);
        } else if (check.timeout > check.interval) {
            const auto interval = state.raw.find("interval");
            const std::string interval_text =
                interval != state.raw.end()
                    ? "interval " + interval->second
                    : "the default interval " + format_duration(check.interval);
            sink_.add(state.line_of("timeout"), "timeout",
                      state.raw.at("timeout") + " is longer than " + interval_text +
                          " (allowed: " + check_schema_.allowed("timeout") + ")");
        }
    }
}

void Loader::finish_instances() {
    std::map<std::string, std::size_t> owner_of_ip;
    std::vector<std::string> check_names;
    for (const auto& c : config_.checks) {
        check_names.push_back(c.name);
    }
    for (std::size_t i = 0; i < config_.instances.size(); ++i) {
        const auto& instance = config_.instances[i];
        const auto& state = instance_states_[i];
        if (i > 0 && config_.provider.type == ProviderType::DigitalOcean) {
            sink_.add(state.line, state.label,
                      "a second instance, but a DigitalOcean droplet holds one reserved IPv4 at "
                      "a time and " +
                          instance_states_[0].label + " at line " +
                          std::to_string(instance_states_[0].line) +
                          " already uses it (allowed: one [instance.NAME] with [provider] type = "
                          "digitalocean; a second reserved IP needs a second pair of droplets)");
        }
        if (!state.has("reserved_ip")) {
            missing(state, "reserved_ip", "", instance_schema_.allowed("reserved_ip"));
        } else if (!instance.reserved_ip.empty()) {
            const auto [it, first] = owner_of_ip.emplace(instance.reserved_ip, i);
            if (!first) {
                const auto& owner = instance_states_[it->second];
                sink_.add(state.line_of("reserved_ip"), "reserved_ip",
                          instance.reserved_ip + " is already used by " + owner.label +
                              " at line " + std::to_string(owner.line_of("reserved_ip")) +
                              " (allowed: each reserved IP in one instance)");
            }
        }
        for (const auto& name : instance.checks) {
            if (config_.find_check(name) == nullptr) {
                const std::string allowed =
                    check_names.empty() ? "no [check.NAME] section is defined" : join(check_names);
                sink_.add(state.line_of("checks"), "checks",
                          "unknown check '" + name + "'" + did_you_mean(name, check_names) +
                              " (allowed: " + allowed + ")");
            }
        }
        if (scope_ == ConfigScope::Daemon) {
            check_program(instance.notify_master, state, "notify_master");
            check_program(instance.notify_backup, state, "notify_backup");
            check_program(instance.notify_fault, state, "notify_fault");
            check_program(instance.notify_stop, state, "notify_stop");
            check_program(instance.notify, state, "notify");
        }
    }
}

Config Loader::load(const std::string& text) {
    const auto lines = read_config_lines(text);
    if (lines.empty()) {
        sink_.add(0, "",
                  "holds no settings (allowed: [node], [cluster], [provider], [check.NAME] and "
                  "[instance.NAME] sections; see failoverd.conf(5))");
    }
    for (const auto& l : lines) {
        switch (l.kind) {
            case ConfigLine::Kind::Malformed:
                sink_.add(l.line, "'" + l.name + "'",
                          l.value + " (allowed: [section], key = value, # comment)");
                break;
            case ConfigLine::Kind::Section:
                start_section(l);
                break;
            case ConfigLine::Kind::Entry:
                if (current_) {
                    current_(l);
                } else {
                    sink_.add(l.line, l.name,
                              "key outside any section (allowed: after a [section] header)");
                }
                break;
        }
    }
    finish_node();
    finish_provider();
    finish_cluster();
    finish_checks();
    finish_instances();
    if (!sink_.errors.empty()) {
        std::stable_sort(
            sink_.errors.begin(), sink_.errors.end(),
            [](const ConfigError& a, const ConfigError& b) { return a.line < b.line; });
        throw ConfigErrors(std::move(sink_.errors), sink_.total);
    }
    return std::move(config_);
}

}  // namespace

Config parse_config(const std::string& text, const std::string& path, ConfigScope scope) {
    return Loader(path, scope).load(text);
}

Config load_config(const std::string& path, ConfigScope scope) {
    std::string text;
    std::string error;
    if (!read_regular_file(path, kMaxConfigBytes, text, error)) {
        if (error.rfind("cannot read:", 0) != 0) {
            error += " (allowed: a regular file of at most " + std::to_string(kMaxConfigBytes) +
                     " bytes)";
        }
        throw ConfigErrors({{path, 0, "", error}});
    }
    return parse_config(text, path, scope);
}

}  // namespace failoverd
