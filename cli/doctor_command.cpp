#include "cli/doctor_command.hpp"

#include <curl/curl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "cli/check_command.hpp"
#include "cli/status_command.hpp"
#include "daemon/config.hpp"
#include "daemon/shell/command_line.hpp"
#include "daemon/shell/control_socket.hpp"
#include "provider/digitalocean_api.hpp"

namespace failoverd::cli {

namespace po = boost::program_options;
namespace api = digitalocean;
using nlohmann::json;

namespace {

constexpr const char* kServiceCredentials = "/run/credentials/failoverd.service";

constexpr Duration kDefaultApiTimeout = std::chrono::seconds(5);
constexpr Duration kMetadataTimeout = std::chrono::seconds(2);  // go-metadata's choice
constexpr Duration kDockerTimeout = std::chrono::seconds(2);
constexpr Duration kControlTimeout = std::chrono::seconds(5);
constexpr std::size_t kMaxBody = 4 * 1024 * 1024;
// droplet:read also lets a reserved IP's reply say which droplet holds it.
constexpr const char* kTokenScopes =
    "reserved_ip:read, reserved_ip:update and droplet:read (plus tag:read for peers_from_tag)";

enum class Verdict { Ok, Fail, Skip };

const char* to_string(Verdict v) {
    switch (v) {
        case Verdict::Ok:
            return "ok";
        case Verdict::Fail:
            return "FAIL";
        case Verdict::Skip:
            return "skip";
    }
    return "?";
}

struct Item {
    std::string name;
    Verdict verdict = Verdict::Ok;
    std::string detail;
    std::string hint;                // how to fix it (failures; a skip may say what to do)
    std::vector<std::string> lines;  // the config's FILE:LINE errors
};

po::options_description options() {
    po::options_description desc("Options");
    // clang-format off
    desc.add_options()
        ("help,h", "show this help")
        ("config,c", po::value<std::string>()->value_name("FILE")
             ->default_value(kDefaultConfigPath), "config file")
        ("socket,s", po::value<std::string>()->value_name("PATH"),
         "control socket of the running daemon (default: [node] control_socket)")
        ("timeout", po::value<std::string>()->value_name("DURATION"),
         "per API request (default 5s; the metadata service and Docker get 2s)")
        ("json", po::bool_switch(), "print one JSON document instead of text");
    // clang-format on
    return desc;
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) {
        return "";
    }
    return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

std::string octal_mode(mode_t mode) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
    return buf;
}

// One blocking HTTP exchange. The Authorization header is handed to curl and nowhere else.
struct HttpCall {
    std::string method = "GET";
    std::string url;
    std::vector<std::string> headers;
    std::string body;
    Duration timeout = kDefaultApiTimeout;
    std::string ca_file;
    std::string unix_socket;
};

size_t on_body(char* data, size_t size, size_t count, void* user) {
    auto* response = static_cast<api::ApiResponse*>(user);
    const size_t n = size * count;
    if (response->body.size() + n > kMaxBody) {
        return 0;
    }
    response->body.append(data, n);
    return n;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
    auto* response = static_cast<api::ApiResponse*>(user);
    const size_t n = size * count;
    const std::string line(data, n);
    if (line.rfind("HTTP/", 0) == 0) {
        response->headers.clear();  // a new (final) response starts
    } else if (const auto colon = line.find(':'); colon != std::string::npos) {
        response->headers[lower(trim(line.substr(0, colon)))] = trim(line.substr(colon + 1));
    }
    return n;
}

api::ApiResponse perform(const HttpCall& call) {
    api::ApiResponse response;
    CURL* easy = curl_easy_init();
    if (easy == nullptr) {
        response.transport_error = true;
        response.transport_detail = "curl_easy_init failed";
        return response;
    }
    curl_slist* headers = nullptr;
    for (const std::string& h : call.headers) {
        headers = curl_slist_append(headers, h.c_str());
    }
    char error[CURL_ERROR_SIZE] = {};
    const long timeout_ms = static_cast<long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(call.timeout).count());
    curl_easy_setopt(easy, CURLOPT_URL, call.url.c_str());
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, call.method.c_str());
    if (call.method == "POST") {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, call.body.c_str());
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(call.body.size()));
    }
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, std::min(timeout_ms, 3000L));
    curl_easy_setopt(easy, CURLOPT_PROXY, "");  // as the daemon: no environment proxies
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &response);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, &response);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "failoverctl-doctor/" FAILOVERD_VERSION);
    if (!call.ca_file.empty()) {
        curl_easy_setopt(easy, CURLOPT_CAINFO, call.ca_file.c_str());
    }
    if (!call.unix_socket.empty()) {
        curl_easy_setopt(easy, CURLOPT_UNIX_SOCKET_PATH, call.unix_socket.c_str());
    }
    const CURLcode code = curl_easy_perform(easy);
    if (code == CURLE_OK) {
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &response.status);
    } else {
        response.status = 0;
        response.transport_error = true;
        response.timed_out = code == CURLE_OPERATION_TIMEDOUT;
        response.transport_detail = error[0] != '\0' ? error : curl_easy_strerror(code);
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(easy);
    return response;
}

