#include <cstdio>

#include "commands.hpp"

namespace civicflow::cli {

int run_graph(int /*argc*/, char** /*argv*/) {
    std::fputs("civicflow graph: not available yet\n", stderr);
    return 2;
}

}  // namespace civicflow::cli
