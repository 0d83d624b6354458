#include "redis_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>
#include <thread>

namespace celeriac::tq::test {

using namespace std::chrono_literals;

RedisServer::RedisServer(Options opts) : opts_(std::move(opts)), dir_("celeriac-redis") {
  port_ = free_port();
  start();
}

RedisServer::RedisServer(Options opts, Tls tls)
    : opts_(std::move(opts)), tls_(std::move(tls)), dir_("celeriac-redis") {
  port_ = free_port();
  if (tls_->plaintext_too) plain_port_ = free_port();
  start();
}

RedisServer::~RedisServer() {
  stop();
}

std::string RedisServer::url(int db) const {
  std::string auth = opts_.password.empty() ? "" : ":" + opts_.password + "@";
  std::string where = auth + "127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db);
  if (!tls_) return "redis://" + where;
  std::string u = "rediss://" + where + "?ssl_cert_reqs=required&ssl_ca_certs=" + tls_->ca;
  if (!tls_->client_cert.empty())
    u += "&ssl_certfile=" + tls_->client_cert + "&ssl_keyfile=" + tls_->client_key;
  return u;
}

std::string RedisServer::plain_url(int db) const {
  if (plain_port_ == 0) throw std::logic_error("RedisServer::plain_url: no plaintext port");
  std::string auth = opts_.password.empty() ? "" : ":" + opts_.password + "@";
  return "redis://" + auth + "127.0.0.1:" + std::to_string(plain_port_) + "/" + std::to_string(db);
}

std::vector<std::string> RedisServer::tls_cli_args() const {
  if (!tls_) return {};
  std::vector<std::string> a = {"--tls", "--cacert", tls_->ca};
  if (!tls_->client_cert.empty())
    a.insert(a.end(), {"--cert", tls_->client_cert, "--key", tls_->client_key});
  return a;
}

void RedisServer::start() {
  std::vector<std::string> argv = {"redis-server",
                                   "--port",
                                   tls_ ? std::to_string(plain_port_) : std::to_string(port_),
                                   "--bind",
                                   "127.0.0.1",
                                   "--save",
                                   "",
                                   "--dir",
                                   dir_.path().string(),
                                   "--daemonize",
                                   "no",
                                   "--protected-mode",
                                   "no",
                                   "--appendonly",
                                   opts_.persistent ? "yes" : "no"};
  if (opts_.persistent) {
    argv.insert(argv.end(), {"--appendfsync", "always"});
  }
  if (!opts_.password.empty()) argv.insert(argv.end(), {"--requirepass", opts_.password});
  if (tls_) {
    argv.insert(argv.end(), {"--tls-port", std::to_string(port_), "--tls-cert-file", tls_->cert,
                             "--tls-key-file", tls_->key, "--tls-ca-cert-file", tls_->ca,
                             "--tls-auth-clients", tls_->require_client_cert ? "yes" : "no"});
  }
  for (int attempt = 0;; ++attempt) {
    proc_ = ChildProcess(argv, dir_.path() / "redis.log");
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline && proc_.running()) {
      // With TLS each ping runs redis-cli: first wait for the server to say it is up.
      bool up = !tls_ || log().find("Ready to accept connections") != std::string::npos;
      if (up && ping()) return;
      std::this_thread::sleep_for(10ms);
    }
    bool died = !proc_.running();
    proc_.stop(1000ms);
    if (died && attempt < 3 && log().find("Address already in use") != std::string::npos) {
      port_ = free_port();  // lost the race for the port: another one
      continue;
    }
    throw std::runtime_error("redis-server on 127.0.0.1:" + std::to_string(port_) +
                             " did not answer PING; log:\n" + log());
  }
}

bool RedisServer::ping() const {
  if (tls_) {
    // redis-cli speaks TLS for us; --insecure: readiness only, the tests'
    // certificates may be refused on purpose (expired, wrong host).
    std::vector<std::string> argv = {"redis-cli", "-h", "127.0.0.1", "-p", std::to_string(port_)};
    auto tls = tls_cli_args();
    argv.insert(argv.end(), tls.begin(), tls.end());
    argv.push_back("--insecure");
    if (!opts_.password.empty())
      argv.insert(argv.end(), {"--no-auth-warning", "-a", opts_.password});
    argv.push_back("PING");
    return run_program(argv, 10s).output.find("PONG") != std::string::npos;
  }
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port_));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    std::string cmd = "PING\r\n";
    if (!opts_.password.empty()) cmd = "AUTH " + opts_.password + "\r\nPING\r\n";
    if (::write(fd, cmd.data(), cmd.size()) == static_cast<ssize_t>(cmd.size())) {
      std::string got;
      char buf[256];
      while (got.find("PONG") == std::string::npos && got.find("-") == std::string::npos) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        got.append(buf, static_cast<size_t>(n));
      }
      ok = got.find("+PONG") != std::string::npos;
    }
  }
  ::close(fd);
  return ok;
}

void RedisServer::kill_hard() {
  proc_.kill_hard();
}

void RedisServer::stop() {
  proc_.stop(3000ms);
}

std::string RedisServer::cli(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"redis-cli", "-h", "127.0.0.1", "-p", std::to_string(port_)};
  auto tls = tls_cli_args();
  argv.insert(argv.end(), tls.begin(), tls.end());
  if (!opts_.password.empty()) argv.insert(argv.end(), {"--no-auth-warning", "-a", opts_.password});
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run_program(argv, 10s);
  if (!r.output.empty() && r.output.back() == '\n') r.output.pop_back();
  return r.output;
}

}  // namespace celeriac::tq::test
