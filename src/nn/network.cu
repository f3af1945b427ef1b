// The article's network on a GPU: every layer's forward and backward pass,
// the loss and the optimizers, as CUDA C compiled at run time by NVRTC (`nn::gpu`).
//
// Each kernel mirrors its CPU twin in `layers.rs`, `loss.rs` and `adam.rs`
// operation for operation, so the results are the CPU's bit for bit:
// - every output is computed by one thread, which sums in the CPU's order
//   (no atomics, no split sums): a GEMM output is one FMA chain over k in
//   ascending order, started from 0 or from the old C (`engine/gemm.rs`);
// - NVRTC runs with --fmad=false, so a*b+c stays two roundings as in Rust;
// - transcendentals come from the prelude (`engine::codegen::PRELUDE`);
// - random numbers are the same Philox4x32-10 words as `engine/rng.rs`.
//
// Several runs train at once. Tensors hold the runs one after another
// ([run][sample][...]), so a kernel that treats samples alike sees one big
// batch of runs x n samples; only the GEMMs, bias sums, dropout keys and
// loss totals need to know where one run ends.
//
// `tests/gpu_emulated.rs` compiles this file for the host (threads stand in
// for a block's threads) and checks whole training steps against the CPU.

#define GRID_STRIDE(i, count) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (long long)(count); i += (long long)gridDim.x * blockDim.x)

// ---------------------------------------------------------------- input --

// One batch per run: sample s of run r is image order[r*order_stride + start + s],
// scaled to [0, 1] by /255 (as `Model::load_images`), with its label.
extern "C" __global__ void gather_batch(const unsigned char* images, const unsigned char* labels, const unsigned int* order,
                                        long long order_stride, long long start, int n, int runs, int image_len,
                                        float* x, unsigned char* y) {
    GRID_STRIDE(i, (long long)runs * n * image_len) {
        long long sample = i / image_len;
        int p = (int)(i % image_len);
        long long r = sample / n, s = sample % n;
        long long img = order[r * order_stride + start + s];
        x[i] = (float)images[img * image_len + p] / 255.0f;
        if (p == 0) y[sample] = labels[img];
    }
}

// ------------------------------------------------------------- Conv2d --
// NHWC tensors; im2col rows are (ky, kx, cin), as `Conv2d::im2col`.

extern "C" __global__ void im2col(const float* x, float* col, long long samples, int H, int W, int C, int K, int PAD, int OH, int OW) {
    long long kdim = (long long)K * K * C;
    GRID_STRIDE(i, samples * OH * OW * kdim) {
        int k = (int)(i % kdim);
        long long row = i / kdim;
        int ox = (int)(row % OW), oy = (int)(row / OW % OH);
        long long s = row / ((long long)OW * OH);
        int ci = k % C, kx = k / C % K, ky = k / (C * K);
        int iy = oy + ky - PAD, ix = ox + kx - PAD;
        col[i] = (iy < 0 || ix < 0 || iy >= H || ix >= W) ? 0.0f : x[((s * H + iy) * W + ix) * C + ci];
    }
}

// The input gradient from the im2col gradient. The CPU scatters row by row
// (`col2im`); each input element receives its terms in (oy, ox) order, and
// here one thread gathers exactly those terms in that order.
extern "C" __global__ void col2im(const float* dcol, float* dx, long long samples, int H, int W, int C, int K, int PAD, int OH, int OW) {
    long long kdim = (long long)K * K * C;
    GRID_STRIDE(i, samples * H * W * C) {
        int ci = (int)(i % C), ix = (int)(i / C % W), iy = (int)(i / ((long long)C * W) % H);
        long long s = i / ((long long)C * W * H);
        // The outputs whose window covers (iy, ix): oy = iy + PAD - ky for ky in [0, K).
        int oy0 = iy + PAD - K + 1 > 0 ? iy + PAD - K + 1 : 0, oy1 = iy + PAD < OH - 1 ? iy + PAD : OH - 1;
        int ox0 = ix + PAD - K + 1 > 0 ? ix + PAD - K + 1 : 0, ox1 = ix + PAD < OW - 1 ? ix + PAD : OW - 1;
        float acc = 0.0f;
        for (int oy = oy0; oy <= oy1; oy++)
            for (int ox = ox0; ox <= ox1; ox++)
                acc += dcol[((s * OH + oy) * OW + ox) * kdim + ((iy + PAD - oy) * K + ix + PAD - ox) * C + ci];
        dx[i] = acc;
    }
}

