#include "celeriac/mp/detail/channel.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "celeriac/mp/errors.hpp"

namespace celeriac::mp::detail {

namespace {
constexpr std::size_t kMaxFdsPerFrame = 250;
constexpr std::size_t kCmsgFds = 64;
// Largest read fill() prepares for beyond what is already buffered.
constexpr std::size_t kMaxReadAhead = std::size_t{1} << 20;

// Bytes of the frame that follow its header in the stream.
std::size_t inline_len(const FrameHeader& h) noexcept {
  return (h.flags & kPayloadInFd) ? 0 : h.len;
}

// A memfd holding p1 followed by p2, or -1 (the caller then sends inline).
// write() fills the pages inside the kernel: no page faults here.
int payload_memfd(std::string_view p1, std::string_view p2) noexcept {
  int fd = ::memfd_create("celeriac-mp-payload", MFD_CLOEXEC);
  if (fd < 0) return -1;
  std::string_view parts[2] = {p1, p2};
  off_t at = 0;
  for (auto part : parts) {
    while (!part.empty()) {
      ssize_t w = ::pwrite(fd, part.data(), part.size(), at);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        ::close(fd);
        return -1;
      }
      part.remove_prefix(static_cast<std::size_t>(w));
      at += w;
    }
  }
  return fd;
}
}  // namespace

void throw_errno(const std::string& what) {
  int err = errno;
  throw SystemError("celeriac::mp: " + what + ": " + std::strerror(err), err);
}

int make_socketpair(int fds[2]) {
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) throw_errno("socketpair");
  return 0;
}

// ---- Frame -------------------------------------------------------------------

Frame::Frame(Frame&& o) noexcept
    : kind(o.kind),
      id(o.id),
      payload(std::move(o.payload)),
      fds(std::move(o.fds)),
      mapped_(std::exchange(o.mapped_, nullptr)),
      mapped_len_(std::exchange(o.mapped_len_, 0)) {
  o.fds.clear();
}
Frame& Frame::operator=(Frame&& o) noexcept {
  if (this != &o) {
    reset();
    kind = o.kind;
    id = o.id;
    payload = std::move(o.payload);
    fds = std::move(o.fds);
    o.fds.clear();
    mapped_ = std::exchange(o.mapped_, nullptr);
    mapped_len_ = std::exchange(o.mapped_len_, 0);
  }
  return *this;
}
Frame::~Frame() {
  reset();
}
void Frame::reset() {
  for (int fd : fds)
    if (fd >= 0) ::close(fd);
  fds.clear();
  payload.clear();
  if (mapped_) ::munmap(const_cast<char*>(mapped_), mapped_len_);
  mapped_ = nullptr;
  mapped_len_ = 0;
}
std::string Frame::take_body() {
  if (!mapped_) return std::move(payload);
  return std::string(body());
}
bool Frame::map_payload(int memfd, std::size_t len) noexcept {
  if (memfd < 0) return false;
  // MAP_POPULATE maps the sender's pages in one go instead of a fault each.
  void* p = ::mmap(nullptr, len, PROT_READ, MAP_SHARED | MAP_POPULATE, memfd, 0);
  ::close(memfd);
  if (p == MAP_FAILED) return false;
  mapped_ = static_cast<const char*>(p);
  mapped_len_ = len;
  return true;
}

// ---- ByteBuffer -------------------------------------------------------------

void ByteBuffer::consume(std::size_t n) noexcept {
  begin_ += n;
  if (begin_ == end_) begin_ = end_ = 0;
}

char* ByteBuffer::prepare(std::size_t n) {
  if (cap_ - end_ >= n) return buf_.get() + end_;
  std::size_t live = end_ - begin_;
  if (begin_ > 0 && cap_ - live >= n && live < cap_ / 2) {
    std::memmove(buf_.get(), buf_.get() + begin_, live);
    begin_ = 0;
    end_ = live;
    return buf_.get() + end_;
  }
  std::size_t cap = std::max<std::size_t>({cap_ * 2, live + n, 4096});
  std::unique_ptr<char[]> nb(new char[cap]);
  if (live) std::memcpy(nb.get(), buf_.get() + begin_, live);
  buf_ = std::move(nb);
  cap_ = cap;
  begin_ = 0;
  end_ = live;
  return buf_.get() + end_;
}

