// JSON helpers for the engine (RapidJSON stays in json_util.cpp and session_codec.cpp).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <civicflow/engine/yaml_document.hpp>

namespace civicflow::engine {

/// How deep objects and arrays may nest in a JsonDocument.
inline constexpr int kMaxJsonDepth = 128;

/// A parsed JSON document to read values from by JSON pointer (RFC 6901).
class JsonDocument {
public:
    JsonDocument();
    ~JsonDocument();
    JsonDocument(const JsonDocument&) = delete;
    JsonDocument& operator=(const JsonDocument&) = delete;

    /// Parses `text`; false when it is not JSON or nests deeper than kMaxJsonDepth (the
    /// document is then empty).
    bool parse(std::string_view text);
    /// The value at `pointer` as text: strings as they are, numbers and booleans in JSON form,
    /// objects and arrays serialized; nullopt when absent or null (or the pointer is malformed).
    std::optional<std::string> text_at(std::string_view pointer) const;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

/// A JSON object of string members, in the given order: {"a":"x","b":"y"}.
std::string json_object(const std::vector<std::pair<std::string, std::string>>& members);

/// `text` as a JSON string literal, quotes included.
std::string json_string(std::string_view text);

/// A YAML tree as JSON: quoted scalars are strings; plain scalars that read as numbers, true,
/// false or null become those; everything else is a string.
std::string yaml_to_json(const yaml::Node& node);

/// True when `subset` (a JSON object) is contained in `whole`: each member of subset equals the
/// member of whole (recursively for objects). False when either is not JSON.
bool json_contains(std::string_view whole, std::string_view subset);

}  // namespace civicflow::engine
