#include "tools/sign/pipeline.hpp"

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "tools/sign/base64.hpp"
#include "tools/sign/json_lines.hpp"

namespace hsmactor::sign {
namespace {

using namespace std::chrono_literals;

/// A record the fake token signs by echoing its payload (rsa-pkcs-sha256
/// passes the data through unhashed, so the echo shows which record it was).
std::string record(int id) {
  return R"({"id":")" + std::to_string(id) + R"(","key":"k","mechanism":"rsa-pkcs-sha256",)" +
         R"("data_hex":")" + to_hex(bytes_of(std::to_string(id))) + "\"}";
}

/// A fake token on a thread of its own: it lets requests pile up and answers
/// them newest first, so completion order is far from input order. It fails
/// every request whose key is "broken".
class BackwardsSigner {
 public:
  BackwardsSigner() : worker_([this] { work(); }) {}
  ~BackwardsSigner() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_one();
    worker_.join();
  }

  SignFunction function() {
    return [this](const SignRequest& request, SignDone done) {
      std::lock_guard<std::mutex> lock(mutex_);
      pending_.emplace_back(request, std::move(done));
      ++submitted_;
      wake_.notify_one();
    };
  }

  std::size_t submitted() {
    std::lock_guard<std::mutex> lock(mutex_);
    return submitted_;
  }

 private:
  void work() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_) {
      // Wait a moment so that requests pile up, then answer the newest first.
      wake_.wait_for(lock, 2ms, [this] { return stop_; });
      std::vector<std::pair<SignRequest, SignDone>> batch;
      batch.swap(pending_);
      lock.unlock();
      for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
        if (it->first.key_label == "broken") {
          it->second(Error::from_rv(CKR_DEVICE_ERROR, "C_Sign", "sign"));
        } else {
          it->second(it->first.payload);
        }
      }
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::pair<SignRequest, SignDone>> pending_;
  std::size_t submitted_ = 0;
  bool stop_ = false;
  std::thread worker_;
};

struct Answers {
  std::vector<std::string> names;  // "id:7" or "line:3", in output order
  std::map<std::string, JsonObject> by_name;
};

Answers read_answers(const std::string& output) {
  Answers answers;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    auto parsed = parse_json_object(line, 1);
    INFO(line);
    REQUIRE(parsed.ok());
    std::string name = parsed->find("id") ? "id:" + parsed->find("id")->text
                                          : "line:" + parsed->find("line")->text;
    CHECK(answers.by_name.count(name) == 0);  // answered exactly once
    answers.names.push_back(name);
    answers.by_name.emplace(name, std::move(*parsed));
  }
  return answers;
}

TEST_CASE("every record is answered once, with its own signature, never more than the limit in flight") {
  std::string input;
  for (int id = 0; id < 1000; ++id) input += record(id) + "\n";
  std::istringstream in(input);
  std::ostringstream out;
  BackwardsSigner signer;
  PipelineOptions options;
  options.max_in_flight = 16;

  PipelineStats stats = run_pipeline(in, out, signer.function(), options);

  CHECK(stats.records == 1000);
  CHECK(stats.failed == 0);
  CHECK(stats.peak_in_flight == 16);
  CHECK(stats.input_ok);
  CHECK(stats.output_ok);
  Answers answers = read_answers(out.str());
  REQUIRE(answers.names.size() == 1000);
  for (int id = 0; id < 1000; ++id) {
    const JsonObject& answer = answers.by_name.at("id:" + std::to_string(id));
    REQUIRE(answer.find("signature"));
    CHECK(from_base64(answer.find("signature")->text) == bytes_of(std::to_string(id)));
  }
}

TEST_CASE("--ordered answers in input order although the token answers backwards") {
  std::string input;
  for (int id = 0; id < 500; ++id) input += record(id) + "\n";
  std::istringstream in(input);
  std::ostringstream out;
  BackwardsSigner signer;
  PipelineOptions options;
  options.max_in_flight = 8;
  options.ordered = true;

  PipelineStats stats = run_pipeline(in, out, signer.function(), options);

  CHECK(stats.records == 500);
  CHECK(stats.peak_in_flight <= 8);
  Answers answers = read_answers(out.str());
  REQUIRE(answers.names.size() == 500);
  for (int id = 0; id < 500; ++id) CHECK(answers.names[id] == "id:" + std::to_string(id));
}

