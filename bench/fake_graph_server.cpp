// A fast fake WhatsApp Cloud API for bench/run-whatsapp.sh: a minimal Beast server (one thread,
// the coroutine style of bench/ceiling_server.cpp) that answers every send and counts it.
//
//   civicflow_bench_fake_graph [--port P] [--expect FILE]
//
// POST /{version}/{phone_number_id}/messages: a mark-as-read body ("status":"read") is answered
// {"success":true}; any other body is a send, answered like Meta, with a fresh wamid:
//   {"messaging_product":"whatsapp","contacts":[...],"messages":[{"id":"wamid.FG<n>"}]}
// GET /stats: the counts below as one JSON object; the same line is printed on SIGINT/SIGTERM.
// GET /stats/counts: requests, sends, mark_reads, marked_messages and last_ms only, without the
// check (which walks every send: it would hold up the sends it answers if polled in a loop).
// Anything else: 404 with a Graph error body (code 100).
//
// What is counted: requests, sends, mark-reads, and per recipient the ordered list of the
// bodies sent to them (as hashes of the body without the recipient, bench/whatsapp_bench.hpp).
// Unlike tests/support/fake_graph.* (which keeps every request whole, behind a mutex, for tests
// to inspect), this keeps 8 bytes per send and does no JSON parsing: it has to answer three
// requests per inbound message on the core it shares with wrk.
//
// With --expect (written by civicflow_bench_wa_bodies) it also checks that every reply was sent
// exactly once. The Cloud API body of a reply carries no reference to the inbound message it
// answers, but the server sends each conversation in order, so a reply is attributed to an
// inbound message by its position: the mark-reads (one per inbound message whose turn ran, they
// carry the inbound wamid) give how many of the citizen's messages were accepted, a prefix of
// what the citizen sent; the expected bodies of those messages, in order, are then aligned with
// the bodies received:
//   matched     a received body where the next expected one was;
//   duplicates  a (recipient, body, inbound wamid) already matched, received again;
//   missing     expected bodies never received (skipped over, or left at the end);
//   unexpected  bodies that match nothing expected (or for an unknown recipient);
//   gaps        mark-reads of a message whose predecessor was never marked read (the prefix
//               rule broken: a message lost or reordered on the way in).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "whatsapp_bench.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using civicflow::bench::Span;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kBodyLimit = 4 * 1024 * 1024;

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch()
    )
        .count();
}

// What the expectation file says about one citizen.
struct Citizen {
    int templ = 0;
    std::vector<std::string> wamids;
};

struct Expectation {
    // templates[t][k]: the body hashes answering the k-th message of template t.
    std::vector<std::vector<std::vector<std::uint64_t>>> templates;
    std::unordered_map<std::string, Citizen> citizens;  // by recipient
};

bool load_expectation(const std::string& path, Expectation& e) {
    std::ifstream in(path);
    std::string line;
    if (!std::getline(in, line) || line != civicflow::bench::kExpectMagic) {
        std::fprintf(stderr, "fake_graph: %s is not an expectation file\n", path.c_str());
        return false;
    }
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string kind;
        fields >> kind;
        if (kind == "template") {
            std::size_t t = 0, k = 0, n = 0;
            fields >> t >> k >> n;
            if (!fields || t > 1000 || k > 1'000'000)
                return false;
            if (e.templates.size() <= t)
                e.templates.resize(t + 1);
            auto& messages = e.templates[t];
            if (messages.size() <= k)
                messages.resize(k + 1);
            for (std::size_t i = 0; i < n; ++i) {
                std::string hex;
                fields >> hex;
                messages[k].push_back(std::strtoull(hex.c_str(), nullptr, 16));
            }
            if (!fields)
                return false;
        } else if (kind == "citizen") {
            std::string recipient;
            Citizen c;
            fields >> recipient >> c.templ;
            if (!fields)
                return false;
            std::string wamid;
            while (fields >> wamid)
                c.wamids.push_back(wamid);
            e.citizens.emplace(std::move(recipient), std::move(c));
        } else if (!kind.empty()) {
            return false;
        }
    }
    return true;
}

