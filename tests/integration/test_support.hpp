// Test support for the integration tests: child processes and a small HTTP/1.1 client over
// POSIX sockets (tests may not include Boost; a raw client also lets them send broken HTTP).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace civicflow::testing {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// A child process with its stdout on a pipe and its stderr in a file. Killed (SIGKILL) and
/// reaped on destruction if still running.
class ChildProcess {
public:
    ChildProcess(
        const std::vector<std::string>& argv,
        const std::vector<std::string>& env,
        const std::string& stderr_path
    );
    ~ChildProcess();
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    /// Reads stdout until a line starting with `prefix`; returns the line, or "" at the deadline
    /// or when the child exits first.
    std::string wait_for_line(std::string_view prefix, milliseconds timeout);
    void send_signal(int signo);
    /// Waits for exit; returns the exit status (>= 0), 128+signal when killed by one, or -1 on
    /// timeout.
    int wait_exit(milliseconds timeout);
    bool running();

    pid_t pid() const { return pid_; }

private:
    pid_t pid_ = -1;
    int stdout_fd_ = -1;
    std::string pending_;
    bool exited_ = false;
    int status_ = 0;
};

/// A parsed HTTP response.
struct Response {
    int status = 0;
    std::map<std::string, std::string> headers;  // lower-case names
    std::string body;
    std::string header(const std::string& name) const;
};

/// One client connection to 127.0.0.1:port.
class Connection {
public:
    explicit Connection(std::uint16_t port);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    bool connected() const { return fd_ >= 0; }

    bool send(std::string_view bytes);
    /// Reads one response (Content-Length framed); nullopt on timeout or close.
    std::optional<Response> read(milliseconds timeout = milliseconds(10000));
    /// Waits until the bytes received contain `text` and drops them through it; false at the
    /// deadline or on close (an interim "100 Continue", say).
    bool expect(std::string_view text, milliseconds timeout = milliseconds(10000));
    /// Waits until the server closes the connection; false at the deadline.
    bool wait_closed(milliseconds timeout);

private:
    bool fill(Clock::time_point deadline);
    int fd_ = -1;
    std::string buffer_;
};

/// Builds a request: method, path, body, extra header lines ("Name: value").
std::string http_request(
    std::string_view method,
    std::string_view path,
    std::string_view body,
    const std::vector<std::string>& headers = {}
);
/// One request on a fresh connection.
std::optional<Response> request(
    std::uint16_t port,
    std::string_view method,
    std::string_view path,
    std::string_view body = {},
    const std::vector<std::string>& headers = {}
);
/// POST /v1/messages with the given JSON body.
std::optional<Response> post_message(std::uint16_t port, std::string_view json);

/// {"user": user, "text": text} (and message_id when given), JSON-escaped.
std::string text_message(
    std::string_view user, std::string_view text, std::string_view message_id = {}
);
std::string choice_message(std::string_view user, std::string_view reply_id);
std::string json_escape(std::string_view s);

/// The value of the first string field `"name":"..."` in compact JSON (unescaped), or "".
std::string json_string(std::string_view json, std::string_view name);
/// The first integer field `"name":N`, or -1.
long json_int(std::string_view json, std::string_view name);
/// Every "text" of the replies, in order.
std::vector<std::string> reply_texts(std::string_view json);

/// Polls `done` every few milliseconds until it is true or the deadline passes.
bool poll_until(const std::function<bool()>& done, milliseconds timeout);

/// A fresh temporary directory (removed by the OS's tmp cleanup; tests leave little in it).
std::string make_temp_dir();
void write_file(const std::string& path, std::string_view contents);
std::string read_file(const std::string& path);

}  // namespace civicflow::testing
