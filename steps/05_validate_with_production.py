"""Step 5: staging (challenger) vs production (champion) on the same test split; promote only if better
(`pfp validate`). Exit 0 promoted or nothing to do, 10 rejected, 11 inconclusive, 12 lost a race.

    python steps/05_validate_with_production.py [--allow-split-mismatch]
"""

from _common import main, parser

if __name__ == "__main__":
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--allow-split-mismatch", action="store_true", help="Accept a model trained on another split.")
    args = p.parse_args()
    main(args, lambda project: project.validate(allow_split_mismatch=args.allow_split_mismatch))
