// Test support: a throwaway PKI made with the `openssl` CLI at test time, in
// a private temp dir: a CA, a server certificate for localhost/127.0.0.1, a
// client certificate, an expired server certificate, one for the wrong host
// name, and a second CA that signed none of them.
#pragma once

#include <filesystem>
#include <string>

#include "process.hpp"

namespace celeriac::tq::test {

/// A certificate file and its private key (PEM).
struct CertPair {
  std::filesystem::path cert;
  std::filesystem::path key;
};

/// Generates every file in the constructor (a few openssl runs, EC P-256 keys);
/// std::runtime_error with openssl's output if a step fails. Removed with the dir.
class TlsCerts {
 public:
  TlsCerts();
  TlsCerts(const TlsCerts&) = delete;
  TlsCerts& operator=(const TlsCerts&) = delete;

  /// The CA that signed server, client, expired and wrong_host (PEM).
  const std::filesystem::path& ca() const { return ca_.cert; }
  /// A directory holding ca() under its `openssl rehash` name (capath).
  const std::filesystem::path& ca_dir() const { return ca_dir_; }
  /// Another CA, which signed nothing here (the "wrong CA").
  const std::filesystem::path& other_ca() const { return other_ca_.cert; }
  /// Valid for DNS:localhost and IP:127.0.0.1.
  const CertPair& server() const { return server_; }
  /// A client certificate (CN=celeriac-test-client, clientAuth).
  const CertPair& client() const { return client_; }
  /// For localhost/127.0.0.1 but valid only in January 2020.
  const CertPair& expired() const { return expired_; }
  /// Valid, but for DNS:wrong.example / IP:10.9.9.9 only.
  const CertPair& wrong_host() const { return wrong_host_; }
  /// The directory holding everything.
  const std::filesystem::path& dir() const { return dir_.path(); }

 private:
  CertPair make_ca(const std::string& name, const std::string& cn);
  CertPair make_signed(const std::string& name, const std::string& cn, const std::string& ext);
  CertPair make_expired();
  TempDir dir_;
  CertPair ca_, other_ca_, server_, client_, expired_, wrong_host_;
  std::filesystem::path ca_dir_;
};

}  // namespace celeriac::tq::test