// y[r][row][c] = b[r][c]: the GEMM then accumulates onto the bias, as on the CPU.
extern "C" __global__ void fill_bias(float* y, const float* b, long long b_stride, long long rows, int cols, int runs) {
    GRID_STRIDE(i, (long long)runs * rows * cols) {
        long long r = i / (rows * cols);
        y[i] = b[r * b_stride + i % cols];
    }
}

// --------------------------------------------------------------- GEMM --
// C[r] (+)= A[r]·B[r] for run r = blockIdx.z; A and B are strided views
// (element (i, j) at i*rs + j*cs), C row-major with row stride ldc.
//
// With `ones` (not null), A gets an extra row of 1s whose results go to
// ones[r*c_run + j] = Σ_k B[k][j]: a weight-gradient GEMM computes the bias
// gradient in the same pass. fma(1, b, acc) rounds b + acc once, exactly as
// the CPU's `acc += b` (`bias_grad`), so the bits are the CPU's.
// A block of 256 threads computes a (16·TM)×(16·TN) tile, BK steps of k at
// a time; each thread owns TM×TN outputs, and each output is one FMA chain
// over k in ascending order: the tiles only decide which thread computes an
// output and when, never the order of its sum.

template <int TM, int TN, int BK>
__device__ void gemm_tile(int m, int n, int k,
                          const float* A, long long a_rs, long long a_cs, long long a_run,
                          const float* B, long long b_rs, long long b_cs, long long b_run,
                          float* C, long long ldc, long long c_run, int accumulate, float* ones) {
    const int BM = 16 * TM, BN = 16 * TN;
    __shared__ float As[BK][BM];
    __shared__ float Bs[BK][BN];
    long long r = blockIdx.z;
    A += r * a_run;
    B += r * b_run;
    C += r * c_run;
    if (ones) ones += r * c_run;
    long long rows = ones ? (long long)m + 1 : m;
    int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    long long i0 = (long long)blockIdx.y * BM, j0 = (long long)blockIdx.x * BN;
    float acc[TM][TN];
    for (int a = 0; a < TM; a++)
        for (int b = 0; b < TN; b++) {
            long long i = i0 + ty + 16 * a, j = j0 + tx + 16 * b;
            acc[a][b] = (accumulate && i < m && j < n) ? C[i * ldc + j] : 0.0f;
        }
    for (int k0 = 0; k0 < k; k0 += BK) {
        // Stage the tiles; consecutive threads read along the unit stride.
        for (int e = threadIdx.x; e < BM * BK; e += 256) {
            int ii = a_cs == 1 ? e / BK : e % BM, kk = a_cs == 1 ? e % BK : e / BM;
            long long gi = i0 + ii, gk = k0 + kk;
            As[kk][ii] = gk >= k ? 0.0f : gi < m ? A[gi * a_rs + gk * a_cs] : gi < rows ? 1.0f : 0.0f;
        }
        for (int e = threadIdx.x; e < BK * BN; e += 256) {
            int jj = b_cs == 1 ? e % BN : e / BK, kk = b_cs == 1 ? e / BN : e % BK;
            long long gj = j0 + jj, gk = k0 + kk;
            Bs[kk][jj] = (gj < n && gk < k) ? B[gk * b_rs + gj * b_cs] : 0.0f;
        }
        __syncthreads();
        // Only real k: an FMA with a padded 0 could turn a -0 sum into +0.
        int kmax = k - k0 < BK ? k - k0 : BK;
        for (int kk = 0; kk < kmax; kk++)
            for (int a = 0; a < TM; a++)
                for (int b = 0; b < TN; b++) acc[a][b] = fmaf(As[kk][ty + 16 * a], Bs[kk][tx + 16 * b], acc[a][b]);
        __syncthreads();
    }
    for (int a = 0; a < TM; a++)
        for (int b = 0; b < TN; b++) {
            long long i = i0 + ty + 16 * a, j = j0 + tx + 16 * b;
            if (i < m && j < n) C[i * ldc + j] = acc[a][b];
            else if (i == m && ones && j < n) ones[j] = acc[a][b];
        }
}

