// civicflow test DIR|FILES: conversation tests against a flow directory.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include <civicflow/engine/conversation_test.hpp>

#include "cli_util.hpp"
#include "commands.hpp"

namespace civicflow::cli {

namespace {

namespace fs = std::filesystem;

constexpr const char* kHelp =
    "usage: civicflow test DIR|FILE... [--flows DIR] [--coverage]\n"
    "\n"
    "Runs the conversation tests (*.test.yaml) of each DIR (and of its tests/ folder) or each\n"
    "FILE against a flow directory: --flows, or else DIR itself when it holds flows, or else\n"
    "the parent of the folder holding the tests.\n"
    "\n"
    "options:\n"
    "  --flows DIR   the flow directory to test\n"
    "  --coverage    list the states no test enters\n"
    "\n"
    "The last line is 'N passed, M failed'. Exit status: 0 all passed, 1 a test failed or a\n"
    "test file is malformed, 2 usage or I/O error.\n";

bool is_test_file(const fs::path& p) {
    const std::string name = p.filename().string();
    return name.size() > 10 && name.substr(name.size() - 10) == ".test.yaml";
}

void collect(const fs::path& dir, std::vector<fs::path>& out) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        if (entry.is_regular_file() && is_test_file(entry.path())) {
            out.push_back(entry.path());
        }
    }
}

bool holds_flows(const fs::path& dir) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        const auto ext = entry.path().extension();
        if (entry.is_regular_file() && (ext == ".yaml" || ext == ".yml") &&
            !is_test_file(entry.path())) {
            return true;
        }
    }
    return false;
}

}  // namespace

int run_test(int argc, char** argv) {
    Args args;
    if (auto err = parse_args(argc, argv, {"flows"}, {"coverage", "help"}, args); !err.empty()) {
        std::fprintf(stderr, "civicflow test: %s\n\n%s", err.c_str(), kHelp);
        return 2;
    }
    if (args.has("help")) {
        std::fputs(kHelp, stdout);
        return 0;
    }
    if (args.positional.empty()) {
        std::fputs(kHelp, stderr);
        return 2;
    }
    std::vector<fs::path> tests;
    std::optional<fs::path> flows_dir;
    if (auto f = args.get("flows")) {
        flows_dir = fs::path(*f);
    }
    for (const auto& arg : args.positional) {
        const fs::path p(arg);
        std::error_code ec;
        if (fs::is_directory(p, ec)) {
            collect(p, tests);
            if (fs::is_directory(p / "tests", ec)) {
                collect(p / "tests", tests);
            }
            if (!flows_dir) {
                flows_dir = holds_flows(p) ? p : p.parent_path();
            }
        } else if (fs::is_regular_file(p, ec)) {
            tests.push_back(p);
            if (!flows_dir) {
                flows_dir = p.parent_path().parent_path();
            }
        } else {
            std::fprintf(stderr, "civicflow test: no such file or directory: %s\n", arg.c_str());
            return 2;
        }
    }
    std::sort(tests.begin(), tests.end());
    if (tests.empty()) {
        std::fputs("civicflow test: no *.test.yaml files found\n", stderr);
        return 2;
    }
    if (flows_dir->empty()) {
        flows_dir = fs::path(".");
    }
    auto loaded = load_dir(flows_dir->string(), false);
    if (!loaded) {
        return 2;
    }
    if (!loaded->flows) {
        std::fputs(
            "civicflow test: the flows have errors; fix them first (civicflow check)\n", stderr
        );
        return 1;
    }
    std::vector<engine::SourceFile> files;
    for (const auto& t : tests) {
        auto file = engine::read_source_file(t.string());
        if (!file) {
            std::fprintf(stderr, "civicflow test: %s\n", file.error().message.c_str());
            return 2;
        }
        files.push_back(std::move(*file));
    }
    const engine::ConversationRun run = engine::run_conversation_tests(*loaded->flows, files);
    engine::SourceCache sources;
    for (const auto& f : files) {
        sources.put(f.path, f.contents);
    }
    if (!run.diagnostics.empty()) {
        std::fputs(engine::format_text(run.diagnostics, sources).c_str(), stdout);
    }
    for (const auto& r : run.results) {
        if (!r.passed) {
            std::printf("FAIL %s: %s\n", r.file.c_str(), r.name.c_str());
            for (const auto& f : r.failures) {
                std::printf("  %s\n", f.c_str());
            }
        }
    }
    if (args.has("coverage")) {
        const auto missing = engine::uncovered_states(*loaded->flows, run);
        const std::size_t total = loaded->flows->state_count();
        std::printf(
            "coverage: %zu of %zu states entered (%.1f%%)\n",
            total - missing.size(),
            total,
            total == 0
                ? 100.0
                : 100.0 * static_cast<double>(total - missing.size()) / static_cast<double>(total)
        );
        for (const auto& [flow, state] : missing) {
            std::printf("  not entered: %s/%s\n", flow.c_str(), state.c_str());
        }
    }
    std::printf("%d passed, %d failed\n", run.passed(), run.failed());
    return run.failed() == 0 && !run.diagnostics.has_errors() ? 0 : 1;
}

}  // namespace civicflow::cli
