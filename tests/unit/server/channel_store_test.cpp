#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <doctest/doctest.h>

#include <civicflow/server/channel_memory_store.hpp>
#include <civicflow/server/channel_sqlite_store.hpp>
#include <civicflow/server/sqlite_store.hpp>

#include "store_test_support.hpp"

#include <sqlite3.h>

namespace asio = boost::asio;
using namespace civicflow;
using civicflow::testing::run;
using server::ChannelStore;
using server::DeliveryCounts;
using server::DeliveryStatus;
using server::InboxItem;
using server::OutboundRecord;
using server::OutboxItem;
using State = server::OutboxItem::State;
using namespace std::chrono_literals;

namespace {

constexpr std::int64_t kStart = 1'700'000'000'000;
constexpr std::int64_t kInboxRetention = 3'600'000;   // 1h in these tests
constexpr std::int64_t kOutboxRetention = 7'200'000;  // 2h

server::ChannelRetention test_retention() {
    server::ChannelRetention r;
    r.inbox = std::chrono::milliseconds(kInboxRetention);
    r.outbox = std::chrono::milliseconds(kOutboxRetention);
    return r;
}

// The two implementations under one shape: a store, its clock, and (SQLite) a reopen.
struct MemoryFixture {
    std::int64_t now = kStart;
    std::unique_ptr<ChannelStore> store =
        std::make_unique<server::ChannelMemoryStore>(test_retention(), [this] { return now; });
};

struct SqliteFixture {
    SqliteFixture() { reopen(); }

    ~SqliteFixture() {
        store.reset();
        std::filesystem::remove_all(dir);
    }

    server::ChannelSqliteStore::Options options() const {
        server::ChannelSqliteStore::Options o;
        o.path = path;
        o.retention = test_retention();
        // Only explicit sweeps in tests: the periodic one must not race the assertions.
        o.sweep_interval = 24h;
        return o;
    }

    void reopen() {
        store.reset();
        auto opened = server::ChannelSqliteStore::open(options(), [this] { return now; });
        REQUIRE_MESSAGE(opened, opened.error().message);
        sqlite = opened->get();
        store = std::move(*opened);
    }

    std::string dir = testing::temp_dir("civicflow-wa");
    std::string path = dir + "/civicflow.db";
    std::int64_t now = kStart;
    server::ChannelSqliteStore* sqlite = nullptr;
    std::unique_ptr<ChannelStore> store;
};

InboxItem inbound(const std::string& wamid, const std::string& citizen, std::int64_t at) {
    return InboxItem{wamid, "wa:1001:" + citizen, R"({"text":"hello from )" + citizen + "\"}", at};
}

OutboxItem outbound(
    const std::string& id,
    const std::string& recipient,
    std::int64_t at,
    const std::string& number = "1001"
) {
    OutboxItem o;
    o.id = id;
    o.key = "wa:" + number + ":" + recipient;
    o.phone_number_id = number;
    o.recipient = recipient;
    o.body = R"({"messaging_product":"whatsapp","to":")" + recipient +
             R"(","type":"text","text":{"body":"reply )" + id + "\"}}";
    o.kind = "reply";
    o.created_at = at;
    o.next_attempt_at = at;
    return o;
}

std::vector<std::string> ids(const std::vector<OutboxItem>& items) {
    std::vector<std::string> out;
    for (const auto& i : items)
        out.push_back(i.id);
    return out;
}

std::vector<std::string> wamids(const std::vector<InboxItem>& items) {
    std::vector<std::string> out;
    for (const auto& i : items)
        out.push_back(i.wamid);
    return out;
}

using Strings = std::vector<std::string>;

OutboundRecord find(ChannelStore& store, const std::string& id) {
    auto r = run(store.find_outbound(id));
    REQUIRE(r);
    REQUIRE(*r);
    return **r;
}

DeliveryStatus status(const std::string& wamid, State state, std::int64_t at) {
    return DeliveryStatus{wamid, state, at, 0, ""};
}

}  // namespace

