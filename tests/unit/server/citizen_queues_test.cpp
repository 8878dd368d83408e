#include <string>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <doctest/doctest.h>

#include <civicflow/server/citizen_queues.hpp>

namespace asio = boost::asio;
using civicflow::server::CitizenQueues;

namespace {

// Gives other coroutines a chance to run (one trip through the executor's queue).
asio::awaitable<void> yield_once() {
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
}

}  // namespace

TEST_SUITE("server/citizen_queues") {
    TEST_CASE("messages of one citizen run one at a time in the order they asked") {
        asio::io_context ioc;
        CitizenQueues queues;
        std::vector<std::string> log;
        for (int i = 0; i < 3; ++i) {
            asio::co_spawn(
                ioc,
                [&, i]() -> asio::awaitable<void> {
                    auto lock = co_await queues.acquire("citizen");
                    log.push_back("start " + std::to_string(i));
                    co_await yield_once();
                    co_await yield_once();
                    log.push_back("end " + std::to_string(i));
                },
                asio::detached
            );
        }
        ioc.run();
        CHECK(
            log ==
            std::vector<std::string>{"start 0", "end 0", "start 1", "end 1", "start 2", "end 2"}
        );
        CHECK(queues.active() == 0);
    }

    TEST_CASE("different citizens do not wait for each other") {
        asio::io_context ioc;
        CitizenQueues queues;
        std::vector<std::string> log;
        for (const std::string user : {"a", "b"}) {
            asio::co_spawn(
                ioc,
                [&, user]() -> asio::awaitable<void> {
                    auto lock = co_await queues.acquire(user);
                    log.push_back("start " + user);
                    co_await yield_once();
                    log.push_back("end " + user);
                },
                asio::detached
            );
        }
        ioc.run();
        CHECK(log == std::vector<std::string>{"start a", "start b", "end a", "end b"});
    }

    TEST_CASE("an entry exists only while a citizen has a message in progress") {
        asio::io_context ioc;
        CitizenQueues queues;
        std::size_t active_inside = 0;
        std::size_t waiting_inside = 0;
        asio::co_spawn(
            ioc,
            [&]() -> asio::awaitable<void> {
                auto first = co_await queues.acquire("x");
                asio::co_spawn(
                    ioc,
                    [&]() -> asio::awaitable<void> { auto l = co_await queues.acquire("x"); },
                    asio::detached
                );
                co_await yield_once();
                active_inside = queues.active();
                waiting_inside = queues.waiting();
            },
            asio::detached
        );
        ioc.run();
        CHECK(active_inside == 1);
        CHECK(waiting_inside == 1);
        CHECK(queues.active() == 0);
        CHECK(queues.waiting() == 0);
    }

    TEST_CASE("under many threads a citizen's messages never overlap") {
        asio::io_context ioc(4);
        CitizenQueues queues;
        int inside = 0;
        int overlaps = 0;
        int done = 0;
        for (int i = 0; i < 200; ++i) {
            asio::co_spawn(
                asio::make_strand(ioc),
                [&]() -> asio::awaitable<void> {
                    auto lock = co_await queues.acquire("same");
                    // Plain ints: the lock is what makes these accesses exclusive (TSan would
                    // flag them otherwise).
                    if (++inside != 1)
                        ++overlaps;
                    co_await yield_once();
                    --inside;
                    ++done;
                },
                asio::detached
            );
        }
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t)
            threads.emplace_back([&] { ioc.run(); });
        for (auto& t : threads)
            t.join();
        CHECK(done == 200);
        CHECK(overlaps == 0);
    }
}
