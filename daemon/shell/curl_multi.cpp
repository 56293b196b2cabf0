#include "daemon/shell/curl_multi.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <exception>
#include <mutex>
#include <stdexcept>

namespace failoverd {

struct CurlMulti::Socket {
    EventSource source;
};

struct CurlMulti::Transfer {
    RequestId id = 0;
    CURL* easy = nullptr;
    curl_slist* header_list = nullptr;
    HttpRequest request;
    std::function<void(HttpResponse)> done;
    HttpResponse response;
    char errbuf[CURL_ERROR_SIZE] = {};
    bool cancelled = false;
    bool body_overflow = false;
    bool receiver_aborted = false;
    bool added = false;         // to the multi handle
    std::size_t body_sent = 0;  // send_once: bytes of request.body handed to curl

    Transfer() = default;
    Transfer(const Transfer&) = delete;
    Transfer& operator=(const Transfer&) = delete;
    ~Transfer() {
        if (easy != nullptr) {
            curl_easy_cleanup(easy);
        }
        curl_slist_free_all(header_list);
    }
};

namespace {

long to_ms(Duration d) {
    return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() &&
           (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
        s.remove_suffix(1);
    }
    return s;
}

template <typename T>
void set(CURL* easy, CURLoption option, T value) {
    const CURLcode rc = curl_easy_setopt(easy, option, value);
    if (rc != CURLE_OK) {
        throw std::runtime_error(curl_easy_strerror(rc));
    }
}

void global_init() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

// Returning anything but `size` makes curl fail the transfer with CURLE_WRITE_ERROR.
size_t CurlMulti::write_callback(char* data, size_t size, size_t count, void* userdata) {
    auto* t = static_cast<CurlMulti::Transfer*>(userdata);
    const size_t len = size * count;
    if (t->cancelled) {
        return 0;
    }
    if (t->request.on_data) {
        bool keep = false;
        try {
            keep = t->request.on_data(std::string_view(data, len));
        } catch (const std::exception& e) {
            spdlog::error("ignoring exception in HTTP data callback: {}", e.what());
        } catch (...) {
            spdlog::error("ignoring unknown exception in HTTP data callback");
        }
        if (!keep || t->cancelled) {
            t->receiver_aborted = true;
            return 0;
        }
        return len;
    }
    if (t->response.body.size() + len > t->request.max_body_bytes) {
        t->body_overflow = true;
        return 0;
    }
    t->response.body.append(data, len);
    return len;
}

// send_once bodies: handed out once, front to back.
size_t CurlMulti::read_callback(char* buffer, size_t size, size_t count, void* userdata) {
    auto* t = static_cast<CurlMulti::Transfer*>(userdata);
    const std::string& body = t->request.body;
    const size_t n = std::min(size * count, body.size() - t->body_sent);
    std::copy_n(body.data() + t->body_sent, n, buffer);
    t->body_sent += n;
    return n;
}

// Refusing to rewind is what stops libcurl from re-sending a send_once request on a fresh
// connection: it fails the transfer with CURLE_SEND_FAIL_REWIND instead.
int CurlMulti::seek_callback(void* userdata, curl_off_t offset, int origin) {
    auto* t = static_cast<CurlMulti::Transfer*>(userdata);
    if (offset == 0 && origin == SEEK_SET && t->body_sent == 0) {
        return CURL_SEEKFUNC_OK;  // nothing handed out yet: nothing could have been sent
    }
    return CURL_SEEKFUNC_CANTSEEK;
}

size_t CurlMulti::header_callback(char* data, size_t size, size_t count, void* userdata) {
    auto* t = static_cast<CurlMulti::Transfer*>(userdata);
    const size_t len = size * count;
    const std::string_view line(data, len);
    if (line.rfind("HTTP/", 0) == 0) {
        t->response.headers.clear();  // an interim (1xx) or earlier response's headers
        return len;
    }
    const auto colon = line.find(':');
    if (colon != std::string_view::npos) {
        t->response.headers[lower(std::string(trim(line.substr(0, colon))))] =
            std::string(trim(line.substr(colon + 1)));
    }
    return len;
}

CurlMulti::CurlMulti(EventLoop& loop) : loop_(loop) {
    global_init();
    multi_ = curl_multi_init();
    if (multi_ == nullptr) {
        throw std::runtime_error("curl_multi_init failed");
    }
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &CurlMulti::socket_callback);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &CurlMulti::timer_callback);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
    timer_ = Timer(loop_, [this] { on_timeout(); });
}

