"""Step 4: the latest candidate (or --version N) through the staging gate to the `staging` alias (`pfp promote`).

    python steps/04_promote_to_staging.py [--version N] [--allow-split-mismatch]
"""

from _common import main, parser

if __name__ == "__main__":
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--version", type=int, default=None, help="Version to promote (default: the latest candidate).")
    p.add_argument("--allow-split-mismatch", action="store_true", help="Accept a model trained on another split.")
    args = p.parse_args()
    main(args, lambda project: project.promote(version=args.version, allow_split_mismatch=args.allow_split_mismatch))
