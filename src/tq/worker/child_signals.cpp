#include "child_signals.hpp"

#include <semaphore.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>

namespace celeriac::tq::detail {

namespace {

constexpr std::size_t kSlots = 1024;
constexpr std::size_t kIdSize = 64;

struct Slot {
  std::atomic<pid_t> owner;  // the child using this slot (0: free)
  std::atomic<int> seq;      // its current task's sequence number
  std::atomic<int> busy;     // 1 while `id` names its running task
  char id[kIdSize];
};

Slot* g_table = nullptr;

// ---- child side (one task at a time per child) ----
Slot* g_slot = nullptr;  // this child's slot
int g_next_seq = 0;
std::atomic<int> g_seq{0};                     // read by the handler
std::atomic<Cancellation*> g_cancel{nullptr};  // read by the handler
std::shared_ptr<Cancellation> g_cancel_owner;  // keeps *g_cancel alive
std::mutex g_stop_mu;                          // guards g_cancel_owner for the stopper
sem_t g_soft_sem;

void on_soft(int, siginfo_t* info, void*) {
  if (info->si_code != SI_QUEUE || info->si_value.sival_int != g_seq.load()) return;
  if (Cancellation* c = g_cancel.load()) {
    int none = Cancellation::kNone;
    c->reason.compare_exchange_strong(none, Cancellation::kSoftTimeLimit);
    sem_post(&g_soft_sem);  // async-signal-safe; the stopper thread requests stop
  }
}

// request_stop() runs callbacks and locks: not for a signal handler.
void stopper() {
  for (;;) {
    while (sem_wait(&g_soft_sem) != 0 && errno == EINTR) {
    }
    std::lock_guard lock(g_stop_mu);
    if (g_cancel_owner && g_cancel_owner->reason.load() != Cancellation::kNone)
      g_cancel_owner->stop.request_stop();
  }
}

void install_child_handler() {
  sem_init(&g_soft_sem, 0, 0);
  struct sigaction sa {};
  sa.sa_sigaction = &on_soft;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, nullptr);
  std::thread(stopper).detach();  // lives as long as the child
}

Slot* claim_slot() {
  const pid_t me = getpid();
  for (std::size_t i = 0; i < kSlots; ++i) {
    Slot& s = g_table[i];
    pid_t owner = s.owner.load();
    if (owner == 0 || (kill(owner, 0) == -1 && errno == ESRCH)) {
      if (s.owner.compare_exchange_strong(owner, me)) return &s;
    }
  }
  return nullptr;
}

}  // namespace

void init_child_table() {
  if (g_table) return;
  void* p = mmap(nullptr, sizeof(Slot) * kSlots, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);
  if (p == MAP_FAILED) return;  // no table: soft limits and terminate miss processes
  std::memset(p, 0, sizeof(Slot) * kSlots);
  g_table = static_cast<Slot*>(p);
}

void child_task_started(const std::string& task_id, std::shared_ptr<Cancellation> cancel) {
  if (!g_table) return;
  if (!g_slot) {
    g_slot = claim_slot();
    if (!g_slot) return;
    install_child_handler();
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  }
  {
    std::lock_guard lock(g_stop_mu);
    g_cancel_owner = cancel;
  }
  g_cancel.store(cancel.get());
  g_seq.store(++g_next_seq);
  g_slot->busy.store(0);
  std::strncpy(g_slot->id, task_id.c_str(), kIdSize - 1);
  g_slot->seq.store(g_next_seq);
  g_slot->busy.store(1);
}

void child_task_done() {
  if (!g_slot) return;
  g_slot->busy.store(0);
  g_cancel.store(nullptr);
  std::lock_guard lock(g_stop_mu);
  g_cancel_owner.reset();
}

bool signal_child(const std::string& task_id, int signal) {
  if (!g_table) return false;
  for (std::size_t i = 0; i < kSlots; ++i) {
    Slot& s = g_table[i];
    pid_t pid = s.owner.load();
    if (pid == 0 || s.busy.load() != 1) continue;
    if (std::strncmp(s.id, task_id.c_str(), kIdSize - 1) != 0) continue;
    if (signal == SIGUSR1) {
      union sigval v;
      v.sival_int = s.seq.load();
      return sigqueue(pid, signal, v) == 0;
    }
    return kill(pid, signal) == 0;
  }
  return false;
}

}  // namespace celeriac::tq::detail
