"""Write the procedural FLAME-format head (the default model that ships in the package).

    python tools/make_procedural_head.py --out ggtalker_jax/flame/assets/procedural_head.npz \
        [--seed 0] [--n-shape 20] [--n-exp 10] [--force]
"""

import argparse
import sys

from ggtalker_jax.errors import InputError
from ggtalker_jax.world.head.build import save_procedural_head


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output .npz path")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random components")
    parser.add_argument("--n-shape", type=int, default=20, help="identity components")
    parser.add_argument("--n-exp", type=int, default=10, help="expression components")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    args = parser.parse_args(argv)
    try:
        path = save_procedural_head(
            args.out, force=args.force, seed=args.seed, n_shape=args.n_shape, n_exp=args.n_exp
        )
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
