#include "kernels/cpu/cpu_backend.h"

namespace tessera::kernels::internal {

const Backend& CpuBackend() {
  static const Backend kTable = {
      .name = "cpu",
      .fill = cpu::Fill,
      .copy = cpu::Copy,
      .axpy = cpu::Axpy,
      .scale = cpu::Scale,
      .add = cpu::Add,
      .sum = cpu::Sum,
      .sum_squares = cpu::SumSquares,
      .optimizer = cpu::Optimizer,
      .gemm = cpu::Gemm,
      .bias_act_forward = cpu::BiasActForward,
      .bias_act_backward = cpu::BiasActBackward,
      .indices_in_range = cpu::IndicesInRange,
      .softmax_xent = cpu::SoftmaxXent,
      .argmax = cpu::ArgMax,
      .count_correct = cpu::CountCorrect,
      .sigmoid_bce = cpu::SigmoidBce,
      .gather = cpu::Gather,
      .scatter_add = cpu::ScatterAdd,
      .segment_sum = cpu::SegmentSum,
      .grouped_row_sum = cpu::GroupedRowSum,
      .offsets_valid = cpu::OffsetsValid,
      .pairwise_dot = cpu::PairwiseDot,
      .pairwise_dot_backward = cpu::PairwiseDotBackward,
      .allocate = cpu::Allocate,
      .cast = cpu::Cast,
  };
  return kTable;
}

}  // namespace tessera::kernels::internal
