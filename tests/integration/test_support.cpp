#include "test_support.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace civicflow::testing {

namespace {

int remaining_ms(Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    return left <= 0 ? 0 : static_cast<int>(left);
}

std::string lower(std::string s) {
    for (char& c : s) {
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    }
    return s;
}

}  // namespace

ChildProcess::ChildProcess(
    const std::vector<std::string>& argv,
    const std::vector<std::string>& env,
    const std::string& stderr_path
) {
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0)
        return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipefd[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(
        &actions, STDERR_FILENO, stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644
    );
    std::vector<char*> args;
    for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e)
        env_strings.emplace_back(*e);
    for (const auto& e : env)
        env_strings.push_back(e);
    std::vector<char*> envp;
    for (auto& e : env_strings)
        envp.push_back(e.data());
    envp.push_back(nullptr);
    if (posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), envp.data()) != 0)
        pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    ::close(pipefd[1]);
    stdout_fd_ = pipefd[0];
}

ChildProcess::~ChildProcess() {
    if (pid_ > 0 && !exited_) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status_, 0);
    }
    if (stdout_fd_ >= 0)
        ::close(stdout_fd_);
}

std::string ChildProcess::wait_for_line(std::string_view prefix, milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        for (auto nl = pending_.find('\n'); nl != std::string::npos; nl = pending_.find('\n')) {
            std::string line = pending_.substr(0, nl);
            pending_.erase(0, nl + 1);
            if (line.compare(0, prefix.size(), prefix) == 0)
                return line;
        }
        pollfd p{stdout_fd_, POLLIN, 0};
        const int wait = remaining_ms(deadline);
        if (wait == 0 || ::poll(&p, 1, wait) <= 0)
            return {};
        char buf[4096];
        const ssize_t n = ::read(stdout_fd_, buf, sizeof buf);
        if (n <= 0)
            return {};
        pending_.append(buf, static_cast<std::size_t>(n));
    }
}

void ChildProcess::send_signal(int signo) {
    if (pid_ > 0 && !exited_)
        ::kill(pid_, signo);
}

bool ChildProcess::running() {
    if (pid_ <= 0 || exited_)
        return false;
    const pid_t r = ::waitpid(pid_, &status_, WNOHANG);
    if (r == pid_)
        exited_ = true;
    return !exited_;
}

int ChildProcess::wait_exit(milliseconds timeout) {
    if (!poll_until([this] { return !running(); }, timeout))
        return -1;
    if (WIFEXITED(status_))
        return WEXITSTATUS(status_);
    if (WIFSIGNALED(status_))
        return 128 + WTERMSIG(status_);
    return -1;
}

std::string Response::header(const std::string& name) const {
    auto it = headers.find(lower(name));
    return it == headers.end() ? std::string() : it->second;
}

Connection::Connection(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0)
        return;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd_);
        fd_ = -1;
        return;
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Connection::~Connection() {
    if (fd_ >= 0)
        ::close(fd_);
}

bool Connection::send(std::string_view bytes) {
    while (!bytes.empty()) {
        const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

bool Connection::fill(Clock::time_point deadline) {
    pollfd p{fd_, POLLIN, 0};
    const int wait = remaining_ms(deadline);
    if (wait == 0 || ::poll(&p, 1, wait) <= 0)
        return false;
    char buf[16384];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0)
        return false;
    buffer_.append(buf, static_cast<std::size_t>(n));
    return true;
}

bool Connection::expect(std::string_view text, milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    std::size_t at = 0;
    while ((at = buffer_.find(text)) == std::string::npos) {
        if (!fill(deadline))
            return false;
    }
    buffer_.erase(0, at + text.size());
    return true;
}

std::optional<Response> Connection::read(milliseconds timeout) {
    if (fd_ < 0)
        return std::nullopt;
    const auto deadline = Clock::now() + timeout;
    std::size_t end = 0;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
        if (!fill(deadline))
            return std::nullopt;
    }
    Response res;
    std::istringstream head(buffer_.substr(0, end));
    std::string line;
    std::getline(head, line);
    if (line.size() < 12)
        return std::nullopt;
    res.status = std::atoi(line.substr(9, 3).c_str());
    while (std::getline(head, line)) {
        if (!line.empty() && line.back() == '\r')
            line.pop_back();
        const auto colon = line.find(':');
        if (colon == std::string::npos)
            continue;
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ')
            value.erase(0, 1);
        res.headers[lower(line.substr(0, colon))] = value;
    }
    const std::size_t length =
        static_cast<std::size_t>(std::strtoul(res.header("content-length").c_str(), nullptr, 10));
    buffer_.erase(0, end + 4);
    if (res.status == 100)
        return read(timeout);
    while (buffer_.size() < length) {
        if (!fill(deadline))
            return std::nullopt;
    }
    res.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
    return res;
}

