#include "json_util.hpp"

#include <rapidjson/document.h>
#include <rapidjson/encodedstream.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/pointer.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace civicflow::engine {

struct JsonDocument::Impl {
    rapidjson::Document doc;
    bool ok = false;
};

JsonDocument::JsonDocument()
    : impl_(std::make_unique<Impl>()) {}

JsonDocument::~JsonDocument() = default;

namespace {

// Forwards a reader's events to a document and fails past kMaxJsonDepth levels of nesting:
// text_at() serializes objects and arrays with a recursive writer, so a backend answering
// 100,000 '[' would otherwise overflow the thread's stack there (the parse itself is iterative).
template <typename Handler>
class DepthLimited {
public:
    explicit DepthLimited(Handler& h)
        : h_(h) {}

    bool Null() { return h_.Null(); }

    bool Bool(bool b) { return h_.Bool(b); }

    bool Int(int i) { return h_.Int(i); }

    bool Uint(unsigned u) { return h_.Uint(u); }

    bool Int64(std::int64_t i) { return h_.Int64(i); }

    bool Uint64(std::uint64_t u) { return h_.Uint64(u); }

    bool Double(double d) { return h_.Double(d); }

    bool RawNumber(const char* s, rapidjson::SizeType n, bool copy) {
        return h_.RawNumber(s, n, copy);
    }

    bool String(const char* s, rapidjson::SizeType n, bool copy) { return h_.String(s, n, copy); }

    bool Key(const char* s, rapidjson::SizeType n, bool copy) { return h_.Key(s, n, copy); }

    bool StartObject() { return ++depth_ <= kMaxJsonDepth && h_.StartObject(); }

    bool EndObject(rapidjson::SizeType n) {
        --depth_;
        return h_.EndObject(n);
    }

    bool StartArray() { return ++depth_ <= kMaxJsonDepth && h_.StartArray(); }

    bool EndArray(rapidjson::SizeType n) {
        --depth_;
        return h_.EndArray(n);
    }

private:
    Handler& h_;
    int depth_ = 0;
};

}  // namespace

bool JsonDocument::parse(std::string_view text) {
    // kParseStopWhenDoneFlag is not used: trailing garbage makes the body invalid.
    bool ok = false;
    auto generate = [&](auto& document) {
        DepthLimited<std::remove_reference_t<decltype(document)>> limited(document);
        rapidjson::MemoryStream memory(text.data(), text.size());
        rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> in(memory);
        rapidjson::Reader reader;
        ok = !reader.Parse<rapidjson::kParseIterativeFlag>(in, limited).IsError();
        return ok;
    };
    impl_->doc.Populate(generate);
    if (!ok)
        impl_->doc.SetNull();
    impl_->ok = ok;
    return ok;
}

namespace {

std::string serialize(const rapidjson::Value& value) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    value.Accept(writer);
    return {buffer.GetString(), buffer.GetSize()};
}

}  // namespace

std::optional<std::string> JsonDocument::text_at(std::string_view pointer) const {
    if (!impl_->ok) {
        return std::nullopt;
    }
    const rapidjson::Pointer ptr(pointer.data(), pointer.size());
    if (!ptr.IsValid()) {
        return std::nullopt;
    }
    const rapidjson::Value* value = ptr.Get(impl_->doc);
    if (value == nullptr || value->IsNull()) {
        return std::nullopt;
    }
    if (value->IsString()) {
        return std::string(value->GetString(), value->GetStringLength());
    }
    return serialize(*value);
}

std::string json_string(std::string_view text) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
    return {buffer.GetString(), buffer.GetSize()};
}

std::string json_object(const std::vector<std::pair<std::string, std::string>>& members) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    writer.StartObject();
    for (const auto& [key, value] : members) {
        writer.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
        writer.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
    }
    writer.EndObject();
    return {buffer.GetString(), buffer.GetSize()};
}

namespace {

bool is_json_number(const std::string& s) {
    if (s.empty()) {
        return false;
    }
    rapidjson::Document d;
    d.Parse(s.c_str(), s.size());
    return !d.HasParseError() && d.IsNumber();
}

void write_yaml(const yaml::Node& node, rapidjson::Writer<rapidjson::StringBuffer>& writer) {
    switch (node.kind) {
        case yaml::Kind::kNull:
            writer.Null();
            return;
        case yaml::Kind::kScalar: {
            const std::string& s = node.scalar;
            if (!node.quoted) {
                if (s == "true") {
                    writer.Bool(true);
                    return;
                }
                if (s == "false") {
                    writer.Bool(false);
                    return;
                }
                if (s == "null" || s == "~") {
                    writer.Null();
                    return;
                }
                if (is_json_number(s)) {
                    writer.RawValue(s.c_str(), s.size(), rapidjson::kNumberType);
                    return;
                }
            }
            writer.String(s.c_str(), static_cast<rapidjson::SizeType>(s.size()));
            return;
        }
        case yaml::Kind::kSequence:
            writer.StartArray();
            for (const auto& item : node.items) {
                write_yaml(item, writer);
            }
            writer.EndArray();
            return;
        case yaml::Kind::kMap:
            writer.StartObject();
            for (const auto& [key, value] : node.entries) {
                writer.Key(key.scalar.c_str(), static_cast<rapidjson::SizeType>(key.scalar.size()));
                write_yaml(value, writer);
            }
            writer.EndObject();
            return;
    }
}

bool contains(const rapidjson::Value& whole, const rapidjson::Value& subset) {
    if (subset.IsObject()) {
        if (!whole.IsObject()) {
            return false;
        }
        for (auto it = subset.MemberBegin(); it != subset.MemberEnd(); ++it) {
            auto found = whole.FindMember(it->name);
            if (found == whole.MemberEnd() || !contains(found->value, it->value)) {
                return false;
            }
        }
        return true;
    }
    return whole == subset;
}

}  // namespace

std::string yaml_to_json(const yaml::Node& node) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    write_yaml(node, writer);
    return {buffer.GetString(), buffer.GetSize()};
}

bool json_contains(std::string_view whole, std::string_view subset) {
    rapidjson::Document a;
    rapidjson::Document b;
    a.Parse(whole.data(), whole.size());
    b.Parse(subset.data(), subset.size());
    if (a.HasParseError() || b.HasParseError()) {
        return false;
    }
    return contains(a, b);
}

}  // namespace civicflow::engine
