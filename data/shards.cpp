#include "data/shards.h"

#include <hdf5.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/error.h"
#include "data/file_io.h"

namespace attnlab {

namespace fs = std::filesystem;

namespace {

uint32_t max_token(const std::vector<uint32_t>& t) {
  return t.empty() ? 0 : *std::max_element(t.begin(), t.end());
}

void require_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(detail::cat(path, ": no such file"));
  if (!fs::is_regular_file(path, ec)) throw Error(detail::cat(path, ": not a regular file"));
}

// Runs `write` (which produces tmp_path_for(path)) and publishes the result;
// on failure the temporary file is removed and the error passed on.
template <class F>
void write_atomically(const std::string& path, F&& write) {
  const std::string tmp = tmp_path_for(path);
  try {
    write(tmp);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  publish_tmp(path);
}

// ---- HDF5 ----

// Closes an HDF5 id on scope exit.
class H5Id {
 public:
  H5Id(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  ~H5Id() {
    if (id_ >= 0) close_(id_);
  }
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

// Users should see our one-line errors, not HDF5's stack dump.
void silence_hdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

void h5_check(bool ok, const std::string& path, const char* what) {
  if (!ok) throw Error(detail::cat(path, ": HDF5 failed to ", what));
}

std::string h5_type_name(hid_t type) {
  switch (H5Tget_class(type)) {
    case H5T_INTEGER:
      return detail::cat(H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int", 8 * H5Tget_size(type));
    case H5T_FLOAT: return detail::cat("float", 8 * H5Tget_size(type));
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    default: return "a non-numeric type";
  }
}

void write_h5(const std::string& path, const std::string& tmp, const TokenShard& shard) {
  const bool u16 = shard.vocab_size > 0 ? shard.vocab_size <= 65536 : max_token(shard.tokens) < 65536;
  H5Id file(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  if (!file.ok()) throw Error(detail::cat(path, ": cannot create ", tmp, " (is the directory writable?)"));
  hsize_t n = shard.tokens.size();
  H5Id space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  h5_check(space.ok(), path, "create a dataspace");
  H5Id ds(H5Dcreate2(file.get(), "tokens", u16 ? H5T_STD_U16LE : H5T_STD_U32LE, space.get(),
                     H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
          H5Dclose);
  h5_check(ds.ok(), path, "create /tokens");
  herr_t st;
  if (u16) {
    std::vector<uint16_t> narrow(shard.tokens.begin(), shard.tokens.end());
    st = H5Dwrite(ds.get(), H5T_NATIVE_UINT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, narrow.data());
  } else {
    st = H5Dwrite(ds.get(), H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, shard.tokens.data());
  }
  h5_check(st >= 0, path, "write /tokens (disk full?)");

  H5Id scalar(H5Screate(H5S_SCALAR), H5Sclose);
  H5Id str(H5Tcopy(H5T_C_S1), H5Tclose);
  h5_check(scalar.ok() && str.ok() && H5Tset_size(str.get(), H5T_VARIABLE) >= 0 &&
               H5Tset_cset(str.get(), H5T_CSET_UTF8) >= 0,
           path, "make the string type");
  H5Id tok_attr(H5Acreate2(ds.get(), "tokenizer", str.get(), scalar.get(), H5P_DEFAULT, H5P_DEFAULT),
                H5Aclose);
  const char* name = shard.tokenizer.c_str();
  h5_check(tok_attr.ok() && H5Awrite(tok_attr.get(), str.get(), &name) >= 0, path,
           "write the tokenizer attribute");
  H5Id vocab_attr(H5Acreate2(ds.get(), "vocab_size", H5T_STD_I64LE, scalar.get(), H5P_DEFAULT, H5P_DEFAULT),
                  H5Aclose);
  const int64_t vocab = shard.vocab_size;
  h5_check(vocab_attr.ok() && H5Awrite(vocab_attr.get(), H5T_NATIVE_INT64, &vocab) >= 0, path,
           "write the vocab_size attribute");
  h5_check(H5Fflush(file.get(), H5F_SCOPE_LOCAL) >= 0, path, "flush (disk full?)");
}

std::string read_string_attr(hid_t obj, const char* name, const std::string& path) {
  H5Id attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  H5Id ftype(attr.ok() ? H5Aget_type(attr.get()) : -1, H5Tclose);
  if (!ftype.ok() || H5Tget_class(ftype.get()) != H5T_STRING)
    throw Error(detail::cat(path, ": attribute ", name, " of /tokens is not a string"));
  H5Id mtype(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_cset(mtype.get(), H5Tget_cset(ftype.get()));  // HDF5 does not convert between ASCII and UTF-8
  if (H5Tis_variable_str(ftype.get()) > 0) {
    H5Tset_size(mtype.get(), H5T_VARIABLE);
    char* p = nullptr;
    h5_check(H5Aread(attr.get(), mtype.get(), &p) >= 0, path, "read a string attribute");
    std::string s = p ? p : "";
    H5free_memory(p);
    return s;
  }
  size_t size = H5Tget_size(ftype.get());
  std::string buf(size + 1, '\0');
  H5Tset_size(mtype.get(), size + 1);  // room for the terminator HDF5 writes
  h5_check(H5Aread(attr.get(), mtype.get(), buf.data()) >= 0, path, "read a string attribute");
  buf.resize(std::strlen(buf.c_str()));
  return buf;
}

}  // namespace

void write_h5_shard(const std::string& path, const TokenShard& shard) {
  silence_hdf5();
  if (shard.vocab_size > 0) {
    uint32_t m = max_token(shard.tokens);
    ATTNLAB_CHECK(shard.tokens.empty() || m < shard.vocab_size, path, ": token id ", m,
                  " is outside the vocab size ", shard.vocab_size);
  }
  write_atomically(path, [&](const std::string& tmp) { write_h5(path, tmp, shard); });
}

TokenShard read_h5_shard(const std::string& path) {
  silence_hdf5();
  require_file(path);
#if H5_VERSION_GE(1, 12, 0)
  const htri_t is_hdf5 = H5Fis_accessible(path.c_str(), H5P_DEFAULT);
#else
  const htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
#endif
  if (is_hdf5 <= 0)
    throw Error(detail::cat(path, ": not an HDF5 file"));
  H5Id file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file.ok()) throw Error(detail::cat(path, ": cannot open as HDF5"));
  if (H5Lexists(file.get(), "tokens", H5P_DEFAULT) <= 0)
    throw Error(detail::cat(path, ": no /tokens dataset (not a token shard)"));
  H5Id ds(H5Dopen2(file.get(), "tokens", H5P_DEFAULT), H5Dclose);
  if (!ds.ok()) throw Error(detail::cat(path, ": /tokens is not a dataset"));
  H5Id type(H5Dget_type(ds.get()), H5Tclose);
  h5_check(type.ok(), path, "read the type of /tokens");
  const bool is_uint = H5Tget_class(type.get()) == H5T_INTEGER && H5Tget_sign(type.get()) == H5T_SGN_NONE;
  const size_t width = H5Tget_size(type.get());
  if (!is_uint || (width != 2 && width != 4))
    throw Error(detail::cat(path, ": /tokens has dtype ", h5_type_name(type.get()),
                            ", expected uint16 or uint32"));
  H5Id space(H5Dget_space(ds.get()), H5Sclose);
  h5_check(space.ok(), path, "read the shape of /tokens");
  int ndims = H5Sget_simple_extent_ndims(space.get());
  if (ndims != 1) throw Error(detail::cat(path, ": /tokens has ", ndims, " dimensions, expected 1"));
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space.get(), &n, nullptr);

  TokenShard shard;
  shard.tokens.resize(n);
  herr_t st = 0;
  if (n > 0) {
    if (width == 2) {
      std::vector<uint16_t> narrow(n);
      st = H5Dread(ds.get(), H5T_NATIVE_UINT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, narrow.data());
      std::copy(narrow.begin(), narrow.end(), shard.tokens.begin());
    } else {
      st = H5Dread(ds.get(), H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, shard.tokens.data());
    }
  }
  if (st < 0) throw Error(detail::cat(path, ": cannot read /tokens (file damaged or truncated?)"));

  if (H5Aexists(ds.get(), "tokenizer") > 0) shard.tokenizer = read_string_attr(ds.get(), "tokenizer", path);
  if (H5Aexists(ds.get(), "vocab_size") > 0) {
    H5Id attr(H5Aopen(ds.get(), "vocab_size", H5P_DEFAULT), H5Aclose);
    int64_t v = 0;
    if (!attr.ok() || H5Aread(attr.get(), H5T_NATIVE_INT64, &v) < 0 || v < 0 ||
        v > std::numeric_limits<uint32_t>::max())
      throw Error(detail::cat(path, ": attribute vocab_size of /tokens is not a valid integer"));
    shard.vocab_size = static_cast<uint32_t>(v);
  }
  if (shard.vocab_size > 0 && !shard.tokens.empty()) {
    uint32_t m = max_token(shard.tokens);
    if (m >= shard.vocab_size)
      throw Error(detail::cat(path, ": token id ", m, " is outside the recorded vocab size ",
                              shard.vocab_size));
  }
  return shard;
}

// ---- llm.c .bin ----

namespace {
constexpr size_t kHeaderInts = 256;
constexpr size_t kHeaderBytes = kHeaderInts * sizeof(int32_t);
}  // namespace

void write_bin_shard(const std::string& path, const std::vector<uint32_t>& tokens) {
  ATTNLAB_CHECK(tokens.size() <= static_cast<size_t>(std::numeric_limits<int32_t>::max()), path,
                ": ", tokens.size(), " tokens do not fit the .bin header's int32 count");
  const bool v1 = max_token(tokens) < 65536;
  std::array<int32_t, kHeaderInts> header{};
  header[0] = kBinMagic;
  header[1] = v1 ? 1 : 2;
  header[2] = static_cast<int32_t>(tokens.size());
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(detail::cat(path, ": cannot create ", tmp, " (is the directory writable?)"));
    out.write(reinterpret_cast<const char*>(header.data()), kHeaderBytes);
    if (v1) {
      std::vector<uint16_t> narrow(tokens.begin(), tokens.end());
      out.write(reinterpret_cast<const char*>(narrow.data()),
                static_cast<std::streamsize>(narrow.size() * sizeof(uint16_t)));
    } else {
      out.write(reinterpret_cast<const char*>(tokens.data()),
                static_cast<std::streamsize>(tokens.size() * sizeof(uint32_t)));
    }
    out.flush();
    if (!out) throw Error(detail::cat(path, ": write failed (disk full?)"));
  });
}

TokenShard read_bin_shard(const std::string& path) {
  require_file(path);
  const uintmax_t size = fs::file_size(path);
  if (size < kHeaderBytes)
    throw Error(detail::cat(path, ": truncated .bin shard: ", size, " bytes, shorter than the ",
                            kHeaderBytes, "-byte header"));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(detail::cat(path, ": cannot open for reading"));
  std::array<int32_t, kHeaderInts> header{};
  in.read(reinterpret_cast<char*>(header.data()), kHeaderBytes);
  if (!in) throw Error(detail::cat(path, ": cannot read the .bin header"));
  if (header[0] != kBinMagic)
    throw Error(detail::cat(path, ": bad magic ", header[0], " (expected ", kBinMagic,
                            "; not an llm.c token shard)"));
  if (header[1] != 1 && header[1] != 2)
    throw Error(detail::cat(path, ": unsupported .bin version ", header[1],
                            " (expected 1 for uint16 or 2 for uint32 tokens)"));
  if (header[2] < 0) throw Error(detail::cat(path, ": negative token count ", header[2], " in the header"));
  const size_t width = header[1] == 1 ? 2 : 4;
  const uint64_t count = static_cast<uint64_t>(header[2]);
  const uint64_t have = size - kHeaderBytes;
  if (have < count * width)
    throw Error(detail::cat(path, ": truncated .bin shard: header says ", count, " tokens (",
                            count * width, " bytes) but the file has ", have, " bytes of tokens"));
  if (have > count * width)
    throw Error(detail::cat(path, ": .bin shard has ", have - count * width,
                            " bytes after the ", count, " tokens its header announces"));
  TokenShard shard;
  shard.tokens.resize(count);
  if (width == 2) {
    std::vector<uint16_t> narrow(count);
    in.read(reinterpret_cast<char*>(narrow.data()), static_cast<std::streamsize>(count * 2));
    std::copy(narrow.begin(), narrow.end(), shard.tokens.begin());
  } else {
    in.read(reinterpret_cast<char*>(shard.tokens.data()), static_cast<std::streamsize>(count * 4));
  }
  if (!in) throw Error(detail::cat(path, ": read failed"));
  return shard;
}

// ---- by extension ----

namespace {

enum class Format { h5, bin };

Format format_of(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext == ".h5" || ext == ".hdf5") return Format::h5;
  if (ext == ".bin") return Format::bin;
  throw Error(detail::cat(path, ": unknown token shard format \"", ext,
                          "\" (expected .h5, .hdf5 or .bin)"));
}

}  // namespace

void write_shard(const std::string& path, const TokenShard& shard) {
  if (format_of(path) == Format::h5) {
    write_h5_shard(path, shard);
  } else {
    write_bin_shard(path, shard.tokens);
  }
}

TokenShard read_shard(const std::string& path) {
  return format_of(path) == Format::h5 ? read_h5_shard(path) : read_bin_shard(path);
}

}  // namespace attnlab
