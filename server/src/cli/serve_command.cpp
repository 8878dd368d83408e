#include <cstdio>

#include "commands.hpp"

namespace civicflow::cli {

int run_serve(int /*argc*/, char** /*argv*/) {
    std::fputs("civicflow serve: not available yet\n", stderr);
    return 2;
}

}  // namespace civicflow::cli
