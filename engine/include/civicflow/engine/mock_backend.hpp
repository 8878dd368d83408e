/// Mocked backend results for conversation tests and `civicflow chat`: a list of
/// { backend, method, path, status, body | timeout: true | error: true, expect_body } entries.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <civicflow/engine/diagnostic.hpp>
#include <civicflow/engine/turn.hpp>
#include <civicflow/engine/yaml_document.hpp>

namespace civicflow::engine {

/// A set of canned backend answers, matched by backend name, path and (optionally) method.
class MockBackend {
public:
    struct Entry {
        std::string backend;
        std::string method;  // empty: any method
        std::string path;
        int status = 200;
        std::string body;  // JSON
        bool timeout = false;
        bool error = false;
        std::string expect_body;  // JSON object the request body must contain, or empty
        SourceLocation location;
    };

    /// Reads a YAML list of entries (`node` is that list); shape errors go to `diags` (E101).
    static MockBackend from_yaml(
        const yaml::Node& node, const std::string& file, Diagnostics& diags
    );

    /// The entry answering `call`, or nullptr.
    const Entry* find(const BackendCall& call) const;
    /// The CallResult an entry gives for `call`.
    static CallResult answer(const Entry& entry, const BackendCall& call);
    /// True when the call's body satisfies the entry's expect_body (or there is none).
    static bool body_matches(const Entry& entry, const BackendCall& call);

    const std::vector<Entry>& entries() const { return entries_; }

private:
    std::vector<Entry> entries_;
};

}  // namespace civicflow::engine