struct Counts {
    std::uint64_t requests = 0;
    std::uint64_t sends = 0;
    std::uint64_t mark_reads = 0;
    std::uint64_t unparsed = 0;  // messages-endpoint bodies with neither recipient nor message_id
    std::uint64_t other = 0;     // requests answered 404
    std::uint64_t connections = 0;  // accepted: few means the client reuses them
    std::int64_t first_ms = 0;      // first and last request to the messages endpoint
    std::int64_t last_ms = 0;
    std::int64_t last_send_ms = 0;
};

class Graph {
public:
    explicit Graph(Expectation expect, bool checking)
        : expect_(std::move(expect))
        , checking_(checking) {}

    void connected() { ++counts_.connections; }

    http::response<http::string_body> answer(const http::request<http::string_body>& req) {
        ++counts_.requests;
        const std::string_view target = req.target();
        if (req.method() == http::verb::get && target == "/stats")
            return reply(req, 200, stats());
        if (req.method() == http::verb::get && target == "/stats/counts")
            return reply(req, 200, counts());
        if (req.method() != http::verb::post || !is_messages_path(target)) {
            ++counts_.other;
            return reply(
                req,
                404,
                R"({"error":{"message":"Unsupported request","type":"GraphMethodException",)"
                R"("code":100,"fbtrace_id":"AFakeTraceId"}})"
            );
        }
        const std::int64_t t = now_ms();
        if (counts_.first_ms == 0)
            counts_.first_ms = t;
        counts_.last_ms = t;
        const std::string_view body = req.body();
        const Span status = civicflow::bench::string_member(body, "status");
        if (status.found() && status.in(body) == "read") {
            ++counts_.mark_reads;
            const Span id = civicflow::bench::string_member(body, "message_id");
            if (!id.found())
                ++counts_.unparsed;
            else
                ++marked_[std::string(id.in(body))];
            return reply(req, 200, R"({"success":true})");
        }
        const Span to = civicflow::bench::recipient_of(body);
        if (!to.found()) {
            ++counts_.unparsed;
            return reply(
                req,
                400,
                R"({"error":{"message":"(#100) Invalid parameter","type":"OAuthException",)"
                R"("code":100,"fbtrace_id":"AFakeTraceId"}})"
            );
        }
        ++counts_.sends;
        counts_.last_send_ms = t;
        const std::string recipient(to.in(body));
        received_[recipient].push_back(civicflow::bench::body_hash(body, to));
        std::string answer = R"({"messaging_product":"whatsapp","contacts":[{"input":")";
        answer.append(recipient).append(R"(","wa_id":")").append(recipient);
        answer.append(R"("}],"messages":[{"id":"wamid.FG)")
            .append(std::to_string(counts_.sends))
            .append(R"("}]})");
        return reply(req, 200, std::move(answer));
    }

    // The plain counts only: cheap enough to poll while the server is still sending.
    std::string counts() const {
        std::ostringstream out;
        out << R"({"requests":)" << counts_.requests << R"(,"sends":)" << counts_.sends
            << R"(,"mark_reads":)" << counts_.mark_reads << R"(,"marked_messages":)"
            << marked_.size() << R"(,"last_ms":)" << counts_.last_ms << "}";
        return out.str();
    }

    // The counts and, with an expectation, the exactly-once check, as one JSON line.
    std::string stats(bool report = false) const {
        std::uint64_t pairs = 0;
        for (const auto& [recipient, hashes] : received_) {
            std::unordered_set<std::uint64_t> distinct(hashes.begin(), hashes.end());
            pairs += distinct.size();
        }
        std::uint64_t repeats = 0;
        for (const auto& [wamid, n] : marked_)
            repeats += n - 1;
        std::ostringstream out;
        out << R"({"requests":)" << counts_.requests << R"(,"sends":)" << counts_.sends
            << R"(,"mark_reads":)" << counts_.mark_reads << R"(,"marked_messages":)"
            << marked_.size() << R"(,"mark_read_repeats":)" << repeats << R"(,"recipients":)"
            << received_.size() << R"(,"pairs":)" << pairs << R"(,"unparsed":)" << counts_.unparsed
            << R"(,"other":)" << counts_.other << R"(,"connections":)" << counts_.connections
            << R"(,"first_ms":)" << counts_.first_ms << R"(,"last_ms":)" << counts_.last_ms
            << R"(,"last_send_ms":)" << counts_.last_send_ms;
        if (checking_) {
            const Check c = check(report);
            out << R"(,"accepted_messages":)" << c.accepted << R"(,"expected_sends":)" << c.expected
                << R"(,"matched":)" << c.matched << R"(,"duplicates":)" << c.duplicates
                << R"(,"missing":)" << c.missing << R"(,"unexpected":)" << c.unexpected
                << R"(,"gaps":)" << c.gaps << R"(,"unknown_mark_reads":)" << c.unknown_mark_reads;
        } else {
            out << R"(,"duplicates":null)";
        }
        out << "}";
        return out.str();
    }

