// BiGLA backward kernels for fp16 q, k, v with fp16 or fp32 log-decays: one instantiation per compiled head dim.
#include "bigla_bwd.cuh"

namespace bigla {

#define BIGLA_INSTANTIATE(K, V) BIGLA_INSTANTIATE_LAUNCH_16(bwd_launch, __half, K, V)
BIGLA_FOR_EACH_HEAD_DIM(BIGLA_INSTANTIATE)
#undef BIGLA_INSTANTIATE

}  // namespace bigla
