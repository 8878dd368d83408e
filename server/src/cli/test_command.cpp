#include <cstdio>

#include "commands.hpp"

namespace civicflow::cli {

int run_test(int /*argc*/, char** /*argv*/) {
    std::fputs("civicflow test: not available yet\n", stderr);
    return 2;
}

}  // namespace civicflow::cli
