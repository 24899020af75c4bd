/* dlcz: run a compact model file on MNIST's test digits, one digit at a time, one thread.
 *
 *   make deploy    (cc -std=c99 -O2 -o build/deploy/dlcz deploy/dlcz.c deploy/fixed.c
 *                   deploy/nets.c deploy/main.c -lm)
 *   build/deploy/dlcz --accuracy model.dlcz
 *
 * It also runs notebook 11's integer-only MLP from a fixed-point file (fixed.c), told apart by
 * its first bytes: "DLCZ" for a compact file, "DLFX" for a fixed-point one.
 */
#define _POSIX_C_SOURCE 199309L  /* clock_gettime */
#include "dlcz.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* course_utils.load_mnist().train.mean and .std: the pixel statistics of the training split
 * (the 60,000 training digits less the 10,000 of the validation split drawn with seed 0). */
#define TRAIN_MEAN 0.13061873719487796
#define TRAIN_STD 0.30806204316803604
#define DEFAULT_DATA "data/mnist/MNIST/raw"
#define MAX_IDX_BYTES (256u << 20)

static const char USAGE[] =
    "usage: dlcz [options] MODEL.dlcz\n"
    "Runs a compact model file (course_utils/compact.py, notebook 13) on MNIST digits, one at a\n"
    "time (batch 1) on one thread. Architectures: lenet5 (Caffe LeNet-5) and lenet300.\n"
    "Also runs an integer-only fixed-point MLP file (course_utils/deploy.py, notebooks 11, 14),\n"
    "whose class scores are integers.\n"
    "\n"
    "  --predict       print the predicted class of each digit, one per line (the default)\n"
    "  --logits        print the 10 class scores of each digit, one line per digit\n"
    "  --accuracy      print the accuracy and the time per digit (reads the labels)\n"
    "  --info          print the file's architecture and layers, and stop\n"
    "  -n N            the first N digits only (default: all of them)\n"
    "  --data DIR      folder of the unpacked IDX files (default: " DEFAULT_DATA ",\n"
    "                  written by course_utils.data.prepare_mnist(), i.e. make data)\n"
    "  --images FILE   IDX image file (default: DIR/t10k-images-idx3-ubyte)\n"
    "  --labels FILE   IDX label file (default: DIR/t10k-labels-idx1-ubyte)\n"
    "  --mean M        pixels are normalised as (p / 255 - M) / S, in fp32, as course_utils.data\n"
    "  --std S         does; the defaults, 0.13061873719487796 and 0.30806204316803604, are\n"
    "                  load_mnist().train.mean and .std (pass the values of another split)\n"
    "  -h, --help      print this help\n"
    "\n"
    "Exit status: 0 on success, 1 for a missing or damaged file, 2 for bad arguments.\n";

typedef enum { PREDICT, LOGITS, ACCURACY, INFO } Mode;

/* The network of either kind of file. */
typedef struct {
    int fixed;          /* 1: integer-only (a "DLFX" file), 0: a compact file ("DLCZ") */
    Model model;
    FixedModel fixed_model;
} Net;

typedef struct {
    Mode mode;
    const char *model, *data, *images, *labels;
    long count;  /* digits to run; 0 = all */
    double mean, std;
} Options;

static int usage_error(const char *message, const char *arg)
{
    fprintf(stderr, "dlcz: %s%s%s\n(dlcz --help lists the options)\n", message,
            arg ? ": " : "", arg ? arg : "");
    return -1;
}

static int parse_number(const char *text, double *value)
{
    char *end;
    *value = strtod(text, &end);
    return end != text && *end == '\0' && isfinite((float)*value) ? 0 : -1;  /* used as fp32 */
}

/* 0, 1 for --help, or -1 after a message. */
static int parse_args(int argc, char **argv, Options *opt)
{
    static char images[4096], labels[4096];
    *opt = (Options){PREDICT, NULL, DEFAULT_DATA, NULL, NULL, 0, TRAIN_MEAN, TRAIN_STD};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        int takes_value = !strcmp(arg, "-n") || !strcmp(arg, "--data") || !strcmp(arg, "--images")
                          || !strcmp(arg, "--labels") || !strcmp(arg, "--mean")
                          || !strcmp(arg, "--std");
        if (takes_value && !value)
            return usage_error("this option needs a value", arg);
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help"))
            return 1;
        else if (!strcmp(arg, "--predict"))
            opt->mode = PREDICT;
        else if (!strcmp(arg, "--logits"))
            opt->mode = LOGITS;
        else if (!strcmp(arg, "--accuracy"))
            opt->mode = ACCURACY;
        else if (!strcmp(arg, "--info"))
            opt->mode = INFO;
        else if (!strcmp(arg, "-n")) {
            char *end;
            opt->count = strtol(value, &end, 10);
            if (end == value || *end != '\0' || opt->count < 1)
                return usage_error("-n needs a whole number of digits, at least 1", value);
        } else if (!strcmp(arg, "--data"))
            opt->data = value;
        else if (!strcmp(arg, "--images"))
            opt->images = value;
        else if (!strcmp(arg, "--labels"))
            opt->labels = value;
        else if (!strcmp(arg, "--mean")) {
            if (parse_number(value, &opt->mean) < 0)
                return usage_error("--mean needs a number", value);
        } else if (!strcmp(arg, "--std")) {
            if (parse_number(value, &opt->std) < 0 || !((float)opt->std > 0))
                return usage_error("--std needs a number above 0", value);
        } else if (arg[0] == '-' && arg[1] != '\0')
            return usage_error("unknown option", arg);
        else if (opt->model)
            return usage_error("one model file only; a second one given", arg);
        else
            opt->model = arg;
        i += takes_value;
    }
    if (!opt->model)
        return usage_error("no model file given", NULL);
    if (!opt->images) {
        snprintf(images, sizeof images, "%s/t10k-images-idx3-ubyte", opt->data);
        opt->images = images;
    }
    if (!opt->labels) {
        snprintf(labels, sizeof labels, "%s/t10k-labels-idx1-ubyte", opt->data);
        opt->labels = labels;
    }
    return 0;
}