void ByteBuffer::append(const void* p, std::size_t n) {
  if (n == 0) return;
  std::memcpy(prepare(n), p, n);
  commit(n);
}

// ---- Channel -----------------------------------------------------------------

Channel::Channel(int fd) : fd_(fd) {
  int flags = ::fcntl(fd_, F_GETFL);
  if (flags < 0 || ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK) < 0) throw_errno("fcntl(O_NONBLOCK)");
}

Channel::Channel(Channel&& o) noexcept {
  *this = std::move(o);
}

Channel& Channel::operator=(Channel&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
    out_ = std::move(o.out_);
    sent_ = o.sent_;
    queued_ = o.queued_;
    attachments_ = std::move(o.attachments_);
    in_ = std::move(o.in_);
    in_fds_ = std::move(o.in_fds_);
    o.out_.clear();
    o.in_.clear();
  }
  return *this;
}

Channel::~Channel() {
  close();
}

void Channel::close() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  for (auto& a : attachments_)
    for (int f : a.fds) ::close(f);
  attachments_.clear();
  for (int f : in_fds_) ::close(f);
  in_fds_.clear();
  out_.clear();
  in_.clear();
}

void Channel::shutdown_write() noexcept {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void Channel::enqueue(std::uint8_t kind, std::uint64_t id, std::string_view p1, std::string_view p2,
                      std::vector<int>* fds) {
  std::size_t nfds = fds ? fds->size() : 0;
  if (nfds + 1 > kMaxFdsPerFrame)
    throw SerializationError("celeriac::mp: too many descriptors in one message");
  std::size_t len = p1.size() + p2.size();
  if (len > 0xffffffffu)
    throw SerializationError("celeriac::mp: message larger than 4 GiB; use SharedArray");
  FrameHeader h{static_cast<std::uint32_t>(len), kind, static_cast<std::uint8_t>(nfds), 0, id};
  std::vector<int> attached;
  if (fds) attached = std::exchange(*fds, {});
  // Not for Pipe/Queue messages (kData): their writers rely on the socket
  // buffer filling up when nobody reads (back-pressure, send timeouts).
  // Pool frames are bounded by the pool's prefetch instead.
  int memfd = kind != kData && len >= kSharedPayloadMin ? payload_memfd(p1, p2) : -1;
  if (memfd >= 0) {
    attached.push_back(memfd);
    h.flags = kPayloadInFd;
    h.nfds = static_cast<std::uint8_t>(attached.size());
  }
  if (!attached.empty()) attachments_.push_back(Attachment{queued_, std::move(attached)});
  out_.append(&h, sizeof h);
  const std::size_t body = inline_len(h);
  if (body) {
    out_.append(p1.data(), p1.size());
    out_.append(p2.data(), p2.size());
  }
  queued_ += sizeof h + body;
}

bool Channel::flush() {
  while (out_.size()) {
    std::size_t n = out_.size();
    std::vector<int>* fds = nullptr;
    if (!attachments_.empty()) {
      auto& a = attachments_.front();
      if (a.offset == sent_) {
        fds = &a.fds;
        if (attachments_.size() > 1) n = std::min<std::size_t>(n, attachments_[1].offset - sent_);
      } else {
        n = std::min<std::size_t>(n, a.offset - sent_);
      }
    }
    ssize_t w;
    if (fds) {
      iovec iov{out_.data(), n};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      std::vector<char> ctl(CMSG_SPACE(sizeof(int) * fds->size()));
      msg.msg_control = ctl.data();
      msg.msg_controllen = ctl.size();
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds->size());
      std::memcpy(CMSG_DATA(c), fds->data(), sizeof(int) * fds->size());
      w = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    } else {
      w = ::send(fd_, out_.data(), n, MSG_NOSIGNAL);
    }
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
      if (errno == EPIPE || errno == ECONNRESET)
        throw ConnectionClosed("celeriac::mp: the other end of the channel is closed");
      throw_errno("send");
    }
    if (fds) {
      for (int f : *fds) ::close(f);
      attachments_.pop_front();
    }
    out_.consume(static_cast<std::size_t>(w));
    sent_ += static_cast<std::uint64_t>(w);
  }
  return true;
}