bool Connection::wait_closed(milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        pollfd p{fd_, POLLIN, 0};
        const int wait = remaining_ms(deadline);
        if (wait == 0 || ::poll(&p, 1, wait) <= 0)
            return false;
        char buf[4096];
        const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n <= 0)
            return true;
        buffer_.append(buf, static_cast<std::size_t>(n));
    }
}

std::string http_request(
    std::string_view method,
    std::string_view path,
    std::string_view body,
    const std::vector<std::string>& headers
) {
    std::string req;
    req += method;
    req += ' ';
    req += path;
    req += " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (const auto& h : headers)
        req += h + "\r\n";
    if (!body.empty() || method == "POST") {
        req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
               "\r\n";
    }
    req += "\r\n";
    req += body;
    return req;
}

std::optional<Response> request(
    std::uint16_t port,
    std::string_view method,
    std::string_view path,
    std::string_view body,
    const std::vector<std::string>& headers
) {
    Connection c(port);
    if (!c.connected() || !c.send(http_request(method, path, body, headers)))
        return std::nullopt;
    return c.read();
}

std::optional<Response> post_message(std::uint16_t port, std::string_view json) {
    return request(port, "POST", "/v1/messages", json);
}

std::string json_escape(std::string_view s) {
    std::string out;
    for (const char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

std::string text_message(
    std::string_view user, std::string_view text, std::string_view message_id
) {
    std::string out =
        "{\"user\":\"" + json_escape(user) + "\",\"text\":\"" + json_escape(text) + "\"";
    if (!message_id.empty())
        out += ",\"message_id\":\"" + json_escape(message_id) + "\"";
    return out + "}";
}

std::string choice_message(std::string_view user, std::string_view reply_id) {
    return "{\"user\":\"" + json_escape(user) + "\",\"reply_id\":\"" + json_escape(reply_id) +
           "\"}";
}

namespace {

// Reads a JSON string starting just after its opening quote; returns the unescaped value.
std::string read_json_string(std::string_view json, std::size_t pos) {
    std::string out;
    while (pos < json.size() && json[pos] != '"') {
        if (json[pos] == '\\' && pos + 1 < json.size()) {
            const char e = json[pos + 1];
            out += e == 'n' ? '\n' : e == 't' ? '\t' : e;
            pos += 2;
        } else {
            out += json[pos++];
        }
    }
    return out;
}

}  // namespace

std::string json_string(std::string_view json, std::string_view name) {
    const std::string key = "\"" + std::string(name) + "\":\"";
    const auto pos = json.find(key);
    if (pos == std::string_view::npos)
        return {};
    return read_json_string(json, pos + key.size());
}

long json_int(std::string_view json, std::string_view name) {
    const std::string key = "\"" + std::string(name) + "\":";
    const auto pos = json.find(key);
    if (pos == std::string_view::npos)
        return -1;
    return std::strtol(std::string(json.substr(pos + key.size(), 20)).c_str(), nullptr, 10);
}

std::vector<std::string> reply_texts(std::string_view json) {
    std::vector<std::string> out;
    const std::string key = "\"text\":\"";
    const auto replies = json.find("\"replies\":[");
    const auto session = json.find("\"session\":");
    std::size_t pos = replies;
    while ((pos = json.find(key, pos)) != std::string_view::npos && pos < session) {
        out.push_back(read_json_string(json, pos + key.size()));
        pos += key.size();
    }
    return out;
}

bool poll_until(const std::function<bool()>& done, milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        if (done())
            return true;
        if (Clock::now() >= deadline)
            return false;
        std::this_thread::sleep_for(milliseconds(5));
    }
}

std::string make_temp_dir() {
    std::string tmpl = "/tmp/civicflow-it-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr)
        return "/tmp";
    return tmpl;
}

void write_file(const std::string& path, std::string_view contents) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << contents;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace civicflow::testing
