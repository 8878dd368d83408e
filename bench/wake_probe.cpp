// How late a thread that sleeps wakes up on this machine (bench/run.sh, open-loop passes).
//
//   civicflow_bench_wake_probe [--cpu N] [--count N] [--period-us N]
//
// Pinned to --cpu (default 0, the server core), the thread sleeps to absolute deadlines every
// --period-us microseconds (default 1000: the gap between requests at 1,000 messages/s) and
// measures how long after each deadline it runs again. On bare metal that is tens of
// microseconds; on a VM a virtual CPU that halted while idle may wait for the host to run it
// again, and that wait is a floor under the open-loop latency of any server that sleeps between
// requests. Prints one line of key=value figures (mode=wake p50_us=... p99_us=... p999_us=...
// max_us=... count=...).
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include <sched.h>
#include <sys/prctl.h>

namespace {

std::int64_t now_ns() {
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

double percentile_us(const std::vector<std::int64_t>& sorted, double p) {
    const auto i = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1));
    return static_cast<double>(sorted[i]) / 1000.0;
}

int usage() {
    std::fputs("usage: civicflow_bench_wake_probe [--cpu N] [--count N] [--period-us N]\n", stderr);
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    int cpu = 0;
    long count = 10'000;
    long period_us = 1000;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (i + 1 >= argc)
            return usage();
        const long value = std::strtol(argv[++i], nullptr, 10);
        if (arg == "--cpu" && value >= 0) {
            cpu = static_cast<int>(value);
        } else if (arg == "--count" && value > 0) {
            count = value;
        } else if (arg == "--period-us" && value > 0) {
            period_us = value;
        } else {
            return usage();
        }
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        std::fprintf(stderr, "wake_probe: cannot pin to cpu %d: %s\n", cpu, std::strerror(errno));
        return 1;
    }
    // A timer's slack (50 us by default) would count as lateness; a request arriving on a
    // socket wakes its server without a timer.
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    std::vector<std::int64_t> late;
    late.reserve(static_cast<std::size_t>(count));
    std::int64_t due = now_ns();
    for (long i = 0; i < count; ++i) {
        due += period_us * 1000;
        timespec ts{};
        ts.tv_sec = static_cast<time_t>(due / 1'000'000'000);
        ts.tv_nsec = static_cast<long>(due % 1'000'000'000);
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
        }
        late.push_back(now_ns() - due);
    }
    std::sort(late.begin(), late.end());
    std::printf(
        "mode=wake cpu=%d count=%ld period_us=%ld p50_us=%.1f p99_us=%.1f p999_us=%.1f "
        "max_us=%.1f\n",
        cpu,
        count,
        period_us,
        percentile_us(late, 0.5),
        percentile_us(late, 0.99),
        percentile_us(late, 0.999),
        static_cast<double>(late.back()) / 1000.0
    );
    return 0;
}
