{
  "targets": [
    {
      "target_name": "sluice_native",
      "sources": [
        "<!@(ls -1 native/*.cc | grep -v native/memory.cc)"
      ],
      "include_dirs": [
        "<!@(node -p \"require('node-addon-api').include_dir\")"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter", "<!@(pkg-config --cflags libbpf)"],
      "libraries": ["<!@(pkg-config --libs libbpf)"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"]
    },
    {
      "#": "Process-memory policy, apart from the libbpf binding: memory.cc calls V8's own API, whose ABI changes with every Node major (docs/native.md)",
      "target_name": "sluice_memory",
      "sources": ["native/memory.cc"],
      "include_dirs": [
        "<!@(node -p \"require('node-addon-api').include_dir\")"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"]
    }
  ]
}
