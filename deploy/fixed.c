/* Integer-only inference: notebook 11's fixed-point LeNet-300-100 (fixed_point.FixedPointMLP),
 * read from a small file of its own and run with integer arithmetic only, bit for bit as
 * FixedPointMLP computes it.
 *
 * The format (course_utils/deploy.py writes it: fixed_bytes), little-endian throughout:
 *
 *   magic "DLFX", format version (u8)
 *   word bits W (u8, 2..16), fractional bits of the input (i8), number of layers (u8)
 *   per layer, in order (a ReLU follows every layer but the last):
 *     outputs, inputs (u16 each); fractional bits of the weights and of the output (i8 each)
 *     the weights, outputs x inputs W-bit integers, row-major: i8 each if W <= 8, else i16
 *     the biases, outputs 2W-bit integers (i32 each), in the accumulator's format
 *   CRC-32 of every byte before it (u32)
 *
 * A tensor with F fractional bits holds the real q * 2^-F. A layer with input format F_in and
 * weights F_w sums products in the format F_in + F_w (the bias is stored in it), and shifts the
 * sum right by F_in + F_w - F_out, rounding half up, to the output's format, saturating to W bits.
 */
#include "dlcz.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FIXED_BYTES (16u << 20)
#define FIXED_HINT "Write it again with deploy.write_fixed (notebook 14 does), or copy an intact " \
    "one."

static int fail(char *err, size_t err_len, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(err, err_len, format, args);
    va_end(args);
    return -1;
}

/* Little-endian integers, two's complement written out (C99 leaves converting an out-of-range
 * unsigned value to a signed type to the compiler). */
static int i8(const uint8_t *p) { return p[0] < 0x80 ? p[0] : p[0] - 0x100; }

static long i16le(const uint8_t *p)
{
    long u = (long)p[0] | (long)p[1] << 8;
    return u < 0x8000 ? u : u - 0x10000;
}

static uint32_t u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int64_t i32le(const uint8_t *p)
{
    int64_t u = u32le(p);
    return u < 0x80000000 ? u : u - 0x100000000;
}

/* The fields of a body whose CRC-32 is verified, after the magic and the version. */
static int parse_fixed(const uint8_t *p, size_t size, FixedModel *m, char *err, size_t err_len)
{
    size_t pos = 5;
    int64_t lo, hi, bias_lo, bias_hi;
    int frac_in;
    if (size < pos + 3)
        return fail(err, err_len, "the header is cut short. %s", FIXED_HINT);
    m->bits = p[pos];
    m->frac_input = frac_in = i8(p + pos + 1);
    m->n_layers = p[pos + 2];
    pos += 3;
    if (m->bits < 2 || m->bits > 16)
        return fail(err, err_len, "%d-bit words; this program runs 2 to 16 bits", m->bits);
    if (m->n_layers < 1 || m->n_layers > DLFX_MAX_LAYERS)
        return fail(err, err_len, "%d layers; this program runs 1 to %d", m->n_layers,
                    DLFX_MAX_LAYERS);
    lo = -((int64_t)1 << (m->bits - 1));
    hi = ((int64_t)1 << (m->bits - 1)) - 1;
    bias_lo = -((int64_t)1 << (2 * m->bits - 1));
    bias_hi = ((int64_t)1 << (2 * m->bits - 1)) - 1;
    for (int l = 0; l < m->n_layers; l++) {
        FixedLayer *layer = &m->layers[l];
        size_t weight_bytes = m->bits <= 8 ? 1 : 2, n;
        if (size - pos < 6)
            return fail(err, err_len, "layer %d's header is cut short. %s", l + 1, FIXED_HINT);
        layer->outputs = (int)(p[pos] | p[pos + 1] << 8);
        layer->inputs = (int)(p[pos + 2] | p[pos + 3] << 8);
        layer->frac_weight = i8(p + pos + 4);
        layer->frac_out = i8(p + pos + 5);
        pos += 6;
        if (layer->inputs != (l == 0 ? DLCZ_PIXELS : m->layers[l - 1].outputs))
            return fail(err, err_len, "layer %d reads %d inputs, not %d (the %s)", l + 1,
                        layer->inputs, l == 0 ? DLCZ_PIXELS : m->layers[l - 1].outputs,
                        l == 0 ? "pixels" : "previous layer's outputs");
        if (layer->outputs < 1 || layer->outputs > DLFX_MAX_UNITS)
            return fail(err, err_len, "layer %d has %d outputs; this program runs 1 to %d",
                        l + 1, layer->outputs, DLFX_MAX_UNITS);
        /* |W q| < 2^12 inputs x 2^30 and |bias| < 2^31: a sum below 2^43, which shifted left
         * by up to 16 bits still fits int64 */
        layer->shift = frac_in + layer->frac_weight - layer->frac_out;
        if (layer->shift < -16 || layer->shift > 62)
            return fail(err, err_len, "layer %d shifts its sums by %d bits; this program "
                        "shifts -16 to 62 bits", l + 1, layer->shift);
        n = (size_t)layer->outputs * (size_t)layer->inputs;
        if (size - pos < n * weight_bytes + 4 * (size_t)layer->outputs)
            return fail(err, err_len, "layer %d's weights and biases are cut short. %s", l + 1,
                        FIXED_HINT);
        layer->weight = malloc(n * sizeof *layer->weight);
        layer->bias = malloc((size_t)layer->outputs * sizeof *layer->bias);
        if (!layer->weight || !layer->bias)
            return fail(err, err_len, "out of memory");
        for (size_t i = 0; i < n; i++) {
            long w = weight_bytes == 1 ? i8(p + pos + i) : i16le(p + pos + 2 * i);
            if (w < lo || w > hi)
                return fail(err, err_len, "layer %d: weight %ld does not fit in %d bits. %s",
                            l + 1, w, m->bits, FIXED_HINT);
            layer->weight[i] = (int16_t)w;
        }
        pos += n * weight_bytes;
        for (int o = 0; o < layer->outputs; o++) {
            int64_t b = i32le(p + pos + 4 * (size_t)o);
            if (b < bias_lo || b > bias_hi)
                return fail(err, err_len, "layer %d: bias %lld does not fit in %d bits. %s",
                            l + 1, (long long)b, 2 * m->bits, FIXED_HINT);
            layer->bias[o] = (int32_t)b;
        }
        pos += 4 * (size_t)layer->outputs;
        frac_in = layer->frac_out;
    }
    if (m->layers[m->n_layers - 1].outputs != DLCZ_CLASSES)
        return fail(err, err_len, "the last layer has %d outputs, not the %d classes",
                    m->layers[m->n_layers - 1].outputs, DLCZ_CLASSES);
    if (pos != size)
        return fail(err, err_len, "%zu unexpected bytes after the last layer. %s", size - pos,
                    FIXED_HINT);
    return 0;
}