private:
    struct Check {
        std::uint64_t accepted = 0;
        std::uint64_t expected = 0;
        std::uint64_t matched = 0;
        std::uint64_t duplicates = 0;
        std::uint64_t missing = 0;
        std::uint64_t unexpected = 0;
        std::uint64_t gaps = 0;
        std::uint64_t unknown_mark_reads = 0;
        int report = 0;  // anomalies still to print
    };

    static void note(
        Check& c, const char* what, const std::string& recipient, std::size_t k, std::uint64_t h
    ) {
        if (c.report <= 0)
            return;
        --c.report;
        std::fprintf(
            stderr,
            "fake_graph: %s: recipient %s, message %zu, body %016llx\n",
            what,
            recipient.c_str(),
            k,
            static_cast<unsigned long long>(h)
        );
    }

    static bool is_messages_path(std::string_view target) {
        // "/v23.0/<phone number id>/messages"
        if (target.size() < 2 || target[0] != '/' || target[1] != 'v')
            return false;
        const std::size_t second = target.find('/', 1);
        if (second == std::string_view::npos)
            return false;
        const std::size_t third = target.find('/', second + 1);
        return third != std::string_view::npos && third > second + 1 &&
               target.substr(third) == "/messages";
    }

    static http::response<http::string_body> reply(
        const http::request<http::string_body>& req, unsigned status, std::string body
    ) {
        http::response<http::string_body> res{static_cast<http::status>(status), req.version()};
        res.set(http::field::content_type, "application/json; charset=UTF-8");
        res.keep_alive(req.keep_alive());
        res.body() = std::move(body);
        res.prepare_payload();
        return res;
    }

    // `report`: the first anomalies go to stderr too (recipient, message index, body hash).
    Check check(bool report) const {
        Check c;
        c.report = report ? 10 : 0;
        std::uint64_t known_marked = 0;
        for (const auto& [recipient, citizen] : expect_.citizens) {
            // Accepted: the longest prefix of the citizen's messages that were all marked read.
            std::size_t accepted = 0;
            std::size_t marked = 0;
            for (std::size_t k = 0; k < citizen.wamids.size(); ++k) {
                if (marked_.count(citizen.wamids[k]) == 0)
                    continue;
                ++marked;
                if (accepted == k)
                    accepted = k + 1;
            }
            known_marked += marked;
            c.gaps += marked - accepted;
            c.accepted += accepted;
            const auto& messages = expect_.templates.at(static_cast<std::size_t>(citizen.templ));
            // The expected bodies in order, each with the index of the message it answers.
            std::vector<std::pair<std::size_t, std::uint64_t>> expected;
            for (std::size_t k = 0; k < accepted && k < messages.size(); ++k) {
                for (const std::uint64_t h : messages[k])
                    expected.emplace_back(k, h);
            }
            c.expected += expected.size();
            const auto found = received_.find(recipient);
            static const std::vector<std::uint64_t> kNone;
            align(recipient, expected, found == received_.end() ? kNone : found->second, c);
        }
        for (const auto& [recipient, hashes] : received_) {
            if (expect_.citizens.count(recipient) == 0)
                c.unexpected += hashes.size();
        }
        std::uint64_t all_marked = marked_.size();
        c.unknown_mark_reads = all_marked - known_marked;
        return c;
    }

    // Walks the received bodies against the expected ones (see the file comment).
    static void align(
        const std::string& recipient,
        const std::vector<std::pair<std::size_t, std::uint64_t>>& expected,
        const std::vector<std::uint64_t>& received,
        Check& c
    ) {
        std::size_t j = 0;
        // (message index, body hash) pairs matched so far: a second copy is a duplicate.
        std::unordered_set<std::uint64_t> matched;
        auto key = [](std::size_t k, std::uint64_t h) {
            return h ^ (static_cast<std::uint64_t>(k) * 0x9E3779B97F4A7C15ULL);
        };
        for (const std::uint64_t h : received) {
            if (j < expected.size() && expected[j].second == h) {
                matched.insert(key(expected[j].first, h));
                ++c.matched;
                ++j;
                continue;
            }
            // A copy of a reply already matched, for this message or an earlier one?
            bool duplicate = false;
            const std::size_t current = j > 0 ? expected[j - 1].first : 0;
            for (std::size_t k = current + 1; k-- > 0;) {
                if (matched.count(key(k, h)) != 0) {
                    duplicate = true;
                    break;
                }
            }
            if (duplicate) {
                ++c.duplicates;
                note(c, "duplicate", recipient, current, h);
                continue;
            }
            // Else a later expected body: what lies before it was skipped.
            std::size_t ahead = j + 1;
            while (ahead < expected.size() && expected[ahead].second != h)
                ++ahead;
            if (ahead < expected.size()) {
                note(c, "missing before", recipient, expected[ahead].first, expected[j].second);
                c.missing += ahead - j;
                matched.insert(key(expected[ahead].first, h));
                ++c.matched;
                j = ahead + 1;
            } else {
                ++c.unexpected;
                note(c, "unexpected", recipient, current, h);
            }
        }
        if (j < expected.size())
            note(c, "missing at the end", recipient, expected[j].first, expected[j].second);
        c.missing += expected.size() - j;
    }

    Expectation expect_;
    bool checking_ = false;
    Counts counts_;
    std::unordered_map<std::string, std::uint32_t> marked_;                 // wamid -> count
    std::unordered_map<std::string, std::vector<std::uint64_t>> received_;  // recipient -> hashes
};

