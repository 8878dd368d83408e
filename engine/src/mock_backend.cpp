#include <charconv>

#include <civicflow/engine/mock_backend.hpp>

#include "json_util.hpp"

namespace civicflow::engine {

MockBackend MockBackend::from_yaml(
    const yaml::Node& node, const std::string& file, Diagnostics& diags
) {
    MockBackend mock;
    if (!node.is_sequence()) {
        diags.error(
            "E101",
            SourceLocation{file, node.line, node.column},
            "backend mocks must be a list, found " + node.kind_name()
        );
        return mock;
    }
    for (const auto& m : node.items) {
        if (!m.is_map()) {
            diags.error(
                "E101",
                SourceLocation{file, m.line, m.column},
                "a backend mock must be a mapping, found " + m.kind_name()
            );
            continue;
        }
        Entry e;
        e.location = SourceLocation{file, m.line, m.column};
        for (const auto& [key, value] : m.entries) {
            const std::string& k = key.scalar;
            if (k == "backend") {
                e.backend = value.scalar;
            } else if (k == "method") {
                e.method = value.scalar;
            } else if (k == "path") {
                e.path = value.scalar;
            } else if (k == "status") {
                const auto& s = value.scalar;
                auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), e.status);
                if (ec != std::errc() || ptr != s.data() + s.size() || e.status < 100 ||
                    e.status > 599) {
                    diags.error(
                        "E109",
                        SourceLocation{file, value.line, value.column},
                        "status must be an HTTP status code (100-599)"
                    );
                }
            } else if (k == "body") {
                e.body = yaml_to_json(value);
            } else if (k == "timeout") {
                e.timeout = value.scalar == "true";
            } else if (k == "error") {
                e.error = value.scalar == "true";
            } else if (k == "expect_body") {
                e.expect_body = yaml_to_json(value);
            } else {
                diags.error(
                    "E102",
                    SourceLocation{file, key.line, key.column},
                    "unknown key '" + k + "' in a backend mock",
                    "allowed keys: backend, method, path, status, body, timeout, error, "
                    "expect_body"
                );
            }
        }
        if (e.backend.empty() || e.path.empty()) {
            diags.error("E103", e.location, "a backend mock needs 'backend' and 'path'");
            continue;
        }
        mock.entries_.push_back(std::move(e));
    }
    return mock;
}

const MockBackend::Entry* MockBackend::find(const BackendCall& call) const {
    for (const auto& e : entries_) {
        if (e.backend == call.backend && e.path == call.path &&
            (e.method.empty() || e.method == call.method)) {
            return &e;
        }
    }
    return nullptr;
}

CallResult MockBackend::answer(const Entry& entry, const BackendCall& call) {
    CallResult result;
    result.call_id = call.id;
    if (entry.timeout) {
        result.outcome = CallResult::Outcome::kTimeout;
    } else if (entry.error) {
        result.outcome = CallResult::Outcome::kError;
    } else {
        result.status = entry.status;
        result.body = entry.body;
    }
    return result;
}

bool MockBackend::body_matches(const Entry& entry, const BackendCall& call) {
    return entry.expect_body.empty() || json_contains(call.body, entry.expect_body);
}

}  // namespace civicflow::engine
