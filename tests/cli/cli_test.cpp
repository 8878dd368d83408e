// Runs the civicflow binary the way a flow author does and checks output and exit status.
#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

namespace {

struct Run {
    int status = -1;
    std::string out;
};

// Runs `args` (shell words, already quoted) with stdin from `input`; stdout and stderr merged.
Run run(const std::string& args, const std::string& input = "") {
    const std::string source = CIVICFLOW_SOURCE_DIR;
    std::string command = "cd '" + source + "' && ";
    if (!input.empty()) {
        command += "printf '" + input + "' | ";
    }
    command += std::string("'") + CIVICFLOW_BIN + "' " + args + " 2>&1";
    Run r;
    FILE* pipe = popen(command.c_str(), "r");
    REQUIRE(pipe != nullptr);
    std::array<char, 4096> buffer{};
    std::size_t n = 0;
    while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) {
        r.out.append(buffer.data(), n);
    }
    const int raw = pclose(pipe);
    r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
    return r;
}

}  // namespace

TEST_SUITE("cli") {
    TEST_CASE("check reports a clean directory and exits 0") {
        const Run r = run("check flows");
        CHECK(r.status == 0);
        CHECK(r.out.rfind("flows: 6 files, 5 flows, ", 0) == 0);
        CHECK(r.out.find(" states: no problems\n") != std::string::npos);
    }

    TEST_CASE("check reports every error in GCC format and exits 1") {
        const Run r = run("check tests/flows/broken/E201-undefined-state");
        CHECK(r.status == 1);
        CHECK(r.out.find(": error[E201]: ") != std::string::npos);
        CHECK(r.out.find("main.yaml: 1 error, 0 warnings\n") != std::string::npos);
    }

    TEST_CASE("check --format=json prints the same diagnostics as an array") {
        const Run r = run("check --format=json tests/flows/broken/E102-unknown-key");
        CHECK(r.status == 1);
        CHECK(r.out.rfind("[\n  {\"file\": ", 0) == 0);
        CHECK(r.out.find("\"code\": \"E102\"") != std::string::npos);
        CHECK(run("check --format=json flows").out == "[]\n");
    }

    TEST_CASE("check of a directory without flows names that directory") {
        namespace fs = std::filesystem;
        const fs::path dir =
            fs::temp_directory_path() / ("civicflow-no-flows-" + std::to_string(::getpid()));
        fs::create_directories(dir);
        const Run r = run("check '" + dir.string() + "'");
        fs::remove_all(dir);
        CHECK(r.status == 1);
        CHECK(r.out.rfind(dir.string() + ": error[E103]: no flows: ", 0) == 0);
        CHECK(
            r.out.find("check that the directory given is the flows directory") != std::string::npos
        );
    }

    TEST_CASE("usage and I/O errors exit 2") {
        CHECK(run("check").status == 2);
        CHECK(run("check no/such/dir").status == 2);
        CHECK(run("check --format=xml flows").status == 2);
        CHECK(run("frobnicate").status == 2);
        CHECK(run("test").status == 2);
        CHECK(run("graph").status == 2);
        CHECK(run("graph no/such/file.yaml").status == 2);
    }

    TEST_CASE("every command has --help") {
        for (const char* command : {"check", "chat", "test", "graph", "serve"}) {
            const Run r = run(std::string(command) + " --help");
            CHECK_MESSAGE(r.status == 0, command);
            CHECK_MESSAGE(r.out.rfind(std::string("usage: civicflow ") + command, 0) == 0, r.out);
        }
    }

    TEST_CASE("test runs the shipped conversations and ends with the passed and failed counts") {
        const Run r = run("test flows --coverage");
        CHECK(r.status == 0);
        CHECK(r.out.find("coverage: ") != std::string::npos);
        CHECK(r.out.find("(100.0%)") != std::string::npos);
        const auto last = r.out.rfind('\n', r.out.size() - 2);
        const std::string tail = r.out.substr(last + 1);
        CHECK(tail.find(" passed, 0 failed\n") != std::string::npos);
    }

    TEST_CASE("test reports a failing conversation and exits 1") {
        const Run r =
            run("test tests/cli/fixtures/failing.test.yaml --flows tests/flows/validators");
        CHECK(r.status == 1);
        CHECK(
            r.out ==
            "FAIL tests/cli/fixtures/failing.test.yaml: expects the wrong state\n"
            "  tests/cli/fixtures/failing.test.yaml:11:16: conversation 'expects the wrong state' "
            "step 1: expected state \"ask_pin\", got \"menu\"\n"
            "1 passed, 1 failed\n"
        );
    }

    TEST_CASE("graph draws a flow as Mermaid or DOT") {
        const Run mermaid = run("graph flows/status.yaml");
        CHECK(mermaid.status == 0);
        CHECK(mermaid.out.rfind("stateDiagram-v2\n", 0) == 0);
        const Run dot = run("graph --format=dot flows/status.yaml");
        CHECK(dot.status == 0);
        CHECK(dot.out.rfind("digraph \"status\" {\n", 0) == 0);
        const Run dir = run("graph flows");
        CHECK(dir.status == 2);
        CHECK(
            dir.out.find("flows is a directory; name one flow file in it (e.g. flows/main.yaml)") !=
            std::string::npos
        );
    }

    TEST_CASE("chat holds a conversation with backend answers from a fixture file") {
        const Run r =
            run("chat flows --backend-fixtures examples/chat-fixtures.yaml",
                "hi\\n3\\nDL1234567890123\\n");
        CHECK(r.status == 0);
        CHECK(
            r.out.find("(calling GET status /applications/DL1234567890123)") != std::string::npos
        );
        CHECK(r.out.find("Status: Police verification") != std::string::npos);
        // Piped input is echoed after the prompt, so the transcript reads.
        CHECK(r.out.find("you> DL1234567890123\n") != std::string::npos);
    }

    TEST_CASE("chat keeps mistyped commands from the flows and refuses an unknown language") {
        const Run r = run("chat flows", "hi\n/sesion\n/session\n");
        CHECK(r.status == 0);
        CHECK(
            r.out.find("(unknown command /sesion: /choose ID, /advance 30m, /session, /quit)") !=
            std::string::npos
        );
        // The mistyped command reached no flow: the session is still at the main menu.
        CHECK(r.out.find("\"state\":\"menu\"") != std::string::npos);
        // Codes as clients send them: "hi-IN" is "hi".
        const Run hindi = run("chat flows --lang hi-IN", "namaste\\n");
        CHECK(hindi.status == 0);
        CHECK(hindi.out.find("नमस्ते!") != std::string::npos);
        const Run lang = run("chat flows --lang ta", "");
        CHECK(lang.status == 2);
        CHECK(
            lang.out.find("--lang ta is not a language of the helpline (en, hi)") !=
            std::string::npos
        );
    }
}
