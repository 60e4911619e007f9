// myriad_compile: compile an ONNX (opset <= 13) or IR v10 model to a MyriadX (RVC2) blob offline.
//
// Built by edgedeploy.export.myriad_toolchain against the Inference Engine shared library of the
// openvino==2021.4.2 wheel (pinned by sha256), which ships no headers: we declare the few entry
// points we call. Their mangled names must match the library, so build with
// -D_GLIBCXX_USE_CXX11_ABI=0 (the wheel uses the pre-C++11 std::string ABI). Core, CNNNetwork and
// ExecutableNetwork are opaque storage the library constructs in place. Objects are deliberately
// leaked: the process exits right after Export, and their real destructors are header-inline.
//
// usage: myriad_compile MODEL OUT.blob [KEY=VALUE ...]
//   KEY=VALUE items are MYRIAD plugin config (e.g. MYRIAD_NUMBER_OF_SHAVES=6), except
//   INPUT_PRECISION=FP16, handled here: the 2021.4 reader turns float16 network inputs into FP32,
//   so we set FP16 back on each input's Data. InputInfo and Precision are header-only classes; their
//   layout in this pinned build (Data pointer at byte 40 of InputInfo; Precision = {bits, name,
//   isFloat, value}) is checked at run time against the input's name and current precision first.
// exit codes: 0 ok, 1 compile error (message on stderr), 2 usage error.
#include <cstdio>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

namespace InferenceEngine {

class InputInfo;

struct Precision {            // mirrors the 2021.4.2 layout; verified before use (see check_precision)
  size_t bits;
  const char* name;
  bool is_float;
  unsigned char value;        // ePrecision: FP32 = 10, FP16 = 11
};

class Data {
 public:
  const std::string& getName() const;
  const Precision& getPrecision() const;
  void setPrecision(const Precision& precision);
};

class CNNNetwork {
 public:
  CNNNetwork(const CNNNetwork&);  // declared only: makes the type non-trivial (returned via hidden pointer)
  ~CNNNetwork() {}                // leak on purpose (see above)
  std::map<std::string, std::shared_ptr<InputInfo>> getInputsInfo() const;

 private:
  alignas(16) unsigned char storage_[512];
};

class ExecutableNetwork {
 public:
  ExecutableNetwork(const ExecutableNetwork&);
  ~ExecutableNetwork() {}
  void Export(const std::string& modelFileName);

 private:
  alignas(16) unsigned char storage_[512];
};

class Core {
 public:
  explicit Core(const std::string& xmlConfigFile);
  CNNNetwork ReadNetwork(const std::string& modelPath, const std::string& binPath) const;
  ExecutableNetwork LoadNetwork(const std::string& modelPath, const std::string& deviceName,
                                const std::map<std::string, std::string>& config);
  ExecutableNetwork LoadNetwork(const CNNNetwork& network, const std::string& deviceName,
                                const std::map<std::string, std::string>& config);

 private:
  alignas(16) unsigned char storage_[512];
};

}  // namespace InferenceEngine

namespace {

using InferenceEngine::Data;
using InferenceEngine::Precision;

const size_t kDataOffsetInInputInfo = 40;  // after PreProcessInfo {vector, 3 enums}

bool check_precision(const Precision& p) {
  return (p.bits == 32 && p.value == 10 && p.is_float && p.name && std::strcmp(p.name, "FP32") == 0) ||
         (p.bits == 16 && p.value == 11 && p.is_float && p.name && std::strcmp(p.name, "FP16") == 0);
}

void set_fp16_inputs(const InferenceEngine::CNNNetwork& net) {
  std::map<std::string, std::shared_ptr<InferenceEngine::InputInfo>> inputs = net.getInputsInfo();
  for (auto& kv : inputs) {
    const char* raw = reinterpret_cast<const char*>(kv.second.get());
    Data* data = *reinterpret_cast<Data* const*>(raw + kDataOffsetInInputInfo);
    if (data == nullptr || data->getName() != kv.first || !check_precision(data->getPrecision())) {
      throw std::runtime_error("input '" + kv.first + "' is not a float input of this Inference Engine build; "
                               "FP16 input precision is only available for float inputs of openvino 2021.4.2");
    }
    Precision fp16 = data->getPrecision();
    fp16.bits = 16;
    fp16.name = "FP16";
    fp16.value = 11;
    data->setPrecision(fp16);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL OUT.blob [KEY=VALUE ...]\n", argv[0]);
    return 2;
  }
  std::map<std::string, std::string> config;
  bool fp16_inputs = false;
  for (int i = 3; i < argc; ++i) {
    std::string kv(argv[i]);
    std::string::size_type eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::fprintf(stderr, "bad config item '%s': expected KEY=VALUE\n", argv[i]);
      return 2;
    }
    if (kv.substr(0, eq) == "INPUT_PRECISION") {
      if (kv.substr(eq + 1) != "FP16") {
        std::fprintf(stderr, "INPUT_PRECISION must be FP16 (U8 and FP32 come from the model's input type)\n");
        return 2;
      }
      fp16_inputs = true;
      continue;
    }
    config[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  try {
    // Heap-allocated and never freed: see the note at the top of the file.
    InferenceEngine::Core* core = new InferenceEngine::Core(std::string());
    InferenceEngine::ExecutableNetwork* exe = nullptr;
    if (fp16_inputs) {
      InferenceEngine::CNNNetwork* net =
          new InferenceEngine::CNNNetwork(core->ReadNetwork(std::string(argv[1]), std::string()));
      set_fp16_inputs(*net);
      exe = new InferenceEngine::ExecutableNetwork(core->LoadNetwork(*net, std::string("MYRIAD"), config));
    } else {
      exe = new InferenceEngine::ExecutableNetwork(
          core->LoadNetwork(std::string(argv[1]), std::string("MYRIAD"), config));
    }
    exe->Export(std::string(argv[2]));
  } catch (const std::exception& exc) {
    std::fprintf(stderr, "%s\n", exc.what());
    return 1;
  } catch (...) {
    std::fprintf(stderr, "unknown error while compiling %s\n", argv[1]);
    return 1;
  }
  return 0;
}
