// civicflow check DIR: every problem of a flow directory in one run.
#include <cstdio>
#include <string>

#include "cli_util.hpp"
#include "commands.hpp"

namespace civicflow::cli {

namespace {

constexpr const char* kHelp =
    "usage: civicflow check DIR [--format=text|json]\n"
    "\n"
    "Loads every *.yaml file of DIR (flows and the helpline file) and reports every problem:\n"
    "  file:line:col: error[CODE]: message, with a snippet and a hint.\n"
    "Codes are explained in docs/flow-errors.md.\n"
    "\n"
    "options:\n"
    "  --format=text|json  text (default) or a JSON array of diagnostics\n"
    "\n"
    "exit status: 0 no errors (warnings allowed), 1 errors found, 2 usage or I/O error\n";

}  // namespace

int run_check(int argc, char** argv) {
    Args args;
    if (auto err = parse_args(argc, argv, {"format"}, {"help"}, args); !err.empty()) {
        std::fprintf(stderr, "civicflow check: %s\n\n%s", err.c_str(), kHelp);
        return 2;
    }
    if (args.has("help")) {
        std::fputs(kHelp, stdout);
        return 0;
    }
    const std::string format = args.get("format").value_or("text");
    if (args.positional.size() != 1 || (format != "text" && format != "json")) {
        std::fputs(kHelp, stderr);
        return 2;
    }
    const std::string& dir = args.positional[0];
    auto files = engine::read_flow_dir(dir);
    if (!files) {
        std::fprintf(stderr, "civicflow check: %s\n", files.error().message.c_str());
        return 2;
    }
    engine::LoadResult result = engine::load_flows(*files, dir);
    result.diagnostics.sort();
    if (format == "json") {
        const std::string json = engine::format_json(result.diagnostics);
        std::fputs(json.c_str(), stdout);
        if (json.empty() || json.back() != '\n') {
            std::fputs("\n", stdout);
        }
    } else if (!result.diagnostics.empty()) {
        std::fputs(engine::format_text(result.diagnostics, result.sources).c_str(), stdout);
    } else {
        const auto plural = [](std::size_t n, const char* one, const char* many) {
            return std::to_string(n) + " " + (n == 1 ? one : many);
        };
        const std::size_t flows = result.flows ? result.flows->flows.size() : 0;
        const std::size_t states = result.flows ? result.flows->state_count() : 0;
        std::printf(
            "%s: %s, %s, %s: no problems\n",
            dir.c_str(),
            plural(files->size(), "file", "files").c_str(),
            plural(flows, "flow", "flows").c_str(),
            plural(states, "state", "states").c_str()
        );
    }
    return result.diagnostics.has_errors() ? 1 : 0;
}

}  // namespace civicflow::cli
