// Lines of the Prometheus text format for GET /metrics (private to the server).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace civicflow::server::detail {

// Appends one unlabelled metric: its HELP and TYPE lines ("counter" or "gauge") and its value.
inline void append_metric(
    std::string& out,
    std::string_view name,
    std::string_view type,
    std::string_view help,
    std::uint64_t value
) {
    out.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
    out.append(name).append(" ").append(std::to_string(value)).append("\n");
}

// A label value in the text format: backslash, double quote and line feed escaped, so that a
// name from the config (a backend's) cannot break the whole scrape.
inline std::string label_value(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (const char c : v) {
        if (c == '\\' || c == '"') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

}  // namespace civicflow::server::detail