// "HTTP 401 Unauthorized: Unable to authenticate you (request 7c2e...)", or why no answer came.
std::string answer_text(const api::ApiResponse& r, const std::string& url) {
    if (r.status == 0) {
        return "no answer from " + url + ": " + r.transport_detail;
    }
    const api::ApiError e = api::parse_error(r);
    std::string out = "HTTP " + std::to_string(r.status);
    if (r.status >= 400) {
        if (!e.id.empty()) {
            out += " " + e.id;
        }
        if (!e.message.empty()) {
            out += ": " + e.message;
        }
    }
    out += e.request_id.empty() ? " (no request id)" : " (request " + e.request_id + ")";
    return out;
}

bool executable_file(const std::string& path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0;
}

// A hook's or command's argv[0]: an absolute path, or a name to look up in PATH.
std::optional<std::string> find_program(const std::string& program, std::string& why) {
    if (program.find('/') != std::string::npos) {
        struct stat st {};
        if (stat(program.c_str(), &st) != 0) {
            why = program + ": " + std::strerror(errno);
            return std::nullopt;
        }
        if (!S_ISREG(st.st_mode)) {
            why = program + " is not a regular file";
            return std::nullopt;
        }
        if (access(program.c_str(), X_OK) != 0) {
            why = program + " is not executable (mode " + octal_mode(st.st_mode) + ")";
            return std::nullopt;
        }
        return program;
    }
    const char* path = std::getenv("PATH");
    std::stringstream dirs(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
        const std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
        if (executable_file(candidate)) {
            return candidate;
        }
    }
    why = program + " not found in PATH";
    return std::nullopt;
}

class Doctor {
  public:
    Doctor(std::string config_path, std::optional<std::string> socket, Duration api_timeout)
        : config_path_(std::move(config_path)),
          socket_(std::move(socket)),
          api_timeout_(api_timeout) {}

    void run() {
        if (!check_config()) {
            return;
        }
        if (config_.provider.type == ProviderType::DigitalOcean) {
            check_digitalocean();
        } else {
            const std::string why = "provider = " + to_string(config_.provider.type);
            for (const char* name : {"token file", "token", "droplet id"}) {
                add(name, Verdict::Skip, why + ": no DigitalOcean API");
            }
        }
        check_peers();
        check_docker();
        check_commands();
    }

    const std::vector<Item>& items() const { return items_; }

  private:
    void add(std::string name, Verdict v, std::string detail, std::string hint = "") {
        items_.push_back(Item{std::move(name), v, std::move(detail), std::move(hint), {}});
    }

    bool check_config() {
        try {
            config_ = load_config(config_path_, ConfigScope::Daemon);
            add("config", Verdict::Ok, config_.summary());
            return true;
        } catch (const ConfigErrors& e) {
            Item item{"config",
                      Verdict::Fail,
                      std::to_string(e.errors().size()) + " error(s) in " + config_path_,
                      "fix the lines below; `failoverd --check-config --config " + config_path_ +
                          "` checks again",
                      {}};
            for (const ConfigError& error : e.errors()) {
                item.lines.push_back(error.to_string());
            }
            items_.push_back(std::move(item));
        }
        // The checks' view skips the files only the daemon reads (token, key, hooks), so the
        // items below still say which of those is the problem.
        try {
            config_ = load_config(config_path_, ConfigScope::Checks);
            return true;
        } catch (const std::exception&) {
            add("everything else", Verdict::Skip, "the config does not load");
            return false;
        }
    }

