// amqps://: the broker, the rpc:// backend and a worker over rabbitmq-c's
// TLS socket to the private node's TLS listener (test certificates made at
// test time), and each refusal with a clear error that never shows the password.
#include <gtest/gtest.h>

#include "amqp_env.hpp"
#include "celeriac/tq/amqp/broker.hpp"
#include "celeriac/tq/amqp/detail/connection.hpp"
#include "celeriac/tq/app.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/message.hpp"
#include "celeriac/tq/worker.hpp"

namespace tq = celeriac::tq;
namespace amqp = celeriac::tq::amqp;
using celeriac::tq::test::rabbit;
using celeriac::tq::test::rabbit_certs;
using celeriac::tq::test::unique_queue;
using tq::Json;
using namespace std::chrono_literals;

namespace {

std::string with_ca(const std::filesystem::path& ca) {
  return "?ssl_ca_certs=" + ca.string();
}

std::string task(const std::string& id, const std::string& queue) {
  tq::TaskMessage m;
  m.id = id;
  m.task = "tasks.add";
  m.args = Json::array({2, 3});
  m.queue = queue;
  return tq::encode(m);
}

// The BrokerError a connection to `url` fails with ("" when it connects).
std::string connect_error(const std::string& url) {
  amqp::detail::Connection c(amqp::detail::Endpoint::from_url(tq::Url::parse(url)));
  try {
    c.open();
  } catch (const tq::BrokerError& e) {
    return e.what();
  }
  return "";
}

// An amqps URL whose password must never show: the handshake fails before login.
std::string secret_url(int port, const std::string& query) {
  return "amqps://celeriac:Sup3r-S3cret-Pw@127.0.0.1:" + std::to_string(port) + "//" + query;
}

}  // namespace

TEST(AmqpTls, BrokerRoundTripOverAmqps) {
  auto q = unique_queue("tls");
  amqp::AmqpBroker b(tq::Url::parse(rabbit().tls_url(with_ca(rabbit_certs().ca()))));
  b.publish(q, 0, task("tls-1", q));
  std::vector<std::string> qs{q};
  std::vector<tq::Delivery> got;
  for (int i = 0; i < 40 && got.empty(); ++i) got = b.reserve(qs, 1, 500ms);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(tq::decode(got[0].envelope).id, "tls-1");
  b.ack(got[0]);
  EXPECT_EQ(b.queue_length(q), 0u);
}

TEST(AmqpTls, CaDirectoryAndVerificationOffConnect) {
  EXPECT_EQ(connect_error(rabbit().tls_url(with_ca(rabbit_certs().ca_dir()))), "");
  EXPECT_EQ(connect_error(rabbit().tls_url("?ssl_cert_reqs=none")), "");
  // The host name checked against the certificate's DNS names.
  EXPECT_EQ(connect_error("amqps://guest:guest@localhost:" + std::to_string(rabbit().tls_port()) +
                          "//" + with_ca(rabbit_certs().ca())),
            "");
}

TEST(AmqpTls, ClientCertificateIsAccepted) {
  auto& c = rabbit_certs();
  EXPECT_EQ(
      connect_error(rabbit().tls_url(with_ca(c.ca()) + "&ssl_certfile=" + c.client().cert.string() +
                                     "&ssl_keyfile=" + c.client().key.string())),
      "");
}

TEST(AmqpTls, WrongCaIsAClearErrorWithoutThePassword) {
  std::string e =
      connect_error(secret_url(rabbit().tls_port(), with_ca(rabbit_certs().other_ca())));
  EXPECT_NE(e.find("certificate verify failed"), std::string::npos) << e;
  EXPECT_NE(e.find("127.0.0.1:" + std::to_string(rabbit().tls_port())), std::string::npos) << e;
  EXPECT_NE(e.find("ssl_ca_certs"), std::string::npos) << e;
  EXPECT_EQ(e.find("Sup3r-S3cret-Pw"), std::string::npos) << e;
  // The broker built on it reports the same on first use.
  amqp::AmqpBroker b(
      tq::Url::parse(secret_url(rabbit().tls_port(), with_ca(rabbit_certs().other_ca()))));
  try {
    b.publish("tls-never", 0, task("x", "tls-never"));
    ADD_FAILURE() << "published through an untrusted broker";
  } catch (const tq::BrokerError& err) {
    std::string what = err.what();
    EXPECT_NE(what.find("certificate verify failed"), std::string::npos) << what;
    EXPECT_EQ(what.find("Sup3r-S3cret-Pw"), std::string::npos) << what;
  }
}

