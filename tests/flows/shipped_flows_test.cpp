#include <string>

#include <doctest/doctest.h>

#include <civicflow/engine/loader.hpp>

using namespace civicflow::engine;

TEST_SUITE("flows/shipped") {
    TEST_CASE("every shipped flow loads with zero errors and zero warnings") {
        const auto files = read_flow_dir(std::string(CIVICFLOW_SOURCE_DIR) + "/flows");
        REQUIRE_MESSAGE(files.has_value(), files.error().message);
        REQUIRE(files->size() >= 5);
        LoadResult r = load_flows(*files);
        r.diagnostics.sort();
        CHECK_MESSAGE(r.diagnostics.empty(), format_text(r.diagnostics, r.sources));
        REQUIRE(r.flows);
        for (const char* name : {"main", "passport", "birth_certificate", "status", "grievance"}) {
            CHECK_MESSAGE(r.flows->find_flow(name) != nullptr, name);
        }
    }

    TEST_CASE("every shipped flow is complete in English and Hindi") {
        const auto files = read_flow_dir(std::string(CIVICFLOW_SOURCE_DIR) + "/flows");
        REQUIRE(files.has_value());
        const LoadResult r = load_flows(*files);
        REQUIRE(r.flows);
        const std::vector<std::string> both{"en", "hi"};
        CHECK(r.flows->helpline.languages == both);
        for (const auto& flow : r.flows->flows) {
            CHECK_MESSAGE(flow.languages == both, flow.name);
        }
    }

    TEST_CASE("the passport flow answers at least 15 questions") {
        const auto files = read_flow_dir(std::string(CIVICFLOW_SOURCE_DIR) + "/flows");
        REQUIRE(files.has_value());
        const LoadResult r = load_flows(*files);
        REQUIRE(r.flows);
        const Flow* passport = r.flows->find_flow("passport");
        REQUIRE(passport != nullptr);
        CHECK(passport->faq.size() >= 15);
    }
}
