// The broken-flow corpus: each directory of tests/flows/broken/ is a small flow directory with one
// kind of mistake; its expected.txt is the exact `civicflow check` text for it. Run with
// CIVICFLOW_UPDATE_GOLDEN=1 to rewrite the expected files after an intended change, then review
// the diff.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <civicflow/engine/loader.hpp>

namespace fs = std::filesystem;
using civicflow::engine::SourceFile;

namespace {

const fs::path kCorpus = fs::path(CIVICFLOW_SOURCE_DIR) / "tests" / "flows" / "broken";
const fs::path kErrorDocs = fs::path(CIVICFLOW_SOURCE_DIR) / "docs" / "flow-errors.md";

std::string read_text(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

std::vector<fs::path> case_dirs() {
    std::vector<fs::path> dirs;
    for (const auto& entry : fs::directory_iterator(kCorpus)) {
        if (entry.is_directory()) {
            dirs.push_back(entry.path());
        }
    }
    std::sort(dirs.begin(), dirs.end());
    return dirs;
}

/// The code a case is about: the directory name up to the first '-' ("E102-unknown-key").
std::string code_of(const fs::path& dir) {
    const std::string name = dir.filename().string();
    return name.substr(0, name.find('-'));
}

/// The case's files, shown as "<case>/<file>". A `generate.txt` line "NAME BYTES" stands for a
/// file too large to commit: NAME holding BYTES bytes of valid YAML, built here in memory.
std::vector<SourceFile> case_files(const fs::path& dir) {
    const std::string name = dir.filename().string();
    std::vector<SourceFile> files;
    std::vector<fs::path> paths;
    for (const auto& entry : fs::directory_iterator(dir)) {
        const std::string ext = entry.path().extension().string();
        if (ext == ".yaml" || ext == ".yml") {
            paths.push_back(entry.path());
        }
    }
    if (fs::exists(dir / "generate.txt")) {
        std::istringstream spec(read_text(dir / "generate.txt"));
        std::string file;
        std::size_t bytes = 0;
        while (spec >> file >> bytes) {
            const std::string line = "key: value\n";
            std::string contents;
            contents.reserve(bytes);
            while (contents.size() + line.size() <= bytes) {
                contents += line;
            }
            contents.append(bytes - contents.size(), '#');
            files.push_back(SourceFile{name + "/" + file, std::move(contents)});
        }
    }
    for (const auto& path : paths) {
        files.push_back(SourceFile{name + "/" + path.filename().string(), read_text(path)});
    }
    std::sort(files.begin(), files.end(), [](const SourceFile& a, const SourceFile& b) {
        return a.path < b.path;
    });
    return files;
}

/// E/W codes with a "## CODE title" section in docs/flow-errors.md.
std::set<std::string> documented_codes() {
    std::set<std::string> codes;
    std::istringstream docs(read_text(kErrorDocs));
    const std::regex heading(R"(^## ([EW][0-9]{3}) .+)");
    std::string line;
    std::smatch m;
    while (std::getline(docs, line)) {
        if (std::regex_match(line, m, heading)) {
            codes.insert(m[1].str());
        }
    }
    return codes;
}

/// The first fenced block of each "## CODE" section of docs/flow-errors.md, by code.
std::vector<std::pair<std::string, std::string>> documented_examples() {
    std::vector<std::pair<std::string, std::string>> examples;
    std::istringstream docs(read_text(kErrorDocs));
    const std::regex heading(R"(^## ([EW][0-9]{3}) .+)");
    std::string line;
    std::string code;
    std::string block;
    bool in_block = false;
    std::smatch m;
    while (std::getline(docs, line)) {
        if (std::regex_match(line, m, heading)) {
            code = m[1].str();
        } else if (line == "```" && !code.empty()) {
            if (in_block) {
                examples.emplace_back(code, block);
                code.clear();
            }
            block.clear();
            in_block = !in_block;
        } else if (in_block) {
            block += line + '\n';
        }
    }
    return examples;
}

}  // namespace

TEST_SUITE("flows/broken") {
    TEST_CASE("every broken flow gives exactly its expected diagnostics") {
        const bool update = std::getenv("CIVICFLOW_UPDATE_GOLDEN") != nullptr &&
                            std::string(std::getenv("CIVICFLOW_UPDATE_GOLDEN")) == "1";
        const auto dirs = case_dirs();
        REQUIRE_FALSE(dirs.empty());
        for (const fs::path& dir : dirs) {
            CAPTURE(dir.filename().string());
            const auto files = case_files(dir);
            REQUIRE_FALSE(files.empty());
            const auto result = civicflow::engine::load_flows(files);
            const std::string actual = format_text(result.diagnostics, result.sources);
            const std::string code = code_of(dir);
            // The case must show the code it is named after, and only warnings may still load.
            CHECK(actual.find("[" + code + "]") != std::string::npos);
            CHECK((result.flows != nullptr) == (code[0] == 'W'));
            const fs::path expected_path = dir / "expected.txt";
            if (update) {
                std::ofstream(expected_path, std::ios::binary) << actual;
                continue;
            }
            REQUIRE_MESSAGE(fs::exists(expected_path), "missing " << expected_path.string());
            CHECK(actual == read_text(expected_path));
        }
    }

    TEST_CASE("every documented code has a broken flow and every broken flow is documented") {
        const std::set<std::string> documented = documented_codes();
        std::set<std::string> covered;
        for (const fs::path& dir : case_dirs()) {
            covered.insert(code_of(dir));
        }
        REQUIRE_FALSE(documented.empty());
        for (const std::string& code : documented) {
            CAPTURE(code);
            CHECK(covered.count(code) == 1);
        }
        for (const std::string& code : covered) {
            CAPTURE(code);
            CHECK(documented.count(code) == 1);
        }
    }

    TEST_CASE("every example in docs/flow-errors.md is the current output of a broken flow") {
        const auto examples = documented_examples();
        REQUIRE(examples.size() == documented_codes().size());
        for (const auto& [code, text] : examples) {
            CAPTURE(code);
            bool found = false;
            for (const fs::path& dir : case_dirs()) {
                if (code_of(dir) == code && fs::exists(dir / "expected.txt") &&
                    read_text(dir / "expected.txt") == text) {
                    found = true;
                }
            }
            CHECK_MESSAGE(found, "the example does not match any " << code << " expected.txt");
        }
    }
}
