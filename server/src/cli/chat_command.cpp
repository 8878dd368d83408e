// civicflow chat DIR: a conversation with the flows in the terminal. Backend calls are answered
// from a YAML fixture file (the conversation-test mock format) or by a live HTTP base URL.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>

#include <civicflow/engine/duration.hpp>
#include <civicflow/engine/engine.hpp>
#include <civicflow/engine/mock_backend.hpp>

#include "chat_http.hpp"
#include "cli_util.hpp"
#include "commands.hpp"

#include <unistd.h>

namespace civicflow::cli {

namespace {

constexpr const char* kHelp =
    "usage: civicflow chat DIR [--lang CODE] [--backend-fixtures FILE | --backend-url URL]\n"
    "\n"
    "Talk to the flows of DIR as a citizen would. Type a message and press Enter.\n"
    "  --lang CODE               the citizen's language at the start (default: the helpline's)\n"
    "  --backend-fixtures FILE   answer backend calls from FILE: a YAML list of\n"
    "                            {backend, method, path, status, body | timeout: true | error: "
    "true}\n"
    "  --backend-url URL         send backend calls to URL (http://host:port), for every backend\n"
    "\n"
    "In the chat:\n"
    "  /choose ID     reply with a menu option id (like a WhatsApp button)\n"
    "  /advance 30m   move the clock forward (s, m, h, d)\n"
    "  /session       show the session as stored\n"
    "  /quit          leave (end of input works too)\n";

void print_turn(const engine::Turn& t) {
    for (const auto& r : t.replies) {
        switch (r.kind) {
            case engine::Reply::Kind::kText:
                std::printf("bot> %s\n", r.text.c_str());
                break;
            case engine::Reply::Kind::kMenu:
                std::printf("bot> %s\n", r.text.c_str());
                for (std::size_t i = 0; i < r.options.size(); ++i) {
                    std::printf(
                        "       %zu. %s  [%s]\n",
                        i + 1,
                        r.options[i].title.c_str(),
                        r.options[i].id.c_str()
                    );
                }
                break;
            case engine::Reply::Kind::kMedia:
                std::printf("bot> [media] %s %s\n", r.url.c_str(), r.caption.c_str());
                break;
        }
    }
    for (const auto& e : t.events) {
        std::printf("     (event %s: %s)\n", e.code.c_str(), e.message.c_str());
    }
    for (const auto& e : t.effects) {
        if (e.kind == engine::Effect::Kind::kHandoff) {
            std::printf("     (hand-off to an officer requested)\n");
        } else if (e.kind == engine::Effect::Kind::kOptOut) {
            std::printf("     (citizen opted out)\n");
        } else if (e.kind == engine::Effect::Kind::kOptIn) {
            std::printf("     (citizen opted in)\n");
        } else if (e.kind == engine::Effect::Kind::kErase) {
            std::printf("     (citizen's data erased)\n");
        }
    }
    std::fflush(stdout);
}

}  // namespace

int run_chat(int argc, char** argv) {
    Args args;
    if (auto err =
            parse_args(argc, argv, {"lang", "backend-fixtures", "backend-url"}, {"help"}, args);
        !err.empty()) {
        std::fprintf(stderr, "civicflow chat: %s\n\n%s", err.c_str(), kHelp);
        return 2;
    }
    if (args.has("help")) {
        std::fputs(kHelp, stdout);
        return 0;
    }
    if (args.positional.size() != 1) {
        std::fputs(kHelp, stderr);
        return 2;
    }
    auto loaded = load_dir(args.positional[0], false);
    if (!loaded) {
        return 2;
    }
    if (!loaded->flows) {
        return 1;
    }
    const engine::FlowSet& flows = *loaded->flows;

    engine::MockBackend mocks;
    if (auto fixtures = args.get("backend-fixtures")) {
        auto file = engine::read_source_file(*fixtures);
        if (!file) {
            std::fprintf(stderr, "civicflow chat: %s\n", file.error().message.c_str());
            return 2;
        }
        engine::Diagnostics diags;
        const auto doc = engine::yaml::parse(file->path, file->contents, diags);
        if (doc.root) {
            mocks = engine::MockBackend::from_yaml(*doc.root, file->path, diags);
        }
        if (diags.has_errors()) {
            engine::SourceCache sources;
            sources.put(file->path, file->contents);
            std::fputs(engine::format_text(diags, sources).c_str(), stderr);
            return 2;
        }
    }
    const std::optional<std::string> backend_url = args.get("backend-url");

    engine::Session session;
    // As the server takes a client's hint: "HI" and "hi-IN" are "hi".
    const std::string given = args.get("lang").value_or("");
    const std::string lang = engine::helpline_language(flows.helpline.languages, given);
    if (!given.empty() && lang.empty()) {
        std::string list;
        for (const auto& l : flows.helpline.languages)
            list += (list.empty() ? "" : ", ") + l;
        std::fprintf(
            stderr,
            "civicflow chat: --lang %s is not a language of the helpline (%s)\n",
            given.c_str(),
            list.c_str()
        );
        return 2;
    }
    // Input from a pipe or file is not shown by a terminal: echo it, so the transcript reads.
    const bool echo = ::isatty(STDIN_FILENO) == 0;
    engine::Timestamp now = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch()
    )
                                .count();
    std::printf(
        "civicflow chat: %zu %s loaded. Type a message, /quit to leave.\n",
        flows.flows.size(),
        flows.flows.size() == 1 ? "flow" : "flows"
    );
    std::string line;
    while (true) {
        std::printf("you> ");
        std::fflush(stdout);
        if (!std::getline(std::cin, line)) {
            std::printf("\n");
            break;
        }
        if (echo)
            std::printf("%s\n", line.c_str());
        engine::Input input;
        if (line == "/quit") {
            break;
        }
        if (line == "/session") {
            std::printf("%s\n", engine::encode_session(session).c_str());
            continue;
        }
        if (line.rfind("/advance ", 0) == 0) {
            if (auto ms = engine::parse_duration_ms(line.substr(9))) {
                now += *ms;
                std::printf("     (clock moved forward)\n");
            } else {
                std::printf("     (usage: /advance 30m)\n");
            }
            continue;
        }
        if (line.rfind("/choose ", 0) == 0 && line.size() > 8) {
            input = engine::Input::choice(line.substr(8));
        } else if (!line.empty() && line[0] == '/') {
            // A mistyped command must not reach the flows as a citizen's message.
            std::printf(
                "     (unknown command %s: /choose ID, /advance 30m, /session, /quit)\n",
                line.substr(0, line.find(' ')).c_str()
            );
            continue;
        } else {
            input = engine::Input::text_input(line);
        }
        input.lang = lang;
        engine::Turn t = engine::turn(flows, session, input, now);
        print_turn(t);
        // Perform backend calls, then resume the turn with their results.
        for (int guard = 0; guard < 16 && !t.effects.empty(); ++guard) {
            const engine::BackendCall* call = nullptr;
            for (const auto& e : t.effects) {
                if (e.kind == engine::Effect::Kind::kBackendCall) {
                    call = &e.call;
                }
            }
            if (call == nullptr) {
                break;
            }
            std::printf(
                "     (calling %s %s %s)\n",
                call->method.c_str(),
                call->backend.c_str(),
                call->path.c_str()
            );
            engine::CallResult result;
            result.call_id = call->id;
            if (backend_url) {
                result = http_call(*backend_url, *call);
            } else if (const auto* entry = mocks.find(*call)) {
                result = engine::MockBackend::answer(*entry, *call);
            } else {
                std::printf("     (no fixture for this call: treated as an error)\n");
                result.outcome = engine::CallResult::Outcome::kError;
            }
            t = engine::turn(flows, t.session, engine::Input::call_result(std::move(result)), now);
            print_turn(t);
        }
        session = t.session;
    }
    return 0;
}

}  // namespace civicflow::cli