    std::string api_url(const std::string& path) const {
        std::string base = config_.provider.api_base_url;
        while (!base.empty() && base.back() == '/') {
            base.pop_back();
        }
        return base + path;
    }

    std::string metadata_url(const std::string& what) const {
        std::string base = config_.provider.metadata_base_url;
        while (!base.empty() && base.back() == '/') {
            base.pop_back();
        }
        return base + "/metadata/v1/" + what;
    }

    api::ApiResponse call_api(const api::ApiRequest& request) const {
        HttpCall call;
        call.method = request.method;
        call.url = api_url(request.path);
        call.body = request.body;
        call.timeout = api_timeout_;
        call.ca_file = config_.provider.ca_file;
        call.headers.push_back("Authorization: Bearer " + token_);
        for (const auto& [name, value] : request.headers) {
            call.headers.push_back(name + ": " + value);
        }
        if (request.method == "POST" &&
            std::none_of(request.headers.begin(), request.headers.end(),
                         [](const auto& h) { return lower(h.first) == "content-type"; })) {
            call.headers.emplace_back("Content-Type: application/json");
        }
        return perform(call);
    }

    std::optional<std::string> metadata(const std::string& what, std::string& why) const {
        HttpCall call;
        call.url = metadata_url(what);
        call.timeout = kMetadataTimeout;
        const api::ApiResponse r = perform(call);
        if (r.status != 200) {
            why = r.status == 0 ? "no answer from " + call.url + ": " + r.transport_detail
                                : call.url + " answered HTTP " + std::to_string(r.status);
            return std::nullopt;
        }
        return trim(r.body);
    }

    std::string token_path() const {
        if (!config_.provider.token_file.empty()) {
            return config_.provider.token_file;
        }
        const char* credentials = std::getenv("CREDENTIALS_DIRECTORY");
        return credentials != nullptr ? std::string(credentials) + "/do-token" : "";
    }

    bool check_token_file() {
        const std::string path = token_path();
        if (path.empty()) {
            add("token file", Verdict::Fail,
                "no [provider] token_file and no $CREDENTIALS_DIRECTORY/do-token",
                "put the token in /etc/credstore/failoverd-do-token (mode 0600; the unit's "
                "LoadCredential= reads it) and run doctor with CREDENTIALS_DIRECTORY="
                "/run/credentials/failoverd.service, or set token_file = "
                "/etc/failoverd/do-token (mode 0600)");
            return false;
        }
        struct stat st {};
        if (stat(path.c_str(), &st) != 0) {
            add("token file", Verdict::Fail, path + ": " + std::strerror(errno),
                "write the API token to " + path + " and chmod 600 it");
            return false;
        }
        if (!S_ISREG(st.st_mode)) {
            add("token file", Verdict::Fail, path + " is not a regular file",
                "token_file must name the file that holds the token");
            return false;
        }
        if ((st.st_mode & 077) != 0) {
            add("token file", Verdict::Fail,
                path + " has mode " + octal_mode(st.st_mode) +
                    "; group and others must have no access",
                "chmod 600 " + path);
            return false;
        }
        std::ifstream in(path);
        if (!in) {
            add("token file", Verdict::Fail, "cannot read " + path + ": " + std::strerror(errno),
                "run doctor as root or as the user failoverd runs as");
            return false;
        }
        std::stringstream text;
        text << in.rdbuf();
        token_ = trim(text.str());
        if (token_.empty()) {
            add("token file", Verdict::Fail, path + " is empty",
                "write the API token (dop_v1_...) to " + path);
            return false;
        }
        add("token file", Verdict::Ok, path + ", mode " + octal_mode(st.st_mode));
        return true;
    }

