#include "tls_certs.hpp"

#include <fstream>
#include <stdexcept>
#include <vector>

namespace celeriac::tq::test {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kEcKey = {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                                         "-nodes"};

// Runs openssl with `args` in `cwd`; returns its output, throws on failure.
std::string openssl(std::vector<std::string> args, const fs::path& cwd) {
  args.insert(args.begin(), "openssl");
  auto r = run_program(args, 30s, {}, cwd);
  if (r.exit_code != 0) {
    std::string cmd;
    for (auto& a : args) cmd += a + " ";
    throw std::runtime_error("tls_certs: '" + cmd + "' failed:\n" + r.output);
  }
  return r.output;
}

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TlsCerts::TlsCerts() : dir_("celeriac-tls") {
  ca_ = make_ca("ca", "celeriac test CA");
  other_ca_ = make_ca("other-ca", "celeriac other CA");
  server_ = make_signed("server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1");
  client_ = make_signed("client", "celeriac-test-client", "extendedKeyUsage=clientAuth");
  wrong_host_ =
      make_signed("wrong-host", "wrong.example", "subjectAltName=DNS:wrong.example,IP:10.9.9.9");
  expired_ = make_expired();
  // A capath directory: the CA under its subject hash, as `openssl rehash` names it.
  ca_dir_ = dir() / "ca-dir";
  fs::create_directory(ca_dir_);
  std::string hash = openssl({"x509", "-hash", "-noout", "-in", ca_.cert.string()}, dir());
  while (!hash.empty() && (hash.back() == '\n' || hash.back() == '\r')) hash.pop_back();
  fs::copy_file(ca_.cert, ca_dir_ / (hash + ".0"));
}

CertPair TlsCerts::make_ca(const std::string& name, const std::string& cn) {
  CertPair p{dir() / (name + ".pem"), dir() / (name + ".key")};
  openssl(
      concat({"req", "-x509"},
             concat(kEcKey, {"-keyout", p.key.string(), "-out", p.cert.string(), "-days", "3",
                             "-subj", "/CN=" + cn, "-addext", "basicConstraints=critical,CA:TRUE",
                             "-addext", "keyUsage=critical,keyCertSign,cRLSign"})),
      dir());
  return p;
}

CertPair TlsCerts::make_signed(const std::string& name, const std::string& cn,
                               const std::string& ext) {
  CertPair p{dir() / (name + ".pem"), dir() / (name + ".key")};
  openssl(
      concat({"req", "-x509"}, concat(kEcKey, {"-keyout", p.key.string(), "-out", p.cert.string(),
                                               "-days", "3", "-subj", "/CN=" + cn, "-addext", ext,
                                               "-addext", "basicConstraints=CA:FALSE", "-CA",
                                               ca_.cert.string(), "-CAkey", ca_.key.string()})),
      dir());
  return p;
}

// `openssl req` cannot date a certificate in the past; `openssl ca` can.
CertPair TlsCerts::make_expired() {
  CertPair p{dir() / "expired.pem", dir() / "expired.key"};
  fs::path db = dir() / "ca-db";
  fs::create_directory(db);
  std::ofstream(db / "index.txt").close();
  std::ofstream(dir() / "ca.cnf") << "[ca]\ndefault_ca = test_ca\n[test_ca]\n"
                                  << "database = " << (db / "index.txt").string() << "\n"
                                  << "new_certs_dir = " << db.string() << "\n"
                                  << "serial = " << (db / "serial").string() << "\n"
                                  << "rand_serial = yes\ndefault_md = sha256\npolicy = any\n"
                                  << "copy_extensions = copy\nunique_subject = no\n"
                                  << "[any]\ncommonName = supplied\n";
  fs::path csr = dir() / "expired.csr";
  openssl(concat({"req"}, concat(kEcKey, {"-keyout", p.key.string(), "-out", csr.string(), "-subj",
                                          "/CN=localhost", "-addext",
                                          "subjectAltName=DNS:localhost,IP:127.0.0.1"})),
          dir());
  openssl({"ca", "-batch", "-notext", "-config", (dir() / "ca.cnf").string(), "-cert",
           ca_.cert.string(), "-keyfile", ca_.key.string(), "-startdate", "20200101000000Z",
           "-enddate", "20200201000000Z", "-in", csr.string(), "-out", p.cert.string()},
          dir());
  return p;
}

}  // namespace celeriac::tq::test
