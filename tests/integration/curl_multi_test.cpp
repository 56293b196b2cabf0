// CurlMulti against tests/fakes/http_test_server.py on loopback and on a unix socket.
#include "daemon/shell/curl_multi.hpp"

#include <doctest/doctest.h>

#include <cerrno>
#include <optional>
#include <string>
#include <vector>

#include "http_test_server.hpp"

using namespace std::chrono_literals;
using failoverd::CurlMulti;
using failoverd::EventLoop;
using failoverd::HttpRequest;
using failoverd::HttpResponse;
using failoverd::RequestId;
using failoverd::testing::HttpTestServer;
using failoverd::testing::kDeadline;
using failoverd::testing::LoopbackSocket;

namespace {

HttpResponse fetch(EventLoop& loop, CurlMulti& curl, HttpRequest request) {
    std::optional<HttpResponse> response;
    curl.perform(std::move(request), [&](HttpResponse r) { response = std::move(r); });
    CHECK_FALSE(response.has_value());  // never reported from inside perform()
    REQUIRE(loop.run_until([&] { return response.has_value(); }, kDeadline));
    return *response;
}

HttpRequest get(const std::string& url) {
    HttpRequest r;
    r.url = url;
    return r;
}

}  // namespace

TEST_CASE("CurlMulti: GET returns status, lower-case headers and body") {
    EventLoop loop;
    HttpTestServer server(loop);
    CurlMulti curl(loop);
    const HttpResponse r = fetch(loop, curl, get(server.url("/body/hello")));
    CHECK(r.ok());
    CHECK(r.status == 200);
    CHECK(r.body == "hello");
    CHECK(r.headers.at("x-test-server") == "yes");
    CHECK(r.headers.at("content-length") == "5");
    CHECK(r.total_time > 0ms);
    CHECK(curl.active() == 0);
}

TEST_CASE("CurlMulti: an error status is a response, not a transport error") {
    EventLoop loop;
    HttpTestServer server(loop);
    CurlMulti curl(loop);
    const HttpResponse r = fetch(loop, curl, get(server.url("/status/503")));
    CHECK(r.ok());
    CHECK(r.status == 503);
    CHECK(r.body == "status 503");
    CHECK(curl.requests_failed() == 0);
}

TEST_CASE("CurlMulti: request headers, method and body are sent") {
    EventLoop loop;
    HttpTestServer server(loop);
    CurlMulti curl(loop);
    HttpRequest post = get(server.url("/echo"));
    post.method = "POST";
    post.body = R"({"type":"assign"})";
    CHECK(fetch(loop, curl, post).body == R"(POST {"type":"assign"})");
    HttpRequest put = get(server.url("/echo"));
    put.method = "PUT";
    put.body = "x=1";
    CHECK(fetch(loop, curl, put).body == "PUT x=1");
    HttpRequest del = get(server.url("/echo"));
    del.method = "DELETE";
    CHECK(fetch(loop, curl, del).body == "DELETE ");
    HttpRequest headers = get(server.url("/headers"));
    headers.headers = {{"X-Request-Id", "abc-123"}, {"Accept", "application/json"}};
    const std::string body = fetch(loop, curl, headers).body;
    CHECK(body.find("x-request-id: abc-123\n") != std::string::npos);
    CHECK(body.find("accept: application/json\n") != std::string::npos);
}

TEST_CASE("CurlMulti: a slow response hits the timeout") {
    EventLoop loop;
    HttpTestServer server(loop);
    CurlMulti curl(loop);
    HttpRequest r = get(server.url("/slow/20000"));
    r.timeout = 300ms;
    const HttpResponse resp = fetch(loop, curl, r);
    CHECK_FALSE(resp.ok());
    CHECK(resp.timed_out);
    CHECK(resp.curl_code == CURLE_OPERATION_TIMEDOUT);
    CHECK(resp.status == 0);
    CHECK(curl.requests_failed() == 1);
}

TEST_CASE("CurlMulti: a refused connection reports ECONNREFUSED") {
    EventLoop loop;
    CurlMulti curl(loop);
    LoopbackSocket closed(LoopbackSocket::Kind::BoundOnly);
    const HttpResponse r =
        fetch(loop, curl, get("http://127.0.0.1:" + std::to_string(closed.port()) + "/"));
    CHECK_FALSE(r.ok());
    CHECK(r.curl_code == CURLE_COULDNT_CONNECT);
    CHECK(r.os_errno == ECONNREFUSED);
    CHECK(r.status == 0);
    CHECK_FALSE(r.timed_out);
}

TEST_CASE("CurlMulti: sequential requests reuse one keep-alive connection") {
    EventLoop loop;
    HttpTestServer server(loop);
    CurlMulti curl(loop);
    const HttpResponse first = fetch(loop, curl, get(server.url("/body/a")));
    const HttpResponse second = fetch(loop, curl, get(server.url("/body/b")));
    const HttpResponse count = fetch(loop, curl, get(server.url("/connections")));
    CHECK(first.new_connections == 1);
    CHECK(second.new_connections == 0);
    CHECK(count.new_connections == 0);
    CHECK(count.body == "1");  // the server accepted exactly one connection
}

