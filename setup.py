"""The native OTLP scanners (everything else about the package is in pyproject.toml)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "tailscope.ingest._native",
            sources=[
                "tailscope/ingest/native/module.c",
                "tailscope/ingest/native/json_scan.c",
                "tailscope/ingest/native/proto_scan.c",
            ],
            depends=["tailscope/ingest/native/flat.h"],
            extra_compile_args=["-O2", "-std=c11"],
            # Without a C compiler tailscope still installs and works, on the slower
            # pyarrow.json and upb paths (`tailscope version` says which one is in use).
            optional=True,
        )
    ]
)