/* ---- the IDX files (big-endian header, then one byte per pixel or label) ---- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

#define IDX_HINT "Unpack the shipped files again with `make data`."

/* The items of an IDX file of unsigned bytes with `dims` dimensions, each item `item_bytes`. */
static int read_idx(const char *path, int dims, size_t item_bytes, uint8_t **data,
                    uint32_t *count, char *err, size_t err_len)
{
    size_t size, header = 4 + 4 * (size_t)dims;
    if (dlcz_read_file(path, MAX_IDX_BYTES, data, &size, err, err_len) < 0)
        return -1;
    if (size < header || be32(*data) != (0x0800u | (uint32_t)dims)) {
        snprintf(err, err_len, "%s: not an IDX file of %s (its first bytes are not 00 00 08 %02x "
                 "and a %zu-byte header). %s", path, dims == 3 ? "images" : "labels", dims,
                 header, IDX_HINT);
        return -1;
    }
    *count = be32(*data + 4);
    if (dims == 3 && (be32(*data + 8) != 28 || be32(*data + 12) != 28)) {
        snprintf(err, err_len, "%s: images of %u x %u pixels, the networks read 28 x 28",
                 path, be32(*data + 8), be32(*data + 12));
        return -1;
    }
    if ((uint64_t)(size - header) != (uint64_t)*count * item_bytes) {
        snprintf(err, err_len, "%s: its header announces %u items of %zu bytes, it holds %zu "
                 "bytes after the header: cut short or malformed. %s", path, *count, item_bytes,
                 size - header, IDX_HINT);
        return -1;
    }
    return 0;
}

static void print_fixed_info(const FixedModel *m)
{
    printf("fixed-point MLP, %d-bit words, format version %d, %zu bytes\n", m->bits, DLFX_VERSION,
           m->file_bytes);
    printf("input: %d fractional bits\n", m->frac_input);
    for (int l = 0; l < m->n_layers; l++) {
        const FixedLayer *layer = &m->layers[l];
        printf("layer %d (%d, %d): weights %d, output %d fractional bits, sums shifted right by "
               "%d%s\n", l + 1, layer->outputs, layer->inputs, layer->frac_weight,
               layer->frac_out, layer->shift, l + 1 < m->n_layers ? ", then ReLU" : "");
    }
}

