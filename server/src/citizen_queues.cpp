#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <civicflow/server/citizen_queues.hpp>

namespace asio = boost::asio;

namespace civicflow::server {

// A waiter parks on a timer that never expires; the releaser hands over the lock by setting
// `granted` and cancelling the timer, both on the waiter's own strand. (A type-erased completion
// handler would be the textbook tool, but Boost 1.81's any_completion_handler recurses when
// moved; a timer is plain and proven.)
struct CitizenQueues::Waiter {
    explicit Waiter(const asio::any_io_executor& ex)
        : timer(ex) {}

    asio::steady_timer timer;
    bool granted = false;  // only touched on the waiter's strand
};

CitizenQueues::Lock& CitizenQueues::Lock::operator=(Lock&& other) noexcept {
    if (this != &other) {
        release();
        owner_ = other.owner_;
        user_ = std::move(other.user_);
        other.owner_ = nullptr;
    }
    return *this;
}

void CitizenQueues::Lock::release() {
    if (owner_ == nullptr)
        return;
    CitizenQueues* owner = owner_;
    owner_ = nullptr;
    owner->release(user_);
}

bool CitizenQueues::try_acquire(const std::string& user, const std::shared_ptr<Waiter>* waiter) {
    std::lock_guard lock(mutex_);
    auto [it, inserted] = entries_.try_emplace(user);
    if (inserted)
        return true;
    // Queued under the same mutex that release() takes, so a release cannot slip between the
    // check and the enqueue and leave this waiter stranded.
    if (waiter != nullptr)
        it->second.waiters.push_back(*waiter);
    return false;
}

void CitizenQueues::release(const std::string& user) {
    std::shared_ptr<Waiter> next;
    {
        std::lock_guard lock(mutex_);
        auto it = entries_.find(user);
        if (it == entries_.end())
            return;
        if (it->second.waiters.empty()) {
            entries_.erase(it);
            return;
        }
        // The lock passes directly to the next waiter: the entry stays, so nobody can overtake.
        auto& waiters = it->second.waiters;
        next = std::move(waiters.front());
        waiters.erase(waiters.begin());
    }
    // Resume the waiter on its own strand, never inline in the releaser's stack.
    auto ex = next->timer.get_executor();
    asio::post(ex, [w = std::move(next)] {
        w->granted = true;
        w->timer.cancel();
    });
}

asio::awaitable<CitizenQueues::Lock> CitizenQueues::acquire(std::string user) {
    if (try_acquire(user, nullptr))
        co_return Lock(this, std::move(user));
    auto waiter = std::make_shared<Waiter>(co_await asio::this_coro::executor);
    if (try_acquire(user, &waiter))
        co_return Lock(this, std::move(user));
    while (!waiter->granted) {
        waiter->timer.expires_at(asio::steady_timer::time_point::max());
        co_await waiter->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    co_return Lock(this, std::move(user));
}

std::size_t CitizenQueues::active() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
}

std::size_t CitizenQueues::waiting() const {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto& [user, entry] : entries_)
        n += entry.waiters.size();
    return n;
}

}  // namespace civicflow::server
