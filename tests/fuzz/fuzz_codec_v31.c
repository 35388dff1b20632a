/* libFuzzer target: the codec decoding MQTT 3.1, with the round-trip invariants of
 * fuzz_codec_common.h. Seeds in tests/fuzz/corpus/codec_v31/, dictionary in dict/. */
#define FUZZ_VERSION VS_V31
#include "codec/codec.h"

#include "fuzz_codec_common.h"
