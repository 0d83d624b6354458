#include "celeriac/tq/group_result.hpp"

#include "celeriac/tq/app.hpp"

namespace celeriac::tq {

GroupResult::GroupResult(App& app, std::string id, std::vector<std::string> ids)
    : app_(&app), id_(std::move(id)), ids_(std::move(ids)) {}

GroupResult GroupResult::restore(App& app, const std::string& id) {
  auto ids = app.backend().restore_group(id);
  if (!ids) throw BackendError("no group saved under id " + id);
  return GroupResult(app, id, std::move(*ids));
}

std::vector<AsyncResult<Json>> GroupResult::results() const {
  std::vector<AsyncResult<Json>> out;
  out.reserve(ids_.size());
  for (const auto& id : ids_) out.push_back(app_->async_result(id));
  return out;
}

Json GroupResult::get(std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  Json out = Json::array();
  for (auto& r : results()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    out.push_back(r.get(std::max(left, std::chrono::milliseconds(0))));
  }
  return out;
}

std::vector<std::optional<ResultMeta>> GroupResult::metas() const {
  return app_->backend().get_many(ids_);
}

bool GroupResult::ready() const {
  for (const auto& m : metas())
    if (!m || !is_ready(m->status)) return false;
  return true;
}

bool GroupResult::successful() const {
  return completed_count() == ids_.size();
}

bool GroupResult::failed() const {
  for (const auto& m : metas())
    if (m && (m->status == State::Failure || m->status == State::Revoked)) return true;
  return false;
}

std::size_t GroupResult::completed_count() const {
  std::size_t n = 0;
  for (const auto& m : metas())
    if (m && m->status == State::Success) ++n;
  return n;
}

void GroupResult::save() const {
  app_->backend().save_group(id_, ids_);
}

void GroupResult::forget() const {
  app_->backend().forget_group(id_);
}

}  // namespace celeriac::tq
