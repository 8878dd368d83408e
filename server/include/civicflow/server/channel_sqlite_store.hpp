/// The SQLite ChannelStore: the WhatsApp channel's state in a WAL database file, written by a
/// dedicated thread with group commit.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <civicflow/server/channel_store.hpp>

namespace civicflow::server {

/// The channel store of `civicflow serve`, built like SqliteStore: its own SQLite connection
/// owned by one writer thread and fed by a queue, so I/O threads never touch the database. The
/// writer takes everything queued (up to `max_batch` operations), runs the reads, then the
/// writes in one transaction (each in its own savepoint: a failing write undoes only itself)
/// and commits once; with `durable` (synchronous=FULL) that commit is one fsync of the WAL,
/// shared by the batch. A write completes, on its caller's executor, only after that commit.
///
/// The file may be the session store's own database: every table here is named `wa_*` and the
/// schema has its own version table (`wa_schema_version`) with numbered migrations applied at
/// open; the two connections share the WAL and wait for each other's write locks for up to
/// `busy_timeout`.
///
/// Erasure deletes with `secure_delete` on (freed space is zeroed) and then checkpoints and
/// truncates the WAL, retried after later batches if another connection holds it, so no old
/// page image with the citizen's data is left in either file. Processed messages lose their
/// payload at once. Records past their retention are swept every `sweep_interval`, a bounded
/// number of rows per table at a time. Thread-safe.
class ChannelSqliteStore final : public ChannelStore {
public:
    using Clock = std::function<std::int64_t()>;

    struct Options {
        std::string path;
        ChannelRetention retention;
        std::chrono::milliseconds sweep_interval{60'000};
        /// How long a write waits for another connection's lock before failing ("store").
        std::chrono::milliseconds busy_timeout{5000};
        /// synchronous=FULL (else NORMAL: a power cut may lose the last commits).
        bool durable = true;
        std::size_t max_batch = 4096;
    };

    /// Opens (creating if needed) and migrates the database, then starts the writer thread.
    /// Blocking: call at startup. Error code "store" with SQLite's reason.
    static engine::Result<std::unique_ptr<ChannelSqliteStore>> open(
        Options options, Clock clock = {}
    );

    /// Calls close().
    ~ChannelSqliteStore() override;
    ChannelSqliteStore(const ChannelSqliteStore&) = delete;
    ChannelSqliteStore& operator=(const ChannelSqliteStore&) = delete;

    /// Finishes the operations already queued, stops the writer and closes the database.
    /// Operations started afterwards complete at once with Error "store" ("the channel store is
    /// closed"). Idempotent; blocking (call at shutdown, not on an I/O thread).
    void close();

    boost::asio::awaitable<engine::Result<bool>> add_inbound(InboxItem item) override;
    boost::asio::awaitable<engine::Result<std::vector<bool>>> receive(std::vector<Arrival> arrivals
    ) override;
    boost::asio::awaitable<engine::Result<std::vector<InboxItem>>> due_inbound(std::size_t limit
    ) override;
    boost::asio::awaitable<engine::Result<bool>> mark_processed(std::string wamid) override;
    boost::asio::awaitable<engine::Result<std::size_t>> enqueue(std::vector<OutboxItem> items
    ) override;
    boost::asio::awaitable<engine::Result<std::vector<OutboxItem>>> due_outbound(
        std::int64_t now, std::size_t limit
    ) override;
    boost::asio::awaitable<engine::Result<bool>> mark_sent(
        std::string id, std::string wamid, std::int64_t at
    ) override;
    boost::asio::awaitable<engine::Result<bool>> reschedule(
        std::string id, int attempts, std::int64_t next_attempt_at, std::string last_error
    ) override;
    boost::asio::awaitable<engine::Result<bool>> mark_failed(
        std::string id, int error_code, std::string error_title, std::int64_t at
    ) override;
    boost::asio::awaitable<engine::Result<bool>> record_status(DeliveryStatus status) override;
    boost::asio::awaitable<engine::Result<DeliveryCounts>> delivery_counts() override;
    boost::asio::awaitable<engine::Result<std::optional<OutboundRecord>>> find_outbound(
        std::string id_or_wamid
    ) override;
    boost::asio::awaitable<engine::Result<engine::Ok>> touch_inbound(
        std::string key, std::int64_t at
    ) override;
    boost::asio::awaitable<engine::Result<std::optional<std::int64_t>>> last_inbound(std::string key
    ) override;
    boost::asio::awaitable<engine::Result<std::optional<std::string>>> claim_idempotency_key(
        std::string idempotency_key, OutboxItem item
    ) override;
    boost::asio::awaitable<engine::Result<engine::Ok>> erase_citizen(std::string key) override;
    /// Unbounded, unlike the periodic sweep.
    boost::asio::awaitable<engine::Result<std::int64_t>> sweep() override;
    boost::asio::awaitable<engine::Result<engine::Ok>> ping() override;

    /// Checkpoints and truncates the WAL now (tests, backups).
    boost::asio::awaitable<engine::Result<engine::Ok>> checkpoint();

    /// Committed transactions and the write operations they carried (group commit: with many
    /// writers at once, commits < writes).
    std::uint64_t commits() const;
    std::uint64_t writes() const;

    /// The schema version of the `wa_*` tables this build writes.
    static constexpr int kSchemaVersion = 1;

    struct Impl;

private:
    explicit ChannelSqliteStore(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace civicflow::server
