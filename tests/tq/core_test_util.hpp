// Helpers shared by the core tq tests.
#pragma once

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "celeriac/tq/async_result.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/message.hpp"

namespace tqtest {

/// The captured bytes of sample `name`. The sample files end with a newline
/// that was not part of the payload sent to Redis (json.dumps writes none),
/// so one trailing newline is dropped.
inline std::string read_sample(const std::string& name) {
  std::ifstream in(std::string(CELERIAC_TQ_TEST_DATA) + "/" + name, std::ios::binary);
  if (!in) throw std::runtime_error("missing test sample " + name);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

/// The TaskError that waiting on `r` raises; a test failure when it succeeds.
template <class T>
celeriac::tq::TaskError failure_of(celeriac::tq::AsyncResult<T>&& r,
                                   std::chrono::milliseconds wait = std::chrono::seconds(60)) {
  try {
    r.get(wait);
  } catch (const celeriac::tq::TaskError& e) {
    return e;
  }
  ADD_FAILURE() << "the task did not fail";
  return celeriac::tq::TaskError("None", "builtins", "did not fail");
}

/// Polls `pred` until it holds or `limit` passes (for effects that have no
/// result to wait on); returns its last value.
template <class P>
bool eventually(P pred, std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

/// A fresh temporary SQLite URL, file removed at scope exit.
class TempDb {
 public:
  TempDb() {
    dir_ = std::filesystem::temp_directory_path() /
           ("celeriac-tq-" + std::to_string(getpid()) + "-" + celeriac::tq::make_uuid());
    std::filesystem::create_directories(dir_);
  }
  ~TempDb() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string url() const { return "sqlite:///" + (dir_ / "tq.db").string(); }
  std::string path() const { return (dir_ / "tq.db").string(); }

 private:
  std::filesystem::path dir_;
};

}  // namespace tqtest