    void check_digitalocean() {
        if (!check_token_file()) {
            add("token", Verdict::Skip, "no readable token");
            check_droplet();
            return;
        }
        const std::string account_url = api_url(api::account_request().path);
        const api::ApiResponse account = call_api(api::account_request());
        const std::string how = answer_text(account, account_url);
        if (account.status == 401) {
            add("token", Verdict::Fail, "token rejected: " + how,
                "create a new token with " + std::string(kTokenScopes) + " and write it to " +
                    token_path());
            token_ok_ = false;
        } else if (account.status == 200 || account.status == 403) {
            // 403: a custom-scope token without account:read; it did authenticate.
            add("token", Verdict::Ok, "accepted by " + api_url("") + ": " + how);
            token_ok_ = true;
        } else {
            add("token", Verdict::Fail, "cannot check the token: " + how,
                account.status == 0
                    ? "check api_base_url, DNS and that HTTPS to the API is allowed out"
                    : "the API is failing; try again in a minute (status.digitalocean.com)");
            token_ok_ = false;
        }
        check_droplet();
        for (const InstanceConfig& i : config_.instances) {
            check_reserved_ip(i);
        }
        check_tag();
    }

    void check_droplet() {
        const ProviderConfig& p = config_.provider;
        if (p.droplet_id != "auto") {
            droplet_id_ = api::parse_id(p.droplet_id);
            add("droplet id", Verdict::Ok, p.droplet_id + " (from the config)");
        } else {
            std::string why;
            const auto id = metadata("id", why);
            droplet_id_ = id ? api::parse_id(*id) : std::nullopt;
            if (!droplet_id_) {
                add("droplet id", Verdict::Fail,
                    id ? "the metadata service answered '" + *id + "', not a droplet id" : why,
                    "run doctor on the droplet (the metadata service " + p.metadata_base_url +
                        " is link-local), or set droplet_id = N in [provider]");
            } else {
                add("droplet id", Verdict::Ok,
                    std::to_string(*droplet_id_) + " (from " + metadata_url("id") + ")");
                region_ = metadata("region", why);
                if (region_) {
                    add("droplet region", Verdict::Ok,
                        *region_ + " (from " + metadata_url("region") + ")");
                } else {
                    add("droplet region", Verdict::Fail, why,
                        "the metadata service must answer " + metadata_url("region"));
                }
                return;
            }
        }
        if (!droplet_id_) {
            add("droplet region", Verdict::Skip, "no droplet id");
            return;
        }
        if (!token_ok_) {
            add("droplet region", Verdict::Skip, "no usable token to ask the API");
            return;
        }
        const auto request = api::droplet_request(*droplet_id_);
        const api::ApiResponse r = call_api(request);
        const std::string how = answer_text(r, api_url(request.path));
        const auto droplet = r.status == 200 ? api::parse_droplet(r.body) : std::nullopt;
        if (droplet && !droplet->region.empty()) {
            region_ = droplet->region;
            add("droplet region", Verdict::Ok,
                droplet->region + " (droplet " + droplet->name + " at the API, " + how + ")");
        } else if (r.status == 404) {
            add("droplet region", Verdict::Fail,
                "droplet " + std::to_string(*droplet_id_) + " not found: " + how,
                "set droplet_id to this droplet's id (curl " + metadata_url("id") +
                    " on it), or droplet_id = auto");
        } else if (r.status == 403) {
            add("droplet region", Verdict::Skip,
                "the token may not read droplets (droplet:read): " + how,
                "add droplet:read to the token to compare regions");
        } else {
            add("droplet region", Verdict::Fail, "cannot read the droplet: " + how,
                "try again; if it persists check api_base_url");
        }
    }

