// Signed WhatsApp webhook bodies for bench/run-whatsapp.sh, and what the server must send back.
//
//   civicflow_bench_wa_bodies --secret S --out BODIES --expect EXPECT [--messages N]
//       [--citizens C] [--flows DIR] [--run TAG] [--phone-number-id ID] [--show]
//
// BODIES: N lines "<citizen>\t<X-Hub-Signature-256>\t<body>", one webhook POST each (one text or
// list-reply message, Meta's shape, compact JSON), for bench/whatsapp.lua to load and send. The
// messages go round-robin over C citizens (line i is citizen i % C), so a citizen's consecutive
// messages are C lines apart; every wamid is distinct (TAG keeps runs apart) and every
// timestamp is now (the server answers only inside the 24-hour window).
//
// Each citizen walks one conversation, starting at a different point of it (citizen c at step
// c % 6, so at any moment every step is in flight):
//   "hi"                      text; a new session is welcomed, later ones get the fallback
//   list_reply "passport"     the main menu's Passport services row (interactive)
//   "passport fees"           an FAQ question inside the passport flow
//   "menu"                    the command back to the main menu
//   "1"                       a menu choice typed as its number (passport again)
//   "menu"
//
// EXPECT (bench/whatsapp_bench.hpp): what the server must send for those messages. It is worked
// out here, in process, by the same pieces the channel uses, minus the channel itself: the
// webhook parser, the real MessageService over a MemoryStore with the same flows, and the Cloud
// API renderer. One template citizen per starting step walks its whole sequence; every citizen
// with that start expects the same bodies (the hash leaves the recipient out). What this leaves
// to the benchmark to show is the channel's part: inbox, turns after the answer, outbox, sender
// and every reply sent exactly once.
//
// --show prints each template's messages and reply counts.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <civicflow/engine/loader.hpp>
#include <civicflow/server/memory_store.hpp>
#include <civicflow/server/message_api.hpp>
#include <civicflow/server/message_service.hpp>
#include <civicflow/server/whatsapp/outbound.hpp>
#include <civicflow/server/whatsapp/signature.hpp>
#include <civicflow/server/whatsapp/webhook.hpp>

#include "whatsapp_bench.hpp"

namespace asio = boost::asio;
using namespace civicflow;

namespace {

struct Step {
    bool list_reply = false;
    const char* text;   // text body, or the list row id
    const char* title;  // list row title
};

constexpr Step kConversation[] = {
    {false, "hi", ""},
    {true, "passport", "Passport services"},
    {false, "passport fees", ""},
    {false, "menu", ""},
    {false, "1", ""},
    {false, "menu", ""},
};
constexpr int kSteps = static_cast<int>(std::size(kConversation));

struct Options {
    std::string secret;
    std::string out;
    std::string expect;
    long messages = 200'000;
    int citizens = 10'000;
    std::string flows = "flows";
    std::string run = "R1";
    std::string phone_number_id = "106540352242922";
    bool show = false;
};

std::string phone_of(int citizen) {
    return std::to_string(919'800'000'000LL + citizen);
}

// Shaped like Meta's ids ("wamid.HBgM" + the number + ...), distinct per run, citizen and step.
std::string wamid_of(const std::string& run, const std::string& phone, int citizen, long k) {
    char buf[128];
    std::snprintf(
        buf, sizeof buf, "wamid.HBgM%sFQIAEhgU%s%06X%05lX", phone.c_str(), run.c_str(), citizen, k
    );
    return buf;
}

// One webhook POST body with one message, as Meta sends it (compact, fields in Meta's order).
std::string webhook_body(
    const Options& o,
    const std::string& phone,
    int citizen,
    const std::string& wamid,
    std::int64_t timestamp,
    const Step& step
) {
    std::string b =
        R"({"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":)"
        R"({"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881",)"
        R"("phone_number_id":")";
    b += o.phone_number_id;
    b += R"("},"contacts":[{"profile":{"name":"Citizen )";
    b += std::to_string(citizen);
    b += R"("},"wa_id":")";
    b += phone;
    b += R"("}],"messages":[{"from":")";
    b += phone;
    b += R"(","id":")";
    b += wamid;
    b += R"(","timestamp":")";
    b += std::to_string(timestamp);
    if (step.list_reply) {
        b += R"(","type":"interactive","interactive":{"type":"list_reply","list_reply":{"id":")";
        b += step.text;
        b += R"(","title":")";
        b += step.title;
        b += R"(","description":""}}}]},"field":"messages"}]}]})";
    } else {
        b += R"(","type":"text","text":{"body":")";
        b += step.text;
        b += R"("}}]},"field":"messages"}]}]})";
    }
    return b;
}

