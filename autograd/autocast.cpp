#include "autograd/autocast.h"

namespace attnlab {

namespace {
thread_local bool g_autocast_bf16 = false;
}  // namespace

bool autocast_bf16() { return g_autocast_bf16; }
AutocastGuard::AutocastGuard(bool bf16) : prev_(g_autocast_bf16) { g_autocast_bf16 = bf16; }
AutocastGuard::~AutocastGuard() { g_autocast_bf16 = prev_; }

}  // namespace attnlab
