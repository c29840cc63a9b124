// BiGLA backward kernels for fp32 q, k, v with fp32 log-decays: one instantiation per compiled head dim.
#include "bigla_bwd.cuh"

namespace bigla {

#define BIGLA_INSTANTIATE(K, V) BIGLA_INSTANTIATE_LAUNCH(bwd_launch, float, float, K, V)
BIGLA_FOR_EACH_HEAD_DIM(BIGLA_INSTANTIATE)
#undef BIGLA_INSTANTIATE

}  // namespace bigla