    void check_reserved_ip(const InstanceConfig& i) {
        const std::string name = "reserved IP " + i.name;
        if (i.reserved_ip.empty()) {
            add(name, Verdict::Fail, "[instance." + i.name + "] has no reserved_ip",
                "set reserved_ip = A.B.C.D in [instance." + i.name + "]");
            return;
        }
        if (!token_ok_) {
            add(name, Verdict::Skip, i.reserved_ip + ": no usable token");
            return;
        }
        const auto request = api::read_holder_request(i.reserved_ip);
        const api::ApiResponse r = call_api(request);
        const std::string how = answer_text(r, api_url(request.path));
        const auto ip = r.status == 200 ? api::parse_reserved_ip(r.body) : std::nullopt;
        if (r.status == 404) {
            add(name, Verdict::Fail, i.reserved_ip + " is not in this account: " + how,
                "check reserved_ip in [instance." + i.name + "] (line " + std::to_string(i.line) +
                    ") against the account's reserved IPs (doctl compute reserved-ip list)");
            return;
        }
        if (r.status == 403) {
            add(name, Verdict::Fail, "the token may not read " + i.reserved_ip + ": " + how,
                "create a token with " + std::string(kTokenScopes));
            return;
        }
        if (!ip) {
            add(name, Verdict::Fail, "cannot read " + i.reserved_ip + ": " + how,
                r.status == 200 ? "the API answered something unexpected; check api_base_url"
                                : "try again; if it persists check api_base_url");
            return;
        }
        if (!ip->holder_shown) {
            add("holder " + i.name, Verdict::Fail,
                "the answer for " + i.reserved_ip +
                    " has no droplet, so failoverd cannot tell who holds it and will not move it",
                "add droplet:read to the token (create a token with " + std::string(kTokenScopes) +
                    ")");
        }
        std::string holder = ip->holder_shown ? "unassigned" : "holder unknown";
        if (ip->holder) {
            holder = "held by droplet " + std::to_string(*ip->holder);
            if (droplet_id_ && *ip->holder == *droplet_id_) {
                holder += " (this droplet)";
            }
        }
        add(name, Verdict::Ok,
            i.reserved_ip + " in " + (ip->region.empty() ? "an unknown region" : ip->region) +
                ", " + holder + (ip->locked ? ", locked by a pending action" : "") +
                "; the token may read it");
        const std::string region_item = "region " + i.name;
        if (!region_ || ip->region.empty()) {
            add(region_item, Verdict::Skip, "the droplet's or the IP's region is unknown");
        } else if (*region_ != ip->region) {
            add(region_item, Verdict::Fail,
                i.reserved_ip + " is in " + ip->region + ", this droplet in " + *region_,
                "a reserved IP moves only between droplets of its region: use a reserved IP "
                "of " +
                    *region_ + ", or run the cluster in " + ip->region);
        } else {
            add(region_item, Verdict::Ok, "both in " + *region_);
        }
        check_assign(i);
    }

    // The write-permission probe: an assign with no droplet_id. DigitalOcean checks the
    // token's scope before the body, so a token allowed to assign gets 422 (the body is
    // incomplete) and one without reserved_ip:update gets 403. Nothing is assigned either way.
    void check_assign(const InstanceConfig& i) {
        api::ApiRequest probe;
        probe.method = "POST";
        probe.path = api::read_holder_request(i.reserved_ip).path + "/actions";
        probe.body = R"({"type":"assign"})";
        probe.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
        const api::ApiResponse r = call_api(probe);
        const std::string how = answer_text(r, api_url(probe.path));
        const std::string name = "assign " + i.name;
        if (r.status == 422 || r.status == 400) {
            add(name, Verdict::Ok,
                "the token may assign " + i.reserved_ip +
                    " (an assign without a droplet was refused as incomplete, nothing changed: " +
                    how + ")");
        } else if (r.status == 403 || r.status == 401) {
            add(name, Verdict::Fail,
                "the token may not assign " + i.reserved_ip + " (no reserved_ip:update): " + how,
                "create a token with " + std::string(kTokenScopes) + " and write it to " +
                    token_path());
        } else {
            add(name, Verdict::Fail, "unexpected answer to the assign probe: " + how,
                r.status == 0 || r.status >= 500 ? "try again in a minute" : "check api_base_url");
        }
    }

