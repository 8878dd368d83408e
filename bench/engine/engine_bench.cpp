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
#include <functional>
#include <string>
#include <vector>

#include <civicflow/engine/engine.hpp>
#include <civicflow/engine/loader.hpp>
#include <civicflow/engine/text_normalize.hpp>

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

// Runs every case `runs` times, interleaved (case 1, 2, 3, 1, 2, 3, ...), so a burst of load
// from elsewhere on the machine hits all of them alike; returns each case's median and minimum.
std::vector<Sample> measure(int runs, int turns, const std::vector<std::function<void()>>& cases) {
    std::vector<std::vector<double>> per_turn(cases.size());
    for (int r = 0; r < runs; ++r) {
        for (std::size_t c = 0; c < cases.size(); ++c) {
            const auto t0 = Clock::now();
            for (int i = 0; i < turns; ++i) {
                cases[c]();
            }
            const auto t1 = Clock::now();
            per_turn[c].push_back(
                std::chrono::duration<double, std::nano>(t1 - t0).count() / turns
            );
        }
    }
    std::vector<Sample> out;
    for (auto& v : per_turn) {
        std::sort(v.begin(), v.end());
        out.push_back({v[v.size() / 2], v.front()});
    }
    return out;
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
    // Baseline: what any turn must do at least, copy the session and normalize the message.
    const std::vector<std::function<void()>> cases{
        [&] {
            Session copy = at_menu;
            sink += normalize(faq.text).size() + copy.history.size();
        },
        [&] { sink += turn(flows, at_menu, faq, kNow).replies.size(); },
        [&] { sink += turn(flows, at_form, date, kNow).replies.size(); },
        [&] { sink += turn(flows, at_menu, choice, kNow).replies.size(); },
    };
    const auto samples = measure(runs, turns, cases);
    const char* names[] = {
        "baseline: copy session, normalize",
        "faq match among 1000 entries",
        "form step with date validator",
        "menu choice"};
    std::printf("engine turn, %d interleaved runs x %d turns (ns/turn):\n", runs, turns);
    for (std::size_t i = 0; i < samples.size(); ++i) {
        std::printf(
            "  %-34s median %7.0f  min %7.0f  median/baseline %5.1f\n",
            names[i],
            samples[i].median_ns,
            samples[i].min_ns,
            samples[i].median_ns / samples[0].median_ns
        );
    }

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
