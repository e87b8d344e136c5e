"""Run the splatting forward+backward on the head workload in a loop, for a GPU profiler.

Per-kernel times come from the profiler, e.g.:

    nsys profile -o splat --stats=true python tools/trace_splat.py --case 512x100000x8

Every XLA fusion and Pallas kernel of the jitted step then appears by name in nsys's
``cuda_gpu_kern_sum`` table (``splat_forward``, ``splat_backward``, sorts, scans, ...).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from bench_splat import case_name, make_workload, parse_case  # tools/ is on sys.path

from ggtalker_jax.flame import load_flame
from ggtalker_jax.kernels.splat import rasterization

FIELDS = ("means", "quats", "scales", "opacities", "colors")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case", type=parse_case, default="512x100000x8", help="SIZExNxBATCH")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--forward-only", action="store_true")
    args = p.parse_args(argv)
    size, n, batch = args.case
    w = make_workload(load_flame(), n, size, batch)
    inputs = [jnp.asarray(w[k]) for k in FIELDS]
    view, k = jnp.asarray(w["viewmats"]), jnp.asarray(w["Ks"])
    shape = (*w["viewmats"].shape[:-2], size, size, 3)
    weights = jnp.asarray(np.random.default_rng(1).normal(size=shape).astype(np.float32))

    def render(*a):
        return rasterization(*a, view, k, size, size, backend="pallas")[0]

    if args.forward_only:
        step = jax.jit(render)
    else:
        loss = lambda *a: jnp.sum(render(*a) * weights)
        step = jax.jit(jax.value_and_grad(loss, argnums=tuple(range(5))))
    jax.block_until_ready(step(*inputs))
    for _ in range(args.iters):
        out = step(*inputs)
    jax.block_until_ready(out)
    print(f"{case_name(*args.case)}: {args.iters} steps done on {jax.devices()[0].device_kind}")


if __name__ == "__main__":
    main()
