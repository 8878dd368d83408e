// Benchmark client for bench/run.sh (POSIX sockets and epoll, one thread, no dependencies).
//
//   civicflow_bench_loadgen rate --port P --rate R --duration S [--connections C] [--citizens N]
//                          [--drain S] [--prefix P] [--spin 1|0]
//   civicflow_bench_loadgen fill --port P --citizens N [--connections C] [--prefix P]
//
// rate: an open-loop pass. Request k is due at start + k/R whatever happened to earlier ones
// (requests queue, pipelined, on their connection when the server is behind), and its latency is
// measured from that due time to the last byte of its response, so a stalled server shows up in
// the percentiles instead of slowing the client down (no coordinated omission). The messages are
// bench/messages.lua's nine-message conversation spread over N citizens; a citizen always uses
// the same connection, so its messages arrive in order. After the sending period the client
// waits up to --drain seconds for the answers still due; those missing are counted as unanswered.
// The client busy-polls its sockets (epoll with a zero timeout) instead of sleeping until the
// next due time, so its own core waking from idle (0.2 ms at p50 on a VM) is not counted as the
// server's latency; the load core is given to it alone. --spin 0 sleeps instead.
//
// fill: opens a form for N citizens ("<prefix>-000000"...): each sends "hi", then "2" (the birth
// certificate form, which asks for the child's name); every second reply must contain
// "state":"child_name". Closed loop, one request in flight per connection.
//
// Both print one line of key=value figures on stdout (run.sh parses it).
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

constexpr const char* kMessages[] = {
    "hi", "office timings", "2", "Aarav Sharma", "05-01-2026", "menu", "1", "tatkal fee", "menu"};
constexpr int kSteps = 9;

std::int64_t now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "loadgen: %s: %s\n", what, std::strerror(errno));
    std::exit(1);
}

struct Pending {
    std::int64_t due_ns;
    bool expect_form;  // fill: the reply must show the open form
};

struct Connection {
    int fd = -1;
    std::string out;  // bytes not yet written
    std::size_t out_pos = 0;
    std::string in;  // bytes not yet parsed
    std::deque<Pending> pending;
    bool want_write = false;
    // fill mode: this connection's citizens, walked in order
    std::vector<int> citizens;
    std::size_t next = 0;
    int step = 0;
};

struct Options {
    std::string mode;
    int port = 0;
    double rate = 1000;
    double duration = 10;
    double drain = 5;
    int connections = 64;
    int citizens = 10000;
    std::string prefix = "bench";
    bool spin = true;  // rate: busy-poll instead of sleeping until the next due time
};

std::string request(int port, std::string_view user, std::string_view text) {
    std::string body = "{\"user\":\"";
    body.append(user).append("\",\"text\":\"").append(text).append("\"}");
    std::string r =
        "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
        "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\n\r\n";
    return r + body;
}

int connect_to(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // Non-blocking once connected: reads and writes go through epoll.
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0)
        die("fcntl");
    return fd;
}

// One complete response at the front of `in`: its status and total length, or length 0.
struct Parsed {
    std::size_t length = 0;
    int status = 0;
    std::string_view body;
};

Parsed parse_response(std::string_view in) {
    Parsed p;
    const auto end = in.find("\r\n\r\n");
    if (end == std::string_view::npos)
        return p;
    if (in.size() < 12 || in.substr(0, 5) != "HTTP/") {
        std::fprintf(stderr, "loadgen: not an HTTP response\n");
        std::exit(1);
    }
    p.status = std::atoi(in.data() + 9);
    std::size_t content_length = 0;
    bool found = false;
    for (std::size_t pos = in.find("\r\n") + 2; pos < end;) {
        const auto eol = in.find("\r\n", pos);
        const std::string_view line = in.substr(pos, eol - pos);
        constexpr std::string_view kName = "content-length:";
        if (line.size() > kName.size()) {
            bool match = true;
            for (std::size_t i = 0; i < kName.size() && match; ++i)
                match = static_cast<char>(std::tolower(static_cast<unsigned char>(line[i]))) ==
                        kName[i];
            if (match) {
                content_length = std::strtoul(line.data() + kName.size(), nullptr, 10);
                found = true;
            }
        }
        pos = eol + 2;
    }
    if (!found) {
        std::fprintf(stderr, "loadgen: response without Content-Length\n");
        std::exit(1);
    }
    const std::size_t total = end + 4 + content_length;
    if (in.size() < total)
        return p;
    p.length = total;
    p.body = std::string_view(in.data() + end + 4, content_length);
    return p;
}

