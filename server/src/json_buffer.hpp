/// RapidJSON documents sized for the small JSON of one request body, with their storage inside
/// the object (private to the server; engine/src/session_codec.cpp does the same for sessions):
/// parsing one allocates nothing unless it outgrows that storage. A default rapidjson::Document
/// takes a fresh 64 KiB chunk from the heap on its first value, and the first touch of that chunk
/// misses the cache: per message, that was a few percent of the server's time (docs/performance.md,
/// "The connection loop").
#pragma once

#include <algorithm>
#include <cstddef>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

namespace civicflow::server {

using JsonPool = rapidjson::MemoryPoolAllocator<rapidjson::CrtAllocator>;
using PooledDocument = rapidjson::GenericDocument<rapidjson::UTF8<>, JsonPool, JsonPool>;

/// Room a MemoryPoolAllocator takes for its chunk header at the start of a buffer it is given
/// (24 bytes in RapidJSON 1.1, aligned): a buffer of N bytes holds N minus this. A parse stack of
/// 1,024 bytes in a buffer of 1,024 went to a heap chunk of 64 KiB every time.
inline constexpr std::size_t kJsonPoolHeader = 64;

/// A document whose values (`ValueBytes`) and parse stack (`StackBytes`) live in the object,
/// spilling to the heap in 64 KiB chunks only beyond that. Keep it on the stack of the function
/// that parses; not copyable or movable (the allocators point into it).
template <std::size_t ValueBytes = 4096, std::size_t StackBytes = 1024>
class LocalDocument {
public:
    LocalDocument() = default;
    LocalDocument(const LocalDocument&) = delete;
    LocalDocument& operator=(const LocalDocument&) = delete;

    PooledDocument& get() { return doc_; }

private:
    alignas(std::max_align_t) char values_[ValueBytes + kJsonPoolHeader];
    alignas(std::max_align_t) char stack_[StackBytes + kJsonPoolHeader];
    JsonPool value_pool_{values_, sizeof values_};
    JsonPool stack_pool_{stack_, sizeof stack_};
    PooledDocument doc_{&value_pool_, StackBytes, &stack_pool_};
};

/// Whether a JSON object has a key twice. Parsers disagree on which one counts (RapidJSON
/// finds the first, JavaScript and Python keep the last), so a gateway that checked one value
/// could pass a request that is acted on for the other: requests with one are refused.
template <typename Object>
bool has_duplicate_keys(const Object& object) {
    const auto n = object.MemberCount();
    const auto name = [](const auto& m) {
        return std::string_view(m.name.GetString(), m.name.GetStringLength());
    };
    if (n <= 8) {
        for (auto a = object.MemberBegin(); a != object.MemberEnd(); ++a) {
            for (auto b = a + 1; b != object.MemberEnd(); ++b) {
                if (name(*a) == name(*b))
                    return true;
            }
        }
        return false;
    }
    std::vector<std::string_view> names;
    names.reserve(n);
    for (auto m = object.MemberBegin(); m != object.MemberEnd(); ++m)
        names.push_back(name(*m));
    std::sort(names.begin(), names.end());
    return std::adjacent_find(names.begin(), names.end()) != names.end();
}

}  // namespace civicflow::server
