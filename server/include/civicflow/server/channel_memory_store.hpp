/// The in-memory ChannelStore: the WhatsApp channel's state in process memory (tests, bench).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include <civicflow/server/channel_store.hpp>

namespace civicflow::server {

/// Keeps the channel state in hash maps behind one mutex; everything is lost on restart, so
/// "durable" means nothing here. Operations never suspend and never fail, except for the
/// contract's caller errors (an item without id or key, a kQueued status, a wamid reused).
/// Records past their retention are swept at most once a minute of the store's clock, on a
/// write, and by sweep(). Thread-safe.
class ChannelMemoryStore final : public ChannelStore {
public:
    /// Milliseconds since the epoch; injectable so tests control retention.
    using Clock = std::function<std::int64_t()>;

    explicit ChannelMemoryStore(ChannelRetention retention = {}, Clock clock = {});
    ~ChannelMemoryStore() override;
    ChannelMemoryStore(const ChannelMemoryStore&) = delete;
    ChannelMemoryStore& operator=(const ChannelMemoryStore&) = delete;

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
    boost::asio::awaitable<engine::Result<std::int64_t>> sweep() override;
    boost::asio::awaitable<engine::Result<engine::Ok>> ping() override;

private:
    struct Data;
    std::unique_ptr<Data> data_;
};

}  // namespace civicflow::server
