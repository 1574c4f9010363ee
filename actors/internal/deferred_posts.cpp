#include "actors/internal/deferred_posts.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "actors/process.hpp"

namespace hsmactor::internal {

namespace {

using Clock = DeferredPosts::Clock;

constexpr std::int64_t kNotGuarded = INT64_MAX;
/// How often the watch thread looks while any box is guarded.
constexpr auto kWatchTick = std::chrono::milliseconds(1);
/// How long it keeps ticking after the last guard it saw, before it sleeps:
/// under steady traffic a guard then never needs to wake it.
constexpr auto kWatchLinger = std::chrono::milliseconds(200);

std::int64_t ns_of(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

thread_local DeferredPosts* t_collecting = nullptr;
std::atomic<std::uint64_t> g_rescued{0};

struct Share {
  std::shared_ptr<Executor> owner;  // null for the default executor
  Executor* executor;
  std::vector<Task> tasks;
};

// Hands `shares` over, not collecting on this thread meanwhile: an executor
// whose post_all() posts again (one forwarding to another) posts straight
// through, and nothing is appended to the list while it is walked.
void hand_over(std::vector<Share>& shares) noexcept {
  DeferredPosts* const collector = t_collecting;
  t_collecting = nullptr;
  for (Share& share : shares) {
    if (!share.tasks.empty()) share.executor->post_all(share.tasks);
    share.tasks.clear();
  }
  // The executors are not kept past the hand-over: a queue the application
  // has dropped goes as soon as its last answer is handed over.
  shares.clear();
  t_collecting = collector;
}

}  // namespace

class DeferredPosts::Box {
 public:
  void hold(const std::shared_ptr<Executor>& executor, Executor& target, Task task) {
    std::lock_guard<std::mutex> lock(mutex_);
    Share* share = nullptr;
    for (Share& candidate : shares_) {
      if (candidate.executor == &target) {
        share = &candidate;
        break;
      }
    }
    if (share == nullptr) {
      shares_.push_back(Share{executor, &target, {}});
      share = &shares_.back();
    }
    // May throw (no memory): `task` is then untouched, and the caller posts it.
    share->tasks.push_back(std::move(task));
    if (held_.load(std::memory_order_relaxed) == 0) {
      oldest_ns_.store(ns_of(Clock::now()), std::memory_order_relaxed);
    }
    held_.store(held_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  /// Takes everything held (the caller hands it over, outside the lock).
  std::vector<Share> take() {
    std::vector<Share> taken;
    std::lock_guard<std::mutex> lock(mutex_);
    if (held_.load(std::memory_order_relaxed) == 0) return taken;
    taken.swap(shares_);
    held_.store(0, std::memory_order_relaxed);
    return taken;
  }

  // Read without the lock by the owning session (the only thread that adds;
  // the watch only empties), so its checks between jobs take no lock.
  std::size_t held() const { return held_.load(std::memory_order_relaxed); }
  Clock::time_point oldest() const {
    return Clock::time_point(std::chrono::duration_cast<Clock::duration>(
        std::chrono::nanoseconds(oldest_ns_.load(std::memory_order_relaxed))));
  }

  // The guard, written by the owning session, read by the watch thread.
  std::atomic<std::int64_t> rescue_at_ns{kNotGuarded};
  // Set once, by the owning session, when the watch first learns of the box.
  bool watched = false;

 private:
  std::mutex mutex_;
  std::vector<Share> shares_;  // by mutex_
  // Written under mutex_; see held().
  std::atomic<std::size_t> held_{0};
  std::atomic<std::int64_t> oldest_ns_{0};
};

namespace {

// One thread per process (per fork generation) that hands over held answers
// whose session is stuck in a PKCS#11 call past their budget. It ticks every
// millisecond while boxes are guarded, and sleeps once none has been for a
// while; a guard wakes it only then.
class Watch {
 public:
  using Box = DeferredPosts::Box;

  static Watch& instance() {
    // A child after fork() has no watch thread, and the parent's mutex may
    // have been held at the fork: each generation gets a watch of its own,
    // found without a lock. Never destroyed: the thread may outlive static
    // destruction.
    static std::atomic<Watch*> current{nullptr};
    const std::uint64_t generation = fork_generation();
    Watch* seen = current.load();
    while (seen == nullptr || seen->generation_ != generation) {
      auto* fresh = new Watch(generation);
      if (current.compare_exchange_strong(seen, fresh)) return *fresh;
      delete fresh;  // another thread won: `seen` is its watch now
    }
    return *seen;
  }

  void watch(const std::shared_ptr<Box>& box) {
    std::lock_guard<std::mutex> lock(mutex_);
    boxes_.push_back(box);
    if (!started_) {
      started_ = true;
      std::thread([this] { run(); }).detach();
    }
  }

  /// After a guard is set: wakes the thread if it sleeps (sequentially
  /// consistent with its last look, so one of the two sees the other).
  void guarded() {
    if (!sleeping_.load()) return;
    std::lock_guard<std::mutex> lock(mutex_);
    wake_ = true;
    wake_up_.notify_one();
  }

 private:
  void run() {
    auto last_guard = Clock::now();
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      if (look(lock)) last_guard = Clock::now();
      if (Clock::now() - last_guard < kWatchLinger) {
        lock.unlock();
        std::this_thread::sleep_for(kWatchTick);
        lock.lock();
        continue;
      }
      sleeping_.store(true);
      if (look(lock)) {  // a guard set before sleeping_ was seen
        sleeping_.store(false);
        last_guard = Clock::now();
        continue;
      }
      wake_up_.wait(lock, [this] { return wake_; });
      wake_ = false;
      sleeping_.store(false);
      last_guard = Clock::now();
    }
  }

  // Hands over the answers of every box whose guard has run out; returns
  // whether any box is guarded. Called with mutex_ held; hands over without it.
  bool look(std::unique_lock<std::mutex>& lock) {
    bool any = false;
    const std::int64_t now = ns_of(Clock::now());
    std::vector<std::shared_ptr<Box>> due;
    for (std::size_t i = 0; i < boxes_.size();) {
      std::shared_ptr<Box> box = boxes_[i].lock();
      if (!box) {  // its session is gone
        boxes_[i] = std::move(boxes_.back());
        boxes_.pop_back();
        continue;
      }
      ++i;
      std::int64_t at = box->rescue_at_ns.load();
      if (at == kNotGuarded) continue;
      any = true;
      if (now >= at && box->rescue_at_ns.compare_exchange_strong(at, kNotGuarded)) {
        due.push_back(std::move(box));
      }
    }
    if (!due.empty()) {
      lock.unlock();
      for (auto& box : due) {
        std::vector<Share> shares = box->take();
        std::size_t count = 0;
        for (const Share& share : shares) count += share.tasks.size();
        g_rescued.fetch_add(count, std::memory_order_relaxed);
        hand_over(shares);
      }
      lock.lock();
    }
    return any;
  }

  explicit Watch(std::uint64_t generation) : generation_(generation) {}

  const std::uint64_t generation_;
  std::mutex mutex_;
  std::condition_variable wake_up_;
  std::vector<std::weak_ptr<Box>> boxes_;  // by mutex_
  bool started_ = false;                   // by mutex_
  bool wake_ = false;                      // by mutex_
  std::atomic<bool> sleeping_{false};
};

}  // namespace

std::shared_ptr<DeferredPosts::Box> DeferredPosts::make_box() { return std::make_shared<Box>(); }

DeferredPosts::DeferredPosts(std::shared_ptr<Box> box) {
  if (t_collecting == nullptr) {
    t_collecting = this;
    collecting_ = true;
    box_ = box ? std::move(box) : make_box();
  }
}

DeferredPosts::~DeferredPosts() {
  flush();
  if (collecting_) t_collecting = nullptr;
}

DeferredPosts* DeferredPosts::current() noexcept { return t_collecting; }

std::size_t DeferredPosts::held() const { return box_ ? box_->held() : 0; }

Clock::time_point DeferredPosts::oldest() const { return box_ ? box_->oldest() : Clock::time_point{}; }

void DeferredPosts::hold(const std::shared_ptr<Executor>& executor, Task task) noexcept {
  Executor& target = executor != nullptr ? *executor : default_executor();
  try {
    box_->hold(executor, target, std::move(task));
  } catch (...) {
    // No memory to hold it: hand it over now rather than lose an answer.
    // (push_back leaves `task` untouched when it throws.)
    target.post(std::move(task));
  }
}

void DeferredPosts::flush() noexcept {
  if (!box_) return;
  std::vector<Share> shares;
  try {
    shares = box_->take();
  } catch (...) {
    return;  // std::mutex::lock failing: nothing sane left to do here
  }
  hand_over(shares);
}

std::uint64_t DeferredPosts::rescued() { return g_rescued.load(std::memory_order_relaxed); }

DeferredPosts::Guard::Guard(DeferredPosts& posts, Clock::time_point rescue_at) {
  Box* box = posts.box_.get();
  if (box == nullptr || box->held() == 0) return;
  Watch& watch = Watch::instance();
  if (!box->watched) {
    box->watched = true;
    watch.watch(posts.box_);
  }
  box->rescue_at_ns.store(ns_of(rescue_at));
  watch.guarded();
  box_ = box;
}

DeferredPosts::Guard::~Guard() {
  if (box_ != nullptr) box_->rescue_at_ns.store(kNotGuarded);
}

}  // namespace hsmactor::internal
