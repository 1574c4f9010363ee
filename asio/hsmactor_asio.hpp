// hsmactor for Asio: async_sign, async_verify, async_encrypt, async_decrypt,
// async_digest and async_random as Asio initiating functions.
//
// Each takes any completion token: a plain callback, asio::use_future,
// asio::use_awaitable (C++20 coroutines), asio::experimental::deferred (Asio
// 1.22 keeps it in experimental; 1.24 moves it to asio::deferred), or an
// adapter such as asio::bind_executor or asio::bind_cancellation_slot. The
// completion signature puts the error first, as Asio users expect:
//   void(std::error_code, Bytes)   sign, encrypt, decrypt, digest, random
//   void(std::error_code, bool)    verify (false with no error: a bad signature)
// The error code maps the hsmactor::Error (asio/hsmactor_error_code.hpp): `ec ==
// hsmactor::Condition::overloaded`, `ec.value() == CKR_KEY_HANDLE_INVALID` in
// the "pkcs11" category, `ec == hsmactor::Category::retry`. The full Error,
// message and all, reaches you through the overloads taking `Error&
// diagnostics` (written before the handler runs, only on failure; the object
// must outlive the operation, like an Asio buffer).
//
// We build on standalone Asio 1.22.1 (libasio-dev), not Boost 1.74's Asio
// 1.18.0: per-operation cancellation (asio/cancellation_signal.hpp,
// associated_cancellation_slot) arrived in Asio 1.19 and deferred in 1.22;
// boost/asio in 1.74 has neither header.
//
// Guarantees:
// - The handler runs exactly once, on its associated executor (system_executor
//   when it has none: bind a callback to your loop with asio::bind_executor),
//   never inside the initiating function, and never on a session thread. Also
//   at token close: queued requests complete with Condition::shutting_down.
// - Work is counted on that executor from initiation until the handler has run
//   and the token has answered, so io_context::run() does not return while a
//   request is in flight, also a cancelled one. The io_context must therefore
//   not be destroyed while requests are outstanding.
// - Nothing blocks the caller's thread: the request goes to the token's queue.
// - Cancellation (terminal, partial or total, through the handler's associated
//   cancellation slot) before the answer is handled completes the handler with
//   asio::error::operation_aborted, once; the token's late answer is dropped.
//   A request no session has started yet is withdrawn (it never reaches the
//   module, and frees its session's time for others); one already running
//   finishes there, unseen. A cancellation after the answer was handled does
//   nothing.
// - `data` and the other views are copied when the operation starts; with
//   deferred they must stay valid until it is launched.
//
// The continuation that carries the answer runs on the token's executor (the
// completion pool unless TokenOptions::executor is set) and then hands over to
// the handler's executor. Give the token a LoopExecutor on the same loop
// (make_loop_executor below) and the hand-over is inline: one batched wake-up
// per many answers instead of one post per answer.
//
// Usage:
//   asio::io_context io;
//   options.executor = hsmactor::asio_support::make_loop_executor(io.get_executor());
//   auto token = hsm.open_token(options);
//   hsmactor::asio_support::async_sign(*token, key, hsmactor::Mechanism::ecdsa(), digest,
//       asio::bind_executor(io, [](std::error_code ec, hsmactor::Bytes signature) { ... }));
//   io.run();  // returns once the signature was handled
#pragma once

#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/dispatch.hpp>
#include <asio/error.hpp>
#include <asio/execution.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <asio/system_executor.hpp>

#include <atomic>
#include <cstddef>
#include <memory>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

#include "asio/hsmactor_error_code.hpp"
#include "asio/hsmactor_loop_executor.hpp"
#include "hsmactor.hpp"