TEST_CASE("completion order really differs from input order without --ordered") {
  std::string input;
  for (int id = 0; id < 200; ++id) input += record(id) + "\n";
  std::istringstream in(input);
  std::ostringstream out;
  BackwardsSigner signer;
  PipelineOptions options;
  options.max_in_flight = 32;

  (void)run_pipeline(in, out, signer.function(), options);

  Answers answers = read_answers(out.str());
  REQUIRE(answers.names.size() == 200);
  bool out_of_order = false;
  for (int id = 0; id < 200; ++id) out_of_order |= answers.names[id] != "id:" + std::to_string(id);
  CHECK(out_of_order);
}

TEST_CASE("bad records and token errors are answered in place and never stop the stream") {
  std::string input = record(1) + "\n" +
                      "this is not json\n" +
                      "\n" +
                      "   \r\n" +
                      R"({"id":"2","key":"k","mechanism":"nope","data":"YQ=="})" + "\n" +
                      R"({"id":"3","key":"broken","mechanism":"ecdsa","data":"YQ=="})" + "\n" +
                      R"({"key":"k","mechanism":"ecdsa","data":"YQ=="})" + "\n" +
                      record(4) + "\n" +
                      record(5);  // no newline at the end
  for (bool ordered : {false, true}) {
    std::istringstream in(input);
    std::ostringstream out;
    BackwardsSigner signer;
    PipelineOptions options;
    options.max_in_flight = 2;
    options.ordered = ordered;

    PipelineStats stats = run_pipeline(in, out, signer.function(), options);

    CHECK(stats.records == 7);
    CHECK(stats.failed == 4);
    CHECK(signer.submitted() == 4);  // bad records never reach the token
    Answers answers = read_answers(out.str());
    REQUIRE(answers.names.size() == 7);
    auto error_of = [&](const std::string& name) -> const JsonObject& {
      const JsonScalar* error = answers.by_name.at(name).find("error");
      REQUIRE(error);
      return *error->object;
    };
    CHECK(error_of("line:2").find("condition")->text == "invalid_argument");
    CHECK(error_of("line:2").find("code") == nullptr);
    CHECK(error_of("id:2").find("message")->text.find("unknown mechanism") != std::string::npos);
    CHECK(error_of("id:3").find("code")->text == "CKR_DEVICE_ERROR");
    CHECK(error_of("id:3").find("category")->text == "give_up");
    CHECK(error_of("line:7").find("message")->text.find("missing \"id\"") != std::string::npos);
    for (const char* good : {"id:1", "id:4", "id:5"}) {
      CHECK(answers.by_name.at(good).find("signature"));
    }
    if (ordered) {
      CHECK(answers.names == std::vector<std::string>{"id:1", "line:2", "id:2", "id:3",
                                                      "line:7", "id:4", "id:5"});
    }
  }
}

TEST_CASE("a token that answers before sign() returns does not deadlock the pipeline") {
  std::string input;
  for (int id = 0; id < 300; ++id) input += record(id) + "\n";
  std::istringstream in(input);
  std::ostringstream out;
  SignFunction inline_signer = [](const SignRequest& request, SignDone done) {
    done(request.payload);
  };
  PipelineOptions options;
  options.max_in_flight = 1;
  options.ordered = true;

  PipelineStats stats = run_pipeline(in, out, inline_signer, options);

  CHECK(stats.records == 300);
  CHECK(stats.peak_in_flight == 1);
  CHECK(read_answers(out.str()).names.size() == 300);
}

TEST_CASE("empty input answers nothing and returns at once") {
  std::istringstream in("");
  std::ostringstream out;
  std::atomic<int> calls{0};
  SignFunction signer = [&](const SignRequest&, SignDone done) {
    ++calls;
    done(Bytes{});
  };
  PipelineStats stats = run_pipeline(in, out, signer, PipelineOptions{});
  CHECK(stats.records == 0);
  CHECK(out.str().empty());
  CHECK(calls == 0);
}

TEST_CASE("progress, when asked for, goes only to the progress stream") {
  std::istringstream in(record(1) + "\n" + record(2) + "\n");
  std::ostringstream out;
  std::ostringstream progress;
  BackwardsSigner signer;
  PipelineOptions options;
  options.progress = &progress;
  options.progress_interval = 1ms;

  (void)run_pipeline(in, out, signer.function(), options);

  CHECK(progress.str().find("2 records") != std::string::npos);
  CHECK(progress.str().find("records/s") != std::string::npos);
  CHECK(out.str().find("records/s") == std::string::npos);
}

/// Records alternating between keys every `run` records.
std::string keyed_record(int id, const std::string& key) {
  return R"({"id":")" + std::to_string(id) + R"(","key":")" + key +
         R"(","mechanism":"rsa-pkcs-sha256","data_hex":")" + to_hex(bytes_of(std::to_string(id))) +
         "\"}";
}

