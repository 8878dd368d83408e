#include <cstdio>

#include "commands.hpp"

namespace civicflow::cli {

int run_chat(int /*argc*/, char** /*argv*/) {
    std::fputs("civicflow chat: not available yet\n", stderr);
    return 2;
}

}  // namespace civicflow::cli