namespace hsmactor::asio_support {

/// Returns a LoopExecutor that drains on `executor` (an io_context's, a
/// strand's, any Asio executor): use it as TokenOptions::executor.
template <class AsioExecutor>
std::shared_ptr<LoopExecutor> make_loop_executor(const AsioExecutor& executor) {
  return std::make_shared<LoopExecutor>(
      [executor](Task drain) { asio::post(executor, std::move(drain)); });
}

namespace internal {

/// Counts outstanding work on an Asio executor of either model: standard
/// executors through the outstanding_work.tracked property, Networking TS
/// executors through executor_work_guard.
template <class AsioExecutor, class = void>
class Work {
 public:
  explicit Work(const AsioExecutor& executor) : guard_(executor) {}

 private:
  asio::executor_work_guard<AsioExecutor> guard_;
};

template <class AsioExecutor>
class Work<AsioExecutor, std::enable_if_t<asio::execution::is_executor<AsioExecutor>::value>> {
 public:
  explicit Work(const AsioExecutor& executor)
      : tracked_(asio::prefer(executor, asio::execution::outstanding_work.tracked)) {}

 private:
  std::decay_t<decltype(asio::prefer(std::declval<const AsioExecutor&>(),
                                     asio::execution::outstanding_work.tracked))>
      tracked_;
};

/// One operation in flight: the handler, its executor and cancellation slot,
/// and who has completed it.
///
/// Owned (shared) by the token's continuation until the answer arrives, by the
/// cancellation slot's handler until the slot is cleared, and by a completion
/// on its way to the executor; the work count ends with the last of them.
template <class T, class Handler>
class Operation : public std::enable_shared_from_this<Operation<T, Handler>> {
 public:
  using HandlerExecutor = asio::associated_executor_t<Handler, asio::system_executor>;
  using Slot = asio::associated_cancellation_slot_t<Handler>;

  Operation(Handler handler, Error* diagnostics)
      : executor_(asio::get_associated_executor(handler, asio::system_executor())),
        work_(executor_),
        slot_(asio::get_associated_cancellation_slot(handler)),
        handler_(std::move(handler)),
        diagnostics_(diagnostics) {}

  /// Starts: installs the cancellation handler and waits for `future`.
  void start(Future<T> future) {
    withdrawal_ = future.withdrawal();
    auto self = this->shared_from_this();
    if (slot_.is_connected()) slot_.template emplace<Canceller>(Canceller{self});
    future.then([self](Result<T> result) { self->answer(std::move(result)); });
    // From here on an answer is a continuation of its own, not part of the
    // initiating call, and may complete inline on the handler's executor.
    initiating_.store(false, std::memory_order_release);
  }

 private:
  struct Canceller {
    std::shared_ptr<Operation> operation;
    void operator()(asio::cancellation_type_t type) {
      if (type != asio::cancellation_type::none) operation->cancel();
    }
  };

  // Runs on the token's executor (or inline in start() when the answer was
  // already there: refused input, a closed token).
  void answer(Result<T> result) {
    // Cancelled already: drop the answer without touching the executor.
    if (done_.load(std::memory_order_acquire)) return;
    auto finish = [self = this->shared_from_this(), result = std::move(result)]() mutable {
      self->finish(std::move(result));
    };
    if (initiating_.load(std::memory_order_acquire)) {
      // Asio forbids running the handler inside its initiating function.
      asio::post(executor_, std::move(finish));
    } else {
      // Inline when we are already on the handler's executor (a LoopExecutor
      // draining on the same loop): the hop this saves is the point of it.
      asio::dispatch(executor_, std::move(finish));
    }
  }

  // Runs where the cancellation signal is emitted (the handler's executor, by
  // Asio's rules); completes through a post, never inside emit().
  void cancel() {
    if (done_.exchange(true, std::memory_order_acq_rel)) return;
    (void)withdrawal_.withdraw();  // not started yet: it never will
    asio::post(executor_, [self = this->shared_from_this()] {
      self->invoke(asio::error::operation_aborted, T{});
    });
  }

  // Runs on the handler's executor.
  void finish(Result<T> result) {
    if (done_.exchange(true, std::memory_order_acq_rel)) return;  // cancelled meanwhile
    if (result) {
      invoke(std::error_code(), std::move(*result));
    } else {
      if (diagnostics_ != nullptr) *diagnostics_ = result.error();
      invoke(make_error_code(result.error()), T{});
    }
  }

