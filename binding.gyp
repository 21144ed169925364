{
  "targets": [
    {
      "target_name": "ntptsd_native",
      "conditions": [
        ["OS=='linux'", { "sources": ["native/udp_batch.c"] }, { "sources": ["native/unsupported.c"] }]
      ],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
