#include <cstdio>

#include "commands.hpp"

namespace civicflow::cli {

int run_check(int /*argc*/, char** /*argv*/) {
    std::fputs("civicflow check: not available yet\n", stderr);
    return 2;
}

}  // namespace civicflow::cli
