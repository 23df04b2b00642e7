// CRC32C (Castagnoli; reflected polynomial 0x82F63B78, initial and final value inverted), the
// checksum of checkpoint tensors (docs/formats.md, "Checkpoint"). Two implementations that must
// agree: table-driven software (8 bytes per step through 8 tables) and the SSE4.2 crc32
// instruction, used where the CPU has it. Tests: tests/core/crc32c_test.cpp (RFC 3720 vectors).
#pragma once

#include <cstddef>
#include <cstdint>

namespace hydraulis::core {

// The CRC32C of `bytes` bytes at `data`, continuing `previous` (the CRC32C of the bytes before
// them; 0 to start): crc32c(b, n2, crc32c(a, n1)) == crc32c of a followed by b.
uint32_t crc32c(const void* data, size_t bytes, uint32_t previous = 0);
// The software path alone (for the tests that compare both).
uint32_t crc32c_software(const void* data, size_t bytes, uint32_t previous = 0);
// Whether crc32c() uses the CPU instruction on this machine.
bool crc32c_hardware_available();

}  // namespace hydraulis::core
