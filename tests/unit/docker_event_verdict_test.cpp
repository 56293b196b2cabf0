#include "health/docker_event_verdict.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "health/health_tracker.hpp"

using failoverd::health::CheckPolicy;
using failoverd::health::CheckState;
using failoverd::health::CheckTracker;
using failoverd::health::DockerEvent;
using failoverd::health::DockerEventDecoder;
using failoverd::health::DockerSelector;
using failoverd::health::ProbeResult;
using failoverd::health::Verdict;

namespace {

// As dockerd 20.10 sends it (captured from a real engine, ids shortened).
const std::string kDie =
    R"({"status":"die","id":"4f2a","from":"minitwit:1","Type":"container","Action":"die",)"
    R"("Actor":{"ID":"4f2a","Attributes":{"app":"minitwit","exitCode":"137",)"
    R"("image":"minitwit:1","name":"web-1"}},"scope":"local","time":1700000000,)"
    R"("timeNano":1700000000123456789})";
const std::string kUnhealthy =
    R"({"status":"health_status: unhealthy","id":"9c1d","from":"minitwit:1","Type":"container",)"
    R"("Action":"health_status: unhealthy","Actor":{"ID":"9c1d","Attributes":{"app":"minitwit",)"
    R"("image":"minitwit:1","name":"web-2"}},"scope":"local","time":1700000001,)"
    R"("timeNano":1700000001000000000})";

std::string head(const std::string& extra = "Transfer-Encoding: chunked\r\n") {
    return "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\n" + extra +
           "\r\n";
}

std::string chunk(const std::string& data) {
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", data.size());
    return size + data + "\r\n";
}

DockerEvent event(const std::string& line) {
    auto parsed = failoverd::health::parse_docker_event(line);
    REQUIRE(std::holds_alternative<DockerEvent>(parsed));
    return std::get<DockerEvent>(parsed);
}

}  // namespace

TEST_CASE("docker events: an event line parses into action, name and labels") {
    const DockerEvent die = event(kDie);
    CHECK(die.type == "container");
    CHECK(die.action == "die");
    CHECK(die.base_action() == "die");
    CHECK(die.name == "web-1");
    CHECK(die.id == "4f2a");
    CHECK(die.attributes.at("app") == "minitwit");

    const DockerEvent unhealthy = event(kUnhealthy);
    CHECK(unhealthy.action == "health_status: unhealthy");
    CHECK(unhealthy.base_action() == "health_status");

    auto bad = failoverd::health::parse_docker_event("not json at all");
    REQUIRE(std::holds_alternative<std::string>(bad));
    CHECK(std::get<std::string>(bad).find("not a JSON event") != std::string::npos);
    CHECK(std::holds_alternative<std::string>(failoverd::health::parse_docker_event("[1,2]")));
    CHECK(std::holds_alternative<std::string>(
        failoverd::health::parse_docker_event(R"({"Type":"container"})")));
}

TEST_CASE("docker events: which events signal a failure") {
    for (const char* action : {"die", "kill", "stop", "oom", "destroy", "pause"}) {
        DockerEvent ev;
        ev.action = action;
        CHECK_MESSAGE(event_signals_failure(ev), action);
    }
    for (const char* action : {"start", "unpause", "health_status: healthy", "create"}) {
        DockerEvent ev;
        ev.action = action;
        CHECK_MESSAGE(!event_signals_failure(ev), action);
    }
    CHECK(event_signals_failure(event(kUnhealthy)));
}

