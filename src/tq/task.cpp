// Task binding: JSON args/kwargs to a callable's parameters (Python's
// argument rules and TypeError messages), and C++ exceptions to Celery's
// error types.
#include "celeriac/tq/task.hpp"

#include <algorithm>
#include <system_error>

#include "celeriac/error.hpp"

namespace celeriac::tq {

namespace detail {

Json run_blocking(aio::Task<Json> task) {
  return aio::run(std::move(task));
}

std::string json_type_name(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null:
      return "None";
    case Json::value_t::boolean:
      return "bool";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "int";
    case Json::value_t::number_float:
      return "float";
    case Json::value_t::string:
      return "str";
    case Json::value_t::array:
      return "list";
    case Json::value_t::object:
      return "dict";
    default:
      return j.type_name();
  }
}

std::vector<const Json*> bind_arguments(const std::string& task,
                                        const std::vector<std::string>& params, const Json& args,
                                        const Json& kwargs) {
  if (!args.is_array())
    throw type_error(task + "() positional arguments must be a list, got " + json_type_name(args));
  if (!kwargs.is_object())
    throw type_error(task + "() keyword arguments must be a dict, got " + json_type_name(kwargs));
  const std::size_t n = params.size();
  if (args.size() > n)
    throw type_error(task + "() takes " + std::to_string(n) + " positional argument" +
                     (n == 1 ? "" : "s") + " but " + std::to_string(args.size()) +
                     (args.size() == 1 ? " was" : " were") + " given");
  std::vector<const Json*> values(n, nullptr);
  for (std::size_t i = 0; i < args.size(); ++i) values[i] = &args[i];
  for (auto it = kwargs.begin(); it != kwargs.end(); ++it) {
    auto p = std::find(params.begin(), params.end(), it.key());
    if (p == params.end())
      throw type_error(task + "() got an unexpected keyword argument '" + it.key() + "'");
    auto idx = static_cast<std::size_t>(p - params.begin());
    if (values[idx])
      throw type_error(task + "() got multiple values for argument '" + it.key() + "'");
    values[idx] = &it.value();
  }
  std::vector<std::string> missing;
  for (std::size_t i = 0; i < n; ++i)
    if (!values[i]) missing.push_back(params[i]);
  if (!missing.empty()) {
    std::string list;
    for (std::size_t i = 0; i < missing.size(); ++i) {
      if (i) list += (i + 1 == missing.size()) ? (missing.size() > 2 ? ", and " : " and ") : ", ";
      list += "'" + missing[i] + "'";
    }
    throw type_error(task + "() missing " + std::to_string(missing.size()) + " required argument" +
                     (missing.size() == 1 ? "" : "s") + ": " + list);
  }
  return values;
}

}  // namespace detail

TaskError to_task_error(std::exception_ptr e) {
  auto make = [](const char* type, const std::exception& ex) {
    return TaskError(type, "builtins", ex.what());
  };
  try {
    std::rethrow_exception(e);
  } catch (const TaskError& ex) {
    return ex;
  } catch (const nlohmann::json::type_error& ex) {
    return make("TypeError", ex);
  } catch (const nlohmann::json::out_of_range& ex) {
    return make("KeyError", ex);
  } catch (const nlohmann::json::exception& ex) {
    return make("ValueError", ex);
  } catch (const celeriac::TimeoutError& ex) {
    return make("TimeoutError", ex);
  } catch (const std::invalid_argument& ex) {
    return make("ValueError", ex);
  } catch (const std::domain_error& ex) {
    return make("ValueError", ex);
  } catch (const std::length_error& ex) {
    return make("ValueError", ex);
  } catch (const std::out_of_range& ex) {
    return make("IndexError", ex);
  } catch (const std::overflow_error& ex) {
    return make("OverflowError", ex);
  } catch (const std::underflow_error& ex) {
    return make("ArithmeticError", ex);
  } catch (const std::range_error& ex) {
    return make("ValueError", ex);
  } catch (const std::bad_alloc& ex) {
    return make("MemoryError", ex);
  } catch (const std::system_error& ex) {
    return make("OSError", ex);
  } catch (const std::exception& ex) {
    return make("RuntimeError", ex);
  } catch (...) {
    return TaskError("Exception", "builtins",
                     "unknown C++ exception (not derived from std::exception)");
  }
}

}  // namespace celeriac::tq
