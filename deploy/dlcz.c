/* The compact model file: read, checked by CRC-32, decoded into dense fp32 weights.
 *
 * The format (course_utils/compact.py), little-endian throughout:
 *
 *   magic "DLCZ", version (u8), architecture: name length (u8) and name
 *   number of layers (u8), then per layer:
 *     name length (u8), name; number of dimensions (u8), each dimension (u32); entries (u32)
 *     value bits, position bits (u8 each); flags (u8: 1 = Huffman-coded, 2 = has a bias)
 *     codebook size k (u16), the k shared values (fp32 each)
 *     if Huffman-coded: a code length (u8, 0 = unused) per possible value index, then per gap
 *     value stream, then position stream: byte length (u32) and the bytes
 *     if it has a bias: shape[0] values (fp32 each)
 *   CRC-32 of every byte before it (u32)
 *
 * A layer is a list of entries, one per kept weight in row-major order (deep_compression.py):
 * a value index (0 means 0.0, i means codebook[i - 1]) and the gap to the previous entry minus 1.
 * A gap too large for the position bits is bridged by "filler" entries of value 0.
 * Both streams are packed most significant bit first, at fixed width or Huffman-coded with the
 * canonical code of the stored lengths (huffman.canonical_codes).
 *
 * Every length read from the file is checked against the bytes left before it is used.
 */
#include "dlcz.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HUFFMAN 1
#define HAS_BIAS 2
#define MAX_FIELD_BITS 32   /* widest value index or gap this program reads */
#define MAX_TABLE_BITS 26   /* a table of 2^26 bytes already fills the largest file read */
#define MAX_CODE_BITS 56    /* longest Huffman code; u32 entry counts never need more than 46 */
#define MAX_MODEL_BYTES (64u << 20)
#define HINT "Write it again with compact.write_compact (notebook 13 does), or copy an intact one."

/* The layers of each architecture this program runs (course_utils/models.py). */
typedef struct {
    const char *name;
    int ndim;
    uint32_t shape[4];
} LayerSpec;

typedef struct {
    const char *name;
    Arch arch;
    int n_layers;
    LayerSpec layers[DLCZ_MAX_LAYERS];
} ArchSpec;

static const ArchSpec ARCHS[] = {
    {"lenet5", ARCH_LENET5, 4, {{"conv1", 4, {20, 1, 5, 5}}, {"conv2", 4, {50, 20, 5, 5}},
                                {"fc1", 2, {500, 800}}, {"fc2", 2, {10, 500}}}},
    {"lenet300", ARCH_LENET300, 3, {{"fc1", 2, {300, 784}}, {"fc2", 2, {100, 300}},
                                    {"fc3", 2, {10, 100}}}},
};

static int fail(char *err, size_t err_len, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(err, err_len, format, args);
    va_end(args);
    return -1;
}