// Big outputs (forward, input gradients): 64×64 tiles, k by 16.
extern "C" __global__ void gemm_64(int m, int n, int k, const float* A, long long a_rs, long long a_cs, long long a_run,
                                   const float* B, long long b_rs, long long b_cs, long long b_run,
                                   float* C, long long ldc, long long c_run, int accumulate, float* ones) {
    gemm_tile<4, 4, 16>(m, n, k, A, a_rs, a_cs, a_run, B, b_rs, b_cs, b_run, C, ldc, c_run, accumulate, ones);
}

// Few outputs and a long k (weight gradients): 16×16 tiles for more blocks,
// k by 64 for fewer barriers along the long chains.
extern "C" __global__ void gemm_16(int m, int n, int k, const float* A, long long a_rs, long long a_cs, long long a_run,
                                   const float* B, long long b_rs, long long b_cs, long long b_run,
                                   float* C, long long ldc, long long c_run, int accumulate, float* ones) {
    gemm_tile<1, 1, 64>(m, n, k, A, a_rs, a_cs, a_run, B, b_rs, b_cs, b_run, C, ldc, c_run, accumulate, ones);
}

// ------------------------------------------------------------ MaxPool2 --
// 2×2, stride 2, valid; argmax keeps the winning quadrant (first on ties).

extern "C" __global__ void maxpool_forward(const float* x, float* y, unsigned char* argmax, long long samples, int H, int W, int C, int OH, int OW) {
    GRID_STRIDE(o, samples * OH * OW * C) {
        int c = (int)(o % C), ox = (int)(o / C % OW), oy = (int)(o / ((long long)C * OW) % OH);
        long long s = o / ((long long)C * OW * OH);
        float best = 0.0f;
        unsigned char arg = 0;
        for (int q = 0; q < 4; q++) {
            float v = x[((s * H + 2 * oy + q / 2) * W + 2 * ox + q % 2) * C + c];
            if (v > best || q == 0) { best = v; arg = (unsigned char)q; }
        }
        y[o] = best;
        argmax[o] = arg;
    }
}

// Each input element takes its window's gradient if it won, else 0.
extern "C" __global__ void maxpool_backward(const float* dy, const unsigned char* argmax, float* dx, long long samples, int H, int W, int C, int OH, int OW) {
    GRID_STRIDE(i, samples * H * W * C) {
        int c = (int)(i % C), ix = (int)(i / C % W), iy = (int)(i / ((long long)C * W) % H);
        long long s = i / ((long long)C * W * H);
        int oy = iy / 2, ox = ix / 2;
        float v = 0.0f;
        if (oy < OH && ox < OW) {
            long long o = ((s * OH + oy) * OW + ox) * C + c;
            if (argmax[o] == (iy % 2) * 2 + ix % 2) v = dy[o];
        }
        dx[i] = v;
    }
}

// ---------------------------------------------------- BatchNorm --
// As `BatchNorm` in layers.rs: one thread per (run, channel) sums over the
// run's rows in row order in f64, so the statistics are the CPU's bits.
// Parameters are [run][tensor...] with a run stride of p_stride; a layer's
// γ, β, moving mean and moving variance sit at the given offsets.

// The batch's mean and biased variance, folded into the moving statistics;
// μ and 1/√(σ² + ε) for the normalisation.
extern "C" __global__ void bn_statistics(const float* x, long long rows, int channels, int runs, float* params, long long p_stride,
                                         long long mean_at, long long var_at, float keep, float take, double eps, float* mean_out, float* inv_std) {
    GRID_STRIDE(i, (long long)runs * channels) {
        long long r = i / channels;
        int c = (int)(i % channels);
        const float* xr = x + r * rows * channels;
        double sum = 0.0;
        for (long long k = 0; k < rows; k++) sum += (double)xr[k * channels + c];
        double mean = sum / (double)rows;
        double sq = 0.0;
        for (long long k = 0; k < rows; k++) {
            double d = (double)xr[k * channels + c] - mean;
            sq += d * d;
        }
        double var = sq / (double)rows;
        float* pr = params + r * p_stride;
        pr[mean_at + c] = pr[mean_at + c] * keep + (float)mean * take;
        pr[var_at + c] = pr[var_at + c] * keep + (float)var * take;
        mean_out[i] = (float)mean;
        inv_std[i] = (float)(1.0 / sqrt(var + eps));
    }
}