TEST_SUITE("server/channel_store") {
    TEST_CASE("delivery states only move forward") {
        CHECK(server::can_advance(State::kQueued, State::kSent));
        CHECK(server::can_advance(State::kSent, State::kRead));
        CHECK(server::can_advance(State::kDelivered, State::kRead));
        CHECK(server::can_advance(State::kSent, State::kFailed));
        CHECK(server::can_advance(State::kQueued, State::kFailed));
        CHECK_FALSE(server::can_advance(State::kRead, State::kDelivered));
        CHECK_FALSE(server::can_advance(State::kDelivered, State::kSent));
        CHECK_FALSE(server::can_advance(State::kDelivered, State::kFailed));
        CHECK_FALSE(server::can_advance(State::kFailed, State::kRead));
        CHECK_FALSE(server::can_advance(State::kSent, State::kSent));
        CHECK_FALSE(server::can_advance(State::kSent, State::kQueued));
        CHECK(server::to_string(State::kDelivered) == "delivered");
        CHECK(server::to_string(State::kFailed) == "failed");
    }

    TEST_CASE("a late status records its time without moving the state back") {
        OutboundRecord r;
        r.item.state = State::kSent;
        r.sent_at = 10;
        CHECK(server::apply_delivery_status(r, status("w", State::kRead, 30)));
        CHECK(server::apply_delivery_status(r, status("w", State::kDelivered, 20)));
        CHECK(r.item.state == State::kRead);
        CHECK(r.delivered_at == 20);
        CHECK(r.read_at == 30);
        // A redelivery and a failure after the read change nothing.
        CHECK_FALSE(server::apply_delivery_status(r, status("w", State::kDelivered, 25)));
        CHECK_FALSE(
            server::apply_delivery_status(r, DeliveryStatus{"w", State::kFailed, 40, 131026, "x"})
        );
        CHECK(r.delivered_at == 20);
        CHECK(r.failed_at == 0);
        CHECK(r.error_code == 0);
    }

    TEST_CASE_TEMPLATE(
        "an inbound message is stored once and redeliveries are recognised",
        F,
        MemoryFixture,
        SqliteFixture
    ) {
        F f;
        ChannelStore& store = *f.store;
        CHECK(*run(store.add_inbound(inbound("wamid.A1", "919800000001", kStart + 5))));
        // Meta's timestamps need not follow arrival: arrival order is what counts.
        CHECK(*run(store.add_inbound(inbound("wamid.B1", "919800000002", kStart + 1))));
        CHECK(*run(store.add_inbound(inbound("wamid.A2", "919800000001", kStart + 3))));
        auto redelivered = inbound("wamid.A1", "919800000001", kStart + 9);
        redelivered.payload = "changed";
        CHECK_FALSE(*run(store.add_inbound(redelivered)));

        auto due = run(store.due_inbound(10));
        REQUIRE(due);
        CHECK(wamids(*due) == Strings{"wamid.A1", "wamid.B1", "wamid.A2"});
        CHECK((*due)[0] == inbound("wamid.A1", "919800000001", kStart + 5));
        CHECK(wamids(*run(store.due_inbound(2))) == Strings{"wamid.A1", "wamid.B1"});

        CHECK(*run(store.mark_processed("wamid.B1")));
        CHECK_FALSE(*run(store.mark_processed("wamid.B1")));
        CHECK_FALSE(*run(store.mark_processed("wamid.unknown")));
        CHECK(wamids(*run(store.due_inbound(10))) == Strings{"wamid.A1", "wamid.A2"});
        // Processed messages are still recognised.
        CHECK_FALSE(*run(store.add_inbound(inbound("wamid.B1", "919800000002", kStart))));
        CHECK(wamids(*run(store.due_inbound(10))) == Strings{"wamid.A1", "wamid.A2"});
    }

    TEST_CASE_TEMPLATE(
        "a webhook's messages are stored with their windows in one step",
        F,
        MemoryFixture,
        SqliteFixture
    ) {
        F f;
        ChannelStore& store = *f.store;
        REQUIRE(*run(store.add_inbound(inbound("wamid.K", "919800000003", kStart))));
        using server::Arrival;
        auto fresh = run(store.receive({
            Arrival{inbound("wamid.R1", "919800000001", kStart + 1), kStart - 5'000},
            Arrival{inbound("wamid.K", "919800000003", kStart + 2), kStart - 1'000},
            Arrival{inbound("wamid.R2", "919800000001", kStart + 3), kStart - 9'000},
            Arrival{inbound("wamid.R1", "919800000001", kStart + 4), kStart - 5'000},
        }));
        REQUIRE(fresh);
        CHECK(*fresh == std::vector<bool>{true, false, true, false});
        CHECK(wamids(*run(store.due_inbound(10))) == Strings{"wamid.K", "wamid.R1", "wamid.R2"});
        // The window keeps the latest time written, a redelivery's included.
        CHECK(*run(store.last_inbound("wa:1001:919800000001")) == kStart - 5'000);
        CHECK(*run(store.last_inbound("wa:1001:919800000003")) == kStart - 1'000);
        // One bad item: nothing of the batch is stored.
        auto refused = run(store.receive({
            Arrival{inbound("wamid.R3", "919800000004", kStart), kStart},
            Arrival{inbound("", "919800000004", kStart), kStart},
        }));
        REQUIRE_FALSE(refused);
        CHECK(refused.error().code == "store");
        CHECK_FALSE(*run(store.last_inbound("wa:1001:919800000004")));
        CHECK(
            *run(store.receive({Arrival{inbound("wamid.R3", "919800000004", kStart), kStart}})) ==
            std::vector<bool>{true}
        );
    }

    TEST_CASE_TEMPLATE(
        "processed inbox ids are forgotten after the inbox retention and unprocessed ones are kept",
        F,
        MemoryFixture,
        SqliteFixture
    ) {
        F f;
        ChannelStore& store = *f.store;
        REQUIRE(*run(store.add_inbound(inbound("wamid.P", "919800000001", kStart))));
        REQUIRE(*run(store.add_inbound(inbound("wamid.U", "919800000001", kStart))));
        REQUIRE(*run(store.mark_processed("wamid.P")));
        f.now += kInboxRetention - 1;
        CHECK(*run(store.sweep()) == 0);
        f.now += 1;
        CHECK(*run(store.sweep()) == 1);
        CHECK(*run(store.add_inbound(inbound("wamid.P", "919800000001", f.now))));
        f.now += 10 * kInboxRetention;
        CHECK(*run(store.sweep()) == 0);
        CHECK(wamids(*run(store.due_inbound(10))) == Strings{"wamid.U", "wamid.P"});
        CHECK_FALSE(*run(store.add_inbound(inbound("wamid.U", "919800000001", f.now))));
    }

    TEST_CASE_TEMPLATE(
        "records without their ids are refused with a store error", F, MemoryFixture, SqliteFixture
    ) {
        F f;
        ChannelStore& store = *f.store;
        auto no_wamid = run(store.add_inbound(inbound("", "919800000001", kStart)));
        REQUIRE_FALSE(no_wamid);
        CHECK(no_wamid.error().code == "store");
        CHECK(no_wamid.error().message == "an inbox item needs a wamid and a citizen key");

        // One bad item refuses the whole batch.
        auto bad = outbound("m#1", "919800000001", kStart);
        bad.key.clear();
        auto queued = run(store.enqueue({outbound("m#0", "919800000001", kStart), bad}));
        REQUIRE_FALSE(queued);
        CHECK(queued.error().code == "store");
        CHECK(queued.error().message == "an outbox item needs an id and a citizen key");
        CHECK(run(store.due_outbound(kStart, 10))->empty());
        CHECK(run(store.delivery_counts())->queued == 0);

        auto queued_status = run(store.record_status(status("wamid.o", State::kQueued, kStart)));
        REQUIRE_FALSE(queued_status);
        CHECK(queued_status.error().code == "store");
        CHECK(queued_status.error().message == "a delivery status cannot be 'queued'");

        auto no_key = run(store.claim_idempotency_key("", outbound("n#0", "919800000001", kStart)));
        REQUIRE_FALSE(no_key);
        CHECK(no_key.error().message == "an idempotency key cannot be empty");
        CHECK(run(store.ping()));
    }

    TEST_CASE_TEMPLATE(
        "queued messages come out oldest first and each id is queued once",
        F,
        MemoryFixture,
        SqliteFixture
    ) {
        F f;
        ChannelStore& store = *f.store;
        const std::string x = "919800000001";
        const std::string y = "919800000002";
        auto first = run(store.enqueue(
            {outbound("a#0", x, kStart), outbound("a#1", x, kStart), outbound("b#0", y, kStart)}
        ));
        REQUIRE(first);
        CHECK(*first == 3);
        // A re-run turn queues its replies again: only the new one is taken, nothing replaced.
        auto changed = outbound("a#1", x, kStart);
        changed.body = "{}";
        auto second =
            run(store.enqueue({changed, outbound("c#0", x, kStart), outbound("c#0", x, kStart)}));
        REQUIRE(second);
        CHECK(*second == 1);

        auto due = run(store.due_outbound(kStart, 10));
        REQUIRE(due);
        CHECK(ids(*due) == Strings{"a#0", "a#1", "b#0", "c#0"});
        for (std::size_t i = 1; i < due->size(); ++i)
            CHECK((*due)[i - 1].seq < (*due)[i].seq);
        OutboxItem expected = outbound("a#1", x, kStart);
        expected.seq = (*due)[1].seq;
        CHECK((*due)[1] == expected);
        CHECK(ids(*run(store.due_outbound(kStart, 2))) == Strings{"a#0", "a#1"});
        // Not due before its time.
        auto later = outbound("d#0", "919800000003", kStart + 500);
        REQUIRE(*run(store.enqueue({later})) == 1);
        CHECK(
            ids(*run(store.due_outbound(kStart + 499, 10))) == Strings{"a#0", "a#1", "b#0", "c#0"}
        );
        CHECK(
            ids(*run(store.due_outbound(kStart + 500, 10))) ==
            Strings{"a#0", "a#1", "b#0", "c#0", "d#0"}
        );
        CHECK(run(store.delivery_counts())->queued == 5);
    }

    TEST_CASE_TEMPLATE(
        "a message waiting for a retry holds back the later messages of its conversation",
        F,
        MemoryFixture,
        SqliteFixture
    ) {
        F f;
        ChannelStore& store = *f.store;
        const std::string x = "919800000001";
        REQUIRE(
            *run(store.enqueue(
                {outbound("x#0", x, kStart),
                 outbound("x#1", x, kStart),
                 outbound("y#0", "919800000002", kStart),
                 outbound("z#0", x, kStart, "2002")}
            )) == 4
        );
        CHECK(*run(store.reschedule("x#0", 1, kStart + 1000, "retry http=500")));
        // x#1 waits for x#0; the same citizen on another number is another conversation.
        CHECK(ids(*run(store.due_outbound(kStart, 10))) == Strings{"y#0", "z#0"});
        CHECK(
            ids(*run(store.due_outbound(kStart + 1000, 10))) == Strings{"x#0", "x#1", "y#0", "z#0"}
        );
        auto x0 = find(store, "x#0");
        CHECK(x0.item.attempts == 1);
        CHECK(x0.item.next_attempt_at == kStart + 1000);
        CHECK(x0.last_error == "retry http=500");
        CHECK(x0.item.state == State::kQueued);
        CHECK_FALSE(*run(store.reschedule("unknown", 1, kStart, "")));
    }

    TEST_CASE_TEMPLATE(
        "sending and failing take a message out of the queue for good",
        F,
        MemoryFixture,
        SqliteFixture
    ) {
        F f;
        ChannelStore& store = *f.store;
        const std::string x = "919800000001";
        REQUIRE(*run(store.enqueue({outbound("m#0", x, kStart), outbound("m#1", x, kStart)})) == 2);
        CHECK(*run(store.mark_sent("m#0", "wamid.out0", kStart + 10)));
        CHECK_FALSE(*run(store.mark_sent("m#0", "wamid.out0", kStart + 11)));
        CHECK_FALSE(*run(store.reschedule("m#0", 1, kStart + 20, "late")));
        CHECK_FALSE(*run(store.mark_failed("m#0", 131047, "Re-engagement message", kStart)));
        CHECK(ids(*run(store.due_outbound(kStart + 10, 10))) == Strings{"m#1"});

        CHECK(*run(store.mark_failed("m#1", 131047, "Re-engagement message", kStart + 12)));
        CHECK_FALSE(*run(store.mark_sent("m#1", "wamid.out1", kStart + 13)));
        CHECK_FALSE(*run(store.mark_sent("unknown", "wamid.out2", kStart + 13)));
        CHECK(run(store.due_outbound(kStart + 100, 10))->empty());

        auto sent = find(store, "m#0");
        CHECK(sent.item.state == State::kSent);
        CHECK(sent.wamid == "wamid.out0");
        CHECK(sent.sent_at == kStart + 10);
        CHECK(sent.item.body == outbound("m#0", x, kStart).body);
        CHECK(find(store, "wamid.out0") == sent);
        auto failed = find(store, "m#1");
        CHECK(failed.item.state == State::kFailed);
        CHECK(failed.failed_at == kStart + 12);
        CHECK(failed.error_code == 131047);
        CHECK(failed.error_title == "Re-engagement message");
        CHECK(failed.wamid.empty());
        CHECK_FALSE(*run(store.find_outbound("nothing")));
        CHECK(*run(store.delivery_counts()) == DeliveryCounts{0, 1, 0, 0, 1});
    }

    TEST_CASE_TEMPLATE("a wamid cannot belong to two messages", F, MemoryFixture, SqliteFixture) {
        F f;
        ChannelStore& store = *f.store;
        REQUIRE(
            *run(store.enqueue({outbound("m#0", "1", kStart), outbound("m#1", "1", kStart)})) == 2
        );
        REQUIRE(*run(store.mark_sent("m#0", "wamid.same", kStart)));
        auto again = run(store.mark_sent("m#1", "wamid.same", kStart));
        REQUIRE_FALSE(again);
        CHECK(again.error().code == "store");
        CHECK(
            again.error().message ==
            "cannot mark a message sent: its wamid belongs to another message"
        );
        CHECK(find(store, "m#1").item.state == State::kQueued);
        auto empty = run(store.mark_sent("m#1", "", kStart));
        REQUIRE_FALSE(empty);
        CHECK(empty.error().message == "cannot mark a message sent without its wamid");
    }

    TEST_CASE_TEMPLATE(
        "statuses move a sent message forward and never back", F, MemoryFixture, SqliteFixture
    ) {
        F f;
        ChannelStore& store = *f.store;
        REQUIRE(
            *run(store.enqueue({outbound("m#0", "1", kStart), outbound("m#1", "1", kStart)})) == 2
        );
        REQUIRE(*run(store.mark_sent("m#0", "wamid.0", kStart + 1)));
        REQUIRE(*run(store.mark_sent("m#1", "wamid.1", kStart + 1)));

        CHECK(*run(store.record_status(status("wamid.0", State::kSent, kStart + 2))));
        CHECK(*run(store.record_status(status("wamid.0", State::kRead, kStart + 4))));
        CHECK(*run(store.record_status(status("wamid.0", State::kDelivered, kStart + 3))));
        CHECK(*run(store.record_status(status("wamid.0", State::kRead, kStart + 9))));
        CHECK(*run(store.record_status(DeliveryStatus{
            "wamid.0", State::kFailed, kStart + 5, 131026, "late"})));
        auto read = find(store, "m#0");
        CHECK(read.item.state == State::kRead);
        CHECK(read.sent_at == kStart + 1);
        CHECK(read.delivered_at == kStart + 3);
        CHECK(read.read_at == kStart + 4);
        CHECK(read.failed_at == 0);
        CHECK(read.error_code == 0);

        CHECK(*run(store.record_status(DeliveryStatus{
            "wamid.1", State::kFailed, kStart + 2, 131026, "Message undeliverable"})));
        CHECK(*run(store.record_status(status("wamid.1", State::kDelivered, kStart + 3))));
        auto failed = find(store, "wamid.1");
        CHECK(failed.item.state == State::kFailed);
        CHECK(failed.delivered_at == 0);
        CHECK(failed.failed_at == kStart + 2);
        CHECK(failed.error_code == 131026);
        CHECK(failed.error_title == "Message undeliverable");
        CHECK(*run(store.delivery_counts()) == DeliveryCounts{0, 2, 1, 1, 1});
    }

    TEST_CASE_TEMPLATE(
        "statuses that overtake the send are linked when it is recorded",
        F,
        MemoryFixture,
        SqliteFixture
    ) {
        F f;
        ChannelStore& store = *f.store;
        REQUIRE(
            *run(store.enqueue({outbound("m#0", "1", kStart), outbound("m#1", "2", kStart)})) == 2
        );
        CHECK_FALSE(*run(store.record_status(status("wamid.early", State::kRead, kStart + 30))));
        CHECK_FALSE(*run(store.record_status(status("wamid.early", State::kDelivered, kStart + 20)))
        );
        CHECK_FALSE(*run(store.record_status(status("wamid.early", State::kDelivered, kStart + 25)))
        );
        CHECK(*run(store.delivery_counts()) == DeliveryCounts{2, 0, 0, 0, 0});
        CHECK_FALSE(*run(store.find_outbound("wamid.early")));

        REQUIRE(*run(store.mark_sent("m#0", "wamid.early", kStart + 10)));
        auto r = find(store, "m#0");
        CHECK(r.item.state == State::kRead);
        CHECK(r.sent_at == kStart + 10);
        CHECK(r.delivered_at == kStart + 20);
        CHECK(r.read_at == kStart + 30);
        CHECK(*run(store.delivery_counts()) == DeliveryCounts{1, 1, 1, 1, 0});

        // Applied in Meta's timestamp order: the failure came first, so it wins.
        CHECK_FALSE(*run(store.record_status(status("wamid.late", State::kDelivered, kStart + 50)))
        );
        CHECK_FALSE(*run(store.record_status(DeliveryStatus{
            "wamid.late", State::kFailed, kStart + 40, 131026, "Message undeliverable"})));
        REQUIRE(*run(store.mark_sent("m#1", "wamid.late", kStart + 35)));
        auto failed = find(store, "m#1");
        CHECK(failed.item.state == State::kFailed);
        CHECK(failed.error_code == 131026);
        CHECK(failed.delivered_at == 0);
        CHECK(*run(store.delivery_counts()) == DeliveryCounts{0, 2, 1, 1, 1});
    }

    TEST_CASE_TEMPLATE(
        "unmatched statuses and finished messages are swept after their retention",
        F,
        MemoryFixture,
        SqliteFixture
    ) {
        F f;
        ChannelStore& store = *f.store;
        REQUIRE(
            *run(store.enqueue(
                {outbound("m#0", "1", kStart),
                 outbound("m#1", "2", kStart),
                 outbound("m#2", "3", kStart)}
            )) == 3
        );
        REQUIRE(*run(store.mark_sent("m#0", "wamid.0", kStart)));
        REQUIRE(*run(store.mark_failed("m#1", 131047, "Re-engagement message", kStart)));
        REQUIRE(*run(store.record_status(status("wamid.0", State::kDelivered, kStart))));
        REQUIRE_FALSE(*run(store.record_status(status("wamid.orphan", State::kRead, kStart))));

        f.now += kInboxRetention;
        CHECK(*run(store.sweep()) == 1);  // the orphan status
        f.now += kOutboxRetention - kInboxRetention - 1;
        CHECK(*run(store.sweep()) == 0);
        f.now += 1;
        CHECK(*run(store.sweep()) == 2);  // m#0 and m#1; m#2 is still queued
        CHECK_FALSE(*run(store.find_outbound("m#0")));
        CHECK_FALSE(*run(store.find_outbound("wamid.0")));
        CHECK(ids(*run(store.due_outbound(f.now, 10))) == Strings{"m#2"});
        // Totals survive the sweep.
        CHECK(*run(store.delivery_counts()) == DeliveryCounts{1, 1, 1, 0, 1});

        // The swept orphan is not linked to a later send.
        REQUIRE(*run(store.mark_sent("m#2", "wamid.orphan", f.now)));
        CHECK(find(store, "m#2").item.state == State::kSent);
    }

    TEST_CASE_TEMPLATE(
        "the window remembers the latest inbound time", F, MemoryFixture, SqliteFixture
    ) {
        F f;
        ChannelStore& store = *f.store;
        const std::string key = "wa:1001:919800000001";
        CHECK_FALSE(*run(store.last_inbound(key)));
        REQUIRE(run(store.touch_inbound(key, kStart + 100)));
        REQUIRE(run(store.touch_inbound(key, kStart + 50)));
        CHECK(*run(store.last_inbound(key)) == kStart + 100);
        REQUIRE(run(store.touch_inbound(key, kStart + 200)));
        CHECK(*run(store.last_inbound(key)) == kStart + 200);
        CHECK_FALSE(*run(store.last_inbound("wa:1001:919800000002")));
        f.now = kStart + 200 + kInboxRetention - 1;
        CHECK(*run(store.sweep()) == 0);
        f.now += 1;
        CHECK(*run(store.sweep()) == 1);
        CHECK_FALSE(*run(store.last_inbound(key)));
    }

    TEST_CASE_TEMPLATE(
        "an idempotency key queues its notification once", F, MemoryFixture, SqliteFixture
    ) {
        F f;
        ChannelStore& store = *f.store;
        auto n1 = outbound("notify#1", "919800000001", kStart);
        n1.kind = "template";
        auto first = run(store.claim_idempotency_key("app-42-stage-2", n1));
        REQUIRE(first);
        CHECK_FALSE(*first);
        auto again = run(store.claim_idempotency_key(
            "app-42-stage-2", outbound("notify#2", "919800000001", kStart)
        ));
        REQUIRE(again);
        CHECK(*again == std::optional<std::string>("notify#1"));
        CHECK(ids(*run(store.due_outbound(kStart, 10))) == Strings{"notify#1"});
        CHECK(find(store, "notify#1").item.kind == "template");
        // A new key for an id already queued claims the key and queues nothing new.
        CHECK_FALSE(*run(store.claim_idempotency_key("other", n1)));
        CHECK(run(store.delivery_counts())->queued == 1);

        f.now += kOutboxRetention;
        CHECK(*run(store.sweep()) == 2);
        CHECK_FALSE(*run(store.claim_idempotency_key(
            "app-42-stage-2", outbound("notify#3", "919800000001", f.now)
        )));
        CHECK(ids(*run(store.due_outbound(f.now, 10))) == Strings{"notify#1", "notify#3"});
    }

    TEST_CASE_TEMPLATE(
        "erasure removes everything about the citizen and nothing else",
        F,
        MemoryFixture,
        SqliteFixture
    ) {
        F f;
        ChannelStore& store = *f.store;
        const std::string a = "919800000001";
        const std::string b = "919800000002";
        const std::string key_a = "wa:1001:" + a;
        for (const std::string& c : {a, b}) {
            REQUIRE(*run(store.add_inbound(inbound("in." + c, c, kStart))));
            REQUIRE(*run(store.add_inbound(inbound("done." + c, c, kStart))));
            REQUIRE(*run(store.mark_processed("done." + c)));
            REQUIRE(
                *run(store.enqueue({outbound("sent." + c, c, kStart), outbound("q." + c, c, kStart)}
                )) == 2
            );
            REQUIRE(*run(store.mark_sent("sent." + c, "wamid.out." + c, kStart)));
            REQUIRE(run(store.touch_inbound("wa:1001:" + c, kStart)));
            REQUIRE_FALSE(
                *run(store.claim_idempotency_key("key." + c, outbound("n." + c, c, kStart)))
            );
        }
        CHECK(*run(store.delivery_counts()) == DeliveryCounts{4, 2, 0, 0, 0});

        REQUIRE(run(store.erase_citizen(key_a)));
        CHECK(wamids(*run(store.due_inbound(10))) == Strings{"in." + b});
        CHECK(ids(*run(store.due_outbound(kStart, 10))) == Strings{"q." + b, "n." + b});
        CHECK_FALSE(*run(store.find_outbound("sent." + a)));
        CHECK_FALSE(*run(store.find_outbound("wamid.out." + a)));
        CHECK(run(store.find_outbound("wamid.out." + b))->has_value());
        CHECK_FALSE(*run(store.last_inbound(key_a)));
        CHECK(*run(store.last_inbound("wa:1001:" + b)) == kStart);
        CHECK(*run(store.delivery_counts()) == DeliveryCounts{2, 2, 0, 0, 0});
        // The erased ids and keys are forgotten; the other citizen's are not.
        CHECK(*run(store.add_inbound(inbound("done." + a, a, kStart))));
        CHECK_FALSE(*run(store.add_inbound(inbound("done." + b, b, kStart))));
        CHECK_FALSE(*run(store.claim_idempotency_key("key." + a, outbound("n2." + a, a, kStart))));
        CHECK(
            *run(store.claim_idempotency_key("key." + b, outbound("n2." + b, b, kStart))) ==
            "n." + b
        );
        // A status for the erased message finds nothing to link to.
        CHECK_FALSE(*run(store.record_status(status("wamid.out." + a, State::kRead, kStart))));
    }
}

TEST_SUITE("server/channel_sqlite_store") {
    TEST_CASE("everything is still there after the store is reopened") {
        SqliteFixture f;
        {
            ChannelStore& store = *f.store;
            REQUIRE(*run(store.add_inbound(inbound("wamid.1", "919800000001", kStart))));
            REQUIRE(*run(store.add_inbound(inbound("wamid.2", "919800000001", kStart))));
            REQUIRE(*run(store.mark_processed("wamid.1")));
            REQUIRE(
                *run(store.enqueue(
                    {outbound("r#0", "919800000001", kStart),
                     outbound("r#1", "919800000001", kStart),
                     outbound("r#2", "919800000001", kStart)}
                )) == 3
            );
            REQUIRE(*run(store.mark_sent("r#0", "wamid.out0", kStart + 1)));
            REQUIRE(*run(store.reschedule("r#1", 2, kStart + 60'000, "throttled code=130429")));
            REQUIRE_FALSE(
                *run(store.record_status(status("wamid.out1", State::kDelivered, kStart + 5)))
            );
            REQUIRE(*run(store.record_status(status("wamid.out0", State::kDelivered, kStart + 2))));
            REQUIRE(run(store.touch_inbound("wa:1001:919800000001", kStart + 7)));
            REQUIRE_FALSE(
                *run(store.claim_idempotency_key("k", outbound("n#0", "919800000002", kStart)))
            );
        }
        f.reopen();
        ChannelStore& store = *f.store;
        CHECK_FALSE(*run(store.add_inbound(inbound("wamid.1", "919800000001", kStart))));
        CHECK(wamids(*run(store.due_inbound(10))) == Strings{"wamid.2"});
        CHECK(ids(*run(store.due_outbound(kStart + 60'000, 10))) == Strings{"r#1", "r#2", "n#0"});
        auto r1 = find(store, "r#1");
        CHECK(r1.item.attempts == 2);
        CHECK(r1.last_error == "throttled code=130429");
        CHECK(find(store, "wamid.out0").item.state == State::kDelivered);
        CHECK(*run(store.last_inbound("wa:1001:919800000001")) == kStart + 7);
        CHECK(
            *run(store.claim_idempotency_key("k", outbound("n#1", "919800000002", kStart))) == "n#0"
        );
        CHECK(*run(store.delivery_counts()) == DeliveryCounts{3, 1, 1, 0, 0});
        // The early status survived the restart and links now.
        REQUIRE(*run(store.mark_sent("r#1", "wamid.out1", kStart + 60'001)));
        CHECK(find(store, "r#1").item.state == State::kDelivered);
        // New rows come after the old ones.
        REQUIRE(*run(store.enqueue({outbound("r#3", "919800000001", kStart)})) == 1);
        CHECK(ids(*run(store.due_outbound(kStart + 60'000, 10))) == Strings{"r#2", "n#0", "r#3"});
    }

    TEST_CASE("many concurrent operations all take effect, with shared commits") {
        SqliteFixture f;
        ChannelStore& store = *f.store;
        constexpr int kCitizens = 200;
        asio::io_context ioc;
        std::atomic<int> inserted{0};
        std::atomic<int> failures{0};
        auto check = [&](bool ok) {
            if (!ok)
                ++failures;
        };
        const std::string title = "Message undeliverable";
        for (int i = 0; i < kCitizens; ++i) {
            const std::string c = "9198" + std::to_string(10'000'000 + i);
            // Each message arrives twice at once (Meta delivers concurrently).
            for (int copy = 0; copy < 2; ++copy) {
                asio::co_spawn(
                    ioc,
                    [&, c]() -> asio::awaitable<void> {
                        auto r = co_await store.add_inbound(inbound("wamid.in." + c, c, kStart));
                        check(r.has_value());
                        if (r && *r)
                            ++inserted;
                    },
                    asio::detached
                );
            }
            // A turn's replies, sent, with statuses racing the send.
            asio::co_spawn(
                ioc,
                [&, c]() -> asio::awaitable<void> {
                    // (g++ 12 cannot keep a braced list or a string literal across co_await.)
                    std::vector<OutboxItem> replies;
                    replies.push_back(outbound(c + "#0", c, kStart));
                    replies.push_back(outbound(c + "#1", c, kStart));
                    auto q = co_await store.enqueue(std::move(replies));
                    check(q && *q == 2);
                    auto s0 = co_await store.mark_sent(c + "#0", "wamid.out." + c, kStart + 1);
                    check(s0 && *s0);
                    auto f1 = co_await store.mark_failed(c + "#1", 131026, title, kStart + 1);
                    check(f1 && *f1);
                },
                asio::detached
            );
            asio::co_spawn(
                ioc,
                [&, c]() -> asio::awaitable<void> {
                    auto s = co_await store.record_status(
                        status("wamid.out." + c, State::kRead, kStart + 3)
                    );
                    check(s.has_value());
                    auto t = co_await store.touch_inbound("wa:1001:" + c, kStart);
                    check(t.has_value());
                },
                asio::detached
            );
        }
        // Two threads run the coroutines, so completions also race each other.
        std::thread helper([&] { ioc.run(); });
        ioc.run();
        helper.join();
        CHECK(failures.load() == 0);
        CHECK(inserted.load() == kCitizens);
        CHECK(run(store.due_inbound(1000))->size() == kCitizens);
        CHECK(run(store.due_outbound(kStart + 10, 1000))->empty());
        // Whichever came first, status or send, every message ends up read.
        CHECK(
            *run(store.delivery_counts()) == DeliveryCounts{0, kCitizens, 0, kCitizens, kCitizens}
        );
        for (int i = 0; i < kCitizens; i += 37) {
            const std::string c = "9198" + std::to_string(10'000'000 + i);
            CHECK(find(store, c + "#0").item.state == State::kRead);
            CHECK(*run(store.last_inbound("wa:1001:" + c)) == kStart);
        }
        CHECK(f.sqlite->commits() < f.sqlite->writes());
    }

    TEST_CASE("erasure leaves no bytes of the citizen in the database file or its wal") {
        SqliteFixture f;
        ChannelStore& store = *f.store;
        const std::string citizen = "919812345678";
        const std::string key = "wa:1001:" + citizen;
        const std::string secret = "GRIEVANCE-7777777";
        // Enough other citizens that every table and index spans several pages.
        for (int i = 0; i < 300; ++i) {
            const std::string c = "9198" + std::to_string(20'000'000 + i);
            REQUIRE(*run(store.add_inbound(inbound("wamid.in." + c, c, kStart))));
            REQUIRE(*run(store.enqueue({outbound(c + "#0", c, kStart)})) == 1);
            REQUIRE(run(store.touch_inbound("wa:1001:" + c, kStart)));
            if (i == 150) {
                for (int j = 0; j < 20; ++j) {
                    auto in =
                        inbound("wamid.in." + citizen + "." + std::to_string(j), citizen, kStart);
                    in.payload = R"({"text":")" + secret + "\"}";
                    REQUIRE(*run(store.add_inbound(in)));
                    if (j % 2 == 0)
                        REQUIRE(*run(store.mark_processed(in.wamid)));
                    auto out = outbound(citizen + "#" + std::to_string(j), citizen, kStart);
                    out.body += secret;
                    REQUIRE(*run(store.enqueue({out})) == 1);
                    if (j % 3 == 0)
                        REQUIRE(*run(store.mark_sent(
                            out.id, "wamid.out." + citizen + std::to_string(j), kStart
                        )));
                    if (j % 3 == 1)
                        REQUIRE(*run(store.reschedule(out.id, 1, kStart, "retry " + secret)));
                }
                REQUIRE(run(store.touch_inbound(key, kStart)));
                REQUIRE_FALSE(*run(
                    store.claim_idempotency_key(secret, outbound(citizen + "#n", citizen, kStart))
                ));
            }
        }
        auto found_anywhere = [&](const std::string& needle) {
            return testing::file_bytes(f.path).find(needle) != std::string::npos ||
                   testing::file_bytes(f.path + "-wal").find(needle) != std::string::npos;
        };
        // The scans below can fail: before the erasure the data is there.
        REQUIRE(found_anywhere(citizen));
        REQUIRE(found_anywhere(secret));

        REQUIRE(run(store.erase_citizen(key)));
        // Other citizens keep writing after the erasure.
        REQUIRE(*run(store.add_inbound(inbound("wamid.after", "919800000099", kStart))));
        for (const std::string& file : {f.path, f.path + "-wal"}) {
            const std::string bytes = testing::file_bytes(file);
            CHECK_MESSAGE(bytes.find(citizen) == std::string::npos, file);
            CHECK_MESSAGE(bytes.find(secret) == std::string::npos, file);
        }
        f.store.reset();
        for (const std::string& file : {f.path, f.path + "-wal"}) {
            const std::string bytes = testing::file_bytes(file);
            CHECK_MESSAGE(bytes.find(citizen) == std::string::npos, file);
            CHECK_MESSAGE(bytes.find(secret) == std::string::npos, file);
        }
        CHECK(testing::file_bytes(f.path).find("919820000150") != std::string::npos);
    }

    TEST_CASE("a processed message's payload does not stay in the database file") {
        SqliteFixture f;
        ChannelStore& store = *f.store;
        const std::string secret = "my Aadhaar is 1234 5678 9012";
        auto in = inbound("wamid.p", "919800000001", kStart);
        in.payload = R"({"text":")" + secret + "\"}";
        REQUIRE(*run(store.add_inbound(in)));
        REQUIRE(testing::file_bytes(f.path + "-wal").find(secret) != std::string::npos);
        REQUIRE(*run(store.mark_processed("wamid.p")));
        REQUIRE(run(f.sqlite->checkpoint()));
        CHECK(testing::file_bytes(f.path).find(secret) == std::string::npos);
        CHECK(testing::file_bytes(f.path + "-wal").find(secret) == std::string::npos);
        CHECK(testing::file_bytes(f.path).find("wamid.p") != std::string::npos);
    }

    TEST_CASE("the channel store can share the session store's database file") {
        SqliteFixture f;
        server::SqliteStore::Options options;
        options.path = f.path;
        auto sessions = server::SqliteStore::open(options);
        REQUIRE_MESSAGE(sessions, sessions.error().message);
        server::TurnWrite w;
        w.user = "wa:1001:919800000001";
        w.session = "session-1";
        w.session_ttl_ms = 3'600'000;
        REQUIRE(run((*sessions)->write(w)));
        REQUIRE(*run(f.store->add_inbound(inbound("wamid.1", "919800000001", kStart))));
        REQUIRE(run(f.store->erase_citizen("wa:1001:919800000001")));
        // The channel's erasure is its own; the session store erases the session.
        CHECK(run((*sessions)->load(w.user, {}))->session == "session-1");
        sessions->reset();
        f.reopen();
        auto reopened = server::SqliteStore::open(options);
        REQUIRE_MESSAGE(reopened, reopened.error().message);
        CHECK(run((*reopened)->load(w.user, {}))->session == "session-1");
        CHECK(*run(f.store->add_inbound(inbound("wamid.1", "919800000001", kStart))));
        CHECK_FALSE(*run(f.store->add_inbound(inbound("wamid.1", "919800000001", kStart))));
    }

    TEST_CASE("a file that is not a database is refused with a store error") {
        const std::string dir = testing::temp_dir("civicflow-wa");
        const std::string path = dir + "/garbage.db";
        {
            std::ofstream out(path, std::ios::binary);
            out << std::string(8192, 'x');
        }
        server::ChannelSqliteStore::Options options;
        options.path = path;
        auto opened = server::ChannelSqliteStore::open(options);
        REQUIRE_FALSE(opened);
        CHECK(opened.error().code == "store");
        CHECK(
            opened.error().message ==
            "cannot configure the SQLite database '" + path + "': file is not a database"
        );
        std::filesystem::remove_all(dir);
    }

    TEST_CASE("a damaged schema gives store errors, not a crash") {
        SqliteFixture f;
        REQUIRE(*run(f.store->enqueue({outbound("m#0", "1", kStart)})) == 1);
        sqlite3* raw = nullptr;
        REQUIRE(sqlite3_open(f.path.c_str(), &raw) == SQLITE_OK);
        sqlite3_busy_timeout(raw, 5000);  // the store's writer may be mid-sweep
        REQUIRE(
            sqlite3_exec(
                raw, "DROP TABLE wa_inbox; DROP TABLE wa_counts", nullptr, nullptr, nullptr
            ) == SQLITE_OK
        );
        sqlite3_close(raw);
        auto added = run(f.store->add_inbound(inbound("wamid.1", "1", kStart)));
        REQUIRE_FALSE(added);
        CHECK(added.error().code == "store");
        CHECK(added.error().message == "cannot store an inbound message: no such table: wa_inbox");
        auto due = run(f.store->due_inbound(10));
        REQUIRE_FALSE(due);
        CHECK(due.error().message == "cannot read the inbox: no such table: wa_inbox");
        auto ping = run(f.store->ping());
        REQUIRE_FALSE(ping);
        CHECK(ping.error().code == "store");
        // The outbox's triggers need wa_counts: the write fails whole.
        auto sent = run(f.store->mark_sent("m#0", "wamid.out", kStart));
        REQUIRE_FALSE(sent);
        CHECK(sent.error().code == "store");
        CHECK(find(*f.store, "m#0").item.state == State::kQueued);
    }

    TEST_CASE("a write blocked by another connection's lock fails with a store error") {
        SqliteFixture f;
        auto options = f.options();
        options.busy_timeout = 50ms;
        f.store.reset();
        auto opened = server::ChannelSqliteStore::open(options, [&] { return f.now; });
        REQUIRE(opened);
        auto& store = **opened;
        sqlite3* raw = nullptr;
        REQUIRE(sqlite3_open(f.path.c_str(), &raw) == SQLITE_OK);
        sqlite3_busy_timeout(raw, 5000);  // the store's writer may be mid-sweep
        REQUIRE(sqlite3_exec(raw, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
        auto blocked = run(store.add_inbound(inbound("wamid.1", "1", kStart)));
        REQUIRE_FALSE(blocked);
        CHECK(blocked.error().code == "store");
        CHECK(blocked.error().message == "cannot begin a transaction: database is locked");
        REQUIRE(sqlite3_exec(raw, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
        sqlite3_close(raw);
        CHECK(*run(store.add_inbound(inbound("wamid.1", "1", kStart))));
    }

    TEST_CASE("operations on a closed store fail with a store error") {
        SqliteFixture f;
        REQUIRE(*run(f.store->add_inbound(inbound("wamid.1", "1", kStart))));
        f.sqlite->close();
        f.sqlite->close();
        auto added = run(f.store->add_inbound(inbound("wamid.2", "1", kStart)));
        REQUIRE_FALSE(added);
        CHECK(added.error().code == "store");
        CHECK(added.error().message == "the channel store is closed");
        CHECK_FALSE(run(f.store->due_outbound(kStart, 10)));
        f.reopen();
        CHECK(wamids(*run(f.store->due_inbound(10))) == Strings{"wamid.1"});
    }

    TEST_CASE("a database from a newer build is refused, not guessed at") {
        SqliteFixture f;
        f.store.reset();
        sqlite3* raw = nullptr;
        REQUIRE(sqlite3_open(f.path.c_str(), &raw) == SQLITE_OK);
        REQUIRE(
            sqlite3_exec(
                raw, "UPDATE wa_schema_version SET version = 7", nullptr, nullptr, nullptr
            ) == SQLITE_OK
        );
        sqlite3_close(raw);
        auto opened = server::ChannelSqliteStore::open(f.options());
        REQUIRE_FALSE(opened);
        CHECK(
            opened.error().message == "cannot migrate '" + f.path +
                                          "': the database has channel schema version 7, newer "
                                          "than this build's 1; refusing to open it"
        );
    }
}