uint32_t dlcz_crc32(const uint8_t *data, size_t n)
{
    static uint32_t table[256];
    static int ready = 0;
    uint32_t crc = 0xFFFFFFFFu;
    if (!ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    for (size_t i = 0; i < n; i++)
        crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

int dlcz_read_file(const char *path, size_t max_bytes, uint8_t **data, size_t *size,
                   char *err, size_t err_len)
{
    FILE *file = fopen(path, "rb");
    uint8_t *buffer = NULL;
    size_t used = 0, capacity = 0;
    *data = NULL;
    *size = 0;
    if (!file)
        return fail(err, err_len, "%s: cannot open it: %s", path, strerror(errno));
    for (;;) {
        if (used == capacity) {
            size_t grown = capacity ? 2 * capacity : 1 << 16;
            uint8_t *bigger;
            if (capacity > max_bytes) {
                fclose(file);
                free(buffer);
                return fail(err, err_len, "%s is larger than %zu MiB, too large to be a file "
                            "this program reads", path, max_bytes >> 20);
            }
            bigger = realloc(buffer, grown);
            if (!bigger) {
                fclose(file);
                free(buffer);
                return fail(err, err_len, "%s: out of memory", path);
            }
            buffer = bigger;
            capacity = grown;
        }
        used += fread(buffer + used, 1, capacity - used, file);
        if (ferror(file)) {
            int code = errno;
            fclose(file);
            free(buffer);
            return fail(err, err_len, "%s: cannot read it: %s", path, strerror(code));
        }
        if (feof(file))
            break;
    }
    fclose(file);
    if (used > max_bytes) {
        free(buffer);
        return fail(err, err_len, "%s is larger than %zu MiB, too large to be a file this "
                    "program reads", path, max_bytes >> 20);
    }
    *data = buffer;
    *size = used;
    return 0;
}

/* ---- reading fields in order ---- */

typedef struct {
    const uint8_t *data;
    size_t size, pos;
    char *err;
    size_t err_len;
} Reader;

/* The next n bytes, or NULL (and an error) when fewer are left. */
static const uint8_t *take(Reader *r, size_t n, const char *what)
{
    const uint8_t *p;
    if (n > r->size - r->pos) {
        fail(r->err, r->err_len, "%s needs %zu bytes at byte %zu, the file has %zu left before "
             "its CRC. %s", what, n, r->pos, r->size - r->pos, HINT);
        return NULL;
    }
    p = r->data + r->pos;
    r->pos += n;
    return p;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static float le_float(const uint8_t *p)
{
    uint32_t bits = le32(p);
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

/* A length-prefixed name, as a printable C string (other bytes shown as '?'). */
static int read_name(Reader *r, char out[256], const char *what)
{
    const uint8_t *length = take(r, 1, what), *bytes;
    if (!length || !(bytes = take(r, *length, what)))
        return -1;
    for (int i = 0; i < *length; i++)
        out[i] = (bytes[i] >= 32 && bytes[i] < 127) ? (char)bytes[i] : '?';
    out[*length] = '\0';
    return 0;
}

/* ---- the two streams: fixed-width fields or canonical Huffman codes ---- */

typedef struct {
    const uint8_t *data;
    uint64_t n_bits, pos;
} BitReader;

static int next_bit(BitReader *b)
{
    int bit;
    if (b->pos >= b->n_bits)
        return -1;
    bit = (b->data[b->pos >> 3] >> (7 - (b->pos & 7))) & 1;  /* most significant bit first */
    b->pos++;
    return bit;
}

/* Canonical code from code lengths, as huffman.canonical_codes builds it: symbols sorted by
 * (length, symbol) get consecutive codes; one bit longer means the next code shifted left. */
typedef struct {
    int max_length;
    uint32_t count[MAX_CODE_BITS + 1];  /* symbols of each length */
    uint32_t *symbols;                  /* sorted by (length, symbol) */
} Huffman;

static int huffman_build(Huffman *h, const uint8_t *lengths, size_t n, const char *stream,
                         const char *layer, char *err, size_t err_len)
{
    uint32_t offset[MAX_CODE_BITS + 2];
    int64_t left = 1;  /* codes still free at the current length (Kraft's inequality) */
    size_t used = 0;
    memset(h, 0, sizeof *h);
    for (size_t s = 0; s < n; s++) {
        if (lengths[s] > MAX_CODE_BITS)
            return fail(err, err_len, "layer %s: a %d-bit %s code, longer than the %d bits this "
                        "program decodes", layer, lengths[s], stream, MAX_CODE_BITS);
        if (lengths[s]) {
            h->count[lengths[s]]++;
            used++;
            if (lengths[s] > h->max_length)
                h->max_length = lengths[s];
        }
    }
    for (int length = 1; length <= h->max_length; length++) {
        left = 2 * left - h->count[length];
        if (left < 0)
            return fail(err, err_len, "layer %s: the %s code lengths are no prefix code (more "
                        "codes than bits allow). %s", layer, stream, HINT);
    }
    h->symbols = malloc((used ? used : 1) * sizeof *h->symbols);
    if (!h->symbols)
        return fail(err, err_len, "out of memory");
    offset[1] = 0;
    for (int length = 1; length <= MAX_CODE_BITS; length++)
        offset[length + 1] = offset[length] + h->count[length];
    for (size_t s = 0; s < n; s++)
        if (lengths[s])
            h->symbols[offset[lengths[s]]++] = (uint32_t)s;
    return 0;
}

/* The next symbol; -1 when the stream ends first, -2 for bits that are no code. */
static int64_t huffman_next(const Huffman *h, BitReader *b)
{
    uint64_t code = 0, first = 0, index = 0;  /* first: the first code of this length */
    for (int length = 1; length <= h->max_length; length++) {
        int bit = next_bit(b);
        if (bit < 0)
            return -1;
        code |= (uint64_t)bit;
        if (code - first < h->count[length])
            return h->symbols[index + (code - first)];
        index += h->count[length];
        first = (first + h->count[length]) << 1;
        code <<= 1;
    }
    return -2;
}

static int64_t fixed_next(int bits, BitReader *b)
{
    uint64_t value = 0;
    for (int i = 0; i < bits; i++) {
        int bit = next_bit(b);
        if (bit < 0)
            return -1;
        value = value << 1 | (uint64_t)bit;
    }
    return (int64_t)value;
}

typedef struct {
    BitReader bits;
    int width;        /* fixed width in bits, when not Huffman-coded */
    Huffman *code;    /* or the Huffman code */
    const char *name;
} Stream;

static int64_t stream_next(Stream *s, const Layer *layer, uint32_t entry, char *err,
                           size_t err_len)
{
    int64_t symbol = s->code ? huffman_next(s->code, &s->bits) : fixed_next(s->width, &s->bits);
    if (symbol == -1)
        fail(err, err_len, "layer %s: the %s stream ends after %u of its %u entries. %s",
             layer->name, s->name, entry, layer->entries, HINT);
    else if (symbol == -2)
        fail(err, err_len, "layer %s: the %s stream holds bits that are no code (entry %u). %s",
             layer->name, s->name, entry, HINT);
    return symbol;
}

/* ---- one layer record ---- */

static const LayerSpec *find_layer(const ArchSpec *spec, const char *name)
{
    for (int i = 0; i < spec->n_layers; i++)
        if (strcmp(spec->layers[i].name, name) == 0)
            return &spec->layers[i];
    return NULL;
}

static int read_floats(Reader *r, uint32_t n, float *out, const char *what, const char *layer)
{
    const uint8_t *p = take(r, (size_t)n * 4, what);
    if (!p)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        out[i] = le_float(p + 4 * i);
        if (!isfinite(out[i]))
            return fail(r->err, r->err_len, "layer %s: its %s holds a value that is not a finite "
                        "number (%g). %s", layer, what, out[i], HINT);
    }
    return 0;
}

static int read_layer(Reader *r, const ArchSpec *spec, Model *model)
{
    char name[256];
    const uint8_t *p, *value_table = NULL, *position_table = NULL, *values, *positions;
    const LayerSpec *layer_spec;
    Layer *layer;
    uint32_t k, value_bytes, position_bytes;
    int ndim, flags, status = -1;
    float *codebook = NULL;
    Huffman value_code = {0}, position_code = {0};
    Stream value_stream, position_stream;
    uint64_t next_position = 0;  /* one past the previous entry's position */

    if (read_name(r, name, "a layer name") < 0)
        return -1;
    layer_spec = find_layer(spec, name);
    if (!layer_spec)
        return fail(r->err, r->err_len, "the file has a layer '%s'; %s has no such layer",
                    name, spec->name);
    layer = &model->layers[layer_spec - spec->layers];
    if (layer->weight)
        return fail(r->err, r->err_len, "layer %s appears twice in the file", name);
    layer->name = layer_spec->name;

    if (!(p = take(r, 1, "the number of dimensions")))
        return -1;
    ndim = *p;
    if (!(p = take(r, (size_t)4 * ndim, "the layer's shape")))
        return -1;
    if (ndim != layer_spec->ndim)
        return fail(r->err, r->err_len, "layer %s has %d dimensions in the file, %s's has %d",
                    name, ndim, spec->name, layer_spec->ndim);
    layer->ndim = ndim;
    layer->numel = 1;
    for (int d = 0; d < ndim; d++) {
        layer->shape[d] = le32(p + 4 * d);
        if (layer->shape[d] != layer_spec->shape[d])
            return fail(r->err, r->err_len, "layer %s: dimension %d is %u in the file, %s's is %u",
                        name, d, layer->shape[d], spec->name, layer_spec->shape[d]);
        layer->numel *= layer->shape[d];
    }

    if (!(p = take(r, 9, "the entry count, bit widths, flags and codebook size")))
        return -1;
    layer->entries = le32(p);
    layer->value_bits = p[4];
    layer->position_bits = p[5];
    flags = p[6];
    k = (uint32_t)p[7] | (uint32_t)p[8] << 8;
    layer->codebook_size = k;
    layer->huffman = flags & HUFFMAN;
    if (flags & ~(HUFFMAN | HAS_BIAS))
        return fail(r->err, r->err_len, "layer %s: unknown flags 0x%02x", name, flags);
    if (!(flags & HAS_BIAS))
        return fail(r->err, r->err_len, "layer %s has no bias in the file; %s's layers all have "
                    "one", name, spec->name);
    if (layer->value_bits > MAX_FIELD_BITS || layer->position_bits > MAX_FIELD_BITS)
        return fail(r->err, r->err_len, "layer %s: %d-bit values and %d-bit positions; this "
                    "program reads at most %d bits", name, layer->value_bits,
                    layer->position_bits, MAX_FIELD_BITS);
    if (layer->huffman && (layer->value_bits > MAX_TABLE_BITS
                           || layer->position_bits > MAX_TABLE_BITS))
        return fail(r->err, r->err_len, "layer %s: code length tables of 2^%d and 2^%d bytes "
                    "cannot fit in the file. %s", name, layer->value_bits, layer->position_bits,
                    HINT);

    codebook = malloc((k ? k : 1) * sizeof *codebook);
    layer->weight = calloc(layer->numel, sizeof *layer->weight);  /* numel is the spec's */
    layer->bias = malloc(layer->shape[0] * sizeof *layer->bias);
    if (!codebook || !layer->weight || !layer->bias) {
        fail(r->err, r->err_len, "out of memory");
        goto done;
    }
    if (read_floats(r, k, codebook, "codebook", name) < 0)
        goto done;
    if (layer->huffman) {
        /* tables of 2^bits bytes: take() refuses one longer than what is left */
        value_table = take(r, (size_t)1 << layer->value_bits, "the table of value code lengths");
        position_table = value_table ? take(r, (size_t)1 << layer->position_bits,
                                            "the table of position code lengths") : NULL;
        if (!position_table)
            goto done;
    }
    if (!(p = take(r, 4, "the value stream's length")))
        goto done;
    value_bytes = le32(p);
    if (!(values = take(r, value_bytes, "the value stream")))
        goto done;
    if (!(p = take(r, 4, "the position stream's length")))
        goto done;
    position_bytes = le32(p);
    if (!(positions = take(r, position_bytes, "the position stream")))
        goto done;
    if (read_floats(r, layer->shape[0], layer->bias, "bias", name) < 0)
        goto done;

    if (layer->huffman
        && (huffman_build(&value_code, value_table, (size_t)1 << layer->value_bits, "value",
                          name, r->err, r->err_len) < 0
            || huffman_build(&position_code, position_table, (size_t)1 << layer->position_bits,
                             "position", name, r->err, r->err_len) < 0))
        goto done;
    value_stream = (Stream){{values, 8 * (uint64_t)value_bytes, 0}, layer->value_bits,
                            layer->huffman ? &value_code : NULL, "value"};
    position_stream = (Stream){{positions, 8 * (uint64_t)position_bytes, 0}, layer->position_bits,
                               layer->huffman ? &position_code : NULL, "position"};

    /* The entries, in order: position = previous position + gap + 1, weight = table[value]. */
    for (uint32_t i = 0; i < layer->entries; i++) {
        int64_t value = stream_next(&value_stream, layer, i, r->err, r->err_len);
        int64_t gap = value < 0 ? -1 : stream_next(&position_stream, layer, i, r->err, r->err_len);
        uint64_t position;
        if (value < 0 || gap < 0)
            goto done;
        if ((uint64_t)value > k) {
            fail(r->err, r->err_len, "layer %s: entry %u has value index %lld, the codebook has "
                 "only %u values. %s", name, i, (long long)value, k, HINT);
            goto done;
        }
        position = next_position + (uint64_t)gap;
        if (position >= layer->numel) {
            fail(r->err, r->err_len, "layer %s: entry %u lands at position %llu, past its %zu "
                 "weights. %s", name, i, (unsigned long long)position, layer->numel, HINT);
            goto done;
        }
        layer->weight[position] = value == 0 ? 0.0f : codebook[value - 1];
        layer->fillers += value == 0;
        layer->kept += value != 0;
        next_position = position + 1;
    }
    status = 0;
done:
    free(codebook);
    free(value_code.symbols);
    free(position_code.symbols);
    return status;
}

/* ---- the whole file ---- */

static int parse(const uint8_t *data, size_t size, Model *model, char *err, size_t err_len)
{
    Reader r = {data, 0, 0, err, err_len};
    const ArchSpec *spec = NULL;
    const uint8_t *p;
    char name[256];
    int n_layers;

    if (memcmp(data, "DLCZ", size < 4 ? size : 4) != 0)
        return fail(err, err_len, "not a compact model file: it does not start with \"DLCZ\" "
                    "(wrong magic). %s", HINT);
    if (size < 4 + 1 + 4)
        return fail(err, err_len, "the file is only %zu bytes long: it was cut short. %s",
                    size, HINT);
    if (dlcz_crc32(data, size - 4) != le32(data + size - 4))
        return fail(err, err_len, "the file's CRC-32 does not match its contents: it was cut "
                    "short or altered. %s", HINT);
    r.size = size - 4;  /* the body: every byte before the CRC */
    r.pos = 4;          /* after the magic */
    p = take(&r, 1, "the format version");
    if (*p != DLCZ_VERSION)
        return fail(err, err_len, "format version %d; this program reads version %d", *p,
                    DLCZ_VERSION);
    if (read_name(&r, name, "the architecture") < 0)
        return -1;
    for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++)
        if (strcmp(ARCHS[i].name, name) == 0)
            spec = &ARCHS[i];
    if (!spec)
        return fail(err, err_len, "unknown architecture '%s': this program runs lenet5 and "
                    "lenet300", name);
    model->arch = spec->arch;
    model->arch_name = spec->name;
    model->n_layers = spec->n_layers;
    if (!(p = take(&r, 1, "the number of layers")))
        return -1;
    n_layers = *p;
    for (int i = 0; i < n_layers; i++)
        if (read_layer(&r, spec, model) < 0)
            return -1;
    if (r.pos != r.size)
        return fail(err, err_len, "%zu unexpected bytes after the last layer. %s",
                    r.size - r.pos, HINT);
    for (int i = 0; i < spec->n_layers; i++)
        if (!model->layers[i].weight)
            return fail(err, err_len, "the file has no layer %s, which %s needs",
                        spec->layers[i].name, spec->name);
    return 0;
}

/* A linear layer's non-zero weights as compressed sparse rows (dlcz.h): a pruned weight costs
 * nothing at inference, and the sums are those of the dense rows, term for term (a zero term
 * leaves a finite sum unchanged). */
static int build_rows(Layer *layer)
{
    uint32_t n_out = layer->shape[0], n_in = layer->shape[1], kept = 0;
    SparseRows *rows = &layer->rows;
    for (size_t i = 0; i < layer->numel; i++)
        kept += layer->weight[i] != 0.0f;
    rows->start = malloc((n_out + 1) * sizeof *rows->start);
    rows->column = malloc((kept ? kept : 1) * sizeof *rows->column);
    rows->value = malloc((kept ? kept : 1) * sizeof *rows->value);
    if (!rows->start || !rows->column || !rows->value)
        return -1;
    kept = 0;
    for (uint32_t o = 0; o < n_out; o++) {
        rows->start[o] = kept;
        for (uint32_t i = 0; i < n_in; i++) {
            float w = layer->weight[(size_t)o * n_in + i];
            if (w != 0.0f) {
                rows->column[kept] = (uint16_t)i;  /* every architecture has n_in < 65,536 */
                rows->value[kept++] = w;
            }
        }
    }
    rows->start[n_out] = kept;
    return 0;
}

int dlcz_load(const char *path, Model *model, char *err, size_t err_len)
{
    uint8_t *data;
    size_t size;
    char message[DLCZ_ERR_LEN];
    int status;
    memset(model, 0, sizeof *model);
    if (dlcz_read_file(path, MAX_MODEL_BYTES, &data, &size, err, err_len) < 0)
        return -1;
    model->file_bytes = size;
    status = parse(data, size, model, message, sizeof message);
    free(data);
    for (int i = 0; status == 0 && i < model->n_layers; i++)
        if (model->layers[i].ndim == 2 && build_rows(&model->layers[i]) < 0)
            status = fail(message, sizeof message, "out of memory");
    if (status < 0) {
        snprintf(err, err_len, "%s: %s", path, message);
        dlcz_free(model);
    }
    return status;
}

void dlcz_free(Model *model)
{
    for (int i = 0; i < DLCZ_MAX_LAYERS; i++) {
        free(model->layers[i].weight);
        free(model->layers[i].bias);
        free(model->layers[i].rows.start);
        free(model->layers[i].rows.column);
        free(model->layers[i].rows.value);
    }
    memset(model, 0, sizeof *model);
}
