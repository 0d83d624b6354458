// A canvas workflow: "fetch" many pages as coroutine tasks in a chord's
// header (the async pool runs them on one event loop), then reduce their
// sizes in the chord's body, then format the total in a chained step.
// Runs in one process on the in-memory broker:
//
//   ./canvas_pages          # prints "fetched 40 pages, 8780 bytes in total"
//
// Point App at redis:// instead and Python Celery workers or clients can
// take either side of the same workflow (docs/tq-canvas.md).
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "celeriac/aio.hpp"
#include "celeriac/tq.hpp"

namespace tq = celeriac::tq;
namespace aio = celeriac::aio;

int main() {
  tq::App app("memory://canvas-pages", "");
  auto fetch = app.task("pages.fetch", {"page"}, [](int page) -> aio::Task<int> {
    co_await aio::sleep(std::chrono::milliseconds(5));  // stands for an HTTP request
    co_return 200 + page;                               // the page's size in bytes
  });
  auto total = app.task("pages.total", {"sizes"}, [](std::vector<int> sizes) {
    long long sum = 0;
    for (int s : sizes) sum += s;
    return sum;
  });
  auto report = app.task("pages.report", {"bytes", "pages"}, [](long long bytes, int pages) {
    return "fetched " + std::to_string(pages) + " pages, " + std::to_string(bytes) +
           " bytes in total";
  });

  tq::WorkerOptions options;
  options.pool = "async";  // every fetch awaits on one event loop
  tq::Worker worker(app, options);
  worker.start();

  const int pages = 40;
  std::vector<tq::Signature> header;
  for (int p = 0; p < pages; ++p) header.push_back(fetch.s(p));
  // group | body is a chord; | report chains one more step onto its body.
  auto result = (tq::group(header) | total.s() | report.s(pages)).apply_async();
  std::string line = result.get(std::chrono::seconds(60)).get<std::string>();
  std::printf("%s\n", line.c_str());

  worker.stop();
  worker.wait(std::chrono::seconds(10));
  return line == "fetched 40 pages, 8780 bytes in total" ? 0 : 1;
}
