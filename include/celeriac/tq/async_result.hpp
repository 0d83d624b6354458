// AsyncResult<T>: a task's eventual result. It IS a celeriac::Future<T>
// (completed by the app's result watcher when the backend holds a ready
// state), so when_all / then / co_await work on it.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "celeriac/futures.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/result_backend.hpp"

namespace celeriac::tq {

class App;

namespace detail {
/// Registers `state` with app's result watcher (defined in app.hpp).
void watch_result(App& app, const std::string& id, std::function<void(const ResultMeta&)> on_ready,
                  std::function<bool()> abandoned);
ResultBackend& backend_of(App& app);
/// The TaskError stored in a FAILURE/REVOKED meta.
TaskError error_from_meta(const ResultMeta& meta);
}  // namespace detail

/// The result of a sent task. Copies share one state.
template <class T = Json>
class AsyncResult : public Future<T> {
 public:
  /// Watches task `id` of `app`.
  AsyncResult(App& app, std::string id)
      : AsyncResult(app, std::move(id), futures::detail::make_state<T>()) {}

  /// The task id.
  const std::string& id() const noexcept { return id_; }

  /// Waits up to `timeout` and returns the value, or throws the task's
  /// TaskError (type, module, message, traceback) / TimeoutError.
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) const {
    if constexpr (std::is_void_v<T>) {
      this->result(timeout);
    } else {
      return this->result(timeout);
    }
  }
  /// Waits without limit (prefer get(timeout)).
  T get() const {
    if constexpr (std::is_void_v<T>) {
      this->result();
    } else {
      return this->result();
    }
  }

  /// The stored meta right now (nullopt = PENDING).
  std::optional<ResultMeta> meta() const { return detail::backend_of(*app_).get(id_); }
  /// PENDING, STARTED, RETRY, SUCCESS, FAILURE, REVOKED (asks the backend).
  State state() const {
    if (this->done()) return done_state_();
    auto m = meta();
    return m ? m->status : State::Pending;
  }
  /// The task finished (SUCCESS, FAILURE or REVOKED).
  bool ready() const { return is_ready(state()); }
  /// The task succeeded.
  bool successful() const { return state() == State::Success; }
  /// The task failed.
  bool failed() const { return state() == State::Failure; }
  /// The stored traceback (FAILURE/RETRY), if any.
  std::optional<std::string> traceback() const {
    auto m = meta();
    return m ? m->traceback : std::nullopt;
  }
  /// Deletes the stored result.
  void forget() const { detail::backend_of(*app_).forget(id_); }

 private:
  AsyncResult(App& app, std::string id, futures::detail::StatePtr<T> state)
      : Future<T>(state), app_(&app), id_(std::move(id)) {
    futures::detail::StatePtr<T> s = state;
    auto* raw = state.get();
    detail::watch_result(
        app, id_,
        [s](const ResultMeta& m) {
          if (m.status == State::Success) {
            if constexpr (std::is_void_v<T>) {
              s->try_set_value();
            } else {
              try {
                s->try_set_value(m.result.template get<T>());
              } catch (const std::exception& e) {
                s->try_set_exception(
                    std::make_exception_ptr(type_error(std::string("result of task ") + m.task_id +
                                                       " does not convert: " + e.what())));
              }
            }
          } else {
            s->try_set_exception(std::make_exception_ptr(detail::error_from_meta(m)));
          }
        },
        // Abandoned when only the watcher's own reference is left.
        [raw]() { return raw->unique(); });
  }

  State done_state_() const {
    auto e = Future<T>::state()->error();  // the future's shared state, not State
    if (!e) return State::Success;
    try {
      std::rethrow_exception(e);
    } catch (const TaskError& te) {
      return te.state() == "REVOKED" ? State::Revoked : State::Failure;
    } catch (...) {
      return State::Failure;
    }
  }

  App* app_;
  std::string id_;
};

}  // namespace celeriac::tq