  // Runs on the handler's executor, once (done_ was won by the caller).
  void invoke(std::error_code ec, T value) {
    // The slot may be reused by the handler for its next operation.
    if (slot_.is_connected()) slot_.clear();
    Handler handler = std::move(*handler_);
    handler_.reset();
    std::move(handler)(ec, std::move(value));
  }

  HandlerExecutor executor_;
  Work<HandlerExecutor> work_;
  Slot slot_;
  std::optional<Handler> handler_;
  Error* diagnostics_;
  Withdrawal withdrawal_;
  std::atomic<bool> done_{false};
  std::atomic<bool> initiating_{true};
};

/// The initiation object for asio::async_initiate: `start()` asks the token.
template <class T>
struct Initiate {
  template <class Handler, class Start>
  void operator()(Handler&& handler, Start start, Error* diagnostics) const {
    using Op = Operation<T, std::decay_t<Handler>>;
    auto operation = std::make_shared<Op>(std::forward<Handler>(handler), diagnostics);
    operation->start(start());
  }
};

/// Returns the answer for a default-constructed (invalid) Token.
template <class T>
Future<T> invalid_token() {
  return make_ready_future<T>(
      Error::make(Condition::invalid_argument, "the hsmactor::Token is not open"));
}

using BytesSignature = void(std::error_code, Bytes);
using BoolSignature = void(std::error_code, bool);

template <class T, class Signature, class CompletionToken, class Start>
auto initiate(CompletionToken&& completion, Error* diagnostics, Start start) {
  return asio::async_initiate<CompletionToken, Signature>(
      Initiate<T>{}, completion, std::move(start), diagnostics);
}

}  // namespace internal

/// Signs `data` with `key` (for Mechanism::ecdsa(), `data` is the digest);
/// completes with void(std::error_code, Bytes signature).
template <class CompletionToken>
auto async_sign(const Token& token, const Key& key, const Mechanism& mechanism, ByteView data,
                Error& diagnostics, CompletionToken&& completion) {
  return internal::initiate<Bytes, internal::BytesSignature>(
      std::forward<CompletionToken>(completion), &diagnostics,
      [token, key, mechanism, data] {
        return token.valid() ? token.sign(key, mechanism, data) : internal::invalid_token<Bytes>();
      });
}

template <class CompletionToken>
auto async_sign(const Token& token, const Key& key, const Mechanism& mechanism, ByteView data,
                CompletionToken&& completion) {
  return internal::initiate<Bytes, internal::BytesSignature>(
      std::forward<CompletionToken>(completion), nullptr, [token, key, mechanism, data] {
        return token.valid() ? token.sign(key, mechanism, data) : internal::invalid_token<Bytes>();
      });
}

/// Verifies `signature` over `data`; completes with void(std::error_code,
/// bool valid): a bad signature is `false` with no error.
template <class CompletionToken>
auto async_verify(const Token& token, const Key& key, const Mechanism& mechanism, ByteView data,
                  ByteView signature, Error& diagnostics, CompletionToken&& completion) {
  return internal::initiate<bool, internal::BoolSignature>(
      std::forward<CompletionToken>(completion), &diagnostics,
      [token, key, mechanism, data, signature] {
        return token.valid() ? token.verify(key, mechanism, data, signature)
                             : internal::invalid_token<bool>();
      });
}

template <class CompletionToken>
auto async_verify(const Token& token, const Key& key, const Mechanism& mechanism, ByteView data,
                  ByteView signature, CompletionToken&& completion) {
  return internal::initiate<bool, internal::BoolSignature>(
      std::forward<CompletionToken>(completion), nullptr,
      [token, key, mechanism, data, signature] {
        return token.valid() ? token.verify(key, mechanism, data, signature)
                             : internal::invalid_token<bool>();
      });
}

/// Encrypts `plaintext`; completes with void(std::error_code, Bytes ciphertext).
template <class CompletionToken>
auto async_encrypt(const Token& token, const Key& key, const Mechanism& mechanism,
                   ByteView plaintext, Error& diagnostics, CompletionToken&& completion) {
  return internal::initiate<Bytes, internal::BytesSignature>(
      std::forward<CompletionToken>(completion), &diagnostics,
      [token, key, mechanism, plaintext] {
        return token.valid() ? token.encrypt(key, mechanism, plaintext)
                             : internal::invalid_token<Bytes>();
      });
}

template <class CompletionToken>
auto async_encrypt(const Token& token, const Key& key, const Mechanism& mechanism,
                   ByteView plaintext, CompletionToken&& completion) {
  return internal::initiate<Bytes, internal::BytesSignature>(
      std::forward<CompletionToken>(completion), nullptr, [token, key, mechanism, plaintext] {
        return token.valid() ? token.encrypt(key, mechanism, plaintext)
                             : internal::invalid_token<Bytes>();
      });
}

/// Decrypts `ciphertext`; completes with void(std::error_code, Bytes plaintext).
template <class CompletionToken>
auto async_decrypt(const Token& token, const Key& key, const Mechanism& mechanism,
                   ByteView ciphertext, Error& diagnostics, CompletionToken&& completion) {
  return internal::initiate<Bytes, internal::BytesSignature>(
      std::forward<CompletionToken>(completion), &diagnostics,
      [token, key, mechanism, ciphertext] {
        return token.valid() ? token.decrypt(key, mechanism, ciphertext)
                             : internal::invalid_token<Bytes>();
      });
}

template <class CompletionToken>
auto async_decrypt(const Token& token, const Key& key, const Mechanism& mechanism,
                   ByteView ciphertext, CompletionToken&& completion) {
  return internal::initiate<Bytes, internal::BytesSignature>(
      std::forward<CompletionToken>(completion), nullptr, [token, key, mechanism, ciphertext] {
        return token.valid() ? token.decrypt(key, mechanism, ciphertext)
                             : internal::invalid_token<Bytes>();
      });
}

/// Digests `data` in the token; completes with void(std::error_code, Bytes digest).
template <class CompletionToken>
auto async_digest(const Token& token, const Mechanism& mechanism, ByteView data,
                  Error& diagnostics, CompletionToken&& completion) {
  return internal::initiate<Bytes, internal::BytesSignature>(
      std::forward<CompletionToken>(completion), &diagnostics, [token, mechanism, data] {
        return token.valid() ? token.digest(mechanism, data) : internal::invalid_token<Bytes>();
      });
}

template <class CompletionToken>
auto async_digest(const Token& token, const Mechanism& mechanism, ByteView data,
                  CompletionToken&& completion) {
  return internal::initiate<Bytes, internal::BytesSignature>(
      std::forward<CompletionToken>(completion), nullptr, [token, mechanism, data] {
        return token.valid() ? token.digest(mechanism, data) : internal::invalid_token<Bytes>();
      });
}

/// Returns `length` random bytes (1 to Token::kMaxRandomLength; beyond,
/// Condition::invalid_argument); completes with void(std::error_code, Bytes).
template <class CompletionToken>
auto async_random(const Token& token, std::size_t length, Error& diagnostics,
                  CompletionToken&& completion) {
  return internal::initiate<Bytes, internal::BytesSignature>(
      std::forward<CompletionToken>(completion), &diagnostics, [token, length] {
        return token.valid() ? token.random(length) : internal::invalid_token<Bytes>();
      });
}

template <class CompletionToken>
auto async_random(const Token& token, std::size_t length, CompletionToken&& completion) {
  return internal::initiate<Bytes, internal::BytesSignature>(
      std::forward<CompletionToken>(completion), nullptr, [token, length] {
        return token.valid() ? token.random(length) : internal::invalid_token<Bytes>();
      });
}

}  // namespace hsmactor::asio_support
