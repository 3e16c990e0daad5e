#include "train/checkpoint.h"

#include <hdf5.h>

#include <cstdio>
#include <filesystem>
#include <vector>

#include "core/error.h"

namespace attnlab {

namespace {

// Owns one HDF5 handle; `close` is the matching H5*close.
class H5Handle {
 public:
  H5Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~H5Handle() {
    if (id_ >= 0) close_(id_);
  }
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

struct SilenceH5Errors {
  SilenceH5Errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }
};

void check(bool ok, const std::string& path, const std::string& what) {
  ATTNLAB_CHECK(ok, "checkpoint ", path, ": ", what);
}

hid_t h5_type(DType t) {
  switch (t) {
    case DType::f32: return H5T_NATIVE_FLOAT;
    case DType::f64: return H5T_NATIVE_DOUBLE;
    case DType::i32: return H5T_NATIVE_INT32;
    case DType::i64: return H5T_NATIVE_INT64;
    case DType::u16: return H5T_NATIVE_UINT16;
    case DType::bf16: break;
  }
  throw Error(detail::cat("checkpoint: cannot store dtype ", dtype_name(t)));
}

// Intermediate groups of "optim/blocks.0.attn.wq.weight" are created on demand.
hid_t link_props() {
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  return lcpl;
}

void write_tensor(hid_t file, const std::string& name, const Tensor& t, const std::string& path) {
  Tensor host = t.device().is_cpu() ? t : t.to(Device::cpu());
  if (host.dtype() == DType::bf16) host = host.to(DType::f32);
  std::vector<hsize_t> dims(host.shape().begin(), host.shape().end());
  H5Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  H5Handle lcpl(link_props(), H5Pclose);
  H5Handle ds(H5Dcreate2(file, name.c_str(), h5_type(host.dtype()), space.get(), lcpl.get(), H5P_DEFAULT,
                         H5P_DEFAULT),
              H5Dclose);
  check(ds.ok(), path, "cannot create dataset '" + name + "'");
  check(H5Dwrite(ds.get(), h5_type(host.dtype()), H5S_ALL, H5S_ALL, H5P_DEFAULT, host.raw_data()) >= 0, path,
        "cannot write dataset '" + name + "'");
}

Tensor read_tensor(hid_t file, const std::string& name, const std::string& path) {
  H5Handle ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose);
  check(ds.ok(), path, "cannot open dataset '" + name + "'");
  H5Handle space(H5Dget_space(ds.get()), H5Sclose);
  int nd = H5Sget_simple_extent_ndims(space.get());
  check(nd >= 0, path, "dataset '" + name + "' has no simple shape");
  std::vector<hsize_t> dims(static_cast<size_t>(nd));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  H5Handle type(H5Dget_type(ds.get()), H5Tclose);
  DType dtype = DType::f32;
  if (H5Tget_class(type.get()) == H5T_FLOAT) dtype = H5Tget_size(type.get()) == 8 ? DType::f64 : DType::f32;
  else if (H5Tget_class(type.get()) == H5T_INTEGER)
    dtype = H5Tget_size(type.get()) == 8 ? DType::i64 : H5Tget_size(type.get()) == 4 ? DType::i32 : DType::u16;
  else check(false, path, "dataset '" + name + "' is not numeric");
  Tensor t = Tensor::empty(Shape(dims.begin(), dims.end()), dtype);
  check(H5Dread(ds.get(), h5_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw_data()) >= 0, path,
        "cannot read dataset '" + name + "' (file corrupted?)");
  return t;
}

void write_attr_i64(hid_t obj, const std::string& name, int64_t v) {
  H5Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  H5Handle attr(H5Acreate2(obj, name.c_str(), H5T_NATIVE_INT64, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  H5Awrite(attr.get(), H5T_NATIVE_INT64, &v);
}

void write_attr_str(hid_t obj, const std::string& name, const std::string& s) {
  H5Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), std::max<size_t>(s.size(), 1));
  H5Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  H5Handle attr(H5Acreate2(obj, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  std::string buf = s.empty() ? std::string(1, '\0') : s;
  H5Awrite(attr.get(), type.get(), buf.data());
}

// The names of a group's members (in name order).
std::vector<std::string> member_names(hid_t group) {
  std::vector<std::string> names;
  H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, nullptr,
              [](hid_t, const char* name, const H5L_info_t*, void* out) -> herr_t {
                static_cast<std::vector<std::string>*>(out)->push_back(name);
                return 0;
              },
              &names);
  return names;
}

}  // namespace

void save_checkpoint(const std::string& path, const Checkpoint& ckpt) {
  static SilenceH5Errors silence;
  std::string tmp = path + ".tmp";
  {
    H5Handle file(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
    check(file.ok(), path, "cannot create " + tmp);
    for (const auto& [name, t] : ckpt.params) write_tensor(file.get(), name, t, path);
    for (const auto& [param, states] : ckpt.optim)
      for (const auto& [state, t] : states) write_tensor(file.get(), "optim/" + param + "/" + state, t, path);
    H5Handle meta(H5Gcreate2(file.get(), "meta", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    check(meta.ok(), path, "cannot create group meta");
    for (const auto& [key, v] : ckpt.meta) write_attr_i64(meta.get(), key, v);
    write_attr_str(meta.get(), "config", ckpt.config);
    check(H5Fflush(file.get(), H5F_SCOPE_GLOBAL) >= 0, path, "flush failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp);
    check(false, path, "cannot rename " + tmp + ": " + ec.message());
  }
}

Checkpoint load_checkpoint(const std::string& path, bool with_optim) {
  static SilenceH5Errors silence;
  check(std::filesystem::is_regular_file(path), path, "no such file");
  check(H5Fis_hdf5(path.c_str()) > 0, path, "not an HDF5 file (corrupted or truncated?)");
  H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  check(file.ok(), path, "cannot open (corrupted or truncated?)");
  check(H5Lexists(file.get(), "meta", H5P_DEFAULT) > 0, path, "no meta/ group: not an attnlab checkpoint");

  Checkpoint ckpt;
  for (const std::string& name : member_names(file.get())) {
    if (name == "meta" || name == "optim") continue;
    ckpt.params[name] = read_tensor(file.get(), name, path);
  }
  if (with_optim && H5Lexists(file.get(), "optim", H5P_DEFAULT) > 0) {
    H5Handle optim(H5Gopen2(file.get(), "optim", H5P_DEFAULT), H5Gclose);
    for (const std::string& param : member_names(optim.get())) {
      H5Handle group(H5Gopen2(optim.get(), param.c_str(), H5P_DEFAULT), H5Gclose);
      for (const std::string& state : member_names(group.get()))
        ckpt.optim[param][state] = read_tensor(file.get(), "optim/" + param + "/" + state, path);
    }
  }
  H5Handle meta(H5Gopen2(file.get(), "meta", H5P_DEFAULT), H5Gclose);
  int n_attrs = static_cast<int>(H5Aget_num_attrs(meta.get()));
  for (int i = 0; i < n_attrs; ++i) {
    H5Handle attr(H5Aopen_by_idx(meta.get(), ".", H5_INDEX_NAME, H5_ITER_INC, static_cast<hsize_t>(i),
                                 H5P_DEFAULT, H5P_DEFAULT),
                  H5Aclose);
    char name[256];
    H5Aget_name(attr.get(), sizeof name, name);
    H5Handle type(H5Aget_type(attr.get()), H5Tclose);
    if (H5Tget_class(type.get()) == H5T_STRING) {
      std::string s(H5Tget_size(type.get()), '\0');
      check(H5Aread(attr.get(), type.get(), s.data()) >= 0, path, std::string("cannot read meta/") + name);
      s.resize(s.find('\0') == std::string::npos ? s.size() : s.find('\0'));
      if (std::string(name) == "config") ckpt.config = s;
    } else {
      int64_t v = 0;
      check(H5Aread(attr.get(), H5T_NATIVE_INT64, &v) >= 0, path, std::string("cannot read meta/") + name);
      ckpt.meta[name] = v;
    }
  }
  return ckpt;
}

}  // namespace attnlab
