#include "cli_util.hpp"

#include <cstdio>

namespace civicflow::cli {

std::optional<std::string> Args::get(std::string_view name) const {
    for (const auto& [n, v] : options) {
        if (n == name) {
            return v;
        }
    }
    return std::nullopt;
}

bool Args::has(std::string_view name) const {
    return get(name).has_value();
}

std::string parse_args(
    int argc,
    char** argv,
    const std::vector<std::string_view>& valued,
    const std::vector<std::string_view>& flags,
    Args& out
) {
    auto contains = [](const std::vector<std::string_view>& list, std::string_view name) {
        for (const auto n : list) {
            if (n == name) {
                return true;
            }
        }
        return false;
    };
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg.size() < 3 || arg.substr(0, 2) != "--") {
            out.positional.emplace_back(arg);
            continue;
        }
        std::string_view name = arg.substr(2);
        std::string value;
        const auto eq = name.find('=');
        if (eq != std::string_view::npos) {
            value = std::string(name.substr(eq + 1));
            name = name.substr(0, eq);
        }
        if (contains(valued, name)) {
            if (eq == std::string_view::npos) {
                if (i + 1 >= argc) {
                    return "option --" + std::string(name) + " needs a value";
                }
                value = argv[++i];
            }
        } else if (contains(flags, name)) {
            if (eq != std::string_view::npos) {
                return "option --" + std::string(name) + " takes no value";
            }
            value = "1";
        } else {
            return "unknown option --" + std::string(name);
        }
        out.options.emplace_back(std::string(name), std::move(value));
    }
    return {};
}

std::optional<engine::LoadResult> load_dir(const std::string& dir, bool print_warnings) {
    auto files = engine::read_flow_dir(dir);
    if (!files) {
        std::fprintf(stderr, "civicflow: %s\n", files.error().message.c_str());
        return std::nullopt;
    }
    engine::LoadResult result = engine::load_flows(*files, dir);
    if (!result.flows || (print_warnings && !result.diagnostics.empty())) {
        result.diagnostics.sort();
        std::fputs(engine::format_text(result.diagnostics, result.sources).c_str(), stderr);
    }
    return result;
}

}  // namespace civicflow::cli
