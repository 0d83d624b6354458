#include <gtest/gtest.h>

#include "celeriac/mp.hpp"

using namespace celeriac;
using namespace std::chrono_literals;

struct Point {
  int x = 0;
  double y = 0;
  std::string label;
  MSGPACK_DEFINE(x, y, label)
  bool operator==(const Point&) const = default;
};

// A type we cannot change: msgpack adaptors plus the trait.
struct Opaque {
  long v = 0;
};
namespace msgpack {
MSGPACK_API_VERSION_NAMESPACE(MSGPACK_DEFAULT_API_NS) {
  namespace adaptor {
  template <>
  struct pack<Opaque> {
    template <class S>
    packer<S>& operator()(packer<S>& o, const Opaque& x) const {
      o.pack(x.v);
      return o;
    }
  };
  template <>
  struct convert<Opaque> {
    const msgpack::object& operator()(const msgpack::object& o, Opaque& x) const {
      x.v = o.as<long>();
      return o;
    }
  };
  }  // namespace adaptor
}
}  // namespace msgpack
template <>
struct celeriac::mp::serializable<Opaque> : std::true_type {};

struct NotSendable {
  int x;
};

static_assert(mp::Serializable<int>);
static_assert(mp::Serializable<std::vector<std::map<std::string, std::optional<double>>>>);
static_assert(mp::Serializable<std::tuple<int, std::string, std::variant<int, std::string>>>);
static_assert(mp::Serializable<Point>);
static_assert(mp::Serializable<Opaque>);
static_assert(mp::Serializable<mp::SharedArray<float>>);
static_assert(!mp::Serializable<NotSendable>);
static_assert(!mp::Serializable<std::vector<NotSendable>>);
static_assert(!mp::Serializable<int*>);
static_assert(!mp::Serializable<long double>);
static_assert(mp::detail::is_sendable_callable_v<int (*)(int)>);
static_assert(mp::detail::is_sendable_callable_v<decltype([](int) { return 1; })>);
inline int g_captured = 0;
static_assert(!mp::detail::is_sendable_callable_v<decltype([&x = g_captured] { return x; })>);
static_assert(!mp::detail::is_sendable_callable_v<std::function<int()>>);

template <class T>
T round_trip(const T& v) {
  msgpack::sbuffer b;
  mp::pack(b, v);
  return mp::unpack<T>(std::string_view(b.data(), b.size()));
}

TEST(Serialize, StandardTypesRoundTrip) {
  EXPECT_EQ(round_trip(42), 42);
  EXPECT_EQ(round_trip(std::string("hé")), "hé");
  std::map<std::string, std::vector<int>> m{{"a", {1, 2}}, {"b", {}}};
  EXPECT_EQ(round_trip(m), m);
  std::optional<int> none, some = 5;
  EXPECT_EQ(round_trip(none), none);
  EXPECT_EQ(round_trip(some), some);
  std::variant<int, std::string, std::monostate> v1 = 3, v2 = std::string("s"),
                                                 v3 = std::monostate{};
  EXPECT_EQ(round_trip(v1), v1);
  EXPECT_EQ(round_trip(v2), v2);
  EXPECT_EQ(round_trip(v3), v3);
  auto t = std::make_tuple(1, 2.5, std::string("x"), std::pair<int, bool>{3, true});
  EXPECT_EQ(round_trip(t), t);
  std::vector<unsigned char> bytes{0, 1, 255};
  EXPECT_EQ(round_trip(bytes), bytes);
}

TEST(Serialize, UserTypes) {
  Point p{1, 2.5, "p"};
  EXPECT_EQ(round_trip(p), p);
  EXPECT_EQ(round_trip(Opaque{7}).v, 7);
}

TEST(Serialize, MismatchIsAClearError) {
  msgpack::sbuffer b;
  mp::pack(b, std::string("text"));
  try {
    mp::unpack<std::vector<int>>(std::string_view(b.data(), b.size()));
    FAIL();
  } catch (const mp::SerializationError& e) {
    EXPECT_NE(std::string(e.what()).find("std::vector<int"), std::string::npos) << e.what();
  }
  EXPECT_THROW(mp::unpack<int>(std::string_view("\xc1", 1)), mp::SerializationError);
}

// Fuzz regression (tests/fuzz/regressions/mp): a 5-byte array header
// claiming 4 billion elements made msgpack allocate ~100 GB for the claim.
TEST(Serialize, ClaimsBeyondTheBytesAreRejectedBeforeAllocating) {
  try {
    (void)celeriac::mp::unpack<std::vector<int>>(std::string("\xdd\xff\xff\xff\xff", 5));
    FAIL() << "accepted";
  } catch (const celeriac::mp::SerializationError& e) {
    EXPECT_NE(std::string(e.what()).find("array size overflow"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)celeriac::mp::unpack<std::string>(std::string("\xdb\x7f\xff\xff\xff", 5)),
               celeriac::mp::SerializationError);
}

TEST(Serialize, DescriptorsNeedAChannel) {
  msgpack::sbuffer b;
  EXPECT_THROW(mp::pack(b, mp::SharedArray<int>(3)), mp::SerializationError);
}

Point move_point(Point p, int dx) {
  p.x += dx;
  return p;
}

TEST(Serialize, UserTypesThroughThePool) {
  mp::ProcessPool pool(1);
  auto r = pool.submit(&move_point, Point{1, 2, "a"}, 10).result(10s);
  EXPECT_EQ(r, (Point{11, 2, "a"}));
  auto o = pool.submit([](Opaque x) { return Opaque{x.v * 2}; }, Opaque{21}).result(10s);
  EXPECT_EQ(o.v, 42);
}

TEST(SharedMemory, NamedBlocks) {
  std::string name = "/celeriac-test-" + std::to_string(::getpid());
  auto a = mp::SharedMemory::create(name, 4096);
  EXPECT_EQ(a.name(), name);
  EXPECT_EQ(a.size(), 4096u);
  EXPECT_THROW(mp::SharedMemory::create(name, 10), mp::SystemError);
  a.data()[10] = std::byte{9};
  auto b = mp::SharedMemory::open(name.substr(1));
  EXPECT_EQ(b.data()[10], std::byte{9});
  a.unlink();
  EXPECT_THROW(mp::SharedMemory::open(name), mp::SystemError);
  EXPECT_EQ(b.data()[10], std::byte{9});  // mappings outlive the name
  EXPECT_THROW(mp::SharedMemory::create("a/b", 10), std::invalid_argument);
}

TEST(SharedMemory, ArraysViewBlocks) {
  mp::SharedMemory m(64);
  mp::SharedArray<int> a(m, 16);
  a[15] = 3;
  EXPECT_EQ(reinterpret_cast<int*>(m.data())[15], 3);
  EXPECT_THROW(mp::SharedArray<int>(m, 17), std::invalid_argument);
  mp::SharedArray<int> empty;
  EXPECT_TRUE(empty.empty());
}
