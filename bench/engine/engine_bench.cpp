// Engine micro-benchmarks (issue: median under 2 us per turn, no memory growth, 200 flow files
// loaded in under 1 s). Prints medians of repeated runs; never asserts timings.
//
//   engine_bench [--turns N] [--runs R] [--soak N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <civicflow/engine/engine.hpp>
#include <civicflow/engine/loader.hpp>

using namespace civicflow::engine;
using Clock = std::chrono::steady_clock;

namespace {

constexpr Timestamp kNow = 1768451400000;

std::string faq_flow(int entries) {
    std::string y =
        "version: 1\nflow: main\ntitle: \"Main\"\nlanguages: [en]\nstart: menu\nstates:\n"
        "  menu:\n    say: \"Choose a topic or ask a question:\"\n    menu:\n"
        "      - { id: fees, title: \"Fees\", goto: form }\n"
        "      - { id: form, title: \"Apply for a certificate\", goto: form }\n"
        "      - { id: other, title: \"Something else\", goto: menu_again }\n"
        "  menu_again:\n    say: \"Back to the menu.\"\n    goto: menu\n"
        "  form:\n    ask: \"Date of birth (DD-MM-YYYY)?\"\n    slot: dob\n"
        "    validate: { date: { not_future: true }, error: \"Not a date.\" }\n"
        "    then: mobile\n"
        "  mobile:\n    ask: \"Mobile number?\"\n    slot: mobile\n"
        "    validate: { mobile: true, error: \"Not a mobile number.\" }\n    then: done\n"
        "  done:\n    say: \"Thank you.\"\n    goto: menu\n"
        "faq:\n";
    for (int i = 0; i < entries; ++i) {
        const std::string n = std::to_string(i);
        y += "  - id: q" + n + "\n    match: { keywords: [topic" + n + "alpha, subject" + n +
             "beta], phrases: [\"question number " + n + "\"]";
        if (i % 10 == 0) {
            y += ", patterns: ['(?i)form\\s*" + n + "\\b']";
        }
        y += " }\n    answer: \"Answer " + n + ".\"\n";
    }
    return y;
}

struct Sample {
    double median_ns = 0;
    double min_ns = 0;
};

template <typename F>
Sample measure(int runs, int turns, F&& one_turn) {
    std::vector<double> per_turn;
    for (int r = 0; r < runs; ++r) {
        const auto t0 = Clock::now();
        for (int i = 0; i < turns; ++i) {
            one_turn();
        }
        const auto t1 = Clock::now();
        per_turn.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / turns);
    }
    std::sort(per_turn.begin(), per_turn.end());
    return {per_turn[per_turn.size() / 2], per_turn.front()};
}

long rss_kib() {
    std::ifstream statm("/proc/self/statm");
    long size = 0;
    long resident = 0;
    statm >> size >> resident;
    return resident * 4;  // 4 KiB pages
}

}  // namespace

int main(int argc, char** argv) {
    int turns = 200000;
    int runs = 7;
    long soak = 10000000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--turns") == 0)
            turns = std::atoi(argv[i + 1]);
        if (std::strcmp(argv[i], "--runs") == 0)
            runs = std::atoi(argv[i + 1]);
        if (std::strcmp(argv[i], "--soak") == 0)
            soak = std::atol(argv[i + 1]);
    }

    const LoadResult loaded = load_flows({{"main.yaml", faq_flow(1000)}});
    if (!loaded.flows) {
        std::fputs(format_text(loaded.diagnostics, loaded.sources).c_str(), stderr);
        return 1;
    }
    const FlowSet& flows = *loaded.flows;

    // A citizen waiting at the menu.
    const Session at_menu = turn(flows, Session{}, Input::text_input("hi"), kNow).session;
    const Session at_form = turn(flows, at_menu, Input::text_input("2"), kNow).session;

    const Input faq = Input::text_input("Please tell me about topic500alpha for my family");
    const Input date = Input::text_input("05-08-2024");
    const Input choice = Input::text_input("2");

    std::size_t sink = 0;
    const Sample faq_s =
        measure(runs, turns, [&] { sink += turn(flows, at_menu, faq, kNow).replies.size(); });
    const Sample form_s =
        measure(runs, turns, [&] { sink += turn(flows, at_form, date, kNow).replies.size(); });
    const Sample menu_s =
        measure(runs, turns, [&] { sink += turn(flows, at_menu, choice, kNow).replies.size(); });
    std::printf("engine turn, median of %d runs x %d turns (ns/turn):\n", runs, turns);
    std::printf(
        "  faq match among 1000 entries  median %8.0f  min %8.0f\n", faq_s.median_ns, faq_s.min_ns
    );
    std::printf(
        "  form step with date validator median %8.0f  min %8.0f\n", form_s.median_ns, form_s.min_ns
    );
    std::printf(
        "  menu choice                   median %8.0f  min %8.0f\n", menu_s.median_ns, menu_s.min_ns
    );

    // Soak: a whole conversation repeated; resident memory must not grow once warm.
    Session s;
    const Input script[] = {
        Input::text_input("hi"),
        Input::text_input("2"),
        Input::text_input("05-08-2024"),
        Input::text_input("9876543210"),
        Input::text_input("topic7alpha"),
        Input::text_input("menu")};
    long warm = 0;
    const auto soak0 = Clock::now();
    for (long i = 0; i < soak; ++i) {
        s = turn(flows, s, script[i % 6], kNow).session;
        if (i == 100000) {
            warm = rss_kib();
        }
    }
    const double soak_s = std::chrono::duration<double>(Clock::now() - soak0).count();
    std::printf(
        "soak: %ld turns in %.1f s; RSS after 100k turns %ld KiB, at the end %ld KiB\n",
        soak,
        soak_s,
        warm,
        rss_kib()
    );

    // Loading 200 flow files.
    std::vector<SourceFile> files;
    for (int f = 0; f < 200; ++f) {
        std::string y = faq_flow(20);
        if (f > 0) {
            y.replace(y.find("flow: main"), 10, "flow: f" + std::to_string(f));
        }
        files.push_back({"f" + std::to_string(f) + ".yaml", y});
    }
    std::vector<double> load_ms;
    for (int r = 0; r < 3; ++r) {
        const auto t0 = Clock::now();
        const LoadResult big = load_flows(files);
        load_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        sink += big.flows ? big.flows->flows.size() : 0;
    }
    std::sort(load_ms.begin(), load_ms.end());
    std::printf(
        "load 200 flow files (20 FAQ entries, 6 states each): median %.1f ms\n", load_ms[1]
    );
    return sink == 0 ? 1 : 0;
}