// Inference: μ and 1/√(σ² + ε) from the moving statistics.
extern "C" __global__ void bn_moving(const float* params, long long p_stride, long long mean_at, long long var_at, int channels, int runs,
                                     double eps, float* mean_out, float* inv_std) {
    GRID_STRIDE(i, (long long)runs * channels) {
        const float* pr = params + (i / channels) * p_stride;
        int c = (int)(i % channels);
        mean_out[i] = pr[mean_at + c];
        inv_std[i] = (float)(1.0 / sqrt((double)pr[var_at + c] + eps));
    }
}

// x̂ = (x − μ)·(1/σ), y = γ·x̂ + β; x̂ kept when `xhat` is given.
extern "C" __global__ void bn_normalize(const float* x, float* y, float* xhat, const float* mean, const float* inv_std, const float* params,
                                        long long p_stride, long long gamma_at, long long beta_at, long long per_run, int channels, int runs) {
    GRID_STRIDE(i, (long long)runs * per_run) {
        long long r = i / per_run;
        int c = (int)(i % channels);
        const float* pr = params + r * p_stride;
        float h = (x[i] - mean[r * channels + c]) * inv_std[r * channels + c];
        y[i] = pr[gamma_at + c] * h + pr[beta_at + c];
        if (xhat) xhat[i] = h;
    }
}

// dβ = Σ dy, dγ = Σ dy·x̂ (f64, row order); the moving statistics' gradients are 0.
extern "C" __global__ void bn_backward_sums(const float* dy, const float* xhat, long long rows, int channels, int runs, float* grads, long long p_stride,
                                            long long gamma_at, long long beta_at, long long mean_at, long long var_at) {
    GRID_STRIDE(i, (long long)runs * channels) {
        long long r = i / channels;
        int c = (int)(i % channels);
        const float* g = dy + r * rows * channels;
        const float* h = xhat + r * rows * channels;
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (long long k = 0; k < rows; k++) sum_dy += (double)g[k * channels + c];
        for (long long k = 0; k < rows; k++) sum_dy_xhat += (double)g[k * channels + c] * (double)h[k * channels + c];
        float* gr = grads + r * p_stride;
        gr[beta_at + c] = (float)sum_dy;
        gr[gamma_at + c] = (float)sum_dy_xhat;
        gr[mean_at + c] = 0.0f;
        gr[var_at + c] = 0.0f;
    }
}

// dx = γ/σ · (dy − mean(dy) − x̂·mean(dy·x̂)) with the batch's statistics, γ/σ · dy with the moving ones.
extern "C" __global__ void bn_backward(const float* dy, const float* xhat, const float* inv_std, const float* params, const float* grads, long long p_stride,
                                       long long gamma_at, long long beta_at, long long per_run, int channels, int runs, float rows,
                                       int batch_statistics, float* dx) {
    GRID_STRIDE(i, (long long)runs * per_run) {
        long long r = i / per_run;
        int c = (int)(i % channels);
        const float* gr = grads + r * p_stride;
        float scale = params[r * p_stride + gamma_at + c] * inv_std[r * channels + c];
        float mean_dy = batch_statistics ? gr[beta_at + c] / rows : 0.0f;
        float mean_dy_xhat = batch_statistics ? gr[gamma_at + c] / rows : 0.0f;
        dx[i] = scale * (dy[i] - mean_dy - xhat[i] * mean_dy_xhat);
    }
}

// ------------------------------------------------------------- Dropout --