TEST_CASE("docker events: an event concerns the checks whose selector matches it") {
    const DockerEvent die = event(kDie);
    CHECK(event_concerns(die, DockerSelector({"app=minitwit"}, ""), {}));
    CHECK(event_concerns(die, DockerSelector({"app"}, "^web-"), {}));
    CHECK(event_concerns(die, DockerSelector({}, ""), {}));
    CHECK_FALSE(event_concerns(die, DockerSelector({"app=other"}, ""), {}));
    CHECK_FALSE(event_concerns(die, DockerSelector({}, "^api-"), {}));
    // A container the check has seen running concerns it even if its labels are gone.
    CHECK(event_concerns(die, DockerSelector({"app=other"}, ""), {"web-1"}));

    DockerEvent nameless;
    nameless.type = "container";
    nameless.action = "destroy";
    CHECK(event_concerns(nameless, DockerSelector({"app=other"}, ""), {}));

    DockerEvent exec = die;
    exec.action = "exec_start: sh -c true";
    CHECK_FALSE(event_concerns(exec, DockerSelector({}, ""), {"web-1"}));
    DockerEvent network = die;
    network.type = "network";
    CHECK_FALSE(event_concerns(network, DockerSelector({}, ""), {"web-1"}));
}

TEST_CASE("docker events: the request filters container events of the watched actions") {
    const std::string target = failoverd::health::docker_events_target("v1.41");
    CHECK(target.rfind("/v1.41/events?filters=", 0) == 0);
    CHECK(target.find("%22type%22%3A%5B%22container%22%5D") != std::string::npos);
    CHECK(target.find("%22health_status%22") != std::string::npos);
    CHECK(target.find(' ') == std::string::npos);
    const std::string request = failoverd::health::docker_events_request(target);
    CHECK(request.rfind("GET " + target + " HTTP/1.1\r\n", 0) == 0);
    CHECK(request.find("\r\nHost: ") != std::string::npos);
    CHECK(request.substr(request.size() - 4) == "\r\n\r\n");
}

TEST_CASE("docker events: chunked stream fed one byte at a time or all at once") {
    const std::string stream =
        head() + chunk(kDie + "\n") + chunk(kUnhealthy + "\n" + kDie) + chunk("\n") + chunk("\n\n");
    for (const std::size_t step : {std::size_t{1}, std::size_t{7}, stream.size()}) {
        DockerEventDecoder d;
        std::vector<DockerEvent> out;
        for (std::size_t i = 0; i < stream.size(); i += step) {
            REQUIRE(d.feed(std::string_view(stream).substr(i, step), out));
        }
        CHECK(d.head_complete());
        CHECK(d.status() == 200);
        REQUIRE(out.size() == 3);
        CHECK(out[0].action == "die");
        CHECK(out[1].action == "health_status: unhealthy");
        CHECK(out[2].name == "web-1");
        CHECK(d.events() == 3);
        CHECK(d.closed() == "engine closed the event stream");
    }
}

TEST_CASE("docker events: head only is an idle stream, not an error") {
    DockerEventDecoder d;
    std::vector<DockerEvent> out;
    const std::string h = head();
    REQUIRE(d.feed(h.substr(0, 10), out));
    CHECK_FALSE(d.head_complete());
    REQUIRE(d.feed(h.substr(10), out));
    CHECK(d.head_complete());
    CHECK(out.empty());
    CHECK(d.state() == DockerEventDecoder::State::Body);
}

TEST_CASE("docker events: a body without chunking is read until the connection closes") {
    DockerEventDecoder d;
    std::vector<DockerEvent> out;
    REQUIRE(d.feed(head("") + kDie + "\n" + kUnhealthy.substr(0, 20), out));
    CHECK(out.size() == 1);
    CHECK(d.closed() == "engine closed the event stream mid-event");
}