// The bodies the channel should send for each of a template citizen's `count` messages.
// Mirrors WhatsAppChannel::process(): the parsed message's input (the fields its inbox keeps),
// MessageService::handle_message with the wamid as message id, the replies of a 200, rendered
// with the default list button.
bool expected_replies(
    const Options& o,
    server::MessageService& service,
    asio::io_context& ioc,
    int start,
    long count,
    std::int64_t timestamp,
    std::vector<std::vector<std::uint64_t>>& out
) {
    const int citizen = -1 - start;  // template citizens: never a real one
    const std::string phone = std::to_string(910'000'000'000LL + start);
    bool ok = true;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            for (long k = 0; k < count && ok; ++k) {
                const Step& step = kConversation[(start + k) % kSteps];
                const std::string wamid = wamid_of("T", phone, start, k);
                const std::string body = webhook_body(o, phone, citizen, wamid, timestamp, step);
                auto batch = server::whatsapp::parse_webhook(body);
                if (!batch || batch->messages.size() != 1 || !batch->messages[0].is_input()) {
                    std::fprintf(stderr, "wa_bodies: the channel would not read body %ld\n", k);
                    ok = false;
                    co_return;
                }
                const server::whatsapp::InboundMessage& m = batch->messages[0];
                const engine::Input parsed = m.to_input();
                server::ChannelMessage msg;
                msg.user = "wa:" + m.phone_number_id + ":" + m.citizen;
                msg.input.kind = parsed.kind;
                msg.input.text = parsed.text;
                msg.input.choice_id = parsed.choice_id;
                msg.input.media = parsed.media;
                msg.input.profile_name = parsed.profile_name;
                msg.message_id = m.id;
                msg.channel = "whatsapp";
                const server::ApiReply reply = co_await service.handle_message(std::move(msg), "x");
                std::vector<std::uint64_t> hashes;
                if (reply.status == 200) {
                    auto replies = server::decode_message_replies(reply.body);
                    if (!replies) {
                        std::fprintf(
                            stderr, "wa_bodies: unreadable reply %s\n", reply.body.c_str()
                        );
                        ok = false;
                        co_return;
                    }
                    for (const std::string& sent :
                         server::whatsapp::render_replies(*replies, m.citizen)) {
                        hashes.push_back(bench::body_hash(sent, bench::recipient_of(sent)));
                        if (o.show && start == 0 && k < kSteps)
                            std::fprintf(stderr, "      %s\n", sent.c_str());
                    }
                }
                if (o.show && k < kSteps) {
                    std::fprintf(
                        stderr,
                        "  template %d message %ld %-22s -> %d, %zu messages\n",
                        start,
                        k,
                        step.text,
                        reply.status,
                        hashes.size()
                    );
                }
                out.push_back(std::move(hashes));
            }
        },
        asio::detached
    );
    ioc.run();
    ioc.restart();
    return ok;
}

