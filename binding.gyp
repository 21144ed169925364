{
  "targets": [
    {
      "target_name": "ntptsd_native",
      "conditions": [
        ["OS=='linux'", { "sources": ["native/udp_batch.c", "native/aes_engine.c", "native/tls_listener.c"] }, { "sources": ["native/unsupported.c", "native/aes_engine.c"] }]
      ],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
