// Memory per idle session of the in-memory store (issue: sessions that survive, section 8).
//
//   civicflow_bench_store_memory [--flows DIR] [--forms N] [--prefix P]
//
// Loads the flows, then drives the real MessageService over the real MemoryStore in this
// process (no HTTP): N citizens each send "hi" and then "2", which opens the birth-certificate
// form; it then waits for the child's name, and every such reply is checked for
// "state":"child_name". VmRSS is read before the citizens (after loading the flows and a short
// warm-up whose citizens are erased again), after the first half and after the second half.
// The tool uses the allocator the civicflow binary uses (mimalloc when the build links it, else
// glibc's malloc). Before each reading free heap pages are handed back to the kernel
// (mi_collect / malloc_trim), so memory freed while loading the flows cannot be reused by the
// sessions unseen: growth is what the live sessions occupy, allocator overhead and fragmentation
// included.
//
// Why in-process rather than through the server and bench/loadgen: the figure the goal asks for
// is the store's, and the server's other per-connection memory (sockets, buffers, coroutine
// frames of 64 connections) is constant, not per session; in-process the reading has no noise
// from connection buffers, takes a few seconds instead of a minute, and needs no free port.
// The end-to-end figure through HTTP is bench/run.sh's memory pass; both are recorded in
// docs/performance.md.
//
// Prints one line of key=value figures:
//   forms, rss_before_kib, rss_middle_kib, rss_after_kib, bytes_per_form (average over all),
//   marginal_bytes_per_form (second half only), session_bytes (encoded length of one session),
//   user_bytes (length of a citizen id), live_sessions, allocator, seconds.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <civicflow/engine/loader.hpp>
#include <civicflow/server/memory_store.hpp>
#include <civicflow/server/message_service.hpp>

#include <malloc.h>

#if CIVICFLOW_BENCH_MIMALLOC
#include <mimalloc.h>
#endif

namespace asio = boost::asio;
using namespace civicflow;

namespace {

struct Options {
    std::string flows = "flows";
    int forms = 100'000;
    std::string prefix = "91";  // ids shaped like WhatsApp's: 12 digits ("91" + 10)
};

#if CIVICFLOW_BENCH_MIMALLOC
constexpr const char* kAllocator = "mimalloc";
#else
constexpr const char* kAllocator = "glibc";
#endif

long rss_kib() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmRSS:", 0) == 0)
            return std::strtol(line.c_str() + 6, nullptr, 10);
    }
    return -1;
}

// VmRSS once free heap pages have been returned to the kernel. mimalloc gives pages back after
// a delay (its purge delay), so collect and wait until the reading stops falling.
long settled_rss_kib() {
    long last = -1;
    for (int i = 0; i < 20; ++i) {
#if CIVICFLOW_BENCH_MIMALLOC
        mi_collect(true);
#else
        malloc_trim(0);
#endif
        const long now = rss_kib();
        if (last >= 0 && last - now < 64)
            return now;
        last = now;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return last;
}

std::string user_id(const std::string& prefix, int i) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s%010d", prefix.c_str(), i);
    return buf;
}

std::string body(const std::string& user, std::string_view text) {
    std::string b = R"({"user":")";
    b.append(user).append(R"(","text":")").append(text).append(R"("})");
    return b;
}

// Opens the form for citizens [first, last): "hi", then "2". Returns the replies that did not
// show the open form (or were not 200).
int open_forms(
    asio::io_context& ioc,
    server::MessageService& service,
    const std::string& prefix,
    int first,
    int last
) {
    int failures = 0;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            for (int i = first; i < last; ++i) {
                const std::string user = user_id(prefix, i);
                const server::ApiReply hi = co_await service.handle(body(user, "hi"), "bench");
                const server::ApiReply form = co_await service.handle(body(user, "2"), "bench");
                if (hi.status != 200 || form.status != 200 ||
                    form.body.find(R"("state":"child_name")") == std::string::npos) {
                    if (++failures <= 3)
                        std::fprintf(stderr, "unexpected reply: %s\n", form.body.c_str());
                }
            }
        },
        asio::detached
    );
    ioc.run();
    ioc.restart();
    return failures;
}