TEST_CASE("docker events: broken streams") {
    std::vector<DockerEvent> out;
    SUBCASE("an HTTP error") {
        DockerEventDecoder d;
        CHECK_FALSE(
            d.feed("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\n{}", out));
        CHECK(d.status() == 500);
        CHECK(d.error() == "engine returned HTTP 500");
    }
    SUBCASE("not HTTP") {
        DockerEventDecoder d;
        CHECK_FALSE(d.feed("SSH-2.0-OpenSSH\r\n\r\n", out));
        CHECK(d.error().find("no HTTP response") != std::string::npos);
    }
    SUBCASE("a line that is not JSON") {
        DockerEventDecoder d;
        CHECK_FALSE(d.feed(head() + chunk("this is not an event\n"), out));
        CHECK(d.error().find("not a JSON event: 'this is not an event'") != std::string::npos);
        CHECK(d.state() == DockerEventDecoder::State::Failed);
        CHECK_FALSE(d.feed(chunk(kDie + "\n"), out));
    }
    SUBCASE("events before the garbage are kept") {
        DockerEventDecoder d;
        CHECK_FALSE(d.feed(head() + chunk(kDie + "\n{oops\n"), out));
        CHECK(out.size() == 1);
    }
    SUBCASE("a bad chunk size") {
        DockerEventDecoder d;
        CHECK_FALSE(d.feed(head() + "zz\r\n", out));
        CHECK(d.error().find("bad chunk") != std::string::npos);
    }
    SUBCASE("closed mid-event") {
        DockerEventDecoder d;
        REQUIRE(d.feed(head() + chunk(R"({"Type":"container","Action":"di)"), out));
        CHECK(out.empty());
        CHECK(d.closed() == "engine closed the event stream mid-event");
    }
    SUBCASE("closed before answering") {
        DockerEventDecoder d;
        CHECK(d.closed() == "engine closed the event stream without answering");
    }
    SUBCASE("a line over the bound without a newline") {
        DockerEventDecoder d;
        REQUIRE(d.feed(head(""), out));
        const std::string block(64 * 1024, 'x');
        bool ok = true;
        for (int i = 0; i < 20 && ok; ++i) {
            ok = d.feed(block, out);
        }
        CHECK_FALSE(ok);
        CHECK(d.error().find("without a newline") != std::string::npos);
    }
    SUBCASE("a response head that never ends") {
        DockerEventDecoder d;
        const std::string block(4096, 'h');
        bool ok = d.feed("HTTP/1.1 200 OK\r\n", out);
        for (int i = 0; i < 10 && ok; ++i) {
            ok = d.feed(block, out);
        }
        CHECK_FALSE(ok);
        CHECK(d.error().find("response head over") != std::string::npos);
    }
    SUBCASE("the last chunk ends the stream") {
        DockerEventDecoder d;
        REQUIRE(d.feed(head() + chunk(kDie + "\n") + "0\r\n\r\n", out));
        CHECK(d.state() == DockerEventDecoder::State::Ended);
        CHECK(out.size() == 1);
        CHECK(d.closed() == "engine ended the event stream");
    }
}

TEST_CASE("health tracker: a failure confirming an engine event counts as the full fall") {
    CheckTracker t(CheckPolicy{3, 3, 0});
    ProbeResult pass{Verdict::Pass, "1/1 running", {}};
    t.record(pass);
    REQUIRE(t.state() == CheckState::Passing);

    ProbeResult plain{Verdict::Fail, "0/1 running", {}};
    CHECK_FALSE(t.record(plain));
    CHECK(t.state() == CheckState::Passing);

    ProbeResult confirmed = plain;
    confirmed.confirms_event = true;
    CHECK(t.record(confirmed));
    CHECK(t.state() == CheckState::Failing);
    CHECK(t.failures_in_a_row() == 2);  // the counter stays honest

    // Rise is unchanged: three passes in a row to recover.
    CHECK_FALSE(t.record(pass));
    CHECK_FALSE(t.record(pass));
    CHECK(t.record(pass));
    CHECK(t.state() == CheckState::Passing);

    // A confirmed flag on a passing or erroring result changes nothing special.
    ProbeResult odd = pass;
    odd.confirms_event = true;
    CHECK_FALSE(t.record(odd));
    ProbeResult error{Verdict::Error, "engine returned HTTP 500", {}};
    CHECK_FALSE(t.record(error));
    CHECK(t.state() == CheckState::Passing);
}
