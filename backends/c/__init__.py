"""The C code generator (host, and the machinery arm64 / wasm32 reuse): legalize, group
kernels, plan memory, render C with jinja2, build with cc, write the artifact."""