int fixed_load(const char *path, FixedModel *model, char *err, size_t err_len)
{
    uint8_t *data;
    size_t size;
    char message[DLCZ_ERR_LEN];
    int status = -1;
    memset(model, 0, sizeof *model);
    if (dlcz_read_file(path, MAX_FIXED_BYTES, &data, &size, err, err_len) < 0)
        return -1;
    model->file_bytes = size;
    if (size < 4 || memcmp(data, "DLFX", 4) != 0)
        snprintf(message, sizeof message, "not a fixed-point model file: it does not start with "
                 "\"DLFX\" (wrong magic). %s", FIXED_HINT);
    else if (size < 4 + 1 + 4)
        snprintf(message, sizeof message, "the file is only %zu bytes long: it was cut short. "
                 "%s", size, FIXED_HINT);
    else if (dlcz_crc32(data, size - 4) != u32le(data + size - 4))
        snprintf(message, sizeof message, "the file's CRC-32 does not match its contents: it was "
                 "cut short or altered. %s", FIXED_HINT);
    else if (data[4] != DLFX_VERSION)
        snprintf(message, sizeof message, "format version %d; this program reads fixed-point "
                 "version %d", data[4], DLFX_VERSION);
    else
        status = parse_fixed(data, size - 4, model, message, sizeof message);
    free(data);
    if (status < 0) {
        snprintf(err, err_len, "%s: %s", path, message);
        fixed_free(model);
    }
    return status;
}

void fixed_free(FixedModel *model)
{
    for (int l = 0; l < DLFX_MAX_LAYERS; l++) {
        free(model->layers[l].weight);
        free(model->layers[l].bias);
    }
    memset(model, 0, sizeof *model);
}

/* to_fixed(x, bits, frac_bits) of one fp32 value: x 2^F rounded half up (floor, then up when the
 * fraction is at least 1/2, all in fp32 as fixed_point.rounded_steps does), saturated. */
int16_t fixed_input(float x, int bits, int frac_bits)
{
    float scaled = x * ldexpf(1.0f, frac_bits), below = floorf(scaled);
    float q = below + (scaled - below >= 0.5f ? 1.0f : 0.0f);
    float lo = -ldexpf(1.0f, bits - 1), hi = ldexpf(1.0f, bits - 1) - 1.0f;
    return (int16_t)(q < lo ? lo : q > hi ? hi : q);
}

/* acc 2^-shift rounded half up, as fixed_point.shift_round: (acc + 2^(shift-1)) >> shift, with a
 * floor division written out (C leaves >> of a negative number to the compiler). */
static int64_t shift_round(int64_t acc, int shift)
{
    if (shift <= 0)
        return acc * ((int64_t)1 << -shift);
    acc += (int64_t)1 << (shift - 1);
    return acc >= 0 ? acc >> shift : -((-acc - 1) >> shift) - 1;
}

/* One layer: out (N_out,) = saturate(shift_round(W q + b, shift)), ReLU on the sum if asked. */
static void fixed_linear(const int16_t *in, const FixedLayer *layer, int relu, int bits,
                         int16_t *out)
{
    const int64_t lo = -((int64_t)1 << (bits - 1)), hi = ((int64_t)1 << (bits - 1)) - 1;
    for (int o = 0; o < layer->outputs; o++) {
        const int16_t *row = layer->weight + (size_t)o * layer->inputs;
        int64_t acc = layer->bias[o];
        for (int i = 0; i < layer->inputs; i++)
            acc += (int32_t)row[i] * in[i];  /* an exact product of two words, below 2^30 */
        if (relu && acc < 0)
            acc = 0;
        acc = shift_round(acc, layer->shift);
        out[o] = (int16_t)(acc < lo ? lo : acc > hi ? hi : acc);
    }
}

void fixed_forward(const FixedModel *model, const int16_t *input, int32_t logits[DLCZ_CLASSES])
{
    int16_t a[DLFX_MAX_UNITS], b[DLFX_MAX_UNITS];
    const int16_t *x = input;
    for (int l = 0; l < model->n_layers; l++) {
        int16_t *y = l % 2 ? b : a;
        fixed_linear(x, &model->layers[l], l < model->n_layers - 1, model->bits, y);
        x = y;
    }
    for (int c = 0; c < DLCZ_CLASSES; c++)
        logits[c] = x[c];
}
