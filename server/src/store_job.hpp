// The operations the SQLite stores (sessions, WhatsApp channel) hand to their writer thread
// (private to the server).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <civicflow/engine/result.hpp>

#include "job_queue.hpp"

namespace civicflow::server::detail {

/// One queued operation on a store's database `Db`: runs on the store's thread, completes on
/// its caller's executor. `Kind` is the store's own classification (read, write, ...).
template <typename Db, typename Kind>
struct StoreJob {
    virtual ~StoreJob() = default;
    /// Runs the operation; false when it failed (its result is then already the error).
    virtual bool run(Db& db) = 0;
    virtual void fail(const engine::Error& error) = 0;
    /// Hands the result to the caller's handler, now: call on the caller's executor.
    virtual void complete_here() = 0;
    /// The caller's executor (tracked: it counts as busy until the job completes, so an
    /// io_context waiting on the store does not run out of work).
    virtual const boost::asio::any_io_executor& executor() const = 0;

    Kind kind{};
    bool checkpoint_after = false;  // erasure: leave no old page image in the WAL
};

/// Completes `jobs` (and empties it) with one post per run of jobs sharing an executor, rather
/// than one per job: on a shared core, each post would wake the I/O thread and hand it the core
/// for a single completion. With one I/O thread every job shares its executor.
template <typename Job>
void complete_all(std::vector<std::unique_ptr<Job>>& jobs) {
    std::size_t first = 0;
    while (first < jobs.size()) {
        std::size_t last = first + 1;
        while (last < jobs.size() && jobs[last]->executor() == jobs[first]->executor())
            ++last;
        std::vector<std::unique_ptr<Job>> group(
            std::make_move_iterator(jobs.begin() + static_cast<std::ptrdiff_t>(first)),
            std::make_move_iterator(jobs.begin() + static_cast<std::ptrdiff_t>(last))
        );
        const boost::asio::any_io_executor executor = group.front()->executor();
        boost::asio::post(executor, [group = std::move(group)]() mutable {
            for (auto& job : group)
                job->complete_here();
        });
        first = last;
    }
    jobs.clear();
}

/// A StoreJob running `op(db)`, which returns engine::Result<T>, for the awaiting `handler`.
template <typename Db, typename Kind, typename T, typename Op, typename Handler>
struct OpJob final : StoreJob<Db, Kind> {
    OpJob(Op o, Handler h, const boost::asio::any_io_executor& fallback)
        : op(std::move(o))
        , handler(std::move(h))
        , work(boost::asio::prefer(
              boost::asio::get_associated_executor(handler, fallback),
              boost::asio::execution::outstanding_work.tracked
          )) {}

    bool run(Db& db) override {
        result.emplace(op(db));
        return result->has_value();
    }

    void fail(const engine::Error& error) override { result.emplace(error); }

    void complete_here() override { std::move(handler)(std::move(*result)); }

    const boost::asio::any_io_executor& executor() const override { return work; }

    Op op;
    Handler handler;
    boost::asio::any_io_executor work;
    std::optional<engine::Result<T>> result;
};

/// Queues `op` on `queue` as a job of `kind`; the awaitable completes with op's result on the
/// caller's executor. When the queue is closed (the store is being destroyed) the result is
/// `closed`. Not a coroutine itself: async_initiate's awaitable owns the operation until it is
/// queued (g++ 12 mishandles lambdas moved through an extra coroutine frame).
template <typename T, typename Db, typename Kind, typename Op>
boost::asio::awaitable<engine::Result<T>> submit(
    JobQueue<std::unique_ptr<StoreJob<Db, Kind>>>& queue,
    Kind kind,
    bool checkpoint_after,
    engine::Error closed,
    Op op
) {
    return boost::asio::
        async_initiate<decltype(boost::asio::use_awaitable), void(engine::Result<T>)>(
            [&queue, kind, checkpoint_after, closed = std::move(closed)](auto handler, Op o) {
                const boost::asio::any_io_executor fallback = boost::asio::system_executor();
                std::unique_ptr<StoreJob<Db, Kind>> job =
                    std::make_unique<OpJob<Db, Kind, T, Op, decltype(handler)>>(
                        std::move(o), std::move(handler), fallback
                    );
                job->kind = kind;
                job->checkpoint_after = checkpoint_after;
                if (!queue.push(job)) {
                    job->fail(closed);
                    std::vector<std::unique_ptr<StoreJob<Db, Kind>>> refused;
                    refused.push_back(std::move(job));
                    complete_all(refused);
                }
            },
            boost::asio::use_awaitable,
            std::move(op)
        );
}

}  // namespace civicflow::server::detail