bool Channel::fill() {
  for (;;) {
    std::size_t want = 64 * 1024;
    if (in_.size() >= sizeof(FrameHeader)) {
      FrameHeader h;
      std::memcpy(&h, in_.data(), sizeof h);
      std::size_t total = sizeof h + inline_len(h);
      // Grow toward the frame's length, but never ahead of the bytes that
      // arrived: a header claiming 4 GiB must not allocate 4 GiB (at most
      // the buffered size again per read, so big frames still take O(log n)
      // reallocations).
      if (total > in_.size())
        want = std::max(want, std::min(total - in_.size(), std::max(in_.size(), kMaxReadAhead)));
    }
    char* dst = in_.prepare(want);
    iovec iov{dst, want};
    alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * kCmsgFds)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl;
    msg.msg_controllen = sizeof ctl;
    ssize_t r = ::recvmsg(fd_, &msg, MSG_CMSG_CLOEXEC);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      if (errno == ECONNRESET) return false;
      throw_errno("recvmsg");
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        std::size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const unsigned char* p = CMSG_DATA(c);
        for (std::size_t i = 0; i < k; ++i) {
          int f;
          std::memcpy(&f, p + i * sizeof(int), sizeof f);
          in_fds_.push_back(f);
        }
      }
    }
    if (r == 0) return false;
    in_.commit(static_cast<std::size_t>(r));
    if (static_cast<std::size_t>(r) < want) return true;
  }
}

bool Channel::frame_ready() const noexcept {
  if (in_.size() < sizeof(FrameHeader)) return false;
  FrameHeader h;
  std::memcpy(&h, in_.data(), sizeof h);
  return in_.size() >= sizeof h + inline_len(h);
}

bool Channel::next(Frame& f) {
  if (in_.size() < sizeof(FrameHeader)) return false;
  FrameHeader h;
  std::memcpy(&h, in_.data(), sizeof h);
  const std::size_t body = inline_len(h);
  if (in_.size() < sizeof h + body) return false;
  f.reset();
  f.kind = h.kind;
  f.id = h.id;
  f.payload.assign(in_.data() + sizeof h, body);
  for (unsigned i = 0; i < h.nfds; ++i) {
    if (in_fds_.empty()) {
      f.fds.push_back(-1);
      continue;
    }
    f.fds.push_back(in_fds_.front());
    in_fds_.pop_front();
  }
  in_.consume(sizeof h + body);
  if ((h.flags & kPayloadInFd) && !f.fds.empty()) {
    int memfd = f.fds.back();
    f.fds.pop_back();
    f.map_payload(memfd, h.len);
  }
  return true;
}

namespace {
// Milliseconds to wait in poll for `deadline` (rounded up), -1 for none.
int poll_timeout(Clock::time_point deadline) {
  if (deadline == Clock::time_point::max()) return -1;
  auto left = deadline - Clock::now();
  if (left <= Clock::duration::zero()) return 0;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return static_cast<int>(std::min<long long>(ms, 1 << 30));
}
}  // namespace

void Channel::send_all(Clock::time_point deadline) {
  while (!flush()) {
    pollfd p{fd_, POLLOUT, 0};
    int t = poll_timeout(deadline);
    int r = ::poll(&p, 1, t);
    if (r < 0 && errno != EINTR) throw_errno("poll");
    if (r == 0) throw TimeoutError("celeriac::mp: send timed out");
  }
}

bool Channel::recv_frame(Frame& f, Clock::time_point deadline) {
  for (;;) {
    if (next(f)) return true;
    bool open = fill();
    if (next(f)) return true;
    if (!open) throw ConnectionClosed("celeriac::mp: the other end of the channel is closed");
    pollfd p{fd_, POLLIN, 0};
    int t = poll_timeout(deadline);
    int r = ::poll(&p, 1, t);
    if (r < 0 && errno != EINTR) throw_errno("poll");
    if (r == 0) return false;
  }
}

}  // namespace celeriac::mp::detail
