#include "rabbitmq_server.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <stdexcept>
#include <thread>

namespace celeriac::tq::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// Debian's /usr/sbin wrappers switch to the rabbitmq user, which cannot write
// a private data directory; the scripts in the server's own sbin can run as
// whoever we are.
std::string sbin(const std::string& tool) {
  for (auto& e : fs::directory_iterator("/usr/lib/rabbitmq/lib")) {
    fs::path p = e.path() / "sbin" / tool;
    if (fs::exists(p)) return p.string();
  }
  throw std::runtime_error("rabbitmq-server is not installed (no /usr/lib/rabbitmq/lib/*/sbin/" +
                           tool + ")");
}

}  // namespace

RabbitMqServer::RabbitMqServer(const TlsCerts* certs, const CertPair* served)
    : dir_("celeriac-rabbitmq") {
  port_ = free_port();
  dist_port_ = free_port();
  epmd_port_ = free_port();
  nodename_ = "celeriac" + std::to_string(::getpid()) + "_" + std::to_string(port_) + "@localhost";
  fs::create_directories(dir_.path() / "home");
  fs::create_directories(dir_.path() / "mnesia");
  fs::create_directories(dir_.path() / "log");
  {
    std::ofstream cookie(dir_.path() / "home" / ".erlang.cookie");
    cookie << "celeriac-test-" << port_ << "-" << ::getpid();
  }
  ::chmod((dir_.path() / "home" / ".erlang.cookie").c_str(), 0400);
  std::ofstream(dir_.path() / "enabled_plugins") << "[].\n";
  std::ofstream conf(dir_.path() / "rabbitmq.conf");
  if (certs) {
    tls_port_ = free_port();
    conf << "listeners.ssl.1 = 127.0.0.1:" << tls_port_ << "\n"
         << "ssl_options.cacertfile = " << certs->ca().string() << "\n"
         << "ssl_options.certfile = " << (served ? *served : certs->server()).cert.string() << "\n"
         << "ssl_options.keyfile = " << (served ? *served : certs->server()).key.string() << "\n"
         << "ssl_options.verify = verify_peer\n"
         << "ssl_options.fail_if_no_peer_cert = false\n";
  }
  conf.close();
  epmd_ = ChildProcess({"epmd", "-port", std::to_string(epmd_port_), "-address", "127.0.0.1"},
                       dir_.path() / "epmd.log");
  start();
}

RabbitMqServer::~RabbitMqServer() {
  stop();
  epmd_.stop(2000ms);
}

std::map<std::string, std::string> RabbitMqServer::env() const {
  const fs::path& d = dir_.path();
  return {{"HOME", (d / "home").string()},
          {"RABBITMQ_NODENAME", nodename_},
          {"RABBITMQ_MNESIA_BASE", (d / "mnesia").string()},
          {"RABBITMQ_LOG_BASE", (d / "log").string()},
          {"RABBITMQ_PID_FILE", (d / "rabbit.pid").string()},
          {"RABBITMQ_NODE_PORT", std::to_string(port_)},
          {"RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1"},
          {"RABBITMQ_DIST_PORT", std::to_string(dist_port_)},
          {"ERL_EPMD_PORT", std::to_string(epmd_port_)},
          {"ERL_EPMD_ADDRESS", "127.0.0.1"},
          {"RABBITMQ_ENABLED_PLUGINS_FILE", (d / "enabled_plugins").string()},
          {"RABBITMQ_CONFIG_FILE", (d / "rabbitmq").string()},
          {"RABBITMQ_ADVANCED_CONFIG_FILE", (d / "advanced.config").string()},
          {"RABBITMQ_LOGS", "-"}};
}

std::string RabbitMqServer::url(const std::string& query) const {
  return "amqp://guest:guest@127.0.0.1:" + std::to_string(port_) + "//" + query;
}

std::string RabbitMqServer::tls_url(const std::string& query) const {
  return "amqps://guest:guest@127.0.0.1:" + std::to_string(tls_port_) + "//" + query;
}

void RabbitMqServer::pause() {
  if (node_.pid() != 0) ::kill(-node_.pid(), SIGSTOP);
}

void RabbitMqServer::resume() {
  if (node_.pid() != 0) ::kill(-node_.pid(), SIGCONT);
}

std::string RabbitMqServer::pyamqp_url() const {
  return "pyamqp://guest:guest@127.0.0.1:" + std::to_string(port_) + "//";
}

RunResult RabbitMqServer::ctl(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {sbin("rabbitmqctl"), "-n", nodename_};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv, 120s, env());
}

void RabbitMqServer::start() {
  fs::remove(dir_.path() / "rabbit.pid");
  node_ = ChildProcess({sbin("rabbitmq-server")}, dir_.path() / "rabbitmq.log", env());
  // `rabbitmqctl wait` returns once the node wrote its pid file and the
  // rabbit application (with its listeners) is running.
  auto r = ctl({"wait", "--timeout", "90", (dir_.path() / "rabbit.pid").string()});
  if (r.exit_code != 0 || !node_.running())
    throw std::runtime_error("rabbitmq-server on 127.0.0.1:" + std::to_string(port_) +
                             " did not start:\n" + r.output + "\nnode log:\n" + node_.log());
}

void RabbitMqServer::stop() {
  if (node_.pid() != 0) node_.stop(30000ms);
}

}  // namespace celeriac::tq::test