asio::awaitable<void> serve(tcp::socket socket, Graph& graph) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
        http::request_parser<http::string_body> parser;
        parser.body_limit(kBodyLimit);
        stream.expires_after(std::chrono::seconds(120));
        auto [ec, n] = co_await http::async_read(stream, buffer, parser, kTuple);
        if (ec)
            break;
        const http::response<http::string_body> res = graph.answer(parser.get());
        auto [wec, wn] = co_await http::async_write(stream, res, kTuple);
        if (wec || !res.keep_alive())
            break;
    }
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, Graph& graph) {
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(kTuple);
        if (ec) {
            if (!acceptor.is_open())
                co_return;
            continue;
        }
        socket.set_option(tcp::no_delay(true), ec);
        graph.connected();
        asio::co_spawn(acceptor.get_executor(), serve(std::move(socket), graph), asio::detached);
    }
}

int usage() {
    std::fprintf(stderr, "usage: civicflow_bench_fake_graph [--port P] [--expect FILE]\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    unsigned long port = 0;
    std::string expect_path;
    for (int i = 1; i < argc; i += 2) {
        const std::string_view arg = argv[i];
        if (i + 1 >= argc)
            return usage();
        if (arg == "--port")
            port = std::strtoul(argv[i + 1], nullptr, 10);
        else if (arg == "--expect")
            expect_path = argv[i + 1];
        else
            return usage();
    }
    if (port > 65535)
        return usage();
    Expectation expect;
    if (!expect_path.empty() && !load_expectation(expect_path, expect)) {
        std::fprintf(stderr, "fake_graph: cannot read %s\n", expect_path.c_str());
        return 1;
    }
    Graph graph(std::move(expect), !expect_path.empty());
    // Single-threaded: the counts need no lock, and one core is all the fake may take.
    asio::io_context ioc(1);
    tcp::acceptor acceptor(
        ioc, {asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)}
    );
    std::printf(
        "listening on 127.0.0.1:%u\n", static_cast<unsigned>(acceptor.local_endpoint().port())
    );
    std::fflush(stdout);
    asio::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](const beast::error_code&, int) {
        std::printf("%s\n", graph.stats(true).c_str());
        std::fflush(stdout);
        ioc.stop();
    });
    asio::co_spawn(ioc, accept_loop(acceptor, graph), asio::detached);
    ioc.run();
    return 0;
}
