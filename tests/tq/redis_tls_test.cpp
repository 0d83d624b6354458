// rediss://: the Redis transport over TLS against a real redis-server
// started with --tls-port (certificates from the openssl CLI at test time).
// URL options as redis-py/Celery spell them, each refusal (wrong CA, wrong
// host name, expired certificate, missing client certificate, plaintext on
// either side), a celeriac broker + backend + worker end to end, `celery
// inspect ping` and a real Python Celery client calling the C++ worker.
#include <gtest/gtest.h>

#include <string>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/redis/broker.hpp"
#include "celeriac/redis/connection.hpp"
#include "celeriac/redis/url.hpp"
#include "celeriac/tq/worker.hpp"
#include "support/celery_process.hpp"
#include "support/redis_server.hpp"
#include "support/tls_certs.hpp"

namespace tq = celeriac::tq;
namespace r = celeriac::tq::redis;
using celeriac::tq::test::CertPair;
using celeriac::tq::test::PyCall;
using celeriac::tq::test::RedisServer;
using celeriac::tq::test::TlsCerts;
using tq::Json;
using namespace std::chrono_literals;

namespace {

const TlsCerts& certs() {
  static TlsCerts c;
  return c;
}

RedisServer::Tls tls_server(const CertPair& pair) {
  RedisServer::Tls t;
  t.cert = pair.cert.string();
  t.key = pair.key.string();
  t.ca = certs().ca().string();
  return t;
}

std::string rediss(const RedisServer& s, const std::string& host, const std::string& query) {
  return "rediss://" + host + ":" + std::to_string(s.port()) + "/0?" + query;
}

// Connecting with `url` must fail with E; returns its message.
template <class E>
std::string refused(const std::string& url) {
  try {
    auto c = r::Connection::connect(url);
    c.command({"PING"});
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << url << " was not refused";
  return "";
}

}  // namespace

TEST(RedisTlsUrl, ParsesRedisPySslOptions) {
  auto u = r::Url::parse(
      "rediss://:s3cret@cache.example:6380/2?ssl_cert_reqs=CERT_REQUIRED&ssl_ca_certs=/ca.pem"
      "&ssl_certfile=/c.pem&ssl_keyfile=/c.key&visibility_timeout=10");
  EXPECT_TRUE(u.tls);
  EXPECT_EQ(u.host, "cache.example");
  EXPECT_EQ(u.port, 6380);
  EXPECT_EQ(u.db, 2);
  EXPECT_EQ(u.tls_settings.cert_reqs, r::CertReqs::required);
  EXPECT_EQ(u.tls_settings.ca_certs, "/ca.pem");
  EXPECT_EQ(u.tls_settings.certfile, "/c.pem");
  EXPECT_EQ(u.tls_settings.keyfile, "/c.key");
  EXPECT_TRUE(u.tls_settings.check_hostname);
  EXPECT_EQ(u.str(), "rediss://:***@cache.example:6380/2");
  for (auto [text, want] :
       {std::pair{"none", r::CertReqs::none}, std::pair{"CERT_NONE", r::CertReqs::none},
        std::pair{"optional", r::CertReqs::optional},
        std::pair{"CERT_OPTIONAL", r::CertReqs::optional},
        std::pair{"required", r::CertReqs::required}}) {
    auto v = r::Url::parse(std::string("rediss://h/0?ssl_cert_reqs=") + text);
    EXPECT_EQ(v.tls_settings.cert_reqs, want) << text;
  }
  EXPECT_FALSE(r::Url::parse("rediss://h?ssl_check_hostname=false").tls_settings.check_hostname);
  EXPECT_FALSE(r::Url::parse("redis://h/0?ssl_cert_reqs=none").tls);  // plain: options unused
  EXPECT_EQ(r::Url::parse("rediss://h").tls_settings.cert_reqs, r::CertReqs::required);
}

TEST(RedisTlsUrl, BadOptionsAreNamedAndThePasswordIsNot) {
  for (const std::string url : {"rediss://:hunter2@h/0?ssl_cert_reqs=maybe",
                                "rediss://:hunter2@h/0?ssl_check_hostname=perhaps",
                                "rediss://:hunter2@h/0?ssl_keyfile=/k.pem",
                                "redisss://:hunter2@h/0", "rediss://:hunter2@h:notaport/0"}) {
    try {
      r::Url::parse(url);
      ADD_FAILURE() << url << " was accepted";
    } catch (const r::UrlError& e) {
      std::string what = e.what();
      EXPECT_EQ(what.find("hunter2"), std::string::npos) << what;
      EXPECT_NE(what.find(":***@h"), std::string::npos) << what;
    }
  }
  try {
    r::Url::parse("rediss://h/0?ssl_cert_reqs=maybe");
  } catch (const r::UrlError& e) {
    EXPECT_NE(std::string(e.what()).find("ssl_cert_reqs='maybe'"), std::string::npos) << e.what();
  }
  // The tq URL path (broker, backend, control) reads the same options.
  EXPECT_THROW(r::to_redis_url(tq::Url::parse("rediss://h/0?ssl_cert_reqs=maybe")), r::UrlError);
  auto via_tq = r::to_redis_url(tq::Url::parse("rediss://h:7/3?ssl_ca_certs=%2Ftmp%2Fca.pem"));
  EXPECT_TRUE(via_tq.tls);
  EXPECT_EQ(via_tq.tls_settings.ca_certs, "/tmp/ca.pem");
  EXPECT_EQ(via_tq.db, 3);
}

TEST(RedisTls, CommandsPipelinesAndLargeValuesOverTls) {
  RedisServer::Options so;
  so.password = "pa ss";
  RedisServer server(so, tls_server(certs().server()));
  auto c = r::Connection::connect(server.url());
  EXPECT_EQ(c.describe().find("pa ss"), std::string::npos);
  EXPECT_EQ(c.command({"PING"}).str(), "PONG");
  std::string big(3 * 1024 * 1024 + 7, 'v');  // many TLS records each way
  big[12345] = 'X';
  c.command({"SET", "big", big});
  EXPECT_EQ(c.command({"GET", "big"}).str(), big);
  r::Pipeline p;
  for (int i = 0; i < 100; ++i) p.add({"RPUSH", "list", std::to_string(i)});
  auto replies = c.execute(p);
  ASSERT_EQ(replies.size(), 100u);
  EXPECT_EQ(replies.back().integer(), 100);
  EXPECT_EQ(server.cli({"LLEN", "list"}), "100");
  // A host name (SNI + name check) works as well as the IP address.
  auto by_name = r::Connection::connect(
      rediss(server, ":pa%20ss@localhost",
             "ssl_cert_reqs=required&ssl_ca_certs=" + certs().ca().string()));
  EXPECT_EQ(by_name.command({"GET", "big"}).str().size(), big.size());
}

TEST(RedisTls, UntrustedWrongHostAndExpiredCertificatesAreRefused) {
  RedisServer good({}, tls_server(certs().server()));
  std::string what = refused<r::TlsError>(
      rediss(good, ":hunter2@127.0.0.1", "ssl_ca_certs=" + certs().other_ca().string()));
  EXPECT_NE(what.find("certificate verify failed"), std::string::npos) << what;
  EXPECT_NE(what.find("127.0.0.1:" + std::to_string(good.port())), std::string::npos) << what;
  EXPECT_EQ(what.find("hunter2"), std::string::npos) << what;
  // ssl_cert_reqs=none: encrypted, nothing verified (redis-py's CERT_NONE).
  auto insecure = r::Connection::connect(
      rediss(good, "127.0.0.1", "ssl_cert_reqs=none&ssl_ca_certs=" + certs().other_ca().string()));
  EXPECT_EQ(insecure.command({"PING"}).str(), "PONG");

  RedisServer wrong({}, tls_server(certs().wrong_host()));
  std::string ca = "ssl_ca_certs=" + certs().ca().string();
  what = refused<r::TlsError>(rediss(wrong, "localhost", ca));
  EXPECT_NE(what.find("not valid for 'localhost'"), std::string::npos) << what;
  auto unchecked =
      r::Connection::connect(rediss(wrong, "localhost", ca + "&ssl_check_hostname=false"));
  EXPECT_EQ(unchecked.command({"PING"}).str(), "PONG");

  RedisServer expired({}, tls_server(certs().expired()));
  what = refused<r::TlsError>(rediss(expired, "127.0.0.1", ca));
  EXPECT_NE(what.find("certificate has expired"), std::string::npos) << what;
  // connect_with_retry gives up on a refused certificate instead of retrying.
  EXPECT_THROW(r::connect_with_retry(r::Url::parse(rediss(expired, "127.0.0.1", ca)),
                                     std::chrono::steady_clock::now() + 60s),
               r::TlsError);
}

TEST(RedisTls, ClientCertificatesAndPlaintextMismatches) {
  auto t = tls_server(certs().server());
  t.require_client_cert = true;
  t.client_cert = certs().client().cert.string();
  t.client_key = certs().client().key.string();
  RedisServer server({}, t);
  auto c = r::Connection::connect(server.url());  // url() carries ssl_certfile/ssl_keyfile
  EXPECT_EQ(c.command({"PING"}).str(), "PONG");
  // Without a client certificate the server ends the session (TLS 1.3: the
  // client learns it from the alert on its first read).
  std::string what = refused<r::ConnectionError>(
      rediss(server, "127.0.0.1", "ssl_ca_certs=" + certs().ca().string()));
  EXPECT_NE(what.find("127.0.0.1:" + std::to_string(server.port())), std::string::npos) << what;
  // Plain redis:// to the TLS port: the server hangs up on the bytes.
  r::ConnectOptions quick;
  quick.io_timeout = 5s;
  try {
    auto plain =
        r::Connection::connect("redis://127.0.0.1:" + std::to_string(server.port()) + "/0", quick);
    plain.command({"PING"});
    ADD_FAILURE() << "plaintext PING answered on a TLS port";
  } catch (const r::ConnectionError&) {
  } catch (const r::TimeoutError&) {
  }
  // rediss:// to a plaintext server: Redis waits for the end of an inline
  // command that never comes, so the handshake runs out of time.
  RedisServer plain_server;
  r::ConnectOptions short_connect;
  short_connect.connect_timeout = 1s;
  try {
    r::Connection::connect(
        rediss(plain_server, "127.0.0.1", "ssl_ca_certs=" + certs().ca().string()), short_connect);
    ADD_FAILURE() << "a TLS handshake with a plaintext server succeeded";
  } catch (const r::TimeoutError& e) {
    EXPECT_NE(std::string(e.what()).find("TLS handshake timed out"), std::string::npos) << e.what();
  }
}

namespace {

void register_tasks(tq::App& app) {
  app.task("tasks.add", {"x", "y"}, [](std::int64_t x, std::int64_t y) { return x + y; });
  app.task("tasks.echo", {"value"}, [](Json v) { return v; });
  app.task("tasks.whoami", {}, [] { return std::string("cpp"); });
}

tq::WorkerOptions worker_options() {
  tq::WorkerOptions o;
  o.hostname = "cpp@celeriac-tls";
  o.concurrency = 2;
  o.poll_interval = 200ms;
  return o;
}

}  // namespace

TEST(RedisTls, BrokerBackendAndWorkerEndToEnd) {
  RedisServer server({}, tls_server(certs().server()));
  tq::App app(server.url(), server.url());
  auto add =
      app.task("tasks.add", {"x", "y"}, [](std::int64_t x, std::int64_t y) { return x + y; });
  tq::Worker worker(app, worker_options());
  worker.start();
  std::vector<tq::AsyncResult<std::int64_t>> results;
  for (std::int64_t i = 0; i < 50; ++i) results.push_back(add.delay(i, 1000));
  for (std::int64_t i = 0; i < 50; ++i) EXPECT_EQ(results[i].get(30s), i + 1000);
  // Remote control over rediss:// too: Celery's own CLI pings the C++ worker.
  auto ping = tq::test::run_celery_cli(
      server.url(), {"inspect", "ping", "-d", "cpp@celeriac-tls", "--timeout", "10"});
  EXPECT_EQ(ping.exit_code, 0) << ping.output;
  EXPECT_NE(ping.output.find("cpp@celeriac-tls: OK"), std::string::npos) << ping.output;
  worker.stop();
  worker.wait(20s);
  EXPECT_EQ(worker.counters().succeeded, 50u);
}

TEST(RedisTls, PythonCeleryClientCallsCppWorkerOverRediss) {
  RedisServer server({}, tls_server(certs().server()));
  tq::App app(server.url(), server.url());
  register_tasks(app);
  tq::Worker worker(app, worker_options());
  worker.start();
  // Celery/kombu/redis-py read ssl_cert_reqs and ssl_ca_certs from the same URL.
  auto out = tq::test::run_python_client(
      server.url(), {PyCall{"tasks.add", {2, 3}}, PyCall{"tasks.echo", {Json{{"k", "v\u00e9"}}}},
                     PyCall{"tasks.whoami"}});
  ASSERT_EQ(out.size(), 3u) << out.dump();
  for (auto& o : out) EXPECT_EQ(o["state"], "SUCCESS") << o.dump();
  EXPECT_EQ(out[0]["result"], 5);
  EXPECT_EQ(out[1]["result"], (Json{{"k", "v\u00e9"}}));
  EXPECT_EQ(out[2]["result"], "cpp");
  worker.stop();
  worker.wait(20s);
}
