/* libFuzzer target: the codec decoding MQTT 3.1.1, with the round-trip invariants of
 * fuzz_codec_common.h. Seeds in tests/fuzz/corpus/codec_v311/, dictionary in dict/. */
#define FUZZ_VERSION VS_V311
#include "codec/codec.h"

#include "fuzz_codec_common.h"
