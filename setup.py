"""Build hook for the one optional C extension; everything else is in pyproject.toml.

`swarm_vectordb.bee._keccak` (batched Keccak-256 of BMT nodes, AVX2 when the CPU has
it) is optional: without a C compiler the install goes on and BMT hashing falls back
to pycryptodome, slower but identical.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "swarm_vectordb.bee._keccak",
            sources=["swarm_vectordb/bee/_keccak.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
