// The civicflow subcommands. Each returns the process exit code: 0 success, 1 failure found
// (check errors, failed tests), 2 usage or I/O error.
#pragma once

namespace civicflow::cli {

int run_check(int argc, char** argv);
int run_chat(int argc, char** argv);
int run_test(int argc, char** argv);
int run_graph(int argc, char** argv);
int run_serve(int argc, char** argv);

}  // namespace civicflow::cli
