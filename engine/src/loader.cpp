// Loading: parse every file, check everything, report all problems in one run.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <system_error>

#include <civicflow/engine/loader.hpp>
#include <civicflow/engine/yaml_document.hpp>

#include "flow_checks.hpp"
#include "flow_parser.hpp"

namespace civicflow::engine {

namespace {

/// FNV-1a 64 over every path and content, separated so "ab"+"c" differs from "a"+"bc".
std::string content_hash(const std::vector<SourceFile>& files) {
    std::uint64_t hash = 14695981039346656037ULL;
    auto feed = [&](std::string_view bytes) {
        for (const char c : bytes) {
            hash ^= static_cast<unsigned char>(c);
            hash *= 1099511628211ULL;
        }
        hash ^= 0xFFU;  // separator that no byte value can fake
        hash *= 1099511628211ULL;
    };
    for (const SourceFile& file : files) {
        feed(file.path);
        feed(file.contents);
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out(16, '0');
    for (int i = 15; i >= 0; --i) {
        out[static_cast<std::size_t>(i)] = kHex[hash & 0xFU];
        hash >>= 4U;
    }
    return out;
}

/// The directory the files share, for diagnostics about the set as a whole ("flows").
std::string directory_of(const std::vector<SourceFile>& files) {
    if (files.empty()) {
        return ".";
    }
    const std::string& first = files.front().path;
    const auto slash = first.find_last_of('/');
    return slash == std::string::npos ? "." : first.substr(0, slash);
}

}  // namespace

LoadResult load_flows(const std::vector<SourceFile>& files, std::string_view directory) {
    LoadResult result;
    detail::CheckInput input;
    input.directory = directory.empty() ? directory_of(files) : std::string(directory);
    for (const SourceFile& file : files) {
        result.sources.put(file.path, file.contents);
        yaml::Document doc = yaml::parse(file.path, file.contents, result.diagnostics);
        if (!doc.root) {
            // A file that is not even YAML may hold any flow: cross-file checks would guess.
            input.names_complete = false;
            continue;
        }
        detail::ParsedFile parsed = detail::parse_file(*doc.root, file.path, result.diagnostics);
        if (parsed.unnamed_flow) {
            input.names_complete = false;
        }
        if (parsed.flow) {
            input.flows.push_back(std::move(*parsed.flow));
        }
        if (parsed.helpline) {
            input.helplines.push_back(std::move(*parsed.helpline));
        }
    }
    FlowSet set = detail::check_and_link(std::move(input), result.diagnostics);
    result.diagnostics.sort();
    if (!result.diagnostics.has_errors()) {
        set.version = content_hash(files);
        result.flows = std::make_shared<const FlowSet>(std::move(set));
    }
    return result;
}

Result<std::vector<SourceFile>> read_flow_dir(const std::string& dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    std::vector<std::string> names;
    fs::directory_iterator it(dir, ec);
    if (ec) {
        return Error{
            "flow_dir_unreadable", "cannot read flow directory '" + dir + "': " + ec.message()};
    }
    for (const fs::directory_iterator end; it != end; it.increment(ec)) {
        if (ec) {
            return Error{
                "flow_dir_unreadable", "cannot read flow directory '" + dir + "': " + ec.message()};
        }
        const fs::path& path = it->path();
        const std::string ext = path.extension().string();
        if ((ext == ".yaml" || ext == ".yml") && it->is_regular_file(ec) && !ec) {
            names.push_back(path.filename().string());
        }
    }
    std::sort(names.begin(), names.end());
    std::vector<SourceFile> files;
    files.reserve(names.size());
    const std::string prefix = !dir.empty() && dir.back() == '/' ? dir : dir + "/";
    for (const std::string& name : names) {
        auto file = read_source_file(prefix + name);
        if (!file) {
            return file.error();
        }
        files.push_back(std::move(*file));
    }
    return files;
}

Result<SourceFile> read_source_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return Error{"flow_file_unreadable", "cannot open flow file '" + path + "'"};
    }
    // One byte past the YAML limit is enough for the reader to report E108, and never more
    // than that is held in memory, however large the file.
    const std::size_t cap = yaml::Limits{}.max_bytes + 1;
    SourceFile file;
    file.path = path;
    file.contents.resize(cap);
    in.read(file.contents.data(), static_cast<std::streamsize>(cap));
    if (in.bad()) {
        return Error{"flow_file_unreadable", "cannot read flow file '" + path + "'"};
    }
    file.contents.resize(static_cast<std::size_t>(in.gcount()));
    return file;
}

}  // namespace civicflow::engine