int usage() {
    std::fprintf(
        stderr, "usage: civicflow_bench_store_memory [--flows DIR] [--forms N] [--prefix P]\n"
    );
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
#if CIVICFLOW_BENCH_MIMALLOC
    // mimalloc decommits freed memory after a delay and only when the heap is next used, so the
    // memory freed after loading the flows would still be counted in the baseline (and then
    // vanish during the first half). With no delay every reading is settled.
    mi_option_set(mi_option_decommit_delay, 0);
#endif
    Options o;
    for (int i = 1; i < argc; i += 2) {
        const std::string_view arg = argv[i];
        if (i + 1 >= argc)
            return usage();
        if (arg == "--flows")
            o.flows = argv[i + 1];
        else if (arg == "--forms")
            o.forms = std::atoi(argv[i + 1]);
        else if (arg == "--prefix")
            o.prefix = argv[i + 1];
        else
            return usage();
    }
    if (o.forms < 2)
        return usage();

    auto files = engine::read_flow_dir(o.flows);
    if (!files) {
        std::fprintf(stderr, "cannot read flows: %s\n", files.error().message.c_str());
        return 1;
    }
    engine::LoadResult loaded = engine::load_flows(*files);
    if (!loaded.flows) {
        std::fprintf(stderr, "%s", engine::format_text(loaded.diagnostics, loaded.sources).c_str());
        return 1;
    }
    files->clear();

    // The server's defaults: message ids kept 8 days, sessions for their flow's idle timeout
    // plus a week. The form's first question makes no backend call; any call is an error.
    server::MemoryStore store(std::chrono::hours(8 * 24));
    server::MessageService service(
        loaded.flows,
        store,
        [](engine::BackendCall, std::string) -> asio::awaitable<engine::CallResult> {
            engine::CallResult r;
            r.outcome = engine::CallResult::Outcome::kError;
            co_return r;
        }
    );
    asio::io_context ioc(1);

    // Warm-up: first-use allocations (thread-local caches, lazily built matchers) belong to the
    // baseline, not to the sessions. Its citizens are erased again.
    constexpr int kWarmup = 64;
    if (open_forms(ioc, service, o.prefix + "w", 0, kWarmup) != 0)
        return 1;
    for (int i = 0; i < kWarmup; ++i)
        store.erase(user_id(o.prefix + "w", i));

    const int half = o.forms / 2;
    const auto start = std::chrono::steady_clock::now();
    const long before = settled_rss_kib();
    int failures = open_forms(ioc, service, o.prefix, 0, half);
    const long middle = settled_rss_kib();
    failures += open_forms(ioc, service, o.prefix, half, o.forms);
    const long after = settled_rss_kib();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    const std::size_t live = store.session_count();
    const auto sample = store.get_session(user_id(o.prefix, 0));
    std::printf(
        "forms=%d rss_before_kib=%ld rss_middle_kib=%ld rss_after_kib=%ld bytes_per_form=%.0f "
        "marginal_bytes_per_form=%.0f session_bytes=%zu user_bytes=%zu live_sessions=%zu "
        "failures=%d allocator=%s seconds=%.2f\n",
        o.forms,
        before,
        middle,
        after,
        static_cast<double>(after - before) * 1024.0 / o.forms,
        static_cast<double>(after - middle) * 1024.0 / (o.forms - half),
        sample ? sample->size() : 0,
        user_id(o.prefix, 0).size(),
        live,
        failures,
        kAllocator,
        seconds
    );
    if (std::getenv("SHOW_SESSION") != nullptr && sample)
        std::fprintf(stderr, "session: %s\n", sample->c_str());
    return failures == 0 && live == static_cast<std::size_t>(o.forms) ? 0 : 1;
}
