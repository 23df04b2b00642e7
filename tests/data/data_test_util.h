// Helpers shared by the data tests: the source directory (HYD_SOURCE_DIR) and in-memory gzip and
// zstd compression of test inputs.
#pragma once

#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "data/indexed_dataset.h"

namespace hydraulis::data::test_util {

inline std::string source_dir() {
  const char* dir = std::getenv("HYD_SOURCE_DIR");
  return dir != nullptr ? dir : ".";
}

inline std::string gzip(const std::string& data) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&z, data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// Streaming compression in 64 KiB pieces, so the frame has many blocks; with the content
// checksum on, as the zstd command line writes it.
inline std::string zstd(const std::string& data) {
  ZSTD_CCtx* context = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1);
  std::string out;
  std::string buffer(ZSTD_CStreamOutSize(), '\0');
  size_t offset = 0;
  while (true) {
    size_t piece = std::min<size_t>(65536, data.size() - offset);
    ZSTD_EndDirective mode = offset + piece == data.size() ? ZSTD_e_end : ZSTD_e_continue;
    ZSTD_inBuffer input{data.data() + offset, piece, 0};
    size_t left;
    do {
      ZSTD_outBuffer output{buffer.data(), buffer.size(), 0};
      left = ZSTD_compressStream2(context, &output, &input, mode);
      EXPECT_FALSE(ZSTD_isError(left));
      out.append(buffer.data(), output.pos);
    } while (mode == ZSTD_e_end ? left != 0 : input.pos < input.size);
    offset += piece;
    if (mode == ZSTD_e_end) break;
  }
  ZSTD_freeCCtx(context);
  return out;
}

// Expects IndexedDataset::open(prefix) to fail with DataLoss and a message holding every fragment.
inline void expect_data_loss(const std::string& prefix, const std::vector<std::string>& fragments) {
  auto opened = IndexedDataset::open(prefix);
  ASSERT_FALSE(opened.is_ok());
  EXPECT_EQ(opened.status().code(), core::StatusCode::kDataLoss) << opened.status().to_string();
  for (const std::string& fragment : fragments) {
    EXPECT_NE(opened.status().message().find(fragment), std::string::npos)
        << "missing '" << fragment << "' in: " << opened.status().message();
  }
}

}  // namespace hydraulis::data::test_util
