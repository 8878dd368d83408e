// civicflow graph FLOW_FILE: a flow as Mermaid stateDiagram-v2 or Graphviz DOT.
#include <cstdio>
#include <filesystem>

#include <civicflow/engine/graph.hpp>

#include "cli_util.hpp"
#include "commands.hpp"

namespace civicflow::cli {

namespace {

constexpr const char* kHelp =
    "usage: civicflow graph FLOW_FILE [--format=mermaid|dot]\n"
    "\n"
    "Draws the flow of FLOW_FILE (its folder is loaded so sub-flows resolve) on standard output:\n"
    "  --format=mermaid   a Mermaid stateDiagram-v2 (default; paste into Markdown)\n"
    "  --format=dot       Graphviz DOT (dot -Tsvg flow.dot > flow.svg)\n";

}  // namespace

int run_graph(int argc, char** argv) {
    Args args;
    if (auto err = parse_args(argc, argv, {"format"}, {"help"}, args); !err.empty()) {
        std::fprintf(stderr, "civicflow graph: %s\n\n%s", err.c_str(), kHelp);
        return 2;
    }
    if (args.has("help")) {
        std::fputs(kHelp, stdout);
        return 0;
    }
    const std::string format = args.get("format").value_or("mermaid");
    if (args.positional.size() != 1 || (format != "mermaid" && format != "dot")) {
        std::fputs(kHelp, stderr);
        return 2;
    }
    const std::filesystem::path file(args.positional[0]);
    std::error_code ec;
    if (std::filesystem::is_directory(file, ec)) {
        std::fprintf(
            stderr,
            "civicflow graph: %s is a directory; name one flow file in it (e.g. %s)\n",
            file.string().c_str(),
            (file / "main.yaml").string().c_str()
        );
        return 2;
    }
    if (!std::filesystem::is_regular_file(file, ec)) {
        std::fprintf(stderr, "civicflow graph: no such file: %s\n", file.string().c_str());
        return 2;
    }
    const std::string dir = file.has_parent_path() ? file.parent_path().string() : ".";
    auto loaded = load_dir(dir, false);
    if (!loaded) {
        return 2;
    }
    if (!loaded->flows) {
        return 1;
    }
    for (const auto& flow : loaded->flows->flows) {
        if (std::filesystem::equivalent(flow.file, file, ec)) {
            std::fputs(
                engine::render_graph(
                    flow,
                    format == "dot" ? engine::GraphFormat::kDot : engine::GraphFormat::kMermaid
                )
                    .c_str(),
                stdout
            );
            return 0;
        }
    }
    std::fprintf(
        stderr,
        "civicflow graph: %s holds no flow (is it the helpline file?)\n",
        file.string().c_str()
    );
    return 2;
}

}  // namespace civicflow::cli