    void check_tag() {
        const std::string& tag = config_.cluster.peers_from_tag;
        if (tag.empty()) {
            add("peers from tag", Verdict::Skip, "no peers_from_tag in [cluster]");
            return;
        }
        if (!token_ok_) {
            add("peers from tag", Verdict::Skip, "tag " + tag + ": no usable token");
            return;
        }
        std::vector<std::string> found;
        for (int page = 1; page <= 20; ++page) {
            const auto request = api::tagged_droplets_request(tag, page);
            const api::ApiResponse r = call_api(request);
            const std::string how = answer_text(r, api_url(request.path));
            const auto list = r.status == 200 ? api::parse_droplets(r.body, page) : std::nullopt;
            if (!list) {
                add("peers from tag", Verdict::Fail,
                    "cannot list droplets tagged " + tag + ": " + how,
                    r.status == 403 ? "listing droplets by tag needs droplet:read and tag:read: "
                                      "add them to the token"
                                    : "try again; if it persists check api_base_url");
                return;
            }
            for (const api::Droplet& d : list->droplets) {
                if (droplet_id_ && d.id == *droplet_id_) {
                    continue;
                }
                found.push_back(d.name + " " +
                                (d.private_ipv4.empty() ? "(no private address)" : d.private_ipv4));
            }
            if (!list->has_next) {
                break;
            }
        }
        if (found.empty()) {
            add("peers from tag", Verdict::Fail, "no other droplet is tagged " + tag,
                "tag the other nodes: doctl compute droplet tag DROPLET --tag-name " + tag);
            return;
        }
        std::string list;
        for (const std::string& f : found) {
            list += (list.empty() ? "" : ", ") + f;
        }
        add("peers from tag", Verdict::Ok,
            std::to_string(found.size()) + " peer(s): " + list +
                (droplet_id_ ? "" : " (this droplet's id is unknown, so it may be listed)"));
    }

    Duration freshness() const {
        // Backups announce themselves every 5 adverts; allow three of those missed.
        Duration interval = config_.cluster.advert_interval;
        for (const InstanceConfig& i : config_.instances) {
            interval = std::max(interval, i.effective_advert_interval(config_.cluster));
        }
        return interval * 15 + std::chrono::seconds(2);
    }

    void check_peers() {
        if (config_.cluster.peers.empty() && config_.cluster.peers_from_tag.empty()) {
            add("peers", Verdict::Skip, "no peers configured (a single node)");
            return;
        }
        const std::string socket = socket_.value_or(config_.node.control_socket);
        json status;
        try {
            const json answer = control_request(socket, {{"command", "status"}}, kControlTimeout);
            if (!answer.value("ok", false) || !answer.contains("status")) {
                add("peers", Verdict::Skip, "failoverd at " + socket + " did not answer status",
                    "start failoverd, then run doctor again");
                return;
            }
            status = answer["status"];
        } catch (const ControlError& e) {
            add("peers", Verdict::Skip,
                std::string("cannot ask the daemon whether peers answer: ") + e.what(),
                e.kind() == ControlError::Kind::PermissionDenied
                    ? "run doctor as root or as failoverd's user"
                    : "start failoverd, then run doctor again");
            return;
        }
        check_instance_names(status);
        const json peers = status.value("peers", json::array());
        if (!peers.is_array() || peers.empty()) {
            add("peers", Verdict::Skip, "the daemon knows no peer yet",
                "with peers_from_tag, see `failoverctl status` for the discovery");
            return;
        }
        const double fresh = seconds(freshness());
        for (const json& p : peers) {
            const std::string address = p.value("address", "?");
            const std::string name = "peer " + address;
            const std::uint64_t bad = p.value("bad_mac", std::uint64_t{0});
            const std::uint64_t received = p.value("received", std::uint64_t{0});
            const json verified = p.value("last_verified_s_ago", json(nullptr));
            const bool recent = verified.is_number() && verified.get<double>() <= fresh;
            char ago[32] = "";
            if (verified.is_number()) {
                std::snprintf(ago, sizeof ago, "%.1f s", verified.get<double>());
            }
            if (recent) {
                add(name, Verdict::Ok,
                    std::string("answers with the same auth key (last verified advert ") + ago +
                        " ago" +
                        (bad != 0 ? "; " + std::to_string(bad) + " bad-MAC datagram(s) earlier"
                                  : "") +
                        ")");
            } else if (bad != 0) {
                add(name, Verdict::Fail,
                    std::to_string(bad) +
                        " advert(s) from it failed the MAC check: it uses a different auth key",
                    "copy " + config_.cluster.auth_key_file +
                        " (the same bytes) to every node, then reload both");
            } else if (received == 0) {
                add(name, Verdict::Fail, "nothing received from it",
                    "start failoverd there, let UDP " + config_.node.listen.to_string() +
                        " in through the firewall, and list this node as its peer");
            } else {
                add(name, Verdict::Fail,
                    verified.is_number() ? std::string("last verified advert ") + ago + " ago"
                                         : std::string("none of its datagrams verified"),
                    "check that failoverd runs there and that the network between the nodes "
                    "is up");
            }
        }
    }

