/* dlcz: the course's compact model file (course_utils/compact.py, notebook 13) run in plain C99.
 *
 * dlcz.c reads and checks the file and decodes every layer into dense fp32 weights, exactly as
 * compact.load_compact does, and keeps each linear layer's non-zero weights as sparse rows;
 * nets.c holds the layers and the two networks; fixed.c notebook 11's integer-only MLP, from a
 * fixed-point file of its own (course_utils/deploy.py writes it); main.c the program.
 */
#ifndef DLCZ_H
#define DLCZ_H

#include <stddef.h>
#include <stdint.h>

#define DLCZ_VERSION 1       /* the format version this program reads */
#define DLCZ_MAX_LAYERS 4    /* the most layers of a supported architecture */
#define DLCZ_CLASSES 10
#define DLCZ_PIXELS (28 * 28)
#define DLCZ_ERR_LEN 512     /* room for one error message */

typedef enum { ARCH_LENET5, ARCH_LENET300 } Arch;

/* A linear layer's non-zero weights, row by row ("compressed sparse rows"): row o holds
 * value[j] at input column[j], for j from start[o] to start[o + 1] - 1. Built once at load. */
typedef struct {
    uint32_t *start;     /* rows + 1 offsets into value and column */
    uint16_t *column;    /* which input each weight multiplies (inputs < 65,536) */
    float *value;        /* the weights, in row-major order */
} SparseRows;

/* One Conv2d or Linear layer, its weight dense and row-major as PyTorch holds it. */
typedef struct {
    const char *name;    /* "conv1", "fc1", ... */
    int ndim;            /* 4 for a convolution, 2 for a linear layer */
    uint32_t shape[4];   /* (out, in, kh, kw) or (out, in) */
    size_t numel;        /* weights in all */
    float *weight;       /* numel values; pruned weights are 0 */
    float *bias;         /* shape[0] values */
    SparseRows rows;     /* a linear layer's non-zero weights again: what linear() reads */
    /* what the file stored, for --info */
    uint32_t entries, fillers, kept, codebook_size;
    int value_bits, position_bits, huffman;
} Layer;

typedef struct {
    Arch arch;
    const char *arch_name;
    int n_layers;
    Layer layers[DLCZ_MAX_LAYERS];  /* in the network's order, whatever the file's order */
    size_t file_bytes;
} Model;

/* zlib's CRC-32 (the reflected polynomial 0xEDB88320) of n bytes. */
uint32_t dlcz_crc32(const uint8_t *data, size_t n);

/* The whole file at path, at most max_bytes, in a malloc'ed buffer; 0, or -1 with err set. */
int dlcz_read_file(const char *path, size_t max_bytes, uint8_t **data, size_t *size,
                   char *err, size_t err_len);

/* Read, check and decode a compact model file; 0, or -1 with a message in err (model freed). */
int dlcz_load(const char *path, Model *model, char *err, size_t err_len);
void dlcz_free(Model *model);

/* nets.c: the layers, on one digit at a time (batch 1). */
void conv2d(const float *in, int height, int width, const Layer *layer, float *out);
void max_pool2(const float *in, int channels, int height, int width, float *out);
void relu(float *x, size_t n);
void linear(const float *in, const Layer *layer, float *out);

/* The class scores of one normalised 28x28 digit. */
void forward(const Model *model, const float *image, float logits[DLCZ_CLASSES]);

/* fixed.c: notebook 11's integer-only MLP (fixed_point.FixedPointMLP), from its own file. */
#define DLFX_VERSION 1       /* the fixed-point format version this program reads */
#define DLFX_MAX_LAYERS 8
#define DLFX_MAX_UNITS 4096  /* the widest layer */

typedef struct {
    int outputs, inputs;
    int frac_weight, frac_out;  /* fractional bits of the weights and of the output */
    int shift;                  /* from the sum's format to the output's: F_in + F_w - F_out */
    int16_t *weight;            /* (outputs, inputs) row-major, W-bit integers */
    int32_t *bias;              /* (outputs,) 2W-bit integers in the sum's format */
} FixedLayer;

typedef struct {
    int bits;          /* W: every weight and activation is a W-bit integer */
    int frac_input;    /* fractional bits of the input */
    int n_layers;      /* Linear layers, a ReLU between two */
    FixedLayer layers[DLFX_MAX_LAYERS];
    size_t file_bytes;
} FixedModel;

/* Read and check a fixed-point model file; 0, or -1 with a message in err (model freed). */
int fixed_load(const char *path, FixedModel *model, char *err, size_t err_len);
void fixed_free(FixedModel *model);

/* One fp32 value in the W-bit format with F fractional bits, as fixed_point.to_fixed. */
int16_t fixed_input(float x, int bits, int frac_bits);

/* The integer class scores of one digit's 784 inputs, already in the input's format. */
void fixed_forward(const FixedModel *model, const int16_t *input, int32_t logits[DLCZ_CLASSES]);

#endif
