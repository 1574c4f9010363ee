#include "tools/sign/pipeline.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "tools/sign/reorder_buffer.hpp"

namespace hsmactor::sign {
namespace {

using Clock = std::chrono::steady_clock;

/// An answer line waiting for the writer.
struct Answer {
  std::uint64_t sequence = 0;
  std::string line;
};

/// What the reader, the writer and the sign callbacks share, under `mutex`.
struct Shared {
  std::mutex mutex;
  /// The writer waits here for answers (or for the end).
  std::condition_variable answered;
  /// The reader waits here for a free slot.
  std::condition_variable slot_freed;
  std::deque<Answer> answers;
  std::uint64_t read = 0;
  std::uint64_t written = 0;
  std::uint64_t failed = 0;
  std::size_t peak_in_flight = 0;
  bool input_done = false;

  std::size_t in_flight() const { return static_cast<std::size_t>(read - written); }

  void deliver_many(std::vector<Answer> batch, std::uint64_t failures) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      for (Answer& answer : batch) answers.push_back(std::move(answer));
      failed += failures;
    }
    answered.notify_one();
  }

  void deliver(std::uint64_t sequence, std::string line, bool failure) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      answers.push_back(Answer{sequence, std::move(line)});
      if (failure) ++failed;
    }
    answered.notify_one();
  }
};

bool is_blank(const std::string& line) {
  return std::all_of(line.begin(), line.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\r'; });
}

void print_progress(std::ostream& out, std::uint64_t written, std::size_t in_flight,
                    std::uint64_t failed, double seconds) {
  char text[160];
  double rate = seconds > 0 ? static_cast<double>(written) / seconds : 0.0;
  std::snprintf(text, sizeof text, "\r%llu records  %.0f records/s  %zu in flight  %llu errors ",
                static_cast<unsigned long long>(written), rate, in_flight,
                static_cast<unsigned long long>(failed));
  out << text << std::flush;
}

/// Writes answers until every record read has been written.
void write_answers(Shared& shared, std::ostream& output, const PipelineOptions& options,
                   Clock::time_point start, bool& output_ok) {
  ReorderBuffer buffer(options.ordered);
  Clock::time_point next_progress = start + options.progress_interval;
  std::deque<Answer> batch;
  std::unique_lock<std::mutex> lock(shared.mutex);
  while (true) {
    auto finished = [&] { return shared.input_done && shared.written == shared.read; };
    shared.answered.wait_for(lock, options.progress_interval,
                             [&] { return !shared.answers.empty() || finished(); });
    if (shared.answers.empty() && finished()) break;
    batch.swap(shared.answers);
    lock.unlock();

    std::uint64_t released = 0;
    for (Answer& answer : batch) {
      for (std::string& line : buffer.push(answer.sequence, std::move(answer.line))) {
        output << line << '\n';
        ++released;
      }
    }
    batch.clear();
    // Flush per batch, not per line: a consumer reading the stream sees answers
    // promptly, and a busy stream still writes in large chunks.
    output.flush();
    if (!output) output_ok = false;

    lock.lock();
    shared.written += released;
    if (released > 0) shared.slot_freed.notify_one();
    if (options.progress != nullptr && Clock::now() >= next_progress) {
      next_progress = Clock::now() + options.progress_interval;
      std::uint64_t written = shared.written;
      std::size_t in_flight = shared.in_flight();
      std::uint64_t failed = shared.failed;
      lock.unlock();
      print_progress(*options.progress, written, in_flight, failed,
                     std::chrono::duration<double>(Clock::now() - start).count());
      lock.lock();
    }
  }
}

/// Records read and waiting to go out together as one batch.
class PendingBatch {
 public:
  PendingBatch(std::shared_ptr<Shared> shared, const BatchSignFunction& sign_batch)
      : shared_(std::move(shared)), sign_batch_(sign_batch) {}

  std::size_t size() const { return requests_.size(); }
  /// Whether `request` may join the records already waiting.
  bool fits(const SignRequest& request) const {
    return requests_.empty() || (request.key_label == requests_.front().key_label &&
                                 request.scheme == requests_.front().scheme);
  }
  void add(std::uint64_t sequence, RecordName name, SignRequest request) {
    sequences_.push_back(sequence);
    names_.push_back(std::move(name));
    requests_.push_back(std::move(request));
  }

  /// Sends what waits as one batch; each record gets its own answer line.
  void send() {
    if (requests_.empty()) return;
    sign_batch_(std::move(requests_),
                [shared = shared_, sequences = std::move(sequences_),
                 names = std::move(names_)](std::vector<Result<Bytes>> results) {
                  std::vector<Answer> answers;
                  answers.reserve(sequences.size());
                  std::uint64_t failures = 0;
                  for (std::size_t i = 0; i < sequences.size(); ++i) {
                    if (i < results.size() && results[i]) {
                      answers.push_back({sequences[i], signature_line(names[i], *results[i])});
                      continue;
                    }
                    ++failures;
                    Error error = i < results.size()
                                      ? results[i].error()
                                      : Error::make(Condition::internal_error,
                                                    "the batch answered too few results");
                    answers.push_back({sequences[i], error_line(names[i], error)});
                  }
                  shared->deliver_many(std::move(answers), failures);
                });
    requests_.clear();
    sequences_.clear();
    names_.clear();
  }

 private:
  std::shared_ptr<Shared> shared_;
  const BatchSignFunction& sign_batch_;
  std::vector<SignRequest> requests_;
  std::vector<std::uint64_t> sequences_;
  std::vector<RecordName> names_;
};

/// Whether reading more would wait for input that has not arrived yet.
bool input_would_wait(std::istream& input) {
  return input.rdbuf() == nullptr || input.rdbuf()->in_avail() <= 0;
}

}  // namespace