    // Adverts for an instance this node does not have: the names differ, so each side drops
    // the other's adverts and both become MASTER.
    void check_instance_names(const json& status) {
        const json adverts = status.value("adverts", json::object());
        const json foreign =
            adverts.is_object() ? adverts.value("unknown_instances", json::array()) : json::array();
        if (!foreign.is_array() || foreign.empty()) {
            return;
        }
        std::string mine;
        for (const InstanceConfig& i : config_.instances) {
            mine += (mine.empty() ? "'" : ", '") + i.name + "'";
        }
        for (const json& f : foreign) {
            const std::string peer = f.value("peer", "?");
            const std::string instance = f.value("instance", "?");
            add("instance names", Verdict::Fail,
                peer + " advertises instance '" + instance + "' (" +
                    std::to_string(f.value("adverts", std::uint64_t{0})) +
                    " adverts), not configured here; this node has " +
                    (mine.empty() ? std::string("no instance") : mine),
                "instance names are the group identity (keepalived's virtual_router_id) and must "
                "match on every node: use the same [instance.NAME] on " +
                    peer + " and on this node");
        }
    }

    void check_docker() {
        bool any = false;
        for (const CheckConfig& c : config_.checks) {
            if (c.type != CheckType::Docker) {
                continue;
            }
            any = true;
            const std::string name = "docker " + c.name;
            struct stat st {};
            if (stat(c.docker_socket.c_str(), &st) != 0) {
                add(name, Verdict::Fail, c.docker_socket + ": " + std::strerror(errno),
                    "start Docker, or set socket = PATH in [check." + c.name + "]");
                continue;
            }
            if (!S_ISSOCK(st.st_mode)) {
                add(name, Verdict::Fail, c.docker_socket + " is not a socket",
                    "set socket in [check." + c.name + "] to the engine's socket");
                continue;
            }
            HttpCall call;
            call.url = "http://localhost/_ping";
            call.unix_socket = c.docker_socket;
            call.timeout = kDockerTimeout;
            const api::ApiResponse r = perform(call);
            if (r.status == 200) {
                add(name, Verdict::Ok, c.docker_socket + " answers /_ping");
            } else if (r.status == 0) {
                add(name, Verdict::Fail,
                    "cannot talk to " + c.docker_socket + ": " + r.transport_detail,
                    access(c.docker_socket.c_str(), R_OK | W_OK) != 0
                        ? "run failoverd as root or add its user to the docker group"
                        : "is the Docker engine running? (systemctl status docker)");
            } else {
                add(name, Verdict::Fail,
                    c.docker_socket + " answered /_ping with HTTP " + std::to_string(r.status),
                    "check the Docker engine (docker info)");
            }
        }
        if (!any) {
            add("docker", Verdict::Skip, "no docker checks");
        }
    }

    void check_program(const std::string& name, const std::vector<std::string>& argv,
                       const std::string& where) {
        if (argv.empty()) {
            return;
        }
        std::string why;
        if (const auto found = find_program(argv[0], why)) {
            add(name, Verdict::Ok, *found + " is executable");
        } else {
            add(name, Verdict::Fail, why, "install it or fix " + where);
        }
    }

    void check_commands() {
        const std::size_t before = items_.size();
        for (const InstanceConfig& i : config_.instances) {
            const std::string section = "[instance." + i.name + "]";
            check_program("hook " + i.name + " notify_master", i.notify_master,
                          "notify_master in " + section);
            check_program("hook " + i.name + " notify_backup", i.notify_backup,
                          "notify_backup in " + section);
            check_program("hook " + i.name + " notify_fault", i.notify_fault,
                          "notify_fault in " + section);
            check_program("hook " + i.name + " notify_stop", i.notify_stop,
                          "notify_stop in " + section);
            check_program("hook " + i.name + " notify", i.notify, "notify in " + section);
        }
        for (const CheckConfig& c : config_.checks) {
            if (c.type == CheckType::Exec) {
                check_program("exec check " + c.name, c.command,
                              "command in [check." + c.name + "]");
            }
        }
        if (config_.provider.type == ProviderType::Exec) {
            check_program("exec provider", config_.provider.exec_command, "command in [provider]");
        }
        if (items_.size() == before) {
            add("hooks", Verdict::Skip, "no hooks or commands configured");
        }
    }