static void print_info(const Model *m)
{
    printf("%s, format version %d, %zu bytes\n", m->arch_name, DLCZ_VERSION, m->file_bytes);
    for (int i = 0; i < m->n_layers; i++) {
        const Layer *l = &m->layers[i];
        printf("%-5s (%u", l->name, l->shape[0]);
        for (int d = 1; d < l->ndim; d++)
            printf(", %u", l->shape[d]);
        printf("): %u of %zu weights kept, %u values shared, %u entries (%u fillers), "
               "%d-bit values and %d-bit gaps, %s\n", l->kept, l->numel, l->codebook_size,
               l->entries, l->fillers, l->value_bits, l->position_bits,
               l->huffman ? "Huffman-coded" : "fixed width");
    }
}

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int run(const Options *opt, const Net *net, char *err, size_t err_len)
{
    uint8_t *images = NULL, *labels = NULL;
    uint32_t n_images, n_labels;
    double *times = NULL;
    long n, correct = 0;
    int status = -1;
    const float mean = (float)opt->mean, std = (float)opt->std;
    int16_t fixed_pixel[256];  /* the input integer of each pixel value, for a fixed-point net */

    for (int p = 0; net->fixed && p < 256; p++)
        fixed_pixel[p] = fixed_input(((float)p / 255.0f - mean) / std, net->fixed_model.bits,
                                     net->fixed_model.frac_input);

    if (read_idx(opt->images, 3, DLCZ_PIXELS, &images, &n_images, err, err_len) < 0)
        goto done;
    if (opt->mode == ACCURACY) {
        if (read_idx(opt->labels, 1, 1, &labels, &n_labels, err, err_len) < 0)
            goto done;
        if (n_labels != n_images) {
            snprintf(err, err_len, "%s has %u labels for the %u images of %s", opt->labels,
                     n_labels, n_images, opt->images);
            goto done;
        }
        for (uint32_t d = 0; d < n_labels; d++)
            if (labels[8 + d] >= DLCZ_CLASSES) {
                snprintf(err, err_len, "%s: label %u of digit %u is not a class 0..9. %s",
                         opt->labels, labels[8 + d], d, IDX_HINT);
                goto done;
            }
    }
    n = opt->count ? opt->count : (long)n_images;
    if (n > (long)n_images || n == 0) {
        snprintf(err, err_len, "%s holds %u digits, %ld asked for", opt->images, n_images, n);
        goto done;
    }
    if (opt->mode == ACCURACY && !(times = malloc((size_t)n * sizeof *times))) {
        snprintf(err, err_len, "out of memory");
        goto done;
    }
    for (long d = 0; d < n; d++) {
        const uint8_t *pixels = images + 16 + (size_t)d * DLCZ_PIXELS;
        float x[DLCZ_PIXELS], logits[DLCZ_CLASSES];
        int16_t q[DLCZ_PIXELS];
        int32_t scores[DLCZ_CLASSES];
        int best = 0;
        double start;
        for (int i = 0; i < DLCZ_PIXELS; i++)  /* as DigitDataset: x / 255 - mean, / std */
            if (net->fixed)
                q[i] = fixed_pixel[pixels[i]];
            else
                x[i] = ((float)pixels[i] / 255.0f - mean) / std;
        start = seconds();
        if (net->fixed)
            fixed_forward(&net->fixed_model, q, scores);
        else
            forward(&net->model, x, logits);
        if (times)
            times[d] = seconds() - start;
        for (int c = 0; net->fixed && c < DLCZ_CLASSES; c++)
            logits[c] = (float)scores[c];  /* integers below 2^16: exact in fp32 */
        for (int c = 1; c < DLCZ_CLASSES; c++)  /* the first of equal scores, as torch.argmax */
            if (logits[c] > logits[best])
                best = c;
        if (opt->mode == PREDICT)
            printf("%d\n", best);
        else if (opt->mode == LOGITS && net->fixed)
            for (int c = 0; c < DLCZ_CLASSES; c++)
                printf("%ld%c", (long)scores[c], c + 1 < DLCZ_CLASSES ? ' ' : '\n');
        else if (opt->mode == LOGITS)
            for (int c = 0; c < DLCZ_CLASSES; c++)
                printf("%.9g%c", logits[c], c + 1 < DLCZ_CLASSES ? ' ' : '\n');
        else
            correct += best == labels[8 + d];
    }
    if (opt->mode == ACCURACY) {
        double total = 0;
        for (long d = 0; d < n; d++)
            total += times[d];
        qsort(times, (size_t)n, sizeof *times, by_value);
        printf("%s: accuracy %.4f (%ld of %ld digits)\n",
               net->fixed ? "fixed-point" : net->model.arch_name,
               (double)correct / (double)n, correct, n);
        printf("time per digit: %.4f ms on average, %.4f ms median (batch 1, one thread, "
               "forward pass only)\n", 1e3 * total / (double)n, 1e3 * times[n / 2]);
    }
    status = 0;
done:
    free(images);
    free(labels);
    free(times);
    return status;
}

/* Whether the file starts with the fixed-point magic "DLFX" (else it is read as a compact file,
 * whose reader reports a missing file or a wrong magic). */
static int is_fixed_point_file(const char *path)
{
    char magic[4];
    FILE *file = fopen(path, "rb");
    size_t n = file ? fread(magic, 1, sizeof magic, file) : 0;
    if (file)
        fclose(file);
    return n == sizeof magic && memcmp(magic, "DLFX", sizeof magic) == 0;
}

static void free_net(Net *net)
{
    if (net->fixed)
        fixed_free(&net->fixed_model);
    else
        dlcz_free(&net->model);
}

int main(int argc, char **argv)
{
    Options opt;
    static Net net;
    char err[DLCZ_ERR_LEN + 4096];
    int status = parse_args(argc, argv, &opt);

    if (status == 1) {
        fputs(USAGE, stdout);
        return 0;
    }
    if (status < 0)
        return 2;
    net.fixed = is_fixed_point_file(opt.model);
    if ((net.fixed ? fixed_load(opt.model, &net.fixed_model, err, sizeof err)
                   : dlcz_load(opt.model, &net.model, err, sizeof err)) < 0) {
        fprintf(stderr, "dlcz: error: %s\n", err);
        return 1;
    }
    if (opt.mode == INFO && net.fixed)
        print_fixed_info(&net.fixed_model);
    else if (opt.mode == INFO)
        print_info(&net.model);
    else if (run(&opt, &net, err, sizeof err) < 0) {
        fflush(stdout);
        fprintf(stderr, "dlcz: error: %s\n", err);
        free_net(&net);
        return 1;
    }
    free_net(&net);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "dlcz: error: cannot write the output\n");
        return 1;
    }
    return 0;
}
