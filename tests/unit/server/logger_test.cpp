// The server's log writer: with Logger::Async, a reader of stderr that does not keep up costs
// lines (counted and reported), never a blocked caller.
#include <string>
#include <thread>

#include <doctest/doctest.h>

#include <civicflow/server/logger.hpp>

#include <unistd.h>

using namespace civicflow;

TEST_SUITE("server/logger") {
    TEST_CASE("with the writer thread, a stuck stderr drops lines instead of blocking") {
        int fds[2];
        REQUIRE(::pipe(fds) == 0);
        const int saved = ::dup(STDERR_FILENO);
        REQUIRE(saved >= 0);
        REQUIRE(::dup2(fds[1], STDERR_FILENO) >= 0);
        server::Logger::set_level(server::LogLevel::kInfo);
        std::string out;
        std::thread reader;
        const std::uint64_t dropped_before = server::Logger::dropped();
        {
            server::Logger::Async async(16 * 1024);
            // 2,000 lines of about 230 bytes: 460 KB against a pipe of 64 KB that nobody reads
            // yet. Written by this thread (no writer thread), the loop would never end.
            for (int i = 0; i < 2000; ++i) {
                server::Logger::log(
                    server::LogLevel::kWarn,
                    "rid1",
                    "test_line",
                    "n=" + std::to_string(i) + " pad=" + std::string(150, 'x')
                );
            }
            CHECK(server::Logger::dropped() > dropped_before);
            reader = std::thread([&] {
                char buf[4096];
                for (;;) {
                    const ssize_t n = ::read(fds[0], buf, sizeof buf);
                    if (n <= 0)
                        return;
                    out.append(buf, static_cast<std::size_t>(n));
                }
            });
        }  // writes what is queued, then the count of dropped lines
        ::dup2(saved, STDERR_FILENO);
        ::close(saved);
        ::close(fds[1]);
        reader.join();
        ::close(fds[0]);
        CHECK(out.find(" level=warn rid=rid1 event=test_line n=0 pad=") != std::string::npos);
        CHECK(out.find("event=log_lines_dropped count=") != std::string::npos);
        // Every line arrived whole.
        std::size_t start = 0;
        int lines = 0;
        while (start < out.size()) {
            const std::size_t end = out.find('\n', start);
            REQUIRE(end != std::string::npos);
            const std::string line = out.substr(start, end - start);
            CHECK(line.size() > 24);
            CHECK(line[4] == '-');
            CHECK(line.find(" level=") == 24);  // after "2026-12-01T10:00:00.123Z"
            start = end + 1;
            ++lines;
        }
        CHECK(lines > 1);
        CHECK(lines < 2001);
    }

    TEST_CASE("without the writer thread, and after it stops, lines are written directly") {
        int fds[2];
        REQUIRE(::pipe(fds) == 0);
        const int saved = ::dup(STDERR_FILENO);
        REQUIRE(::dup2(fds[1], STDERR_FILENO) >= 0);
        { server::Logger::Async async; }
        server::Logger::log(server::LogLevel::kError, {}, "after_stop", "k=v");
        ::dup2(saved, STDERR_FILENO);
        ::close(saved);
        ::close(fds[1]);
        std::string out;
        char buf[512];
        for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;)
            out.append(buf, static_cast<std::size_t>(n));
        ::close(fds[0]);
        CHECK(out.find(" level=error event=after_stop k=v\n") != std::string::npos);
    }
}