TEST_CASE("CurlMulti: requests over a unix socket") {
    EventLoop loop;
    HttpTestServer server(loop, HttpTestServer::Mode::Unix);
    CurlMulti curl(loop);
    HttpRequest r = get(server.url("/body/over-unix"));
    r.unix_socket_path = server.socket_path();
    const HttpResponse resp = fetch(loop, curl, r);
    CHECK(resp.ok());
    CHECK(resp.status == 200);
    CHECK(resp.body == "over-unix");

    HttpRequest missing = get("http://localhost/body/x");
    missing.unix_socket_path = server.socket_path() + ".absent";
    const HttpResponse gone = fetch(loop, curl, missing);
    CHECK_FALSE(gone.ok());
    CHECK(gone.curl_code == CURLE_COULDNT_CONNECT);
    CHECK(gone.os_errno == ENOENT);
}

TEST_CASE("CurlMulti: a body over the cap is an error") {
    EventLoop loop;
    HttpTestServer server(loop);
    CurlMulti curl(loop);
    HttpRequest r = get(server.url("/big/100000"));
    r.max_body_bytes = 1000;
    const HttpResponse resp = fetch(loop, curl, r);
    CHECK_FALSE(resp.ok());
    CHECK(resp.error == "response body exceeds 1000 bytes");
    HttpRequest fits = get(server.url("/big/1000"));
    fits.max_body_bytes = 1000;
    CHECK(fetch(loop, curl, fits).body.size() == 1000);
}

TEST_CASE("CurlMulti: streaming delivers chunks and the receiver may stop") {
    EventLoop loop;
    HttpTestServer server(loop);
    CurlMulti curl(loop);
    std::size_t streamed = 0;
    HttpRequest r = get(server.url("/big/300000"));
    r.max_body_bytes = 1000;  // does not apply to a stream
    r.on_data = [&](std::string_view chunk) {
        streamed += chunk.size();
        return true;
    };
    const HttpResponse resp = fetch(loop, curl, r);
    CHECK(resp.ok());
    CHECK(resp.body.empty());
    CHECK(streamed == 300000);

    HttpRequest stop = get(server.url("/big/300000"));
    stop.on_data = [](std::string_view) { return false; };
    const HttpResponse stopped = fetch(loop, curl, stop);
    CHECK(stopped.error == "aborted by receiver");
}

TEST_CASE("CurlMulti: a cancelled request never calls back, others continue") {
    EventLoop loop;
    HttpTestServer server(loop);
    CurlMulti curl(loop);
    bool cancelled_called = false;
    HttpRequest slow = get(server.url("/slow/20000"));
    const RequestId id = curl.perform(slow, [&](HttpResponse) { cancelled_called = true; });
    CHECK(curl.active() == 1);
    curl.cancel(id);
    curl.cancel(id);  // twice is harmless
    CHECK(curl.active() == 0);

    // Cancelling from inside the stream's own callback is allowed too.
    bool stream_called = false;
    RequestId stream_id = 0;
    HttpRequest stream = get(server.url("/big/300000"));
    stream.on_data = [&](std::string_view) {
        curl.cancel(stream_id);
        return true;
    };
    stream_id = curl.perform(stream, [&](HttpResponse) { stream_called = true; });

    const HttpResponse after = fetch(loop, curl, get(server.url("/body/after")));
    CHECK(after.body == "after");
    CHECK(loop.run_until([&] { return curl.active() == 0; }, kDeadline));
    CHECK_FALSE(cancelled_called);
    CHECK_FALSE(stream_called);
}

TEST_CASE("CurlMulti: many concurrent requests all complete") {
    EventLoop loop;
    HttpTestServer server(loop);
    CurlMulti curl(loop);
    constexpr int kRequests = 20;
    std::vector<std::string> bodies(kRequests);
    int done = 0;
    for (int i = 0; i < kRequests; ++i) {
        curl.perform(get(server.url("/slow/" + std::to_string(50 + i))),
                     [&bodies, &done, i](HttpResponse r) {
                         bodies[i] = r.body;
                         ++done;
                     });
    }
    REQUIRE(loop.run_until([&] { return done == kRequests; }, kDeadline));
    for (int i = 0; i < kRequests; ++i) {
        CHECK(bodies[i] == "slow " + std::to_string(50 + i));
    }
}

TEST_CASE("CurlMulti: a connect-only request only opens a connection") {
    EventLoop loop;
    CurlMulti curl(loop);
    LoopbackSocket listening(LoopbackSocket::Kind::Listening);
    HttpRequest r = get("http://127.0.0.1:" + std::to_string(listening.port()) + "/");
    r.connect_only = true;
    const HttpResponse resp = fetch(loop, curl, r);
    CHECK(resp.ok());
    CHECK(resp.status == 0);
    CHECK(resp.new_connections == 1);
}

TEST_CASE("CurlMulti: a malformed URL fails through the callback") {
    EventLoop loop;
    CurlMulti curl(loop);
    const HttpResponse r = fetch(loop, curl, get("ftp://127.0.0.1/x"));
    CHECK_FALSE(r.ok());
    CHECK(r.curl_code == CURLE_UNSUPPORTED_PROTOCOL);
}