class Client {
public:
    explicit Client(const Options& o)
        : o_(o) {
        epoll_ = epoll_create1(0);
        if (epoll_ < 0)
            die("epoll_create1");
        conns_.resize(static_cast<std::size_t>(o.connections));
        for (std::size_t i = 0; i < conns_.size(); ++i) {
            conns_[i].fd = connect_to(o.port);
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.u64 = i;
            if (epoll_ctl(epoll_, EPOLL_CTL_ADD, conns_[i].fd, &ev) != 0)
                die("epoll_ctl");
        }
    }

    int run_rate() {
        const std::int64_t start = now_ns() + 10'000'000;  // 10 ms to settle
        const double interval = 1e9 / o_.rate;
        auto due = [&](std::int64_t i) {
            return start + static_cast<std::int64_t>(static_cast<double>(i) * interval);
        };
        const auto total = static_cast<std::int64_t>(o_.rate * o_.duration);
        std::vector<int> step(static_cast<std::size_t>(o_.citizens), 0);
        std::int64_t k = 0;
        latencies_.reserve(static_cast<std::size_t>(total));
        const std::int64_t send_end = start + static_cast<std::int64_t>(o_.duration * 1e9);
        const std::int64_t deadline = send_end + static_cast<std::int64_t>(o_.drain * 1e9);
        char user[96];
        for (;;) {
            const std::int64_t now = now_ns();
            // Send everything that is due.
            while (k < total && due(k) <= now) {
                const int citizen = static_cast<int>(k % o_.citizens);
                auto& s = step[static_cast<std::size_t>(citizen)];
                std::snprintf(user, sizeof user, "%s-%05d", o_.prefix.c_str(), citizen);
                auto& c = conns_[static_cast<std::size_t>(citizen % o_.connections)];
                c.out += request(o_.port, user, kMessages[s]);
                s = (s + 1) % kSteps;
                c.pending.push_back({due(k), false});
                flush(c, static_cast<std::size_t>(&c - conns_.data()));
                ++k;
            }
            if (k == total && answered_ + errors_ == total)
                break;
            if (now > deadline)
                break;
            std::int64_t wait_until = k < total ? due(k) : deadline;
            poll(o_.spin ? 0 : std::max<std::int64_t>(0, wait_until - now_ns()));
        }
        const std::int64_t elapsed = now_ns() - start;
        std::sort(latencies_.begin(), latencies_.end());
        auto pct = [&](double q) -> double {
            if (latencies_.empty())
                return 0;
            auto i = static_cast<std::size_t>(q * static_cast<double>(latencies_.size() - 1));
            return static_cast<double>(latencies_[i]) / 1e3;
        };
        std::printf(
            "mode=rate target_rate=%.0f sent=%lld answered=%lld errors=%lld unanswered=%lld "
            "achieved_rate=%.1f p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f\n",
            o_.rate,
            static_cast<long long>(k),
            static_cast<long long>(answered_),
            static_cast<long long>(errors_),
            static_cast<long long>(k - answered_ - errors_),
            static_cast<double>(answered_) * 1e9 / static_cast<double>(elapsed),
            pct(0.5),
            pct(0.9),
            pct(0.99),
            pct(0.999),
            latencies_.empty() ? 0.0 : static_cast<double>(latencies_.back()) / 1e3
        );
        return errors_ == 0 && k == answered_ ? 0 : 1;
    }

