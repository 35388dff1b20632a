/* libFuzzer target: the codec decoding a connection before CONNECT (opts.version 0), with the
 * round-trip invariants of fuzz_codec_common.h. Seeds in tests/fuzz/corpus/codec_connect/,
 * dictionary in dict/. */
#define FUZZ_VERSION 0
#include "codec/codec.h"

#include "fuzz_codec_common.h"
