// zlib for WSDeflate. deflateInit2 and inflateInit2 are function-like macros (they pass the
// library version and the stream size), which Swift does not import: these wrappers do.
#ifndef CWSZLIB_SHIM_H
#define CWSZLIB_SHIM_H
#include <zlib.h>

static inline int cws_deflateInit2(z_streamp strm, int level, int windowBits, int memLevel, int strategy) {
    return deflateInit2(strm, level, Z_DEFLATED, windowBits, memLevel, strategy);
}

static inline int cws_inflateInit2(z_streamp strm, int windowBits) {
    return inflateInit2(strm, windowBits);
}
#endif
