// Small helpers shared by the CLI subcommands: flag parsing and loading a flow directory.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <civicflow/engine/loader.hpp>

namespace civicflow::cli {

/// Parsed command line: positional arguments and --name=value / --name value / --flag options.
struct Args {
    std::vector<std::string> positional;
    std::vector<std::pair<std::string, std::string>> options;  // name without dashes, value
    std::optional<std::string> get(std::string_view name) const;
    bool has(std::string_view name) const;
};

/// Parses argv[1..]; `valued` lists options that take a value (as "--x v" or "--x=v").
/// Unknown options are an error message (empty on success).
std::string parse_args(
    int argc,
    char** argv,
    const std::vector<std::string_view>& valued,
    const std::vector<std::string_view>& flags,
    Args& out
);

/// Reads and loads the flows of `dir`. Prints diagnostics to stderr when it fails; returns
/// nullopt on I/O errors (exit 2) and a LoadResult with null flows on flow errors (exit 1).
std::optional<engine::LoadResult> load_dir(const std::string& dir, bool print_warnings);

}  // namespace civicflow::cli
