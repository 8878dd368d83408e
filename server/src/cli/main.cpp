// civicflow: one binary for authors (check, chat, test, graph) and operators (serve).
#include <cstdio>
#include <string_view>

#include "commands.hpp"

namespace {

constexpr const char* kUsage =
    "usage: civicflow <command> [options]\n"
    "\n"
    "commands:\n"
    "  check DIR          check the flows of DIR and report every problem\n"
    "  chat DIR           talk to the flows of DIR in the terminal\n"
    "  test DIR|FILES     run conversation tests\n"
    "  graph FLOW_FILE    draw a flow as Mermaid (default) or Graphviz DOT\n"
    "  serve              run the HTTP server\n"
    "\n"
    "Run 'civicflow <command> --help' for the options of a command.\n";

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fputs(kUsage, stderr);
        return 2;
    }
    const std::string_view command = argv[1];
    if (command == "--help" || command == "-h" || command == "help") {
        std::fputs(kUsage, stdout);
        return 0;
    }
    // Subcommands see argv without the program name: argv[0] is the command itself.
    if (command == "check")
        return civicflow::cli::run_check(argc - 1, argv + 1);
    if (command == "chat")
        return civicflow::cli::run_chat(argc - 1, argv + 1);
    if (command == "test")
        return civicflow::cli::run_test(argc - 1, argv + 1);
    if (command == "graph")
        return civicflow::cli::run_graph(argc - 1, argv + 1);
    if (command == "serve")
        return civicflow::cli::run_serve(argc - 1, argv + 1);
    std::fprintf(stderr, "civicflow: unknown command '%.64s'\n\n%s", argv[1], kUsage);
    return 2;
}
