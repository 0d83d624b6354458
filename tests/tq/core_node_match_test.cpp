// Which workers a remote-control request addresses: kombu's pidbox rules
// (destination first; pattern only together with a matcher; pcre = re.match).
#include <gtest/gtest.h>

#include "celeriac/tq/detail/node_match.hpp"

using celeriac::tq::Json;
using celeriac::tq::detail::node_selected;

namespace {

const std::string kHost = "cpp@celeriac-amqp-test";

Json pattern(const char* p, const char* matcher) {
  return Json{{"pattern", p}, {"matcher", matcher}};
}

TEST(TqNodeMatch, DestinationDecidesAlone) {
  EXPECT_TRUE(node_selected({{"destination", {kHost}}}, kHost));
  EXPECT_FALSE(node_selected({{"destination", {"celery@other"}}}, kHost));
  // a pattern beside a destination is not consulted (kombu: if/elif)
  EXPECT_TRUE(node_selected({{"destination", {kHost}}, {"pattern", "nomatch"}, {"matcher", "glob"}},
                            kHost));
  EXPECT_TRUE(node_selected({{"destination", Json::array()}}, kHost));  // empty = everyone
  EXPECT_TRUE(node_selected({{"destination", nullptr}}, kHost));
}

TEST(TqNodeMatch, PcreIsAnchoredAtTheStartOnlyAsPythonsReMatch) {
  EXPECT_TRUE(node_selected(pattern("cpp@", "pcre"), kHost));  // prefix
  EXPECT_TRUE(node_selected(pattern("cpp@celeriac-.*", "pcre"), kHost));
  EXPECT_TRUE(node_selected(pattern("(cpp|py)@\\w+-amqp", "pcre"), kHost));
  EXPECT_TRUE(node_selected(pattern(".*-test$", "pcre"), kHost));
  EXPECT_FALSE(node_selected(pattern("celeriac", "pcre"), kHost));  // re.match, not re.search
  EXPECT_FALSE(node_selected(pattern("py@.*", "pcre"), kHost));
  EXPECT_FALSE(node_selected(pattern("cpp@celeriac$", "pcre"), kHost));
  EXPECT_FALSE(node_selected(pattern("cpp@(", "pcre"), kHost));  // does not compile: nobody
}

TEST(TqNodeMatch, GlobMatchesTheWholeName) {
  EXPECT_TRUE(node_selected(pattern("cpp@*", "glob"), kHost));
  EXPECT_TRUE(node_selected(pattern("*@celeriac-amqp-test", "glob"), kHost));
  EXPECT_TRUE(node_selected(pattern("cpp@celeriac-[a-z]mqp-test", "glob"), kHost));
  EXPECT_FALSE(node_selected(pattern("cpp@", "glob"), kHost));
  EXPECT_FALSE(node_selected(pattern("py@*", "glob"), kHost));
}

TEST(TqNodeMatch, PatternWithoutMatcherOrUnknownMatcher) {
  // kombu dispatches to everyone unless both pattern and matcher are set
  EXPECT_TRUE(node_selected({{"pattern", "py@*"}}, kHost));
  EXPECT_TRUE(node_selected({{"pattern", "py@*"}, {"matcher", nullptr}}, kHost));
  EXPECT_TRUE(node_selected({{"pattern", nullptr}, {"matcher", "pcre"}}, kHost));
  // an unknown matcher: kombu raises, no reply
  EXPECT_FALSE(node_selected(pattern("cpp@*", "regexp"), kHost));
  EXPECT_TRUE(node_selected(Json::object(), kHost));
}

}  // namespace