/// A fake batch signer on its own thread: echoes each payload, records the
/// batches it saw, and answers `short_by` fewer results than asked if set.
class BatchRecorder {
 public:
  explicit BatchRecorder(std::size_t short_by = 0) : short_by_(short_by) {}
  ~BatchRecorder() {
    for (auto& worker : workers_) worker.join();
  }

  BatchSignFunction function() {
    return [this](std::vector<SignRequest> requests, BatchDone done) {
      std::lock_guard<std::mutex> lock(mutex_);
      for (const auto& request : requests) {
        if (request.key_label != requests.front().key_label) mixed_keys_ = true;
      }
      sizes_.push_back(requests.size());
      workers_.emplace_back([this, requests = std::move(requests), done = std::move(done)] {
        std::this_thread::sleep_for(1ms);
        std::vector<Result<Bytes>> results;
        for (std::size_t i = 0; i + short_by_ < requests.size(); ++i) {
          results.emplace_back(requests[i].payload);
        }
        done(std::move(results));
      });
    };
  }

  std::vector<std::size_t> sizes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return sizes_;
  }
  bool mixed_keys() {
    std::lock_guard<std::mutex> lock(mutex_);
    return mixed_keys_;
  }

 private:
  std::size_t short_by_;
  std::mutex mutex_;
  std::vector<std::size_t> sizes_;
  bool mixed_keys_ = false;
  std::vector<std::thread> workers_;
};

SignFunction no_single_signs(std::atomic<int>& calls) {
  return [&calls](const SignRequest&, SignDone done) {
    ++calls;
    done(Error::make(Condition::internal_error, "single sign used"));
  };
}

TEST_CASE("batches carry consecutive records of one key and every record gets its own answer") {
  std::string input;
  // Runs of 10 records per key: batches of at most 4 never span two keys.
  for (int id = 0; id < 300; ++id) input += keyed_record(id, (id / 10) % 2 ? "a" : "b") + "\n";
  std::istringstream in(input);
  std::ostringstream out;
  BatchRecorder batches;
  std::atomic<int> single_calls{0};
  PipelineOptions options;
  options.max_in_flight = 32;
  options.batch = 4;
  options.ordered = true;

  PipelineStats stats =
      run_pipeline(in, out, no_single_signs(single_calls), options, batches.function());

  CHECK(stats.records == 300);
  CHECK(stats.failed == 0);
  CHECK(single_calls.load() == 0);
  CHECK_FALSE(batches.mixed_keys());
  std::size_t total = 0;
  bool some_full = false;
  for (std::size_t size : batches.sizes()) {
    CHECK(size >= 1);
    CHECK(size <= 4);
    some_full = some_full || size == 4;
    total += size;
  }
  CHECK(total == 300);
  CHECK(some_full);
  Answers answers = read_answers(out.str());
  REQUIRE(answers.names.size() == 300);
  for (int id = 0; id < 300; ++id) {
    CHECK(answers.names[id] == "id:" + std::to_string(id));
    const JsonObject& answer = answers.by_name.at("id:" + std::to_string(id));
    REQUIRE(answer.find("signature"));
    CHECK(from_base64(answer.find("signature")->text) == bytes_of(std::to_string(id)));
  }
}

TEST_CASE("a batch larger than the in-flight limit goes out instead of waiting for itself") {
  std::string input;
  for (int id = 0; id < 100; ++id) input += keyed_record(id, "k") + "\n";
  std::istringstream in(input);
  std::ostringstream out;
  BatchRecorder batches;
  std::atomic<int> single_calls{0};
  PipelineOptions options;
  options.max_in_flight = 3;
  options.batch = 64;

  PipelineStats stats =
      run_pipeline(in, out, no_single_signs(single_calls), options, batches.function());

  CHECK(stats.records == 100);
  CHECK(stats.failed == 0);
  CHECK(stats.peak_in_flight <= 3);
  for (std::size_t size : batches.sizes()) CHECK(size <= 3);
}

TEST_CASE("records a batch leaves unanswered fail instead of going missing") {
  std::string input;
  for (int id = 0; id < 20; ++id) input += keyed_record(id, "k") + "\n";
  std::istringstream in(input);
  std::ostringstream out;
  BatchRecorder batches(/*short_by=*/1);
  std::atomic<int> single_calls{0};
  PipelineOptions options;
  options.batch = 5;

  PipelineStats stats =
      run_pipeline(in, out, no_single_signs(single_calls), options, batches.function());

  CHECK(stats.records == 20);
  CHECK(stats.failed == 4);  // the last of each batch of five
  Answers answers = read_answers(out.str());
  CHECK(answers.names.size() == 20);
}

}  // namespace
}  // namespace hsmactor::sign
