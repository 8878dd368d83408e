// Every ```yaml example block of docs/flow-authoring.md must load with zero errors: a flow
// example on its own (its only flow is the entry), a helpline example with a minimal flow 'main'.
#include <fstream>
#include <sstream>
#include <string>

#include <doctest/doctest.h>

#include <civicflow/engine/loader.hpp>

using namespace civicflow::engine;

namespace {

struct Example {
    int line = 0;
    std::string text;
};

std::vector<Example> examples(const std::string& markdown) {
    std::vector<Example> out;
    std::istringstream in(markdown);
    std::string line;
    int number = 0;
    bool inside = false;
    Example current;
    while (std::getline(in, line)) {
        ++number;
        if (!inside && line.rfind("```yaml example", 0) == 0) {
            inside = true;
            current = Example{number + 1, {}};
        } else if (inside && line.rfind("```", 0) == 0) {
            inside = false;
            out.push_back(current);
        } else if (inside) {
            current.text += line + "\n";
        }
    }
    return out;
}

const char* const kMinimalMain = R"(version: 1
flow: main
title: "Main"
start: hello
states:
  hello:
    say: "Hello"
    end: true
)";

}  // namespace

TEST_SUITE("flows/docs") {
    TEST_CASE("every yaml example of the authoring guide loads without errors") {
        std::ifstream file(std::string(CIVICFLOW_SOURCE_DIR) + "/docs/flow-authoring.md");
        REQUIRE(file.good());
        std::stringstream buffer;
        buffer << file.rdbuf();
        const auto blocks = examples(buffer.str());
        CHECK(blocks.size() >= 20);
        for (const auto& ex : blocks) {
            const std::string name = "flow-authoring.md:" + std::to_string(ex.line);
            std::vector<SourceFile> files{{name, ex.text}};
            if (ex.text.find("\nhelpline:") != std::string::npos ||
                ex.text.rfind("helpline:", 0) == 0) {
                files.push_back({"main.yaml", kMinimalMain});
            }
            const LoadResult r = load_flows(files);
            const std::string why =
                "example at " + name + ":\n" + format_text(r.diagnostics, r.sources);
            CHECK_MESSAGE(!r.diagnostics.has_errors(), why);
        }
    }
}
