// A message-framed, nonblocking Unix stream socket that can carry file
// descriptors with a message. The one wire used between the parent, the
// fork server's children, and the two ends of a Pipe.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace celeriac::mp::detail {

enum MsgKind : std::uint8_t {
  kTask = 1,     // parent -> worker: run, reply
  kInit = 2,     // parent -> worker: run the pool initializer, reply
  kRunOnce = 3,  // parent -> Process child: run, then exit
  kResult = 10,  // worker -> parent: packed result
  kError = 11,   // worker -> parent: packed [type name, message]
  kData = 20,    // Connection payload
};

/// Wire header of every frame; `len` bytes of payload follow, unless
/// flags has kPayloadInFd: then the payload is in a memfd, the frame's last
/// descriptor, and nothing follows.
struct FrameHeader {
  std::uint32_t len;
  std::uint8_t kind;
  std::uint8_t nfds;
  std::uint16_t flags;
  std::uint64_t id;
};
static_assert(sizeof(FrameHeader) == 16);
inline constexpr std::uint16_t kPayloadInFd = 1;
/// Task, initializer and result payloads from this size on travel through
/// shared memory (a memfd) rather than through the socket: fewer copies, and
/// no socket-buffer round trips.
inline constexpr std::size_t kSharedPayloadMin = std::size_t{1} << 20;

/// A received frame. Descriptors not taken by the decoder are closed with it.
struct Frame {
  std::uint8_t kind = 0;
  std::uint64_t id = 0;
  std::string payload;  // inline payload (empty when mapped)
  std::vector<int> fds;
  Frame() = default;
  Frame(Frame&& o) noexcept;
  Frame& operator=(Frame&& o) noexcept;
  Frame(const Frame&) = delete;
  Frame& operator=(const Frame&) = delete;
  ~Frame();
  void reset();
  /// The payload: the inline bytes, or the read-only mapping of a large one.
  std::string_view body() const noexcept {
    return mapped_ ? std::string_view(mapped_, mapped_len_) : std::string_view(payload);
  }
  /// The payload as a string (a copy when it is mapped).
  std::string take_body();
  /// Maps `len` bytes of `memfd` (closed here) as the payload; false if that
  /// failed (the payload is then empty and decoding it fails).
  bool map_payload(int memfd, std::size_t len) noexcept;

 private:
  const char* mapped_ = nullptr;
  std::size_t mapped_len_ = 0;
};

/// Grows without zero-filling (big payloads are read straight into it).
class ByteBuffer {
 public:
  char* data() noexcept { return buf_.get() + begin_; }
  const char* data() const noexcept { return buf_.get() + begin_; }
  std::size_t size() const noexcept { return end_ - begin_; }
  void consume(std::size_t n) noexcept;
  /// Makes room for at least n more bytes at the end; returns where they go.
  char* prepare(std::size_t n);
  void commit(std::size_t n) noexcept { end_ += n; }
  void append(const void* p, std::size_t n);
  void clear() noexcept { begin_ = end_ = 0; }

 private:
  std::unique_ptr<char[]> buf_;
  std::size_t cap_ = 0, begin_ = 0, end_ = 0;
};

using Clock = std::chrono::steady_clock;

class Channel {
 public:
  Channel() = default;
  /// Adopts `fd` (a connected AF_UNIX stream socket) and makes it nonblocking.
  explicit Channel(int fd);
  Channel(Channel&&) noexcept;
  Channel& operator=(Channel&&) noexcept;
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;
  ~Channel();

  int fd() const noexcept { return fd_; }
  bool is_open() const noexcept { return fd_ >= 0; }
  void close() noexcept;
  /// Shuts down the sending direction (peer reads EOF after the data).
  void shutdown_write() noexcept;

  /// Appends a frame whose payload is p1 followed by p2. Takes ownership of
  /// *fds (at most 250), which are closed once sent.
  void enqueue(std::uint8_t kind, std::uint64_t id, std::string_view p1, std::string_view p2 = {},
               std::vector<int>* fds = nullptr);
  /// Writes what the socket accepts now; true when nothing is left.
  /// ConnectionClosed when the peer is gone.
  bool flush();
  bool has_output() const noexcept { return out_.size() != 0; }

  /// Reads what is available without blocking; false at end of stream.
  bool fill();
  /// Whether a complete frame is buffered.
  bool frame_ready() const noexcept;
  /// Moves the next complete frame into `f`; false when none is complete.
  bool next(Frame& f);

  /// Blocking forms (poll). Deadline max() means no limit.
  /// send_all: flushes everything; TimeoutError / ConnectionClosed.
  void send_all(Clock::time_point deadline);
  /// recv_frame: false on timeout; ConnectionClosed at end of stream.
  bool recv_frame(Frame& f, Clock::time_point deadline);

 private:
  struct Attachment {
    std::uint64_t offset;
    std::vector<int> fds;
  };
  int fd_ = -1;
  ByteBuffer out_;
  std::uint64_t sent_ = 0, queued_ = 0;
  std::deque<Attachment> attachments_;
  ByteBuffer in_;
  std::deque<int> in_fds_;
};

/// Writes the whole buffer to a blocking-or-not fd; false on error.
int make_socketpair(int fds[2]);  // AF_UNIX stream, CLOEXEC; throws SystemError

[[noreturn]] void throw_errno(const std::string& what);

}  // namespace celeriac::mp::detail