int usage() {
    std::fprintf(
        stderr,
        "usage: civicflow_bench_wa_bodies --secret S --out BODIES --expect EXPECT [--messages N]\n"
        "           [--citizens C] [--flows DIR] [--run TAG] [--phone-number-id ID] [--show]\n"
    );
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--show") {
            o.show = true;
            continue;
        }
        if (i + 1 >= argc)
            return usage();
        const char* v = argv[++i];
        if (arg == "--secret")
            o.secret = v;
        else if (arg == "--out")
            o.out = v;
        else if (arg == "--expect")
            o.expect = v;
        else if (arg == "--messages")
            o.messages = std::atol(v);
        else if (arg == "--citizens")
            o.citizens = std::atoi(v);
        else if (arg == "--flows")
            o.flows = v;
        else if (arg == "--run")
            o.run = v;
        else if (arg == "--phone-number-id")
            o.phone_number_id = v;
        else
            return usage();
    }
    bool run_ok = !o.run.empty() && o.run.size() <= 16;
    for (const char c : o.run)
        run_ok = run_ok && std::isalnum(static_cast<unsigned char>(c)) != 0;
    if (o.secret.empty() || o.out.empty() || o.expect.empty() || o.messages <= 0 ||
        o.citizens <= 0 || !run_ok) {
        return usage();
    }

    auto files = engine::read_flow_dir(o.flows);
    if (!files) {
        std::fprintf(stderr, "wa_bodies: cannot read flows: %s\n", files.error().message.c_str());
        return 1;
    }
    engine::LoadResult loaded = engine::load_flows(*files);
    if (!loaded.flows) {
        std::fprintf(stderr, "%s", engine::format_text(loaded.diagnostics, loaded.sources).c_str());
        return 1;
    }
    const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::system_clock::now().time_since_epoch()
    )
                                 .count();

    // The expected replies, one template citizen per starting step.
    const long per_citizen = (o.messages + o.citizens - 1) / o.citizens;
    const int templates = std::min(kSteps, o.citizens);
    std::vector<std::vector<std::vector<std::uint64_t>>> expected(static_cast<std::size_t>(templates
    ));
    {
        server::MemoryStore store(std::chrono::hours(8 * 24));
        server::MessageService service(
            loaded.flows,
            store,
            [](engine::BackendCall, std::string) -> asio::awaitable<engine::CallResult> {
                // The conversation calls no backend; a call would show up as an error reply.
                engine::CallResult r;
                r.outcome = engine::CallResult::Outcome::kError;
                co_return r;
            }
        );
        asio::io_context ioc(1);
        for (int t = 0; t < templates; ++t) {
            if (!expected_replies(
                    o, service, ioc, t, per_citizen, now, expected[static_cast<std::size_t>(t)]
                )) {
                return 1;
            }
        }
    }

    std::FILE* bodies = std::fopen(o.out.c_str(), "w");
    std::FILE* expect = std::fopen(o.expect.c_str(), "w");
    if (bodies == nullptr || expect == nullptr) {
        std::fprintf(stderr, "wa_bodies: cannot write %s or %s\n", o.out.c_str(), o.expect.c_str());
        return 1;
    }
    std::fprintf(expect, "%s\n", std::string(bench::kExpectMagic).c_str());
    std::uint64_t expected_sends = 0;
    for (int t = 0; t < templates; ++t) {
        const auto& messages = expected[static_cast<std::size_t>(t)];
        for (std::size_t k = 0; k < messages.size(); ++k) {
            std::fprintf(expect, "template %d %zu %zu", t, k, messages[k].size());
            for (const std::uint64_t h : messages[k])
                std::fprintf(expect, " %016" PRIx64, h);
            std::fputc('\n', expect);
        }
    }
    // Citizen lines: the wamids in sending order.
    std::vector<std::string> citizen_lines(static_cast<std::size_t>(o.citizens));
    for (int c = 0; c < o.citizens; ++c) {
        citizen_lines[static_cast<std::size_t>(c)] =
            "citizen " + phone_of(c) + " " + std::to_string(c % templates);
    }
    for (long i = 0; i < o.messages; ++i) {
        const int c = static_cast<int>(i % o.citizens);
        const long k = i / o.citizens;
        const std::string phone = phone_of(c);
        const std::string wamid = wamid_of(o.run, phone, c, k);
        const Step& step = kConversation[(c % templates + k) % kSteps];
        const std::string body = webhook_body(o, phone, c, wamid, now, step);
        const std::string signature = server::whatsapp::sign_body(body, o.secret);
        std::fprintf(bodies, "%d\t%s\t%s\n", c, signature.c_str(), body.c_str());
        citizen_lines[static_cast<std::size_t>(c)] += " " + wamid;
        expected_sends +=
            expected[static_cast<std::size_t>(c % templates)][static_cast<std::size_t>(k)].size();
    }
    for (const std::string& line : citizen_lines)
        std::fprintf(expect, "%s\n", line.c_str());
    const bool written = std::fclose(bodies) == 0 && std::fclose(expect) == 0;
    if (!written) {
        std::fprintf(stderr, "wa_bodies: writing failed\n");
        return 1;
    }
    std::printf(
        "bodies=%ld citizens=%d steps=%d replies_if_all_accepted=%" PRIu64 "\n",
        o.messages,
        o.citizens,
        kSteps,
        expected_sends
    );
    return 0;
}
