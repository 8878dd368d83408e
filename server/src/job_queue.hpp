/// The queue between the threads that submit work and a store's own thread (the SQLite session
/// store's writer and sync threads, the WhatsApp channel store's writer).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace civicflow::server::detail {

/// push() wakes the consumer only when it is asleep: one busy with a batch takes the new item
/// with the next one, and a burst of pushes costs one futex call. take() hands over what is
/// queued in batches. Thread-safe; one consumer.
template <typename T>
class JobQueue {
public:
    /// Queues `item`; false, with `item` left as it was, once close() was called.
    bool push(T& item) { return push_range(&item, &item + 1); }

    /// Queues every item at once (the consumer takes none of them alone); false, with nothing
    /// taken, once close() was called.
    bool push_all(std::vector<T>& items) {
        return push_range(items.data(), items.data() + items.size());
    }

    /// Waits at most `wait` for an item, then moves up to `max` items into `out` (none when the
    /// wait ran out). With `gather`, a consumer that had to wait then yields the core while the
    /// queue still grows (at most four times): woken by the first item of a burst it would
    /// otherwise take a batch of one, since on one core a woken thread preempts its waker.
    /// False once closed and every item taken.
    bool take(std::vector<T>& out, std::size_t max, std::chrono::milliseconds wait, bool gather) {
        std::unique_lock lock(mutex_);
        if (!closed_ && items_.empty()) {
            idle_ = true;
            wake_.wait_for(lock, wait, [&] { return closed_ || !items_.empty(); });
            idle_ = false;
            for (int i = 0; gather && i < 4 && !closed_; ++i) {
                const std::size_t before = items_.size();
                lock.unlock();
                std::this_thread::yield();
                lock.lock();
                if (items_.size() == before)
                    break;
            }
        }
        if (closed_ && items_.empty())
            return false;
        while (!items_.empty() && out.size() < max) {
            out.push_back(std::move(items_.front()));
            items_.pop_front();
        }
        return true;
    }

    /// Refuses further items; take() still hands over what is queued, then returns false.
    void close() {
        {
            std::lock_guard lock(mutex_);
            closed_ = true;
        }
        wake_.notify_one();
    }

private:
    bool push_range(T* first, T* last) {
        bool wake = false;
        {
            std::lock_guard lock(mutex_);
            if (closed_)
                return false;
            for (T* it = first; it != last; ++it)
                items_.push_back(std::move(*it));
            wake = idle_;
            idle_ = false;  // a burst wakes the consumer once
        }
        if (wake)
            wake_.notify_one();
        return true;
    }

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<T> items_;
    bool idle_ = false;  // the consumer waits on wake_
    bool closed_ = false;
};

}  // namespace civicflow::server::detail
