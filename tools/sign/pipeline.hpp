// The signing pipeline: read records, keep a bounded number in flight, write
// one answer per record.
//
// The calling thread reads and submits; a writer thread writes answers as they
// come (or, ordered, as soon as every earlier one is out). A record counts as
// in flight from the moment it is read until its answer line is written, so
// --ordered never buffers more than max_in_flight answers behind a slow one.
// Bad records take a slot too and are answered at once; they never stop the
// stream. Blank lines are skipped and are not records.
//
// Usage:
//   PipelineOptions options;
//   options.max_in_flight = 64;
//   PipelineStats stats = run_pipeline(std::cin, std::cout, sign_with_token, options);
//   return stats.failed == 0 ? 0 : 1;
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <istream>
#include <ostream>
#include <vector>

#include "pkcs11/bytes.hpp"
#include "pkcs11/error.hpp"
#include "tools/sign/sign_request.hpp"

namespace hsmactor::sign {

/// Called back with a signature or an Error.
using SignDone = std::function<void(Result<Bytes>)>;

/// Starts signing `request` and returns without waiting; calls `done` exactly
/// once, on any thread (perhaps before returning). `done` does not block.
using SignFunction = std::function<void(const SignRequest& request, SignDone done)>;

/// Called back once with one result per request of a batch, in order.
using BatchDone = std::function<void(std::vector<Result<Bytes>>)>;

/// Starts signing `requests` (all for one key and scheme) as one batch and
/// returns without waiting; calls `done` exactly once, on any thread, with
/// as many results as requests (fewer or more fail the missing ones).
using BatchSignFunction = std::function<void(std::vector<SignRequest> requests, BatchDone done)>;

/// How run_pipeline behaves.
struct PipelineOptions {
  /// Records read but not yet answered, at most.
  std::size_t max_in_flight = 64;
  /// Consecutive records for the same key and scheme sent as one batch, at
  /// most (with a BatchSignFunction). A batch goes out when it is full, when
  /// the next record is for another key, when no more input is buffered (so
  /// a slow stream is never held back), or when the in-flight limit is hit.
  std::size_t batch = 1;
  /// Answer in input order instead of completion order.
  bool ordered = false;
  /// Where a progress line goes (records/s, in flight, errors), or nullptr.
  std::ostream* progress = nullptr;
  std::chrono::milliseconds progress_interval{500};
};

/// What a run did.
struct PipelineStats {
  /// Records read, each answered exactly once.
  std::uint64_t records = 0;
  /// Records answered with an error.
  std::uint64_t failed = 0;
  /// The most records that were in flight at once.
  std::size_t peak_in_flight = 0;
  std::chrono::duration<double> elapsed{0};
  /// False if reading the input or writing the output failed.
  bool input_ok = true;
  bool output_ok = true;
};

/// Reads JSON-lines records from `input`, signs each through `sign` and writes
/// one answer line per record to `output`; returns when all are written.
PipelineStats run_pipeline(std::istream& input, std::ostream& output, const SignFunction& sign,
                           const PipelineOptions& options,
                           const BatchSignFunction& sign_batch = nullptr);

}  // namespace hsmactor::sign
