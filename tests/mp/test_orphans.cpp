#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace {
// Alive and not a zombie (a zombie left to a non-reaping init is dead too).
bool alive(pid_t pid) {
  if (::kill(pid, 0) != 0) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}
}  // namespace

TEST(Orphans, KillingTheParentTakesItsChildrenDown) {
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  char* argv[] = {const_cast<char*>(MP_ORPHAN_HELPER), nullptr};
  pid_t helper;
  ASSERT_EQ(::posix_spawn(&helper, MP_ORPHAN_HELPER, &fa, nullptr, argv, environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  std::string line;
  char c;
  while (::read(out[0], &c, 1) == 1 && c != '\n') line += c;
  ::close(out[0]);
  std::istringstream in(line);
  std::vector<pid_t> pids;
  for (int p; in >> p;) pids.push_back(p);
  ASSERT_EQ(pids.size(), 5u) << "helper printed: " << line;  // server, process, 3 workers
  for (pid_t p : pids) EXPECT_TRUE(alive(p)) << p;

  ASSERT_EQ(::kill(helper, SIGKILL), 0);
  int st;
  ASSERT_EQ(::waitpid(helper, &st, 0), helper);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (pid_t p : pids) {
    while (alive(p) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_FALSE(alive(p)) << "pid " << p << " outlived its killed parent";
  }
}