    int run_fill() {
        fill_ = true;
        for (int i = 0; i < o_.citizens; ++i)
            conns_[static_cast<std::size_t>(i % o_.connections)].citizens.push_back(i);
        const std::int64_t start = now_ns();
        for (std::size_t i = 0; i < conns_.size(); ++i)
            fill_next(conns_[i], i);
        while (answered_ + errors_ < 2LL * o_.citizens)
            poll(1'000'000'000);
        const double secs = static_cast<double>(now_ns() - start) / 1e9;
        std::printf(
            "mode=fill citizens=%d requests=%lld errors=%lld seconds=%.2f\n",
            o_.citizens,
            static_cast<long long>(answered_ + errors_),
            static_cast<long long>(errors_),
            secs
        );
        return errors_ == 0 ? 0 : 1;
    }

private:
    void fill_next(Connection& c, std::size_t index) {
        if (c.next >= c.citizens.size())
            return;
        char user[96];
        std::snprintf(user, sizeof user, "%s-%06d", o_.prefix.c_str(), c.citizens[c.next]);
        c.out += request(o_.port, user, c.step == 0 ? "hi" : "2");
        c.pending.push_back({now_ns(), c.step == 1});
        if (c.step == 1) {
            c.step = 0;
            ++c.next;
        } else {
            c.step = 1;
        }
        flush(c, index);
    }

    void flush(Connection& c, std::size_t index) {
        while (c.out_pos < c.out.size()) {
            const ssize_t n =
                send(c.fd, c.out.data() + c.out_pos, c.out.size() - c.out_pos, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN)
                    break;
                die("send");
            }
            c.out_pos += static_cast<std::size_t>(n);
        }
        if (c.out_pos == c.out.size()) {
            c.out.clear();
            c.out_pos = 0;
        }
        const bool want = !c.out.empty();
        if (want != c.want_write) {
            epoll_event ev{};
            ev.events = EPOLLIN | (want ? EPOLLOUT : 0u);
            ev.data.u64 = index;
            if (epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev) != 0)
                die("epoll_ctl");
            c.want_write = want;
        }
    }

    void poll(std::int64_t timeout_ns) {
        epoll_event events[64];
        timespec ts{};
        ts.tv_sec = timeout_ns / 1'000'000'000;
        ts.tv_nsec = timeout_ns % 1'000'000'000;
        const int n = epoll_pwait2(epoll_, events, 64, &ts, nullptr);
        if (n < 0) {
            if (errno == EINTR)
                return;
            die("epoll_pwait2");
        }
        for (int e = 0; e < n; ++e) {
            const std::size_t index = events[e].data.u64;
            auto& c = conns_[index];
            if (events[e].events & EPOLLOUT)
                flush(c, index);
            if (events[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                read(c, index);
        }
    }

    void read(Connection& c, std::size_t index) {
        char buf[65536];
        for (;;) {
            const ssize_t n = recv(c.fd, buf, sizeof buf, 0);
            if (n == 0) {
                std::fprintf(stderr, "loadgen: the server closed a connection\n");
                std::exit(1);
            }
            if (n < 0) {
                if (errno == EAGAIN)
                    break;
                die("recv");
            }
            c.in.append(buf, static_cast<std::size_t>(n));
        }
        const std::int64_t now = now_ns();
        std::size_t consumed = 0;
        for (;;) {
            const Parsed p = parse_response(std::string_view(c.in).substr(consumed));
            if (p.length == 0)
                break;
            if (c.pending.empty()) {
                std::fprintf(stderr, "loadgen: a response nobody asked for\n");
                std::exit(1);
            }
            const Pending q = c.pending.front();
            c.pending.pop_front();
            bool ok = p.status == 200;
            if (ok && q.expect_form)
                ok = p.body.find("\"state\":\"child_name\"") != std::string_view::npos;
            if (ok) {
                ++answered_;
                if (!fill_)
                    latencies_.push_back(now - q.due_ns);
            } else {
                if (++errors_ <= 3)
                    std::fprintf(
                        stderr,
                        "loadgen: unexpected reply %d %.*s\n",
                        p.status,
                        static_cast<int>(std::min<std::size_t>(p.body.size(), 200)),
                        p.body.data()
                    );
            }
            consumed += p.length;
            if (fill_)
                fill_next(c, index);
        }
        if (consumed > 0)
            c.in.erase(0, consumed);
    }

    Options o_;
    int epoll_ = -1;
    bool fill_ = false;
    std::vector<Connection> conns_;
    std::vector<std::int64_t> latencies_;
    std::int64_t answered_ = 0;
    std::int64_t errors_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
    Options o;
    if (argc < 2) {
        std::fprintf(stderr, "usage: civicflow_bench_loadgen rate|fill --port P [options]\n");
        return 2;
    }
    o.mode = argv[1];
    for (int i = 2; i + 1 < argc; i += 2) {
        const std::string_view arg = argv[i];
        const char* v = argv[i + 1];
        if (arg == "--port")
            o.port = std::atoi(v);
        else if (arg == "--rate")
            o.rate = std::atof(v);
        else if (arg == "--duration")
            o.duration = std::atof(v);
        else if (arg == "--drain")
            o.drain = std::atof(v);
        else if (arg == "--connections")
            o.connections = std::atoi(v);
        else if (arg == "--citizens")
            o.citizens = std::atoi(v);
        else if (arg == "--prefix")
            o.prefix = v;
        else if (arg == "--spin" && (std::string_view(v) == "0" || std::string_view(v) == "1"))
            o.spin = std::string_view(v) == "1";
        else {
            std::fprintf(stderr, "loadgen: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (o.port <= 0 || o.connections <= 0 || o.citizens <= 0 || o.rate <= 0 ||
        (o.mode != "rate" && o.mode != "fill")) {
        std::fprintf(stderr, "usage: civicflow_bench_loadgen rate|fill --port P [options]\n");
        return 2;
    }
    Client client(o);
    return o.mode == "rate" ? client.run_rate() : client.run_fill();
}
