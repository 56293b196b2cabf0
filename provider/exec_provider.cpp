#include "provider/exec_provider.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cctype>
#include <utility>

#include "daemon/core/text_escape.hpp"

namespace failoverd {

namespace {

constexpr std::size_t kLastLineMax = 200;

std::string release_role(Role role) {
    switch (role) {
        case Role::Backup:
            return "backup";
        case Role::Fault:
            return "fault";
        case Role::Init:
        case Role::Master:
            break;
    }
    return "stop";
}

}  // namespace

ExecProvider::ExecProvider(EventLoop& loop, const ProviderConfig& config, std::string node_name)
    : loop_(loop), config_(config), node_name_(std::move(node_name)) {}

ExecProvider::~ExecProvider() {
    ++generation_;
    running_.clear();
}

std::uint64_t ExecProvider::spawn(Kind kind, const std::string& instance, const std::string& ip,
                                  const std::string& role,
                                  std::function<void(const ChildExit&, const std::string&)> done) {
    const std::string op = kind == Kind::Assign ? "assign" : "release";
    ChildSpec spec;
    spec.name = "[" + instance + "] provider " + op;
    spec.argv = config_.exec_command;
    spec.argv.insert(spec.argv.end(), {op, ip, instance, role});
    // The names and values the hooks get (hook_runner.cpp); FAILOVERD_IP is the older name.
    std::string upper_role = role;
    for (char& c : upper_role) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    spec.env = {{"FAILOVERD_OP", op},           {"FAILOVERD_RESERVED_IP", ip},
                {"FAILOVERD_IP", ip},           {"FAILOVERD_INSTANCE", instance},
                {"FAILOVERD_ROLE", upper_role}, {"FAILOVERD_NODE", node_name_}};
    spec.timeout = config_.request_timeout;
    const std::uint64_t id = next_child_++;
    spec.on_line = [this, id](OutputStream, std::string_view line) {
        const auto it = running_.find(id);
        if (it != running_.end() && !line.empty()) {
            it->second.last_line = escape_text(line.substr(0, kLastLineMax));
        }
    };
    Running& r = running_[id];
    r.kind = kind;
    r.child = std::make_unique<ChildProcess>(loop_, std::move(spec));
    r.child->start([this, id, done = std::move(done)](const ChildExit& exit) {
        const auto it = running_.find(id);
        if (it == running_.end()) {
            return;
        }
        const std::string last_line = std::move(it->second.last_line);
        const ChildExit copy = exit;
        running_.erase(it);  // destroys the ChildProcess; allowed from its done callback
        done(copy, last_line);
    });
    return id;
}

void ExecProvider::call(const CallProvider& call, Done done) {
    ++calls_;
    switch (call.op) {
        case ProviderOp::ReadHolder: {
            ProviderReplied reply;
            reply.outcome = ProviderOutcome::Ok;
            const auto it = terms_.find(call.instance);
            reply.holder = it != terms_.end() && it->second.assigned ? node_name_ : std::string();
            record(call, reply);
            answer_later(std::move(reply), std::move(done));
            return;
        }
        case ProviderOp::ReadAction: {
            ProviderReplied reply;
            reply.outcome = ProviderOutcome::NotFound;
            reply.detail = "the exec provider has no actions to read";
            record(call, reply);
            answer_later(std::move(reply), std::move(done));
            return;
        }
        case ProviderOp::Assign:
            break;
    }
    const std::uint64_t term = terms_[call.instance].number;
    const std::uint64_t generation = generation_;
    spawn(Kind::Assign, call.instance, call.ip, "master",
          [this, call, term, generation, done = std::move(done)](const ChildExit& exit,
                                                                 const std::string& last_line) {
              if (generation != generation_) {
                  return;
              }
              ProviderReplied reply;
              std::string text = exit.describe(config_.request_timeout);
              if (!last_line.empty()) {
                  text += ": " + last_line;
              }
              reply.detail = std::move(text);
              if (exit.success()) {
                  reply.outcome = ProviderOutcome::Ok;
                  Term& t = terms_[call.instance];
                  // An answer from an earlier term must not make a later one look assigned.
                  if (t.number == term) {
                      t.assigned = true;
                  }
              } else if (exit.exit_code == kExitRejected) {
                  reply.outcome = ProviderOutcome::Rejected;
              } else {
                  reply.outcome = ProviderOutcome::Transient;
              }
              record(call, reply);
              done(std::move(reply));
          });
}

void ExecProvider::on_role(const std::string& instance, const std::string& ip, Role role) {
    Term& t = terms_[instance];
    ++t.number;
    t.assigned = false;
    if (role == Role::Master) {
        return;
    }
    const std::string what = release_role(role);
    ++releases_started_;
    spawn(Kind::Release, instance, ip, what,
          [this, instance, ip, what](const ChildExit& exit, const std::string& last_line) {
              const std::string text = exit.describe(config_.request_timeout) +
                                       (last_line.empty() ? "" : ": " + last_line);
              if (exit.success()) {
                  spdlog::info("[{}] provider release {} ({}) done: {}", instance, ip, what, text);
                  return;
              }
              ++releases_failed_;
              spdlog::warn("[{}] provider release {} ({}) failed, ignoring: {}", instance, ip, what,
                           text);
          });
}

void ExecProvider::cancel_all() {
    ++generation_;
    for (auto it = running_.begin(); it != running_.end();) {
        if (it->second.kind == Kind::Assign) {
            it = running_.erase(it);
        } else {
            ++it;
        }
    }
}

void ExecProvider::answer_later(ProviderReplied reply, Done done) {
    std::weak_ptr<int> alive = alive_;
    loop_.post([this, alive, generation = generation_, reply = std::move(reply),
                done = std::move(done)]() mutable {
        if (alive.expired() || generation != generation_) {
            return;
        }
        done(std::move(reply));
    });
}

void ExecProvider::record(const CallProvider& call, ProviderReplied& reply) {
    reply.instance = call.instance;
    reply.request_id = call.request_id;
    ++outcomes_[reply.outcome];
    if (reply.outcome == ProviderOutcome::Ok) {
        return;
    }
    last_error_ = std::string(to_string(call.op)) + ": " + reply.detail;
    const std::string line =
        fmt::format("[{}] provider {} {} failed ({}): {}", call.instance, to_string(call.op),
                    call.ip, to_string(reply.outcome), reply.detail);
    log_.log(loop_.now(), spdlog::level::warn,
             call.instance + "/" + std::string(to_string(call.op)) + "/" +
                 std::string(to_string(reply.outcome)),
             line);
}

std::size_t ExecProvider::assigns_running() const {
    std::size_t n = 0;
    for (const auto& [id, r] : running_) {
        n += r.kind == Kind::Assign ? 1 : 0;
    }
    return n;
}

std::size_t ExecProvider::releases_running() const {
    return running_.size() - assigns_running();
}

nlohmann::json ExecProvider::status() const {
    nlohmann::json out;
    out["type"] = "exec";
    out["identity"] = node_name_;
    out["command"] = config_.exec_command.empty() ? std::string() : config_.exec_command.front();
    out["calls"] = calls_;
    add_outcome_counts(out, outcomes_);
    out["running"] = running_.size();
    out["releases"] = {{"started", releases_started_}, {"failed", releases_failed_}};
    nlohmann::json assigned = nlohmann::json::array();
    for (const auto& [instance, term] : terms_) {
        if (term.assigned) {
            assigned.push_back(instance);
        }
    }
    out["assigned"] = assigned;
    out["last_error"] = last_error_.empty() ? nlohmann::json(nullptr) : nlohmann::json(last_error_);
    return out;
}

}  // namespace failoverd
