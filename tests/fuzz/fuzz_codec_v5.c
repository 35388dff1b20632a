/* libFuzzer target: the codec decoding MQTT 5.0, with the round-trip invariants of
 * fuzz_codec_common.h. Seeds in tests/fuzz/corpus/codec_v5/, dictionary in dict/. */
#define FUZZ_VERSION VS_V5
#include "codec/codec.h"

#include "fuzz_codec_common.h"