// Philox4x32-10 (`engine/rng.rs`): word w of the block for counter ctr.
__device__ static unsigned int philox_word(unsigned int c0, unsigned int c1, unsigned int c2, unsigned int c3,
                                           unsigned int k0, unsigned int k1, int w) {
    for (int round = 0; round < 10; round++) {
        unsigned long long p0 = (unsigned long long)0xD2511F53u * c0, p1 = (unsigned long long)0xCD9E8D57u * c2;
        unsigned int hi0 = (unsigned int)(p0 >> 32), lo0 = (unsigned int)p0;
        unsigned int hi1 = (unsigned int)(p1 >> 32), lo1 = (unsigned int)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return w == 0 ? c0 : w == 1 ? c1 : w == 2 ? c2 : c3;
}

// Inverted dropout in place, as `Dropout::forward`: element e of a run's
// batch keeps with the word e%4 of Philox block e/4 for (Dropout, stream),
// keyed by the run's seed (keys[2r], keys[2r+1]).
extern "C" __global__ void dropout_forward(float* x, float* mask, long long per_run, int runs, const unsigned int* keys,
                                           unsigned long long stream, float rate, float scale) {
    const unsigned int DROPOUT = 3;
    GRID_STRIDE(i, (long long)runs * per_run) {
        long long r = i / per_run, e = i % per_run;
        unsigned int w = philox_word((unsigned int)(e / 4), (unsigned int)stream, (unsigned int)(stream >> 32), DROPOUT,
                                     keys[2 * r], keys[2 * r + 1], (int)(e % 4));
        float m = (float)(w >> 8) * (1.0f / 16777216.0f) >= rate ? scale : 0.0f;
        mask[i] = m;
        x[i] *= m;
    }
}

// g *= mask (dropout's backward pass).
extern "C" __global__ void multiply(float* g, const float* mask, long long count) {
    GRID_STRIDE(i, count) g[i] *= mask[i];
}

// --------------------------------------------------------------- loss --

// Per sample, as `softmax_cross_entropy`: loss = logsumexp(z) − z[label] in
// f64, whether the first maximum is the label, and (when dlogits is given)
// (softmax − onehot)/n with n the run's batch size.
extern "C" __global__ void softmax_xent(const float* logits, const unsigned char* labels, float* dlogits, double* loss,
                                        unsigned char* correct, long long samples, int classes, int n) {
    GRID_STRIDE(s, samples) {
        const float* z = logits + s * classes;
        float mx = -ACTLAB_INF_F;
        for (int c = 0; c < classes; c++) mx = fmaxf(mx, z[c]);
        double m = (double)mx, sum = 0.0;
        for (int c = 0; c < classes; c++) sum += actlab_exp64((double)z[c] - m);
        double lse = m + actlab_ln64(sum);
        int y = labels[s];
        loss[s] = lse - (double)z[y];
        int arg = 0;
        for (int c = 1; c < classes; c++)
            if (z[c] > z[arg]) arg = c;
        correct[s] = arg == y;
        if (dlogits)
            for (int c = 0; c < classes; c++) {
                double p = actlab_exp64((double)z[c] - lse);
                dlogits[s * classes + c] = (float)((p - (double)(c == y)) / (double)n);
            }
    }
}

// Per run: add this batch's loss (summed over its samples in order, as
// `BatchStats`) and its correct count to the run's totals.
extern "C" __global__ void add_batch_stats(const double* loss, const unsigned char* correct, int n, int runs,
                                           double* loss_total, unsigned long long* correct_total) {
    GRID_STRIDE(r, runs) {
        double batch = 0.0;
        unsigned long long right = 0;
        for (int s = 0; s < n; s++) {
            batch += loss[r * n + s];
            right += correct[r * n + s];
        }
        loss_total[r] += batch;
        correct_total[r] += right;
    }
}

// --------------------------------------------------------------- Adam --
// Keras' form (`adam.rs`); alpha is the step's bias-corrected rate.

extern "C" __global__ void adam(float* p, const float* g, float* m, float* v, long long count,
                                float alpha, float one_b1, float one_b2, float eps) {
    GRID_STRIDE(i, count) {
        m[i] += (g[i] - m[i]) * one_b1;
        v[i] += (g[i] * g[i] - v[i]) * one_b2;
        p[i] -= alpha * m[i] / (sqrtf(v[i]) + eps);
    }
}

// ---------------------------------------------------------------- SGD --
// Keras' SGD with momentum (`optim.rs`): v = momentum·v − lr·g; p += v.

extern "C" __global__ void sgd(float* p, const float* g, float* v, long long count, float lr, float momentum) {
    GRID_STRIDE(i, count) {
        v[i] = momentum * v[i] - lr * g[i];
        p[i] += v[i];
    }
}
