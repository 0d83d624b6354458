#include "celeriac/tq/errors.hpp"

namespace celeriac::tq {
namespace {

std::string describe(const std::string& type, const nlohmann::json& msg) {
  std::string text;
  if (msg.is_array()) {
    for (std::size_t i = 0; i < msg.size(); ++i) {
      if (i) text += ", ";
      text += msg[i].is_string() ? msg[i].get<std::string>() : msg[i].dump();
    }
  } else if (msg.is_string()) {
    text = msg.get<std::string>();
  } else if (!msg.is_null()) {
    text = msg.dump();
  }
  return type + ": " + text;
}

nlohmann::json as_list(nlohmann::json m) {
  if (m.is_array()) return m;
  if (m.is_null()) return nlohmann::json::array();
  return nlohmann::json::array({std::move(m)});
}

}  // namespace

TaskError::TaskError(std::string exc_type, std::string exc_module, nlohmann::json exc_message,
                     std::string traceback, std::string state)
    : Error(describe(exc_type, exc_message)),
      exc_type_(std::move(exc_type)),
      exc_module_(std::move(exc_module)),
      exc_message_(as_list(std::move(exc_message))),
      traceback_(std::move(traceback)),
      state_(std::move(state)) {}

std::string TaskError::message() const {
  std::string w = what();
  return w.substr(exc_type_.size() + 2);
}

nlohmann::ordered_json TaskError::to_json() const {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  j["exc_type"] = exc_type_;
  j["exc_message"] = nlohmann::ordered_json::parse(exc_message_.dump());
  j["exc_module"] = exc_module_;
  return j;
}

}  // namespace celeriac::tq