TEST(AmqpTls, TlsToThePlainPortAndBadFilesAreClearErrors) {
  std::string plain = connect_error(secret_url(rabbit().port(), with_ca(rabbit_certs().ca())));
  EXPECT_NE(plain.find("TLS handshake with 127.0.0.1"), std::string::npos) << plain;
  EXPECT_EQ(plain.find("Sup3r-S3cret-Pw"), std::string::npos) << plain;
  std::string missing =
      connect_error(secret_url(rabbit().tls_port(), "?ssl_ca_certs=/nonexistent/ca.pem"));
  EXPECT_NE(missing.find("cannot read ssl_ca_certs '/nonexistent/ca.pem'"), std::string::npos)
      << missing;
  EXPECT_EQ(missing.find("Sup3r-S3cret-Pw"), std::string::npos) << missing;
}

TEST(AmqpTls, BadTlsOptionsNameTheOptionAndHideThePassword) {
  for (const char* query :
       {"?ssl_cert_reqs=sometimes", "?ssl_check_hostname=perhaps", "?ssl_keyfile=/k.pem"}) {
    try {
      amqp::detail::Endpoint::from_url(tq::Url::parse(secret_url(5671, query)));
      ADD_FAILURE() << query << " accepted";
    } catch (const tq::ConfigError& e) {
      std::string what = e.what();
      std::string key = std::string(query).substr(1, std::string(query).find('=') - 1);
      EXPECT_NE(what.find(key), std::string::npos) << what;
      EXPECT_EQ(what.find("Sup3r-S3cret-Pw"), std::string::npos) << what;
    }
  }
  auto ep = amqp::detail::Endpoint::from_url(tq::Url::parse("amqps://u:p@broker.example"));
  EXPECT_TRUE(ep.tls.enabled);
  EXPECT_EQ(ep.port, 5671);  // kombu's default TLS port
  EXPECT_FALSE(amqp::detail::Endpoint::from_url(tq::Url::parse("amqp://h")).tls.enabled);
}

TEST(AmqpTls, WorkerAndRpcResultsOverAmqps) {
  auto q = unique_queue("tls-worker");
  tq::App app(rabbit().tls_url(with_ca(rabbit_certs().ca())), "rpc://");
  app.task("tasks.add", {"x", "y"}, [](std::int64_t x, std::int64_t y) { return x + y; });
  tq::WorkerOptions o;
  o.hostname = "cpp-amqps@celeriac-test";
  o.queues = {q};
  o.concurrency = 2;
  tq::Worker worker(app, o);
  worker.start();
  tq::CallOptions on_q;
  on_q.queue = q;
  EXPECT_EQ(app.send_task("tasks.add", {40, 2}, Json::object(), on_q).get(30s), 42);
  worker.stop();
  EXPECT_TRUE(worker.wait(30s));
}

// Nodes of their own, serving a certificate the client must refuse.
TEST(AmqpTls, WrongHostNameIsRefusedNamingTheHost) {
  const auto& certs = rabbit_certs();
  celeriac::tq::test::RabbitMqServer node(&certs, &certs.wrong_host());
  std::string e = connect_error(secret_url(node.tls_port(), with_ca(certs.ca())));
  EXPECT_NE(e.find("certificate verify failed"), std::string::npos) << e;
  EXPECT_NE(e.find("not valid for '127.0.0.1'"), std::string::npos) << e;
  EXPECT_NE(e.find("ssl_check_hostname"), std::string::npos) << e;
  EXPECT_EQ(e.find("Sup3r-S3cret-Pw"), std::string::npos) << e;
  // The same through a broker, and by name (the certificate names neither).
  amqp::AmqpBroker b(tq::Url::parse("amqps://celeriac:Sup3r-S3cret-Pw@localhost:" +
                                    std::to_string(node.tls_port()) + "//" + with_ca(certs.ca())));
  try {
    b.queue_length("never");
    ADD_FAILURE() << "a certificate for another host was accepted";
  } catch (const tq::BrokerError& err) {
    std::string what = err.what();
    EXPECT_NE(what.find("not valid for 'localhost'"), std::string::npos) << what;
    EXPECT_EQ(what.find("Sup3r-S3cret-Pw"), std::string::npos) << what;
  }
  // ssl_check_hostname=false: the chain is still verified, the name is not.
  EXPECT_EQ(connect_error(node.tls_url(with_ca(certs.ca()) + "&ssl_check_hostname=false")), "");
}

TEST(AmqpTls, ExpiredCertificateIsRefusedSayingSo) {
  const auto& certs = rabbit_certs();
  celeriac::tq::test::RabbitMqServer node(&certs, &certs.expired());
  std::string e = connect_error(secret_url(node.tls_port(), with_ca(certs.ca())));
  EXPECT_NE(e.find("certificate verify failed: the broker's certificate has expired"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("127.0.0.1:" + std::to_string(node.tls_port())), std::string::npos) << e;
  EXPECT_EQ(e.find("Sup3r-S3cret-Pw"), std::string::npos) << e;
  // Verification off (ssl_cert_reqs=none) connects: encrypted, unchecked.
  EXPECT_EQ(connect_error(node.tls_url("?ssl_cert_reqs=none")), "");
}
