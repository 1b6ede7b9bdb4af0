// Runtime-dispatched x86 kernels for WSCore's fast paths (unmasking, UTF-8 validation).
//
// Swift has no per-function target features, so the AVX2 kernels live here, compiled with
// __attribute__((target("avx2"))) and called only after cws_has_avx2() says the CPU has AVX2.
// Each has a portable Swift kernel and a scalar reference beside it in
// Sources/WSCore/FastPaths/*+Unsafe.swift; tests and fuzz targets compare all three.
#ifndef CWS_FASTPATHS_H
#define CWS_FASTPATHS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// 1 if the CPU supports AVX2 (and the kernels below may be called), else 0.
int cws_has_avx2(void);

/// XORs p[0..n) with the 32-bit little-endian key word, 32 bytes at a time.
/// Returns how many bytes were processed: n rounded down to a multiple of 32 (the caller
/// finishes the rest; the key phase is unchanged because 32 is a multiple of 4).
size_t cws_mask_avx2(uint8_t *p, size_t n, uint32_t key);

/// 1 if p[0..n) is valid UTF-8 made of complete characters (RFC 3629), else 0.
/// Keiser & Lemire's lookup algorithm ("Validating UTF-8 in less than one instruction per
/// byte", 2021): three nibble-indexed table lookups classify every pair of adjacent bytes.
int cws_utf8_valid_avx2(const uint8_t *p, size_t n);

#ifdef __cplusplus
}
#endif

#endif