CurlMulti::~CurlMulti() {
    for (auto& [id, t] : transfers_) {
        if (t->added) {
            curl_multi_remove_handle(multi_, t->easy);
        }
    }
    transfers_.clear();
    // Closing cached connections must not call back into a half-destroyed object.
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, nullptr);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, nullptr);
    sockets_.clear();
    timer_.disarm();
    curl_multi_cleanup(multi_);
}

RequestId CurlMulti::perform(HttpRequest request, std::function<void(HttpResponse)> done) {
    const RequestId id = next_id_++;
    ++requests_started_;
    auto t = std::make_unique<Transfer>();
    t->id = id;
    t->request = std::move(request);
    t->done = std::move(done);
    Transfer& tr = *t;
    transfers_.emplace(id, std::move(t));

    tr.easy = curl_easy_init();
    if (tr.easy == nullptr) {
        fail_later(id, "curl_easy_init failed");
        return id;
    }
    try {
        const HttpRequest& r = tr.request;
        CURL* e = tr.easy;
        set(e, CURLOPT_URL, r.url.c_str());
        set(e, CURLOPT_PRIVATE, reinterpret_cast<void*>(static_cast<std::uintptr_t>(id)));
        set(e, CURLOPT_NOSIGNAL, 1L);
        set(e, CURLOPT_ERRORBUFFER, tr.errbuf);
        set(e, CURLOPT_WRITEFUNCTION, &CurlMulti::write_callback);
        set(e, CURLOPT_WRITEDATA, &tr);
        set(e, CURLOPT_HEADERFUNCTION, &CurlMulti::header_callback);
        set(e, CURLOPT_HEADERDATA, &tr);
        set(e, CURLOPT_PROXY, "");  // a check must not depend on the caller's environment
        set(e, CURLOPT_PROTOCOLS_STR, "http,https");
        set(e, CURLOPT_TIMEOUT_MS, to_ms(r.timeout));
        set(e, CURLOPT_CONNECTTIMEOUT_MS, to_ms(r.connect_timeout));
        if (r.unix_socket_path) {
            set(e, CURLOPT_UNIX_SOCKET_PATH, r.unix_socket_path->c_str());
        }
        if (!r.ca_file.empty()) {
            set(e, CURLOPT_CAINFO, r.ca_file.c_str());
        }
        if (!r.verify_tls) {
            set(e, CURLOPT_SSL_VERIFYPEER, 0L);
            set(e, CURLOPT_SSL_VERIFYHOST, 0L);
        }
        if (r.tcp_keepalive_idle > Duration::zero()) {
            const long idle_s = std::max<long>(
                1, static_cast<long>(
                       std::chrono::duration_cast<std::chrono::seconds>(r.tcp_keepalive_idle)
                           .count()));
            set(e, CURLOPT_TCP_KEEPALIVE, 1L);
            set(e, CURLOPT_TCP_KEEPIDLE, idle_s);
            set(e, CURLOPT_TCP_KEEPINTVL, std::max<long>(1, idle_s / 2));
        }
        if (r.max_idle_reuse > Duration::zero()) {
            set(e, CURLOPT_MAXAGE_CONN,
                static_cast<long>(
                    std::chrono::duration_cast<std::chrono::seconds>(r.max_idle_reuse).count()));
        }
        if (r.connect_only) {
            set(e, CURLOPT_CONNECT_ONLY, 1L);
            set(e, CURLOPT_FRESH_CONNECT, 1L);
            set(e, CURLOPT_FORBID_REUSE, 1L);
        }
        if (r.method == "HEAD") {
            set(e, CURLOPT_NOBODY, 1L);
        } else if (r.method != "GET" || !r.body.empty()) {
            if (r.method != "POST") {
                set(e, CURLOPT_CUSTOMREQUEST, r.method.c_str());
            }
            if (r.send_once && (r.method == "POST" || !r.body.empty())) {
                set(e, CURLOPT_POST, 1L);
                set(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
                set(e, CURLOPT_READFUNCTION, &CurlMulti::read_callback);
                set(e, CURLOPT_READDATA, &tr);
                set(e, CURLOPT_SEEKFUNCTION, &CurlMulti::seek_callback);
                set(e, CURLOPT_SEEKDATA, &tr);
            } else if (r.method == "POST" || !r.body.empty()) {
                set(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
                set(e, CURLOPT_POSTFIELDS, r.body.data());
            }
        }
        for (const auto& [name, value] : r.headers) {
            const std::string line = name + ": " + value;
            curl_slist* next = curl_slist_append(tr.header_list, line.c_str());
            if (next == nullptr) {
                throw std::runtime_error("curl_slist_append failed");
            }
            tr.header_list = next;
        }
        if (!r.body.empty()) {
            tr.header_list = curl_slist_append(tr.header_list, "Expect:");
        }
        if (tr.header_list != nullptr) {
            set(e, CURLOPT_HTTPHEADER, tr.header_list);
        }
        const CURLMcode mc = curl_multi_add_handle(multi_, e);
        if (mc != CURLM_OK) {
            throw std::runtime_error(curl_multi_strerror(mc));
        }
        tr.added = true;
    } catch (const std::exception& e) {
        fail_later(id, e.what());
    }
    return id;
}

void CurlMulti::fail_later(RequestId id, std::string error) {
    loop_.post([this, alive = std::weak_ptr<int>(alive_), id, error = std::move(error)] {
        if (alive.expired()) {
            return;
        }
        const auto it = transfers_.find(id);
        if (it == transfers_.end()) {
            return;
        }
        auto done = std::move(it->second->done);
        HttpResponse response;
        response.error = error;
        response.curl_code = CURLE_FAILED_INIT;
        ++requests_failed_;
        transfers_.erase(it);
        done(std::move(response));
    });
}

void CurlMulti::cancel(RequestId id) {
    const auto it = transfers_.find(id);
    if (it == transfers_.end()) {
        return;
    }
    it->second->cancelled = true;
    it->second->done = nullptr;
    if (in_curl_ > 0) {
        // curl_multi_remove_handle is not allowed from inside curl's callbacks.
        cancelled_in_curl_.push_back(id);
        return;
    }
    remove_transfer(id);
}

void CurlMulti::remove_transfer(RequestId id) {
    const auto it = transfers_.find(id);
    if (it == transfers_.end()) {
        return;
    }
    if (it->second->added) {
        curl_multi_remove_handle(multi_, it->second->easy);
    }
    transfers_.erase(it);
}

int CurlMulti::socket_callback(CURL*, curl_socket_t fd, int what, void* userp, void* socketp) {
    auto* self = static_cast<CurlMulti*>(userp);
    try {
        if (what == CURL_POLL_REMOVE) {
            self->sockets_.erase(fd);
            return 0;
        }
        const std::uint32_t events = ((what & CURL_POLL_IN) != 0 ? EPOLLIN : 0u) |
                                     ((what & CURL_POLL_OUT) != 0 ? EPOLLOUT : 0u);
        auto it = self->sockets_.find(fd);
        if (socketp != nullptr && it != self->sockets_.end()) {
            it->second->source.set_io_events(events);
            return 0;
        }
        // A socket curl has not seen before; an entry under the same number is stale.
        if (it != self->sockets_.end()) {
            self->sockets_.erase(it);
        }
        auto socket = std::make_unique<Socket>();
        socket->source = self->loop_.add_io(
            fd, events, [self, fd](std::uint32_t revents) { self->on_socket_event(fd, revents); });
        curl_multi_assign(self->multi_, fd, socket.get());
        self->sockets_.emplace(fd, std::move(socket));
        return 0;
    } catch (const std::exception& e) {
        self->loop_.note_callback_error();
        spdlog::error("curl socket callback failed: {}", e.what());
        return -1;
    }
}

int CurlMulti::timer_callback(CURLM*, long timeout_ms, void* userp) {
    auto* self = static_cast<CurlMulti*>(userp);
    try {
        if (timeout_ms < 0) {
            self->timer_.disarm();
        } else {
            self->timer_.arm_after(std::chrono::milliseconds(timeout_ms));
        }
        return 0;
    } catch (const std::exception& e) {
        self->loop_.note_callback_error();
        spdlog::error("curl timer callback failed: {}", e.what());
        return -1;
    }
}

void CurlMulti::on_socket_event(curl_socket_t fd, std::uint32_t revents) {
    int mask = 0;
    if ((revents & EPOLLIN) != 0) {
        mask |= CURL_CSELECT_IN;
    }
    if ((revents & EPOLLOUT) != 0) {
        mask |= CURL_CSELECT_OUT;
    }
    if ((revents & (EPOLLERR | EPOLLHUP)) != 0) {
        mask |= CURL_CSELECT_ERR;
    }
    drive(fd, mask);
}

void CurlMulti::on_timeout() {
    drive(CURL_SOCKET_TIMEOUT, 0);
}

void CurlMulti::drive(curl_socket_t fd, int ev_bitmask) {
    int running = 0;
    ++in_curl_;
    const CURLMcode mc = curl_multi_socket_action(multi_, fd, ev_bitmask, &running);
    --in_curl_;
    if (mc != CURLM_OK) {
        spdlog::error("curl_multi_socket_action failed: {}", curl_multi_strerror(mc));
    }
    if (in_curl_ == 0) {
        std::vector<RequestId> cancelled;
        cancelled.swap(cancelled_in_curl_);
        for (const RequestId id : cancelled) {
            remove_transfer(id);
        }
    }
    collect_finished();
}

void CurlMulti::collect_finished() {
    // Ids first: a done callback may cancel (and so free) another finished transfer.
    std::vector<std::pair<RequestId, CURLcode>> finished;
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        void* priv = nullptr;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        finished.emplace_back(static_cast<RequestId>(reinterpret_cast<std::uintptr_t>(priv)),
                              msg->data.result);
    }
    for (const auto& [id, code] : finished) {
        finish(id, code);
    }
}

void CurlMulti::finish(RequestId id, CURLcode code) {
    const auto it = transfers_.find(id);
    if (it == transfers_.end()) {
        return;
    }
    Transfer& t = *it->second;
    HttpResponse& r = t.response;
    CURL* e = t.easy;
    r.curl_code = code;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r.status);
    curl_off_t total_us = 0;
    curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &total_us);
    r.total_time = std::chrono::microseconds(total_us);
    curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &r.new_connections);
    long os_errno = 0;
    curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os_errno);
    r.os_errno = static_cast<int>(os_errno);
    r.timed_out = code == CURLE_OPERATION_TIMEDOUT;
    if (t.body_overflow) {
        r.error = "response body exceeds " + std::to_string(t.request.max_body_bytes) + " bytes";
    } else if (t.receiver_aborted) {
        r.error = "aborted by receiver";
    } else if (code == CURLE_SEND_FAIL_REWIND && t.request.send_once) {
        r.error = std::string(kLostAfterSending);
    } else if (code != CURLE_OK) {
        r.error = t.errbuf[0] != '\0' ? std::string(t.errbuf) : curl_easy_strerror(code);
    }
    if (!r.error.empty()) {
        ++requests_failed_;
        spdlog::debug("HTTP {} {} failed: {}", t.request.method, t.request.url, r.error);
    }
    auto done = std::move(t.done);
    HttpResponse response = std::move(r);
    const bool cancelled = t.cancelled;
    remove_transfer(id);
    if (cancelled || !done) {
        return;
    }
    try {
        done(std::move(response));
    } catch (const std::exception& ex) {
        loop_.note_callback_error();
        spdlog::error("ignoring exception in HTTP completion callback: {}", ex.what());
    } catch (...) {
        loop_.note_callback_error();
        spdlog::error("ignoring unknown exception in HTTP completion callback");
    }
}

}  // namespace failoverd
