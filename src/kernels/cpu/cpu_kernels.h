// Every CPU reference kernel (namespace hydraulis::cpu), forward and backward. The op table with
// shapes, saved tensors and formulas is docs/kernels.md; the CUDA twins (hydraulis::cuda) share
// names and signatures plus a stream. Tests: tests/kernels/.
#pragma once

#include "kernels/cpu/adamw.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/rms_norm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"