PipelineStats run_pipeline(std::istream& input, std::ostream& output, const SignFunction& sign,
                           const PipelineOptions& options,
                           const BatchSignFunction& sign_batch) {
  auto shared = std::make_shared<Shared>();
  std::size_t limit = std::max<std::size_t>(options.max_in_flight, 1);
  const std::size_t batch_limit = sign_batch ? std::max<std::size_t>(options.batch, 1) : 1;
  PendingBatch pending(shared, sign_batch);
  Clock::time_point start = Clock::now();
  bool output_ok = true;
  std::thread writer([&] { write_answers(*shared, output, options, start, output_ok); });

  std::string line;
  std::uint64_t line_number = 0;
  while (std::getline(input, line)) {
    ++line_number;
    if (is_blank(line)) continue;
    std::uint64_t sequence = 0;
    {
      std::unique_lock<std::mutex> lock(shared->mutex);
      if (shared->in_flight() >= limit && pending.size() > 0) {
        // The slots we wait for may be held by records still waiting here.
        lock.unlock();
        pending.send();
        lock.lock();
      }
      shared->slot_freed.wait(lock, [&] { return shared->in_flight() < limit; });
      sequence = shared->read++;
      shared->peak_in_flight = std::max(shared->peak_in_flight, shared->in_flight());
    }
    DecodedRecord record = decode_record(line, line_number);
    if (!record.request) {
      shared->deliver(sequence, error_line(record.name, record.request.error()), true);
      continue;
    }
    if (batch_limit > 1) {
      if (!pending.fits(*record.request)) pending.send();
      pending.add(sequence, std::move(record.name), std::move(*record.request));
      if (pending.size() >= batch_limit || input_would_wait(input)) pending.send();
      continue;
    }
    // The callback keeps the shared state alive on its own: it may run on
    // another thread, and it is the only thing that touches `shared` there.
    sign(*record.request, [shared, sequence, name = std::move(record.name)](Result<Bytes> result) {
      if (result) {
        shared->deliver(sequence, signature_line(name, *result), false);
      } else {
        shared->deliver(sequence, error_line(name, result.error()), true);
      }
    });
  }
  pending.send();
  bool input_ok = !input.bad();
  {
    std::lock_guard<std::mutex> lock(shared->mutex);
    shared->input_done = true;
  }
  shared->answered.notify_one();
  writer.join();

  PipelineStats stats;
  stats.elapsed = Clock::now() - start;
  std::lock_guard<std::mutex> lock(shared->mutex);
  stats.records = shared->written;
  stats.failed = shared->failed;
  stats.peak_in_flight = shared->peak_in_flight;
  stats.input_ok = input_ok;
  stats.output_ok = output_ok;
  if (options.progress != nullptr) {
    print_progress(*options.progress, stats.records, 0, stats.failed, stats.elapsed.count());
    *options.progress << '\n' << std::flush;
  }
  return stats;
}

}  // namespace hsmactor::sign
