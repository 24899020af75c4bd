/* The layers and the two networks (course_utils/models.py), on one digit at a time.
 *
 * Tensors are flat float arrays in PyTorch's row-major order: a (C, H, W) feature map holds
 * pixel (c, y, x) at [(c * H + y) * W + x]. Weights are dense; a pruned weight is 0.
 */
#include "dlcz.h"

/* out (C_out, H - K + 1, W - K + 1) = bias + the K x K convolution of in (C_in, H, W) with
 * weight (C_out, C_in, K, K): stride 1, no padding, as nn.Conv2d computes it. */
void conv2d(const float *in, int height, int width, const Layer *layer, float *out)
{
    int c_out = (int)layer->shape[0], c_in = (int)layer->shape[1], k = (int)layer->shape[2];
    int out_h = height - k + 1, out_w = width - k + 1;
    for (int o = 0; o < c_out; o++) {
        float *plane = out + o * out_h * out_w;  /* (out_h, out_w) */
        for (int i = 0; i < out_h * out_w; i++)
            plane[i] = layer->bias[o];
        for (int c = 0; c < c_in; c++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) {
                    float w = layer->weight[((o * c_in + c) * k + ky) * k + kx];
                    if (w == 0.0f)
                        continue;  /* pruned: adds nothing */
                    /* every output pixel (y, x) gets w * in[c, y + ky, x + kx] */
                    for (int y = 0; y < out_h; y++) {
                        const float *src = in + (c * height + y + ky) * width + kx;
                        float *dst = plane + y * out_w;
                        for (int x = 0; x < out_w; x++)
                            dst[x] += w * src[x];
                    }
                }
    }
}

/* out (C, H / 2, W / 2) = the largest of each 2x2 block of in (C, H, W), as F.max_pool2d(x, 2). */
void max_pool2(const float *in, int channels, int height, int width, float *out)
{
    int out_h = height / 2, out_w = width / 2;
    for (int c = 0; c < channels; c++)
        for (int y = 0; y < out_h; y++)
            for (int x = 0; x < out_w; x++) {
                const float *top = in + (c * height + 2 * y) * width + 2 * x;
                const float *bottom = top + width;
                float m = top[0];
                if (top[1] > m) m = top[1];
                if (bottom[0] > m) m = bottom[0];
                if (bottom[1] > m) m = bottom[1];
                out[(c * out_h + y) * out_w + x] = m;
            }
}

void relu(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (x[i] < 0.0f)
            x[i] = 0.0f;
}

/* out (N_out,) = weight (N_out, N_in) @ in (N_in,) + bias, as nn.Linear computes it, reading
 * only the kept weights: row o's are w->value[j] at inputs w->column[j], j in start[o]..start[o+1).
 * The sum runs in the dense row's order, so the pruned zeros it skips change nothing. */
void linear(const float *in, const Layer *layer, float *out)
{
    const SparseRows *w = &layer->rows;
    for (uint32_t o = 0; o < layer->shape[0]; o++) {
        float sum = 0.0f;
        for (uint32_t j = w->start[o]; j < w->start[o + 1]; j++)
            sum += w->value[j] * in[w->column[j]];
        out[o] = sum + layer->bias[o];
    }
}

/* Caffe's LeNet-5 (models.CaffeLeNet5): the ReLU comes after each pooling, as in PyTorch's. */
static void lenet5(const Model *m, const float *image, float *logits)
{
    const Layer *conv1 = &m->layers[0], *conv2 = &m->layers[1];
    const Layer *fc1 = &m->layers[2], *fc2 = &m->layers[3];
    float c1[20 * 24 * 24], p1[20 * 12 * 12], c2[50 * 8 * 8], p2[50 * 4 * 4], f1[500];

    conv2d(image, 28, 28, conv1, c1);  /* (1, 28, 28) -> (20, 24, 24) */
    max_pool2(c1, 20, 24, 24, p1);     /* (20, 12, 12) */
    relu(p1, 20 * 12 * 12);
    conv2d(p1, 12, 12, conv2, c2);     /* (50, 8, 8) */
    max_pool2(c2, 50, 8, 8, p2);       /* (50, 4, 4), flattened: (800,) */
    relu(p2, 50 * 4 * 4);
    linear(p2, fc1, f1);               /* (500,) */
    relu(f1, 500);
    linear(f1, fc2, logits);           /* (10,) */
}

/* LeNet-300-100 (models.LeNet300): 784 -> 300 -> 100 -> 10 with ReLU between. */
static void lenet300(const Model *m, const float *image, float *logits)
{
    float h1[300], h2[100];

    linear(image, &m->layers[0], h1);  /* (784,) -> (300,) */
    relu(h1, 300);
    linear(h1, &m->layers[1], h2);     /* (100,) */
    relu(h2, 100);
    linear(h2, &m->layers[2], logits); /* (10,) */
}

void forward(const Model *model, const float *image, float logits[DLCZ_CLASSES])
{
    if (model->arch == ARCH_LENET5)
        lenet5(model, image, logits);
    else
        lenet300(model, image, logits);
}
