// main() of the multi-process tests: MPI comes up through the world
// communicator, every rank runs every test, and only rank 0 prints the usual
// report (other ranks print their failures, prefixed with the rank). The exit
// status is non-zero when any rank failed.
#include <gtest/gtest.h>

#include <cstdio>

#include "core/comm/world.h"

namespace {

class RankFailures : public testing::EmptyTestEventListener {
 public:
  explicit RankFailures(int rank) : rank_(rank) {}
  void OnTestPartResult(const testing::TestPartResult& r) override {
    if (r.failed())
      std::fprintf(stderr, "[rank %d] %s:%d: %s\n", rank_, r.file_name() ? r.file_name() : "?", r.line_number(),
                   r.message());
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  auto world = attnlab::world_communicator("mpi", attnlab::Device::cpu(), 120);
  if (world->rank() != 0) {
    testing::TestEventListeners& listeners = testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailures(world->rank()));
  }
  int rc = RUN_ALL_TESTS();
  return world->sum(rc != 0 ? 1.0 : 0.0) > 0 ? 1 : 0;
}