    std::string config_path_;
    std::optional<std::string> socket_;
    Duration api_timeout_;
    Config config_;
    std::string token_;  // never printed
    bool token_ok_ = false;
    std::optional<std::int64_t> droplet_id_;
    std::optional<std::string> region_;
    std::vector<Item> items_;
};

}  // namespace

std::string doctor_usage() {
    std::ostringstream out;
    out << "Usage: failoverctl doctor [--config FILE] [--socket PATH] [--timeout DURATION] "
           "[--json]\n\n"
           "Checks what failoverd needs before it can move a reserved IP: the config, the API\n"
           "token file and the token's scopes, the droplet id and region, each reserved IP,\n"
           "peers (through the running daemon), Docker sockets, hooks and commands. One line\n"
           "per item; each failure says how to fix it. Changes nothing. Exit 1 when an item\n"
           "failed.\n\n"
        << options();
    return out.str();
}

int doctor_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    po::variables_map vm;
    try {
        parse_command_line(args, options(), vm);
    } catch (const po::error& e) {
        err << "failoverctl doctor: " << e.what() << "\n" << doctor_usage();
        return kExitUsage;
    }
    if (vm.count("help")) {
        out << doctor_usage();
        return kExitOk;
    }
    Duration timeout = kDefaultApiTimeout;
    if (vm.count("timeout")) {
        const auto parsed = parse_duration(vm["timeout"].as<std::string>());
        if (!parsed || *parsed <= Duration::zero()) {
            err << "failoverctl doctor: --timeout: not a duration (e.g. 5s, 500ms)\n";
            return kExitUsage;
        }
        timeout = *parsed;
    }
    std::optional<std::string> socket;
    if (vm.count("socket")) {
        socket = vm["socket"].as<std::string>();
    }
    // Run from a shell, doctor does not see the credential systemd hands the service
    // (LoadCredential=do-token:...); while the service runs, its copy is readable by root here.
    if (std::getenv("CREDENTIALS_DIRECTORY") == nullptr &&
        access((std::string(kServiceCredentials) + "/do-token").c_str(), R_OK) == 0) {
        setenv("CREDENTIALS_DIRECTORY", kServiceCredentials, 0);
    }
    Doctor doctor(vm["config"].as<std::string>(), socket, timeout);
    doctor.run();

    int failed = 0;
    int skipped = 0;
    for (const Item& i : doctor.items()) {
        failed += i.verdict == Verdict::Fail ? 1 : 0;
        skipped += i.verdict == Verdict::Skip ? 1 : 0;
    }
    const int passed = static_cast<int>(doctor.items().size()) - failed - skipped;
    if (vm["json"].as<bool>()) {
        json items = json::array();
        for (const Item& i : doctor.items()) {
            json j{{"item", i.name},
                   {"status", lower(to_string(i.verdict))},
                   {"detail", i.detail},
                   {"hint", i.hint.empty() ? json(nullptr) : json(i.hint)}};
            if (!i.lines.empty()) {
                j["errors"] = i.lines;
            }
            items.push_back(std::move(j));
        }
        out << json{{"config", vm["config"].as<std::string>()},
                    {"ok", failed == 0},
                    {"passed", passed},
                    {"failed", failed},
                    {"skipped", skipped},
                    {"items", std::move(items)}}
                   .dump(2)
            << "\n";
    } else {
        for (const Item& i : doctor.items()) {
            char status[8];
            std::snprintf(status, sizeof status, "%-4s", to_string(i.verdict));
            out << status << " " << i.name << ": " << i.detail;
            if (!i.hint.empty()) {
                out << "; " << (i.verdict == Verdict::Fail ? "fix: " : "") << i.hint;
            }
            out << "\n";
            for (const std::string& line : i.lines) {
                out << "       " << line << "\n";
            }
        }
        out << "\ndoctor: " << passed << " ok, " << failed << " failed, " << skipped
            << " skipped\n";
    }
    return failed == 0 ? kExitOk : kExitFailed;
}

}  // namespace failoverd::cli
