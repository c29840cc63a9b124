// BiGLA forward kernels for fp16 q, k, v with fp16 or fp32 log-decays: one instantiation per compiled head dim.
#include "bigla_fwd.cuh"

namespace bigla {

#define BIGLA_INSTANTIATE(K, V) BIGLA_INSTANTIATE_LAUNCH_16(fwd_launch, __half, K, V)
BIGLA_FOR_EACH_HEAD_DIM(BIGLA_INSTANTIATE)
#undef BIGLA_INSTANTIATE

}  // namespace bigla
